//! Mesos duration strings (`15mins`, `2secs`, `1weeks`, `500ms`, `10ns`, ...).

use std::time::Duration;

/// Parses a Mesos duration string: a number (integer or decimal) followed by one of
/// `ns`, `us`, `ms`, `secs`, `mins`, `hrs`, `days`, `weeks` (singular forms and `s`, `m`,
/// `h`, `d`, `w` accepted too).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| format!("duration '{text}' has no unit (e.g. 15mins, 2secs)"))?;
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("duration '{text}' does not start with a number"))?;
    let seconds_per_unit = match unit {
        "ns" => 1e-9,
        "us" => 1e-6,
        "ms" => 1e-3,
        "s" | "sec" | "secs" => 1.0,
        "m" | "min" | "mins" => 60.0,
        "h" | "hr" | "hrs" => 3600.0,
        "d" | "day" | "days" => 86_400.0,
        "w" | "week" | "weeks" => 604_800.0,
        other => return Err(format!("duration '{text}' has unknown unit '{other}'")),
    };
    let seconds = value * seconds_per_unit;
    if !seconds.is_finite() || seconds < 0.0 {
        return Err(format!("duration '{text}' is out of range"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mesos_spellings() {
        assert_eq!(parse_duration("15mins"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("2secs"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1weeks"), Ok(Duration::from_secs(604_800)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5hrs"), Ok(Duration::from_secs(5400)));
        assert!(parse_duration("15").unwrap_err().contains("no unit"));
        assert!(parse_duration("3parsecs")
            .unwrap_err()
            .contains("unknown unit"));
    }
}

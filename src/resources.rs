//! Agent resources as an operator writes them: the `--resources` syntax
//! (docs/design.md D14), one parser for the binary's flag and the simulator's scenarios.

use crate::proto::Resource;

/// Parses `--resources`: `;`-separated `name:value` (unreserved) or `name(role):value`
/// (statically reserved for `role`; `*` is the unreserved role), scalars only, as in
/// Mesos. Whitespace around names, roles and values is ignored; empty parts are skipped.
/// A static reservation has a role and no `reservation` mark (that mark is for dynamic
/// reservations made through the master). The error names the part that is wrong.
pub fn parse(text: &str) -> Result<Vec<Resource>, String> {
    text.split(';')
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .map(parse_one)
        .collect()
}

fn parse_one(part: &str) -> Result<Resource, String> {
    let (name, value) = part
        .split_once(':')
        .ok_or_else(|| format!("resource '{part}' is not name:value or name(role):value"))?;
    let (name, role) = match name.split_once('(') {
        Some((name, role)) => {
            let role = role
                .trim_end()
                .strip_suffix(')')
                .ok_or_else(|| format!("resource '{part}': the role does not end with ')'"))?
                .trim();
            if role.is_empty() {
                return Err(format!(
                    "resource '{part}' names an empty role (write '*' for unreserved)"
                ));
            }
            (name.trim(), role)
        }
        None => (name.trim(), "*"),
    };
    if name.is_empty() {
        return Err(format!("resource '{part}' has no name"));
    }
    if name.contains(')') || role.contains(['(', ')']) {
        return Err(format!("resource '{part}' has stray parentheses"));
    }
    let scalar: f64 = value
        .trim()
        .parse()
        .map_err(|_| format!("resource '{part}' has a non-numeric value"))?;
    if !scalar.is_finite() || scalar < 0.0 {
        return Err(format!(
            "resource '{part}' must be a finite, non-negative number"
        ));
    }
    Ok(Resource {
        name: name.to_owned(),
        scalar,
        role: if role == "*" {
            String::new()
        } else {
            role.to_owned()
        },
        reservation: String::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(name: &str, scalar: f64, role: &str) -> Resource {
        Resource {
            name: name.into(),
            scalar,
            role: role.into(),
            reservation: String::new(),
        }
    }

    #[test]
    fn unreserved_and_statically_reserved_resources() {
        assert_eq!(
            parse("cpus:2;mem:1024").unwrap(),
            vec![one("cpus", 2.0, ""), one("mem", 1024.0, "")]
        );
        assert_eq!(
            parse(" cpus:10 ; mem:1024;cpus(web):1 ;disk(*):5;").unwrap(),
            vec![
                one("cpus", 10.0, ""),
                one("mem", 1024.0, ""),
                one("cpus", 1.0, "web"),
                one("disk", 5.0, ""),
            ]
        );
        assert_eq!(
            parse("cpus( db ) : 0.5").unwrap(),
            vec![one("cpus", 0.5, "db")]
        );
        assert_eq!(parse("").unwrap(), Vec::<Resource>::new());
    }

    #[test]
    fn a_static_reservation_carries_no_dynamic_mark() {
        for resource in parse("cpus(web):1;mem(db):64").unwrap() {
            assert!(!resource.role.is_empty());
            assert!(resource.reservation.is_empty(), "{resource:?}");
        }
    }

    #[test]
    fn bad_input_is_named() {
        for (text, says) in [
            ("cpus", "'cpus' is not name:value"),
            ("cpus:two", "non-numeric"),
            ("cpus:-1", "non-negative"),
            ("cpus:inf", "finite"),
            ("cpus:NaN", "finite"),
            ("cpus(web:1", "does not end with ')'"),
            ("cpus():1", "empty role"),
            (":1", "no name"),
            ("cpus(a(b)):1", "stray parentheses"),
            ("cpus:1;mem", "'mem'"),
        ] {
            let error = parse(text).expect_err(text);
            assert!(error.contains(says), "{text}: {error}");
        }
    }
}

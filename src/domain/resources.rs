//! Agent resources: the `--resources` syntax (docs/design.md D14), one parser for the
//! binary's flag and the simulator's scenarios; the dynamic reservation mark; the stable
//! description logs and traces print; and the compatibility of a restart's flags with
//! the checkpointed agent info (docs/recovery-rules.md R9). Agent, master and simulator
//! all take these from here (docs/design.md D18).

use crate::proto::{AgentInfo, Resource};

/// The mark the master puts in `Resource.reservation` of a dynamic reservation, followed
/// by the framework's id (docs/design.md D14, D19).
pub const DYNAMIC_RESERVATION_PREFIX: &str = "dynamic:";

/// Whether `resource` is a dynamic reservation (made at run time through the master),
/// as opposed to an unreserved or statically reserved resource (docs/design.md D19).
pub fn is_dynamic_reservation(resource: &Resource) -> bool {
    resource.reservation.starts_with(DYNAMIC_RESERVATION_PREFIX)
}

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

/// `--reconfiguration_policy`: which changes of the agent's info (its flags) a restart
/// may make and still recover the old agent (docs/recovery-rules.md R9).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReconfigurationPolicy {
    /// The address and resources must be exactly as checkpointed (Mesos' default).
    Equal,
    /// The address must be the same; resources may only grow (every checkpointed
    /// resource, by name and role, at least as large).
    Additive,
}

impl ReconfigurationPolicy {
    /// The flag's spelling.
    pub fn name(self) -> &'static str {
        match self {
            ReconfigurationPolicy::Equal => "equal",
            ReconfigurationPolicy::Additive => "additive",
        }
    }
}

/// What makes the flags' agent info incompatible with the checkpointed one under
/// `policy`, if anything (docs/recovery-rules.md R9).
pub fn info_mismatch(
    old: &AgentInfo,
    new: &AgentInfo,
    policy: ReconfigurationPolicy,
) -> Option<String> {
    if old.hostname != new.hostname || old.port != new.port {
        return Some(format!(
            "address changed from {}:{} to {}:{}",
            old.hostname, old.port, new.hostname, new.port
        ));
    }
    // A fold from +0.0: an empty f64 sum is -0.0, which would print as "-0".
    let total = |list: &[Resource], name: &str, role: &str| -> f64 {
        list.iter()
            .filter(|r| r.name == name && r.role == role)
            .fold(0.0, |sum, r| sum + r.scalar)
    };
    // Every resource either side names, by (name, role), in a stable order.
    let mut keys: Vec<(&str, &str)> = old
        .resources
        .iter()
        .chain(&new.resources)
        .map(|r| (r.name.as_str(), r.role.as_str()))
        .collect();
    keys.sort();
    keys.dedup();
    let mismatch = keys.into_iter().find_map(|(name, role)| {
        let was = total(&old.resources, name, role);
        let now = total(&new.resources, name, role);
        let incompatible = match policy {
            ReconfigurationPolicy::Equal => was != now,
            ReconfigurationPolicy::Additive => now < was,
        };
        let role = if role.is_empty() { "*" } else { role };
        incompatible.then(|| format!("{name}({role}) changed from {was} to {now}"))
    });
    match (mismatch, policy) {
        (Some(mismatch), _) => Some(mismatch),
        // Same totals in another order or split: still not byte-equal.
        (None, ReconfigurationPolicy::Equal) if old.resources != new.resources => {
            Some("resources listed differently".to_owned())
        }
        (None, _) => None,
    }
}

/// Resources as `name(role):scalar;...` in a stable order, for logs and traces.
pub fn describe_resources(resources: &[Resource]) -> String {
    let mut parts: Vec<String> = resources
        .iter()
        .map(|r| {
            let role = if r.role.is_empty() {
                "*"
            } else {
                r.role.as_str()
            };
            format!("{}({role}):{}", r.name, r.scalar)
        })
        .collect();
    parts.sort();
    parts.join(";")
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

    fn info(resources: &[(&str, &str, f64)]) -> AgentInfo {
        AgentInfo {
            id: "agent-1".into(),
            hostname: "agent1".into(),
            port: 5051,
            resources: resources
                .iter()
                .map(|(name, role, scalar)| Resource {
                    name: (*name).into(),
                    role: (*role).into(),
                    scalar: *scalar,
                    ..Default::default()
                })
                .collect(),
            checkpoint: true,
        }
    }

    #[test]
    fn equal_policy_names_any_change() {
        let old = info(&[("cpus", "", 2.0), ("mem", "", 1024.0)]);
        assert_eq!(
            info_mismatch(&old, &old, ReconfigurationPolicy::Equal),
            None
        );
        let grown = info(&[("cpus", "", 4.0), ("mem", "", 1024.0)]);
        assert_eq!(
            info_mismatch(&old, &grown, ReconfigurationPolicy::Equal).as_deref(),
            Some("cpus(*) changed from 2 to 4")
        );
    }

    #[test]
    fn additive_policy_allows_growth_only() {
        let old = info(&[("cpus", "", 2.0), ("mem", "", 1024.0)]);
        let grown = info(&[("cpus", "", 4.0), ("mem", "", 1024.0), ("disk", "", 10.0)]);
        assert_eq!(
            info_mismatch(&old, &grown, ReconfigurationPolicy::Additive),
            None
        );
        let shrunk = info(&[("cpus", "", 4.0)]);
        assert_eq!(
            info_mismatch(&old, &shrunk, ReconfigurationPolicy::Additive).as_deref(),
            Some("mem(*) changed from 1024 to 0")
        );
        let mut moved = old.clone();
        moved.port = 5052;
        assert_eq!(
            info_mismatch(&old, &moved, ReconfigurationPolicy::Additive).as_deref(),
            Some("address changed from agent1:5051 to agent1:5052")
        );
    }
}

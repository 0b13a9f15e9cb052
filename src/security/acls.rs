//! Authorization: the master's `--acls` file, a subset of Mesos's ACL JSON
//! (docs/security.md SEC20-SEC23).
//!
//! ```json
//! {
//!   "permissive": false,
//!   "register_frameworks": [{"principals": {"values": ["web"]}, "roles": {"values": ["web"]}}],
//!   "run_tasks": [{"principals": {"type": "ANY"}, "users": {"values": ["nobody"]}}],
//!   "teardown_frameworks": [{"principals": {"values": ["ops"]}, "framework_principals": {"type": "ANY"}}],
//!   "reserve_resources": [{"principals": {"values": ["web"]}, "roles": {"values": ["web"]}}],
//!   "register_agents": [{"principals": {"values": ["agent"]}, "agents": {"type": "ANY"}}]
//! }
//! ```
//!
//! Plain library code, with no I/O but [`Acls::load`]'s one read through the filesystem
//! seam: the master runs it in the binary and in the simulator alike.

use std::fmt;
use std::path::Path;

use serde_json::Value;

use crate::os::FileSystem;

/// An ACL entity: who (the subject) or what (the object) an ACL entry is about
/// (SEC21).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entity {
    /// `{"type": "ANY"}`: everyone, also a request without a principal.
    Any,
    /// `{"type": "NONE"}`: no one; an entry with it refuses what it matches.
    None,
    /// `{"values": [...]}`: exactly these.
    Some(Vec<String>),
}

impl Entity {
    /// Whether the entry applies to a request naming `value` (`None`: no principal).
    /// ANY and NONE apply to every request; a list applies to the values it names.
    fn matches(&self, value: Option<&str>) -> bool {
        match (self, value) {
            (Entity::Any | Entity::None, _) => true,
            (Entity::Some(values), Some(value)) => values.iter().any(|v| v == value),
            (Entity::Some(_), None) => false,
        }
    }
    /// Whether the entry, once it applies, lets `value` through: ANY lets everything
    /// through, NONE nothing, a list what it names (never a request without a value).
    fn allows(&self, value: Option<&str>) -> bool {
        match (self, value) {
            (Entity::Any, _) => true,
            (Entity::None, _) => false,
            (Entity::Some(values), Some(value)) => values.iter().any(|v| v == value),
            (Entity::Some(_), None) => false,
        }
    }
}

/// One ACL entry: a subject and an object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// `principals`.
    pub principals: Entity,
    /// The object: `roles`, `users`, `framework_principals` or `agents`.
    pub object: Entity,
}

/// What a request asks to do (SEC22), with the object it is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action<'a> {
    /// A framework registers with this role (`*` when it names none).
    RegisterFramework {
        /// The framework's role.
        role: &'a str,
    },
    /// A task runs as this user (the framework's user).
    RunTask {
        /// The user.
        user: &'a str,
    },
    /// A framework registered by this principal (`None`: without one) is torn down.
    TeardownFramework {
        /// The principal that registered the framework.
        framework_principal: Option<&'a str>,
    },
    /// Resources are reserved for this role.
    ReserveResources {
        /// The role.
        role: &'a str,
    },
    /// An agent registers or re-registers.
    RegisterAgent,
}

impl Action<'_> {
    /// The ACL list that decides the action, by its name in the file.
    pub fn acl(&self) -> &'static str {
        match self {
            Action::RegisterFramework { .. } => "register_frameworks",
            Action::RunTask { .. } => "run_tasks",
            Action::TeardownFramework { .. } => "teardown_frameworks",
            Action::ReserveResources { .. } => "reserve_resources",
            Action::RegisterAgent => "register_agents",
        }
    }
    fn object(&self) -> Option<&str> {
        match self {
            Action::RegisterFramework { role } | Action::ReserveResources { role } => Some(role),
            Action::RunTask { user } => Some(user),
            Action::TeardownFramework {
                framework_principal,
            } => *framework_principal,
            Action::RegisterAgent => Some(""),
        }
    }
    fn describe(&self, principal: Option<&str>) -> String {
        let who = match principal {
            Some(principal) => format!("principal '{principal}'"),
            None => "a request without a principal".to_owned(),
        };
        match self {
            Action::RegisterFramework { role } => {
                format!("{who} may not register a framework with role '{role}'")
            }
            Action::RunTask { user } => format!("{who} may not run tasks as user '{user}'"),
            Action::TeardownFramework {
                framework_principal: Some(of),
            } => format!("{who} may not tear down frameworks of principal '{of}'"),
            Action::TeardownFramework {
                framework_principal: None,
            } => format!("{who} may not tear down frameworks registered without a principal"),
            Action::ReserveResources { role } => {
                format!("{who} may not reserve resources for role '{role}'")
            }
            Action::RegisterAgent => format!("{who} may not register an agent"),
        }
    }
}

/// A refused request: which ACL refused it and why, for the requester to read (SEC23).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// The deciding rule: `run_tasks[1]`, or `permissive` when no entry matched.
    pub rule: String,
    /// What was refused.
    pub what: String,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "not authorized by ACL {}: {}", self.rule, self.what)
    }
}

/// The master's ACLs (SEC20). The default lets everything through (no `--acls`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Acls {
    /// What happens to a request no entry applies to (default `true`: allowed).
    pub permissive: bool,
    /// `register_frameworks`: principals and `roles`.
    pub register_frameworks: Vec<Entry>,
    /// `run_tasks`: principals and `users`.
    pub run_tasks: Vec<Entry>,
    /// `teardown_frameworks`: principals and `framework_principals`.
    pub teardown_frameworks: Vec<Entry>,
    /// `reserve_resources`: principals and `roles`.
    pub reserve_resources: Vec<Entry>,
    /// `register_agents`: principals and `agents`.
    pub register_agents: Vec<Entry>,
}

/// The lists a file may hold, with the name of each one's object field.
const LISTS: [(&str, &str); 5] = [
    ("register_frameworks", "roles"),
    ("run_tasks", "users"),
    ("teardown_frameworks", "framework_principals"),
    ("reserve_resources", "roles"),
    ("register_agents", "agents"),
];

impl Default for Acls {
    fn default() -> Acls {
        Acls::permissive()
    }
}

impl Acls {
    /// Everything allowed: a master without `--acls`.
    pub fn permissive() -> Acls {
        Acls {
            permissive: true,
            register_frameworks: Vec::new(),
            run_tasks: Vec::new(),
            teardown_frameworks: Vec::new(),
            reserve_resources: Vec::new(),
            register_agents: Vec::new(),
        }
    }

    /// Reads and parses `path` (SEC20); the error names the file and the field.
    pub fn load(fs: &dyn FileSystem, path: &Path) -> Result<Acls, String> {
        let bytes = fs
            .read(path)
            .map_err(|error| format!("--acls '{}': {error}", path.display()))?;
        let text = String::from_utf8(bytes)
            .map_err(|_| format!("--acls '{}': not UTF-8 text", path.display()))?;
        Acls::parse(&text).map_err(|error| format!("--acls '{}': {error}", path.display()))
    }

    /// Parses the JSON text of an ACL file; the error names the field.
    pub fn parse(text: &str) -> Result<Acls, String> {
        let value: Value =
            serde_json::from_str(text).map_err(|error| format!("not JSON: {error}"))?;
        let Value::Object(object) = value else {
            return Err("the top level must be a JSON object".into());
        };
        let mut acls = Acls::permissive();
        for (key, value) in &object {
            if key == "permissive" {
                acls.permissive = value
                    .as_bool()
                    .ok_or("field 'permissive' must be true or false")?;
                continue;
            }
            let Some((list, object_field)) = LISTS.iter().find(|(name, _)| name == key) else {
                return Err(format!(
                    "unknown field '{key}' (known: permissive, {})",
                    LISTS.map(|(name, _)| name).join(", ")
                ));
            };
            let entries = parse_list(list, object_field, value)?;
            match *list {
                "register_frameworks" => acls.register_frameworks = entries,
                "run_tasks" => acls.run_tasks = entries,
                "teardown_frameworks" => acls.teardown_frameworks = entries,
                "reserve_resources" => acls.reserve_resources = entries,
                _ => acls.register_agents = entries,
            }
        }
        Ok(acls)
    }

    fn entries(&self, action: &Action) -> &[Entry] {
        match action {
            Action::RegisterFramework { .. } => &self.register_frameworks,
            Action::RunTask { .. } => &self.run_tasks,
            Action::TeardownFramework { .. } => &self.teardown_frameworks,
            Action::ReserveResources { .. } => &self.reserve_resources,
            Action::RegisterAgent => &self.register_agents,
        }
    }

    /// Decides a request (SEC22): the first entry of the action's list whose subject
    /// and object both apply decides, allowing only if both allow; when none applies,
    /// `permissive` decides.
    pub fn authorize(&self, principal: Option<&str>, action: Action) -> Result<(), Refusal> {
        let object = action.object();
        let decided =
            self.entries(&action).iter().enumerate().find(|(_, entry)| {
                entry.principals.matches(principal) && entry.object.matches(object)
            });
        let (allowed, rule) = match decided {
            Some((index, entry)) => (
                entry.principals.allows(principal) && entry.object.allows(object),
                format!("{}[{index}]", action.acl()),
            ),
            None => (
                self.permissive,
                format!("permissive (no entry of {} applies)", action.acl()),
            ),
        };
        if allowed {
            Ok(())
        } else {
            Err(Refusal {
                rule,
                what: action.describe(principal),
            })
        }
    }
}

fn parse_list(list: &str, object_field: &str, value: &Value) -> Result<Vec<Entry>, String> {
    let Value::Array(items) = value else {
        return Err(format!("field '{list}' must be a list of entries"));
    };
    items
        .iter()
        .enumerate()
        .map(|(index, item)| {
            let at = format!("{list}[{index}]");
            let Value::Object(fields) = item else {
                return Err(format!("{at} must be an object"));
            };
            for key in fields.keys() {
                if key != "principals" && key != object_field {
                    return Err(format!(
                        "{at}: unknown field '{key}' (expected 'principals' and '{object_field}')"
                    ));
                }
            }
            let entity = |field: &str| -> Result<Entity, String> {
                match fields.get(field) {
                    Some(value) => parse_entity(&format!("{at}.{field}"), value),
                    None => Err(format!("{at}: missing field '{field}'")),
                }
            };
            Ok(Entry {
                principals: entity("principals")?,
                object: entity(object_field)?,
            })
        })
        .collect()
}

fn parse_entity(at: &str, value: &Value) -> Result<Entity, String> {
    let Value::Object(fields) = value else {
        return Err(format!(
            "{at} must be an object: {{\"values\": [...]}} or {{\"type\": \"ANY\"|\"NONE\"}}"
        ));
    };
    match (fields.get("values"), fields.get("type")) {
        (Some(_), Some(_)) => Err(format!("{at}: give 'values' or 'type', not both")),
        (Some(Value::Array(values)), None) => values
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| format!("{at}.values must hold strings only"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Entity::Some),
        (Some(_), None) => Err(format!("{at}.values must be a list of strings")),
        (None, Some(kind)) => match kind.as_str() {
            Some("ANY") => Ok(Entity::Any),
            Some("NONE") => Ok(Entity::None),
            _ => Err(format!("{at}.type must be \"ANY\" or \"NONE\"")),
        },
        (None, None) => Err(format!("{at}: needs 'values' or 'type'")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"{
        "permissive": false,
        "register_frameworks": [
            {"principals": {"values": ["web"]}, "roles": {"values": ["web", "*"]}}
        ],
        "run_tasks": [
            {"principals": {"values": ["web"]}, "users": {"type": "NONE"}},
            {"principals": {"type": "ANY"}, "users": {"values": ["nobody"]}}
        ],
        "teardown_frameworks": [
            {"principals": {"values": ["ops"]}, "framework_principals": {"type": "ANY"}}
        ]
    }"#;

    #[test]
    fn the_first_applying_entry_decides() {
        let acls = Acls::parse(EXAMPLE).unwrap();
        // web may register as web; nobody else matches an entry: permissive false.
        assert!(acls
            .authorize(Some("web"), Action::RegisterFramework { role: "web" })
            .is_ok());
        let refusal = acls
            .authorize(Some("web"), Action::RegisterFramework { role: "db" })
            .unwrap_err();
        assert_eq!(
            refusal.rule,
            "permissive (no entry of register_frameworks applies)"
        );
        // The NONE entry applies to web first and refuses, even for 'nobody'.
        let refusal = acls
            .authorize(Some("web"), Action::RunTask { user: "nobody" })
            .unwrap_err();
        assert_eq!(refusal.rule, "run_tasks[0]");
        assert_eq!(
            refusal.to_string(),
            "not authorized by ACL run_tasks[0]: principal 'web' may not run tasks as user 'nobody'"
        );
        // ANY covers other principals and requests without one.
        assert!(acls
            .authorize(Some("batch"), Action::RunTask { user: "nobody" })
            .is_ok());
        assert!(acls
            .authorize(None, Action::RunTask { user: "nobody" })
            .is_ok());
        assert!(acls
            .authorize(None, Action::RunTask { user: "root" })
            .is_err());
    }

    #[test]
    fn a_list_never_allows_a_request_without_a_principal() {
        let acls = Acls::parse(EXAMPLE).unwrap();
        assert!(acls
            .authorize(
                Some("ops"),
                Action::TeardownFramework {
                    framework_principal: None
                }
            )
            .is_ok());
        let refusal = acls
            .authorize(
                None,
                Action::TeardownFramework {
                    framework_principal: Some("web"),
                },
            )
            .unwrap_err();
        assert!(
            refusal.what.contains("a request without a principal"),
            "{refusal}"
        );
    }

    #[test]
    fn permissive_by_default() {
        let acls = Acls::parse("{}").unwrap();
        assert!(acls.permissive);
        assert!(acls.authorize(None, Action::RegisterAgent).is_ok());
        assert_eq!(Acls::permissive(), acls);
    }

    #[test]
    fn bad_files_name_the_field() {
        let cases = [
            ("[]", "the top level must be a JSON object"),
            ("{\"permissive\": 1}", "field 'permissive' must be true or false"),
            ("{\"run_task\": []}", "unknown field 'run_task'"),
            ("{\"run_tasks\": {}}", "field 'run_tasks' must be a list"),
            ("{\"run_tasks\": [{\"principals\": {\"type\": \"ANY\"}}]}", "run_tasks[0]: missing field 'users'"),
            (
                "{\"run_tasks\": [{\"principals\": {\"type\": \"ANY\"}, \"roles\": {}}]}",
                "run_tasks[0]: unknown field 'roles'",
            ),
            (
                "{\"reserve_resources\": [{\"principals\": {\"type\": \"SOME\"}, \"roles\": {\"type\": \"ANY\"}}]}",
                "reserve_resources[0].principals.type must be",
            ),
            (
                "{\"register_frameworks\": [{\"principals\": {\"values\": [1]}, \"roles\": {\"type\": \"ANY\"}}]}",
                "register_frameworks[0].principals.values must hold strings only",
            ),
            ("{", "not JSON"),
        ];
        for (text, expected) in cases {
            let error = Acls::parse(text).unwrap_err();
            assert!(error.contains(expected), "{text}: {error}");
        }
    }
}

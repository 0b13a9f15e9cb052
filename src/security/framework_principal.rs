//! A framework's principal cannot change (docs/security.md SEC40): the master refuses a
//! registration with the id of a framework it knows when the connection proved another
//! principal than the one that registered the framework. The decision is a plain
//! function, so that it is tested without a master.

use std::fmt;

/// A refused change of principal: what the framework is told (`FrameworkError`) and the
/// master logs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrincipalChanged {
    /// The framework.
    pub framework: String,
    /// The principal that registered it (`None`: it registered without one).
    pub registered: Option<String>,
    /// The principal of the refused registration.
    pub presented: Option<String>,
}

fn describe(principal: Option<&str>) -> String {
    principal.map_or_else(|| "no principal".to_owned(), |p| format!("principal '{p}'"))
}

impl fmt::Display for PrincipalChanged {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "framework {} was registered with {}; it cannot re-register with {} (a framework's principal cannot change)",
            self.framework,
            describe(self.registered.as_deref()),
            describe(self.presented.as_deref()),
        )
    }
}

/// SEC40: whether a registration of `framework`, from a connection that proved
/// `presented`, may go on, given `registered`: `None` when the master does not know the
/// framework (a new one, or one no agent has reported to a newly elected master yet),
/// otherwise the principal it was registered with (`Some(None)`: none).
pub fn check(
    framework: &str,
    registered: Option<Option<&str>>,
    presented: Option<&str>,
) -> Result<(), PrincipalChanged> {
    match registered {
        Some(registered) if registered != presented => Err(PrincipalChanged {
            framework: framework.to_owned(),
            registered: registered.map(str::to_owned),
            presented: presented.map(str::to_owned),
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_framework_takes_the_connections_principal() {
        assert_eq!(check("f1", None, Some("web")), Ok(()));
        assert_eq!(check("f1", None, None), Ok(()));
    }

    #[test]
    fn the_same_principal_fails_over() {
        assert_eq!(check("f1", Some(Some("web")), Some("web")), Ok(()));
        assert_eq!(check("f1", Some(None), None), Ok(()));
    }

    #[test]
    fn another_principal_is_refused_with_a_clear_error() {
        let refused = check("f1", Some(Some("web")), Some("ops")).unwrap_err();
        assert_eq!(
            refused.to_string(),
            "framework f1 was registered with principal 'web'; it cannot re-register with principal 'ops' (a framework's principal cannot change)"
        );
    }

    #[test]
    fn gaining_or_losing_a_principal_is_a_change() {
        let gained = check("f1", Some(None), Some("rogue")).unwrap_err();
        assert_eq!(
            gained.to_string(),
            "framework f1 was registered with no principal; it cannot re-register with principal 'rogue' (a framework's principal cannot change)"
        );
        assert!(check("f1", Some(Some("web")), None).is_err());
    }
}

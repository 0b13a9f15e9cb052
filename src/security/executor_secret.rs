//! Executor secrets (docs/security.md SEC14-SEC19): the agent gives every executor it
//! launches a fresh random secret through its environment, keeps (and checkpoints) only
//! a SHA-256 verifier of it, and accepts a registration or re-registration only from a
//! connection that presents the secret; status updates are accepted only on a connection
//! so registered.

use std::fmt;

use crate::os::Random;

/// The environment variable that carries the secret to the executor (SEC14).
pub const ENV_SECRET: &str = "REVENANT_EXECUTOR_SECRET";

/// Random bytes in a secret.
pub const SECRET_BYTES: usize = 32;

/// Prefix of the hashed text, so that a verifier is never the plain hash of the secret
/// used for anything else.
const DOMAIN: &[u8] = b"revenant executor secret v1\n";

/// A secret, as hex. Its `Debug` and `Display` never show it (SEC15).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// A fresh secret from the random seam's secret stream (SEC14).
    pub fn generate(random: &dyn Random) -> Secret {
        let mut bytes = [0u8; SECRET_BYTES];
        random.fill_secret(&mut bytes);
        Secret(hex(&bytes))
    }
    /// The secret an executor was given (from its environment).
    pub fn given(text: String) -> Secret {
        Secret(text)
    }
    /// The text handed to the executor (only ever put in its environment).
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// What verifies it.
    pub fn verifier(&self) -> Verifier {
        Verifier::of(&self.0)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// The SHA-256 of a secret (hex, 64 characters): all the agent keeps and checkpoints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verifier(String);

impl Verifier {
    /// The verifier of the secret `presented`.
    pub fn of(presented: &str) -> Verifier {
        let mut context = ring::digest::Context::new(&ring::digest::SHA256);
        context.update(DOMAIN);
        context.update(presented.as_bytes());
        Verifier(hex(context.finish().as_ref()))
    }
    /// Parses a checkpointed verifier; `Err` names what is wrong.
    pub fn parse(text: &str) -> Result<Verifier, String> {
        if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(Verifier(text.to_ascii_lowercase()))
        } else {
            Err(format!(
                "bad secret verifier: expected 64 hex digits, got {} characters",
                text.len()
            ))
        }
    }
    /// The checkpointed text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// Whether `presented` is the secret (compared through its hash, in constant time
    /// over the hash).
    pub fn accepts(&self, presented: &str) -> bool {
        let other = Verifier::of(presented);
        self.0.len() == other.0.len()
            && self
                .0
                .bytes()
                .zip(other.0.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Why a registration is refused (SEC16), for the log line; never holds the secret.
pub fn check(verifier: Option<&Verifier>, presented: &str) -> Result<(), &'static str> {
    match verifier {
        None => Err("no secret verifier is known for this run"),
        Some(_) if presented.is_empty() => Err("no secret presented"),
        Some(verifier) if verifier.accepts(presented) => Ok(()),
        Some(_) => Err("wrong secret"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Counter(std::cell::Cell<u8>);
    impl Random for Counter {
        fn fill(&self, buffer: &mut [u8]) {
            for byte in buffer {
                self.0.set(self.0.get().wrapping_add(1));
                *byte = self.0.get();
            }
        }
    }

    #[test]
    fn a_secret_is_verified_only_by_itself() {
        let random = Counter(std::cell::Cell::new(0));
        let secret = Secret::generate(&random);
        let other = Secret::generate(&random);
        assert_eq!(secret.expose().len(), 2 * SECRET_BYTES);
        assert_ne!(secret, other);
        let verifier = secret.verifier();
        assert!(!verifier.as_str().contains(secret.expose()));
        assert_eq!(check(Some(&verifier), secret.expose()), Ok(()));
        assert_eq!(check(Some(&verifier), other.expose()), Err("wrong secret"));
        assert_eq!(check(Some(&verifier), ""), Err("no secret presented"));
        assert!(check(None, secret.expose()).is_err());
        assert_eq!(Verifier::parse(verifier.as_str()), Ok(verifier.clone()));
        assert!(Verifier::parse("xyz").is_err());
        assert_eq!(format!("{secret:?}"), "Secret(<redacted>)");
    }
}

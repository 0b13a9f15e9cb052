//! The executor's wake endpoint (docs/recovery-rules.md R31–R36): each executor listens
//! on a local address, which the agent checkpoints in the run's `pids/libprocess.pid`;
//! a restarted agent connects there as soon as recovery has read its checkpoints and
//! tells the executor to reconnect now, instead of waiting for the executor's back-off.
//!
//! Nothing on the endpoint is trusted: the executor opens every connection with a fresh
//! challenge, and acts only on a [`WakeExecutor`] that names its own run and whose proof
//! hashes the run's secret verifier with that challenge (R33). The only thing a wake can
//! make an executor do is connect to the agent address it was launched with, early.
//!
//! The decisions are plain functions (no runtime, no IO) so that they are unit-tested
//! here; `super::run` does the IO.

use crate::proto::WakeExecutor;
use crate::security::executor_secret::Verifier;

/// Prefix of the hashed text of a proof, so that a proof is never a hash made for
/// anything else (R33).
const PROOF_DOMAIN: &[u8] = b"revenant executor wake v1\n";

/// Bytes of a challenge's nonce.
pub const NONCE_BYTES: usize = 32;

/// At most this many wake connections wait for their answer at once; a new one closes
/// the oldest (R34), so a local process that opens many cannot grow the executor.
pub const WAKE_CONNECTIONS_MAX: usize = 4;

/// A wake connection that has not answered its challenge by then is closed (R34).
pub const WAKE_ANSWER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// How long the agent's wake of one executor may take, connection included; past it the
/// agent gives up on the wake and the executor's back-off remains (R35).
pub const WAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// The proof that answers `nonce` for the run (`framework`, `executor`, `container`)
/// whose secret `verifier` verifies (R33): SHA-256 over a domain prefix, the verifier,
/// the nonce and the three ids, each field ended by a NUL byte (ids never hold one).
pub fn proof(
    verifier: &Verifier,
    nonce: &[u8],
    framework: &str,
    executor: &str,
    container: &str,
) -> Vec<u8> {
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    context.update(PROOF_DOMAIN);
    for field in [
        verifier.as_str().as_bytes(),
        nonce,
        framework.as_bytes(),
        executor.as_bytes(),
        container.as_bytes(),
    ] {
        context.update(field);
        context.update(&[0]);
    }
    context.finish().as_ref().to_vec()
}

/// Equality in time that does not depend on where the first difference is.
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The executor's own run, as a wake must name it.
#[derive(Clone, Debug)]
pub struct OwnRun<'a> {
    /// The framework.
    pub framework: &'a str,
    /// The executor.
    pub executor: &'a str,
    /// The run (container).
    pub container: &'a str,
    /// The verifier of the secret this process was given; `None` when it was given
    /// none, and then no wake is ever accepted (fails closed, as registration does).
    pub verifier: Option<&'a Verifier>,
}

/// Where the executor stands with its agent when a wake arrives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AgentLink {
    /// Connected (registered or registering): the agent hears it already.
    Connected,
    /// A connection attempt is under way.
    Connecting,
    /// No connection: waiting for the back-off to try again.
    Away,
}

/// What to do with a message that arrived on a wake connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WakeDecision {
    /// A valid wake while away: connect to the agent now (R32).
    ConnectNow,
    /// A valid wake, nothing to do: the executor is connected or connecting already.
    Nothing(AgentLink),
    /// Not a valid wake: close the connection, do nothing else; the reason is for the
    /// log line (R33).
    Refused(&'static str),
}

/// Judges `wake`, which answered the challenge `nonce`, for the executor of `own` whose
/// link to the agent is `link` (R32, R33).
pub fn judge(own: &OwnRun<'_>, nonce: &[u8], wake: &WakeExecutor, link: AgentLink) -> WakeDecision {
    let Some(verifier) = own.verifier else {
        return WakeDecision::Refused("this executor was given no secret");
    };
    if wake.framework_id != own.framework
        || wake.executor_id != own.executor
        || wake.container_id != own.container
    {
        return WakeDecision::Refused("the wake names another run");
    }
    let expected = proof(verifier, nonce, own.framework, own.executor, own.container);
    if !same_bytes(&expected, &wake.proof) {
        return WakeDecision::Refused("the proof does not answer the challenge");
    }
    match link {
        AgentLink::Away => WakeDecision::ConnectNow,
        other => WakeDecision::Nothing(other),
    }
}

/// The address to listen on for wakes: the agent's host (the executor runs on the
/// agent's machine), any free port. `None` when the agent address has no port part.
pub fn listen_address(agent_address: &str) -> Option<String> {
    let (host, port) = agent_address.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    Some(format!("{host}:0"))
}

/// The text of `pids/libprocess.pid` for an executor that registered with wake endpoint
/// `endpoint` (docs/checkpoint-format.md): `executor(<id>)@<host:port>`, as Mesos writes
/// an executor's libprocess address.
pub fn libprocess_text(executor: &str, endpoint: &str) -> String {
    format!("executor({executor})@{endpoint}")
}

/// The wake endpoint in a checkpointed `pids/libprocess.pid` text (R31); `Err` says why
/// there is none (no `@`, no port, a connection id written by an earlier release, ...).
/// The caller wakes nothing then: the executor's back-off remains.
pub fn parse_libprocess(text: &str) -> Result<String, String> {
    let text = text.trim();
    let Some((_, address)) = text.rsplit_once('@') else {
        return Err("no '@' before the address".into());
    };
    let Some((host, port)) = address.rsplit_once(':') else {
        return Err(format!("'{address}' is not host:port"));
    };
    if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("'{address}' has no usable host"));
    }
    match port.parse::<u16>() {
        Ok(0) | Err(_) => Err(format!("'{address}' has no usable port")),
        Ok(_) => Ok(address.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verifier() -> Verifier {
        Verifier::of("the secret")
    }

    fn wake(nonce: &[u8], verifier: &Verifier) -> WakeExecutor {
        WakeExecutor {
            framework_id: "f".into(),
            executor_id: "e".into(),
            container_id: "c".into(),
            proof: proof(verifier, nonce, "f", "e", "c"),
        }
    }

    fn own(verifier: Option<&Verifier>) -> OwnRun<'_> {
        OwnRun {
            framework: "f",
            executor: "e",
            container: "c",
            verifier,
        }
    }

    #[test]
    fn a_valid_wake_while_away_connects_now() {
        let v = verifier();
        let decision = judge(&own(Some(&v)), b"n1", &wake(b"n1", &v), AgentLink::Away);
        assert_eq!(decision, WakeDecision::ConnectNow);
    }

    #[test]
    fn a_valid_wake_while_connected_or_connecting_does_nothing() {
        let v = verifier();
        for link in [AgentLink::Connected, AgentLink::Connecting] {
            let decision = judge(&own(Some(&v)), b"n1", &wake(b"n1", &v), link);
            assert_eq!(decision, WakeDecision::Nothing(link));
        }
    }

    #[test]
    fn a_replayed_proof_for_another_challenge_is_refused() {
        let v = verifier();
        let decision = judge(&own(Some(&v)), b"n2", &wake(b"n1", &v), AgentLink::Away);
        assert!(matches!(decision, WakeDecision::Refused(_)), "{decision:?}");
    }

    #[test]
    fn a_proof_from_another_verifier_is_refused() {
        let v = verifier();
        let other = Verifier::of("another secret");
        let decision = judge(&own(Some(&v)), b"n", &wake(b"n", &other), AgentLink::Away);
        assert_eq!(
            decision,
            WakeDecision::Refused("the proof does not answer the challenge")
        );
    }

    #[test]
    fn a_wake_naming_another_run_is_refused_even_with_a_good_proof() {
        let v = verifier();
        let mut message = wake(b"n", &v);
        message.container_id = "other".into();
        message.proof = proof(&v, b"n", "f", "e", "other");
        let decision = judge(&own(Some(&v)), b"n", &message, AgentLink::Away);
        assert_eq!(
            decision,
            WakeDecision::Refused("the wake names another run")
        );
    }

    #[test]
    fn an_executor_without_a_secret_refuses_every_wake() {
        let v = verifier();
        let decision = judge(&own(None), b"n", &wake(b"n", &v), AgentLink::Away);
        assert!(matches!(decision, WakeDecision::Refused(_)));
    }

    #[test]
    fn an_empty_or_truncated_proof_is_refused() {
        let v = verifier();
        let mut message = wake(b"n", &v);
        message.proof.truncate(31);
        assert!(matches!(
            judge(&own(Some(&v)), b"n", &message, AgentLink::Away),
            WakeDecision::Refused(_)
        ));
        message.proof.clear();
        assert!(matches!(
            judge(&own(Some(&v)), b"n", &message, AgentLink::Away),
            WakeDecision::Refused(_)
        ));
    }

    #[test]
    fn proofs_separate_their_fields() {
        let v = verifier();
        assert_ne!(
            proof(&v, b"n", "ab", "c", "d"),
            proof(&v, b"n", "a", "bc", "d")
        );
    }

    #[test]
    fn libprocess_text_round_trips_and_old_texts_give_no_endpoint() {
        let text = libprocess_text("e1", "127.0.0.1:40001");
        assert_eq!(text, "executor(e1)@127.0.0.1:40001");
        assert_eq!(
            parse_libprocess(&format!("{text}\n")).as_deref(),
            Ok("127.0.0.1:40001")
        );
        // What earlier releases wrote: a connection id, not an address.
        assert!(parse_libprocess("executor(e1)@conn-7").is_err());
        assert!(parse_libprocess("executor(e1)@127.0.0.1:0").is_err());
        assert!(parse_libprocess("executor(e1)@:80").is_err());
        assert!(parse_libprocess("").is_err());
        // Torn in the middle of the port.
        assert!(parse_libprocess("executor(e1)@127.0.0.1:").is_err());
    }

    #[test]
    fn the_listen_address_is_the_agents_host_on_any_port() {
        assert_eq!(
            listen_address("127.0.0.1:5051").as_deref(),
            Some("127.0.0.1:0")
        );
        assert_eq!(listen_address("agent:5051").as_deref(), Some("agent:0"));
        assert_eq!(listen_address("agent"), None);
    }
}

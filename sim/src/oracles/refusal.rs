//! Rules SEC45 and SEC47 of docs/security.md ("a refused registration is refused at once",
//! oracle `refusal`), judged at the agent's end of the connection
//! (`crate::registration_answers`), never from the agent's log nor from the rogue's side
//! (a `delay_message` can hold the registration itself in the network for longer than
//! the rogue listens).
//!
//! Judged: every executor registration, the first on its connection, that reached an
//! agent's end from a process of the machine that is no executor process (the rogue
//! party's, `crate::rogue`; a process without an executor's secret, which the agent
//! refuses whatever it names):
//! - (SEC45, SEC32) the agent's first act on that connection after the registration
//!   reached it is a `ShutdownExecutor` or a close (its side shut down, or its end let
//!   go of; the agent's death or exit counts as a close): no other frame first;
//! - (SEC47) at once: that act comes no later than [`ANSWER_SLACK`] plus twice the
//!   disk's group sync time after the registration reached the agent's end; a
//!   registration unanswered when the run ended is judged only if that much time had
//!   passed;
//! - (SEC47) which act: a `RegisterExecutor` naming a run that the same agent
//!   incarnation had admitted before it reached the agent (its end had written
//!   `ExecutorRegistered` as the first answer to a registration naming the same
//!   framework, executor and run, strictly earlier) names an executor the agent does not
//!   expect (docs/design.md D55: only a launched executor not yet registered, or one
//!   recovered alive, is not told to shut down when it registers, and an incarnation
//!   never sets a run it admitted back to either), so it is told `ShutdownExecutor`, not
//!   only closed, unless the agent died or the other end was gone first.
//!
//! Not judged: which of the two refusals the other registrations get (whether the agent
//! still awaits an executor, and so checks its secret, is not known outside it in
//! general), and the registrations of executor processes (a valid one may be left to the
//! re-registration timeout, D55).

use std::time::Duration;

use super::Violation;
use crate::observations::Observations;
use crate::registration_answers::{
    Answer, Record, Registration, EXECUTOR_REGISTERED, SHUTDOWN_EXECUTOR,
};
use crate::scenario::Scenario;

/// SEC47: how long the agent may take to answer a registration, beyond what its group
/// commit holds: its loop and its disk take no simulated time, so this is room for the
/// simulator's scheduling and for events queued ahead of the registration.
pub const ANSWER_SLACK: Duration = Duration::from_secs(1);

/// Checks the rule.
pub fn check(scenario: &Scenario, observations: &Observations) -> Vec<Violation> {
    let sync = Duration::from_secs_f64(scenario.agent.disk_group_sync_ms.max(0.0) / 1000.0);
    judge(&observations.registration_answers, sync)
}

/// SEC47's bound for a disk whose group syncs take `sync`: a new event waits while two
/// groups sync (docs/recovery-latency.md P15), and a refusal's `ShutdownExecutor` waits
/// for its batch's group and those before it (P12, P13).
pub fn answer_within(sync: Duration) -> Duration {
    ANSWER_SLACK + 2 * sync
}

/// Judges a recorded run whose disk's group syncs take `sync` (public for hand-made
/// records).
pub fn judge(record: &Record, sync: Duration) -> Vec<Violation> {
    judge_counting(record, sync).0
}

/// How many registrations a recorded run gave the rule to judge, and how many of them it
/// judged as naming an executor the agent does not expect (the rule's reach).
pub fn judged(record: &Record, sync: Duration) -> (usize, usize) {
    let (_, judged, unexpected) = judge_counting(record, sync);
    (judged, unexpected)
}

fn judge_counting(record: &Record, sync: Duration) -> (Vec<Violation>, usize, usize) {
    let within = answer_within(sync);
    let mut out = Vec::new();
    let (mut judged, mut unexpected_count) = (0, 0);
    for registration in record.registrations.iter().filter(|r| r.pid.is_none()) {
        let what = describe(registration);
        let (answered_at, answer) = match registration.answer {
            Some((time, answer)) => (time, Some(answer)),
            None => (record.end, None),
        };
        let waited = answered_at.saturating_sub(registration.reached);
        if answer.is_none() && waited <= within {
            // The run ended before the rule could be judged.
            continue;
        }
        judged += 1;
        if waited > within {
            out.push(Violation {
                time: registration.reached + within,
                oracle: "refusal",
                message: format!(
                    "agent {} (incarnation {}) left {what}, which reached it at {:.3}s, unanswered for {:.3}s{} (SEC45: refused at once, within {:.3}s, SEC47)",
                    registration.agent,
                    registration.incarnation,
                    registration.reached.as_secs_f64(),
                    waited.as_secs_f64(),
                    match answer {
                        Some(answer) => format!(" (then: {})", act(answer)),
                        None => " (until the run ended)".to_owned(),
                    },
                    within.as_secs_f64()
                ),
            });
            continue;
        }
        let Some(answer) = answer else {
            continue;
        };
        let admitted = admitted_before(record, registration);
        unexpected_count += usize::from(admitted.is_some());
        if let Answer::Wrote(field) = answer {
            if field != SHUTDOWN_EXECUTOR {
                out.push(Violation {
                    time: answered_at,
                    oracle: "refusal",
                    message: format!(
                        "agent {} (incarnation {}) answered {what} with {} (SEC32, SEC45: a refusal, ShutdownExecutor or a close, and nothing before it)",
                        registration.agent,
                        registration.incarnation,
                        act(answer)
                    ),
                });
            }
            continue;
        }
        let Some(admitted) = admitted else {
            continue;
        };
        let died = answer == Answer::LetGo
            && record
                .ended(registration.agent, registration.incarnation)
                .is_some_and(|end| end <= answered_at);
        let gone = registration
            .peer_gone
            .is_some_and(|gone| gone <= answered_at);
        if !died && !gone {
            out.push(Violation {
                time: answered_at,
                oracle: "refusal",
                message: format!(
                    "agent {} (incarnation {}) {} on {what} without telling it ShutdownExecutor, though it had admitted that run at {:.3}s (SEC45, SEC47: an executor the agent does not expect is told to shut down, docs/design.md D55)",
                    registration.agent,
                    registration.incarnation,
                    act(answer),
                    admitted.as_secs_f64()
                ),
            });
        }
    }
    (out, judged, unexpected_count)
}

/// When the same agent incarnation admitted the run `registration` names, if it did
/// strictly before `registration` reached it and `registration` is a `RegisterExecutor`:
/// the time its end wrote `ExecutorRegistered` as the first answer to a registration
/// naming that framework, executor and run.
fn admitted_before(record: &Record, registration: &Registration) -> Option<Duration> {
    if registration.reregistration || registration.run.is_empty() {
        return None;
    }
    record
        .registrations
        .iter()
        .filter(|r| {
            (r.agent, r.incarnation) == (registration.agent, registration.incarnation)
                && (&r.framework, &r.executor, &r.run)
                    == (
                        &registration.framework,
                        &registration.executor,
                        &registration.run,
                    )
        })
        .filter_map(|r| match r.answer {
            Some((time, Answer::Wrote(EXECUTOR_REGISTERED))) if time < registration.reached => {
                Some(time)
            }
            _ => None,
        })
        .min()
}

fn describe(registration: &Registration) -> String {
    format!(
        "a {} of executor {} of framework {} (run {}) on connection {} from a process that is no executor",
        if registration.reregistration {
            "ReregisterExecutor"
        } else {
            "RegisterExecutor"
        },
        registration.executor,
        registration.framework,
        registration.run,
        registration.connection
    )
}

fn act(answer: Answer) -> String {
    match answer {
        Answer::Wrote(SHUTDOWN_EXECUTOR) => "ShutdownExecutor".to_owned(),
        Answer::Wrote(EXECUTOR_REGISTERED) => "ExecutorRegistered".to_owned(),
        Answer::Wrote(field) => format!("a frame of Envelope field {field}"),
        Answer::ShutDown => "shut its side of the connection down".to_owned(),
        Answer::LetGo => "closed the connection".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registration(
        reached_ms: u64,
        pid: Option<u32>,
        answer: Option<(u64, Answer)>,
    ) -> Registration {
        Registration {
            reached: Duration::from_millis(reached_ms),
            agent: 1,
            incarnation: 1,
            connection: 1,
            pid,
            reregistration: false,
            framework: "f".into(),
            executor: "e".into(),
            run: "r".into(),
            answer: answer.map(|(ms, a)| (Duration::from_millis(ms), a)),
            peer_gone: None,
        }
    }

    fn record(registrations: Vec<Registration>) -> Record {
        Record {
            registrations,
            incarnation_ends: Vec::new(),
            end: Duration::from_secs(100),
        }
    }

    const SYNC: Duration = Duration::from_millis(200);

    #[test]
    fn a_refusal_either_way_at_once_holds() {
        for answer in [
            Answer::Wrote(SHUTDOWN_EXECUTOR),
            Answer::ShutDown,
            Answer::LetGo,
        ] {
            let r = record(vec![registration(5_000, None, Some((5_400, answer)))]);
            assert!(judge(&r, SYNC).is_empty(), "{answer:?}");
        }
    }

    #[test]
    fn late_or_other_answers_fail() {
        let late = record(vec![registration(
            5_000,
            None,
            Some((6_500, Answer::Wrote(SHUTDOWN_EXECUTOR))),
        )]);
        assert!(judge(&late, SYNC)[0].message.contains("unanswered"));
        let hanging = record(vec![registration(5_000, None, None)]);
        assert!(judge(&hanging, SYNC)[0]
            .message
            .contains("until the run ended"));
        let welcomed = record(vec![registration(
            5_000,
            None,
            Some((5_000, Answer::Wrote(EXECUTOR_REGISTERED))),
        )]);
        assert!(judge(&welcomed, SYNC)[0].message.contains("SEC32"));
        // An executor process's registration is not judged.
        let executor = record(vec![registration(5_000, Some(7), None)]);
        assert!(judge(&executor, SYNC).is_empty());
        // Nor one the run's end cut short.
        let cut = Record {
            end: Duration::from_millis(5_500),
            ..record(vec![registration(5_000, None, None)])
        };
        assert!(judge(&cut, SYNC).is_empty());
    }

    #[test]
    fn an_admitted_run_is_told_to_shut_down() {
        let admitted = registration(
            1_000,
            Some(7),
            Some((1_000, Answer::Wrote(EXECUTOR_REGISTERED))),
        );
        let closed = registration(5_000, None, Some((5_000, Answer::ShutDown)));
        let r = record(vec![admitted.clone(), closed.clone()]);
        let violations = judge(&r, SYNC);
        assert_eq!(violations.len(), 1, "{violations:?}");
        assert!(violations[0]
            .message
            .contains("without telling it ShutdownExecutor"));
        assert_eq!(judged(&r, SYNC), (1, 1));
        // Told: holds.
        let told = registration(5_000, None, Some((5_200, Answer::Wrote(SHUTDOWN_EXECUTOR))));
        assert!(judge(&record(vec![admitted.clone(), told]), SYNC).is_empty());
        // Closed by the agent's death: holds; closed while the agent lived on: fails.
        let let_go = registration(5_000, None, Some((5_000, Answer::LetGo)));
        let mut died = record(vec![admitted.clone(), let_go.clone()]);
        died.incarnation_ends
            .push((Duration::from_millis(5_000), 1, 1));
        assert!(judge(&died, SYNC).is_empty());
        died.incarnation_ends[0].0 = Duration::from_millis(5_001);
        assert_eq!(judge(&died, SYNC).len(), 1);
        // The other end gone first: holds.
        let mut gone = closed.clone();
        gone.peer_gone = Some(Duration::from_millis(5_000));
        assert!(judge(&record(vec![admitted.clone(), gone]), SYNC).is_empty());
        // Another incarnation's admission, a re-registration, or an admission at the
        // same instant: not known to be unexpected.
        let mut other = admitted.clone();
        other.incarnation = 2;
        assert!(judge(&record(vec![other, closed.clone()]), SYNC).is_empty());
        let mut again = closed.clone();
        again.reregistration = true;
        assert!(judge(&record(vec![admitted.clone(), again]), SYNC).is_empty());
        let mut same_time = admitted;
        same_time.answer = Some((closed.reached, Answer::Wrote(EXECUTOR_REGISTERED)));
        assert!(judge(&record(vec![same_time, closed]), SYNC).is_empty());
    }
}

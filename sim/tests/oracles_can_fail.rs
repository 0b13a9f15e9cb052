//! Each oracle can fail: a deliberately broken variant of the behaviour it guards
//! (a test-only switch in `revenant::breakage`) makes a sweep of the swarm scenario fail
//! that oracle within a bounded number of seeds, while the unbroken code passes the same
//! seeds (checked by the sweep tests).

use std::path::Path;

use revenant::breakage::Breakage;
use revenant_sim::cluster::{self, RunOptions};
use revenant_sim::scenario::Scenario;

fn first_failing_seed(scenario: &str, breakage: Breakage, oracle: &str, seeds: u64) -> Option<u64> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("scenarios")
        .join(scenario);
    let scenario = Scenario::load(&path).expect("scenario parses");
    let options = RunOptions {
        breakage,
        ..RunOptions::default()
    };
    (0..seeds).find(|seed| {
        cluster::run(&scenario, *seed, &options)
            .violations
            .iter()
            .any(|v| v.oracle == oracle)
    })
}

/// A fresh simulated disk holding `/meta`, with the disk-work record begun anew (the
/// tests below drive it by hand, as an agent process would).
fn disk_with_meta() -> revenant_sim::fs::SimFs {
    use revenant::os::FileSystem;
    revenant_sim::disk_work::begin();
    let disk = revenant_sim::fs::SimFs::new();
    disk.create_dir(Path::new("/meta")).unwrap();
    disk
}

/// The oracle names of `violations`, in order.
fn oracle_names(violations: Vec<revenant_sim::oracles::Violation>) -> Vec<&'static str> {
    violations.into_iter().map(|v| v.oracle).collect()
}

fn assert_caught(scenario: &str, breakage: Breakage, oracle: &str, seeds: u64) {
    let seed = first_failing_seed(scenario, breakage, oracle, seeds);
    assert!(
        seed.is_some(),
        "oracle {oracle} did not catch {breakage:?} within {seeds} seeds of {scenario}"
    );
    eprintln!("{oracle}: caught at seed {}", seed.unwrap());
}

#[test]
fn delivery_catches_updates_acknowledged_without_a_checkpoint() {
    let breakage = Breakage {
        skip_update_checkpoint: true,
        ..Breakage::default()
    };
    assert_caught("swarm_agent_machine.toml", breakage, "delivery", 300);
}

/// L22: with the directory sync after a rename skipped (a new `task.updates`, a new
/// `resources.info` never made durable by name), a swarm's power losses take away
/// checkpoints the agent had acted on.
#[test]
fn durability_catches_a_skipped_directory_sync() {
    let breakage = Breakage {
        skip_dir_sync: true,
        ..Breakage::default()
    };
    assert_caught("swarm_agent_machine.toml", breakage, "durability", 100);
}

#[test]
fn terminal_catches_a_task_reported_running_after_it_finished() {
    let breakage = Breakage {
        resurrect_after_terminal: true,
        ..Breakage::default()
    };
    assert_caught(
        "agent_restart_reconnects_executor.toml",
        breakage,
        "terminal",
        5,
    );
}

#[test]
fn reboot_catches_an_agent_that_recovers_across_a_reboot() {
    let breakage = Breakage {
        ignore_boot_id: true,
        ..Breakage::default()
    };
    assert_caught("swarm_agent_machine.toml", breakage, "reboot", 300);
}

#[test]
fn recovery_timeout_catches_executors_that_wait_forever() {
    let breakage = Breakage {
        executor_ignores_recovery_timeout: true,
        ..Breakage::default()
    };
    assert_caught(
        "swarm_agent_machine.toml",
        breakage,
        "recovery_timeout",
        300,
    );
}

#[test]
fn not_early_catches_executors_that_give_up_before_recovery_timeout() {
    // docs/lifecycle-rules.md rule 16.
    let breakage = Breakage {
        executor_gives_up_early: true,
        ..Breakage::default()
    };
    assert_caught(
        "executor_gives_up_after_recovery_timeout.toml",
        breakage,
        "not_early",
        3,
    );
    assert_caught("swarm_agent_machine.toml", breakage, "not_early", 100);
}

#[test]
fn registration_timeout_catches_an_executor_left_unregistered_while_the_agent_runs() {
    // docs/lifecycle-rules.md rule 17.
    let breakage = Breakage {
        keep_idle_unregistered_executors: true,
        ..Breakage::default()
    };
    assert_caught(
        "regression_executor_registration_timeout.toml",
        breakage,
        "registration_timeout",
        3,
    );
}

#[test]
fn strict_recovery_catches_non_atomic_checkpoints() {
    let breakage = Breakage {
        non_atomic_checkpoints: true,
        ..Breakage::default()
    };
    assert_caught("swarm_agent_machine.toml", breakage, "strict_recovery", 400);
}

/// docs/recovery-rules.md R59: an agent that writes its checkpoints in place (open with
/// truncation, write) instead of by a temporary renamed over them overwrites synced
/// headers at its first rewrite of an info file.
#[test]
fn header_overwritten_catches_non_atomic_checkpoints() {
    let breakage = Breakage {
        non_atomic_checkpoints: true,
        ..Breakage::default()
    };
    assert_caught(
        "swarm_agent_machine.toml",
        breakage,
        "header_overwritten",
        20,
    );
}

/// R59 on the simulated disk: an agent's write in place over a file whose synced bytes
/// begin with a whole header (as `truncate_log`'s `<` made `<=` does to a log cut to
/// its header) is caught; the same write over a temporary, over a file whose header is
/// not synced yet, over a torn header shorter than a header (R51 writes those afresh),
/// and the simulator's own write are not.
#[test]
fn header_overwritten_catches_a_synced_header_written_over_in_place() {
    use revenant::checkpoint::record::{file_header, FileKind};
    use revenant::os::FileSystem;
    use revenant_sim::disk_work;
    use revenant_sim::oracles::header_overwritten;
    let found = || oracle_names(header_overwritten::check(&disk_work::so_far()));
    let disk = disk_with_meta();
    let header = file_header(FileKind::TaskUpdates);
    let log = Path::new("/meta/task.updates");
    let temp = Path::new("/meta/.slave.info.tmp");
    let unsynced = Path::new("/meta/resources.info");
    let torn = Path::new("/meta/other.updates");
    let agent = disk.for_agent(1, 2);
    for path in [log, temp] {
        disk.write(path, &[&header[..], b"torn record"].concat())
            .unwrap();
        disk.sync_file(path).unwrap();
    }
    disk.write(unsynced, &header).unwrap();
    disk.write(torn, &header[..3]).unwrap();
    disk.sync_file(torn).unwrap();
    agent.write(temp, &header).unwrap();
    agent.write(unsynced, &header).unwrap();
    agent.write(torn, &header).unwrap();
    disk.write(log, &header).unwrap();
    disk.write(log, &[&header[..], b"torn record"].concat())
        .unwrap();
    assert_eq!(found(), Vec::<&str>::new());

    agent.write(log, &header).unwrap();
    assert_eq!(found(), ["header_overwritten"]);
}

/// docs/task-lifecycle.md L39 on the simulated disk: an agent process that makes a
/// directory under `meta/slaves/<agent>/frameworks/` in a run whose frameworks do not
/// checkpoint (as `maybe_complete_executor`'s checkpoint flag made `||` does when it
/// writes a completed run's sentinel, which garbage collection removes later) is caught;
/// its sandbox directories, its own `meta/slaves/<agent>`, the simulator's own directories
/// and a run whose frameworks checkpoint are not.
#[test]
fn non_checkpointing_meta_catches_a_framework_directory_under_meta() {
    use revenant::os::FileSystem;
    use revenant_sim::disk_work;
    use revenant_sim::oracles::non_checkpointing_meta;
    let found = |checkpoint: bool| {
        oracle_names(non_checkpointing_meta::check(
            checkpoint,
            &disk_work::so_far(),
        ))
    };
    let disk = disk_with_meta();
    let agent = disk.for_agent(1, 1);
    agent
        .create_dir_all_durably(Path::new("/w/slaves/a1/frameworks/f1/executors/e1/runs/r1"))
        .unwrap();
    agent
        .create_dir_all_durably(Path::new("/w/meta/slaves/a1"))
        .unwrap();
    disk.create_dir_all_durably(Path::new("/w/meta/slaves/a1/frameworks/f0"))
        .unwrap();
    assert_eq!(found(false), Vec::<&str>::new());

    agent
        .create_dir_all_durably(Path::new(
            "/w/meta/slaves/a1/frameworks/f1/executors/e1/runs/r1",
        ))
        .unwrap();
    assert_eq!(found(true), Vec::<&str>::new());
    assert_eq!(found(false), ["non_checkpointing_meta"]);
}

/// docs/recovery-latency.md P14 on the simulated disk: an agent process that puts a file
/// in place while a log it appended to holds bytes no sync covered (as
/// `start_commit`'s group number `+ 1` made `* 1` does: groups in flight share a number,
/// so the barrier forgets all but the last) is caught; a rename after the log was
/// synced, one after another incarnation's or the simulator's own appends, and the next
/// rename once the log is synced, are not.
#[test]
fn write_order_catches_a_file_placed_before_a_log_was_synced() {
    use revenant::os::FileSystem;
    use revenant_sim::disk_work;
    use revenant_sim::fs::SimFs;
    use revenant_sim::oracles::write_order;
    let found = || oracle_names(write_order::check(&disk_work::so_far()));
    let disk = disk_with_meta();
    let log = Path::new("/meta/task.updates");
    let info = Path::new("/meta/executor.info");
    let temp = Path::new("/meta/.executor.info.tmp");
    let place = |fs: &SimFs| {
        fs.write(temp, b"info").unwrap();
        fs.sync_file(temp).unwrap();
        fs.rename(temp, info).unwrap();
    };
    let first = disk.for_agent(1, 1);
    first.append(log, b"record 1").unwrap();
    first.sync_file(log).unwrap();
    place(&first);
    disk.append(log, b"simulator's").unwrap();
    disk.for_agent(1, 0)
        .append(log, b"earlier incarnation's")
        .unwrap();
    place(&first);
    assert_eq!(found(), Vec::<&str>::new());

    first.append(log, b"record 2").unwrap();
    place(&first);
    assert_eq!(found(), ["write_order"]);
    first.sync_file(log).unwrap();
    place(&first);
    assert_eq!(found(), ["write_order"]);
}

#[test]
fn liveness_catches_an_agent_that_never_resumes_forwarding() {
    let breakage = Breakage {
        no_resume_after_registration: true,
        ..Breakage::default()
    };
    assert_caught(
        "agent_restart_reconnects_executor.toml",
        breakage,
        "liveness",
        5,
    );
}

#[test]
fn no_panic_catches_a_panic_in_recovery() {
    let breakage = Breakage {
        panic_on_recovery_warning: true,
        ..Breakage::default()
    };
    assert_caught("swarm_agent_machine.toml", breakage, "no_panic", 400);
}

#[test]
fn resources_catches_an_agent_that_forgets_its_checkpointed_resources() {
    let breakage = Breakage {
        forget_checkpointed_resources: true,
        ..Breakage::default()
    };
    assert_caught(
        "agent_restart_reconnects_executor.toml",
        breakage,
        "resources",
        5,
    );
}

#[test]
fn teardown_catches_an_agent_that_ignores_shutdown_framework() {
    let breakage = Breakage {
        ignore_shutdown_framework: true,
        ..Breakage::default()
    };
    assert_caught(
        "torn_down_framework_shut_down_on_reregistration.toml",
        breakage,
        "teardown",
        1,
    );
}

#[test]
fn resources_catches_an_agent_that_ignores_the_masters_view() {
    let breakage = Breakage {
        ignore_checkpoint_resources: true,
        ..Breakage::default()
    };
    assert_caught(
        "checkpointed_resources_resent_on_reregistration.toml",
        breakage,
        "resources",
        1,
    );
    // The scenario's own expectation fails too.
    assert_caught(
        "checkpointed_resources_resent_on_reregistration.toml",
        breakage,
        "expectations",
        1,
    );
}

#[test]
fn terminal_catches_a_second_terminal_update() {
    let breakage = Breakage {
        second_terminal_update: true,
        ..Breakage::default()
    };
    assert_caught(
        "agent_restart_reconnects_executor.toml",
        breakage,
        "terminal",
        5,
    );
}

#[test]
fn history_catches_an_acknowledged_update_resent_after_a_later_one() {
    let breakage = Breakage {
        resend_acknowledged_update: true,
        ..Breakage::default()
    };
    assert_caught(
        "agent_restart_reconnects_executor.toml",
        breakage,
        "history",
        5,
    );
}

#[test]
fn history_catches_an_executor_launched_twice() {
    let breakage = Breakage {
        launch_executor_twice: true,
        ..Breakage::default()
    };
    assert_caught(
        "agent_restart_reconnects_executor.toml",
        breakage,
        "history",
        5,
    );
}

#[test]
fn history_catches_an_executor_left_running_after_its_task_was_killed() {
    let breakage = Breakage {
        kill_leaves_executor_running: true,
        ..Breakage::default()
    };
    assert_caught("kill_task_after_restart.toml", breakage, "history", 5);
}

#[test]
fn history_catches_an_executor_adopted_across_a_boot() {
    let breakage = Breakage {
        ignore_boot_id: true,
        ..Breakage::default()
    };
    assert_caught("swarm_agent_machine.toml", breakage, "history", 300);
}

#[test]
fn no_panic_catches_a_panic_in_an_executor() {
    let breakage = Breakage {
        executor_panics: true,
        ..Breakage::default()
    };
    assert_caught(
        "agent_restart_reconnects_executor.toml",
        breakage,
        "no_panic",
        5,
    );
}

// The rules below are broken by bugs of the agent and master being fixed elsewhere
// (issue 9, bugs 1 and 2), so no switch can break them on purpose once fixed: the
// oracles are shown failing on hand-made histories instead.

mod synthetic {
    use std::time::Duration;

    use revenant::ids::Uuid;
    use revenant::proto::TaskState;
    use revenant_sim::cluster::Observations;
    use revenant_sim::decision::Decision;
    use revenant_sim::history::{Delivery, Source};
    use revenant_sim::oracles;
    use revenant_sim::trace::TraceEvent;

    fn event(
        time_ms: u64,
        host: &str,
        role: &str,
        message: &str,
        fields: &[(&str, &str)],
    ) -> TraceEvent {
        TraceEvent {
            time: Duration::from_millis(time_ms),
            host: host.to_owned(),
            role: role.to_owned(),
            message: message.to_owned(),
            fields: fields
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            decision: Decision::parse(role, message),
        }
    }

    fn delivery(time_ms: u64, state: TaskState, reason: &str, uuid: Option<u8>) -> Delivery {
        Delivery {
            time: Duration::from_millis(time_ms),
            framework: 1,
            task: "t1".into(),
            state,
            reason: reason.into(),
            uuid: uuid.map(|b| Uuid([b; 16])),
            source: if uuid.is_some() {
                Source::Agent
            } else {
                Source::Master
            },
            agent_id: if uuid.is_some() {
                "agent-1".into()
            } else {
                String::new()
            },
            executor_id: "t1".into(),
            made_by: if uuid.is_some() {
                "SOURCE_EXECUTOR".into()
            } else {
                "SOURCE_MASTER".into()
            },
        }
    }

    /// Bug 1 of issue 9: a reboot, a stop before the first registration, and the next
    /// incarnation (same boot) recovers and re-registers the pre-reboot agent. The
    /// first incarnation after the reboot did nothing wrong; the second did (L18).
    #[test]
    fn reboot_catches_the_old_agent_back_in_a_later_incarnation() {
        let trace = vec![
            event(
                0,
                "agent1",
                "agent",
                "registered with master",
                &[("agent", "agent-old")],
            ),
            event(
                10,
                "master1",
                "master",
                "agent registered",
                &[("agent", "agent-old")],
            ),
            event(
                20_100,
                "agent1",
                "agent",
                "machine rebooted: agent state not recovered, registering as a new agent",
                &[],
            ),
            event(
                40_000,
                "agent1",
                "agent",
                "recovered agent",
                &[("agent", "agent-old")],
            ),
            event(
                40_100,
                "master1",
                "master",
                "agent re-registered",
                &[("agent", "agent-old")],
            ),
        ];
        let observations = Observations {
            reboots: vec![Duration::from_secs(10)],
            agent_starts: vec![
                (Duration::ZERO, 1, 1),
                (Duration::from_secs(20), 1, 2),
                (Duration::from_secs(40), 1, 2),
            ],
            ..Observations::default()
        };
        let violations = oracles::reboot::check(&trace, &observations);
        assert_eq!(violations.len(), 2, "{violations:?}");
        // A crash after the new boot's own registration recovers the new agent: fine.
        let fine = vec![
            event(
                0,
                "master1",
                "master",
                "agent registered",
                &[("agent", "agent-old")],
            ),
            event(
                20_100,
                "master1",
                "master",
                "agent registered",
                &[("agent", "agent-new")],
            ),
            event(
                40_000,
                "agent1",
                "agent",
                "recovered agent",
                &[("agent", "agent-new")],
            ),
            event(
                40_100,
                "master1",
                "master",
                "agent re-registered",
                &[("agent", "agent-new")],
            ),
        ];
        assert!(oracles::reboot::check(&fine, &observations).is_empty());
    }

    /// Bug 2 of issue 9: the master reports the task lost with its removed agent, then
    /// forwards the removed agent's TASK_FINISHED, twice (L5).
    #[test]
    fn terminal_catches_an_update_of_a_removed_agent_after_the_masters_lost() {
        let mut observations = Observations::default();
        observations.history.deliveries = vec![
            delivery(100, TaskState::TaskRunning, "REASON_NONE", Some(1)),
            delivery(30_000, TaskState::TaskLost, "REASON_AGENT_REMOVED", None),
            delivery(45_000, TaskState::TaskFinished, "REASON_NONE", Some(2)),
            delivery(55_000, TaskState::TaskFinished, "REASON_NONE", Some(2)),
        ];
        let violations = oracles::terminal::check(&observations);
        assert_eq!(violations.len(), 2, "{violations:?}");
        assert!(violations.iter().all(|v| v.message.contains("L5")));
        // A reconciliation answer running ahead of the stream is allowed (L4).
        observations.history.deliveries = vec![
            delivery(100, TaskState::TaskRunning, "REASON_NONE", Some(1)),
            delivery(
                30_000,
                TaskState::TaskFinished,
                "REASON_RECONCILIATION",
                None,
            ),
            delivery(45_000, TaskState::TaskFinished, "REASON_NONE", Some(2)),
        ];
        assert!(oracles::terminal::check(&observations).is_empty());
    }

    /// An update the executor sent after its terminal one is dropped when the terminal
    /// update is acknowledged (L9): not a delivery violation. Without the terminal
    /// update having reached the framework, it is one (L6).
    #[test]
    fn delivery_accepts_an_update_dropped_behind_a_delivered_terminal_update() {
        let finished = Uuid([2; 16]).to_string();
        let late = Uuid([3; 16]).to_string();
        let trace = vec![
            event(
                100,
                "agent1",
                "agent",
                "status update accepted",
                &[
                    ("task", "t1"),
                    ("state", "TASK_FINISHED"),
                    ("uuid", &finished),
                ],
            ),
            event(
                100,
                "agent1",
                "agent",
                "acknowledged status update to executor",
                &[("task", "t1"), ("uuid", &finished)],
            ),
            event(
                110,
                "agent1",
                "agent",
                "status update accepted",
                &[("task", "t1"), ("state", "TASK_RUNNING"), ("uuid", &late)],
            ),
            event(
                110,
                "agent1",
                "agent",
                "acknowledged status update to executor",
                &[("task", "t1"), ("uuid", &late)],
            ),
        ];
        let mut observations = Observations {
            seen: vec![revenant_sim::cluster::Seen {
                time: Duration::from_millis(200),
                task: "t1".into(),
                state: TaskState::TaskFinished,
                reason: "REASON_NONE".into(),
                message: String::new(),
                uuid: Some(Uuid([2; 16])),
            }],
            ..Observations::default()
        };
        assert!(oracles::delivery::check(&trace, &observations).is_empty());
        observations.seen.clear();
        assert_eq!(oracles::delivery::check(&trace, &observations).len(), 2);
    }

    fn two_frameworks() -> revenant_sim::scenario::Scenario {
        toml::from_str(
            "duration_s = 120\nframeworks = 2\nframework_failover_timeout_s = 20\n\
             [[tasks]]\nid = \"t1\"\ncommand = \"sleep 300\"\nframework = 1\n\
             [[tasks]]\nid = \"t2\"\ncommand = \"sleep 300\"\nframework = 2\n",
        )
        .expect("scenario parses")
    }

    fn running(task: &str) -> revenant_sim::cluster::Seen {
        revenant_sim::cluster::Seen {
            time: Duration::from_secs(1),
            task: task.into(),
            state: TaskState::TaskRunning,
            reason: "REASON_NONE".into(),
            message: String::new(),
            uuid: Some(Uuid([1; 16])),
        }
    }

    /// docs/recovery-rules.md R17: a task of an executor found gone at recovery ends with a
    /// message saying which ("never started" or "terminated while the agent was down").
    /// The `messages` expectation catches a message that does not say it (round 9 of
    /// docs/mutation-report.md: `gone_executor_message` made `"xyzzy"`), and holds for
    /// the agent's own message.
    #[test]
    fn expectations_catch_a_failed_task_whose_message_does_not_say_why() {
        let scenario: revenant_sim::scenario::Scenario = toml::from_str(
            "duration_s = 60\n\
             [[tasks]]\nid = \"t1\"\ncommand = \"sleep 10\"\n\
             [expect]\nstates = { t1 = \"TASK_FAILED\" }\n\
             messages = { t1 = \"never started\" }\n",
        )
        .expect("scenario parses");
        let failed = |message: &str| revenant_sim::cluster::Seen {
            time: Duration::from_secs(10),
            task: "t1".into(),
            state: TaskState::TaskFailed,
            reason: "REASON_EXECUTOR_TERMINATED".into(),
            message: message.into(),
            uuid: Some(Uuid([3; 16])),
        };
        let mut observations = Observations {
            seen: vec![failed(
                "Executor never started: the agent died before launching it",
            )],
            ..Observations::default()
        };
        let held = oracles::expectations::check(&scenario, &[], &observations);
        assert!(held.is_empty(), "{held:?}");
        for wrong in ["xyzzy", "Executor terminated while the agent was down"] {
            observations.seen = vec![failed(wrong)];
            let violations = oracles::expectations::check(&scenario, &[], &observations);
            assert_eq!(violations.len(), 1, "{violations:?}");
            assert!(
                violations[0]
                    .message
                    .contains("expected one containing \"never started\""),
                "{violations:?}"
            );
        }
        observations.seen.clear();
        assert_eq!(
            oracles::expectations::check(&scenario, &[], &observations).len(),
            2,
            "a task never heard of fails its state and its message"
        );
    }

    /// docs/recovery-rules.md R54: the `reregistered_within_s` expectation holds when
    /// the master re-registers the restarted agent within the bound, and fails when the
    /// agent sat out its executors' re-registration timeout (round 10 of
    /// docs/mutation-report.md: recovery finished only at the timeout) or never came
    /// back. The first start is not a restart and is not judged.
    #[test]
    fn expectations_catch_an_agent_that_waits_out_the_reregistration_timeout() {
        let scenario: revenant_sim::scenario::Scenario = toml::from_str(
            "duration_s = 60\n\
             [[tasks]]\nid = \"t1\"\ncommand = \"sleep 10\"\n\
             [expect]\nreregistered_within_s = 1\n",
        )
        .expect("scenario parses");
        let start = |ms| event(ms, "agent1", "sim", "agent process starting", &[]);
        let back = |ms| event(ms, "master1", "master", "agent re-registered", &[]);
        let observations = Observations::default();
        let check =
            |trace: &[TraceEvent]| oracles::expectations::check(&scenario, trace, &observations);
        let held = check(&[start(0), start(20_000), back(20_060)]);
        assert!(held.is_empty(), "{held:?}");
        let late = check(&[start(0), start(20_000), back(22_010)]);
        assert_eq!(late.len(), 1, "{late:?}");
        assert!(late[0].message.contains("expected within 1s"), "{late:?}");
        let never = check(&[start(0), start(20_000)]);
        assert_eq!(never.len(), 1, "{never:?}");
        assert!(
            never[0].message.contains("never re-registered"),
            "{never:?}"
        );
        // A re-registration before the restart does not count for it.
        let before = check(&[start(0), back(5_000), start(20_000)]);
        assert_eq!(before.len(), 1, "{before:?}");
    }

    /// docs/lifecycle-rules.md rule 12: a task of a framework gone for good is not
    /// flagged for never ending, but a task of a framework that is still there is.
    #[test]
    fn liveness_still_catches_an_unfinished_task_of_a_live_framework() {
        let scenario = two_frameworks();
        let mut observations = Observations {
            seen: vec![running("t1"), running("t2")],
            ..Observations::default()
        };
        assert_eq!(oracles::liveness::check(&scenario, &observations).len(), 2);
        observations.gone_tasks.insert("t1".into());
        let violations = oracles::liveness::check(&scenario, &observations);
        assert_eq!(violations.len(), 1, "{violations:?}");
        assert!(
            violations[0]
                .message
                .contains("task t2 ended the run in TASK_RUNNING"),
            "{violations:?}"
        );
    }

    /// Rules 8 and 12: an executor of a framework whose scheduler left for good, alive
    /// at the end although the failover timeout ran out long before, is caught; one that
    /// is gone, or a timeout that runs out too late to judge, is not.
    #[test]
    fn failover_catches_an_executor_of_a_framework_that_left_for_good() {
        let scenario = two_frameworks();
        let mut observations = Observations {
            seen: vec![running("t1"), running("t2")],
            agent_running_at_end: true,
            live_executors_at_end: ["t1".to_owned(), "t2".to_owned()].into(),
            gone_tasks: ["t1".to_owned()].into(),
            ..Observations::default()
        };
        observations
            .left_frameworks
            .insert(1, Duration::from_secs(10));
        let violations = oracles::failover::check(&scenario, &[], &observations);
        assert_eq!(violations.len(), 1, "{violations:?}");
        assert!(violations[0].message.contains("executor t1 of framework 1"));
        // A master elected late enough restarts the timer past the end: not judged.
        let elected = event(
            90_000,
            "master1",
            "master",
            "elected leading master: waiting for known agents to re-register",
            &[],
        );
        assert!(oracles::failover::check(&scenario, &[elected], &observations).is_empty());
        observations.live_executors_at_end.remove("t1");
        assert!(oracles::failover::check(&scenario, &[], &observations).is_empty());
    }
    /// L21: an update acknowledged to the executor and then removed with its
    /// framework's checkpoint directory by the operator is superseded; an update
    /// acknowledged after the removal, or whose framework's directory was not the one
    /// removed, is still owed (L6) and its loss still caught.
    #[test]
    fn delivery_excuses_only_an_update_whose_checkpoint_the_operator_removed_after() {
        let running = Uuid([4; 16]).to_string();
        let trace = vec![
            event(
                1_000,
                "agent1",
                "agent",
                "status update accepted",
                &[
                    ("framework", "framework-a"),
                    ("task", "t1"),
                    ("state", "TASK_RUNNING"),
                    ("uuid", &running),
                ],
            ),
            event(
                1_000,
                "agent1",
                "agent",
                "acknowledged status update to executor",
                &[
                    ("framework", "framework-a"),
                    ("task", "t1"),
                    ("uuid", &running),
                ],
            ),
        ];
        let wiped = |time_ms: u64, framework: &str| {
            Observations {
            framework_meta_wiped: vec![(
                Duration::from_millis(time_ms),
                1,
                format!(
                    "framework checkpoints removed: slaves/agent-1/frameworks/{framework}, slaves/agent-1/frameworks/framework-z"
                ),
            )],
            ..Observations::default()
        }
        };
        // Removed after the acknowledgement: superseded.
        assert!(oracles::delivery::check(&trace, &wiped(5_000, "framework-a")).is_empty());
        // Removed before it: the agent owed the update; losing it is a violation.
        assert_eq!(
            oracles::delivery::check(&trace, &wiped(500, "framework-a")).len(),
            1
        );
        // Another framework's directory removed: still owed.
        assert_eq!(
            oracles::delivery::check(&trace, &wiped(5_000, "framework-b")).len(),
            1
        );
        // Nothing removed: the lost update is caught.
        assert_eq!(
            oracles::delivery::check(&trace, &Observations::default()).len(),
            1
        );
    }
}

/// docs/lifecycle-rules.md rule 18: with an executor's and its framework's directories
/// left scheduled when the executor id is launched again (rule 4's bug), garbage
/// collection removes them under the new run's live executor, and `gc_live` sees it
/// when the removal starts (not only at the end of the run).
#[test]
fn gc_live_catches_directories_collected_under_a_live_run() {
    let breakage = Breakage {
        skip_unschedule_on_launch: true,
        ..Breakage::default()
    };
    assert_caught(
        "regression_task_for_terminating_executor.toml",
        breakage,
        "gc_live",
        5,
    );
    assert_caught("swarm_agent_machine.toml", breakage, "gc_live", 200);
}

/// docs/lifecycle-rules.md rules 20 and 22: with orphans left alone, the hung executor
/// whose launch the agent did not live to checkpoint outlives the restarted agent's
/// recovery: `hung_executor` sees it (judged from the process table), and so does
/// `left_behind` at the end (its task failed, its process lives).
#[test]
fn hung_executor_catches_an_orphan_left_alive() {
    let breakage = Breakage {
        keep_orphan_executors: true,
        ..Breakage::default()
    };
    for oracle in ["hung_executor", "left_behind"] {
        assert_caught(
            "regression_orphan_executor_destroyed.toml",
            breakage,
            oracle,
            2,
        );
    }
    assert_caught("swarm_agent_machine.toml", breakage, "hung_executor", 400);
}

/// docs/lifecycle-rules.md rule 21: the `recovery_timeout` oracle leaves hung processes
/// out, and only them: with 5% of launches hanging, executors that wait for their agent
/// forever are still caught.
#[test]
fn recovery_timeout_still_catches_executors_that_wait_forever_among_hung_ones() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios/regression_hung_executors_agent_machine.toml");
    let scenario = Scenario::load(&path).expect("scenario parses");
    let options = RunOptions {
        breakage: Breakage {
            executor_ignores_recovery_timeout: true,
            ..Breakage::default()
        },
        ..RunOptions::default()
    };
    let caught = (0..300).find(|seed| {
        cluster::run(&scenario, *seed, &options)
            .violations
            .iter()
            .any(|v| v.oracle == "recovery_timeout")
    });
    assert!(
        caught.is_some(),
        "recovery_timeout missed executors waiting forever"
    );
}

/// docs/recovery-rules.md R23: an agent that goes on after a read its recovery could not
/// make registers with part of its state lost. The same fixed scenario with its failed
/// listing turned into a failed file read (`agent.info`), run with strict recovery off
/// (which counts the error and goes on, as an agent taking the error for absence would:
/// it registers as a new agent), is judged by the strict rule: the
/// `recovery_read_error` oracle catches it, and holds on the strict run. (A failed
/// listing stops non-strict recovery too, R40: see the next test.)
#[test]
fn recovery_read_error_catches_an_agent_that_goes_on_after_a_failed_read() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios/recovery_read_error_stops_recovery.toml");
    let strict = Scenario::load(&path).expect("scenario parses");
    assert!(strict.agent.strict);
    let mut lenient = strict.clone();
    lenient.agent.strict = false;
    let fault = lenient
        .faults
        .iter_mut()
        .find(|f| f.op.as_deref() == Some("list_dir"))
        .expect("the scenario's failed listing");
    fault.op = Some("read".to_owned());
    let result = cluster::run(&lenient, 0, &RunOptions::default());
    let fired = revenant_sim::fault_log::so_far();
    let caught = revenant_sim::oracles::recovery_read_error::check(
        &strict,
        &result.trace,
        &result.observations,
        &fired,
    );
    assert!(
        !caught.is_empty(),
        "recovery_read_error did not catch an agent that went on after a failed read"
    );
    eprintln!("recovery_read_error: {}", caught[0].message);
    let result = cluster::run(&strict, 0, &RunOptions::default());
    assert!(
        result.violations.is_empty(),
        "the strict run fails: {:?}",
        result.violations
    );
}

/// docs/recovery-rules.md R25: runs whose disk was made to fail operations are judged by
/// the `leaked` oracle too (from the last failed operation plus a disk-watch interval):
/// with completed directories leaked, it catches a leak in a swarm run that had disk
/// errors, which it once left unjudged.
#[test]
fn leaked_judges_runs_with_disk_errors() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/swarm_agent_machine.toml");
    let scenario = Scenario::load(&path).expect("scenario parses");
    let options = RunOptions {
        breakage: Breakage {
            leak_completed_directories: true,
            ..Breakage::default()
        },
        ..RunOptions::default()
    };
    let seed = (0..100).find(|seed| {
        let result = cluster::run(&scenario, *seed, &options);
        result
            .observations
            .fault_kinds
            .contains(&revenant_sim::scenario::FaultKind::DiskError)
            && result.violations.iter().any(|v| v.oracle == "leaked")
    });
    assert!(
        seed.is_some(),
        "leaked caught no leak in a run with disk errors within 100 seeds"
    );
    eprintln!("leaked with disk errors: caught at seed {}", seed.unwrap());
}

/// The violations of `oracle` in the run of `scenario` at `seed` with `breakage`.
fn caught_by(scenario: &str, seed: u64, breakage: Breakage, oracle: &str) -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios")
        .join(scenario);
    let scenario = Scenario::load(&path).expect("scenario parses");
    let options = RunOptions {
        breakage,
        ..RunOptions::default()
    };
    cluster::run(&scenario, seed, &options)
        .violations
        .into_iter()
        .filter(|v| v.oracle == oracle)
        .map(|v| v.message)
        .collect()
}

/// docs/task-lifecycle.md L25: with the master admitting a removed agent again under its
/// old id, the leading master's `/state` at the end lists as connected an agent whose
/// tasks the framework heard lost with it; the unbroken run holds.
#[test]
fn master_state_catches_a_removed_agent_readmitted() {
    let breakage = Breakage {
        master_readmits_removed_agents: true,
        ..Breakage::default()
    };
    let caught = caught_by(
        "regression_removed_agent_restarts.toml",
        31,
        breakage,
        "master_state",
    );
    assert!(
        caught.iter().any(|m| m.contains("(L25)")),
        "master_state did not catch a removed agent admitted again: {caught:?}"
    );
    eprintln!("master_state: {}", caught[0]);
    let unbroken = caught_by(
        "regression_removed_agent_restarts.toml",
        31,
        Breakage::default(),
        "master_state",
    );
    assert!(unbroken.is_empty(), "{unbroken:?}");
}

/// docs/task-lifecycle.md L26: with the master forwarding a terminal update without
/// recording it, its `/state` at the end still lists as running a task its framework
/// heard finish.
#[test]
fn master_state_catches_a_terminal_update_it_did_not_record() {
    let breakage = Breakage {
        master_forgets_terminal_updates: true,
        ..Breakage::default()
    };
    let caught = caught_by(
        "agent_restart_reconnects_executor.toml",
        0,
        breakage,
        "master_state",
    );
    assert!(
        caught.iter().any(|m| m.contains("(L26)")),
        "master_state did not catch a terminal update the master forgot: {caught:?}"
    );
    eprintln!("master_state: {}", caught[0]);
}

/// docs/task-lifecycle.md L28: an agent that sends every unacknowledged head at each
/// wake-up floods the master faster than the back-off allows; the unbroken run holds.
#[test]
fn update_retries_catches_a_flood() {
    let scenario = "status_update_retried_until_acknowledged.toml";
    let breakage = Breakage {
        update_retries_flood: true,
        ..Breakage::default()
    };
    let caught = caught_by(scenario, 0, breakage, "update_retries");
    assert!(
        caught.iter().any(|m| m.contains("(L28)")),
        "update_retries did not catch a flood: {caught:?}"
    );
    eprintln!("update_retries: {}", caught[0]);
    let unbroken = caught_by(scenario, 0, Breakage::default(), "update_retries");
    assert!(unbroken.is_empty(), "{unbroken:?}");
}

/// docs/task-lifecycle.md L29: an agent that never retries on its timer leaves an
/// unacknowledged update unsent past its retry interval.
#[test]
fn update_retries_catches_retries_that_never_come() {
    let breakage = Breakage {
        update_retries_skipped: true,
        ..Breakage::default()
    };
    let caught = caught_by(
        "status_update_retried_until_acknowledged.toml",
        0,
        breakage,
        "update_retries",
    );
    assert!(
        caught.iter().any(|m| m.contains("(L29)")),
        "update_retries did not catch retries that never came: {caught:?}"
    );
    eprintln!("update_retries: {}", caught[0]);
}

/// Runs `scenario` at `seed` with `breakage` and asserts that `oracle` reports a
/// violation of `rule` (its message names it), and that the unbroken run holds.
fn assert_rule_caught(scenario: &str, seed: u64, breakage: Breakage, oracle: &str, rule: &str) {
    let caught = caught_by(scenario, seed, breakage, oracle);
    assert!(
        caught.iter().any(|m| m.contains(&format!("({rule})"))),
        "{oracle} did not catch {breakage:?} ({rule}) on {scenario} seed {seed}: {caught:?}"
    );
    eprintln!("{oracle}: {}", caught[0]);
    let unbroken = caught_by(scenario, seed, Breakage::default(), oracle);
    assert!(unbroken.is_empty(), "{unbroken:?}");
}

/// docs/task-lifecycle.md L30: a master that answers a reconciliation of a task it
/// knows with an earlier state (TASK_STAGING for a running task) is caught from what the
/// framework heard against what the master's `/state` listed.
#[test]
fn reconciliation_catches_a_stale_answer() {
    let breakage = Breakage {
        master_reconciles_stale_state: true,
        ..Breakage::default()
    };
    let scenario = "reconcile_explicit_and_implicit.toml";
    assert_rule_caught(scenario, 0, breakage, "reconciliation", "L30");
}

/// docs/task-lifecycle.md L31: a master that leaves the tasks it knows of an explicit
/// reconciliation unanswered.
#[test]
fn reconciliation_catches_known_tasks_left_unanswered() {
    let breakage = Breakage {
        master_skips_known_reconciliations: true,
        ..Breakage::default()
    };
    let scenario = "reconcile_explicit_and_implicit.toml";
    assert_rule_caught(scenario, 0, breakage, "reconciliation", "L31");
}

/// docs/task-lifecycle.md L32, not later: a master that awaits no agent and still waits
/// for its re-registration timeout before answering an unknown task TASK_LOST (the
/// master as it once was).
#[test]
fn reconciliation_catches_an_unknown_task_answered_late() {
    let breakage = Breakage {
        master_waits_to_reconcile_unknown_tasks: true,
        ..Breakage::default()
    };
    let scenario = "reconcile_explicit_and_implicit.toml";
    assert_rule_caught(scenario, 0, breakage, "reconciliation", "L32");
}

/// docs/task-lifecycle.md L32, not earlier: a newly elected master that answers an
/// unknown task TASK_LOST while an agent it awaits could still bring the task back.
#[test]
fn reconciliation_catches_an_unknown_task_answered_too_early() {
    let breakage = Breakage {
        master_reconciles_unknown_at_once: true,
        ..Breakage::default()
    };
    let scenario = "reconcile_unknown_task_waits_for_awaited_agent.toml";
    assert_rule_caught(scenario, 0, breakage, "reconciliation", "L32");
}

/// docs/recovery-rules.md R38: non-strict recovery that counts a well-framed record that
/// does not decode but leaves it in its log is caught on the simulated disk.
#[test]
fn undecodable_record_catches_a_record_left_in_its_log() {
    let breakage = Breakage {
        recovery_keeps_undecodable_record: true,
        ..Breakage::default()
    };
    let scenario = "undecodable_record_cut_on_restart.toml";
    assert_rule_caught(scenario, 0, breakage, "undecodable_record", "R38");
}

/// The same breakage in the swarm: its drawn corruption (an undecodable record appended
/// while the agent is down, docs/simulator-reach.md rule 14u), with every run's agent
/// recovering without `--strict` (the `non_strict_fraction` knob raised to 1; the swarm
/// file runs a quarter of its runs so), and garbage collection later than the run. The
/// unbroken agent once failed R38 here too (seed 11: a listing the disk failed hid the
/// record from recovery), fixed by docs/recovery-rules.md R40.
#[test]
fn undecodable_record_catches_a_record_left_in_its_log_in_the_swarm() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/swarm_agent_machine.toml");
    let mut scenario = Scenario::load(&path).expect("scenario parses");
    let swarm = scenario.swarm.as_mut().expect("a swarm");
    swarm.non_strict_fraction = 1.0;
    // Collection out of the way: R38 is judged on the disk at the end of the run, and
    // a collected run directory takes a record left in its log with it (an oracle
    // limit, docs/recovery-rules.md R42).
    swarm.gc_delay_s = Some([3600.0, 3600.0]);
    scenario.agent.gc_delay_s = 3600.0;
    let options = RunOptions {
        breakage: Breakage {
            recovery_keeps_undecodable_record: true,
            ..Breakage::default()
        },
        ..RunOptions::default()
    };
    let judged = |options: &RunOptions, seed: u64| {
        cluster::run(&scenario, seed, options)
            .violations
            .iter()
            .any(|v| v.oracle == "undecodable_record")
    };
    let seed = (0..100).find(|seed| judged(&options, *seed));
    let seed = seed.expect("undecodable_record did not catch the breakage within 100 seeds");
    eprintln!("undecodable_record: caught at seed {seed}");
    assert!(
        !judged(&RunOptions::default(), seed),
        "the unbroken run fails too"
    );
}

/// docs/recovery-rules.md R40: without `--strict`, a listing recovery cannot read stops
/// recovery as with it. An agent that takes it for an empty directory and goes on (as
/// non-strict recovery once did: it re-registered holding no task and destroyed its
/// live executor as an orphan) is caught by the `recovery_read_error` oracle on the
/// non-strict run of the fixed scenario; the unbroken non-strict agent stops, and its
/// next start recovers the agent and reconnects the executor (the scenario's
/// expectations hold).
#[test]
fn recovery_read_error_catches_a_non_strict_agent_that_goes_on_after_a_failed_listing() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios/recovery_read_error_stops_recovery.toml");
    let mut lenient = Scenario::load(&path).expect("scenario parses");
    lenient.agent.strict = false;
    let oracle_of = |options: &RunOptions| -> Vec<String> {
        cluster::run(&lenient, 0, options)
            .violations
            .iter()
            .map(|v| format!("[{}] {}", v.oracle, v.message))
            .collect()
    };
    let broken = RunOptions {
        breakage: Breakage {
            recovery_skips_unreadable_listing: true,
            ..Breakage::default()
        },
        ..RunOptions::default()
    };
    let caught = oracle_of(&broken);
    assert!(
        caught
            .iter()
            .any(|m| m.starts_with("[recovery_read_error]") && m.contains("R40")),
        "recovery_read_error did not catch a non-strict agent that went on after a failed listing: {caught:?}"
    );
    eprintln!("{}", caught[0]);
    let unbroken = oracle_of(&RunOptions::default());
    assert!(
        unbroken.is_empty(),
        "the unbroken non-strict run fails: {unbroken:?}"
    );
}

/// docs/recovery-rules.md R41 narrows L19 only where the disk failed the read: a
/// non-strict agent that forgets its checkpointed resources with no failed read is
/// still caught by the `resources` oracle.
#[test]
fn resources_catches_a_non_strict_agent_that_forgets_its_checkpointed_resources() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios/agent_restart_reconnects_executor.toml");
    let mut scenario = Scenario::load(&path).expect("scenario parses");
    scenario.agent.strict = false;
    let options = RunOptions {
        breakage: Breakage {
            forget_checkpointed_resources: true,
            ..Breakage::default()
        },
        ..RunOptions::default()
    };
    let caught = (0..5).find(|seed| {
        cluster::run(&scenario, *seed, &options)
            .violations
            .iter()
            .any(|v| v.oracle == "resources")
    });
    assert!(
        caught.is_some(),
        "resources did not catch a non-strict agent that forgot its resources"
    );
}

/// docs/task-lifecycle.md L36: an agent that kills the executors of a framework it shuts
/// down at its next check, instead of after the grace period from its ask (the deadline
/// set to the moment of the ask), is caught from the wire and the process table: the
/// restarted agent asks the reconnected executor to shut down and kills it at once.
#[test]
fn shutdown_grace_catches_executors_killed_without_grace() {
    let breakage = Breakage {
        executor_shutdown_without_grace: true,
        ..Breakage::default()
    };
    let scenario = "torn_down_framework_shut_down_on_reregistration.toml";
    assert_rule_caught(scenario, 0, breakage, "shutdown_grace", "L36");
}

/// docs/recovery-rules.md R43: non-strict recovery that warns of an undecodable record
/// (and cuts it) but counts no error leaves the agent's `/metrics` saying the disk was
/// undamaged; caught from the simulator's own corruption fault.
#[test]
fn recovery_errors_catches_damage_left_uncounted() {
    let breakage = Breakage {
        recovery_counts_no_errors: true,
        ..Breakage::default()
    };
    let scenario = "undecodable_record_cut_on_restart.toml";
    assert_rule_caught(scenario, 0, breakage, "recovery_errors", "R43");
}

/// docs/task-lifecycle.md L36 on hand-made histories: what the rule holds an agent to
/// across restarts and departures. A kill 10 ms after the same incarnation's ask fails;
/// one a whole grace period after it, one by a later incarnation (which does not know
/// of the ask), one of another process, and one by an incarnation that then leaves the
/// cluster, hold.
#[test]
fn shutdown_grace_holds_each_incarnation_to_its_own_ask() {
    use revenant_sim::cluster::{AgentOutcome, Observations};
    use revenant_sim::history::AgentAct;
    use revenant_sim::oracles::shutdown_grace;
    use std::time::Duration;
    let act = |ms: u64, incarnation: u64, pid: u32| AgentAct {
        time: Duration::from_millis(ms),
        agent: 1,
        incarnation,
        pid,
        boot: 1,
        answering: None,
    };
    let judged = |asks: Vec<AgentAct>, kills: Vec<AgentAct>, exits| {
        let mut observations = Observations::default();
        observations.history.shutdown_asks = asks;
        observations.history.agent_kills = kills;
        observations.agent_exits = exits;
        shutdown_grace::check(&observations)
    };
    let early = judged(vec![act(10_000, 2, 7)], vec![act(10_010, 2, 7)], vec![]);
    assert_eq!(early.len(), 1, "{early:?}");
    assert!(early[0].message.contains("(L36)"), "{early:?}");
    assert!(judged(vec![act(10_000, 2, 7)], vec![act(15_000, 2, 7)], vec![]).is_empty());
    assert!(judged(vec![act(10_000, 2, 7)], vec![act(12_000, 3, 7)], vec![]).is_empty());
    assert!(judged(vec![act(10_000, 2, 7)], vec![act(10_010, 2, 8)], vec![]).is_empty());
    let left = vec![(
        Duration::from_millis(10_010),
        1,
        AgentOutcome::Exited("ShutDown(\"removed\")".into()),
    )];
    assert!(judged(vec![act(10_000, 2, 7)], vec![act(10_010, 2, 7)], left).is_empty());
}

/// docs/task-lifecycle.md L37: with the agent keeping its checkpointed resources after an
/// additive change of `--resources` (the restart-compatibility check's mutant that takes
/// `TakeNewResources` for `Keep`, docs/recovery-rules.md R9), the master's `/state` lists
/// the agent with resources other than those its incarnation was started with: in the
/// fixed scenario, and in the default swarm's reconfigured restarts
/// (docs/simulator-reach.md 15f); the unbroken fixed run holds.
#[test]
fn master_state_catches_an_additive_change_the_agent_did_not_take() {
    let breakage = Breakage {
        additive_change_keeps_old_resources: true,
        ..Breakage::default()
    };
    let caught = caught_by(
        "agent_reconfiguration_additive_keeps_id.toml",
        0,
        breakage,
        "master_state",
    );
    assert!(
        caught.iter().any(|m| m.contains("(L37)")),
        "master_state did not catch resources the agent did not take: {caught:?}"
    );
    eprintln!("master_state: {}", caught[0]);
    let unbroken = caught_by(
        "agent_reconfiguration_additive_keeps_id.toml",
        0,
        Breakage::default(),
        "master_state",
    );
    assert!(unbroken.is_empty(), "{unbroken:?}");
    assert_caught("swarm_agent_machine.toml", breakage, "master_state", 60);
}

/// docs/recovery-rules.md R55: the wire record of `removed_agent_late_pong_answered`
/// (the agent's pongs held back past its removal, the removal's `ShutdownAgent` lost)
/// holds as run; with the master's answers to the late pongs taken out of it (what the
/// master wrote when `Master::removed_peer` answered `None`: round 10's survivor
/// `agents.rs:46:9`; and the agent's close of its connection once told, since an agent
/// never told stays connected), the `removed_agent` oracle catches the first unanswered
/// pong, 1 s after it reached the master; with four of the five answers left, it still
/// catches the fifth pong (one answer per frame); with the connection closed at the
/// master's end as the pongs arrive, nothing is owed.
#[test]
fn removed_agent_catches_a_late_pong_left_unanswered() {
    use revenant_sim::master_wire::What;
    use revenant_sim::oracles::removed_agent;
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios/removed_agent_late_pong_answered.toml");
    let scenario = Scenario::load(&path).expect("scenario parses");
    let run = cluster::run(&scenario, 0, &RunOptions::default());
    let record = run.observations.master_wire.clone();
    assert!(removed_agent::judge(&record).is_empty());
    // The master's ShutdownAgent at the removal, then the five late pongs it read.
    let shutdowns: Vec<usize> = record
        .events
        .iter()
        .enumerate()
        .filter(|(_, e)| {
            matches!(
                &e.what,
                What::Wrote {
                    kind: "shutdown_agent",
                    ..
                }
            )
        })
        .map(|(i, _)| i)
        .collect();
    let pongs: Vec<usize> = record
        .events
        .iter()
        .enumerate()
        .filter(|(i, e)| {
            *i > shutdowns[0]
                && e.connection == record.events[shutdowns[0]].connection
                && matches!(&e.what, What::Read { kind: "pong", .. })
        })
        .map(|(i, _)| i)
        .collect();
    assert_eq!(pongs.len(), 5, "{:?}", record.events);
    assert_eq!(
        shutdowns.len(),
        6,
        "the removal's and one answer per late pong"
    );
    let without = |kept: usize| {
        let mut broken = record.clone();
        let answers: Vec<usize> = shutdowns[1..].iter().copied().skip(kept).collect();
        let connection = record.events[shutdowns[0]].connection;
        let mut index = 0;
        broken.events.retain(|e| {
            index += 1;
            // The agent closed its connection once told: never told, it stays.
            let close = e.connection == connection && e.what == What::Closed;
            !answers.contains(&(index - 1)) && !close
        });
        broken
    };
    let caught = removed_agent::judge(&without(0));
    assert_eq!(caught.len(), 1, "{caught:?}");
    assert!(
        caught[0].message.contains("did not answer it"),
        "{caught:?}"
    );
    let pong_at = record.events[pongs[0]].time;
    assert_eq!(caught[0].time, pong_at + removed_agent::ANSWER_WITHIN);
    assert!(caught[0].message.contains("read its pong"), "{caught:?}");
    eprintln!("removed_agent: {}", caught[0].message);
    assert_eq!(removed_agent::judge(&without(4)).len(), 1);
    // The connection closed at the master's end as the pongs arrive: nothing is owed.
    let mut closed = without(0);
    let at = pongs[4];
    closed.events.insert(
        at + 1,
        revenant_sim::master_wire::Event {
            time: record.events[pongs[4]].time,
            connection: record.events[pongs[4]].connection,
            what: What::Closed,
        },
    );
    assert!(removed_agent::judge(&closed).is_empty());
}

/// docs/recovery-rules.md R55: with the master admitting a removed agent again under its
/// old id, the agent's re-registration, read after the master told it to shut down, is
/// answered `AgentReregistered`: the `removed_agent` oracle catches it on the wire; the
/// unbroken run holds.
#[test]
fn removed_agent_catches_a_removed_agent_readmitted() {
    let breakage = Breakage {
        master_readmits_removed_agents: true,
        ..Breakage::default()
    };
    let caught = caught_by(
        "partitioned_agent_removed.toml",
        0,
        breakage,
        "removed_agent",
    );
    assert!(
        caught
            .iter()
            .any(|m| m.contains("answered it with agent_reregistered")),
        "removed_agent did not catch a removed agent admitted again: {caught:?}"
    );
    eprintln!("removed_agent: {}", caught[0]);
    let unbroken = caught_by(
        "partitioned_agent_removed.toml",
        0,
        Breakage::default(),
        "removed_agent",
    );
    assert!(unbroken.is_empty(), "{unbroken:?}");
}

/// docs/recovery-latency.md P67-P69: the disk work an agent process does for nothing,
/// recorded by the simulated filesystem through an agent's handle (docs/design.md D87)
/// and judged by `wasted_disk_work`. Each test drives the disk as an agent would, by
/// hand, and checks what the oracle makes of it; the unwasted variant of each holds.
mod wasted_disk_work {
    use std::path::Path;

    use revenant::os::FileSystem;
    use revenant_sim::disk_work;
    use revenant_sim::fs::SimFs;
    use revenant_sim::oracles::wasted_disk_work;

    fn oracles() -> Vec<String> {
        let violations = wasted_disk_work::check(&disk_work::so_far());
        for violation in &violations {
            eprintln!("{}: {}", violation.oracle, violation.message);
        }
        violations
            .into_iter()
            .map(|v| v.oracle.to_owned())
            .collect()
    }

    fn disk() -> SimFs {
        disk_work::begin();
        let disk = SimFs::new();
        disk.create_dir(Path::new("/meta")).unwrap();
        disk
    }

    /// P67: a sync with nothing written since the same incarnation's last completed sync
    /// of the file (as `commit_done` made `()` does at the next barrier) is caught, and so
    /// is a directory's; a sync after a write, an incarnation's first sync of a file an
    /// earlier one synced, and the simulator's own syncs are not.
    #[test]
    fn repeated_sync_catches_a_file_synced_twice_with_nothing_written_between() {
        let disk = disk();
        let log = Path::new("/meta/task.updates");
        let first = disk.for_agent(1, 1);
        first.write(log, b"header").unwrap();
        first.sync_file(log).unwrap();
        first.append(log, b"update").unwrap();
        first.sync_file(log).unwrap();
        first.sync_dir(Path::new("/meta")).unwrap();
        // The simulator's own handle, and the next incarnation's first syncs.
        disk.sync_file(log).unwrap();
        let second = disk.for_agent(1, 2);
        second.sync_file(log).unwrap();
        second.sync_dir(Path::new("/meta")).unwrap();
        // Another agent of the machine: its own first sync.
        disk.for_agent(2, 1).sync_file(log).unwrap();
        assert_eq!(oracles(), Vec::<String>::new());

        second.sync_file(log).unwrap();
        assert_eq!(oracles(), ["repeated_sync"]);
        second.sync_dir(Path::new("/meta")).unwrap();
        assert_eq!(oracles(), ["repeated_sync", "repeated_sync"]);
    }

    /// P67, group commit (P14): a pipelined group's sync is judged when it was asked
    /// for, so a barrier that syncs the log while the group's sync is on its way does
    /// not make the group's sync a repeat; a sync asked for after both completed is one.
    #[test]
    fn repeated_sync_allows_a_barrier_under_a_group_sync_in_flight() {
        let disk = disk();
        let log = Path::new("/meta/task.updates");
        let agent = disk.for_agent(1, 1);
        agent.write(log, b"header").unwrap();
        agent.sync_file(log).unwrap();
        agent.append(log, b"update").unwrap();
        let group = agent.sync_requested(log);
        agent.sync_file(log).unwrap(); // the barrier
        agent.sync_file_requested(log, &group).unwrap(); // the group's own, later
        assert_eq!(oracles(), Vec::<String>::new());
        let late = agent.sync_requested(log);
        agent.sync_file_requested(log, &late).unwrap();
        assert_eq!(oracles(), ["repeated_sync"]);
    }

    /// P68: a truncate to the file's own length (as `read_log`'s `>` made `>=` does to
    /// every clean log) is caught; a cut of a tail is not, nor the simulator's own.
    #[test]
    fn no_op_truncate_catches_a_cut_of_nothing() {
        let disk = disk();
        let log = Path::new("/meta/task.updates");
        let agent = disk.for_agent(1, 1);
        agent.write(log, b"header+torn").unwrap();
        agent.truncate(log, 6).unwrap();
        disk.truncate(log, 6).unwrap();
        assert_eq!(oracles(), Vec::<String>::new());
        agent.truncate(log, 6).unwrap();
        assert_eq!(oracles(), ["no_op_truncate"]);
    }

    /// P69: a removal that finds the directory gone, tried again by the same
    /// incarnation (as `remove_dir`'s "not found" guard made `false` does at every disk
    /// check), is caught once; a removal that finds it there, one gone path found gone
    /// once per incarnation, and a path found gone again after it came back and was
    /// removed, are not.
    #[test]
    fn gone_removal_retried_catches_a_gone_directory_removed_again() {
        let disk = disk();
        let run = Path::new("/meta/runs/r1");
        disk.create_dir(Path::new("/meta/runs")).unwrap();
        disk.create_dir(run).unwrap();
        let first = disk.for_agent(1, 1);
        first.remove_dir_all(run).unwrap();
        assert!(first.remove_dir_all(run).is_err());
        let second = disk.for_agent(1, 2);
        assert!(second.remove_dir_all(run).is_err());
        disk.create_dir(run).unwrap();
        second.remove_dir_all(run).unwrap();
        assert!(second.remove_dir_all(run).is_err());
        assert_eq!(oracles(), Vec::<String>::new());

        assert!(second.remove_dir_all(run).is_err());
        assert!(second.remove_dir_all(run).is_err());
        assert_eq!(oracles(), ["gone_removal_retried"]);
    }

    /// P73: a checkpoint put in place of one with the same bytes while the incarnation
    /// recovers (as `check_restart`'s "resources changed" guard made `true` does to
    /// `slave.info` at every restart) is caught once; a replacement with other bytes,
    /// the boot id put in place with the same bytes (recovery's mark of completion), the
    /// same bytes put in place after recovery completed, and the simulator's own, are
    /// not.
    #[test]
    fn identical_rewrite_catches_a_checkpoint_replaced_with_itself_during_recovery() {
        let disk = disk();
        let info = Path::new("/meta/slave.info");
        let boot = Path::new("/meta/boot_id");
        let temp = Path::new("/meta/.tmp");
        disk.write(info, b"agent-1 cpus:1").unwrap();
        disk.write(boot, b"boot-1").unwrap();
        let replace = |fs: &SimFs, path: &Path, bytes: &[u8]| {
            fs.write(temp, bytes).unwrap();
            fs.rename(temp, path).unwrap();
        };
        let first = disk.for_agent(1, 1);
        replace(&first, info, b"agent-1 cpus:2");
        replace(&disk, info, b"agent-1 cpus:2");
        replace(&first, boot, b"boot-1");
        replace(&first, info, b"agent-1 cpus:2");
        assert_eq!(oracles(), Vec::<String>::new());

        let second = disk.for_agent(1, 2);
        replace(&second, info, b"agent-1 cpus:2");
        replace(&second, info, b"agent-1 cpus:2");
        assert_eq!(oracles(), ["identical_rewrite"]);
    }
}

/// docs/recovery-rules.md R56 and docs/design.md D88 (oracle `pacing`) on a real run's
/// history: `reconnect_executor_retry` (retry interval 1 s, the executor's first
/// re-registration lost) holds, and its recorded asks and disk checks are there to
/// judge; the same history with an ask or a check moved or repeated early fails: a
/// second ask 10 ms after the first on the same connection (an agent that asks at every
/// turn: `retry_executor_reconnect`'s `now + interval` made `-`), an ask 10 ms after the
/// start, an ask from an agent without the interval, a disk check 10 ms after recovery
/// completed (`finish_recovery`'s `now + disk_watch_interval` made `-`), and one 10 ms
/// after the one before.
#[test]
fn pacing_catches_asks_and_disk_checks_that_come_too_soon() {
    use revenant_sim::history::{History, Pace, Paced};
    use revenant_sim::oracles::pacing;
    use std::time::Duration;
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/reconnect_executor_retry.toml");
    let scenario = Scenario::load(&path).expect("scenario parses");
    let result = cluster::run(&scenario, 0, &RunOptions::default());
    let history = result.observations.history.clone();
    assert!(pacing::check_history(&history).is_empty());
    let find = |history: &History, wanted: fn(&Pace) -> bool| -> Paced {
        history
            .paced
            .iter()
            .find(|p| p.incarnation == 2 && wanted(&p.act))
            .cloned()
            .expect("the run recorded it")
    };
    let ask = find(&history, |a| matches!(a, Pace::ReconnectAsk { .. }));
    let done = find(&history, |a| matches!(a, Pace::RecoveryComplete));
    let check = find(&history, |a| matches!(a, Pace::DiskCheck));
    let start = history
        .agent_starts
        .iter()
        .find(|s| s.incarnation == 2)
        .expect("a restart")
        .time;
    assert_eq!(ask.time, start + Duration::from_secs(1));
    assert_eq!(check.time, done.time + Duration::from_secs(60));
    let ms10 = Duration::from_millis(10);
    let judged = |edit: &dyn Fn(&mut History)| {
        let mut history = history.clone();
        edit(&mut history);
        pacing::check_history(&history)
    };
    let add = |history: &mut History, act: &Paced, time: Duration| {
        history.paced.push(Paced {
            time,
            ..act.clone()
        })
    };
    type Edit<'a> = &'a dyn Fn(&mut History);
    let cases: [(&str, Edit); 5] = [
        ("(R56)", &|h| add(h, &ask, ask.time + ms10)),
        ("(R56)", &|h| {
            h.paced.retain(|p| *p != ask);
            add(h, &ask, start + ms10)
        }),
        ("(R56)", &|h| {
            for paced in &mut h.paced {
                if let Pace::Timers {
                    reregistration_retry,
                    ..
                } = &mut paced.act
                {
                    *reregistration_retry = None;
                }
            }
        }),
        ("(D88)", &|h| add(h, &check, done.time + ms10)),
        ("(D88)", &|h| add(h, &check, check.time + ms10)),
    ];
    for (rule, edit) in cases {
        let caught = judged(edit);
        assert_eq!(caught.len(), 1, "{rule}: {caught:?}");
        assert!(caught[0].message.contains(rule), "{caught:?}");
        eprintln!("pacing: {}", caught[0].message);
    }
}

/// docs/recovery-rules.md R57: with the master not knowing a registration retried on the
/// connection it already answered, it admits the agent again under a new id, and the
/// wire shows two ids answered on one connection; the unbroken run holds. The agent
/// itself hears only the second answer, so no check of what the agent logged sees it.
#[test]
fn one_agent_id_catches_a_retried_registration_admitted_again() {
    let breakage = Breakage {
        master_forgets_retried_registration: true,
        ..Breakage::default()
    };
    let caught = caught_by("reliable_registration.toml", 0, breakage, "one_agent_id");
    assert_eq!(caught.len(), 1, "{caught:?}");
    assert!(caught[0].contains("(R57)"), "{caught:?}");
    let unbroken = caught_by(
        "reliable_registration.toml",
        0,
        Breakage::default(),
        "one_agent_id",
    );
    assert!(unbroken.is_empty(), "{unbroken:?}");
    // The agent's own view (one id, `same_agent_id`) holds either way.
    let expectations = caught_by("reliable_registration.toml", 0, breakage, "expectations");
    assert!(expectations.is_empty(), "{expectations:?}");
}

/// docs/security.md SEC45, SEC47: the record of `regression_shutdown_ask_after_kill` seed
/// 1445 (the rogue registers as executor `exec-1-1` at 11.183 s, a run the agent admitted
/// at 3.28 s) holds as run: the agent's end wrote `ShutdownExecutor` the moment the
/// registration reached it. The `refusal` oracle catches, on that record: the refusal
/// made a close without a word (what `admission::refusal` made `vec![]` does: the
/// dropped outbox shuts the agent's side down; or a close by the agent, not its death),
/// the registration left unanswered (the class the rogue's three seconds caught, now
/// measured from its arrival at the agent's end) or answered late, and a frame other
/// than a refusal. A close at the agent's death, and a registration a `delay_message`
/// held in the network (it reaches the agent later, and is answered then), hold.
#[test]
fn refusal_catches_a_refusal_without_shutdown_executor_and_one_left_hanging() {
    use revenant_sim::oracles::refusal;
    use revenant_sim::registration_answers::{
        Answer, Record, EXECUTOR_REGISTERED, SHUTDOWN_EXECUTOR,
    };
    use std::time::Duration;
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios/regression_shutdown_ask_after_kill.toml");
    let scenario = Scenario::load(&path).expect("scenario parses");
    let run = cluster::run(&scenario, 1445, &RunOptions::default());
    let sync = Duration::from_secs_f64(scenario.agent.disk_group_sync_ms / 1000.0);
    let record = run.observations.registration_answers.clone();
    assert!(refusal::judge(&record, sync).is_empty());
    assert_eq!(refusal::judged(&record, sync), (1, 1));
    let rogue = record
        .registrations
        .iter()
        .position(|r| r.pid.is_none())
        .expect("the rogue's registration");
    let (at, answer) = record.registrations[rogue].answer.expect("answered");
    assert_eq!(answer, Answer::Wrote(SHUTDOWN_EXECUTOR));
    assert_eq!(at, record.registrations[rogue].reached);
    let edited = |edit: &dyn Fn(&mut Record)| {
        let mut record = record.clone();
        edit(&mut record);
        refusal::judge(&record, sync)
    };
    let answer_with = |answer: Option<(Duration, Answer)>| {
        move |r: &mut Record| r.registrations[rogue].answer = answer
    };
    let late = at + refusal::answer_within(sync) + Duration::from_millis(1);
    type Edit<'a> = &'a dyn Fn(&mut Record);
    let caught: [(&str, Edit); 5] = [
        (
            "shut its side of the connection down on a RegisterExecutor of executor exec-1-1",
            &answer_with(Some((at, Answer::ShutDown))),
        ),
        (
            "closed the connection on a RegisterExecutor",
            &answer_with(Some((at, Answer::LetGo))),
        ),
        ("until the run ended", &answer_with(None)),
        (
            "unanswered for 1.401s",
            &answer_with(Some((late, Answer::Wrote(SHUTDOWN_EXECUTOR)))),
        ),
        (
            "with ExecutorRegistered (SEC32",
            &answer_with(Some((at, Answer::Wrote(EXECUTOR_REGISTERED)))),
        ),
    ];
    for (message, edit) in caught {
        let violations = edited(edit);
        assert_eq!(violations.len(), 1, "{message}: {violations:?}");
        assert_eq!(violations[0].oracle, "refusal");
        assert!(
            violations[0].message.contains(message),
            "{message}: {violations:?}"
        );
        eprintln!("refusal: {}", violations[0].message);
    }
    let holds: [Edit; 2] = [
        // Closed by the agent's death at that moment.
        &|r| {
            r.registrations[rogue].answer = Some((at, Answer::LetGo));
            r.incarnation_ends.retain(|(_, _, i)| *i != 1);
            r.incarnation_ends.push((at, 1, 1));
        },
        // Held 5 s in the network: it reaches the agent then, and is answered then.
        &|r| {
            let held = Duration::from_secs(5);
            r.registrations[rogue].reached += held;
            r.registrations[rogue].answer = Some((at + held, Answer::Wrote(SHUTDOWN_EXECUTOR)));
        },
    ];
    for edit in holds {
        let violations = edited(edit);
        assert!(violations.is_empty(), "{violations:?}");
    }
}

/// docs/security.md SEC48: `swarm_master_failover` seed 1 draws the rogue agent, which
/// registers at 54.88 s (master1 answers `NotLeader`, master2 refuses it) and again at
/// 110.2 s, after a failover (master1 refuses it). As run, the `rogue_agent` oracle
/// holds. With the master skipping the `register_agents` ACL (`master_ignores_agent_acls`,
/// what the mutant `agent_refused -> false` does) it fails: the rogue agent is admitted.
/// On the run's record, a refusal removed (no answer), written late, or answered with
/// another frame, and a `ShutdownAgent` whose reason does not name the ACL, are caught.
#[test]
fn rogue_agent_catches_an_agent_the_acls_refuse_admitted() {
    use revenant_sim::master_wire::What;
    use revenant_sim::oracles::rogue_agent;
    use std::time::Duration;
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/swarm_master_failover.toml");
    let scenario = Scenario::load(&path).expect("scenario parses");
    let run = cluster::run(&scenario, 1, &RunOptions::default());
    let own: Vec<_> = run
        .violations
        .iter()
        .filter(|v| v.oracle == "rogue_agent")
        .collect();
    assert!(own.is_empty(), "{own:?}");
    let wire = run.observations.rogue_agent_wire.clone();
    let reads = wire
        .events
        .iter()
        .filter(|e| {
            matches!(
                e.what,
                What::Read {
                    kind: "register_agent",
                    ..
                }
            )
        })
        .count();
    assert!(
        reads >= 2,
        "the rogue agent's registrations reached the masters: {wire:?}"
    );
    let heard = run.observations.rogue.agent_heard.clone();
    assert!(heard.iter().any(|h| h.1 == "shutdown_agent"), "{heard:?}");

    let broken = cluster::run(
        &scenario,
        1,
        &RunOptions {
            breakage: Breakage {
                master_ignores_agent_acls: true,
                ..Breakage::default()
            },
            ..RunOptions::default()
        },
    );
    let caught: Vec<_> = broken
        .violations
        .iter()
        .filter(|v| v.oracle == "rogue_agent")
        .collect();
    assert!(
        caught
            .iter()
            .any(|v| v.message.contains("agent_registered")),
        "{caught:?}"
    );
    eprintln!("rogue_agent: {}", caught[0].message);

    let refusal = wire
        .events
        .iter()
        .position(|e| {
            matches!(
                e.what,
                What::Wrote {
                    kind: "shutdown_agent",
                    ..
                }
            )
        })
        .expect("a refusal");
    let edited = |edit: &dyn Fn(&mut revenant_sim::master_wire::Record)| {
        let mut record = wire.clone();
        edit(&mut record);
        rogue_agent::judge_masters(&record)
    };
    type Edit<'a> = &'a dyn Fn(&mut revenant_sim::master_wire::Record);
    let cases: [(&str, Edit); 3] = [
        // Never answered: the rogue agent hangs up after listening for three seconds.
        ("did not answer", &|r| {
            let gone = r.events.remove(refusal);
            let at = gone.time + revenant_sim::rogue_agent::LISTEN;
            for e in &mut r.events {
                if e.connection == gone.connection && e.what == What::Closed {
                    e.time = at;
                }
            }
            r.events.sort_by_key(|e| e.time);
        }),
        ("with shutdown_agent at", &|r| {
            r.events[refusal].time += rogue_agent::ANSWER_WITHIN + Duration::from_millis(1)
        }),
        ("with other at", &|r| {
            r.events[refusal].what = What::Wrote {
                kind: "other",
                agent: None,
            }
        }),
    ];
    for (message, edit) in cases {
        let violations = edited(edit);
        assert_eq!(violations.len(), 1, "{message}: {violations:?}");
        assert!(
            violations[0].message.contains(message),
            "{message}: {violations:?}"
        );
        eprintln!("rogue_agent: {}", violations[0].message);
    }
    let mut reasons = heard.clone();
    for h in &mut reasons {
        if h.1 == "shutdown_agent" {
            h.3 = "agent was removed by the master".into();
        }
    }
    let violations = rogue_agent::judge_heard(&reasons);
    assert!(!violations.is_empty() && violations[0].message.contains("does not name the ACL"));
    assert!(rogue_agent::judge_heard(&heard).is_empty());
}

#![allow(clippy::disallowed_methods)]
//! The catalogue: every scenario under `scenarios/` runs, holds every oracle, and its
//! recovery trace (the agent's and master's decisions, with simulated times and stable
//! ids) matches the reviewed snapshot in `tests/snapshots/`. Fixed scenarios run seed 0
//! and keep their full recovery trace; swarm and regression scenarios (many generated
//! tasks) run seed 0 or their first pinned seed and keep the shorter recovery summary
//! plus their tasks' final states. A change of behaviour shows up here as a snapshot
//! diff; `cargo insta review` accepts it.
//!
//! `a_rule_change_fails_exactly_its_snapshots` changes one rule on purpose (tasks of
//! executors that did not re-register in time become TASK_FAILED instead of TASK_LOST)
//! and checks that exactly the snapshots recording that decision change.

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use revenant_sim::cluster::{self, RunOptions};
use revenant_sim::scenario::Scenario;

fn scenario_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(format!("{name}.toml"))
}

/// The snapshot text of a scenario run with `options`, and its oracle violations.
fn snapshot_text(name: &str, options: &RunOptions) -> (String, Vec<String>) {
    let scenario = Scenario::load(&scenario_path(name)).expect("scenario parses");
    let seed = revenant_sim::trace::snapshot_seed(&scenario);
    let result = cluster::run(&scenario, seed, options);
    let violations: Vec<String> = result
        .violations
        .iter()
        .map(|v| format!("[{}] {:?}: {}", v.oracle, v.time, v.message))
        .collect();
    let mut text = revenant_sim::trace::snapshot_trace(&scenario, &result.trace);
    if revenant_sim::trace::summarised(&scenario) {
        let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
        for (state, reason) in result.final_states.values() {
            *outcomes
                .entry(format!("{} ({reason})", state.as_str_name()))
                .or_default() += 1;
        }
        text.push_str(&format!("seed {seed}, final states of the tasks:\n"));
        for (outcome, count) in outcomes {
            text.push_str(&format!("  {outcome} x{count}\n"));
        }
    }
    (text, violations)
}

fn recovery_trace(name: &str) -> String {
    let (text, violations) = snapshot_text(name, &RunOptions::default());
    assert!(
        violations.is_empty(),
        "{name}: oracles failed:\n{}",
        violations.join("\n")
    );
    text
}

/// Every scenario file's stem.
fn all_scenarios() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut out: Vec<String> = std::fs::read_dir(&dir)
        .expect("scenarios/")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "toml"))
        .map(|path| path.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    out.sort();
    out
}

/// A stored snapshot's content (after insta's header).
fn stored_snapshot(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("snapshots")
        .join(format!("scenario_traces__{name}.snap"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    let body = text.splitn(3, "---\n").nth(2).expect("insta header");
    body.trim_end().to_owned()
}

macro_rules! catalogue {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                insta::assert_snapshot!(stringify!($name), recovery_trace(stringify!($name)));
            }
        )*

        /// The scenarios with a snapshot test above.
        fn listed() -> Vec<&'static str> {
            vec![$(stringify!($name)),*]
        }
    };
}

/// Every scenario file (fixed, swarm and regression) has a snapshot test, and every
/// snapshot test a scenario file.
#[test]
fn every_scenario_has_a_snapshot_test() {
    let listed = listed();
    let files = all_scenarios();
    for name in &files {
        Scenario::load(&scenario_path(name)).expect("every scenario parses");
    }
    let missing: Vec<&String> = files
        .iter()
        .filter(|f| !listed.contains(&f.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "scenarios without a snapshot test: {missing:?}"
    );
    let stale: Vec<&&str> = listed
        .iter()
        .filter(|l| !files.iter().any(|f| f == *l))
        .collect();
    assert!(
        stale.is_empty(),
        "snapshot tests without a scenario: {stale:?}"
    );
}

/// The decision the rule under change makes, found in a snapshot's text: at the instant
/// the agent destroys an executor that did not re-register in time, it reports a task
/// TASK_LOST.
fn records_reregistration_timeout_loss(snapshot: &str) -> bool {
    let lines: Vec<&str> = snapshot.lines().collect();
    lines.iter().any(|line| {
        if !line.contains("executor did not re-register in time: destroying it") {
            return false;
        }
        let instant = line.split_whitespace().next().unwrap_or_default();
        lines.iter().any(|other| {
            other.split_whitespace().next() == Some(instant)
                && other.contains("status update accepted")
                && other.contains("state=TASK_LOST")
        })
    })
}

#[test]
fn a_rule_change_fails_exactly_its_snapshots() {
    let options = RunOptions {
        breakage: revenant::breakage::Breakage {
            reregistration_timeout_fails_tasks: true,
            ..Default::default()
        },
        ..RunOptions::default()
    };
    let mut changed = BTreeSet::new();
    let mut recording = BTreeSet::new();
    for name in all_scenarios() {
        let stored = stored_snapshot(&name);
        if records_reregistration_timeout_loss(&stored) {
            recording.insert(name.clone());
        }
        let (text, _) = snapshot_text(&name, &options);
        if text.trim_end() != stored {
            changed.insert(name);
        }
    }
    assert!(
        !recording.is_empty(),
        "no snapshot records a loss at the re-registration timeout"
    );
    assert_eq!(
        changed, recording,
        "the scenarios whose trace the rule change altered differ from those whose snapshot records the rule's decision"
    );
}

catalogue!(
    acknowledgement_delayed_past_retry,
    additive_reconfiguration_takes_new_resources,
    agent_dies_at_executor_launch,
    agent_dies_between_write_and_sync,
    agent_leaves_on_sigusr1,
    agent_reconfiguration_additive_keeps_id,
    agent_reconfiguration_incompatible_fails_recovery,
    agent_restart_reconnects_executor,
    checkpointed_resources_resent_on_reregistration,
    cleanup_shuts_down_executors,
    completed_executor_not_relaunched,
    dangling_latest_agent_stops_recovery,
    dangling_latest_run_ignored,
    disk_full_during_checkpoint,
    dropped_forward_replayed_after_restart,
    duplicate_ack_ignored,
    duplicate_update_before_ack,
    dynamic_reservation_not_offered_fails_recovery,
    empty_forked_pid_is_missing,
    executor_gives_up_after_recovery_timeout,
    executor_terminated_while_agent_down,
    executor_wake_broken_falls_back,
    forked_pid_from_another_boot_not_adopted,
    kill_of_unknown_task_reported_lost,
    live_run_dir_deleted_orphan_destroyed,
    stale_registration_from_earlier_connection_ignored,
    kill_queued_task_during_executor_registration,
    kill_task_after_restart,
    master_failover,
    multiple_agents_on_one_host,
    multiple_frameworks,
    non_checkpointing_framework_loses_task,
    non_checkpointing_task_leaves_nothing_in_meta,
    non_checkpointing_task_killed_during_launch,
    non_strict_recovery_counts_corruption,
    partitioned_agent_removed,
    ping_timeout_during_recovery,
    reboot_registers_new_agent,
    reboot_then_stop_before_registration,
    reboot_with_changed_resources_registers_new_agent,
    reboot_with_changed_resources_then_stop_before_registration,
    reconcile_explicit_and_implicit,
    reconcile_lost_task,
    reconcile_unknown_task_waits_for_awaited_agent,
    reconnect_executor_retry,
    recovery_read_error_stops_recovery,
    regression_acknowledged_update_wiped_by_operator,
    regression_agent_registers_on_dead_connection,
    regression_completed_framework_collected,
    regression_crash_mid_collection,
    regression_dangling_latest_after_disk_fault,
    regression_dangling_latest_met_after_a_crash,
    regression_duplicate_submission_relaunches_lost_task,
    regression_executor_registration_timeout,
    regression_failed_over_scheduler_forgets_open_tasks,
    regression_forged_terminal_update_before_real_one,
    regression_framework_failover_timeout,
    regression_framework_one_way_dead_connection,
    regression_framework_partition_dead_connection,
    regression_gc_across_restarts,
    regression_hung_executors_agent_machine,
    regression_hung_executors_master_failover,
    regression_killed_queued_task_destroys_executor,
    regression_launch_of_task_with_unacknowledged_terminal_update,
    regression_liveness_after_master_answer,
    regression_master_answer_ahead_of_update_stream,
    regression_master_restart_forgets_rebooted_agent,
    regression_meta_collected_before_sandbox,
    regression_nonstrict_failed_listing,
    regression_nonstrict_resources_read_error,
    regression_old_agent_collected,
    regression_old_agent_listing_fails,
    regression_old_agent_rescheduled_after_restart,
    regression_orphan_executor_destroyed,
    regression_reboot_while_machine_off,
    regression_reconcile_unknown_task_new_master,
    regression_recovered_unsynced_task_log,
    regression_recovered_unsynced_task_log_shared_executor,
    regression_recovered_unsynced_update_record,
    regression_relaunched_executor_old_run_collected,
    regression_shared_executor_ids_oracles,
    regression_shared_executor_reregistration_frame,
    regression_shutdown_ask_after_kill,
    regression_removed_agent_restarts,
    regression_resources_death_after_rename,
    regression_rogue_framework_failover_during_master_recovery,
    regression_rogue_framework_takeover_after_failover,
    regression_rogue_framework_takeover_after_master_restart,
    regression_rogue_agent_refused,
    regression_rogue_asked_to_reconnect,
    regression_rogue_reregisters_with_wrong_secret,
    regression_stale_reregistration_after_restart,
    regression_removed_agent_updates_superseded,
    regression_task_for_terminating_executor,
    regression_task_placed_while_registration_reply_lost,
    regression_updates_of_an_agent_that_left_while_disconnected,
    regression_update_after_terminal_update,
    regression_update_resent_after_terminal_update,
    regression_updates_recovered_by_an_agent_then_removed,
    reliable_registration,
    removal_failed_by_disk_tried_again,
    sandbox_creation_fails_task,
    removed_agent_late_pong_answered,
    removed_agent_recovery_notice_to_new_leader,
    removed_agent_updates_refused,
    replay_checkpointed_update_after_restart,
    reregister_pending_task,
    reregister_terminated_executor,
    restart_before_executor_launch_fails_task,
    scheduler_failover_while_agent_down,
    static_reservation_dropped_fails_recovery,
    status_update_retried_until_acknowledged,
    strict_recovery_stops_on_bad_magic,
    strict_recovery_stops_on_corruption,
    strict_recovery_stops_on_damaged_length,
    strict_recovery_stops_on_foreign_short_header,
    strict_recovery_stops_on_undecodable_record,
    strict_recovery_stops_on_zeroed_header,
    swarm_agent_machine,
    swarm_master_failover,
    swarm_zk,
    task_never_reached_executor_lost,
    tasks_missing_from_agent_reconciled,
    torn_down_framework_executor_killed_after_grace_period,
    torn_down_framework_shut_down_on_reregistration,
    torn_header_cut_on_restart,
    torn_update_append_cut_on_restart,
    undecodable_record_cut_on_restart,
    unexpected_ack_ignored,
    unregistered_executor_lost_after_restart,
    zk_join_answer_lost,
    zk_leader_cut_from_zookeeper,
);

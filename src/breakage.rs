//! Deliberately broken behaviours, for the simulator's oracle self-tests only: each one
//! breaks one rule, so that a test can show the oracle guarding that rule fails. This
//! module, the fields that hold a `Breakage` and the code each switch guards exist only
//! with the `breakage` feature, which only the simulator turns on; every check goes
//! through `broken!`, the constant `false` without it (docs/design.md D11). No flag or
//! environment variable sets them (D12); only code that builds a configuration by hand
//! (the simulator's tests) can, and all are off by default.

/// Which rules to break.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Breakage {
    /// The agent acknowledges status updates to the executor without checkpointing them.
    pub skip_update_checkpoint: bool,
    /// After a terminal update is acknowledged, the agent reports the task running again.
    pub resurrect_after_terminal: bool,
    /// The agent recovers its state even after a reboot (ignores the boot id).
    pub ignore_boot_id: bool,
    /// Executors wait for their agent forever.
    pub executor_ignores_recovery_timeout: bool,
    /// Checkpoint files are overwritten in place without a sync (no temp file, no rename).
    pub non_atomic_checkpoints: bool,
    /// The agent does not resume forwarding status updates after (re-)registering.
    pub no_resume_after_registration: bool,
    /// The agent panics when recovery met anything unexpected (a missing file, a torn
    /// record), as careless code that unwraps would.
    pub panic_on_recovery_warning: bool,
    /// The agent ignores the resources it recovers from `resources.info`.
    pub forget_checkpointed_resources: bool,
    /// Tasks of executors that did not re-register in time are reported TASK_FAILED
    /// instead of TASK_LOST (a deliberate rule change, for the snapshot test that shows
    /// exactly the snapshots recording that decision change).
    pub reregistration_timeout_fails_tasks: bool,
    /// The agent ignores the master's ShutdownFramework: the executors of a torn-down
    /// framework keep running.
    pub ignore_shutdown_framework: bool,
    /// The agent ignores the master's CheckpointResources: its checkpointed resources
    /// drift from the master's view.
    pub ignore_checkpoint_resources: bool,
    /// After a terminal update is acknowledged, the agent reports the task terminal
    /// again, in another state, under a new uuid (a second terminal update).
    pub second_terminal_update: bool,
    /// After the framework acknowledged a non-terminal update, the agent forwards it again
    /// behind the next update of its stream (an old uuid after a later one).
    pub resend_acknowledged_update: bool,
    /// The agent takes a status update from a connection on which no executor
    /// registered, for the executor the update names (docs/security.md SEC16 broken):
    /// a rogue local process's forged update goes through (the `rogue` oracle).
    pub accept_unregistered_updates: bool,
    /// Group commit pipelined sends a batch's acknowledgements and forwards when it
    /// starts the batch's sync instead of when the sync is done (docs/recovery-latency.md
    /// P12 broken).
    pub release_before_durable: bool,
    /// The agent launches every executor twice.
    pub launch_executor_twice: bool,
    /// The agent reports a killed task TASK_KILLED itself and leaves its executor running.
    pub kill_leaves_executor_running: bool,
    /// Executors panic when they end (a panic in a task other than the agent's).
    pub executor_panics: bool,
    /// The agent keeps an unregistered executor with no task left (no registration
    /// timeout, no destruction when its last queued task is killed): the executor is
    /// left behind.
    pub keep_idle_unregistered_executors: bool,
    /// A recovering agent leaves alone the executor processes no recovered run claims
    /// (docs/lifecycle-rules.md rule 20): an executor whose launch was never
    /// checkpointed lives on.
    pub keep_orphan_executors: bool,
    /// Garbage collection as it once was: a framework's directories only collected when
    /// it was torn down, a completed executor's own sandbox never, recovery rescheduling
    /// completed runs for a whole `gc_delay` again, and no old agent collected.
    pub leak_completed_directories: bool,
    /// Directories due together are removed in path order (meta before sandbox).
    pub remove_meta_first: bool,
    /// The checkpoint store skips the parent directory's sync after renaming a
    /// checkpoint file or a `latest` link into place: the new name may vanish in a power
    /// loss although the agent acted on it (found by crash points with power losses).
    pub skip_dir_sync: bool,
    /// The master as it once was: it never reads a framework's `failover_timeout`, so a
    /// framework that stays disconnected is never removed (docs/lifecycle-rules.md rule 8).
    pub master_ignores_failover_timeout: bool,
    /// The master as it once was: an explicit reconciliation of a task it does not know
    /// is answered only once `agent_reregister_timeout` has passed since its election,
    /// even when no agent is awaited (docs/lifecycle-rules.md rule 13).
    pub master_waits_to_reconcile_unknown_tasks: bool,
    /// The master forgets that it removed an agent: a removed agent that re-registers
    /// under its old id is admitted again (docs/task-lifecycle.md L25 broken).
    pub master_readmits_removed_agents: bool,
    /// The master does not know a registration retried on the connection it already
    /// answered: it admits the agent again under a new id (docs/recovery-rules.md R57
    /// broken, the `one_agent_id` oracle).
    pub master_forgets_retried_registration: bool,
    /// The master forwards an agent's terminal update without recording it: its `/state`
    /// keeps the task in its earlier state (docs/task-lifecycle.md L26 broken).
    pub master_forgets_terminal_updates: bool,
    /// The master answers a reconciliation of a task it knows with TASK_STAGING, not
    /// the task's latest state (docs/task-lifecycle.md L30 broken).
    pub master_reconciles_stale_state: bool,
    /// The master leaves the tasks it knows of an explicit reconciliation unanswered
    /// (docs/task-lifecycle.md L31 broken).
    pub master_skips_known_reconciliations: bool,
    /// The master answers a reconciliation of a task it does not know TASK_LOST at once,
    /// even while an agent that could hold it may still re-register
    /// (docs/task-lifecycle.md L32 broken).
    pub master_reconciles_unknown_at_once: bool,
    /// Non-strict recovery counts a well-framed record that does not decode but leaves it
    /// in its log (docs/recovery-rules.md R37 broken).
    pub recovery_keeps_undecodable_record: bool,
    /// Non-strict recovery takes a listing or a `latest` link it cannot read for absent
    /// and goes on, as it once did (docs/recovery-rules.md R40 broken).
    pub recovery_skips_unreadable_listing: bool,
    /// The agent sends every unacknowledged head again at each of its wake-ups, without
    /// back-off (docs/task-lifecycle.md L28 broken).
    pub update_retries_flood: bool,
    /// The agent never retries an unacknowledged update on its timer (it still sends the
    /// heads again when it re-registers) (docs/task-lifecycle.md L29 broken).
    pub update_retries_skipped: bool,
    /// A task for an executor id whose run is terminating replaces that run in the
    /// agent's map with a new one (as it once did), instead of ending TASK_LOST
    /// (docs/lifecycle-rules.md rule 14).
    pub relaunch_over_terminated_executor: bool,
    /// Recovery schedules an executor's earlier runs as it once did: their meta
    /// directory at once, their sandbox never (docs/lifecycle-rules.md rule 15).
    pub collect_old_runs_at_once: bool,
    /// Launching a run leaves its executor's and framework's directories scheduled for
    /// collection (docs/lifecycle-rules.md rule 4).
    pub skip_unschedule_on_launch: bool,
    /// Executors give up on their agent after a tenth of `recovery_timeout`
    /// (docs/lifecycle-rules.md rule 16).
    pub executor_gives_up_early: bool,
    /// Recovery as it once was: the agent acts on what it recovered without making it
    /// durable first, so a name or a record a crashed incarnation left unsynced may vanish
    /// in a later power loss after the agent told the world about it
    /// (docs/recovery-rules.md R14).
    pub skip_recovery_sync: bool,
    /// The agent launches a task whose terminal update its framework has not
    /// acknowledged yet, as it once did (docs/task-lifecycle.md L23).
    pub relaunch_ended_task: bool,
    /// A master on ZooKeeper keeps leading after its session was lost or expired (as
    /// long as it was the lowest member when it last listed the group), instead of
    /// stopping at once (docs/zookeeper.md Z4, Z15).
    pub master_leads_without_session: bool,
    /// A master on ZooKeeper elected leader claims the registry by writing an empty one
    /// instead of what it read, losing what earlier leaders acknowledged
    /// (docs/zookeeper.md Z8, Z16).
    pub master_forgets_zk_registry: bool,
    /// The master skips the `run_tasks` ACL (docs/security.md SEC22): a framework runs
    /// tasks as a user the ACLs refuse it (the `rogue` oracle, SEC36).
    pub master_skips_run_tasks_acl: bool,
    /// The master lets a framework re-register under another principal (docs/security.md
    /// SEC40): the rogue framework fails another framework over (the `rogue` oracle,
    /// SEC41).
    pub master_ignores_framework_principal: bool,
    /// The master skips the `register_agents` ACL (docs/security.md SEC22, SEC23 broken
    /// for agents): an agent whose principal the ACLs refuse is admitted (the
    /// `rogue_agent` oracle, SEC48).
    pub master_ignores_agent_acls: bool,
    /// The agent shuts a framework's executors down with no grace period: the deadline
    /// of the kill is the moment of the ask, so each is killed at the agent's next
    /// check (docs/task-lifecycle.md L36 broken).
    pub executor_shutdown_without_grace: bool,
    /// Non-strict recovery warns of the damage it meets but counts none: `/metrics`
    /// reports no recovery error (docs/recovery-rules.md R43 broken).
    pub recovery_counts_no_errors: bool,
    /// After an additive change of `--resources`, the agent keeps its old id and tells
    /// the master its checkpointed resources instead of its flags' (docs/recovery-rules.md
    /// R9 and docs/task-lifecycle.md L37 broken).
    pub additive_change_keeps_old_resources: bool,
}

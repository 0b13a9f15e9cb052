//! The faults of a scenario: the kinds, one scheduled fault (`[[faults]]`), the agent
//! process(es) it hits, the flags a restart takes, and a swarm's rates (`[swarm]`), from
//! which the seed draws a schedule (`crate::faults`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The kinds of fault. A disk error may be aimed (docs/simulator-reach.md rule 11):
///
/// ```toml
/// [[faults]]
/// at_s = 20
/// kind = "disk_error"
/// ops = 2              # the next 2 matching operations fail
/// error = "eio"        # or enospc, or fsync (file syncs only)
/// path = "meta/slaves" # only under this prefix (relative to the work directory)
/// op = "rename"        # only this kind (see crate::disk_faults::OP_NAMES)
/// ```
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// The agent process dies (restarts after `restart_after_s`).
    AgentCrash,
    /// The agent process dies at its next N-th filesystem operation (`ops`), e.g.
    /// between a write and its sync, then restarts.
    AgentCrashAtWrite,
    /// The machine loses power: un-synced data may be lost or torn, every process
    /// dies, the boot id changes; it boots again after `restart_after_s`.
    Reboot,
    /// One executor process dies.
    ExecutorCrash,
    /// A framework's scheduler dies and, after `restart_after_s` (default 5), fails
    /// over: a new instance registers with the same framework id.
    FrameworkCrash,
    /// While the agent is down, an operator removes the frameworks' checkpoints
    /// (`meta/slaves/<id>/frameworks/*`, durably): the agent no longer knows their tasks.
    WipeFrameworkMeta,
    /// The operator sends the agent SIGUSR1: it unregisters, its executors are killed,
    /// it exits (and its supervisor starts it again, as a new agent).
    AgentUnregister,
    /// The leading master (the holder of the lease) dies; restarts after
    /// `restart_after_s`, if given.
    MasterCrash,
    /// Partition between `a` and `b` for `duration_s`.
    Partition,
    /// Network latency up to `max_ms` for `duration_s`.
    Delay,
    /// Flip one byte of one `task.updates` file (corruption).
    Corrupt,
    /// Jump the agent machine's wall clock by `jump_s`.
    ClockJump,
    /// The agent machine's disk fails its next `ops` operations with `error` (`eio`,
    /// `enospc`, or `fsync` for failed file syncs that make nothing durable); with
    /// `path` and/or `op`, only the next `ops` operations under that prefix and of that
    /// kind (docs/simulator-reach.md rule 11).
    DiskError,
    /// The next `count` (default 1) wire messages of kind `message` (`register_executor`,
    /// `status_update`, `run_task`, ... or `RegisterExecutor` style) are lost, optionally
    /// only those `from` one host, `to` another, about `task`, or (status updates) in
    /// `state`. Executors and the agent share the `agent1` host. In a swarm the seed draws the kind
    /// (see `crate::faults`).
    Drop,
    /// Like `drop`, but the next `count` matching messages arrive twice (the copy right
    /// after the original).
    Duplicate,
    /// Like `drop`, but before each of the next `count` matching messages (only
    /// `acknowledgement` and `status_update`, which carry a uuid) a copy with a uuid its
    /// sender never made arrives.
    Forge,
    /// A framework's scheduler tears the framework down (`framework`, default: one drawn
    /// from the seed): the master kills its tasks and shuts it down on the agent.
    FrameworkTeardown,
    // Kinds below were added after the first swarms: a swarm draws each of them (and
    // `corrupt`, `drop`, `duplicate`, `forge`, `wipe_framework_meta`) from a random
    // stream of its own, so that adding one to a swarm leaves the other draws as they
    // were (see `crate::faults`). New kinds go at the end: the order of this enum is the
    // order in which a swarm draws its kinds.
    /// The agent machine's next append under an agent's work directory writes only a
    /// prefix of its bytes (at least one, not all) and then fails with `error` (`eio`,
    /// default, or `enospc`), as a short `write` does: the file ends in a partial record,
    /// with no reboot. The agent stops on the error and is restarted.
    TornAppend,
    /// While the agent is down, an operator deletes one executor's latest run directory
    /// (`.../executors/<id>/runs/<container>`), leaving `runs/latest` dangling: a
    /// completed run's, or with `how = "live"` the run of an executor still alive
    /// (docs/simulator-reach.md 15o).
    DeleteRunDir,
    /// While the agent is down, an operator rewrites one run's `pids/forked.pid` to the
    /// pid of another live process of the machine (keeping the start time written
    /// there, as a reused pid would show).
    RewriteForkedPid,
    /// The agent dies at the moment the next `message` (as for `drop`, with optional
    /// `from`, `to`, `task`, `state`) passes: a message to the agent is lost with it
    /// (it died before reading it); any other is delivered (it died right after sending
    /// it). Restarts after `restart_after_s` (default 1).
    AgentCrashAtMessage,
    /// The agent dies at its `ops`-th process operation from now (launching an
    /// executor, signalling one), after the operation took effect and before it
    /// returns; restarts 1 s later.
    AgentCrashAtProcess,
    /// The next `message` (as for `drop`, with optional `from`, `to`, `task`, `state`)
    /// and everything after it on its connection arrive `duration_s` (default 5) late.
    DelayMessage,
    /// A framework's scheduler (`framework`, default: one drawn from the seed) dies and
    /// never comes back: the master removes the framework once it has stayed
    /// disconnected for its `failover_timeout` (docs/lifecycle-rules.md rule 8).
    FrameworkLeave,
    /// With `[zookeeper]`: master `a` (`master2`; default: the leader) is partitioned
    /// from the ZooKeeper host for `duration_s` (docs/zookeeper.md Z14).
    ZkPartition,
    /// With `[zookeeper]`: the ZooKeeper host crashes and comes back, its data kept,
    /// after `restart_after_s` (default 10).
    ZkDown,
    /// With `[zookeeper]`: the server expires the session of master `a` (default: the
    /// leader) at once.
    ZkExpire,
    /// With `[zookeeper]`: the next write master `a` (default: the leader) sends to
    /// ZooKeeper (a join, a create, a registry write) is applied by the server, and its
    /// answer is lost with the connection (docs/zookeeper.md Z22); `message` (`join`,
    /// `create` or `set`) limits it to that kind of write.
    ZkLoseReply,
    /// While the agent is down, an operator damages one run's `pids/libprocess.pid`,
    /// the executor's wake endpoint (docs/recovery-rules.md R31, R35): `how` is
    /// `missing`, `stale` (another run's endpoint) or `torn`; `task` names the executor.
    /// A swarm also draws `lost`, which it turns into a `drop` of `wake_executor`.
    BreakWake,
    /// While the agent is down, an operator deletes the latest agent's checkpoint
    /// directory (`meta/slaves/<id>`) and leaves `meta/slaves/latest` naming it
    /// (docs/recovery-rules.md R46, docs/simulator-reach.md 15e).
    DeleteAgentDir,
    /// An operator restarts the agent with other `--resources` (docs/simulator-reach.md
    /// 15f): the agent is stopped and started again after `restart_after_s` with its
    /// current resources changed as `how` says: `more` (`count` times 256 more `mem`) or
    /// `new` (`count` times 1024 more `disk`), both with `--reconfiguration_policy
    /// additive`, or `less` (half the `mem`, `--reconfiguration_policy equal`), which
    /// must stop recovery (docs/recovery-rules.md R9). Only while the agent runs.
    ReconfigureAgent,
}

/// One scheduled fault.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    /// When, seconds.
    pub at_s: f64,
    /// What.
    pub kind: FaultKind,
    /// Restart after this long (crashes and reboots).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_after_s: Option<f64>,
    /// For `agent_crash_at_write`: die at the N-th filesystem operation from now. For
    /// `torn_append`: at most N bytes of the append stay (docs/simulator-reach.md 13k).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ops: Option<u64>,
    /// For partitions and delays.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_s: Option<f64>,
    /// For partitions: the two hosts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub a: Option<String>,
    /// For partitions: the two hosts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub b: Option<String>,
    /// For delays.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ms: Option<u64>,
    /// For clock jumps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jump_s: Option<f64>,
    /// For executor crashes: which task's executor; for `rewrite_forked_pid`: which
    /// executor's `forked.pid` (a command executor is named after its task).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    /// For disk errors: `eio`, `enospc` or `fsync`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// For drops: the message kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// For drops: the sending host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// For drops: the receiving host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// For drops: how many matching messages (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    /// For drops of status updates: the update's state (`TASK_RUNNING`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// For crashes and reboots: the restarted agent's flags (fields left out keep their
    /// value), e.g. `agent = { resources = "cpus:2;mem:512" }`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<RestartFlags>,
    /// For agent process faults (`agent_crash`, `agent_crash_at_write`,
    /// `agent_unregister`, `wipe_framework_meta`) when `agents` > 1: which agent process,
    /// `2` or `"all"` (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_agent: Option<AgentTarget>,
    /// For framework teardowns: which framework (1, 2, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub framework: Option<u32>,
    /// For disk errors: only operations on paths under this prefix (relative to agent
    /// 1's work directory, or absolute), e.g. `meta/slaves` or `slaves`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// For disk errors: only operations of this kind (`write`, `append`, `sync`,
    /// `sync_dir`, `rename`, `remove`, `create_dir`, `read`, `list_dir`, ... or the groups
    /// `writes`, `syncs`, `mutations`; see `crate::disk_faults::OP_NAMES`). For
    /// `corrupt`: the record field damaged (`length_field`, `crate::corrupt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub op: Option<String>,
    /// For `rewrite_forked_pid`: `"other"` writes the named process's real start time and
    /// another boot's id (a reused pid from another boot), instead of keeping the run's
    /// start time and boot. For `disk_error`, `"next"`: the error waits for the agent's
    /// next start (the disk is not reset then; docs/simulator-reach.md rule 12k).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot: Option<String>,
    /// For `break_wake`: `missing`, `stale` or `torn`; for `delete_run_dir`: `live`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub how: Option<String>,
    /// For reboots: un-synced appended bytes that survive in length may read as zeroes
    /// (docs/crash-points.md CP-7), drawn from a stream seeded with this number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zero_fill: Option<u64>,
}

/// Which agent process(es) of the machine a fault hits.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(untagged, expecting = "an agent number (1, 2, ...) or \"all\"")]
pub enum AgentTarget {
    /// Agent k (1, 2, ...).
    One(u32),
    /// `"all"` (checked by [`Scenario::validate`]).
    Word(String),
}

impl AgentTarget {
    /// The agents (1-based) hit, in order, out of `agents`.
    pub fn agents(target: Option<&AgentTarget>, agents: u32) -> Vec<u32> {
        match target {
            None => vec![1],
            Some(AgentTarget::One(index)) => vec![*index],
            Some(AgentTarget::Word(_)) => (1..=agents.max(1)).collect(),
        }
    }
}

/// Fault kinds that hit one agent process rather than the machine.
pub const AGENT_PROCESS_FAULTS: &[FaultKind] = &[
    FaultKind::AgentCrash,
    FaultKind::AgentCrashAtWrite,
    FaultKind::AgentUnregister,
    FaultKind::WipeFrameworkMeta,
    FaultKind::DeleteRunDir,
    FaultKind::DeleteAgentDir,
    FaultKind::ReconfigureAgent,
    FaultKind::RewriteForkedPid,
    FaultKind::AgentCrashAtMessage,
    FaultKind::AgentCrashAtProcess,
];

/// Fault kinds that act on one framework's scheduler (and may name it with `framework`).
pub const FRAMEWORK_FAULTS: &[FaultKind] = &[
    FaultKind::FrameworkTeardown,
    FaultKind::FrameworkCrash,
    FaultKind::FrameworkLeave,
];

/// Fault kinds that act on the next wire messages of one kind (the frame filter of
/// [`crate::drops`]).
pub const MESSAGE_FAULTS: &[FaultKind] = &[
    FaultKind::Drop,
    FaultKind::Duplicate,
    FaultKind::Forge,
    FaultKind::AgentCrashAtMessage,
    FaultKind::DelayMessage,
];

impl FaultKind {
    /// The kind as a scenario spells it.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Drop => "drop",
            FaultKind::Duplicate => "duplicate",
            FaultKind::Forge => "forge",
            FaultKind::AgentCrashAtMessage => "agent_crash_at_message",
            FaultKind::DelayMessage => "delay_message",
            FaultKind::FrameworkTeardown => "framework_teardown",
            FaultKind::FrameworkCrash => "framework_crash",
            FaultKind::FrameworkLeave => "framework_leave",
            _ => "fault",
        }
    }
}

impl FaultSpec {
    /// A fault of `kind` at `at_s` with every other field left out.
    pub fn new(at_s: f64, kind: FaultKind) -> FaultSpec {
        FaultSpec {
            at_s,
            kind,
            restart_after_s: None,
            ops: None,
            duration_s: None,
            a: None,
            b: None,
            max_ms: None,
            jump_s: None,
            task: None,
            error: None,
            message: None,
            from: None,
            to: None,
            count: None,
            state: None,
            agent: None,
            on_agent: None,
            framework: None,
            path: None,
            op: None,
            boot: None,
            how: None,
            zero_fill: None,
        }
    }
}

/// Agent flags a crash or reboot may change for the incarnations after it.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RestartFlags {
    /// `--resources` (`name:value` or `name(role):value`, `;`-separated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<String>,
    /// `--recover`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recover: Option<String>,
    /// `--reconfiguration_policy` (`equal` or `additive`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconfiguration_policy: Option<String>,
}

/// Fault rates: the seed picks which kinds are on (swarm testing) and when they happen.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Swarm {
    /// Expected faults of each kind per simulated minute, when the kind is on.
    pub per_minute: BTreeMap<FaultKind, f64>,
    /// Probability that each kind is on in a run.
    #[serde(default = "half")]
    pub kind_on_probability: f64,
    /// Restart delays are drawn from `[min, max]`, seconds.
    #[serde(default = "restart_range")]
    pub restart_after_s: [f64; 2],
    /// Timer boundaries: the share (0 to 1) of drawn downtimes (restart delays),
    /// partition and delay durations that are put just below or just above one of the
    /// timeouts in force instead (see `crate::faults::timeouts_in_force`). Default 0.
    #[serde(default)]
    pub boundary_weight: f64,
    /// Workload knob: the agent's `--gc_delay` is drawn from `[min, max]` seconds (one
    /// value per run) instead of the `[agent]` flag.
    #[serde(default)]
    pub gc_delay_s: Option<[f64; 2]>,
    /// Workload knob: each generated task carries, with this probability, task data of
    /// a size drawn up to just under the wire's frame maximum.
    #[serde(default)]
    pub large_task_fraction: f64,
    /// Workload knob: each generated task names, with this probability, one of a few
    /// executor ids of its framework (`exec-<framework>-<k>`, k < 3) instead of a command
    /// executor of its own, so that executors run several tasks and ids are launched
    /// again after their run completed (docs/lifecycle-rules.md rules 14, 15). Default 0.
    #[serde(default)]
    pub shared_executor_fraction: f64,
    /// Workload knob: each executor process the agent launches hangs, with this
    /// probability, before it registers (it never connects to its agent and lives until
    /// killed), so that the agent's executor registration timeout strikes within the
    /// run (docs/lifecycle-rules.md rule 1). Default 0.
    #[serde(default)]
    pub hanging_executor_fraction: f64,
    /// Fault knob: this share of the disk errors the swarm draws is aimed at a path
    /// prefix, an operation kind, or both (docs/simulator-reach.md rule 11). Default 0.
    #[serde(default)]
    pub aimed_disk_error_fraction: f64,
    /// Fault knob: each drawn agent crash or reboot is followed, with this probability,
    /// by one `EIO` aimed at a read the next recovery makes (docs/simulator-reach.md
    /// rule 12k). Default 0.
    #[serde(default)]
    pub recovery_read_error_fraction: f64,
    /// Fault knob: each drawn `torn_append` keeps, with this probability, at most 1 to 11
    /// bytes, so the tear lands inside a record's header (docs/simulator-reach.md rule
    /// 13k). Default 0.
    #[serde(default)]
    pub torn_header_fraction: f64,
    /// Fault knob: each drawn reboot may, with this probability, leave the un-synced
    /// appended bytes that survive in length as zeroes, in part or whole
    /// (docs/crash-points.md CP-7). Default 0.
    #[serde(default)]
    pub zero_fill_fraction: f64,
    /// Workload knob: up to this many dynamic reservations (`cpus(<role>):0.1`) asked
    /// for by a framework at drawn times in the fault phase.
    #[serde(default)]
    pub reservations: u32,
    /// Workload knob: the frameworks' `failover_timeout` is drawn from `[min, max]`
    /// seconds (one value per run) instead of `framework_failover_timeout_s`.
    #[serde(default)]
    pub framework_failover_timeout_s: Option<[f64; 2]>,
    /// The rogue party (`crate::rogue`, docs/simulator-reach.md 14s): the share of runs
    /// in which a rogue local process on the agent machine tries to pass for an
    /// executor. Drawn from a stream of its own; default 0 (no rogue).
    #[serde(default)]
    pub rogue_fraction: f64,
    /// The rogue agent (`crate::rogue_agent`, docs/simulator-reach.md 15p): the share of
    /// the runs that draw the rogue party in which an agent whose principal the ACLs
    /// refuse also tries to register with the masters. Drawn from a stream of its own;
    /// default 0 (none).
    #[serde(default)]
    pub rogue_agent_fraction: f64,
    /// Workload knob: the share of runs whose agent recovers without `--strict` (one
    /// draw per run, from a stream of its own), so that non-strict recovery, which cuts
    /// damage and goes on, is reached too (docs/recovery-rules.md R37). Default 0.
    #[serde(default)]
    pub non_strict_fraction: f64,
    /// Workload knob: up to this many reconciliations each framework asks for at drawn
    /// times in the fault phase, each implicit or explicit naming a task id no framework
    /// submitted (docs/task-lifecycle.md L34). Default 0.
    #[serde(default)]
    pub reconciliations: u32,
    /// Workload knob: the share of runs whose agent runs with
    /// `--executor_reregistration_retry_interval` (docs/recovery-rules.md R12), drawn
    /// from `executor_reregistration_retry_s` (one draw per run, from a stream of its
    /// own), so that R56's pace of the asks is judged under every fault kind
    /// (docs/simulator-reach.md 15n). Default 0.
    #[serde(default)]
    pub executor_reregistration_retry_fraction: f64,
    /// Workload knob: `[min, max]` seconds for the drawn retry interval (min > 0).
    #[serde(default)]
    pub executor_reregistration_retry_s: Option<[f64; 2]>,
}

fn half() -> f64 {
    0.5
}
fn restart_range() -> [f64; 2] {
    [1.0, 90.0]
}

//! Scenario files (`scenarios/*.toml`): the cluster's shape, the agent's flags, the
//! workload, the faults (a fixed schedule, or rates the seed turns into a schedule) and,
//! for fixed scenarios, the expected outcome.
//!
//! ```toml
//! name = "agent-restart-reconnects-executor"
//! rule = "a live executor is reconnected after an agent restart"
//! duration_s = 120          # simulated length of the run
//! fault_phase_s = 60        # faults happen only before this time
//! masters = 1
//! frameworks = 1            # each on a host of its own: framework, framework2, ...
//! agents = 1                # agent processes on the one agent machine (see below)
//!
//! [agent]                   # flags; durations in seconds
//! recover = "reconnect"
//! strict = true
//! recovery_timeout_s = 60
//! executor_reregistration_timeout_s = 2
//!
//! [[tasks]]
//! id = "t1"
//! command = "sleep 30"
//! checkpoint = true         # the framework's checkpoint flag
//! # framework = 2           # which framework submits it (default 1)
//! # executor = "e1"         # executor id chosen by the framework (default: the task id);
//! #                         # tasks naming one id share an executor, a later one
//! #                         # relaunches it (docs/lifecycle-rules.md rules 14, 15)
//!
//! [[faults]]
//! at_s = 10
//! kind = "agent_crash"      # see FaultKind
//! restart_after_s = 5
//!
//! [expect]
//! states = { t1 = "TASK_FINISHED" }
//! ```
//!
//! Targeted message drops: `kind = "drop"` loses the next
//! `count` (default 1) wire messages of one kind, as the receiving end would have read
//! them, optionally only those `from` one host `to` another (executors share the
//! `agent1` host with their agent), about one `task`, or (status updates) in one
//! `state`. The filter lives in the simulated network ([`crate::drops`]); production code
//! knows nothing of it.
//!
//! ```toml
//! [[faults]]
//! at_s = 0
//! kind = "drop"
//! message = "status_update"   # or "StatusUpdate"; see drops::MESSAGE_KINDS
//! from = "agent1"
//! to = "master1"
//! state = "TASK_FINISHED"
//! ```
//!
//! `kind = "duplicate"` (the next matching messages arrive twice) and `kind = "forge"`
//! (a copy with a uuid nobody made arrives just ahead of the next matching
//! acknowledgement or status update) take the same fields.
//!
//! A framework may tear itself down (`kind = "framework_teardown"`, optional `framework
//! = 2`), and ask the master for dynamic reservations:
//!
//! ```toml
//! [[reservations]]
//! at_s = 5
//! resources = "cpus(db):1"   # every resource names a role
//! ```
//!
//! Frameworks register with `framework_failover_timeout_s` (top level, default 3600):
//! the master removes a framework that stays disconnected that long
//! (docs/lifecycle-rules.md rule 8). `kind = "framework_leave"` (optional `framework =
//! 2`) makes a scheduler die for good; `framework_crash` may name its `framework` too
//! (default: drawn from the seed). `expect.frameworks_removed = [2]` lists the
//! frameworks the master must have told they were removed (and no others).
//!
//! A framework may ask the master to reconcile (`[[reconcile]]`): explicitly, naming
//! tasks and the states it believes they are in, or implicitly, naming none (every task
//! the master knows for it). The request, and from then on each answer the framework
//! hears (a master update with reason `REASON_RECONCILIATION`), are written to the trace
//! (`framework asks the master to reconcile`, `framework heard a reconciliation
//! answer`) and the history; `expect.states` can name the task ids asked about.
//!
//! ```toml
//! [[reconcile]]
//! at_s = 30
//! framework = 1                             # default 1
//! tasks = { t1 = "TASK_RUNNING", t9 = "TASK_STAGING" }
//!
//! [[reconcile]]
//! at_s = 40                                 # implicit: no tasks
//! ```
//!
//! A crash or reboot may restart the agent with other flags, kept for every later
//! incarnation: `agent = { resources = "cpus:10;mem:1024;cpus(web):1" }` (also
//! `recover`).
//!
//! A swarm (`[swarm]`) gives expected faults per minute of each kind it lists
//! (`[swarm.per_minute]`, any [`FaultKind`], message faults included: the seed draws the
//! message), and may add timer boundaries and workload knobs (docs/simulator-reach.md):
//!
//! ```toml
//! [swarm]
//! kind_on_probability = 0.5     # each listed kind is on in a run with this probability
//! restart_after_s = [1.0, 60.0] # drawn downtimes
//! boundary_weight = 0.3         # share of downtimes/partitions/delays at a timeout +/- 5%
//! gc_delay_s = [10.0, 240.0]    # --gc_delay drawn per run
//! reservations = 2              # up to 2 dynamic reservations at drawn times
//! large_task_fraction = 0.03    # tasks whose command nears the frame maximum
//! rogue_fraction = 0.2          # runs with a rogue local process posing as an executor
//! framework_failover_timeout_s = [15.0, 60.0]  # frameworks' failover_timeout per run
//! shared_executor_fraction = 0.4 # tasks on a few shared, relaunched executor ids
//! aimed_disk_error_fraction = 0.5 # disk errors aimed at a path and/or operation kind
//! recovery_read_error_fraction = 0.3 # an EIO on a read of the next recovery after a crash
//! torn_header_fraction = 0.5    # torn appends that keep at most 11 bytes
//! hanging_executor_fraction = 0.05 # executors that hang before registering
//!
//! [swarm.per_minute]
//! agent_crash = 1.0
//! torn_append = 0.2
//! drop = 0.3
//! ```
//!
//! Masters on ZooKeeper (docs/zookeeper.md Z11-Z16): a `[zookeeper]` table adds the
//! host `zk`, through which the masters elect their leader and keep their registry
//! (instead of the lease on their shared disk). Its faults name a master in `a`
//! (default: the leader at that instant):
//!
//! ```toml
//! [zookeeper]
//! session_timeout_s = 10            # default 10; the server bounds it to 4-40 s
//!
//! [[faults]]
//! at_s = 15
//! kind = "zk_partition"             # also zk_down (restart_after_s), zk_expire, zk_lose_reply
//! a = "master1"
//! duration_s = 20
//! ```
//!
//! Several agent processes on one machine (`agents = 2`): agent k listens on port
//! 5050 + k with work directory `/var/lib/revenant-k` (agent 1 keeps
//! `/var/lib/revenant`), and its trace lines name host `agent1/k` (agent 1's stay
//! `agent1`). They share the machine's disk, boot id, process table and clock, so
//! machine faults (`reboot`, `disk_error`, `corrupt`, `clock_jump`, `executor_crash`,
//! partitions of host `agent1`) hit them all. Agent process faults (`agent_crash`,
//! `agent_crash_at_write`, `agent_unregister`, `wipe_framework_meta`) hit agent 1 unless
//! the fault says `on_agent = 2` (one agent) or `on_agent = "all"`.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// A whole scenario.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// The scenario's name (defaults to the file stem).
    #[serde(default)]
    pub name: String,
    /// The rule it guards, for a person.
    #[serde(default)]
    pub rule: String,
    /// Simulated length of the run, seconds.
    #[serde(default = "default_duration")]
    pub duration_s: f64,
    /// Faults happen only before this time, seconds.
    #[serde(default = "default_fault_phase")]
    pub fault_phase_s: f64,
    /// turmoil's tick, milliseconds.
    #[serde(default = "default_tick")]
    pub tick_ms: u64,
    /// Number of masters. They share a registry disk and contend for a leader lease
    /// there; `master_crash` crashes whichever leads.
    #[serde(default = "one")]
    pub masters: u32,
    /// Number of frameworks, each on a host of its own (`framework`, `framework2`, ...);
    /// a task names its framework with `framework` (default 1).
    #[serde(default = "one")]
    pub frameworks: u32,
    /// Number of agent processes on the agent machine (agent k on port 5050 + k, work
    /// directory `/var/lib/revenant-k`; agent 1 keeps `/var/lib/revenant`).
    #[serde(default = "one")]
    pub agents: u32,
    /// Message latency range, milliseconds. Default: `[1, 20]` for swarm scenarios, a
    /// fixed `[5, 5]` for fixed ones, so that their snapshot traces do not shift when an
    /// unrelated message is added or removed.
    #[serde(default)]
    pub latency_ms: Option<[u64; 2]>,
    /// Agent flags.
    #[serde(default)]
    pub agent: AgentFlags,
    /// Master flags.
    #[serde(default)]
    pub master: MasterFlags,
    /// The tasks the framework submits.
    #[serde(default)]
    pub tasks: Vec<TaskSpec>,
    /// Generated tasks, in addition to `tasks`.
    #[serde(default)]
    pub generated_tasks: Option<GeneratedTasks>,
    /// Whether the framework checkpoints (default for tasks that do not say).
    #[serde(default = "yes")]
    pub checkpoint: bool,
    /// A fixed fault schedule.
    #[serde(default)]
    pub faults: Vec<FaultSpec>,
    /// Fault rates for swarm testing.
    #[serde(default)]
    pub swarm: Option<Swarm>,
    /// The expected outcome (fixed scenarios).
    #[serde(default)]
    pub expect: Option<Expect>,
    /// Regression scenarios pin the seeds that once failed: a sweep runs exactly these.
    #[serde(default)]
    pub pinned_seeds: Vec<u64>,
    /// Dynamic reservations a framework asks the master for.
    #[serde(default)]
    pub reservations: Vec<ReservationSpec>,
    /// The `failover_timeout` every framework registers with, seconds: how long the
    /// master keeps a disconnected framework before it removes it
    /// (docs/lifecycle-rules.md rule 14).
    #[serde(default = "framework_failover_timeout")]
    pub framework_failover_timeout_s: f64,
    /// Explicit and implicit reconciliations a framework asks the master for.
    #[serde(default)]
    pub reconcile: Vec<ReconcileSpec>,
    /// Masters elect their leader and keep their registry in a simulated ZooKeeper
    /// (docs/zookeeper.md Z11-Z16) instead of a lease on a shared disk.
    #[serde(default)]
    pub zookeeper: Option<ZkSpec>,
}

/// A reconciliation: at `at_s`, framework `framework` (default 1) asks the master for the
/// latest state of the tasks it names (explicit: task id to the state the framework
/// believes it is in), or of every task the master knows for it (implicit: no `tasks`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReconcileSpec {
    /// When, seconds.
    pub at_s: f64,
    /// The framework that asks (1, 2, ...).
    #[serde(default = "one")]
    pub framework: u32,
    /// Task ids and the states the framework believes they are in (`TASK_RUNNING`, ...);
    /// empty for an implicit reconciliation.
    #[serde(default)]
    pub tasks: BTreeMap<String, String>,
}

fn framework_failover_timeout() -> f64 {
    3600.0
}

/// A dynamic reservation: at `at_s`, framework `framework` (default 1) asks the master to
/// reserve `resources` (`name(role):value;...`, every resource with a role) on the agent.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReservationSpec {
    /// When, seconds.
    pub at_s: f64,
    /// What, e.g. `cpus(db):1`.
    pub resources: String,
    /// The framework that asks (1, 2, ...).
    #[serde(default = "one")]
    pub framework: u32,
}

fn default_duration() -> f64 {
    180.0
}
fn default_fault_phase() -> f64 {
    90.0
}
fn default_tick() -> u64 {
    10
}
fn one() -> u32 {
    1
}
fn yes() -> bool {
    true
}

/// Agent flags (durations in seconds).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentFlags {
    /// `reconnect` or `cleanup`.
    #[serde(default = "reconnect")]
    pub recover: String,
    /// `--strict`.
    #[serde(default = "yes")]
    pub strict: bool,
    /// `--recovery_timeout`.
    #[serde(default = "sixty")]
    pub recovery_timeout_s: f64,
    /// `--executor_reregistration_timeout`.
    #[serde(default = "two")]
    pub executor_reregistration_timeout_s: f64,
    /// `--executor_registration_timeout`.
    #[serde(default = "sixty")]
    pub executor_registration_timeout_s: f64,
    /// `--gc_delay`.
    #[serde(default = "gc_delay")]
    pub gc_delay_s: f64,
    /// `--registration_backoff_factor`.
    #[serde(default = "backoff")]
    pub registration_backoff_factor_s: f64,
    /// How long the master may stay silent before the agent looks again.
    #[serde(default = "ping_timeout")]
    pub master_ping_timeout_s: f64,
    /// `--recover` of every incarnation after the first (an operator restarting the
    /// agent with `--recover cleanup` before an upgrade).
    #[serde(default)]
    pub restart_recover: Option<String>,
    /// `--resources` (`name:value` or `name(role):value`, `;`-separated). Default: the
    /// agent's defaults plus a reservation `cpus(web):1`.
    #[serde(default)]
    pub resources: Option<String>,
    /// `--reconfiguration_policy`: `equal` (default) or `additive`.
    #[serde(default)]
    pub reconfiguration_policy: Option<String>,
    /// `--executor_reregistration_retry_interval` (none by default).
    #[serde(default)]
    pub executor_reregistration_retry_interval_s: Option<f64>,
}

fn reconnect() -> String {
    "reconnect".into()
}
fn sixty() -> f64 {
    60.0
}
fn two() -> f64 {
    2.0
}
fn gc_delay() -> f64 {
    3600.0
}
fn backoff() -> f64 {
    0.5
}
fn ping_timeout() -> f64 {
    20.0
}

impl Default for AgentFlags {
    fn default() -> Self {
        toml::from_str("").expect("defaults parse")
    }
}

/// Master flags (durations in seconds).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MasterFlags {
    /// `--agent_ping_timeout`.
    #[serde(default = "four")]
    pub agent_ping_timeout_s: f64,
    /// `--max_agent_ping_timeouts`.
    #[serde(default = "five")]
    pub max_agent_ping_timeouts: u32,
    /// `--agent_reregister_timeout`.
    #[serde(default = "reregister")]
    pub agent_reregister_timeout_s: f64,
    /// `--leader_lease`: the masters share a registry disk and contend for this lease.
    #[serde(default = "lease")]
    pub leader_lease_s: f64,
}

fn lease() -> f64 {
    10.0
}

fn four() -> f64 {
    4.0
}
fn five() -> u32 {
    5
}
fn reregister() -> f64 {
    60.0
}

impl Default for MasterFlags {
    fn default() -> Self {
        toml::from_str("").expect("defaults parse")
    }
}

/// One task.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskSpec {
    /// Task id.
    pub id: String,
    /// Command (`sleep N`, `exit C`, `sleep N; exit C`).
    pub command: String,
    /// Submission time, seconds.
    #[serde(default)]
    pub submit_at_s: f64,
    /// Kill the task at this time, seconds.
    #[serde(default)]
    pub kill_at_s: Option<f64>,
    /// The framework that submits it (1, 2, ...).
    #[serde(default = "one")]
    pub framework: u32,
    /// The executor id the framework names for it (docs/lifecycle-rules.md rules 14, 15):
    /// tasks naming one id run on one executor, and a task naming the id of an executor
    /// whose run completed launches a new run of it. Default: a command executor of its
    /// own, named after the task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executor: Option<String>,
}

/// Tasks made from the seed.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeneratedTasks {
    /// How many.
    pub count: u32,
    /// Shortest run, seconds.
    pub min_s: f64,
    /// Longest run, seconds.
    pub max_s: f64,
    /// Fraction that exit non-zero.
    #[serde(default)]
    pub failure_fraction: f64,
    /// Submissions spread over `[0, submit_within_s]`.
    #[serde(default)]
    pub submit_within_s: f64,
}

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
    /// (`.../executors/<id>/runs/<container>`), leaving `runs/latest` dangling.
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
}

/// `[zookeeper]`: the simulated ZooKeeper host.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ZkSpec {
    /// The session timeout masters ask for (default 10 s; the server bounds it to
    /// 4-40 s).
    #[serde(default = "zk_session_timeout")]
    pub session_timeout_s: f64,
}

fn zk_session_timeout() -> f64 {
    10.0
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
    /// For `break_wake`: `missing`, `stale` or `torn`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub how: Option<String>,
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
}

fn half() -> f64 {
    0.5
}
fn restart_range() -> [f64; 2] {
    [1.0, 90.0]
}

/// The expected outcome of a fixed scenario.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// The last state the framework sees of each task.
    #[serde(default)]
    pub states: BTreeMap<String, String>,
    /// The reason of that last update, where it matters.
    #[serde(default)]
    pub reasons: BTreeMap<String, String>,
    /// Whether the agent kept its id through the run.
    #[serde(default)]
    pub same_agent_id: Option<bool>,
    /// Executors (by id; a command executor is named after its task) that must have
    /// been reconnected after a restart.
    #[serde(default)]
    pub reconnected: Vec<String>,
    /// Whether the agent must exit on its own (cleanup, strict failure).
    #[serde(default)]
    pub agent_exits: Option<bool>,
    /// Whether a recovery failure is expected (a corruption in strict mode).
    #[serde(default)]
    pub recovery_fails: bool,
    /// Executors (by id) whose directories must have been garbage collected.
    #[serde(default)]
    pub collected: Vec<String>,
    /// Executors (by id) that must have been destroyed (not reconnected) after a restart.
    #[serde(default)]
    pub destroyed: Vec<String>,
    /// Agents (by number, 1, 2, ...) that must have re-registered with the master after
    /// a restart.
    #[serde(default)]
    pub reregistered: Vec<u32>,
    /// The resources the agent has checkpointed at the end (`name(role):value;...` as the
    /// trace prints them), which must also be the master's last view of them.
    #[serde(default)]
    pub checkpointed_resources: Option<String>,
    /// Executors (by id) that must have been shut down because their framework was torn
    /// down (and whose processes are gone at the end).
    #[serde(default)]
    pub shut_down: Vec<String>,
    /// Frameworks (by number, 1, 2, ...) the master must have told they were removed
    /// (a teardown, or a scheduler that came back after its failover timeout); the
    /// others must not have been.
    #[serde(default)]
    pub frameworks_removed: Option<Vec<u32>>,
}

impl Scenario {
    /// Parses a scenario file; the error names the file and the field.
    pub fn load(path: &Path) -> Result<Scenario, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|error| format!("{}: {error}", path.display()))?;
        let mut scenario: Scenario =
            toml::from_str(&text).map_err(|error| format!("{}: {error}", path.display()))?;
        if scenario.name.is_empty() {
            scenario.name = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
        }
        scenario
            .validate()
            .map_err(|error| format!("{}: {error}", path.display()))?;
        Ok(scenario)
    }

    /// Checks what serde cannot.
    pub fn validate(&self) -> Result<(), String> {
        if self.duration_s.is_nan() || self.duration_s <= 0.0 {
            return Err("duration_s must be positive".into());
        }
        if self.masters == 0 || self.masters > 3 {
            return Err("masters must be 1 to 3".into());
        }
        if self.frameworks == 0 || self.frameworks > 3 {
            return Err("frameworks must be 1 to 3".into());
        }
        if self.agents == 0 || self.agents > 3 {
            return Err("agents must be 1 to 3".into());
        }
        if let Some(zk) = &self.zookeeper {
            if !(zk.session_timeout_s.is_finite() && zk.session_timeout_s > 0.0) {
                return Err(format!(
                    "[zookeeper] session_timeout_s must be a positive number of seconds, not {}",
                    zk.session_timeout_s
                ));
            }
        }
        if let Some(swarm) = &self.swarm {
            for kind in swarm.per_minute.keys() {
                if crate::zk_faults::is_zk_fault(*kind) && self.zookeeper.is_none() {
                    return Err(format!(
                        "[swarm.per_minute] lists {kind:?}, a ZooKeeper fault, but the scenario has no [zookeeper] table"
                    ));
                }
            }
        }
        for task in &self.tasks {
            if task.framework == 0 || task.framework > self.frameworks {
                return Err(format!(
                    "task {} names framework {}, but there are {}",
                    task.id, task.framework, self.frameworks
                ));
            }
            if let Some(executor) = &task.executor {
                if executor.is_empty()
                    || !executor
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
                    || executor.starts_with('.')
                {
                    return Err(format!(
                        "task {}: executor '{executor}' is not a usable executor id \
                         (letters, digits, '-', '_', '.'; not starting with '.')",
                        task.id
                    ));
                }
                if let Some(other) = self.tasks.iter().find(|t| {
                    t.id != task.id
                        && t.framework != task.framework
                        && t.executor.as_deref() == Some(executor.as_str())
                }) {
                    return Err(format!(
                        "tasks {} and {} name executor '{executor}' from different frameworks \
                         (an executor belongs to one framework)",
                        task.id, other.id
                    ));
                }
            }
        }
        for recover in std::iter::once(&self.agent.recover).chain(self.agent.restart_recover.iter())
        {
            if recover != "reconnect" && recover != "cleanup" {
                return Err(format!(
                    "agent.recover must be reconnect or cleanup, not '{recover}'"
                ));
            }
        }
        if !(self.framework_failover_timeout_s >= 0.0
            && self.framework_failover_timeout_s.is_finite())
        {
            return Err(format!(
                "framework_failover_timeout_s must be a number of seconds >= 0, not {}",
                self.framework_failover_timeout_s
            ));
        }
        for reconcile in &self.reconcile {
            if reconcile.framework == 0 || reconcile.framework > self.frameworks {
                return Err(format!(
                    "reconcile at {} s names framework {}, but there are {}",
                    reconcile.at_s, reconcile.framework, self.frameworks
                ));
            }
            if !(reconcile.at_s >= 0.0 && reconcile.at_s.is_finite()) {
                return Err(format!(
                    "reconcile at {} s: at_s must be a time >= 0",
                    reconcile.at_s
                ));
            }
            for (task, state) in &reconcile.tasks {
                if revenant::proto::TaskState::from_str_name(state).is_none() {
                    return Err(format!(
                        "reconcile at {} s: task {task} is believed in an unknown state \
                         '{state}' (TASK_STAGING, TASK_RUNNING, ...)",
                        reconcile.at_s
                    ));
                }
            }
        }
        if self.tasks.is_empty() && self.generated_tasks.is_none() {
            return Err("no tasks: give [[tasks]] or [generated_tasks]".into());
        }
        for reservation in &self.reservations {
            if reservation.framework == 0 || reservation.framework > self.frameworks {
                return Err(format!(
                    "reservation at {} s names framework {}, but there are {}",
                    reservation.at_s, reservation.framework, self.frameworks
                ));
            }
            let resources = parse_resources(&reservation.resources)
                .map_err(|error| format!("reservation at {} s: {error}", reservation.at_s))?;
            if resources.is_empty() || resources.iter().any(|r| r.role.is_empty()) {
                return Err(format!(
                    "reservation at {} s: every resource needs a role, as in cpus(db):1",
                    reservation.at_s
                ));
            }
        }
        for fault in &self.faults {
            if let Some(framework) = fault.framework {
                if !FRAMEWORK_FAULTS.contains(&fault.kind) {
                    return Err(format!(
                        "fault at {} s: only framework_teardown, framework_crash and \
                         framework_leave name a framework",
                        fault.at_s
                    ));
                }
                if framework == 0 || framework > self.frameworks {
                    return Err(format!(
                        "{} at {} s names framework {framework}, but there are {}",
                        fault.kind.name(),
                        fault.at_s,
                        self.frameworks
                    ));
                }
            }
            if crate::zk_faults::is_zk_fault(fault.kind) {
                crate::zk_faults::validate(self, fault)?;
            }
            if fault.kind == FaultKind::Partition && (fault.a.is_none() || fault.b.is_none()) {
                return Err(format!("partition at {} s needs a and b", fault.at_s));
            }
            if MESSAGE_FAULTS.contains(&fault.kind) {
                let name = fault.kind.name();
                let Some(message) = &fault.message else {
                    return Err(format!("{name} at {} s needs message", fault.at_s));
                };
                let Some(kind) = crate::drops::normalise_kind(message) else {
                    return Err(format!(
                        "{name} at {} s: unknown message '{message}' (one of {})",
                        fault.at_s,
                        crate::drops::MESSAGE_KINDS.join(", ")
                    ));
                };
                if fault.kind == FaultKind::Forge
                    && !["acknowledgement", "status_update"].contains(&kind)
                {
                    return Err(format!(
                        "forge at {} s: message '{message}' carries no uuid to forge \
                         (acknowledgement or status_update)",
                        fault.at_s
                    ));
                }
                if let Some(state) = &fault.state {
                    if revenant::proto::TaskState::from_str_name(state).is_none() {
                        return Err(format!(
                            "{name} at {} s: unknown state '{state}'",
                            fault.at_s
                        ));
                    }
                }
            }
            match &fault.on_agent {
                None => {}
                Some(_) if !AGENT_PROCESS_FAULTS.contains(&fault.kind) => {
                    return Err(format!(
                        "fault at {} s: on_agent is for agent_crash, agent_crash_at_write, \
                         agent_unregister, wipe_framework_meta, delete_run_dir, \
                         rewrite_forked_pid, agent_crash_at_message and \
                         agent_crash_at_process (other faults hit the whole machine)",
                        fault.at_s
                    ));
                }
                Some(AgentTarget::One(index)) if *index == 0 || *index > self.agents => {
                    return Err(format!(
                        "fault at {} s: on_agent = {index}, but there are {} agent(s)",
                        fault.at_s, self.agents
                    ));
                }
                Some(AgentTarget::Word(word)) if word != "all" => {
                    return Err(format!(
                        "fault at {} s: on_agent must be an agent number or \"all\", not '{word}'",
                        fault.at_s
                    ));
                }
                Some(_) => {}
            }
            if let Some(flags) = &fault.agent {
                if !matches!(fault.kind, FaultKind::AgentCrash | FaultKind::Reboot) {
                    return Err(format!(
                        "fault at {} s: only agent_crash and reboot carry agent flags",
                        fault.at_s
                    ));
                }
                if let Some(recover) = &flags.recover {
                    if recover != "reconnect" && recover != "cleanup" {
                        return Err(format!(
                            "fault at {} s: agent.recover must be reconnect or cleanup",
                            fault.at_s
                        ));
                    }
                }
                if let Some(resources) = &flags.resources {
                    parse_resources(resources)
                        .map_err(|error| format!("fault at {} s: {error}", fault.at_s))?;
                }
            }
            if fault.kind == FaultKind::TornAppend
                && !matches!(fault.error.as_deref(), None | Some("eio" | "enospc"))
            {
                return Err(format!(
                    "torn_append at {} s: error must be eio or enospc",
                    fault.at_s
                ));
            }
            if let Some(boot) = &fault.boot {
                let allowed = (fault.kind == FaultKind::RewriteForkedPid && boot == "other")
                    || (fault.kind == FaultKind::DiskError && boot == "next");
                if !allowed {
                    return Err(format!(
                        "fault at {} s: `boot` is only \"other\" on rewrite_forked_pid or \"next\" on disk_error (got {:?} on {})",
                        fault.at_s,
                        boot,
                        fault.kind.name()
                    ));
                }
            }
            crate::disk_faults::validate(fault)?;
        }
        if let Some(swarm) = &self.swarm {
            if !(0.0..=1.0).contains(&swarm.boundary_weight) {
                return Err("swarm.boundary_weight must be in [0, 1]".into());
            }
            for (name, value) in [
                ("shared_executor_fraction", swarm.shared_executor_fraction),
                ("aimed_disk_error_fraction", swarm.aimed_disk_error_fraction),
                (
                    "recovery_read_error_fraction",
                    swarm.recovery_read_error_fraction,
                ),
                ("torn_header_fraction", swarm.torn_header_fraction),
                ("hanging_executor_fraction", swarm.hanging_executor_fraction),
            ] {
                if !(0.0..=1.0).contains(&value) {
                    return Err(format!("swarm.{name} must be in [0, 1]"));
                }
            }
            if !(0.0..=1.0).contains(&swarm.rogue_fraction) {
                return Err("swarm.rogue_fraction must be in [0, 1]".into());
            }
            if !(0.0..=1.0).contains(&swarm.large_task_fraction) {
                return Err("swarm.large_task_fraction must be in [0, 1]".into());
            }
            if let Some([low, high]) = swarm.gc_delay_s {
                if !(low >= 0.0 && high >= low) {
                    return Err("swarm.gc_delay_s must be [min, max] with 0 <= min <= max".into());
                }
            }
            if let Some([low, high]) = swarm.framework_failover_timeout_s {
                if !(low >= 0.0 && high >= low && high.is_finite()) {
                    return Err(
                        "swarm.framework_failover_timeout_s must be [min, max] with 0 <= min <= max"
                            .into(),
                    );
                }
            }
            if let Some((kind, rate)) = swarm
                .per_minute
                .iter()
                .find(|(_, rate)| !(**rate >= 0.0 && rate.is_finite()))
            {
                return Err(format!(
                    "swarm.per_minute: {kind:?} has rate {rate}, not >= 0"
                ));
            }
        }
        if let Some(resources) = &self.agent.resources {
            parse_resources(resources)?;
        }
        if let Some(expect) = &self.expect {
            if let Some(index) = expect
                .frameworks_removed
                .iter()
                .flatten()
                .find(|i| **i == 0 || **i > self.frameworks)
            {
                return Err(format!(
                    "expect.frameworks_removed names framework {index}, but there are {}",
                    self.frameworks
                ));
            }
            if let Some(index) = expect
                .reregistered
                .iter()
                .find(|i| **i == 0 || **i > self.agents)
            {
                return Err(format!(
                    "expect.reregistered names agent {index}, but there are {} agent(s)",
                    self.agents
                ));
            }
        }
        if !matches!(
            self.agent.reconfiguration_policy.as_deref(),
            None | Some("equal" | "additive")
        ) {
            return Err("agent.reconfiguration_policy must be equal or additive".into());
        }
        Ok(())
    }
}

/// Parses `--resources` (and a reservation's resources) as the binary does
/// (docs/design.md D14).
pub use revenant::resources::parse as parse_resources;

#[cfg(test)]
mod tests {
    use super::*;

    fn error_of(text: &str) -> String {
        let scenario: Scenario = toml::from_str(text).expect("parses");
        scenario.validate().expect_err("invalid")
    }

    const TASK: &str = "[[tasks]]\nid = \"t1\"\ncommand = \"sleep 1\"\n";

    #[test]
    fn reservations_and_teardowns_are_validated() {
        let error = error_of(&format!(
            "{TASK}[[reservations]]\nat_s = 1\nresources = \"cpus:1\"\n"
        ));
        assert!(error.contains("every resource needs a role"), "{error}");
        let error = error_of(&format!(
            "{TASK}[[reservations]]\nat_s = 1\nresources = \"cpus(db)\"\n"
        ));
        assert!(error.contains("not name:value"), "{error}");
        let error = error_of(&format!(
            "{TASK}[[reservations]]\nat_s = 1\nresources = \"cpus(db):1\"\nframework = 2\n"
        ));
        assert!(
            error.contains("names framework 2, but there are 1"),
            "{error}"
        );
        let error = error_of(&format!(
            "{TASK}[[faults]]\nat_s = 1\nkind = \"framework_teardown\"\nframework = 3\n"
        ));
        assert!(
            error.contains("names framework 3, but there are 1"),
            "{error}"
        );
        let error = error_of(&format!(
            "{TASK}[[faults]]\nat_s = 1\nkind = \"agent_crash\"\nframework = 1\n"
        ));
        assert!(
            error.contains(
                "only framework_teardown, framework_crash and framework_leave name a framework"
            ),
            "{error}"
        );
        let ok: Scenario = toml::from_str(&format!(
            "{TASK}[[faults]]\nat_s = 1\nkind = \"framework_teardown\"\n[[reservations]]\nat_s = 1\nresources = \"cpus(db):1\"\n"
        ))
        .expect("parses");
        ok.validate().expect("valid");
    }

    #[test]
    fn reconciliations_and_failover_timeouts_are_validated() {
        let error = error_of(&format!("{TASK}[[reconcile]]\nat_s = 1\nframework = 2\n"));
        assert!(
            error.contains("reconcile at 1 s names framework 2, but there are 1"),
            "{error}"
        );
        let error = error_of(&format!(
            "{TASK}[[reconcile]]\nat_s = 1\ntasks = {{ t1 = \"RUNNING\" }}\n"
        ));
        assert!(
            error.contains("task t1 is believed in an unknown state 'RUNNING'"),
            "{error}"
        );
        let error = error_of(&format!("framework_failover_timeout_s = -1\n{TASK}"));
        assert!(
            error.contains("framework_failover_timeout_s must be a number of seconds >= 0"),
            "{error}"
        );
        let error = error_of(&format!(
            "{TASK}[[faults]]\nat_s = 1\nkind = \"framework_leave\"\nframework = 2\n"
        ));
        assert!(
            error.contains("framework_leave at 1 s names framework 2, but there are 1"),
            "{error}"
        );
        let ok: Scenario = toml::from_str(&format!(
            "framework_failover_timeout_s = 0\n{TASK}[[reconcile]]\nat_s = 1\n[[reconcile]]\nat_s = 2\ntasks = {{ t1 = \"TASK_RUNNING\" }}\n[[faults]]\nat_s = 1\nkind = \"framework_crash\"\nframework = 1\n"
        ))
        .expect("parses");
        ok.validate().expect("valid");
    }

    #[test]
    fn message_faults_are_validated() {
        let error = error_of(&format!(
            "{TASK}[[faults]]\nat_s = 1\nkind = \"duplicate\"\n"
        ));
        assert!(error.contains("duplicate at 1 s needs message"), "{error}");
        let error = error_of(&format!(
            "{TASK}[[faults]]\nat_s = 1\nkind = \"forge\"\nmessage = \"run_task\"\n"
        ));
        assert!(error.contains("carries no uuid to forge"), "{error}");
        let error = error_of(&format!(
            "{TASK}[[faults]]\nat_s = 1\nkind = \"duplicate\"\nmessage = \"no_such\"\n"
        ));
        assert!(
            error.contains("duplicate at 1 s: unknown message 'no_such'"),
            "{error}"
        );
        let ok: Scenario = toml::from_str(&format!(
            "{TASK}[[faults]]\nat_s = 1\nkind = \"forge\"\nmessage = \"Acknowledgement\"\n"
        ))
        .expect("parses");
        ok.validate().expect("valid");
    }
}

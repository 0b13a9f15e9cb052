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
//! message = "status_update"   # or "StatusUpdate"; see scenario::fault_checks::MESSAGE_KINDS
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
//! rogue_agent_fraction = 0.5    # of those, runs with an agent the ACLs refuse (SEC48)
//! framework_failover_timeout_s = [15.0, 60.0]  # frameworks' failover_timeout per run
//! shared_executor_fraction = 0.4 # tasks on a few shared, relaunched executor ids
//! aimed_disk_error_fraction = 0.5 # disk errors aimed at a path and/or operation kind
//! recovery_read_error_fraction = 0.3 # an EIO on a read of the next recovery after a crash
//! torn_header_fraction = 0.5    # torn appends that keep at most 11 bytes
//! zero_fill_fraction = 0.5      # reboots whose un-synced appended bytes may read as zeroes
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

pub mod fault_checks;
mod fault_spec;
mod validate;

pub use fault_spec::{
    AgentTarget, FaultKind, FaultSpec, RestartFlags, Swarm, AGENT_PROCESS_FAULTS, FRAMEWORK_FAULTS,
    MESSAGE_FAULTS,
};

// The format is read in three parts: this module (the scenario, its flags, tasks and
// expectations, and reading a file), `fault_spec` (what faults strike: fixed schedule
// entries and swarm rates) and `validate` (what serde cannot check).
// An `Option` field needs no `#[serde(default)]`: serde reads a missing one as `None`.

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
    pub generated_tasks: Option<GeneratedTasks>,
    /// Whether the framework checkpoints (default for tasks that do not say).
    #[serde(default = "yes")]
    pub checkpoint: bool,
    /// A fixed fault schedule.
    #[serde(default)]
    pub faults: Vec<FaultSpec>,
    /// Fault rates for swarm testing.
    pub swarm: Option<Swarm>,
    /// The expected outcome (fixed scenarios).
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
    pub restart_recover: Option<String>,
    /// `--resources` (`name:value` or `name(role):value`, `;`-separated). Default: the
    /// agent's defaults plus a reservation `cpus(web):1`.
    pub resources: Option<String>,
    /// `--reconfiguration_policy`: `equal` (default) or `additive`.
    pub reconfiguration_policy: Option<String>,
    /// `--executor_reregistration_retry_interval` (none by default).
    pub executor_reregistration_retry_interval_s: Option<f64>,
    /// How long the machine's disk takes, in simulated milliseconds, to sync a group
    /// commit started in the background (0, the default: at once). A power loss during
    /// it loses the group's records (docs/recovery-latency.md P17).
    #[serde(default)]
    pub disk_group_sync_ms: f64,
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

/// The expected outcome of a fixed scenario; every field may be left out.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Expect {
    /// The last state the framework sees of each task.
    pub states: BTreeMap<String, String>,
    /// The reason of that last update, where it matters.
    pub reasons: BTreeMap<String, String>,
    /// Words the message of that last update must contain, where a rule says what it
    /// tells the framework (docs/recovery-rules.md R17: an executor found gone at
    /// recovery, "never started" or "terminated while the agent was down").
    pub messages: BTreeMap<String, String>,
    /// Whether the agent kept its id through the run.
    pub same_agent_id: Option<bool>,
    /// Executors (by id; a command executor is named after its task) that must have
    /// been reconnected after a restart.
    pub reconnected: Vec<String>,
    /// Whether the agent must exit on its own (cleanup, strict failure).
    pub agent_exits: Option<bool>,
    /// Whether a recovery failure is expected (a corruption in strict mode).
    pub recovery_fails: bool,
    /// Executors (by id) whose directories must have been garbage collected.
    pub collected: Vec<String>,
    /// Executors (by id) that must have been destroyed (not reconnected) after a restart.
    pub destroyed: Vec<String>,
    /// Agents (by number, 1, 2, ...) that must have re-registered with the master after
    /// a restart.
    pub reregistered: Vec<u32>,
    /// The resources the agent has checkpointed at the end (`name(role):value;...` as the
    /// trace prints them), which must also be the master's last view of them.
    pub checkpointed_resources: Option<String>,
    /// Executors (by id) that must have been shut down because their framework was torn
    /// down (and whose processes are gone at the end).
    pub shut_down: Vec<String>,
    /// Frameworks (by number, 1, 2, ...) the master must have told they were removed
    /// (a teardown, or a scheduler that came back after its failover timeout); the
    /// others must not have been.
    pub frameworks_removed: Option<Vec<u32>>,
    /// At most this many seconds from each restart of the agent (every agent process
    /// start after the first) to the master's next "agent re-registered": an agent whose
    /// executors are alive and reachable is back within a fraction of a second
    /// (docs/recovery-rules.md R54), never after waiting out
    /// `executor_reregistration_timeout`. Judged from the master's trace; one agent only.
    pub reregistered_within_s: Option<f64>,
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
}

/// Parses `--resources` (and a reservation's resources) as the binary does
/// (docs/design.md D14).
pub use revenant::domain::resources::parse as parse_resources;

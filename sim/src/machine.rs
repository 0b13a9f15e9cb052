//! The agent machine's state that outlives agent crashes, where the masters keep their
//! registry, and a run's options besides the scenario: below the driver, the fault
//! application and the parties that act on the machine (docs/design.md D62).

use std::cell::{Cell, RefCell};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use revenant::agent::{AgentError, AgentExit};

use crate::fs::SimFs;
use crate::hosts::MASTER_PORT;
use crate::scenario::{RestartFlags, Scenario};
use crate::seams::ProcessTable;

/// The agent machine as one agent process on it sees it: state that survives agent
/// crashes (and, for the filesystem, reboots). With several agent processes (`agents`)
/// each has a `Machine` of its own whose disk, boot counter, process table, clock and
/// masters' disk are handles on the same ones; the rest is the process's own.
pub struct Machine {
    /// Which agent process of the machine (1, 2, ...).
    pub index: u32,
    /// Its work directory.
    pub work_dir: PathBuf,
    /// The disk.
    pub fs: SimFs,
    /// Boot counter; the boot id derives from it.
    pub boot: Rc<Cell<u64>>,
    /// The process table (executors).
    pub processes: Rc<RefCell<ProcessTable>>,
    /// The running agent incarnation.
    pub agent: RefCell<Option<tokio::task::JoinHandle<Result<AgentExit, AgentError>>>>,
    /// When to start the agent next (simulated time); `None`: stay down.
    pub agent_start_at: Cell<Option<Duration>>,
    /// Since when the agent has been down, if it is.
    pub agent_down_since: Cell<Option<Duration>>,
    /// Incarnation counter.
    pub incarnation: Cell<u64>,
    /// Arms a death at a filesystem operation for the current incarnation.
    pub crash_after: Rc<Cell<Option<u64>>>,
    /// Set when the incarnation died at a filesystem or process operation.
    pub crashed: Rc<Cell<bool>>,
    /// Arms a death at a process operation (launch, signal) for the current incarnation.
    pub process_crash_after: Rc<Cell<Option<u64>>>,
    /// Wall-clock jump.
    pub wall_offset: Rc<Cell<i64>>,
    /// Set while injected disk errors may be failing the agent (cleared when it restarts).
    pub disk_faulted: Cell<bool>,
    /// The masters' shared disk (registry and leader lease), kept here so that the driver
    /// can tell which master leads.
    pub masters_disk: SimFs,
    /// The operator's SIGUSR1 to the running agent incarnation (a fresh one for each, so
    /// that a signal never outlives the process it was sent to).
    pub leave: RefCell<Rc<tokio::sync::Notify>>,
    /// Flags that crash and reboot faults changed for the incarnations after them.
    pub restart_flags: RefCell<RestartFlags>,
    /// The `--resources` the running (or last) agent incarnation was started with
    /// (docs/simulator-reach.md 15f: what an operator's reconfiguration changes).
    pub started_resources: RefCell<Vec<revenant::proto::Resource>>,
}

/// Where the masters keep their registry and lease on their shared disk.
pub const MASTERS_WORK_DIR: &str = "/var/lib/revenant-master";

impl Machine {
    /// Whether the supervisor starts the agent again after it ended with `outcome`, with
    /// what the operator does first. Like systemd with Restart=always: a crashed agent, or
    /// one the master told to shut down (it forgot its id and comes back as a new agent),
    /// is restarted. An agent that exited on its own for good (cleanup) or failed
    /// recovery stays down, so that the failure is seen, unless the operator repairs what
    /// stopped it.
    pub fn restarts_after(&self, outcome: &crate::observations::AgentOutcome) -> bool {
        use crate::observations::AgentOutcome;
        let (fs, work_dir) = (&self.fs, &self.work_dir);
        match outcome {
            AgentOutcome::Crashed => true,
            // docs/simulator-reach.md 15e: a stop on a dangling `latest` counts as a disk
            // failure when a disk fault was armed for the start; the operator repairs it
            // all the same.
            AgentOutcome::DiskFailure(_) => {
                crate::corrupt::repair_dangling_latest(fs, work_dir);
                true
            }
            AgentOutcome::Exited(_) => outcome.is_shutdown(),
            // docs/simulator-reach.md rule 14u: in a swarm, the operator repairs a strict
            // recovery stopped by an injected undecodable record; 15f: and a recovery
            // stopped by an incompatible change of resources the operator made.
            AgentOutcome::Failed(message) => {
                crate::corrupt::operator_repair(fs, work_dir)
                    || crate::corrupt::repair_incompatible_restart(fs, work_dir, message)
            }
            _ => false,
        }
    }
}

/// Settings of one run besides the scenario.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Test-only switches that break a rule on purpose (oracle self-tests).
    pub breakage: revenant::breakage::Breakage,
    /// Crash points (`crate::crash_points`): agent 1 dies at its filesystem operation
    /// with this index, counted over the whole run from 0.
    pub crash_at_agent_op: Option<u64>,
    /// Crash points: the agent machine loses power at agent 1's filesystem operation with
    /// this index, leaving crash state `power_loss_state` of at most
    /// `power_loss_states` distinct ones.
    pub power_loss_at_agent_op: Option<u64>,
    /// Which crash state (see `power_loss_at_agent_op`).
    pub power_loss_state: usize,
    /// How many distinct crash states a power-loss point considers.
    pub power_loss_states: usize,
    /// Crash points: record every filesystem operation of agent 1.
    pub record_agent_ops: bool,
}

/// The masters' addresses: `master1:5050`, `master2:5050`, ...
pub fn master_addresses(scenario: &Scenario) -> Vec<String> {
    (1..=scenario.masters)
        .map(|i| format!("master{i}:{MASTER_PORT}"))
        .collect()
}

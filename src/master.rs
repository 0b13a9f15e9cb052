//! The master: registers agents (assigning their ids) and frameworks, places tasks,
//! forwards status updates to frameworks and acknowledgements back to agents, pings
//! agents and marks silent ones unreachable, and reconciles what re-registering agents
//! report (reference part A §21).
//!
//! Leader detection is behind [`Detector`] (see [`crate::detector`]): a standalone
//! master always leads; masters sharing a work directory contend for a lease there. A
//! master that does not lead answers `NotLeader` with the leader it knows. The agents the
//! cluster admitted and removed are kept in the [`Registry`]; a newly elected master
//! reads it and waits `agent_reregister_timeout` for each known agent to re-register
//! before removing it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::ids::{AgentId, FrameworkId, TaskId};
use crate::os::Env;
use crate::proto::envelope::Body;
use crate::proto::{
    self, AgentInfo, ExecutorInfo, FrameworkInfo, Resource, StatusUpdate, StatusUpdateMessage,
    TaskInfo, TaskReason, TaskReport, TaskSource, TaskStatus,
};
use crate::registry::{Registry, RegistryError};
use crate::wire::{self, ConnectionId, Incoming, Outbox};

mod http;

/// The master's settings.
#[derive(Clone, Debug)]
pub struct MasterConfig {
    /// Where to listen.
    pub listen: String,
    /// `--agent_ping_timeout`.
    pub agent_ping_timeout: Duration,
    /// `--max_agent_ping_timeouts`.
    pub max_agent_ping_timeouts: u32,
    /// `--agent_reregister_timeout`.
    pub agent_reregister_timeout: Duration,
    /// `--work_dir`: where the registry (and, for contending masters, the leader lease)
    /// lives. Without it the registry is kept in memory only.
    pub work_dir: Option<std::path::PathBuf>,
    /// Test-only switches that break a rule on purpose (no flag sets them).
    #[cfg(feature = "breakage")]
    pub breakage: crate::breakage::Breakage,
}

impl MasterConfig {
    /// Mesos defaults.
    pub fn new(listen: String) -> MasterConfig {
        MasterConfig {
            listen,
            agent_ping_timeout: Duration::from_secs(15),
            max_agent_ping_timeouts: 5,
            agent_reregister_timeout: Duration::from_secs(600),
            work_dir: None,
            #[cfg(feature = "breakage")]
            breakage: crate::breakage::Breakage::default(),
        }
    }
}

pub use crate::detector::{Detector, LeaseContender, Standalone};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AgentPhase {
    Connected,
    Disconnected,
    Removed,
}

struct AgentRecord {
    info: AgentInfo,
    outbox: Option<Outbox>,
    phase: AgentPhase,
    tasks: BTreeMap<(FrameworkId, TaskId), TaskReport>,
    missed_pings: u32,
    ponged: bool,
    /// Kills issued while the agent was away, re-sent when it comes back.
    pending_kills: BTreeSet<(FrameworkId, TaskId)>,
    disconnected_at: Option<Instant>,
    /// The master's view of the resources the agent must checkpoint, once a reservation
    /// set it; re-sent whenever the agent re-registers (the agent's report is ignored).
    checkpointed_resources: Option<Vec<Resource>>,
    /// What the agent last said it had checkpointed (or, for a new agent, the reserved
    /// resources of its flags, which it checkpoints on registration).
    reported_resources: Vec<Resource>,
    /// A disconnected agent that said it is recovering (`AgentRecovering`): the
    /// connection it said so on, where it is pinged until it re-registers
    /// (docs/recovery-rules.md R5). Nothing else is sent there.
    recovering_on: Option<Outbox>,
    /// Whether the agent (re-)registered with this master since it was elected. An agent
    /// known only from the registry may hold tasks this master has not heard of
    /// (docs/lifecycle-rules.md rule 13).
    heard_since_election: bool,
    /// The newest connection the agent registered, re-registered or said it was
    /// recovering on: what arrives on an older one is stale (docs/recovery-rules.md R8).
    newest_connection: ConnectionId,
}

/// A framework that was torn down or removed at its failover timeout: kept so that
/// `/state` lists it and agents that report its tasks are told to shut it down.
struct CompletedFramework {
    name: String,
    tasks: BTreeMap<TaskId, TaskReport>,
    /// What a scheduler registering with its id is told.
    message: String,
}

/// What a scheduler of a torn-down framework is told when it registers again.
const TORN_DOWN_MESSAGE: &str = "framework was torn down";

/// How a dynamic reservation is marked in `Resource::reservation`.
pub const DYNAMIC_RESERVATION_PREFIX: &str = "dynamic:";

struct FrameworkRecord {
    info: FrameworkInfo,
    outbox: Option<Outbox>,
    /// Heartbeats sent since the framework last answered one.
    missed_pongs: u32,
    /// Since when no scheduler is connected (docs/lifecycle-rules.md rules 8 and 9).
    disconnected_at: Option<Instant>,
}

impl FrameworkRecord {
    /// Its `failover_timeout` (a negative or unreadable one counts as 0).
    fn failover_timeout(&self) -> Duration {
        Duration::try_from_secs_f64(self.info.failover_timeout_seconds.max(0.0))
            .unwrap_or(Duration::MAX)
    }
}

/// Heartbeats a framework may leave unanswered before its connection is closed.
const FRAMEWORK_MISSED_PONGS_MAX: u32 = 3;

#[allow(clippy::large_enum_variant)] // events are moved once; boxing buys nothing
enum Event {
    Accepted(crate::os::BoxStream, String),
    Wire(Incoming),
}

const TICK: Duration = Duration::from_millis(250);
/// Tasks kept waiting for an agent at most.
const PENDING_TASKS_MAX: usize = 10_000;

/// Runs a master until its future is dropped, or until its registry cannot be read or
/// written (the error names the file).
pub async fn run(
    env: Env,
    config: MasterConfig,
    detector: Box<dyn Detector>,
) -> std::io::Result<()> {
    let registry = match &config.work_dir {
        Some(dir) => Registry::open(env.fs.clone(), dir).map_err(std::io::Error::other)?,
        None => Registry::in_memory(),
    };
    run_with_registry(env, config, detector, registry).await
}

/// Runs a master with a registry kept elsewhere (in ZooKeeper: docs/zookeeper.md Z7).
pub async fn run_with_registry(
    env: Env,
    config: MasterConfig,
    detector: Box<dyn Detector>,
    registry: Registry,
) -> std::io::Result<()> {
    let mut listener = env.net.listen(&config.listen).await?;
    info!(address = %config.listen, "master listening");
    let (sender, mut inbox) = mpsc::unbounded_channel::<Event>();
    let mut tasks: JoinSet<()> = JoinSet::new();
    let accept_sender = sender.clone();
    tasks.spawn_local(async move {
        loop {
            if let Ok((stream, peer)) = listener.accept().await {
                if accept_sender.send(Event::Accepted(stream, peer)).is_err() {
                    return;
                }
            }
        }
    });
    let now = env.clock.now();
    let mut master = Master {
        elected_at: now,
        env,
        config,
        detector,
        registry,
        leading: false,
        failed: None,
        agents: BTreeMap::new(),
        frameworks: BTreeMap::new(),
        completed_frameworks: BTreeMap::new(),
        connections: BTreeMap::new(),
        next_connection: 0,
        next_ping: None,
        ping_sequence: 0,
        pending_tasks: Vec::new(),
        principals: BTreeMap::new(),
    };
    master.tick();
    let mut next_tick = master.env.clock.now() + TICK;
    loop {
        if let Some(error) = master.failed.take() {
            return Err(std::io::Error::other(error));
        }
        let wait = next_tick.saturating_duration_since(master.env.clock.now());
        let sleep = master.env.clock.sleep(wait);
        let event = tokio::select! {
            biased;
            event = inbox.recv() => event,
            _ = sleep => None,
        };
        match event {
            Some(Event::Accepted(stream, peer)) => {
                master.limit_unidentified(&peer);
                master.next_connection += 1;
                let id = ConnectionId(master.next_connection);
                if let Some(principal) = crate::tls::principal_of(&peer) {
                    // docs/security.md SEC11: the certificate's principal, for registration.
                    master.principals.insert(id, principal.to_owned());
                }
                let link = wire::Link {
                    id,
                    peer,
                    clock: master.env.clock.clone(),
                };
                let outbox = wire::serve(stream, link, &mut tasks, sender.clone(), Event::Wire);
                master.connections.insert(id, (Peer::Unknown, outbox));
            }
            Some(Event::Wire(Incoming::Message(id, body))) => master.handle(id, body),
            Some(Event::Wire(Incoming::Closed(id, _))) => master.closed(id),
            Some(Event::Wire(Incoming::Http(id, path))) => master.http(id, &path),
            None => {
                master.tick();
                next_tick = master.env.clock.now() + TICK;
            }
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Peer {
    Unknown,
    Agent(AgentId),
    Framework(FrameworkId),
}

struct Master {
    env: Env,
    config: MasterConfig,
    detector: Box<dyn Detector>,
    registry: Registry,
    /// Whether this master led at its last tick.
    leading: bool,
    /// A registry failure: the master stops.
    failed: Option<RegistryError>,
    agents: BTreeMap<AgentId, AgentRecord>,
    /// The certificate principal of each TLS connection (docs/security.md SEC11).
    principals: BTreeMap<ConnectionId, String>,
    frameworks: BTreeMap<FrameworkId, FrameworkRecord>,
    /// Frameworks torn down (also those a newly elected master read from the registry).
    completed_frameworks: BTreeMap<FrameworkId, CompletedFramework>,
    connections: BTreeMap<ConnectionId, (Peer, Outbox)>,
    next_connection: u64,
    next_ping: Option<Instant>,
    ping_sequence: u64,
    /// When this master last became the leader.
    elected_at: Instant,
    /// Tasks submitted while no agent was registered, placed when one registers.
    pending_tasks: Vec<(FrameworkId, TaskInfo)>,
}

fn new_id(env: &Env, prefix: &str) -> String {
    format!("{prefix}-{:08x}", env.random.next_u64() as u32)
}

impl Master {
    fn outbox(&self, id: ConnectionId) -> Option<Outbox> {
        self.connections.get(&id).map(|(_, o)| o.clone())
    }

    fn handle(&mut self, id: ConnectionId, body: Body) {
        // Leading needs both: elected at a tick (the registry read, docs/zookeeper.md
        // Z8) and still leading now (a session may be lost between ticks, Z4).
        if !(self.leading && self.detector.leading()) {
            if let Some(outbox) = self.outbox(id) {
                outbox.send(Body::NotLeader(proto::NotLeader {
                    leader: self.detector.leader(),
                }));
            }
            return;
        }
        // docs/recovery-rules.md R6: nothing a removed agent says is acted on; it is told
        // (again) to shut down.
        if matches!(body, Body::Pong(_) | Body::UnregisterAgent(_)) {
            if let Some(agent) = self.removed_peer(id) {
                crate::coverage::point!("master_removed_agent_refused");
                info!(agent = %agent, kind = wire::kind(&body), "message from a removed agent: refused, telling it to shut down");
                self.tell_removed_agent(id);
                return;
            }
        }
        match body {
            Body::AgentRecovering(message) => {
                self.agent_recovering(id, AgentId::new(message.agent_id))
            }
            Body::RegisterAgent(message) => {
                self.register_agent(id, message.info.unwrap_or_default())
            }
            Body::ReregisterAgent(message) => self.reregister_agent(id, message),
            Body::UnregisterAgent(message) => {
                let agent = AgentId::new(message.agent_id);
                let from_itself = matches!(self.connections.get(&id), Some((Peer::Agent(peer), _)) if *peer == agent);
                if from_itself && self.agents.contains_key(&agent) {
                    info!(agent = %agent, "agent unregistered: removing it");
                    self.remove_agent(&agent, TaskReason::ReasonAgentRemoved, "Agent unregistered");
                }
            }
            Body::Pong(_) => match self.connections.get(&id) {
                Some((Peer::Agent(agent), _)) => {
                    // Only an answer on the connection the agent is pinged on counts.
                    if let Some(record) = self.agents.get_mut(agent).filter(|record| {
                        record
                            .outbox
                            .as_ref()
                            .or(record.recovering_on.as_ref())
                            .is_some_and(|o| o.id() == id)
                    }) {
                        record.ponged = true;
                        record.missed_pings = 0;
                    }
                }
                Some((Peer::Framework(framework), _)) => {
                    if let Some(record) = self.frameworks.get_mut(framework) {
                        record.missed_pongs = 0;
                    }
                }
                _ => {}
            },
            Body::StatusUpdate(StatusUpdateMessage {
                update: Some(update),
            }) => self.status_update(id, update),
            Body::RegisterFramework(message) => {
                self.register_framework(id, message.info.unwrap_or_default())
            }
            Body::SubmitTask(message) => self.submit_task(
                FrameworkId::new(message.framework_id),
                message.task.unwrap_or_default(),
            ),
            Body::Acknowledgement(ack) => {
                let agent = AgentId::new(ack.agent_id.clone());
                match self.agents.get(&agent).and_then(|a| a.outbox.clone()) {
                    Some(outbox) => {
                        outbox.send(Body::Acknowledgement(ack));
                    }
                    None => {
                        info!(agent = %agent, task = %ack.task_id, "acknowledgement for a disconnected agent dropped")
                    }
                }
            }
            Body::KillTask(kill) => self.kill_task(
                FrameworkId::new(kill.framework_id),
                TaskId::new(kill.task_id),
            ),
            Body::Reconcile(message) => {
                self.reconcile(FrameworkId::new(message.framework_id), message.task_ids)
            }
            Body::TeardownFramework(message) => {
                self.teardown_framework(id, FrameworkId::new(message.framework_id))
            }
            Body::ReserveResources(message) => self.reserve_resources(message),
            other => warn!(
                kind = wire::kind(&other),
                "unexpected message at the master"
            ),
        }
    }

    /// docs/security.md SEC4: at most [`wire::UNIDENTIFIED_CONNECTIONS_MAX`] connections
    /// whose peer has not said who it is; a new one closes the oldest of them.
    fn limit_unidentified(&mut self, peer: &str) {
        let mut unidentified = self
            .connections
            .iter()
            .filter(|(_, (p, _))| *p == Peer::Unknown)
            .map(|(id, _)| *id);
        let Some(oldest) = unidentified.next() else {
            return;
        };
        if unidentified.count() + 1 < wire::UNIDENTIFIED_CONNECTIONS_MAX {
            return;
        }
        if let Some((_, outbox)) = self.connections.remove(&oldest) {
            warn!(connection = %oldest, %peer, "too many unidentified connections: the oldest closed");
            outbox.close();
        }
    }

    /// The principal whose certificate opened `connection` (docs/security.md SEC11), or
    /// `None` without TLS.
    fn principal(&self, connection: ConnectionId) -> Option<&str> {
        self.principals.get(&connection).map(String::as_str)
    }

    /// Logs who registered `who` over TLS (nothing without TLS, so that plain clusters
    /// and the simulator log as before).
    fn log_principal(&self, connection: ConnectionId, role: &str, who: &str) {
        if let Some(principal) = self.principal(connection) {
            info!(
                role,
                id = who,
                principal,
                "registered by the certificate's principal"
            );
        }
    }

    fn closed(&mut self, id: ConnectionId) {
        self.principals.remove(&id);
        let Some((peer, _)) = self.connections.remove(&id) else {
            return;
        };
        match peer {
            Peer::Agent(agent) => {
                let now = self.env.clock.now();
                if let Some(record) = self.agents.get_mut(&agent) {
                    if record.outbox.as_ref().is_some_and(|o| o.id() == id)
                        && record.phase == AgentPhase::Connected
                    {
                        info!(agent = %agent, "agent disconnected");
                        record.outbox = None;
                        record.phase = AgentPhase::Disconnected;
                        record.disconnected_at = Some(now);
                    }
                    if record.recovering_on.as_ref().is_some_and(|o| o.id() == id) {
                        // docs/recovery-rules.md R5: the re-registration timer starts
                        // again from the moment the recovering agent went silent.
                        info!(agent = %agent, "recovering agent disconnected");
                        record.recovering_on = None;
                        record.disconnected_at = Some(now);
                    }
                }
            }
            Peer::Framework(framework) => {
                let now = self.env.clock.now();
                if let Some(record) = self.frameworks.get_mut(&framework) {
                    if record.outbox.as_ref().is_some_and(|o| o.id() == id) {
                        info!(framework = %framework, failover_timeout_s = record.failover_timeout().as_secs_f64(), "framework disconnected: waiting for its scheduler to fail over");
                        record.outbox = None;
                        record.disconnected_at = Some(now);
                    }
                }
            }
            Peer::Unknown => {}
        }
    }

    /// Whether the master removed `agent` (this master, or one before it).
    fn is_removed(&self, agent: &AgentId) -> bool {
        self.registry.is_removed(agent.as_str())
            || self
                .agents
                .get(agent)
                .is_some_and(|a| a.phase == AgentPhase::Removed)
    }

    /// The removed agent a connection belongs to, if it belongs to one.
    fn removed_peer(&self, connection: ConnectionId) -> Option<AgentId> {
        match self.connections.get(&connection) {
            Some((Peer::Agent(agent), _)) if self.is_removed(agent) => Some(agent.clone()),
            _ => None,
        }
    }

    fn tell_removed_agent(&self, connection: ConnectionId) {
        if let Some(outbox) = self.outbox(connection) {
            outbox.send(Body::ShutdownAgent(proto::ShutdownAgent {
                reason: "agent was removed by the master".into(),
            }));
        }
    }

    /// docs/recovery-rules.md R8: whether `connection` is older than the newest one
    /// `agent` registered, re-registered or said it was recovering on. What arrives on
    /// it was sent by an earlier incarnation, or on a connection the agent gave up, and
    /// was delivered late: it is not what the agent says now.
    fn stale_connection(&self, agent: &AgentId, connection: ConnectionId) -> bool {
        self.agents
            .get(agent)
            .is_some_and(|a| connection < a.newest_connection)
    }

    /// An agent says it is recovering (docs/recovery-rules.md R5): it is pinged on this
    /// connection instead of waiting out the re-registration timeout, and re-registers
    /// once its recovery is complete. A removed agent is told to shut down.
    fn agent_recovering(&mut self, connection: ConnectionId, id: AgentId) {
        let Some(outbox) = self.outbox(connection) else {
            return;
        };
        if self.is_removed(&id) {
            crate::coverage::point!("master_removed_agent_refused");
            info!(agent = %id, "removed agent says it is recovering: telling it to shut down");
            self.tell_removed_agent(connection);
            return;
        }
        if self.stale_connection(&id, connection) {
            crate::coverage::point!("master_stale_agent_message_ignored");
            info!(agent = %id, "stale recovery notice ignored: it came on an earlier connection than the agent's newest");
            return;
        }
        let Some(record) = self.agents.get_mut(&id) else {
            // Unknown here: admitted (or not) when it re-registers.
            info!(agent = %id, "unknown agent says it is recovering: waiting for it to re-register");
            return;
        };
        // Its registered connection, if the master still has one, belongs to the agent's
        // previous incarnation.
        record.outbox = None;
        record.phase = AgentPhase::Disconnected;
        record.recovering_on = Some(outbox);
        record.newest_connection = connection;
        record.disconnected_at = None;
        record.missed_pings = 0;
        record.ponged = true;
        if let Some(entry) = self.connections.get_mut(&connection) {
            entry.0 = Peer::Agent(id.clone());
        }
        info!(agent = %id, "agent is recovering: pinging it until it re-registers");
    }

    fn register_agent(&mut self, connection: ConnectionId, info: AgentInfo) {
        // A registration retried on the connection the master already answered (the
        // answer was lost): the same id again, not a new agent (reference B:
        // FaultToleranceTest.SlaveReliableRegistration).
        let retried = self.agents.iter().find(|(_, a)| {
            a.phase == AgentPhase::Connected
                && a.outbox.as_ref().is_some_and(|o| o.id() == connection)
        });
        if let Some((id, record)) = retried {
            crate::coverage::point!("master_registration_retry_answered");
            // The agent ignores RunTask until it knows its id, so a task placed on it
            // since the lost answer may never have reached it: the answer lists every
            // task the master still thinks open there, and the agent reports those it
            // does not know as lost (docs/stream-rules.md S2).
            let reconciliations: Vec<TaskReport> = record
                .tasks
                .values()
                .filter(|t| !crate::agent::status_updates::is_terminal(t.state()))
                .cloned()
                .collect();
            info!(agent = %id, "agent retried its registration: resending its id");
            if !reconciliations.is_empty() {
                crate::coverage::point!("master_retried_registration_reconciled");
                info!(agent = %id, tasks = reconciliations.len(), "tasks placed on the agent before it knew its id: asking it to reconcile them");
            }
            if let Some(outbox) = self.outbox(connection) {
                outbox.send(Body::AgentRegistered(proto::AgentRegistered {
                    agent_id: id.to_string(),
                    reconciliations,
                    leader_epoch: self.detector.epoch(),
                }));
            }
            return;
        }
        // docs/recovery-rules.md R8: a registration sent on an earlier connection than
        // the newest of the agent now at this address (an earlier incarnation's, delivered
        // late) is stale: it must not replace that agent.
        let stale = self.agents.iter().find(|(_, a)| {
            a.phase != AgentPhase::Removed
                && a.info.hostname == info.hostname
                && a.info.port == info.port
                && connection < a.newest_connection
        });
        if let Some((id, _)) = stale {
            crate::coverage::point!("master_stale_agent_message_ignored");
            info!(agent = %id, "stale registration ignored: it came on an earlier connection than the newest of the agent at its address");
            return;
        }
        // A new agent at the address of a known one: the old one rebooted or was wiped;
        // its tasks are lost at once.
        let same_address: Vec<AgentId> = self
            .agents
            .iter()
            .filter(|(_, a)| {
                a.phase != AgentPhase::Removed
                    && a.info.hostname == info.hostname
                    && a.info.port == info.port
            })
            .map(|(id, _)| id.clone())
            .collect();
        for old in same_address {
            info!(agent = %old, "a new agent registered at the address of a known one: removing the old agent");
            self.remove_agent(
                &old,
                TaskReason::ReasonAgentRemoved,
                "Agent removed: a new agent registered at the same address",
            );
        }
        let id = AgentId::new(new_id(&self.env, "agent"));
        let mut info = info;
        info.id = id.to_string();
        // The admission is durable before the agent hears its id.
        if let Err(error) = self.registry.admit(&info) {
            self.failed = Some(error);
            return;
        }
        info!(agent = %id, address = %format!("{}:{}", info.hostname, info.port), "agent registered");
        self.log_principal(connection, "agent", id.as_str());
        let outbox = self.outbox(connection);
        if let Some(entry) = self.connections.get_mut(&connection) {
            entry.0 = Peer::Agent(id.clone());
        }
        if let Some(outbox) = &outbox {
            outbox.send(Body::AgentRegistered(proto::AgentRegistered {
                agent_id: id.to_string(),
                reconciliations: Vec::new(),
                leader_epoch: self.detector.epoch(),
            }));
        }
        let reported_resources = reserved_of(&info);
        self.agents.insert(
            id,
            AgentRecord {
                info,
                outbox,
                phase: AgentPhase::Connected,
                tasks: BTreeMap::new(),
                missed_pings: 0,
                ponged: true,
                pending_kills: BTreeSet::new(),
                disconnected_at: None,
                checkpointed_resources: None,
                reported_resources,
                recovering_on: None,
                heard_since_election: true,
                newest_connection: connection,
            },
        );
    }

    fn reregister_agent(&mut self, connection: ConnectionId, message: proto::ReregisterAgent) {
        let info = message.info.unwrap_or_default();
        let id = AgentId::new(info.id.clone());
        let outbox = self.outbox(connection);
        if self.registry.is_removed(id.as_str())
            || self
                .agents
                .get(&id)
                .is_some_and(|a| a.phase == AgentPhase::Removed)
        {
            crate::coverage::point!("master_removed_agent_refused");
            info!(agent = %id, "removed agent tried to re-register: telling it to shut down");
            if let Some(outbox) = outbox {
                outbox.send(Body::ShutdownAgent(proto::ShutdownAgent {
                    reason: "agent was removed by the master".into(),
                }));
            }
            return;
        }
        if self.stale_connection(&id, connection) {
            crate::coverage::point!("master_stale_agent_message_ignored");
            info!(agent = %id, "stale re-registration ignored: it came on an earlier connection than the agent's newest");
            return;
        }
        if let Err(error) = self.registry.admit(&info) {
            self.failed = Some(error);
            return;
        }
        if let Some(entry) = self.connections.get_mut(&connection) {
            entry.0 = Peer::Agent(id.clone());
        }
        // Frameworks torn down while the agent was away (or whose shutdown it missed): the
        // agent is told to shut them down, and their tasks are not added back.
        let mut torn_down: BTreeSet<FrameworkId> = BTreeSet::new();
        let reported_frameworks = message
            .frameworks
            .iter()
            .map(|f| f.id.as_str())
            .chain(message.tasks.iter().map(|t| t.framework_id.as_str()))
            .chain(message.executors.iter().map(|e| e.framework_id.as_str()));
        for framework in reported_frameworks {
            let framework = FrameworkId::new(framework.to_owned());
            if self.is_torn_down(&framework) {
                torn_down.insert(framework);
            }
        }
        for framework in &message.frameworks {
            let framework_id = FrameworkId::new(framework.id.clone());
            if torn_down.contains(&framework_id) {
                continue;
            }
            // A framework this master has not seen connected: its failover timeout runs
            // from this master's election (docs/lifecycle-rules.md rule 9).
            let elected_at = self.elected_at;
            self.frameworks
                .entry(framework_id)
                .or_insert_with(|| FrameworkRecord {
                    info: framework.clone(),
                    outbox: None,
                    missed_pongs: 0,
                    disconnected_at: Some(elected_at),
                });
        }
        for task in message
            .tasks
            .iter()
            .filter(|t| torn_down.contains(&FrameworkId::new(t.framework_id.clone())))
        {
            let completed = self
                .completed_frameworks
                .entry(FrameworkId::new(task.framework_id.clone()))
                .or_insert_with(|| CompletedFramework {
                    name: String::new(),
                    tasks: BTreeMap::new(),
                    message: TORN_DOWN_MESSAGE.into(),
                });
            let mut killed = task.clone();
            if !crate::agent::status_updates::is_terminal(killed.state()) {
                killed.state = proto::TaskState::TaskKilled as i32;
            }
            completed
                .tasks
                .entry(TaskId::new(task.task_id.clone()))
                .or_insert(killed);
        }
        let reported: BTreeMap<(FrameworkId, TaskId), TaskReport> = message
            .tasks
            .iter()
            .filter(|t| !torn_down.contains(&FrameworkId::new(t.framework_id.clone())))
            .map(|t| {
                (
                    (
                        FrameworkId::new(t.framework_id.clone()),
                        TaskId::new(t.task_id.clone()),
                    ),
                    t.clone(),
                )
            })
            .collect();
        let known = self.agents.contains_key(&id);
        let mut reconciliations = Vec::new();
        if let Some(record) = self.agents.get(&id) {
            for (key, task) in &record.tasks {
                let terminal = crate::agent::status_updates::is_terminal(task.state());
                if !reported.contains_key(key) && !terminal {
                    reconciliations.push(task.clone());
                }
            }
        }
        info!(agent = %id, known, tasks = reported.len(), reconciliations = reconciliations.len(), "agent re-registered");
        self.log_principal(connection, "agent", id.as_str());
        let record = self
            .agents
            .entry(id.clone())
            .or_insert_with(|| AgentRecord {
                info: info.clone(),
                outbox: None,
                phase: AgentPhase::Connected,
                tasks: BTreeMap::new(),
                missed_pings: 0,
                ponged: true,
                pending_kills: BTreeSet::new(),
                disconnected_at: None,
                checkpointed_resources: None,
                reported_resources: Vec::new(),
                recovering_on: None,
                heard_since_election: true,
                newest_connection: connection,
            });
        record.reported_resources = message.checkpointed_resources.clone();
        let resend_resources = record.checkpointed_resources.clone();
        record.info = info;
        record.outbox = outbox.clone();
        record.newest_connection = connection;
        record.recovering_on = None;
        record.phase = AgentPhase::Connected;
        record.missed_pings = 0;
        record.ponged = true;
        record.disconnected_at = None;
        record.heard_since_election = true;
        for (key, task) in reported {
            record.tasks.insert(key, task);
        }
        let kills = std::mem::take(&mut record.pending_kills);
        if let Some(outbox) = outbox {
            outbox.send(Body::AgentReregistered(proto::AgentReregistered {
                agent_id: id.to_string(),
                reconciliations,
                leader_epoch: self.detector.epoch(),
            }));
            for (framework, task) in kills {
                info!(agent = %id, task = %task, "re-sending a kill issued while the agent was away");
                outbox.send(Body::KillTask(proto::KillTask {
                    framework_id: framework.to_string(),
                    task_id: task.to_string(),
                }));
            }
            for framework in &torn_down {
                info!(agent = %id, framework = %framework, "agent reported a torn-down framework: shutting it down there");
                outbox.send(Body::ShutdownFramework(proto::ShutdownFramework {
                    framework_id: framework.to_string(),
                }));
            }
            // The master's view of the agent's checkpointed resources wins over the
            // agent's report (an agent without resource providers; reference B,
            // CheckpointedResources): it is sent again, and the agent checkpoints it.
            if let Some(resources) = resend_resources {
                info!(
                    agent = %id,
                    resources = %crate::agent::describe_resources(&resources),
                    reported = %crate::agent::describe_resources(&message.checkpointed_resources),
                    "re-sending the master's view of the agent's checkpointed resources"
                );
                outbox.send(Body::CheckpointResources(proto::CheckpointResources {
                    agent_id: id.to_string(),
                    resources,
                }));
            }
        }
    }

    /// Whether a framework was torn down (by this master, or in the registry it read).
    fn is_torn_down(&self, framework: &FrameworkId) -> bool {
        self.completed_frameworks.contains_key(framework)
            || self.registry.is_torn_down(framework.as_str())
    }

    /// A framework tears itself down: it is recorded as torn down (durably, before anyone
    /// hears of it), removed from the active frameworks, its tasks recorded TASK_KILLED in
    /// its completed entry, and every connected agent told to shut it down (an agent that
    /// is away hears it when it re-registers).
    fn teardown_framework(&mut self, connection: ConnectionId, framework: FrameworkId) {
        let from_itself = matches!(self.connections.get(&connection), Some((Peer::Framework(peer), _)) if *peer == framework);
        let outbox = self.outbox(connection);
        if self.is_torn_down(&framework) {
            if let Some(outbox) = outbox {
                outbox.send(Body::FrameworkRemoved(proto::FrameworkRemoved {
                    framework_id: framework.to_string(),
                    message: self.removed_message(&framework),
                }));
            }
            return;
        }
        if !from_itself {
            warn!(framework = %framework, "teardown from a connection not registered as that framework: refused");
            return;
        }
        let Some((tasks, killed, agents)) = self.remove_framework(&framework, TORN_DOWN_MESSAGE)
        else {
            return;
        };
        info!(framework = %framework, tasks, killed, agents_told = agents, "framework torn down");
        if let Some(entry) = self.connections.get_mut(&connection) {
            entry.0 = Peer::Unknown;
        }
        if let Some(outbox) = outbox {
            outbox.send(Body::FrameworkRemoved(proto::FrameworkRemoved {
                framework_id: framework.to_string(),
                message: "framework torn down".into(),
            }));
        }
    }

    /// What a scheduler registering with the id of a removed framework is told.
    fn removed_message(&self, framework: &FrameworkId) -> String {
        self.completed_frameworks
            .get(framework)
            .map_or_else(|| TORN_DOWN_MESSAGE.to_owned(), |c| c.message.clone())
    }

    /// Removes a framework for good (a teardown, or its failover timeout ran out): it is
    /// recorded in the registry (durably, before anyone hears of it), removed from the
    /// active frameworks, its tasks recorded TASK_KILLED in its completed entry (the
    /// framework hears nothing of them), its queued tasks dropped and every connected
    /// agent told to shut it down (an agent that is away hears it when it re-registers).
    /// Returns its task count, how many were killed and how many agents were told, or
    /// `None` when the registry could not be written (the master stops).
    fn remove_framework(
        &mut self,
        framework: &FrameworkId,
        message: &str,
    ) -> Option<(usize, usize, usize)> {
        if let Err(error) = self.registry.tear_down(framework.as_str()) {
            self.failed = Some(error);
            return None;
        }
        let name = self
            .frameworks
            .remove(framework)
            .map(|f| f.info.name)
            .unwrap_or_default();
        let mut completed = CompletedFramework {
            name,
            tasks: BTreeMap::new(),
            message: message.to_owned(),
        };
        let mut agents = 0;
        let mut killed = 0;
        for record in self.agents.values_mut() {
            let keys: Vec<(FrameworkId, TaskId)> = record
                .tasks
                .keys()
                .filter(|(f, _)| f == framework)
                .cloned()
                .collect();
            for key in keys {
                let mut task = record.tasks.remove(&key).expect("listed above");
                if !crate::agent::status_updates::is_terminal(task.state()) {
                    task.state = proto::TaskState::TaskKilled as i32;
                    killed += 1;
                }
                completed.tasks.insert(key.1, task);
            }
            record.pending_kills.retain(|(f, _)| f != framework);
            if record.phase == AgentPhase::Connected {
                if let Some(agent) = &record.outbox {
                    agents += 1;
                    agent.send(Body::ShutdownFramework(proto::ShutdownFramework {
                        framework_id: framework.to_string(),
                    }));
                }
            }
        }
        self.pending_tasks.retain(|(f, _)| f != framework);
        let tasks = completed.tasks.len();
        self.completed_frameworks
            .insert(framework.clone(), completed);
        Some((tasks, killed, agents))
    }

    /// A dynamic reservation: the master adds it to its view of the agent's checkpointed
    /// resources and sends the agent that view to checkpoint. Bad requests are refused
    /// with a warning that says why.
    fn reserve_resources(&mut self, message: proto::ReserveResources) {
        let framework = FrameworkId::new(message.framework_id.clone());
        match self.try_reserve(&message) {
            Ok((agent, view)) => {
                let record = self.agents.get_mut(&agent).expect("checked");
                info!(framework = %framework, agent = %agent, resources = %crate::agent::describe_resources(&view), "reserved resources: sending the agent its checkpointed resources");
                record.checkpointed_resources = Some(view.clone());
                if let Some(outbox) = &record.outbox {
                    outbox.send(Body::CheckpointResources(proto::CheckpointResources {
                        agent_id: agent.to_string(),
                        resources: view,
                    }));
                }
            }
            Err(error) => warn!(framework = %framework, %error, "reservation refused"),
        }
    }

    fn try_reserve(
        &self,
        message: &proto::ReserveResources,
    ) -> Result<(AgentId, Vec<Resource>), String> {
        let framework = FrameworkId::new(message.framework_id.clone());
        if !self.frameworks.contains_key(&framework) {
            return Err(format!("unknown framework '{framework}'"));
        }
        if message.resources.is_empty() {
            return Err("no resources to reserve".into());
        }
        for resource in &message.resources {
            if resource.name.is_empty() {
                return Err("a resource without a name".into());
            }
            if resource.role.is_empty() || resource.role == "*" {
                return Err(format!(
                    "resource {} names no role to reserve it for",
                    resource.name
                ));
            }
            if !resource.scalar.is_finite() || resource.scalar <= 0.0 {
                return Err(format!(
                    "resource {}({}) has a bad amount {}",
                    resource.name, resource.role, resource.scalar
                ));
            }
        }
        let agent = if message.agent_id.is_empty() {
            self.agents
                .iter()
                .find(|(_, a)| a.phase == AgentPhase::Connected)
                .map(|(id, _)| id.clone())
                .ok_or("no connected agent to reserve resources on")?
        } else {
            AgentId::new(message.agent_id.clone())
        };
        let record = self
            .agents
            .get(&agent)
            .filter(|a| a.phase != AgentPhase::Removed)
            .ok_or_else(|| format!("unknown agent '{agent}'"))?;
        let mut view = record
            .checkpointed_resources
            .clone()
            .unwrap_or_else(|| record.reported_resources.clone());
        let reservation = format!("{DYNAMIC_RESERVATION_PREFIX}{framework}");
        for resource in &message.resources {
            match view.iter_mut().find(|r| {
                r.name == resource.name && r.role == resource.role && r.reservation == reservation
            }) {
                Some(existing) => existing.scalar += resource.scalar,
                None => view.push(Resource {
                    name: resource.name.clone(),
                    scalar: resource.scalar,
                    role: resource.role.clone(),
                    reservation: reservation.clone(),
                }),
            }
        }
        // Dynamic reservations are carved from the agent's unreserved resources.
        for resource in &message.resources {
            let unreserved: f64 = record
                .info
                .resources
                .iter()
                .filter(|r| r.name == resource.name && r.role.is_empty())
                .map(|r| r.scalar)
                .sum();
            let reserved: f64 = view
                .iter()
                .filter(|r| {
                    r.name == resource.name && r.reservation.starts_with(DYNAMIC_RESERVATION_PREFIX)
                })
                .map(|r| r.scalar)
                .sum();
            if reserved > unreserved {
                return Err(format!(
                    "agent {agent} has {unreserved} unreserved {}, {reserved} would be reserved",
                    resource.name
                ));
            }
        }
        Ok((agent, view))
    }

    /// Removes an agent; its non-terminal tasks are reported to their frameworks.
    fn remove_agent(&mut self, agent: &AgentId, reason: TaskReason, message: &str) {
        let Some(record) = self.agents.get_mut(agent) else {
            return;
        };
        // The removal is durable before anyone hears of it.
        if let Err(error) = self.registry.remove(&record.info) {
            self.failed = Some(error);
            return;
        }
        record.phase = AgentPhase::Removed;
        for outbox in [record.outbox.take(), record.recovering_on.take()]
            .into_iter()
            .flatten()
        {
            outbox.send(Body::ShutdownAgent(proto::ShutdownAgent {
                reason: message.to_owned(),
            }));
        }
        let open: Vec<TaskReport> = record
            .tasks
            .values()
            .filter(|t| !crate::agent::status_updates::is_terminal(t.state()))
            .cloned()
            .collect();
        for task in open {
            let key = (
                FrameworkId::new(task.framework_id.clone()),
                TaskId::new(task.task_id.clone()),
            );
            if let Some(entry) = self
                .agents
                .get_mut(agent)
                .and_then(|a| a.tasks.get_mut(&key))
            {
                entry.state = proto::TaskState::TaskLost as i32;
            }
            crate::coverage::point!("master_task_lost_with_agent");
            info!(agent = %agent, task = %task.task_id, "task lost with its agent");
            let update = self.master_update(&task, proto::TaskState::TaskLost, reason, message);
            self.send_to_framework(&key.0, update);
        }
    }

    fn master_update(
        &self,
        task: &TaskReport,
        state: proto::TaskState,
        reason: TaskReason,
        message: &str,
    ) -> StatusUpdate {
        let timestamp = self.env.wall_seconds();
        StatusUpdate {
            framework_id: task.framework_id.clone(),
            executor_id: task.executor_id.clone(),
            agent_id: String::new(),
            status: Some(TaskStatus {
                task_id: task.task_id.clone(),
                state: state as i32,
                source: TaskSource::SourceMaster as i32,
                reason: reason as i32,
                message: message.to_owned(),
                timestamp,
                ..Default::default()
            }),
            timestamp,
            // Master-generated updates carry no uuid: nothing acknowledges them.
            uuid: Vec::new(),
            latest_state: state as i32,
        }
    }

    fn send_to_framework(&self, framework: &FrameworkId, update: StatusUpdate) {
        if let Some(outbox) = self
            .frameworks
            .get(framework)
            .and_then(|f| f.outbox.clone())
        {
            outbox.send(Body::StatusUpdate(StatusUpdateMessage {
                update: Some(update),
            }));
        }
    }

    fn status_update(&mut self, connection: ConnectionId, update: StatusUpdate) {
        let framework = FrameworkId::new(update.framework_id.clone());
        let agent = AgentId::new(update.agent_id.clone());
        let status = update.status.clone().unwrap_or_default();
        let key = (framework.clone(), TaskId::new(status.task_id.clone()));
        // docs/recovery-rules.md R7: accepted only on the connection the agent is
        // registered on; R6: a removed agent's update is refused and never forwarded.
        let registered = self.agents.get(&agent).is_some_and(|a| {
            a.phase == AgentPhase::Connected
                && a.outbox.as_ref().is_some_and(|o| o.id() == connection)
        });
        if !registered {
            let removed = self.is_removed(&agent) || self.removed_peer(connection).is_some();
            if removed {
                crate::coverage::point!("master_removed_agent_refused");
                info!(agent = %agent, task = %status.task_id, state = status.state().as_str_name(), "status update from a removed agent: refused, telling it to shut down");
                self.tell_removed_agent(connection);
            } else {
                info!(agent = %agent, task = %status.task_id, state = status.state().as_str_name(), "status update on a connection the agent is not registered on: dropped");
            }
            return;
        }
        if self.is_torn_down(&framework) {
            // The agent missed the shutdown (or has not handled it yet): tell it again.
            info!(framework = %framework, task = %status.task_id, "status update of a torn-down framework: dropped, shutting the framework down on its agent");
            if let Some(outbox) = self.agents.get(&agent).and_then(|a| a.outbox.clone()) {
                outbox.send(Body::ShutdownFramework(proto::ShutdownFramework {
                    framework_id: framework.to_string(),
                }));
            }
            return;
        }
        if let Some(record) = self.agents.get_mut(&agent) {
            let entry = record.tasks.entry(key).or_insert_with(|| TaskReport {
                task_id: status.task_id.clone(),
                framework_id: framework.to_string(),
                executor_id: update.executor_id.clone(),
                state: status.state,
            });
            entry.state = update.latest_state;
        }
        self.send_to_framework(&framework, update);
    }

    fn register_framework(&mut self, connection: ConnectionId, mut info: FrameworkInfo) {
        if info.id.is_empty() {
            info.id = new_id(&self.env, "framework");
        }
        let id = FrameworkId::new(info.id.clone());
        let outbox = self.outbox(connection);
        if self.is_torn_down(&id) {
            info!(framework = %id, "a removed framework tried to register: refused");
            if let Some(outbox) = &outbox {
                outbox.send(Body::FrameworkRemoved(proto::FrameworkRemoved {
                    framework_id: id.to_string(),
                    message: self.removed_message(&id),
                }));
            }
            return;
        }
        if let Some(entry) = self.connections.get_mut(&connection) {
            entry.1 = entry.1.clone();
            entry.0 = Peer::Framework(id.clone());
        }
        info!(framework = %id, "framework registered");
        self.log_principal(connection, "framework", id.as_str());
        if let Some(outbox) = &outbox {
            outbox.send(Body::FrameworkRegistered(proto::FrameworkRegistered {
                framework_id: id.to_string(),
                leader_epoch: self.detector.epoch(),
            }));
        }
        // A scheduler registering with the id of one still connected fails it over: the
        // previous scheduler's connection is closed (Mesos: "Framework failed over").
        let previous = self
            .frameworks
            .get(&id)
            .and_then(|f| f.outbox.clone())
            .filter(|old| old.id() != connection);
        if let Some(old) = previous {
            info!(framework = %id, "framework failed over: closing the previous scheduler's connection");
            self.connections.remove(&old.id());
            old.close();
        }
        let record = self.frameworks.entry(id).or_insert(FrameworkRecord {
            info: info.clone(),
            outbox: None,
            missed_pongs: 0,
            disconnected_at: None,
        });
        record.info = info;
        record.outbox = outbox;
        record.missed_pongs = 0;
        // Back in time: it keeps its tasks (docs/lifecycle-rules.md rule 8).
        record.disconnected_at = None;
    }

    fn submit_task(&mut self, framework: FrameworkId, mut task: TaskInfo) {
        let Some(framework_info) = self.frameworks.get(&framework).map(|f| f.info.clone()) else {
            warn!(framework = %framework, "task from an unknown framework dropped");
            return;
        };
        // A task id the master already knows for this framework is never launched again
        // (Mesos rejects duplicate task ids): the framework gets the task's current state.
        let key = (framework.clone(), TaskId::new(task.task_id.clone()));
        if let Some(known) = self
            .agents
            .values()
            .find_map(|a| a.tasks.get(&key))
            .cloned()
        {
            info!(framework = %framework, task = %task.task_id, state = known.state().as_str_name(), "duplicate task id: not launched again");
            let update = self.master_update(
                &known,
                known.state(),
                TaskReason::ReasonReconciliation,
                "Duplicate task id: task already known",
            );
            self.send_to_framework(&framework, update);
            return;
        }
        if self
            .pending_tasks
            .iter()
            .any(|(f, t)| *f == framework && t.task_id == task.task_id)
        {
            return;
        }
        let agent = if task.agent_id.is_empty() {
            // The connected agent running the fewest open tasks (the first by id on a
            // tie), so that tasks spread over several agents.
            self.agents
                .iter()
                .filter(|(_, a)| a.phase == AgentPhase::Connected)
                .min_by_key(|(_, a)| {
                    a.tasks
                        .values()
                        .filter(|t| !crate::agent::status_updates::is_terminal(t.state()))
                        .count()
                })
                .map(|(id, _)| id.clone())
        } else {
            Some(AgentId::new(task.agent_id.clone())).filter(|id| {
                self.agents
                    .get(id)
                    .is_some_and(|a| a.phase == AgentPhase::Connected)
            })
        };
        // The executor the framework named, or a command executor of its own named after
        // the task (docs/lifecycle-rules.md rule 14).
        let executor_id = if task.executor_id.is_empty() {
            task.task_id.clone()
        } else {
            task.executor_id.clone()
        };
        let report = TaskReport {
            task_id: task.task_id.clone(),
            framework_id: framework.to_string(),
            executor_id: executor_id.clone(),
            state: proto::TaskState::TaskStaging as i32,
        };
        // The executor id names a directory on the agent (docs/lifecycle-rules.md rule 14).
        if executor_id == "." || executor_id == ".." || executor_id.contains(['/', '\0']) {
            info!(framework = %framework, task = %task.task_id, executor = %executor_id, "task names an unusable executor id: refused");
            let update = self.master_update(
                &report,
                proto::TaskState::TaskError,
                TaskReason::ReasonTaskInvalid,
                &format!(
                    "Executor id '{executor_id}' cannot name a directory ('/', NUL, '.' and '..' are not allowed)"
                ),
            );
            self.send_to_framework(&framework, update);
            return;
        }
        let Some(agent) = agent else {
            if self.pending_tasks.len() >= PENDING_TASKS_MAX {
                info!(task = %task.task_id, "no agent to run the task and the queue is full: dropped");
                let update = self.master_update(
                    &report,
                    proto::TaskState::TaskDropped,
                    TaskReason::ReasonAgentRemoved,
                    "No agent available",
                );
                self.send_to_framework(&framework, update);
                return;
            }
            info!(task = %task.task_id, "no agent to run the task yet: queued");
            self.pending_tasks.push((framework, task));
            return;
        };
        task.agent_id = agent.to_string();
        task.framework_id = framework.to_string();
        task.executor_id = executor_id.clone();
        let executor = ExecutorInfo {
            name: if executor_id == task.task_id {
                format!("command executor for {}", task.task_id)
            } else {
                format!("executor {executor_id}")
            },
            executor_id,
            framework_id: framework.to_string(),
            command: None,
            resources: Vec::new(),
        };
        let run = Body::RunTask(proto::RunTask {
            framework: Some(framework_info),
            executor: Some(executor),
            task: Some(task),
        });
        // docs/security.md SEC5: a task whose RunTask would not fit in a frame is refused
        // here, where the framework hears why, and never reaches an agent.
        if let Err(error) = wire::check_fits(&run) {
            info!(framework = %framework, task = %report.task_id, %error, "task too large for a frame: refused");
            let update = self.master_update(
                &report,
                proto::TaskState::TaskError,
                TaskReason::ReasonTaskInvalid,
                &format!("Task refused: {error}"),
            );
            self.send_to_framework(&framework, update);
            return;
        }
        let task_id = report.task_id.clone();
        let record = self.agents.get_mut(&agent).expect("chosen above");
        record
            .tasks
            .insert((framework.clone(), TaskId::new(task_id.clone())), report);
        info!(framework = %framework, task = %task_id, agent = %agent, "task placed");
        if let Some(outbox) = &record.outbox {
            outbox.send(run);
        }
    }

    fn kill_task(&mut self, framework: FrameworkId, task: TaskId) {
        let key = (framework.clone(), task.clone());
        let Some((agent, record)) = self
            .agents
            .iter_mut()
            .find(|(_, a)| a.tasks.contains_key(&key))
        else {
            return;
        };
        match &record.outbox {
            Some(outbox) => {
                outbox.send(Body::KillTask(proto::KillTask {
                    framework_id: framework.to_string(),
                    task_id: task.to_string(),
                }));
            }
            None => {
                info!(agent = %agent, task = %task, "kill for a task on a disconnected agent: kept for its return");
                record.pending_kills.insert(key);
            }
        }
    }

    /// Answers a reconciliation. Known tasks get their latest state. A task named by the
    /// framework that the master does not know is reported lost once no agent that could
    /// hold it may still re-register: at once when every agent its registry knows has
    /// re-registered with this master (or there is none), and otherwise once
    /// `agent_reregister_timeout` has passed since this master was elected
    /// (docs/lifecycle-rules.md rule 13).
    fn reconcile(&mut self, framework: FrameworkId, task_ids: Vec<String>) {
        let known: BTreeMap<String, TaskReport> = self
            .agents
            .values()
            .flat_map(|a| {
                a.tasks
                    .iter()
                    .filter(|((f, _), _)| *f == framework)
                    .map(|((_, t), r)| (t.to_string(), r.clone()))
            })
            .collect();
        let queued: BTreeSet<String> = self
            .pending_tasks
            .iter()
            .filter(|(f, _)| *f == framework)
            .map(|(_, t)| t.task_id.clone())
            .collect();
        if task_ids.is_empty() {
            for task in known.values() {
                let update = self.master_update(
                    task,
                    task.state(),
                    TaskReason::ReasonReconciliation,
                    "Reconciliation",
                );
                self.send_to_framework(&framework, update);
            }
            return;
        }
        let settled = self
            .env
            .clock
            .now()
            .saturating_duration_since(self.elected_at)
            >= self.config.agent_reregister_timeout;
        let awaited = self
            .agents
            .values()
            .any(|a| a.phase == AgentPhase::Disconnected && !a.heard_since_election)
            || broken!(self.config.breakage.master_waits_to_reconcile_unknown_tasks);
        for task_id in task_ids {
            match known.get(&task_id) {
                Some(task) => {
                    let update = self.master_update(
                        task,
                        task.state(),
                        TaskReason::ReasonReconciliation,
                        "Reconciliation",
                    );
                    self.send_to_framework(&framework, update);
                }
                None if queued.contains(&task_id) => {}
                None if settled || !awaited => {
                    if settled {
                        crate::coverage::point!("master_reconciled_unknown_task");
                    } else {
                        crate::coverage::point!("master_reconciled_unknown_task_at_once");
                    }
                    info!(framework = %framework, task = %task_id, "reconciliation: task unknown to the master: lost");
                    let report = TaskReport {
                        task_id: task_id.clone(),
                        framework_id: framework.to_string(),
                        executor_id: String::new(),
                        state: proto::TaskState::TaskLost as i32,
                    };
                    let update = self.master_update(
                        &report,
                        proto::TaskState::TaskLost,
                        TaskReason::ReasonReconciliation,
                        "Reconciliation: task unknown to the master",
                    );
                    self.send_to_framework(&framework, update);
                }
                None => {}
            }
        }
    }

    /// Leadership changes: a newly elected master starts from the registry; a master that
    /// lost the lease forgets everything and drops its connections, so that agents and
    /// frameworks go and find the new leader.
    fn maintain_leadership(&mut self) {
        let leading = self.detector.maintain();
        if leading == self.leading {
            return;
        }
        self.leading = leading;
        if leading {
            self.elected();
        } else {
            warn!(leader = %self.detector.leader(), "no longer the leading master: forgetting all state");
            self.agents.clear();
            self.frameworks.clear();
            self.completed_frameworks.clear();
            self.pending_tasks.clear();
            self.next_ping = None;
            for (_, (_, outbox)) in std::mem::take(&mut self.connections) {
                outbox.close();
            }
        }
    }

    fn elected(&mut self) {
        let now = self.env.clock.now();
        self.elected_at = now;
        self.next_ping = Some(now + self.config.agent_ping_timeout);
        if let Err(error) = self.registry.reload() {
            self.failed = Some(error);
            return;
        }
        for framework in self.registry.torn_down_frameworks() {
            self.completed_frameworks.insert(
                FrameworkId::new(framework.clone()),
                CompletedFramework {
                    name: String::new(),
                    tasks: BTreeMap::new(),
                    message: TORN_DOWN_MESSAGE.into(),
                },
            );
        }
        let mut known = 0;
        for entry in self.registry.agents() {
            let Some(info) = entry.info.clone() else {
                continue;
            };
            if entry.removed {
                continue;
            }
            known += 1;
            self.agents.insert(
                AgentId::new(info.id.clone()),
                AgentRecord {
                    info,
                    outbox: None,
                    phase: AgentPhase::Disconnected,
                    tasks: BTreeMap::new(),
                    missed_pings: 0,
                    ponged: true,
                    pending_kills: BTreeSet::new(),
                    disconnected_at: Some(now),
                    checkpointed_resources: None,
                    reported_resources: Vec::new(),
                    recovering_on: None,
                    heard_since_election: false,
                    newest_connection: ConnectionId(0),
                },
            );
        }
        if known == 0 {
            info!("elected leading master; the registry knows no agents");
        } else {
            info!(
                known_agents = known,
                reregister_timeout_s = self.config.agent_reregister_timeout.as_secs_f64(),
                "elected leading master: waiting for known agents to re-register"
            );
        }
    }

    fn tick(&mut self) {
        let now = self.env.clock.now();
        self.maintain_leadership();
        if !self.leading {
            return;
        }
        if !self.pending_tasks.is_empty()
            && self
                .agents
                .values()
                .any(|a| a.phase == AgentPhase::Connected)
        {
            for (framework, task) in std::mem::take(&mut self.pending_tasks) {
                self.submit_task(framework, task);
            }
        }
        if self.next_ping.is_some_and(|at| now >= at) {
            self.next_ping = Some(now + self.config.agent_ping_timeout);
            self.ping_sequence += 1;
            let mut unreachable = Vec::new();
            for (id, record) in self.agents.iter_mut() {
                // Registered agents, and recovering ones on the connection they said so
                // on (docs/recovery-rules.md R5).
                let pinged = match record.phase {
                    AgentPhase::Connected => record.outbox.clone(),
                    AgentPhase::Disconnected if record.recovering_on.is_some() => {
                        record.recovering_on.clone()
                    }
                    _ => continue,
                };
                if !record.ponged {
                    record.missed_pings += 1;
                }
                if record.missed_pings >= self.config.max_agent_ping_timeouts {
                    unreachable.push(id.clone());
                    continue;
                }
                record.ponged = false;
                if let Some(outbox) = &pinged {
                    if record.phase == AgentPhase::Disconnected {
                        crate::coverage::point!("master_recovering_agent_pinged");
                    }
                    outbox.send(Body::Ping(proto::Ping {
                        sequence: self.ping_sequence,
                    }));
                }
            }
            // Frameworks get a heartbeat too, so that one whose connection died silently
            // (a partition that dropped segments) notices and reconnects.
            let mut silent = Vec::new();
            for (id, record) in self.frameworks.iter_mut() {
                if let Some(outbox) = &record.outbox {
                    if record.missed_pongs >= FRAMEWORK_MISSED_PONGS_MAX {
                        silent.push((id.clone(), outbox.id()));
                        continue;
                    }
                    record.missed_pongs += 1;
                    outbox.send(Body::Ping(proto::Ping {
                        sequence: self.ping_sequence,
                    }));
                }
            }
            for (framework, connection) in silent {
                // Closing the connection (reader and writer) drops the socket: the
                // framework sees it closed and reconnects, and no task is left waiting on
                // a dead stream.
                info!(framework = %framework, "framework stopped answering heartbeats: closing its connection");
                if let Some((_, outbox)) = self.connections.remove(&connection) {
                    outbox.close();
                }
                if let Some(record) = self.frameworks.get_mut(&framework) {
                    record.outbox = None;
                    record.missed_pongs = 0;
                    record.disconnected_at = Some(now);
                }
            }
            for id in unreachable {
                crate::coverage::point!("master_agent_unreachable");
                info!(agent = %id, "agent stopped answering pings: unreachable");
                self.remove_agent(&id, TaskReason::ReasonAgentRemoved, "Agent unreachable");
            }
        }
        // Agents that stayed away past the re-registration timeout.
        let expired: Vec<AgentId> = self
            .agents
            .iter()
            .filter(|(_, a)| {
                a.phase == AgentPhase::Disconnected
                    && a.disconnected_at.is_some_and(|at| {
                        now.saturating_duration_since(at) >= self.config.agent_reregister_timeout
                    })
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            crate::coverage::point!("master_agent_reregister_timeout");
            info!(agent = %id, "agent did not re-register within the timeout: removing it");
            self.remove_agent(
                &id,
                TaskReason::ReasonAgentRemoved,
                "Agent did not re-register in time",
            );
        }
        // Frameworks that stayed disconnected past their failover timeout
        // (docs/lifecycle-rules.md rule 8).
        let failed_over: Vec<(FrameworkId, Duration)> = self
            .frameworks
            .iter()
            .filter(|(_, f)| f.outbox.is_none())
            .filter(|_| !broken!(self.config.breakage.master_ignores_failover_timeout))
            .filter_map(|(id, f)| {
                let at = f.disconnected_at?;
                let timeout = f.failover_timeout();
                (now.saturating_duration_since(at) >= timeout).then(|| (id.clone(), timeout))
            })
            .collect();
        for (id, timeout) in failed_over {
            crate::coverage::point!("master_framework_failover_timeout");
            let message = format!(
                "framework removed: no scheduler failed over within its failover timeout ({} s)",
                timeout.as_secs_f64()
            );
            if let Some((tasks, killed, agents)) = self.remove_framework(&id, &message) {
                info!(framework = %id, tasks, killed, agents_told = agents, failover_timeout_s = timeout.as_secs_f64(), "framework did not fail over within its failover timeout: removed");
            }
        }
    }
}

/// The reserved resources of an agent's flags (a role other than `*`): what a new agent
/// checkpoints in `resources.info` when it registers.
fn reserved_of(info: &AgentInfo) -> Vec<Resource> {
    info.resources
        .iter()
        .filter(|r| !r.role.is_empty())
        .cloned()
        .collect()
}

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
    self, AgentInfo, FrameworkInfo, Resource, StatusUpdateMessage, TaskInfo, TaskReason, TaskReport,
};
use crate::registry::{Registry, RegistryError};
use crate::wire::{self, ConnectionId, Incoming, Outbox};

mod agents;
mod decisions;
mod frameworks;
mod http;
mod leadership;
mod placement;

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
    /// `--acls`: what each principal may do (docs/security.md SEC20-SEC23); everything
    /// is allowed by default.
    pub acls: crate::security::acls::Acls,
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
            acls: crate::security::acls::Acls::permissive(),
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

/// How a dynamic reservation is marked in `Resource::reservation` (docs/design.md D19).
pub use crate::domain::resources::DYNAMIC_RESERVATION_PREFIX;

struct FrameworkRecord {
    info: FrameworkInfo,
    /// The principal that first registered it (docs/security.md SEC22), if it had one.
    principal: Option<String>,
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
        deferred_registrations: Vec::new(),
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
    /// Registrations under a principal with the id of a framework this master does not
    /// know yet, held while its agents may still report the framework's principal
    /// (docs/security.md SEC40).
    deferred_registrations: Vec<(ConnectionId, FrameworkInfo)>,
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
            Body::ReserveResources(message) => self.reserve_resources(id, message),
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

    /// docs/security.md SEC22: decides `action` for `principal` by the ACLs; a refusal
    /// is logged (SEC23) and returned for the caller to answer with.
    fn authorize(
        &self,
        principal: Option<&str>,
        action: crate::security::acls::Action,
    ) -> Result<(), crate::security::acls::Refusal> {
        self.config
            .acls
            .authorize(principal, action)
            .inspect_err(|refusal| warn!(%refusal, "request refused"))
    }

    /// Answers a framework's refused request with `FrameworkError` (SEC23).
    fn refuse_framework(
        &self,
        connection: ConnectionId,
        framework: &str,
        refusal: &crate::security::acls::Refusal,
    ) {
        if let Some(outbox) = self.outbox(connection) {
            outbox.send(Body::FrameworkError(proto::FrameworkError {
                framework_id: framework.to_owned(),
                message: refusal.to_string(),
            }));
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
}

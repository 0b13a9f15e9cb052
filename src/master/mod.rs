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

use std::rc::Rc;

use tokio::time::Instant;
use tracing::{info, warn};

use crate::ids::{AgentId, FrameworkId, TaskId};
use crate::os::Random;
use crate::proto::envelope::Body;
use crate::proto::{
    self, AgentInfo, FrameworkInfo, Resource, StatusUpdateMessage, TaskInfo, TaskReason, TaskReport,
};
use crate::registry::{Registry, RegistryError};
use crate::wire::{self, ConnectionId};

mod agents;
mod decisions;
mod driver;
mod effects;
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
pub use driver::{run, run_with_registry};
use effects::{Effect, Leadership, Now};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AgentPhase {
    Connected,
    Disconnected,
    Removed,
}

struct AgentRecord {
    info: AgentInfo,
    /// The connection the agent registered on, where its messages go.
    outbox: Option<ConnectionId>,
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
    recovering_on: Option<ConnectionId>,
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
    /// The connection of its scheduler, where its messages go.
    outbox: Option<ConnectionId>,
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

/// Tasks kept waiting for an agent at most.
const PENDING_TASKS_MAX: usize = 10_000;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Peer {
    Unknown,
    Agent(AgentId),
    Framework(FrameworkId),
}

/// The master's core (docs/design.md D37): its state and its handlers. A handler takes
/// the event, the time and the leadership and returns the effects for the driver to
/// perform; it reads no clock and touches no connection. Its registry changes are
/// effects too (D77); it reads the registry's store only when elected (D42).
struct Master {
    config: MasterConfig,
    /// Where new agent and framework ids come from (a seam: seeded in the simulator).
    random: Rc<dyn Random>,
    registry: Registry,
    /// The time of the event being handled.
    now: Now,
    /// What the detector said when the event being handled arrived.
    leadership: Leadership,
    /// What the event being handled asks the driver to do, in order.
    effects: Vec<Effect>,
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
    /// The open connections and who is on each.
    connections: BTreeMap<ConnectionId, Peer>,
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

fn new_id(random: &dyn Random, prefix: &str) -> String {
    format!("{prefix}-{:08x}", random.next_u64() as u32)
}

impl Master {
    /// A master that has not led yet, at `now`.
    fn new(config: MasterConfig, registry: Registry, random: Rc<dyn Random>, now: Now) -> Master {
        Master {
            elected_at: now.at,
            now,
            leadership: Leadership::default(),
            effects: Vec::new(),
            random,
            config,
            registry,
            leading: false,
            failed: None,
            agents: BTreeMap::new(),
            frameworks: BTreeMap::new(),
            completed_frameworks: BTreeMap::new(),
            connections: BTreeMap::new(),
            next_ping: None,
            ping_sequence: 0,
            pending_tasks: Vec::new(),
            deferred_registrations: Vec::new(),
            principals: BTreeMap::new(),
        }
    }

    /// Starts handling an event at `now`: what it does is collected from here on.
    fn begin(&mut self, now: Now) {
        self.now = now;
        self.effects.clear();
    }

    /// The effects of the event handled.
    fn end(&mut self) -> Vec<Effect> {
        std::mem::take(&mut self.effects)
    }

    /// A registry change, if there is one, among the event's effects at this point: it
    /// is durable before anything the handler does after it (docs/design.md D77).
    fn record(&mut self, write: Option<crate::registry::RegistryWrite>) {
        if let Some(write) = write {
            self.effects.push(Effect::Record(write));
        }
    }

    /// A message arrived on connection `id`.
    fn on_message(
        &mut self,
        now: Now,
        leadership: Leadership,
        id: ConnectionId,
        body: Body,
    ) -> Vec<Effect> {
        self.begin(now);
        self.leadership = leadership;
        self.handle(id, body);
        self.end()
    }

    /// Connection `id` closed.
    fn on_closed(&mut self, now: Now, id: ConnectionId) -> Vec<Effect> {
        self.begin(now);
        self.closed(id);
        self.end()
    }

    /// An HTTP request for `path` arrived on connection `id`.
    fn on_http(
        &mut self,
        now: Now,
        leadership: Leadership,
        id: ConnectionId,
        path: &str,
    ) -> Vec<Effect> {
        self.begin(now);
        self.leadership = leadership;
        self.http(id, path);
        self.end()
    }

    /// Connection `id` was accepted from `peer`; the driver serves it once the effects
    /// (closing the oldest unidentified connection) are performed.
    fn on_accepted(&mut self, now: Now, id: ConnectionId, peer: &str) -> Vec<Effect> {
        self.begin(now);
        self.limit_unidentified(peer);
        if let Some(principal) = crate::tls::principal_of(peer) {
            // docs/security.md SEC11: the certificate's principal, for registration.
            self.principals.insert(id, principal.to_owned());
        }
        self.connections.insert(id, Peer::Unknown);
        self.end()
    }

    /// The periodic tick; `leading` is what the detector's upkeep said just before.
    fn on_tick(&mut self, now: Now, leading: bool, leadership: Leadership) -> Vec<Effect> {
        self.begin(now);
        self.leadership = leadership;
        self.tick(leading);
        self.end()
    }

    /// Every connection the core still names: the driver keeps their outboxes and lets
    /// go of the others (docs/design.md D41).
    fn connections_in_use(&self) -> BTreeSet<ConnectionId> {
        let mut named: BTreeSet<ConnectionId> = self.connections.keys().copied().collect();
        for record in self.agents.values() {
            named.extend(record.outbox);
            named.extend(record.recovering_on);
        }
        for record in self.frameworks.values() {
            named.extend(record.outbox);
        }
        named
    }

    /// Queues `body` on `to`.
    fn send(&mut self, to: ConnectionId, body: Body) {
        self.effects.push(Effect::Send { to, body });
    }

    /// Queues `body` on `to` if the connection is open.
    fn send_on(&mut self, to: ConnectionId, body: Body) {
        if self.connections.contains_key(&to) {
            self.send(to, body);
        }
    }

    /// Closes `connection` now.
    fn close(&mut self, connection: ConnectionId) {
        self.effects.push(Effect::Close { connection });
    }

    fn handle(&mut self, id: ConnectionId, body: Body) {
        // Leading needs both: elected at a tick (the registry read, docs/zookeeper.md
        // Z8) and still leading now (a session may be lost between ticks, Z4).
        if !(self.leading && self.leadership.leading) {
            let leader = self.leadership.leader.clone();
            self.send_on(id, Body::NotLeader(proto::NotLeader { leader }));
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
                let from_itself =
                    matches!(self.connections.get(&id), Some(Peer::Agent(peer)) if *peer == agent);
                if from_itself && self.agents.contains_key(&agent) {
                    info!(agent = %agent, "agent unregistered: removing it");
                    self.remove_agent(&agent, TaskReason::ReasonAgentRemoved, "Agent unregistered");
                }
            }
            Body::Pong(_) => match self.connections.get(&id) {
                Some(Peer::Agent(agent)) => {
                    // Only an answer on the connection the agent is pinged on counts.
                    if let Some(record) = self.agents.get_mut(agent).filter(|record| {
                        record
                            .outbox
                            .or(record.recovering_on)
                            .is_some_and(|o| o == id)
                    }) {
                        record.ponged = true;
                        record.missed_pings = 0;
                    }
                }
                Some(Peer::Framework(framework)) => {
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
                match self.agents.get(&agent).and_then(|a| a.outbox) {
                    Some(outbox) => self.send(outbox, Body::Acknowledgement(ack)),
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
            .filter(|(_, p)| **p == Peer::Unknown)
            .map(|(id, _)| *id);
        let Some(oldest) = unidentified.next() else {
            return;
        };
        if unidentified.count() + 1 < wire::UNIDENTIFIED_CONNECTIONS_MAX {
            return;
        }
        if self.connections.remove(&oldest).is_some() {
            warn!(connection = %oldest, %peer, "too many unidentified connections: the oldest closed");
            self.close(oldest);
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
        &mut self,
        connection: ConnectionId,
        framework: &str,
        refusal: &crate::security::acls::Refusal,
    ) {
        self.send_on(
            connection,
            Body::FrameworkError(proto::FrameworkError {
                framework_id: framework.to_owned(),
                message: refusal.to_string(),
            }),
        );
    }

    fn closed(&mut self, id: ConnectionId) {
        self.principals.remove(&id);
        let Some(peer) = self.connections.remove(&id) else {
            return;
        };
        match peer {
            Peer::Agent(agent) => {
                let now = self.now.at;
                if let Some(record) = self.agents.get_mut(&agent) {
                    if record.outbox == Some(id) && record.phase == AgentPhase::Connected {
                        info!(agent = %agent, "agent disconnected");
                        record.outbox = None;
                        record.phase = AgentPhase::Disconnected;
                        record.disconnected_at = Some(now);
                    }
                    if record.recovering_on == Some(id) {
                        // docs/recovery-rules.md R5: the re-registration timer starts
                        // again from the moment the recovering agent went silent.
                        info!(agent = %agent, "recovering agent disconnected");
                        record.recovering_on = None;
                        record.disconnected_at = Some(now);
                    }
                }
            }
            Peer::Framework(framework) => {
                let now = self.now.at;
                if let Some(record) = self.frameworks.get_mut(&framework) {
                    if record.outbox == Some(id) {
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
#[cfg(test)]
mod tests;

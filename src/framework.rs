//! The framework library: registers with the leading master, submits command tasks,
//! watches their states, acknowledges every update that carries a uuid, kills tasks and
//! asks for reconciliation, reserves resources and tears the framework down. `revenant
//! submit`, `revenant teardown` and the simulator's workloads use it.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tracing::{info, warn};

use crate::coord::follower::LeaderHandle;
use crate::domain::status_update;
use crate::os::Env;
use crate::proto::envelope::Body;
use crate::proto::{self, FrameworkInfo, StatusUpdate, TaskInfo};
use crate::wire::{self, ConnectionId, Incoming, Outbox};

/// What a framework does; the library calls it and does the IO.
pub trait Workload {
    /// Registered (again) with id `framework_id`: the tasks to submit now.
    fn registered(&mut self, framework_id: &str) -> Vec<TaskInfo>;
    /// A status update arrived (before it is acknowledged).
    fn update(&mut self, update: &StatusUpdate);
    /// Whether the framework is finished.
    fn done(&self) -> bool;
    /// Tasks to kill now (polled every tick).
    fn kills(&mut self) -> Vec<String> {
        Vec::new()
    }
    /// New tasks to submit now (polled every tick while registered).
    fn submissions(&mut self) -> Vec<TaskInfo> {
        Vec::new()
    }
    /// Whether to ask the master, right after registering, for the latest state of every
    /// task it knows for this framework (implicit reconciliation).
    fn reconcile_on_registration(&self) -> bool {
        false
    }
    /// Tasks this framework already knows and has not seen end (a scheduler that failed
    /// over remembers them): they join the periodic explicit reconciliation.
    fn known_open_tasks(&self) -> Vec<String> {
        Vec::new()
    }
    /// Whether to tear the framework down now (polled every tick while registered): the
    /// master kills its tasks and shuts it down on its agents, and [`run`] returns once
    /// the master confirms.
    fn teardown(&self) -> bool {
        false
    }
    /// Whether this client is an operator's that never registers the framework
    /// (`revenant teardown`, docs/security.md SEC42): on each connection it sends its
    /// teardown only, which the master judges by the `teardown_frameworks` ACL.
    fn operator(&self) -> bool {
        false
    }
    /// The master removed the framework (it was torn down): `run` returns after this.
    fn removed(&mut self, _message: &str) {}
    /// The master refused a request of the framework (docs/security.md SEC23): the
    /// message names the ACL. A refused registration ends `run` after this; after any
    /// other refusal `run` goes on until the workload is done.
    fn refused(&mut self, _message: &str) {}
    /// Reconciliations to ask for now (polled every tick while registered): each the
    /// task ids to ask about, or none for every task the master knows (implicit). The
    /// answers arrive as status updates with reason `REASON_RECONCILIATION`.
    fn reconciliations(&mut self) -> Vec<Vec<String>> {
        Vec::new()
    }
    /// Reservations to ask for now (polled every tick while registered): resources
    /// with a role, and the agent id (empty: the first connected agent).
    fn reservations(&mut self) -> Vec<(String, Vec<proto::Resource>)> {
        Vec::new()
    }
}

#[allow(clippy::large_enum_variant)] // events are moved once; boxing buys nothing
enum Event {
    Connected(crate::os::BoxStream),
    ConnectFailed,
    Wire(Incoming),
}

const TICK: Duration = Duration::from_millis(250);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A framework that hears nothing from its master for this long (the master heartbeats
/// every `agent_ping_timeout`, 15 s by default) drops the connection and reconnects.
pub const FRAMEWORK_MASTER_TIMEOUT: Duration = Duration::from_secs(40);
/// How often a framework asks the master to reconcile while it waits.
const RECONCILE_INTERVAL: Duration = Duration::from_secs(30);

/// Submits `task`, or, when its submission would not fit in a frame, refuses it here
/// and tells the workload with a TASK_ERROR update of its own (no uuid: nothing
/// acknowledges it), naming the size (docs/security.md SEC5). True when sent.
fn submit(
    env: &Env,
    outbox: &Outbox,
    framework_id: &str,
    task: TaskInfo,
    workload: &mut dyn Workload,
) -> bool {
    let task_id = task.task_id.clone();
    let executor_id = task.executor_id.clone();
    let body = Body::SubmitTask(proto::SubmitTask {
        framework_id: framework_id.to_owned(),
        task: Some(task),
    });
    let Err(error) = wire::check_fits(&body) else {
        outbox.send(body);
        return true;
    };
    warn!(task = %task_id, %error, "task too large to submit: refused");
    workload.update(&status_update::new(
        status_update::Fields {
            framework_id,
            executor_id: &executor_id,
            task_id: &task_id,
            state: proto::TaskState::TaskError,
            reason: proto::TaskReason::ReasonTaskInvalid,
            message: &format!("Task refused before submission: {error}"),
            timestamp: env.wall_seconds(),
        },
        status_update::Sender::Master,
    ));
    false
}

/// Runs a framework against the masters until the workload is done.
pub async fn run(env: Env, masters: Vec<String>, info: FrameworkInfo, workload: &mut dyn Workload) {
    run_following(env, masters, None, info, workload).await
}

/// The next master to try: the leader the group names when there is a detector
/// (docs/zookeeper.md Z18, Z20), which is asked to list the group again; otherwise the
/// next address of the list.
fn next_address(
    masters: &[String],
    index: &mut usize,
    leader: Option<&LeaderHandle>,
    epoch_seen: u64,
) -> String {
    if let Some(handle) = leader {
        handle.0.reread();
        if let Some(found) = handle.0.leader().filter(|l| l.epoch >= epoch_seen) {
            return found.address;
        }
    }
    *index = (*index + 1) % masters.len().max(1);
    masters.get(*index).cloned().unwrap_or_default()
}

/// [`run`], following the leader that `leader` names as it changes (a framework given
/// `--master zk://…`, docs/zookeeper.md Z17–Z20); `None` works from `masters` alone.
pub async fn run_following(
    env: Env,
    masters: Vec<String>,
    leader: Option<LeaderHandle>,
    mut info: FrameworkInfo,
    workload: &mut dyn Workload,
) {
    let (sender, mut inbox) = mpsc::unbounded_channel::<Event>();
    let mut background: JoinSet<()> = JoinSet::new();
    let mut master: Option<Outbox> = None;
    let mut connecting = false;
    let mut index = 0usize;
    let mut address = masters.first().cloned().unwrap_or_default();
    let mut next_connect = Some(env.clock.now());
    let mut next_reconcile = env.clock.now() + RECONCILE_INTERVAL;
    let mut connection = 0u64;
    let mut last_heard = env.clock.now();
    // The highest leadership epoch a master registered this framework with
    // (docs/zookeeper.md Z6).
    let mut epoch_seen = 0u64;
    // Tasks submitted and not yet seen terminal: what explicit reconciliation asks about.
    let mut open_tasks: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
    // The connection a teardown was last sent on (sent again on a new connection).
    let mut teardown_sent_on: Option<ConnectionId> = None;
    // The connection the master last confirmed the registration on.
    let mut registered_on: Option<ConnectionId> = None;
    loop {
        if workload.done() {
            // Give the writer a moment to send the last acknowledgements.
            env.clock.sleep(Duration::from_millis(300)).await;
            return;
        }
        let now = env.clock.now();
        // docs/zookeeper.md Z20: the group names another leader: leave the master this
        // framework talks to and connect to the leader.
        if let Some(found) = leader
            .as_ref()
            .and_then(|handle| handle.0.leader())
            .filter(|l| !connecting && l.epoch >= epoch_seen && l.address != address)
        {
            info!(from = %address, to = %found.address, "the masters' group names another leader: switching to it");
            address = found.address;
            if let Some(outbox) = master.take() {
                outbox.close();
            }
            next_connect = Some(now);
        }
        if master.is_none() && !connecting && next_connect.is_some_and(|at| now >= at) {
            connecting = true;
            let net = env.net.clone();
            let clock = env.clock.clone();
            let target = address.clone();
            let events = sender.clone();
            background.spawn_local(async move {
                let event = match wire::connect(net, clock, target, CONNECT_TIMEOUT).await {
                    Ok(stream) => Event::Connected(stream),
                    Err(_) => Event::ConnectFailed,
                };
                let _ = events.send(event);
            });
        }
        if master.is_some() && now.saturating_duration_since(last_heard) > FRAMEWORK_MASTER_TIMEOUT
        {
            info!("heard nothing from the master: reconnecting");
            master = None;
            address = next_address(&masters, &mut index, leader.as_ref(), epoch_seen);
            next_connect = Some(now);
        }
        if let Some(outbox) = &master {
            if now >= next_reconcile && !info.id.is_empty() {
                next_reconcile = now + RECONCILE_INTERVAL;
                let task_ids: Vec<String> = open_tasks.iter().cloned().collect();
                if !task_ids.is_empty() {
                    outbox.send(Body::Reconcile(proto::Reconcile {
                        framework_id: info.id.clone(),
                        task_ids,
                    }));
                }
            }
            if !info.id.is_empty() {
                for task in workload.submissions() {
                    if submit(&env, outbox, &info.id, task.clone(), workload) {
                        open_tasks.insert(task.task_id);
                    }
                }
            }
            for task in workload.kills() {
                outbox.send(Body::KillTask(proto::KillTask {
                    framework_id: info.id.clone(),
                    task_id: task,
                }));
            }
            if !info.id.is_empty() {
                for (agent_id, resources) in workload.reservations() {
                    outbox.send(Body::ReserveResources(proto::ReserveResources {
                        framework_id: info.id.clone(),
                        agent_id,
                        resources,
                    }));
                }
            }
            // Only once registered on this connection, so that no request goes to a
            // master that is about to refuse the connection.
            if registered_on == Some(outbox.id()) {
                for task_ids in workload.reconciliations() {
                    outbox.send(Body::Reconcile(proto::Reconcile {
                        framework_id: info.id.clone(),
                        task_ids,
                    }));
                }
            }
            if !info.id.is_empty() && workload.teardown() && teardown_sent_on != Some(outbox.id()) {
                info!(framework = %info.id, "tearing the framework down");
                teardown_sent_on = Some(outbox.id());
                outbox.send(Body::TeardownFramework(proto::TeardownFramework {
                    framework_id: info.id.clone(),
                }));
            }
        }
        let Some(event) = wire::next_event(&mut inbox, &*env.clock, TICK).await else {
            continue;
        };
        match event {
            Event::Connected(stream) => {
                connecting = false;
                connection += 1;
                let link = wire::Link {
                    id: ConnectionId(connection),
                    peer: address.clone(),
                    clock: env.clock.clone(),
                };
                let outbox =
                    wire::serve(stream, link, &mut background, sender.clone(), Event::Wire);
                last_heard = env.clock.now();
                if !workload.operator() {
                    outbox.send(Body::RegisterFramework(proto::RegisterFramework {
                        info: Some(info.clone()),
                    }));
                }
                master = Some(outbox);
            }
            Event::ConnectFailed => {
                connecting = false;
                address = next_address(&masters, &mut index, leader.as_ref(), epoch_seen);
                next_connect = Some(env.clock.now() + Duration::from_secs(1));
            }
            Event::Wire(Incoming::Closed(id, _)) => {
                if master.as_ref().is_some_and(|m| m.id() == id) {
                    master = None;
                    address = next_address(&masters, &mut index, leader.as_ref(), epoch_seen);
                    next_connect = Some(env.clock.now() + Duration::from_secs(1));
                }
            }
            Event::Wire(Incoming::Http(..)) => {}
            Event::Wire(Incoming::Message(id, body)) => match body {
                _ if master.as_ref().is_none_or(|m| m.id() != id) => {}
                Body::Ping(ping) => {
                    last_heard = env.clock.now();
                    // The master closes a framework connection that stops answering, so
                    // a connection dead only in our direction is noticed too.
                    if let Some(outbox) = &master {
                        outbox.send(Body::Pong(proto::Pong {
                            sequence: ping.sequence,
                        }));
                    }
                }
                Body::FrameworkRegistered(message) if message.leader_epoch < epoch_seen => {
                    // docs/zookeeper.md Z6: a deposed leader; look for the leader elsewhere.
                    warn!(
                        epoch = message.leader_epoch,
                        seen = epoch_seen,
                        "registration answer from a deposed leader (older epoch): refused"
                    );
                    if let Some(outbox) = master.take() {
                        outbox.close();
                    }
                    address = next_address(&masters, &mut index, leader.as_ref(), epoch_seen);
                    next_connect = Some(env.clock.now() + Duration::from_secs(1));
                }
                Body::FrameworkRegistered(message) => {
                    epoch_seen = message.leader_epoch;
                    last_heard = env.clock.now();
                    info!(framework = %message.framework_id, "framework registered");
                    info.id = message.framework_id.clone();
                    registered_on = Some(id);
                    let tasks = workload.registered(&message.framework_id);
                    open_tasks.extend(workload.known_open_tasks());
                    if let Some(outbox) = &master {
                        if workload.reconcile_on_registration() {
                            outbox.send(Body::Reconcile(proto::Reconcile {
                                framework_id: info.id.clone(),
                                task_ids: Vec::new(),
                            }));
                        }
                        for task in tasks {
                            if submit(&env, outbox, &info.id, task.clone(), workload) {
                                open_tasks.insert(task.task_id);
                            }
                        }
                    }
                }
                Body::StatusUpdate(proto::StatusUpdateMessage {
                    update: Some(update),
                }) => {
                    last_heard = env.clock.now();
                    workload.update(&update);
                    if let Some(status) = &update.status {
                        if crate::domain::task_state::is_terminal(status.state()) {
                            open_tasks.remove(&status.task_id);
                        }
                    }
                    if !update.uuid.is_empty() {
                        if let Some(outbox) = &master {
                            let task_id = update
                                .status
                                .as_ref()
                                .map(|s| s.task_id.clone())
                                .unwrap_or_default();
                            outbox.send(Body::Acknowledgement(proto::Acknowledgement {
                                agent_id: update.agent_id.clone(),
                                framework_id: update.framework_id.clone(),
                                task_id,
                                uuid: update.uuid.clone(),
                            }));
                        }
                    }
                }
                Body::FrameworkError(message) => {
                    warn!(framework = %message.framework_id, reason = %message.message, "the master refused a request");
                    workload.refused(&message.message);
                    if registered_on != Some(id) {
                        // The registration itself was refused: nothing more to do.
                        env.clock.sleep(Duration::from_millis(300)).await;
                        return;
                    }
                }
                Body::FrameworkRemoved(message) => {
                    info!(framework = %message.framework_id, reason = %message.message, "framework removed by the master");
                    workload.removed(&message.message);
                    // Give the writer a moment, as when done.
                    env.clock.sleep(Duration::from_millis(300)).await;
                    return;
                }
                Body::NotLeader(message) => {
                    master = None;
                    if let Some(handle) = &leader {
                        handle.0.reread();
                    }
                    if !message.leader.is_empty() {
                        address = message.leader;
                    }
                    next_connect = Some(env.clock.now() + Duration::from_secs(1));
                }
                _ => {}
            },
        }
    }
}

//! The executor: a process of its own on the agent's machine, launched by the agent with
//! its settings in the environment. It registers with the agent, runs each task as a
//! command, reports TASK_STARTING, TASK_RUNNING and the terminal state from the exit
//! status, and keeps every update until the agent acknowledges it.
//!
//! When the agent goes away, an executor of a checkpointing framework keeps its tasks
//! running and tries to reconnect (every `uniform[0, subscription_backoff_max]`); when it
//! gets through it re-registers with its unacknowledged updates and tasks. If the agent
//! stays away past `recovery_timeout` it kills its tasks and exits. An executor of a
//! framework without checkpointing exits at once.
//!
//! It also listens on a local wake endpoint ([`wake`], docs/recovery-rules.md R31–R36),
//! which it tells the agent when it registers: a restarted agent connects there as soon
//! as it has read its checkpoints and, once it has answered the endpoint's challenge,
//! the executor reconnects at once instead of waiting for its back-off.

mod turn;
pub mod wake;

use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::domain::status_update;
use crate::ids::{TaskId, Uuid};
use crate::os::{Env, LocalFuture};
use crate::proto::envelope::Body;
use crate::proto::{self, CommandInfo, StatusUpdate, StatusUpdateMessage, TaskInfo, WakeChallenge};
use crate::wire::{self, ConnectionId, Incoming, Outbox};

/// The executor's settings, from the environment the agent gave it.
#[derive(Clone, Debug)]
pub struct ExecutorSettings {
    /// Where the agent listens.
    pub agent_address: String,
    /// The framework.
    pub framework_id: String,
    /// This executor.
    pub executor_id: String,
    /// The run the agent launched it for.
    pub container_id: String,
    /// Whether the framework checkpoints (whether to outlive the agent).
    pub checkpoint: bool,
    /// How long to wait for a restarted agent.
    pub recovery_timeout: Duration,
    /// The bound of the reconnect back-off.
    pub subscription_backoff_max: Duration,
    /// Test-only breakage: wait for the agent forever (see [`crate::breakage`]).
    #[cfg(feature = "breakage")]
    pub ignore_recovery_timeout: bool,
    /// The secret the agent gave this process, presented when it registers and
    /// re-registers (docs/security.md SEC14); empty when none was given.
    pub secret: crate::security::executor_secret::Secret,
}

impl ExecutorSettings {
    /// Reads the settings from environment variables; names the missing or bad one.
    pub fn from_environment(
        variables: &BTreeMap<String, String>,
    ) -> Result<ExecutorSettings, String> {
        let get = |name: &str| {
            variables
                .get(name)
                .cloned()
                .ok_or_else(|| format!("environment variable {name} is not set"))
        };
        let millis = |name: &str| -> Result<Duration, String> {
            get(name)?
                .parse::<u64>()
                .map(Duration::from_millis)
                .map_err(|e| format!("environment variable {name}: {e}"))
        };
        Ok(ExecutorSettings {
            agent_address: get("REVENANT_AGENT_ADDRESS")?,
            framework_id: get("REVENANT_FRAMEWORK_ID")?,
            executor_id: get("REVENANT_EXECUTOR_ID")?,
            container_id: get("REVENANT_CONTAINER_ID")?,
            checkpoint: get("REVENANT_CHECKPOINT")? == "1",
            recovery_timeout: millis("REVENANT_RECOVERY_TIMEOUT_MS")?,
            subscription_backoff_max: millis("REVENANT_SUBSCRIPTION_BACKOFF_MAX_MS")
                .unwrap_or(Duration::from_secs(2)),
            #[cfg(feature = "breakage")]
            ignore_recovery_timeout: false,
            secret: crate::security::executor_secret::Secret::given(
                variables
                    .get(crate::security::executor_secret::ENV_SECRET)
                    .cloned()
                    .unwrap_or_default(),
            ),
        })
    }
}

/// Runs a task's command; the future completes with the exit code. Dropping the future
/// kills the command.
pub trait TaskRunner {
    /// Starts `command` and waits for it.
    fn run(&self, command: &CommandInfo) -> LocalFuture<'static, i32>;
}

/// Runs commands with `sh -c` as child processes of the executor, each in a process
/// group of its own. When the task's future is dropped (the task was killed, the executor
/// shut down or gave up on its agent) the whole group is killed, so no process of the
/// task outlives it (`kill_on_drop` alone would reach only the shell).
pub struct ShellRunner;

/// Kills a process group when dropped.
struct GroupGuard(Option<i32>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(group) = self.0 {
            // SAFETY: kill has no memory-safety preconditions; a group that is gone
            // gives ESRCH, which is fine.
            unsafe { libc::kill(-group, libc::SIGKILL) };
        }
    }
}

impl TaskRunner for ShellRunner {
    fn run(&self, command: &CommandInfo) -> LocalFuture<'static, i32> {
        let mut process = tokio::process::Command::new("sh");
        process
            .arg("-c")
            .arg(&command.value)
            .envs(&command.environment)
            .process_group(0)
            .kill_on_drop(true);
        Box::pin(async move {
            let mut child = match process.spawn() {
                Ok(child) => child,
                Err(_) => return 127,
            };
            let _group = GroupGuard(child.id().map(|pid| pid as i32));
            match child.wait().await {
                Ok(status) => status.code().unwrap_or(128 + 9),
                Err(_) => 127,
            }
        })
    }
}

/// Why the executor exited.
#[derive(Debug, PartialEq, Eq)]
pub enum ExecutorExit {
    /// Every task ended and every update was acknowledged.
    Done,
    /// The agent told it to shut down.
    ShutDown,
    /// The agent stayed away past `recovery_timeout`.
    RecoveryTimeout,
    /// The agent went away and the framework does not checkpoint.
    AgentGone,
}

#[allow(clippy::large_enum_variant)] // events are moved once; boxing buys nothing
enum Event {
    Wire(Incoming),
    Connected(crate::os::BoxStream),
    ConnectFailed,
    TaskExited(TaskId, i32),
    /// A connection to the wake endpoint (docs/recovery-rules.md R33).
    WakeConnected(crate::os::BoxStream, String),
}

/// A wake connection waiting for its answer.
struct PendingWake {
    outbox: Outbox,
    nonce: Vec<u8>,
    deadline: Instant,
}

/// The shortest sleep, so a deadline in the past does not spin.
const TICK_MIN: Duration = Duration::from_millis(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Runs the executor until it exits.
pub async fn run(env: Env, settings: ExecutorSettings, runner: Rc<dyn TaskRunner>) -> ExecutorExit {
    let (sender, mut inbox) = mpsc::unbounded_channel::<Event>();
    let mut background: JoinSet<()> = JoinSet::new();
    let mut running: BTreeMap<TaskId, tokio::task::AbortHandle> = BTreeMap::new();
    let mut task_infos: BTreeMap<TaskId, TaskInfo> = BTreeMap::new();
    let mut unacknowledged: Vec<StatusUpdate> = Vec::new();
    let mut agent: Option<Outbox> = None;
    let mut registered_once = false;
    let mut connecting = false;
    let mut next_connect = Some(env.clock.now());
    let mut disconnected_since: Option<Instant> = None;
    let mut next_connection = 0u64;
    let mut had_task = false;
    let executor_label = settings.executor_id.clone();
    let verifier = (!settings.secret.expose().is_empty()).then(|| settings.secret.verifier());
    // docs/recovery-rules.md R31: the wake endpoint, told to the agent at registration.
    let endpoint = listen_for_wakes(&env, &settings, &mut background, &sender).await;
    let mut wakes: BTreeMap<ConnectionId, PendingWake> = BTreeMap::new();
    // The first message on a connection (docs/design.md D44).
    let registration = |registered_once: bool,
                        unacknowledged: &Vec<StatusUpdate>,
                        task_infos: &BTreeMap<TaskId, TaskInfo>| {
        turn::registration(
            &settings,
            &endpoint,
            registered_once,
            unacknowledged,
            task_infos,
        )
    };

    let make_update =
        |env: &Env, task: &TaskId, state: proto::TaskState, message: &str| -> StatusUpdate {
            let uuid = env.random.uuid().to_vec();
            let timestamp = env.wall_seconds();
            status_update::new(
                status_update::Fields {
                    framework_id: &settings.framework_id,
                    executor_id: &settings.executor_id,
                    task_id: task.as_str(),
                    state,
                    reason: proto::TaskReason::ReasonNone,
                    message,
                    timestamp,
                },
                status_update::Sender::Executor { uuid },
            )
        };

    loop {
        let now = env.clock.now();
        // docs/design.md D44: what this turn does is decided by `turn::turn`.
        let plan = turn::turn(
            &turn::Link {
                connected: agent.is_some(),
                connecting,
                next_connect,
                disconnected_since,
            },
            &turn::Work {
                had_task,
                running: running.len(),
                unacknowledged: unacknowledged.len(),
            },
            settings.recovery_timeout,
            broken!(settings.ignore_recovery_timeout),
            now,
        );
        // Reconnect when away from the agent.
        if plan.connect {
            connecting = true;
            let net = env.net.clone();
            let clock = env.clock.clone();
            let address = settings.agent_address.clone();
            let events = sender.clone();
            background.spawn_local(async move {
                let event = match wire::connect(net, clock, address, CONNECT_TIMEOUT).await {
                    Ok(stream) => Event::Connected(stream),
                    Err(_) => Event::ConnectFailed,
                };
                let _ = events.send(event);
            });
        }
        match plan.exit {
            Some(ExecutorExit::RecoveryTimeout) => {
                info!(executor = %executor_label, "agent did not come back within the recovery timeout: killing tasks and exiting");
                return ExecutorExit::RecoveryTimeout;
            }
            Some(ExecutorExit::Done) => {
                info!(executor = %executor_label, "all tasks done and acknowledged: exiting");
                return ExecutorExit::Done;
            }
            _ => {}
        }

        // Sleep until the next thing that can happen without a message: a reconnect
        // attempt or the recovery timeout (messages wake the loop anyway).
        let mut wait = plan.wait;
        // docs/recovery-rules.md R34: wake connections that did not answer in time go.
        wakes.retain(|_, pending| {
            let keep = pending.deadline > now;
            if !keep {
                pending.outbox.close();
            }
            keep
        });
        if let Some(first) = wakes.values().map(|p| p.deadline).min() {
            wait = wait.min(first.saturating_duration_since(now));
        }
        let Some(event) = wire::next_event(&mut inbox, &*env.clock, wait.max(TICK_MIN)).await
        else {
            continue;
        };
        match event {
            Event::Connected(stream) => {
                connecting = false;
                next_connection += 1;
                let link = wire::Link {
                    id: ConnectionId(next_connection),
                    peer: settings.agent_address.clone(),
                    clock: env.clock.clone(),
                };
                let outbox =
                    wire::serve(stream, link, &mut background, sender.clone(), Event::Wire);
                outbox.send(registration(registered_once, &unacknowledged, &task_infos));
                agent = Some(outbox);
            }
            Event::ConnectFailed => {
                connecting = false;
                if !registered_once && disconnected_since.is_none() {
                    disconnected_since = Some(env.clock.now());
                }
                let delay = env.random.duration_up_to(settings.subscription_backoff_max);
                next_connect = Some(env.clock.now() + delay.max(Duration::from_millis(10)));
            }
            Event::TaskExited(task, code) => {
                running.remove(&task);
                let state = turn::terminal_state(code);
                let update = make_update(
                    &env,
                    &task,
                    state,
                    &format!("Command exited with status {code}"),
                );
                send_update(&agent, &mut unacknowledged, update);
            }
            Event::WakeConnected(stream, peer) => {
                next_connection += 1;
                let link = wire::Link {
                    id: ConnectionId(next_connection),
                    peer,
                    clock: env.clock.clone(),
                };
                if wakes.len() >= wake::WAKE_CONNECTIONS_MAX {
                    if let Some((_, oldest)) = wakes.pop_first() {
                        oldest.outbox.close();
                    }
                }
                let outbox =
                    wire::serve(stream, link, &mut background, sender.clone(), Event::Wire);
                let mut nonce = vec![0u8; wake::NONCE_BYTES];
                env.random.fill_secret(&mut nonce);
                outbox.send(Body::WakeChallenge(WakeChallenge {
                    nonce: nonce.clone(),
                }));
                wakes.insert(
                    outbox.id(),
                    PendingWake {
                        outbox,
                        nonce,
                        deadline: env.clock.now() + wake::WAKE_ANSWER_TIMEOUT,
                    },
                );
            }
            Event::Wire(Incoming::Closed(id, _)) if wakes.contains_key(&id) => {
                wakes.remove(&id);
            }
            Event::Wire(Incoming::Message(id, body)) if wakes.contains_key(&id) => {
                let pending = wakes.remove(&id).expect("checked above");
                pending.outbox.close();
                let Body::WakeExecutor(message) = body else {
                    warn!(executor = %executor_label, "wake connection sent something else than a wake: closed");
                    continue;
                };
                let own = wake::OwnRun {
                    framework: &settings.framework_id,
                    executor: &settings.executor_id,
                    container: &settings.container_id,
                    verifier: verifier.as_ref(),
                };
                let link = if agent.is_some() {
                    wake::AgentLink::Connected
                } else if connecting {
                    wake::AgentLink::Connecting
                } else {
                    wake::AgentLink::Away
                };
                match wake::judge(&own, &pending.nonce, &message, link) {
                    wake::WakeDecision::ConnectNow => {
                        info!(executor = %executor_label, "woken by the restarted agent: reconnecting now");
                        next_connect = Some(env.clock.now());
                    }
                    wake::WakeDecision::Nothing(link) => {
                        info!(executor = %executor_label, ?link, "woken by the agent: already reconnecting");
                    }
                    wake::WakeDecision::Refused(reason) => {
                        warn!(executor = %executor_label, reason, "wake refused: connection closed, nothing done");
                    }
                }
            }
            // docs/recovery-rules.md R33: only the agent's connection is heard; a message
            // queued behind a wake connection's first one (or from one already closed) is
            // not the agent's, and does nothing.
            Event::Wire(Incoming::Message(id, _)) if agent.as_ref().map(Outbox::id) != Some(id) => {
            }
            Event::Wire(Incoming::Closed(id, reason)) => {
                if agent.as_ref().is_some_and(|a| a.id() == id) {
                    agent = None;
                    info!(executor = %executor_label, %reason, "lost the agent");
                    if !settings.checkpoint {
                        return ExecutorExit::AgentGone;
                    }
                    disconnected_since.get_or_insert(env.clock.now());
                    let delay = env.random.duration_up_to(settings.subscription_backoff_max);
                    next_connect = Some(env.clock.now() + delay);
                }
            }
            Event::Wire(Incoming::Http(..)) => {}
            Event::Wire(Incoming::Message(_, body)) => match body {
                Body::ExecutorRegistered(_) => {
                    registered_once = true;
                    disconnected_since = None;
                    info!(executor = %executor_label, run = %settings.container_id, "registered with agent");
                    // Anything unacknowledged goes again (re-registration carried them too;
                    // duplicates are re-acknowledged by the agent).
                }
                Body::RunTask(message) => {
                    let Some(task) = message.task else { continue };
                    let tid = TaskId::new(task.task_id.clone());
                    if task_infos.contains_key(&tid) {
                        continue;
                    }
                    had_task = true;
                    task_infos.insert(tid.clone(), task.clone());
                    send_update(
                        &agent,
                        &mut unacknowledged,
                        make_update(&env, &tid, proto::TaskState::TaskStarting, ""),
                    );
                    let command = task.command.clone().unwrap_or_default();
                    let future = runner.run(&command);
                    let events = sender.clone();
                    let task_id = tid.clone();
                    let handle = background.spawn_local(async move {
                        let code = future.await;
                        let _ = events.send(Event::TaskExited(task_id, code));
                    });
                    running.insert(tid.clone(), handle);
                    send_update(
                        &agent,
                        &mut unacknowledged,
                        make_update(&env, &tid, proto::TaskState::TaskRunning, ""),
                    );
                }
                Body::KillTask(message) => {
                    let tid = TaskId::new(message.task_id);
                    if let Some(handle) = running.remove(&tid) {
                        handle.abort();
                        send_update(
                            &agent,
                            &mut unacknowledged,
                            make_update(
                                &env,
                                &tid,
                                proto::TaskState::TaskKilled,
                                "Killed by request",
                            ),
                        );
                    }
                }
                Body::Acknowledgement(ack) => {
                    if let Some(uuid) = Uuid::from_bytes(&ack.uuid) {
                        unacknowledged.retain(|u| Uuid::from_bytes(&u.uuid) != Some(uuid));
                    }
                }
                Body::ReconnectExecutor(_) => {
                    // The agent did not hear our (re-)registration: say it again.
                    info!(executor = %executor_label, "agent asked to reconnect: registering again");
                    if let Some(agent) = &agent {
                        agent.send(registration(registered_once, &unacknowledged, &task_infos));
                    }
                }
                Body::ShutdownExecutor(message) => {
                    info!(executor = %executor_label, reason = %message.reason, "shut down by the agent");
                    return ExecutorExit::ShutDown;
                }
                _ => {}
            },
        }
    }
}

/// Listens on the wake endpoint and forwards its connections into the loop; the
/// endpoint's address, or empty when it cannot listen (then only the back-off brings the
/// executor back to a restarted agent: docs/recovery-rules.md R35).
async fn listen_for_wakes(
    env: &Env,
    settings: &ExecutorSettings,
    background: &mut JoinSet<()>,
    sender: &mpsc::UnboundedSender<Event>,
) -> String {
    if !settings.checkpoint {
        // Such an executor exits with its agent: nothing to wake.
        return String::new();
    }
    let Some(address) = wake::listen_address(&settings.agent_address) else {
        return String::new();
    };
    let mut listener = match env.net.listen(&address).await {
        Ok(listener) => listener,
        Err(error) => {
            warn!(executor = %settings.executor_id, %error, "cannot listen for wakes: the back-off alone will find a restarted agent");
            return String::new();
        }
    };
    let endpoint = listener.local_addr().unwrap_or_default();
    let events = sender.clone();
    background.spawn_local(async move {
        while let Ok((stream, peer)) = listener.accept().await {
            if events.send(Event::WakeConnected(stream, peer)).is_err() {
                return;
            }
        }
    });
    endpoint
}

fn send_update(
    agent: &Option<Outbox>,
    unacknowledged: &mut Vec<StatusUpdate>,
    update: StatusUpdate,
) {
    if let Some(agent) = agent {
        agent.send(Body::StatusUpdate(StatusUpdateMessage {
            update: Some(update.clone()),
        }));
    }
    unacknowledged.push(update);
}

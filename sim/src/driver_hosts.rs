//! The hosts of a simulated cluster (docs/design.md D31): the ZooKeeper host and the
//! masters, the agent machine with one supervisor per agent process, and the frameworks
//! with the recording workload that tells the observations what each scheduler heard.
//! The driver (`crate::driver`) adds them once, in this order, before its first step.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::time::Duration;

use revenant::agent::{self, AgentConfig, RecoverMode};
use revenant::ids::Uuid;
use revenant::master::{self, MasterConfig};
use revenant::os::FileSystem;
use revenant::proto::{FrameworkInfo, StatusUpdate, TaskInfo};
use tracing::Instrument;

use crate::apply_fault::apply_restart_flags;
use crate::fs::SimFs;
use crate::machine::{master_addresses, Machine, RunOptions, MASTERS_WORK_DIR};
use crate::observations::{
    agent_trace_host, agent_work_dir, framework_of, secs, AgentOutcome, Observations, Seen,
    AGENT_HOST, FRAMEWORK_HOST, MASTER_PORT,
};
use crate::process_env::{agent_config, host_env, machine_env};
use crate::scenario::{parse_resources, RestartFlags, Scenario};
use crate::seams::{derive_seed, ProcessDeath, ProcessFs, ProcessTable, SeededRandom, SimClock};

/// Adds the ZooKeeper host (with `[zookeeper]`) and the masters; returns the masters'
/// shared disk (their registry and leader lease).
pub(crate) fn add_masters(
    sim: &mut turmoil::Sim<'_>,
    scenario: &Scenario,
    seed: u64,
    options: &RunOptions,
) -> SimFs {
    // With [zookeeper], a ZooKeeper host that the masters elect their leader through
    // (docs/zookeeper.md Z11).
    crate::zk::clear();
    let zk_timeout = scenario.zookeeper.as_ref().map(|zk| {
        let world = crate::zk::begin();
        sim.host(crate::zk::ZK_HOST, move || {
            crate::zk::server_host(world.clone())
        });
        secs(zk.session_timeout_s)
    });
    // Masters, sharing one disk for their registry and leader lease.
    let masters_disk = SimFs::new();
    for index in 1..=scenario.masters {
        let name = format!("master{index}");
        let config = MasterConfig {
            listen: format!("{name}:{MASTER_PORT}"),
            agent_ping_timeout: secs(scenario.master.agent_ping_timeout_s),
            max_agent_ping_timeouts: scenario.master.max_agent_ping_timeouts,
            agent_reregister_timeout: secs(scenario.master.agent_reregister_timeout_s),
            work_dir: Some(MASTERS_WORK_DIR.into()),
            breakage: options.breakage,
            // docs/security.md SEC35: ACLs only in runs that draw the rogue.
            acls: crate::rogue_framework::master_acls(scenario, seed),
        };
        let lease = secs(scenario.master.leader_lease_s);
        let incarnation = Rc::new(Cell::new(0u64));
        let host_name = name.clone();
        let disk = masters_disk.clone();
        sim.host(name.as_str(), move || {
            let config = config.clone();
            incarnation.set(incarnation.get() + 1);
            let mut env = host_env(
                &host_name,
                incarnation.get(),
                Rc::new(SeededRandom::new(derive_seed(
                    seed,
                    &format!("{host_name}-{}", incarnation.get()),
                ))),
            );
            env.fs = Rc::new(disk.clone());
            let detector = revenant::detector::LeaseContender::new(
                env.fs.clone(),
                env.clock.clone(),
                std::path::Path::new(MASTERS_WORK_DIR),
                config.listen.clone(),
                incarnation.get(),
                lease,
            );
            let span = crate::trace::host_span(&host_name);
            let host = host_name.clone();
            async move {
                match zk_timeout {
                    Some(timeout) => crate::zk::master_process(env, config, timeout, host).await?,
                    None => master::run(env, config, Box::new(detector)).await?,
                }
                Ok(())
            }
            .instrument(span)
        });
    }
    masters_disk
}

/// Adds the agent machine: one supervisor per agent process (agent 1 first), sharing
/// the machine's disk, boot counter, process table and clock. Returns every agent
/// process's [`Machine`], agent 1's first.
pub(crate) fn add_agent_machine(
    sim: &mut turmoil::Sim<'_>,
    scenario: &Scenario,
    seed: u64,
    options: &RunOptions,
    masters_disk: &SimFs,
    observations: &Rc<RefCell<Observations>>,
) -> Vec<Rc<Machine>> {
    // The agent machine.
    let machine = Rc::new(Machine {
        index: 1,
        work_dir: agent_work_dir(1),
        fs: SimFs::new(),
        boot: Rc::new(Cell::new(1)),
        processes: Rc::new(RefCell::new(ProcessTable::default())),
        agent: RefCell::new(None),
        agent_start_at: Cell::new(Some(Duration::ZERO)),
        agent_down_since: Cell::new(None),
        incarnation: Cell::new(0),
        crash_after: Rc::new(Cell::new(None)),
        crashed: Rc::new(Cell::new(false)),
        process_crash_after: Rc::new(Cell::new(None)),
        wall_offset: Rc::new(Cell::new(0)),
        disk_faulted: Cell::new(false),
        masters_disk: masters_disk.clone(),
        leave: RefCell::new(Rc::new(tokio::sync::Notify::new())),
        restart_flags: RefCell::new(RestartFlags::default()),
        started_resources: RefCell::new(Vec::new()),
    });
    machine.fs.set_fault_seed(derive_seed(seed, "fs-faults"));
    // docs/recovery-latency.md P17 (validated: a finite, bounded, non-negative number).
    machine.fs.set_group_sync_latency(Duration::from_secs_f64(
        scenario.agent.disk_group_sync_ms / 1000.0,
    ));
    // Modification times follow the machine's wall clock, jumps included (the agent
    // ages directories by them: docs/lifecycle-rules.md rule 5).
    let fs_clock = SimClock {
        wall_offset: machine.wall_offset.clone(),
    };
    machine
        .fs
        .set_clock(Rc::new(move || revenant::os::Clock::wall(&fs_clock)));
    // Further agent processes share the machine's disk, boot, processes and clock.
    let mut machines = vec![machine.clone()];
    for index in 2..=scenario.agents {
        machines.push(Rc::new(Machine {
            index,
            work_dir: agent_work_dir(index),
            fs: machine.fs.clone(),
            boot: machine.boot.clone(),
            processes: machine.processes.clone(),
            agent: RefCell::new(None),
            agent_start_at: Cell::new(Some(Duration::ZERO)),
            agent_down_since: Cell::new(None),
            incarnation: Cell::new(0),
            crash_after: Rc::new(Cell::new(None)),
            crashed: Rc::new(Cell::new(false)),
            process_crash_after: Rc::new(Cell::new(None)),
            wall_offset: machine.wall_offset.clone(),
            disk_faulted: Cell::new(false),
            masters_disk: masters_disk.clone(),
            leave: RefCell::new(Rc::new(tokio::sync::Notify::new())),
            restart_flags: RefCell::new(RestartFlags::default()),
            started_resources: RefCell::new(Vec::new()),
        }));
    }
    {
        let agents: Vec<(Rc<Machine>, AgentConfig)> = machines
            .iter()
            .map(|machine| {
                let mut config = agent_config(scenario, machine.index);
                config.breakage = options.breakage;
                (machine.clone(), config)
            })
            .collect();
        let observations = observations.clone();
        let restart_recover = scenario.agent.restart_recover.clone();
        // The rogue party, when the swarm draws it (docs/security.md SEC31).
        let rogue = crate::rogue::plan(scenario, seed);
        // With it, the rogue framework (SEC35), on a host of its own.
        if !rogue.is_empty() {
            let plan = rogue.clone();
            let machine = machine.clone();
            let scenario = scenario.clone();
            let observations = observations.clone();
            party_host(
                sim,
                crate::rogue_framework::ROGUE_FRAMEWORK_HOST,
                move || {
                    crate::rogue_framework::party(
                        plan.clone(),
                        machine.clone(),
                        scenario.clone(),
                        observations.clone(),
                    )
                },
            );
        }
        // And, when drawn, an agent the ACLs refuse (SEC48), on a host of its own.
        let rogue_agent = crate::rogue_agent::plan(scenario, seed);
        if !rogue_agent.is_empty() {
            let scenario = scenario.clone();
            let observations = observations.clone();
            party_host(sim, crate::rogue_agent::ROGUE_AGENT_HOST, move || {
                crate::rogue_agent::party(
                    rogue_agent.clone(),
                    scenario.clone(),
                    observations.clone(),
                )
            });
        }
        sim.host(AGENT_HOST, move || {
            // Agents 2, ... have supervisors of their own beside agent 1's; all of them
            // die with the machine.
            let others = agents[1..].to_vec();
            let observations = observations.clone();
            let restart_recover = restart_recover.clone();
            let (machine, config) = agents[0].clone();
            let rogue = rogue.clone();
            async move {
                if !rogue.is_empty() {
                    let party =
                        crate::rogue::party(rogue, machine.clone(), seed, observations.clone());
                    let span = crate::trace::host_span(crate::rogue::ROGUE_HOST);
                    tokio::task::spawn_local(party.instrument(span));
                }
                for (machine, config) in others {
                    let span = crate::trace::host_span(&agent_trace_host(machine.index));
                    let main = machine_main(
                        machine,
                        config,
                        restart_recover.clone(),
                        seed,
                        observations.clone(),
                    );
                    tokio::task::spawn_local(main.instrument(span));
                }
                machine_main(machine, config, restart_recover, seed, observations).await
            }
            .instrument(crate::trace::host_span(AGENT_HOST))
        });
    }
    machines
}

/// What the driver keeps of the frameworks it added.
pub(crate) struct Frameworks {
    /// Set when the run ends: the schedulers stop.
    pub done: Rc<Cell<bool>>,
    /// Framework k's teardown flag at k - 1 (set by a `framework_teardown` fault).
    pub teardowns: Vec<Rc<Cell<bool>>>,
}

/// Adds the frameworks, each submitting its share of `tasks` (the run's task plan).
pub(crate) fn add_frameworks(
    sim: &mut turmoil::Sim<'_>,
    scenario: &Scenario,
    seed: u64,
    observations: &Rc<RefCell<Observations>>,
    tasks: &[(TaskInfo, Duration)],
) -> Frameworks {
    let kills: Vec<(String, Duration)> = scenario
        .tasks
        .iter()
        .filter_map(|t| t.kill_at_s.map(|k| (t.id.clone(), secs(k))))
        .collect();
    let framework_done = Rc::new(Cell::new(false));
    let teardowns: Vec<Rc<Cell<bool>>> = (0..scenario.frameworks.max(1))
        .map(|_| Rc::new(Cell::new(false)))
        .collect();
    for index in 1..=scenario.frameworks.max(1) {
        // Framework 1 keeps the host name, name and seed of a one-framework cluster.
        let (host, label, name) = if index == 1 {
            (
                FRAMEWORK_HOST.to_owned(),
                "framework".to_owned(),
                "sim-framework".to_owned(),
            )
        } else {
            (
                format!("{FRAMEWORK_HOST}{index}"),
                format!("framework-{index}"),
                format!("sim-framework-{index}"),
            )
        };
        let mine = |task: &str| framework_of(scenario, task) == index;
        let observations = observations.clone();
        let masters = master_addresses(scenario);
        let checkpoint = scenario.checkpoint;
        let framework_done = framework_done.clone();
        let tasks: Vec<(TaskInfo, Duration)> = tasks
            .iter()
            .filter(|(task, _)| mine(&task.task_id))
            .cloned()
            .collect();
        let kills: Vec<(String, Duration)> = kills
            .iter()
            .filter(|(task, _)| mine(task))
            .cloned()
            .collect();
        let reservations: Vec<(Vec<revenant::proto::Resource>, Duration)> = scenario
            .reservations
            .iter()
            .filter(|r| r.framework == index)
            .map(|r| {
                (
                    parse_resources(&r.resources).expect("validated"),
                    secs(r.at_s),
                )
            })
            .collect();
        let reconcile: Vec<(BTreeMap<String, String>, Duration)> = scenario
            .reconcile
            .iter()
            .filter(|r| r.framework == index)
            .map(|r| (r.tasks.clone(), secs(r.at_s)))
            .collect();
        let failover_timeout_seconds = scenario.framework_failover_timeout_s;
        let teardown = teardowns[(index - 1) as usize].clone();
        let span_host = host.clone();
        let memory = Rc::new(RefCell::new(SchedulerMemory::default()));
        sim.host(host.as_str(), move || {
            let env = host_env(
                &span_host,
                1,
                Rc::new(SeededRandom::new(derive_seed(seed, &label))),
            );
            let mut workload = Recording {
                observations: observations.clone(),
                index,
                tasks: tasks.clone(),
                kills: kills.clone(),
                reservations: reservations.clone(),
                reconcile: reconcile.clone(),
                teardown: teardown.clone(),
                memory: memory.clone(),
                finished: framework_done.clone(),
            };
            // A restarted scheduler fails over: it registers with its framework id.
            let framework_id = memory.borrow().framework_id.clone();
            let masters = masters.clone();
            let span = crate::trace::host_span(&span_host);
            let name = name.clone();
            let host_name = span_host.clone();
            async move {
                let info = FrameworkInfo {
                    id: framework_id,
                    name,
                    user: "sim".into(),
                    checkpoint,
                    failover_timeout_seconds,
                    ..Default::default()
                };
                // docs/zookeeper.md Z17: with ZooKeeper, it follows the group's leader.
                crate::zk::following(&host_name, |leader| {
                    revenant::framework::run_following(env, masters, leader, info, &mut workload)
                })
                .await;
                Ok(())
            }
            .instrument(span)
        });
    }
    Frameworks {
        done: framework_done,
        teardowns,
    }
}

struct Recording {
    observations: Rc<RefCell<Observations>>,
    /// Which framework this is (1, 2, ...).
    index: u32,
    tasks: Vec<(TaskInfo, Duration)>,
    kills: Vec<(String, Duration)>,
    /// Reservations to ask for, and when.
    reservations: Vec<(Vec<revenant::proto::Resource>, Duration)>,
    /// Reconciliations to ask for (task ids and believed states; none: implicit), and
    /// when; the scheduler's memory says which were asked for already.
    reconcile: Vec<(BTreeMap<String, String>, Duration)>,
    /// Set by a `framework_teardown` fault; kept across scheduler failovers.
    teardown: Rc<Cell<bool>>,
    memory: Rc<RefCell<SchedulerMemory>>,
    finished: Rc<Cell<bool>>,
}

/// What a scheduler keeps across its own failover (a real one would keep it in its own
/// durable store): its framework id, what it submitted, heard of and killed.
#[derive(Default)]
struct SchedulerMemory {
    framework_id: String,
    submitted: BTreeSet<String>,
    heard: BTreeSet<String>,
    killed: BTreeSet<String>,
    ended: BTreeSet<String>,
    /// The scenario reconciliations asked for (by position): once one was, the master's
    /// reconciliation answers are written to the trace.
    reconciled: BTreeSet<usize>,
}

impl Recording {
    /// The tasks whose submission time has come and that `wanted` selects, recorded as
    /// submitted.
    fn due(&mut self, wanted: impl Fn(&str) -> bool) -> Vec<TaskInfo> {
        let now = turmoil::sim_elapsed().unwrap_or_default();
        let due: Vec<TaskInfo> = self
            .tasks
            .iter()
            .filter(|(task, at)| *at <= now && wanted(&task.task_id))
            .map(|(task, _)| task.clone())
            .collect();
        for task in &due {
            self.memory
                .borrow_mut()
                .submitted
                .insert(task.task_id.clone());
            self.observations
                .borrow_mut()
                .submitted
                .insert(task.task_id.clone());
        }
        due
    }
}

impl revenant::framework::Workload for Recording {
    fn registered(&mut self, framework_id: &str) -> Vec<TaskInfo> {
        self.memory.borrow_mut().framework_id = framework_id.to_owned();
        // Tasks never heard of (the master that took them may have died) go again; the
        // master refuses a task id it already knows.
        let memory = self.memory.clone();
        self.due(|task| !memory.borrow().heard.contains(task))
    }

    fn submissions(&mut self) -> Vec<TaskInfo> {
        // Asked at every turn of the scheduler's loop: the set is read, not cloned.
        let memory = self.memory.clone();
        // docs/recovery-latency.md P39: `submitted` holds only ids of the plan, so when
        // it is as large as the plan every task is in it and none is due (with a
        // repeated id in the plan it never is, and the plan is scanned as before).
        if memory.borrow().submitted.len() == self.tasks.len() {
            return Vec::new();
        }
        self.due(|task| !memory.borrow().submitted.contains(task))
    }

    fn update(&mut self, update: &StatusUpdate) {
        let status = update.status.clone().unwrap_or_default();
        if !self.memory.borrow().reconciled.is_empty()
            && update.uuid.is_empty()
            && status.reason() == revenant::proto::TaskReason::ReasonReconciliation
        {
            tracing::info!(
                target: "revenant_sim",
                framework = self.index,
                task = %status.task_id,
                state = status.state().as_str_name(),
                "framework heard a reconciliation answer"
            );
        }
        let mut memory = self.memory.borrow_mut();
        memory.heard.insert(status.task_id.clone());
        if revenant::domain::task_state::is_terminal(status.state()) {
            memory.ended.insert(status.task_id.clone());
        }
        drop(memory);
        crate::history::delivered(self.index, update);
        self.observations.borrow_mut().seen.push(Seen {
            time: turmoil::sim_elapsed().unwrap_or_default(),
            task: status.task_id.clone(),
            state: status.state(),
            reason: status.reason().as_str_name().to_owned(),
            message: status.message.clone(),
            uuid: Uuid::from_bytes(&update.uuid),
        });
    }

    fn done(&self) -> bool {
        self.finished.get()
    }

    fn known_open_tasks(&self) -> Vec<String> {
        let memory = self.memory.borrow();
        memory
            .submitted
            .iter()
            .filter(|task| !memory.ended.contains(*task))
            .cloned()
            .collect()
    }

    fn teardown(&self) -> bool {
        self.teardown.get()
    }

    fn removed(&mut self, message: &str) {
        crate::history::framework_removed(self.index);
        let mut observations = self.observations.borrow_mut();
        observations.removed_frameworks.insert(self.index);
        observations
            .removal_messages
            .entry(self.index)
            .or_insert_with(|| message.to_owned());
        for (task, _) in &self.tasks {
            observations.gone_tasks.insert(task.task_id.clone());
        }
    }

    fn reconciliations(&mut self) -> Vec<Vec<String>> {
        let now = turmoil::sim_elapsed().unwrap_or_default();
        let mut memory = self.memory.borrow_mut();
        let due: Vec<BTreeMap<String, String>> = self
            .reconcile
            .iter()
            .enumerate()
            .filter(|(position, (_, at))| *at <= now && memory.reconciled.insert(*position))
            .map(|(_, (tasks, _))| tasks.clone())
            .collect();
        due.into_iter()
            .map(|tasks| {
                let believed: Vec<String> = tasks
                    .iter()
                    .map(|(task, state)| format!("{task}={state}"))
                    .collect();
                tracing::info!(
                    target: "revenant_sim",
                    framework = self.index,
                    kind = if tasks.is_empty() { "implicit" } else { "explicit" },
                    believed = %believed.join(","),
                    "framework asks the master to reconcile"
                );
                tasks.into_keys().collect()
            })
            .collect()
    }

    fn reservations(&mut self) -> Vec<(String, Vec<revenant::proto::Resource>)> {
        let now = turmoil::sim_elapsed().unwrap_or_default();
        let due: Vec<(String, Vec<revenant::proto::Resource>)> = self
            .reservations
            .iter()
            .filter(|(_, at)| *at <= now)
            .map(|(resources, _)| (String::new(), resources.clone()))
            .collect();
        self.reservations.retain(|(_, at)| *at > now);
        due
    }

    fn kills(&mut self) -> Vec<String> {
        let now = turmoil::sim_elapsed().unwrap_or_default();
        let due: Vec<String> = self
            .kills
            .iter()
            .filter(|(task, at)| *at <= now && !self.memory.borrow().killed.contains(task))
            .map(|(t, _)| t.clone())
            .collect();
        self.kills.retain(|(_, at)| *at > now);
        self.memory.borrow_mut().killed.extend(due.iter().cloned());
        due
    }
}

/// The agent machine's software: a supervisor that starts agent incarnations when told,
/// records how each ended, and keeps executors running beside them (one supervisor per
/// agent process, in the agent's host span).
async fn machine_main(
    machine: Rc<Machine>,
    config: AgentConfig,
    restart_recover: Option<String>,
    seed: u64,
    observations: Rc<RefCell<Observations>>,
) -> turmoil::Result {
    loop {
        let now = turmoil::sim_elapsed().unwrap_or_default();
        let finished = machine
            .agent
            .borrow()
            .as_ref()
            .is_some_and(|h| h.is_finished());
        if finished {
            let handle = machine.agent.borrow_mut().take().expect("checked");
            let outcome = match handle.await {
                Ok(Ok(exit)) => AgentOutcome::Exited(format!("{exit:?}")),
                // Death at a filesystem operation unwinds (or aborts) the task.
                Ok(Err(_)) | Err(_) if machine.crashed.get() => AgentOutcome::Crashed,
                Ok(Err(error)) if machine.disk_faulted.get() => {
                    AgentOutcome::DiskFailure(error.to_string())
                }
                Ok(Err(error)) => AgentOutcome::Failed(error.to_string()),
                Err(error) if error.is_panic() => AgentOutcome::Panicked(format!("{error}")),
                Err(_) => AgentOutcome::Crashed,
            };
            tracing::info!(target: "revenant_sim", outcome = ?outcome, "agent process ended");
            let restart = machine.restarts_after(&outcome);
            if restart {
                machine
                    .agent_start_at
                    .set(Some(now + Duration::from_secs(1)));
            }
            observations
                .borrow_mut()
                .agent_exits
                .push((now, machine.index, outcome));
            machine.agent_down_since.set(Some(now));
        }
        let start = machine.agent.borrow().is_none()
            && machine.agent_start_at.get().is_some_and(|at| now >= at);
        if start {
            machine.agent_start_at.set(None);
            machine.crashed.set(false);
            machine.process_crash_after.set(None);
            if machine.disk_faulted.replace(false) {
                // The disk was replaced (or freed): the new incarnation starts clean,
                // but for an error kept for this start (docs/simulator-reach.md 12k).
                machine.fs.clear_faults();
                machine.disk_faulted.set(machine.fs.has_faults());
            }
            machine.incarnation.set(machine.incarnation.get() + 1);
            let label = if machine.index == 1 {
                format!("agent-{}", machine.incarnation.get())
            } else {
                format!("agent{}-{}", machine.index, machine.incarnation.get())
            };
            let mut config = config.clone();
            let leave = Rc::new(tokio::sync::Notify::new());
            *machine.leave.borrow_mut() = leave.clone();
            config.unregister = Some(leave);
            if machine.incarnation.get() > 1 {
                if let Some(recover) = &restart_recover {
                    config.recover = if recover == "cleanup" {
                        RecoverMode::Cleanup
                    } else {
                        RecoverMode::Reconnect
                    };
                }
            }
            apply_restart_flags(&mut config, &machine.restart_flags.borrow());
            let task = Rc::new(RefCell::new(None));
            let fs: Rc<dyn FileSystem> = Rc::new(
                ProcessFs::new(
                    // docs/design.md D87: the disk knows which incarnation does what.
                    machine
                        .fs
                        .for_agent(machine.index, machine.incarnation.get()),
                    machine.crash_after.clone(),
                    machine.crashed.clone(),
                    task.clone(),
                )
                .of_agent(machine.index, &config.work_dir),
            );
            let fs = if machine.index == 1 {
                crate::crash_hooks::wrap(
                    fs,
                    machine.fs.clone(),
                    machine.crash_after.clone(),
                    machine.incarnation.get(),
                )
            } else {
                fs
            };
            let death = ProcessDeath {
                crash_after: machine.process_crash_after.clone(),
                crashed: machine.crashed.clone(),
                task: task.clone(),
            };
            let env = machine_env(&machine, seed, &label, fs, death);
            tracing::info!(target: "revenant_sim", incarnation = machine.incarnation.get(), boot = machine.boot.get(), "agent process starting");
            observations
                .borrow_mut()
                .agent_starts
                .push((now, machine.index, machine.boot.get()));
            crate::history::agent_started(
                machine.index,
                machine.incarnation.get(),
                crate::history::resources_on_disk(&machine.fs, &machine.work_dir),
            );
            crate::history::agent_flag_resources(
                machine.index,
                revenant::domain::resources::describe_resources(&config.resources),
            );
            // docs/recovery-rules.md R56, docs/design.md D88: the timers it runs with.
            crate::history::paced(
                machine.index,
                crate::history::Pace::Timers {
                    reregistration_retry: config.executor_reregistration_retry_interval,
                    disk_watch: config.disk_watch_interval,
                },
            );
            *machine.started_resources.borrow_mut() = config.resources.clone();
            let span = crate::trace::host_span(&agent_trace_host(machine.index));
            // docs/zookeeper.md Z17: with ZooKeeper, the agent follows the group's leader.
            let agent_host = AGENT_HOST;
            // docs/security.md SEC47: when the incarnation ends, its connections with it.
            let end = crate::registration_answers::IncarnationEnd::new(
                machine.index,
                machine.incarnation.get(),
            );
            let incarnation = crate::zk::following(agent_host, move |leader| {
                let mut config = config;
                config.leader = leader;
                agent::run(env, config)
            });
            let handle = tokio::task::spawn_local(
                async move {
                    let _end = end;
                    incarnation.await
                }
                .instrument(span),
            );
            *task.borrow_mut() = Some(handle.abort_handle());
            *machine.agent.borrow_mut() = Some(handle);
            machine.agent_down_since.set(None);
        }
        // Restarts are scheduled to 100 ms; the driver's faults act between steps anyway.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A host of its own for a party of the simulator (the rogue framework, the rogue
/// agent): `party` makes its task, run under the host's trace span.
fn party_host<F, P>(sim: &mut turmoil::Sim<'_>, host: &'static str, party: F)
where
    F: Fn() -> P + 'static,
    P: std::future::Future<Output = ()> + 'static,
{
    sim.host(host, move || {
        let party = party();
        async move {
            party.await;
            Ok(())
        }
        .instrument(crate::trace::host_span(host))
    });
}

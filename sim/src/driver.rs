//! The cluster driver (docs/design.md D31): builds the simulation from a scenario and a
//! seed, adds the hosts (`crate::driver_hosts`), then steps turmoil until the run's
//! duration, applying due faults (`crate::apply_fault`) and deferred actions between
//! steps, sampling the during-the-run oracle, and at the end gathers what the outside
//! world saw into the [`Observations`].

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::time::Duration;

use rand::SeedableRng;
use revenant::proto::TaskInfo;

use crate::apply_fault::{apply_fault, FaultContext, Pending};
use crate::machine::{Machine, RunOptions};
use crate::observations::{
    agent_trace_host, agent_work_dir, framework_host, framework_of, secs, tasks_for, Observations,
    AGENT_HOST,
};
use crate::oracles::Violation;
use crate::scenario::{AgentTarget, FaultKind, FaultSpec, Scenario, AGENT_PROCESS_FAULTS};
use crate::seams::{derive_seed, ProcessTable};

/// Runs the cluster of `scenario` with `seed`: the violations found during the run and
/// what was observed.
pub(crate) fn drive(
    scenario: &Scenario,
    seed: u64,
    options: &RunOptions,
) -> (Vec<Violation>, Rc<RefCell<Observations>>) {
    crate::seams::keep_freed_memory();
    let tick = Duration::from_millis(scenario.tick_ms.max(1));
    let duration = secs(scenario.duration_s);
    let latency = scenario.latency_ms.unwrap_or(if scenario.swarm.is_some() {
        [1, 20]
    } else {
        [5, 5]
    });
    let mut sim = turmoil::Builder::new()
        .tick_duration(tick)
        .simulation_duration(duration + Duration::from_secs(3600))
        .epoch(std::time::UNIX_EPOCH + Duration::from_secs(crate::seams::EPOCH_SECONDS))
        .rng_seed(seed)
        .min_message_latency(Duration::from_millis(latency[0]))
        .max_message_latency(Duration::from_millis(latency[1].max(latency[0])))
        .build();
    let observations = Rc::new(RefCell::new(Observations {
        seed,
        ..Observations::default()
    }));
    crate::drops::clear();
    crate::history::begin();
    crate::durability::begin();
    crate::update_receipts::begin();
    crate::shutdown_asks::begin();
    crate::master_wire::begin();
    crate::registration_answers::begin();
    crate::agent_metrics::begin();
    crate::reconcile_watch::begin();
    crate::corrupt::begin(scenario.swarm.is_some());
    crate::gc_watch::begin();
    crate::fault_log::begin();
    crate::disk_work::begin();
    crate::seams::hang_executors(
        seed,
        scenario
            .swarm
            .as_ref()
            .map_or(0.0, |s| s.hanging_executor_fraction),
    );
    crate::seams::break_executors(options.breakage);
    revenant::checkpoint::recover::keep_undecodable_records(
        options.breakage.recovery_keeps_undecodable_record,
    );
    revenant::checkpoint::recover::skip_unreadable_listings(
        options.breakage.recovery_skips_unreadable_listing,
    );
    revenant::checkpoint::recover::count_no_errors(options.breakage.recovery_counts_no_errors);
    crate::crash_hooks::install(options);
    let masters_disk = crate::driver_hosts::add_masters(&mut sim, scenario, seed, options);
    let machines = crate::driver_hosts::add_agent_machine(
        &mut sim,
        scenario,
        seed,
        options,
        &masters_disk,
        &observations,
    );
    let tasks = tasks_for(scenario, seed);
    let frameworks =
        crate::driver_hosts::add_frameworks(&mut sim, scenario, seed, &observations, &tasks);

    let mut driver = Driver {
        sim,
        scenario,
        machines,
        observations,
        tasks,
        teardowns: frameworks.teardowns,
        left: RefCell::new(BTreeMap::new()),
        fault_rng: rand::rngs::StdRng::seed_from_u64(derive_seed(seed, "fault-choices")),
        pending: Vec::new(),
        down_since_reboot: None,
        recovery_timeout: secs(scenario.agent.recovery_timeout_s),
        latency,
    };
    // A branch of `sweep --explore` redraws the faults after its moment (explore.rs).
    let schedule = crate::schedule::schedule(scenario, seed);
    let mut next_fault = 0usize;
    let mut violations = Vec::new();
    loop {
        let now = driver.sim.elapsed();
        if now >= duration {
            break;
        }
        crate::trace::DRIVER_TIME.with(|t| t.set(now));
        while next_fault < schedule.len() && secs(schedule[next_fault].at_s) <= now {
            let fault = schedule[next_fault].clone();
            next_fault += 1;
            driver.inject(&fault, now);
        }
        driver.run_pending(now);
        driver.sample_overstaying(now);
        if let Err(error) = driver.sim.step() {
            violations.push(Violation {
                time: now,
                oracle: "no_panic",
                message: format!("a host failed: {error}"),
            });
            break;
        }
        driver.crash_at_messages(now);
        driver.crash_point_power_loss();
        crate::master_reports::after_step(&driver.observations, driver.sim.elapsed(), duration);
        crate::agent_metrics::after_step(driver.sim.elapsed());
    }
    revenant::observe::want_master_states(false);
    frameworks.done.set(true);
    let observations = driver.finish();
    violations.extend(crate::zk::finish());
    (violations, observations)
}

/// The driver's state between turmoil steps.
struct Driver<'s, 'sim> {
    sim: turmoil::Sim<'sim>,
    scenario: &'s Scenario,
    /// Every agent process of the agent machine, agent 1 first.
    machines: Vec<Rc<Machine>>,
    observations: Rc<RefCell<Observations>>,
    /// The run's task plan.
    tasks: Vec<(TaskInfo, Duration)>,
    /// Framework k's teardown flag at k - 1.
    teardowns: Vec<Rc<Cell<bool>>>,
    /// Frameworks whose scheduler left for good, and when.
    left: RefCell<BTreeMap<u32, Duration>>,
    /// The fault choices' random stream.
    fault_rng: rand::rngs::StdRng,
    /// Deferred actions, each with its time.
    pending: Vec<(Duration, Pending)>,
    /// Since when the machine is down after a power loss, until it boots.
    down_since_reboot: Option<Duration>,
    recovery_timeout: Duration,
    /// The scenario's message latency range (ms), restored after a `delay` fault.
    latency: [u64; 2],
}

impl Driver<'_, '_> {
    /// Agent 1's machine: the one machine faults hit.
    fn machine(&self) -> Rc<Machine> {
        self.machines[0].clone()
    }

    /// Applies one fault to `target`.
    fn apply(&mut self, target: &Rc<Machine>, fault: &FaultSpec, now: Duration) -> Option<String> {
        apply_fault(
            &mut FaultContext {
                sim: &mut self.sim,
                machines: &self.machines,
                now,
                rng: &mut self.fault_rng,
                pending: &mut self.pending,
                scenario: self.scenario,
                teardowns: &self.teardowns,
                left: &self.left,
            },
            target,
            fault,
        )
    }

    /// Injects a scheduled fault and records what it did.
    fn inject(&mut self, fault: &FaultSpec, now: Duration) {
        let scenario = self.scenario;
        // Agent process faults hit the agents they name; the rest hit the machine.
        let targets: Vec<Rc<Machine>> = if AGENT_PROCESS_FAULTS.contains(&fault.kind) {
            AgentTarget::agents(fault.on_agent.as_ref(), scenario.agents)
                .into_iter()
                .filter_map(|index| self.machines.get(index as usize - 1).cloned())
                .collect()
        } else {
            vec![self.machine()]
        };
        for target in targets {
            let torn_before: Vec<bool> = self.teardowns.iter().map(|t| t.get()).collect();
            let Some(mut description) = self.apply(&target, fault, now) else {
                continue;
            };
            self.record_gone_frameworks(&torn_before, now);
            if scenario.agents > 1 && AGENT_PROCESS_FAULTS.contains(&fault.kind) {
                description.push_str(&format!(" on {}", agent_trace_host(target.index)));
            }
            tracing::info!(target: "revenant_sim", fault = %description, "fault injected");
            let mut observations = self.observations.borrow_mut();
            if fault.kind == FaultKind::Reboot {
                observations.reboots.push(now);
                self.down_since_reboot = Some(now);
            }
            if fault.kind == FaultKind::WipeFrameworkMeta {
                let wiped = (now, target.index, description.clone());
                observations.framework_meta_wiped.push(wiped);
            }
            if fault.kind == FaultKind::Corrupt && description.starts_with("corrupt") {
                observations.corruption_injected = true;
            }
            observations.faults.push((now, description));
            observations.fault_kinds.insert(fault.kind);
        }
    }

    /// Records the frameworks a fault made leave for good or tear down, with their tasks.
    fn record_gone_frameworks(&self, torn_before: &[bool], now: Duration) {
        let scenario = self.scenario;
        let mut observations = self.observations.borrow_mut();
        for (index, at) in self.left.borrow().iter() {
            if observations.left_frameworks.insert(*index, *at).is_none() {
                for (task, _) in &self.tasks {
                    if framework_of(scenario, &task.task_id) == *index {
                        observations.gone_tasks.insert(task.task_id.clone());
                    }
                }
            }
        }
        for (offset, flag) in self.teardowns.iter().enumerate() {
            if flag.get() && !torn_before[offset] {
                let index = offset as u32 + 1;
                observations.torn_down.insert(index, now);
                for (task, _) in &self.tasks {
                    if framework_of(scenario, &task.task_id) == index {
                        observations.torn_down_tasks.insert(task.task_id.clone());
                    }
                }
            }
        }
    }

    /// Performs the deferred actions that are due.
    fn run_pending(&mut self, now: Duration) {
        self.pending.sort_by_key(|(at, _)| *at);
        while self.pending.first().is_some_and(|(at, _)| *at <= now) {
            let (_, action) = self.pending.remove(0);
            match action {
                Pending::Boot => {
                    tracing::info!(target: "revenant_sim", "agent machine boots");
                    for machine in &self.machines {
                        machine.agent_start_at.set(Some(now));
                    }
                    self.sim.bounce(AGENT_HOST);
                    self.down_since_reboot = None;
                }
                Pending::StartAgent(index) => {
                    let machine = &self.machines[index as usize - 1];
                    if machine.agent.borrow().is_none() && self.down_since_reboot.is_none() {
                        machine.agent_start_at.set(Some(now));
                    }
                }
                Pending::BounceFramework(name) => {
                    let gone = self
                        .left
                        .borrow()
                        .keys()
                        .any(|index| framework_host(*index) == name);
                    if !gone {
                        tracing::info!(target: "revenant_sim", framework = %name, "scheduler fails over");
                        self.sim.bounce(name.as_str());
                    }
                }
                Pending::BounceMaster(name) => {
                    tracing::info!(target: "revenant_sim", master = %name, "master restarts");
                    self.sim.bounce(name.as_str());
                }
                Pending::Repair(a, b) => {
                    tracing::info!(target: "revenant_sim", a = %a, b = %b, "partition healed");
                    self.sim.repair(a.as_str(), b.as_str());
                }
                Pending::Zk(what) => crate::zk_faults::later(&mut self.sim, what),
                Pending::Latency => {
                    let [low, high] = self.latency;
                    self.sim
                        .set_max_message_latency(Duration::from_millis(high.max(low)))
                }
            }
        }
    }

    /// Oracle checked during the run: executors give up after recovery_timeout (each
    /// agent's own executors, when its agent has been down that long).
    fn sample_overstaying(&self, now: Duration) {
        for machine in &self.machines {
            let Some(since) = machine.agent_down_since.get() else {
                continue;
            };
            let grace = Duration::from_secs(5);
            if now > since + self.recovery_timeout + grace && self.down_since_reboot.is_none() {
                let live: Vec<String> = machine
                    .processes
                    .borrow()
                    .processes
                    .values()
                    .filter(|p| p.owner == machine.index)
                    // A hung process never connects, so it cannot notice that its
                    // agent is gone (docs/lifecycle-rules.md rule 21).
                    .filter(|p| !p.hung)
                    .filter(|p| !p.exited.get() && !p.handle.is_finished())
                    .map(|p| p.executor_id.clone())
                    .collect();
                if !live.is_empty() && self.scenario.checkpoint {
                    let mut observations = self.observations.borrow_mut();
                    if observations.overstaying_executors.is_empty() {
                        observations
                            .overstaying_executors
                            .push((now, live.join(",")));
                    }
                }
            }
        }
    }

    /// Crashes the agents that an `agent_crash_at_message` rule killed during the step.
    fn crash_at_messages(&mut self, now: Duration) {
        for (index, restart_ms, kind) in crate::drops::take_crash_requests() {
            let Some(target) = self.machines.get(index as usize - 1).cloned() else {
                continue;
            };
            let mut crash = FaultSpec::new(now.as_secs_f64(), FaultKind::AgentCrash);
            crash.restart_after_s = Some(restart_ms as f64 / 1000.0);
            let Some(description) = self.apply(&target, &crash, now) else {
                continue;
            };
            let description = format!("{description} at a {kind} message");
            tracing::info!(target: "revenant_sim", fault = %description, "fault injected");
            self.observations
                .borrow_mut()
                .faults
                .push((now, description));
        }
    }

    /// A crash point's power loss: the disk was cut at the operation; the machine goes
    /// down as for a reboot fault and boots again.
    fn crash_point_power_loss(&mut self) {
        let Some(description) = crate::crash_hooks::take_power_loss() else {
            return;
        };
        let machine = self.machine();
        let now = self.sim.elapsed();
        self.sim.crash(AGENT_HOST);
        for machine in &self.machines {
            machine.agent.borrow_mut().take();
            machine.agent_start_at.set(None);
            machine.agent_down_since.set(Some(now));
            machine.crash_after.set(None);
        }
        *machine.processes.borrow_mut() = ProcessTable::default();
        // Every process of the machine ended with the power, as for a reboot fault.
        crate::history::machine_down();
        machine.boot.set(machine.boot.get() + 1);
        let boot = crate::crash_hooks::POWER_LOSS_BOOT_AFTER;
        self.pending.push((now + boot, Pending::Boot));
        tracing::info!(target: "revenant_sim", fault = %description, "fault injected");
        let mut observations = self.observations.borrow_mut();
        observations.reboots.push(now);
        observations.faults.push((now, description));
        observations.fault_kinds.insert(FaultKind::Reboot);
        self.down_since_reboot = Some(now);
    }

    /// The end of the run: what the agent machine holds (agent, executors, disk, wall
    /// clock), the processes' ends and the final resources for the history; then the
    /// simulation is dropped and the history, durability losses and removals are taken.
    fn finish(self) -> Rc<RefCell<Observations>> {
        let machine = self.machine();
        let scenario = self.scenario;
        {
            let mut observations = self.observations.borrow_mut();
            observations.agent_running_at_end = machine
                .agent
                .borrow()
                .as_ref()
                .is_some_and(|handle| !handle.is_finished())
                // One that died at a filesystem operation is not running, finished or not.
                && !machine.crashed.get();
            observations.live_executors_at_end = machine
                .processes
                .borrow()
                .processes
                .values()
                .filter(|p| !p.exited.get() && !p.handle.is_finished())
                .map(|p| p.executor_id.clone())
                .collect();
            let work_dir = agent_work_dir(1);
            observations.disk_at_end = machine
                .fs
                .tree()
                .into_iter()
                .filter(|(path, _)| path.starts_with(&work_dir))
                .filter_map(|(path, entry)| {
                    let modified = machine.fs.mtime(&path)?;
                    Some((path, (entry, modified)))
                })
                .collect();
            // The run ends at duration_s of simulated time (the sim's clock is gone by now).
            let offset = machine.wall_offset.get();
            let base = std::time::SystemTime::UNIX_EPOCH
                + Duration::from_secs(crate::seams::EPOCH_SECONDS)
                + Duration::from_secs_f64(scenario.duration_s);
            observations.wall_at_end = Some(if offset >= 0 {
                base + Duration::from_millis(offset as u64)
            } else {
                base - Duration::from_millis(offset.unsigned_abs())
            });
        }
        // A process the table knows finished (crashed by a fault, say) without the
        // history hearing of it ended by the end of the run at the latest.
        let finished: BTreeSet<u32> = machine
            .processes
            .borrow()
            .processes
            .values()
            .filter(|p| p.exited.get() || p.handle.is_finished())
            .map(|p| p.id.pid)
            .collect();
        for pid in finished {
            crate::history::process_ended(pid, crate::history::ProcessEnd::Exited);
        }
        for machine in &self.machines {
            crate::history::final_resources(
                machine.index,
                crate::history::resources_on_disk(&machine.fs, &machine.work_dir),
            );
        }
        let Driver {
            sim, observations, ..
        } = self;
        drop(sim);
        {
            let mut observations = observations.borrow_mut();
            observations.history = crate::history::take_all();
            observations.durability_losses = crate::durability::take_losses();
            observations.update_receipts = crate::update_receipts::take();
            observations.reconciliations = crate::reconcile_watch::take();
            (observations.master_wire, observations.rogue_agent_wire) =
                crate::master_wire::take_both();
            observations.registration_answers = crate::registration_answers::take();
            observations.gc_removals = crate::gc_watch::take();
            observations.agent_metrics = crate::agent_metrics::take();
        }
        observations
    }
}

//! Fault application: what each fault kind of a schedule does to the running cluster
//! (docs/design.md D31). The driver (`crate::driver`) calls [`apply_fault`] between turmoil
//! steps with a [`FaultContext`] of its state; deferred effects (a boot, a restart, a
//! healed partition) come back to it as [`Pending`] actions.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use rand::Rng;
use revenant::agent::{AgentConfig, RecoverMode};
use revenant::domain::resources::ReconfigurationPolicy;
use revenant::os::FileSystem;

use crate::fs::SimFs;
use crate::machine::{Machine, MASTERS_WORK_DIR};
use crate::observations::{agent_work_dir, framework_host, secs, AGENT_HOST};
use crate::scenario::{parse_resources, FaultKind, FaultSpec, RestartFlags, Scenario};
use crate::seams::ProcessTable;

/// The driver's state a fault may act on, lent for one [`apply_fault`].
pub(crate) struct FaultContext<'a, 'sim> {
    /// The simulation (hosts, partitions, latency).
    pub sim: &'a mut turmoil::Sim<'sim>,
    /// Every agent process of the agent machine.
    pub machines: &'a [Rc<Machine>],
    /// Simulated time.
    pub now: Duration,
    /// The fault choices' random stream (`fault-choices`).
    pub rng: &'a mut rand::rngs::StdRng,
    /// Deferred actions, each with its time.
    pub pending: &'a mut Vec<(Duration, Pending)>,
    /// The scenario.
    pub scenario: &'a Scenario,
    /// Each framework's teardown flag.
    pub teardowns: &'a [Rc<Cell<bool>>],
    /// Frameworks whose scheduler left for good, and when.
    pub left: &'a RefCell<BTreeMap<u32, Duration>>,
}

/// Keeps the agent flags a crash or reboot carries for the incarnations after it; says
/// which (empty when none).
pub(crate) fn remember_restart_flags(machine: &Machine, fault: &FaultSpec) -> String {
    let Some(flags) = &fault.agent else {
        return String::new();
    };
    let mut kept = machine.restart_flags.borrow_mut();
    let mut said = Vec::new();
    if let Some(resources) = &flags.resources {
        kept.resources = Some(resources.clone());
        said.push(format!("--resources {resources}"));
    }
    if let Some(recover) = &flags.recover {
        kept.recover = Some(recover.clone());
        said.push(format!("--recover {recover}"));
    }
    if let Some(policy) = &flags.reconfiguration_policy {
        kept.reconfiguration_policy = Some(policy.clone());
        said.push(format!("--reconfiguration_policy {policy}"));
    }
    format!("; restarts with {}", said.join(" "))
}

/// Applies the flags crash and reboot faults changed.
pub(crate) fn apply_restart_flags(config: &mut AgentConfig, flags: &RestartFlags) {
    if let Some(resources) = &flags.resources {
        config.resources = parse_resources(resources).expect("validated");
    }
    if let Some(recover) = &flags.recover {
        config.recover = if recover == "cleanup" {
            RecoverMode::Cleanup
        } else {
            RecoverMode::Reconnect
        };
    }
    if let Some(policy) = &flags.reconfiguration_policy {
        config.reconfiguration_policy = if policy == "additive" {
            ReconfigurationPolicy::Additive
        } else {
            ReconfigurationPolicy::Equal
        };
    }
}

/// docs/simulator-reach.md 15f: the resources an operator restarts the agent with,
/// changed from `current` as `how` says (`more`: `step` times 256 more unreserved `mem`;
/// `new`: `step` times 1024 more unreserved `disk`, added when there is none; `less`:
/// half the unreserved `mem`), as a `--resources` value, and the policy for that
/// restart (`additive` for the first two, `equal` for `less`, which must stop
/// recovery, docs/recovery-rules.md R9). `None` when `less` has no `mem` to halve.
pub(crate) fn reconfigured(
    current: &[revenant::proto::Resource],
    how: &str,
    step: u32,
) -> Option<(String, &'static str)> {
    let mut resources = current.to_vec();
    let (name, policy) = match how {
        "more" => ("mem", "additive"),
        "new" => ("disk", "additive"),
        _ => ("mem", "equal"),
    };
    let unreserved = resources
        .iter_mut()
        .find(|r| r.name == name && r.role.is_empty());
    match (how, unreserved) {
        ("less", Some(mem)) if mem.scalar > 0.0 => mem.scalar /= 2.0,
        ("less", _) => return None,
        (_, Some(resource)) => {
            resource.scalar += f64::from(step) * if how == "more" { 256.0 } else { 1024.0 }
        }
        (_, None) => resources.push(revenant::proto::Resource {
            name: name.to_owned(),
            scalar: f64::from(step) * 1024.0,
            role: String::new(),
            reservation: String::new(),
        }),
    }
    // In the flags' own order, so that only the changed amount differs.
    let text: Vec<String> = resources
        .iter()
        .map(|r| {
            let role = if r.role.is_empty() { "*" } else { &r.role };
            format!("{}({role}):{}", r.name, r.scalar)
        })
        .collect();
    Some((text.join(";"), policy))
}

/// Arms a message fault's rule (`drop`, `duplicate`, `forge`); its description names
/// what will happen to which messages.
fn arm_drop(fault: &FaultSpec, action: crate::drops::Action) -> Option<String> {
    let kind = crate::drops::normalise_kind(fault.message.as_deref()?)?;
    let count = fault.count.unwrap_or(1);
    crate::drops::arm(crate::drops::DropRule {
        action,
        kind,
        from: fault.from.clone(),
        to: fault.to.clone(),
        task: fault.task.clone(),
        state: fault.state.clone(),
        remaining: count,
    });
    let verb = match action {
        crate::drops::Action::Drop => "drop",
        crate::drops::Action::Duplicate => "duplicate",
        crate::drops::Action::Forge => "forge a uuid ahead of",
        crate::drops::Action::CrashAgent { .. } => "crash the agent at",
        crate::drops::Action::Delay { .. } => "hold back",
    };
    let mut description = format!("{verb} the next {count} {kind} message(s)");
    for (label, value) in [
        ("from", &fault.from),
        ("to", &fault.to),
        ("task", &fault.task),
        ("state", &fault.state),
    ] {
        if let Some(value) = value {
            description.push_str(&format!(" {label} {value}"));
        }
    }
    Some(description)
}

/// What the driver does later, at a time a fault chose.
pub(crate) enum Pending {
    Boot,
    /// Start agent process k (1, 2, ...) again.
    StartAgent(u32),
    BounceMaster(String),
    BounceFramework(String),
    Repair(String, String),
    Latency,
    Zk(crate::zk_faults::Later),
}

/// Removes every `meta/slaves/<id>/frameworks/<fid>` directory of the agent with work
/// directory `work_dir`, durably; returns what it removed (paths below `meta/`).
fn wipe_framework_meta(fs: &SimFs, work_dir: &std::path::Path) -> Vec<String> {
    let slaves = work_dir.join("meta/slaves");
    let mut wiped = Vec::new();
    for agent in fs.list_dir(&slaves).unwrap_or_default() {
        if agent == "latest" {
            continue;
        }
        let frameworks = slaves.join(&agent).join("frameworks");
        for framework in fs.list_dir(&frameworks).unwrap_or_default() {
            if fs.remove_dir_all(&frameworks.join(&framework)).is_ok() {
                wiped.push(format!("slaves/{agent}/frameworks/{framework}"));
            }
        }
        let _ = fs.sync_dir(&frameworks);
    }
    wiped
}

/// The master host holding the leader lease (`master1` when none holds it yet).
fn leading_master(machine: &Machine, scenario: &Scenario) -> String {
    if let Some(world) = crate::zk::current() {
        return world.leader_host().unwrap_or_else(|| "master1".to_owned());
    }
    let path = std::path::Path::new(MASTERS_WORK_DIR).join(revenant::detector::LEASE_FILE);
    revenant::detector::read_lease(&machine.masters_disk, &path)
        .ok()
        .flatten()
        .and_then(|lease| {
            let host = lease.holder.split(':').next()?.to_owned();
            let index: u32 = host.trim_start_matches("master").parse().ok()?;
            (index >= 1 && index <= scenario.masters).then_some(host)
        })
        .unwrap_or_else(|| "master1".to_owned())
}

/// Applies one fault. `machine` is the agent process an agent process fault hits (agent
/// 1 for machine faults); the context's `machines` are all the agent processes of the
/// machine. Returns the fault's description, or `None` when it had nothing to act on.
pub(crate) fn apply_fault(
    cx: &mut FaultContext<'_, '_>,
    machine: &Rc<Machine>,
    fault: &FaultSpec,
) -> Option<String> {
    let restart = fault.restart_after_s.map(secs);
    // A reboot's flags are for every agent process of the machine.
    let new_flags = remember_restart_flags(machine, fault);
    if fault.kind == FaultKind::Reboot {
        for other in cx.machines.iter().filter(|m| m.index != machine.index) {
            remember_restart_flags(other, fault);
        }
    }
    if crate::zk_faults::is_zk_fault(fault.kind) {
        let (description, later) = crate::zk_faults::apply(cx.sim, fault, cx.now)?;
        if let Some((at, what)) = later {
            cx.pending.push((at, Pending::Zk(what)));
        }
        return Some(description);
    }
    match fault.kind {
        FaultKind::AgentCrash
        | FaultKind::AgentUnregister
        | FaultKind::WipeFrameworkMeta
        | FaultKind::AgentCrashAtWrite
        | FaultKind::AgentCrashAtMessage
        | FaultKind::AgentCrashAtProcess => {
            agent_process_fault(cx, machine, fault, restart, &new_flags)
        }
        FaultKind::ReconfigureAgent => reconfigure_agent(cx, machine, fault, restart),
        FaultKind::Reboot
        | FaultKind::ExecutorCrash
        | FaultKind::Corrupt
        | FaultKind::DiskError
        | FaultKind::TornAppend
        | FaultKind::DeleteRunDir
        | FaultKind::DeleteAgentDir
        | FaultKind::BreakWake
        | FaultKind::RewriteForkedPid
        | FaultKind::ClockJump => machine_fault(cx, machine, fault, restart, &new_flags),
        FaultKind::MasterCrash
        | FaultKind::Partition
        | FaultKind::Delay
        | FaultKind::Drop
        | FaultKind::Duplicate
        | FaultKind::Forge
        | FaultKind::DelayMessage => network_fault(cx, machine, fault, restart),
        FaultKind::FrameworkCrash | FaultKind::FrameworkLeave | FaultKind::FrameworkTeardown => {
            framework_fault(cx, fault, restart)
        }
        // Applied above.
        FaultKind::ZkPartition
        | FaultKind::ZkDown
        | FaultKind::ZkExpire
        | FaultKind::ZkLoseReply => None,
    }
}

/// docs/simulator-reach.md 15f: an operator stops the running agent and starts it again,
/// after `restart`, with its resources changed as the fault's `how` says. Nothing when
/// the agent is not running (its restart may already be due with other flags).
fn reconfigure_agent(
    cx: &mut FaultContext<'_, '_>,
    machine: &Rc<Machine>,
    fault: &FaultSpec,
    restart: Option<Duration>,
) -> Option<String> {
    machine.agent.borrow().as_ref()?;
    let how = fault.how.as_deref().unwrap_or("more");
    let current = machine.started_resources.borrow().clone();
    let (resources, policy) = reconfigured(&current, how, fault.count.unwrap_or(1))?;
    let handle = machine.agent.borrow_mut().take()?;
    handle.abort();
    let now = cx.now;
    machine.agent_down_since.set(Some(now));
    let restart = restart.unwrap_or(Duration::from_secs(3));
    cx.pending
        .push((now + restart, Pending::StartAgent(machine.index)));
    {
        let mut kept = machine.restart_flags.borrow_mut();
        kept.resources = Some(resources.clone());
        kept.reconfiguration_policy = Some(policy.to_owned());
    }
    let change = if how == "less" {
        // The stop this must cause is repaired by the operator in a swarm.
        crate::corrupt::reconfigured_incompatibly();
        crate::corrupt::INCOMPATIBLE_RECONFIGURATION
    } else {
        crate::corrupt::ADDITIVE_RECONFIGURATION
    };
    Some(format!(
        "{change} (restart after {:.1}s with --resources {resources} --reconfiguration_policy {policy})",
        restart.as_secs_f64()
    ))
}

/// Faults that hit one agent process: crashes (now, at a filesystem, process or
/// message operation), the operator's SIGUSR1, and checkpoints removed while it is down.
fn agent_process_fault(
    cx: &mut FaultContext<'_, '_>,
    machine: &Rc<Machine>,
    fault: &FaultSpec,
    restart: Option<Duration>,
    new_flags: &str,
) -> Option<String> {
    let now = cx.now;
    let pending = &mut *cx.pending;
    match fault.kind {
        FaultKind::AgentCrash => {
            let handle = machine.agent.borrow_mut().take()?;
            handle.abort();
            machine.agent_down_since.set(Some(now));
            if let Some(restart) = restart {
                pending.push((now + restart, Pending::StartAgent(machine.index)));
            }
            Some(format!(
                "agent crash (restart after {:.1}s){new_flags}",
                restart.unwrap_or_default().as_secs_f64()
            ))
        }
        FaultKind::AgentUnregister => {
            machine.agent.borrow().as_ref()?;
            machine.leave.borrow().notify_one();
            Some("agent asked to leave the cluster (SIGUSR1)".to_owned())
        }
        FaultKind::WipeFrameworkMeta => {
            if machine.agent.borrow().is_some() {
                return None;
            }
            let wiped = wipe_framework_meta(&machine.fs, &machine.work_dir);
            (!wiped.is_empty())
                .then(|| format!("framework checkpoints removed: {}", wiped.join(", ")))
        }
        FaultKind::AgentCrashAtWrite => {
            machine.agent.borrow().as_ref()?;
            let ops = fault.ops.unwrap_or(1);
            machine.crash_after.set(Some(ops));
            Some(format!(
                "agent dies at its filesystem operation {ops} from now"
            ))
        }
        FaultKind::AgentCrashAtMessage => {
            let restart_ms = (fault.restart_after_s.unwrap_or(1.0).max(0.0) * 1000.0) as u64;
            let description = arm_drop(
                fault,
                crate::drops::Action::CrashAgent {
                    agent: machine.index,
                    restart_ms,
                },
            )?;
            Some(description)
        }
        FaultKind::AgentCrashAtProcess => {
            machine.agent.borrow().as_ref()?;
            let ops = fault.ops.unwrap_or(1).max(1);
            machine.process_crash_after.set(Some(ops - 1));
            Some(format!(
                "agent dies at its process operation {ops} from now (launch, signal)"
            ))
        }
        // Every other kind is dispatched elsewhere by `apply_fault`.
        _ => None,
    }
}

/// Faults that hit the agent machine: power loss, an executor process crashing, the
/// disk (corruption, errors, torn appends, operator damage) and the wall clock.
fn machine_fault(
    cx: &mut FaultContext<'_, '_>,
    machine: &Rc<Machine>,
    fault: &FaultSpec,
    restart: Option<Duration>,
    new_flags: &str,
) -> Option<String> {
    let sim = &mut *cx.sim;
    let machines = cx.machines;
    let now = cx.now;
    let rng = &mut *cx.rng;
    let pending = &mut *cx.pending;
    match fault.kind {
        FaultKind::Reboot => {
            let all_down = machines.iter().all(|machine| {
                machine.agent_down_since.get().is_some()
                    && machine.agent.borrow().is_none()
                    && machine.agent_start_at.get().is_none()
            });
            if all_down && !sim.is_host_running(AGENT_HOST) {
                return None;
            }
            sim.crash(AGENT_HOST);
            for machine in machines {
                machine.agent.borrow_mut().take();
                machine.agent_start_at.set(None);
                machine.agent_down_since.set(Some(now));
                machine.crash_after.set(None);
            }
            *machine.processes.borrow_mut() = ProcessTable::default();
            crate::history::machine_down();
            let before = machine.fs.tree();
            // docs/crash-points.md CP-7: zeroes from a stream of their own, so that the
            // run's stream is asked what it was asked before.
            let loss = match fault.zero_fill {
                Some(stream) => crate::faults::zero_filled_power_loss(&machine.fs, rng, stream),
                None => machine.fs.power_loss(rng),
            };
            crate::durability::power_loss(&before, &machine.fs);
            machine.boot.set(machine.boot.get() + 1);
            let restart = restart.unwrap_or(Duration::from_secs(10));
            pending.push((now + restart, Pending::Boot));
            Some(format!(
                "reboot ({loss:?}; boots after {:.1}s){new_flags}",
                restart.as_secs_f64()
            ))
        }
        FaultKind::ExecutorCrash => {
            let table = machine.processes.borrow();
            let live: Vec<&crate::seams::SimProcess> = table
                .processes
                .values()
                .filter(|p| !p.exited.get() && !p.handle.is_finished())
                .filter(|p| fault.task.as_ref().is_none_or(|t| *t == p.executor_id))
                .collect();
            if live.is_empty() {
                return None;
            }
            let victim = live[rng.gen_range(0..live.len())];
            victim.handle.abort();
            victim.exited.set(true);
            crate::history::process_ended(victim.id.pid, crate::history::ProcessEnd::Killed);
            Some(format!(
                "executor {} (pid {}) crashed",
                victim.executor_id, victim.id.pid
            ))
        }
        // docs/simulator-reach.md rule 14u: done while the agent is down.
        FaultKind::Corrupt if fault.op.as_deref() == Some(crate::corrupt::UNDECODABLE_RECORD) => {
            if machine.agent.borrow().is_some() {
                return None;
            }
            crate::corrupt::undecodable_record(&machine.fs, &machine.work_dir, rng, now)
        }
        // docs/simulator-reach.md 15i: done while the agent is down.
        FaultKind::Corrupt
            if fault
                .op
                .as_deref()
                .is_some_and(|op| crate::corrupt::HEADER_DAMAGES.contains(&op)) =>
        {
            if machine.agent.borrow().is_some() {
                return None;
            }
            let how = fault.op.as_deref().unwrap_or_default();
            crate::corrupt::header(&machine.fs, &machine.work_dir, rng, how)
        }
        FaultKind::Corrupt if fault.op.is_some() => crate::corrupt::length_field(&machine.fs, rng),
        FaultKind::Corrupt => {
            let files: Vec<PathBuf> = machine
                .fs
                .tree()
                .into_keys()
                .filter(|p| p.file_name().is_some_and(|n| n == "task.updates"))
                .collect();
            if files.is_empty() {
                return None;
            }
            let path = files[rng.gen_range(0..files.len())].clone();
            let mut data = machine.fs.read(&path).ok()?;
            if data.len() <= 8 {
                return None;
            }
            let offset = rng.gen_range(8..data.len());
            data[offset] ^= 1 << rng.gen_range(0..8);
            machine.fs.write(&path, &data).ok()?;
            machine.fs.sync_file(&path).ok()?;
            Some(format!("corrupt byte {offset} of {}", path.display()))
        }
        FaultKind::DiskError => {
            let count = fault.ops.unwrap_or(3).max(1);
            let error = fault
                .error
                .clone()
                .unwrap_or_else(|| ["eio", "enospc", "fsync"][rng.gen_range(0..3)].to_owned());
            // Aimed at a path or an operation kind, if the fault says so
            // (docs/simulator-reach.md rule 11).
            let (rule, description) =
                crate::disk_faults::rule(fault, &error, count, &agent_work_dir(1));
            machine.fs.inject(rule);
            for machine in machines {
                machine.disk_faulted.set(true);
            }
            Some(description)
        }
        FaultKind::TornAppend => {
            for machine in machines {
                machine.disk_faulted.set(true);
            }
            Some(crate::faults::arm_torn_append(
                &machine.fs,
                std::path::Path::new("/var/lib"),
                fault.error.as_deref(),
                fault.ops,
            ))
        }
        // docs/simulator-reach.md 15e: done while the agent is down.
        FaultKind::DeleteAgentDir => {
            if machine.agent.borrow().is_some() {
                return None;
            }
            crate::faults::delete_agent_dir(&machine.fs, &machine.work_dir)
        }
        FaultKind::DeleteRunDir => {
            if machine.agent.borrow().is_some() {
                return None;
            }
            let live = fault.how.as_deref() == Some("live");
            crate::faults::delete_run_dir(&machine.fs, &machine.work_dir, live, rng)
        }
        FaultKind::BreakWake => {
            if machine.agent.borrow().is_some() {
                return None;
            }
            crate::wake_faults::break_wake(
                &machine.fs,
                &machine.work_dir,
                fault.how.as_deref().unwrap_or("missing"),
                fault.task.as_deref(),
                rng,
            )
        }
        FaultKind::RewriteForkedPid => {
            if machine.agent.borrow().is_some() {
                return None;
            }
            let live: Vec<(u32, u64)> = machine
                .processes
                .borrow()
                .processes
                .values()
                .filter(|p| !p.exited.get() && !p.handle.is_finished())
                .map(|p| (p.id.pid, p.id.start_time))
                .collect();
            // docs/simulator-reach.md 15j.
            if fault.how.as_deref() == Some("empty") {
                return crate::corrupt::empty_forked_pid(
                    &machine.fs,
                    &machine.work_dir,
                    fault.task.as_deref(),
                    rng,
                );
            }
            let other_boot = fault.boot.as_deref() == Some("other");
            crate::faults::rewrite_forked_pid(
                &machine.fs,
                &machine.work_dir,
                &live,
                other_boot,
                fault.task.as_deref(),
                rng,
            )
        }
        FaultKind::ClockJump => {
            let jump_ms = (fault.jump_s.unwrap_or(60.0) * 1000.0) as i64;
            machine.wall_offset.set(machine.wall_offset.get() + jump_ms);
            Some(format!("wall clock jumps {jump_ms}ms"))
        }
        // Every other kind is dispatched elsewhere by `apply_fault`.
        _ => None,
    }
}

/// Faults of the network and the masters: the leader crashing, partitions, delays,
/// and the message faults of the frame-aware filter (`crate::drops`).
fn network_fault(
    cx: &mut FaultContext<'_, '_>,
    machine: &Rc<Machine>,
    fault: &FaultSpec,
    restart: Option<Duration>,
) -> Option<String> {
    let sim = &mut *cx.sim;
    let now = cx.now;
    let pending = &mut *cx.pending;
    let scenario = cx.scenario;
    match fault.kind {
        FaultKind::MasterCrash => {
            let name = leading_master(machine, scenario);
            if !sim.is_host_running(name.as_str()) {
                return None;
            }
            sim.crash(name.as_str());
            if let Some(restart) = restart {
                pending.push((now + restart, Pending::BounceMaster(name.clone())));
            }
            Some(format!("{name} crashed"))
        }
        FaultKind::Partition => {
            let (a, b) = (fault.a.clone()?, fault.b.clone()?);
            if a == b
                || a.starts_with("master")
                    && (a.trim_start_matches("master").parse::<u32>().ok()? > scenario.masters)
            {
                return None;
            }
            sim.partition(a.as_str(), b.as_str());
            let duration = secs(fault.duration_s.unwrap_or(10.0));
            pending.push((now + duration, Pending::Repair(a.clone(), b.clone())));
            Some(format!(
                "partition {a} <-> {b} for {:.1}s",
                duration.as_secs_f64()
            ))
        }
        FaultKind::Delay => {
            let max = Duration::from_millis(fault.max_ms.unwrap_or(200));
            sim.set_max_message_latency(max);
            pending.push((
                now + secs(fault.duration_s.unwrap_or(10.0)),
                Pending::Latency,
            ));
            Some(format!("message delay up to {}ms", max.as_millis()))
        }
        FaultKind::Drop => arm_drop(fault, crate::drops::Action::Drop),
        FaultKind::Duplicate => arm_drop(fault, crate::drops::Action::Duplicate),
        FaultKind::Forge => arm_drop(fault, crate::drops::Action::Forge),
        FaultKind::DelayMessage => {
            let ms = (fault.duration_s.unwrap_or(5.0).max(0.0) * 1000.0) as u64;
            let description = arm_drop(fault, crate::drops::Action::Delay { ms })?;
            Some(format!("{description} by {ms}ms"))
        }
        // Every other kind is dispatched elsewhere by `apply_fault`.
        _ => None,
    }
}

/// Faults of the frameworks: a scheduler crashing (it fails over), leaving for good,
/// or tearing its framework down.
fn framework_fault(
    cx: &mut FaultContext<'_, '_>,
    fault: &FaultSpec,
    restart: Option<Duration>,
) -> Option<String> {
    let sim = &mut *cx.sim;
    let now = cx.now;
    let rng = &mut *cx.rng;
    let pending = &mut *cx.pending;
    let scenario = cx.scenario;
    let teardowns = cx.teardowns;
    let left = cx.left;
    match fault.kind {
        FaultKind::FrameworkCrash => {
            let count = scenario.frameworks.max(1);
            let index = match fault.framework {
                Some(index) => index,
                None => rng.gen_range(1..=count),
            };
            let name = framework_host(index);
            if !sim.is_host_running(name.as_str()) {
                return None;
            }
            sim.crash(name.as_str());
            let restart = restart.unwrap_or(Duration::from_secs(5));
            pending.push((now + restart, Pending::BounceFramework(name.clone())));
            Some(format!(
                "{name} crashed (fails over after {:.1}s)",
                restart.as_secs_f64()
            ))
        }
        FaultKind::FrameworkLeave => {
            let count = scenario.frameworks.max(1);
            let index = match fault.framework {
                Some(index) => index,
                None if count == 1 => 1,
                None => rng.gen_range(1..=count),
            };
            if left.borrow().contains_key(&index) {
                return None;
            }
            left.borrow_mut().insert(index, now);
            let name = framework_host(index);
            // Down already (a crash that would fail it over later): it never comes back.
            if sim.is_host_running(name.as_str()) {
                sim.crash(name.as_str());
            }
            Some(format!(
                "{name} leaves for good (failover timeout {:.1}s)",
                scenario.framework_failover_timeout_s
            ))
        }
        FaultKind::FrameworkTeardown => {
            let count = scenario.frameworks.max(1);
            let index = match fault.framework {
                Some(index) => index,
                None if count == 1 => 1,
                None => rng.gen_range(1..=count),
            };
            let flag = teardowns.get(index.checked_sub(1)? as usize)?;
            if flag.get() {
                return None;
            }
            flag.set(true);
            Some(format!("framework {index} tears itself down"))
        }
        // Every other kind is dispatched elsewhere by `apply_fault`.
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::reconfigured;
    use crate::scenario::parse_resources;

    /// docs/simulator-reach.md 15f: `more` and `new` only grow (additive), `less` halves
    /// the unreserved `mem` (equal); the reservation and `cpus` stay, in the flags' order.
    #[test]
    fn reconfigured_resources_change_as_drawn() {
        let current = parse_resources("cpus:2;mem:1024;cpus(web):1").expect("parses");
        assert_eq!(
            reconfigured(&current, "more", 2),
            Some(("cpus(*):2;mem(*):1536;cpus(web):1".to_owned(), "additive"))
        );
        assert_eq!(
            reconfigured(&current, "new", 1),
            Some((
                "cpus(*):2;mem(*):1024;cpus(web):1;disk(*):1024".to_owned(),
                "additive"
            ))
        );
        assert_eq!(
            reconfigured(&current, "less", 3),
            Some(("cpus(*):2;mem(*):512;cpus(web):1".to_owned(), "equal"))
        );
        let no_mem = parse_resources("cpus:2").expect("parses");
        assert_eq!(reconfigured(&no_mem, "less", 1), None);
        let text = reconfigured(&current, "new", 1).expect("changed").0;
        assert!(
            parse_resources(&text).is_ok(),
            "{text} parses as --resources"
        );
    }
}

//! Reach: the fault kinds and workload knobs added after the first swarms, how a swarm
//! draws them, the timer-boundary weighting of drawn durations, and the operator damage
//! done to an agent's disk while it is down.
//!
//! The rules are docs/simulator-reach.md rules 4 to 9. Every draw here comes from a
//! random stream of its own (`derive_seed(seed, label)`),
//! never from the shared `swarm` stream of [`crate::schedule::schedule_for`], so a
//! scenario that does not ask for these draws runs exactly as before: pinned regression
//! seeds reproduce what they pin.

use std::path::{Path, PathBuf};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use revenant::os::FileSystem;

use crate::fs::SimFs;
use crate::scenario::{AgentTarget, FaultKind, FaultSpec, ReservationSpec, Scenario, Swarm};
use crate::seams::derive_seed;

/// The kinds the first swarms drew from the one shared `swarm` stream (in the order of
/// [`FaultKind`]). Any other kind a swarm lists is drawn by [`swarm_extras`].
pub const SHARED_STREAM_KINDS: &[FaultKind] = &[
    FaultKind::AgentCrash,
    FaultKind::AgentCrashAtWrite,
    FaultKind::Reboot,
    FaultKind::ExecutorCrash,
    FaultKind::FrameworkCrash,
    FaultKind::AgentUnregister,
    FaultKind::MasterCrash,
    FaultKind::Partition,
    FaultKind::Delay,
    FaultKind::ClockJump,
    FaultKind::DiskError,
    FaultKind::FrameworkTeardown,
];

/// Whether a swarm draws `kind` from the shared stream.
pub fn draws_from_shared_stream(kind: FaultKind) -> bool {
    SHARED_STREAM_KINDS.contains(&kind)
}

/// The message kinds a swarm duplicates or crashes the agent at: the messages of
/// registration, launch, status updates and their acknowledgements, executor
/// (re-)registration, kills and shutdowns.
pub const SWARM_MESSAGES: &[&str] = &[
    "register_agent",
    "reregister_agent",
    "agent_registered",
    "agent_reregistered",
    "run_task",
    "kill_task",
    "status_update",
    "acknowledgement",
    "register_executor",
    "executor_registered",
    "reregister_executor",
    "reconnect_executor",
    "shutdown_executor",
    "ping",
    "pong",
];

/// The messages a swarm drops, as (kind, from, to): those whose sender repeats them
/// until answered, on the hops where it does (the agent retries a status update until
/// the framework's acknowledgement comes back through the master, so either may be lost
/// between the agent, the master and the framework; registrations are retried until
/// registered) and the pings, whose loss the timeouts cover. An executor does not
/// repeat an update on a live connection (only after the agent comes back), so the
/// executor's hop is left out, as is any other message: losing one alone on a
/// connection that stays up is a state a TCP connection cannot show (it delivers in
/// order or breaks), so only fixed scenarios drop those, on purpose.
pub const SWARM_DROPPED_MESSAGES: &[(&str, Option<&str>, Option<&str>)] = &[
    ("register_agent", None, None),
    ("reregister_agent", None, None),
    ("status_update", Some("agent1"), Some("master1")),
    ("status_update", Some("master1"), Some("framework")),
    ("acknowledgement", Some("framework"), Some("master1")),
    ("acknowledgement", Some("master1"), Some("agent1")),
    ("ping", None, None),
    ("pong", None, None),
];

/// How long the agent stays down around operator damage drawn by a swarm, at least.
const DAMAGE_DOWNTIME_MIN_S: f64 = 2.0;

/// The teardown grace period: how long an executor has to end its tasks after a
/// framework's shutdown before the agent kills it.
const TEARDOWN_GRACE_S: f64 = 5.0;

/// The timeouts in force in `scenario`, seconds: the agent's `recovery_timeout`,
/// `executor_reregistration_timeout`, ping timeout (how long it waits on a silent
/// master) and `gc_delay`, its registration back-off cap (60 s), the master's agent
/// re-registration timeout and its ping timeout times the number of pings missed, the
/// leader lease (with several masters) and the teardown grace period. Each is kept only
/// if it is shorter than the run.
pub fn timeouts_in_force(scenario: &Scenario) -> Vec<f64> {
    let agent = &scenario.agent;
    let master = &scenario.master;
    let mut out = vec![
        agent.recovery_timeout_s,
        agent.executor_reregistration_timeout_s,
        agent.master_ping_timeout_s,
        agent.gc_delay_s,
        revenant::domain::intervals::REGISTER_RETRY_INTERVAL_MAX.as_secs_f64(),
        master.agent_reregister_timeout_s,
        master.agent_ping_timeout_s * f64::from(master.max_agent_ping_timeouts),
        TEARDOWN_GRACE_S,
    ];
    if scenario.masters > 1 {
        out.push(master.leader_lease_s);
    }
    out.retain(|t| *t > 0.0 && *t < scenario.duration_s);
    out.sort_by(f64::total_cmp);
    out.dedup();
    out
}

/// A value just below or just above one of `timeouts`: the timeout times 1 +/- 0.5% to
/// 5%.
pub fn near_a_timeout(rng: &mut StdRng, timeouts: &[f64]) -> f64 {
    let timeout = timeouts[rng.gen_range(0..timeouts.len())];
    let epsilon = rng.gen_range(0.005..0.05);
    if rng.gen_bool(0.5) {
        timeout * (1.0 - epsilon)
    } else {
        timeout * (1.0 + epsilon)
    }
}

/// Timer boundaries: with the swarm's `boundary_weight`, puts each drawn downtime
/// (restart delay of an agent crash, reboot, master or framework crash) and each drawn
/// partition or delay duration of `drawn` just below or above a timeout in force.
pub fn weight_boundaries(scenario: &Scenario, seed: u64, drawn: &mut [FaultSpec]) {
    let Some(swarm) = &scenario.swarm else {
        return;
    };
    let timeouts = timeouts_in_force(scenario);
    if swarm.boundary_weight <= 0.0 || timeouts.is_empty() {
        return;
    }
    // Only the timeouts a drawn downtime could come near (up to 1.1 times the longest
    // drawn restart delay): a downtime at a longer one would outlast the run.
    let reach = swarm.restart_after_s[1].max(swarm.restart_after_s[0]) * 1.1;
    let timeouts: Vec<f64> = timeouts.into_iter().filter(|t| *t <= reach).collect();
    if timeouts.is_empty() {
        return;
    }
    let mut rng = StdRng::seed_from_u64(derive_seed(seed, "swarm-boundaries"));
    for fault in drawn {
        let field = match fault.kind {
            FaultKind::AgentCrash
            | FaultKind::Reboot
            | FaultKind::MasterCrash
            | FaultKind::FrameworkCrash => &mut fault.restart_after_s,
            FaultKind::Partition | FaultKind::Delay => &mut fault.duration_s,
            _ => continue,
        };
        if rng.gen_bool(swarm.boundary_weight) {
            *field = Some(near_a_timeout(&mut rng, &timeouts));
        }
    }
}

/// The faults a swarm draws for its kinds outside [`SHARED_STREAM_KINDS`], each kind
/// from a stream of its own: whether the kind is on (`kind_on_probability`), how many
/// (a Poisson count by thinning, as for the others), when, and what it names (a message
/// kind, an error). Operator damage (`wipe_framework_meta`, `delete_run_dir`,
/// `delete_agent_dir`, `rewrite_forked_pid`) is done while the agent is down, so the swarm stops the agent
/// first (an `agent_crash`, restarted after at least 2 s) and damages its disk half a
/// second later.
pub fn swarm_extras(scenario: &Scenario, seed: u64) -> Vec<FaultSpec> {
    let Some(swarm) = &scenario.swarm else {
        return Vec::new();
    };
    let mut out = Vec::new();
    // Whether a drawn `rewrite_forked_pid` writes another boot's id: a stream of its own,
    // so the kind's other draws stay as they were.
    let mut boot_rng = StdRng::seed_from_u64(derive_seed(seed, "swarm-forked-pid-boot"));
    let minutes = scenario.fault_phase_s / 60.0;
    let [restart_min, restart_max] = swarm.restart_after_s;
    for (kind, rate) in &swarm.per_minute {
        if draws_from_shared_stream(*kind) {
            continue;
        }
        let mut rng = StdRng::seed_from_u64(derive_seed(seed, &format!("swarm-{kind:?}")));
        if !rng.gen_bool(swarm.kind_on_probability.clamp(0.0, 1.0)) {
            continue;
        }
        let trials = (rate * minutes * 4.0).ceil() as u32;
        for _ in 0..trials {
            if !rng.gen_bool(0.25) {
                continue;
            }
            let at_s = rng.gen_range(1.0..scenario.fault_phase_s.max(2.0));
            let restart = rng.gen_range(restart_min..=restart_max.max(restart_min));
            let on_agent =
                (scenario.agents > 1).then(|| AgentTarget::One(rng.gen_range(1..=scenario.agents)));
            let mut fault = FaultSpec::new(at_s, *kind);
            match kind {
                FaultKind::Drop => {
                    let messages = SWARM_DROPPED_MESSAGES;
                    let (message, from, to) = messages[rng.gen_range(0..messages.len())];
                    fault.message = Some(message.to_owned());
                    fault.from = from.map(str::to_owned);
                    fault.to = to.map(str::to_owned);
                    fault.count = Some(rng.gen_range(1..=2));
                }
                FaultKind::Duplicate => {
                    fault.message =
                        Some(SWARM_MESSAGES[rng.gen_range(0..SWARM_MESSAGES.len())].to_owned());
                    fault.count = Some(rng.gen_range(1..=2));
                }
                FaultKind::Forge => {
                    let messages = ["acknowledgement", "status_update"];
                    let message = messages[rng.gen_range(0..messages.len())];
                    fault.message = Some(message.to_owned());
                    if message == "status_update" {
                        // Only on the executor's hop (docs/simulator-reach.md rule 6).
                        fault.from = Some(crate::hosts::AGENT_HOST.to_owned());
                        fault.to = Some(crate::hosts::AGENT_HOST.to_owned());
                    }
                }
                FaultKind::AgentCrashAtMessage => {
                    fault.message =
                        Some(SWARM_MESSAGES[rng.gen_range(0..SWARM_MESSAGES.len())].to_owned());
                    fault.restart_after_s = Some(restart);
                    fault.on_agent = on_agent;
                }
                FaultKind::DelayMessage => {
                    fault.message =
                        Some(SWARM_MESSAGES[rng.gen_range(0..SWARM_MESSAGES.len())].to_owned());
                    fault.duration_s = Some(rng.gen_range(0.5..10.0));
                }
                FaultKind::FrameworkLeave => {
                    fault.framework = Some(rng.gen_range(1..=scenario.frameworks.max(1)));
                }
                FaultKind::AgentCrashAtProcess => {
                    fault.ops = Some(rng.gen_range(1..=3));
                    fault.on_agent = on_agent;
                }
                FaultKind::ZkPartition
                | FaultKind::ZkDown
                | FaultKind::ZkExpire
                | FaultKind::ZkLoseReply => {
                    crate::zk_faults::draw(&mut fault, &mut rng, scenario);
                }
                FaultKind::TornAppend => {
                    fault.error = Some(["eio", "enospc"][rng.gen_range(0..2)].to_owned());
                }
                FaultKind::WipeFrameworkMeta
                | FaultKind::DeleteRunDir
                | FaultKind::DeleteAgentDir
                | FaultKind::RewriteForkedPid
                | FaultKind::Corrupt => {
                    let mut stop = FaultSpec::new(at_s, FaultKind::AgentCrash);
                    stop.restart_after_s = Some(restart.max(DAMAGE_DOWNTIME_MIN_S));
                    stop.on_agent = on_agent.clone();
                    out.push(stop);
                    fault.at_s = at_s + 0.5;
                    fault.on_agent = on_agent;
                    // docs/simulator-reach.md rule 14u: a swarm's corruption is a
                    // well-framed record that does not decode, appended while the
                    // agent is down.
                    if *kind == FaultKind::Corrupt {
                        fault.op = Some(crate::corrupt::UNDECODABLE_RECORD.to_owned());
                    }
                    if *kind == FaultKind::RewriteForkedPid && boot_rng.gen_bool(0.5) {
                        fault.boot = Some("other".to_owned());
                    }
                }
                FaultKind::ReconfigureAgent => {
                    // docs/simulator-reach.md 15f: more or new resources (additive), or
                    // less (incompatible), for the restart.
                    let hows = ["more", "new", "less"];
                    fault.how = Some(hows[rng.gen_range(0..hows.len())].to_owned());
                    fault.count = Some(rng.gen_range(1..=4));
                    fault.restart_after_s = Some(restart.max(DAMAGE_DOWNTIME_MIN_S));
                    fault.on_agent = on_agent;
                }
                FaultKind::BreakWake => {
                    // docs/recovery-rules.md R35: the agent is down while its wake
                    // endpoints are damaged, or the wake it sends as it comes back is lost.
                    let mut stop = FaultSpec::new(at_s, FaultKind::AgentCrash);
                    stop.restart_after_s = Some(restart.max(DAMAGE_DOWNTIME_MIN_S));
                    stop.on_agent = on_agent.clone();
                    out.push(stop);
                    fault.at_s = at_s + 0.5;
                    fault.on_agent = on_agent;
                    let hows = crate::wake_faults::HOWS;
                    let how = hows[rng.gen_range(0..hows.len())];
                    if how == "lost" {
                        fault.kind = FaultKind::Drop;
                        fault.message = Some("wake_executor".to_owned());
                        fault.count = Some(rng.gen_range(1..=3));
                    } else {
                        fault.how = Some(how.to_owned());
                    }
                }
                _ => {}
            }
            out.push(fault);
        }
    }
    out
}

/// The scenario with the swarm's workload knobs drawn for `seed` (from a stream of
/// their own): `gc_delay_s`, `reservations`, and (from a second stream, so that the
/// others draw as before) `framework_failover_timeout_s`. Unchanged without a swarm or
/// knobs.
pub fn with_knobs(scenario: &Scenario, seed: u64) -> Scenario {
    let mut scenario = scenario.clone();
    let Some(swarm) = scenario.swarm.clone() else {
        return scenario;
    };
    let mut rng = StdRng::seed_from_u64(derive_seed(seed, "swarm-knobs"));
    if let Some([low, high]) = swarm.gc_delay_s {
        scenario.agent.gc_delay_s = rng.gen_range(low..=high);
    }
    let count = rng.gen_range(0..=swarm.reservations);
    for index in 0..count {
        let roles = ["db", "web", "batch"];
        scenario.reservations.push(ReservationSpec {
            at_s: rng.gen_range(1.0..scenario.fault_phase_s.max(2.0)),
            resources: format!("cpus({}):0.1", roles[index as usize % roles.len()]),
            framework: rng.gen_range(1..=scenario.frameworks.max(1)),
        });
    }
    if let Some([low, high]) = swarm.framework_failover_timeout_s {
        let mut rng = StdRng::seed_from_u64(derive_seed(seed, "swarm-failover-timeout"));
        scenario.framework_failover_timeout_s = rng.gen_range(low..=high);
    }
    if swarm.non_strict_fraction > 0.0 {
        let mut rng = StdRng::seed_from_u64(derive_seed(seed, "swarm-non-strict"));
        if rng.gen_bool(swarm.non_strict_fraction.clamp(0.0, 1.0)) {
            scenario.agent.strict = false;
        }
    }
    crate::reconcile_watch::draw(&mut scenario, &swarm, seed);
    // docs/simulator-reach.md 15n: some runs ask silent executor connections again.
    if let Some([low, high]) = swarm.executor_reregistration_retry_s {
        let mut rng = StdRng::seed_from_u64(derive_seed(seed, "swarm-reregistration-retry"));
        if rng.gen_bool(swarm.executor_reregistration_retry_fraction.clamp(0.0, 1.0)) {
            scenario.agent.executor_reregistration_retry_interval_s =
                Some(rng.gen_range(low..=high));
        }
    }
    scenario
}

/// The command of a generated task, made large (workload knob `large_task_fraction`):
/// padded with a word the simulated task runner ignores, up to a size drawn between a
/// quarter of the frame maximum and 64 KiB under it.
pub fn large_command(scenario: &Scenario, seed: u64, index: u32, command: String) -> String {
    let Some(swarm) = &scenario.swarm else {
        return command;
    };
    if swarm.large_task_fraction <= 0.0 {
        return command;
    }
    let mut rng = StdRng::seed_from_u64(derive_seed(seed, &format!("swarm-large-{index}")));
    if !rng.gen_bool(swarm.large_task_fraction) {
        return command;
    }
    let max = revenant::wire::FRAME_BYTES_MAX;
    let size = rng.gen_range(max / 4..max - 64 * 1024);
    let mut padded = command;
    padded.push_str("; ");
    padded.push_str(&"x".repeat(size));
    padded
}

/// Operator damage: deletes (durably) the latest run directory of one executor whose
/// run completed (`executor.sentinel`: its updates were all acknowledged), leaving
/// `runs/latest` dangling, as a collection cut short or an operator's clean-up does;
/// says which, or `None` when there is none. With `live`, the run of an executor still
/// running instead (docs/simulator-reach.md 15o): only fixed scenarios ask for that, at a
/// moment when every update of the run was acknowledged, since deleting updates the agent
/// still promised to deliver breaks rules nothing can keep.
pub fn delete_run_dir(fs: &SimFs, work_dir: &Path, live: bool, rng: &mut StdRng) -> Option<String> {
    // A completed run has its sentinel; a live executor's run (docs/simulator-reach.md
    // 15o) has none.
    let runs: Vec<(PathBuf, String)> = crate::wake_faults::latest_runs(fs, work_dir)
        .into_iter()
        .filter(|(runs, container)| {
            fs.exists(&runs.join(container).join("executor.sentinel")) != live
        })
        .collect();
    if runs.is_empty() {
        return None;
    }
    let (dir, container) = &runs[rng.gen_range(0..runs.len())];
    fs.remove_dir_all(&dir.join(container)).ok()?;
    fs.sync_dir(dir).ok()?;
    let shown = dir.strip_prefix(work_dir).unwrap_or(dir);
    Some(format!(
        "run directory deleted: {}/{container} (runs/latest dangles)",
        shown.display()
    ))
}

/// Operator damage (docs/simulator-reach.md 15e): deletes (durably) the checkpoint
/// directory of the agent `meta/slaves/latest` names, and leaves the link, as an
/// operator's clean-up that forgot the link does; says which, or `None` when there is
/// no such directory. Recovery must stop on the dangling link, strict or not
/// (docs/recovery-rules.md R40, R46).
pub fn delete_agent_dir(fs: &SimFs, work_dir: &Path) -> Option<String> {
    let slaves = work_dir.join("meta/slaves");
    let id = fs.read_link(&slaves.join("latest")).ok()?;
    let id = id.file_name()?.to_owned();
    let dir = slaves.join(&id);
    if !fs.is_dir(&dir) {
        return None;
    }
    fs.remove_dir_all(&dir).ok()?;
    fs.sync_dir(&slaves).ok()?;
    crate::corrupt::agent_dir_deleted();
    Some(format!(
        "agent checkpoint directory deleted: meta/slaves/{} (meta/slaves/latest dangles)",
        id.to_string_lossy()
    ))
}

/// Operator damage: rewrites (durably) one run's `pids/forked.pid` to the pid of
/// another live process of the machine, keeping the start time and boot id written
/// there (a reused pid); says which, or `None` when there is no such run or process.
///
/// With `executor`, only that executor's latest run is rewritten. With `other_boot`, the file names another live process with the start time that
/// process really has, and a boot id other than the machine's (`<host>-boot-<n±1>`): a
/// `forked.pid` left from another boot whose pid and start time a process of this boot
/// happens to reuse. Only the boot id tells the stranger apart; the agent must not adopt
/// it (docs/task-lifecycle.md L15).
pub fn rewrite_forked_pid(
    fs: &SimFs,
    work_dir: &Path,
    live: &[(u32, u64)],
    other_boot: bool,
    executor: Option<&str>,
    rng: &mut StdRng,
) -> Option<String> {
    let live_pids: Vec<u32> = live.iter().map(|(pid, _)| *pid).collect();
    let mut candidates = Vec::new();
    for (runs, container) in crate::wake_faults::latest_runs(fs, work_dir) {
        // `runs` is `.../executors/<executor>/runs`.
        if executor.is_some_and(|e| runs.parent().and_then(|p| p.file_name()) != Some(e.as_ref())) {
            continue;
        }
        let path = runs.join(&container).join("pids/forked.pid");
        let Ok(text) = fs.read(&path) else {
            continue;
        };
        let text = String::from_utf8_lossy(&text).into_owned();
        let mut words = text.split_whitespace();
        let (Some(pid), Some(start), Some(boot)) = (words.next(), words.next(), words.next())
        else {
            continue;
        };
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        let others: Vec<u32> = live_pids.iter().copied().filter(|p| *p != pid).collect();
        if !others.is_empty() {
            candidates.push((path, pid, start.to_owned(), boot.to_owned(), others));
        }
    }
    if candidates.is_empty() {
        return None;
    }
    let (path, old, start, boot, others) = &candidates[rng.gen_range(0..candidates.len())];
    let new = others[rng.gen_range(0..others.len())];
    let (start, boot) = if other_boot {
        let real_start = live.iter().find(|(pid, _)| *pid == new)?.1;
        (real_start.to_string(), another_boot(boot))
    } else {
        (start.clone(), boot.clone())
    };
    let temporary = path.with_extension("pid.operator");
    fs.write(&temporary, format!("{new} {start} {boot}\n").as_bytes())
        .ok()?;
    fs.sync_file(&temporary).ok()?;
    fs.rename(&temporary, path).ok()?;
    fs.sync_dir(path.parent()?).ok()?;
    let shown = path.strip_prefix(work_dir).unwrap_or(path);
    Some(format!(
        "forked.pid rewritten from pid {old} to live pid {new}{}: {}",
        if other_boot {
            format!(" (its start time {start}, boot {boot})")
        } else {
            String::new()
        },
        shown.display()
    ))
}

/// A boot id other than `boot` (`<host>-boot-<n>`): the boot before it, or the one after
/// the first.
fn another_boot(boot: &str) -> String {
    match boot.rsplit_once('-') {
        Some((host, n)) => match n.parse::<u64>() {
            Ok(n) if n > 1 => format!("{host}-{}", n - 1),
            Ok(n) => format!("{host}-{}", n + 1),
            Err(_) => format!("{boot}-other"),
        },
        None => format!("{boot}-other"),
    }
}

/// Arms a torn append on the agent machine's disk: the next append under `work_dir`
/// writes a prefix, then fails with `error`.
pub fn arm_torn_append(
    fs: &SimFs,
    work_dir: &Path,
    error: Option<&str>,
    at_most: Option<u64>,
) -> String {
    let (fault_error, name) = match error {
        Some("enospc") => (crate::fs::FaultError::NoSpace, "enospc"),
        _ => (crate::fs::FaultError::Io, "eio"),
    };
    let fault = crate::fs::Fault::new(fault_error)
        .on(crate::fs::Op::Append)
        .under(work_dir)
        .times(1);
    // docs/simulator-reach.md rule 13k: `ops = N` keeps at most N bytes.
    let (fault, kept) = match at_most {
        Some(bytes) => (
            fault.torn_at_most(bytes as usize),
            format!(" (at most {bytes} bytes kept)"),
        ),
        None => (fault.torn(), String::new()),
    };
    fs.inject(fault);
    format!("the next append under the agent's work directory tears{kept}, then fails with {name}")
}

/// The length of a record's header in a checkpoint log (length, length check,
/// payload check: 4 bytes each; docs/checkpoint-format.md).
const RECORD_HEADER_BYTES: u64 = 12;

/// docs/simulator-reach.md rule 13k: with a swarm's `torn_header_fraction = f`, each
/// drawn `torn_append` keeps, with odds `f`, at most 1 to 11 bytes, so that the tear
/// lands inside the record's header. From a stream of its own (rule 8).
pub fn tear_headers(scenario: &Scenario, seed: u64, drawn: &mut [FaultSpec]) {
    let share = |swarm: &Swarm| swarm.torn_header_fraction;
    let stream = (seed, "torn-header");
    for (fault, mut rng) in picked(scenario, stream, drawn, FaultKind::TornAppend, share) {
        fault.ops = Some(rng.gen_range(1..RECORD_HEADER_BYTES));
    }
}

/// docs/crash-points.md CP-7: with a swarm's `zero_fill_fraction = f`, each drawn
/// reboot may, with odds `f`, leave un-synced appended bytes as zeroes; the zeroes are
/// drawn at the power loss from a stream seeded with the number drawn here (`zero_fill`
/// on the fault). From a stream of its own (docs/simulator-reach.md rule 8).
pub fn zero_fill_reboots(scenario: &Scenario, seed: u64, drawn: &mut [FaultSpec]) {
    let share = |swarm: &Swarm| swarm.zero_fill_fraction;
    let stream = (seed, "zero-fill");
    for (fault, mut rng) in picked(scenario, stream, drawn, FaultKind::Reboot, share) {
        fault.zero_fill = Some(rng.gen());
    }
}

/// A power loss of `fs` with the run's `rng` choosing what is kept, as
/// [`crate::fs::SimFs::power_loss`], and the zeroes of CP-7 drawn from `stream`.
pub fn zero_filled_power_loss(
    fs: &crate::fs::SimFs,
    rng: &mut impl rand::RngCore,
    stream: u64,
) -> crate::fs::PowerLoss {
    let mut zeroes = StdRng::seed_from_u64(stream);
    let loss = fs.power_loss_zero_filled(rng, &mut zeroes);
    if loss.files_zeroed > 0 {
        revenant::coverage::hit("sim_power_loss_zero_filled");
    }
    loss
}

/// The faults of `kind` in a drawn schedule that the swarm's share (`share` reads it
/// from `[swarm]`; none without a swarm or at 0) picks: each with odds `share`, from a
/// stream of its own, `<stream>-<n>` for the n-th drawn fault of that kind, so that
/// nothing else the swarm draws moves (docs/simulator-reach.md rule 8). Each comes with
/// its stream, to draw its details from.
pub fn picked<'a>(
    scenario: &Scenario,
    (seed, stream): (u64, &str),
    drawn: &'a mut [FaultSpec],
    kind: FaultKind,
    share: fn(&Swarm) -> f64,
) -> Vec<(&'a mut FaultSpec, StdRng)> {
    let Some(fraction) = scenario.swarm.as_ref().map(share).filter(|f| *f > 0.0) else {
        return Vec::new();
    };
    let mut picked = Vec::new();
    for (index, fault) in drawn.iter_mut().filter(|f| f.kind == kind).enumerate() {
        let mut rng = StdRng::seed_from_u64(derive_seed(seed, &format!("{stream}-{index}")));
        if rng.gen_bool(fraction.clamp(0.0, 1.0)) {
            picked.push((fault, rng));
        }
    }
    picked
}

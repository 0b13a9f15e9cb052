//! Rule (docs/lifecycle-rules.md rule 11, "nothing leaked"): every directory of a
//! completed run, executor or framework, and every directory of an old agent, in meta and
//! among the sandboxes, is gone from the disk once `gc_delay` has passed since it
//! completed, give or take the time the agent was down since (it cannot collect then),
//! the wall clock's jumps (directories are aged by it) and a tick. Judged from the
//! simulated disk at the end of the run: what exists, and the modification times of the
//! records that say when each thing completed (a run's `executor.sentinel`, the new
//! agent's `slave.info`).
//!
//! When the disk was made to fail operations, the bound runs from the last operation it
//! failed plus a disk-watch interval (docs/recovery-rules.md R25): a removal that
//! failed is tried again then, never taken for done.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::Violation;
use crate::fs::Entry;
use crate::observations::Observations;
use crate::scenario::Scenario;

/// Time the agent may take beyond a due time (its timer tick and the removal itself).
const TICK_SLACK: Duration = Duration::from_secs(3);

type Disk = BTreeMap<PathBuf, (Entry, SystemTime)>;

fn children<'a>(disk: &'a Disk, dir: &'a Path) -> impl Iterator<Item = &'a PathBuf> + 'a {
    disk.keys().filter(move |p| p.parent() == Some(dir))
}

fn is_dir(disk: &Disk, path: &Path) -> bool {
    matches!(disk.get(path), Some((Entry::Dir, _)))
}

fn child_dirs(disk: &Disk, dir: &Path) -> Vec<PathBuf> {
    children(disk, dir)
        .filter(|p| is_dir(disk, p))
        .cloned()
        .collect()
}

/// The latest modification in a directory's subtree (when it last changed).
fn subtree_mtime(disk: &Disk, dir: &Path) -> SystemTime {
    disk.range(dir.to_path_buf()..)
        .take_while(|(p, _)| p.starts_with(dir))
        .map(|(_, (_, at))| *at)
        .max()
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

/// The wall-clock jumps of the run, in total (either way).
fn clock_jumps(observations: &Observations) -> Duration {
    let mut total = 0u64;
    for (_, text) in &observations.faults {
        if let Some(rest) = text.strip_prefix("wall clock jumps ") {
            if let Ok(ms) = rest.trim_end_matches("ms").parse::<i64>() {
                total += ms.unsigned_abs();
            }
        }
    }
    Duration::from_millis(total)
}

/// How long agent 1 was down between `from` and `end` (simulated time).
fn downtime_since(observations: &Observations, from: Duration, end: Duration) -> Duration {
    let mut down = Duration::ZERO;
    for (exit, index, _) in &observations.agent_exits {
        if *index == 1 {
            let back = first_of_agent_one(&observations.agent_starts, *exit, end);
            down += overlap(*exit, back, from, end);
        }
    }
    // An agent armed to die at a filesystem operation may have died any time from then
    // until its incarnation is seen to end: count all of it.
    for (at, text) in &observations.faults {
        if text.starts_with("agent dies at its filesystem operation") {
            let ended = first_of_agent_one(&observations.agent_exits, *at, end);
            down += overlap(*at, ended, from, end);
        }
    }
    down
}

/// The time of agent 1's first event (a start, an exit) at or after `at`; `end` if none.
fn first_of_agent_one<T>(events: &[(Duration, u32, T)], at: Duration, end: Duration) -> Duration {
    events
        .iter()
        .filter(|(t, i, _)| *i == 1 && *t >= at)
        .map(|(t, _, _)| *t)
        .min()
        .unwrap_or(end)
}

/// How much of `[start, stop)` lies within `[from, end)`.
fn overlap(start: Duration, stop: Duration, from: Duration, end: Duration) -> Duration {
    stop.min(end).saturating_sub(start.max(from))
}

/// Checks the rule.
pub fn check(scenario: &Scenario, observations: &Observations) -> Vec<Violation> {
    if !observations.agent_running_at_end
        || scenario
            .expect
            .as_ref()
            .is_some_and(|e| e.agent_exits == Some(true))
    {
        return Vec::new();
    }
    let Some(wall_end) = observations.wall_at_end else {
        return Vec::new();
    };
    // A disk made to fail operations fails removals too, for as long as it fails; a
    // failed removal is tried again a disk-watch interval later (docs/recovery-rules.md
    // R25). So collection is bounded from the last operation the disk failed (as the
    // simulated disk recorded it, `crate::fault_log`), plus that interval.
    let disk_failed_until = observations
        .fault_kinds
        .contains(&crate::scenario::FaultKind::DiskError)
        .then(|| {
            crate::fault_log::so_far()
                .iter()
                .map(|f| f.time)
                .max()
                .unwrap_or_default()
        });
    // The simulator keeps the agent's default `--disk_watch_interval`.
    let disk_watch = Duration::from_secs(60);
    let disk = &observations.disk_at_end;
    let work_dir = crate::observations::agent_work_dir(1);
    let meta_agents = work_dir.join("meta").join("slaves");
    let sandbox_agents = work_dir.join("slaves");
    let gc_delay = Duration::from_secs_f64(scenario.agent.gc_delay_s);
    let end = Duration::from_secs_f64(scenario.duration_s);
    let jumps = clock_jumps(observations);
    let mut out = Vec::new();
    // A directory that completed at `completed` (wall time) must be gone by now.
    let mut judge = |path: &Path, what: &str, completed: SystemTime| {
        if !disk.contains_key(path) {
            return;
        }
        let age = wall_end.duration_since(completed).unwrap_or_default();
        let since = end.saturating_sub(age + jumps);
        let disk_failing = disk_failed_until
            .map(|until| until.saturating_sub(since) + disk_watch)
            .unwrap_or_default();
        let allowed =
            gc_delay + downtime_since(observations, since, end) + jumps + disk_failing + TICK_SLACK;
        if age > allowed {
            out.push(Violation {
                time: end,
                oracle: "leaked",
                message: format!(
                    "{what} {} is still on disk {:.1}s after it completed (gc_delay {:.0}s, allowed {:.1}s)",
                    path.strip_prefix(&work_dir).unwrap_or(path).display(),
                    age.as_secs_f64(),
                    gc_delay.as_secs_f64(),
                    allowed.as_secs_f64()
                ),
            });
        }
    };
    let sandbox_of = |meta: &Path| -> Option<PathBuf> {
        meta.strip_prefix(&meta_agents)
            .ok()
            .map(|rest| sandbox_agents.join(rest))
    };
    let current = match disk.get(&meta_agents.join("latest")) {
        Some((Entry::Symlink(target), _)) => target.file_name().map(|n| n.to_owned()),
        _ => None,
    };
    for agent in child_dirs(disk, &meta_agents) {
        let is_current = current.as_deref() == agent.file_name();
        if !is_current {
            // An old agent: collected after gc_delay from the new agent's registration.
            if let Some(current) = &current {
                let info = meta_agents.join(current).join("slave.info");
                if let Some((_, registered)) = disk.get(&info) {
                    judge(&agent, "meta directory of an old agent", *registered);
                }
            }
            continue;
        }
        for framework in child_dirs(disk, &agent.join("frameworks")) {
            let mut framework_done: Option<SystemTime> = None;
            let mut all_done = true;
            let executors = child_dirs(disk, &framework.join("executors"));
            for executor in &executors {
                let mut executor_done: Option<SystemTime> = None;
                let runs = child_dirs(disk, &executor.join("runs"));
                let mut runs_done = !runs.is_empty();
                for run in &runs {
                    match disk.get(&run.join("executor.sentinel")) {
                        Some((_, at)) => {
                            judge(run, "meta directory of a completed run", *at);
                            if let Some(sandbox) = sandbox_of(run) {
                                judge(&sandbox, "sandbox of a completed run", *at);
                            }
                            executor_done = Some(executor_done.map_or(*at, |d| d.max(*at)));
                        }
                        None => runs_done = false,
                    }
                }
                match (runs_done, executor_done) {
                    (true, Some(at)) => {
                        judge(executor, "meta directory of a completed executor", at);
                        if let Some(sandbox) = sandbox_of(executor) {
                            judge(&sandbox, "sandbox of a completed executor", at);
                        }
                        framework_done = Some(framework_done.map_or(at, |d| d.max(at)));
                    }
                    _ => all_done = false,
                }
            }
            // A framework with no executor left completed when it last changed.
            let framework_done = match executors.is_empty() {
                true => Some(subtree_mtime(disk, &framework)),
                false => framework_done,
            };
            if let (true, Some(at)) = (all_done, framework_done) {
                judge(&framework, "meta directory of a completed framework", at);
                if let Some(sandbox) = sandbox_of(&framework) {
                    judge(&sandbox, "sandbox of a completed framework", at);
                }
            }
        }
    }
    // Sandboxes: of old agents, and runs of the current agent that nothing in meta
    // records any more (their meta was collected first). A sandbox ages from its own
    // modification time (touched when its run completed).
    if let Some(current) = &current {
        let registered = disk
            .get(&meta_agents.join(current).join("slave.info"))
            .map(|(_, at)| *at);
        for agent in child_dirs(disk, &sandbox_agents) {
            if agent.file_name() == Some(current.as_os_str()) {
                // Non-checkpointing frameworks have no meta; an operator who wiped a
                // framework's meta left its sandboxes unrecorded on purpose.
                if !scenario.checkpoint
                    || observations
                        .fault_kinds
                        .contains(&crate::scenario::FaultKind::WipeFrameworkMeta)
                {
                    continue;
                }
                let alive = |dir: &Path| {
                    observations.live_executors_at_end.iter().any(|e| {
                        disk.keys().any(|p| {
                            p.starts_with(dir)
                                && p.file_name().is_some_and(|n| n == e.as_str())
                                && p.parent()
                                    .and_then(Path::file_name)
                                    .is_some_and(|n| n == "executors")
                        }) || dir.file_name().is_some_and(|n| n == e.as_str())
                    })
                };
                let mut orphan = |dir: &Path| {
                    let meta = meta_agents.join(dir.strip_prefix(&sandbox_agents).unwrap_or(dir));
                    if !disk.contains_key(&meta) && !alive(dir) {
                        judge(
                            dir,
                            "sandbox that no meta directory records",
                            subtree_mtime(disk, dir),
                        );
                        return true;
                    }
                    false
                };
                for framework in child_dirs(disk, &agent.join("frameworks")) {
                    if orphan(&framework) {
                        continue;
                    }
                    for executor in child_dirs(disk, &framework.join("executors")) {
                        if orphan(&executor) {
                            continue;
                        }
                        for run in child_dirs(disk, &executor.join("runs")) {
                            orphan(&run);
                        }
                    }
                }
            } else if let Some(registered) = registered {
                judge(&agent, "sandbox of an old agent", registered);
            }
        }
    }
    out
}

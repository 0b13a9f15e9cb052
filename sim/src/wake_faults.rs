//! Faults that break an executor's wake (docs/recovery-rules.md R31–R35): operator damage
//! to a run's `pids/libprocess.pid` while the agent is down. What they may cost is time
//! only: the executor's own back-off still brings it back (R35), and a wake that names
//! another run is refused by the executor (R33). The fourth way, the wake message lost,
//! is a `drop` of `wake_executor` (the swarm draws it beside these, see
//! `crate::faults::swarm_extras`).

use std::path::{Path, PathBuf};

use rand::rngs::StdRng;
use rand::Rng;
use revenant::os::FileSystem;

use crate::fs::SimFs;

/// The ways a swarm breaks a wake (`how` of a `break_wake` fault); `lost` is a drop.
pub const HOWS: &[&str] = &["missing", "stale", "torn", "lost"];

/// Damages (durably) one run's `pids/libprocess.pid` under `work_dir`: `missing`
/// removes it, `torn` keeps only a prefix of its text, `stale` writes another run's
/// endpoint (or, with a single run, an address where nothing listens). With
/// `executor`, only that executor's latest run. Says what it did, or `None` when there
/// is no such file.
pub fn break_wake(
    fs: &SimFs,
    work_dir: &Path,
    how: &str,
    executor: Option<&str>,
    rng: &mut StdRng,
) -> Option<String> {
    // Every run's file, and which of them may be damaged.
    let mut files = Vec::new();
    let mut targets = Vec::new();
    for (runs, container) in latest_runs(fs, work_dir) {
        let path = runs.join(&container).join("pids/libprocess.pid");
        let Ok(text) = fs.read(&path) else {
            continue;
        };
        if executor.is_none_or(|e| runs.parent().and_then(|p| p.file_name()) == Some(e.as_ref())) {
            targets.push(files.len());
        }
        files.push((path, String::from_utf8_lossy(&text).into_owned()));
    }
    if targets.is_empty() {
        return None;
    }
    let index = targets[rng.gen_range(0..targets.len())];
    let (path, text) = files[index].clone();
    let shown = path
        .strip_prefix(work_dir)
        .unwrap_or(&path)
        .display()
        .to_string();
    let new = match how {
        "missing" => {
            fs.remove_file(&path).ok()?;
            fs.sync_dir(path.parent()?).ok()?;
            return Some(format!("libprocess.pid removed: {shown}"));
        }
        "torn" => {
            let text = text.trim_end();
            let keep = rng.gen_range(1..text.len().max(2));
            text.chars().take(keep).collect::<String>()
        }
        "stale" => {
            let others: Vec<&(std::path::PathBuf, String)> = files
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != index)
                .map(|(_, f)| f)
                .collect();
            match others.get(rng.gen_range(0..others.len().max(1))) {
                Some((_, other)) => other.trim_end().to_owned(),
                None => {
                    let executor = text.split('@').next().unwrap_or("executor()");
                    format!("{executor}@{}:1", crate::hosts::AGENT_HOST)
                }
            }
        }
        _ => return None,
    };
    let temporary = path.with_extension("pid.operator");
    fs.write(&temporary, format!("{new}\n").as_bytes()).ok()?;
    fs.sync_file(&temporary).ok()?;
    fs.rename(&temporary, &path).ok()?;
    fs.sync_dir(path.parent()?).ok()?;
    Some(format!(
        "libprocess.pid made {how} ({:?} -> {new:?}): {shown}",
        text.trim_end()
    ))
}

/// The run directories of every executor of the agent with work directory `work_dir`:
/// (the `runs` directory, the container the `latest` link names).
pub(crate) fn latest_runs(fs: &SimFs, work_dir: &Path) -> Vec<(PathBuf, String)> {
    let slaves = work_dir.join("meta/slaves");
    let mut out = Vec::new();
    for agent in fs.list_dir(&slaves).unwrap_or_default() {
        if agent == "latest" {
            continue;
        }
        let frameworks = slaves.join(&agent).join("frameworks");
        for framework in fs.list_dir(&frameworks).unwrap_or_default() {
            let executors = frameworks.join(&framework).join("executors");
            for executor in fs.list_dir(&executors).unwrap_or_default() {
                let runs = executors.join(&executor).join("runs");
                if let Ok(target) = fs.read_link(&runs.join("latest")) {
                    let container = target
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    if !container.is_empty() && fs.is_dir(&runs.join(&container)) {
                        out.push((runs, container));
                    }
                }
            }
        }
    }
    out
}

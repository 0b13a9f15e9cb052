//! Which directories garbage collection takes, when, and in which order
//! (docs/lifecycle-rules.md rules 3, 4 and 6), and the sandbox an executor runs in.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::time::Instant;
use tracing::{info, warn};

use super::{gc_schedule, Agent};
use crate::checkpoint::paths::{self, RunPath};
use crate::ids::{AgentId, ContainerId, ExecutorId, FrameworkId};

/// The sandbox directories of a run, its executor and its framework, innermost first.
fn sandbox_dirs(work_dir: &Path, run: &RunPath<'_>) -> [PathBuf; 3] {
    let run_sandbox = paths::sandbox(work_dir, run);
    // .../executors/<executor>/runs/<container>
    let executor_sandbox = run_sandbox
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_default();
    // .../frameworks/<framework>/executors/<executor>
    let framework_sandbox = executor_sandbox
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_default();
    [run_sandbox, executor_sandbox, framework_sandbox]
}

/// The run `container` of executor `eid` of framework `fid` of `agent`.
fn run_of<'a>(
    agent: &'a AgentId,
    fid: &'a FrameworkId,
    eid: &'a ExecutorId,
    container: &'a ContainerId,
) -> RunPath<'a> {
    RunPath {
        agent,
        framework: fid,
        executor: eid,
        container,
    }
}

impl Agent {
    /// Rule 3: a completed run has its run directories (meta and sandbox) and its
    /// executor's directories scheduled for collection after `gc_delay`; when it was the
    /// framework's last executor, the framework's directories too.
    pub(super) fn schedule_completed_run(
        &mut self,
        fid: &FrameworkId,
        eid: &ExecutorId,
        container: &ContainerId,
        checkpoint: bool,
        framework_done: bool,
    ) {
        let agent = self.agent_id();
        let run = run_of(&agent, fid, eid, container);
        let [run_sandbox, executor_sandbox, framework_sandbox] =
            sandbox_dirs(&self.config.work_dir, &run);
        let delay = self.config.gc_delay;
        if broken!(self.config.breakage.leak_completed_directories) {
            let shut_down = self.frameworks.get(fid).is_some_and(|f| f.shutting_down);
            let mut dirs = vec![run_sandbox, self.paths.executor(&agent, fid, eid)];
            if framework_done && shut_down {
                dirs.push(framework_sandbox);
                dirs.push(self.paths.framework(&agent, fid));
            }
            for dir in dirs {
                self.schedule_gc(dir, delay);
            }
            return;
        }
        let mut dirs = vec![run_sandbox, executor_sandbox];
        if checkpoint {
            dirs.push(self.paths.run(&run));
            dirs.push(self.paths.executor(&agent, fid, eid));
        }
        if framework_done {
            dirs.push(framework_sandbox);
            if checkpoint {
                dirs.push(self.paths.framework(&agent, fid));
            }
        }
        for dir in dirs {
            // Its age starts now, also for a later incarnation (rule 5).
            let _ = self.env.fs.touch(&dir);
            self.schedule_gc(dir, delay);
        }
    }

    /// Rule 5: `gc_delay` less the directory's age (the time since it was last
    /// modified, by the wall clock), or `None` when it is not there to collect.
    fn aged_delay(&self, dir: &Path) -> Option<Duration> {
        let modified = self.env.fs.modified(dir).ok()?;
        if broken!(self.config.breakage.leak_completed_directories) {
            return Some(self.config.gc_delay);
        }
        let age = self
            .env
            .clock
            .wall()
            .duration_since(modified)
            .unwrap_or_default();
        Some(gc_schedule::aged(self.config.gc_delay, age))
    }

    /// Schedules a directory found on disk by a later incarnation (rule 5).
    fn schedule_aged(&mut self, dir: PathBuf) {
        if let Some(delay) = self.aged_delay(&dir) {
            self.schedule_gc(dir, delay);
        }
    }

    /// Rule 5: a run found completed by recovery has its run and executor directories
    /// (meta and sandbox) scheduled again, with what is left of their `gc_delay`.
    pub(super) fn reschedule_completed_run(
        &mut self,
        agent: &AgentId,
        fid: &FrameworkId,
        eid: &ExecutorId,
        container: &ContainerId,
    ) {
        let run = run_of(agent, fid, eid, container);
        let [run_sandbox, executor_sandbox, _] = sandbox_dirs(&self.config.work_dir, &run);
        // Scheduled in this order (sandboxes, then meta) with rule 24's delays.
        let run_meta = self.paths.run(&run);
        let executor_meta = self.paths.executor(agent, fid, eid);
        let run_delay = self.aged_delay(&run_sandbox);
        let executor_delay = self.aged_delay(&executor_sandbox);
        let dirs = [
            (run_sandbox, run_delay, None),
            (executor_sandbox, executor_delay, None),
            (run_meta, None, run_delay),
            (executor_meta, None, executor_delay),
        ];
        for (dir, sandbox_delay, recorded_delay) in dirs {
            // A sandbox not found is looked for once more here (the filesystem sees
            // the same operations as before the decisions moved: docs/design.md D48).
            let delay = match sandbox_delay {
                Some(delay) => Some(delay),
                None => gc_schedule::meta_after_sandbox(recorded_delay, self.aged_delay(&dir)).1,
            };
            if let Some(delay) = delay {
                self.schedule_gc(dir, delay);
            }
        }
    }

    /// Rules 5 and 9: a run that is not its executor's latest is complete (only the
    /// latest run can be live); its directories (meta and sandbox) are scheduled again
    /// with what is left of their `gc_delay`. Its executor's are not: the latest run
    /// lives there, or schedules them itself.
    pub(super) fn reschedule_old_run(
        &mut self,
        agent: &AgentId,
        fid: &FrameworkId,
        eid: &ExecutorId,
        container: &ContainerId,
    ) {
        let run = run_of(agent, fid, eid, container);
        if broken!(self.config.breakage.collect_old_runs_at_once) {
            // Test-only: the old behaviour (meta only, at once).
            self.schedule_gc(self.paths.run(&run), Duration::ZERO);
            return;
        }
        crate::coverage::point!("agent_old_run_rescheduled");
        let [run_sandbox, _, _] = sandbox_dirs(&self.config.work_dir, &run);
        self.schedule_meta_after_sandbox(run_sandbox, self.paths.run(&run));
    }

    /// Rules 3 and 5: a framework whose every executor recovery found completed is
    /// complete: its directories (meta and sandbox) are scheduled again, aged.
    pub(super) fn reschedule_completed_framework(&mut self, agent: &AgentId, fid: &FrameworkId) {
        if broken!(self.config.breakage.leak_completed_directories) {
            return;
        }
        let sandbox = self
            .config
            .work_dir
            .join(paths::AGENTS_DIR)
            .join(agent.as_str())
            .join(paths::FRAMEWORKS_DIR)
            .join(fid.as_str());
        let meta = self.paths.framework(agent, fid);
        self.schedule_meta_after_sandbox(sandbox, meta);
    }

    /// docs/lifecycle-rules.md rule 24: the meta record is scheduled no earlier than
    /// the sandbox it records (each aged by rule 5).
    fn schedule_meta_after_sandbox(&mut self, sandbox: PathBuf, meta: PathBuf) {
        let (sandbox_delay, meta_delay) =
            gc_schedule::meta_after_sandbox(self.aged_delay(&sandbox), self.aged_delay(&meta));
        if let Some(delay) = sandbox_delay {
            self.schedule_gc(sandbox, delay);
        }
        if let Some(delay) = meta_delay {
            self.schedule_gc(meta, delay);
        }
    }

    /// Rule 7: once registered as a new agent, every directory of another agent id, in
    /// meta and among the sandboxes, is scheduled for collection, aged.
    pub(super) fn schedule_old_agents(&mut self, current: &AgentId) {
        if broken!(self.config.breakage.leak_completed_directories) {
            return;
        }
        self.old_agents_unlisted = None;
        let roots = [
            self.config.work_dir.join(paths::AGENTS_DIR),
            self.paths.agents_dir(),
        ];
        for root in roots {
            let mut names = match self.env.fs.list_dir(&root) {
                Ok(names) => names,
                Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
                Err(error) => {
                    // docs/recovery-rules.md R26: tried again at the next disk check.
                    warn!(target: "revenant::agent", path = %root.display(), %error, "failed to list old agents: trying again at the next disk check");
                    self.old_agents_unlisted = Some(current.clone());
                    continue;
                }
            };
            names.sort();
            for name in names {
                if name == current.as_str() || name == paths::LATEST_SYMLINK {
                    continue;
                }
                let dir = root.join(&name);
                if self.env.fs.is_dir(&dir) {
                    info!(target: "revenant::agent", agent = %name, path = %dir.strip_prefix(&self.config.work_dir).unwrap_or(&dir).display(), "directory of an old agent scheduled for collection");
                    self.schedule_aged(dir);
                }
            }
        }
    }

    /// docs/recovery-rules.md R26: at a disk check, the listing of old agents the disk
    /// failed is made again (each root again: scheduling a directory twice keeps one
    /// entry).
    pub(super) fn retry_old_agents(&mut self) {
        if let Some(current) = self.old_agents_unlisted.take() {
            self.schedule_old_agents(&current);
        }
    }

    /// Rule 4: launching a run unschedules every directory it will live in (its
    /// framework's and executor's, meta and sandbox), should an earlier completion have
    /// scheduled them.
    pub(super) fn unschedule_for_launch(
        &mut self,
        fid: &FrameworkId,
        eid: &ExecutorId,
        container: &ContainerId,
    ) {
        if broken!(self.config.breakage.skip_unschedule_on_launch) {
            return;
        }
        let agent = self.agent_id();
        let run = run_of(&agent, fid, eid, container);
        let meta = self.paths.run(&run);
        let sandbox = paths::sandbox(&self.config.work_dir, &run);
        for path in self.gc.unschedule_containing(&meta, &sandbox) {
            crate::coverage::point!("agent_unscheduled_for_launch");
            info!(target: "revenant::agent", path = %path.strip_prefix(&self.config.work_dir).unwrap_or(&path).display(), "unscheduled from garbage collection");
        }
    }

    /// Creates a run's sandbox (and any missing parent) through the filesystem seam.
    /// Not synced: a sandbox lost to a power cut is not a leak.
    pub(super) fn create_sandbox(&self, dir: &Path) -> io::Result<()> {
        match self.env.fs.create_dir(dir) {
            Ok(()) => Ok(()),
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => Ok(()),
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                let Some(parent) = dir
                    .parent()
                    .filter(|p| p.starts_with(&self.config.work_dir))
                else {
                    return Err(error);
                };
                if parent == self.config.work_dir {
                    return Err(error);
                }
                self.create_sandbox(parent)?;
                match self.env.fs.create_dir(dir) {
                    Err(error) if error.kind() == io::ErrorKind::AlreadyExists => Ok(()),
                    other => other,
                }
            }
            Err(error) => Err(error),
        }
    }
}

impl Agent {
    pub(super) fn schedule_gc(&mut self, path: PathBuf, delay: Duration) {
        let at = self.now() + delay;
        info!(target: "revenant::agent", path = %path.strip_prefix(&self.config.work_dir).unwrap_or(&path).display(), delay_s = delay.as_secs(), "scheduled for garbage collection");
        self.gc.schedule(path, at);
    }

    /// A tick's collection: at a disk check the old agents' listing is retried (R26)
    /// and the disk's usage brings collection forward (D53); what is due is removed in
    /// rule 6's order (D52).
    pub(super) fn collect_garbage(&mut self, now: Instant) {
        if self.next_disk_check.is_some_and(|at| now >= at) {
            self.next_disk_check = Some(now + self.config.disk_watch_interval);
            self.retry_old_agents();
            if let Ok(usage) = self.env.fs.disk_usage(&self.config.work_dir) {
                self.gc.prune(now, self.config.gc_delay, usage);
            }
        }
        let meta_first = broken!(self.config.breakage.remove_meta_first);
        let removals = self.gc.take_due(
            now,
            self.paths.root(),
            meta_first,
            self.config.disk_watch_interval,
        );
        self.perform(removals, None);
    }
}

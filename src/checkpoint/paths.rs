//! Every path of the meta directory, built in one place. The layout (docs/checkpoint-format.md §1):
//!
//! ```text
//! <work_dir>/meta
//! |-- boot_id
//! |-- resources/resources.info
//! |-- slaves
//!     |-- latest -> <agent_id>
//!     |-- <agent_id>
//!         |-- slave.info
//!         |-- frameworks/<framework_id>
//!             |-- framework.info
//!             |-- framework.pid
//!             |-- executors/<executor_id>
//!                 |-- executor.info
//!                 |-- runs
//!                     |-- latest -> <container_id>
//!                     |-- <container_id>
//!                         |-- executor.sentinel      (run completed)
//!                         |-- pids/forked.pid
//!                         |-- pids/libprocess.pid    (or http.marker)
//!                         |-- tasks/<task_id>
//!                             |-- task.info
//!                             |-- task.updates
//! ```
//!
//! Sandboxes (the executors' working directories) mirror the agent part of this tree
//! under `<work_dir>/slaves/`.

use std::path::{Path, PathBuf};

use crate::ids::{AgentId, ContainerId, ExecutorId, FrameworkId, TaskId};

/// The name of the `latest` symlinks.
pub const LATEST_SYMLINK: &str = "latest";
/// The boot id file.
pub const BOOT_ID_FILE: &str = "boot_id";
/// The agent info file.
pub const AGENT_INFO_FILE: &str = "slave.info";
/// The framework info file.
pub const FRAMEWORK_INFO_FILE: &str = "framework.info";
/// The framework pid file.
pub const FRAMEWORK_PID_FILE: &str = "framework.pid";
/// The executor info file.
pub const EXECUTOR_INFO_FILE: &str = "executor.info";
/// Present when an executor run completed.
pub const EXECUTOR_SENTINEL_FILE: &str = "executor.sentinel";
/// The forked pid file of a run.
pub const FORKED_PID_FILE: &str = "forked.pid";
/// The libprocess pid file of a run (address-based executors).
pub const LIBPROCESS_PID_FILE: &str = "libprocess.pid";
/// The marker of HTTP executors.
pub const HTTP_MARKER_FILE: &str = "http.marker";
/// The task info file.
pub const TASK_INFO_FILE: &str = "task.info";
/// The task status update log.
pub const TASK_UPDATES_FILE: &str = "task.updates";
/// The checkpointed resources log.
pub const RESOURCES_INFO_FILE: &str = "resources.info";
/// The work-directory lock.
pub const LOCK_FILE: &str = "revenant.lock";
/// The directory of the checkpointed resources.
pub const RESOURCES_DIR: &str = "resources";
/// The directory of the agents (and of the sandboxes).
pub const AGENTS_DIR: &str = "slaves";
/// The directory of an agent's frameworks.
pub const FRAMEWORKS_DIR: &str = "frameworks";
/// The directory of a framework's executors.
pub const EXECUTORS_DIR: &str = "executors";
/// The directory of an executor's runs.
pub const RUNS_DIR: &str = "runs";
/// The directory of a run's pid files.
pub const PIDS_DIR: &str = "pids";
/// The directory of a run's tasks.
pub const TASKS_DIR: &str = "tasks";

/// Builds the paths of one meta directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetaPaths {
    root: PathBuf,
}

impl MetaPaths {
    /// The meta directory of `work_dir` (`<work_dir>/meta`).
    pub fn for_work_dir(work_dir: &Path) -> MetaPaths {
        MetaPaths {
            root: work_dir.join("meta"),
        }
    }

    /// A meta directory given directly.
    pub fn new(meta_dir: impl Into<PathBuf>) -> MetaPaths {
        MetaPaths {
            root: meta_dir.into(),
        }
    }

    /// The meta directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }
    /// `boot_id`.
    pub fn boot_id(&self) -> PathBuf {
        self.root.join(BOOT_ID_FILE)
    }
    /// `resources/`.
    pub fn resources_dir(&self) -> PathBuf {
        self.root.join(RESOURCES_DIR)
    }
    /// `resources/resources.info`.
    pub fn resources_info(&self) -> PathBuf {
        self.resources_dir().join(RESOURCES_INFO_FILE)
    }
    /// `slaves/`.
    pub fn agents_dir(&self) -> PathBuf {
        self.root.join(AGENTS_DIR)
    }
    /// `slaves/latest`.
    pub fn latest_agent(&self) -> PathBuf {
        self.agents_dir().join(LATEST_SYMLINK)
    }
    /// `slaves/<agent>`.
    pub fn agent(&self, agent: &AgentId) -> PathBuf {
        self.agents_dir().join(agent.as_str())
    }
    /// `slaves/<agent>/slave.info`.
    pub fn agent_info(&self, agent: &AgentId) -> PathBuf {
        self.agent(agent).join(AGENT_INFO_FILE)
    }
    /// `slaves/<agent>/frameworks`.
    pub fn frameworks_dir(&self, agent: &AgentId) -> PathBuf {
        self.agent(agent).join(FRAMEWORKS_DIR)
    }
    /// `.../frameworks/<framework>`.
    pub fn framework(&self, agent: &AgentId, framework: &FrameworkId) -> PathBuf {
        self.frameworks_dir(agent).join(framework.as_str())
    }
    /// `.../framework.info`.
    pub fn framework_info(&self, agent: &AgentId, framework: &FrameworkId) -> PathBuf {
        self.framework(agent, framework).join(FRAMEWORK_INFO_FILE)
    }
    /// `.../framework.pid`.
    pub fn framework_pid(&self, agent: &AgentId, framework: &FrameworkId) -> PathBuf {
        self.framework(agent, framework).join(FRAMEWORK_PID_FILE)
    }
    /// `.../executors`.
    pub fn executors_dir(&self, agent: &AgentId, framework: &FrameworkId) -> PathBuf {
        self.framework(agent, framework).join(EXECUTORS_DIR)
    }
    /// `.../executors/<executor>`.
    pub fn executor(
        &self,
        agent: &AgentId,
        framework: &FrameworkId,
        executor: &ExecutorId,
    ) -> PathBuf {
        self.executors_dir(agent, framework).join(executor.as_str())
    }
    /// `.../executor.info`.
    pub fn executor_info(
        &self,
        agent: &AgentId,
        framework: &FrameworkId,
        executor: &ExecutorId,
    ) -> PathBuf {
        self.executor(agent, framework, executor)
            .join(EXECUTOR_INFO_FILE)
    }
    /// `.../runs`.
    pub fn runs_dir(
        &self,
        agent: &AgentId,
        framework: &FrameworkId,
        executor: &ExecutorId,
    ) -> PathBuf {
        self.executor(agent, framework, executor).join(RUNS_DIR)
    }
    /// `.../runs/latest`.
    pub fn latest_run(
        &self,
        agent: &AgentId,
        framework: &FrameworkId,
        executor: &ExecutorId,
    ) -> PathBuf {
        self.runs_dir(agent, framework, executor)
            .join(LATEST_SYMLINK)
    }
    /// `.../runs/<container>`.
    pub fn run(&self, run: &RunPath<'_>) -> PathBuf {
        self.runs_dir(run.agent, run.framework, run.executor)
            .join(run.container.as_str())
    }
    /// `.../runs/<container>/executor.sentinel`.
    pub fn sentinel(&self, run: &RunPath<'_>) -> PathBuf {
        self.run(run).join(EXECUTOR_SENTINEL_FILE)
    }
    /// `.../runs/<container>/pids`.
    pub fn pids_dir(&self, run: &RunPath<'_>) -> PathBuf {
        self.run(run).join(PIDS_DIR)
    }
    /// `.../pids/forked.pid`.
    pub fn forked_pid(&self, run: &RunPath<'_>) -> PathBuf {
        self.pids_dir(run).join(FORKED_PID_FILE)
    }
    /// `.../pids/libprocess.pid`.
    pub fn libprocess_pid(&self, run: &RunPath<'_>) -> PathBuf {
        self.pids_dir(run).join(LIBPROCESS_PID_FILE)
    }
    /// `.../runs/<container>/http.marker`.
    pub fn http_marker(&self, run: &RunPath<'_>) -> PathBuf {
        self.run(run).join(HTTP_MARKER_FILE)
    }
    /// `.../runs/<container>/tasks`.
    pub fn tasks_dir(&self, run: &RunPath<'_>) -> PathBuf {
        self.run(run).join(TASKS_DIR)
    }
    /// `.../tasks/<task>`.
    pub fn task(&self, run: &RunPath<'_>, task: &TaskId) -> PathBuf {
        self.tasks_dir(run).join(task.as_str())
    }
    /// `.../tasks/<task>/task.info`.
    pub fn task_info(&self, run: &RunPath<'_>, task: &TaskId) -> PathBuf {
        self.task(run, task).join(TASK_INFO_FILE)
    }
    /// `.../tasks/<task>/task.updates`.
    pub fn task_updates(&self, run: &RunPath<'_>, task: &TaskId) -> PathBuf {
        self.task(run, task).join(TASK_UPDATES_FILE)
    }
}

/// The ids that name one executor run.
#[derive(Clone, Copy, Debug)]
pub struct RunPath<'a> {
    /// The agent.
    pub agent: &'a AgentId,
    /// The framework.
    pub framework: &'a FrameworkId,
    /// The executor.
    pub executor: &'a ExecutorId,
    /// The run.
    pub container: &'a ContainerId,
}

/// `<dir>/<name>`, built with a single allocation (recovery builds tens of thousands
/// of paths, each as a child of its parent directory rather than from the root): the
/// same path as `dir.join(name)`.
pub fn child(dir: &Path, name: &str) -> PathBuf {
    child_file(dir, name, "")
}

/// `<dir>/<name>/<file>` (`<dir>/<name>` when `file` is empty), built with a single
/// allocation: the same path as `dir.join(name).join(file)`.
pub fn child_file(dir: &Path, name: &str, file: &str) -> PathBuf {
    // Room for the two separators `push` may add.
    let mut path = PathBuf::with_capacity(dir.as_os_str().len() + name.len() + file.len() + 2);
    path.push(dir);
    path.push(name);
    if !file.is_empty() {
        path.push(file);
    }
    path
}

/// The lock file of a work directory.
pub fn lock_file(work_dir: &Path) -> PathBuf {
    work_dir.join(LOCK_FILE)
}

/// The sandbox (working directory) of an executor run:
/// `<work_dir>/slaves/<agent>/frameworks/<framework>/executors/<executor>/runs/<container>`.
pub fn sandbox(work_dir: &Path, run: &RunPath<'_>) -> PathBuf {
    work_dir
        .join(AGENTS_DIR)
        .join(run.agent.as_str())
        .join(FRAMEWORKS_DIR)
        .join(run.framework.as_str())
        .join(EXECUTORS_DIR)
        .join(run.executor.as_str())
        .join(RUNS_DIR)
        .join(run.container.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn children_are_the_joined_paths() {
        for dir in ["/work/meta", "/work/meta/", "meta", ""] {
            let dir = Path::new(dir);
            assert_eq!(child(dir, "task-1"), dir.join("task-1"));
            assert_eq!(
                child_file(dir, "task-1", TASK_INFO_FILE),
                dir.join("task-1").join(TASK_INFO_FILE)
            );
        }
        let meta = MetaPaths::new("/work/meta");
        let (agent, framework) = (AgentId::new("a"), FrameworkId::new("f"));
        let (executor, container) = (ExecutorId::new("e"), ContainerId::new("c"));
        let run = RunPath {
            agent: &agent,
            framework: &framework,
            executor: &executor,
            container: &container,
        };
        let runs = child(&meta.executors_dir(&agent, &framework), "e").join(RUNS_DIR);
        assert_eq!(runs, meta.runs_dir(&agent, &framework, &executor));
        assert_eq!(
            child_file(&child(&runs, "c").join(TASKS_DIR), "t", TASK_UPDATES_FILE),
            meta.task_updates(&run, &TaskId::new("t"))
        );
    }
}

//! OS processes for the real process seam: each executor launched in a session of its
//! own so that it outlives the agent, found again by its tag in `/proc`, signalled with
//! its whole session.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};

use crate::os::{LaunchSpec, ProcessId, Processes, Signal, TaggedProcess};

/// OS processes, each launched in a session of its own so that it outlives the agent.
/// Children are kept so that those that exit while the agent lives are reaped.
#[derive(Default)]
pub struct OsProcesses {
    children: RefCell<BTreeMap<u32, Child>>,
}

/// The start time of `pid` in clock ticks since boot (`/proc/<pid>/stat` field 22).
pub fn process_start_time(pid: u32) -> io::Result<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) is in parentheses and may hold spaces: split after it.
    let after_name = stat
        .rfind(')')
        .map(|index| &stat[index + 1..])
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "malformed stat"))?;
    // After the name come fields 3.. ; the start time is field 22, the 20th of these.
    after_name
        .split_whitespace()
        .nth(19)
        .and_then(|field| field.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "malformed stat"))
}

/// The session id of `pid` (`/proc/<pid>/stat` field 6).
fn process_session(pid: u32) -> Option<u32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    // Fields after the name: state(3) ppid(4) pgrp(5) session(6).
    after_name.split_whitespace().nth(3)?.parse().ok()
}

fn process_state(pid: u32) -> Option<char> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().next()?.chars().next()
}

impl OsProcesses {
    /// Reaps the children of this process that have exited, so that they do not linger
    /// as zombies in a listing.
    fn reap(&self) {
        self.children
            .borrow_mut()
            .retain(|_, child| !matches!(child.try_wait(), Ok(Some(_))));
    }
}

impl Processes for OsProcesses {
    /// glibc's `malloc_trim(0)`: returns the free pages of every arena (not only the top
    /// of the heap) to the kernel. Elsewhere, nothing.
    fn release_free_memory(&self) {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        // SAFETY: malloc_trim has no preconditions.
        unsafe {
            libc::malloc_trim(0);
        }
    }

    fn launch(&self, spec: &LaunchSpec) -> io::Result<ProcessId> {
        fs::create_dir_all(&spec.working_dir)?;
        let mut command = Command::new(&spec.program);
        command
            .args(&spec.arguments)
            .envs(&spec.environment)
            .current_dir(&spec.working_dir)
            .stdin(Stdio::null());
        let stdout = File::create(spec.working_dir.join("stdout"))?;
        let stderr = File::create(spec.working_dir.join("stderr"))?;
        command.stdout(stdout).stderr(stderr);
        // SAFETY: setsid is async-signal-safe; it puts the child in a session of its own
        // so that signals to the agent's process group do not reach it.
        unsafe {
            command.pre_exec(|| {
                if libc::setsid() < 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command.spawn()?;
        let pid = child.id();
        let start_time = process_start_time(pid)?;
        self.children.borrow_mut().insert(pid, child);
        Ok(ProcessId { pid, start_time })
    }

    /// Scans `/proc`: every process whose initial environment (`/proc/<pid>/environ`,
    /// what it was started with) holds `REVENANT_AGENT_TAG=<tag>`, zombies left out.
    /// Processes that end during the scan, or whose environment this user may not read
    /// (another user's: the agent's executors run as the agent's user), are skipped.
    fn tagged(&self, tag: &str) -> io::Result<Vec<TaggedProcess>> {
        self.reap();
        let wanted = format!("{}={tag}", crate::os::AGENT_TAG_VARIABLE);
        let mut found = Vec::new();
        for entry in fs::read_dir("/proc")? {
            let Ok(entry) = entry else { continue };
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|name| name.parse::<u32>().ok())
            else {
                continue;
            };
            let Ok(environ) = fs::read(format!("/proc/{pid}/environ")) else {
                continue;
            };
            let variables: Vec<&[u8]> = environ.split(|b| *b == 0).collect();
            if !variables.contains(&wanted.as_bytes()) {
                continue;
            }
            if matches!(process_state(pid), Some('Z') | Some('X') | None) {
                continue;
            }
            let Ok(start_time) = process_start_time(pid) else {
                continue;
            };
            let value = |name: &str| {
                let prefix = format!("{name}=");
                variables
                    .iter()
                    .find_map(|v| v.strip_prefix(prefix.as_bytes()))
                    .map(|v| String::from_utf8_lossy(v).into_owned())
                    .unwrap_or_default()
            };
            found.push(TaggedProcess {
                process: ProcessId { pid, start_time },
                framework: value(crate::os::FRAMEWORK_VARIABLE),
                executor: value(crate::os::EXECUTOR_VARIABLE),
                container: value(crate::os::CONTAINER_VARIABLE),
            });
        }
        found.sort();
        Ok(found)
    }

    fn is_alive(&self, process: &ProcessId) -> bool {
        if let Some(child) = self.children.borrow_mut().get_mut(&process.pid) {
            if let Ok(Some(_)) = child.try_wait() {
                return false;
            }
        }
        match process_start_time(process.pid) {
            Ok(start_time) if start_time == process.start_time => {
                !matches!(process_state(process.pid), Some('Z') | Some('X') | None)
            }
            _ => false,
        }
    }

    fn signal(&self, process: &ProcessId, signal: Signal) -> io::Result<()> {
        if !self.is_alive(process) {
            return Ok(());
        }
        let number = match signal {
            Signal::Terminate => libc::SIGTERM,
            Signal::Kill => libc::SIGKILL,
        };
        // The process leads its own session; its tasks run in process groups of their
        // own inside that session. Signal every member of the session (found in /proc),
        // then the leader's group, so that no task outlives its executor.
        let session = process.pid;
        if let Ok(entries) = fs::read_dir("/proc") {
            for entry in entries.flatten() {
                let Some(pid) = entry
                    .file_name()
                    .to_str()
                    .and_then(|n| n.parse::<u32>().ok())
                else {
                    continue;
                };
                if pid != session && process_session(pid) == Some(session) {
                    // SAFETY: kill has no memory-safety preconditions.
                    unsafe { libc::kill(pid as i32, number) };
                }
            }
        }
        // SAFETY: as above, for the leader's group.
        let result = unsafe { libc::kill(-(session as i32), number) };
        if result != 0 {
            let error = io::Error::last_os_error();
            if error.raw_os_error() != Some(libc::ESRCH) {
                return Err(error);
            }
            // SAFETY: as above, for the process alone.
            unsafe { libc::kill(session as i32, number) };
        }
        Ok(())
    }
}

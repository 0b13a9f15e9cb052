//! A live cluster for the acceptance tests: the built `revenant` binary run as masters,
//! agents and `submit` processes on loopback, with real work directories in a temporary
//! directory. Every process a test starts (and every executor and task its agents
//! launch) is killed when the [`Cluster`] is dropped, also when the test fails; a
//! failing test prints the logs of every process it started.
#![allow(dead_code, clippy::disallowed_methods, clippy::disallowed_types)]

use std::fs;
use std::io;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use tempfile::TempDir;

pub mod certs;

/// How often waits poll.
pub const POLL: Duration = Duration::from_millis(50);

/// Flags that make an agent quick to register and recover.
pub const FAST_AGENT_FLAGS: &[&str] = &[
    "--registration-backoff-factor",
    "100ms",
    "--executor-reregistration-timeout",
    "2secs",
];

/// A free loopback port (bound and released; the OS does not hand it out again at once).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local address").port()
}

/// A free loopback address.
pub fn free_address() -> String {
    format!("127.0.0.1:{}", free_port())
}

/// Waits until `condition` holds, at most `timeout`; panics naming `what` otherwise.
pub fn wait_until(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for: {what}");
        }
        sleep(POLL);
    }
}

/// Removes ANSI escape sequences (in case the logger colours its output).
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

/// The value of `key=value` in a log line (tracing's field format), unquoted.
pub fn log_field(line: &str, key: &str) -> Option<String> {
    let pattern = format!(" {key}=");
    let start = line.find(&pattern)? + pattern.len();
    let value = line[start..].split_whitespace().next()?;
    Some(value.trim_matches('"').to_owned())
}

/// Whether `line`'s message is exactly `message` (not a longer message ending with it,
/// as "re-registered with master" ends with "registered with master").
pub fn log_message_is(line: &str, message: &str) -> bool {
    match line.find(": ") {
        Some(index) => line[index + 2..].starts_with(message),
        None => false,
    }
}

/// A process identity as the agent checkpoints it: pid and start time (clock ticks).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcessIdentity {
    pub pid: u32,
    pub start_time: u64,
}

/// The start time of `pid` (`/proc/<pid>/stat` field 22) and its state letter.
fn proc_stat(pid: u32) -> Option<(u64, char)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    let start_time = fields.get(19)?.parse().ok()?;
    Some((start_time, state))
}

impl ProcessIdentity {
    /// Whether this very process (not a reuse of its pid) is alive and not a zombie.
    pub fn alive(&self) -> bool {
        match proc_stat(self.pid) {
            Some((start_time, state)) => {
                start_time == self.start_time && !matches!(state, 'Z' | 'X' | 'x')
            }
            None => false,
        }
    }

    /// SIGKILLs the process and everything in its session (an executor leads its own
    /// session; each of its tasks runs in a process group of its own inside it), if it is
    /// still this process. Uses the agent's own process seam, as a reboot would kill all.
    pub fn kill_group(&self) {
        use revenant::os::Processes;
        let process = revenant::os::ProcessId {
            pid: self.pid,
            start_time: self.start_time,
        };
        let _ =
            revenant::os::real::OsProcesses::default().signal(&process, revenant::os::Signal::Kill);
    }
}

/// A `forked.pid` file: `<pid> <start_time> <boot_id>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForkedPid {
    pub path: PathBuf,
    pub process: ProcessIdentity,
    pub boot_id: String,
}

/// Every file named `name` under `dir`, not following symlinks (so `latest` links do
/// not list a file twice).
pub fn find_files(dir: &Path, name: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file() && entry.file_name() == name {
                found.push(entry.path());
            }
        }
    }
    found.sort();
    found
}

/// Every `forked.pid` checkpointed under `work_dir/meta`.
pub fn forked_pids(work_dir: &Path) -> Vec<ForkedPid> {
    find_files(&work_dir.join("meta"), "forked.pid")
        .into_iter()
        .filter_map(|path| {
            let text = fs::read_to_string(&path).ok()?;
            let mut parts = text.split_whitespace();
            let pid = parts.next()?.parse().ok()?;
            let start_time = parts.next()?.parse().ok()?;
            let boot_id = parts.next().unwrap_or_default().to_owned();
            Some(ForkedPid {
                path,
                process: ProcessIdentity { pid, start_time },
                boot_id,
            })
        })
        .collect()
}

/// Live processes whose environment says they belong to the agent at `agent_address`
/// (executors, and the tasks they run, which inherit the executor's environment).
pub fn processes_of_agent(agent_address: &str) -> Vec<ProcessIdentity> {
    let wanted = format!("REVENANT_AGENT_ADDRESS={agent_address}");
    let mut found = Vec::new();
    let Ok(entries) = fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
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
        if !environ
            .split(|byte| *byte == 0)
            .any(|variable| variable == wanted.as_bytes())
        {
            continue;
        }
        if let Some((start_time, state)) = proc_stat(pid) {
            if !matches!(state, 'Z' | 'X' | 'x') {
                found.push(ProcessIdentity { pid, start_time });
            }
        }
    }
    found
}

/// Reads a file that may not exist yet (as empty).
pub fn read_or_empty(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_default()
}

/// A process started by a test.
pub struct Proc {
    pub name: String,
    child: Child,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
    exit: Option<ExitStatus>,
}

/// A handle on a process of a [`Cluster`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcId(usize);

/// One test's processes and directories.
pub struct Cluster {
    dir: TempDir,
    procs: Vec<Proc>,
    agent_addresses: Vec<String>,
    work_dirs: Vec<PathBuf>,
}

impl Default for Cluster {
    fn default() -> Self {
        Cluster::new()
    }
}

impl Cluster {
    pub fn new() -> Cluster {
        let dir = tempfile::Builder::new()
            .prefix("revenant-live-")
            .tempdir()
            .expect("temporary directory");
        fs::create_dir(dir.path().join("logs")).expect("logs directory");
        Cluster {
            dir,
            procs: Vec::new(),
            agent_addresses: Vec::new(),
            work_dirs: Vec::new(),
        }
    }

    /// The test's temporary directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A work directory (not created: the agent creates it).
    pub fn work_dir(&mut self, name: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        if !self.work_dirs.contains(&path) {
            self.work_dirs.push(path.clone());
        }
        path
    }

    /// Starts `revenant <args>`, its stdout and stderr going to files named after it.
    pub fn spawn(&mut self, name: &str, args: &[String]) -> ProcId {
        let index = self.procs.len();
        let stdout = self
            .dir
            .path()
            .join("logs")
            .join(format!("{index:02}-{name}.stdout"));
        let stderr = self
            .dir
            .path()
            .join("logs")
            .join(format!("{index:02}-{name}.stderr"));
        let child = Command::new(env!("CARGO_BIN_EXE_revenant"))
            .args(args)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .env_remove("REVENANT_AGENT_ADDRESS")
            .stdin(Stdio::null())
            .stdout(fs::File::create(&stdout).expect("stdout file"))
            .stderr(fs::File::create(&stderr).expect("stderr file"))
            .spawn()
            .unwrap_or_else(|error| panic!("failed to start {name}: {error}"));
        self.procs.push(Proc {
            name: name.to_owned(),
            child,
            stdout,
            stderr,
            exit: None,
        });
        ProcId(index)
    }

    /// Starts a master and waits until it accepts connections; returns its address.
    pub fn master(&mut self, name: &str) -> (ProcId, String) {
        self.master_at(name, &free_address(), &[])
    }

    /// Starts a master at `address` with extra flags and waits until it accepts
    /// connections.
    pub fn master_at(&mut self, name: &str, address: &str, extra: &[&str]) -> (ProcId, String) {
        let mut args = strings(&["master", "--listen", address]);
        args.extend(extra.iter().map(|a| a.to_string()));
        let id = self.spawn(name, &args);
        self.wait_listening(id, address);
        (id, address.to_owned())
    }

    /// Starts an agent; `masters` is the `--master` value.
    pub fn agent(
        &mut self,
        name: &str,
        masters: &str,
        listen: &str,
        work_dir: &Path,
        extra: &[&str],
    ) -> ProcId {
        if !self.agent_addresses.iter().any(|a| a == listen) {
            self.agent_addresses.push(listen.to_owned());
        }
        if !self.work_dirs.iter().any(|w| w == work_dir) {
            self.work_dirs.push(work_dir.to_path_buf());
        }
        let mut args = strings(&["agent", "--master", masters, "--listen", listen]);
        args.push("--work-dir".into());
        args.push(work_dir.display().to_string());
        args.extend(extra.iter().map(|s| s.to_string()));
        self.spawn(name, &args)
    }

    /// Starts `submit` of one command task.
    pub fn submit(&mut self, name: &str, masters: &str, command: &str, task_id: &str) -> ProcId {
        self.spawn(
            name,
            &strings(&[
                "submit",
                "--master",
                masters,
                "--command",
                command,
                "--task-id",
                task_id,
            ]),
        )
    }

    /// `revenant inspect --work-dir DIR --json --ignore-boot-id`, parsed.
    pub fn inspect(&self, work_dir: &Path) -> serde_json::Value {
        let output = Command::new(env!("CARGO_BIN_EXE_revenant"))
            .arg("inspect")
            .arg("--work-dir")
            .arg(work_dir)
            .args(["--json", "--ignore-boot-id"])
            .output()
            .expect("run revenant inspect");
        assert!(
            output.status.success(),
            "inspect failed: {:?}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).expect("inspect prints JSON")
    }

    fn proc(&self, id: ProcId) -> &Proc {
        &self.procs[id.0]
    }

    /// The process's pid.
    pub fn pid(&self, id: ProcId) -> u32 {
        self.proc(id).child.id()
    }

    /// The process's stderr so far (its log), without colours.
    pub fn log(&self, id: ProcId) -> String {
        strip_ansi(&read_or_empty(&self.proc(id).stderr))
    }

    /// The process's stdout so far.
    pub fn stdout(&self, id: ProcId) -> String {
        read_or_empty(&self.proc(id).stdout)
    }

    /// Whether some line of the process's log has the message `message`.
    pub fn log_has(&self, id: ProcId, message: &str) -> bool {
        self.log(id)
            .lines()
            .any(|line| log_message_is(line, message))
    }

    /// The log lines with the message `message`.
    pub fn log_lines(&self, id: ProcId, message: &str) -> Vec<String> {
        self.log(id)
            .lines()
            .filter(|line| log_message_is(line, message))
            .map(str::to_owned)
            .collect()
    }

    /// Waits until the log has a line with the message `message`; returns the line.
    pub fn wait_log(&mut self, id: ProcId, message: &str, timeout: Duration) -> String {
        let name = self.proc(id).name.clone();
        let mut found = None;
        wait_until(&format!("{name} to log {message:?}"), timeout, || {
            found = self.log_lines(id, message).into_iter().next();
            found.is_some() || self.exited(id).is_some()
        });
        match found {
            Some(line) => line,
            None => panic!(
                "{name} exited ({:?}) before logging {message:?}",
                self.exited(id)
            ),
        }
    }

    /// The exit status, if the process has exited.
    pub fn exited(&mut self, id: ProcId) -> Option<ExitStatus> {
        let proc = &mut self.procs[id.0];
        if proc.exit.is_none() {
            if let Ok(Some(status)) = proc.child.try_wait() {
                proc.exit = Some(status);
            }
        }
        proc.exit
    }

    /// Waits for the process to exit by itself.
    pub fn wait_exit(&mut self, id: ProcId, timeout: Duration) -> ExitStatus {
        let name = self.proc(id).name.clone();
        wait_until(&format!("{name} to exit"), timeout, || {
            self.exited(id).is_some()
        });
        self.exited(id).expect("exited")
    }

    /// SIGKILLs the process and reaps it.
    pub fn kill9(&mut self, id: ProcId) {
        let proc = &mut self.procs[id.0];
        if proc.exit.is_none() {
            let _ = proc.child.kill();
            proc.exit = proc.child.wait().ok();
        }
    }

    /// Waits until the address accepts TCP connections (the process listens).
    pub fn wait_listening(&mut self, id: ProcId, address: &str) {
        let name = self.proc(id).name.clone();
        wait_until(
            &format!("{name} to listen on {address}"),
            Duration::from_secs(10),
            || {
                assert!(
                    self.exited(id).is_none(),
                    "{name} exited before listening: {}",
                    self.log(id)
                );
                TcpStream::connect(address).is_ok()
            },
        );
    }

    /// The `task <id> <STATE> ...` lines `submit` printed so far.
    pub fn task_lines(&self, id: ProcId) -> Vec<String> {
        self.stdout(id)
            .lines()
            .filter(|line| line.starts_with("task "))
            .map(str::to_owned)
            .collect()
    }

    /// The states `submit` printed so far, in order.
    pub fn task_states(&self, id: ProcId) -> Vec<String> {
        self.task_lines(id)
            .iter()
            .filter_map(|line| line.split_whitespace().nth(2).map(str::to_owned))
            .collect()
    }

    /// Waits until `submit` printed `state` for its task.
    pub fn wait_state(&mut self, id: ProcId, state: &str, timeout: Duration) {
        let name = self.proc(id).name.clone();
        wait_until(&format!("{name} to print {state}"), timeout, || {
            self.task_states(id).iter().any(|s| s == state)
        });
    }

    /// Waits for the work directory's (single) `forked.pid`.
    pub fn wait_forked_pid(&self, work_dir: &Path, timeout: Duration) -> ForkedPid {
        let mut found = Vec::new();
        wait_until(
            &format!("a forked.pid under {}", work_dir.display()),
            timeout,
            || {
                found = forked_pids(work_dir);
                !found.is_empty()
            },
        );
        assert_eq!(found.len(), 1, "one executor run expected: {found:?}");
        found.remove(0)
    }

    /// Everything the test's processes and executors wrote, for a failure report.
    pub fn dump(&self) -> String {
        let mut out = String::new();
        for proc in &self.procs {
            for (kind, path) in [("stdout", &proc.stdout), ("stderr", &proc.stderr)] {
                let text = strip_ansi(&read_or_empty(path));
                if !text.is_empty() {
                    out.push_str(&format!(
                        "----- {} {kind} (pid {}, exit {:?}) -----\n{}\n",
                        proc.name,
                        proc.child.id(),
                        proc.exit,
                        tail(&text, 80)
                    ));
                }
            }
        }
        for work_dir in &self.work_dirs {
            for path in find_files(&work_dir.join("slaves"), "stderr") {
                let text = strip_ansi(&read_or_empty(&path));
                out.push_str(&format!(
                    "----- executor stderr {} -----\n{}\n",
                    path.display(),
                    tail(&text, 40)
                ));
            }
        }
        out
    }

    /// Kills every process of the test: the processes it started, then the executors
    /// and tasks of its agents (found by their environment and by their `forked.pid`).
    fn kill_all(&mut self) {
        for index in 0..self.procs.len() {
            self.kill9(ProcId(index));
        }
        for work_dir in &self.work_dirs {
            for forked in forked_pids(work_dir) {
                forked.process.kill_group();
            }
        }
        for _ in 0..20 {
            let mut any = false;
            for address in &self.agent_addresses {
                for process in processes_of_agent(address) {
                    any = true;
                    process.kill_group();
                }
            }
            if !any {
                return;
            }
            sleep(POLL);
        }
        eprintln!(
            "warning: processes of agents {:?} survived SIGKILL",
            self.agent_addresses
        );
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.kill_all();
        if std::thread::panicking() {
            eprintln!(
                "===== logs of the failed test ({}) =====\n{}",
                self.dir.path().display(),
                self.dump()
            );
        }
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    let start = all.len().saturating_sub(lines);
    let mut out = String::new();
    if start > 0 {
        out.push_str(&format!("[... {start} earlier lines]\n"));
    }
    out.push_str(&all[start..].join("\n"));
    out
}

/// `&[&str]` to owned arguments.
pub fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// Flips every bit of the byte in the middle of `path`; returns its offset.
pub fn flip_middle_byte(path: &Path) -> io::Result<usize> {
    let mut bytes = fs::read(path)?;
    assert!(
        bytes.len() > 8,
        "{} is too short to corrupt",
        path.display()
    );
    let offset = bytes.len() / 2;
    bytes[offset] ^= 0xff;
    fs::write(path, &bytes)?;
    Ok(offset)
}

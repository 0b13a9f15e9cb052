//! How long a restarted agent takes to be whole again: re-registered with the master and
//! every live executor re-registered with it.
//!
//! Real binaries on loopback: a `revenant master`, a `revenant agent` (default flags, its
//! work directory under `REVENANT_BENCH_DIR`), and a framework in this process (the
//! framework library on a thread of its own) that submits N tasks (`sleep`), each with an
//! executor of its own, so N `revenant executor` processes run. Once every task runs and
//! the agent is registered, each round kills the agent with SIGKILL (`kill -9`), starts it
//! again on the same work directory and polls its `/state` (every 2 ms, from outside)
//! until it answers 200 (recovery complete), says `registered: true` and lists N
//! executors in phase `running`. The time is from the restart's spawn to that answer.
//! Printed per N: median and max over the rounds; beside them the floor, the time to read
//! the checkpoints (the read-only recovery `revenant inspect` does, in this process, on
//! the same work directory, warm page cache as the restarted agent has it), median of 5.
//! Target (issue 15): median <= 250 ms at 50 executors, <= 1 s at 500.
//!
//! `REVENANT_BENCH_BASELINE=PATH` names another `revenant` binary (e.g. a build of an
//! earlier commit): each size then runs first on a cluster made of that binary (master,
//! agent and executors), then on this build's, and prints the ratio of the medians, so
//! that both are measured side by side under the same load.
//!
//! Run with `cargo bench --bench recovery_latency`. Knobs: `REVENANT_BENCH_EXECUTORS`
//! (default `50,500`), `REVENANT_BENCH_RESTARTS` (default 20; at 500 and more executors
//! `REVENANT_BENCH_RESTARTS_LARGE`, default 5), `REVENANT_BENCH_DIR` (default the
//! system temporary directory), `REVENANT_BENCH_KEEP` (set: keep the directory with every
//! process's log). Under `cargo test --benches` (no `--bench` argument) it
//! runs 3 executors and 2 restarts as a smoke test.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use revenant::framework::Workload;
use revenant::os::real::RealFs;
use revenant::proto::{FrameworkInfo, StatusUpdate, TaskInfo, TaskState};

const TARGET_50: Duration = Duration::from_millis(250);
const TARGET_500: Duration = Duration::from_secs(1);

fn free_address() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local address").to_string()
}

struct Proc {
    child: Child,
    log: PathBuf,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(binary: &str, args: &[&str], log: PathBuf) -> Proc {
    let stderr = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .expect("log file");
    let child = Command::new(binary)
        .args(args)
        // docs/recovery-latency.md P46: the agent's phase marks are at debug level.
        .env("RUST_LOG", "info,revenant::recovery_phase=debug")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("start revenant");
    Proc { child, log }
}

/// `GET path` on `address`: the status code and the body.
fn http_get(address: &str, path: &str) -> Option<(u16, String)> {
    let mut stream = std::net::TcpStream::connect(address).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n")?.1.to_owned();
    Some((status, body))
}

/// Whether the agent's `/state` says: recovered, registered, `executors` executors
/// registered each with its task running.
fn whole(listen: &str, executors: usize) -> bool {
    let Some((200, body)) = http_get(listen, "/state") else {
        return false;
    };
    let Ok(state) = serde_json::from_str::<revenant::http::state::AgentState>(&body) else {
        return false;
    };
    let registered = state
        .frameworks
        .iter()
        .flat_map(|f| f.executors.iter())
        .filter(|e| e.phase == "running")
        .filter(|e| e.tasks.iter().any(|t| t.state == "TASK_RUNNING"))
        .count();
    state.registered && registered == executors
}

/// Submits `tasks` long sleeps once, then keeps the framework connected forever.
struct Sleepers {
    tasks: usize,
    submitted: bool,
}

impl Workload for Sleepers {
    fn registered(&mut self, _framework_id: &str) -> Vec<TaskInfo> {
        if self.submitted {
            return Vec::new();
        }
        self.submitted = true;
        (0..self.tasks)
            .map(|n| TaskInfo {
                task_id: format!("sleeper-{n:04}"),
                name: format!("sleeper-{n:04}"),
                command: Some(revenant::proto::CommandInfo {
                    value: "exec sleep 100000".into(),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .collect()
    }
    fn update(&mut self, update: &StatusUpdate) {
        let state = update.status.as_ref().map(|s| s.state());
        if matches!(
            state,
            Some(TaskState::TaskFailed | TaskState::TaskLost | TaskState::TaskError)
        ) {
            eprintln!("  a sleeper ended: {update:?}");
        }
    }
    fn done(&self) -> bool {
        false
    }
}

fn start_framework(master: String, tasks: usize) {
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let local = tokio::task::LocalSet::new();
        let info = FrameworkInfo {
            id: String::new(),
            name: "recovery-latency-bench".into(),
            user: std::env::var("USER").unwrap_or_default(),
            checkpoint: true,
            failover_timeout_seconds: 3600.0,
            role: String::new(),
            ..Default::default()
        };
        let mut workload = Sleepers {
            tasks,
            submitted: false,
        };
        local.block_on(
            &runtime,
            revenant::framework::run(revenant::os::Env::real(), vec![master], info, &mut workload),
        );
    });
}

/// Seconds since midnight of a log line's RFC 3339 timestamp (`...T16:48:07.119355Z`).
fn log_seconds(line: &str) -> Option<f64> {
    let clean: String = {
        // Strip ANSI colour sequences.
        let mut out = String::new();
        let mut chars = line.chars();
        while let Some(c) = chars.next() {
            if c == '\u{1b}' {
                for d in chars.by_ref() {
                    if d == 'm' {
                        break;
                    }
                }
            } else {
                out.push(c);
            }
        }
        out
    };
    let time = clean.split_whitespace().next()?.split_once('T')?.1;
    let time = time.trim_end_matches('Z');
    let mut parts = time.split(':');
    let h: f64 = parts.next()?.parse().ok()?;
    let m: f64 = parts.next()?.parse().ok()?;
    let s: f64 = parts.next()?.parse().ok()?;
    Some(h * 3600.0 + m * 60.0 + s)
}

/// The phases of one restart, from the restarted agent's log (its last incarnation).
#[derive(Clone, Copy, Default)]
struct Phases {
    /// `recovering state` to `waiting for executors to re-register`: the agent's own
    /// part (reads, R14's syncs, building the state, the orphan scan).
    agent: Duration,
    /// From there until recovery was complete (the executors coming back).
    back: Duration,
    /// The finer split of `agent` from the debug marks of docs/recovery-latency.md P46
    /// (absent from a baseline binary without them): the read, R14's syncs, the
    /// orphan scan of `/proc` (lifecycle rule 20).
    read: Option<Duration>,
    durable: Option<Duration>,
    scan: Option<Duration>,
}

/// From the restarted agent's log (its last incarnation): how long recovery took to
/// read and make durable its checkpoints (`recovering state` to `waiting for executors
/// to re-register`), and from there until recovery was complete, with P46's finer marks
/// when the binary logs them.
fn recovery_phases(log: &Path) -> Option<Phases> {
    let text = std::fs::read_to_string(log).ok()?;
    let start = text.rfind("recovering state")?;
    let tail = &text[text[..start].rfind('\n').map_or(0, |i| i + 1)..];
    let at = |needle: &str| {
        tail.lines()
            .find(|line| line.contains(needle))
            .and_then(log_seconds)
    };
    let began = at("recovering state")?;
    let waiting = at("waiting for executors to re-register")?;
    let complete = at("recovery complete")?;
    let d = |a: f64, b: f64| Duration::from_secs_f64((b - a).max(0.0));
    let read = at("checkpoints read");
    let durable = at("checkpoints durable");
    let scan_started = at("orphan scan started");
    let scan_done = at("orphan scan done");
    Some(Phases {
        agent: d(began, waiting),
        back: d(waiting, complete),
        read: read.map(|r| d(began, r)),
        durable: read.zip(durable).map(|(r, s)| d(r, s)),
        scan: scan_started.zip(scan_done).map(|(a, b)| d(a, b)),
    })
}

fn median(samples: &mut [Duration]) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

struct Measured {
    median: Duration,
    max: Duration,
    floor: Duration,
    /// The agent's own recovery read (with its syncs), median over the rounds.
    agent_read: Duration,
    /// From the read to recovery complete (the executors coming back), median.
    executors_back: Duration,
    /// The medians of the agent's finer phases (P46), printed after its part.
    parts: String,
}

fn opt_ms(d: Option<Duration>) -> String {
    d.map_or_else(|| "?".to_owned(), ms)
}

fn agent_args<'a>(master: &'a str, listen: &'a str, work_dir: &'a str) -> Vec<&'a str> {
    vec![
        "agent",
        "--master",
        master,
        "--listen",
        listen,
        "--work-dir",
        work_dir,
        "--resources",
        "cpus:100000;mem:10000000",
        // Launching hundreds of executors at once on a loaded two-core machine can take
        // longer than the default minute; a launch timeout would fail a task and the
        // bench would wait for it forever. Recovery is not affected by this flag.
        "--executor-registration-timeout",
        "10mins",
        // At 500 executors on the loaded two-core VM some executors took longer than the
        // default 2 s to re-register after a restart: their tasks were lost and the
        // bench waited for them in vain. Recovery completes as soon as every executor
        // re-registered (docs/recovery-latency.md P4), so a longer bound changes no
        // time measured when all come back; it only keeps a slow one from being lost.
        "--executor-reregistration-timeout",
        "15secs",
    ]
}

/// Kills (SIGKILL) every process that carries the agent tag of `work_dir` (the
/// executors and their tasks: README, "Orphan executors are killed at recovery").
struct KillTagged(PathBuf);

impl Drop for KillTagged {
    fn drop(&mut self) {
        let tag = format!("{}={}", revenant::os::AGENT_TAG_VARIABLE, self.0.display());
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return;
        };
        for entry in entries.flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
                continue;
            };
            if environ.split(|b| *b == 0).any(|v| v == tag.as_bytes()) {
                // SAFETY: kill has no memory-safety preconditions.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }
}

fn measure(binary: &str, base: &Path, executors: usize, restarts: usize) -> Measured {
    // `REVENANT_BENCH_KEEP=1` keeps the directory (the logs of every process) for a look.
    let keep = std::env::var_os("REVENANT_BENCH_KEEP").is_some();
    let dir = tempfile::Builder::new()
        .disable_cleanup(keep)
        .tempdir_in(base)
        .expect("a temporary directory");
    if keep {
        println!("  keeping {}", dir.path().display());
    }
    let work_dir = dir.path().join("work");
    let _cleanup = KillTagged(work_dir.clone());
    let work_dir_str = work_dir.to_str().expect("utf-8 path").to_owned();
    let listen = free_address();
    let master = free_address();
    let _master = spawn(
        binary,
        &["master", "--listen", &master],
        dir.path().join("master.log"),
    );
    let mut agent = spawn(
        binary,
        &agent_args(&master, &listen, &work_dir_str),
        dir.path().join("agent.log"),
    );
    start_framework(master.clone(), executors);
    let deadline = Instant::now() + Duration::from_secs(120 + executors as u64 / 2);
    while !whole(&listen, executors) {
        if let Ok(Some(status)) = agent.child.try_wait() {
            let log = std::fs::read_to_string(&agent.log).unwrap_or_default();
            panic!("the agent exited with {status}:\n{log}");
        }
        assert!(
            Instant::now() < deadline,
            "{executors} tasks did not all start in time (see {})",
            agent.log.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    println!("  {executors} executors running");
    let mut samples = Vec::new();
    let mut reads_agent = Vec::new();
    let mut backs = Vec::new();
    let (mut read_parts, mut sync_parts, mut scan_parts) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..restarts {
        // Let the executors' connections and the master settle between rounds.
        std::thread::sleep(Duration::from_millis(500));
        let log = agent.log.clone();
        drop(agent); // SIGKILL and reap
        let started = Instant::now();
        agent = spawn(binary, &agent_args(&master, &listen, &work_dir_str), log);
        let deadline = started + Duration::from_secs(60);
        loop {
            if whole(&listen, executors) {
                break;
            }
            if let Ok(Some(status)) = agent.child.try_wait() {
                let log = std::fs::read_to_string(&agent.log).unwrap_or_default();
                panic!("the restarted agent exited with {status}:\n{log}");
            }
            assert!(
                Instant::now() < deadline,
                "round {round}: the agent was not whole within 60 s (see {})",
                agent.log.display()
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        let took = started.elapsed();
        let phases = recovery_phases(&agent.log);
        match phases {
            Some(p) => println!(
                "  {executors} executors, restart {round}: {} (agent's part {}: read {}, syncs {}, /proc scan {}; executors back {})",
                ms(took),
                ms(p.agent),
                opt_ms(p.read),
                opt_ms(p.durable),
                opt_ms(p.scan),
                ms(p.back)
            ),
            None => println!("  {executors} executors, restart {round}: {}", ms(took)),
        }
        if let Some(p) = phases {
            reads_agent.push(p.agent);
            backs.push(p.back);
            read_parts.extend(p.read);
            sync_parts.extend(p.durable);
            scan_parts.extend(p.scan);
        }
        samples.push(took);
    }
    let fs = RealFs::default();
    let mut reads = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let state = revenant::inspect::inspect(&fs, &work_dir, false, None)
            .expect("the work directory reads");
        reads.push(started.elapsed());
        assert!(state.is_some(), "a checkpointed agent");
    }
    let max = samples.iter().copied().max().unwrap_or_default();
    let or_zero = |v: &mut Vec<Duration>| {
        if v.is_empty() {
            Duration::ZERO
        } else {
            median(v)
        }
    };
    Measured {
        median: median(&mut samples),
        max,
        floor: median(&mut reads),
        agent_read: or_zero(&mut reads_agent),
        executors_back: or_zero(&mut backs),
        parts: if read_parts.is_empty() {
            String::new()
        } else {
            format!(
                " (of which read {}, R14's syncs {}, /proc scan {})",
                ms(or_zero(&mut read_parts)),
                ms(or_zero(&mut sync_parts)),
                ms(or_zero(&mut scan_parts))
            )
        },
    }
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let base = std::env::var("REVENANT_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| std::env::temp_dir());
    let number = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let sizes: Vec<usize> = if bench {
        std::env::var("REVENANT_BENCH_EXECUTORS")
            .unwrap_or_else(|_| "50,500".into())
            .split(',')
            .filter_map(|s| s.trim().parse().ok())
            .collect()
    } else {
        vec![3]
    };
    let baseline = std::env::var("REVENANT_BENCH_BASELINE").ok();
    println!("recovery_latency (load average before: {})", load_average());
    for executors in sizes {
        let restarts = match (bench, executors >= 500) {
            (false, _) => 2,
            (true, false) => number("REVENANT_BENCH_RESTARTS", 20),
            (true, true) => number("REVENANT_BENCH_RESTARTS_LARGE", 5),
        };
        let target = if executors >= 500 {
            TARGET_500
        } else {
            TARGET_50
        };
        let baseline = baseline.as_ref().map(|binary| {
            println!("  baseline binary {binary}:");
            let measured = measure(binary, &base, executors, restarts);
            println!(
                "{executors} executors, {restarts} restarts, baseline: median {}, max {}; reading the checkpoints {} (floor); the agent's read with its syncs {}{}, executors back {} (medians)",
                ms(measured.median),
                ms(measured.max),
                ms(measured.floor),
                ms(measured.agent_read),
                measured.parts,
                ms(measured.executors_back),
            );
            measured
        });
        let measured = measure(env!("CARGO_BIN_EXE_revenant"), &base, executors, restarts);
        println!(
            "{executors} executors, {restarts} restarts: median {}, max {}; reading the checkpoints {} (floor); the agent's read with its syncs {}{}, executors back {} (medians); target median <= {}: {}",
            ms(measured.median),
            ms(measured.max),
            ms(measured.floor),
            ms(measured.agent_read),
            measured.parts,
            ms(measured.executors_back),
            ms(target),
            if measured.median <= target { "met" } else { "not met" },
        );
        if let Some(baseline) = baseline {
            println!(
                "{executors} executors: median this build / baseline = {:.3}",
                measured.median.as_secs_f64() / baseline.median.as_secs_f64()
            );
        }
    }
    println!("load average after: {}", load_average());
}

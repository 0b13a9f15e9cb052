//! Acceptance tests of the built `revenant` binary, run as an operator would: real
//! master, agent, executor and `submit` processes on loopback, real work directories,
//! `kill -9`. Each test owns its ports and temporary directory and kills every process
//! it started (executors and tasks included) when it ends, also when it fails.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod live;

use std::fs;
use std::time::{Duration, Instant};

use live::*;
use revenant::http::state::{AgentRecovering, AgentState, MasterState};

const SHORT: Duration = Duration::from_secs(10);
const LONG: Duration = Duration::from_secs(30);

/// Asserts `submit`'s stream: it ends with `last` and shows each state of `once`
/// exactly once.
fn assert_stream(cluster: &Cluster, submit: ProcId, last: &str, once: &[&str]) {
    let lines = cluster.task_lines(submit);
    let states = cluster.task_states(submit);
    assert_eq!(
        states.last().map(String::as_str),
        Some(last),
        "submit's last update: {lines:#?}"
    );
    for state in once {
        assert_eq!(
            states.iter().filter(|s| s == state).count(),
            1,
            "{state} exactly once in {lines:#?}"
        );
    }
}

fn agent_flags(extra: &[&'static str]) -> Vec<&'static str> {
    let mut flags = FAST_AGENT_FLAGS.to_vec();
    flags.extend_from_slice(extra);
    flags
}

/// `kill -9` of the agent while a task runs, then a restart with the same flags: the
/// same executor process re-registers and the task finishes, each update seen once.
#[test]
fn agent_restart_reconnects_the_same_executor() {
    let mut cluster = Cluster::new();
    let (_, master) = cluster.master("master");
    let address = free_address();
    let work_dir = cluster.work_dir("work");
    let flags = agent_flags(&["--recovery-timeout", "15secs"]);
    let agent = cluster.agent("agent-1", &master, &address, &work_dir, &flags);
    let registered = cluster.wait_log(agent, "registered with master", SHORT);
    let agent_id = log_field(&registered, "agent").expect("agent id in the log");

    let submit = cluster.submit("submit", &master, "sleep 3", "t-restart");
    cluster.wait_state(submit, "TASK_RUNNING", SHORT);
    let forked = cluster.wait_forked_pid(&work_dir, SHORT);

    cluster.kill9(agent);
    assert!(
        forked.process.alive(),
        "the executor {forked:?} died with the agent"
    );
    let agent = cluster.agent("agent-2", &master, &address, &work_dir, &flags);
    cluster.wait_log(agent, "executor re-registered", SHORT);
    let reregistered = cluster.wait_log(agent, "re-registered with master", SHORT);
    assert_eq!(
        log_field(&reregistered, "agent").as_deref(),
        Some(agent_id.as_str()),
        "the restarted agent keeps its id"
    );
    // The same process: one run, the same checkpointed pid, nothing launched again.
    assert_eq!(forked_pids(&work_dir), vec![forked.clone()]);
    assert!(
        !cluster.log_has(agent, "executor launched"),
        "the restarted agent launched an executor:\n{}",
        cluster.log(agent)
    );

    let status = cluster.wait_exit(submit, LONG);
    assert!(status.success(), "submit exited {status:?}");
    assert_stream(
        &cluster,
        submit,
        "TASK_FINISHED",
        &["TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"],
    );
    // The executor saw the agent go and registered twice, as one process.
    let sandbox_log = find_files(&work_dir.join("slaves"), "stderr")
        .first()
        .map(|path| strip_ansi(&read_or_empty(path)))
        .expect("the executor's stderr in its sandbox");
    assert_eq!(
        sandbox_log
            .lines()
            .filter(|l| log_message_is(l, "registered with agent"))
            .count(),
        2,
        "the executor registered, then re-registered:\n{sandbox_log}"
    );
    assert!(sandbox_log.contains("lost the agent"), "{sandbox_log}");
    // Its task done and acknowledged, the executor exits.
    wait_until("the executor to exit after its task", SHORT, || {
        !forked.process.alive()
    });
}

/// Finds, anywhere in `inspect`'s JSON, an unacknowledged update in `state`.
fn has_unacknowledged(value: &serde_json::Value, state: &str) -> bool {
    match value {
        serde_json::Value::Object(map) => map.iter().any(|(key, value)| {
            (key == "unacknowledged"
                && value
                    .as_array()
                    .is_some_and(|updates| updates.iter().any(|u| u["state"] == state)))
                || has_unacknowledged(value, state)
        }),
        serde_json::Value::Array(items) => items.iter().any(|v| has_unacknowledged(v, state)),
        _ => false,
    }
}

/// A status update whose forwarding the kill cut off: the task finishes while the master
/// is down, the agent checkpoints TASK_FINISHED but cannot forward it, and is killed.
/// After both restart, the update is replayed from `task.updates` and the framework sees
/// it, once.
#[test]
fn update_cut_off_by_the_kill_is_replayed_after_restart() {
    let mut cluster = Cluster::new();
    let registry = cluster.work_dir("registry");
    let registry = registry.to_str().expect("utf-8 path");
    let master_address = free_address();
    let master_flags = ["--work-dir", registry, "--leader-lease", "1secs"];
    let (master, _) = cluster.master_at("master-1", &master_address, &master_flags);
    let address = free_address();
    let work_dir = cluster.work_dir("work");
    let flags = agent_flags(&["--recovery-timeout", "30secs"]);
    let agent = cluster.agent("agent-1", &master_address, &address, &work_dir, &flags);
    let registered = cluster.wait_log(agent, "registered with master", SHORT);
    let agent_id = log_field(&registered, "agent").expect("agent id in the log");
    let submit = cluster.submit("submit", &master_address, "sleep 2", "t-replay");
    cluster.wait_state(submit, "TASK_RUNNING", SHORT);

    cluster.kill9(master);
    wait_until("TASK_FINISHED to be checkpointed", SHORT, || {
        cluster
            .log_lines(agent, "status update accepted")
            .iter()
            .any(|line| log_field(line, "state").as_deref() == Some("TASK_FINISHED"))
    });
    cluster.kill9(agent);
    assert!(
        has_unacknowledged(&cluster.inspect(&work_dir), "TASK_FINISHED"),
        "TASK_FINISHED checkpointed and unacknowledged: {:#}",
        cluster.inspect(&work_dir)
    );

    let (_, _) = cluster.master_at("master-2", &master_address, &master_flags);
    let agent = cluster.agent("agent-2", &master_address, &address, &work_dir, &flags);
    let reregistered = cluster.wait_log(agent, "re-registered with master", LONG);
    assert_eq!(
        log_field(&reregistered, "agent").as_deref(),
        Some(agent_id.as_str())
    );
    let status = cluster.wait_exit(submit, LONG);
    assert!(status.success(), "submit exited {status:?}");
    assert_stream(
        &cluster,
        submit,
        "TASK_FINISHED",
        &["TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"],
    );
    assert!(
        cluster
            .log_lines(agent, "forwarding status update to master")
            .iter()
            .any(|line| log_field(line, "state").as_deref() == Some("TASK_FINISHED")),
        "the restarted agent forwarded the replayed update:\n{}",
        cluster.log(agent)
    );
    wait_until("the acknowledgement to be checkpointed", SHORT, || {
        !has_unacknowledged(&cluster.inspect(&work_dir), "TASK_FINISHED")
    });
}

/// SIGUSR1 makes the agent leave the cluster (Mesos's ShutdownSlaveSIGUSR1): it
/// unregisters, the master reports its task lost, the executor is killed, the agent exits;
/// started again, it registers as a new agent.
#[test]
fn sigusr1_unregisters_the_agent_and_its_task_is_lost() {
    let mut cluster = Cluster::new();
    let (master, master_address) = cluster.master("master");
    let address = free_address();
    let work_dir = cluster.work_dir("work");
    let flags = agent_flags(&[]);
    let agent = cluster.agent("agent-1", &master_address, &address, &work_dir, &flags);
    let registered = cluster.wait_log(agent, "registered with master", SHORT);
    let agent_id = log_field(&registered, "agent").expect("agent id in the log");
    let submit = cluster.submit("submit", &master_address, "sleep 60", "t-leave");
    cluster.wait_state(submit, "TASK_RUNNING", SHORT);
    let forked = cluster.wait_forked_pid(&work_dir, SHORT);

    let pid = cluster.pid(agent) as libc::pid_t;
    // SAFETY: sending a signal to a child process this test started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGUSR1) }, 0);
    let status = cluster.wait_exit(agent, SHORT);
    assert!(status.success(), "the agent exits cleanly: {status:?}");
    assert!(
        cluster.log_has(master, "agent unregistered"),
        "{}",
        cluster.log(master)
    );
    cluster.wait_state(submit, "TASK_LOST", SHORT);
    let lost = cluster
        .task_lines(submit)
        .into_iter()
        .find(|line| line.contains("TASK_LOST"))
        .expect("a TASK_LOST line");
    assert!(lost.contains("REASON_AGENT_REMOVED"), "{lost}");
    wait_until("the executor to be killed", SHORT, || {
        !forked.process.alive()
    });

    let agent = cluster.agent("agent-2", &master_address, &address, &work_dir, &flags);
    let registered = cluster.wait_log(agent, "registered with master", SHORT);
    assert_ne!(
        log_field(&registered, "agent").as_deref(),
        Some(agent_id.as_str()),
        "the agent that left comes back as a new agent"
    );
}

/// A faked reboot: the agent and its executor die, `meta/boot_id` no longer matches the
/// machine's. The restarted agent registers as a new agent; the master removes the old
/// one (same address) and the framework sees the task lost.
#[test]
fn reboot_registers_a_new_agent_and_the_task_is_lost() {
    let mut cluster = Cluster::new();
    let (master_proc, master) = cluster.master("master");
    let address = free_address();
    let work_dir = cluster.work_dir("work");
    let flags = agent_flags(&["--recovery-timeout", "15secs"]);
    let agent = cluster.agent("agent-1", &master, &address, &work_dir, &flags);
    let registered = cluster.wait_log(agent, "registered with master", SHORT);
    let old_agent_id = log_field(&registered, "agent").expect("agent id in the log");

    let submit = cluster.submit("submit", &master, "sleep 30", "t-reboot");
    cluster.wait_state(submit, "TASK_RUNNING", SHORT);
    let forked = cluster.wait_forked_pid(&work_dir, SHORT);

    // The "reboot": the agent, the executor and its task all die; the boot id changes.
    cluster.kill9(agent);
    forked.process.kill_group();
    wait_until("the executor and its task to die", SHORT, || {
        !forked.process.alive() && processes_of_agent(&address).is_empty()
    });
    let boot_id_path = work_dir.join("meta").join("boot_id");
    let machine_boot_id = fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .expect("the machine's boot id")
        .trim()
        .to_owned();
    assert_eq!(
        fs::read_to_string(&boot_id_path)
            .expect("meta/boot_id")
            .trim(),
        machine_boot_id
    );
    let fake_boot_id = "00000000-0000-4000-8000-000000000000";
    assert_ne!(fake_boot_id, machine_boot_id);
    fs::write(&boot_id_path, format!("{fake_boot_id}\n")).expect("rewrite meta/boot_id");

    let agent = cluster.agent("agent-2", &master, &address, &work_dir, &flags);
    let registered = cluster.wait_log(agent, "registered with master", SHORT);
    let new_agent_id = log_field(&registered, "agent").expect("agent id in the log");
    assert_ne!(
        new_agent_id, old_agent_id,
        "a rebooted agent is a new agent"
    );

    let status = cluster.wait_exit(submit, LONG);
    assert!(status.success(), "submit exited {status:?}");
    let lines = cluster.task_lines(submit);
    let last = lines.last().cloned().unwrap_or_default();
    assert!(
        last.starts_with("task t-reboot TASK_LOST reason REASON_AGENT_REMOVED"),
        "the task ends lost with its removed agent: {lines:#?}"
    );
    assert!(
        cluster.log_has(
            master_proc,
            "a new agent registered at the address of a known one"
        ),
        "{}",
        cluster.log(master_proc)
    );

    // Nothing of the old agent was recovered, let alone its executor.
    let log = cluster.log(agent);
    assert!(log.contains("machine rebooted"), "{log}");
    for message in [
        "recovered agent",
        "recovered task",
        "executor alive",
        "executor re-registered",
        "re-registering with master",
    ] {
        assert!(
            !cluster.log_has(agent, message),
            "after a reboot the agent logged {message:?}:\n{log}"
        );
    }
    let state = cluster.inspect(&work_dir);
    assert_eq!(state["agent"]["id"], new_agent_id.as_str(), "{state:#}");
    assert_eq!(
        state["agent"]["frameworks"].as_array().map(Vec::len),
        Some(0),
        "the new agent adopted no framework: {state:#}"
    );
    assert_eq!(state["checkpointed_boot_id"], machine_boot_id.as_str());
    // The only forked.pid is the old agent's, under the old agent's directory.
    let pids = forked_pids(&work_dir);
    assert_eq!(pids, vec![forked.clone()]);
    assert!(
        forked
            .path
            .components()
            .any(|c| c.as_os_str() == old_agent_id.as_str()),
        "{forked:?}"
    );
    assert!(
        processes_of_agent(&address).is_empty(),
        "no executor of the new agent"
    );
}

/// `--recover cleanup` after `kill -9`: the agent kills the live executor and exits 0
/// without registering.
#[test]
fn recover_cleanup_kills_executors_and_exits_without_registering() {
    let mut cluster = Cluster::new();
    let (_, master) = cluster.master("master");
    let address = free_address();
    let work_dir = cluster.work_dir("work");
    let flags = agent_flags(&["--recovery-timeout", "15secs"]);
    let agent = cluster.agent("agent-1", &master, &address, &work_dir, &flags);
    cluster.wait_log(agent, "registered with master", SHORT);
    let submit = cluster.submit("submit", &master, "sleep 60", "t-cleanup");
    cluster.wait_state(submit, "TASK_RUNNING", SHORT);
    let forked = cluster.wait_forked_pid(&work_dir, SHORT);

    cluster.kill9(agent);
    assert!(forked.process.alive(), "the executor died with the agent");
    let mut cleanup_flags = flags.clone();
    cleanup_flags.extend_from_slice(&["--recover", "cleanup"]);
    let agent = cluster.agent(
        "agent-cleanup",
        &master,
        &address,
        &work_dir,
        &cleanup_flags,
    );
    let status = cluster.wait_exit(agent, SHORT);
    let log = cluster.log(agent);
    assert!(status.success(), "cleanup exited {status:?}:\n{log}");
    assert!(log.contains("CleanedUp"), "{log}");
    for message in [
        "registering with master",
        "re-registering with master",
        "registered with master",
        "re-registered with master",
        "connected to master",
    ] {
        assert!(
            !cluster.log_has(agent, message),
            "a cleanup agent logged {message:?}:\n{log}"
        );
    }
    wait_until("the executor and its task to be gone", SHORT, || {
        !forked.process.alive() && processes_of_agent(&address).is_empty()
    });
}

/// An agent that stays away past `--recovery-timeout`: the executor kills its task and
/// exits by itself.
#[test]
fn executor_gives_up_after_the_recovery_timeout() {
    let mut cluster = Cluster::new();
    let (_, master) = cluster.master("master");
    let address = free_address();
    let work_dir = cluster.work_dir("work");
    let flags = agent_flags(&["--recovery-timeout", "2secs"]);
    let agent = cluster.agent("agent", &master, &address, &work_dir, &flags);
    cluster.wait_log(agent, "registered with master", SHORT);
    let submit = cluster.submit("submit", &master, "sleep 60", "t-timeout");
    cluster.wait_state(submit, "TASK_RUNNING", SHORT);
    let forked = cluster.wait_forked_pid(&work_dir, SHORT);
    assert!(
        !processes_of_agent(&address).is_empty(),
        "the executor and its task run"
    );

    cluster.kill9(agent);
    let killed = Instant::now();
    wait_until(
        "the executor to exit after the recovery timeout",
        SHORT,
        || !forked.process.alive(),
    );
    let waited = killed.elapsed();
    assert!(
        waited >= Duration::from_millis(1500),
        "the executor gave up after {waited:?}, before the 2 s recovery timeout"
    );
    let sandbox_log = find_files(&work_dir.join("slaves"), "stderr")
        .first()
        .map(|path| strip_ansi(&read_or_empty(path)))
        .expect("the executor's stderr in its sandbox");
    assert!(
        sandbox_log.contains("recovery timeout"),
        "the executor says why it exited:\n{sandbox_log}"
    );
}

/// A corrupt record in the middle of a `task.updates` file stops a strict recovery: the
/// agent exits non-zero naming the file.
#[test]
fn strict_recovery_fails_on_a_corrupt_task_updates_file() {
    let mut cluster = Cluster::new();
    let (_, master) = cluster.master("master");
    let address = free_address();
    let work_dir = cluster.work_dir("work");
    let flags = agent_flags(&["--recovery-timeout", "15secs"]);
    let agent = cluster.agent("agent-1", &master, &address, &work_dir, &flags);
    cluster.wait_log(agent, "registered with master", SHORT);
    let submit = cluster.submit("submit", &master, "sleep 60", "t-corrupt");
    cluster.wait_state(submit, "TASK_RUNNING", SHORT);
    // The RUNNING update's acknowledgement is on disk once the agent logged it.
    wait_until(
        "the RUNNING acknowledgement to be checkpointed",
        SHORT,
        || {
            cluster
                .log_lines(agent, "status update acknowledged by framework")
                .len()
                >= 2
        },
    );
    cluster.kill9(agent);

    let updates = find_files(&work_dir.join("meta"), "task.updates");
    assert_eq!(updates.len(), 1, "{updates:?}");
    let updates = &updates[0];
    flip_middle_byte(updates).expect("corrupt task.updates");

    let agent = cluster.agent("agent-2", &master, &address, &work_dir, &flags);
    let status = cluster.wait_exit(agent, SHORT);
    let log = cluster.log(agent);
    assert!(
        !status.success(),
        "strict recovery exited {status:?}:\n{log}"
    );
    assert!(
        log.contains(&updates.display().to_string()),
        "the error names {}:\n{log}",
        updates.display()
    );
    for message in ["registering with master", "re-registering with master"] {
        assert!(
            !cluster.log_has(agent, message),
            "a failed recovery logged {message:?}:\n{log}"
        );
    }
}

/// A second agent on a work directory in use refuses to start and names the holder.
#[test]
fn second_agent_on_the_same_work_dir_refuses_to_start() {
    let mut cluster = Cluster::new();
    let (_, master) = cluster.master("master");
    let address = free_address();
    let work_dir = cluster.work_dir("work");
    let flags = agent_flags(&[]);
    let first = cluster.agent("agent-1", &master, &address, &work_dir, &flags);
    cluster.wait_log(first, "registered with master", SHORT);

    let other_address = free_address();
    let second = cluster.agent("agent-2", &master, &other_address, &work_dir, &flags);
    let status = cluster.wait_exit(second, SHORT);
    let log = cluster.log(second);
    assert!(
        !status.success(),
        "the second agent exited {status:?}:\n{log}"
    );
    assert!(
        log.contains("locked by another process"),
        "the error says the work directory is locked:\n{log}"
    );
    assert!(
        log.contains(&format!("revenant agent listening on {address}")),
        "the error names the holder (the first agent, on {address}):\n{log}"
    );
    assert!(
        !log.contains("registering with master"),
        "the second agent got as far as registering:\n{log}"
    );
    assert!(
        cluster.exited(first).is_none(),
        "the first agent is unharmed"
    );
}

/// Two masters: the leader dies while a task runs; the agent re-registers with the
/// other and the framework's stream reaches TASK_FINISHED.
#[test]
fn master_failover_agent_reregisters_and_task_finishes() {
    let mut cluster = Cluster::new();
    let shared = cluster.work_dir("masters");
    let shared = shared.to_str().expect("utf-8 path");
    let master_flags = ["--work-dir", shared, "--leader-lease", "2secs"];
    let (master_a, address_a) = cluster.master_at("master-a", &free_address(), &master_flags);
    cluster.wait_log(master_a, "took the leader lease", SHORT);
    let (master_b, address_b) = cluster.master_at("master-b", &free_address(), &master_flags);
    // Only one leads: the second master points at the first.
    wait_until("the second master to know the leader", SHORT, || {
        let (code, body) = http_get(&address_b, "/state");
        let state: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        code == 200 && state["leading"] == false && state["leader"] == address_a.as_str()
    });
    let masters = format!("{address_a},{address_b}");
    let address = free_address();
    let work_dir = cluster.work_dir("work");
    let flags = agent_flags(&["--recovery-timeout", "15secs"]);
    let agent = cluster.agent("agent", &masters, &address, &work_dir, &flags);
    let registered = cluster.wait_log(agent, "registered with master", SHORT);
    let agent_id = log_field(&registered, "agent").expect("agent id in the log");
    assert!(
        cluster.log_has(master_a, "agent registered"),
        "the agent registered with the first master:\n{}",
        cluster.log(master_a)
    );

    let submit = cluster.submit("submit", &masters, "sleep 4", "t-failover");
    cluster.wait_state(submit, "TASK_RUNNING", SHORT);
    cluster.kill9(master_a);

    let reregistered = cluster.wait_log(agent, "re-registered with master", LONG);
    assert_eq!(
        log_field(&reregistered, "agent").as_deref(),
        Some(agent_id.as_str())
    );
    assert!(
        cluster
            .log_lines(agent, "connected to master")
            .iter()
            .any(|line| log_field(line, "master").as_deref() == Some(address_b.as_str())),
        "the agent connected to the second master:\n{}",
        cluster.log(agent)
    );
    let status = cluster.wait_exit(submit, LONG);
    assert!(status.success(), "submit exited {status:?}");
    assert_stream(
        &cluster,
        submit,
        "TASK_FINISHED",
        &["TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"],
    );
    let log_b = cluster.log(master_b);
    assert!(log_b.contains("agent re-registered"), "{log_b}");
    assert!(log_b.contains("framework registered"), "{log_b}");
    // The new leader knew the agent from the registry before it came back.
    let elected = cluster.wait_log(master_b, "elected leading master", SHORT);
    assert_eq!(
        log_field(&elected, "known_agents").as_deref(),
        Some("1"),
        "{elected}"
    );
}

/// The registry outlives the master: a restarted master waits
/// `agent_reregister_timeout` for the agents it knew, removes the one that stays away,
/// and, restarted once more, still refuses to let the removed agent back in.
#[test]
fn restarted_master_removes_an_agent_that_stays_away_and_remembers_it() {
    let mut cluster = Cluster::new();
    let registry = cluster.work_dir("registry");
    let registry = registry.to_str().expect("utf-8 path");
    let master_address = free_address();
    let master_flags = [
        "--work-dir",
        registry,
        "--leader-lease",
        "1secs",
        "--agent-reregister-timeout",
        "2secs",
    ];
    let (master, _) = cluster.master_at("master-1", &master_address, &master_flags);
    let address = free_address();
    let work_dir = cluster.work_dir("work");
    let flags = agent_flags(&[]);
    let agent = cluster.agent("agent-1", &master_address, &address, &work_dir, &flags);
    let registered = cluster.wait_log(agent, "registered with master", SHORT);
    let agent_id = log_field(&registered, "agent").expect("agent id in the log");
    cluster.kill9(agent);
    cluster.kill9(master);

    let (master, _) = cluster.master_at("master-2", &master_address, &master_flags);
    let elected = cluster.wait_log(master, "elected leading master", SHORT);
    assert_eq!(
        log_field(&elected, "known_agents").as_deref(),
        Some("1"),
        "{elected}"
    );
    let removed = cluster.wait_log(
        master,
        "agent did not re-register within the timeout",
        SHORT,
    );
    assert_eq!(
        log_field(&removed, "agent").as_deref(),
        Some(agent_id.as_str())
    );
    cluster.kill9(master);

    let (master, _) = cluster.master_at("master-3", &master_address, &master_flags);
    cluster.wait_log(master, "elected leading master", SHORT);
    let agent = cluster.agent("agent-2", &master_address, &address, &work_dir, &flags);
    cluster.wait_log(master, "removed agent tried to re-register", SHORT);
    cluster.wait_log(agent, "master asked the agent to shut down", SHORT);
}

/// The executor's doc says that when the agent stays away past `recovery_timeout` it
/// "kills its tasks and exits": the task's processes must go with it. The task here
/// is `sleep 60; exit 0`, so `sh` has to fork `sleep` (whatever the shell).
#[test]
fn executor_recovery_timeout_kills_the_task_processes() {
    let mut cluster = Cluster::new();
    let (_, master) = cluster.master("master");
    let address = free_address();
    let work_dir = cluster.work_dir("work");
    let flags = agent_flags(&["--recovery-timeout", "2secs"]);
    let agent = cluster.agent("agent", &master, &address, &work_dir, &flags);
    cluster.wait_log(agent, "registered with master", SHORT);
    let submit = cluster.submit("submit", &master, "sleep 60; exit 0", "t-orphan");
    cluster.wait_state(submit, "TASK_RUNNING", SHORT);
    let forked = cluster.wait_forked_pid(&work_dir, SHORT);
    wait_until(
        "the executor, its shell and the sleep to run",
        SHORT,
        || processes_of_agent(&address).len() >= 3,
    );

    cluster.kill9(agent);
    wait_until(
        "the executor to exit after the recovery timeout",
        SHORT,
        || !forked.process.alive(),
    );
    let survivors = || {
        processes_of_agent(&address)
            .iter()
            .map(|p| {
                let cmdline = fs::read(format!("/proc/{}/cmdline", p.pid)).unwrap_or_default();
                format!(
                    "{} {}",
                    p.pid,
                    String::from_utf8_lossy(&cmdline).replace('\0', " ")
                )
            })
            .collect::<Vec<_>>()
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while !survivors().is_empty() && Instant::now() < deadline {
        std::thread::sleep(POLL);
    }
    assert_eq!(
        survivors(),
        Vec::<String>::new(),
        "processes of the task outlived its executor (SIGKILL of the executor's own child only)"
    );
}

/// A faked reboot in which the executor survives (as a stale process would look to a
/// new agent): the new agent must not adopt it. It refuses the executor's
/// re-registration and shuts it down.
#[test]
fn reboot_does_not_adopt_a_surviving_executor() {
    let mut cluster = Cluster::new();
    let (_, master) = cluster.master("master");
    let address = free_address();
    let work_dir = cluster.work_dir("work");
    let flags = agent_flags(&["--recovery-timeout", "15secs"]);
    let agent = cluster.agent("agent-1", &master, &address, &work_dir, &flags);
    let registered = cluster.wait_log(agent, "registered with master", SHORT);
    let old_agent_id = log_field(&registered, "agent").expect("agent id in the log");
    let submit = cluster.submit("submit", &master, "sleep 30", "t-stale");
    cluster.wait_state(submit, "TASK_RUNNING", SHORT);
    let forked = cluster.wait_forked_pid(&work_dir, SHORT);

    cluster.kill9(agent);
    fs::write(
        work_dir.join("meta").join("boot_id"),
        "00000000-0000-4000-8000-000000000000\n",
    )
    .expect("rewrite meta/boot_id");
    assert!(forked.process.alive(), "the executor survived the agent");

    let agent = cluster.agent("agent-2", &master, &address, &work_dir, &flags);
    let registered = cluster.wait_log(agent, "registered with master", SHORT);
    assert_ne!(
        log_field(&registered, "agent").expect("agent id in the log"),
        old_agent_id
    );
    // The surviving executor carries this agent's tag but no recovered run claims it
    // (nothing of the old boot is recovered), so recovery kills it as an orphan
    // (docs/lifecycle-rules.md rule 20) before it could even try to re-register.
    cluster.wait_log(
        agent,
        "destroying an orphan executor process: no recovered run claims it",
        SHORT,
    );
    wait_until("the orphaned executor to exit", SHORT, || {
        !forked.process.alive()
    });
    let log = cluster.log(agent);
    for message in ["executor alive", "executor re-registered", "recovered task"] {
        assert!(
            !cluster.log_has(agent, message),
            "after a reboot the agent logged {message:?}:\n{log}"
        );
    }
    let status = cluster.wait_exit(submit, LONG);
    assert!(status.success(), "submit exited {status:?}");
    let lines = cluster.task_lines(submit);
    assert!(
        lines
            .last()
            .is_some_and(|l| l.starts_with("task t-stale TASK_LOST reason REASON_AGENT_REMOVED")),
        "{lines:#?}"
    );
}

/// A plain HTTP GET over loopback; returns the status code and the body.
fn http_get(address: &str, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).expect("connect for http");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .expect("request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response");
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// `/metrics` read by a Prometheus text parser.
fn parse_metrics(text: &str) -> prometheus_parse::Scrape {
    prometheus_parse::Scrape::parse(text.lines().map(|line| Ok(line.to_owned())))
        .expect("/metrics is Prometheus text")
}

/// The value of the sample `name` (with the label `label`, if given).
fn sample(
    scrape: &prometheus_parse::Scrape,
    name: &str,
    label: Option<(&str, &str)>,
) -> Option<f64> {
    use prometheus_parse::Value;
    scrape
        .samples
        .iter()
        .find(|s| {
            s.metric == name && label.is_none_or(|(key, value)| s.labels.get(key) == Some(value))
        })
        .map(|s| match s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
            _ => f64::NAN,
        })
}

#[test]
fn state_and_metrics_endpoints_serve_operators() {
    let mut cluster = Cluster::new();
    let (_, master) = cluster.master("master");
    let address = free_address();
    let work_dir = cluster.work_dir("work");
    // A long re-registration wait keeps the restarted agent recovering for a while.
    let flags = vec![
        "--registration-backoff-factor",
        "100ms",
        "--executor-reregistration-timeout",
        "10secs",
    ];
    let agent = cluster.agent("agent-1", &master, &address, &work_dir, &flags);
    cluster.wait_log(agent, "registered with master", SHORT);
    let submit = cluster.submit("submit", &master, "sleep 30", "t-http");
    cluster.wait_state(submit, "TASK_RUNNING", SHORT);

    // /state read into the typed structs the agent and master serve (docs/http.md),
    // /metrics through a Prometheus text parser.
    let (status, body) = http_get(&address, "/state");
    assert_eq!(status, 200, "{body}");
    let state: AgentState = serde_json::from_str(&body).expect("agent /state parses");
    assert_eq!(state.phase, "running");
    assert!(state.registered && !state.id.is_empty(), "{state:?}");
    let executor = &state.frameworks[0].executors[0];
    assert_eq!(executor.tasks[0].id, "t-http");
    assert_eq!(executor.tasks[0].state, "TASK_RUNNING");
    assert!(executor.pid.is_some(), "{executor:?}");
    let (status, metrics) = http_get(&address, "/metrics");
    assert_eq!(status, 200);
    let scrape = parse_metrics(&metrics);
    assert_eq!(
        sample(
            &scrape,
            "revenant_agent_tasks",
            Some(("state", "TASK_RUNNING"))
        ),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        sample(&scrape, "revenant_agent_registrations_total", None),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        sample(&scrape, "revenant_agent_recovering", None),
        Some(0.0)
    );
    assert_eq!(sample(&scrape, "revenant_agent_executors", None), Some(1.0));
    let (status, body) = http_get(&master, "/state");
    assert_eq!(status, 200);
    let master_state: MasterState = serde_json::from_str(&body).expect("master /state parses");
    assert!(master_state.leading);
    assert_eq!(master_state.agents[0].tasks[0].id, "t-http");
    assert_eq!(master_state.agents[0].phase, "connected");
    let (_, metrics) = http_get(&master, "/metrics");
    let scrape = parse_metrics(&metrics);
    assert_eq!(
        sample(
            &scrape,
            "revenant_master_agents",
            Some(("phase", "connected"))
        ),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        sample(
            &scrape,
            "revenant_master_tasks",
            Some(("state", "TASK_RUNNING"))
        ),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(http_get(&master, "/nowhere").0, 404);

    // While a restarted agent recovers, /state says so with a 503. Keep the executor
    // from re-registering at once by stopping it, so the agent waits out the timeout.
    let forked = cluster.wait_forked_pid(&work_dir, SHORT);
    cluster.kill9(agent);
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(forked.process.pid as i32, libc::SIGSTOP) };
    let agent = cluster.agent("agent-2", &master, &address, &work_dir, &flags);
    cluster.wait_log(agent, "waiting for executors to re-register", SHORT);
    let (status, body) = http_get(&address, "/state");
    assert_eq!(status, 503, "{body}");
    let recovering: AgentRecovering = serde_json::from_str(&body).expect("the 503 parses");
    assert!(recovering.error.contains("recovering"), "{recovering:?}");
    assert_eq!(
        sample(
            &parse_metrics(&http_get(&address, "/metrics").1),
            "revenant_agent_recovering",
            None
        ),
        Some(1.0)
    );
    // SAFETY: as above.
    unsafe { libc::kill(forked.process.pid as i32, libc::SIGCONT) };
}

/// ReconcileShutdownFramework, live: the agent is down (`kill -9`) when `revenant
/// teardown` tears the framework down; the restarted agent re-registers, is told to shut
/// the framework down, and the executor goes. The master's `/state` lists one completed
/// framework with its task TASK_KILLED, no active framework and no orphan task.
#[test]
fn framework_torn_down_while_the_agent_is_down_is_shut_down_on_reregistration() {
    let mut cluster = Cluster::new();
    let (master_process, master) = cluster.master("master");
    let address = free_address();
    let work_dir = cluster.work_dir("work");
    let flags = agent_flags(&["--recovery-timeout", "15secs"]);
    let agent = cluster.agent("agent-1", &master, &address, &work_dir, &flags);
    cluster.wait_log(agent, "registered with master", SHORT);
    let submit = cluster.submit("submit", &master, "sleep 60", "t-teardown");
    cluster.wait_state(submit, "TASK_RUNNING", SHORT);
    let framework_id = cluster
        .stdout(submit)
        .lines()
        .find_map(|l| {
            l.strip_prefix("framework ")
                .and_then(|r| r.strip_suffix(" registered"))
                .map(str::to_owned)
        })
        .expect("submit printed its framework id");
    let forked = cluster.wait_forked_pid(&work_dir, SHORT);

    // `revenant tasks` reads the master's view without registering as the framework:
    // the running scheduler is not failed over, and it lists the task.
    let tasks = cluster.spawn(
        "tasks",
        &strings(&[
            "tasks",
            "--master",
            &master,
            "--framework-id",
            &framework_id,
        ]),
    );
    let status = cluster.wait_exit(tasks, SHORT);
    assert!(
        status.success(),
        "tasks exited {status:?}:\n{}",
        cluster.dump()
    );
    assert_eq!(cluster.stdout(tasks).trim(), "task t-teardown TASK_RUNNING");
    assert!(
        !cluster.log_has(master_process, "framework failed over"),
        "a read-only query failed the scheduler over:\n{}",
        cluster.log(master_process)
    );

    cluster.kill9(agent);
    let teardown = cluster.spawn(
        "teardown",
        &strings(&[
            "teardown",
            "--master",
            &master,
            "--framework-id",
            &framework_id,
        ]),
    );
    let status = cluster.wait_exit(teardown, SHORT);
    assert!(
        status.success(),
        "teardown exited {status:?}:\n{}",
        cluster.dump()
    );
    // The scheduler that was following the task hears it was removed, prints the task's
    // fate and exits non-zero: the task did not run to its end.
    let status = cluster.wait_exit(submit, SHORT);
    assert_eq!(status.code(), Some(1), "submit exited {status:?}");
    let printed = cluster.stdout(submit);
    assert!(
        printed.lines().any(|l| l.starts_with(&format!(
            "task t-teardown killed: framework {framework_id} was removed by the master"
        ))),
        "{printed}"
    );
    assert!(forked.process.alive(), "the executor died with the agent");

    let agent = cluster.agent("agent-2", &master, &address, &work_dir, &flags);
    cluster.wait_log(agent, "re-registered with master", SHORT);
    cluster.wait_log(agent, "shutting down framework", SHORT);
    wait_until("the executor to shut down", SHORT, || {
        !forked.process.alive()
    });
    cluster.wait_log(
        agent,
        "framework shut down: all its executors are gone",
        SHORT,
    );

    let (status, body) = http_get(&master, "/state");
    assert_eq!(status, 200, "{body}");
    let state: serde_json::Value = serde_json::from_str(&body).expect("master /state is JSON");
    assert_eq!(
        state["frameworks"].as_array().map(Vec::len),
        Some(0),
        "{state}"
    );
    assert_eq!(
        state["completed_frameworks"].as_array().map(Vec::len),
        Some(1),
        "{state}"
    );
    assert_eq!(
        state["completed_frameworks"][0]["id"],
        framework_id.as_str()
    );
    assert_eq!(
        state["completed_frameworks"][0]["tasks"][0]["state"], "TASK_KILLED",
        "{state}"
    );
    assert_eq!(
        state["orphan_tasks"].as_array().map(Vec::len),
        Some(0),
        "{state}"
    );
    assert_eq!(
        state["agents"][0]["tasks"].as_array().map(Vec::len),
        Some(0),
        "{state}"
    );
}

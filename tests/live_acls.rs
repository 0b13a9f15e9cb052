//! docs/security.md SEC20-SEC28 on the built binaries: a master with `--acls` refuses a
//! framework's registration, its tasks or its teardown by the ACL that says so, with a
//! clear error to the framework and nothing run on any agent; `--credentials` lets
//! only principals that prove their secret connect (agents included); an allowed
//! principal works, with credentials and with TLS certificates alike; a framework cannot
//! re-register under another principal (SEC40), and an operator's teardown is judged by
//! the `teardown_frameworks` ACL (SEC42).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod live;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use live::certs::{tls_flags, Ca};
use live::*;

const SHORT: Duration = Duration::from_secs(10);
const LONG: Duration = Duration::from_secs(30);

/// The ACLs of these tests: `web` may run tasks, `ops` may register but not run tasks
/// and may tear down anyone's framework, `agent` may register agents; nothing else.
const ACLS: &str = r#"{
  "permissive": false,
  "register_agents": [{"principals": {"values": ["agent"]}, "agents": {"type": "ANY"}}],
  "register_frameworks": [{"principals": {"values": ["web", "ops"]}, "roles": {"type": "ANY"}}],
  "run_tasks": [{"principals": {"values": ["web"]}, "users": {"type": "ANY"}}],
  "teardown_frameworks": [{"principals": {"values": ["ops"]}, "framework_principals": {"type": "ANY"}}]
}"#;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, text).expect("write file");
    path
}

/// A client's credentials file.
fn credential(dir: &Path, principal: &str, secret: &str) -> String {
    write(
        dir,
        &format!("{principal}-{secret}.json"),
        &format!(r#"{{"principal": "{principal}", "secret": "{secret}"}}"#),
    )
    .display()
    .to_string()
}

/// `submit` of one task with extra flags.
fn submit(cluster: &mut Cluster, name: &str, master: &str, task: &str, extra: &[String]) -> ProcId {
    let mut args = strings(&[
        "submit",
        "--master",
        master,
        "--command",
        "true",
        "--task-id",
        task,
    ]);
    args.extend(extra.iter().cloned());
    cluster.spawn(name, &args)
}

/// Whether the agent ever launched anything for `task` (its log, and the process table
/// through the work directory's `forked.pid` files).
fn agent_ran(cluster: &Cluster, agent: ProcId, work_dir: &Path, task: &str) -> bool {
    cluster.log(agent).contains(task)
        || find_files(work_dir, "forked.pid")
            .iter()
            .any(|path| path.display().to_string().contains(task))
}

/// Without TLS: credentials decide who connects, the ACLs what each may do.
#[test]
fn credentials_and_acls_without_tls() {
    let mut cluster = Cluster::new();
    let dir = cluster.path().join("security");
    fs::create_dir(&dir).expect("dir");
    let master_credentials = write(
        &dir,
        "master.json",
        r#"{"credentials": [
            {"principal": "web", "secret": "web-secret"},
            {"principal": "ops", "secret": "ops-secret"},
            {"principal": "guest", "secret": "guest-secret"},
            {"principal": "agent", "secret": "agent-secret"}
        ]}"#,
    );
    let acls = write(&dir, "acls.json", ACLS);
    let (master, address) = cluster.master_at(
        "master",
        &free_address(),
        &[
            "--credentials",
            &master_credentials.display().to_string(),
            "--acls",
            &acls.display().to_string(),
        ],
    );

    // An agent without credentials is refused before it can say anything.
    let stranger_dir = cluster.work_dir("stranger");
    let stranger_address = free_address();
    let stranger = cluster.agent(
        "agent-without-credentials",
        &address,
        &stranger_address,
        &stranger_dir,
        FAST_AGENT_FLAGS,
    );
    wait_until("the stranger agent refused", SHORT, || {
        cluster
            .log(master)
            .contains("the peer did not authenticate")
    });
    cluster.kill9(stranger);
    assert!(
        !cluster.log_has(master, "agent registered"),
        "{}",
        cluster.log(master)
    );

    let agent_credentials = credential(&dir, "agent", "agent-secret");
    let work_dir = cluster.work_dir("work");
    let mut agent_flags: Vec<&str> = FAST_AGENT_FLAGS.to_vec();
    agent_flags.extend(["--credentials", &agent_credentials]);
    let agent = cluster.agent("agent", &address, &free_address(), &work_dir, &agent_flags);
    cluster.wait_log(agent, "registered with master", SHORT);

    // A wrong secret is refused at the handshake: no framework registers.
    let wrong = submit(
        &mut cluster,
        "submit-wrong-secret",
        &address,
        "t-wrong",
        &strings(&["--credentials", &credential(&dir, "web", "guess")]),
    );
    wait_until("the wrong secret refused", SHORT, || {
        cluster
            .log(master)
            .contains("principal 'web' is unknown or its secret is wrong")
    });
    wait_until("the framework told why", SHORT, || {
        cluster.log(wrong).contains("refused by the master")
    });
    cluster.kill9(wrong);
    assert!(
        !cluster.log_has(master, "framework registered"),
        "{}",
        cluster.log(master)
    );

    // guest proves its secret but may not register a framework.
    let guest = submit(
        &mut cluster,
        "submit-guest",
        &address,
        "t-guest",
        &strings(&["--credentials", &credential(&dir, "guest", "guest-secret")]),
    );
    assert_eq!(cluster.wait_exit(guest, SHORT).code(), Some(1));
    assert!(
        cluster.log(guest).contains(
            "not authorized by ACL permissive (no entry of register_frameworks applies): principal 'guest' may not register a framework with role '*'"
        ),
        "{}",
        cluster.log(guest)
    );

    // ops registers, but may not run tasks: TASK_ERROR naming the ACL, nothing on the agent.
    let ops = submit(
        &mut cluster,
        "submit-ops",
        &address,
        "t-ops",
        &strings(&["--credentials", &credential(&dir, "ops", "ops-secret")]),
    );
    assert_eq!(cluster.wait_exit(ops, SHORT).code(), Some(1));
    let lines = cluster.task_lines(ops);
    assert!(
        lines.iter().any(|line| line
            .starts_with("task t-ops TASK_ERROR reason REASON_TASK_UNAUTHORIZED")
            && line.contains("not authorized by ACL permissive (no entry of run_tasks applies)")),
        "{lines:?}"
    );

    // web may: its task runs and finishes.
    let web_credentials = credential(&dir, "web", "web-secret");
    let web = submit(
        &mut cluster,
        "submit-web",
        &address,
        "t-web",
        &strings(&["--credentials", &web_credentials]),
    );
    assert!(cluster.wait_exit(web, LONG).success(), "{}", cluster.dump());
    assert_eq!(
        cluster.task_states(web).last().map(String::as_str),
        Some("TASK_FINISHED")
    );
    let framework = cluster
        .stdout(web)
        .lines()
        .find_map(|line| {
            line.strip_prefix("framework ")?
                .split_whitespace()
                .next()
                .map(str::to_owned)
        })
        .expect("submit printed its framework id");

    // ops may not take web's framework over: a framework's principal cannot change
    // (docs/security.md SEC40); nothing of its task runs.
    let hijack = submit(
        &mut cluster,
        "submit-ops-as-web",
        &address,
        "t-hijack",
        &strings(&[
            "--framework-id",
            &framework,
            "--credentials",
            &credential(&dir, "ops", "ops-secret"),
        ]),
    );
    assert_eq!(cluster.wait_exit(hijack, SHORT).code(), Some(1));
    let expected = format!(
        "framework {framework} was registered with principal 'web'; it cannot re-register with principal 'ops' (a framework's principal cannot change)"
    );
    assert!(
        cluster.log(hijack).contains(&expected),
        "{}",
        cluster.log(hijack)
    );
    assert!(cluster.log(master).contains(&expected));

    // web may not tear its framework down; ops may, as an operator that never registers
    // as the framework (SEC42).
    let teardown = |cluster: &mut Cluster, name: &str, credentials: &str| {
        cluster.spawn(
            name,
            &strings(&[
                "teardown",
                "--master",
                &address,
                "--framework-id",
                &framework,
                "--credentials",
                credentials,
            ]),
        )
    };
    let refused = teardown(&mut cluster, "teardown-web", &web_credentials);
    assert_eq!(cluster.wait_exit(refused, SHORT).code(), Some(1));
    assert!(
        cluster
            .log(refused)
            .contains("principal 'web' may not tear down frameworks of principal 'web'"),
        "{}",
        cluster.log(refused)
    );
    let allowed = teardown(
        &mut cluster,
        "teardown-ops",
        &credential(&dir, "ops", "ops-secret"),
    );
    assert!(
        cluster.wait_exit(allowed, SHORT).success(),
        "{}",
        cluster.log(allowed)
    );

    assert!(
        !agent_ran(&cluster, agent, &work_dir, "t-ops"),
        "{}",
        cluster.log(agent)
    );
    assert!(!agent_ran(&cluster, agent, &work_dir, "t-guest"));
    assert!(!agent_ran(&cluster, agent, &work_dir, "t-hijack"));
    assert!(
        agent_ran(&cluster, agent, &work_dir, "t-web"),
        "{}",
        cluster.log(agent)
    );
}

/// With TLS the certificate's principal is the one the ACLs judge.
#[test]
fn acls_judge_certificate_principals_with_tls() {
    let mut cluster = Cluster::new();
    let certs = cluster.path().join("certs");
    fs::create_dir(&certs).expect("certs dir");
    let ca = Ca::new("revenant-test-ca");
    let ca_path = ca.write(&certs, "ca");
    let acls = write(&certs, "acls.json", ACLS);
    let address = free_address();
    let mut args = strings(&[
        "master",
        "--listen",
        &address,
        "--acls",
        &acls.display().to_string(),
    ]);
    args.extend(tls_flags(&ca.issue(&certs, "master", false), &ca_path));
    let master = cluster.spawn("master", &args);
    cluster.wait_listening(master, &address);

    // An agent whose certificate names a principal the ACLs refuse is shut down.
    let rogue_flags = tls_flags(&ca.issue(&certs, "rogue-agent", false), &ca_path);
    let mut flags: Vec<&str> = FAST_AGENT_FLAGS.to_vec();
    flags.extend(rogue_flags.iter().map(String::as_str));
    let rogue_dir = cluster.work_dir("rogue");
    let rogue = cluster.agent("rogue-agent", &address, &free_address(), &rogue_dir, &flags);
    wait_until("the rogue agent refused", SHORT, || {
        cluster
            .log(master)
            .contains("principal 'rogue-agent' may not register an agent")
    });
    cluster.kill9(rogue);
    assert!(
        !cluster.log_has(master, "agent registered"),
        "{}",
        cluster.log(master)
    );

    let agent_flags = tls_flags(&ca.issue(&certs, "agent", false), &ca_path);
    let mut flags: Vec<&str> = FAST_AGENT_FLAGS.to_vec();
    flags.extend(agent_flags.iter().map(String::as_str));
    let work_dir = cluster.work_dir("work");
    let agent = cluster.agent("agent", &address, &free_address(), &work_dir, &flags);
    cluster.wait_log(agent, "registered with master", SHORT);

    let ops = submit(
        &mut cluster,
        "submit-ops",
        &address,
        "t-ops",
        &tls_flags(&ca.issue(&certs, "ops", false), &ca_path),
    );
    assert_eq!(cluster.wait_exit(ops, SHORT).code(), Some(1));
    assert!(
        cluster
            .stdout(ops)
            .contains("principal 'ops' may not run tasks as user"),
        "{}",
        cluster.stdout(ops)
    );
    let web = submit(
        &mut cluster,
        "submit-web",
        &address,
        "t-web",
        &tls_flags(&ca.issue(&certs, "web", false), &ca_path),
    );
    assert!(cluster.wait_exit(web, LONG).success(), "{}", cluster.dump());
    assert_eq!(
        cluster.task_states(web).last().map(String::as_str),
        Some("TASK_FINISHED")
    );
    assert!(
        !agent_ran(&cluster, agent, &work_dir, "t-ops"),
        "{}",
        cluster.log(agent)
    );
}

/// Bad files and flag combinations stop the role at start, naming the file and field.
#[test]
fn bad_security_files_are_clear_errors() {
    let mut cluster = Cluster::new();
    let dir = cluster.path().join("security");
    fs::create_dir(&dir).expect("dir");
    let bad_acls = write(
        &dir,
        "acls.json",
        r#"{"run_tasks": [{"principals": {"type": "ANY"}}]}"#,
    );
    let bad_credentials = write(
        &dir,
        "credentials.json",
        r#"{"credentials": [{"principal": "a"}]}"#,
    );
    let two = write(
        &dir,
        "two.json",
        r#"{"credentials": [{"principal": "a", "secret": "x"}, {"principal": "b", "secret": "y"}]}"#,
    );
    let cases = [
        (
            strings(&[
                "master",
                "--listen",
                &free_address(),
                "--acls",
                &bad_acls.display().to_string(),
            ]),
            format!(
                "--acls '{}': run_tasks[0]: missing field 'users'",
                bad_acls.display()
            ),
        ),
        (
            strings(&[
                "master",
                "--listen",
                &free_address(),
                "--credentials",
                &bad_credentials.display().to_string(),
            ]),
            format!(
                "--credentials '{}': credentials[0]: missing field 'secret'",
                bad_credentials.display()
            ),
        ),
        (
            strings(&[
                "submit",
                "--master",
                "127.0.0.1:1",
                "--command",
                "true",
                "--credentials",
                &two.display().to_string(),
            ]),
            "holds 2 credentials".to_owned(),
        ),
        (
            strings(&[
                "submit",
                "--master",
                "127.0.0.1:1",
                "--command",
                "true",
                "--credentials",
                &two.display().to_string(),
                "--tls-cert",
                "c",
                "--tls-key",
                "k",
                "--tls-ca",
                "a",
            ]),
            "--credentials is for clusters without TLS".to_owned(),
        ),
    ];
    for (index, (args, expected)) in cases.into_iter().enumerate() {
        let id = cluster.spawn(&format!("case-{index}"), &args);
        assert_eq!(
            cluster.wait_exit(id, SHORT).code(),
            Some(2),
            "{}",
            cluster.log(id)
        );
        assert!(
            cluster.log(id).contains(&expected),
            "{expected}: {}",
            cluster.log(id)
        );
    }
}

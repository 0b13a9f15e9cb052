//! The rogue framework (docs/security.md SEC35-SEC42): in runs that draw the rogue party
//! ([`crate::rogue`]), a framework the master's ACLs give no rights joins it. It proves
//! the principal [`ROGUE_PRINCIPAL`] (the simulated transport hands it to the master,
//! as a certificate or a credential would on real binaries), registers a framework of
//! its own as user [`ROGUE_USER`], then tries what it has no right to: it runs a task
//! as that user, tears down a framework whose executor it saw on agent 1's disk,
//! reserves resources for role [`ROGUE_ROLE`], and, on a second connection, re-registers
//! with that framework's id (a failover under another principal). It records what it
//! sent and every message the masters answered, on its own side; the `rogue` oracle
//! judges the record against what the frameworks, the process table and the disk saw.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use revenant::os::{BoxStream, Network};
use revenant::proto::envelope::Body;
use revenant::proto::{FrameworkInfo, StatusUpdateMessage, TaskInfo};

pub use crate::hosts::{principal_of_host, ROGUE_FRAMEWORK_HOST, ROGUE_PRINCIPAL};
use crate::machine::Machine;
use crate::observations::{Observations, MASTER_PORT};
use crate::rogue::Planned;
use crate::scenario::Scenario;
use crate::seams::SimNet;

/// The user the rogue framework asks its task to run as; the ACLs refuse it (SEC36).
pub const ROGUE_USER: &str = "root";

/// The role the rogue framework reserves for; the ACLs refuse it (SEC38).
pub const ROGUE_ROLE: &str = "rogue";

/// The id of the task the rogue framework submits (and of its executor).
pub const ROGUE_TASK: &str = "rogue-task";

/// The ACLs of the simulated master in runs that draw the rogue (SEC35): every principal
/// (the scenario's frameworks have none; the rogue has [`ROGUE_PRINCIPAL`]) may register;
/// tasks as any user but `sim`, and reservations for any role but the scenario's, are
/// refused. Teardowns are left to the rule that a framework tears down only itself.
/// Agents: the rogue agent's principal [`crate::hosts::ROGUE_AGENT_PRINCIPAL`] may not
/// register (docs/security.md SEC48); the scenario's agents have no principal, so no
/// list of principals applies to them (SEC21) and `permissive` admits them (SEC22).
pub const ROGUE_ACLS: &str = r#"{
  "permissive": true,
  "register_agents": [
    {"principals": {"values": ["rogue-agent"]}, "agents": {"type": "NONE"}}
  ],
  "run_tasks": [
    {"principals": {"type": "ANY"}, "users": {"values": ["sim"]}},
    {"principals": {"type": "ANY"}, "users": {"type": "NONE"}}
  ],
  "reserve_resources": [
    {"principals": {"type": "ANY"}, "roles": {"values": ["web", "db", "*"]}},
    {"principals": {"type": "ANY"}, "roles": {"type": "NONE"}}
  ]
}"#;

/// The master's ACLs for this run: [`ROGUE_ACLS`] when the rogue is drawn, otherwise
/// the default (everything allowed), so runs without it are unchanged (SEC35).
pub fn master_acls(scenario: &Scenario, seed: u64) -> revenant::security::acls::Acls {
    if crate::rogue::plan(scenario, seed).is_empty() {
        Default::default()
    } else {
        revenant::security::acls::Acls::parse(ROGUE_ACLS).expect("ROGUE_ACLS parses")
    }
}

/// How the rogue framework tells its connections apart in its record.
pub const FIRST: &str = "own";
/// Its second connection: the failover under another principal (SEC41).
pub const FAILOVER: &str = "failover";

/// The rogue framework: at the rogue's first planned time, registers with the leading
/// master, then strikes (module documentation).
pub async fn party(
    plan: Vec<Planned>,
    machine: Rc<Machine>,
    scenario: Scenario,
    observations: Rc<RefCell<Observations>>,
) {
    let Some(first) = plan.first() else { return };
    tokio::time::sleep(first.at).await;
    let info = FrameworkInfo {
        name: "rogue".into(),
        user: ROGUE_USER.into(),
        ..Default::default()
    };
    let Some((mut stream, id)) = register(&scenario, info, &observations, FIRST).await else {
        return;
    };
    strike(&mut stream, &id, &machine, &scenario, &observations).await;
}

/// Registers `info` with whichever master leads (twenty rounds over the masters), and
/// returns the connection and the framework id it was given; every answer is recorded
/// under `connection`. `None` when no master registered it.
async fn register(
    scenario: &Scenario,
    info: FrameworkInfo,
    observations: &Rc<RefCell<Observations>>,
    connection: &'static str,
) -> Option<(BoxStream, String)> {
    let net = SimNet::on(ROGUE_FRAMEWORK_HOST);
    for round in 0..20u32 {
        for index in 1..=scenario.masters.max(1) {
            let address = format!("master{index}:{MASTER_PORT}");
            let Ok(Ok(mut stream)) =
                tokio::time::timeout(Duration::from_secs(2), net.connect(&address)).await
            else {
                continue;
            };
            let register = Body::RegisterFramework(revenant::proto::RegisterFramework {
                info: Some(info.clone()),
            });
            if revenant::wire::write_envelope(&mut stream, register)
                .await
                .is_err()
            {
                continue;
            }
            let until = tokio::time::Instant::now() + Duration::from_secs(3);
            while let Ok(Ok(body)) =
                tokio::time::timeout_at(until, revenant::wire::read_envelope(&mut stream)).await
            {
                record(observations, connection, &body);
                match body {
                    Body::FrameworkRegistered(r) => return Some((stream, r.framework_id)),
                    // Refused or not leading: the failover attempt is over (SEC41), the
                    // first registration tries the next master.
                    Body::NotLeader(_) => break,
                    Body::FrameworkError(_) | Body::FrameworkRemoved(_) => return None,
                    _ => {}
                }
            }
        }
        tokio::time::sleep(Duration::from_secs(1 + u64::from(round))).await;
    }
    None
}

/// Records one message the master sent the rogue framework: (time, kind, connection and
/// what it names: the framework of a registration, removal or error, the task and
/// state of an update).
fn record(observations: &Rc<RefCell<Observations>>, connection: &str, body: &Body) {
    let now = turmoil::sim_elapsed().unwrap_or_default();
    let kind = revenant::wire::kind(body);
    let names = match body {
        Body::StatusUpdate(StatusUpdateMessage { update: Some(u) }) => u
            .status
            .as_ref()
            .map(|s| format!("{} {}", s.task_id, s.state().as_str_name()))
            .unwrap_or_default(),
        Body::FrameworkRegistered(r) => r.framework_id.clone(),
        Body::FrameworkRemoved(r) => r.framework_id.clone(),
        Body::FrameworkError(e) => format!("{}: {}", e.framework_id, e.message),
        _ => String::new(),
    };
    let detail = format!("{connection} {names}");
    tracing::info!(target: "revenant_sim", kind, %detail, "rogue framework heard from the master");
    observations
        .borrow_mut()
        .rogue
        .framework_received
        .push((now, kind, detail));
}

/// The attempts of a registered rogue framework `id` (module documentation).
async fn strike(
    stream: &mut BoxStream,
    id: &str,
    machine: &Machine,
    scenario: &Scenario,
    observations: &Rc<RefCell<Observations>>,
) {
    let targets = crate::rogue::targets(machine);
    let victim = targets.iter().find(|t| t.framework != id).cloned();
    let agent = targets.first().map(|t| t.agent.clone()).unwrap_or_default();
    let mut messages = vec![Body::SubmitTask(revenant::proto::SubmitTask {
        framework_id: id.to_owned(),
        task: Some(TaskInfo {
            task_id: ROGUE_TASK.into(),
            name: ROGUE_TASK.into(),
            executor_id: ROGUE_TASK.into(),
            ..Default::default()
        }),
    })];
    if let Some(victim) = &victim {
        messages.push(Body::TeardownFramework(
            revenant::proto::TeardownFramework {
                framework_id: victim.framework.clone(),
            },
        ));
    }
    messages.push(Body::ReserveResources(revenant::proto::ReserveResources {
        framework_id: id.to_owned(),
        agent_id: agent,
        resources: vec![revenant::proto::Resource {
            name: "cpus".into(),
            scalar: 0.5,
            role: ROGUE_ROLE.into(),
            reservation: "rogue".into(),
        }],
    }));
    let what = format!(
        "framework {id} (principal {ROGUE_PRINCIPAL}, user {ROGUE_USER}): task {ROGUE_TASK}, teardown of {}, reservation for role {ROGUE_ROLE}",
        victim.as_ref().map_or("no framework", |v| v.framework.as_str())
    );
    tracing::info!(target: "revenant_sim", attempt = %what, "rogue framework tries what it has no right to");
    {
        let now = turmoil::sim_elapsed().unwrap_or_default();
        let mut observations = observations.borrow_mut();
        let log = &mut observations.rogue;
        log.framework_id = Some(id.to_owned());
        log.framework_sent.push((now, what));
        if let Some(victim) = &victim {
            let index = victim
                .tasks
                .first()
                .map_or(0, |t| crate::observations::framework_of(scenario, t));
            log.attacked = Some((index, victim.framework.clone()));
        }
    }
    for body in messages {
        if revenant::wire::write_envelope(stream, body).await.is_err() {
            return;
        }
    }
    let until = tokio::time::Instant::now() + Duration::from_secs(5);
    while let Ok(Ok(body)) =
        tokio::time::timeout_at(until, revenant::wire::read_envelope(stream)).await
    {
        record(observations, FIRST, &body);
    }
    // SEC41: the failover under another principal, on a connection of its own.
    let Some(victim) = victim else { return };
    let what = format!(
        "re-registration as framework {} (principal {ROGUE_PRINCIPAL})",
        victim.framework
    );
    tracing::info!(target: "revenant_sim", attempt = %what, "rogue framework tries what it has no right to");
    {
        let now = turmoil::sim_elapsed().unwrap_or_default();
        let mut observations = observations.borrow_mut();
        observations.rogue.framework_sent.push((now, what));
        observations.rogue.failover_tried = true;
    }
    let info = FrameworkInfo {
        id: victim.framework.clone(),
        name: "rogue".into(),
        user: ROGUE_USER.into(),
        ..Default::default()
    };
    if let Some((mut stream, _)) = register(scenario, info, observations, FAILOVER).await {
        // Registered as another framework (a violation the oracle reports): whatever
        // that framework is sent now reaches the rogue.
        let until = tokio::time::Instant::now() + Duration::from_secs(5);
        while let Ok(Ok(body)) =
            tokio::time::timeout_at(until, revenant::wire::read_envelope(&mut stream)).await
        {
            record(observations, FAILOVER, &body);
        }
    }
}

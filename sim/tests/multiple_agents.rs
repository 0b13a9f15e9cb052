//! Several agent processes on one machine (`agents = N`): bad input is refused with an
//! error naming the field, and the oracles reason per agent (each still fails when the
//! rule it guards is broken on either agent, and does not blame one agent for another's
//! absence).

use std::path::Path;

use revenant::breakage::Breakage;
use revenant_sim::cluster::{self, RunOptions, RunResult};
use revenant_sim::scenario::{AgentTarget, FaultKind, Scenario};

/// The MultipleSlaves scenario: two agents, one task each, both crash at 5 s.
fn two_agents() -> Scenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("scenarios")
        .join("multiple_agents_on_one_host.toml");
    Scenario::load(&path).expect("scenario parses")
}

fn run(scenario: &Scenario, breakage: Breakage) -> RunResult {
    scenario.validate().expect("valid scenario");
    cluster::run(
        scenario,
        0,
        &RunOptions {
            breakage,
            ..RunOptions::default()
        },
    )
}

fn messages(result: &RunResult, oracle: &str) -> Vec<String> {
    result
        .violations
        .iter()
        .filter(|v| v.oracle == oracle)
        .map(|v| v.message.clone())
        .collect()
}

/// The validation error of a two-agent scenario with `fault` as its only fault.
fn fault_error(fault: &str) -> String {
    let text =
        format!("agents = 2\n[[tasks]]\nid = \"t1\"\ncommand = \"sleep 1\"\n[[faults]]\n{fault}\n");
    match toml::from_str::<Scenario>(&text) {
        Err(error) => error.to_string(),
        Ok(scenario) => scenario.validate().expect_err("must be refused"),
    }
}

#[test]
fn bad_agent_targets_are_refused_naming_the_field() {
    let error = fault_error("at_s = 1\nkind = \"agent_crash\"\non_agent = 3");
    assert!(
        error.contains("on_agent = 3") && error.contains("2 agent"),
        "{error}"
    );
    let error = fault_error("at_s = 1\nkind = \"agent_crash\"\non_agent = 0");
    assert!(error.contains("on_agent = 0"), "{error}");
    let error = fault_error("at_s = 1\nkind = \"agent_crash\"\non_agent = \"both\"");
    assert!(
        error.contains("on_agent") && error.contains("both"),
        "{error}"
    );
    let error = fault_error("at_s = 1\nkind = \"agent_crash\"\non_agent = true");
    assert!(error.contains("on_agent"), "{error}");
    let error = fault_error("at_s = 1\nkind = \"reboot\"\non_agent = 2");
    assert!(
        error.contains("on_agent") && error.contains("whole machine"),
        "{error}"
    );
    let error = toml::from_str::<Scenario>("agents = 4\n[[tasks]]\nid = \"t\"\ncommand = \"x\"")
        .expect("parses")
        .validate()
        .expect_err("four agents");
    assert!(error.contains("agents must be 1 to 3"), "{error}");
    let error = toml::from_str::<Scenario>(
        "agents = 2\n[[tasks]]\nid = \"t\"\ncommand = \"x\"\n[expect]\nreregistered = [3]",
    )
    .expect("parses")
    .validate()
    .expect_err("agent 3 of 2");
    assert!(error.contains("expect.reregistered"), "{error}");
}

#[test]
fn the_multiple_slaves_scenario_holds_every_oracle() {
    let result = run(&two_agents(), Breakage::default());
    assert!(result.violations.is_empty(), "{:?}", result.violations);
}

#[test]
fn expectations_catch_an_agent_that_did_not_reregister() {
    // Only agent 1 crashes: agent 2 never re-registers, though the scenario expects it.
    let mut scenario = two_agents();
    scenario.faults[0].on_agent = None;
    let result = run(&scenario, Breakage::default());
    let found = messages(&result, "expectations");
    assert!(
        found
            .iter()
            .any(|m| m.contains("agent 2 (agent1/2) did not re-register"))
            && !found.iter().any(|m| m.contains("agent 1 ")),
        "{found:?}"
    );
}

#[test]
fn recovery_timeout_is_judged_per_agent() {
    // Agent 2 crashes for good; agent 1 stays up, so its executor may live on.
    let mut scenario = two_agents();
    scenario.duration_s = 90.0;
    scenario.expect = None;
    scenario.tasks.iter_mut().for_each(|t| t.kill_at_s = None);
    scenario.faults[0].on_agent = Some(AgentTarget::One(2));
    scenario.faults[0].restart_after_s = None;
    let result = run(&scenario, Breakage::default());
    assert!(
        messages(&result, "recovery_timeout").is_empty(),
        "{:?}",
        result.violations
    );
    // Executors that wait forever: agent 2's (t1) is caught, agent 1's (t2) is not blamed.
    let breakage = Breakage {
        executor_ignores_recovery_timeout: true,
        ..Breakage::default()
    };
    let found = messages(&run(&scenario, breakage), "recovery_timeout");
    assert!(
        found.len() == 1 && found[0].contains("executor(s) t1 "),
        "{found:?}"
    );
}

#[test]
fn reboot_catches_either_agent_recovering_across_a_reboot() {
    let mut scenario = two_agents();
    scenario.expect = None;
    scenario.faults[0].kind = FaultKind::Reboot;
    scenario.faults[0].on_agent = None;
    let breakage = Breakage {
        ignore_boot_id: true,
        ..Breakage::default()
    };
    let found = messages(&run(&scenario, breakage), "reboot");
    for host in [
        " agent1 agent: recovered agent",
        " agent1/2 agent: recovered agent",
    ] {
        assert!(found.iter().any(|m| m.contains(host)), "{host}: {found:?}");
    }
    // Unbroken, both agents register as new agents after the reboot.
    let result = run(&scenario, Breakage::default());
    assert!(result.violations.is_empty(), "{:?}", result.violations);
}

#[test]
fn resources_catches_either_agent_forgetting_its_resources() {
    let breakage = Breakage {
        forget_checkpointed_resources: true,
        ..Breakage::default()
    };
    let result = run(&two_agents(), breakage);
    let agents: std::collections::BTreeSet<String> = result
        .violations
        .iter()
        .filter(|v| v.oracle == "resources")
        // The violation names the agent's trace host (both recover at the same instant
        // since executor wakes, docs/recovery-rules.md R32, so the time cannot tell).
        .filter_map(|v| v.message.split(':').next().map(str::to_owned))
        .collect();
    assert_eq!(
        agents.into_iter().collect::<Vec<_>>(),
        ["agent1", "agent1/2"],
        "{:?}",
        result.violations
    );
}

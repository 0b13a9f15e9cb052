//! Read-only queries of the leading master for the operator's CLI (`revenant tasks`):
//! one plain HTTP `GET /state`, never a registration, so a query cannot disturb the
//! framework it asks about (registering as the framework would fail its scheduler over).
//! The request itself is made by [`super::real_query`]; this module only decides whom to
//! ask and reads the answers, so it is tested without a network.

use std::collections::BTreeMap;
use std::time::Duration;

use revenant::http::state::MasterState;

/// The leading master's `/state`: each address in turn; a master that does not lead
/// names the leader, which is asked next.
fn leader_state(
    masters: &[String],
    mut get: impl FnMut(&str, &str) -> Result<(u16, String), String>,
) -> Result<MasterState, String> {
    let mut errors = Vec::new();
    let mut queue: Vec<String> = masters.to_vec();
    let mut asked = Vec::new();
    while let Some(address) = queue.first().cloned() {
        queue.remove(0);
        if asked.contains(&address) {
            continue;
        }
        asked.push(address.clone());
        match get(&address, "/state") {
            Ok((200, body)) => {
                let state: MasterState = serde_json::from_str(&body).map_err(|error| {
                    format!("master {address}: /state is not a master's state: {error}")
                })?;
                if state.leading {
                    return Ok(state);
                }
                if state.leader.is_empty() {
                    errors.push(format!(
                        "master {address} does not lead and knows no leader"
                    ));
                } else {
                    queue.insert(0, state.leader);
                }
            }
            Ok((status, _)) => errors.push(format!("master {address}: /state answered {status}")),
            Err(error) => errors.push(error),
        }
    }
    Err(format!("no leading master answered: {}", errors.join("; ")))
}

/// The tasks the leading master knows for `framework_id`, by task id, with their latest
/// states: on its agents (removed agents left out) and, for a torn-down framework, as it
/// recorded them. `None` when the master knows no such framework and no task of it.
pub fn framework_tasks(
    masters: &[String],
    framework_id: &str,
    timeout: Duration,
    tls: Option<&revenant::tls::TlsIdentity>,
) -> Result<Option<BTreeMap<String, String>>, String> {
    let state = leader_state(masters, |address, path| {
        super::real_query::get(address, path, timeout, tls)
    })?;
    Ok(tasks_of(&state, framework_id))
}

/// The tasks `state` lists for `framework_id` (see [`framework_tasks`]).
fn tasks_of(state: &MasterState, framework_id: &str) -> Option<BTreeMap<String, String>> {
    let mut tasks = BTreeMap::new();
    let mut known = state.frameworks.iter().any(|f| f.id == framework_id);
    for agent in state.agents.iter().filter(|a| a.phase != "removed") {
        for task in agent
            .tasks
            .iter()
            .filter(|t| t.framework_id == framework_id)
        {
            known = true;
            tasks.insert(task.id.clone(), task.state.clone());
        }
    }
    for framework in state
        .completed_frameworks
        .iter()
        .filter(|f| f.id == framework_id)
    {
        known = true;
        for task in &framework.tasks {
            tasks
                .entry(task.id.clone())
                .or_insert_with(|| task.state.clone());
        }
    }
    known.then_some(tasks)
}

#[cfg(test)]
mod tests {
    use revenant::http::state::{AgentTask, MasterAgent};

    use super::*;

    fn state(leading: bool, leader: &str) -> MasterState {
        MasterState {
            leading,
            leader: leader.into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_follower_names_the_leader_which_is_asked_next() {
        let mut asked = Vec::new();
        let found = leader_state(&["m1".into(), "m2".into()], |address, path| {
            asked.push(format!("{address}{path}"));
            let answer = match address {
                "m1" => state(false, "m3"),
                "m3" => state(true, "m3"),
                _ => return Err(format!("{address} should not be asked")),
            };
            Ok((200, serde_json::to_string(&answer).unwrap()))
        })
        .unwrap();
        assert!(found.leading);
        assert_eq!(asked, ["m1/state", "m3/state"]);
    }

    #[test]
    fn no_leader_is_an_error_naming_every_master() {
        let error = leader_state(&["m1".into(), "m2".into()], |address, _| match address {
            "m1" => Ok((503, String::new())),
            _ => Ok((200, serde_json::to_string(&state(false, "")).unwrap())),
        })
        .unwrap_err();
        assert!(error.contains("m1: /state answered 503"), "{error}");
        assert!(
            error.contains("m2 does not lead and knows no leader"),
            "{error}"
        );
    }

    #[test]
    fn a_leader_loop_ends() {
        let error = leader_state(&["m1".into()], |address, _| {
            let other = if address == "m1" { "m2" } else { "m1" };
            Ok((200, serde_json::to_string(&state(false, other)).unwrap()))
        })
        .unwrap_err();
        assert!(error.starts_with("no leading master answered"), "{error}");
    }

    #[test]
    fn tasks_of_removed_agents_are_left_out() {
        let task = |id: &str, state: &str| AgentTask {
            id: id.into(),
            framework_id: "f1".into(),
            state: state.into(),
        };
        let mut master = state(true, "m1");
        master.agents = vec![
            MasterAgent {
                phase: "connected".into(),
                tasks: vec![task("t1", "TASK_RUNNING")],
                ..Default::default()
            },
            MasterAgent {
                phase: "removed".into(),
                tasks: vec![task("t2", "TASK_LOST")],
                ..Default::default()
            },
        ];
        let tasks = tasks_of(&master, "f1").unwrap();
        assert_eq!(tasks.len(), 1);
        assert_eq!(tasks["t1"], "TASK_RUNNING");
        assert_eq!(tasks_of(&master, "f2"), None);
    }
}

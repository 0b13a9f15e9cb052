//! What the masters report during a run: at every tick each master leaves its `/state`
//! (through `revenant::observe`, which sends no message and logs nothing, so the run is
//! the same run); the driver keeps each master's latest answer with its time, and every
//! change of an agent's phase in a leading master's answers, in the observations. The `master_state` oracle judges them
//! (docs/task-lifecycle.md L25 to L27).

use std::cell::RefCell;
use std::time::Duration;

use crate::observations::Observations;

/// Called by the driver after each step, at simulated time `now`: takes the reports the
/// masters left at their ticks (every 250 ms), records each change of an agent's phase
/// in a leading master's report, and keeps each master's latest report.
pub fn after_step(observations: &RefCell<Observations>, now: Duration, _duration: Duration) {
    if !revenant::observe::master_states_wanted() {
        revenant::observe::want_master_states(true);
        return;
    }
    let reports = revenant::observe::take_master_states();
    if reports.is_empty() {
        return;
    }
    let mut observations = observations.borrow_mut();
    for (master, state) in reports {
        // docs/recovery-latency.md P38: a report equal to this master's previous one
        // changes nothing that is recorded but its time.
        if let Some((time, last)) = observations.master_reports.get_mut(&master) {
            if *last == state && crate::reconcile_watch::tap_unchanged(now, &master) {
                *time = now;
                continue;
            }
        }
        crate::reconcile_watch::tap(now, &master, &state);
        if state.leading {
            for agent in &state.agents {
                let key = (master.clone(), agent.id.clone());
                let changed = observations
                    .master_agent_phases
                    .iter()
                    .rev()
                    .find(|(_, m, a, _)| (m, a) == (&key.0, &key.1))
                    .is_none_or(|(_, _, _, phase)| *phase != agent.phase);
                // docs/task-lifecycle.md L37: and each change of its phase or resources.
                let view_changed = observations
                    .master_agent_resources
                    .iter()
                    .rev()
                    .find(|(_, m, a, _, _)| (m, a) == (&key.0, &key.1))
                    .is_none_or(|(_, _, _, phase, resources)| {
                        (phase, resources) != (&agent.phase, &agent.resources)
                    });
                if view_changed {
                    observations.master_agent_resources.push((
                        now,
                        key.0.clone(),
                        key.1.clone(),
                        agent.phase.clone(),
                        agent.resources.clone(),
                    ));
                }
                if changed {
                    observations
                        .master_agent_phases
                        .push((now, key.0, key.1, agent.phase.clone()));
                }
            }
        }
        observations.master_reports.insert(master, (now, state));
    }
}

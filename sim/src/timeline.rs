//! A run drawn as a timeline (`revenant-sim run … --timeline FILE.html`, and one per
//! failure of a sweep): ONE self-contained HTML file, with its CSS, script and data
//! inline and nothing fetched (docs/failing-runs.md F4–F8).
//!
//! - One lane per process: the simulator (faults), each master, each agent process's
//!   incarnation, each executor, each framework, and any other host (a coordinator).
//! - Faults and crashes as marks, recovery decisions (the typed trace decisions of
//!   [`crate::decision`]) as labelled events, the ends of agent incarnations and of
//!   executor processes as bars.
//! - Messages as arrows between lanes, from the run's message log ([`crate::messages`]);
//!   a lost message ends in a cross, a copy no one wrote starts dashed.
//! - The oracle's violations as red bands across every lane, listed at the top.
//! - Simulated time on the axis; the wheel zooms around the pointer, a drag pans, the
//!   buttons zoom and reset.
//!
//! Everything is drawn from what the simulator records anyway (trace, history,
//! observations) plus the message log; the data is embedded as one compact JSON object
//! (names interned) and drawn by the page's script, so a long run stays a small file.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use crate::cluster::{self, RunOptions, RunResult};
use crate::decision::Decision;
use crate::messages::Message;
use crate::scenario::Scenario;

/// Runs `scenario` at `seed` with the message log on: the same run as without it (the
/// log only reads), plus its messages.
pub fn record(scenario: &Scenario, seed: u64, options: &RunOptions) -> (RunResult, Vec<Message>) {
    crate::messages::start();
    let result = cluster::run(scenario, seed, options);
    let messages = crate::messages::finish();
    (result, messages)
}

/// Runs `scenario` at `seed` and writes its timeline to `path`; returns the run.
pub fn write(
    path: &Path,
    scenario: &Scenario,
    seed: u64,
    options: &RunOptions,
) -> Result<RunResult, String> {
    let (result, messages) = record(scenario, seed, options);
    std::fs::write(path, render(&result, &messages))
        .map_err(|error| format!("cannot write timeline '{}': {error}", path.display()))?;
    Ok(result)
}

/// One lane.
#[derive(Clone, Debug)]
struct Lane {
    key: String,
    label: String,
    class: &'static str,
    from: Duration,
    to: Option<Duration>,
}

/// Decisions drawn as labelled events: the recovery decisions. Routine ones (every
/// update accepted and acknowledged, each delivery) are in the message arrows already.
fn drawn(decision: Decision) -> bool {
    !matches!(
        decision,
        Decision::FaultInjected
            | Decision::AgentProcessStarting
            | Decision::FrameworkReceivedUpdate
            | Decision::StatusUpdateAccepted
            | Decision::UpdateAcknowledgedToExecutor
    )
}

struct Lanes {
    lanes: Vec<Lane>,
    index: BTreeMap<String, usize>,
    /// Agent process → its starts: (time, lane key).
    incarnations: BTreeMap<u32, Vec<(Duration, String)>>,
}

impl Lanes {
    fn add(&mut self, lane: Lane) -> usize {
        if let Some(index) = self.index.get(&lane.key) {
            return *index;
        }
        self.index.insert(lane.key.clone(), self.lanes.len());
        self.lanes.push(lane);
        self.lanes.len() - 1
    }

    /// The lane of a process named by its host (or lane key) at time `t`: an agent
    /// process's host names its incarnation at that time.
    fn of(&mut self, name: &str, t: Duration) -> usize {
        if let Some(agent) = cluster::agent_of_host(name) {
            if let Some(starts) = self.incarnations.get(&agent) {
                let key = starts
                    .iter()
                    .rev()
                    .find(|(start, _)| *start <= t)
                    .or(starts.first())
                    .map(|(_, key)| key.clone());
                if let Some(key) = key {
                    return self.index[&key];
                }
            }
        }
        let class = class_of(name);
        self.add(Lane {
            key: name.to_owned(),
            label: name.to_owned(),
            class,
            from: Duration::ZERO,
            to: None,
        })
    }
}

fn class_of(name: &str) -> &'static str {
    if name == "sim" {
        "sim"
    } else if name.starts_with("master") {
        "master"
    } else if name.starts_with("framework") {
        "framework"
    } else if name.starts_with("executor ") {
        "executor"
    } else if cluster::agent_of_host(name).is_some() {
        "agent"
    } else {
        "other"
    }
}

/// The order lanes are shown in: simulator, masters, agents, executors, frameworks,
/// others; within a class, in order of appearance.
fn class_rank(class: &str) -> usize {
    ["sim", "master", "agent", "executor", "framework", "other"]
        .iter()
        .position(|c| *c == class)
        .unwrap_or(5)
}

/// The lane a fault names, when it crashes or kills a process: `master1 crashed`,
/// `executor task-005 (pid 1010) crashed`, `agent dies at …`, a reboot.
fn crash_target(description: &str) -> Option<String> {
    let crash = ["crashed", "dies", "reboot", "power", "killed"]
        .iter()
        .any(|word| description.contains(word));
    if !crash {
        return None;
    }
    let mut words = description.split_whitespace();
    let first = words.next()?;
    if first == "executor" {
        return words.next().map(|id| format!("executor {id}"));
    }
    if first == "agent" || description.contains("reboot") || description.contains("power") {
        return Some(cluster::agent_trace_host(1));
    }
    (first.starts_with("master")
        || first.starts_with("framework")
        || cluster::agent_of_host(first).is_some())
    .then(|| first.to_owned())
}

fn micros(t: Duration) -> u64 {
    t.as_micros() as u64
}

/// The timeline of a run as one HTML file.
pub fn render(result: &RunResult, messages: &[Message]) -> String {
    let observations = &result.observations;
    let history = &observations.history;
    let mut lanes = Lanes {
        lanes: Vec::new(),
        index: BTreeMap::new(),
        incarnations: BTreeMap::new(),
    };
    lanes.add(Lane {
        key: "sim".into(),
        label: "simulator: faults".into(),
        class: "sim",
        from: Duration::ZERO,
        to: None,
    });
    // Each agent incarnation, from its start to its end (the next start, or its exit).
    for start in &history.agent_starts {
        let host = cluster::agent_trace_host(start.agent);
        let key = format!("{host} #{}", start.incarnation);
        let ended = observations
            .agent_exits
            .iter()
            .find(|(t, agent, _)| *agent == start.agent && *t >= start.time)
            .map(|(t, _, _)| *t);
        let next = history
            .agent_starts
            .iter()
            .find(|s| s.agent == start.agent && s.time > start.time)
            .map(|s| s.time);
        let to = match (ended, next) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        lanes.add(Lane {
            key: key.clone(),
            label: format!(
                "agent {host} incarnation {} (boot {})",
                start.incarnation, start.boot
            ),
            class: "agent",
            from: start.time,
            to,
        });
        lanes
            .incarnations
            .entry(start.agent)
            .or_default()
            .push((start.time, key));
    }
    // Executors, from their first process's start to their last one's end.
    let mut executors: BTreeMap<&str, (Duration, Option<Duration>)> = BTreeMap::new();
    let mut executor_order = Vec::new();
    for process in &history.processes {
        let end = process.ended.map(|(t, _)| t);
        executors
            .entry(process.executor_id.as_str())
            .and_modify(|(_, to)| *to = end)
            .or_insert_with(|| {
                executor_order.push(process.executor_id.as_str());
                (process.started, end)
            });
    }
    for id in executor_order {
        let (from, to) = executors[id];
        lanes.add(Lane {
            key: format!("executor {id}"),
            label: format!("executor {id}"),
            class: "executor",
            from,
            to,
        });
    }

    // Marks: (time, lane, class, label).
    let mut marks: Vec<(Duration, usize, &'static str, String)> = Vec::new();
    for event in &result.trace {
        let lane = if event.host == "sim" {
            lanes.of("sim", event.time)
        } else if let (true, Some(id)) = (event.role == "executor", event.field("executor")) {
            lanes.of(&format!("executor {id}"), event.time)
        } else {
            lanes.of(&event.host, event.time)
        };
        match event.decision {
            Some(Decision::FaultInjected) => {
                let description = event.field("fault").unwrap_or_default().to_owned();
                let sim = lanes.of("sim", event.time);
                marks.push((event.time, sim, "fault", description.clone()));
                if let Some(target) = crash_target(&description) {
                    let target = lanes.of(&target, event.time);
                    marks.push((event.time, target, "crash", description));
                }
            }
            Some(decision) if drawn(decision) => {
                let detail: Vec<String> = ["task", "executor", "agent"]
                    .iter()
                    .filter_map(|k| event.field(k).map(|v| format!("{k}={v}")))
                    .collect();
                let label = format!("{decision:?} {}", detail.join(" "));
                marks.push((event.time, lane, "decision", label.trim_end().to_owned()));
            }
            _ => {}
        }
    }
    for (time, agent, outcome) in &observations.agent_exits {
        let lane = lanes.of(&cluster::agent_trace_host(*agent), *time);
        marks.push((
            *time,
            lane,
            "end",
            format!("agent process ended: {outcome:?}"),
        ));
    }
    for process in &history.processes {
        let lane = lanes.of(
            &format!("executor {}", process.executor_id),
            process.started,
        );
        marks.push((
            process.started,
            lane,
            "start",
            format!(
                "process {} started (run {})",
                process.pid, process.container
            ),
        ));
        if let Some((time, how)) = process.ended {
            marks.push((
                time,
                lane,
                "end",
                format!("process {} ended: {how:?}", process.pid),
            ));
        }
    }
    for (time, message) in &history.panics {
        let sim = lanes.of("sim", *time);
        marks.push((*time, sim, "crash", format!("panic: {message}")));
    }

    // Messages: (sent, received, from, to, kind, about).
    let mut kinds: Vec<&'static str> = Vec::new();
    let mut arrows = Vec::new();
    for message in messages {
        let at_from = message.sent.or(message.received).unwrap_or_default();
        let at_to = message.received.or(message.sent).unwrap_or_default();
        let from = lanes.of(&message.from, at_from);
        let to = lanes.of(&message.to, at_to);
        let kind = match kinds.iter().position(|k| *k == message.kind) {
            Some(index) => index,
            None => {
                kinds.push(message.kind);
                kinds.len() - 1
            }
        };
        arrows.push((
            message.sent,
            message.received,
            from,
            to,
            kind,
            &message.about,
            message.duplicate,
        ));
    }

    // Lanes in display order; marks and arrows refer to display positions.
    let mut order: Vec<usize> = (0..lanes.lanes.len()).collect();
    order.sort_by_key(|index| (class_rank(lanes.lanes[*index].class), *index));
    let mut position = vec![0usize; order.len()];
    for (shown, index) in order.iter().enumerate() {
        position[*index] = shown;
    }
    let end = result
        .trace
        .last()
        .map(|e| e.time)
        .into_iter()
        .chain(result.violations.iter().map(|v| v.time))
        .chain(messages.iter().filter_map(|m| m.received.or(m.sent)))
        .max()
        .unwrap_or_default();

    let mut data = String::from("{");
    let _ = write!(
        data,
        "\"name\":{},\"seed\":{},\"end\":{},\"lanes\":[",
        json(&result.scenario),
        result.seed,
        micros(end)
    );
    for (shown, index) in order.iter().enumerate() {
        let lane = &lanes.lanes[*index];
        let _ = write!(
            data,
            "{}[{},{},{},{},{}]",
            if shown == 0 { "" } else { "," },
            json(&lane.key),
            json(&lane.label),
            json(lane.class),
            micros(lane.from),
            lane.to.map_or(-1, |t| micros(t) as i64)
        );
    }
    data.push_str("],\"marks\":[");
    marks.sort_by(|a, b| a.0.cmp(&b.0).then(position[a.1].cmp(&position[b.1])));
    for (i, (time, lane, class, label)) in marks.iter().enumerate() {
        let _ = write!(
            data,
            "{}[{},{},{},{}]",
            if i == 0 { "" } else { "," },
            micros(*time),
            position[*lane],
            json(class),
            json(label)
        );
    }
    data.push_str("],\"kinds\":[");
    for (i, kind) in kinds.iter().enumerate() {
        let _ = write!(data, "{}{}", if i == 0 { "" } else { "," }, json(kind));
    }
    data.push_str("],\"msgs\":[");
    for (i, (sent, received, from, to, kind, about, duplicate)) in arrows.iter().enumerate() {
        let _ = write!(
            data,
            "{}[{},{},{},{},{},{},{}]",
            if i == 0 { "" } else { "," },
            sent.map_or(-1, |t| micros(t) as i64),
            received.map_or(-1, |t| micros(t) as i64),
            position[*from],
            position[*to],
            kind,
            json(about),
            u8::from(*duplicate)
        );
    }
    data.push_str("],\"violations\":[");
    for (i, violation) in result.violations.iter().enumerate() {
        let _ = write!(
            data,
            "{}[{},{},{}]",
            if i == 0 { "" } else { "," },
            micros(violation.time),
            json(violation.oracle),
            json(&violation.message)
        );
    }
    data.push_str("]}");

    let mut violations = String::new();
    for (i, violation) in result.violations.iter().enumerate() {
        let _ = write!(
            violations,
            "<li class=\"violation\" id=\"violation-item-{i}\" data-oracle=\"{}\" data-time=\"{}\">VIOLATION [{}] at {:.3}s: {}</li>",
            html(violation.oracle),
            micros(violation.time),
            html(violation.oracle),
            violation.time.as_secs_f64(),
            html(&violation.message)
        );
    }
    if violations.is_empty() {
        violations.push_str("<li class=\"held\">every oracle held</li>");
    }
    let title = format!("{} seed {}", result.scenario, result.seed);
    TEMPLATE
        .replace("{{TITLE}}", &html(&title))
        .replace(
            "{{SUMMARY}}",
            &html(&format!(
                "{} lanes, {} messages, {} marks, {} trace events, {:.3}s simulated; trace hash {:016x}",
                order.len(),
                arrows.len(),
                marks.len(),
                result.trace.len(),
                end.as_secs_f64(),
                result.trace_hash
            )),
        )
        .replace("{{VIOLATIONS}}", &violations)
        .replace("{{DATA}}", &data)
}

/// A JSON string literal, safe inside a `<script>` element (no `<` appears raw).
fn json(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            c if (c as u32) < 0x20 || c == '\u{2028}' || c == '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Text for HTML.
fn html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const TEMPLATE: &str = include_str!("timeline.html");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_cannot_close_the_script() {
        assert_eq!(
            json("a</script>\"b\n"),
            "\"a\\u003c/script\\u003e\\\"b\\n\""
        );
    }

    #[test]
    fn crashes_name_their_lane() {
        assert_eq!(crash_target("master1 crashed").as_deref(), Some("master1"));
        assert_eq!(
            crash_target("executor task-005 (pid 1010) crashed").as_deref(),
            Some("executor task-005")
        );
        assert_eq!(
            crash_target("agent dies at its filesystem operation 3 from now").as_deref(),
            Some("agent1")
        );
        assert_eq!(crash_target("partition agent1 <-> framework for 3s"), None);
        assert_eq!(
            crash_target("duplicate the next 2 kill_task message(s)"),
            None
        );
    }
}

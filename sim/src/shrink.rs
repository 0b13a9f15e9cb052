//! Shrinking a failing run (`revenant-sim shrink FILE.repro.toml`): the smallest fixed
//! schedule that still fails the same oracle at the same seed, written as a regression
//! scenario.
//!
//! A swarm run's faults are a function of the scenario and the seed
//! ([`cluster::schedule_for`]). The shrinker writes them out as a fixed `faults` list and
//! empties the swarm's `per_minute` rates, keeping the `[swarm]` table itself: its
//! workload knobs (`gc_delay_s`, reservations, large tasks) and the swarm's defaults
//! (latency) are drawn from streams of their own and so stay what they were. The same
//! seed then replays the same run. From there it removes what the failure does not need,
//! re-running the seed after each step and keeping a step only when the run still breaks
//! the same oracle:
//!
//! 1. faults, by delta debugging (halves, then smaller chunks, down to one at a time);
//! 2. each remaining downtime, partition or delay, halved while it still fails, and
//!    each optional field the failure does not need (the swarm draws every field for
//!    every kind) left out;
//! 3. generated tasks (halving their count: the first N stay the same tasks) and
//!    listed tasks, one at a time; drawn reservations and large tasks, switched off.
//!
//! The result is checked once more after it is written and read back, so that what is
//! on disk is what failed.
// Reads and writes scenario files for the command line, outside any simulated run.
#![allow(clippy::disallowed_methods)]

use std::path::Path;

use crate::cluster::{self, RunOptions};
use crate::scenario::{FaultSpec, Scenario};

/// What a shrink found.
#[derive(Debug)]
pub struct Shrunk {
    /// The scenario file's text (a regression scenario pinned at the seed).
    pub toml: String,
    /// The oracle the run breaks.
    pub oracle: &'static str,
    /// Its first message in the shrunk run.
    pub message: String,
    /// Runs the shrink took (the original included).
    pub runs: usize,
    /// Faults of the original run and of the shrunk one.
    pub faults_before: usize,
    /// See `faults_before`.
    pub faults_after: usize,
}

struct Search<'a> {
    seed: u64,
    options: &'a RunOptions,
    oracle: &'static str,
    runs: usize,
    progress: &'a mut dyn FnMut(&str),
}

impl Search<'_> {
    /// Whether `scenario` at the seed still breaks the oracle.
    fn fails(&mut self, scenario: &Scenario) -> bool {
        self.runs += 1;
        let result = cluster::run(scenario, self.seed, self.options);
        result.violations.iter().any(|v| v.oracle == self.oracle)
    }
}

fn with_faults(base: &Scenario, faults: &[FaultSpec]) -> Scenario {
    let mut scenario = base.clone();
    scenario.faults = faults.to_vec();
    scenario
}

/// Shrinks the run of `path` at `seed` (run with `options`: the command line gives the
/// defaults; tests may add a breakage). `progress` hears one line per step.
pub fn shrink(
    path: &Path,
    seed: u64,
    options: &RunOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<Shrunk, String> {
    let original = Scenario::load(path)?;
    let first = cluster::run(&original, seed, options);
    let Some(violation) = first.violations.first() else {
        return Err(format!(
            "{} seed {seed} holds every oracle: there is nothing to shrink",
            path.display()
        ));
    };
    let oracle = violation.oracle;
    let mut search = Search {
        seed,
        options,
        oracle,
        runs: 1,
        progress,
    };
    (search.progress)(&format!(
        "the run breaks the {oracle} oracle: {}",
        violation.message
    ));

    // The drawn schedule, written out; the swarm keeps its knobs but draws no fault.
    let mut base = original.clone();
    let mut faults = cluster::schedule_for(&original, seed);
    base.faults.clear();
    if let Some(swarm) = &mut base.swarm {
        swarm.per_minute.clear();
    }
    let faults_before = faults.len();
    if !search.fails(&with_faults(&base, &faults)) {
        return Err(format!(
            "the run's {faults_before} faults, written out as a fixed schedule, no longer break the {oracle} oracle at seed {seed}: this failure cannot be shrunk this way"
        ));
    }

    // 1. Delta debugging over the faults.
    let mut chunks = 2usize;
    while !faults.is_empty() {
        let size = faults.len().div_ceil(chunks);
        let mut removed = false;
        let mut start = 0;
        while start < faults.len() {
            let end = (start + size).min(faults.len());
            let mut trial = faults.clone();
            trial.drain(start..end);
            if search.fails(&with_faults(&base, &trial)) {
                (search.progress)(&format!(
                    "{} fault(s) left (removed {} at {:.1}s..)",
                    trial.len(),
                    end - start,
                    faults[start].at_s
                ));
                faults = trial;
                removed = true;
                chunks = (chunks - 1).max(2);
                break;
            }
            start = end;
        }
        if !removed {
            if size <= 1 {
                break;
            }
            chunks = (chunks * 2).min(faults.len());
        }
    }

    // 2. Shorter downtimes, partitions and delays.
    for index in 0..faults.len() {
        for field in [Field::Restart, Field::Duration] {
            while let Some(value) = field.get(&faults[index]) {
                if value < 0.5 {
                    break;
                }
                let mut trial = faults.clone();
                field.set(&mut trial[index], (value / 2.0 * 1000.0).round() / 1000.0);
                if !search.fails(&with_faults(&base, &trial)) {
                    break;
                }
                faults = trial;
            }
        }
    }
    // Fields the fault's kind does not read (the swarm draws every field for every kind)
    // or that the failure does not need, left out.
    for index in 0..faults.len() {
        for field in OPTIONAL_FIELDS {
            let mut trial = faults.clone();
            if !field(&mut trial[index]) {
                continue;
            }
            if search.fails(&with_faults(&base, &trial)) {
                faults = trial;
            }
        }
    }
    base.faults = faults.clone();

    // 3. A smaller workload.
    while let Some(generated) = &base.generated_tasks {
        if generated.count <= 1 {
            break;
        }
        let mut trial = base.clone();
        if let Some(g) = &mut trial.generated_tasks {
            g.count /= 2;
        }
        if !search.fails(&trial) {
            break;
        }
        (search.progress)(&format!(
            "{} generated task(s)",
            trial.generated_tasks.as_ref().map_or(0, |g| g.count)
        ));
        base = trial;
    }
    let mut index = 0;
    while index < base.tasks.len() && base.tasks.len() > 1 {
        let mut trial = base.clone();
        trial.tasks.remove(index);
        if search.fails(&trial) {
            base = trial;
        } else {
            index += 1;
        }
    }
    if base.swarm.as_ref().is_some_and(|s| s.reservations > 0) {
        let mut trial = base.clone();
        if let Some(swarm) = &mut trial.swarm {
            swarm.reservations = 0;
        }
        if search.fails(&trial) {
            base = trial;
        }
    }
    if base
        .swarm
        .as_ref()
        .is_some_and(|s| s.large_task_fraction > 0.0)
    {
        let mut trial = base.clone();
        if let Some(swarm) = &mut trial.swarm {
            swarm.large_task_fraction = 0.0;
        }
        if search.fails(&trial) {
            base = trial;
        }
    }

    let last = cluster::run(&base, seed, options);
    search.runs += 1;
    let message = last
        .violations
        .iter()
        .find(|v| v.oracle == oracle)
        .map(|v| v.message.clone())
        .unwrap_or_default();
    let toml = write_toml(path, &original, &base, seed, oracle, &message, search.runs)?;
    Ok(Shrunk {
        toml,
        oracle,
        message,
        runs: search.runs,
        faults_before,
        faults_after: base.faults.len(),
    })
}

/// Each clears one optional field of a fault, saying whether it was set.
const OPTIONAL_FIELDS: &[fn(&mut FaultSpec) -> bool] = &[
    |f| f.a.take().is_some(),
    |f| f.b.take().is_some(),
    |f| f.jump_s.take().is_some(),
    |f| f.max_ms.take().is_some(),
    |f| f.duration_s.take().is_some(),
    |f| f.ops.take().is_some(),
    |f| f.restart_after_s.take().is_some(),
    |f| f.error.take().is_some(),
];

#[derive(Clone, Copy)]
enum Field {
    Restart,
    Duration,
}

impl Field {
    fn get(self, fault: &FaultSpec) -> Option<f64> {
        match self {
            Field::Restart => fault.restart_after_s,
            Field::Duration => fault.duration_s,
        }
    }
    fn set(self, fault: &mut FaultSpec, value: f64) {
        match self {
            Field::Restart => fault.restart_after_s = Some(value),
            Field::Duration => fault.duration_s = Some(value),
        }
    }
}

/// The regression scenario's text: the original file's tables, with the shrunk faults,
/// workload and knobs, the swarm's rates emptied, the seed pinned and a header naming
/// where it came from.
fn write_toml(
    path: &Path,
    original: &Scenario,
    shrunk: &Scenario,
    seed: u64,
    oracle: &str,
    message: &str,
    runs: usize,
) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut table: toml::Table =
        toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    table.insert("name".into(), toml::Value::String(original.name.clone()));
    table.insert(
        "rule".into(),
        toml::Value::String(format!(
            "shrunk from {} seed {seed}: the {oracle} oracle must hold",
            original.name
        )),
    );
    let faults = toml::Value::try_from(&shrunk.faults).map_err(|e| format!("faults: {e}"))?;
    table.insert("faults".into(), faults);
    table.insert(
        "pinned_seeds".into(),
        toml::Value::Array(vec![toml::Value::Integer(seed as i64)]),
    );
    if let Some(swarm) = table.get_mut("swarm").and_then(|s| s.as_table_mut()) {
        swarm.insert("per_minute".into(), toml::Value::Table(toml::Table::new()));
        if let Some(knobs) = &shrunk.swarm {
            if knobs.reservations == 0 && swarm.contains_key("reservations") {
                swarm.insert("reservations".into(), toml::Value::Integer(0));
            }
            if knobs.large_task_fraction == 0.0 && swarm.contains_key("large_task_fraction") {
                swarm.insert("large_task_fraction".into(), toml::Value::Float(0.0));
            }
        }
    }
    if let (Some(generated), Some(table)) = (
        &shrunk.generated_tasks,
        table
            .get_mut("generated_tasks")
            .and_then(|g| g.as_table_mut()),
    ) {
        table.insert(
            "count".into(),
            toml::Value::Integer(i64::from(generated.count)),
        );
    }
    if let Some(tasks) = table.get_mut("tasks").and_then(|t| t.as_array_mut()) {
        let kept: Vec<&str> = shrunk.tasks.iter().map(|t| t.id.as_str()).collect();
        tasks.retain(|t| {
            t.get("id")
                .and_then(|id| id.as_str())
                .is_some_and(|id| kept.contains(&id))
        });
    }
    let body = toml::to_string(&table).map_err(|e| format!("scenario: {e}"))?;
    let first_line = message.lines().next().unwrap_or_default();
    Ok(format!(
        "# Shrunk by `revenant-sim shrink` from {} seed {seed} in {runs} runs: it breaks the\n\
         # `{oracle}` oracle ({first_line}).\n\
         # Before keeping it: name the bug and the rule it breaks here, and add its snapshot\n\
         # test to tests/scenario_traces.rs.\n{body}",
        path.display()
    ))
}

/// Where `sweep --shrink` writes the shrunk scenario of a failure: next to its
/// reproduction file and trace, named as `scenarios/regression_*.toml` wants it.
pub fn output_for(out: &Path, failure: &crate::sweep::Failure) -> std::path::PathBuf {
    let stem = failure
        .scenario
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    out.join(format!(
        "regression_shrunk_{stem}_seed{}.toml",
        failure.seed
    ))
}

/// Whether the scenario file at `path`, read back, still breaks `oracle` at `seed`
/// (what is on disk must be what failed).
pub fn written_still_fails(
    path: &Path,
    seed: u64,
    options: &RunOptions,
    oracle: &str,
) -> Result<bool, String> {
    let scenario = Scenario::load(path)?;
    Ok(cluster::run(&scenario, seed, options)
        .violations
        .iter()
        .any(|v| v.oracle == oracle))
}

/// `sweep --shrink` (docs/failing-runs.md F1–F3): shrinks one failure of a sweep and
/// writes the result under `out`
/// (see [`output_for`]), checked by reading it back. Returns the file and the shrink.
pub fn shrink_failure(
    out: &Path,
    failure: &crate::sweep::Failure,
    options: &RunOptions,
) -> Result<(std::path::PathBuf, Shrunk), String> {
    if let Some(branch) = failure.branch {
        return Err(format!(
            "a branch of --explore ({branch}) is not a plain seed: a scenario file cannot pin its fresh randomness; reproduce it with --branch {branch}"
        ));
    }
    let mut quiet = |_: &str| {};
    let shrunk = shrink(&failure.scenario, failure.seed, options, &mut quiet)?;
    let path = output_for(out, failure);
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    std::fs::write(&path, &shrunk.toml).map_err(|e| format!("{}: {e}", path.display()))?;
    if !written_still_fails(&path, failure.seed, options, shrunk.oracle)? {
        return Err(format!(
            "{} as written no longer breaks the {} oracle (a field did not survive the round trip); left in place for a look",
            path.display(),
            shrunk.oracle
        ));
    }
    Ok((path, shrunk))
}

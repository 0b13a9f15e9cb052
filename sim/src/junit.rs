//! CI reports of a sweep as JUnit XML (`sweep --junit FILE`), and the merge of the reports
//! of a sweep's shards into one (`revenant-sim merge`). Built on `quick-junit`.
//!
//! One test case per scenario file (named by its stem, class `revenant-sim.sweep`), with
//! two kinds of properties that carry what a merge needs: `runs` (how many runs the
//! scenario had in this report) and one `failure` per failed run (`SEED violation`: the seed, a space, the line;
//! one property per violation line). A scenario with a failed run is a `failure` whose
//! message counts the failed runs and whose text lists, for each, the seed, the oracle's
//! messages and the command that reproduces it. Nondeterministic runs are failures too
//! (oracle `determinism`). Nothing in a report depends on wall time, so the same sweep
//! gives the same report.
// Reports are files the command line writes and reads, outside any simulated run.
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use quick_junit::{NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestSuite};

use crate::sweep::Summary;

/// The suite's and the report's name.
const SUITE: &str = "revenant-sim sweep";

/// One scenario's results: how many runs, and each failed run's seed and violation lines.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScenarioResult {
    /// The scenario's path as the sweep named it.
    pub path: String,
    /// Runs of the scenario.
    pub runs: u64,
    /// Failed runs: seed, then the violation lines.
    pub failures: BTreeMap<u64, Vec<String>>,
}

/// The results of a sweep by scenario name (the file stem).
pub type Results = BTreeMap<String, ScenarioResult>;

fn stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// A sweep's summary as results by scenario.
pub fn results(summary: &Summary) -> Results {
    let mut results = Results::new();
    for (path, runs) in &summary.runs_per_scenario {
        let entry = results.entry(stem(path)).or_default();
        entry.path = path.display().to_string();
        entry.runs += *runs as u64;
    }
    for failure in &summary.failed {
        let entry = results.entry(stem(&failure.scenario)).or_default();
        entry.path = failure.scenario.display().to_string();
        let lines = entry.failures.entry(failure.seed).or_default();
        match failure.branch {
            // A branch of `sweep --explore`: its violations, and how to run that branch.
            Some(branch) => lines.extend(
                failure
                    .violations
                    .iter()
                    .map(|v| format!("{v} (branch {branch}: add --branch {branch})")),
            ),
            None => lines.extend(failure.violations.iter().cloned()),
        }
    }
    for (path, seed) in &summary.nondeterministic {
        let entry = results.entry(stem(path)).or_default();
        entry.path = path.display().to_string();
        entry.failures.entry(*seed).or_default().push(
            "[determinism] the seed's two traces differed: run it with --check-determinism"
                .to_owned(),
        );
    }
    results
}

/// The JUnit report of `results`.
pub fn report(results: &Results) -> Report {
    let mut suite = TestSuite::new(SUITE);
    for (name, result) in results {
        let status = if result.failures.is_empty() {
            TestCaseStatus::success()
        } else {
            let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
            let first_oracle = result
                .failures
                .values()
                .flatten()
                .next()
                .and_then(|line| line.strip_prefix('[')?.split(']').next())
                .unwrap_or("oracle")
                .to_owned();
            status.set_type(first_oracle);
            status.set_message(format!(
                "{} of {} runs failed (seeds {})",
                result.failures.len(),
                result.runs,
                result
                    .failures
                    .keys()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            let mut text = String::new();
            for (seed, lines) in &result.failures {
                text.push_str(&format!("seed {seed}\n"));
                for line in lines {
                    text.push_str(&format!("  {line}\n"));
                }
                text.push_str(&format!(
                    "  reproduce: cargo run --release -p revenant-sim -- run {} --seed {seed}\n",
                    result.path
                ));
            }
            status.set_description(text);
            status
        };
        let mut case = TestCase::new(name.as_str(), status);
        case.set_classname("revenant-sim.sweep");
        case.add_property(Property::new("path", result.path.as_str()));
        case.add_property(Property::new("runs", result.runs.to_string()));
        for (seed, lines) in &result.failures {
            for line in lines {
                case.add_property(Property::new("failure", format!("{seed} {line}")));
            }
        }
        suite.add_test_case(case);
    }
    let mut report = Report::new(SUITE);
    report.add_test_suite(suite);
    report
}

/// Reads the results back from a report this module wrote.
pub fn read(path: &Path) -> Result<Results, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| format!("{}: cannot read: {error}", path.display()))?;
    let report = Report::deserialize_from_str(&text)
        .map_err(|error| format!("{}: not a JUnit report: {error}", path.display()))?;
    let mut results = Results::new();
    if report.test_suites.is_empty() {
        return Err(format!(
            "{}: no test suite (not a revenant-sim sweep report)",
            path.display()
        ));
    }
    for suite in &report.test_suites {
        if suite.name.as_str() != SUITE {
            return Err(format!(
                "{}: suite '{}' is not a revenant-sim sweep report",
                path.display(),
                suite.name.as_str()
            ));
        }
        for case in &suite.test_cases {
            let entry = results.entry(case.name.as_str().to_owned()).or_default();
            let mut runs = None;
            for property in &case.properties {
                let name = property.name.as_str();
                let value = property.value.as_str();
                match name {
                    "path" => entry.path = value.to_owned(),
                    "runs" => {
                        runs = Some(value.parse::<u64>().map_err(|_| {
                            format!(
                                "{}: test case '{}': runs '{value}' is not a number",
                                path.display(),
                                case.name.as_str()
                            )
                        })?)
                    }
                    "failure" => {
                        let (seed, line) = value
                            .split_once(' ')
                            .and_then(|(s, l)| Some((s.parse::<u64>().ok()?, l)))
                            .ok_or_else(|| {
                                format!(
                                    "{}: test case '{}': failure '{value}' is not 'SEED violation'",
                                    path.display(),
                                    case.name.as_str()
                                )
                            })?;
                        entry
                            .failures
                            .entry(seed)
                            .or_default()
                            .push(line.to_owned());
                    }
                    _ => {}
                }
            }
            entry.runs += runs.ok_or_else(|| {
                format!(
                    "{}: test case '{}' has no runs property (not written by revenant-sim)",
                    path.display(),
                    case.name.as_str()
                )
            })?;
        }
    }
    Ok(results)
}

/// Merges the results of several reports (a sweep's shards): runs add up, failures join.
/// The same seed of the same scenario failing in two reports (overlapping shards) is
/// refused, since a merge would count that run twice.
pub fn merge(files: &[PathBuf]) -> Result<Results, String> {
    let mut merged = Results::new();
    for file in files {
        for (name, result) in read(file)? {
            let entry = merged.entry(name.clone()).or_default();
            if entry.path.is_empty() {
                entry.path = result.path.clone();
            }
            entry.runs += result.runs;
            for (seed, lines) in result.failures {
                if entry.failures.insert(seed, lines).is_some() {
                    return Err(format!(
                        "{}: scenario '{name}' seed {seed} is already in another report (overlapping shards?)",
                        file.display()
                    ));
                }
            }
        }
    }
    Ok(merged)
}

/// Writes `results` as a JUnit report to `path`.
pub fn write(path: &Path, results: &Results) -> Result<(), String> {
    let text = report(results)
        .to_string()
        .map_err(|error| format!("JUnit report: {error}"))?;
    std::fs::write(path, text).map_err(|error| format!("{}: cannot write: {error}", path.display()))
}

/// Whether every run of `results` held.
pub fn green(results: &Results) -> bool {
    results.values().all(|r| r.failures.is_empty())
}

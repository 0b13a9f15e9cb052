//! `revenant-sim`: run one seeded scenario, sweep many, or replay a recorded failure.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use revenant_sim::cluster::{self, RunOptions};
use revenant_sim::scenario::Scenario;

#[derive(Parser)]
#[command(name = "revenant-sim", version, about = "Deterministic crash-recovery simulation of the Revenant agent")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one scenario with one seed.
    Run {
        /// The scenario file.
        scenario: PathBuf,
        /// The seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Write the trace to this file.
        #[arg(long)]
        trace: Option<PathBuf>,
        /// Run the seed twice and compare the traces byte for byte.
        #[arg(long)]
        check_determinism: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run { scenario: path, seed, trace, check_determinism } => {
            let scenario = match Scenario::load(&path) {
                Ok(scenario) => scenario,
                Err(error) => {
                    eprintln!("error: {error}");
                    return ExitCode::from(2);
                }
            };
            let result = cluster::run(&scenario, seed, &RunOptions::default());
            if let Some(trace_path) = &trace {
                let text: String = result.trace.iter().map(|e| e.line() + "\n").collect();
                if let Err(error) = std::fs::write(trace_path, text) {
                    eprintln!("error: cannot write trace '{}': {error}", trace_path.display());
                    return ExitCode::from(2);
                }
            }
            println!("scenario {} seed {}: {} trace events, trace hash {:016x}", scenario.name, seed, result.trace.len(), result.trace_hash);
            for (task, (state, reason)) in &result.final_states {
                println!("  task {task}: {} ({reason})", state.as_str_name());
            }
            if check_determinism {
                let again = cluster::run(&scenario, seed, &RunOptions::default());
                if again.trace_hash != result.trace_hash {
                    let first = result.trace.iter().zip(&again.trace).position(|(a, b)| a != b).unwrap_or(result.trace.len().min(again.trace.len()));
                    eprintln!("NOT DETERMINISTIC: traces differ at event {first}:");
                    eprintln!("  first run:  {}", result.trace.get(first).map(|e| e.line()).unwrap_or_else(|| "(end)".into()));
                    eprintln!("  second run: {}", again.trace.get(first).map(|e| e.line()).unwrap_or_else(|| "(end)".into()));
                    return ExitCode::FAILURE;
                }
                println!("deterministic: two runs gave trace hash {:016x}", again.trace_hash);
            }
            if result.violations.is_empty() {
                println!("ok: every oracle held");
                ExitCode::SUCCESS
            } else {
                for violation in &result.violations {
                    println!("VIOLATION [{}] at {:.3}s: {}", violation.oracle, violation.time.as_secs_f64(), violation.message);
                }
                println!("reproduce: cargo run --release -p revenant-sim -- run {} --seed {seed}", path.display());
                ExitCode::FAILURE
            }
        }
    }
}

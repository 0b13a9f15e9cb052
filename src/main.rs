//! The `revenant` binary: `inspect` (and, as they land, `agent`, `master`, `executor`,
//! `submit`, `tasks`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use revenant::os::{BootId, FileSystem};

#[derive(Parser)]
#[command(
    name = "revenant",
    version,
    about = "A Mesos-style node agent built for crash recovery"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Recover a work directory's checkpoints read-only and report them.
    Inspect {
        /// The agent's work directory (the one holding `meta/`).
        #[arg(long = "work-dir", alias = "work_dir")]
        work_dir: PathBuf,
        /// Stop at the first unreadable or corrupt file, as the agent does with `--strict`.
        #[arg(long)]
        strict: bool,
        /// Print JSON instead of a report for a person.
        #[arg(long)]
        json: bool,
        /// Do not compare the checkpointed boot id with this machine's (show the agent
        /// state even if the machine rebooted since).
        #[arg(long)]
        ignore_boot_id: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Inspect {
            work_dir,
            strict,
            json,
            ignore_boot_id,
        } => {
            let fs = revenant::os::real::RealFs::default();
            let boot_id = if ignore_boot_id {
                None
            } else {
                revenant::os::real::ProcBootId.boot_id().ok()
            };
            if !fs.is_dir(&work_dir) {
                eprintln!(
                    "error: work directory '{}' does not exist",
                    work_dir.display()
                );
                return ExitCode::from(2);
            }
            match revenant::inspect::inspect(&fs, &work_dir, strict, boot_id) {
                Ok(state) => {
                    if json {
                        let value = revenant::inspect::render_json(&work_dir, state.as_ref());
                        println!("{}", serde_json::to_string_pretty(&value).expect("json"));
                    } else {
                        print!(
                            "{}",
                            revenant::inspect::render_text(&work_dir, state.as_ref())
                        );
                    }
                    ExitCode::SUCCESS
                }
                Err(error) => {
                    eprintln!("error: {error}");
                    eprintln!("(strict recovery stopped; without --strict the file is counted as an error and the rest is shown)");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

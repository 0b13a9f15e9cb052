//! `revenant inspect`: a read-only recovery of a work directory, reported.

use std::path::PathBuf;
use std::process::ExitCode;

use revenant::os::{BootId, FileSystem};

#[derive(clap::Args)]
pub struct InspectArgs {
    /// The agent's work directory (the one holding `meta/`).
    #[arg(long = "work-dir", alias = "work_dir")]
    pub work_dir: PathBuf,
    /// Stop at the first unreadable or corrupt file, as the agent does with `--strict`.
    #[arg(long)]
    pub strict: bool,
    /// Print JSON instead of a report for a person.
    #[arg(long)]
    pub json: bool,
    /// Do not compare the checkpointed boot id with this machine's (show the agent
    /// state even if the machine rebooted since).
    #[arg(long)]
    pub ignore_boot_id: bool,
}

/// `revenant inspect`.
pub fn inspect(args: InspectArgs) -> ExitCode {
    let InspectArgs {
        work_dir,
        strict,
        json,
        ignore_boot_id,
    } = args;
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
                out!("{}", serde_json::to_string_pretty(&value).expect("json"));
            } else {
                let text = revenant::inspect::render_text(&work_dir, state.as_ref());
                let _ = std::io::Write::write_all(&mut std::io::stdout(), text.as_bytes());
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

//! The `revenant` binary: `agent`, `master`, `executor` (launched by the agent),
//! `submit` (a one-task framework), `tasks`, `teardown` (tear a framework down) and
//! `inspect` (read-only recovery of a work directory). Each role is a module of
//! [`cli`].
#![allow(clippy::disallowed_methods)]

use std::process::ExitCode;

use clap::Parser;

mod cli;
mod flag_checks;

use cli::{Cli, Command};

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Agent(args) => cli::agent::agent(args),
        Command::Master(args) => cli::master::master(args),
        Command::Executor => cli::executor::executor(),
        Command::Submit(args) => cli::framework::submit(args),
        Command::Tasks(args) => cli::framework::tasks(args),
        Command::Teardown(args) => cli::framework::teardown(args),
        Command::Inspect(args) => cli::inspect::inspect(args),
    }
}

//! `revenant executor`, launched by the agent.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::rc::Rc;

use revenant::os::Env;

use super::{block_on, init_logging};

/// `revenant executor`: run by the agent with its settings in the environment.
pub fn executor() -> ExitCode {
    init_logging();
    let variables: BTreeMap<String, String> = std::env::vars().collect();
    let settings = match revenant::executor::ExecutorSettings::from_environment(&variables) {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("error: {error} (the executor is launched by the agent)");
            return ExitCode::from(2);
        }
    };
    // docs/security.md SEC12: TLS when the agent handed its files over.
    let env = match revenant::tls::TlsFiles::from_environment(&variables)
        .and_then(|files| revenant::tls::secure(Env::real(), files.as_ref()))
    {
        Ok(env) => env,
        Err(error) => {
            eprintln!("error: {error} (the executor is launched by the agent)");
            return ExitCode::from(2);
        }
    };
    let exit = block_on(revenant::executor::run(
        env,
        settings,
        Rc::new(revenant::executor::ShellRunner),
    ));
    eprintln!("executor exited: {exit:?}");
    ExitCode::SUCCESS
}

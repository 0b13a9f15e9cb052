//! The boot id fails closed (docs/design.md D13): an agent whose boot id cannot be read,
//! or reads empty, does not start and says why, naming the file; and an empty boot id is
//! never checkpointed.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::io;
use std::rc::Rc;

use revenant::agent::{AgentConfig, AgentError};
use revenant::checkpoint::paths::MetaPaths;
use revenant::checkpoint::CheckpointStore;
use revenant::os::real::{RealFs, BOOT_ID_PATH};
use revenant::os::{BootId, Env};

/// A boot id seam that answers what it was given.
struct FixedBootId(Result<String, (io::ErrorKind, String)>);

impl BootId for FixedBootId {
    fn boot_id(&self) -> io::Result<String> {
        self.0
            .clone()
            .map_err(|(kind, message)| io::Error::new(kind, message))
    }
}

/// Runs an agent on a fresh work directory with `boot`; its error and the directory.
fn start(boot: FixedBootId) -> (AgentError, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut env = Env::real();
    env.boot = Rc::new(boot);
    let config = AgentConfig::new(
        vec!["127.0.0.1:1".into()],
        "127.0.0.1:0".into(),
        dir.path().to_path_buf(),
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let local = tokio::task::LocalSet::new();
    let result = local.block_on(&runtime, revenant::agent::run(env, config));
    let error = result.expect_err("an agent without a boot id must not start");
    (error, dir)
}

/// No boot id file anywhere under `dir`.
fn no_boot_id_written(dir: &std::path::Path) {
    let boot_id = MetaPaths::for_work_dir(dir).boot_id();
    assert!(!boot_id.exists(), "{} was written", boot_id.display());
}

#[test]
fn an_unreadable_boot_id_stops_the_agent_naming_the_file() {
    let (error, dir) = start(FixedBootId(Err((
        io::ErrorKind::PermissionDenied,
        format!("{BOOT_ID_PATH}: permission denied"),
    ))));
    assert!(matches!(error, AgentError::BootId { .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.contains(BOOT_ID_PATH), "{message}");
    assert!(message.contains("boot id"), "{message}");
    no_boot_id_written(dir.path());
}

#[test]
fn an_empty_boot_id_stops_the_agent() {
    for empty in ["", "  \n"] {
        let (error, dir) = start(FixedBootId(Ok(empty.to_owned())));
        assert!(matches!(error, AgentError::BootId { .. }), "{error:?}");
        assert!(error.to_string().contains("empty"), "{error}");
        no_boot_id_written(dir.path());
    }
}

#[test]
fn an_empty_boot_id_is_never_checkpointed() {
    let dir = tempfile::tempdir().unwrap();
    let paths = MetaPaths::for_work_dir(dir.path());
    let store = CheckpointStore::new(Rc::new(RealFs::default()), paths.clone());
    let error = store
        .write_boot_id("")
        .expect_err("an empty boot id is refused");
    assert_eq!(error.path, paths.boot_id());
    assert!(error.to_string().contains("empty boot id"), "{error}");
    assert!(!paths.boot_id().exists());
    // A real one is written as before.
    store.write_boot_id("b-1").unwrap();
    assert_eq!(std::fs::read_to_string(paths.boot_id()).unwrap(), "b-1\n");
}

#[test]
fn the_real_boot_id_reads_this_machine() {
    // On Linux the file exists; the seam trims it and never answers "".
    let id = revenant::os::real::ProcBootId.boot_id().unwrap();
    assert!(!id.is_empty() && id.trim() == id);
}

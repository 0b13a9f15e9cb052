//! The master's registry: the agents the cluster admitted and those it removed, kept in
//! `<work_dir>/registry` so that it outlives a master and is shared by the masters that
//! contend for leadership (see [`crate::detector`]).
//!
//! The file is an info file (see `docs/checkpoint-format.md`) holding one `Registry`
//! message, replaced atomically and durably on every change. A master writes an admission
//! before it tells the agent its id, and a removal before it tells anyone the agent's
//! tasks are lost: after a failover the new leader knows every agent that was told it is
//! registered (and waits `agent_reregister_timeout` for it) and never lets a removed
//! agent back in. Frameworks torn down (or removed at their failover timeout,
//! docs/lifecycle-rules.md rule 8) are kept too, so that a new leader still shuts
//! them down on agents that report their tasks. The frameworks registered and not torn down
//! are kept with their principals (docs/security.md SEC43), written before the framework
//! hears it is registered, so that a newly elected master refuses a registration with
//! their id under another principal before any agent has reported them. Tasks are not kept: the agents report them when they re-register, and
//! frameworks learn about the rest by reconciliation, as in Mesos.

use std::path::{Path, PathBuf};
use std::rc::Rc;

use prost::Message;

use crate::checkpoint::record::{info_file, read_info, InfoRead};
use crate::os::FileSystem;
use crate::proto::{
    AgentInfo, Registry as RegistryMessage, RegistryAgent, RegistryFramework, RegistryRemoval,
};

/// The registry file's name inside the master's work directory.
pub const REGISTRY_FILE: &str = "registry";

/// Removed agents kept at most (the oldest are forgotten first).
pub const REMOVED_AGENTS_MAX: usize = 10_000;

/// Torn-down frameworks kept at most (the oldest are forgotten first).
pub const TORN_DOWN_FRAMEWORKS_MAX: usize = 10_000;

/// Registered frameworks whose principals are kept at most (the oldest registered are
/// forgotten first; docs/security.md SEC44 says what a forgotten one may still do).
pub const FRAMEWORKS_MAX: usize = 10_000;

/// Where the registry lives, or nowhere (a master without a work directory keeps it in
/// memory only).
pub struct Registry {
    store: Option<Store>,
    state: RegistryMessage,
}

enum Store {
    File(Rc<dyn FileSystem>, PathBuf),
    Other(Box<dyn RegistryStore>),
}

/// A place other than a file that keeps the registry's encoded `Registry` message (the
/// ZooKeeper node of docs/zookeeper.md Z7).
pub trait RegistryStore {
    /// What to name in errors.
    fn name(&self) -> String;
    /// Reads the registry (empty if there is none yet). A store that fences writers
    /// claims the registry here for this master (docs/zookeeper.md Z8).
    fn load(&mut self) -> Result<Vec<u8>, String>;
    /// Replaces the registry; fails if another writer claimed it since the last load.
    fn save(&mut self, payload: &[u8]) -> Result<(), String>;
}

/// A change the master's core made to the registry, to be made durable by its driver
/// before anything after it is done (docs/design.md D77).
#[derive(Debug)]
pub struct RegistryWrite(RegistryMessage);

/// A registry that could not be read or written; names the file.
#[derive(Debug, thiserror::Error)]
#[error("registry '{path}': {message}")]
pub struct RegistryError {
    /// The registry file.
    pub path: PathBuf,
    /// What went wrong.
    pub message: String,
}

impl Registry {
    /// A registry kept in memory only.
    pub fn in_memory() -> Registry {
        Registry {
            store: None,
            state: RegistryMessage::default(),
        }
    }

    /// The registry in `dir` (created if missing), read from disk.
    pub fn open(fs: Rc<dyn FileSystem>, dir: &Path) -> Result<Registry, RegistryError> {
        let path = dir.join(REGISTRY_FILE);
        let error = |message: String| RegistryError {
            path: path.clone(),
            message,
        };
        fs.create_dir_all_durably(dir)
            .map_err(|e| error(format!("cannot create the directory: {e}")))?;
        let mut registry = Registry {
            store: Some(Store::File(fs, path.clone())),
            state: RegistryMessage::default(),
        };
        registry.reload()?;
        Ok(registry)
    }

    /// Reads the file again (a newly elected master does, since another master may have
    /// changed it).
    pub fn reload(&mut self) -> Result<(), RegistryError> {
        let (fs, path) = match &mut self.store {
            None => return Ok(()),
            Some(Store::File(fs, path)) => (fs, path),
            Some(Store::Other(store)) => {
                let name = store.name();
                let error = |message: String| RegistryError {
                    path: PathBuf::from(&name),
                    message,
                };
                let payload = store.load().map_err(error)?;
                self.state = RegistryMessage::decode(payload.as_slice())
                    .map_err(|e| error(format!("cannot decode: {e}")))?;
                return Ok(());
            }
        };
        let error = |message: String| RegistryError {
            path: path.clone(),
            message,
        };
        self.state = if fs.exists(path) {
            let data = fs.read(path).map_err(|e| error(e.to_string()))?;
            match read_info(&data).map_err(error)? {
                InfoRead::Empty => RegistryMessage::default(),
                InfoRead::Message(payload) => RegistryMessage::decode(payload)
                    .map_err(|e| error(format!("cannot decode: {e}")))?,
            }
        } else {
            RegistryMessage::default()
        };
        Ok(())
    }

    /// The registry in another store, read from it.
    pub fn in_store(store: Box<dyn RegistryStore>) -> Result<Registry, RegistryError> {
        let mut registry = Registry {
            store: Some(Store::Other(store)),
            state: RegistryMessage::default(),
        };
        registry.reload()?;
        Ok(registry)
    }

    /// The agents, in the order they were admitted.
    pub fn agents(&self) -> &[RegistryAgent] {
        &self.state.agents
    }

    /// Whether the registry says this agent was removed.
    pub fn is_removed(&self, agent_id: &str) -> bool {
        self.state
            .agents
            .iter()
            .any(|a| a.removed && a.info.as_ref().is_some_and(|i| i.id == agent_id))
    }

    /// Admits an agent (or updates its info), durably.
    pub fn admit(&mut self, info: &AgentInfo) -> Result<(), RegistryError> {
        match self.next_admit(info) {
            Some(next) => self.commit(next),
            None => Ok(()),
        }
    }

    /// Admits an agent (or updates its info) at once, leaving the write to the master's
    /// driver (docs/design.md D77); `None` when the registry already holds exactly that.
    pub fn stage_admit(&mut self, info: &AgentInfo) -> Option<RegistryWrite> {
        self.next_admit(info).map(|next| self.stage(next))
    }

    fn next_admit(&self, info: &AgentInfo) -> Option<RegistryMessage> {
        let mut next = self.state.clone();
        match next
            .agents
            .iter_mut()
            .find(|a| a.info.as_ref().is_some_and(|i| i.id == info.id))
        {
            Some(entry) if entry.info.as_ref() == Some(info) && !entry.removed => return None,
            Some(entry) => {
                entry.info = Some(info.clone());
                entry.removed = false;
            }
            None => next.agents.push(RegistryAgent {
                info: Some(info.clone()),
                removed: false,
            }),
        }
        Some(next)
    }

    /// Marks an agent removed, durably.
    pub fn remove(&mut self, info: &AgentInfo) -> Result<(), RegistryError> {
        let next = self.next_remove(info);
        self.commit(next)
    }

    /// Marks an agent removed at once, leaving the write to the master's driver
    /// (docs/design.md D77).
    pub fn stage_remove(&mut self, info: &AgentInfo) -> RegistryWrite {
        let next = self.next_remove(info);
        self.stage(next)
    }

    fn next_remove(&self, info: &AgentInfo) -> RegistryMessage {
        let mut next = self.state.clone();
        next.agents
            .retain(|a| a.info.as_ref().is_none_or(|i| i.id != info.id));
        next.agents.push(RegistryAgent {
            info: Some(info.clone()),
            removed: true,
        });
        let removed = next.agents.iter().filter(|a| a.removed).count();
        if removed > REMOVED_AGENTS_MAX {
            let mut excess = removed - REMOVED_AGENTS_MAX;
            next.agents.retain(|a| {
                if a.removed && excess > 0 {
                    excess -= 1;
                    false
                } else {
                    true
                }
            });
        }
        next
    }

    /// Whether the registry says this framework was torn down.
    pub fn is_torn_down(&self, framework_id: &str) -> bool {
        self.state
            .torn_down_frameworks
            .iter()
            .any(|f| f == framework_id)
    }

    /// The frameworks torn down, oldest first.
    pub fn torn_down_frameworks(&self) -> &[String] {
        &self.state.torn_down_frameworks
    }

    /// The principal a framework registered with, if the registry keeps it
    /// (docs/security.md SEC43): `None` when it does not know the framework, `Some(None)`
    /// for one registered without a principal.
    pub fn framework_principal(&self, framework_id: &str) -> Option<Option<&str>> {
        self.state
            .frameworks
            .iter()
            .find(|f| f.id == framework_id)
            .map(|f| Some(f.principal.as_str()).filter(|p| !p.is_empty()))
    }

    /// Records a registered framework and its principal, durably (SEC43); nothing is
    /// written when the registry already holds exactly that. Beyond [`FRAMEWORKS_MAX`]
    /// the oldest are forgotten first.
    pub fn record_framework(
        &mut self,
        framework_id: &str,
        principal: Option<&str>,
    ) -> Result<(), RegistryError> {
        match self.next_framework(framework_id, principal) {
            Some(next) => self.commit(next),
            None => Ok(()),
        }
    }

    /// [`Registry::record_framework`] at once, leaving the write to the master's driver
    /// (docs/design.md D77).
    pub fn stage_framework(
        &mut self,
        framework_id: &str,
        principal: Option<&str>,
    ) -> Option<RegistryWrite> {
        self.next_framework(framework_id, principal)
            .map(|next| self.stage(next))
    }

    fn next_framework(
        &self,
        framework_id: &str,
        principal: Option<&str>,
    ) -> Option<RegistryMessage> {
        if self.framework_principal(framework_id) == Some(principal) {
            return None;
        }
        let mut next = self.state.clone();
        next.frameworks.retain(|f| f.id != framework_id);
        next.frameworks.push(RegistryFramework {
            id: framework_id.to_owned(),
            principal: principal.unwrap_or_default().to_owned(),
        });
        let excess = next.frameworks.len().saturating_sub(FRAMEWORKS_MAX);
        next.frameworks.drain(..excess);
        Some(next)
    }

    /// Why a framework the registry says was removed was removed (SEC44), if it says.
    pub fn removal_message(&self, framework_id: &str) -> Option<&str> {
        self.state
            .removals
            .iter()
            .find(|r| r.framework_id == framework_id)
            .map(|r| r.message.as_str())
    }

    /// Records a framework as removed for good (torn down, or its failover timeout ran
    /// out) with what a scheduler coming back is told, durably (the oldest are forgotten
    /// first beyond [`TORN_DOWN_FRAMEWORKS_MAX`]).
    pub fn tear_down(&mut self, framework_id: &str, message: &str) -> Result<(), RegistryError> {
        match self.next_tear_down(framework_id, message) {
            Some(next) => self.commit(next),
            None => Ok(()),
        }
    }

    /// [`Registry::tear_down`] at once, leaving the write to the master's driver
    /// (docs/design.md D77).
    pub fn stage_tear_down(&mut self, framework_id: &str, message: &str) -> Option<RegistryWrite> {
        self.next_tear_down(framework_id, message)
            .map(|next| self.stage(next))
    }

    fn next_tear_down(&self, framework_id: &str, message: &str) -> Option<RegistryMessage> {
        if self.is_torn_down(framework_id) {
            return None;
        }
        let mut next = self.state.clone();
        next.torn_down_frameworks.push(framework_id.to_owned());
        next.removals.push(RegistryRemoval {
            framework_id: framework_id.to_owned(),
            message: message.to_owned(),
        });
        let excess = next.removals.len().saturating_sub(TORN_DOWN_FRAMEWORKS_MAX);
        next.removals.drain(..excess);
        // A torn-down framework cannot register again, so its principal no longer matters.
        next.frameworks.retain(|f| f.id != framework_id);
        let excess = next
            .torn_down_frameworks
            .len()
            .saturating_sub(TORN_DOWN_FRAMEWORKS_MAX);
        next.torn_down_frameworks.drain(..excess);
        Some(next)
    }

    /// Makes a staged change durable (docs/design.md D77): the master's driver does,
    /// when it reaches the change among the core's effects.
    pub fn write(&mut self, write: RegistryWrite) -> Result<(), RegistryError> {
        self.save(&write.0)
    }

    /// Takes `next` as the registry's state now; the write is the caller's.
    fn stage(&mut self, next: RegistryMessage) -> RegistryWrite {
        self.state = next.clone();
        RegistryWrite(next)
    }

    /// Writes `next`, then takes it as the state.
    fn commit(&mut self, next: RegistryMessage) -> Result<(), RegistryError> {
        self.save(&next)?;
        self.state = next;
        Ok(())
    }

    fn save(&mut self, next: &RegistryMessage) -> Result<(), RegistryError> {
        match &mut self.store {
            None => {}
            Some(Store::File(fs, path)) => {
                fs.replace_atomically(path, &info_file(&next.encode_to_vec()))
                    .map_err(|e| RegistryError {
                        path: path.clone(),
                        message: format!("cannot write: {e}"),
                    })?;
            }
            Some(Store::Other(store)) => {
                store
                    .save(&next.encode_to_vec())
                    .map_err(|message| RegistryError {
                        path: PathBuf::from(store.name()),
                        message: format!("cannot write: {message}"),
                    })?;
            }
        }
        Ok(())
    }
}

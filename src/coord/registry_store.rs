//! The master's registry in one node of the coordination service (docs/zookeeper.md
//! Z7, Z8): every write checks the version this master last read or wrote, and that its
//! member node still exists, so only the current leader's writes succeed.

use std::rc::Rc;

use super::contender::SharedMember;
use super::{CoordError, Coordination};
use crate::registry::RegistryStore;

/// The registry node, written with version checks fenced by the leader's member node.
pub struct CoordRegistryStore {
    coord: Rc<dyn Coordination>,
    path: String,
    member: SharedMember,
    version: Option<i32>,
    /// Test-only: claims the registry by writing an empty one (no flag sets it).
    #[cfg(feature = "breakage")]
    forget_on_load: bool,
}

impl CoordRegistryStore {
    /// The registry at `path`, fenced by `member` (the contender's member node).
    pub fn new(coord: Rc<dyn Coordination>, path: String, member: SharedMember) -> Self {
        CoordRegistryStore {
            coord,
            path,
            member,
            version: None,
            #[cfg(feature = "breakage")]
            forget_on_load: false,
        }
    }

    #[cfg(feature = "breakage")]
    /// Applies the test-only switches (`crate::breakage`) that concern the store.
    pub fn with_breakage(mut self, breakage: crate::breakage::Breakage) -> Self {
        self.forget_on_load = breakage.master_forgets_zk_registry;
        self
    }

    fn fence(&self) -> Option<String> {
        self.member.borrow().as_ref().map(|m| m.path.clone())
    }
}

impl RegistryStore for CoordRegistryStore {
    fn name(&self) -> String {
        format!("zookeeper node {}", self.path)
    }

    fn load(&mut self) -> Result<Vec<u8>, String> {
        self.version = None;
        let (data, version) = match self.coord.get(&self.path).map_err(|e| e.to_string())? {
            Some(found) => found,
            None => match self.coord.create(&self.path, &[]) {
                Ok(version) => (Vec::new(), version),
                Err(CoordError::NodeExists(_)) => self
                    .coord
                    .get(&self.path)
                    .map_err(|e| e.to_string())?
                    .ok_or_else(|| format!("{} vanished while being read", self.path))?,
                Err(error) => return Err(error.to_string()),
            },
        };
        // Claim it (docs/zookeeper.md Z8): writing it back bumps the version, so that a
        // deposed leader's next write fails even if it still believes it leads. Only a
        // master holding a member node claims; a read without one (a tool) does not.
        let data = if broken!(self.forget_on_load) && self.fence().is_some() {
            Vec::new()
        } else {
            data
        };
        self.version = Some(match self.fence() {
            Some(fence) => self
                .coord
                .set(&self.path, &data, version, Some(&fence))
                .map_err(|e| e.to_string())?,
            None => version,
        });
        Ok(data)
    }

    fn save(&mut self, payload: &[u8]) -> Result<(), String> {
        let version = self
            .version
            .ok_or_else(|| format!("{}: written before it was read", self.path))?;
        let fence = self
            .fence()
            .ok_or_else(|| format!("{}: this master holds no member node", self.path))?;
        match self.coord.set(&self.path, payload, version, Some(&fence)) {
            Ok(next) => {
                self.version = Some(next);
                Ok(())
            }
            Err(error) => {
                self.version = None;
                Err(error.to_string())
            }
        }
    }
}

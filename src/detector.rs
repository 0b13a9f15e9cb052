//! Leader detection for masters.
//!
//! A master asks its [`Detector`] on every tick whether it leads. Two detectors exist:
//!
//! - [`Standalone`]: one master at a fixed address; it always leads.
//! - [`LeaseContender`]: several masters contend for a **lease** kept in a shared work
//!   directory (the same directory holds the registry, see [`crate::registry`]). The
//!   lease names its holder (address and incarnation) and when it ends. The holder renews
//!   it every third of its length; another master takes it only once it has ended. A
//!   holder stops leading a safety margin *before* its lease ends (by its own clock), and
//!   a contender starts leading only *after* it ended, so two masters never lead at once
//!   as long as their clocks disagree by less than the margin (one tenth of the lease).
//!   Every read-modify-write of the lease happens under an exclusive lock on a lock file
//!   beside it, held only for that one step.
//!
//! A master that loses its lease (another master took it: this one was too slow to
//! renew) forgets everything it knew and, should it win the lease again later, starts
//! afresh from the registry, as a newly elected master does. Masters on ZooKeeper use
//! [`crate::coord::ZkContender`] instead (docs/zookeeper.md).

use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prost::Message;
use tracing::{info, warn};

use crate::checkpoint::record::{info_file, read_info, InfoRead};
use crate::os::{Clock, FileSystem};
use crate::proto::LeaderLease;

/// Decides whether this master leads.
pub trait Detector {
    /// Does the periodic work (renewing or contending for a lease) and says whether this
    /// master leads now. Called on every tick of the master.
    fn maintain(&mut self) -> bool;
    /// Whether this master leads at this instant (no I/O). A lease holder whose lease
    /// is about to end without renewal stops leading here, between ticks.
    fn leading(&self) -> bool;
    /// The leader's address as far as this master knows (empty if unknown).
    fn leader(&self) -> String;
    /// This master's leadership epoch, sent with its registration answers so that
    /// agents and frameworks refuse a deposed leader (docs/zookeeper.md Z6); 0 where
    /// leadership has no epochs (standalone, lease).
    fn epoch(&self) -> u64 {
        0
    }
}

/// A master that always leads (one master at a fixed address).
pub struct Standalone;

impl Detector for Standalone {
    fn maintain(&mut self) -> bool {
        true
    }
    fn leading(&self) -> bool {
        true
    }
    fn leader(&self) -> String {
        String::new()
    }
}

/// The lease file's name inside the master's work directory.
pub const LEASE_FILE: &str = "leader.lease";
/// The lock file guarding the lease.
pub const LEASE_LOCK_FILE: &str = "leader.lock";

/// Contends for a lease in a shared directory.
pub struct LeaseContender {
    fs: Rc<dyn FileSystem>,
    clock: Rc<dyn Clock>,
    dir: PathBuf,
    address: String,
    incarnation: u64,
    lease: Duration,
    /// While this master holds the lease: when it ends.
    holding_until: Option<SystemTime>,
    /// The last holder seen in the lease file.
    known_leader: String,
}

impl LeaseContender {
    /// A contender at `address` (what clients are told to connect to), with a fresh
    /// `incarnation` number, for leases of length `lease` in `dir`.
    pub fn new(
        fs: Rc<dyn FileSystem>,
        clock: Rc<dyn Clock>,
        dir: &Path,
        address: String,
        incarnation: u64,
        lease: Duration,
    ) -> LeaseContender {
        LeaseContender {
            fs,
            clock,
            dir: dir.to_owned(),
            address,
            incarnation,
            lease,
            holding_until: None,
            known_leader: String::new(),
        }
    }

    fn margin(&self) -> Duration {
        self.lease / 10
    }

    fn lease_path(&self) -> PathBuf {
        self.dir.join(LEASE_FILE)
    }

    fn is_mine(&self, lease: &LeaderLease) -> bool {
        lease.holder == self.address && lease.incarnation == self.incarnation
    }

    /// One locked read-modify-write step. Errors are logged and leave the lease alone.
    fn step(&mut self) -> Result<(), String> {
        let lock_path = self.dir.join(LEASE_LOCK_FILE);
        let _lock = self
            .fs
            .lock_exclusive(&lock_path, &self.address)
            .map_err(|error| error.to_string())?;
        let now = self.clock.wall();
        let current = read_lease(self.fs.as_ref(), &self.lease_path())?;
        let take = match &current {
            None => true,
            Some(lease) if self.is_mine(lease) => true,
            Some(lease) => {
                self.known_leader = lease.holder.clone();
                if self.holding_until.take().is_some() {
                    warn!(holder = %lease.holder, "leader lease taken over by another master: no longer leading");
                }
                now >= from_unix_ms(lease.expires_unix_ms)
            }
        };
        if !take {
            return Ok(());
        }
        let until = now + self.lease;
        let lease = LeaderLease {
            holder: self.address.clone(),
            incarnation: self.incarnation,
            expires_unix_ms: unix_ms(until),
        };
        self.fs
            .replace_atomically(&self.lease_path(), &info_file(&lease.encode_to_vec()))
            .map_err(|error| format!("{}: {error}", self.lease_path().display()))?;
        if self.holding_until.is_none() {
            info!(address = %self.address, lease_s = self.lease.as_secs_f64(), "took the leader lease");
        }
        self.holding_until = Some(until);
        self.known_leader = self.address.clone();
        Ok(())
    }
}

impl Detector for LeaseContender {
    fn maintain(&mut self) -> bool {
        let now = self.clock.wall();
        let due = match self.holding_until {
            // Renew once a third of the lease has passed.
            Some(until) => now + self.lease * 2 / 3 >= until,
            None => true,
        };
        if due {
            if let Err(error) = self.step() {
                warn!(%error, "leader lease: step failed");
            }
        }
        self.leading()
    }

    fn leading(&self) -> bool {
        self.holding_until
            .is_some_and(|until| self.clock.wall() + self.margin() < until)
    }

    fn leader(&self) -> String {
        self.known_leader.clone()
    }
}

/// Reads the lease file: `None` if there is none (or it is empty, a writer that died
/// before writing); an error names the file.
pub fn read_lease(fs: &dyn FileSystem, path: &Path) -> Result<Option<LeaderLease>, String> {
    if !fs.exists(path) {
        return Ok(None);
    }
    let data = fs
        .read(path)
        .map_err(|error| format!("{}: {error}", path.display()))?;
    match read_info(&data).map_err(|error| format!("{}: {error}", path.display()))? {
        InfoRead::Empty => Ok(None),
        InfoRead::Message(payload) => LeaderLease::decode(payload)
            .map(Some)
            .map_err(|error| format!("{}: {error}", path.display())),
    }
}

fn unix_ms(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

fn from_unix_ms(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

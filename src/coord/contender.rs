//! The master's contender and detector on a coordination service (docs/zookeeper.md
//! Z2–Z6): it joins the group as an ephemeral sequential member carrying its
//! `MasterInfo`, leads while its member is the lowest and its session is alive, watches
//! only its predecessor, and joins again as a new contender when its session ends.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use prost::Message;
use tokio::time::Instant;
use tracing::{info, warn};

use super::{member_sequence, CoordError, CoordEvent, Coordination, Member, SessionState, ZkUrl};
use crate::detector::Detector;
use crate::os::Clock;
use crate::proto::MasterInfo;

/// How often a member that does not lead lists the group anyway, to keep the leader's
/// address it tells clients fresh (its watch is only on its predecessor).
const REFRESH: Duration = Duration::from_secs(2);

/// The member node this master holds now, shared with the registry store that uses it
/// as a fence (docs/zookeeper.md Z8).
pub type SharedMember = Rc<RefCell<Option<Member>>>;

/// A master contending for leadership in a group of ephemeral sequential members.
pub struct ZkContender {
    coord: Rc<dyn Coordination>,
    clock: Rc<dyn Clock>,
    group: String,
    data: Vec<u8>,
    member: SharedMember,
    generation: u64,
    ensured: bool,
    /// Whether this member was the lowest at the last listing.
    lowest: bool,
    leader: String,
    dirty: bool,
    next_refresh: Option<Instant>,
    /// Test-only: keeps leading without a live session (no flag sets it).
    #[cfg(feature = "breakage")]
    leads_without_session: bool,
}

impl ZkContender {
    /// A contender for the group of `url`, advertising `info`.
    pub fn new(
        coord: Rc<dyn Coordination>,
        clock: Rc<dyn Clock>,
        url: &ZkUrl,
        info: &MasterInfo,
    ) -> ZkContender {
        ZkContender {
            coord,
            clock,
            group: url.members_path(),
            data: info.encode_to_vec(),
            member: Rc::new(RefCell::new(None)),
            generation: 0,
            ensured: false,
            lowest: false,
            leader: String::new(),
            dirty: true,
            next_refresh: None,
            #[cfg(feature = "breakage")]
            leads_without_session: false,
        }
    }

    #[cfg(feature = "breakage")]
    /// Applies the test-only switches (`crate::breakage`) that concern the contender.
    pub fn with_breakage(mut self, breakage: crate::breakage::Breakage) -> ZkContender {
        self.leads_without_session = breakage.master_leads_without_session;
        self
    }

    /// The member node, shared (for the registry store's fence).
    pub fn member(&self) -> SharedMember {
        self.member.clone()
    }

    fn forget_member(&mut self, why: &str) {
        if let Some(member) = self.member.borrow_mut().take() {
            warn!(member = %member.path, why, "left the group: joining again as a new contender");
        }
        self.leader.clear();
        self.lowest = false;
        self.dirty = true;
    }

    /// docs/zookeeper.md Z22: a join whose answer was lost may have been applied. The
    /// member it made carries this master's `MasterInfo`, whose incarnation number is
    /// drawn afresh by each master process, so a member holding exactly these bytes is
    /// this master's own, and is kept rather than joined a second time (a second member
    /// would sit behind the first, which nobody would ever see leave while this
    /// session lives).
    fn own_member(&self) -> Result<Option<Member>, CoordError> {
        let mut members: Vec<(u64, String)> = self
            .coord
            .children(&self.group)?
            .into_iter()
            .filter_map(|name| member_sequence(&name).map(|seq| (seq, name)))
            .collect();
        members.sort();
        for (sequence, name) in members {
            let path = format!("{}/{name}", self.group);
            if let Some((data, _)) = self.coord.get(&path)? {
                if data == self.data {
                    return Ok(Some(Member { path, sequence }));
                }
            }
        }
        Ok(None)
    }

    fn step(&mut self) -> Result<(), CoordError> {
        if !self.ensured {
            self.coord.ensure_path(&self.group)?;
            self.ensured = true;
        }
        if self.member.borrow().is_none() {
            let member = match self.own_member()? {
                Some(member) => {
                    info!(member = %member.path, epoch = member.sequence + 1, "found this master's member from a join whose answer was lost: keeping it");
                    member
                }
                None => self.coord.join(&self.group, &self.data)?,
            };
            info!(member = %member.path, epoch = member.sequence + 1, "joined the masters' group");
            *self.member.borrow_mut() = Some(member);
            self.dirty = true;
        }
        let now = self.clock.now();
        if !self.dirty && self.next_refresh.is_some_and(|at| now < at) {
            return Ok(());
        }
        self.next_refresh = Some(now + REFRESH);
        // Listing and watching race with members leaving: a predecessor gone before its
        // watch was set means listing again.
        for _ in 0..8 {
            self.dirty = false;
            let mine = self
                .member
                .borrow()
                .as_ref()
                .map(|m| m.sequence)
                .unwrap_or_default();
            let mut members: Vec<(u64, String)> = self
                .coord
                .children(&self.group)?
                .into_iter()
                .filter_map(|name| member_sequence(&name).map(|seq| (seq, name)))
                .collect();
            members.sort();
            if !members.iter().any(|(seq, _)| *seq == mine) {
                self.forget_member("this master's member node is gone");
                return Ok(());
            }
            let (lowest_seq, lowest_name) = members[0].clone();
            if let Some((data, _)) = self.coord.get(&format!("{}/{lowest_name}", self.group))? {
                if let Ok(info) = MasterInfo::decode(data.as_slice()) {
                    self.leader = info.address;
                }
            }
            let was_lowest = self.lowest;
            self.lowest = lowest_seq == mine;
            if self.lowest {
                if !was_lowest {
                    info!(epoch = mine + 1, "lowest member of the group: leading");
                }
                return Ok(());
            }
            let predecessor = members
                .iter()
                .rev()
                .find(|(seq, _)| *seq < mine)
                .map(|(_, name)| format!("{}/{name}", self.group))
                .unwrap_or_default();
            if self.coord.watch_node(&predecessor)? {
                return Ok(());
            }
        }
        self.dirty = true;
        Ok(())
    }
}

impl Detector for ZkContender {
    fn maintain(&mut self) -> bool {
        if broken!(self.leads_without_session) && !self.coord.session_alive() {
            // The breakage: a lost session goes unnoticed while it lasts.
            return self.lowest;
        }
        for event in self.coord.poll_events() {
            match event {
                CoordEvent::Session(SessionState::Expired) => {
                    self.forget_member("the ZooKeeper session ended")
                }
                CoordEvent::Session(_) => self.dirty = true,
                CoordEvent::NodeChanged(_) | CoordEvent::ChildrenChanged(_) => self.dirty = true,
            }
        }
        let generation = self.coord.session_generation();
        if generation != self.generation {
            if self.generation != 0 {
                self.forget_member("a new ZooKeeper session");
            }
            self.generation = generation;
        }
        if !self.coord.session_alive() {
            return false;
        }
        if let Err(error) = self.step() {
            warn!(%error, "ZooKeeper contender: step failed");
            self.dirty = true;
        }
        self.leading()
    }

    fn leading(&self) -> bool {
        if broken!(self.leads_without_session) && !self.coord.session_alive() {
            return self.lowest && self.member.borrow().is_some();
        }
        // The member must belong to the current session: after an expiry the client
        // opens a new session at once, before maintain() has forgotten the old member
        // (docs/zookeeper.md Z4).
        self.lowest
            && self.member.borrow().is_some()
            && self.coord.session_generation() == self.generation
            && self.coord.session_alive()
    }

    fn leader(&self) -> String {
        // Without a live session the leader it last saw may be itself, deposed.
        if self.coord.session_alive() {
            self.leader.clone()
        } else {
            String::new()
        }
    }

    fn epoch(&self) -> u64 {
        self.member
            .borrow()
            .as_ref()
            .map_or(0, |member| member.sequence + 1)
    }
}

/// Reads the masters' group once: their addresses, lowest sequence (the leader) first.
/// What agents, frameworks and CLI commands given `--master zk://…` connect to
/// (docs/zookeeper.md Z9).
pub fn master_addresses(coord: &dyn Coordination, url: &ZkUrl) -> Result<Vec<String>, String> {
    let group = url.members_path();
    let names = match coord.children(&group) {
        Ok(names) => names,
        Err(CoordError::NoNode(_)) => {
            return Err(format!(
                "no masters at {url}: the path '{group}' does not exist (is a master running with --zk {url}?)"
            ))
        }
        Err(error) => return Err(error.to_string()),
    };
    let mut members: Vec<(u64, String)> = names
        .into_iter()
        .filter_map(|name| member_sequence(&name).map(|seq| (seq, name)))
        .collect();
    members.sort();
    let mut addresses = Vec::new();
    for (_, name) in members {
        if let Ok(Some((data, _))) = coord.get(&format!("{group}/{name}")) {
            if let Ok(info) = MasterInfo::decode(data.as_slice()) {
                if !addresses.contains(&info.address) {
                    addresses.push(info.address);
                }
            }
        }
    }
    if addresses.is_empty() {
        return Err(format!("no masters at {url}: the group '{group}' is empty"));
    }
    Ok(addresses)
}

//! The agent's master link follows the leader that the masters' ZooKeeper group names
//! (docs/zookeeper.md Z17–Z20), when the agent was given `--master zk://…`. With a list
//! of addresses (or one), nothing here runs and the link works as before.

use std::time::Duration;

use tokio::time::Instant;
use tracing::info;

use super::Agent;

/// How often an agent with a leader detector looks at what it found.
pub(super) const LEADER_POLL: Duration = Duration::from_millis(200);

impl Agent {
    /// The leader the group names, unless it is older than the newest leader that
    /// registered this agent (Z6, Z19).
    pub(super) fn detected_leader(&self) -> Option<String> {
        let leader = self.config.leader.as_ref()?.0.leader()?;
        (leader.epoch >= self.link.epoch_seen).then_some(leader.address)
    }

    /// When the group names another leader than the master this agent talks to, the
    /// agent leaves that master and connects to the leader at once (Z20). A connection
    /// attempt under way finishes first (the leader is looked at again once it has).
    pub(super) fn follow_leader(&mut self, now: Instant) {
        if self.master_connecting {
            return;
        }
        let Some(leader) = self.detected_leader() else {
            return;
        };
        if leader == self.master_address {
            return;
        }
        info!(from = %self.master_address, to = %leader, "the masters' group names another leader: switching to it");
        self.master_address = leader;
        if let Some(master) = self.master.take() {
            master.close();
            self.master_lost();
        }
        // At once: a back-off drawn for the previous address (which may have been
        // growing while the group still named a dead leader) is not this one's.
        self.next_connect_at = Some(now);
    }

    /// The master was lost: ask the detector to list the group again (Z18).
    pub(super) fn ask_for_leader(&self) {
        if let Some(source) = &self.config.leader {
            source.0.reread();
        }
    }

    /// Wake often enough to notice a new leader (only with a detector).
    pub(super) fn leader_poll_at(&self, now: Instant) -> Option<Instant> {
        self.config.leader.as_ref().map(|_| now + LEADER_POLL)
    }
}

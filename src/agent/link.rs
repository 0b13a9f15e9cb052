//! The master link's decisions (docs/design.md D49-D51, docs/recovery-rules.md R4, R13,
//! R36): when to send a registration, when to give a silent master up, what a ping and
//! a registration answer call for. [`Link`] holds the link's state and reads no clock,
//! socket or detector; the driver (`master_link.rs`, `driver.rs`) passes `now` and
//! whether a master connection is open, and carries out the [`Effect`]s.

use std::time::Duration;

use tokio::time::Instant;
use tracing::info;

use super::effects::Effect;
use super::registration::Backoff;
use crate::os::Random;
use crate::proto::{self, envelope::Body};

/// The state of the agent's registration with the master it is connected to.
#[derive(Debug)]
pub(super) struct Link {
    /// Registered with the current master (its answer came).
    pub registered: bool,
    /// The back-off of the current series of registration attempts.
    backoff: Backoff,
    factor: Duration,
    ping_timeout: Duration,
    /// When the next registration attempt goes, while not registered.
    pub register_at: Option<Instant>,
    /// The next registration goes without back-off (docs/recovery-rules.md R36).
    pub register_at_once: bool,
    /// When the current master connection was made.
    connected_at: Option<Instant>,
    /// When the master was last heard from.
    last_contact: Option<Instant>,
    /// The highest leadership epoch a master registered this agent with
    /// (docs/zookeeper.md Z6).
    pub epoch_seen: u64,
}

impl Link {
    /// A link never connected, with `--registration_backoff_factor` and
    /// `--master_ping_timeout`.
    pub fn new(factor: Duration, ping_timeout: Duration) -> Link {
        Link {
            registered: false,
            backoff: Backoff::new(factor),
            factor,
            ping_timeout,
            register_at: None,
            register_at_once: false,
            connected_at: None,
            last_contact: None,
            epoch_seen: 0,
        }
    }

    /// A master connection was made. A recovering agent says so and registers later
    /// (R4); any other starts a registration series (D49).
    pub fn connected(
        &mut self,
        now: Instant,
        recovering: Option<&str>,
        random: &dyn Random,
    ) -> Vec<Effect> {
        self.registered = false;
        match recovering {
            Some(agent_id) => {
                info!(target: "revenant::agent", agent = %agent_id, "telling the master the agent is recovering");
                self.register_at = None;
                vec![Effect::ToMaster(Body::AgentRecovering(
                    proto::AgentRecovering {
                        agent_id: agent_id.to_owned(),
                    },
                ))]
            }
            None => self.start(now, true, random),
        }
    }

    /// A registration series on the current connection (`connected`: one is open): the
    /// first attempt after `uniform[0, factor]` (R13), or at once after a recovery
    /// that waited for executors (R36: the delay is drawn all the same, and the
    /// retry's, so that later draws stay where they were: D50).
    pub fn start(&mut self, now: Instant, connected: bool, random: &dyn Random) -> Vec<Effect> {
        self.connected_at = Some(now);
        self.backoff = Backoff::new(self.factor);
        let delay = self.backoff.first(random);
        if std::mem::take(&mut self.register_at_once) && connected {
            let retry = self.backoff.next(random);
            self.register_at = Some(now + retry);
            return vec![Effect::Register];
        }
        self.register_at = Some(now + delay);
        Vec::new()
    }

    /// The master connection is gone: not registered, no attempt pending.
    pub fn lost(&mut self) {
        self.registered = false;
        self.register_at = None;
    }

    /// The back-off's next delay (a retry, or the next master's connection).
    pub fn next_delay(&mut self, random: &dyn Random) -> Duration {
        self.backoff.next(random)
    }

    /// Anything arrived from the master.
    pub fn heard(&mut self, now: Instant) {
        self.last_contact = Some(now);
    }

    /// A registration answer with leadership `epoch`: `true` when it comes from a
    /// deposed leader (an epoch older than one seen: docs/zookeeper.md Z6) and must be
    /// refused; otherwise the epoch is remembered.
    pub fn deposed(&mut self, epoch: u64) -> bool {
        if epoch < self.epoch_seen {
            return true;
        }
        self.epoch_seen = epoch;
        false
    }

    /// The registration was answered: no more attempts, the master counts as heard.
    pub fn registered_at(&mut self, now: Instant) {
        self.registered = true;
        self.register_at = None;
        self.last_contact = Some(now);
    }

    /// A ping is answered with its sequence number.
    pub fn ping(&self, sequence: u64) -> Vec<Effect> {
        vec![Effect::ToMaster(Body::Pong(proto::Pong { sequence }))]
    }

    /// A tick of an agent that is not recovering, with a master connection open or not
    /// (D51): a registration unanswered for the ping timeout gives the connection up
    /// (it may be dead: a partition that dropped segments); a due attempt is sent and
    /// the next one drawn; a registered agent that heard nothing for the ping timeout
    /// looks for a master.
    pub fn tick(&mut self, now: Instant, connected: bool, random: &dyn Random) -> Vec<Effect> {
        let silent_since = |at: Option<Instant>| {
            at.is_some_and(|at| now.saturating_duration_since(at) > self.ping_timeout)
        };
        if connected && !self.registered && silent_since(self.connected_at) {
            info!(target: "revenant::agent", "no answer to registration within the ping timeout: reconnecting");
            self.lost();
            return vec![Effect::Reconnect];
        }
        if connected && !self.registered && self.register_at.is_some_and(|at| now >= at) {
            let delay = self.backoff.next(random);
            self.register_at = Some(now + delay);
            return vec![Effect::Register];
        }
        if self.registered && silent_since(self.last_contact) {
            info!(target: "revenant::agent", "no ping from the master within the ping timeout: looking for a master");
            self.lost();
            return vec![Effect::Reconnect];
        }
        Vec::new()
    }

    /// The link's timers, for the driver's next wake: the next attempt and the
    /// registration's ping timeout while unregistered, the master's ping timeout once
    /// registered.
    pub fn deadlines(&self, connected: bool) -> [Option<Instant>; 3] {
        let unanswered = connected && !self.registered;
        [
            self.register_at.filter(|_| unanswered),
            self.connected_at
                .filter(|_| unanswered)
                .map(|at| at + self.ping_timeout),
            self.last_contact
                .filter(|_| self.registered)
                .map(|at| at + self.ping_timeout),
        ]
    }
}

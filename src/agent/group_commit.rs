//! Group commit pipelined (docs/recovery-latency.md P11-P16): the event loop starts a
//! batch's sync and goes on with the next batch while the disk works; each batch's
//! messages (acknowledgements to executors, updates forwarded to the master, ...) wait
//! in the batch's group until that group's sync resolved `Ok`, and groups release their
//! messages in the order the batches ran.

use std::collections::VecDeque;

use super::*;
use crate::checkpoint::store::StoreError;
use crate::os::LocalFuture;

/// How many groups may be syncing at once; the loop takes no new event while this many
/// are (P15).
pub(super) const GROUPS_IN_FLIGHT_MAX: usize = 2;

/// One batch's sync and the messages it holds.
struct Group {
    /// The store's number for the group; `None` when the batch appended nothing and
    /// only waits for the groups before it.
    number: Option<u64>,
    sync: LocalFuture<'static, Result<(), StoreError>>,
    held: Vec<(Outbox, Body)>,
}

/// The groups whose sync was started, oldest first.
#[derive(Default)]
pub(super) struct Pipeline {
    groups: VecDeque<Group>,
}

impl Pipeline {
    /// Whether a group is syncing.
    pub(super) fn busy(&self) -> bool {
        !self.groups.is_empty()
    }

    /// Whether the loop may start another batch (P15).
    pub(super) fn has_room(&self) -> bool {
        self.groups.len() < GROUPS_IN_FLIGHT_MAX
    }

    /// Resolves when the oldest group's sync did; pending forever when none is syncing.
    pub(super) async fn oldest_done(&mut self) -> Result<(), StoreError> {
        match self.groups.front_mut() {
            Some(group) => group.sync.as_mut().await,
            None => std::future::pending().await,
        }
    }
}

/// How a batch's records become durable (docs/recovery-latency.md P19: one batch
/// function for both).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Durability {
    /// Synced before the batch returns, then its messages go: recovery's own batch,
    /// durable before the loop starts (P16, docs/recovery-rules.md R14).
    Now,
    /// Synced in the background; the messages wait in the batch's group until it is
    /// durable (P11-P13).
    Pipelined,
}

impl Agent {
    /// Runs `work` as one group-commit batch when group commit is on: log syncs are
    /// deferred and every message `work` sends is held; at the end every log the batch
    /// appended to is synced as one group, `durability` says whether before returning
    /// or in the background (see [`Agent::group_durable`]), and the held messages go
    /// only once that sync resolved `Ok`, in order. When the work fails the deferred
    /// syncs are abandoned and the held messages dropped, never sent, and the error
    /// stops the agent, as a failed single sync does. With group commit off, `work`
    /// just runs.
    pub(super) fn batch<T>(
        &mut self,
        durability: Durability,
        work: impl FnOnce(&mut Agent) -> Result<T, AgentError>,
    ) -> Result<T, AgentError> {
        if self.config.status_update_batch <= 1 {
            return work(self);
        }
        self.store.defer_log_syncs();
        self.held = Some(Vec::new());
        let result = work(self);
        let mut held = self.held.take().unwrap_or_default();
        let value = match result {
            Ok(value) => value,
            Err(error) => {
                self.store.abandon_deferred();
                return Err(error);
            }
        };
        if durability == Durability::Now {
            self.store.commit()?;
            for (outbox, body) in held {
                outbox.send(body);
            }
            return Ok(value);
        }
        let commit = self.store.start_commit();
        if broken!(self.config.breakage.release_before_durable) {
            // Test-only breakage: the batch's messages go out while its records are
            // still on their way to the disk (P12 broken).
            for (outbox, body) in held.drain(..) {
                outbox.send(body);
            }
        }
        match commit {
            Some(commit) => self.pipeline.groups.push_back(Group {
                number: Some(commit.group),
                sync: commit.sync,
                held,
            }),
            // Nothing of this batch to sync: its messages go when the groups before
            // it are durable (P13), at once when none is syncing.
            None => match self.pipeline.groups.back_mut() {
                Some(last) => last.held.append(&mut held),
                None => {
                    for (outbox, body) in held {
                        outbox.send(body);
                    }
                }
            },
        }
        Ok(value)
    }

    /// The oldest group's sync resolved: on `Ok` its messages go out, in order (P12); on
    /// an error they are dropped and the error stops the agent, as a failed sync does
    /// without the pipeline.
    pub(super) fn group_durable(
        &mut self,
        result: Result<(), StoreError>,
    ) -> Result<(), AgentError> {
        let Some(group) = self.pipeline.groups.pop_front() else {
            return Ok(());
        };
        if let Some(number) = group.number {
            self.store.commit_done(number);
        }
        result?;
        for (outbox, body) in group.held {
            outbox.send(body);
        }
        Ok(())
    }

    /// Makes every group still syncing durable now, with one synchronous sync of their
    /// logs, and sends their messages in order (P16): before the agent exits, and before
    /// anything it sends outside a batch.
    pub(super) fn drain_groups(&mut self) -> Result<(), AgentError> {
        if !self.pipeline.busy() {
            return Ok(());
        }
        self.store.sync_in_flight()?;
        for group in std::mem::take(&mut self.pipeline.groups) {
            if let Some(number) = group.number {
                self.store.commit_done(number);
            }
            for (outbox, body) in group.held {
                outbox.send(body);
            }
        }
        Ok(())
    }
}

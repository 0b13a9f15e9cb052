//! The agent's driver for its decisions' effects (docs/design.md D47, D48): the one
//! place where what `link.rs`, `admission.rs` and `gc_schedule.rs` decide meets the
//! connections, the process table and the filesystem.

use tracing::{info, warn};

use super::effects::Effect;
use super::Agent;
use crate::os::Signal;
use crate::wire::{ConnectionId, Outbox};

impl Agent {
    /// Carries `effects` out in the order they were returned (D47). `at_hand` is a
    /// connection the agent holds outside its records while it decides about it (an
    /// executor's registering connection).
    pub(super) fn perform(&mut self, effects: Vec<Effect>, at_hand: Option<&Outbox>) {
        for effect in effects {
            match effect {
                Effect::Register => self.send_registration(),
                Effect::ToMaster(body) => {
                    self.send_to_master(body);
                }
                Effect::Reconnect => {
                    self.master = None;
                    self.master_lost();
                    self.next_master();
                }
                Effect::Send { to, body } => {
                    if let Some(outbox) = self.outbox_of(to, at_hand) {
                        self.send(&outbox, body);
                    }
                }
                Effect::Close { connection } => {
                    if let Some(outbox) = self.outbox_of(connection, at_hand) {
                        outbox.close();
                    }
                }
                Effect::Kill { process } => {
                    let _ = self.env.processes.signal(&process, Signal::Kill);
                }
                Effect::RemoveDir { path, retry_at } => match self.store.remove_dir(&path) {
                    Ok(()) => {
                        crate::coverage::point!("agent_garbage_collected");
                        info!(target: "revenant::agent", path = %path.strip_prefix(&self.config.work_dir).unwrap_or(&path).display(), "garbage collected")
                    }
                    Err(error) => {
                        // Tried again later, or it would leak (docs/lifecycle-rules.md rule 6).
                        warn!(target: "revenant::agent", %error, "garbage collection failed: retrying later");
                        self.gc.schedule(path, retry_at);
                    }
                },
            }
        }
    }

    /// The outbox of connection `id`: the one at hand, the master's, an unidentified
    /// executor's or a registered executor's.
    fn outbox_of(&self, id: ConnectionId, at_hand: Option<&Outbox>) -> Option<Outbox> {
        if let Some(outbox) = at_hand.filter(|o| o.id() == id) {
            return Some(outbox.clone());
        }
        if let Some(master) = self.master.as_ref().filter(|m| m.id() == id) {
            return Some(master.clone());
        }
        if let Some(outbox) = self.unidentified.get(&id) {
            return Some(outbox.clone());
        }
        self.executors()
            .filter_map(|(_, _, e)| e.outbox.as_ref())
            .find(|o| o.id() == id)
            .cloned()
    }
}

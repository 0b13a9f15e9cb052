//! The agent's driver for its decisions' effects (docs/design.md D47, D48): the one
//! place where what `link.rs`, `admission.rs` and `gc_schedule.rs` decide meets the
//! connections, the process table and the filesystem.

use tracing::{info, warn};

use super::effects::Effect;
use super::writes::{Step, Write};
use super::{Agent, AgentError};
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

    /// Carries `steps` out in order (docs/design.md D66): effects as [`Agent::perform`]
    /// does, writes through the checkpoint store. The first write that fails stops the
    /// list and is returned (D6): nothing after it is done.
    pub(super) fn perform_steps(
        &mut self,
        steps: Vec<Step>,
        at_hand: Option<&Outbox>,
    ) -> Result<(), AgentError> {
        for step in steps {
            match step {
                Step::Effect(effect) => self.perform(vec![effect], at_hand),
                Step::Write(write) => self.write(write)?,
            }
        }
        Ok(())
    }

    /// Makes one checkpoint write (docs/design.md D65).
    fn write(&mut self, write: Write) -> Result<(), AgentError> {
        match write {
            Write::AgentInfo(info) => self.store.write_agent_info(&info)?,
            Write::Resources(resources) => self.store.replace_resources(&resources)?,
            Write::Framework { agent, info } => self.store.write_framework(&agent, &info, "")?,
            Write::Executor { agent, info } => self.store.write_executor(&agent, &info)?,
            Write::Run(run) => self.store.write_run(&run.path())?,
            Write::Task { run, task } => self.store.write_task(&run.path(), &task)?,
            Write::Update { run, task, update } => {
                self.store.append_update(&run.path(), &task, &update)?
            }
            Write::Ack { run, task, uuid } => self.store.append_ack(&run.path(), &task, uuid)?,
            Write::ForkedPid { run, forked } => {
                self.store.write_forked_pid(&run.path(), &forked)?
            }
            Write::LibprocessPid { run, text } => {
                self.store.write_libprocess_pid(&run.path(), &text)?
            }
            Write::Sentinel(run) => self.store.write_sentinel(&run.path())?,
        }
        Ok(())
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

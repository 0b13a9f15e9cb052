//! The evidence for rule L22 of `docs/task-lifecycle.md` (a checkpoint the agent completed
//! and acted on before a power loss survives it), recorded outside the code under test:
//!
//! - **promises**: what the outside world heard that depends on a checkpoint, seen on the
//!   receiving side of the simulated network (the frame filter of `crate::drops` hands
//!   every whole frame to [`observe`]): a status update a master received from the agent
//!   machine, an acknowledgement an executor received from its agent (both mean the
//!   update's UPDATE record was written and synced first), and the checkpointed
//!   resources a re-registration carried to a master (they are what `resources.info`
//!   holds);
//! - **power losses**: at each, the simulator hands [`power_loss`] the disk's live tree
//!   just before the cut and the disk after it, and every promise made so far whose
//!   checkpoint the live disk still held before the cut is looked for in what the cut
//!   left. A checkpoint the agent had removed (garbage collection) or replaced before the
//!   cut is not owed.
//!
//! The losses found are kept for the `durability` oracle. Nothing here reads the agent's
//! log.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use prost::Message;
use revenant::checkpoint::record::{scan, FileKind};
use revenant::ids::Uuid;
use revenant::proto::{envelope::Body, status_update_record, Envelope, StatusUpdateRecord};

use crate::fs::{Entry, SimFs};

/// Something the outside world heard that depends on a checkpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Promise {
    /// An update whose UPDATE record must be in its task's `task.updates`.
    Update {
        /// The task.
        task: String,
        /// The update.
        uuid: Uuid,
        /// Who heard of it: `forwarded to the master` or `acknowledged to the executor`.
        heard: &'static str,
    },
    /// Agent process `agent` told a master its checkpointed resources were these
    /// (`describe_resources` form).
    Resources {
        /// The agent process (1, 2, ...).
        agent: u32,
        /// What it reported.
        resources: String,
    },
}

/// A promise a power loss broke.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Loss {
    /// When the power was lost (simulated time).
    pub time: Duration,
    /// What was lost, in words.
    pub what: String,
}

#[derive(Default)]
struct Record {
    promises: Vec<Promise>,
    /// Update uuids already promised (the first promise of each is kept).
    promised_updates: BTreeSet<Uuid>,
    losses: Vec<Loss>,
}

thread_local! {
    static RECORD: RefCell<Record> = RefCell::new(Record::default());
}

/// Starts a run with nothing promised and nothing lost.
pub fn begin() {
    RECORD.with(|record| *record.borrow_mut() = Record::default());
}

/// The losses found in the run so far; forgets them.
pub fn take_losses() -> Vec<Loss> {
    RECORD.with(|record| std::mem::take(&mut record.borrow_mut().losses))
}

fn now() -> Duration {
    turmoil::sim_elapsed().unwrap_or_else(|| crate::trace::DRIVER_TIME.with(|t| t.get()))
}

/// The envelope keys (field number << 3 | length-delimited) of the bodies that carry a
/// promise: only frames starting with one are decoded.
const REREGISTER_AGENT_KEY: u8 = (2 << 3) | 2;
const STATUS_UPDATE_KEY: u8 = (7 << 3) | 2;
const ACKNOWLEDGEMENT_KEY: u8 = (8 << 3) | 2;

/// A whole wire frame (length prefix included) arriving at host `local` from `peer`.
pub fn observe(frame: &[u8], local: &str, peer: &str) {
    let Some(&key) = frame.get(4) else {
        return;
    };
    let from_agent_to_master = local.starts_with("master") && peer == "agent1";
    let from_agent_to_executor = local == "agent1" && peer == "agent1";
    let wanted = match key {
        REREGISTER_AGENT_KEY | STATUS_UPDATE_KEY => from_agent_to_master,
        ACKNOWLEDGEMENT_KEY => from_agent_to_executor,
        _ => false,
    };
    if !wanted {
        return;
    }
    let Some(body) = Envelope::decode(&frame[4..]).ok().and_then(|e| e.body) else {
        return;
    };
    let promise = match body {
        Body::StatusUpdate(message) => {
            let Some(update) = message.update else {
                return;
            };
            let (Some(uuid), Some(status)) = (Uuid::from_bytes(&update.uuid), update.status) else {
                return;
            };
            Promise::Update {
                task: status.task_id,
                uuid,
                heard: "forwarded to the master",
            }
        }
        Body::Acknowledgement(ack) => {
            let Some(uuid) = Uuid::from_bytes(&ack.uuid) else {
                return;
            };
            Promise::Update {
                task: ack.task_id,
                uuid,
                heard: "acknowledged to the executor",
            }
        }
        Body::ReregisterAgent(message) => {
            let port = message.info.as_ref().map(|i| i.port).unwrap_or_default();
            let Some(agent) = (1..=8).find(|k| u32::from(crate::hosts::agent_port(*k)) == port)
            else {
                return;
            };
            Promise::Resources {
                agent,
                resources: revenant::domain::resources::describe_resources(
                    &message.checkpointed_resources,
                ),
            }
        }
        _ => return,
    };
    RECORD.with(|record| {
        let mut record = record.borrow_mut();
        if let Promise::Update { uuid, .. } = &promise {
            if !record.promised_updates.insert(*uuid) {
                return;
            }
        }
        record.promises.push(promise);
    });
}

/// The uuids of the complete UPDATE records of a `task.updates` file's bytes.
fn update_uuids(bytes: &[u8]) -> BTreeSet<Uuid> {
    let Ok(scanned) = scan(bytes, FileKind::TaskUpdates) else {
        return BTreeSet::new();
    };
    scanned
        .records
        .iter()
        .filter_map(|(_, payload)| StatusUpdateRecord::decode(*payload).ok())
        .filter(|r| r.r#type == status_update_record::Type::Update as i32)
        .filter_map(|r| r.update.and_then(|u| Uuid::from_bytes(&u.uuid)))
        .collect()
}

/// The reserved resources a `resources.info` in `tree` holds (`describe_resources`
/// form), `None` without a readable file.
fn resources_in(tree: &BTreeMap<PathBuf, Entry>, work_dir: &Path) -> Option<String> {
    let path = revenant::checkpoint::paths::MetaPaths::for_work_dir(work_dir).resources_info();
    let Entry::File(bytes) = tree.get(&path)? else {
        return None;
    };
    let scanned = scan(bytes, FileKind::Resources).ok()?;
    let mut resources = Vec::new();
    for (_, payload) in scanned.records {
        match revenant::proto::Resource::decode(payload) {
            Ok(resource) => resources.push(resource),
            Err(_) => break,
        }
    }
    Some(revenant::domain::resources::describe_resources(&resources))
}

/// The `task.updates` files of task `task` in `tree`.
fn update_logs<'a>(
    tree: &'a BTreeMap<PathBuf, Entry>,
    task: &'a str,
) -> impl Iterator<Item = (&'a PathBuf, &'a [u8])> + 'a {
    tree.iter().filter_map(move |(path, entry)| {
        let Entry::File(bytes) = entry else {
            return None;
        };
        let is_log = path.file_name().is_some_and(|n| n == "task.updates")
            && path
                .parent()
                .and_then(Path::file_name)
                .is_some_and(|n| n == task);
        is_log.then_some((path, bytes.as_slice()))
    })
}

/// The agent machine's disk `disk` was just cut by a power loss; `before` is its live
/// tree just before. Every promise made so far whose checkpoint `before` held must still
/// be on `disk` (docs/task-lifecycle.md L22); each one missing is kept as a loss.
pub fn power_loss(before: &BTreeMap<PathBuf, Entry>, disk: &SimFs) {
    let time = now();
    let after = disk.tree();
    let promises = RECORD.with(|record| record.borrow().promises.clone());
    let mut losses = Vec::new();
    // The last resources each agent process reported.
    let mut reported: BTreeMap<u32, &str> = BTreeMap::new();
    for promise in &promises {
        match promise {
            Promise::Update { task, uuid, heard } => {
                for (path, bytes) in update_logs(before, task) {
                    if !update_uuids(bytes).contains(uuid) {
                        continue;
                    }
                    let kept = match after.get(path) {
                        Some(Entry::File(bytes)) => update_uuids(bytes).contains(uuid),
                        _ => false,
                    };
                    if !kept {
                        losses.push(Loss {
                            time,
                            what: format!(
                                "update {uuid} of task {task}, {heard} before the power loss, is no longer in {}",
                                path.display()
                            ),
                        });
                    }
                }
            }
            Promise::Resources { agent, resources } => {
                reported.insert(*agent, resources);
            }
        }
    }
    for (agent, resources) in reported {
        let work_dir = crate::hosts::agent_work_dir(agent);
        if resources_in(before, &work_dir).as_deref() != Some(resources) {
            // Replaced (or removed) since the report: the report is not owed any more.
            continue;
        }
        let left = resources_in(&after, &work_dir);
        if left.as_deref() != Some(resources) {
            losses.push(Loss {
                time,
                what: format!(
                    "agent {agent} reported checkpointed resources {resources:?} to the master, but after the power loss resources.info holds {}",
                    left.map(|l| format!("{l:?}")).unwrap_or_else(|| "nothing".to_owned())
                ),
            });
        }
    }
    RECORD.with(|record| record.borrow_mut().losses.extend(losses));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_frames_of_a_promise_kind_and_direction_are_recorded() {
        begin();
        let ack = |uuid: u8| {
            revenant::wire::encode(Body::Acknowledgement(revenant::proto::Acknowledgement {
                agent_id: "a".into(),
                framework_id: "f".into(),
                task_id: "t1".into(),
                uuid: vec![uuid; 16],
            }))
            .unwrap()
        };
        // Framework to master: not a promise of the agent.
        observe(&ack(1), "master1", "framework");
        // Agent to executor: a promise, recorded once.
        observe(&ack(2), "agent1", "agent1");
        observe(&ack(2), "agent1", "agent1");
        let promises = RECORD.with(|record| record.borrow().promises.clone());
        assert_eq!(
            promises,
            vec![Promise::Update {
                task: "t1".into(),
                uuid: Uuid([2; 16]),
                heard: "acknowledged to the executor",
            }]
        );
    }
}

//! What the masters received from the agent machine, with simulated times, for the
//! `update_retries` oracle (docs/task-lifecycle.md L28 and L29): every status update
//! (by uuid) and every registration or re-registration, and every acknowledgement a
//! master handed back to the machine, recorded in the simulated
//! network seam as the frames are handed to their receiver, outside the code under test.
//! Only frames whose first byte names one of those bodies are decoded; the recording
//! changes nothing in the run (a thread-local list, no draw, no trace line).

use std::cell::RefCell;
use std::time::Duration;

use prost::Message as _;
use revenant::ids::Uuid;
use revenant::proto::{envelope::Body, Envelope};

use crate::run_record::{now, RunRecord};

/// One status update a master received from the agent machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receipt {
    /// When (simulated time).
    pub time: Duration,
    /// The master's host.
    pub master: String,
    /// The update's uuid.
    pub uuid: Uuid,
    /// Its task.
    pub task: String,
    /// Its state, by name.
    pub state: String,
}

/// What the masters received from the agent machine in one run.
#[derive(Clone, Debug, Default)]
pub struct Receipts {
    /// Status updates, in arrival order.
    pub updates: Vec<Receipt>,
    /// When a master received a registration or re-registration of an agent of the
    /// machine (after which the agent sends every stream's head again).
    pub registrations: Vec<Duration>,
    /// Acknowledgements a master handed to the agent machine: (when, uuid).
    pub acknowledgements: Vec<(Duration, Uuid)>,
}

thread_local! {
    static CELL: RefCell<Receipts> = RefCell::new(Receipts::default());
}

static RECORD: RunRecord<Receipts> = RunRecord::new(&CELL);

/// Starts a run with nothing received.
pub fn begin() {
    RECORD.begin();
}

/// What was received since [`begin`]; forgets it.
pub fn take() -> Receipts {
    RECORD.take()
}

const REGISTER_AGENT_KEY: u8 = (1 << 3) | 2;
const REREGISTER_AGENT_KEY: u8 = (2 << 3) | 2;
const STATUS_UPDATE_KEY: u8 = (7 << 3) | 2;
const ACKNOWLEDGEMENT_KEY: u8 = (8 << 3) | 2;

/// A whole wire frame (length prefix included) handed to host `local`, sent by `peer`.
pub fn observe(frame: &[u8], local: &str, peer: &str) {
    let Some(&key) = frame.get(4) else {
        return;
    };
    let to_master = local.starts_with("master") && peer == crate::hosts::AGENT_HOST;
    let to_agent = local == crate::hosts::AGENT_HOST && peer.starts_with("master");
    let wanted = match key {
        REGISTER_AGENT_KEY | REREGISTER_AGENT_KEY | STATUS_UPDATE_KEY => to_master,
        ACKNOWLEDGEMENT_KEY => to_agent,
        _ => false,
    };
    if !wanted {
        return;
    }
    let Some(body) = Envelope::decode(&frame[4..]).ok().and_then(|e| e.body) else {
        return;
    };
    let time = now();
    match body {
        Body::RegisterAgent(_) | Body::ReregisterAgent(_) => {
            RECORD.with(|record| record.registrations.push(time));
        }
        Body::StatusUpdate(message) => {
            let Some(update) = message.update else {
                return;
            };
            let Some(uuid) = Uuid::from_bytes(&update.uuid) else {
                return;
            };
            let status = update.status.unwrap_or_default();
            let receipt = Receipt {
                time,
                master: local.to_owned(),
                uuid,
                task: status.task_id.clone(),
                state: status.state().as_str_name().to_owned(),
            };
            RECORD.with(|record| record.updates.push(receipt));
        }
        Body::Acknowledgement(ack) => {
            if let Some(uuid) = Uuid::from_bytes(&ack.uuid) {
                RECORD.with(|record| record.acknowledgements.push((time, uuid)));
            }
        }
        _ => {}
    }
}

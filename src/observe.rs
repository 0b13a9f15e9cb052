//! The simulator's tap on what the master and the agent report (compiled only with the
//! `coverage` feature, which only the simulator turns on; the `revenant` binaries carry
//! none of it).
//!
//! When the simulator asks for it ([`want_master_states`]), each master, at its tick,
//! leaves here the same typed `/state` answer an operator would get over HTTP, keyed by
//! the address it listens on; the simulator takes them ([`take_master_states`]) and
//! judges them against what the frameworks heard and the process table saw
//! (docs/task-lifecycle.md L25 to L27). Nothing is logged and no message is sent, so a
//! run with the tap is the same run, byte for byte, as one without. A simulation runs on
//! one thread; the tap is per thread.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;

use crate::http::state::MasterState;

thread_local! {
    static WANTED: Cell<bool> = const { Cell::new(false) };
    static STATES: RefCell<BTreeMap<String, MasterState>> = const { RefCell::new(BTreeMap::new()) };
    static AGENT_WANTED: Cell<bool> = const { Cell::new(false) };
    static AGENT_METRICS: RefCell<Vec<(String, String)>> = const { RefCell::new(Vec::new()) };
}

/// Asks the masters of this thread to leave their `/state` at each tick (or stops).
pub fn want_master_states(wanted: bool) {
    WANTED.with(|w| w.set(wanted));
    if !wanted {
        STATES.with(|s| s.borrow_mut().clear());
    }
}

/// Whether the simulator wants the masters' `/state` now.
pub fn master_states_wanted() -> bool {
    WANTED.with(Cell::get)
}

/// Master `listen` reports `state`.
pub fn report_master_state(listen: &str, state: MasterState) {
    STATES.with(|s| s.borrow_mut().insert(listen.to_owned(), state));
}

/// The reports left since the last call, by the master's address.
pub fn take_master_states() -> BTreeMap<String, MasterState> {
    STATES.with(|s| std::mem::take(&mut *s.borrow_mut()))
}

/// Asks the agents of this thread to leave their `/metrics` answer once each incarnation's
/// recovery has read the disk (docs/recovery-rules.md R43), or stops. Like the masters'
/// `/state`, the answer is the text an operator would get over HTTP, and leaving it
/// sends nothing and logs nothing.
pub fn want_agent_metrics(wanted: bool) {
    AGENT_WANTED.with(|w| w.set(wanted));
    if !wanted {
        AGENT_METRICS.with(|m| m.borrow_mut().clear());
    }
}

/// Whether the simulator wants the agents' `/metrics` now.
pub fn agent_metrics_wanted() -> bool {
    AGENT_WANTED.with(Cell::get)
}

/// The agent listening on `listen` answers `/metrics` with `text`.
pub fn report_agent_metrics(listen: &str, text: String) {
    AGENT_METRICS.with(|m| m.borrow_mut().push((listen.to_owned(), text)));
}

/// The agents' answers left since the last call, in order: (the agent's address, text).
pub fn take_agent_metrics() -> Vec<(String, String)> {
    AGENT_METRICS.with(|m| std::mem::take(&mut *m.borrow_mut()))
}

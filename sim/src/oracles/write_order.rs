//! Rule P14 of `docs/recovery-latency.md` (oracle `write_order`): other checkpoint writes
//! keep their order. Before an agent process puts any file in place (an info file, a
//! pid file, the boot id, by renaming a temporary over it), every log it appended to
//! (`task.updates`, `resources.info`) is synced: the records of its group-commit
//! batches, deferred or still syncing in the background, are synced again at once, so
//! that files become durable in the order they would have without the pipeline. A power
//! loss can then never keep the later file and lose the earlier records. Judged from
//! what the simulated disk saw each agent process do (`crate::disk_work`: at each of its
//! renames, whether a log it appended to still held bytes no sync covered), never from
//! the agent's log.

use std::collections::BTreeSet;

use super::Violation;
use crate::disk_work::{Actor, Done, Work};

/// Checks P14 on the records `done` of a run: one violation per incarnation.
pub fn check(done: &[Done]) -> Vec<Violation> {
    let mut seen: BTreeSet<Actor> = BTreeSet::new();
    let mut out = Vec::new();
    for record in done {
        let Work::PlacedBeforeLogSynced { log } = &record.work else {
            continue;
        };
        if !seen.insert(record.actor) {
            continue;
        }
        out.push(Violation {
            time: record.time,
            oracle: "write_order",
            message: format!(
                "agent {} incarnation {} put '{}' in place while '{}', which it had appended to, held bytes no sync covered (docs/recovery-latency.md P14)",
                record.actor.agent,
                record.actor.incarnation,
                record.path.display(),
                log.display()
            ),
        });
    }
    out
}

//! Orphan executors (docs/lifecycle-rules.md rule 20): every executor process carries
//! the agent's tag (its work directory) in its environment; a recovering agent lists
//! the live processes with its tag and destroys every one that no run it recovered and
//! awaits claims, such as an executor whose launch the previous incarnation did not
//! live to checkpoint (it died between the fork and `forked.pid`).

use std::collections::BTreeSet;

use tracing::{info, warn};

use super::effects::Effect;
use super::{Agent, ExecutorPhase};
use crate::os::TaggedProcess;

impl Agent {
    /// The tag this agent puts in its executors' environment (rule 20): its work
    /// directory, which no other agent on the machine may share (the agent locks it).
    pub(super) fn agent_tag(&self) -> String {
        self.config.work_dir.display().to_string()
    }

    /// Lists the live processes with this agent's tag (rule 20); `None` under the
    /// test-only breakage that keeps orphans. Recovery calls it while R14's syncs run
    /// (docs/recovery-latency.md P47) and decides later, in
    /// [`Agent::destroy_listed_orphans`].
    pub(super) fn list_tagged(&self) -> Option<std::io::Result<Vec<TaggedProcess>>> {
        if broken!(self.config.breakage.keep_orphan_executors) {
            return None;
        }
        let tag = self.agent_tag();
        // docs/recovery-latency.md P46: phase marks at debug level (no trace line).
        tracing::debug!(target: "revenant::recovery_phase", "orphan scan started");
        let listed = self.env.processes.tagged(&tag);
        tracing::debug!(target: "revenant::recovery_phase", "orphan scan done");
        Some(listed)
    }

    /// Rule 20 with a listing taken now.
    pub(super) fn destroy_orphan_executors(&mut self) {
        let listed = self.list_tagged();
        self.destroy_listed_orphans(listed, false);
    }

    /// Rule 20: kills every live process tagged with this agent's tag whose run is not
    /// one that recovery awaits (an executor expected to re-register). A process names
    /// its run by framework, executor and container id; the tasks it started inherit
    /// the tag and name the same run, so they go with it or stay with it. A listing that
    /// fails is logged and recovery goes on: the orphans then live until they are found
    /// by a later recovery, as before the rule. A listing taken earlier (`early`,
    /// during R14's syncs, docs/recovery-latency.md P47) is checked again process by
    /// process: one that has ended since (recovery may have destroyed it meanwhile) is
    /// left alone, as a process that ends during a scan is.
    pub(super) fn destroy_listed_orphans(
        &mut self,
        listed: Option<std::io::Result<Vec<TaggedProcess>>>,
        early: bool,
    ) {
        let Some(listed) = listed else {
            return;
        };
        let listed = match listed {
            Ok(listed) => listed,
            Err(error) => {
                warn!(%error, "could not list this agent's executor processes: orphans are not destroyed");
                return;
            }
        };
        let awaited: BTreeSet<(String, String, String)> = self
            .executors()
            .filter(|(_, _, e)| e.phase == ExecutorPhase::Reregistering)
            .map(|(fid, eid, e)| (fid.to_string(), eid.to_string(), e.container.to_string()))
            .collect();
        for found in listed {
            let run = (
                found.framework.clone(),
                found.executor.clone(),
                found.container.clone(),
            );
            if awaited.contains(&run) {
                continue;
            }
            if early && !self.env.processes.is_alive(&found.process) {
                continue;
            }
            crate::coverage::point!("agent_orphan_executor_destroyed");
            info!(
                framework = %found.framework,
                executor = %found.executor,
                run = %found.container,
                process = %found.process,
                "destroying an orphan executor process: no recovered run claims it"
            );
            self.perform(
                vec![Effect::Kill {
                    process: found.process,
                }],
                None,
            );
        }
    }
}

//! What serde cannot check of a scenario: counts, ranges, names of frameworks, agents,
//! messages and states, and which fault kinds take which fields. Each error names the
//! field and what was wrong.

use super::*;

impl Scenario {
    /// Checks what serde cannot.
    pub fn validate(&self) -> Result<(), String> {
        if self.duration_s.is_nan() || self.duration_s <= 0.0 {
            return Err("duration_s must be positive".into());
        }
        if self.masters == 0 || self.masters > 3 {
            return Err("masters must be 1 to 3".into());
        }
        if self.frameworks == 0 || self.frameworks > 3 {
            return Err("frameworks must be 1 to 3".into());
        }
        if self.agents == 0 || self.agents > 3 {
            return Err("agents must be 1 to 3".into());
        }
        if let Some(zk) = &self.zookeeper {
            if !(zk.session_timeout_s.is_finite() && zk.session_timeout_s > 0.0) {
                return Err(format!(
                    "[zookeeper] session_timeout_s must be a positive number of seconds, not {}",
                    zk.session_timeout_s
                ));
            }
        }
        if let Some(swarm) = &self.swarm {
            for kind in swarm.per_minute.keys() {
                if super::fault_checks::is_zk_fault(*kind) && self.zookeeper.is_none() {
                    return Err(format!(
                        "[swarm.per_minute] lists {kind:?}, a ZooKeeper fault, but the scenario has no [zookeeper] table"
                    ));
                }
            }
        }
        for task in &self.tasks {
            if task.framework == 0 || task.framework > self.frameworks {
                return Err(format!(
                    "task {} names framework {}, but there are {}",
                    task.id, task.framework, self.frameworks
                ));
            }
            if let Some(executor) = &task.executor {
                if executor.is_empty()
                    || !executor
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
                    || executor.starts_with('.')
                {
                    return Err(format!(
                        "task {}: executor '{executor}' is not a usable executor id \
                         (letters, digits, '-', '_', '.'; not starting with '.')",
                        task.id
                    ));
                }
                if let Some(other) = self.tasks.iter().find(|t| {
                    t.id != task.id
                        && t.framework != task.framework
                        && t.executor.as_deref() == Some(executor.as_str())
                }) {
                    return Err(format!(
                        "tasks {} and {} name executor '{executor}' from different frameworks \
                         (an executor belongs to one framework)",
                        task.id, other.id
                    ));
                }
            }
        }
        for recover in std::iter::once(&self.agent.recover).chain(self.agent.restart_recover.iter())
        {
            if recover != "reconnect" && recover != "cleanup" {
                return Err(format!(
                    "agent.recover must be reconnect or cleanup, not '{recover}'"
                ));
            }
        }
        if !(self.framework_failover_timeout_s >= 0.0
            && self.framework_failover_timeout_s.is_finite())
        {
            return Err(format!(
                "framework_failover_timeout_s must be a number of seconds >= 0, not {}",
                self.framework_failover_timeout_s
            ));
        }
        for reconcile in &self.reconcile {
            if reconcile.framework == 0 || reconcile.framework > self.frameworks {
                return Err(format!(
                    "reconcile at {} s names framework {}, but there are {}",
                    reconcile.at_s, reconcile.framework, self.frameworks
                ));
            }
            if !(reconcile.at_s >= 0.0 && reconcile.at_s.is_finite()) {
                return Err(format!(
                    "reconcile at {} s: at_s must be a time >= 0",
                    reconcile.at_s
                ));
            }
            for (task, state) in &reconcile.tasks {
                if revenant::proto::TaskState::from_str_name(state).is_none() {
                    return Err(format!(
                        "reconcile at {} s: task {task} is believed in an unknown state \
                         '{state}' (TASK_STAGING, TASK_RUNNING, ...)",
                        reconcile.at_s
                    ));
                }
            }
        }
        if self.tasks.is_empty() && self.generated_tasks.is_none() {
            return Err("no tasks: give [[tasks]] or [generated_tasks]".into());
        }
        for reservation in &self.reservations {
            if reservation.framework == 0 || reservation.framework > self.frameworks {
                return Err(format!(
                    "reservation at {} s names framework {}, but there are {}",
                    reservation.at_s, reservation.framework, self.frameworks
                ));
            }
            let resources = parse_resources(&reservation.resources)
                .map_err(|error| format!("reservation at {} s: {error}", reservation.at_s))?;
            if resources.is_empty() || resources.iter().any(|r| r.role.is_empty()) {
                return Err(format!(
                    "reservation at {} s: every resource needs a role, as in cpus(db):1",
                    reservation.at_s
                ));
            }
        }
        for fault in &self.faults {
            if let Some(framework) = fault.framework {
                if !FRAMEWORK_FAULTS.contains(&fault.kind) {
                    return Err(format!(
                        "fault at {} s: only framework_teardown, framework_crash and \
                         framework_leave name a framework",
                        fault.at_s
                    ));
                }
                if framework == 0 || framework > self.frameworks {
                    return Err(format!(
                        "{} at {} s names framework {framework}, but there are {}",
                        fault.kind.name(),
                        fault.at_s,
                        self.frameworks
                    ));
                }
            }
            if super::fault_checks::is_zk_fault(fault.kind) {
                super::fault_checks::validate_zk(self, fault)?;
            }
            if fault.kind == FaultKind::Partition && (fault.a.is_none() || fault.b.is_none()) {
                return Err(format!("partition at {} s needs a and b", fault.at_s));
            }
            if MESSAGE_FAULTS.contains(&fault.kind) {
                let name = fault.kind.name();
                let Some(message) = &fault.message else {
                    return Err(format!("{name} at {} s needs message", fault.at_s));
                };
                let Some(kind) = super::fault_checks::normalise_kind(message) else {
                    return Err(format!(
                        "{name} at {} s: unknown message '{message}' (one of {})",
                        fault.at_s,
                        super::fault_checks::MESSAGE_KINDS.join(", ")
                    ));
                };
                if fault.kind == FaultKind::Forge
                    && !["acknowledgement", "status_update"].contains(&kind)
                {
                    return Err(format!(
                        "forge at {} s: message '{message}' carries no uuid to forge \
                         (acknowledgement or status_update)",
                        fault.at_s
                    ));
                }
                if let Some(state) = &fault.state {
                    if revenant::proto::TaskState::from_str_name(state).is_none() {
                        return Err(format!(
                            "{name} at {} s: unknown state '{state}'",
                            fault.at_s
                        ));
                    }
                }
            }
            match &fault.on_agent {
                None => {}
                Some(_) if !AGENT_PROCESS_FAULTS.contains(&fault.kind) => {
                    return Err(format!(
                        "fault at {} s: on_agent is for agent_crash, agent_crash_at_write, \
                         agent_unregister, wipe_framework_meta, delete_run_dir, delete_agent_dir, \
                         reconfigure_agent, rewrite_forked_pid, agent_crash_at_message and \
                         agent_crash_at_process (other faults hit the whole machine)",
                        fault.at_s
                    ));
                }
                Some(AgentTarget::One(index)) if *index == 0 || *index > self.agents => {
                    return Err(format!(
                        "fault at {} s: on_agent = {index}, but there are {} agent(s)",
                        fault.at_s, self.agents
                    ));
                }
                Some(AgentTarget::Word(word)) if word != "all" => {
                    return Err(format!(
                        "fault at {} s: on_agent must be an agent number or \"all\", not '{word}'",
                        fault.at_s
                    ));
                }
                Some(_) => {}
            }
            if let Some(flags) = &fault.agent {
                if !matches!(fault.kind, FaultKind::AgentCrash | FaultKind::Reboot) {
                    return Err(format!(
                        "fault at {} s: only agent_crash and reboot carry agent flags",
                        fault.at_s
                    ));
                }
                if let Some(recover) = &flags.recover {
                    if recover != "reconnect" && recover != "cleanup" {
                        return Err(format!(
                            "fault at {} s: agent.recover must be reconnect or cleanup",
                            fault.at_s
                        ));
                    }
                }
                if !matches!(
                    flags.reconfiguration_policy.as_deref(),
                    None | Some("equal" | "additive")
                ) {
                    return Err(format!(
                        "fault at {} s: agent.reconfiguration_policy must be equal or additive",
                        fault.at_s
                    ));
                }
                if let Some(resources) = &flags.resources {
                    parse_resources(resources)
                        .map_err(|error| format!("fault at {} s: {error}", fault.at_s))?;
                }
            }
            // docs/simulator-reach.md 15f.
            if fault.kind == FaultKind::ReconfigureAgent
                && !matches!(fault.how.as_deref(), Some("more" | "new" | "less"))
            {
                return Err(format!(
                    "reconfigure_agent at {} s: how must be more, new or less",
                    fault.at_s
                ));
            }
            // docs/simulator-reach.md 15j.
            if fault.kind == FaultKind::RewriteForkedPid
                && !matches!(fault.how.as_deref(), None | Some("empty"))
            {
                return Err(format!(
                    "rewrite_forked_pid at {} s: how must be left out or be empty",
                    fault.at_s
                ));
            }
            // docs/simulator-reach.md 15o.
            if fault.kind == FaultKind::DeleteRunDir
                && !matches!(fault.how.as_deref(), None | Some("live"))
            {
                return Err(format!(
                    "delete_run_dir at {} s: how must be left out or be live",
                    fault.at_s
                ));
            }
            if fault.kind == FaultKind::TornAppend
                && !matches!(fault.error.as_deref(), None | Some("eio" | "enospc"))
            {
                return Err(format!(
                    "torn_append at {} s: error must be eio or enospc",
                    fault.at_s
                ));
            }
            if let Some(boot) = &fault.boot {
                let allowed = (fault.kind == FaultKind::RewriteForkedPid && boot == "other")
                    || (fault.kind == FaultKind::DiskError && boot == "next");
                if !allowed {
                    return Err(format!(
                        "fault at {} s: `boot` is only \"other\" on rewrite_forked_pid or \"next\" on disk_error (got {:?} on {})",
                        fault.at_s,
                        boot,
                        fault.kind.name()
                    ));
                }
            }
            if fault.zero_fill.is_some() && fault.kind != FaultKind::Reboot {
                return Err(format!(
                    "fault at {} s: `zero_fill` is for reboot only (got it on {})",
                    fault.at_s,
                    fault.kind.name()
                ));
            }
            super::fault_checks::validate_disk(fault)?;
        }
        if let Some(swarm) = &self.swarm {
            if !(0.0..=1.0).contains(&swarm.boundary_weight) {
                return Err("swarm.boundary_weight must be in [0, 1]".into());
            }
            for (name, value) in [
                ("shared_executor_fraction", swarm.shared_executor_fraction),
                ("aimed_disk_error_fraction", swarm.aimed_disk_error_fraction),
                (
                    "recovery_read_error_fraction",
                    swarm.recovery_read_error_fraction,
                ),
                ("torn_header_fraction", swarm.torn_header_fraction),
                ("zero_fill_fraction", swarm.zero_fill_fraction),
                ("hanging_executor_fraction", swarm.hanging_executor_fraction),
                ("non_strict_fraction", swarm.non_strict_fraction),
                ("rogue_agent_fraction", swarm.rogue_agent_fraction),
                (
                    "executor_reregistration_retry_fraction",
                    swarm.executor_reregistration_retry_fraction,
                ),
            ] {
                if !(0.0..=1.0).contains(&value) {
                    return Err(format!("swarm.{name} must be in [0, 1]"));
                }
            }
            if !(0.0..=1.0).contains(&swarm.rogue_fraction) {
                return Err("swarm.rogue_fraction must be in [0, 1]".into());
            }
            if !(0.0..=1.0).contains(&swarm.large_task_fraction) {
                return Err("swarm.large_task_fraction must be in [0, 1]".into());
            }
            if let Some([low, high]) = swarm.gc_delay_s {
                if !(low >= 0.0 && high >= low) {
                    return Err("swarm.gc_delay_s must be [min, max] with 0 <= min <= max".into());
                }
            }
            match swarm.executor_reregistration_retry_s {
                Some([low, high]) if !(low > 0.0 && high >= low && high.is_finite()) => {
                    return Err(
                        "swarm.executor_reregistration_retry_s must be [min, max] with 0 < min <= max"
                            .into(),
                    );
                }
                None if swarm.executor_reregistration_retry_fraction > 0.0 => {
                    return Err(
                        "swarm.executor_reregistration_retry_fraction needs swarm.executor_reregistration_retry_s = [min, max]"
                            .into(),
                    );
                }
                _ => {}
            }
            if let Some([low, high]) = swarm.framework_failover_timeout_s {
                if !(low >= 0.0 && high >= low && high.is_finite()) {
                    return Err(
                        "swarm.framework_failover_timeout_s must be [min, max] with 0 <= min <= max"
                            .into(),
                    );
                }
            }
            if let Some((kind, rate)) = swarm
                .per_minute
                .iter()
                .find(|(_, rate)| !(**rate >= 0.0 && rate.is_finite()))
            {
                return Err(format!(
                    "swarm.per_minute: {kind:?} has rate {rate}, not >= 0"
                ));
            }
        }
        if let Some(resources) = &self.agent.resources {
            parse_resources(resources)?;
        }
        if let Some(expect) = &self.expect {
            if expect.reregistered_within_s.is_some() && self.agents != 1 {
                return Err(format!(
                    "expect.reregistered_within_s needs agents = 1 (the master's trace does not say which host re-registered), there are {}",
                    self.agents
                ));
            }
            if let Some(index) = expect
                .frameworks_removed
                .iter()
                .flatten()
                .find(|i| **i == 0 || **i > self.frameworks)
            {
                return Err(format!(
                    "expect.frameworks_removed names framework {index}, but there are {}",
                    self.frameworks
                ));
            }
            if let Some(index) = expect
                .reregistered
                .iter()
                .find(|i| **i == 0 || **i > self.agents)
            {
                return Err(format!(
                    "expect.reregistered names agent {index}, but there are {} agent(s)",
                    self.agents
                ));
            }
        }
        if !matches!(
            self.agent.reconfiguration_policy.as_deref(),
            None | Some("equal" | "additive")
        ) {
            return Err("agent.reconfiguration_policy must be equal or additive".into());
        }
        let latency = self.agent.disk_group_sync_ms;
        if !(latency.is_finite() && (0.0..=60_000.0).contains(&latency)) {
            return Err(format!(
                "agent.disk_group_sync_ms must be a number of milliseconds in [0, 60000], not {latency}"
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TASK: &str = "[[tasks]]\nid = \"t1\"\ncommand = \"sleep 1\"\n";

    /// Scenarios the validation refuses (each with `TASK` appended) and what the error
    /// must say.
    const REFUSED: &[(&str, &str)] = &[
        // Reservations and teardowns.
        (
            "[[reservations]]\nat_s = 1\nresources = \"cpus:1\"\n",
            "every resource needs a role",
        ),
        (
            "[[reservations]]\nat_s = 1\nresources = \"cpus(db)\"\n",
            "not name:value",
        ),
        (
            "[[reservations]]\nat_s = 1\nresources = \"cpus(db):1\"\nframework = 2\n",
            "names framework 2, but there are 1",
        ),
        (
            "[[faults]]\nat_s = 1\nkind = \"framework_teardown\"\nframework = 3\n",
            "names framework 3, but there are 1",
        ),
        (
            "[[faults]]\nat_s = 1\nkind = \"agent_crash\"\nframework = 1\n",
            "only framework_teardown, framework_crash and framework_leave name a framework",
        ),
        // Reconciliations and failover timeouts.
        (
            "[[reconcile]]\nat_s = 1\nframework = 2\n",
            "reconcile at 1 s names framework 2, but there are 1",
        ),
        (
            "[[reconcile]]\nat_s = 1\ntasks = { t1 = \"RUNNING\" }\n",
            "task t1 is believed in an unknown state 'RUNNING'",
        ),
        (
            "framework_failover_timeout_s = -1\n",
            "framework_failover_timeout_s must be a number of seconds >= 0",
        ),
        (
            "[[faults]]\nat_s = 1\nkind = \"framework_leave\"\nframework = 2\n",
            "framework_leave at 1 s names framework 2, but there are 1",
        ),
        // Message faults.
        (
            "[[faults]]\nat_s = 1\nkind = \"duplicate\"\n",
            "duplicate at 1 s needs message",
        ),
        (
            "[[faults]]\nat_s = 1\nkind = \"forge\"\nmessage = \"run_task\"\n",
            "carries no uuid to forge",
        ),
        (
            "[[faults]]\nat_s = 1\nkind = \"duplicate\"\nmessage = \"no_such\"\n",
            "duplicate at 1 s: unknown message 'no_such'",
        ),
        (
            "[swarm]\nexecutor_reregistration_retry_fraction = 0.5\n[swarm.per_minute]\n",
            "needs swarm.executor_reregistration_retry_s",
        ),
        (
            "[swarm]\nexecutor_reregistration_retry_fraction = 0.5\nexecutor_reregistration_retry_s = [0.0, 1.0]\n[swarm.per_minute]\n",
            "with 0 < min <= max",
        ),
        (
            "[swarm]\nexecutor_reregistration_retry_fraction = 2\nexecutor_reregistration_retry_s = [0.5, 1.0]\n[swarm.per_minute]\n",
            "swarm.executor_reregistration_retry_fraction must be in [0, 1]",
        ),
    ];

    /// Scenarios the validation accepts (each with `TASK` appended).
    const ACCEPTED: &[&str] = &[
        "[[faults]]\nat_s = 1\nkind = \"framework_teardown\"\n[[reservations]]\nat_s = 1\nresources = \"cpus(db):1\"\n",
        "framework_failover_timeout_s = 0\n[[reconcile]]\nat_s = 1\n[[reconcile]]\nat_s = 2\ntasks = { t1 = \"TASK_RUNNING\" }\n[[faults]]\nat_s = 1\nkind = \"framework_crash\"\nframework = 1\n",
        "[[faults]]\nat_s = 1\nkind = \"forge\"\nmessage = \"Acknowledgement\"\n",
        "[swarm]\nexecutor_reregistration_retry_fraction = 0.5\nexecutor_reregistration_retry_s = [0.25, 1.0]\n[swarm.per_minute]\n",
    ];

    fn parsed(text: &str) -> Scenario {
        toml::from_str(&format!("{text}{TASK}")).unwrap_or_else(|error| panic!("{text}: {error}"))
    }

    #[test]
    fn invalid_scenarios_are_refused_with_an_error_naming_what_is_wrong() {
        for (text, expected) in REFUSED {
            let error = parsed(text).validate().expect_err(text);
            assert!(error.contains(expected), "{text}: {error}");
        }
    }

    #[test]
    fn valid_scenarios_are_accepted() {
        for text in ACCEPTED {
            parsed(text).validate().expect(text);
        }
    }
}

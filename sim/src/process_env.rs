//! What a simulated process is started with (docs/design.md D31): an agent's
//! configuration from its scenario's flags, and the environment (clock, disk, network,
//! process table, boot id, seeded randomness) of an agent process and of a host that
//! launches no processes. Used by the hosts of `crate::driver_hosts`.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use revenant::agent::{AgentConfig, RecoverMode};
use revenant::os::{Env, FileSystem};

use crate::fs::SimFs;
use crate::machine::{master_addresses, Machine};
use crate::observations::{agent_port, agent_trace_host, agent_work_dir, secs, AGENT_HOST};
use crate::scenario::{parse_resources, Scenario};
use crate::seams::{
    derive_seed, ProcessDeath, ProcessTable, SeededRandom, SimBootId, SimClock, SimNet,
    SimProcesses,
};

pub(crate) fn agent_config(scenario: &Scenario, index: u32) -> AgentConfig {
    let mut config = AgentConfig::new(
        master_addresses(scenario),
        format!("{AGENT_HOST}:{}", agent_port(index)),
        agent_work_dir(index),
    );
    let flags = &scenario.agent;
    config.recover = if flags.recover == "cleanup" {
        RecoverMode::Cleanup
    } else {
        RecoverMode::Reconnect
    };
    config.strict = flags.strict;
    config.recovery_timeout = secs(flags.recovery_timeout_s);
    config.executor_reregistration_timeout = secs(flags.executor_reregistration_timeout_s);
    config.executor_registration_timeout = secs(flags.executor_registration_timeout_s);
    config.gc_delay = secs(flags.gc_delay_s);
    config.registration_backoff_factor = secs(flags.registration_backoff_factor_s);
    config.master_ping_timeout = secs(flags.master_ping_timeout_s);
    config.executor_reregistration_retry_interval =
        flags.executor_reregistration_retry_interval_s.map(secs);
    if flags.reconfiguration_policy.as_deref() == Some("additive") {
        config.reconfiguration_policy =
            revenant::domain::resources::ReconfigurationPolicy::Additive;
    }
    config.executor_command = vec!["revenant".into(), "executor".into()];
    match &flags.resources {
        Some(text) => config.resources = parse_resources(text).expect("validated"),
        // A reservation, so that resources.info is checkpointed and recovered.
        None => config.resources.push(revenant::proto::Resource {
            name: "cpus".into(),
            scalar: 1.0,
            role: "web".into(),
            // A static reservation, as `--resources cpus(web):1` gives (docs/design.md D14).
            reservation: String::new(),
        }),
    }
    config
}

pub(crate) fn machine_env(
    machine: &Rc<Machine>,
    seed: u64,
    label: &str,
    fs: Rc<dyn FileSystem>,
    death: ProcessDeath,
) -> Env {
    let table = machine.processes.clone();
    let env_machine = machine.clone();
    let incarnation_seed = derive_seed(seed, label);
    Env {
        clock: Rc::new(SimClock {
            wall_offset: machine.wall_offset.clone(),
        }),
        fs,
        net: Rc::new(SimNet::for_process(
            AGENT_HOST,
            &agent_trace_host(machine.index),
        )),
        processes: Rc::new(SimProcesses {
            table,
            env_for: Rc::new(move |pid| {
                let label = format!("executor-{pid}-boot-{}", env_machine.boot.get());
                Env {
                    clock: Rc::new(SimClock {
                        wall_offset: env_machine.wall_offset.clone(),
                    }),
                    fs: Rc::new(env_machine.fs.clone()),
                    net: Rc::new(SimNet::for_executor(AGENT_HOST, pid)),
                    processes: Rc::new(SimProcesses {
                        table: env_machine.processes.clone(),
                        env_for: Rc::new(|_| unreachable!("executors launch no processes")),
                        owner: env_machine.index,
                        death: None,
                    }),
                    boot: Rc::new(SimBootId(env_machine.boot.clone(), AGENT_HOST.into())),
                    random: Rc::new(SeededRandom::new(derive_seed(incarnation_seed, &label))),
                }
            }),
            owner: machine.index,
            death: Some(death),
        }),
        boot: Rc::new(SimBootId(machine.boot.clone(), AGENT_HOST.into())),
        random: Rc::new(SeededRandom::new(incarnation_seed)),
    }
}

/// The environment of a host that launches no processes (a master, the framework): its
/// own disk, turmoil's network and clock, a boot id per incarnation, seeded randomness.
pub(crate) fn host_env(host: &str, incarnation: u64, random: Rc<SeededRandom>) -> Env {
    Env {
        clock: Rc::new(SimClock {
            wall_offset: Rc::new(Cell::new(0)),
        }),
        fs: Rc::new(SimFs::new()),
        net: Rc::new(SimNet::on(host)),
        processes: Rc::new(SimProcesses {
            table: Rc::new(RefCell::new(ProcessTable::default())),
            env_for: Rc::new(|_| unreachable!("only the agent machine launches processes")),
            owner: 0,
            death: None,
        }),
        boot: Rc::new(SimBootId(Rc::new(Cell::new(incarnation)), host.to_owned())),
        random,
    }
}

//! The deterministic simulator of Revenant. It runs the very same agent, master,
//! executor and framework code as the binaries, in one process, on turmoil, driven by
//! one `u64` seed, and checks after every run that the rules of recovery held.
//!
//! | module | owns |
//! | --- | --- |
//! | [`fs`] | the simulated filesystem with crash states and fault injection |
//! | [`faults`] | fault kinds and workload knobs added after the first swarms, their swarm draws, timer boundaries, operator damage |
//! | [`disk_faults`] | disk errors aimed at a path prefix or an operation kind, and their swarm draws |
//! | [`drops`] | targeted message drops: a frame-aware filter on every simulated connection |
//! | [`seams`] | simulated clock, network, processes, boot id, randomness; a filesystem handle that kills its process at an exact operation |
//! | [`scenario`] | the scenario file format |
//! | [`cluster`] | a run's entry point, settings and result; the agent machine's state; the fault schedule |
//! | [`hosts`] | the host layout: names, ports, work directories, each host's principal (the bottom) |
//! | [`machine`] | the agent machine's state across crashes, a run's options |
//! | [`schedule`] | a run's fault schedule, and in a branch its redraw |
//! | [`branch`] | which exploration branch this thread runs |
//! | [`seed`] | seed derivation |
//! | [`clock`] | the driver's simulated time outside any host |
//! | [`violation`] | a broken rule |
//! | [`crash_hooks`] | the crash points' plan and filesystem wrapper, below the driver |
//! | [`fs_op`] | the kinds of filesystem operation |
//! | [`disk_work`] | the disk work each agent incarnation did for nothing, as the simulated filesystem saw it, for the `wasted_disk_work` oracle |
//! | [`observations`] | host layout, the task plan, what the outside world saw: below the driver and the oracles |
//! | [`driver`] | steps a cluster: due faults and deferred actions between turmoil steps, the end of the run |
//! | [`driver_hosts`] | the hosts: masters, the agent machine's supervisors, the frameworks' recording workload |
//! | [`process_env`] | what a simulated process starts with: an agent's configuration from its flags, the environment of an agent process and of a host |
//! | [`apply_fault`] | what each fault kind does to the running cluster |
//! | [`oracles`] | the rules, one file each |
//! | [`rogue`] | the rogue party: a local process posing as an executor, without its secret |
//! | [`rogue_agent`] | the rogue party's agent whose principal the ACLs refuse (docs/security.md SEC48) |
//! | [`rogue_framework`] | the rogue party's framework without rights: what the ACLs refuse, a failover under another principal |
//! | [`gc_watch`] | what each directory tree the agent removes held (runs, tasks), for the `gc_live` oracle |
//! | [`master_reports`] | what each master's `/state` said at the end of the run, for the `master_state` oracle |
//! | [`update_receipts`] | the status updates and registrations the masters received from the agent machine, with times |
//! | [`reconcile_watch`] | reconciliation requests and answers on the wire, and each master's knowledge over time, for the `reconciliation` oracle |
//! | [`shutdown_asks`] | the `ShutdownExecutor` asks the agent wrote to executor processes, by pid, for the `shutdown_grace` oracle, and its `ReconnectExecutor` asks, by connection, for the `pacing` oracle |
//! | [`registration_answers`] | what an agent's end of a local connection did next after an executor registration reached it, and when each agent incarnation ended, for the `refusal` oracle |
//! | [`agent_metrics`] | each agent incarnation's `/metrics` once its recovery read the disk, for the `recovery_errors` oracle |
//! | [`history`] | what the outside world saw: updates frameworks received, processes, agent starts, panics |
//! | [`decision`] | typed trace decisions, parsed once from the real code's messages |
//! | [`trace`] | the run's trace from the real code's `tracing` events, in simulated time |
//! | [`crash_points`] | systematic crash points: the agent dies, or the machine loses power, at each of its filesystem operations |
//! | [`fuzzing`] | the fuzz targets' bodies (docs/security.md SEC6), shared by `fuzz/` and the corpus replay test |
//! | [`sweep`] | many seeds over many scenarios, with reproduction files |
//! | [`zk`] | ZooKeeper in the simulator: the host, sessions over simulated TCP, the client behind the coordination seam, the one-leader and registry oracles |
//! | [`zk_faults`] | ZooKeeper faults: partitions from it, it down and back, forced session expiry |
//! | [`explore`] | `sweep --explore`: branches of runs that reached rare coverage points, with fresh randomness from that moment |
//! | [`messages`] | the message log of a run (for timelines): each frame written and delivered, with its processes |
//! | [`timeline`] | a run drawn as one self-contained HTML file: lanes, messages, faults, decisions, violations |
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

pub mod agent_metrics;
pub mod apply_fault;
pub mod branch;
pub mod clock;
pub mod cluster;
pub mod corrupt;
pub mod crash_hooks;
pub mod crash_points;
pub mod decision;
pub mod disk_faults;
pub mod disk_work;
pub mod driver;
pub mod driver_hosts;
pub mod drops;
pub mod durability;
pub mod explore;
pub mod fault_log;
pub mod faults;
pub mod fs;
pub mod fs_op;
pub mod fuzzing;
pub mod gc_watch;
pub mod history;
pub mod hosts;
pub mod junit;
pub mod machine;
pub mod master_reports;
pub mod master_wire;
pub mod messages;
pub mod observations;
pub mod oracles;
pub mod process_env;
pub mod reconcile_watch;
pub mod registration_answers;
pub mod rogue;
pub mod rogue_agent;
pub mod rogue_framework;
pub mod run_record;
pub mod scenario;
pub mod schedule;
pub mod seams;
pub mod seed;
pub mod shrink;
pub mod shutdown_asks;
pub mod sweep;
pub mod timeline;
pub mod trace;
pub mod update_receipts;
pub mod violation;
pub mod wake_faults;
pub mod zk;
pub mod zk_faults;

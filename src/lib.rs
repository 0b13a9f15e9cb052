//! Revenant: a node agent in the style of the Apache Mesos agent, built for crash recovery.
//!
//! The crate is layered; each module uses only what stands below it.
//!
//! | module | owns |
//! | --- | --- |
//! | [`os`] | the IO seams (clock, filesystem, network, processes, boot id, randomness) as traits with their contracts, and their real implementations |
//! | [`proto`] | the protobuf messages of everything checkpointed or sent (compiled from `proto/` at build time) |
//! | [`ids`] | newtypes for agent, framework, executor, container and task ids, and update uuids |
//! | [`duration`] | Mesos duration strings (`15mins`, `2secs`) |
//! | [`domain`] | what every role agrees on: terminal task states, the status update constructor, resources (the `--resources` syntax, reservations, restart compatibility) |
//! | [`checkpoint`] | every on-disk write of the agent: the meta directory layout, record framing, the writers, the work-directory lock, and state recovery |
//! | [`inspect`] | the read-only `revenant inspect` report of a meta directory |
//! | [`wire`] | the length-delimited envelope protocol every connection speaks (and HTTP `GET` sniffing for `/state`, `/metrics`) |
//! | [`http`] | the operators' HTTP on `hyper`: typed `/state`, `/metrics` from `prometheus-client`, the CLI's client |
//! | [`agent`] | the agent: event loop, recovery, executor reconnection, status update manager, registration back-off, GC |
//! | [`executor`] | the executor process: runs tasks, keeps updates until acknowledged, outlives the agent for `recovery_timeout` |
//! | [`detector`] | leader detection for masters: standalone, or a lease contended for in a shared directory |
//! | [`coord`] | the coordination seam (ZooKeeper): group membership, watches, versioned writes; the ZooKeeper contender and registry store |
//! | [`registry`] | the master's durable registry of admitted and removed agents |
//! | [`master`] | the master: agents, frameworks, task placement, forwarding, pings, reconciliation |
//! | [`framework`] | the framework library behind `revenant submit`, `revenant tasks` and the simulator's workload |
//! | [`coverage`] | named recovery branches counted by the simulator (compiled out without the `coverage` feature) |
//! | `observe` | the simulator's tap on the masters' `/state` (only with the `coverage` feature) |
//! | `breakage` | test-only broken behaviours that show the simulator's oracles can fail (only with the `breakage` feature, which the simulator turns on) |
//!
//! The agent never touches the operating system directly: it is handed an [`os::Env`],
//! which the binaries fill with the real implementations and the simulator (`sim/`)
//! with simulated ones.

/// A test-only switch of [`breakage`] (docs/design.md D11): the switch's value when the
/// `breakage` feature is on, `false` when it is off, so that a release build carries
/// neither the switch nor the code it guards.
#[cfg(feature = "breakage")]
macro_rules! broken {
    ($switch:expr) => {
        $switch
    };
}
#[cfg(not(feature = "breakage"))]
macro_rules! broken {
    ($switch:expr) => {
        false
    };
}

pub mod checkpoint;
pub mod ids;
pub mod inspect;
pub mod os;

/// Messages generated from `proto/revenant.proto`.
#[allow(clippy::all, missing_docs)]
pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/revenant.rs"));
}
pub mod agent;
#[cfg(feature = "breakage")]
pub mod breakage;
pub mod coord;
pub mod coverage;
pub mod detector;
pub mod domain;
pub mod duration;
pub mod executor;
pub mod framework;
pub mod http;
pub mod master;
#[cfg(feature = "coverage")]
pub mod observe;
pub mod registry;
pub mod security;
pub mod tls;
pub mod wire;

/// The `--resources` parser's old path (docs/design.md D18: it lives in the domain).
pub use domain::resources;

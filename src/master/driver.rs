//! The master's driver (docs/design.md D37-D41): the one place that touches the
//! network, the clock and the leader detector. It turns what arrives into events for
//! the core ([`Master`]), with the time and the leadership read once per event, and
//! performs the [`Effect`]s the core returns, in order, before it waits again.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tracing::info;

use super::effects::{Effect, Leadership, Now};
use super::{Detector, Master, MasterConfig};
use crate::os::Env;
use crate::registry::Registry;
use crate::wire::{self, ConnectionId, Incoming, Outbox};

#[allow(clippy::large_enum_variant)] // events are moved once; boxing buys nothing
enum Event {
    Accepted(crate::os::BoxStream, String),
    Wire(Incoming),
}

const TICK: Duration = Duration::from_millis(250);

/// Runs a master until its future is dropped, or until its registry cannot be read or
/// written (the error names the file).
pub async fn run(
    env: Env,
    config: MasterConfig,
    detector: Box<dyn Detector>,
) -> std::io::Result<()> {
    let registry = match &config.work_dir {
        Some(dir) => Registry::open(env.fs.clone(), dir).map_err(std::io::Error::other)?,
        None => Registry::in_memory(),
    };
    run_with_registry(env, config, detector, registry).await
}

/// The driver's side of the master: the connections' outboxes, the detector and the
/// environment.
struct Driver {
    env: Env,
    detector: Box<dyn Detector>,
    /// The outbox of every connection the core still names (docs/design.md D41).
    outboxes: BTreeMap<ConnectionId, Outbox>,
    next_connection: u64,
}

impl Driver {
    fn now(&self) -> Now {
        Now {
            at: self.env.clock.now(),
            wall_seconds: self.env.wall_seconds(),
        }
    }

    fn leadership(&self) -> Leadership {
        Leadership::of(&*self.detector)
    }

    /// Performs `effects` in the order the core returned them (docs/design.md D40),
    /// then lets go of the outboxes the core no longer names (D41). A registry write
    /// that fails stops the list there and the master (D77).
    fn perform(&mut self, effects: Vec<Effect>, master: &mut Master) {
        for effect in effects {
            match effect {
                Effect::Record(write) => {
                    if let Err(error) = master.registry.write(write) {
                        master.failed = Some(error);
                        break;
                    }
                }
                Effect::Send { to, body } => {
                    if let Some(outbox) = self.outboxes.get(&to) {
                        outbox.send(body);
                    }
                }
                Effect::Close { connection } => {
                    if let Some(outbox) = self.outboxes.get(&connection) {
                        outbox.close();
                    }
                }
                Effect::Respond {
                    connection,
                    response,
                } => {
                    if let Some(outbox) = self.outboxes.get(&connection) {
                        outbox.respond(response);
                    }
                }
            }
        }
        let named = master.connections_in_use();
        self.outboxes.retain(|id, _| named.contains(id));
    }
}

/// Runs a master with a registry kept elsewhere (in ZooKeeper: docs/zookeeper.md Z7).
pub async fn run_with_registry(
    env: Env,
    config: MasterConfig,
    detector: Box<dyn Detector>,
    registry: Registry,
) -> std::io::Result<()> {
    let mut listener = env.net.listen(&config.listen).await?;
    info!(address = %config.listen, "master listening");
    let (sender, mut inbox) = mpsc::unbounded_channel::<Event>();
    let mut tasks: JoinSet<()> = JoinSet::new();
    let accept_sender = sender.clone();
    tasks.spawn_local(async move {
        loop {
            if let Ok((stream, peer)) = listener.accept().await {
                if accept_sender.send(Event::Accepted(stream, peer)).is_err() {
                    return;
                }
            }
        }
    });
    let mut driver = Driver {
        detector,
        outboxes: BTreeMap::new(),
        next_connection: 0,
        env,
    };
    let mut master = Master::new(config, registry, driver.env.random.clone(), driver.now());
    let leading = driver.detector.maintain();
    let effects = master.on_tick(driver.now(), leading, driver.leadership());
    driver.perform(effects, &mut master);
    let mut next_tick = driver.env.clock.now() + TICK;
    loop {
        if let Some(error) = master.failed.take() {
            return Err(std::io::Error::other(error));
        }
        let wait = next_tick.saturating_duration_since(driver.env.clock.now());
        let sleep = driver.env.clock.sleep(wait);
        let event = tokio::select! {
            biased;
            event = inbox.recv() => event,
            _ = sleep => None,
        };
        let effects = match event {
            Some(Event::Accepted(stream, peer)) => {
                let id = ConnectionId(driver.next_connection + 1);
                // The oldest unidentified connection is closed before the new one is
                // served (docs/security.md SEC4).
                let effects = master.on_accepted(driver.now(), id, &peer);
                driver.perform(effects, &mut master);
                driver.next_connection += 1;
                let link = wire::Link {
                    id,
                    peer,
                    clock: driver.env.clock.clone(),
                };
                let outbox = wire::serve(stream, link, &mut tasks, sender.clone(), Event::Wire);
                driver.outboxes.insert(id, outbox);
                Vec::new()
            }
            Some(Event::Wire(Incoming::Message(id, body))) => {
                master.on_message(driver.now(), driver.leadership(), id, body)
            }
            Some(Event::Wire(Incoming::Closed(id, _))) => master.on_closed(driver.now(), id),
            Some(Event::Wire(Incoming::Http(id, path))) => {
                master.on_http(driver.now(), driver.leadership(), id, &path)
            }
            None => {
                let leading = driver.detector.maintain();
                let effects = master.on_tick(driver.now(), leading, driver.leadership());
                next_tick = driver.env.clock.now() + TICK;
                effects
            }
        };
        driver.perform(effects, &mut master);
    }
}

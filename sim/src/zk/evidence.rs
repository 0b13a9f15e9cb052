//! The evidence of the two ZooKeeper oracles (docs/zookeeper.md Z15, Z16), taken from
//! the wire (every frame a master writes) and from the tree, outside the code under test.

use super::*;

impl ZkWorld {
    /// The registry node's version (-1 when there is none) and, when `decode`, the agent
    /// ids it lists. The version alone is read without decoding the registry
    /// (docs/recovery-latency.md P61): the check at every server tick looks at the ids
    /// only when the version moved.
    fn registry_agents(&self, decode: bool) -> (i32, BTreeSet<String>) {
        match self.tree.node(&self.url.registry_path()) {
            Some((data, version, _)) if decode => {
                let registry =
                    revenant::proto::Registry::decode(data.as_slice()).unwrap_or_default();
                let ids = registry
                    .agents
                    .iter()
                    .filter_map(|a| a.info.as_ref().map(|i| i.id.clone()))
                    .collect();
                (version, ids)
            }
            Some((_, version, _)) => (version, BTreeSet::new()),
            None => (-1, BTreeSet::new()),
        }
    }

    /// Z16: every agent id a leader acknowledged is in the registry node.
    pub(super) fn check_registry(&self, force: bool) {
        if !force && self.registry_agents(false).0 == self.checked_version.get() {
            return;
        }
        let (version, ids) = self.registry_agents(true);
        self.checked_version.set(version);
        for (agent, at) in self.acknowledged.borrow().iter() {
            if !ids.contains(agent) {
                self.violations.borrow_mut().push(Violation {
                    time: elapsed(),
                    oracle: "zk_registry",
                    message: format!(
                        "agent {agent}, acknowledged by a leader at {:.3}s, is missing from the registry node {} (version {version})",
                        at.as_secs_f64(),
                        self.url.registry_path()
                    ),
                });
            }
        }
    }

    /// Z15 and Z16 at the instant `master` writes `frame` to `peer`.
    pub(super) fn observe(&self, master: &str, peer: &str, frame: &[u8]) {
        let Some(body) = revenant::proto::Envelope::decode(frame)
            .ok()
            .and_then(|e| e.body)
        else {
            return;
        };
        if matches!(body, Body::NotLeader(_)) {
            return;
        }
        let kind = revenant::wire::kind(&body);
        let current = self.current.borrow().get(master).cloned();
        let why = match &current {
            None => Some("holds no ZooKeeper session".to_owned()),
            // A decision taken at this very instant, before the client heard, is not
            // one taken without a session.
            Some((_, client)) if client.lost_since().is_some_and(|at| at < Instant::now()) => {
                Some(format!(
                    "whose ZooKeeper client has held no confirmed session since {:.3}s",
                    client
                        .lost_since()
                        .map(|at| elapsed()
                            .saturating_sub(Instant::now().duration_since(at))
                            .as_secs_f64())
                        .unwrap_or_default()
                ))
            }
            // Ended by the server out of band while the client was connected: the
            // client cannot know before the server's notice reaches it (Z14, Z15).
            Some((id, _)) if self.forced.borrow().contains(id) => None,
            Some((id, _)) if !self.tree.session_live(*id) => Some(format!(
                "whose ZooKeeper session {id} expired at its timeout"
            )),
            Some((id, _)) if self.leader_session() != Some(*id) => Some(format!(
                "whose session {id} does not hold the lowest member (the leader is {})",
                self.leader_host().unwrap_or_else(|| "nobody".into())
            )),
            Some(_) => None,
        };
        if let Some(why) = why {
            self.violations.borrow_mut().push(Violation {
                time: elapsed(),
                oracle: "zk_one_leader",
                message: format!("{master}, {why}, sent the leader-only message {kind} to {peer}"),
            });
        }
        let acknowledged = match &body {
            Body::AgentRegistered(m) => Some(m.agent_id.clone()),
            Body::AgentReregistered(m) => Some(m.agent_id.clone()),
            _ => None,
        };
        if let Some(agent) = acknowledged.filter(|a| !a.is_empty()) {
            self.acknowledged
                .borrow_mut()
                .entry(agent)
                .or_insert_with(elapsed);
            self.check_registry(true);
        }
    }
}

/// A master process wrote `bytes` to a connection: the wire observer (see
/// [`crate::drops::FilteredStream`]) hands over each whole frame.
pub fn observe_written(local: &str, peer: &str, frame: &[u8]) {
    if !local.starts_with("master") || peer == ZK_HOST {
        return;
    }
    if let Some(world) = world() {
        world.observe(local, peer, frame);
    }
}

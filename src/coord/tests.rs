//! The contender and the registry store on the in-memory ZooKeeper model
//! (docs/zookeeper.md Z3, Z4, Z6, Z7, Z8).

use std::rc::Rc;

use prost::Message;

use super::memory::{MemorySession, MemoryZk};
use super::{CoordRegistryStore, Coordination, ZkContender, ZkUrl};
use crate::detector::Detector;
use crate::proto::{AgentInfo, MasterInfo};
use crate::registry::Registry;

struct Master {
    session: Rc<MemorySession>,
    contender: ZkContender,
    registry: Registry,
}

fn url() -> ZkUrl {
    ZkUrl::parse("zk://zk:2181/revenant").unwrap()
}

fn master(zk: &MemoryZk, address: &str) -> Master {
    let session = Rc::new(zk.session());
    session.ensure_path(&url().path).unwrap();
    let info = MasterInfo {
        address: address.into(),
        incarnation: 1,
    };
    let contender = ZkContender::new(
        session.clone(),
        Rc::new(crate::os::real::SystemClock),
        &url(),
        &info,
    );
    let store = CoordRegistryStore::new(session.clone(), url().registry_path(), contender.member());
    let registry = Registry::in_store(Box::new(store)).unwrap();
    Master {
        session,
        contender,
        registry,
    }
}

fn agent(id: &str) -> AgentInfo {
    AgentInfo {
        id: id.into(),
        ..Default::default()
    }
}

#[test]
fn lowest_member_leads_and_each_other_watches_only_its_predecessor() {
    let zk = MemoryZk::new();
    let mut masters: Vec<Master> = ["m0:5050", "m1:5050", "m2:5050"]
        .iter()
        .map(|a| master(&zk, a))
        .collect();
    let leading: Vec<bool> = masters.iter_mut().map(|m| m.contender.maintain()).collect();
    assert_eq!(leading, vec![true, false, false]);
    assert_eq!(masters[0].contender.epoch(), 1);
    assert_eq!(masters[2].contender.epoch(), 3);
    assert_eq!(masters[2].contender.leader(), "m0:5050");
    let watches = zk.watches();
    assert_eq!(
        watches,
        vec![
            (
                "/revenant/members/member_0000000000".to_owned(),
                masters[1].session.id()
            ),
            (
                "/revenant/members/member_0000000001".to_owned(),
                masters[2].session.id()
            ),
        ],
        "each follower watches its predecessor only"
    );
}

#[test]
fn a_suspended_leader_stops_at_once_and_an_expired_one_rejoins_as_a_new_contender() {
    let zk = MemoryZk::new();
    let mut a = master(&zk, "a:5050");
    let mut b = master(&zk, "b:5050");
    assert!(a.contender.maintain());
    assert!(!b.contender.maintain());

    // Z4: a lost connection ends acting as leader before any maintain() runs.
    a.session.suspend();
    assert!(!a.contender.leading());
    assert_eq!(
        a.contender.leader(),
        "",
        "no leader named without a session"
    );
    // Back within the timeout: the same member, leading again.
    a.session.resume();
    assert!(a.contender.maintain());

    // Expired: b's watch fires, b leads; a rejoins with a higher sequence.
    a.session.suspend();
    a.session.expire();
    assert!(!a.contender.maintain());
    assert!(
        b.contender.maintain(),
        "the successor leads once its watch fired"
    );
    assert_eq!(b.contender.epoch(), 2);
    a.session.reconnect();
    assert!(!a.contender.maintain());
    assert_eq!(
        a.contender.epoch(),
        3,
        "a new contender, never the old leadership"
    );
    assert_eq!(a.contender.leader(), "b:5050");
}

#[test]
fn only_the_current_leaders_registry_writes_succeed_and_none_acknowledged_is_lost() {
    let zk = MemoryZk::new();
    let mut a = master(&zk, "a:5050");
    let mut b = master(&zk, "b:5050");
    assert!(a.contender.maintain());
    a.registry.reload().unwrap(); // elected: claims the registry (Z8)
    a.registry.admit(&agent("agent-1")).unwrap();

    // a is partitioned; its session expires at the server; b is elected and claims.
    a.session.suspend();
    a.session.expire();
    assert!(b.contender.maintain());
    b.registry.reload().unwrap();
    assert_eq!(b.registry.agents().len(), 1, "what a acknowledged survives");

    // a comes back with a new session but still holds its old registry version.
    a.session.reconnect();
    a.contender.maintain();
    let error = a.registry.admit(&agent("agent-2")).unwrap_err().to_string();
    assert!(error.contains("version check failed"), "{error}");
    b.registry.admit(&agent("agent-3")).unwrap();
    let (data, _) = b.session.get("/revenant/registry").unwrap().unwrap();
    let stored = crate::proto::Registry::decode(data.as_slice()).unwrap();
    let ids: Vec<String> = stored
        .agents
        .iter()
        .map(|e| e.info.clone().unwrap_or_default().id)
        .collect();
    assert_eq!(ids, vec!["agent-1", "agent-3"]);
}

#[test]
fn a_deposed_leader_that_never_noticed_cannot_write_even_before_the_new_one_writes() {
    let zk = MemoryZk::new();
    let mut a = master(&zk, "a:5050");
    let mut b = master(&zk, "b:5050");
    assert!(a.contender.maintain());
    a.registry.reload().unwrap();
    // a's session expires at the server while a hears nothing (paused process): its
    // member is gone, so its fenced write fails although its version is current.
    a.session.expire();
    let error = a.registry.admit(&agent("agent-9")).unwrap_err().to_string();
    assert!(error.contains("no live session"), "{error}");
    assert!(b.contender.maintain());
}

#[test]
fn a_new_session_does_not_revive_the_old_membership_between_ticks() {
    let zk = MemoryZk::new();
    let mut a = master(&zk, "a:5050");
    let mut b = master(&zk, "b:5050");
    assert!(a.contender.maintain());
    assert!(!b.contender.maintain());
    a.session.expire();
    a.session.reconnect(); // the client opens a new session before the next tick
    assert!(
        !a.contender.leading(),
        "leading on a member of an expired session"
    );
    assert!(!a.contender.maintain());
}

/// docs/zookeeper.md Z17, Z18: a client's follower names the lowest member, learns of
/// every change through its child watch (armed again on each listing, with no polling),
/// waits for a group that does not exist yet, and follows a master that joined after it
/// started.
#[test]
fn follower_names_the_leader_as_the_group_changes() {
    use super::follower::{GroupFollower, Leader};
    let zk = MemoryZk::new();
    let client = Rc::new(zk.session());
    let mut follower = GroupFollower::new(client.clone(), &url());
    assert_eq!(follower.maintain(), None, "no group yet");
    let mut a = master(&zk, "a:5050");
    a.contender.maintain();
    // The group's creation and a's joining fired the watches: no reread was asked for.
    let leader = |address: &str, epoch| {
        Some(Leader {
            address: address.into(),
            epoch,
        })
    };
    assert_eq!(follower.maintain(), leader("a:5050", 1));
    let mut b = master(&zk, "b:5050");
    b.contender.maintain();
    assert_eq!(follower.maintain(), leader("a:5050", 1));
    a.session.expire();
    assert_eq!(follower.maintain(), leader("b:5050", 2), "a's member gone");
    // A master that joined after the follower started, leading once b is gone too.
    let mut c = master(&zk, "c:5050");
    c.contender.maintain();
    b.session.expire();
    assert_eq!(follower.maintain(), leader("c:5050", 3));
    assert_eq!(
        follower.maintain(),
        leader("c:5050", 3),
        "stable without changes"
    );
    c.session.expire();
    assert_eq!(follower.maintain(), None, "an empty group names no leader");
}

/// docs/zookeeper.md Z19: a follower never goes back to a leader with a lower epoch
/// than one it named (an older view of the group).
#[test]
fn follower_refuses_an_older_epoch() {
    use super::follower::GroupFollower;
    let zk = MemoryZk::new();
    let mut a = master(&zk, "a:5050");
    a.contender.maintain();
    let mut b = master(&zk, "b:5050");
    b.contender.maintain();
    let client = Rc::new(zk.session());
    let mut follower = GroupFollower::new(client.clone(), &url());
    a.session.expire();
    assert_eq!(follower.maintain().map(|l| l.epoch), Some(2));
    // An older view: a member with sequence 0 again (only a stale server could show it).
    let stale = zk.session();
    let info = MasterInfo {
        address: "stale:5050".into(),
        incarnation: 1,
    };
    stale
        .create("/revenant/members/member_0000000000", &info.encode_to_vec())
        .unwrap();
    follower.reread();
    assert_eq!(
        follower.maintain().map(|l| l.address),
        Some("b:5050".into())
    );
}

/// docs/zookeeper.md Z22: a join whose answer was lost was applied; the contender
/// finds the member carrying its own `MasterInfo` and keeps it rather than joining
/// again behind it.
#[test]
fn contender_keeps_the_member_of_a_join_whose_answer_was_lost() {
    let zk = MemoryZk::new();
    let session = Rc::new(zk.session());
    session.ensure_path(&url().members_path()).unwrap();
    let info = MasterInfo {
        address: "a:5050".into(),
        incarnation: 7,
    };
    // The join the server applied, whose answer never reached the contender.
    session
        .join(&url().members_path(), &info.encode_to_vec())
        .unwrap();
    // Another master's member, with the same address but another incarnation.
    let other = zk.session();
    let stale = MasterInfo {
        address: "a:5050".into(),
        incarnation: 6,
    };
    other
        .join(&url().members_path(), &stale.encode_to_vec())
        .unwrap();
    let mut contender = ZkContender::new(
        session.clone(),
        Rc::new(crate::os::real::SystemClock),
        &url(),
        &info,
    );
    assert!(
        contender.maintain(),
        "it leads with the member it already had"
    );
    assert_eq!(contender.epoch(), 1);
    assert_eq!(zk.children_of(&url().members_path()).len(), 2);
}

//! The simulated ZooKeeper through the coordination seam, on turmoil
//! (docs/zookeeper.md Z11-Z13): ephemeral sequential members, a one-shot watch that
//! fires when the server expires its owner, versioned writes, and the client calling
//! its session lost before the server expires it, then getting a new session.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use revenant::coord::{CoordError, CoordEvent, Coordination, SessionState};
use revenant_sim::zk::{self, SimZk};

#[derive(Default, Debug)]
struct Seen {
    a_member: Option<String>,
    b_member: Option<String>,
    bad_version: bool,
    op_failed_while_cut: bool,
    a_suspended_at: Option<Duration>,
    b_notified_at: Option<Duration>,
    a_expired_event: bool,
    a_generation_after: u64,
    a_new_member: Option<String>,
}

fn now() -> Duration {
    turmoil::sim_elapsed().unwrap_or_default()
}

#[test]
fn sessions_members_watches_and_versions() {
    let world = zk::begin();
    let seen = Rc::new(RefCell::new(Seen::default()));
    let mut sim = turmoil::Builder::new()
        .tick_duration(Duration::from_millis(10))
        .simulation_duration(Duration::from_secs(60))
        .build();
    let server = world.clone();
    sim.host(zk::ZK_HOST, move || zk::server_host(server.clone()));
    let (w, s) = (world.clone(), seen.clone());
    sim.client("a", async move {
        let coord = SimZk::start(w, "a", Duration::from_secs(6));
        while !coord.session_alive() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        coord.ensure_path("/g").expect("ensure /g");
        let member = coord.join("/g", b"a").expect("join");
        s.borrow_mut().a_member = Some(member.path.clone());
        assert_eq!(coord.create("/x", b"0").expect("create"), 0);
        assert_eq!(
            coord.set("/x", b"1", 0, Some(&member.path)).expect("set"),
            1
        );
        s.borrow_mut().bad_version = matches!(
            coord.set("/x", b"2", 0, Some(&member.path)),
            Err(CoordError::BadVersion(_))
        );
        tokio::time::sleep(Duration::from_secs(4)).await;
        // Cut from 3 s on (below): the session is still confirmed, the request is not served.
        s.borrow_mut().op_failed_while_cut = coord.get("/x").is_err();
        while coord.session_alive() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        s.borrow_mut().a_suspended_at = Some(now());
        // Healed at 20 s: the client hears its session expired and opens another.
        loop {
            let events = coord.poll_events();
            if events.contains(&CoordEvent::Session(SessionState::Expired)) {
                s.borrow_mut().a_expired_event = true;
            }
            if s.borrow().a_expired_event && coord.session_alive() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        s.borrow_mut().a_generation_after = coord.session_generation();
        s.borrow_mut().a_new_member = Some(coord.join("/g", b"a").expect("join again").path);
        Ok(())
    });
    let (w, s) = (world.clone(), seen.clone());
    sim.client("b", async move {
        let coord = SimZk::start(w, "b", Duration::from_secs(6));
        tokio::time::sleep(Duration::from_secs(2)).await;
        let member = coord.join("/g", b"b").expect("join");
        s.borrow_mut().b_member = Some(member.path);
        let a = s.borrow().a_member.clone().expect("a joined first");
        assert!(coord.watch_node(&a).expect("watch"));
        loop {
            if coord
                .poll_events()
                .iter()
                .any(|e| *e == CoordEvent::NodeChanged(a.clone()))
            {
                s.borrow_mut().b_notified_at = Some(now());
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(
            coord.children("/g").expect("children"),
            vec!["member_0000000001"]
        );
        tokio::time::sleep(Duration::from_secs(25)).await;
        Ok(())
    });
    let mut cut = false;
    let mut healed = false;
    while !sim.step().expect("simulation") {
        if !cut && sim.elapsed() >= Duration::from_secs(3) {
            sim.partition("a", zk::ZK_HOST);
            world.set_cut("a", true);
            cut = true;
        }
        if !healed && sim.elapsed() >= Duration::from_secs(20) {
            sim.repair("a", zk::ZK_HOST);
            world.set_cut("a", false);
            healed = true;
        }
    }
    let seen = seen.borrow();
    eprintln!("{seen:?}");
    assert_eq!(seen.a_member.as_deref(), Some("/g/member_0000000000"));
    assert_eq!(seen.b_member.as_deref(), Some("/g/member_0000000001"));
    assert!(
        seen.bad_version,
        "a stale versioned write fails with BadVersion"
    );
    assert!(
        seen.op_failed_while_cut,
        "no request is served across a partition"
    );
    let suspended = seen.a_suspended_at.expect("a calls its session lost");
    let notified = seen
        .b_notified_at
        .expect("b's watch fires when a's member goes");
    // The client gives up within 2/3 of 6 s of its last answered ping (sent at most
    // 1.5 s before the cut); the server expires 6 s after it last heard from it.
    assert!(suspended < notified, "{suspended:?} !< {notified:?}");
    assert!(suspended <= Duration::from_secs(3) + Duration::from_millis(4100));
    assert!(notified >= Duration::from_secs(3) + Duration::from_millis(4400));
    assert!(seen.a_expired_event);
    assert_eq!(seen.a_generation_after, 2);
    assert_eq!(seen.a_new_member.as_deref(), Some("/g/member_0000000002"));
    assert!(zk::finish().is_empty());
}

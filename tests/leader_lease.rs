//! The lease contender as a plain state machine: masters share a (simulated) directory
//! and step through time; at no instant do two lead, and a dead leader is replaced once
//! its lease has ended.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::cell::Cell;
use std::path::Path;
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use revenant::detector::{read_lease, Detector, LeaseContender, LEASE_FILE};
use revenant::os::{Clock, FileSystem, LocalFuture};
use revenant::registry::Registry;
use revenant_sim::fs::SimFs;

/// A wall clock the test moves by hand, with a fixed skew per master.
struct ManualClock {
    now: Rc<Cell<SystemTime>>,
    skew_ms: i64,
}

impl Clock for ManualClock {
    fn now(&self) -> tokio::time::Instant {
        tokio::time::Instant::now()
    }
    fn wall(&self) -> SystemTime {
        let base = self.now.get();
        if self.skew_ms >= 0 {
            base + Duration::from_millis(self.skew_ms as u64)
        } else {
            base - Duration::from_millis((-self.skew_ms) as u64)
        }
    }
    fn sleep(&self, _duration: Duration) -> LocalFuture<'static, ()> {
        unreachable!("the contender never sleeps")
    }
}

const DIR: &str = "/masters";
const LEASE: Duration = Duration::from_secs(10);

fn contender(
    fs: &SimFs,
    now: &Rc<Cell<SystemTime>>,
    address: &str,
    incarnation: u64,
    skew_ms: i64,
) -> LeaseContender {
    LeaseContender::new(
        Rc::new(fs.clone()),
        Rc::new(ManualClock {
            now: now.clone(),
            skew_ms,
        }),
        Path::new(DIR),
        address.to_owned(),
        incarnation,
        LEASE,
    )
}

fn setup() -> (SimFs, Rc<Cell<SystemTime>>) {
    let fs = SimFs::new();
    fs.create_dir_all_durably(Path::new(DIR)).expect("dir");
    (
        fs,
        Rc::new(Cell::new(UNIX_EPOCH + Duration::from_secs(1_000_000))),
    )
}

/// Steps both masters every 100 ms; `a` dies at `a_dies_at`. Returns when `b` first led.
fn run(skew_b_ms: i64, a_dies_at: Duration) -> Duration {
    let (fs, now) = setup();
    let mut a = contender(&fs, &now, "a:5050", 1, 0);
    let mut b = contender(&fs, &now, "b:5050", 1, skew_b_ms);
    let start = now.get();
    let mut b_led_at = None;
    for step in 0..1_000u64 {
        let elapsed = Duration::from_millis(step * 100);
        now.set(start + elapsed);
        let a_alive = elapsed < a_dies_at;
        if a_alive {
            a.maintain();
        }
        b.maintain();
        let a_leads = a_alive && a.leading();
        // A dead master leads no more, but its view is checked too: had it lived on
        // without renewing, it would still have to have stopped in time.
        assert!(
            !(a.leading() && b.leading()),
            "both lead at {elapsed:?} (skew {skew_b_ms} ms)"
        );
        if step == 0 {
            assert!(a_leads, "the first contender takes the free lease");
        }
        if b.leading() && b_led_at.is_none() {
            b_led_at = Some(elapsed);
        }
    }
    b_led_at.expect("the second master took over")
}

#[test]
fn a_live_leader_keeps_the_lease_and_a_dead_one_is_replaced_after_it_ends() {
    let took_over = run(0, Duration::from_secs(30));
    // A renewed last at or before 30 s, so its lease ended at most 40 s in.
    assert!(took_over >= Duration::from_secs(30), "{took_over:?}");
    assert!(took_over <= Duration::from_secs(41), "{took_over:?}");
}

#[test]
fn two_never_lead_at_once_while_clocks_disagree_by_less_than_the_margin() {
    for skew in [-900, -500, 0, 500, 900] {
        run(skew, Duration::from_secs(20));
    }
}

#[test]
fn a_leader_that_could_not_renew_stops_leading_and_knows_the_new_leader() {
    let (fs, now) = setup();
    let mut a = contender(&fs, &now, "a:5050", 1, 0);
    let mut b = contender(&fs, &now, "b:5050", 1, 0);
    assert!(a.maintain());
    assert!(!b.maintain());
    assert_eq!(b.leader(), "a:5050");
    // A stalls (no renewal) for longer than its lease; B takes over.
    now.set(now.get() + LEASE + Duration::from_millis(1));
    assert!(
        !a.leading(),
        "a stale holder stops leading by its own clock"
    );
    assert!(b.maintain());
    // A wakes up: the lease is B's now.
    assert!(!a.maintain());
    assert_eq!(a.leader(), "b:5050");
    let lease = read_lease(&fs, &Path::new(DIR).join(LEASE_FILE))
        .expect("lease readable")
        .expect("a lease");
    assert_eq!(lease.holder, "b:5050");
}

#[test]
fn a_restarted_master_waits_for_its_previous_incarnations_lease() {
    let (fs, now) = setup();
    let mut first = contender(&fs, &now, "a:5050", 1, 0);
    assert!(first.maintain());
    let mut second = contender(&fs, &now, "a:5050", 2, 0);
    assert!(!second.maintain(), "a new incarnation is a new contender");
    now.set(now.get() + LEASE);
    assert!(second.maintain());
}

#[test]
fn the_registry_survives_a_reopen_and_names_its_file_when_corrupt() {
    let (fs, _) = setup();
    let shared: Rc<dyn FileSystem> = Rc::new(fs.clone());
    let mut registry = Registry::open(shared.clone(), Path::new(DIR)).expect("open");
    let info = revenant::proto::AgentInfo {
        id: "agent-1".into(),
        hostname: "h".into(),
        port: 1,
        ..Default::default()
    };
    registry.admit(&info).expect("admit");
    let reopened = Registry::open(shared.clone(), Path::new(DIR)).expect("reopen");
    assert_eq!(reopened.agents().len(), 1);
    assert!(!reopened.is_removed("agent-1"));
    registry.remove(&info).expect("remove");
    let reopened = Registry::open(shared.clone(), Path::new(DIR)).expect("reopen");
    assert!(reopened.is_removed("agent-1"));

    let path = Path::new(DIR).join(revenant::registry::REGISTRY_FILE);
    let mut data = shared.read(&path).expect("read");
    let last = data.len() - 1;
    data[last] ^= 0xff;
    shared.write(&path, &data).expect("write");
    let error = Registry::open(shared, Path::new(DIR))
        .err()
        .expect("a corrupt registry is an error");
    assert!(error.to_string().contains("registry"), "{error}");
    assert!(error.to_string().contains(DIR), "{error}");
}

/// docs/security.md SEC43, SEC44: a framework's principal and a removal's reason outlive
/// the registry's writer, and a removal forgets the principal.
#[test]
fn the_registry_keeps_framework_principals_and_removal_reasons_across_a_reopen() {
    let (fs, _) = setup();
    let shared: Rc<dyn FileSystem> = Rc::new(fs.clone());
    let mut registry = Registry::open(shared.clone(), Path::new(DIR)).expect("open");
    assert_eq!(registry.framework_principal("framework-1"), None);
    registry
        .record_framework("framework-1", None)
        .expect("record");
    registry
        .record_framework("framework-2", Some("web"))
        .expect("record");
    let reopened = Registry::open(shared.clone(), Path::new(DIR)).expect("reopen");
    assert_eq!(reopened.framework_principal("framework-1"), Some(None));
    assert_eq!(
        reopened.framework_principal("framework-2"),
        Some(Some("web"))
    );
    assert_eq!(reopened.framework_principal("framework-3"), None);

    registry
        .tear_down(
            "framework-2",
            "framework removed: no scheduler failed over within its failover timeout (5 s)",
        )
        .expect("tear down");
    let reopened = Registry::open(shared, Path::new(DIR)).expect("reopen");
    assert!(reopened.is_torn_down("framework-2"));
    assert_eq!(reopened.framework_principal("framework-2"), None);
    assert_eq!(
        reopened.removal_message("framework-2"),
        Some("framework removed: no scheduler failed over within its failover timeout (5 s)")
    );
    assert_eq!(reopened.framework_principal("framework-1"), Some(None));
}

/// The check above can fail: with clocks further apart than the margin, the lease no
/// longer keeps two leaders apart.
#[test]
#[should_panic(expected = "both lead")]
fn clocks_further_apart_than_the_margin_break_the_guarantee() {
    run(1_500, Duration::from_secs(20));
}

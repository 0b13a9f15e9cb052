//! docs/security.md SEC5 in the framework library: a task whose submission would not fit
//! in a frame is refused where it is made. The framework's workload hears a TASK_ERROR
//! naming the size, the master never receives it, and the connection goes on carrying
//! the submissions after it. The master is a hand-driven stand-in on loopback.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use revenant::framework::{self, Workload};
use revenant::os::Env;
use revenant::proto::envelope::Body;
use revenant::proto::{self, CommandInfo, FrameworkInfo, StatusUpdate, TaskInfo};
use revenant::wire::{self, FRAME_BYTES_MAX};

struct Submitter {
    updates: Rc<RefCell<Vec<StatusUpdate>>>,
}

fn task(id: &str, command_bytes: usize) -> TaskInfo {
    TaskInfo {
        task_id: id.into(),
        command: Some(CommandInfo {
            value: "x".repeat(command_bytes),
            ..Default::default()
        }),
        ..Default::default()
    }
}

impl Workload for Submitter {
    fn registered(&mut self, _framework_id: &str) -> Vec<TaskInfo> {
        vec![task("too-large", FRAME_BYTES_MAX), task("small", 10)]
    }
    fn update(&mut self, update: &StatusUpdate) {
        self.updates.borrow_mut().push(update.clone());
    }
    fn done(&self) -> bool {
        // Done once the master's answer for the small task came back.
        self.updates
            .borrow()
            .iter()
            .any(|u| u.status.as_ref().is_some_and(|s| s.task_id == "small"))
    }
}

#[tokio::test(flavor = "current_thread")]
async fn an_oversized_submission_is_refused_by_the_framework_library() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address").to_string();
    let updates = Rc::new(RefCell::new(Vec::new()));
    let mut workload = Submitter {
        updates: updates.clone(),
    };
    let master = async move {
        let (mut stream, _) = listener.accept().await.expect("the framework connects");
        let mut submitted = Vec::new();
        loop {
            let body = wire::read_envelope(&mut stream)
                .await
                .expect("the connection stays up");
            match body {
                Body::RegisterFramework(_) => {
                    wire::write_envelope(
                        &mut stream,
                        Body::FrameworkRegistered(proto::FrameworkRegistered {
                            framework_id: "framework-1".into(),
                            leader_epoch: 1,
                        }),
                    )
                    .await
                    .expect("write");
                }
                Body::SubmitTask(submit) => {
                    let task = submit.task.expect("a task");
                    submitted.push(task.task_id.clone());
                    let state = proto::TaskState::TaskRunning;
                    wire::write_envelope(
                        &mut stream,
                        Body::StatusUpdate(proto::StatusUpdateMessage {
                            update: Some(StatusUpdate {
                                framework_id: "framework-1".into(),
                                status: Some(proto::TaskStatus {
                                    task_id: task.task_id,
                                    state: state as i32,
                                    ..Default::default()
                                }),
                                latest_state: state as i32,
                                ..Default::default()
                            }),
                        }),
                    )
                    .await
                    .expect("write");
                    return submitted;
                }
                _ => {}
            }
        }
    };
    let info = FrameworkInfo {
        name: "limits".into(),
        user: "nobody".into(),
        ..Default::default()
    };
    let local = tokio::task::LocalSet::new();
    let (submitted, ()) = local
        .run_until(async {
            let framework = framework::run(Env::real(), vec![address], info, &mut workload);
            tokio::time::timeout(Duration::from_secs(20), async {
                tokio::join!(master, framework)
            })
            .await
            .expect("the framework finished")
        })
        .await;

    assert_eq!(
        submitted,
        vec!["small".to_owned()],
        "the master received the oversized task"
    );
    let updates = updates.borrow();
    let refused = updates
        .iter()
        .filter_map(|u| u.status.as_ref())
        .find(|s| s.task_id == "too-large")
        .expect("the workload heard of the refused task");
    assert_eq!(refused.state(), proto::TaskState::TaskError);
    assert_eq!(refused.reason(), proto::TaskReason::ReasonTaskInvalid);
    assert!(
        refused.message.contains("exceeds the frame maximum"),
        "{}",
        refused.message
    );
}

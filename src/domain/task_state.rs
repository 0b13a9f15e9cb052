//! Task states (docs/design.md D20).

use crate::proto::TaskState;

/// Whether a task state is terminal: a task in it never runs again, and its status
/// update stream closes once the update reporting it is acknowledged
/// (docs/design.md D20).
pub fn is_terminal(state: TaskState) -> bool {
    matches!(
        state,
        TaskState::TaskFinished
            | TaskState::TaskFailed
            | TaskState::TaskKilled
            | TaskState::TaskLost
            | TaskState::TaskError
            | TaskState::TaskDropped
            | TaskState::TaskGone
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_end_states_are_terminal() {
        for state in [
            TaskState::TaskStaging,
            TaskState::TaskStarting,
            TaskState::TaskRunning,
            TaskState::TaskKilling,
        ] {
            assert!(!is_terminal(state), "{state:?}");
        }
        for state in [
            TaskState::TaskFinished,
            TaskState::TaskLost,
            TaskState::TaskGone,
        ] {
            assert!(is_terminal(state), "{state:?}");
        }
    }
}

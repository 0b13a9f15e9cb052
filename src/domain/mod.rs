//! The domain: what agent, master, executor, framework library and simulator agree on,
//! below all of them (docs/design.md D18). Nothing here does IO or imports a role.
//!
//! | module | owns |
//! | --- | --- |
//! | [`task_state`] | which task states are terminal |
//! | [`intervals`] | the agent's registration back-off cap and status update retry intervals |
//! | [`status_update`] | the one constructor of a status update, and reading one back |
//! | [`resources`] | the `--resources` syntax, the dynamic reservation mark, `describe`, restart compatibility |

pub mod intervals;
pub mod resources;
pub mod status_update;
pub mod task_state;

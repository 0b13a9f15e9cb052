//! Authentication inside the cluster beyond the transport (docs/security.md): executor
//! secrets (SEC14-SEC19).

pub mod executor_secret;

//! Authentication and authorization inside the cluster beyond the transport
//! (docs/security.md): executor secrets (SEC14-SEC19), the master's ACLs (SEC20-SEC23),
//! credentials for clusters without TLS (SEC24-SEC28) and the rule that a framework's
//! principal cannot change (SEC40).

pub mod acls;
pub mod credentials;
pub mod executor_secret;
pub mod framework_principal;

//! Magnum's core: the domain types every other crate shares, the oslo-style
//! configuration, the oslo.policy engine, the request context and the driver
//! registry. Nothing in here touches the network or a database.

pub mod cloud;
pub mod cluster_rules;
pub mod config;
pub mod context;
pub mod drivers;
pub mod error;
pub mod events;
pub mod metrics;
pub mod names;
pub mod nodegroup_rules;
pub mod objects;
pub mod ovo;
pub mod policy;
pub mod state;
pub mod template_rules;

pub use context::RequestContext;
pub use error::MagnumError;
pub mod x509;

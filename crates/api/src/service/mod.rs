//! The service step between the handlers and the database: what a write
//! does once its handler has extracted the request (validated attributes,
//! a parsed patch, the objects it names) and checked the caller's policy.
//! A service applies the domain rules (`magnum_core::*_rules`), asks the
//! cloud what it must, writes (queueing the operation with its status
//! change in one transaction where there is one) and nudges the
//! conductors; the handler renders what comes back. Nothing is written
//! before every check has passed, so a refused request changes nothing.

pub mod cluster_templates;
pub mod clusters;
pub mod federations;
pub mod nodegroups;
pub mod quotas;

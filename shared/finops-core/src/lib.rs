//! FinOps Autopilot's pure core: what a finding, a policy, a price, a run's cost and an approver
//! are, what the AWS adapters read (the inventory's shapes), and what a check's evidence must say
//! (the catalog's shape). It names no check. Nothing here calls AWS or needs an async runtime, and
//! the compiler holds that line: the crate has no AWS SDK as a dependency, and no async runtime
//! but through its optional `lambda` feature (Lambda's view of an error, which `remediation` turns
//! on). Its tests run alone, without that feature, in seconds: `cargo test -p finops-core`.
//!
//! Above it: the platform (`remediation`: AWS adapters, state, the flow, notifications,
//! approvals), then the checks (`finops-checks`: detectors, rule runs, actions, the catalog), then
//! the functions and the CLI. Everything points down.

pub mod approval;
pub mod cost;
pub mod error;
pub mod evidence;
pub mod identity;
pub mod ids;
pub mod inventory;
pub mod model;
pub mod policy;
pub mod pricing;

pub use error::{Error, Result};

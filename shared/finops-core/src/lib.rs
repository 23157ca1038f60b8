//! FinOps Autopilot's pure core: what a finding, a policy, a price, a run's cost and an approver
//! are, and the detectors that turn an inventory into findings. Nothing here calls AWS or needs
//! an async runtime, and the compiler holds that line: the crate has no AWS SDK as a dependency,
//! and no async runtime but through its optional `lambda` feature (Lambda's view of an error,
//! which `remediation` turns on). Its tests run alone, without that feature, in seconds:
//! `cargo test -p finops-core`.
//!
//! Everything above it (the AWS adapters, state, actions, the flow, the rule runs, the functions
//! and the CLI) lives in `remediation` and the crates that use it, and points down to this.

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

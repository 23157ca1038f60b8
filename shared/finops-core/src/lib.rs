//! FinOps Autopilot's pure core: what a finding, a policy, a price, a run's cost and an approver
//! are, and the detectors that turn an inventory into findings. Nothing here calls AWS or needs
//! an async runtime (the compiler holds that line: this crate has neither as a dependency), so its
//! tests run alone in seconds: `cargo test -p finops-core`.
//!
//! Everything above it (the AWS adapters, state, actions, the flow, the rule runs, the functions
//! and the CLI) lives in `remediation` and the crates that use it, and points down to this.

pub mod approval;
pub mod cost;
pub mod detect;
pub mod error;
pub mod evidence;
pub mod identity;
pub mod ids;
pub mod model;
pub mod policy;
pub mod pricing;

pub use error::{Error, Result};

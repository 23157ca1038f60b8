//! FinOps Autopilot's shared crate. Every function runs the same flow:
//! inventory → detect (pure) → plan → (approve) → act → record → notify.
//!
//! The pure part (model, policy, prices, costs, identity, inventory shapes) is the `finops-core`
//! crate, re-exported here under the same names; this crate adds what talks to AWS and the
//! outside world and what runs the flow. It imports no check: the checks (`finops-checks`) sit
//! above it, and hand it their catalog where it needs one.

pub mod act;
pub mod aws;
pub mod config;
pub mod deadline;
pub mod decide;
pub mod digest;
pub mod error;
pub mod events;
pub mod flow;
pub mod http;
pub mod jira;
pub mod notify;
pub mod oidc;
pub mod org;
pub mod report;
pub mod secrets;
pub mod slack;
pub mod state;
pub mod telemetry;

pub use error::{Error, Result};
pub use finops_core::{approval, cost, evidence, identity, ids, inventory, model, policy, pricing};

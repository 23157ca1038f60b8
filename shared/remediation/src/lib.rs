//! FinOps Autopilot's shared crate. Every function runs the same flow:
//! inventory → detect (pure) → plan → (approve) → act → record → notify.

pub mod act;
pub mod approval;
pub mod aws;
pub mod config;
pub mod cost;
pub mod decide;
pub mod detect;
pub mod error;
pub mod events;
pub mod flow;
pub mod http;
pub mod identity;
pub mod jira;
pub mod model;
pub mod notify;
pub mod oidc;
pub mod org;
pub mod permissions;
pub mod policy;
pub mod pricing;
pub mod report;
pub mod rules;
pub mod secrets;
pub mod slack;
pub mod state;
pub mod telemetry;

pub use error::{Error, Result};

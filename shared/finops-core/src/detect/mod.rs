//! Detectors: pure functions of data already fetched, a policy and `now`. No I/O, no clock.

pub mod cost_alert;
pub mod ebs_cleanup;
pub mod idle_ec2;
pub mod rightsizing;
pub mod s3_public;
pub mod tag_compliance;

/// Every rule, by name (a snooze closes the open approvals of each on its resource).
pub const RULES: [&str; 6] = [
    cost_alert::RULE,
    ebs_cleanup::RULE,
    idle_ec2::RULE,
    rightsizing::RULE,
    s3_public::RULE,
    tag_compliance::RULE,
];

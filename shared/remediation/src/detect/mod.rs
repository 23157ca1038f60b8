//! Detectors: pure functions of data already fetched, a policy and `now`. No I/O, no clock.

pub mod idle_ec2;

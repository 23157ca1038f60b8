//! Each rule's run: inventory → detect → the shared flow, returning the response contract.

pub mod idle_ec2;

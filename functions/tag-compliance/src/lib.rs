//! The idle-ec2 Lambda: its handler, callable from tests with a hand-built event.

pub mod handler;

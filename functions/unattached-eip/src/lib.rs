//! The unattached-eip Lambda: its handler, callable from tests with a hand-built event.

pub mod handler;

//! The rightsizing function: its handler, callable from tests with hand-built events.

pub mod handler;

//! The approval function: its handler and pages, callable from tests with hand-built events.

pub mod handler;
pub mod page;

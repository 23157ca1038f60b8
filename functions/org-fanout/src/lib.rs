//! The org-fanout function: its handler, callable from tests and the local runner with
//! hand-built events.

pub mod handler;

//! The jira-sync function: its handler, callable from tests with hand-built SNS events.

pub mod handler;

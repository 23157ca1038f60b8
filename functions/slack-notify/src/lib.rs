//! The slack-notify function: its handler, callable from tests with hand-built SNS events.

pub mod handler;

//! Helpers shared by daybook's integration tests: starting the `daybook` binary as a real
//! process and talking to it over loopback, as devices and viewers do.

pub mod client;
pub mod daybook;
pub mod flow;
pub mod kafka;

//! Helpers shared by daybook's integration tests: starting the `daybook` binary as a real
//! process and talking to it over loopback.

pub mod daybook;

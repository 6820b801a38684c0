//! Helpers shared by daybook's integration tests: the application in-process on port 0
//! ([`app::spawn_app`]), the binary as a child process ([`process`]), and clients that talk
//! to either over loopback as devices and viewers do.

pub mod app;
pub mod client;
pub mod flow;
pub mod kafka;
pub mod outage;
pub mod process;
pub mod s3;
pub mod tmpfs;

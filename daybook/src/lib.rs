//! The daybook application: every service of the pipeline, composed from a [`Config`].
//!
//! [`Application::build`] opens the engines the config names (see [`resolve`]) and binds the
//! listeners; [`Application::run_until_stopped`] serves until shutdown. The `daybook` binary
//! is [`cli`] over this; tests build the same [`Application`] in-process on port 0. How the
//! pieces fit is in the README's "Layout" section.

mod app;
pub mod backup;
pub mod cli;
mod config;
mod http;
mod in_use;
mod metrics_help;
mod ops;
pub mod rebuild;
pub mod resolve;
pub mod secrets;

pub use app::{shutdown_signal, Application, Backends};
pub use config::{Config, HttpLimits, IngestLimits, LogConfig, Role, S3Settings, StoreConfig};

//! The error of every validated identifier.

/// Why an identifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what}: {reason}")]
pub struct IdError {
    /// Which kind of identifier.
    pub what: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

pub(crate) fn err(what: &'static str, reason: impl Into<String>) -> IdError {
    IdError { what, reason: reason.into() }
}

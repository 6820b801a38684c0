//! Errors and retries: which driver errors a retry can fix, how they map to
//! [`StoreError`], and the retry policy every statement runs under.

use ::scylla::errors::{DbError, ExecutionError, RequestAttemptError};
use ::scylla::policies::retry::{DefaultRetrySession, RequestInfo, RetryDecision, RetryPolicy, RetrySession};
use seams::StoreError;

/// Errors a retry cannot fix (bad statement, bad schema, no permission).
fn is_permanent(db: &DbError) -> bool {
    matches!(
        db,
        DbError::SyntaxError
            | DbError::Invalid
            | DbError::AlreadyExists { .. }
            | DbError::FunctionFailure { .. }
            | DbError::AuthenticationError
            | DbError::Unauthorized
            | DbError::ConfigError
            | DbError::ProtocolError
    )
}

pub(super) fn exec_error(e: ExecutionError) -> StoreError {
    match &e {
        ExecutionError::BadQuery(_)
        | ExecutionError::LastAttemptError(
            RequestAttemptError::SerializationError(_) | RequestAttemptError::CqlRequestSerialization(_),
        ) => StoreError::Other(e.to_string()),
        ExecutionError::LastAttemptError(RequestAttemptError::DbError(db, _)) if is_permanent(db) => {
            StoreError::Other(e.to_string())
        }
        _ => StoreError::Unavailable(e.to_string()),
    }
}

/// The server's answer to a paging state it cannot use.
pub(super) fn is_bad_paging_state(e: &ExecutionError) -> bool {
    matches!(
        e,
        ExecutionError::LastAttemptError(RequestAttemptError::DbError(
            DbError::Invalid | DbError::ProtocolError | DbError::ServerError,
            _
        ))
    )
}

/// The driver's default policy, plus: an idempotent request that timed out on the server
/// (read or write timeout) is tried again on the next replica, at most
/// [`IdempotentRetryPolicy::TIMEOUT_RETRIES`] times. Every statement here is an idempotent
/// upsert or a read, so a retry can never apply anything twice.
#[derive(Debug)]
pub(super) struct IdempotentRetryPolicy;

impl IdempotentRetryPolicy {
    const TIMEOUT_RETRIES: u32 = 2;
}

impl RetryPolicy for IdempotentRetryPolicy {
    fn new_session(&self) -> Box<dyn RetrySession> {
        Box::new(IdempotentRetrySession { inner: DefaultRetrySession::new(), timeouts: 0 })
    }
}

struct IdempotentRetrySession {
    inner: DefaultRetrySession,
    timeouts: u32,
}

impl RetrySession for IdempotentRetrySession {
    fn decide_should_retry(&mut self, info: RequestInfo<'_>) -> RetryDecision {
        let timed_out = matches!(
            info.error,
            RequestAttemptError::DbError(DbError::ReadTimeout { .. } | DbError::WriteTimeout { .. }, _)
        );
        if timed_out
            && info.is_idempotent
            && !info.consistency.is_serial()
            && self.timeouts < IdempotentRetryPolicy::TIMEOUT_RETRIES
        {
            self.timeouts += 1;
            return RetryDecision::RetryNextTarget(None);
        }
        self.inner.decide_should_retry(info)
    }

    fn reset(&mut self) {
        self.inner.reset();
        self.timeouts = 0;
    }
}

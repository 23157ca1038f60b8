//! The one error type of the system. AWS errors keep AWS's code and message (the adapters turn
//! an SDK error into one: `remediation::error::SdkErrorExt`); every error knows whether retrying
//! the same input could help, which is what Lambda's `Diagnostic` reports.

/// Everything that can go wrong in a run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The policy could not be read or is invalid; `source_name` names the file or variable.
    #[error("invalid policy in {source_name}: {message}")]
    Policy { source_name: String, message: String },

    /// The Lambda event is not one this function handles.
    #[error("invalid event: {0}")]
    Event(String),

    /// The function's configuration (environment) is missing or wrong.
    #[error("configuration: {0}")]
    Config(String),

    /// An AWS call failed; `code` and `message` are AWS's own.
    #[error("{service}.{operation} failed: {code}: {message}")]
    Aws {
        service: &'static str,
        operation: &'static str,
        code: String,
        message: String,
        retryable: bool,
    },

    /// AWS answered, but not with what the API promises (a missing field, an unknown state).
    #[error("unexpected answer from {service}.{operation}: {message}")]
    UnexpectedResponse {
        service: &'static str,
        operation: &'static str,
        message: String,
    },

    /// A service outside AWS (Slack, Jira) could not be reached or answered with a failure that
    /// may pass (timeouts, 5xx, 429 beyond the wait we allow): retried by Lambda.
    #[error("{service}: {message}")]
    Http { service: &'static str, message: String },

    /// A service outside AWS may have received and acted on the request, but no answer came (it
    /// timed out, or the connection was cut after the request was sent). Retrying could act twice.
    #[error("{service} may have received the request but did not answer: {message}")]
    Unanswered { service: &'static str, message: String },

    /// A service outside AWS refused the request for good (4xx): retrying the same input fails again.
    #[error("{service} refused the request: {message}")]
    Refused { service: &'static str, message: String },

    /// A scan judged nothing: every resource it tried failed (a service down). The run flagged
    /// and changed nothing; the invocation fails so the errors alarm fires and Lambda retries.
    #[error("{rule} could assess none of the {failed} resources it tried, so it flagged and changed nothing; the first: {first}")]
    Unassessed { rule: String, failed: usize, first: String },

    /// A resource was not in the state the action needs; nothing was changed.
    #[error("precondition failed for {resource}: {message}")]
    Precondition { resource: String, message: String },
}

impl Error {
    /// Whether the same invocation could succeed if tried again (throttling, timeouts, 5xx).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::Aws { retryable: true, .. }
                | Error::Http { .. }
                | Error::Unanswered { .. }
                | Error::Unassessed { .. }
        )
    }

    /// An answer that lacks something the API promises.
    pub fn unexpected(service: &'static str, operation: &'static str, message: impl Into<String>) -> Self {
        Error::UnexpectedResponse {
            service,
            operation,
            message: message.into(),
        }
    }
}

/// Lambda's view of an error: `Retryable` or `NonRetryable`, with the message.
#[cfg(feature = "lambda")]
impl From<Error> for lambda_runtime::Diagnostic {
    fn from(err: Error) -> Self {
        let error_type = if err.is_retryable() {
            "Retryable"
        } else {
            "NonRetryable"
        };
        lambda_runtime::Diagnostic {
            error_type: error_type.to_string(),
            error_message: err.to_string(),
        }
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

//! The one error type of the system. AWS errors keep AWS's code and message; every error knows
//! whether retrying the same input could help, which is what Lambda's `Diagnostic` reports.

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

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

    /// Wraps an SDK error, keeping AWS's error code and message; without them, says briefly what
    /// happened on the wire (never the raw response).
    pub fn aws<E>(service: &'static str, operation: &'static str, err: SdkError<E, HttpResponse>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let retryable = matches!(
            err,
            SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_)
        ) || matches!(err.code(), Some(c) if is_retryable_code(c));
        let status = err.raw_response().map(|r| r.status().as_u16());
        let retryable = retryable || status.is_some_and(|s| s >= 500 || s == 429);
        let code = err.code().unwrap_or("Unknown").to_string();
        let message = match (err.message(), &err) {
            (Some(m), _) => m.to_string(),
            (None, SdkError::DispatchFailure(d)) => match d.as_connector_error() {
                Some(c) => format!("could not reach the endpoint: {}", DisplayErrorContext(c)),
                None => "could not reach the endpoint".to_string(),
            },
            (None, SdkError::TimeoutError(_)) => "timed out".to_string(),
            (None, SdkError::ResponseError(r)) => match std::error::Error::source(&err) {
                Some(cause) => format!("unreadable answer (HTTP {}): {cause}", r.raw().status().as_u16()),
                None => format!("unreadable answer (HTTP {})", r.raw().status().as_u16()),
            },
            (None, SdkError::ConstructionFailure(_)) => format!("request not built: {}", DisplayErrorContext(&err)),
            (None, _) => match status {
                Some(s) => format!("HTTP {s} without an AWS error message"),
                None => "no answer".to_string(),
            },
        };
        Error::Aws {
            service,
            operation,
            code,
            message,
            retryable,
        }
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

fn is_retryable_code(code: &str) -> bool {
    matches!(
        code,
        "Throttling"
            | "ThrottlingException"
            | "ThrottledException"
            | "RequestLimitExceeded"
            | "RequestThrottled"
            | "TooManyRequestsException"
            | "ProvisionedThroughputExceededException"
            | "InternalError"
            | "InternalFailure"
            | "ServiceUnavailable"
    )
}

/// Lambda's view of an error: `Retryable` or `NonRetryable`, with the message.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_is_reported_to_lambda_as_retryable() {
        let err = Error::Aws {
            service: "ec2",
            operation: "StopInstances",
            code: "RequestLimitExceeded".into(),
            message: "slow down".into(),
            retryable: is_retryable_code("RequestLimitExceeded"),
        };
        let diagnostic = lambda_runtime::Diagnostic::from(err);
        assert_eq!(diagnostic.error_type, "Retryable");
        assert!(diagnostic.error_message.contains("RequestLimitExceeded: slow down"));
    }

    #[test]
    fn a_bad_policy_is_not_retryable_and_names_its_source() {
        let err = Error::Policy {
            source_name: "policy.yaml".into(),
            message: "idle_ec2.lookback_days: must be between 1 and 455".into(),
        };
        let diagnostic = lambda_runtime::Diagnostic::from(err);
        assert_eq!(diagnostic.error_type, "NonRetryable");
        assert!(diagnostic.error_message.contains("policy.yaml"));
        assert!(diagnostic.error_message.contains("idle_ec2.lookback_days"));
    }
}

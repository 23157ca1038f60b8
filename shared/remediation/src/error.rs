//! The system's error type (the core's, [`finops_core::error`]), and how an AWS SDK error
//! becomes one: AWS's code and message kept, and whether a retry could help.

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

pub use finops_core::error::{Error, Result};

/// An AWS SDK error as the system's [`Error`]: `Error::aws(service, operation, err)`, with this
/// trait in scope.
pub trait SdkErrorExt {
    /// Wraps an SDK error, keeping AWS's error code and message; without them, says briefly what
    /// happened on the wire (never the raw response).
    fn aws<E>(service: &'static str, operation: &'static str, err: SdkError<E, HttpResponse>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static;
}

impl SdkErrorExt for Error {
    /// Wraps an SDK error, keeping AWS's error code and message; without them, says briefly what
    /// happened on the wire (never the raw response).
    fn aws<E>(service: &'static str, operation: &'static str, err: SdkError<E, HttpResponse>) -> Self
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

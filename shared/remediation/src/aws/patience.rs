//! How each AWS client retries and how long it waits, chosen per service (the SDK's defaults are
//! the same for all: standard mode, 3 attempts, no timeouts). The README's "Retries and timeouts"
//! table is this file.
//!
//! - Retry mode: `adaptive` for EC2, whose `RequestLimitExceeded` is a token bucket per account
//!   and region (the client then slows itself down); `standard` elsewhere. Standard mode retries
//!   throttling, 5xx and transient network errors with exponential backoff and full jitter,
//!   capped by `max_backoff`, and never a 4xx that is the request's own fault.
//! - Timeouts: `connect` (TCP + TLS), `attempt` (one try, answer included), `operation` (every
//!   try and every backoff). No single call may outlive a Lambda's action time margin.

use std::time::Duration;

use aws_smithy_types::retry::{RetryConfig, RetryMode};
use aws_smithy_types::timeout::TimeoutConfig;

/// One client's retry and timeout settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Patience {
    pub adaptive: bool,
    pub max_attempts: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    pub connect: Duration,
    pub attempt: Duration,
    pub operation: Duration,
}

const fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

const fn s(v: u64) -> Duration {
    Duration::from_secs(v)
}

/// EC2: Describe* pages and Stop/Start/Snapshot/Delete. Throttled per account and region.
pub const EC2: Patience = Patience {
    adaptive: true,
    max_attempts: 5,
    initial_backoff: s(1),
    max_backoff: s(20),
    connect: s(3),
    attempt: s(20),
    operation: s(60),
};
/// CloudWatch GetMetricData: large answers, throttled per account.
pub const CLOUDWATCH: Patience = Patience {
    adaptive: false,
    max_attempts: 4,
    initial_backoff: ms(500),
    max_backoff: s(10),
    connect: s(3),
    attempt: s(30),
    operation: s(90),
};
/// DynamoDB: small conditional writes and transactions; its own guidance is short, jittered
/// backoff and several tries for throughput errors.
pub const DYNAMODB: Patience = Patience {
    adaptive: false,
    max_attempts: 5,
    initial_backoff: ms(50),
    max_backoff: s(2),
    connect: s(3),
    attempt: s(10),
    operation: s(30),
};
/// SNS Publish / PublishBatch.
pub const SNS: Patience = Patience {
    adaptive: false,
    max_attempts: 4,
    initial_backoff: ms(200),
    max_backoff: s(5),
    connect: s(3),
    attempt: s(10),
    operation: s(30),
};
/// Cost Explorer: slow answers, a low request rate.
pub const COST_EXPLORER: Patience = Patience {
    adaptive: false,
    max_attempts: 4,
    initial_backoff: s(1),
    max_backoff: s(10),
    connect: s(3),
    attempt: s(30),
    operation: s(90),
};
/// AWS Config: history reads and PutEvaluations.
pub const CONFIG: Patience = Patience {
    adaptive: false,
    max_attempts: 4,
    initial_backoff: ms(500),
    max_backoff: s(10),
    connect: s(3),
    attempt: s(20),
    operation: s(60),
};
/// S3 and S3 Control: bucket reads, Block Public Access, the report's objects.
pub const S3: Patience = Patience {
    adaptive: false,
    max_attempts: 4,
    initial_backoff: ms(500),
    max_backoff: s(10),
    connect: s(3),
    attempt: s(20),
    operation: s(60),
};
/// STS AssumeRole / GetCallerIdentity (one per item) and Organizations' listings: small answers,
/// throttled per account.
pub const STS: Patience = Patience {
    adaptive: false,
    max_attempts: 4,
    initial_backoff: ms(500),
    max_backoff: s(5),
    connect: s(3),
    attempt: s(10),
    operation: s(30),
};

impl Patience {
    /// The SDK's retry configuration.
    pub fn retry(&self) -> RetryConfig {
        let base = if self.adaptive {
            RetryConfig::adaptive()
        } else {
            RetryConfig::standard()
        };
        base.with_max_attempts(self.max_attempts)
            .with_initial_backoff(self.initial_backoff)
            .with_max_backoff(self.max_backoff)
    }

    /// The SDK's timeout configuration.
    pub fn timeouts(&self) -> TimeoutConfig {
        TimeoutConfig::builder()
            .connect_timeout(self.connect)
            .operation_attempt_timeout(self.attempt)
            .operation_timeout(self.operation)
            .build()
    }

    /// The mode as the README names it.
    pub fn mode(&self) -> RetryMode {
        self.retry().mode()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_call_fits_in_a_lambdas_action_margin_and_backs_off_within_its_operation() {
        for p in [EC2, CLOUDWATCH, DYNAMODB, SNS, COST_EXPLORER, CONFIG, S3, STS] {
            // The default action time margin is 30 s; an operation may use up to 90 s only for
            // scans (read-only), never in an acting path's re-check beyond that margin × 3.
            assert!(p.operation <= s(90), "{p:?}");
            assert!(p.attempt < p.operation && p.connect < p.attempt, "{p:?}");
            assert!(
                p.initial_backoff <= p.max_backoff && p.max_backoff < p.operation,
                "{p:?}"
            );
            assert!((2..=5).contains(&p.max_attempts), "{p:?}");
        }
        assert_eq!(EC2.mode(), RetryMode::Adaptive);
        assert_eq!(DYNAMODB.mode(), RetryMode::Standard);
    }
}

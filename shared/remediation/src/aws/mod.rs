//! AWS access: client setup (one place), a call counter every client carries, and the SDK adapters
//! behind the narrow ports the flow uses.

pub mod cloudwatch;
pub mod config;
pub mod costexplorer;
pub mod ec2;
pub mod organizations;
pub mod patience;
pub mod pricelist;
pub mod s3;

use crate::error::SdkErrorExt as _;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use aws_config::{BehaviorVersion, SdkConfig};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeSerializationInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

use crate::error::{Error, Result};

/// Counts API calls by `Service.Operation` (AWS's names: `EC2.DescribeInstances`) (one per operation, whatever its retries), so a run or
/// a benchmark can report exactly what it asked of AWS; and the attempts they took (a retry is
/// one more attempt of the same call).
#[derive(Debug, Clone, Default)]
pub struct CallCounter(
    Arc<Mutex<BTreeMap<String, u64>>>,
    Arc<std::sync::atomic::AtomicU64>,
    /// When each call started, for a counter made with [`CallCounter::recording`] (the benchmark's
    /// request rates); `None` otherwise, so a long-lived container keeps nothing per call.
    Option<Timeline>,
    /// The units AWS bills some calls by: `metrics` (GetMetricData queries), `evaluations`
    /// (Config evaluations put), `transaction_items` (DynamoDB transaction items).
    Arc<Mutex<BTreeMap<String, u64>>>,
);

/// When each call started, by `Service.Operation`.
type Timeline = Arc<Mutex<Vec<(String, std::time::Instant)>>>;

tokio::task_local! {
    /// The counter of the run in progress on this task (see [`CallCounter::counting`]).
    static RUN_CALLS: CallCounter;
}

impl CallCounter {
    /// A counter that also records when each call started.
    pub fn recording() -> CallCounter {
        CallCounter(Arc::default(), Arc::default(), Some(Arc::default()), Arc::default())
    }

    /// The recorded calls in order (empty unless made with [`CallCounter::recording`]).
    pub fn timeline(&self) -> Vec<(String, std::time::Instant)> {
        match &self.2 {
            Some(t) => match t.lock() {
                Ok(t) => t.clone(),
                Err(poisoned) => poisoned.into_inner().clone(),
            },
            None => Vec::new(),
        }
    }

    /// Calls so far, by `Service.Operation`.
    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        match self.0.lock() {
            Ok(map) => map.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The billed units so far (see the counter's fourth field).
    pub fn units(&self) -> BTreeMap<String, u64> {
        match self.3.lock() {
            Ok(map) => map.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// What the calls so far cost on the AWS bill, in units (see [`crate::cost`]).
    pub fn usage(&self) -> crate::cost::RunUsage {
        crate::cost::RunUsage::from_calls(&self.snapshot(), &self.units())
    }

    fn add_units(&self, unit: &str, n: u64) {
        let mut map = match self.3.lock() {
            Ok(map) => map,
            Err(poisoned) => poisoned.into_inner(),
        };
        *map.entry(unit.to_string()).or_default() += n;
    }

    /// Counts, in the run in progress on this task, one Converse call of `model` and the tokens it
    /// read and wrote (Bedrock bills by them; its client is not one of [`Clients`]).
    pub fn note_model_tokens(model: &str, input: u64, output: u64) {
        let _ = RUN_CALLS.try_with(|run| {
            run.add("Bedrock Runtime.Converse".to_string());
            run.add_units(&format!("input_tokens:{model}"), input);
            run.add_units(&format!("output_tokens:{model}"), output);
        });
    }

    /// Runs `work` with every call made on its task also counted in `run`: runs that share the
    /// clients (a fan-out's items side by side, a test's concurrent events) each count their own.
    /// The autopilot's code spawns no task, so a run's calls are all on the task that awaits it.
    pub async fn counting<F: std::future::Future>(run: CallCounter, work: F) -> F::Output {
        RUN_CALLS.scope(run, work).await
    }

    /// Counts one call (and its billed units) as `key`.
    fn count(&self, key: &str, input: &aws_smithy_runtime_api::client::interceptors::context::Input) {
        self.add(key.to_string());
        // What AWS bills by the unit, not by the call.
        if let Some(i) = input.downcast_ref::<aws_sdk_cloudwatch::operation::get_metric_data::GetMetricDataInput>() {
            self.add_units("metrics", i.metric_data_queries().len() as u64);
        } else if let Some(i) = input.downcast_ref::<aws_sdk_config::operation::put_evaluations::PutEvaluationsInput>()
        {
            self.add_units("evaluations", i.evaluations().len() as u64);
        } else if let Some(i) =
            input.downcast_ref::<aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsInput>()
        {
            self.add_units("transaction_items", i.transact_items().len() as u64);
        }
    }

    /// All calls so far.
    pub fn total(&self) -> u64 {
        self.snapshot().values().sum()
    }

    /// Attempts so far, retries included.
    pub fn attempts(&self) -> u64 {
        self.1.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn add(&self, key: String) {
        if let Some(t) = &self.2 {
            let mut t = match t.lock() {
                Ok(t) => t,
                Err(poisoned) => poisoned.into_inner(),
            };
            t.push((key.clone(), std::time::Instant::now()));
        }
        let mut map = match self.0.lock() {
            Ok(map) => map,
            Err(poisoned) => poisoned.into_inner(),
        };
        *map.entry(key).or_default() += 1;
    }
}

// `read_before_serialization`, not `read_before_execution`: a client-level interceptor's
// before-execution hook runs before the operation's Metadata is in the config bag.
impl Intercept for CallCounter {
    fn name(&self) -> &'static str {
        "CallCounter"
    }

    fn read_before_serialization(
        &self,
        context: &BeforeSerializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> std::result::Result<(), BoxError> {
        let key = match cfg.load::<Metadata>() {
            Some(m) => format!("{}.{}", m.service(), m.name()),
            None => "unknown".to_string(),
        };
        self.count(&key, context.input());
        // The run in progress on this task, if any, counts it too (unless it is this counter).
        let _ = RUN_CALLS.try_with(|run| {
            if !Arc::ptr_eq(&run.0, &self.0) {
                run.count(&key, context.input());
            }
        });
        Ok(())
    }

    fn read_before_attempt(
        &self,
        _context: &aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> std::result::Result<(), BoxError> {
        self.1.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }
}

/// Every SDK client the functions use, built once from one `SdkConfig`, each counting its calls.
#[derive(Debug, Clone)]
pub struct Clients {
    pub ec2: aws_sdk_ec2::Client,
    pub cloudwatch: aws_sdk_cloudwatch::Client,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub sns: aws_sdk_sns::Client,
    pub costexplorer: aws_sdk_costexplorer::Client,
    pub config_service: aws_sdk_config::Client,
    pub sts: aws_sdk_sts::Client,
    /// The region the clients talk to.
    pub region: String,
    /// Calls made through these clients.
    pub calls: CallCounter,
    /// The configuration they were built from (for clients made later, such as per-region S3).
    pub config: SdkConfig,
    /// Who the credentials are (STS GetCallerIdentity), asked once.
    identity: Arc<tokio::sync::OnceCell<Identity>>,
}

/// The account and partition the credentials belong to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub account: String,
    /// `aws`, `aws-cn`, `aws-us-gov`: the partition of the caller's ARN.
    pub partition: String,
}

impl Clients {
    /// Loads the standard AWS configuration (environment, profile, Lambda role; `AWS_ENDPOINT_URL`
    /// points every client at a local emulator) and builds the clients.
    pub async fn from_env() -> Result<Clients> {
        let config = aws_config::defaults(BehaviorVersion::latest()).load().await;
        Clients::from_config(&config)
    }

    /// Builds the clients from an already loaded configuration.
    pub fn from_config(config: &SdkConfig) -> Result<Clients> {
        Clients::from_config_counting(config, CallCounter::default())
    }

    /// Builds the clients, counting their calls into `calls`.
    pub fn from_config_counting(config: &SdkConfig, calls: CallCounter) -> Result<Clients> {
        let region = config
            .region()
            .map(|r| r.to_string())
            .ok_or_else(|| Error::Config("no AWS region: set AWS_REGION".into()))?;
        Ok(Clients {
            ec2: aws_sdk_ec2::Client::from_conf(
                aws_sdk_ec2::config::Builder::from(config)
                    .interceptor(calls.clone())
                    .retry_config(patience::EC2.retry())
                    .timeout_config(patience::EC2.timeouts())
                    .build(),
            ),
            cloudwatch: aws_sdk_cloudwatch::Client::from_conf(
                aws_sdk_cloudwatch::config::Builder::from(config)
                    .interceptor(calls.clone())
                    .retry_config(patience::CLOUDWATCH.retry())
                    .timeout_config(patience::CLOUDWATCH.timeouts())
                    .build(),
            ),
            dynamodb: aws_sdk_dynamodb::Client::from_conf(
                aws_sdk_dynamodb::config::Builder::from(config)
                    .interceptor(calls.clone())
                    .retry_config(patience::DYNAMODB.retry())
                    .timeout_config(patience::DYNAMODB.timeouts())
                    .build(),
            ),
            sns: aws_sdk_sns::Client::from_conf(
                aws_sdk_sns::config::Builder::from(config)
                    .interceptor(calls.clone())
                    .retry_config(patience::SNS.retry())
                    .timeout_config(patience::SNS.timeouts())
                    .build(),
            ),
            costexplorer: aws_sdk_costexplorer::Client::from_conf(
                aws_sdk_costexplorer::config::Builder::from(config)
                    .interceptor(calls.clone())
                    .retry_config(patience::COST_EXPLORER.retry())
                    .timeout_config(patience::COST_EXPLORER.timeouts())
                    .build(),
            ),
            config_service: aws_sdk_config::Client::from_conf(
                aws_sdk_config::config::Builder::from(config)
                    .interceptor(calls.clone())
                    .retry_config(patience::CONFIG.retry())
                    .timeout_config(patience::CONFIG.timeouts())
                    .build(),
            ),
            sts: aws_sdk_sts::Client::from_conf(
                aws_sdk_sts::config::Builder::from(config)
                    .interceptor(calls.clone())
                    .retry_config(patience::STS.retry())
                    .timeout_config(patience::STS.timeouts())
                    .build(),
            ),
            region,
            calls,
            config: config.clone(),
            identity: Arc::default(),
        })
    }

    /// Who these credentials are, asked of STS once.
    pub async fn identity(&self) -> Result<Identity> {
        self.identity
            .get_or_try_init(|| async {
                let out = self
                    .sts
                    .get_caller_identity()
                    .send()
                    .await
                    .map_err(|e| Error::aws("sts", "GetCallerIdentity", e))?;
                let account = out
                    .account()
                    .filter(|a| crate::ids::is_account_id(a))
                    .ok_or_else(|| Error::unexpected("sts", "GetCallerIdentity", "no account id"))?
                    .to_string();
                let partition = out
                    .arn()
                    .and_then(|arn| arn.split(':').nth(1))
                    .filter(|p| p.starts_with("aws"))
                    .unwrap_or("aws")
                    .to_string();
                Ok(Identity { account, partition })
            })
            .await
            .cloned()
    }

    /// The same credentials in `region`: these clients when they already talk to it (sharing
    /// their call counter), else new ones counting into the same counter.
    pub fn in_region(&self, region: &str) -> Result<Clients> {
        if region == self.region {
            return Ok(self.clone());
        }
        let config = self
            .config
            .to_builder()
            .region(aws_config::Region::new(region.to_string()))
            .build();
        let mut clients = Clients::from_config_counting(&config, self.calls.clone())?;
        clients.identity = self.identity.clone();
        Ok(clients)
    }

    /// Clients in `region` with the role `role_arn` assumed (session `session`, `external_id`
    /// when given). STS's answer must be for `account`, the account the role's ARN names.
    pub async fn assume(
        &self,
        role_arn: &str,
        session: &str,
        external_id: Option<&str>,
        region: &str,
        account: &str,
    ) -> Result<Clients> {
        let out = self
            .sts
            .assume_role()
            .role_arn(role_arn)
            .role_session_name(session)
            .set_external_id(external_id.map(str::to_string))
            // A Lambda runs 15 minutes at most; an hour covers a run and its snapshot waits.
            .duration_seconds(3600)
            .send()
            .await
            .map_err(|e| Error::aws("sts", "AssumeRole", e))?;
        let user_account = out
            .assumed_role_user()
            .map(|u| u.arn())
            .and_then(|arn| arn.split(':').nth(4))
            .unwrap_or_default();
        if user_account != account {
            return Err(Error::unexpected(
                "sts",
                "AssumeRole",
                format!("{role_arn} was assumed as account {user_account:?}, not {account}"),
            ));
        }
        let c = out
            .credentials()
            .ok_or_else(|| Error::unexpected("sts", "AssumeRole", "no credentials"))?;
        let expiry = std::time::SystemTime::try_from(*c.expiration()).ok();
        let credentials = aws_sdk_sts::config::Credentials::new(
            c.access_key_id(),
            c.secret_access_key(),
            Some(c.session_token().to_string()),
            expiry,
            "finops-member-role",
        );
        let config = self
            .config
            .to_builder()
            .region(aws_config::Region::new(region.to_string()))
            .credentials_provider(aws_sdk_sts::config::SharedCredentialsProvider::new(credentials))
            .build();
        let clients = Clients::from_config_counting(&config, self.calls.clone())?;
        let partition = role_arn.split(':').nth(1).unwrap_or("aws").to_string();
        let _ = clients.identity.set(Identity {
            account: account.to_string(),
            partition,
        });
        Ok(clients)
    }
}

/// Seconds since the epoch of an SDK timestamp, as a chrono time.
pub(crate) fn to_chrono(t: &aws_smithy_types::DateTime) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::from_timestamp(t.secs(), t.subsec_nanos())
}

/// An SDK timestamp from a chrono time.
pub(crate) fn from_chrono(t: chrono::DateTime<chrono::Utc>) -> aws_smithy_types::DateTime {
    aws_smithy_types::DateTime::from_secs(t.timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_client_retries_and_times_out_as_its_service_needs() {
        let config = SdkConfig::builder()
            .region(aws_config::Region::new("us-east-1"))
            .behavior_version(BehaviorVersion::latest())
            .build();
        let c = Clients::from_config(&config).unwrap();
        let check = |name: &str,
                     r: Option<&aws_smithy_types::retry::RetryConfig>,
                     t: Option<&aws_smithy_types::timeout::TimeoutConfig>,
                     p: patience::Patience| {
            assert_eq!(r, Some(&p.retry()), "{name}");
            let t = t.unwrap_or_else(|| panic!("{name}: no timeouts"));
            assert_eq!(
                (
                    t.connect_timeout(),
                    t.operation_attempt_timeout(),
                    t.operation_timeout()
                ),
                (Some(p.connect), Some(p.attempt), Some(p.operation)),
                "{name}"
            );
        };
        check(
            "ec2",
            c.ec2.config().retry_config(),
            c.ec2.config().timeout_config(),
            patience::EC2,
        );
        check(
            "cloudwatch",
            c.cloudwatch.config().retry_config(),
            c.cloudwatch.config().timeout_config(),
            patience::CLOUDWATCH,
        );
        check(
            "dynamodb",
            c.dynamodb.config().retry_config(),
            c.dynamodb.config().timeout_config(),
            patience::DYNAMODB,
        );
        check(
            "sns",
            c.sns.config().retry_config(),
            c.sns.config().timeout_config(),
            patience::SNS,
        );
        check(
            "costexplorer",
            c.costexplorer.config().retry_config(),
            c.costexplorer.config().timeout_config(),
            patience::COST_EXPLORER,
        );
        check(
            "config",
            c.config_service.config().retry_config(),
            c.config_service.config().timeout_config(),
            patience::CONFIG,
        );
    }
}

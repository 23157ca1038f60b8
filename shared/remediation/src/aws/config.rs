//! AWS Config: evaluations for a custom rule, and the current configuration item of a resource
//! (for oversized change notifications, which carry only a summary).

use crate::error::SdkErrorExt as _;
use async_trait::async_trait;
use aws_sdk_config::types::{ComplianceType, Evaluation as SdkEvaluation, ResourceType};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{from_chrono, to_chrono};
use crate::error::{Error, Result};
use crate::model::Tags;

/// One evaluation of one resource.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    pub resource_type: String,
    pub resource_id: String,
    /// `COMPLIANT`, `NON_COMPLIANT` or `NOT_APPLICABLE`.
    pub compliance: String,
    /// At most 256 characters (Config's limit).
    pub annotation: String,
    /// The configuration item's capture time (or the notification's time).
    pub ordering: DateTime<Utc>,
}

/// A resource's configuration as Config recorded it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigItem {
    pub resource_type: String,
    pub resource_id: String,
    pub status: String,
    pub tags: Tags,
    pub capture_time: DateTime<Utc>,
}

/// What the tag-compliance rule needs of Config.
#[async_trait]
pub trait ConfigApi: Send + Sync {
    /// Sends evaluations (100 per call); returns how many Config refused.
    async fn put_evaluations(&self, evaluations: &[Evaluation], result_token: &str, test_mode: bool) -> Result<usize>;
    /// The latest configuration item of a resource, if Config has one.
    async fn current_item(&self, resource_type: &str, resource_id: &str) -> Result<Option<ConfigItem>>;
}

/// The SDK adapter.
#[derive(Debug, Clone)]
pub struct Config {
    client: aws_sdk_config::Client,
}

impl Config {
    /// Wraps a client.
    pub fn new(client: aws_sdk_config::Client) -> Self {
        Config { client }
    }
}

#[async_trait]
impl ConfigApi for Config {
    async fn put_evaluations(&self, evaluations: &[Evaluation], result_token: &str, test_mode: bool) -> Result<usize> {
        let mut refused = 0;
        for chunk in evaluations.chunks(100) {
            let batch: Vec<SdkEvaluation> = chunk
                .iter()
                .map(|e| {
                    SdkEvaluation::builder()
                        .compliance_resource_type(&e.resource_type)
                        .compliance_resource_id(&e.resource_id)
                        .compliance_type(ComplianceType::from(e.compliance.as_str()))
                        .annotation(e.annotation.chars().take(256).collect::<String>())
                        .ordering_timestamp(from_chrono(e.ordering))
                        .build()
                        .map_err(|err| Error::unexpected("config", "PutEvaluations", err.to_string()))
                })
                .collect::<Result<_>>()?;
            let out = self
                .client
                .put_evaluations()
                .set_evaluations(Some(batch))
                .result_token(result_token)
                .test_mode(test_mode)
                .send()
                .await
                .map_err(|e| Error::aws("config", "PutEvaluations", e))?;
            refused += out.failed_evaluations().len();
        }
        Ok(refused)
    }

    async fn current_item(&self, resource_type: &str, resource_id: &str) -> Result<Option<ConfigItem>> {
        let out = match self
            .client
            .get_resource_config_history()
            .resource_type(ResourceType::from(resource_type))
            .resource_id(resource_id)
            .limit(1)
            .send()
            .await
        {
            Ok(out) => out,
            // Config never recorded it (or no longer does): there is no item.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_resource_not_discovered_exception()) =>
            {
                return Ok(None)
            }
            Err(e) => return Err(Error::aws("config", "GetResourceConfigHistory", e)),
        };
        Ok(out.configuration_items().first().map(|i| ConfigItem {
            resource_type: resource_type.to_string(),
            resource_id: resource_id.to_string(),
            status: i
                .configuration_item_status()
                .map(|s| s.as_str().to_string())
                .unwrap_or_default(),
            tags: i.tags().map(|t| t.clone().into_iter().collect()).unwrap_or_default(),
            capture_time: i
                .configuration_item_capture_time()
                .and_then(to_chrono)
                .unwrap_or_else(Utc::now),
        }))
    }
}

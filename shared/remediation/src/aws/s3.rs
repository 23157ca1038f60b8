//! S3: buckets, their ACL, policy, tags, website hosting and Block Public Access, at bucket and
//! account level.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use aws_sdk_s3::types::{PublicAccessBlockConfiguration, Type as GranteeType};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextMut;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

use crate::detect::s3_public::{BlockSettings, BucketExposure, Grant};
use crate::error::{Error, Result};
use crate::model::Tags;

/// What the s3-public flow needs of S3.
#[async_trait]
pub trait BucketApi: Send + Sync {
    /// Every bucket of the account with the region it lives in.
    async fn buckets(&self) -> Result<Vec<(String, String)>>;
    /// A bucket's ACL grants, policy and Block Public Access (three reads); its tags are left
    /// empty and its website hosting `false`, for [`BucketApi::bucket_tags`] and
    /// [`BucketApi::website`] to fill in where they matter.
    async fn exposure(&self, bucket: &str, region: &str) -> Result<BucketExposure>;
    /// A bucket's tags.
    async fn bucket_tags(&self, bucket: &str, region: &str) -> Result<Tags>;
    /// Whether a bucket has static website hosting configured.
    async fn website(&self, bucket: &str, region: &str) -> Result<bool>;
    /// The account-level Block Public Access; `Ok(None)` when none is set.
    async fn account_block(&self) -> Result<Option<BlockSettings>>;
    /// Puts a bucket's Block Public Access.
    async fn put_block(&self, bucket: &str, region: &str, settings: BlockSettings) -> Result<()>;
    /// Removes a bucket's Block Public Access configuration.
    async fn delete_block(&self, bucket: &str, region: &str) -> Result<()>;
}

/// The SDK adapter: one S3 client per bucket region (made on first use), S3 Control for the account.
#[derive(Debug)]
pub struct S3 {
    base: aws_sdk_s3::config::Config,
    clients: Mutex<HashMap<String, aws_sdk_s3::Client>>,
    control: aws_sdk_s3control::Client,
    account: String,
    region: String,
    /// Only the buckets in this region (a fan-out item's region, so that each bucket is scanned
    /// by one item of its account, not by every region's).
    only_region: Option<String>,
}

fn settings(c: Option<&PublicAccessBlockConfiguration>) -> Option<BlockSettings> {
    c.map(|c| BlockSettings {
        block_public_acls: c.block_public_acls().unwrap_or(false),
        ignore_public_acls: c.ignore_public_acls().unwrap_or(false),
        block_public_policy: c.block_public_policy().unwrap_or(false),
        restrict_public_buckets: c.restrict_public_buckets().unwrap_or(false),
    })
}

/// S3 Control addresses `{AccountId}.<endpoint host>`. Against a custom endpoint (a local
/// emulator) that host does not resolve, so this interceptor, installed only when an endpoint URL
/// is configured, removes the account prefix before the request is signed.
#[derive(Debug)]
struct StripAccountHost {
    account: String,
}

impl Intercept for StripAccountHost {
    fn name(&self) -> &'static str {
        "StripAccountHost"
    }

    fn modify_before_signing(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> std::result::Result<(), BoxError> {
        let request = context.request_mut();
        let prefix = format!("://{}.", self.account);
        let uri = request.uri().to_string();
        if uri.contains(&prefix) {
            request.set_uri(uri.replacen(&prefix, "://", 1))?;
        }
        Ok(())
    }
}

/// The text of the object `key` in `bucket` (a stored weekly report), `None` when there is no
/// such object; the bucket in the clients' region.
pub async fn object_text(clients: &crate::aws::Clients, bucket: &str, key: &str) -> Result<Option<String>> {
    let config = &clients.config;
    let client = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(config)
            .force_path_style(config.endpoint_url().is_some())
            .interceptor(clients.calls.clone())
            .retry_config(crate::aws::patience::S3.retry())
            .timeout_config(crate::aws::patience::S3.timeouts())
            .build(),
    );
    match client.get_object().bucket(bucket).key(key).send().await {
        Ok(out) => {
            let bytes = out
                .body
                .collect()
                .await
                .map_err(|e| Error::Config(format!("s3 GetObject {key}: the body could not be read: {e}")))?
                .into_bytes();
            Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
        }
        Err(e) if e.as_service_error().is_some_and(|e| e.is_no_such_key()) => Ok(None),
        Err(e) => Err(Error::aws("s3", "GetObject", e)),
    }
}

impl S3 {
    /// Builds the adapter from the shared clients' configuration, for `account` (S3 Control
    /// needs it); its calls are counted with theirs.
    pub fn new(clients: &crate::aws::Clients, account: impl Into<String>) -> S3 {
        let config = &clients.config;
        let account = account.into();
        let region = clients.region.clone();
        // Path-style addressing works against both AWS and a local endpoint.
        let base = aws_sdk_s3::config::Builder::from(config)
            .force_path_style(true)
            .interceptor(clients.calls.clone())
            .retry_config(crate::aws::patience::S3.retry())
            .timeout_config(crate::aws::patience::S3.timeouts())
            .build();
        let mut control = aws_sdk_s3control::config::Builder::from(config)
            .interceptor(clients.calls.clone())
            .retry_config(crate::aws::patience::S3.retry())
            .timeout_config(crate::aws::patience::S3.timeouts());
        if config.endpoint_url().is_some() {
            control = control.interceptor(StripAccountHost {
                account: account.clone(),
            });
        }
        S3 {
            base,
            clients: Mutex::new(HashMap::new()),
            control: aws_sdk_s3control::Client::from_conf(control.build()),
            account,
            region,
            only_region: None,
        }
    }

    /// Limits the bucket listing to the buckets in `region`.
    pub fn only_in(mut self, region: impl Into<String>) -> S3 {
        self.only_region = Some(region.into());
        self
    }

    fn client(&self, region: &str) -> aws_sdk_s3::Client {
        let mut clients = match self.clients.lock() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        };
        clients
            .entry(region.to_string())
            .or_insert_with(|| {
                aws_sdk_s3::Client::from_conf(
                    self.base
                        .to_builder()
                        .region(aws_sdk_s3::config::Region::new(region.to_string()))
                        .build(),
                )
            })
            .clone()
    }
}

#[async_trait]
impl BucketApi for S3 {
    async fn buckets(&self) -> Result<Vec<(String, String)>> {
        let mut out = Vec::new();
        // Paginated, as AWS asks (an unpaginated ListBuckets is refused above 10,000 buckets);
        // its answers name each bucket's region.
        let mut request = self.client(&self.region).list_buckets().max_buckets(1000);
        if let Some(region) = &self.only_region {
            // ListBuckets filters by region itself (and then names each bucket's region).
            request = request.bucket_region(region);
        }
        let mut pages = request.into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| Error::aws("s3", "ListBuckets", e))?;
            for b in page.buckets() {
                if let Some(name) = b.name() {
                    let listed = b.bucket_region().filter(|r| !r.is_empty());
                    let region = listed
                        .or(self.only_region.as_deref())
                        .unwrap_or(&self.region)
                        .to_string();
                    if self.only_region.as_ref().is_none_or(|only| *only == region) {
                        out.push((name.to_string(), region));
                    }
                }
            }
        }
        Ok(out)
    }

    async fn exposure(&self, bucket: &str, region: &str) -> Result<BucketExposure> {
        let client = self.client(region);
        let acl = client
            .get_bucket_acl()
            .bucket(bucket)
            .send()
            .await
            .map_err(|e| Error::aws("s3", "GetBucketAcl", e))?;
        let grants = acl
            .grants()
            .iter()
            .map(|g| Grant {
                grantee_uri: g
                    .grantee()
                    .filter(|gr| gr.r#type() == &GranteeType::Group)
                    .and_then(|gr| gr.uri())
                    .map(str::to_string),
                permission: g.permission().map(|p| p.as_str().to_string()).unwrap_or_default(),
            })
            .collect();
        let policy = match client.get_bucket_policy().bucket(bucket).send().await {
            Ok(out) => match out.policy() {
                Some(text) => Some(serde_json::from_str(text).map_err(|e| {
                    Error::unexpected("s3", "GetBucketPolicy", format!("policy of {bucket} is not JSON: {e}"))
                })?),
                None => None,
            },
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => None,
            Err(e) => return Err(Error::aws("s3", "GetBucketPolicy", e)),
        };
        let block = match client.get_public_access_block().bucket(bucket).send().await {
            Ok(out) => settings(out.public_access_block_configuration()),
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => None,
            Err(e) => return Err(Error::aws("s3", "GetPublicAccessBlock", e)),
        };
        Ok(BucketExposure {
            name: bucket.to_string(),
            account: self.account.clone(),
            region: region.to_string(),
            tags: Tags::new(),
            grants,
            policy,
            block,
            website: false,
        })
    }

    async fn bucket_tags(&self, bucket: &str, region: &str) -> Result<Tags> {
        match self.client(region).get_bucket_tagging().bucket(bucket).send().await {
            Ok(out) => Ok(out
                .tag_set()
                .iter()
                .map(|t| (t.key().to_string(), t.value().to_string()))
                .collect()),
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => Ok(Tags::new()),
            Err(e) => Err(Error::aws("s3", "GetBucketTagging", e)),
        }
    }

    async fn website(&self, bucket: &str, region: &str) -> Result<bool> {
        match self.client(region).get_bucket_website().bucket(bucket).send().await {
            Ok(_) => Ok(true),
            // NoSuchWebsiteConfiguration.
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => Ok(false),
            Err(e) => Err(Error::aws("s3", "GetBucketWebsite", e)),
        }
    }

    async fn account_block(&self) -> Result<Option<BlockSettings>> {
        match self
            .control
            .get_public_access_block()
            .account_id(&self.account)
            .send()
            .await
        {
            Ok(out) => Ok(out.public_access_block_configuration().map(|c| BlockSettings {
                block_public_acls: c.block_public_acls().unwrap_or(false),
                ignore_public_acls: c.ignore_public_acls().unwrap_or(false),
                block_public_policy: c.block_public_policy().unwrap_or(false),
                restrict_public_buckets: c.restrict_public_buckets().unwrap_or(false),
            })),
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => Ok(None),
            Err(e) => Err(Error::aws("s3control", "GetPublicAccessBlock", e)),
        }
    }

    async fn put_block(&self, bucket: &str, region: &str, s: BlockSettings) -> Result<()> {
        let config = PublicAccessBlockConfiguration::builder()
            .block_public_acls(s.block_public_acls)
            .ignore_public_acls(s.ignore_public_acls)
            .block_public_policy(s.block_public_policy)
            .restrict_public_buckets(s.restrict_public_buckets)
            .build();
        self.client(region)
            .put_public_access_block()
            .bucket(bucket)
            .public_access_block_configuration(config)
            .send()
            .await
            .map_err(|e| Error::aws("s3", "PutPublicAccessBlock", e))?;
        Ok(())
    }

    async fn delete_block(&self, bucket: &str, region: &str) -> Result<()> {
        self.client(region)
            .delete_public_access_block()
            .bucket(bucket)
            .send()
            .await
            .map_err(|e| Error::aws("s3", "DeletePublicAccessBlock", e))?;
        Ok(())
    }
}

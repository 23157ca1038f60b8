//! S3: buckets, their ACL, policy, tags, website hosting and Block Public Access, at bucket and
//! account level; AWS's own evaluation of a bucket's policy; the account's access points (S3
//! Control).

use crate::error::SdkErrorExt as _;
use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use aws_sdk_s3::types::{PublicAccessBlockConfiguration, Type as GranteeType};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextMut;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

use crate::error::{Error, Result};
use crate::inventory::{AccessPointExposure, BlockSettings, BucketExposure, Grant};
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
    /// AWS's own evaluation of a bucket's policy (GetBucketPolicyStatus's `IsPublic`); `Ok(None)`
    /// when the bucket has no policy.
    async fn bucket_policy_status(&self, bucket: &str, region: &str) -> Result<Option<bool>>;
    /// The account's access points on a bucket (the region's listing is read once per adapter).
    /// An internet access point is read whole: its Block Public Access, then, unless its own
    /// RestrictPublicBuckets neutralises it, its policy and AWS's evaluation of that policy.
    async fn access_points(&self, bucket: &str, region: &str) -> Result<Vec<AccessPointExposure>>;
    /// Puts a bucket's Block Public Access.
    async fn put_block(&self, bucket: &str, region: &str, settings: BlockSettings) -> Result<()>;
    /// Removes a bucket's Block Public Access configuration.
    async fn delete_block(&self, bucket: &str, region: &str) -> Result<()>;
}

/// One access point as the region's listing names it: (name, bucket, internet-facing).
type Listed = (String, String, bool);

/// A region's listing, or why it failed (kept, so that one failure is not asked again per bucket).
type Listing = std::result::Result<Vec<Listed>, String>;

/// The SDK adapter: one S3 client and one S3 Control client per bucket region (made on first use).
#[derive(Debug)]
pub struct S3 {
    base: aws_sdk_s3::config::Config,
    clients: Mutex<HashMap<String, aws_sdk_s3::Client>>,
    control: aws_sdk_s3control::Client,
    controls: Mutex<HashMap<String, aws_sdk_s3control::Client>>,
    /// Each region's access points, listed once.
    listed: tokio::sync::Mutex<HashMap<String, Listing>>,
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

/// S3 Control's Block Public Access (an account's or an access point's).
fn control_settings(c: &aws_sdk_s3control::types::PublicAccessBlockConfiguration) -> BlockSettings {
    BlockSettings {
        block_public_acls: c.block_public_acls().unwrap_or(false),
        ignore_public_acls: c.ignore_public_acls().unwrap_or(false),
        block_public_policy: c.block_public_policy().unwrap_or(false),
        restrict_public_buckets: c.restrict_public_buckets().unwrap_or(false),
    }
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
            controls: Mutex::new(HashMap::new()),
            listed: tokio::sync::Mutex::new(HashMap::new()),
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

    /// S3 Control in `region` (access points are regional).
    fn control_in(&self, region: &str) -> aws_sdk_s3control::Client {
        let mut controls = match self.controls.lock() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        };
        controls
            .entry(region.to_string())
            .or_insert_with(|| {
                aws_sdk_s3control::Client::from_conf(
                    self.control
                        .config()
                        .to_builder()
                        .region(aws_sdk_s3control::config::Region::new(region.to_string()))
                        .build(),
                )
            })
            .clone()
    }

    /// The region's access points, listed on first use.
    async fn listed_in(&self, region: &str) -> Result<Vec<Listed>> {
        let mut listed = self.listed.lock().await;
        if let Some(known) = listed.get(region) {
            return known.clone().map_err(|e| {
                Error::unexpected(
                    "s3control",
                    "ListAccessPoints",
                    format!("failed earlier in this run: {e}"),
                )
            });
        }
        let mut out = Vec::new();
        let mut failed = None;
        let mut pages = self
            .control_in(region)
            .list_access_points()
            .account_id(&self.account)
            .max_results(1000)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            match page {
                Ok(page) => {
                    for ap in page.access_point_list() {
                        let internet = ap.network_origin() == &aws_sdk_s3control::types::NetworkOrigin::Internet;
                        out.push((ap.name().to_string(), ap.bucket().to_string(), internet));
                    }
                }
                Err(e) => {
                    failed = Some(Error::aws("s3control", "ListAccessPoints", e));
                    break;
                }
            }
        }
        match failed {
            Some(e) => {
                listed.insert(region.to_string(), Err(e.to_string()));
                Err(e)
            }
            None => {
                listed.insert(region.to_string(), Ok(out.clone()));
                Ok(out)
            }
        }
    }

    /// One access point of `bucket` read whole (see [`BucketApi::access_points`]), as it is now:
    /// `None` when it no longer exists or now serves another bucket.
    async fn access_point(&self, name: &str, bucket: &str, region: &str) -> Result<Option<AccessPointExposure>> {
        let control = self.control_in(region);
        let got = match control
            .get_access_point()
            .account_id(&self.account)
            .name(name)
            .send()
            .await
        {
            Ok(got) => got,
            // NoSuchAccessPoint: deleted since the region's listing; it opens nothing.
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => return Ok(None),
            Err(e) => return Err(Error::aws("s3control", "GetAccessPoint", e)),
        };
        if got.bucket() != Some(bucket) {
            return Ok(None);
        }
        let internet = got.network_origin() == Some(&aws_sdk_s3control::types::NetworkOrigin::Internet);
        let block = got.public_access_block_configuration().map(control_settings);
        let mut exposure = AccessPointExposure {
            name: name.to_string(),
            internet,
            block,
            policy: None,
            aws_public: None,
        };
        if !internet {
            return Ok(Some(exposure));
        }
        if block.is_some_and(|b| b.restrict_public_buckets) {
            return Ok(Some(exposure));
        }
        exposure.policy = match control
            .get_access_point_policy()
            .account_id(&self.account)
            .name(name)
            .send()
            .await
        {
            Ok(out) => match out.policy() {
                Some(text) => Some(serde_json::from_str(text).map_err(|e| {
                    Error::unexpected(
                        "s3control",
                        "GetAccessPointPolicy",
                        format!("policy of the access point {name} is not JSON: {e}"),
                    )
                })?),
                None => None,
            },
            // NoSuchAccessPointPolicy.
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => None,
            Err(e) => return Err(Error::aws("s3control", "GetAccessPointPolicy", e)),
        };
        if exposure.policy.is_some() {
            exposure.aws_public = match control
                .get_access_point_policy_status()
                .account_id(&self.account)
                .name(name)
                .send()
                .await
            {
                Ok(status) => status.policy_status().map(|p| p.is_public()),
                // The policy (or the access point) deleted since it was read: nothing to evaluate.
                Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => None,
                Err(e) => return Err(Error::aws("s3control", "GetAccessPointPolicyStatus", e)),
            };
        }
        Ok(Some(exposure))
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
            aws_policy_public: None,
            access_points: vec![],
            unread: vec![],
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
            Ok(out) => Ok(out.public_access_block_configuration().map(control_settings)),
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => Ok(None),
            Err(e) => Err(Error::aws("s3control", "GetPublicAccessBlock", e)),
        }
    }

    async fn bucket_policy_status(&self, bucket: &str, region: &str) -> Result<Option<bool>> {
        match self
            .client(region)
            .get_bucket_policy_status()
            .bucket(bucket)
            .send()
            .await
        {
            // An answer without IsPublic says nothing either way.
            Ok(out) => Ok(out.policy_status().and_then(|p| p.is_public())),
            // NoSuchBucketPolicy: no policy (deleted since it was read), nothing to evaluate.
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => Ok(None),
            Err(e) => Err(Error::aws("s3", "GetBucketPolicyStatus", e)),
        }
    }

    async fn access_points(&self, bucket: &str, region: &str) -> Result<Vec<AccessPointExposure>> {
        let mut out = Vec::new();
        for (name, of, internet) in self.listed_in(region).await? {
            if of != bucket {
                continue;
            }
            if !internet {
                out.push(AccessPointExposure {
                    name,
                    internet: false,
                    block: None,
                    policy: None,
                    aws_public: None,
                });
            } else if let Some(ap) = self.access_point(&name, bucket, region).await? {
                out.push(ap);
            }
        }
        Ok(out)
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

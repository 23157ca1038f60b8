//! What the AWS adapters read, in the shapes the checks judge: an instance's CloudWatch figures
//! by day and by hour, a bucket's exposure and its Block Public Access settings. Plain data, no
//! judgement: the checks decide on it, the adapters fill it, the actions and their ways back
//! carry it.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::model::Tags;

/// What CloudWatch said about one instance on one UTC day.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct DayUsage {
    /// Daily Average of CPUUtilization (%).
    pub cpu_average: Option<f64>,
    /// Daily Sum of NetworkIn (bytes).
    pub network_in: Option<f64>,
    /// Daily Sum of NetworkOut (bytes).
    pub network_out: Option<f64>,
}

/// Daily usage of one instance, by UTC day.
pub type UsageByDay = BTreeMap<NaiveDate, DayUsage>;

/// Hourly peaks of one instance (rightsizing).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InstancePeaks {
    /// Hourly maxima of CPUUtilization (%), by hour.
    pub cpu_hourly_max: Vec<(DateTime<Utc>, f64)>,
    /// Hourly maxima of mem_used_percent, when the CloudWatch agent publishes it.
    pub mem_hourly_max: Vec<(DateTime<Utc>, f64)>,
    /// NetworkIn + NetworkOut per UTC day (bytes).
    pub network_daily_bytes: BTreeMap<NaiveDate, f64>,
}

/// S3 Block Public Access settings (bucket or account level); absent settings are all false.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockSettings {
    pub block_public_acls: bool,
    pub ignore_public_acls: bool,
    pub block_public_policy: bool,
    pub restrict_public_buckets: bool,
}

impl BlockSettings {
    /// All four flags on.
    pub const ALL: BlockSettings = BlockSettings {
        block_public_acls: true,
        ignore_public_acls: true,
        block_public_policy: true,
        restrict_public_buckets: true,
    };
}

/// One ACL grant: grantee group URI (if a group) and permission.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub grantee_uri: Option<String>,
    pub permission: String,
}

/// Everything known about one bucket's exposure. The tags and the website hosting are read only
/// for a bucket found public (empty and `false` otherwise): nothing else is decided on them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BucketExposure {
    pub name: String,
    pub account: String,
    pub region: String,
    pub tags: Tags,
    pub grants: Vec<Grant>,
    /// The bucket policy document, if any.
    pub policy: Option<serde_json::Value>,
    /// Bucket-level Block Public Access; `None` when none is configured.
    pub block: Option<BlockSettings>,
    /// Static website hosting is configured: the bucket may be public on purpose.
    #[serde(default)]
    pub website: bool,
    /// AWS's own evaluation of the bucket policy (GetBucketPolicyStatus's `IsPublic`); `None`
    /// without a policy.
    #[serde(default)]
    pub aws_policy_public: Option<bool>,
    /// The account's access points on this bucket, read only when the bucket policy delegates to
    /// access points (without that, an access point's policy grants nothing).
    #[serde(default)]
    pub access_points: Vec<AccessPointExposure>,
    /// What could not be read beside the bucket itself (AWS's evaluation, the access points), and
    /// why: the bucket is then judged without it, and the run says so.
    #[serde(default)]
    pub unread: Vec<String>,
}

/// One access point of a bucket, as far as its exposure goes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccessPointExposure {
    pub name: String,
    /// Reachable from the internet (network origin `Internet`); a `VPC` one never is public.
    pub internet: bool,
    /// Its own Block Public Access; `None` when not read (a VPC access point).
    pub block: Option<BlockSettings>,
    /// Its policy, if any (not read where its own RestrictPublicBuckets neutralises it).
    pub policy: Option<serde_json::Value>,
    /// AWS's own evaluation of its policy (GetAccessPointPolicyStatus); `None` when not read.
    pub aws_public: Option<bool>,
}

impl std::fmt::Display for BlockSettings {
    /// As the S3 console names them: the settings that are on.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let on: Vec<&str> = [
            (self.block_public_acls, "BlockPublicAcls"),
            (self.ignore_public_acls, "IgnorePublicAcls"),
            (self.block_public_policy, "BlockPublicPolicy"),
            (self.restrict_public_buckets, "RestrictPublicBuckets"),
        ]
        .into_iter()
        .filter_map(|(set, name)| set.then_some(name))
        .collect();
        match on.len() {
            0 => write!(f, "all four settings off"),
            4 => write!(f, "all four settings on"),
            _ => write!(f, "{} on, the rest off", on.join(", ")),
        }
    }
}

/// Block Public Access settings, or their absence, as a person reads them.
pub fn shown_block(block: Option<BlockSettings>) -> String {
    match block {
        Some(b) => b.to_string(),
        None => "not set (all four off)".to_string(),
    }
}

/// The settings the policy asks for.
impl From<crate::policy::BlockFlags> for BlockSettings {
    fn from(f: crate::policy::BlockFlags) -> Self {
        BlockSettings {
            block_public_acls: f.block_public_acls,
            ignore_public_acls: f.ignore_public_acls,
            block_public_policy: f.block_public_policy,
            restrict_public_buckets: f.restrict_public_buckets,
        }
    }
}

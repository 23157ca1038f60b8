//! Effectively public S3 buckets.
//!
//! Public means: an ACL grant to AllUsers or AuthenticatedUsers that IgnorePublicAcls (bucket or
//! account level) does not neutralise; or a bucket-policy Allow to no fixed principal (`"*"`,
//! `{"AWS": "*"}`, a list holding one, a wildcard or policy variable in any principal, or a
//! `NotPrincipal`) without a restricting condition (a matching operator on a network, principal or
//! access-point key, with fixed values: no wildcard, no policy variable, not every address), that
//! RestrictPublicBuckets (bucket or account level) does not neutralise; or the same in the policy
//! of an internet access point the bucket policy delegates to, that RestrictPublicBuckets at the
//! access point, the bucket or the account does not neutralise. This is AWS's own definition ("The
//! meaning of public",
//! <https://docs.aws.amazon.com/AmazonS3/latest/userguide/access-control-block-public-access.html>).
//! A Deny-only policy is not public. BlockPublicAcls and BlockPublicPolicy only refuse new grants,
//! so they neutralise nothing already there.
//!
//! AWS's own evaluation of each policy (GetBucketPolicyStatus, GetAccessPointPolicyStatus) is read
//! beside this reading. Where the two differ on a policy that could matter, the bucket is a
//! finding of its own kind: a [`Disagreement`], which only a person resolves.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use finops_core::inventory::{shown_block, AccessPointExposure, BlockSettings, BucketExposure, Grant};
use finops_core::model::{is_exempt, ActionKind, Evidence, Finding, Resource, ResourceKind, Severity};
use finops_core::policy::Policy;

/// The rule id.
pub const RULE: &str = "s3-public";

const ALL_USERS: &str = "http://acs.amazonaws.com/groups/global/AllUsers";
const AUTHENTICATED_USERS: &str = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers";

/// Condition keys that confine an Allow to known networks or principals, or delegate it to an
/// account's access points, when their values are fixed (compared case-insensitively).
const RESTRICTING_KEYS: &[&str] = &[
    "aws:sourcevpce",
    "aws:sourcevpc",
    "aws:sourceip",
    "aws:sourceaccount",
    "aws:sourceowner",
    "aws:sourcearn",
    "aws:userid",
    "aws:principalorgid",
    "aws:principalaccount",
    "aws:principalarn",
    "s3:x-amz-server-side-encryption-aws-kms-key-id",
    "s3:dataaccesspointaccount",
    "s3:dataaccesspointarn",
];

/// The keys whose condition hands a bucket's access to its access points.
const DELEGATING_KEYS: &[&str] = &["s3:dataaccesspointaccount", "s3:dataaccesspointarn"];

/// Condition operators that admit only requests whose key matches a listed value (lower case, after
/// an optional `ForAnyValue:`). Every other one admits the anonymous public: a negated operator
/// (`NotIpAddress`, `StringNotEquals`) admits every other value, and `…IfExists`, `Null` and
/// `ForAllValues:` are satisfied by a request that lacks the key, as an anonymous one does.
const MATCHING_OPERATORS: &[&str] = &[
    "stringequals",
    "stringequalsignorecase",
    "stringlike",
    "arnequals",
    "arnlike",
    "ipaddress",
];

/// Where AWS's own evaluation of a policy and this reading of it differ.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Disagreement {
    /// The access point whose policy it is; `None` for the bucket policy.
    pub access_point: Option<String>,
    /// What AWS's own evaluation says: `true`, public (this reading found no statement that makes
    /// it so); `false`, not public (this reading found one).
    pub aws_public: bool,
}

impl std::fmt::Display for Disagreement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (policy, call) = match &self.access_point {
            None => ("the bucket policy".to_string(), "GetBucketPolicyStatus"),
            Some(name) => (
                format!("the policy of the access point {name}"),
                "GetAccessPointPolicyStatus",
            ),
        };
        if self.aws_public {
            write!(
                f,
                "AWS's own evaluation ({call}) calls {policy} public, but this reading finds no statement in it that makes it so"
            )
        } else {
            write!(
                f,
                "this reading finds {policy} public, but AWS's own evaluation ({call}) does not"
            )
        }
    }
}

impl std::fmt::Display for PublicReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PublicReason::Acl { grantee, permission } => write!(f, "an ACL grant of {permission} to {grantee}"),
            PublicReason::Policy { sid: Some(sid), .. } => write!(f, "the bucket policy's statement {sid}"),
            PublicReason::Policy { sid: None, .. } => write!(f, "a bucket policy statement without a Sid"),
            PublicReason::AccessPoint {
                name, sid: Some(sid), ..
            } => write!(f, "the policy of the access point {name} (statement {sid})"),
            PublicReason::AccessPoint { name, sid: None, .. } => {
                write!(f, "the policy of the access point {name} (a statement without a Sid)")
            }
        }
    }
}

/// Why a bucket is public: each grant or statement that makes it so.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "kebab-case")]
pub enum PublicReason {
    Acl {
        grantee: String,
        permission: String,
    },
    Policy {
        sid: Option<String>,
        actions: serde_json::Value,
    },
    /// A statement of the policy of an internet access point the bucket policy delegates to.
    AccessPoint {
        name: String,
        sid: Option<String>,
        actions: serde_json::Value,
    },
}

/// The evidence of an s3-public finding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct S3PublicEvidence {
    pub reasons: Vec<PublicReason>,
    pub bucket_block: Option<BlockSettings>,
    pub account_block: Option<BlockSettings>,
    /// The settings the action will put.
    pub proposed_block: BlockSettings,
    /// Website hosting is on: blocking may take a site down, so only a person decides it.
    #[serde(default)]
    pub website_hosting: bool,
    /// AWS's own evaluation differs from this reading: only a person decides it.
    #[serde(default)]
    pub disagreements: Vec<Disagreement>,
}

/// A value with no wildcard and no policy variable.
fn is_fixed(value: &str) -> bool {
    !value.contains('*') && !value.contains('?') && !value.contains("${")
}

/// Whether a principal names no fixed identity: `*`, or a wildcard or policy variable in any of its
/// values (whatever the principal type).
fn is_everyone(principal: &serde_json::Value) -> bool {
    match principal {
        serde_json::Value::String(s) => !is_fixed(s),
        serde_json::Value::Object(map) => map.values().any(is_everyone),
        serde_json::Value::Array(items) => items.iter().any(is_everyone),
        _ => false,
    }
}

/// Whether an Allow statement admits more than fixed principals: a `NotPrincipal` admits everyone
/// it does not name.
fn admits_everyone(statement: &serde_json::Value) -> bool {
    statement.get("NotPrincipal").is_some() || statement.get("Principal").is_some_and(is_everyone)
}

/// An access point ARN whose account is fixed: its name may hold a wildcard.
fn is_fixed_access_point_arn(value: &str) -> bool {
    let parts: Vec<&str> = value.splitn(6, ':').collect();
    parts.len() == 6
        && !value.contains("${")
        && parts[4].len() == 12
        && parts[4].bytes().all(|b| b.is_ascii_digit())
        && parts[5].starts_with("accesspoint/")
}

/// Whether every value of a condition is fixed (a number counts as fixed; an empty list confines
/// nothing).
fn values_fixed(key: &str, value: &serde_json::Value) -> bool {
    let fixed = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => is_fixed(s) || (key == "s3:dataaccesspointarn" && is_fixed_access_point_arn(s)),
        serde_json::Value::Number(_) | serde_json::Value::Bool(_) => true,
        _ => false,
    };
    match value {
        serde_json::Value::Array(items) => !items.is_empty() && items.iter().all(fixed),
        single => fixed(single),
    }
}

/// The first and last address of a block of `2^host_bits` addresses holding `base`.
fn block_of(base: u128, host_bits: u32) -> (u128, u128) {
    if host_bits >= 128 {
        return (0, u128::MAX);
    }
    let size = 1u128 << host_bits;
    let start = base & !(size - 1);
    (start, start + (size - 1))
}

/// The addresses a CIDR (or a bare address) names, as an inclusive range, and whether they are
/// IPv4 (an IPv4-mapped IPv6 block counts as the IPv4 addresses it maps). `None`: not a CIDR.
fn cidr_range(text: &str) -> Option<(u128, u128, bool)> {
    let (address, prefix) = match text.split_once('/') {
        Some((a, p)) => (a, Some(p.trim().parse::<u32>().ok()?)),
        None => (text, None),
    };
    match address.trim().parse::<std::net::IpAddr>().ok()? {
        std::net::IpAddr::V4(a) => {
            let prefix = prefix.unwrap_or(32);
            (prefix <= 32).then(|| {
                let (start, end) = block_of(u128::from(u32::from(a)), 32 - prefix);
                (start, end, true)
            })
        }
        std::net::IpAddr::V6(a) => {
            let prefix = prefix.unwrap_or(128);
            if prefix > 128 {
                return None;
            }
            if let (Some(v4), true) = (a.to_ipv4_mapped(), prefix >= 96) {
                let (start, end) = block_of(u128::from(u32::from(v4)), 128 - prefix);
                return Some((start, end, true));
            }
            let (start, end) = block_of(u128::from(a), 128 - prefix);
            Some((start, end, false))
        }
    }
}

/// Whether the ranges together cover every address from 0 to `last`.
fn covers(mut ranges: Vec<(u128, u128)>, last: u128) -> bool {
    ranges.sort_unstable();
    let mut next: u128 = 0;
    for (start, end) in ranges {
        if start > next {
            return false;
        }
        if end >= next {
            if end == last {
                return true;
            }
            next = end + 1;
        }
    }
    false
}

/// Whether an IP condition's CIDRs (one or a list) let every address of either family in, however
/// spelt (`0.0.0.0/0`, `0::/0`, `::ffff:0:0/96`, or blocks that together cover a family); a value
/// that is not a CIDR confines nothing either.
fn lets_everyone_in(value: &serde_json::Value) -> bool {
    let items: Vec<&serde_json::Value> = match value {
        serde_json::Value::Array(items) => items.iter().collect(),
        one => vec![one],
    };
    let (mut v4, mut v6) = (Vec::new(), Vec::new());
    for item in items {
        let Some((start, end, is_v4)) = item.as_str().and_then(cidr_range) else {
            return true;
        };
        if is_v4 {
            v4.push((start, end));
        } else {
            v6.push((start, end));
        }
    }
    covers(v4, u128::from(u32::MAX)) || covers(v6, u128::MAX)
}

/// Whether one condition (`operator: {key: value}`) confines the grant.
fn restricts(operator: &str, key: &str, value: &serde_json::Value) -> bool {
    let operator = operator.to_ascii_lowercase();
    let operator = operator.strip_prefix("foranyvalue:").unwrap_or(&operator);
    let key = key.to_ascii_lowercase();
    MATCHING_OPERATORS.contains(&operator)
        && RESTRICTING_KEYS.contains(&key.as_str())
        // A wildcard or a policy variable matches more than a fixed value; every address matches
        // everyone; an address is matched only by the IP operator.
        && values_fixed(&key, value)
        && (key != "aws:sourceip" || (operator == "ipaddress" && !lets_everyone_in(value)))
}

/// The (operator, key, value) of each condition of a statement.
fn conditions(statement: &serde_json::Value) -> impl Iterator<Item = (&String, &String, &serde_json::Value)> {
    statement
        .get("Condition")
        .and_then(|c| c.as_object())
        .into_iter()
        .flat_map(|c| c.iter())
        .filter_map(|(operator, clauses)| clauses.as_object().map(|clauses| (operator, clauses)))
        .flat_map(|(operator, clauses)| clauses.iter().map(move |(key, value)| (operator, key, value)))
}

fn has_restricting_condition(statement: &serde_json::Value) -> bool {
    conditions(statement).any(|(operator, key, value)| restricts(operator, key, value))
}

fn statements(policy: &serde_json::Value) -> Vec<&serde_json::Value> {
    match policy.get("Statement") {
        Some(serde_json::Value::Array(items)) => items.iter().collect(),
        Some(single @ serde_json::Value::Object(_)) => vec![single],
        _ => vec![],
    }
}

fn allows(statement: &serde_json::Value) -> bool {
    statement.get("Effect").and_then(|e| e.as_str()) == Some("Allow")
}

/// `pattern` against `value`, as IAM's `…Like` operators match (`*` any run, `?` one character),
/// or exactly for the others; case-insensitively for `…IgnoreCase`.
fn value_matches(operator: &str, pattern: &str, value: &str) -> bool {
    let operator = operator.to_ascii_lowercase();
    if operator.contains("ignorecase") {
        return pattern.eq_ignore_ascii_case(value);
    }
    if !operator.contains("like") {
        return pattern == value;
    }
    let (p, v): (Vec<char>, Vec<char>) = (pattern.chars().collect(), value.chars().collect());
    // A glob with one way back: to just after the last `*`, which then takes one more character.
    let (mut i, mut j, mut star, mut mark) = (0usize, 0usize, None::<usize>, 0usize);
    while j < v.len() {
        if i < p.len() && (p[i] == '?' || p[i] == v[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '*' {
            star = Some(i);
            mark = j;
            i += 1;
        } else if let Some(s) = star {
            i = s + 1;
            mark += 1;
            j = mark;
        } else {
            return false;
        }
    }
    p[i..].iter().all(|c| *c == '*')
}

/// Whether an access point ARN condition value admits the access point `name` of `account` in
/// `region` (field by field, whatever the partition).
fn arn_admits(operator: &str, pattern: &str, region: &str, account: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.splitn(6, ':').collect();
    parts.len() == 6
        && parts[0] == "arn"
        && value_matches(operator, parts[2], "s3")
        && value_matches(operator, parts[3], region)
        && value_matches(operator, parts[4], account)
        && value_matches(operator, parts[5], &format!("accesspoint/{name}"))
}

/// Whether one statement hands the bucket to the access point `name` of `account` in `region`:
/// each delegating condition it carries admits that access point, and no other confining
/// condition (a VPC endpoint, an address range…) narrows the path to fewer than everyone.
fn delegates_to(statement: &serde_json::Value, account: &str, region: &str, name: &str) -> bool {
    let mut delegating = false;
    for (operator, key, value) in conditions(statement) {
        if !restricts(operator, key, value) {
            continue;
        }
        let key = key.to_ascii_lowercase();
        if !DELEGATING_KEYS.contains(&key.as_str()) {
            return false;
        }
        delegating = true;
        let values: Vec<&str> = match value {
            serde_json::Value::Array(items) => items.iter().filter_map(|v| v.as_str()).collect(),
            one => one.as_str().into_iter().collect(),
        };
        let admits = values.iter().any(|v| {
            if key == "s3:dataaccesspointaccount" {
                value_matches(operator, v, account)
            } else {
                arn_admits(operator, v, region, account, name)
            }
        });
        if !admits {
            return false;
        }
    }
    delegating
}

/// Whether the bucket policy hands the bucket to this access point (see [`delegates_to`]).
fn delegated(bucket: &BucketExposure, name: &str) -> bool {
    bucket.policy.as_ref().is_some_and(|policy| {
        statements(policy)
            .into_iter()
            .filter(|s| allows(s) && admits_everyone(s))
            .any(|s| delegates_to(s, &bucket.account, &bucket.region, name))
    })
}

/// Whether a bucket policy hands access to some access points (an Allow to everyone confined by
/// `s3:DataAccessPointAccount` or `s3:DataAccessPointArn`): only then are the access points read,
/// and each is then matched against the statement (see [`delegates_to`]).
pub fn delegates_to_access_points(policy: &serde_json::Value) -> bool {
    statements(policy).into_iter().filter(|s| allows(s)).any(|s| {
        admits_everyone(s)
            && conditions(s).any(|(operator, key, value)| {
                DELEGATING_KEYS.contains(&key.to_ascii_lowercase().as_str()) && restricts(operator, key, value)
            })
    })
}

/// The statements of a policy that allow everyone without a restricting condition.
pub fn public_statements(policy: &serde_json::Value) -> Vec<PublicReason> {
    statements(policy)
        .into_iter()
        .filter(|s| allows(s) && admits_everyone(s) && !has_restricting_condition(s))
        .map(|s| PublicReason::Policy {
            sid: s.get("Sid").and_then(|v| v.as_str()).map(str::to_string),
            actions: s.get("Action").cloned().unwrap_or(serde_json::Value::Null),
        })
        .collect()
}

/// Whether RestrictPublicBuckets (bucket or account level) neutralises the bucket's public policies.
pub fn policies_restricted(bucket: &BucketExposure, account_block: Option<BlockSettings>) -> bool {
    bucket.block.unwrap_or_default().restrict_public_buckets
        || account_block.unwrap_or_default().restrict_public_buckets
}

/// Whether the access points could open the bucket: its policy delegates to them and no
/// RestrictPublicBuckets above them neutralises a public one.
pub fn access_points_matter(bucket: &BucketExposure, account_block: Option<BlockSettings>) -> bool {
    !policies_restricted(bucket, account_block) && bucket.policy.as_ref().is_some_and(delegates_to_access_points)
}

/// The access points through which the bucket could be reached from the internet: delegated to
/// (the bucket policy's delegation names them), internet-facing, and not neutralised by their own
/// RestrictPublicBuckets.
pub fn live_access_points(
    bucket: &BucketExposure,
    account_block: Option<BlockSettings>,
) -> impl Iterator<Item = &AccessPointExposure> {
    let matter = access_points_matter(bucket, account_block);
    bucket.access_points.iter().filter(move |ap| {
        matter && ap.internet && !ap.block.unwrap_or_default().restrict_public_buckets && delegated(bucket, &ap.name)
    })
}

/// Where AWS's own evaluation of a policy that could open the bucket differs from this reading.
/// A policy RestrictPublicBuckets neutralises opens nothing either way, so it is not compared.
pub fn disagreements(bucket: &BucketExposure, account_block: Option<BlockSettings>) -> Vec<Disagreement> {
    let mut out = Vec::new();
    if !policies_restricted(bucket, account_block) {
        if let (Some(policy), Some(aws_public)) = (&bucket.policy, bucket.aws_policy_public) {
            if public_statements(policy).is_empty() == aws_public {
                out.push(Disagreement {
                    access_point: None,
                    aws_public,
                });
            }
        }
    }
    for ap in live_access_points(bucket, account_block) {
        if let (Some(policy), Some(aws_public)) = (&ap.policy, ap.aws_public) {
            if public_statements(policy).is_empty() == aws_public {
                out.push(Disagreement {
                    access_point: Some(ap.name.clone()),
                    aws_public,
                });
            }
        }
    }
    out
}

/// Why the bucket is effectively public (empty when it is not).
pub fn public_reasons(bucket: &BucketExposure, account_block: Option<BlockSettings>) -> Vec<PublicReason> {
    let bucket_block = bucket.block.unwrap_or_default();
    let through_access_points: Vec<PublicReason> = live_access_points(bucket, account_block)
        .flat_map(|ap| {
            ap.policy
                .as_ref()
                .map(public_statements)
                .unwrap_or_default()
                .into_iter()
                .filter_map(|r| match r {
                    PublicReason::Policy { sid, actions } => Some(PublicReason::AccessPoint {
                        name: ap.name.clone(),
                        sid,
                        actions,
                    }),
                    _ => None,
                })
                .collect::<Vec<_>>()
        })
        .collect();
    let account_block = account_block.unwrap_or_default();
    let mut reasons = Vec::new();
    if !(bucket_block.ignore_public_acls || account_block.ignore_public_acls) {
        for g in &bucket.grants {
            let grantee = match g.grantee_uri.as_deref() {
                Some(ALL_USERS) => "AllUsers",
                Some(AUTHENTICATED_USERS) => "AuthenticatedUsers",
                _ => continue,
            };
            reasons.push(PublicReason::Acl {
                grantee: grantee.to_string(),
                permission: g.permission.clone(),
            });
        }
    }
    if !(bucket_block.restrict_public_buckets || account_block.restrict_public_buckets) {
        if let Some(policy) = &bucket.policy {
            reasons.extend(public_statements(policy));
        }
    }
    reasons.extend(through_access_points);
    reasons
}

/// The bucket as a finding's resource.
pub fn resource(bucket: &BucketExposure) -> Resource {
    Resource {
        kind: ResourceKind::S3Bucket,
        id: bucket.name.clone(),
        account: bucket.account.clone(),
        region: bucket.region.clone(),
        tags: bucket.tags.clone(),
    }
}

/// Why a bucket is passed over (exempt); `None` if it is a candidate.
pub fn skip_reason(bucket: &BucketExposure, policy: &Policy) -> Option<String> {
    is_exempt(&bucket.tags, &policy.exempt_tag).then(|| format!("exempt: tag {}=true", policy.exempt_tag))
}

/// Whether the bucket being public rests only on policies AWS's own evaluation disputes (or on
/// nothing this reading sees): then the disagreement decides whether to act, so a person does. A
/// reason nobody disputes (an ACL grant, an undisputed policy) justifies the block by itself.
pub fn rests_on_disputed(reasons: &[PublicReason], disagreements: &[Disagreement]) -> bool {
    !disagreements.is_empty()
        && reasons.iter().all(|r| match r {
            PublicReason::Acl { .. } => false,
            PublicReason::Policy { .. } => disagreements.iter().any(|d| d.access_point.is_none()),
            PublicReason::AccessPoint { name, .. } => disagreements
                .iter()
                .any(|d| d.access_point.as_deref() == Some(name.as_str())),
        })
}

/// Why a finding needs a person's approval even in auto mode: website hosting is on (blocking may
/// take a site down), or whether it is public rests on a policy AWS's own evaluation disputes.
/// `None` otherwise.
pub fn needs_a_person(finding: &Finding) -> Option<String> {
    let e = finding.evidence.get::<S3PublicEvidence>()?;
    let why: Vec<&str> = [
        (e.website_hosting, "website hosting on"),
        (
            rests_on_disputed(&e.reasons, &e.disagreements),
            "AWS's own evaluation disagrees with this reading",
        ),
    ]
    .into_iter()
    .filter_map(|(applies, why)| applies.then_some(why))
    .collect();
    (!why.is_empty()).then(|| why.join("; "))
}

/// One finding per effectively public, non-exempt bucket.
pub fn detect(
    buckets: &[BucketExposure],
    account_block: Option<BlockSettings>,
    policy: &Policy,
    now: DateTime<Utc>,
) -> Vec<Finding> {
    buckets
        .iter()
        .filter(|b| skip_reason(b, policy).is_none())
        .filter_map(|b| {
            let reasons = public_reasons(b, account_block);
            let disagreements = disagreements(b, account_block);
            if reasons.is_empty() && disagreements.is_empty() {
                return None;
            }
            let resource = resource(b);
            Some(Finding {
                id: Finding::id_for(RULE, &resource),
                rule: RULE.to_string(),
                resource,
                evidence: Evidence::of(&S3PublicEvidence {
                    reasons,
                    bucket_block: b.block,
                    account_block,
                    proposed_block: policy.s3_public.block.into(),
                    website_hosting: b.website,
                    disagreements,
                }),
                action: ActionKind::BlockPublicAccess,
                // Exposure is a risk, not a cost: no dollars, and always high severity.
                estimated_monthly_savings_usd: None,
                severity: Severity::High,
                detected_at: now,
            })
        })
        .collect()
}

impl finops_core::evidence::CheckEvidence for S3PublicEvidence {
    const RULE: &'static str = RULE;
    const ACTS: &'static [ActionKind] = &[ActionKind::BlockPublicAccess];
}

impl finops_core::evidence::Explain for S3PublicEvidence {
    fn what(&self) -> String {
        "bucket".to_string()
    }

    fn summary(&self) -> String {
        self.reasons
            .iter()
            .map(|r| match r {
                PublicReason::Acl { grantee, permission } => format!("ACL: {grantee} {permission}"),
                PublicReason::Policy { sid, .. } => format!("policy: Allow * ({})", sid.as_deref().unwrap_or("no Sid")),
                PublicReason::AccessPoint { name, sid, .. } => {
                    format!("access point {name}: Allow * ({})", sid.as_deref().unwrap_or("no Sid"))
                }
            })
            .chain(self.disagreements.iter().map(|d| format!("to look at: {d}")))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn why(&self, _finding: &Finding) -> String {
        let e = self;
        let through: Vec<String> = e.reasons.iter().map(ToString::to_string).collect();
        let differ: String = e
            .disagreements
            .iter()
            .map(|d| format!(" To look at by hand: {d}."))
            .collect();
        format!(
            "{}; the bucket's Block Public Access: {}.{differ}",
            if through.is_empty() {
                "Not public by this reading".to_string()
            } else {
                format!("Public through {}", through.join("; "))
            },
            shown_block(e.bucket_block),
        )
    }

    /// Where AWS's own evaluation of a bucket's policy differs from this reading: the person
    /// deciding reads it in words.
    fn to_look_at(&self) -> Vec<String> {
        self.disagreements.iter().map(ToString::to_string).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn bucket(grants: Vec<Grant>, policy: Option<serde_json::Value>, block: Option<BlockSettings>) -> BucketExposure {
        BucketExposure {
            name: "b".into(),
            account: "123456789012".into(),
            region: "us-east-1".into(),
            tags: finops_core::model::Tags::new(),
            grants,
            policy,
            block,
            website: false,
            aws_policy_public: None,
            access_points: vec![],
            unread: vec![],
        }
    }

    fn all_users_read() -> Vec<Grant> {
        vec![Grant {
            grantee_uri: Some(ALL_USERS.into()),
            permission: "READ".into(),
        }]
    }

    fn allow(principal: serde_json::Value, condition: Option<serde_json::Value>) -> serde_json::Value {
        let mut s = json!({"Sid": "Pub", "Effect": "Allow", "Principal": principal, "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"});
        if let Some(c) = condition {
            s["Condition"] = c;
        }
        json!({"Version": "2012-10-17", "Statement": [s]})
    }

    #[test]
    fn an_all_users_grant_is_public_unless_ignore_public_acls_is_set_anywhere() {
        assert_eq!(public_reasons(&bucket(all_users_read(), None, None), None).len(), 1);
        let ignore = BlockSettings {
            ignore_public_acls: true,
            ..Default::default()
        };
        assert!(public_reasons(&bucket(all_users_read(), None, Some(ignore)), None).is_empty());
        assert!(public_reasons(&bucket(all_users_read(), None, None), Some(ignore)).is_empty());
        // BlockPublicAcls refuses new grants only.
        let block_only = BlockSettings {
            block_public_acls: true,
            ..Default::default()
        };
        assert_eq!(
            public_reasons(&bucket(all_users_read(), None, Some(block_only)), None).len(),
            1
        );
    }

    #[test]
    fn authenticated_users_count_as_public_and_a_canonical_user_does_not() {
        let g = vec![
            Grant {
                grantee_uri: Some(AUTHENTICATED_USERS.into()),
                permission: "WRITE".into(),
            },
            Grant {
                grantee_uri: None,
                permission: "FULL_CONTROL".into(),
            },
        ];
        let r = public_reasons(&bucket(g, None, None), None);
        assert_eq!(
            r,
            vec![PublicReason::Acl {
                grantee: "AuthenticatedUsers".into(),
                permission: "WRITE".into()
            }]
        );
    }

    #[test]
    fn every_spelling_of_everyone_in_a_policy_is_public() {
        for principal in [
            json!("*"),
            json!({"AWS": "*"}),
            json!({"AWS": ["arn:aws:iam::1:root", "*"]}),
        ] {
            let r = public_reasons(&bucket(vec![], Some(allow(principal.clone(), None)), None), None);
            assert_eq!(r.len(), 1, "{principal}");
        }
        let named = allow(json!({"AWS": "arn:aws:iam::111122223333:root"}), None);
        assert!(public_reasons(&bucket(vec![], Some(named), None), None).is_empty());
    }

    #[test]
    fn a_restricting_condition_makes_an_allow_to_everyone_private() {
        for c in [
            json!({"StringEquals": {"aws:SourceVpce": "vpce-1"}}),
            json!({"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}),
            json!({"StringEquals": {"aws:PrincipalOrgID": "o-123"}}),
            json!({"ArnLike": {"AWS:SourceArn": "arn:aws:cloudfront::1:distribution/X"}}),
        ] {
            let b = bucket(vec![], Some(allow(json!("*"), Some(c.clone()))), None);
            assert!(public_reasons(&b, None).is_empty(), "{c}");
        }
        // A condition on something else, or a wildcard value, restricts nothing.
        for c in [
            json!({"Bool": {"aws:SecureTransport": "true"}}),
            json!({"StringLike": {"aws:SourceVpce": "*"}}),
        ] {
            let b = bucket(vec![], Some(allow(json!("*"), Some(c.clone()))), None);
            assert_eq!(public_reasons(&b, None).len(), 1, "{c}");
        }
    }

    fn is_public_with(condition: serde_json::Value) -> bool {
        let b = bucket(vec![], Some(allow(json!("*"), Some(condition))), None);
        !public_reasons(&b, None).is_empty()
    }

    #[test]
    fn not_ip_address_on_the_source_ip_leaves_an_allow_to_everyone_public() {
        assert!(is_public_with(json!({"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}})));
    }

    #[test]
    fn an_ip_address_condition_listing_all_addresses_leaves_an_allow_to_everyone_public() {
        for cidrs in [json!("0.0.0.0/0"), json!("::/0"), json!(["10.0.0.0/8", "0.0.0.0/0"])] {
            let c = json!({"IpAddress": {"aws:SourceIp": cidrs}});
            assert!(is_public_with(c.clone()), "{c}");
        }
    }

    #[test]
    fn a_condition_on_a_key_outside_the_restricting_set_leaves_an_allow_to_everyone_public() {
        for c in [
            json!({"StringLike": {"aws:Referer": "https://example.com/*"}}),
            json!({"StringEquals": {"s3:prefix": "public/"}}),
            json!({"StringEquals": {"aws:UserAgent": "curl"}}),
        ] {
            assert!(is_public_with(c.clone()), "{c}");
        }
    }

    #[test]
    fn a_negated_or_absent_key_operator_on_a_restricting_key_leaves_an_allow_to_everyone_public() {
        // Each admits every request that lacks the key or carries another value: the anonymous public.
        for c in [
            json!({"StringNotEquals": {"aws:SourceVpce": "vpce-1"}}),
            json!({"ArnNotLike": {"aws:PrincipalArn": "arn:aws:iam::111122223333:role/x"}}),
            json!({"StringEqualsIfExists": {"aws:SourceVpce": "vpce-1"}}),
            json!({"Null": {"aws:SourceVpce": "true"}}),
            json!({"ForAllValues:StringEquals": {"aws:PrincipalOrgID": "o-123"}}),
        ] {
            assert!(is_public_with(c.clone()), "{c}");
        }
    }

    #[test]
    fn access_point_delegation_makes_an_allow_to_everyone_private() {
        for c in [
            json!({"StringEquals": {"s3:DataAccessPointAccount": "111122223333"}}),
            json!({"ArnLike": {"s3:DataAccessPointArn": "arn:aws:s3:us-east-1:111122223333:accesspoint/*"}}),
        ] {
            assert!(!is_public_with(c.clone()), "{c}");
        }
    }

    #[test]
    fn a_narrow_ip_range_still_makes_an_allow_to_everyone_private() {
        assert!(!is_public_with(
            json!({"IpAddress": {"aws:SourceIp": ["10.0.0.0/8", "192.168.0.0/16"]}})
        ));
        assert!(!is_public_with(
            json!({"ForAnyValue:StringEquals": {"aws:SourceVpce": ["vpce-1"]}})
        ));
    }

    #[test]
    fn restrict_public_buckets_neutralises_a_public_policy_at_either_level() {
        let restrict = BlockSettings {
            restrict_public_buckets: true,
            ..Default::default()
        };
        let p = Some(allow(json!("*"), None));
        assert!(public_reasons(&bucket(vec![], p.clone(), Some(restrict)), None).is_empty());
        assert!(public_reasons(&bucket(vec![], p.clone(), None), Some(restrict)).is_empty());
        // BlockPublicPolicy only refuses new policies.
        let block_policy = BlockSettings {
            block_public_policy: true,
            ..Default::default()
        };
        assert_eq!(public_reasons(&bucket(vec![], p, Some(block_policy)), None).len(), 1);
    }

    #[test]
    fn a_deny_only_policy_is_not_public() {
        let deny = json!({"Statement": [{"Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": "*",
                         "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]});
        assert!(public_reasons(&bucket(vec![], Some(deny), None), None).is_empty());
    }

    #[test]
    fn a_single_statement_object_is_read_too() {
        let p = json!({"Statement": {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject"}});
        assert_eq!(public_reasons(&bucket(vec![], Some(p), None), None).len(), 1);
    }

    #[test]
    fn exempt_buckets_are_not_findings_and_public_ones_carry_their_reasons() {
        let mut exempt = bucket(all_users_read(), None, None);
        exempt.tags.insert("finops:exempt".into(), "true".into());
        let public = bucket(all_users_read(), Some(allow(json!("*"), None)), None);
        let now = "2026-11-26T06:00:00Z".parse().unwrap();
        assert!(detect(&[exempt.clone()], None, &Policy::default(), now).is_empty());
        assert!(skip_reason(&exempt, &Policy::default()).is_some());
        let f = detect(&[public], None, &Policy::default(), now);
        let Some(e) = f[0].evidence.get::<S3PublicEvidence>() else {
            panic!()
        };
        assert_eq!(e.reasons.len(), 2);
        assert_eq!(e.proposed_block, BlockSettings::ALL);
        assert_eq!(f[0].severity, Severity::High);
    }

    #[test]
    fn a_public_website_bucket_is_a_finding_that_says_website_hosting_is_on() {
        let mut site = bucket(vec![], Some(allow(json!("*"), None)), None);
        site.website = true;
        let plain = BucketExposure {
            name: "plain".into(),
            ..bucket(all_users_read(), None, None)
        };
        let now = "2026-11-26T06:00:00Z".parse().unwrap();
        let f = detect(&[site, plain], None, &Policy::default(), now);
        assert_eq!(f.len(), 2);
        assert_eq!(needs_a_person(&f[0]).as_deref(), Some("website hosting on"));
        assert_eq!(needs_a_person(&f[1]), None);
        assert_eq!(serde_json::to_value(&f[0].evidence).unwrap()["website_hosting"], true);
    }

    #[test]
    fn an_allow_with_not_principal_is_public_unless_a_condition_confines_it() {
        let p = json!({"Statement": [{"Sid": "AllButOne", "Effect": "Allow",
            "NotPrincipal": {"AWS": "arn:aws:iam::111122223333:root"}, "Action": "s3:GetObject"}]});
        assert_eq!(public_reasons(&bucket(vec![], Some(p), None), None).len(), 1);
        let confined = json!({"Statement": [{"Effect": "Allow",
            "NotPrincipal": {"AWS": "arn:aws:iam::111122223333:root"}, "Action": "s3:GetObject",
            "Condition": {"StringEquals": {"aws:SourceVpce": "vpce-1"}}}]});
        assert!(public_reasons(&bucket(vec![], Some(confined), None), None).is_empty());
    }

    #[test]
    fn a_wildcard_or_a_policy_variable_in_a_restricting_condition_or_a_principal_leaves_it_public() {
        for c in [
            json!({"StringLike": {"aws:SourceArn": "arn:aws:cloudfront::*:distribution/*"}}),
            json!({"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::*:role/deploy"}}),
            json!({"StringEquals": {"aws:SourceAccount": "${aws:PrincipalAccount}"}}),
            json!({"StringLike": {"aws:SourceVpce": ["vpce-1", "vpce-?"]}}),
            json!({"ArnLike": {"s3:DataAccessPointArn": "arn:aws:s3:us-east-1:*:accesspoint/*"}}),
            json!({"StringEquals": {"aws:SourceVpce": []}}),
        ] {
            assert!(is_public_with(c.clone()), "{c}");
        }
        let wildcard_account = allow(json!({"AWS": "arn:aws:iam::*:root"}), None);
        assert_eq!(
            public_reasons(&bucket(vec![], Some(wildcard_account), None), None).len(),
            1
        );
        // Fixed values of the other keys AWS names confine it.
        for c in [
            json!({"StringEquals": {"aws:SourceOwner": "111122223333"}}),
            json!({"StringEquals": {"aws:userid": "AIDAEXAMPLE"}}),
            json!({"StringEquals": {"s3:x-amz-server-side-encryption-aws-kms-key-id": "arn:aws:kms:us-east-1:111122223333:key/k"}}),
            // An access point name may be a wildcard when the account is fixed.
            json!({"ArnLike": {"s3:DataAccessPointArn": "arn:aws:s3:us-east-1:111122223333:accesspoint/*"}}),
        ] {
            assert!(!is_public_with(c.clone()), "{c}");
        }
    }

    fn delegating() -> serde_json::Value {
        json!({"Statement": [{"Sid": "Delegate", "Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "*",
            "Resource": ["arn:aws:s3:::b", "arn:aws:s3:::b/*"],
            "Condition": {"StringEquals": {"s3:DataAccessPointAccount": "123456789012"}}}]})
    }

    fn access_point(name: &str, internet: bool, block: Option<BlockSettings>) -> AccessPointExposure {
        AccessPointExposure {
            name: name.into(),
            internet,
            block,
            policy: Some(
                json!({"Statement": [{"Sid": "Anyone", "Effect": "Allow", "Principal": "*",
                "Action": "s3:GetObject", "Resource": "arn:aws:s3:us-east-1:123456789012:accesspoint/x/object/*"}]}),
            ),
            aws_public: Some(true),
        }
    }

    #[test]
    fn a_public_internet_access_point_the_bucket_delegates_to_makes_the_bucket_public() {
        let off = Some(BlockSettings::default());
        let mut b = bucket(vec![], Some(delegating()), None);
        b.access_points = vec![access_point("open", true, off), access_point("inside", false, None)];
        let reasons = public_reasons(&b, None);
        assert_eq!(
            reasons,
            vec![PublicReason::AccessPoint {
                name: "open".into(),
                sid: Some("Anyone".into()),
                actions: json!("s3:GetObject"),
            }]
        );
        assert_eq!(
            reasons[0].to_string(),
            "the policy of the access point open (statement Anyone)"
        );
        assert!(disagreements(&b, None).is_empty());
        // RestrictPublicBuckets at the access point, the bucket or the account neutralises it.
        let restrict = BlockSettings {
            restrict_public_buckets: true,
            ..Default::default()
        };
        let mut own = b.clone();
        own.access_points[0].block = Some(restrict);
        assert!(public_reasons(&own, None).is_empty());
        let mut at_bucket = b.clone();
        at_bucket.block = Some(restrict);
        assert!(public_reasons(&at_bucket, None).is_empty());
        assert!(public_reasons(&b, Some(restrict)).is_empty());
        // Without the bucket's delegation the access point's policy grants nothing.
        let mut not_delegated = b.clone();
        not_delegated.policy = None;
        assert!(public_reasons(&not_delegated, None).is_empty());
    }

    #[test]
    fn where_aws_s_own_evaluation_differs_the_bucket_is_a_finding_that_needs_a_person() {
        let now = "2026-11-26T06:00:00Z".parse().unwrap();
        let vpce = allow(json!("*"), Some(json!({"StringEquals": {"aws:SourceVpce": "vpce-1"}})));
        // AWS calls a policy public that this reading finds private.
        let mut b = bucket(vec![], Some(vpce.clone()), None);
        b.aws_policy_public = Some(true);
        let f = detect(std::slice::from_ref(&b), None, &Policy::default(), now);
        assert_eq!(f.len(), 1);
        let Some(e) = f[0].evidence.get::<S3PublicEvidence>() else {
            panic!()
        };
        assert!(e.reasons.is_empty());
        assert_eq!(
            e.disagreements,
            vec![Disagreement {
                access_point: None,
                aws_public: true
            }]
        );
        assert_eq!(
            needs_a_person(&f[0]).as_deref(),
            Some("AWS's own evaluation disagrees with this reading")
        );
        assert!(e.disagreements[0].to_string().contains("GetBucketPolicyStatus"));
        // And the other way: this reading finds it public, AWS does not.
        let mut other = bucket(vec![], Some(allow(json!("*"), None)), None);
        other.aws_policy_public = Some(false);
        assert_eq!(disagreements(&other, None).len(), 1);
        assert_eq!(public_reasons(&other, None).len(), 1);
        // Agreement, or a policy RestrictPublicBuckets neutralises, is no disagreement.
        b.aws_policy_public = Some(false);
        assert!(detect(&[b], None, &Policy::default(), now).is_empty());
        let restrict = BlockSettings {
            restrict_public_buckets: true,
            ..Default::default()
        };
        assert!(disagreements(&other, Some(restrict)).is_empty());
        // An access point's status is compared too.
        let mut ap = bucket(vec![], Some(delegating()), None);
        let mut private_ap = access_point("ap", true, Some(BlockSettings::default()));
        private_ap.policy = Some(vpce);
        ap.access_points = vec![private_ap];
        ap.aws_policy_public = Some(false);
        assert_eq!(
            disagreements(&ap, None),
            vec![Disagreement {
                access_point: Some("ap".into()),
                aws_public: true
            }]
        );
    }

    #[test]
    fn address_ranges_that_cover_a_whole_family_however_spelt_confine_nothing() {
        for cidrs in [
            json!(["0.0.0.0/1", "128.0.0.0/1"]),
            json!("0::/0"),
            json!("::0/0"),
            json!("::ffff:0:0/96"),
            json!(["10.0.0.0/8", "0.0.0.0/0"]),
            json!("not an address"),
        ] {
            let c = json!({"IpAddress": {"aws:SourceIp": cidrs}});
            assert!(is_public_with(c.clone()), "{c}");
        }
        for cidrs in [
            json!("10.0.0.0/8"),
            json!(["0.0.0.0/1"]),
            json!("2001:db8::/32"),
            json!("203.0.113.7"),
        ] {
            let c = json!({"IpAddress": {"aws:SourceIp": cidrs}});
            assert!(!is_public_with(c.clone()), "{c}");
        }
    }

    #[test]
    fn an_access_point_opens_the_bucket_only_if_the_delegation_names_it_and_nothing_else_confines_it() {
        let off = Some(BlockSettings::default());
        let with_policy = |statement: serde_json::Value| {
            let mut b = bucket(vec![], Some(json!({"Statement": [statement]})), None);
            b.access_points = vec![access_point("old-ap", true, off)];
            b
        };
        let delegate = |condition: serde_json::Value| json!({"Effect": "Allow", "Principal": "*", "Action": "*", "Condition": condition});
        // Named, by account or by an ARN (a wildcard name with the account fixed).
        for c in [
            json!({"StringEquals": {"s3:DataAccessPointAccount": "123456789012"}}),
            json!({"ArnLike": {"s3:DataAccessPointArn": "arn:aws:s3:us-east-1:123456789012:accesspoint/*"}}),
            json!({"ArnEquals": {"s3:DataAccessPointArn": "arn:aws:s3:us-east-1:123456789012:accesspoint/old-ap"}}),
        ] {
            assert_eq!(public_reasons(&with_policy(delegate(c.clone())), None).len(), 1, "{c}");
        }
        // Another account's access points, another access point, or a path also confined to a VPC
        // endpoint: the old access point's public policy grants nothing.
        for c in [
            json!({"StringEquals": {"s3:DataAccessPointAccount": "999988887777"}}),
            json!({"ArnEquals": {"s3:DataAccessPointArn": "arn:aws:s3:us-east-1:123456789012:accesspoint/internal"}}),
            json!({"StringEquals": {"s3:DataAccessPointAccount": "123456789012", "aws:SourceVpce": "vpce-1"}}),
        ] {
            assert!(
                public_reasons(&with_policy(delegate(c.clone())), None).is_empty(),
                "{c}"
            );
        }
    }

    #[test]
    fn a_disagreement_holds_back_only_a_bucket_whose_exposure_rests_on_the_disputed_policy() {
        let now = "2026-11-26T06:00:00Z".parse().unwrap();
        // Public through its ACL too: the undisputed reason justifies the block alone.
        let mut b = bucket(all_users_read(), Some(allow(json!("*"), None)), None);
        b.aws_policy_public = Some(false);
        let f = detect(&[b], None, &Policy::default(), now);
        let Some(e) = f[0].evidence.get::<S3PublicEvidence>() else {
            panic!()
        };
        assert_eq!(e.disagreements.len(), 1);
        assert_eq!(needs_a_person(&f[0]), None);
        // Public only through the disputed policy: a person decides.
        let mut only = bucket(vec![], Some(allow(json!("*"), None)), None);
        only.aws_policy_public = Some(false);
        let f = detect(&[only], None, &Policy::default(), now);
        assert!(needs_a_person(&f[0]).is_some());
    }
}

//! Effectively public S3 buckets.
//!
//! Public means: an ACL grant to AllUsers or AuthenticatedUsers that IgnorePublicAcls (bucket or
//! account level) does not neutralise; or a bucket-policy Allow to everyone (`"*"`, `{"AWS": "*"}`,
//! or a list holding `*`) without a restricting condition (a matching operator on a network,
//! principal or access-point key, with a value narrower than everyone), that
//! RestrictPublicBuckets (bucket or account level) does not neutralise. A Deny-only policy is not
//! public. BlockPublicAcls and BlockPublicPolicy only refuse new grants, so they neutralise nothing
//! already there.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::model::{is_exempt, ActionKind, Evidence, Finding, Resource, ResourceKind, Severity, Tags};
use crate::policy::Policy;

/// The rule id.
pub const RULE: &str = "s3-public";

const ALL_USERS: &str = "http://acs.amazonaws.com/groups/global/AllUsers";
const AUTHENTICATED_USERS: &str = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers";

/// Condition keys that confine an Allow to known networks or principals, or delegate it to an
/// account's access points (compared case-insensitively).
const RESTRICTING_KEYS: &[&str] = &[
    "aws:sourcevpce",
    "aws:sourcevpc",
    "aws:sourceip",
    "aws:sourceaccount",
    "aws:sourcearn",
    "aws:principalorgid",
    "aws:principalaccount",
    "aws:principalarn",
    "s3:dataaccesspointaccount",
    "s3:dataaccesspointarn",
];

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

impl std::fmt::Display for PublicReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PublicReason::Acl { grantee, permission } => write!(f, "an ACL grant of {permission} to {grantee}"),
            PublicReason::Policy { sid: Some(sid), .. } => write!(f, "the bucket policy's statement {sid}"),
            PublicReason::Policy { sid: None, .. } => write!(f, "a bucket policy statement without a Sid"),
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
}

fn is_everyone(principal: &serde_json::Value) -> bool {
    match principal {
        serde_json::Value::String(s) => s == "*",
        serde_json::Value::Object(map) => map.get("AWS").is_some_and(is_everyone),
        serde_json::Value::Array(items) => items.iter().any(is_everyone),
        _ => false,
    }
}

/// Whether a CIDR value (one or a list) lets every address in: any all-addresses entry does.
fn lists_all_addresses(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::String(s) => matches!(s.trim(), "0.0.0.0/0" | "::/0"),
        serde_json::Value::Array(items) => items.iter().any(lists_all_addresses),
        _ => false,
    }
}

/// Whether one condition (`operator: {key: value}`) confines the grant.
fn restricts(operator: &str, key: &str, value: &serde_json::Value) -> bool {
    let operator = operator.to_ascii_lowercase();
    let operator = operator.strip_prefix("foranyvalue:").unwrap_or(&operator);
    let key = key.to_ascii_lowercase();
    MATCHING_OPERATORS.contains(&operator)
        && RESTRICTING_KEYS.contains(&key.as_str())
        // A wildcard value, or every address, matches everyone.
        && !is_everyone(value)
        && !(operator == "ipaddress" && lists_all_addresses(value))
}

fn has_restricting_condition(statement: &serde_json::Value) -> bool {
    let Some(conditions) = statement.get("Condition").and_then(|c| c.as_object()) else {
        return false;
    };
    conditions.iter().any(|(operator, clauses)| {
        clauses
            .as_object()
            .is_some_and(|clauses| clauses.iter().any(|(key, value)| restricts(operator, key, value)))
    })
}

/// The statements of a policy that allow everyone without a restricting condition.
pub fn public_statements(policy: &serde_json::Value) -> Vec<PublicReason> {
    let statements: Vec<&serde_json::Value> = match policy.get("Statement") {
        Some(serde_json::Value::Array(items)) => items.iter().collect(),
        Some(single @ serde_json::Value::Object(_)) => vec![single],
        _ => vec![],
    };
    statements
        .into_iter()
        .filter(|s| s.get("Effect").and_then(|e| e.as_str()) == Some("Allow"))
        .filter(|s| s.get("Principal").is_some_and(is_everyone))
        .filter(|s| !has_restricting_condition(s))
        .map(|s| PublicReason::Policy {
            sid: s.get("Sid").and_then(|v| v.as_str()).map(str::to_string),
            actions: s.get("Action").cloned().unwrap_or(serde_json::Value::Null),
        })
        .collect()
}

/// Why the bucket is effectively public (empty when it is not).
pub fn public_reasons(bucket: &BucketExposure, account_block: Option<BlockSettings>) -> Vec<PublicReason> {
    let bucket_block = bucket.block.unwrap_or_default();
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

/// Whether a finding is about a bucket with website hosting on (it needs an approval, even in auto mode).
pub fn website_hosting(finding: &Finding) -> bool {
    matches!(&finding.evidence, Evidence::S3Public(e) if e.website_hosting)
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
            if reasons.is_empty() {
                return None;
            }
            let resource = resource(b);
            Some(Finding {
                id: Finding::id_for(RULE, &resource),
                rule: RULE.to_string(),
                resource,
                evidence: Evidence::S3Public(S3PublicEvidence {
                    reasons,
                    bucket_block: b.block,
                    account_block,
                    proposed_block: policy.s3_public.block.into(),
                    website_hosting: b.website,
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn bucket(grants: Vec<Grant>, policy: Option<serde_json::Value>, block: Option<BlockSettings>) -> BucketExposure {
        BucketExposure {
            name: "b".into(),
            account: "123456789012".into(),
            region: "us-east-1".into(),
            tags: Tags::new(),
            grants,
            policy,
            block,
            website: false,
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
        let Evidence::S3Public(e) = &f[0].evidence else {
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
        assert!(website_hosting(&f[0]));
        assert!(!website_hosting(&f[1]));
        assert_eq!(serde_json::to_value(&f[0].evidence).unwrap()["website_hosting"], true);
    }
}

//! Required tags on instances, volumes and buckets. Keys are case-sensitive; a missing key and a
//! blank (empty or whitespace-only) value are the same thing: missing.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use finops_core::model::{is_exempt, ActionKind, Evidence, Finding, Resource, ResourceKind, Severity, Tags};
use finops_core::policy::Policy;

/// The rule id.
pub const RULE: &str = "tag-compliance";

/// AWS Config resource types this rule evaluates.
pub const APPLICABLE_TYPES: [&str; 3] = ["AWS::EC2::Instance", "AWS::EC2::Volume", "AWS::S3::Bucket"];

/// The Config resource type of a resource kind.
pub fn config_type(kind: ResourceKind) -> Option<&'static str> {
    match kind {
        ResourceKind::Ec2Instance => Some("AWS::EC2::Instance"),
        ResourceKind::EbsVolume => Some("AWS::EC2::Volume"),
        ResourceKind::S3Bucket => Some("AWS::S3::Bucket"),
        // Only the kinds of APPLICABLE_TYPES are evaluated: a kind another check adds is not.
        _ => None,
    }
}

/// The resource kind of a Config resource type.
pub fn kind_of(config_type: &str) -> Option<ResourceKind> {
    match config_type {
        "AWS::EC2::Instance" => Some(ResourceKind::Ec2Instance),
        "AWS::EC2::Volume" => Some(ResourceKind::EbsVolume),
        "AWS::S3::Bucket" => Some(ResourceKind::S3Bucket),
        _ => None,
    }
}

/// The required keys a resource lacks (or has blank), in policy order.
pub fn missing_tags(tags: &Tags, required: &[String]) -> Vec<String> {
    required
        .iter()
        .filter(|k| tags.get(k.as_str()).is_none_or(|v| v.trim().is_empty()))
        .cloned()
        .collect()
}

/// The tag that records since when a resource has lacked required tags.
pub const MARK_TAG: &str = "finops:untagged-since";

/// The day a resource was marked as lacking tags, if its mark is there and readable.
pub fn marked_since(tags: &Tags) -> Option<NaiveDate> {
    tags.get(MARK_TAG)
        .and_then(|v| NaiveDate::parse_from_str(v.trim(), "%Y-%m-%d").ok())
}

/// Whether a marked instance is still due for its stop, judged on its tags as they are `today`:
/// `Err(why not)` when the keys were added, the mark was removed, or its grace is not over.
pub fn stop_still_due(tags: &Tags, policy: &Policy, today: NaiveDate) -> std::result::Result<(), String> {
    let missing = missing_tags(tags, &policy.required_tags);
    if missing.is_empty() {
        return Err("no longer missing required tags: tagged since detection".into());
    }
    let Some(since) = marked_since(tags) else {
        return Err(format!("no {MARK_TAG} mark any more: someone removed it, so no stop"));
    };
    let days = (today - since).num_days();
    let after = i64::from(policy.tag_compliance.stop_after_days);
    if days < after {
        return Err(format!(
            "marked {since}, {days} day(s) ago; the stop waits {after} day(s)"
        ));
    }
    Ok(())
}

/// The evidence of a tag-compliance finding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TagComplianceEvidence {
    pub config_resource_type: String,
    pub missing: Vec<String>,
    pub required: Vec<String>,
}

pub use finops_core::model::Compliance;

/// The sweep's result: one finding per non-compliant resource, and the compliance by Config
/// resource type and overall. Exempt resources are in both (exempt means "do not act", not "do
/// not count": leaving them out would flatter the figure); only acting passes them over.
#[derive(Debug, Clone, PartialEq)]
pub struct Sweep {
    pub findings: Vec<Finding>,
    pub by_type: BTreeMap<String, Compliance>,
    pub overall: Compliance,
    /// The exempt resources among those evaluated.
    pub exempt: Vec<Resource>,
}

/// Evaluates every resource against the policy's required tags.
pub fn sweep(resources: &[Resource], policy: &Policy, now: DateTime<Utc>) -> Sweep {
    let mut by_type: BTreeMap<String, Compliance> = APPLICABLE_TYPES
        .iter()
        .map(|t| (t.to_string(), Compliance::default()))
        .collect();
    let mut findings = Vec::new();
    let mut exempt = Vec::new();
    for r in resources {
        let Some(t) = config_type(r.kind) else { continue };
        if is_exempt(&r.tags, &policy.exempt_tag) {
            exempt.push(r.clone());
        }
        let missing = missing_tags(&r.tags, &policy.required_tags);
        let entry = by_type.entry(t.to_string()).or_default();
        entry.total += 1;
        if missing.is_empty() {
            entry.compliant += 1;
            continue;
        }
        findings.push(Finding {
            id: Finding::id_for(RULE, r),
            rule: RULE.to_string(),
            resource: r.clone(),
            evidence: Evidence::of(&TagComplianceEvidence {
                config_resource_type: t.to_string(),
                missing,
                required: policy.required_tags.clone(),
            }),
            action: ActionKind::Notify,
            estimated_monthly_savings_usd: None,
            severity: Severity::Low,
            detected_at: now,
        });
    }
    let overall = by_type.values().fold(Compliance::default(), |acc, c| Compliance {
        compliant: acc.compliant + c.compliant,
        total: acc.total + c.total,
    });
    Sweep {
        findings,
        by_type,
        overall,
        exempt,
    }
}

impl finops_core::evidence::CheckEvidence for TagComplianceEvidence {
    const RULE: &'static str = RULE;
    // Its stop of a non-compliant instance past its grace (a finding of its own, `…:stop`).
    const ACTS: &'static [ActionKind] = &[ActionKind::Stop];
}

impl finops_core::evidence::Explain for TagComplianceEvidence {
    fn what(&self) -> String {
        self.config_resource_type.trim_start_matches("AWS::").to_string()
    }

    fn summary(&self) -> String {
        format!("missing {}", self.missing.join(", "))
    }

    fn why(&self, _finding: &Finding) -> String {
        let e = self;
        format!(
            "Missing the required tag{} {} (required: {}).",
            if e.missing.len() == 1 { "" } else { "s" },
            e.missing.join(", "),
            e.required.join(", "),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(kind: ResourceKind, id: &str, tags: &[(&str, &str)]) -> Resource {
        Resource {
            kind,
            id: id.into(),
            account: "1".into(),
            region: "us-east-1".into(),
            tags: tags.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        }
    }

    fn full() -> Vec<(&'static str, &'static str)> {
        vec![("Owner", "ana"), ("CostCenter", "42"), ("Environment", "prod")]
    }

    #[test]
    fn keys_are_case_sensitive_and_blank_values_are_missing() {
        let required: Vec<String> = vec!["Owner".into(), "CostCenter".into(), "Environment".into()];
        let tags: Tags = [("owner", "ana"), ("CostCenter", "  "), ("Environment", "dev")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(missing_tags(&tags, &required), vec!["Owner", "CostCenter"]);
        let ok: Tags = full().iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        assert!(missing_tags(&ok, &required).is_empty());
    }

    #[test]
    fn the_sweep_counts_compliance_by_type_and_overall_exempt_resources_included() {
        let resources = vec![
            res(ResourceKind::Ec2Instance, "i-1", &full()),
            res(ResourceKind::Ec2Instance, "i-2", &[("Owner", "bo")]),
            res(ResourceKind::EbsVolume, "vol-1", &full()),
            res(ResourceKind::S3Bucket, "b-1", &[]),
            res(ResourceKind::S3Bucket, "b-2", &[("finops:exempt", "true")]),
        ];
        let s = sweep(&resources, &Policy::default(), Utc::now());
        let ids: Vec<&str> = s.findings.iter().map(|f| f.resource.id.as_str()).collect();
        assert_eq!(ids, vec!["i-2", "b-1", "b-2"]);
        assert_eq!(s.by_type["AWS::EC2::Instance"].percent(), 50.0);
        assert_eq!(s.by_type["AWS::EC2::Volume"].percent(), 100.0);
        assert_eq!(s.by_type["AWS::S3::Bucket"].percent(), 0.0);
        assert_eq!(s.overall, Compliance { compliant: 2, total: 5 });
        assert_eq!(s.exempt.len(), 1);
        let Some(e) = s.findings[0].evidence.get::<TagComplianceEvidence>() else {
            panic!()
        };
        assert_eq!(e.missing, vec!["CostCenter", "Environment"]);
    }

    #[test]
    fn an_exempt_resource_missing_tags_is_a_finding_and_counts_against_compliance() {
        let mut exempt_but_tagged = full();
        exempt_but_tagged.push(("finops:exempt", "true"));
        let resources = vec![
            res(ResourceKind::Ec2Instance, "i-exempt", &[("finops:exempt", "true")]),
            res(ResourceKind::Ec2Instance, "i-ok", &exempt_but_tagged),
        ];
        let s = sweep(&resources, &Policy::default(), Utc::now());
        let ids: Vec<&str> = s.findings.iter().map(|f| f.resource.id.as_str()).collect();
        assert_eq!(ids, vec!["i-exempt"]);
        assert_eq!(s.by_type["AWS::EC2::Instance"], Compliance { compliant: 1, total: 2 });
        assert_eq!(s.overall.percent(), 50.0);
    }

    #[test]
    fn an_empty_account_is_fully_compliant() {
        let s = sweep(&[], &Policy::default(), Utc::now());
        assert_eq!(s.overall.percent(), 100.0);
    }
}

//! Elastic IP addresses associated with nothing. An address is in use when it is associated with
//! an instance or with a network interface (a NAT gateway's or a load balancer's address is on a
//! network interface only); an address associated with neither costs its hourly price for nothing.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use finops_core::model::{
    is_exempt, round_cents, ActionKind, Evidence, Finding, Resource, ResourceKind, Severity, Tags,
};
use finops_core::policy::Policy;
use finops_core::pricing::HOURS_PER_MONTH;

/// The rule id.
pub const RULE: &str = "unattached-eip";

/// What a public IPv4 address costs an hour, associated or not: $0.005 ("Public IPv4 Address",
/// <https://aws.amazon.com/vpc/pricing/>), the same in every commercial region.
pub const USD_PER_HOUR: f64 = 0.005;

/// An Elastic IP address as DescribeAddresses describes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ElasticIp {
    pub allocation_id: String,
    pub public_ip: String,
    pub association_id: Option<String>,
    pub instance_id: Option<String>,
    pub network_interface_id: Option<String>,
    pub tags: Tags,
    pub account: String,
    pub region: String,
}

impl ElasticIp {
    /// The address as a finding's resource: its allocation id.
    pub fn resource(&self) -> Resource {
        Resource {
            kind: ResourceKind::ElasticIp,
            id: self.allocation_id.clone(),
            account: self.account.clone(),
            region: self.region.clone(),
            tags: self.tags.clone(),
        }
    }
}

/// The numbers behind an unattached-eip finding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnattachedEipEvidence {
    pub public_ip: String,
    pub usd_per_hour: f64,
}

/// Why an address is left alone: in use, or exempt; `None` for an address associated with nothing.
pub fn skip_reason(address: &ElasticIp, policy: &Policy) -> Option<String> {
    if let Some(on) = address.instance_id.as_ref().or(address.network_interface_id.as_ref()) {
        return Some(format!("associated with {on}"));
    }
    if let Some(association) = &address.association_id {
        return Some(format!("associated ({association})"));
    }
    if is_exempt(&address.tags, &policy.exempt_tag) {
        return Some(format!("exempt: tag {}=true", policy.exempt_tag));
    }
    None
}

/// One finding per address associated with nothing and not exempt.
pub fn detect(addresses: &[ElasticIp], policy: &Policy, now: DateTime<Utc>) -> Vec<Finding> {
    addresses
        .iter()
        .filter(|a| skip_reason(a, policy).is_none())
        .map(|a| {
            let resource = a.resource();
            let monthly = round_cents(USD_PER_HOUR * HOURS_PER_MONTH);
            Finding {
                id: Finding::id_for(RULE, &resource),
                rule: RULE.to_string(),
                resource,
                evidence: Evidence::of(&UnattachedEipEvidence {
                    public_ip: a.public_ip.clone(),
                    usd_per_hour: USD_PER_HOUR,
                }),
                // Reported only: a release cannot be undone.
                action: ActionKind::Notify,
                estimated_monthly_savings_usd: Some(monthly),
                severity: Severity::from_monthly_usd(Some(monthly)),
                detected_at: now,
            }
        })
        .collect()
}

impl finops_core::evidence::CheckEvidence for UnattachedEipEvidence {
    const RULE: &'static str = RULE;
}

impl finops_core::evidence::Explain for UnattachedEipEvidence {
    fn what(&self) -> String {
        "Elastic IP".to_string()
    }

    fn summary(&self) -> String {
        format!(
            "{} associated with nothing; ${:.2}/month",
            self.public_ip,
            self.usd_per_hour * HOURS_PER_MONTH
        )
    }

    fn why(&self, _finding: &Finding) -> String {
        format!(
            "The Elastic IP address {} is associated with no instance and no network interface: it costs ${} an hour (${:.2} a month) for nothing.",
            self.public_ip,
            self.usd_per_hour,
            self.usd_per_hour * HOURS_PER_MONTH
        )
    }

    fn cannot_be_undone(&self) -> bool {
        // A released address is gone for good (another account may be given it).
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        "2026-12-08T06:00:00Z".parse().unwrap()
    }

    fn address(id: &str) -> ElasticIp {
        ElasticIp {
            allocation_id: id.into(),
            public_ip: "198.51.100.7".into(),
            association_id: None,
            instance_id: None,
            network_interface_id: None,
            tags: Tags::new(),
            account: "123456789012".into(),
            region: "us-east-1".into(),
        }
    }

    #[test]
    fn only_an_address_associated_with_nothing_and_not_exempt_is_flagged_at_its_hourly_price() {
        let mut on_instance = address("eipalloc-instance");
        on_instance.instance_id = Some("i-0abc".into());
        on_instance.association_id = Some("eipassoc-1".into());
        // A NAT gateway's address: on a network interface, no instance.
        let mut on_interface = address("eipalloc-nat");
        on_interface.network_interface_id = Some("eni-0nat".into());
        on_interface.association_id = Some("eipassoc-2".into());
        let mut exempt = address("eipalloc-kept");
        exempt.tags.insert("finops:exempt".into(), "true".into());
        let free = address("eipalloc-free");
        let policy = Policy::default();

        let found = detect(
            &[on_instance.clone(), on_interface.clone(), exempt.clone(), free],
            &policy,
            now(),
        );
        assert_eq!(found.len(), 1, "{found:#?}");
        let f = &found[0];
        assert_eq!(f.id, "unattached-eip:123456789012:us-east-1:eipalloc-free");
        assert_eq!(f.action, ActionKind::Notify, "reported, never released");
        assert_eq!(f.estimated_monthly_savings_usd, Some(3.65), "730 h × $0.005");
        assert_eq!(
            skip_reason(&on_instance, &policy).as_deref(),
            Some("associated with i-0abc")
        );
        assert_eq!(
            skip_reason(&on_interface, &policy).as_deref(),
            Some("associated with eni-0nat")
        );
        assert_eq!(
            skip_reason(&exempt, &policy).as_deref(),
            Some("exempt: tag finops:exempt=true")
        );

        // As the catalog tells it, from the evidence as stored.
        let back: Finding = serde_json::from_str(&serde_json::to_string(f).unwrap()).unwrap();
        let catalog = &crate::CATALOG;
        assert_eq!(
            catalog.why(&back),
            "The Elastic IP address 198.51.100.7 is associated with no instance and no network interface: it costs $0.005 an hour ($3.65 a month) for nothing."
        );
        assert!(catalog.cannot_be_undone(&back));
        assert!(!catalog.takes(RULE, ActionKind::Notify), "it acts on nothing by itself");
    }
}

//! Unattached EBS volumes past their grace period.
//!
//! AWS keeps no "detached since" time, so the grace period counts from the first time this system
//! saw the volume unattached (recorded in the state table). Without a record (first sighting, or
//! dry-run with no table) it counts from the volume's CreateTime, which is exact for a volume never
//! attached and the best AWS can say for one detached before this system watched it; the evidence
//! names the basis used.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use finops_core::model::{is_exempt, round_cents, ActionKind, EbsVolume, Evidence, Finding, Severity};
use finops_core::policy::Policy;
use finops_core::pricing::{ebs, PriceBook};

/// The rule id.
pub const RULE: &str = "ebs-cleanup";

/// What the grace period counted from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SinceBasis {
    /// The first time this system saw the volume unattached.
    FirstSeen,
    /// The volume's creation time (no sighting recorded).
    CreateTime,
}

/// The numbers behind an ebs-cleanup finding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EbsCleanupEvidence {
    pub volume_type: String,
    pub size_gib: i32,
    pub iops: Option<i32>,
    pub throughput: Option<i32>,
    pub availability_zone: String,
    pub state: String,
    pub unattached_since: DateTime<Utc>,
    pub since_basis: SinceBasis,
    pub unattached_days: i64,
    pub grace_days: u32,
    pub volume_usd_per_month: Option<f64>,
    /// Upper bound of the snapshot kept for rollback (0 when no snapshot is taken).
    pub snapshot_usd_per_month: f64,
    pub snapshot_before_delete: bool,
    /// Where the volume's price came from and for which region, part by part.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price_source: Option<String>,
}

/// The sighting scope of unattached volumes in the state table: one per account and region, so
/// that a scan, which forgets the sightings of volumes it no longer sees, forgets only its own.
pub fn sighting_scope(account: &str, region: &str) -> String {
    format!("ebs-unattached#{account}#{region}")
}

/// The one scope every sighting had before scopes were per account and region (a
/// single-account deployment's home region): read as a fallback, and its entries moved into
/// their scope as the scans see them, keeping their times.
pub const LEGACY_SIGHTING_SCOPE: &str = "ebs-unattached";

/// Why a volume is not considered; `None` if it is a candidate.
pub fn skip_reason(volume: &EbsVolume, policy: &Policy) -> Option<String> {
    if volume.state != "available" || !volume.attached_to.is_empty() {
        return Some(if volume.attached_to.is_empty() {
            format!("volume is {}", volume.state)
        } else {
            format!(
                "volume is {}, attached to {}",
                volume.state,
                volume.attached_to.join(", ")
            )
        });
    }
    if is_exempt(&volume.tags, &policy.exempt_tag) {
        return Some(format!("exempt: tag {}=true", policy.exempt_tag));
    }
    if let Some(owner) = cluster_owner(&volume.tags) {
        return Some(format!(
            "belongs to {owner}: the cluster's storage driver manages it (a detached persistent volume still holds data)"
        ));
    }
    None
}

/// The Kubernetes cluster (or persistent volume) that owns a volume, from the tags the EBS CSI
/// driver, the in-tree provisioner and kops put on it.
fn cluster_owner(tags: &finops_core::model::Tags) -> Option<String> {
    if let Some(pv) = tags.get("kubernetes.io/created-for/pv/name") {
        return Some(format!("Kubernetes persistent volume {pv}"));
    }
    if let Some(cluster) = tags.get("ebs.csi.aws.com/cluster") {
        return Some(format!("the EBS CSI driver (cluster {cluster})"));
    }
    if let Some(cluster) = tags.get("KubernetesCluster") {
        return Some(format!("Kubernetes cluster {cluster}"));
    }
    tags.keys()
        .find_map(|k| k.strip_prefix("kubernetes.io/cluster/"))
        .map(|cluster| format!("Kubernetes cluster {cluster}"))
}

/// Flags unattached, non-exempt volumes unattached for at least `grace_days`.
pub fn detect(
    volumes: &[EbsVolume],
    first_seen: &HashMap<String, DateTime<Utc>>,
    policy: &Policy,
    now: DateTime<Utc>,
) -> Vec<Finding> {
    detect_priced(volumes, first_seen, policy, &PriceBook::embedded(), now)
}

/// [`detect`] with the prices of the scan's region.
pub fn detect_priced(
    volumes: &[EbsVolume],
    first_seen: &HashMap<String, DateTime<Utc>>,
    policy: &Policy,
    prices: &PriceBook,
    now: DateTime<Utc>,
) -> Vec<Finding> {
    let p = &policy.ebs_cleanup;
    volumes
        .iter()
        .filter(|v| skip_reason(v, policy).is_none())
        .filter_map(|v| {
            let (since, basis) = match (first_seen.get(&v.id), v.create_time) {
                (Some(seen), _) => (*seen, SinceBasis::FirstSeen),
                (None, Some(created)) => (created, SinceBasis::CreateTime),
                // Neither: treat as seen just now, so the grace period starts today.
                (None, None) => (now, SinceBasis::FirstSeen),
            };
            let days = (now - since).num_days();
            if days < i64::from(p.grace_days) {
                return None;
            }
            let volume_usd = prices.volume_usd_per_month(&v.volume_type, v.size_gib, v.iops, v.throughput);
            let snapshot_usd = if p.snapshot_before_delete {
                ebs::snapshot_usd_per_month(v.size_gib)
            } else {
                0.0
            };
            let savings = volume_usd.map(|usd| round_cents((usd - snapshot_usd).max(0.0)));
            let resource = v.resource();
            Some(Finding {
                id: Finding::id_for(RULE, &resource),
                rule: RULE.to_string(),
                resource,
                evidence: Evidence::of(&EbsCleanupEvidence {
                    volume_type: v.volume_type.clone(),
                    size_gib: v.size_gib,
                    iops: v.iops,
                    throughput: v.throughput,
                    availability_zone: v.availability_zone.clone(),
                    state: v.state.clone(),
                    unattached_since: since,
                    since_basis: basis,
                    unattached_days: days,
                    grace_days: p.grace_days,
                    volume_usd_per_month: volume_usd.map(round_cents),
                    snapshot_usd_per_month: round_cents(snapshot_usd),
                    snapshot_before_delete: p.snapshot_before_delete,
                    price_source: Some(prices.volume_source()),
                }),
                action: ActionKind::SnapshotAndDelete,
                estimated_monthly_savings_usd: savings,
                severity: Severity::from_monthly_usd(savings),
                detected_at: now,
            })
        })
        .collect()
}

impl finops_core::evidence::CheckEvidence for EbsCleanupEvidence {
    const RULE: &'static str = RULE;
    const ACTS: &'static [ActionKind] = &[ActionKind::SnapshotAndDelete];
}

impl finops_core::evidence::Explain for EbsCleanupEvidence {
    fn what(&self) -> String {
        format!("{} {}G", self.volume_type, self.size_gib)
    }

    fn summary(&self) -> String {
        let basis = match self.since_basis {
            SinceBasis::FirstSeen => "first-seen",
            SinceBasis::CreateTime => "create-time",
        };
        format!(
            "unattached {}d ({basis}); saves {} gross, net of a ≤ ${:.2} snapshot",
            self.unattached_days,
            self.volume_usd_per_month
                .map(|v| format!("${v:.2}"))
                .unwrap_or_else(|| "unknown".into()),
            self.snapshot_usd_per_month
        )
    }

    fn why(&self, _finding: &Finding) -> String {
        let e = self;
        format!(
            "A {} GiB {} volume unattached for {} days (grace period {} days){}.",
            e.size_gib,
            e.volume_type,
            e.unattached_days,
            e.grace_days,
            if e.snapshot_before_delete {
                "; a snapshot is taken before the delete"
            } else {
                "; no snapshot is taken"
            },
        )
    }

    /// A volume deleted without a snapshot (the policy in force at detection said so).
    fn cannot_be_undone(&self) -> bool {
        !self.snapshot_before_delete
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn now() -> DateTime<Utc> {
        "2026-11-26T06:00:00Z".parse().unwrap()
    }

    fn volume(id: &str, created_days_ago: i64) -> EbsVolume {
        EbsVolume {
            id: id.into(),
            volume_type: "gp2".into(),
            size_gib: 100,
            iops: Some(300),
            throughput: None,
            availability_zone: "us-east-1a".into(),
            state: "available".into(),
            attached_to: vec![],
            encrypted: false,
            kms_key_id: None,
            snapshot_id: None,
            create_time: Some(now() - Duration::days(created_days_ago)),
            account: "123456789012".into(),
            region: "us-east-1".into(),
            tags: Default::default(),
        }
    }

    fn ids(findings: Vec<Finding>) -> Vec<String> {
        findings.into_iter().map(|f| f.resource.id).collect()
    }

    #[test]
    fn a_volume_unattached_past_the_grace_period_is_flagged_net_of_its_snapshot() {
        let f = detect(&[volume("vol-old", 30)], &HashMap::new(), &Policy::default(), now());
        assert_eq!(f.len(), 1);
        // gp2 100 GB = $10/month, minus at most $5/month of snapshot.
        assert_eq!(f[0].estimated_monthly_savings_usd, Some(5.0));
        assert_eq!(f[0].action, ActionKind::SnapshotAndDelete);
        let Some(e) = f[0].evidence.get::<EbsCleanupEvidence>() else {
            panic!()
        };
        assert_eq!(e.since_basis, SinceBasis::CreateTime);
        assert_eq!(e.unattached_days, 30);
    }

    #[test]
    fn the_first_sighting_wins_over_create_time() {
        let seen: HashMap<String, DateTime<Utc>> = [("vol-old".to_string(), now() - Duration::days(2))].into();
        assert!(detect(&[volume("vol-old", 300)], &seen, &Policy::default(), now()).is_empty());
        let seen: HashMap<String, DateTime<Utc>> = [("vol-old".to_string(), now() - Duration::days(7))].into();
        let f = detect(&[volume("vol-old", 300)], &seen, &Policy::default(), now());
        let Some(e) = f[0].evidence.get::<EbsCleanupEvidence>() else {
            panic!()
        };
        assert_eq!(e.since_basis, SinceBasis::FirstSeen);
    }

    #[test]
    fn the_grace_period_boundary_is_inclusive_and_zero_acts_at_once() {
        let p = Policy::default();
        assert_eq!(
            ids(detect(
                &[volume("vol-7", 7), volume("vol-6", 6)],
                &HashMap::new(),
                &p,
                now()
            )),
            vec!["vol-7"]
        );
        let mut zero = Policy::default();
        zero.ebs_cleanup.grace_days = 0;
        assert_eq!(
            ids(detect(&[volume("vol-new", 0)], &HashMap::new(), &zero, now())),
            vec!["vol-new"]
        );
    }

    #[test]
    fn attached_and_exempt_volumes_are_not_flagged() {
        let mut attached = volume("vol-a", 30);
        attached.state = "in-use".into();
        attached.attached_to = vec!["i-1".into()];
        let mut exempt = volume("vol-e", 30);
        exempt.tags.insert("finops:exempt".into(), "True".into());
        assert!(detect(
            &[attached.clone(), exempt.clone()],
            &HashMap::new(),
            &Policy::default(),
            now()
        )
        .is_empty());
        assert!(skip_reason(&attached, &Policy::default()).unwrap().contains("in-use"));
        assert!(skip_reason(&exempt, &Policy::default()).unwrap().contains("exempt"));
    }

    #[test]
    fn volumes_of_a_kubernetes_cluster_are_left_to_it_with_the_reason() {
        let p = Policy::default();
        for (key, value, says) in [
            (
                "kubernetes.io/created-for/pv/name",
                "pvc-1234",
                "persistent volume pvc-1234",
            ),
            ("ebs.csi.aws.com/cluster", "true", "EBS CSI driver"),
            ("KubernetesCluster", "prod-eks", "cluster prod-eks"),
            ("kubernetes.io/cluster/prod-eks", "owned", "cluster prod-eks"),
        ] {
            let mut v = volume("vol-pv", 30);
            v.tags.insert(key.into(), value.into());
            let reason = skip_reason(&v, &p).unwrap_or_default();
            assert!(reason.contains(says), "{key}: {reason}");
            assert!(detect(&[v], &HashMap::new(), &p, now()).is_empty(), "{key}");
        }
    }

    #[test]
    fn without_a_snapshot_the_whole_volume_cost_is_saved() {
        let mut p = Policy::default();
        p.ebs_cleanup.snapshot_before_delete = false;
        let mut v = volume("vol-io", 30);
        v.volume_type = "io1".into();
        v.iops = Some(1000);
        let f = detect(&[v], &HashMap::new(), &p, now());
        assert_eq!(f[0].estimated_monthly_savings_usd, Some(77.5));
    }

    #[test]
    fn a_finding_read_back_from_its_record_is_explained_by_its_check_as_when_detected() {
        let mut p = Policy::default();
        p.ebs_cleanup.snapshot_before_delete = false;
        let f = detect(&[volume("vol-old", 30)], &HashMap::new(), &p, now()).remove(0);
        // The record holds the check's own JSON, untagged, as before evidence became the
        // catalog's to read: records written by the version before read back the same.
        let text = serde_json::to_string(&f).unwrap();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(json["evidence"]["unattached_days"], 30);
        assert_eq!(json["evidence"]["snapshot_before_delete"], false);
        assert!(json["evidence"].get("EbsCleanup").is_none(), "{json}");
        let back: Finding = serde_json::from_str(&text).unwrap();
        assert_eq!(back, f);

        let catalog = &crate::CATALOG;
        assert_eq!(
            catalog.why(&back),
            "A 100 GiB gp2 volume unattached for 30 days (grace period 7 days); no snapshot is taken."
        );
        assert!(
            catalog.cannot_be_undone(&back),
            "no snapshot: the page and Slack must warn"
        );
        assert_eq!(catalog.summary(&back).0, "gp2 100G");
        assert!(catalog.parse_id(&back.id).is_some());

        // The same numbers under a rule whose check cannot read them: the plain sentence, and
        // no claim either way from another check's words.
        let mut other = back.clone();
        other.rule = "idle-ec2".into();
        assert_eq!(catalog.why(&other), "idle-ec2 proposes to snapshot-and-delete vol-old.");
        assert!(!catalog.cannot_be_undone(&other));
        // A rule this version does not run: its id has the shape of one, but names no check.
        other.rule = "idle-nat".into();
        other.id = Finding::id_for("idle-nat", &other.resource);
        assert!(Finding::parse_id(&other.id).is_some());
        assert!(catalog.parse_id(&other.id).is_none());
        assert_eq!(catalog.summary(&other).0, "");
    }

    #[test]
    fn an_unknown_volume_type_is_flagged_without_dollars() {
        let mut v = volume("vol-x", 30);
        v.volume_type = "gp9".into();
        let f = detect(&[v], &HashMap::new(), &Policy::default(), now());
        assert_eq!(f[0].estimated_monthly_savings_usd, None);
    }
}

//! The data that flows between the pieces: resources, findings, outcomes and a run's report.
//! Field names are a contract (DESIGN.md): other tools read this JSON.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::policy::Mode;

/// Resource tags, sorted by key.
pub type Tags = BTreeMap<String, String>;

/// What kind of thing a finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ResourceKind {
    Ec2Instance,
    EbsVolume,
    S3Bucket,
    CostService,
}

/// The resource a finding is about.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Resource {
    pub kind: ResourceKind,
    pub id: String,
    pub account: String,
    pub region: String,
    #[serde(default)]
    pub tags: Tags,
}

/// An EC2 instance as the inventory sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ec2Instance {
    pub id: String,
    pub instance_type: String,
    /// `pending`, `running`, `stopping`, `stopped`, ...
    pub state: String,
    pub account: String,
    pub region: String,
    /// `spot` or `capacity-block` for those; `None` for On-Demand.
    pub lifecycle: Option<String>,
    /// `ebs` or `instance-store`.
    pub root_device_type: String,
    /// Whether the instance type has instance-store volumes (their data is lost on stop), as
    /// `DescribeInstanceTypes` says; `None` when that could not be learnt (treated as "yes").
    #[serde(default)]
    pub instance_store: Option<bool>,
    pub launch_time: Option<DateTime<Utc>>,
    pub tags: Tags,
    /// Whether hibernation is configured (`HibernationOptions.Configured`): such an instance is
    /// stopped with `Hibernate=true`, so its memory is kept.
    #[serde(default)]
    pub hibernation: bool,
    /// Its public IPv4 address, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_ipv4: Option<PublicIpv4>,
}

/// An instance's public IPv4 address, and whether it is an Elastic IP (kept across a stop) or
/// auto-assigned (released when the instance stops: it gets a new one when it starts).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicIpv4 {
    pub address: String,
    pub elastic: bool,
}

impl Ec2Instance {
    /// The instance as a finding's resource.
    pub fn resource(&self) -> Resource {
        Resource {
            kind: ResourceKind::Ec2Instance,
            id: self.id.clone(),
            account: self.account.clone(),
            region: self.region.clone(),
            tags: self.tags.clone(),
        }
    }
}

/// An EBS volume as the inventory sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EbsVolume {
    pub id: String,
    /// `gp2`, `gp3`, `io1`, `io2`, `st1`, `sc1`, `standard`.
    pub volume_type: String,
    pub size_gib: i32,
    /// Provisioned IOPS, where the type has them.
    pub iops: Option<i32>,
    /// Provisioned throughput (MiB/s), gp3 only.
    pub throughput: Option<i32>,
    pub availability_zone: String,
    /// `available` means unattached.
    pub state: String,
    /// Instances it is attached to.
    pub attached_to: Vec<String>,
    pub encrypted: bool,
    pub kms_key_id: Option<String>,
    pub snapshot_id: Option<String>,
    pub create_time: Option<DateTime<Utc>>,
    pub account: String,
    pub region: String,
    pub tags: Tags,
}

impl EbsVolume {
    /// The volume as a finding's resource.
    pub fn resource(&self) -> Resource {
        Resource {
            kind: ResourceKind::EbsVolume,
            id: self.id.clone(),
            account: self.account.clone(),
            region: self.region.clone(),
            tags: self.tags.clone(),
        }
    }
}

/// What the system proposes to do about a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ActionKind {
    /// Stop an EC2 instance (rollback: start it).
    Stop,
    /// Snapshot an EBS volume, then delete it (rollback: recreate from the snapshot).
    SnapshotAndDelete,
    /// Put S3 Block Public Access (rollback: restore the prior settings).
    BlockPublicAccess,
    /// Tell people; change nothing.
    Notify,
}

impl ActionKind {
    /// The contract spelling (`stop`, `snapshot-and-delete`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::Stop => "stop",
            ActionKind::SnapshotAndDelete => "snapshot-and-delete",
            ActionKind::BlockPublicAccess => "block-public-access",
            ActionKind::Notify => "notify",
        }
    }
}

/// How urgent a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    /// The contract spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    /// Severity of a cost finding from its monthly dollars (unknown dollars: medium).
    pub fn from_monthly_usd(usd: Option<f64>) -> Severity {
        match usd {
            Some(v) if v >= 1000.0 => Severity::High,
            Some(v) if v < 20.0 => Severity::Low,
            _ => Severity::Medium,
        }
    }
}

/// A check's evidence, as the JSON its check wrote (the contract other tools read): the model
/// does not name the checks. The check that wrote it reads it back typed
/// ([`Evidence::get`]); recording and notifying ask the catalog of checks
/// ([`crate::evidence::Catalog`]) what it says, whatever the check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Evidence(serde_json::Value);

impl Evidence {
    /// A check's evidence.
    pub fn of<T: Serialize>(evidence: &T) -> Evidence {
        // A check's evidence is plain data (string keys, numbers): writing it as JSON does not
        // fail (a test build says so loudly if a check's type ever could); a non-finite number is
        // written as null, as serde_json writes it anywhere.
        let value = serde_json::to_value(evidence);
        debug_assert!(value.is_ok(), "a check's evidence that cannot be written as JSON");
        Evidence(value.unwrap_or_default())
    }

    /// Evidence as read from elsewhere (a record, an older or newer version's check).
    pub fn from_json(value: serde_json::Value) -> Evidence {
        Evidence(value)
    }

    /// The evidence as the check `T` wrote it; `None` when it is not `T`'s (another check's, or
    /// a version's this one cannot read).
    pub fn get<T: serde::de::DeserializeOwned>(&self) -> Option<T> {
        T::deserialize(&self.0).ok()
    }

    /// The evidence as JSON.
    pub fn as_json(&self) -> &serde_json::Value {
        &self.0
    }
}

/// Something worth acting on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// `<rule>:<account>:<region>:<resource id>`: stable across runs.
    pub id: String,
    pub rule: String,
    pub resource: Resource,
    pub evidence: Evidence,
    pub action: ActionKind,
    /// Monthly dollars saved by the action; `None` when the price is unknown.
    pub estimated_monthly_savings_usd: Option<f64>,
    pub severity: Severity,
    pub detected_at: DateTime<Utc>,
}

impl Finding {
    /// The stable id of a finding of `rule` about `resource`.
    pub fn id_for(rule: &str, resource: &Resource) -> String {
        format!("{rule}:{}:{}:{}", resource.account, resource.region, resource.id)
    }

    /// The parts of an id shaped as [`Finding::id_for`] makes them: rule, account, region and
    /// resource id (which may itself hold `:`); `None` for anything else. Whether the rule is one
    /// this version knows is the catalog's to say ([`crate::evidence::Catalog::parse_id`]).
    pub fn parse_id(id: &str) -> Option<FindingIdParts<'_>> {
        let mut parts = id.splitn(4, ':');
        let (rule, account, region, resource_id) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let plausible = !rule.is_empty()
            && rule
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && account.bytes().all(|b| b.is_ascii_digit())
            && region.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !resource_id.trim().is_empty();
        plausible.then_some(FindingIdParts {
            rule,
            account,
            region,
            resource_id,
        })
    }

    /// The `Owner` tag, or `unknown`.
    pub fn owner(&self) -> &str {
        self.resource.tags.get("Owner").map(String::as_str).unwrap_or("unknown")
    }
}

/// A finding id's parts (see [`Finding::parse_id`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FindingIdParts<'a> {
    pub rule: &'a str,
    pub account: &'a str,
    pub region: &'a str,
    pub resource_id: &'a str,
}

/// What happened to a finding (or a resource passed over) in this run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OutcomeKind {
    DryRun,
    PendingApproval,
    Executed,
    Skipped,
    Failed,
}

impl OutcomeKind {
    /// The spelling in reports and records (as serialised).
    pub fn as_str(self) -> &'static str {
        match self {
            OutcomeKind::DryRun => "dry-run",
            OutcomeKind::PendingApproval => "pending-approval",
            OutcomeKind::Executed => "executed",
            OutcomeKind::Skipped => "skipped",
            OutcomeKind::Failed => "failed",
        }
    }
}

/// One line of a run's outcomes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    pub finding_id: String,
    pub outcome: OutcomeKind,
    pub detail: String,
}

impl Outcome {
    /// Builds an outcome.
    pub fn new(finding_id: impl Into<String>, outcome: OutcomeKind, detail: impl Into<String>) -> Self {
        Outcome {
            finding_id: finding_id.into(),
            outcome,
            detail: detail.into(),
        }
    }
}

/// A detector Lambda's response (DESIGN.md contract).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    pub rule: String,
    pub mode: Mode,
    /// Resources looked at.
    pub scanned: usize,
    pub findings: Vec<Finding>,
    pub outcomes: Vec<Outcome>,
    /// Sum of the findings' known monthly savings.
    pub estimated_monthly_savings_usd: f64,
    /// How many outcomes are `failed`: resources that could not be assessed (AWS's error in their
    /// detail) and actions that failed.
    #[serde(default)]
    pub failed: usize,
    /// How many findings the run made (`findings` may list fewer when a fan-out item's answer
    /// had to be cut to fit Step Functions' 256 KiB).
    #[serde(default)]
    pub findings_total: usize,
    /// How many outcomes are `skipped` (a guard left the resource alone): whole, as `failed`,
    /// when the lists are cut.
    #[serde(default)]
    pub skipped: usize,
    /// tag-compliance's sweep: resources judged and how many are compliant (null for the other
    /// rules), so the organisation digest can add the accounts' figures up.
    #[serde(default)]
    pub compliance: Option<Compliance>,
    /// Things the operator should know about this run (state off, policy source, ...).
    #[serde(default)]
    pub notes: Vec<String>,
    /// How many findings the blast radius held back from acting (auto mode): asked about instead.
    #[serde(default)]
    pub held: usize,
    /// What this run itself cost on the AWS bill, estimated (see [`crate::cost`]); null outside a
    /// recorded run. Always written, so the fan-out's `ResultSelector` finds the path.
    #[serde(default)]
    pub own_cost_usd: Option<f64>,
}

/// Compliance of one resource type (or all), as counts and a percentage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Compliance {
    pub compliant: usize,
    pub total: usize,
}

impl Compliance {
    /// Percentage compliant (100 when there is nothing to evaluate).
    pub fn percent(&self) -> f64 {
        if self.total == 0 {
            100.0
        } else {
            (self.compliant as f64 * 10_000.0 / self.total as f64).round() / 100.0
        }
    }
}

impl RunReport {
    /// Counts the `failed` outcomes.
    pub fn count_failed(outcomes: &[Outcome]) -> usize {
        outcomes.iter().filter(|o| o.outcome == OutcomeKind::Failed).count()
    }

    /// Counts the `skipped` outcomes.
    pub fn count_skipped(outcomes: &[Outcome]) -> usize {
        outcomes.iter().filter(|o| o.outcome == OutcomeKind::Skipped).count()
    }

    /// Whether the run could judge nothing: something failed, nothing was flagged, and every
    /// resource it looked at either failed or was left alone by a guard. That is a service
    /// down, not a resource in trouble. Judged on the whole counts, so a report whose lists
    /// were cut ([`RunReport::fit`]) is judged as it was.
    pub fn assessed_nothing(&self) -> bool {
        let failed = self.failed.max(Self::count_failed(&self.outcomes));
        let skipped = self.skipped.max(Self::count_skipped(&self.outcomes));
        let findings = self.findings_total.max(self.findings.len());
        failed > 0 && findings == 0 && failed + skipped >= self.scanned
    }

    /// Cuts the lists (outcomes first, then findings) until the report serialises to at most
    /// `max_bytes`, saying so in a note; the counts and dollars stay whole. A fan-out item's answer
    /// goes through Step Functions, which refuses a state's data above 256 KiB; the findings
    /// themselves are in the table and on the topic.
    pub fn fit(&mut self, max_bytes: usize) {
        let size = |r: &RunReport| serde_json::to_vec(r).map(|v| v.len()).unwrap_or(usize::MAX);
        if size(self) <= max_bytes {
            return;
        }
        let (findings, outcomes) = (self.findings.len(), self.outcomes.len());
        while size(self) > max_bytes && !self.outcomes.is_empty() {
            let keep = self.outcomes.len() / 2;
            self.outcomes.truncate(keep);
        }
        while size(self) > max_bytes && self.findings.len() > 1 {
            let keep = self.findings.len() / 2;
            self.findings.truncate(keep);
        }
        self.notes.push(format!(
            "answer cut to fit Step Functions' limit: {} of {findings} findings and {} of {outcomes} outcomes listed (all are in the state table and on the topic)",
            self.findings.len(),
            self.outcomes.len()
        ));
    }

    /// Sums the findings' known savings, rounded to cents.
    pub fn total_savings(findings: &[Finding]) -> f64 {
        // An empty float sum is -0.0; adding 0.0 makes it 0.
        let total: f64 = findings
            .iter()
            .filter_map(|f| f.estimated_monthly_savings_usd)
            .sum::<f64>()
            + 0.0;
        round_cents(total)
    }
}

/// Dollars to the cent with thousands separators; a missing or non-finite amount is `unknown`.
pub fn usd(v: Option<f64>) -> String {
    match v {
        Some(v) if v.is_finite() => format!("${}", thousands(v)),
        _ => "unknown".into(),
    }
}

fn thousands(v: f64) -> String {
    // Saturates beyond ±9.2e16 dollars; `unsigned_abs` cannot overflow at i64::MIN.
    let cents = (v * 100.0).round() as i64;
    let (whole, frac) = (cents.unsigned_abs() / 100, cents.unsigned_abs() % 100);
    let digits = whole.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    format!("{}{out}.{frac:02}", if cents < 0 { "-" } else { "" })
}

/// Rounds dollars to cents.
pub fn round_cents(usd: f64) -> f64 {
    (usd * 100.0).round() / 100.0
}

/// Whether `tags` exempt a resource: the exempt tag's value is `true`, trimmed, in any case.
pub fn is_exempt(tags: &Tags, exempt_tag: &str) -> bool {
    tags.get(exempt_tag)
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dollars_read_like_dollars() {
        assert_eq!(thousands(1234567.891), "1,234,567.89");
        assert_eq!(thousands(0.0), "0.00");
        assert_eq!(thousands(60.74), "60.74");
        assert_eq!(usd(None), "unknown");
    }

    fn tags(pairs: &[(&str, &str)]) -> Tags {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn a_run_that_assessed_nothing_still_says_so_after_its_lists_are_cut() {
        // 150 failed and 150 left alone by a guard, nothing found: a service down.
        let mut outcomes: Vec<Outcome> = (0..150)
            .map(|n| {
                Outcome::new(
                    format!("idle-ec2:123456789012:us-east-1:i-{n:017}"),
                    OutcomeKind::Failed,
                    "GetMetricData failed: throttled",
                )
            })
            .collect();
        outcomes.extend((150..300).map(|n| {
            Outcome::new(
                format!("idle-ec2:123456789012:us-east-1:i-{n:017}"),
                OutcomeKind::Skipped,
                "launched 2 days ago",
            )
        }));
        let mut r = RunReport {
            rule: "idle-ec2".into(),
            mode: crate::policy::Mode::DryRun,
            scanned: 300,
            findings: vec![],
            failed: RunReport::count_failed(&outcomes),
            skipped: RunReport::count_skipped(&outcomes),
            outcomes,
            estimated_monthly_savings_usd: 0.0,
            findings_total: 0,
            compliance: None,
            notes: vec![],
            held: 0,
            own_cost_usd: None,
        };
        assert!(r.assessed_nothing());
        r.fit(4 * 1024);
        assert!(r.outcomes.len() < 100, "cut to {}", r.outcomes.len());
        assert!(r.assessed_nothing(), "judged on the whole counts, not the cut list");
    }

    #[test]
    fn exemption_accepts_true_in_any_case_with_spaces() {
        for v in ["true", "TRUE", " True ", "tRuE\n"] {
            assert!(is_exempt(&tags(&[("finops:exempt", v)]), "finops:exempt"), "{v:?}");
        }
    }

    #[test]
    fn exemption_rejects_other_values_and_other_keys() {
        for v in ["false", "yes", "1", "", "truee"] {
            assert!(!is_exempt(&tags(&[("finops:exempt", v)]), "finops:exempt"), "{v:?}");
        }
        // Keys are case-sensitive, as AWS tag keys are.
        assert!(!is_exempt(&tags(&[("FinOps:Exempt", "true")]), "finops:exempt"));
    }

    #[test]
    fn finding_json_uses_the_contract_field_names() {
        let resource = Resource {
            kind: ResourceKind::Ec2Instance,
            id: "i-0abc".into(),
            account: "123456789012".into(),
            region: "us-east-1".into(),
            tags: tags(&[("Owner", "ana")]),
        };
        let finding = Finding {
            id: Finding::id_for("idle-ec2", &resource),
            rule: "idle-ec2".into(),
            resource,
            evidence: Evidence::from_json(serde_json::json!({"k": 1})),
            action: ActionKind::Stop,
            estimated_monthly_savings_usd: Some(60.74),
            severity: Severity::Medium,
            detected_at: "2026-11-26T06:00:00Z".parse().unwrap(),
        };
        let json = serde_json::to_value(&finding).unwrap();
        assert_eq!(json["id"], "idle-ec2:123456789012:us-east-1:i-0abc");
        assert_eq!(json["resource"]["kind"], "ec2-instance");
        assert_eq!(json["action"], "stop");
        assert_eq!(json["severity"], "medium");
        assert_eq!(json["detected_at"], "2026-11-26T06:00:00Z");
        let back: Finding = serde_json::from_value(json).unwrap();
        assert_eq!(back, finding);
    }
}

//! Idle EC2: running instances whose every counted day was quiet on CPU and network.

use std::collections::HashMap;

use chrono::{DateTime, Days, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

pub use finops_core::inventory::{DayUsage, UsageByDay};
use finops_core::model::{is_exempt, round_cents, ActionKind, Ec2Instance, Evidence, Finding, Severity};
use finops_core::policy::Policy;
use finops_core::pricing::PriceBook;

/// One idle-ec2 day: what CloudWatch said for that UTC day.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdleDay {
    pub date: NaiveDate,
    /// Daily average of CPUUtilization (%); `None` when CloudWatch had no data.
    pub cpu_average_percent: Option<f64>,
    /// NetworkIn + NetworkOut for the day (bytes); `None` when either had no data.
    pub network_bytes: Option<f64>,
    /// Whether this day counted as idle.
    pub idle: bool,
}

/// The numbers that convinced the idle-ec2 detector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdleEc2Evidence {
    pub instance_type: String,
    pub lookback_days: u32,
    pub idle_days: u32,
    pub idle_days_required: u32,
    pub cpu_daily_average_below: f64,
    pub network_bytes_per_day_below: f64,
    pub max_daily_cpu_average_percent: f64,
    pub max_daily_network_bytes: f64,
    /// On-Demand hourly price used for the savings, when the type is in the price table.
    pub hourly_price_usd: Option<f64>,
    /// Why there is no dollar figure, when there is none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price_note: Option<String>,
    /// An auto-assigned public IPv4 address the instance holds: a stop releases it, and the
    /// instance starts with another one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_ipv4_changes: Option<String>,
    /// Where the price came from and for which region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price_source: Option<String>,
    pub days: Vec<IdleDay>,
}

/// The rule id.
pub const RULE: &str = "idle-ec2";

/// The whole UTC days a scan at `now` looks at: `lookback_days` days ending at today's 00:00 UTC
/// (today is incomplete, so it never counts).
pub fn lookback_days(now: DateTime<Utc>, lookback: u32) -> Vec<NaiveDate> {
    let today = now.date_naive();
    (1..=u64::from(lookback))
        .rev()
        .filter_map(|back| today.checked_sub_days(Days::new(back)))
        .collect()
}

/// The most days a re-evaluation before acting reads (an approval older than this is re-read
/// over its last month only).
pub const REEVALUATION_MAX_DAYS: u64 = 31;

/// The UTC days a re-evaluation before acting reads: from the day of detection (incomplete then,
/// so never counted) up to today, the current partial day included.
pub fn days_since_detection(detected_at: DateTime<Utc>, now: DateTime<Utc>) -> Vec<NaiveDate> {
    let today = now.date_naive();
    let first = detected_at.date_naive().max(
        today
            .checked_sub_days(Days::new(REEVALUATION_MAX_DAYS - 1))
            .unwrap_or(today),
    );
    first.iter_days().take_while(|d| *d <= today).collect()
}

/// The first day among `days` on which the instance was busy (daily CPU average or network at or
/// above the policy's thresholds, partial days included), said as a reason; `None` if it stayed
/// idle as far as the data shows.
pub fn busy_since(series: &UsageByDay, days: &[NaiveDate], today: NaiveDate, policy: &Policy) -> Option<String> {
    let p = &policy.idle_ec2;
    days.iter().find_map(|day| {
        let usage = series.get(day)?;
        let partial = if *day == today { " (today so far)" } else { "" };
        if let Some(cpu) = usage.cpu_average.filter(|c| *c >= p.cpu_daily_average_below) {
            return Some(format!(
                "busy since detection: CPU averaged {cpu:.1}% on {day}{partial} (idle is below {}%)",
                p.cpu_daily_average_below
            ));
        }
        let network = usage.network_in.unwrap_or(0.0) + usage.network_out.unwrap_or(0.0);
        (network >= p.network_bytes_per_day_below).then(|| {
            format!(
                "busy since detection: {network:.0} network bytes on {day}{partial} (idle is below {} a day)",
                p.network_bytes_per_day_below
            )
        })
    })
}

/// Why an instance is passed over before its metrics are even fetched; `None` if it is a candidate.
/// Stopping these would be undone by AWS, lose data, or fight an orchestrator.
/// Whether the one guard `instance` fails is that its instance storage is unknown (a failed
/// DescribeInstanceTypes): a read that failed, not a judgement.
pub fn storage_unknown(instance: &Ec2Instance, policy: &Policy) -> bool {
    instance.instance_store.is_none()
        && skip_reason(
            &Ec2Instance {
                instance_store: Some(false),
                ..instance.clone()
            },
            policy,
        )
        .is_none()
}

pub fn skip_reason(instance: &Ec2Instance, policy: &Policy) -> Option<String> {
    if instance.state != "running" {
        return Some(format!("instance is {}, not running", instance.state));
    }
    if is_exempt(&instance.tags, &policy.exempt_tag) {
        return Some(format!("exempt: tag {}=true", policy.exempt_tag));
    }
    if let Some(asg) = instance.tags.get("aws:autoscaling:groupName") {
        return Some(format!(
            "in Auto Scaling group {asg}: the group would replace a stopped instance"
        ));
    }
    // A fleet in maintain mode replaces a stopped member as an Auto Scaling group does.
    if let Some(fleet) = instance.tags.get("aws:ec2:fleet-id") {
        return Some(format!(
            "member of EC2 Fleet {fleet}: a fleet that maintains its capacity would replace a stopped instance"
        ));
    }
    if let Some(fleet) = instance.tags.get("aws:ec2spot:fleet-request-id") {
        return Some(format!(
            "member of Spot Fleet {fleet}: a fleet that maintains its capacity would replace a stopped instance"
        ));
    }
    if let Some(lifecycle) = instance.lifecycle.as_deref() {
        if lifecycle != "scheduled" {
            return Some(format!(
                "{lifecycle} instance: it cannot be stopped and started like On-Demand"
            ));
        }
    }
    if instance.root_device_type == "instance-store" {
        return Some("instance-store-backed: it cannot be stopped (only terminated)".into());
    }
    match instance.instance_store {
        Some(false) => {}
        Some(true) => {
            return Some(format!(
                "{} has instance-store volumes: their data is lost when the instance stops",
                instance.instance_type
            ))
        }
        None => {
            return Some(format!(
                "could not learn whether {} has instance-store volumes (DescribeInstanceTypes): not stopped on a guess",
                instance.instance_type
            ))
        }
    }
    if let Some(cluster) = instance
        .tags
        .get("eks:cluster-name")
        .or_else(|| instance.tags.get("eks:nodegroup-name"))
    {
        return Some(format!("EKS-managed node ({cluster}): the cluster manages its nodes"));
    }
    if let Some(cluster) = instance
        .tags
        .keys()
        .find_map(|k| k.strip_prefix("kubernetes.io/cluster/"))
    {
        return Some(format!(
            "Kubernetes node of cluster {cluster}: the cluster manages its nodes"
        ));
    }
    if let Some(job_flow) = instance.tags.get("aws:elasticmapreduce:job-flow-id") {
        return Some(format!("EMR-managed node (cluster {job_flow}): EMR manages its nodes"));
    }
    None
}

/// Flags each candidate whose idle days within the lookback reach `idle_days_required`.
/// A day with no CPU data, or no network data, is not an idle day.
pub fn detect(
    candidates: &[Ec2Instance],
    usage: &HashMap<String, UsageByDay>,
    policy: &Policy,
    now: DateTime<Utc>,
) -> Vec<Finding> {
    detect_priced(candidates, usage, policy, &PriceBook::embedded(), now)
}

/// The instances whose daily CPU alone leaves them possibly idle: at least `idle_days_required`
/// days of the lookback with a CPU average below the limit. A day is idle only when its CPU and
/// its network are both low, so no other instance can be found idle, whatever its network: only
/// these need their network asked for. Sorted, for a stable query order.
pub fn cpu_leaves_possibly_idle(cpu: &HashMap<String, UsageByDay>, days: &[NaiveDate], policy: &Policy) -> Vec<String> {
    let p = &policy.idle_ec2;
    let mut out: Vec<String> = cpu
        .iter()
        .filter(|(_, series)| {
            let low = days
                .iter()
                .filter(
                    |d| matches!(series.get(d).and_then(|u| u.cpu_average), Some(c) if c < p.cpu_daily_average_below),
                )
                .count();
            low as u32 >= p.idle_days_required
        })
        .map(|(id, _)| id.clone())
        .collect();
    out.sort();
    out
}

/// Adds the network sums of a second query to the CPU of the first, day by day.
pub fn add_network(usage: &mut HashMap<String, UsageByDay>, network: HashMap<String, UsageByDay>) {
    for (id, days) in network {
        let series = usage.entry(id).or_default();
        for (date, day) in days {
            let into = series.entry(date).or_default();
            into.network_in = day.network_in;
            into.network_out = day.network_out;
        }
    }
}

/// [`detect`] with the prices of the scan's region.
pub fn detect_priced(
    candidates: &[Ec2Instance],
    usage: &HashMap<String, UsageByDay>,
    policy: &Policy,
    prices: &PriceBook,
    now: DateTime<Utc>,
) -> Vec<Finding> {
    let days = lookback_days(now, policy.idle_ec2.lookback_days);
    let empty = UsageByDay::new();
    candidates
        .iter()
        .filter(|i| skip_reason(i, policy).is_none())
        .filter_map(|instance| {
            let series = usage.get(&instance.id).unwrap_or(&empty);
            assess(instance, series, &days, policy, prices, now)
        })
        .collect()
}

fn assess(
    instance: &Ec2Instance,
    series: &UsageByDay,
    days: &[NaiveDate],
    policy: &Policy,
    prices: &PriceBook,
    now: DateTime<Utc>,
) -> Option<Finding> {
    let p = &policy.idle_ec2;
    let idle_days: Vec<IdleDay> = days
        .iter()
        .map(|date| {
            let usage = series.get(date).copied().unwrap_or_default();
            let network_bytes = match (usage.network_in, usage.network_out) {
                (Some(i), Some(o)) => Some(i + o),
                _ => None,
            };
            let idle = matches!(usage.cpu_average, Some(c) if c < p.cpu_daily_average_below)
                && matches!(network_bytes, Some(n) if n < p.network_bytes_per_day_below);
            IdleDay {
                date: *date,
                cpu_average_percent: usage.cpu_average,
                network_bytes,
                idle,
            }
        })
        .collect();
    let idle_count = idle_days.iter().filter(|d| d.idle).count() as u32;
    if idle_count < p.idle_days_required {
        return None;
    }

    let price = prices.instance_type(&instance.instance_type);
    let monthly = price.map(|t| round_cents(t.usd_per_month()));
    let max_of = |f: fn(&IdleDay) -> Option<f64>| idle_days.iter().filter_map(f).fold(0.0_f64, f64::max);
    let evidence = IdleEc2Evidence {
        instance_type: instance.instance_type.clone(),
        lookback_days: p.lookback_days,
        idle_days: idle_count,
        idle_days_required: p.idle_days_required,
        cpu_daily_average_below: p.cpu_daily_average_below,
        network_bytes_per_day_below: p.network_bytes_per_day_below,
        max_daily_cpu_average_percent: max_of(|d| d.cpu_average_percent),
        max_daily_network_bytes: max_of(|d| d.network_bytes),
        hourly_price_usd: price.map(|t| t.usd_per_hour),
        price_note: match price {
            Some(_) => None,
            None => Some(format!(
                "{} has no price in {}: no dollar figure",
                instance.instance_type, prices.source
            )),
        },
        price_source: Some(prices.source.clone()),
        public_ipv4_changes: instance
            .public_ipv4
            .as_ref()
            .filter(|ip| !ip.elastic)
            .map(|ip| ip.address.clone()),
        days: idle_days,
    };
    let resource = instance.resource();
    Some(Finding {
        id: Finding::id_for(RULE, &resource),
        rule: RULE.to_string(),
        resource,
        evidence: Evidence::of(&evidence),
        action: ActionKind::Stop,
        estimated_monthly_savings_usd: monthly,
        severity: Severity::from_monthly_usd(monthly),
        detected_at: now,
    })
}

impl finops_core::evidence::CheckEvidence for IdleEc2Evidence {
    const RULE: &'static str = RULE;
    const ACTS: &'static [ActionKind] = &[ActionKind::Stop];
}

impl finops_core::evidence::Explain for IdleEc2Evidence {
    fn what(&self) -> String {
        self.instance_type.clone()
    }

    fn summary(&self) -> String {
        format!(
            "{}/{} days idle; CPU ≤ {:.1}%/day, network ≤ {:.2} MB/day",
            self.idle_days,
            self.lookback_days,
            self.max_daily_cpu_average_percent,
            self.max_daily_network_bytes / 1e6
        )
    }

    fn why(&self, _finding: &Finding) -> String {
        const MB: f64 = 1_000_000.0;
        let e = self;
        format!(
            "{}/{} days idle (the policy asks for {}): CPU at most {:.1} %/day against a limit of {:.1} %, network at most {:.2} MB/day against {:.2} MB.{}",
            e.idle_days,
            e.lookback_days,
            e.idle_days_required,
            e.max_daily_cpu_average_percent,
            e.cpu_daily_average_below,
            e.max_daily_network_bytes / MB,
            e.network_bytes_per_day_below / MB,
            match &e.public_ipv4_changes {
                Some(ip) => format!(
                    " Its public IPv4 address {ip} is auto-assigned: a stop releases it, and it starts with a new one."
                ),
                None => String::new(),
            },
        )
    }

    fn chart_svg(&self) -> Option<String> {
        Some(days_svg(self))
    }
}

/// The days an idle-ec2 finding judged, drawn: CPU (%/day) and network (MB/day) per day as bars
/// beside their limits (dashed), idle days green, busy ones red, days without data grey. An
/// inline SVG of numbers only (no text from outside), for the confirmation page.
fn days_svg(e: &IdleEc2Evidence) -> String {
    const W: f64 = 560.0;
    const ROW: f64 = 70.0;
    let n = e.days.len().max(1) as f64;
    let bar = (W - 40.0) / n;
    let mut out = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {h}" width="100%" role="img" aria-label="CPU and network per day against the limits">"#,
        h = 2.0 * ROW + 40.0
    );
    type Value = Box<dyn Fn(&IdleDay) -> Option<f64>>;
    let series: [(&str, Value, f64); 2] = [
        (
            "CPU %/day",
            Box::new(|d: &IdleDay| d.cpu_average_percent),
            e.cpu_daily_average_below,
        ),
        (
            "network MB/day",
            Box::new(|d: &IdleDay| d.network_bytes.map(|b| b / 1_000_000.0)),
            e.network_bytes_per_day_below / 1_000_000.0,
        ),
    ];
    for (row, (label, value, limit)) in series.iter().enumerate() {
        let top = 14.0 + row as f64 * (ROW + 14.0);
        let max = e
            .days
            .iter()
            .filter_map(value)
            .fold(*limit * 2.0, f64::max)
            .max(f64::MIN_POSITIVE);
        out.push_str(&format!(
            r##"<text x="0" y="{:.0}" font-size="11" fill="#555">{label} (limit {limit:.2})</text>"##,
            top - 3.0
        ));
        for (i, d) in e.days.iter().enumerate() {
            let x = 40.0 + i as f64 * bar;
            match value(d) {
                Some(v) => {
                    let h = (v / max * ROW).clamp(1.0, ROW);
                    let fill = if d.idle { "#1f7a3d" } else { "#b3261e" };
                    out.push_str(&format!(
                        r#"<rect x="{x:.1}" y="{:.1}" width="{:.1}" height="{h:.1}" fill="{fill}"><title>{}: {v:.2}</title></rect>"#,
                        top + ROW - h,
                        (bar - 2.0).max(1.0),
                        d.date
                    ));
                }
                None => out.push_str(&format!(
                    r##"<rect x="{x:.1}" y="{:.1}" width="{:.1}" height="{ROW}" fill="#ddd"><title>{}: no data</title></rect>"##,
                    top,
                    (bar - 2.0).max(1.0),
                    d.date
                )),
            }
        }
        let y = top + ROW - (limit / max * ROW);
        out.push_str(&format!(
            r##"<line x1="40" x2="{W}" y1="{y:.1}" y2="{y:.1}" stroke="#333" stroke-dasharray="4 3"/>"##
        ));
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use finops_core::model::Tags;

    fn now() -> DateTime<Utc> {
        "2026-11-26T06:00:00Z".parse().unwrap()
    }

    fn instance(id: &str, tags: &[(&str, &str)]) -> Ec2Instance {
        Ec2Instance {
            id: id.into(),
            instance_type: "t3.large".into(),
            state: "running".into(),
            account: "123456789012".into(),
            region: "us-east-1".into(),
            lifecycle: None,
            root_device_type: "ebs".into(),
            instance_store: Some(false),
            launch_time: None,
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Tags>(),
            hibernation: false,
            public_ipv4: None,
        }
    }

    /// 14 days of the same usage, ending yesterday.
    fn steady(cpu: f64, net_in: f64, net_out: f64) -> UsageByDay {
        lookback_days(now(), 14)
            .into_iter()
            .map(|d| {
                (
                    d,
                    DayUsage {
                        cpu_average: Some(cpu),
                        network_in: Some(net_in),
                        network_out: Some(net_out),
                    },
                )
            })
            .collect()
    }

    fn run(instances: &[Ec2Instance], series: Vec<(&str, UsageByDay)>, policy: &Policy) -> Vec<String> {
        let usage = series.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        detect(instances, &usage, policy, now())
            .into_iter()
            .map(|f| f.resource.id)
            .collect()
    }

    #[test]
    fn a_busy_partial_day_after_detection_is_found_and_a_quiet_one_is_not() {
        let policy = Policy::default();
        let detected: DateTime<Utc> = "2026-11-28T06:00:00Z".parse().unwrap();
        let now: DateTime<Utc> = "2026-11-30T09:00:00Z".parse().unwrap();
        let days = days_since_detection(detected, now);
        assert_eq!(days.first().map(|d| d.to_string()).as_deref(), Some("2026-11-28"));
        assert_eq!(days.last(), Some(&now.date_naive()));
        assert_eq!(days.len(), 3);
        let quiet = DayUsage {
            cpu_average: Some(1.0),
            network_in: Some(10.0),
            network_out: Some(10.0),
        };
        let mut series: UsageByDay = days.iter().map(|d| (*d, quiet)).collect();
        assert_eq!(busy_since(&series, &days, now.date_naive(), &policy), None);
        series.insert(
            now.date_naive(),
            DayUsage {
                cpu_average: Some(40.0),
                ..quiet
            },
        );
        let why = busy_since(&series, &days, now.date_naive(), &policy).unwrap();
        assert!(
            why.contains("2026-11-30 (today so far)") && why.contains("40.0%"),
            "{why}"
        );
        // An old approval reads a month at most.
        let old: DateTime<Utc> = "2025-01-01T00:00:00Z".parse().unwrap();
        assert_eq!(days_since_detection(old, now).len() as u64, REEVALUATION_MAX_DAYS);
    }

    #[test]
    fn an_instance_type_with_instance_storage_or_unknown_storage_is_never_a_candidate() {
        let p = Policy::default();
        let mut m5d = instance("i-m5d", &[]);
        m5d.instance_type = "m5d.large".into();
        m5d.instance_store = Some(true);
        let reason = skip_reason(&m5d, &p).unwrap();
        assert!(reason.contains("m5d.large has instance-store volumes"), "{reason}");
        m5d.instance_store = None;
        assert!(skip_reason(&m5d, &p).unwrap().contains("could not learn"));
        m5d.instance_store = Some(false);
        assert_eq!(skip_reason(&m5d, &p), None);
    }

    #[test]
    fn the_lookback_is_the_fourteen_whole_days_before_today() {
        let days = lookback_days(now(), 14);
        assert_eq!(days.len(), 14);
        assert_eq!(days[0], NaiveDate::from_ymd_opt(2026, 11, 12).unwrap());
        assert_eq!(days[13], NaiveDate::from_ymd_opt(2026, 11, 25).unwrap());
    }

    #[test]
    fn an_instance_quiet_every_day_is_flagged_with_its_evidence_and_dollars() {
        let findings = detect(
            &[instance("i-idle", &[("Owner", "ana")])],
            &[("i-idle".to_string(), steady(1.0, 1000.0, 2000.0))]
                .into_iter()
                .collect(),
            &Policy::default(),
            now(),
        );
        assert_eq!(findings.len(), 1);
        let f = &findings[0];
        assert_eq!(f.id, "idle-ec2:123456789012:us-east-1:i-idle");
        assert_eq!(f.action, ActionKind::Stop);
        // t3.large: $0.0832/h × 730 h.
        assert_eq!(f.estimated_monthly_savings_usd, Some(60.74));
        let Some(e) = f.evidence.get::<IdleEc2Evidence>() else {
            panic!("wrong evidence")
        };
        assert_eq!(e.idle_days, 14);
        assert_eq!(e.days.len(), 14);
        assert_eq!(e.days[0].network_bytes, Some(3000.0));
        assert_eq!(e.max_daily_cpu_average_percent, 1.0);
    }

    #[test]
    fn cpu_just_under_the_threshold_is_idle_and_at_the_threshold_is_not() {
        let p = Policy::default();
        let ids = [instance("i-under", &[]), instance("i-at", &[])];
        let found = run(
            &ids,
            vec![("i-under", steady(4.999, 0.0, 0.0)), ("i-at", steady(5.0, 0.0, 0.0))],
            &p,
        );
        assert_eq!(found, vec!["i-under"]);
    }

    #[test]
    fn network_just_under_the_threshold_is_idle_and_at_it_is_not() {
        let p = Policy::default();
        let ids = [instance("i-under", &[]), instance("i-at", &[])];
        let found = run(
            &ids,
            vec![
                ("i-under", steady(1.0, 2_499_999.0, 2_500_000.0)),
                ("i-at", steady(1.0, 2_500_000.0, 2_500_000.0)),
            ],
            &p,
        );
        assert_eq!(found, vec!["i-under"]);
    }

    #[test]
    fn one_busy_day_is_enough_to_keep_an_instance() {
        let mut series = steady(1.0, 10.0, 10.0);
        let spike_day = lookback_days(now(), 14)[6];
        series.insert(
            spike_day,
            DayUsage {
                cpu_average: Some(60.0),
                network_in: Some(10.0),
                network_out: Some(10.0),
            },
        );
        assert!(run(
            &[instance("i-spike", &[])],
            vec![("i-spike", series)],
            &Policy::default()
        )
        .is_empty());
    }

    #[test]
    fn one_day_without_cpu_data_is_not_an_idle_day() {
        let mut series = steady(1.0, 10.0, 10.0);
        let missing = lookback_days(now(), 14)[3];
        series.insert(
            missing,
            DayUsage {
                cpu_average: None,
                network_in: Some(10.0),
                network_out: Some(10.0),
            },
        );
        assert!(run(
            &[instance("i-gap", &[])],
            vec![("i-gap", series.clone())],
            &Policy::default()
        )
        .is_empty());

        // With 13 idle days required, the one missing day is tolerated.
        let mut p = Policy::default();
        p.idle_ec2.idle_days_required = 13;
        assert_eq!(
            run(&[instance("i-gap", &[])], vec![("i-gap", series)], &p),
            vec!["i-gap"]
        );
    }

    #[test]
    fn an_instance_with_no_metrics_at_all_is_not_flagged() {
        assert!(run(&[instance("i-new", &[])], vec![], &Policy::default()).is_empty());
    }

    #[test]
    fn low_cpu_with_high_network_is_not_idle() {
        let found = run(
            &[instance("i-proxy", &[])],
            vec![("i-proxy", steady(0.5, 40_000_000.0, 40_000_000.0))],
            &Policy::default(),
        );
        assert!(found.is_empty());
    }

    #[test]
    fn stopped_instances_are_never_flagged() {
        let mut stopped = instance("i-stopped", &[]);
        stopped.state = "stopped".into();
        let found = run(
            &[stopped],
            vec![("i-stopped", steady(0.0, 0.0, 0.0))],
            &Policy::default(),
        );
        assert!(found.is_empty());
    }

    #[test]
    fn exempt_instances_are_not_flagged_whatever_the_spelling_of_true() {
        let p = Policy::default();
        for v in ["true", "True", " TRUE "] {
            let i = instance("i-x", &[("finops:exempt", v)]);
            assert!(run(&[i], vec![("i-x", steady(0.0, 0.0, 0.0))], &p).is_empty(), "{v:?}");
        }
        let not_exempt = instance("i-x", &[("finops:exempt", "no")]);
        assert_eq!(
            run(&[not_exempt], vec![("i-x", steady(0.0, 0.0, 0.0))], &p),
            vec!["i-x"]
        );
    }

    #[test]
    fn a_custom_exempt_tag_is_honoured() {
        let p = Policy {
            exempt_tag: "keep-me".into(),
            ..Policy::default()
        };
        let i = instance("i-x", &[("keep-me", "true")]);
        assert_eq!(skip_reason(&i, &p).unwrap(), "exempt: tag keep-me=true");
    }

    #[test]
    fn managed_and_unstoppable_instances_are_skipped_with_a_reason() {
        let p = Policy::default();
        let asg = instance("i-asg", &[("aws:autoscaling:groupName", "web")]);
        assert!(skip_reason(&asg, &p).unwrap().contains("Auto Scaling group web"));
        let mut spot = instance("i-spot", &[]);
        spot.lifecycle = Some("spot".into());
        assert!(skip_reason(&spot, &p).unwrap().contains("spot"));
        let mut store = instance("i-store", &[]);
        store.root_device_type = "instance-store".into();
        assert!(skip_reason(&store, &p).unwrap().contains("instance-store"));
        let eks = instance("i-eks", &[("eks:cluster-name", "prod")]);
        assert!(skip_reason(&eks, &p).unwrap().contains("EKS"));
        let k8s = instance("i-k8s", &[("kubernetes.io/cluster/blue", "owned")]);
        assert!(skip_reason(&k8s, &p).unwrap().contains("blue"));
        let emr = instance("i-emr", &[("aws:elasticmapreduce:job-flow-id", "j-1")]);
        assert!(skip_reason(&emr, &p).unwrap().contains("EMR"));
        assert_eq!(skip_reason(&instance("i-plain", &[]), &p), None);
    }

    #[test]
    fn an_unknown_instance_type_is_flagged_without_dollars_and_says_why() {
        let mut i = instance("i-exotic", &[]);
        i.instance_type = "x9z.mega".into();
        let usage = [("i-exotic".to_string(), steady(0.0, 0.0, 0.0))].into_iter().collect();
        let findings = detect(&[i], &usage, &Policy::default(), now());
        assert_eq!(findings[0].estimated_monthly_savings_usd, None);
        let Some(e) = findings[0].evidence.get::<IdleEc2Evidence>() else {
            panic!()
        };
        assert!(e.price_note.as_deref().unwrap().contains("x9z.mega"));
    }

    #[test]
    fn thresholds_and_lookback_come_from_the_policy() {
        let mut p = Policy::default();
        p.idle_ec2.lookback_days = 7;
        p.idle_ec2.idle_days_required = 7;
        p.idle_ec2.cpu_daily_average_below = 20.0;
        // Busy a week ago, quiet (15% CPU) for the last 7 days.
        let mut series = steady(90.0, 0.0, 0.0);
        for d in lookback_days(now(), 7) {
            series.insert(
                d,
                DayUsage {
                    cpu_average: Some(15.0),
                    network_in: Some(0.0),
                    network_out: Some(0.0),
                },
            );
        }
        assert_eq!(run(&[instance("i-7", &[])], vec![("i-7", series)], &p), vec!["i-7"]);
    }
}

//! Rightsizing, the deterministic part: from an instance's hourly CPU maxima (and memory, when the
//! CloudWatch agent publishes it), the capacity it needs with headroom, and the cheapest catalog
//! types of the same architecture that provide it. The rules choose the cheapest and explain it;
//! a model may explain instead (and pick among the same candidates), never decide the dollars.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

pub use finops_core::inventory::InstancePeaks;
use finops_core::model::{round_cents, ActionKind, Ec2Instance, Evidence, Finding, Severity};
use finops_core::policy::{IdleEc2Policy, RightsizingPolicy};
use finops_core::pricing::{self, InstanceType, PriceBook, HOURS_PER_MONTH};

pub const RULE: &str = "rightsizing";

/// How risky a move is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Risk {
    Low,
    Medium,
    High,
}

impl Risk {
    pub fn as_str(self) -> &'static str {
        match self {
            Risk::Low => "low",
            Risk::Medium => "medium",
            Risk::High => "high",
        }
    }
}

/// A type the instance could move to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    pub instance_type: String,
    pub vcpus: u32,
    pub memory_gib: f64,
    pub usd_per_hour: f64,
    /// What moving to it saves per month, from the catalog.
    pub monthly_savings_usd: f64,
}

/// One UTC day's peaks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DayPeak {
    pub date: NaiveDate,
    pub cpu_max_percent: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_bytes: Option<f64>,
}

/// What the rightsizing finding shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RightsizingEvidence {
    pub current_type: String,
    pub recommended_type: String,
    pub risk: Risk,
    pub rationale: String,
    /// `bedrock` when the model's answer was used, `rules` otherwise.
    pub rationale_source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_id: Option<String>,
    /// Why the model's answer was not used, when it was asked and not used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_reason: Option<String>,
    pub current_vcpus: u32,
    pub current_memory_gib: f64,
    pub current_usd_per_hour: f64,
    pub recommended_usd_per_hour: f64,
    pub lookback_days: u32,
    pub days_with_data: u32,
    /// p95 of the hourly CPU maxima: the load sized for.
    pub cpu_p95_hourly_max_percent: f64,
    /// The highest hourly maximum seen.
    pub cpu_max_percent: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_p95_percent: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_max_percent: Option<f64>,
    pub network_max_daily_bytes: f64,
    pub headroom_percent: f64,
    pub required_vcpus: f64,
    pub required_memory_gib: f64,
    /// Cheapest first; the recommendation is one of them.
    pub candidates: Vec<Candidate>,
    pub days: Vec<DayPeak>,
    /// Where the prices came from and for which region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price_source: Option<String>,
}

/// p-th percentile (nearest rank) of `values`; `None` when empty.
pub fn percentile(values: &[f64], p: f64) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * v.len() as f64).ceil().max(1.0) as usize;
    v.get(rank.min(v.len()) - 1).copied()
}

fn burstable(t: &InstanceType) -> bool {
    t.family.starts_with('t')
}

/// The cheapest catalog types of `current`'s architecture with at least `vcpus` and `memory_gib`,
/// cheaper than `current`; no bare metal; burstable types only for a burstable instance (a steady
/// load would spend a burstable type's CPU credits).
pub fn candidates(current: &InstanceType, vcpus: f64, memory_gib: f64, max: usize) -> Vec<Candidate> {
    candidates_in(&PriceBook::embedded(), current, vcpus, memory_gib, max)
}

/// [`candidates`] among the types `prices` prices, at its prices.
pub fn candidates_in(
    prices: &PriceBook,
    current: &InstanceType,
    vcpus: f64,
    memory_gib: f64,
    max: usize,
) -> Vec<Candidate> {
    let catalog = prices.catalog();
    let mut fit: Vec<&InstanceType> = catalog
        .iter()
        .filter(|t| {
            t.arch == current.arch
                && t.usd_per_hour < current.usd_per_hour
                && f64::from(t.vcpus) >= vcpus
                && t.memory_gib >= memory_gib
                && !t.name.ends_with(".metal")
                && (burstable(current) || !burstable(t))
        })
        .collect();
    fit.sort_by(|a, b| a.usd_per_hour.total_cmp(&b.usd_per_hour).then(a.name.cmp(b.name)));
    fit.into_iter()
        .take(max)
        .map(|t| Candidate {
            instance_type: t.name.to_string(),
            vcpus: t.vcpus,
            memory_gib: t.memory_gib,
            usd_per_hour: t.usd_per_hour,
            monthly_savings_usd: round_cents((current.usd_per_hour - t.usd_per_hour) * HOURS_PER_MONTH),
        })
        .collect()
}

/// The rules' risk of moving to `c`: low when it covers even the highest hour with headroom,
/// medium when it covers the highest hour, high otherwise.
pub fn rules_risk(e: &RightsizingEvidence, c: &Candidate) -> Risk {
    let max_vcpu = f64::from(e.current_vcpus) * e.cpu_max_percent / 100.0;
    let headroom = 1.0 + e.headroom_percent / 100.0;
    let memory_ok = e
        .memory_max_percent
        .is_none_or(|m| c.memory_gib >= e.current_memory_gib * m / 100.0);
    if f64::from(c.vcpus) >= max_vcpu * headroom && memory_ok {
        Risk::Low
    } else if f64::from(c.vcpus) >= max_vcpu && memory_ok {
        Risk::Medium
    } else {
        Risk::High
    }
}

/// The rules' explanation of moving to `c`.
pub fn rules_rationale(e: &RightsizingEvidence, c: &Candidate) -> String {
    let memory = match e.memory_p95_percent {
        Some(m) => format!("memory p95 {m:.0}% of {:.0} GiB", e.current_memory_gib),
        None => format!(
            "memory not measured (no CloudWatch agent), so the {:.0} GiB are kept",
            e.current_memory_gib
        ),
    };
    format!(
        "Over {} days the hourly CPU peaks had a p95 of {:.1}% (highest {:.1}%) of {} vCPUs; {memory}. \
         With {:.0}% headroom that needs {:.2} vCPUs and {:.1} GiB. {} ({} vCPUs, {:.0} GiB) is the cheapest \
         {} type that fits: ${:.4}/h instead of ${:.4}/h.",
        e.days_with_data,
        e.cpu_p95_hourly_max_percent,
        e.cpu_max_percent,
        e.current_vcpus,
        e.headroom_percent,
        e.required_vcpus,
        e.required_memory_gib,
        c.instance_type,
        c.vcpus,
        c.memory_gib,
        pricing::instance_type(&e.current_type)
            .map(|t| match t.arch {
                pricing::Arch::X86_64 => "x86_64",
                pricing::Arch::Arm64 => "arm64",
            })
            .unwrap_or("same-architecture"),
        c.usd_per_hour,
        e.current_usd_per_hour
    )
}

/// Why an instance gets no recommendation (for its outcome).
#[derive(Debug, Clone, PartialEq)]
pub enum NoFinding {
    NotInCatalog(String),
    TooFewDays {
        have: u32,
        need: u32,
    },
    NothingCheaperFits,
    /// Below idle-ec2's thresholds every hour: stopping it is the saving, not a smaller type.
    Idle,
}

impl std::fmt::Display for NoFinding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NoFinding::NotInCatalog(t) => write!(f, "{t} is not in the embedded catalog: no sizing"),
            NoFinding::TooFewDays { have, need } => {
                write!(f, "{have} day(s) with CPU data, {need} needed: not sized")
            }
            NoFinding::NothingCheaperFits => write!(f, "no cheaper type covers its peaks with headroom: right-sized"),
            NoFinding::Idle => write!(
                f,
                "idle by idle-ec2's thresholds at every hour: idle-ec2 proposes stopping it, not resizing"
            ),
        }
    }
}

/// Sizes one instance from its peaks: the evidence with the rules' recommendation, or why not.
pub fn size(
    instance: &Ec2Instance,
    peaks: &InstancePeaks,
    policy: &RightsizingPolicy,
    idle: &IdleEc2Policy,
) -> Result<RightsizingEvidence, NoFinding> {
    size_priced(instance, peaks, policy, idle, &PriceBook::embedded())
}

/// [`size`] at the prices of the scan's region.
pub fn size_priced(
    instance: &Ec2Instance,
    peaks: &InstancePeaks,
    policy: &RightsizingPolicy,
    idle: &IdleEc2Policy,
    prices: &PriceBook,
) -> Result<RightsizingEvidence, NoFinding> {
    let current = prices
        .instance_type(&instance.instance_type)
        .ok_or_else(|| NoFinding::NotInCatalog(instance.instance_type.clone()))?;
    let current = &current;
    let mut by_day: BTreeMap<NaiveDate, f64> = BTreeMap::new();
    for (t, v) in &peaks.cpu_hourly_max {
        let d = by_day.entry(t.date_naive()).or_insert(f64::MIN);
        *d = d.max(*v);
    }
    let days_with_data = u32::try_from(by_day.len()).unwrap_or(u32::MAX);
    if days_with_data < policy.min_days_with_data {
        return Err(NoFinding::TooFewDays {
            have: days_with_data,
            need: policy.min_days_with_data,
        });
    }
    let cpu: Vec<f64> = peaks.cpu_hourly_max.iter().map(|(_, v)| *v).collect();
    let mem: Vec<f64> = peaks.mem_hourly_max.iter().map(|(_, v)| *v).collect();
    let cpu_p95 = percentile(&cpu, 95.0).unwrap_or(100.0);
    let cpu_max = cpu.iter().copied().fold(0.0_f64, f64::max);
    let mem_p95 = percentile(&mem, 95.0);
    let mem_max = (!mem.is_empty()).then(|| mem.iter().copied().fold(0.0_f64, f64::max));
    let network_max = peaks.network_daily_bytes.values().copied().fold(0.0_f64, f64::max);
    // Not counted twice: an instance this quiet is idle-ec2's (its whole cost), not a resize.
    if cpu_max < idle.cpu_daily_average_below && network_max < idle.network_bytes_per_day_below {
        return Err(NoFinding::Idle);
    }
    let headroom = 1.0 + policy.headroom_percent / 100.0;
    let required_vcpus = f64::from(current.vcpus) * cpu_p95 / 100.0 * headroom;
    let required_memory_gib = match mem_p95 {
        Some(m) => (current.memory_gib * m / 100.0 * headroom).min(current.memory_gib),
        None => current.memory_gib,
    };
    let found = candidates_in(
        prices,
        current,
        required_vcpus,
        required_memory_gib,
        policy.max_candidates,
    );
    let Some(best) = found.first().cloned() else {
        return Err(NoFinding::NothingCheaperFits);
    };
    let days = by_day
        .iter()
        .map(|(date, cpu)| DayPeak {
            date: *date,
            cpu_max_percent: *cpu,
            network_bytes: peaks.network_daily_bytes.get(date).copied(),
        })
        .collect();
    let mut e = RightsizingEvidence {
        current_type: current.name.to_string(),
        recommended_type: best.instance_type.clone(),
        risk: Risk::Low,
        rationale: String::new(),
        rationale_source: "rules".into(),
        model_id: None,
        fallback_reason: None,
        current_vcpus: current.vcpus,
        current_memory_gib: current.memory_gib,
        current_usd_per_hour: current.usd_per_hour,
        recommended_usd_per_hour: best.usd_per_hour,
        lookback_days: policy.lookback_days,
        days_with_data,
        cpu_p95_hourly_max_percent: (cpu_p95 * 10.0).round() / 10.0,
        cpu_max_percent: (cpu_max * 10.0).round() / 10.0,
        memory_p95_percent: mem_p95.map(|m| (m * 10.0).round() / 10.0),
        memory_max_percent: mem_max.map(|m| (m * 10.0).round() / 10.0),
        network_max_daily_bytes: network_max,
        headroom_percent: policy.headroom_percent,
        required_vcpus: (required_vcpus * 100.0).round() / 100.0,
        required_memory_gib: (required_memory_gib * 10.0).round() / 10.0,
        candidates: found,
        days,
        price_source: Some(prices.source.clone()),
    };
    e.risk = rules_risk(&e, &best);
    e.rationale = rules_rationale(&e, &best);
    Ok(e)
}

/// Uses `recommended` (one of the candidates) with `risk` and `rationale` from `source`; the
/// dollars follow the candidate's catalog price. Returns `false` (and changes nothing) when
/// `recommended` is not a candidate.
pub fn choose(e: &mut RightsizingEvidence, recommended: &str, risk: Risk, rationale: String, source: &str) -> bool {
    let Some(c) = e.candidates.iter().find(|c| c.instance_type == recommended).cloned() else {
        return false;
    };
    e.recommended_type = c.instance_type;
    e.recommended_usd_per_hour = c.usd_per_hour;
    e.risk = risk;
    e.rationale = rationale;
    e.rationale_source = source.to_string();
    true
}

/// The finding of a sized instance.
pub fn finding(instance: &Ec2Instance, e: RightsizingEvidence, now: DateTime<Utc>) -> Finding {
    let resource = instance.resource();
    let usd = round_cents((e.current_usd_per_hour - e.recommended_usd_per_hour) * HOURS_PER_MONTH);
    Finding {
        id: Finding::id_for(RULE, &resource),
        rule: RULE.to_string(),
        resource,
        evidence: Evidence::of(&e),
        action: ActionKind::Notify,
        estimated_monthly_savings_usd: Some(usd),
        severity: Severity::from_monthly_usd(Some(usd)),
        detected_at: now,
    }
}

impl finops_core::evidence::CheckEvidence for RightsizingEvidence {
    const RULE: &'static str = RULE;
}

impl finops_core::evidence::Explain for RightsizingEvidence {
    fn what(&self) -> String {
        format!("{} → {}", self.current_type, self.recommended_type)
    }

    fn summary(&self) -> String {
        format!(
            "CPU p95 {:.0}% (max {:.0}%), {} risk, by {}",
            self.cpu_p95_hourly_max_percent,
            self.cpu_max_percent,
            self.risk.as_str(),
            self.rationale_source
        )
    }

    fn why(&self, _finding: &Finding) -> String {
        let e = self;
        format!(
            "{} → {}: ${:.4}/hour → ${:.4}/hour, judged on {} of {} days of data.",
            e.current_type,
            e.recommended_type,
            e.current_usd_per_hour,
            e.recommended_usd_per_hour,
            e.days_with_data,
            e.lookback_days,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone};

    fn instance(t: &str) -> Ec2Instance {
        Ec2Instance {
            id: "i-1".into(),
            instance_type: t.into(),
            state: "running".into(),
            account: "123456789012".into(),
            region: "us-east-1".into(),
            lifecycle: None,
            root_device_type: "ebs".into(),
            instance_store: Some(false),
            launch_time: None,
            tags: Default::default(),
            hibernation: false,
            public_ipv4: None,
        }
    }

    fn peaks(days: i64, cpu: impl Fn(i64) -> f64, mem: Option<f64>) -> InstancePeaks {
        let start = Utc.with_ymd_and_hms(2026, 11, 10, 0, 0, 0).unwrap();
        let mut p = InstancePeaks::default();
        for h in 0..days * 24 {
            let t = start + Duration::hours(h);
            p.cpu_hourly_max.push((t, cpu(h)));
            if let Some(m) = mem {
                p.mem_hourly_max.push((t, m));
            }
        }
        p
    }

    #[test]
    fn in_another_region_the_sizing_compares_that_regions_prices_only() {
        // eu-west-1 prices m5.xlarge and r5.large only: r5.large is then the one candidate, and
        // the saving is the difference of the two regional prices.
        let book = PriceBook::regional(
            "eu-west-1",
            "AWS Price List API, eu-west-1, 2026-12".into(),
            [("m5.xlarge".to_string(), 0.214), ("r5.large".to_string(), 0.141)].into(),
            Default::default(),
        );
        let e = size_priced(
            &instance("m5.xlarge"),
            &peaks(14, |h| if h % 24 == 12 { 35.0 } else { 20.0 }, None),
            &RightsizingPolicy::default(),
            &IdleEc2Policy::default(),
            &book,
        )
        .unwrap();
        assert_eq!((e.current_usd_per_hour, e.recommended_usd_per_hour), (0.214, 0.141));
        assert_eq!(e.candidates.len(), 1);
        assert_eq!(e.candidates[0].monthly_savings_usd, 53.29);
        assert_eq!(
            e.price_source.as_deref(),
            Some("AWS Price List API, eu-west-1, 2026-12")
        );
        let unpriced = PriceBook::regional("eu-west-1", "x".into(), Default::default(), Default::default());
        assert!(
            size_priced(
                &instance("m5.xlarge"),
                &peaks(14, |_| 20.0, None),
                &RightsizingPolicy::default(),
                &IdleEc2Policy::default(),
                &unpriced
            )
            .is_err(),
            "no regional price: no recommendation priced in another region"
        );
    }

    #[test]
    fn percentile_is_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 95.0), Some(95.0));
        assert_eq!(percentile(&[3.0], 95.0), Some(3.0));
        assert_eq!(percentile(&[], 95.0), None);
    }

    #[test]
    fn a_quiet_m5_xlarge_without_memory_data_keeps_its_memory() {
        // 4 vCPUs at p95 20% = 0.8 vCPU, ×1.3 = 1.04 → 2 vCPUs; memory kept at 16 GiB.
        let e = size(
            &instance("m5.xlarge"),
            &peaks(14, |h| if h % 24 == 12 { 35.0 } else { 20.0 }, None),
            &RightsizingPolicy::default(),
            &IdleEc2Policy::default(),
        )
        .unwrap();
        assert_eq!(e.required_vcpus, 1.04);
        assert_eq!(e.required_memory_gib, 16.0);
        assert_eq!(e.recommended_type, "r5.large");
        assert!(e
            .candidates
            .iter()
            .all(|c| c.memory_gib >= 16.0 && !c.instance_type.starts_with('t')));
        // Highest hour 35% of 4 = 1.4 vCPU; 2 ≥ 1.4 × 1.3 → low.
        assert_eq!(e.risk, Risk::Low);
        assert!(e.rationale.contains("memory not measured"), "{}", e.rationale);
        let f = finding(&instance("m5.xlarge"), e, Utc::now());
        // (0.192 - 0.126) × 730
        assert_eq!(f.estimated_monthly_savings_usd, Some(48.18));
    }

    #[test]
    fn measured_memory_lets_it_shrink_further_and_a_busy_instance_is_right_sized() {
        let e = size(
            &instance("m5.xlarge"),
            &peaks(14, |_| 20.0, Some(30.0)),
            &RightsizingPolicy::default(),
            &IdleEc2Policy::default(),
        )
        .unwrap();
        // 16 GiB × 30% × 1.3 = 6.24 GiB, 1.04 vCPU: c5.large (2 vCPU, 4 GiB) is too small; m5.large fits.
        assert_eq!(e.required_memory_gib, 6.2);
        assert_eq!(e.recommended_type, "m5.large");
        assert_eq!(
            size(
                &instance("m5.xlarge"),
                &peaks(14, |_| 80.0, None),
                &RightsizingPolicy::default(),
                &IdleEc2Policy::default()
            ),
            Err(NoFinding::NothingCheaperFits)
        );
        assert_eq!(
            size(
                &instance("m5.xlarge"),
                &peaks(3, |_| 5.0, None),
                &RightsizingPolicy::default(),
                &IdleEc2Policy::default()
            ),
            Err(NoFinding::TooFewDays { have: 3, need: 7 })
        );
        assert!(matches!(
            size(
                &instance("x9.huge"),
                &peaks(14, |_| 5.0, None),
                &RightsizingPolicy::default(),
                &IdleEc2Policy::default()
            ),
            Err(NoFinding::NotInCatalog(_))
        ));
    }

    #[test]
    fn an_idle_instance_is_left_to_idle_ec2() {
        let quiet = size(
            &instance("m5.xlarge"),
            &peaks(14, |_| 2.0, None),
            &RightsizingPolicy::default(),
            &IdleEc2Policy::default(),
        );
        assert_eq!(quiet, Err(NoFinding::Idle));
        // The same CPU with real traffic is not idle: it is sized.
        let mut busy_network = peaks(14, |_| 2.0, None);
        busy_network
            .network_daily_bytes
            .insert(NaiveDate::from_ymd_opt(2026, 11, 12).unwrap(), 9e9);
        assert!(size(
            &instance("m5.xlarge"),
            &busy_network,
            &RightsizingPolicy::default(),
            &IdleEc2Policy::default()
        )
        .is_ok());
    }

    #[test]
    fn a_choice_outside_the_candidates_changes_nothing() {
        let mut e = size(
            &instance("m5.xlarge"),
            &peaks(14, |_| 20.0, None),
            &RightsizingPolicy::default(),
            &IdleEc2Policy::default(),
        )
        .unwrap();
        let before = e.clone();
        assert!(!choose(
            &mut e,
            "m5.24xlarge",
            Risk::Low,
            "bigger is better".into(),
            "bedrock"
        ));
        assert_eq!(e, before);
        let second = e.candidates[1].instance_type.clone();
        assert!(choose(&mut e, &second, Risk::Medium, "why".into(), "bedrock"));
        assert_eq!(
            (e.recommended_type.as_str(), e.rationale_source.as_str()),
            (second.as_str(), "bedrock")
        );
    }
}

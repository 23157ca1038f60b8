//! Cost thresholds: month-to-date spend and the month's forecast against the account total and
//! per-service thresholds (and optionally last month's total plus a percentage), at escalation
//! levels (100%, 120%, ... of a threshold). One finding per crossing scope: `TOTAL` or a Cost
//! Explorer SERVICE name.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use finops_core::model::{round_cents, ActionKind, Evidence, Finding, Resource, ResourceKind, Severity};
use finops_core::policy::Policy;

/// The rule id.
pub const RULE: &str = "cost-alert";

/// Resource id of the account-wide scope.
pub const TOTAL: &str = "TOTAL";

/// Where the forecast came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ForecastMethod {
    /// Cost Explorer's GetCostForecast.
    CostExplorer,
    /// The whole days' spend × days in month / whole days elapsed (Cost Explorer refused or
    /// could not forecast; a service's forecast is always this).
    LinearProjection,
    /// No forecast: Cost Explorer gave none and no whole day of the month has passed.
    None,
}

/// What Cost Explorer said about the month so far.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CostSnapshot {
    /// First day of the month.
    pub month: NaiveDate,
    pub metric: String,
    /// Month-to-date spend by SERVICE, today's billed-so-far cost included: spend only grows, so
    /// a crossing seen in partial data is real.
    pub by_service: BTreeMap<String, f64>,
    /// The spend of the whole days only (the first `days_elapsed`): what a projection scales.
    /// Today's partial cost is spend, not a day's rate.
    #[serde(default)]
    pub whole_days_by_service: BTreeMap<String, f64>,
    /// Forecast of the whole month's total, if any.
    pub forecast_total: Option<f64>,
    pub forecast_method: ForecastMethod,
    /// Whole days of the month already passed (today, still being billed, is not one).
    pub days_elapsed: u32,
    pub days_in_month: u32,
    /// Last month's total, when the policy compares with it.
    pub last_month_total: Option<f64>,
}

impl CostSnapshot {
    /// Month-to-date total: the sum of the services (0, not the empty sum's -0).
    pub fn mtd_total(&self) -> f64 {
        self.by_service.values().fold(0.0, |a, b| a + b)
    }

    /// The whole days' total.
    pub fn whole_days_total(&self) -> f64 {
        self.whole_days_by_service.values().fold(0.0, |a, b| a + b)
    }

    /// The linear projection to the whole month of a scope that spent `whole_days` in the whole
    /// days and `spent` month to date: never below what is already spent; `None` before a whole
    /// day has passed.
    pub fn project(&self, whole_days: f64, spent: f64) -> Option<f64> {
        (self.days_elapsed > 0)
            .then(|| (whole_days * f64::from(self.days_in_month) / f64::from(self.days_elapsed)).max(spent))
    }

    /// The linear projection of the account's total.
    pub fn project_total(&self) -> Option<f64> {
        self.project(self.whole_days_total(), self.mtd_total())
    }
}

/// One threshold a scope was measured against.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThresholdCheck {
    /// `policy` (a fixed amount) or `last-month` (last month's total plus the percentage).
    pub kind: String,
    pub threshold_usd: f64,
    /// Highest escalation level (percent of the threshold) reached, by month-to-date or forecast.
    pub level_percent: u32,
    /// Which amount reached it: `month-to-date` or `forecast`.
    pub basis: String,
}

/// The evidence of a cost-alert finding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CostAlertEvidence {
    pub month: String,
    pub metric: String,
    pub scope: String,
    pub month_to_date_usd: f64,
    pub forecast_usd: Option<f64>,
    pub forecast_method: ForecastMethod,
    /// The crossed thresholds, highest level first.
    pub crossed: Vec<ThresholdCheck>,
    /// The level this finding alerts at (the highest crossed).
    pub level_percent: u32,
    pub threshold_usd: f64,
    /// The account's five largest services month-to-date.
    pub top_services: Vec<(String, f64)>,
}

/// Highest level of `levels` that `amount` reaches against `threshold`.
fn level_reached(amount: f64, threshold: f64, levels: &[u32]) -> Option<u32> {
    levels
        .iter()
        .copied()
        .filter(|l| amount >= threshold * f64::from(*l) / 100.0)
        .max()
}

fn check(kind: &str, mtd: f64, forecast: Option<f64>, threshold: f64, levels: &[u32]) -> Option<ThresholdCheck> {
    let by_mtd = level_reached(mtd, threshold, levels);
    let by_forecast = forecast.and_then(|f| level_reached(f, threshold, levels));
    let (level, basis) = match (by_mtd, by_forecast) {
        (Some(m), Some(f)) if f > m => (f, "forecast"),
        (Some(m), _) => (m, "month-to-date"),
        (None, Some(f)) => (f, "forecast"),
        (None, None) => return None,
    };
    Some(ThresholdCheck {
        kind: kind.to_string(),
        threshold_usd: round_cents(threshold),
        level_percent: level,
        basis: basis.to_string(),
    })
}

/// One scope's amounts and the thresholds it crossed.
struct Scope {
    name: String,
    mtd: f64,
    forecast: Option<f64>,
    method: ForecastMethod,
    crossed: Vec<ThresholdCheck>,
}

/// One finding per scope that crossed at least one threshold level.
pub fn detect(
    snapshot: &CostSnapshot,
    policy: &Policy,
    account: &str,
    region: &str,
    now: DateTime<Utc>,
) -> Vec<Finding> {
    let p = &policy.cost_alert;
    let mut top: Vec<(String, f64)> = snapshot
        .by_service
        .iter()
        .map(|(k, v)| (k.clone(), round_cents(*v)))
        .collect();
    top.sort_by(|a, b| b.1.total_cmp(&a.1));
    top.truncate(5);

    let mut scopes: Vec<Scope> = Vec::new();
    let total = snapshot.mtd_total();
    let mut total_checks: Vec<ThresholdCheck> =
        check("policy", total, snapshot.forecast_total, p.total_usd, &p.levels_percent)
            .into_iter()
            .collect();
    if let (Some(pct), Some(last)) = (p.over_last_month_percent, snapshot.last_month_total) {
        if last > 0.0 {
            let threshold = last * (1.0 + pct / 100.0);
            total_checks.extend(check(
                "last-month",
                total,
                snapshot.forecast_total,
                threshold,
                &p.levels_percent,
            ));
        }
    }
    scopes.push(Scope {
        name: TOTAL.to_string(),
        mtd: total,
        forecast: snapshot.forecast_total,
        method: match snapshot.forecast_total {
            Some(_) => snapshot.forecast_method,
            None => ForecastMethod::None,
        },
        crossed: total_checks,
    });
    for (service, threshold) in &p.per_service_usd {
        let mtd = snapshot.by_service.get(service).copied().unwrap_or(0.0);
        let whole_days = snapshot.whole_days_by_service.get(service).copied().unwrap_or(0.0);
        // Cost Explorer forecasts the total only: a service's forecast is its linear projection.
        let forecast = snapshot.project(whole_days, mtd);
        scopes.push(Scope {
            name: service.clone(),
            mtd,
            forecast,
            method: match forecast {
                Some(_) => ForecastMethod::LinearProjection,
                None => ForecastMethod::None,
            },
            crossed: check("policy", mtd, forecast, *threshold, &p.levels_percent)
                .into_iter()
                .collect(),
        });
    }

    scopes
        .into_iter()
        .filter(|scope| !scope.crossed.is_empty())
        .map(|scope| {
            let mut crossed = scope.crossed;
            crossed.sort_by_key(|c| std::cmp::Reverse(c.level_percent));
            let top_check = crossed[0].clone();
            let resource = Resource {
                kind: ResourceKind::CostService,
                id: scope.name.clone(),
                account: account.to_string(),
                region: region.to_string(),
                tags: Default::default(),
            };
            let severity = match top_check.level_percent {
                l if l >= 120 => Severity::Critical,
                l if l >= 100 => Severity::High,
                _ => Severity::Medium,
            };
            Finding {
                id: Finding::id_for(RULE, &resource),
                rule: RULE.to_string(),
                resource,
                evidence: Evidence::of(&CostAlertEvidence {
                    month: snapshot.month.format("%Y-%m").to_string(),
                    metric: snapshot.metric.clone(),
                    scope: scope.name,
                    month_to_date_usd: round_cents(scope.mtd),
                    forecast_usd: scope.forecast.map(round_cents),
                    forecast_method: scope.method,
                    level_percent: top_check.level_percent,
                    threshold_usd: top_check.threshold_usd,
                    crossed,
                    top_services: top.clone(),
                }),
                action: ActionKind::Notify,
                estimated_monthly_savings_usd: None,
                severity,
                detected_at: now,
            }
        })
        .collect()
}

impl finops_core::evidence::CheckEvidence for CostAlertEvidence {
    const RULE: &'static str = RULE;
}

impl finops_core::evidence::Explain for CostAlertEvidence {
    fn what(&self) -> String {
        "spend".to_string()
    }

    fn summary(&self) -> String {
        let method = match self.forecast_method {
            ForecastMethod::CostExplorer => "Cost Explorer",
            ForecastMethod::LinearProjection => "linear projection",
            ForecastMethod::None => "no forecast",
        };
        format!(
            "{} to date ${:.0}, forecast {} ({method}): {}% of ${:.0}",
            self.month,
            self.month_to_date_usd,
            self.forecast_usd
                .map(|v| format!("${v:.0}"))
                .unwrap_or_else(|| "none".into()),
            self.level_percent,
            self.threshold_usd
        )
    }

    fn why(&self, _finding: &Finding) -> String {
        let e = self;
        format!(
            "{} of {}: ${:.2} month to date{}, past {} % of the ${:.2} threshold.",
            e.scope,
            e.month,
            e.month_to_date_usd,
            e.forecast_usd
                .map(|v| format!(" (forecast ${v:.2})"))
                .unwrap_or_default(),
            e.level_percent,
            e.threshold_usd,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(services: &[(&str, f64)], forecast: Option<f64>) -> CostSnapshot {
        CostSnapshot {
            month: NaiveDate::from_ymd_opt(2026, 11, 1).unwrap(),
            metric: "UnblendedCost".into(),
            by_service: services.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            whole_days_by_service: services.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            forecast_total: forecast,
            forecast_method: if forecast.is_some() {
                ForecastMethod::CostExplorer
            } else {
                ForecastMethod::None
            },
            days_elapsed: 25,
            days_in_month: 30,
            last_month_total: None,
        }
    }

    fn now() -> DateTime<Utc> {
        "2026-11-26T06:00:00Z".parse().unwrap()
    }

    fn levels(findings: &[Finding]) -> Vec<(String, u32, String)> {
        findings
            .iter()
            .map(|f| {
                let Some(e) = f.evidence.get::<CostAlertEvidence>() else {
                    panic!()
                };
                (f.resource.id.clone(), e.level_percent, e.crossed[0].basis.clone())
            })
            .collect()
    }

    #[test]
    fn under_every_threshold_nothing_is_flagged() {
        let s = snapshot(&[("Amazon EC2", 4000.0), ("Amazon S3", 1000.0)], Some(6000.0));
        assert!(detect(&s, &Policy::default(), "1", "us-east-1", now()).is_empty());
    }

    #[test]
    fn a_forecast_over_the_total_flags_it_before_the_spend_does() {
        let s = snapshot(&[("Amazon EC2", 8000.0), ("Amazon S3", 1000.0)], Some(10_800.0));
        let f = detect(&s, &Policy::default(), "1", "us-east-1", now());
        assert_eq!(levels(&f), vec![("TOTAL".to_string(), 100, "forecast".to_string())]);
        let Some(e) = f[0].evidence.get::<CostAlertEvidence>() else {
            panic!()
        };
        assert_eq!(e.month_to_date_usd, 9000.0);
        assert_eq!(e.top_services[0], ("Amazon EC2".to_string(), 8000.0));
        assert_eq!(e.forecast_method, ForecastMethod::CostExplorer);
    }

    #[test]
    fn spend_past_a_higher_level_escalates() {
        let s = snapshot(&[("Amazon EC2", 12_500.0)], None);
        let f = detect(&s, &Policy::default(), "1", "us-east-1", now());
        assert_eq!(
            levels(&f),
            vec![("TOTAL".to_string(), 120, "month-to-date".to_string())]
        );
        assert_eq!(f[0].severity, Severity::Critical);
    }

    #[test]
    fn a_service_threshold_uses_its_own_projection() {
        let mut p = Policy::default();
        p.cost_alert.per_service_usd.insert("Amazon S3".into(), 1000.0);
        // 900 in 25 of 30 days projects to 1080: over 100%, not yet over 120%.
        let s = snapshot(&[("Amazon S3", 900.0)], None);
        let f = detect(&s, &p, "1", "us-east-1", now());
        assert_eq!(levels(&f), vec![("Amazon S3".to_string(), 100, "forecast".to_string())]);
        let Some(e) = f[0].evidence.get::<CostAlertEvidence>() else {
            panic!()
        };
        assert_eq!(e.forecast_method, ForecastMethod::LinearProjection);
        assert_eq!(e.forecast_usd, Some(1080.0));
    }

    #[test]
    fn a_service_s_projection_scales_its_whole_days_not_today_s_partial_spend() {
        let mut p = Policy::default();
        p.cost_alert.per_service_usd.insert("Amazon S3".into(), 1000.0);
        // 800 in 25 whole days projects to 960; 150 more billed so far today is spend, not a rate.
        let mut s = snapshot(&[("Amazon S3", 950.0)], None);
        s.whole_days_by_service.insert("Amazon S3".into(), 800.0);
        assert!(detect(&s, &p, "1", "us-east-1", now()).is_empty());
        // Today's spend alone can cross: 1,000 month to date is 100% whatever the projection.
        s.by_service.insert("Amazon S3".into(), 1000.0);
        let f = detect(&s, &p, "1", "us-east-1", now());
        assert_eq!(
            levels(&f),
            vec![("Amazon S3".to_string(), 100, "month-to-date".to_string())]
        );
        let Some(e) = f[0].evidence.get::<CostAlertEvidence>() else {
            panic!()
        };
        assert_eq!(e.forecast_usd, Some(1000.0), "a forecast never below the spend");
    }

    #[test]
    fn growth_over_last_month_is_a_threshold_of_its_own() {
        let mut p = Policy::default();
        p.cost_alert.over_last_month_percent = Some(20.0);
        let mut s = snapshot(&[("Amazon EC2", 3000.0)], Some(3700.0));
        s.last_month_total = Some(3000.0);
        let f = detect(&s, &p, "1", "us-east-1", now());
        let Some(e) = f[0].evidence.get::<CostAlertEvidence>() else {
            panic!()
        };
        assert_eq!(e.crossed[0].kind, "last-month");
        assert_eq!(e.crossed[0].threshold_usd, 3600.0);
    }

    #[test]
    fn the_boundary_is_inclusive() {
        let s = snapshot(&[("Amazon EC2", 10_000.0)], None);
        assert_eq!(levels(&detect(&s, &Policy::default(), "1", "r", now()))[0].1, 100);
        let s = snapshot(&[("Amazon EC2", 9_999.99)], None);
        assert!(detect(&s, &Policy::default(), "1", "r", now()).is_empty());
    }
}

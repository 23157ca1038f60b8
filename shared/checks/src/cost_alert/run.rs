//! The cost-alert run: Cost Explorer month to date by service, the forecast (or a linear
//! projection when Cost Explorer refuses), thresholds, and one alert per crossing per month.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Months, NaiveDate, Utc};

use crate::cost_alert::detect::{self as cost_alert, CostAlertEvidence, CostSnapshot, ForecastMethod, RULE};
use finops_core::model::{Finding, Outcome, OutcomeKind, RunReport};
use finops_core::policy::{Mode, Policy};
use remediation::aws::costexplorer::CostApi;
use remediation::error::{Error, Result};
use remediation::flow::{RunContext, Sinks};
use remediation::notify::{Message, Publisher};
use remediation::state::StateStore;

fn month_start(d: NaiveDate) -> Result<NaiveDate> {
    d.with_day(1)
        .ok_or_else(|| Error::Config(format!("no first day of {d}")))
}

/// Fetches what the detector needs: month to date (today's billed-so-far cost included), the
/// forecast, last month when asked; `notes` say what could not be evaluated and why.
pub async fn snapshot(
    ce: &dyn CostApi,
    policy: &Policy,
    now: DateTime<Utc>,
    notes: &mut Vec<String>,
) -> Result<CostSnapshot> {
    let metric = policy.cost_alert.metric.as_str();
    let today = now.date_naive();
    let start = month_start(today)?;
    let next = start
        .checked_add_months(Months::new(1))
        .ok_or_else(|| Error::Config(format!("no month after {start}")))?;
    let tomorrow = today
        .succ_opt()
        .ok_or_else(|| Error::Config(format!("no day after {today}")))?;
    let month = start.format("%Y-%m").to_string();
    let days_in_month = u32::try_from((next - start).num_days()).unwrap_or(30);
    // Today is still being billed: its cost so far counts as spend, but it is not a whole day.
    let days_elapsed = u32::try_from((today - start).num_days()).unwrap_or(0);
    // Cost Explorer's End is exclusive: up to tomorrow takes in today's cost so far.
    let mut by_service = BTreeMap::new();
    let mut whole_days_by_service = BTreeMap::new();
    for (day, services) in ce.daily_cost_by_service(start, tomorrow, metric).await? {
        for (service, usd) in services {
            *by_service.entry(service.clone()).or_insert(0.0) += usd;
            if day < today {
                *whole_days_by_service.entry(service).or_insert(0.0) += usd;
            }
        }
    }
    if by_service.is_empty() {
        notes.push(format!(
            "no {metric} spend for {month} in Cost Explorer yet (its data can lag by a day): month to date has nothing to compare with the thresholds"
        ));
    }
    let mut snap = CostSnapshot {
        month: start,
        metric: metric.to_string(),
        by_service,
        whole_days_by_service,
        forecast_total: None,
        forecast_method: ForecastMethod::None,
        days_elapsed,
        days_in_month,
        last_month_total: None,
    };
    match ce.forecast(today, next, metric).await {
        Ok(rest) => {
            // The forecast covers today whole: add it to the whole days, never below the spend.
            snap.forecast_total = Some((snap.whole_days_total() + rest).max(snap.mtd_total()));
            snap.forecast_method = ForecastMethod::CostExplorer;
        }
        // The API refuses forecasts for young accounts and thin data; project linearly instead.
        Err(e) => match snap.project_total() {
            Some(projected) => {
                snap.forecast_total = Some(projected);
                snap.forecast_method = ForecastMethod::LinearProjection;
                notes.push(format!(
                    "Cost Explorer gave no forecast ({e}); using a linear projection of {days_elapsed} whole day(s)"
                ));
            }
            None => notes.push(format!(
                "no forecast for {month}: Cost Explorer gave none ({e}) and no whole day has passed to project from; the thresholds are checked on spend so far only"
            )),
        },
    }
    if days_elapsed == 0 && !policy.cost_alert.per_service_usd.is_empty() {
        notes.push(format!(
            "per-service thresholds are checked on spend so far only: no whole day of {month} has passed to project from"
        ));
    }
    if policy.cost_alert.over_last_month_percent.is_some() {
        let prev = start
            .checked_sub_months(Months::new(1))
            .ok_or_else(|| Error::Config(format!("no month before {start}")))?;
        let last = ce
            .cost_by_service(prev, start, metric)
            .await?
            .values()
            .fold(0.0, |a, b| a + b);
        snap.last_month_total = Some(last);
    }
    Ok(snap)
}

/// One run at `now`. Alerts change no resource, so `approve` and `auto` both alert; `dry-run`
/// only reports.
#[tracing::instrument(skip_all, fields(rule = RULE))]
pub async fn run(
    ce: &dyn CostApi,
    account: &str,
    region: &str,
    policy: &Policy,
    sinks: Sinks<'_>,
    now: DateTime<Utc>,
) -> Result<RunReport> {
    let ctx = RunContext::new(RULE, policy, sinks, now);
    if ctx.mode != Mode::DryRun && sinks.state.is_none() {
        return Err(Error::Config(
            "cost-alert outside dry-run needs the state table (FINOPS_TABLE): it is what alerts once per crossing"
                .into(),
        ));
    }
    if ctx.mode != Mode::DryRun && sinks.publisher.is_none() {
        return Err(Error::Config(
            "cost-alert outside dry-run needs the SNS topic (FINOPS_TOPIC_ARN): an alert is all it does".into(),
        ));
    }
    let mut notes = Vec::new();
    let snap = snapshot(ce, policy, now, &mut notes).await?;
    let findings = cost_alert::detect(&snap, policy, account, region, now);
    let month = snap.month.format("%Y-%m").to_string();

    let mut outcomes = Vec::with_capacity(findings.len());
    let (findings, snoozed, snooze_notes) = ctx.set_aside_snoozed(findings).await;
    outcomes.extend(snoozed);
    notes.extend(snooze_notes);
    for f in &findings {
        let Some(e) = f.evidence.get::<CostAlertEvidence>() else {
            continue;
        };
        let what = format!(
            "{}: month to date ${:.2}, forecast {}, {}% of ${:.2}",
            e.scope,
            e.month_to_date_usd,
            e.forecast_usd
                .map(|v| format!("${v:.2}"))
                .unwrap_or_else(|| "none".into()),
            e.level_percent,
            e.threshold_usd
        );
        match (sinks.state, sinks.publisher, ctx.mode) {
            (Some(state), Some(publisher), Mode::Approve | Mode::Auto) => {
                outcomes.push(alert(state, publisher, f, &e, &month, now, &what).await)
            }
            _ => outcomes.push(Outcome::new(&f.id, OutcomeKind::DryRun, format!("would alert: {what}"))),
        }
    }
    Ok(ctx.report(RULE, snap.by_service.len(), findings, outcomes, notes))
}

/// Alerts once per crossing: claims the level, publishes, and records it as sent only once SNS
/// accepted the message. A failed publish releases the claim, so the next run, which finds the
/// same crossing again (spend only grows), alerts with fresh numbers; nothing stale is queued.
async fn alert(
    state: &dyn StateStore,
    publisher: &dyn Publisher,
    f: &Finding,
    e: &CostAlertEvidence,
    month: &str,
    now: DateTime<Utc>,
    what: &str,
) -> Outcome {
    match state.claim_alert(&e.scope, month, e.level_percent, now).await {
        Ok(true) => {}
        Ok(false) => {
            return Outcome::new(
                &f.id,
                OutcomeKind::Skipped,
                format!(
                    "already alerted at {}% or more for {month} (or another run is alerting now)",
                    e.level_percent
                ),
            )
        }
        Err(err) => return Outcome::new(&f.id, OutcomeKind::Failed, format!("alert not claimed: {err}")),
    }
    if let Err(err) = publisher.publish(&[Message::CostAlert { finding: f.clone() }]).await {
        tracing::error!(error = %err, scope = %e.scope, "cost alert not published");
        if let Err(release) = state.release_alert(&e.scope, month, now).await {
            tracing::error!(error = %release, scope = %e.scope, "could not release the claim; it lapses in 5 minutes");
        }
        return Outcome::new(
            &f.id,
            OutcomeKind::Failed,
            format!("alert not published ({err}); the next run alerts again: {what}"),
        );
    }
    match state.confirm_alert(&e.scope, month, e.level_percent, now).await {
        Ok(()) => Outcome::new(&f.id, OutcomeKind::Executed, format!("alerted: {what}")),
        Err(err) => {
            tracing::error!(error = %err, scope = %e.scope, "cost alert sent but not recorded");
            Outcome::new(
                &f.id,
                OutcomeKind::Executed,
                format!("alerted: {what} (not recorded as sent: {err}; a later run may alert again)"),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use async_trait::async_trait;

    use super::*;
    use crate::cost_alert::detect::TOTAL;

    /// Cost Explorer as a port: spend per (day, service), answered for any `[start, end)`, and a
    /// forecast of the rest of the month (or a refusal, as for young accounts).
    struct FakeCe {
        days: Vec<(NaiveDate, &'static str, f64)>,
        forecast_rest: Option<f64>,
    }

    fn day(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[async_trait]
    impl CostApi for FakeCe {
        async fn cost_by_service(&self, start: NaiveDate, end: NaiveDate, _: &str) -> Result<BTreeMap<String, f64>> {
            let mut out = BTreeMap::new();
            for (d, service, usd) in &self.days {
                if *d >= start && *d < end {
                    *out.entry(service.to_string()).or_insert(0.0) += usd;
                }
            }
            Ok(out)
        }

        async fn daily_cost_by_service(
            &self,
            start: NaiveDate,
            end: NaiveDate,
            _: &str,
        ) -> Result<remediation::aws::costexplorer::DailyCosts> {
            let mut out = remediation::aws::costexplorer::DailyCosts::new();
            for (d, service, usd) in &self.days {
                if *d >= start && *d < end {
                    *out.entry(*d).or_default().entry(service.to_string()).or_insert(0.0) += usd;
                }
            }
            Ok(out)
        }

        async fn forecast(&self, _: NaiveDate, _: NaiveDate, _: &str) -> Result<f64> {
            self.forecast_rest.ok_or_else(|| Error::Aws {
                service: "ce",
                operation: "GetCostForecast",
                code: "DataUnavailableException".into(),
                message: "Insufficient amount of historical data to generate forecast.".into(),
                retryable: false,
            })
        }
    }

    /// `usd` a day on EC2 for days 1..=`complete` of November 2026, and `today` on the 26th.
    fn november(complete: u32, usd: f64, today: f64) -> Vec<(NaiveDate, &'static str, f64)> {
        let mut days: Vec<_> = (1..=complete)
            .map(|d| (NaiveDate::from_ymd_opt(2026, 11, d).unwrap(), "Amazon EC2", usd))
            .collect();
        days.push((day("2026-11-26"), "Amazon EC2", today));
        days
    }

    async fn evaluate(ce: &FakeCe, policy: &Policy, now: &str) -> (Vec<Finding>, Vec<String>) {
        let now: DateTime<Utc> = now.parse().unwrap();
        let mut notes = Vec::new();
        let snap = snapshot(ce, policy, now, &mut notes).await.unwrap();
        (cost_alert::detect(&snap, policy, "1", "us-east-1", now), notes)
    }

    fn evidence(findings: &[Finding], scope: &str) -> CostAlertEvidence {
        let f = findings
            .iter()
            .find(|f| f.resource.id == scope)
            .unwrap_or_else(|| panic!("no {scope} in {findings:#?}"));
        f.evidence.get::<CostAlertEvidence>().expect("cost-alert evidence")
    }

    #[tokio::test]
    async fn todays_billed_spend_counts_toward_the_month_to_date_but_not_the_projection() {
        // 25 whole days at $360 ($9,000, projecting to $10,800) and $1,200 billed so far today.
        let ce = FakeCe {
            days: november(25, 360.0, 1200.0),
            forecast_rest: None,
        };
        let (findings, _) = evaluate(&ce, &Policy::default(), "2026-11-26T15:00:00Z").await;
        let e = evidence(&findings, TOTAL);
        assert_eq!(e.month_to_date_usd, 10_200.0);
        assert_eq!(e.crossed[0].basis, "month-to-date");
        assert_eq!(e.forecast_usd, Some(10_800.0));
        assert_eq!(e.forecast_method, ForecastMethod::LinearProjection);
    }

    #[tokio::test]
    async fn a_partial_day_is_not_projected_as_a_whole_one() {
        // $8,000 in 25 whole days projects to $9,600; today's $1,000 so far is spend, not a rate.
        let ce = FakeCe {
            days: november(25, 320.0, 1000.0),
            forecast_rest: None,
        };
        let (findings, _) = evaluate(&ce, &Policy::default(), "2026-11-26T15:00:00Z").await;
        assert!(findings.is_empty(), "{findings:#?}");
    }

    #[tokio::test]
    async fn on_day_one_cost_explorer_s_forecast_and_today_s_spend_are_both_checked() {
        let ce = FakeCe {
            days: vec![(day("2026-12-01"), "Amazon EC2", 450.0)],
            forecast_rest: Some(12_000.0),
        };
        let (findings, _) = evaluate(&ce, &Policy::default(), "2026-12-01T15:00:00Z").await;
        let e = evidence(&findings, TOTAL);
        assert_eq!(e.month_to_date_usd, 450.0);
        assert_eq!(e.forecast_usd, Some(12_000.0));
        assert_eq!(e.forecast_method, ForecastMethod::CostExplorer);
        assert_eq!((e.level_percent, e.crossed[0].basis.as_str()), (120, "forecast"));
    }

    #[tokio::test]
    async fn on_day_one_without_a_forecast_spend_still_alerts_and_the_notes_say_why_there_is_no_forecast() {
        let ce = FakeCe {
            days: vec![(day("2026-12-01"), "Amazon EC2", 10_500.0)],
            forecast_rest: None,
        };
        let (findings, notes) = evaluate(&ce, &Policy::default(), "2026-12-01T15:00:00Z").await;
        let e = evidence(&findings, TOTAL);
        assert_eq!((e.level_percent, e.crossed[0].basis.as_str()), (100, "month-to-date"));
        assert_eq!(e.forecast_usd, None);
        assert!(
            notes.iter().any(|n| n.contains("no whole day")) && !notes.iter().any(|n| n.contains("using a linear")),
            "{notes:?}"
        );
    }

    #[tokio::test]
    async fn a_month_without_spend_in_the_data_says_it_had_nothing_to_evaluate() {
        let ce = FakeCe {
            days: vec![],
            forecast_rest: None,
        };
        let (findings, notes) = evaluate(&ce, &Policy::default(), "2026-12-01T03:00:00Z").await;
        assert!(findings.is_empty());
        assert!(
            notes.iter().any(|n| n.contains("no UnblendedCost spend for 2026-12")),
            "{notes:?}"
        );
    }
}

//! The cost-alert run: Cost Explorer month to date by service, the forecast (or a linear
//! projection when Cost Explorer refuses), thresholds, and one alert per crossing per month.

use chrono::{DateTime, Datelike, Months, NaiveDate, Utc};

use crate::aws::costexplorer::CostApi;
use crate::detect::cost_alert::{self, CostSnapshot, ForecastMethod, RULE};
use crate::error::{Error, Result};
use crate::flow::{RunContext, Sinks};
use crate::model::{Evidence, Outcome, OutcomeKind, RunReport};
use crate::notify::Message;
use crate::policy::{Mode, Policy};

fn month_start(d: NaiveDate) -> Result<NaiveDate> {
    d.with_day(1)
        .ok_or_else(|| Error::Config(format!("no first day of {d}")))
}

/// Fetches what the detector needs: month to date, the forecast, last month when asked.
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
    let days_in_month = u32::try_from((next - start).num_days()).unwrap_or(30);
    // Cost Explorer's End is exclusive; today is still being billed, so it is left out.
    let days_elapsed = u32::try_from((today - start).num_days()).unwrap_or(0);
    let by_service = if days_elapsed > 0 {
        ce.cost_by_service(start, today, metric).await?
    } else {
        Default::default()
    };
    let mtd: f64 = by_service.values().sum();
    let (forecast_total, forecast_method) = match ce.forecast(today, next, metric).await {
        Ok(rest) => (Some(mtd + rest), ForecastMethod::CostExplorer),
        Err(e) => {
            // The API refuses forecasts for young accounts and thin data; project linearly instead.
            let projected = (days_elapsed > 0).then(|| mtd * f64::from(days_in_month) / f64::from(days_elapsed));
            notes.push(format!(
                "Cost Explorer gave no forecast ({e}); using a linear projection"
            ));
            match projected {
                Some(p) => (Some(p), ForecastMethod::LinearProjection),
                None => (None, ForecastMethod::None),
            }
        }
    };
    let last_month_total = match policy.cost_alert.over_last_month_percent {
        Some(_) => {
            let prev = start
                .checked_sub_months(Months::new(1))
                .ok_or_else(|| Error::Config(format!("no month before {start}")))?;
            Some(ce.cost_by_service(prev, start, metric).await?.values().sum())
        }
        None => None,
    };
    Ok(CostSnapshot {
        month: start,
        metric: metric.to_string(),
        by_service,
        forecast_total,
        forecast_method,
        days_elapsed,
        days_in_month,
        last_month_total,
    })
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
    let mut notes = Vec::new();
    let snap = snapshot(ce, policy, now, &mut notes).await?;
    let findings = cost_alert::detect(&snap, policy, account, region, now);
    let month = snap.month.format("%Y-%m").to_string();

    let mut outcomes = Vec::with_capacity(findings.len());
    let mut messages = Vec::new();
    for f in &findings {
        let Evidence::CostAlert(e) = &f.evidence else { continue };
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
        let Some(state) = sinks.state.filter(|_| ctx.mode != Mode::DryRun) else {
            outcomes.push(Outcome::new(&f.id, OutcomeKind::DryRun, format!("would alert: {what}")));
            continue;
        };
        match state.raise_alert(&e.scope, &month, e.level_percent, now).await {
            Ok(true) => {
                messages.push(Message::CostAlert { finding: f.clone() });
                outcomes.push(Outcome::new(&f.id, OutcomeKind::Executed, format!("alerted: {what}")));
            }
            Ok(false) => outcomes.push(Outcome::new(
                &f.id,
                OutcomeKind::Skipped,
                format!("already alerted at {}% or more for {month}", e.level_percent),
            )),
            Err(err) => outcomes.push(Outcome::new(
                &f.id,
                OutcomeKind::Failed,
                format!("alert not recorded: {err}"),
            )),
        }
    }
    if let (Some(publisher), false) = (sinks.publisher, messages.is_empty()) {
        if let Err(e) = publisher.publish(&messages).await {
            notes.push(format!("cost alerts recorded but not published: {e}"));
        }
    }
    Ok(ctx.report(RULE, snap.by_service.len(), findings, outcomes, notes))
}

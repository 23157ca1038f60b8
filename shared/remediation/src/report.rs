//! The weekly savings report, from the ledger: monthly dollars estimated at detection against
//! dollars realised by executed actions, by week, rule and owner; open findings by age; findings
//! by outcome; the tag-compliance trend. Built as data (for the Slack summary) and rendered as one
//! self-contained HTML page (inline SVG charts, inline CSS, no scripts, nothing fetched).
//!
//! All dollars are monthly run-rates: what the findings cost (or save) per month.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use maud::{html, Markup, PreEscaped, DOCTYPE};
use serde::{Deserialize, Serialize};

use crate::model::round_cents;
use crate::state::{CompliancePoint, LedgerLine};

/// One week (Monday to Sunday, UTC).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Week {
    pub week_start: NaiveDate,
    /// Findings first detected that week, and their estimated dollars.
    pub detected: usize,
    pub estimated_usd: f64,
    /// Actions executed that week (and not rolled back), and their dollars.
    pub realised: usize,
    pub realised_usd: f64,
}

/// Totals of a rule or an owner over the report's weeks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    pub findings: usize,
    pub estimated_usd: f64,
    pub realised_usd: f64,
}

/// Open findings of one age band.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgeBand {
    pub label: String,
    pub findings: usize,
    pub estimated_usd: f64,
}

/// The report as data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavingsReport {
    pub generated_at: DateTime<Utc>,
    /// Monday of the first week shown.
    pub from: NaiveDate,
    /// The last day shown (today).
    pub to: NaiveDate,
    pub weeks: Vec<Week>,
    pub estimated_usd: f64,
    pub realised_usd: f64,
    /// Realised as a percentage of estimated (0 when nothing was estimated).
    pub realisation_percent: f64,
    pub by_rule: BTreeMap<String, Totals>,
    /// By owner, largest estimated first.
    pub by_owner: Vec<(String, Totals)>,
    pub open_by_age: Vec<AgeBand>,
    /// Findings of the period by where they stand: open, realised, rolled-back, rejected, expired.
    pub by_outcome: BTreeMap<String, usize>,
    pub compliance: Vec<CompliancePoint>,
    pub compliance_kpi_percent: f64,
    /// Ledger items that could not be read (skipped).
    pub unreadable: usize,
    /// The scans of the period, by rule (from the run records).
    #[serde(default)]
    pub scans: BTreeMap<String, ScanTotals>,
    /// Why the scans are missing, when the run records could not be read (the savings stand).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scans_unread: Option<String>,
    /// What the autopilot's own runs of the period cost on the AWS bill (estimated).
    #[serde(default)]
    pub own_cost_usd: f64,
    /// The earliest run whose cost is known: the cost covers the days from it to `to`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub own_cost_since: Option<DateTime<Utc>>,
}

/// A rule's scans over the report's weeks (its run records).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScanTotals {
    pub runs: usize,
    /// Runs that assessed nothing or stopped on an error.
    pub failed: usize,
    /// Runs where some resources could not be assessed.
    pub partial: usize,
    pub last_at: DateTime<Utc>,
    /// Each account and region's last run: `ok`, `partial` or `failed` when there is one place
    /// (or all agree: `ok (3 places)`), else the places not ok by name (`behind` for one more than
    /// a day behind the newest) and a count of the rest, so a newer success elsewhere never hides
    /// a failure; with the findings and dollars of the places not behind summed.
    pub last_result: String,
    pub last_findings: usize,
    pub last_usd: f64,
    /// What the rule's runs of the period cost on the AWS bill (estimated; runs recorded before
    /// it was kept count nothing).
    #[serde(default)]
    pub own_cost_usd: f64,
    /// The earliest run of the period whose cost is known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub own_cost_since: Option<DateTime<Utc>>,
}

impl ScanTotals {
    /// The totals of run records of one rule (any order); `None` when there are none.
    pub fn of(records: &[crate::state::RunRecord]) -> Option<ScanTotals> {
        let newest = records.iter().map(|r| r.at).max()?;
        let mut last: BTreeMap<(&str, &str), &crate::state::RunRecord> = BTreeMap::new();
        for r in records {
            let place = last.entry((r.account.as_str(), r.region.as_str())).or_insert(r);
            if r.at > place.at {
                *place = r;
            }
        }
        // A place whose last run is well behind the rule's newest has stopped being scanned: it
        // is named as behind, and its old figures are not counted.
        let behind = |r: &crate::state::RunRecord| newest - r.at > Duration::hours(BEHIND_HOURS);
        let mut by_result: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for ((account, region), r) in &last {
            let result = if behind(r) { "behind" } else { r.result.as_str() };
            by_result.entry(result).or_default().push(format!("{account}/{region}"));
        }
        last.retain(|_, r| !behind(r));
        let places: usize = by_result.values().map(Vec::len).sum();
        let last_result = match (places, by_result.len()) {
            (1, _) => by_result.keys().next().map(|r| r.to_string()).unwrap_or_default(),
            (n, 1) => format!("{} ({n} places)", by_result.keys().next().copied().unwrap_or_default()),
            _ => {
                let mut parts: Vec<String> = by_result
                    .iter()
                    .filter(|(result, _)| **result != "ok")
                    .map(|(result, places)| format!("{result} in {}", places.join(", ")))
                    .collect();
                if let Some(ok) = by_result.get("ok") {
                    parts.push(format!(
                        "ok in {} place{}",
                        ok.len(),
                        if ok.len() == 1 { "" } else { "s" }
                    ));
                }
                parts.join("; ")
            }
        };
        Some(ScanTotals {
            runs: records.len(),
            failed: records.iter().filter(|r| r.result == "failed").count(),
            partial: records.iter().filter(|r| r.result == "partial").count(),
            last_at: newest,
            last_result,
            last_findings: last.values().map(|r| r.findings).sum(),
            last_usd: round_cents(last.values().map(|r| r.estimated_monthly_savings_usd).sum()),
            own_cost_usd: records.iter().filter_map(|r| r.cost.as_ref()).map(|c| c.usd).sum(),
            own_cost_since: records.iter().filter(|r| r.cost.is_some()).map(|r| r.at).min(),
        })
    }
}

/// A place whose last run of a rule is this many hours behind the rule's newest run has stopped
/// being scanned (a daily schedule, and two hours' slack).
pub const BEHIND_HOURS: i64 = 26;

/// How far back open findings are looked for (the ledger months read).
pub const OPEN_LOOKBACK_DAYS: i64 = 183;

/// Monday of `d`'s week.
pub fn monday(d: NaiveDate) -> NaiveDate {
    d - Duration::days(i64::from(d.weekday().num_days_from_monday()))
}

/// The `yyyy-mm` months from `from` to `to`.
pub fn months(from: NaiveDate, to: NaiveDate) -> Vec<String> {
    let mut out = Vec::new();
    let (mut y, mut m) = (from.year(), from.month());
    while (y, m) <= (to.year(), to.month()) {
        out.push(format!("{y:04}-{m:02}"));
        (y, m) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    }
    out
}

/// The first day a report of `weeks` weeks ending `today` shows.
pub fn start(today: NaiveDate, weeks: u32) -> NaiveDate {
    monday(today) - Duration::weeks(i64::from(weeks.saturating_sub(1)))
}

fn display_status(s: &str) -> &str {
    if s == "estimated" {
        "open"
    } else {
        s
    }
}

impl SavingsReport {
    /// Builds the report of the `weeks` weeks ending at `now` from ledger lines and compliance points.
    pub fn build(
        lines: &[LedgerLine],
        compliance: Vec<CompliancePoint>,
        now: DateTime<Utc>,
        weeks: u32,
        kpi_percent: f64,
        unreadable: usize,
    ) -> SavingsReport {
        let today = now.date_naive();
        let from = start(today, weeks);
        let mut week_rows: Vec<Week> = (0..weeks.max(1))
            .map(|i| Week {
                week_start: from + Duration::weeks(i64::from(i)),
                detected: 0,
                estimated_usd: 0.0,
                realised: 0,
                realised_usd: 0.0,
            })
            .collect();
        let index = |d: NaiveDate| -> Option<usize> {
            if d < from || d > today {
                None
            } else {
                usize::try_from((d - from).num_days() / 7).ok()
            }
        };
        let mut by_rule: BTreeMap<String, Totals> = BTreeMap::new();
        let mut by_owner: BTreeMap<String, Totals> = BTreeMap::new();
        let mut by_outcome: BTreeMap<String, usize> = BTreeMap::new();
        let bands = [("0–7 days", 0, 7), ("8–30 days", 8, 30), ("31+ days", 31, i64::MAX)];
        let mut open_by_age: Vec<AgeBand> = bands
            .iter()
            .map(|(l, _, _)| AgeBand {
                label: (*l).to_string(),
                findings: 0,
                estimated_usd: 0.0,
            })
            .collect();
        for l in lines {
            let detected = index(l.detected_at.date_naive());
            let realised = match (l.status.as_str(), l.realised_at) {
                ("realised", Some(t)) => index(t.date_naive()),
                _ => None,
            };
            if l.status == "estimated" {
                let age = (now - l.detected_at).num_days();
                if let Some(b) = bands.iter().position(|(_, lo, hi)| age >= *lo && age <= *hi) {
                    open_by_age[b].findings += 1;
                    open_by_age[b].estimated_usd += l.estimated_usd;
                }
            }
            if detected.is_none() && realised.is_none() {
                continue;
            }
            if let Some(w) = detected {
                week_rows[w].detected += 1;
                week_rows[w].estimated_usd += l.estimated_usd;
            }
            if let Some(w) = realised {
                week_rows[w].realised += 1;
                week_rows[w].realised_usd += l.realised_usd;
            }
            *by_outcome.entry(display_status(&l.status).to_string()).or_default() += 1;
            for t in [
                by_rule.entry(l.rule.clone()).or_default(),
                by_owner.entry(l.owner.clone()).or_default(),
            ] {
                t.findings += 1;
                if detected.is_some() {
                    t.estimated_usd += l.estimated_usd;
                }
                if realised.is_some() {
                    t.realised_usd += l.realised_usd;
                }
            }
        }
        let round = |t: &mut Totals| {
            t.estimated_usd = round_cents(t.estimated_usd);
            t.realised_usd = round_cents(t.realised_usd);
        };
        by_rule.values_mut().for_each(round);
        let mut by_owner: Vec<(String, Totals)> = by_owner.into_iter().collect();
        by_owner.iter_mut().for_each(|(_, t)| round(t));
        by_owner.sort_by(|a, b| b.1.estimated_usd.total_cmp(&a.1.estimated_usd).then(a.0.cmp(&b.0)));
        for w in &mut week_rows {
            w.estimated_usd = round_cents(w.estimated_usd);
            w.realised_usd = round_cents(w.realised_usd);
        }
        for b in &mut open_by_age {
            b.estimated_usd = round_cents(b.estimated_usd);
        }
        let estimated_usd = round_cents(week_rows.iter().map(|w| w.estimated_usd).sum::<f64>() + 0.0);
        let realised_usd = round_cents(week_rows.iter().map(|w| w.realised_usd).sum::<f64>() + 0.0);
        let mut compliance: Vec<CompliancePoint> = compliance.into_iter().filter(|p| p.date >= from).collect();
        compliance.sort_by_key(|p| p.date);
        SavingsReport {
            generated_at: now,
            from,
            to: today,
            weeks: week_rows,
            estimated_usd,
            realised_usd,
            realisation_percent: if estimated_usd > 0.0 {
                (realised_usd / estimated_usd * 1000.0).round() / 10.0
            } else {
                0.0
            },
            by_rule,
            by_owner,
            open_by_age,
            by_outcome,
            compliance,
            compliance_kpi_percent: kpi_percent,
            unreadable,
            scans: BTreeMap::new(),
            scans_unread: None,
            own_cost_usd: 0.0,
            own_cost_since: None,
        }
    }

    /// The report of the `weeks` weeks ending at `now`, from the table: the ledger months the
    /// weeks touch (and half a year back, for the ages of open findings), the compliance figures
    /// and each rule's run records.
    pub async fn load(
        state: &crate::state::DynamoState,
        weeks: u32,
        kpi_percent: f64,
        checks: &crate::evidence::Catalog,
        now: DateTime<Utc>,
    ) -> crate::error::Result<SavingsReport> {
        let from = start(now.date_naive(), weeks);
        let read_from = from.min(now.date_naive() - Duration::days(OPEN_LOOKBACK_DAYS));
        let (lines, unreadable) = state.ledger_lines(&months(read_from, now.date_naive())).await?;
        let compliance = state.compliance_since(from).await?;
        let mut r = SavingsReport::build(&lines, compliance, now, weeks, kpi_percent, unreadable);
        let since = from.and_hms_opt(0, 0, 0).map(|t| t.and_utc());
        // The run records only add the scans' figures: one that cannot be read is said, and the
        // report is sent all the same.
        for rule in checks.rules() {
            match state.runs(rule, since, None).await {
                Ok(records) => {
                    if let Some(t) = ScanTotals::of(&records) {
                        r.own_cost_usd += t.own_cost_usd;
                        r.own_cost_since = match (r.own_cost_since, t.own_cost_since) {
                            (Some(a), Some(b)) => Some(a.min(b)),
                            (a, b) => a.or(b),
                        };
                        r.scans.insert(rule.to_string(), t);
                    }
                }
                Err(e) => {
                    tracing::warn!(rule, error = %e, "run records unreadable");
                    r.scans_unread = Some(format!("the run records of {rule} could not be read: {e}"));
                }
            }
        }
        Ok(r)
    }

    /// The first day the autopilot's own cost covers: the earliest costed run, or the period's
    /// start if that is later. `None` when no run of the period has a known cost.
    fn own_cost_from(&self) -> Option<NaiveDate> {
        self.own_cost_since.map(|t| t.date_naive().max(self.from))
    }

    /// The autopilot's own cost as a monthly rate (over the days its costed runs cover, per 30
    /// days), to set beside the monthly savings it realised.
    pub fn own_cost_per_month(&self) -> f64 {
        let Some(from) = self.own_cost_from() else {
            return 0.0;
        };
        let days = (self.to - from).num_days().max(0) + 1;
        self.own_cost_usd * 30.0 / days as f64
    }

    /// "costs $X, saved $Y": the autopilot's own cost of the period beside what it realised.
    pub fn costs_and_saves(&self) -> String {
        let Some(from) = self.own_cost_from() else {
            return format!(
                "saves {} a month realised; its own AWS cost is not known yet (no run of these weeks recorded it)",
                dollars(self.realised_usd)
            );
        };
        let since = if from > self.from {
            format!(" since {from}")
        } else {
            " in these weeks".to_string()
        };
        format!(
            "costs {} on the AWS bill{since} (about {} a month, estimated); saves {} a month realised",
            crate::cost::shown_usd(self.own_cost_usd),
            crate::cost::shown_usd(self.own_cost_per_month()),
            dollars(self.realised_usd)
        )
    }

    /// Open findings in all.
    pub fn open(&self) -> (usize, f64) {
        (
            self.open_by_age.iter().map(|b| b.findings).sum(),
            round_cents(self.open_by_age.iter().map(|b| b.estimated_usd).sum::<f64>() + 0.0),
        )
    }
}

// ---------------------------------------------------------------------------------------------
// HTML

// Rendered with `maud`, which escapes every value it is given (owners and rules come from
// resource tags: outside data), so no value can be left unescaped by mistake.

/// `$1,234.50`.
pub fn dollars(v: f64) -> String {
    crate::model::usd(Some(v))
}

fn f1(v: f64) -> String {
    format!("{v:.1}")
}

/// Grouped bars: estimated and realised dollars per week.
fn weeks_chart(r: &SavingsReport) -> Markup {
    let (w, h, pad, base) = (720.0, 240.0, 48.0, 200.0);
    let max = r
        .weeks
        .iter()
        .map(|x| x.estimated_usd.max(x.realised_usd))
        .fold(0.0_f64, f64::max)
        .max(1.0);
    let slot = (w - pad - 8.0) / r.weeks.len().max(1) as f64;
    let bar = (slot * 0.35).min(28.0);
    html! {
        svg xmlns="http://www.w3.org/2000/svg" viewBox=(format!("0 0 {w} {h}")) width=(w) height=(h)
            role="img" aria-label="Estimated and realised monthly savings by week" {
            line x1=(pad) y1=(base) x2=(w - 8.0) y2=(base) stroke="#999" {}
            text x="4" y="16" font-size="11" fill="#555" { (dollars(max)) }
            @for (i, x) in r.weeks.iter().enumerate() {
                @let x0 = pad + slot * i as f64 + (slot - 2.0 * bar) / 2.0;
                @let he = x.estimated_usd / max * (base - 24.0);
                @let hr = x.realised_usd / max * (base - 24.0);
                rect x=(f1(x0)) y=(f1(base - he)) width=(f1(bar)) height=(f1(he)) fill="#8fb3de" {
                    title { "week of " (x.week_start) ": estimated " (dollars(x.estimated_usd)) }
                }
                rect x=(f1(x0 + bar)) y=(f1(base - hr)) width=(f1(bar)) height=(f1(hr)) fill="#2e8540" {
                    title { "week of " (x.week_start) ": realised " (dollars(x.realised_usd)) }
                }
                text x=(f1(x0 + bar)) y=(base + 14.0) font-size="10" text-anchor="middle" fill="#555" {
                    (x.week_start.format("%d %b"))
                }
            }
            rect x=(pad) y=(h - 14.0) width="10" height="10" fill="#8fb3de" {}
            text x=(pad + 14.0) y=(h - 5.0) font-size="11" { "estimated at detection" }
            rect x=(pad + 170.0) y=(h - 14.0) width="10" height="10" fill="#2e8540" {}
            text x=(pad + 184.0) y=(h - 5.0) font-size="11" { "realised by actions" }
        }
    }
}

/// A line of overall compliance per sweep, with the KPI as a dashed line.
fn compliance_chart(r: &SavingsReport) -> Markup {
    let (w, h, pad) = (720.0, 180.0, 40.0);
    let y = |p: f64| 10.0 + (100.0 - p.clamp(0.0, 100.0)) / 100.0 * (h - 40.0);
    let span = ((r.to - r.from).num_days().max(1)) as f64;
    let x = |d: NaiveDate| pad + (d - r.from).num_days() as f64 / span * (w - pad - 10.0);
    let points: Vec<String> = r
        .compliance
        .iter()
        .map(|p| format!("{:.1},{:.1}", x(p.date), y(p.overall_percent)))
        .collect();
    let kpi = r.compliance_kpi_percent;
    html! {
        svg xmlns="http://www.w3.org/2000/svg" viewBox=(format!("0 0 {w} {h}")) width=(w) height=(h)
            role="img" aria-label="Tag compliance by sweep" {
            @for p in [0.0, 50.0, 100.0] {
                text x="4" y=(f1(y(p) + 3.0)) font-size="10" fill="#555" { (p) "%" }
                line x1=(pad) y1=(f1(y(p))) x2=(w - 10.0) y2=(f1(y(p))) stroke="#eee" {}
            }
            line x1=(pad) y1=(f1(y(kpi))) x2=(w - 10.0) y2=(f1(y(kpi))) stroke="#c00" stroke-dasharray="4 3" {
                title { "KPI " (kpi) "%" }
            }
            @if !points.is_empty() {
                polyline points=(points.join(" ")) fill="none" stroke="#1f5fa8" stroke-width="2" {}
            }
            @for p in &r.compliance {
                circle cx=(f1(x(p.date))) cy=(f1(y(p.overall_percent))) r="3" fill="#1f5fa8" {
                    title { (p.date) ": " (f1(p.overall_percent)) "%" }
                }
            }
        }
    }
}

fn totals_table(title: &str, first: &str, rows: &[(String, Totals)]) -> Markup {
    html! {
        h2 { (title) }
        table {
            tr { th { (first) } th { "findings" } th { "estimated /month" } th { "realised /month" } }
            @for (k, v) in rows {
                tr {
                    td { (k) }
                    td.n { (v.findings) }
                    td.n { (dollars(v.estimated_usd)) }
                    td.n { (dollars(v.realised_usd)) }
                }
            }
            @if rows.is_empty() { tr { td colspan="4" { "nothing in this period" } } }
        }
    }
}

const REPORT_STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:780px}\
table{border-collapse:collapse;margin:8px 0 20px}td,th{border-bottom:1px solid #ddd;padding:4px 10px;text-align:left}\
.n{text-align:right}.kpi{display:inline-block;margin:0 24px 12px 0}.kpi b{display:block;font-size:22px}";

/// The report as one self-contained HTML page.
pub fn render_html(r: &SavingsReport) -> String {
    let (open, open_usd) = r.open();
    let latest = r
        .compliance
        .last()
        .map(|p| format!("{:.1}%", p.overall_percent))
        .unwrap_or_else(|| "no sweep recorded".into());
    let rules: Vec<(String, Totals)> = r.by_rule.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { "FinOps Autopilot savings report " (r.from) " to " (r.to) }
                // A constant of this file, not data.
                style { (PreEscaped(REPORT_STYLE)) }
            }
            body {
                h1 { "Savings report" }
                p { (r.from) " to " (r.to) " · generated " (r.generated_at.format("%Y-%m-%d %H:%M UTC")) " · dollars are monthly run-rates" }
                div.kpi #estimated { "estimated" b { (dollars(r.estimated_usd)) } }
                div.kpi #realised { "realised" b { (dollars(r.realised_usd)) } }
                div.kpi #rate { "realised of estimated" b { (f1(r.realisation_percent)) "%" } }
                div.kpi #open { "open findings" b { (open) " · " (dollars(open_usd)) } }
                div.kpi #compliance { "tag compliance" b { (latest) } }
                p #own-cost { "The autopilot itself " (r.costs_and_saves()) "." }
                h2 { "By week" }
                (weeks_chart(r))
                table {
                    tr { th { "week of" } th { "detected" } th { "estimated /month" } th { "executed" } th { "realised /month" } }
                    @for w in &r.weeks {
                        tr {
                            td { (w.week_start) }
                            td.n { (w.detected) }
                            td.n { (dollars(w.estimated_usd)) }
                            td.n { (w.realised) }
                            td.n { (dollars(w.realised_usd)) }
                        }
                    }
                }
                (totals_table("By rule", "rule", &rules))
                (totals_table("By owner", "owner", &r.by_owner))
                h2 { "Open findings by age" }
                table {
                    tr { th { "age" } th { "findings" } th { "estimated /month" } }
                    @for b in &r.open_by_age {
                        tr { td { (b.label) } td.n { (b.findings) } td.n { (dollars(b.estimated_usd)) } }
                    }
                }
                h2 { "Findings by outcome" }
                table {
                    tr { th { "outcome" } th { "findings" } }
                    @for (k, v) in &r.by_outcome { tr { td { (k) } td.n { (v) } } }
                    @if r.by_outcome.is_empty() { tr { td colspan="2" { "nothing in this period" } } }
                }
                h2 { "Scans" }
                table {
                    tr { th { "rule" } th { "runs" } th { "failed" } th { "partial" } th { "last run" } th { "result" } th { "findings" } th { "estimated /month" } }
                    @for (rule, s) in &r.scans {
                        tr {
                            td { (rule) } td.n { (s.runs) } td.n { (s.failed) } td.n { (s.partial) }
                            td { (s.last_at.format("%Y-%m-%d %H:%M UTC")) } td { (s.last_result) }
                            td.n { (s.last_findings) } td.n { (dollars(s.last_usd)) }
                        }
                    }
                    @if let Some(why) = &r.scans_unread { tr { td colspan="8" { (why) } } }
                    @else if r.scans.is_empty() { tr { td colspan="8" { "no scan recorded in this period" } } }
                }
                h2 { "Tag compliance" }
                p { "Overall compliance per sweep; the dashed line is the KPI (" (kpi_text(r)) "%)." }
                (compliance_chart(r))
                @if r.unreadable > 0 {
                    p { (r.unreadable) " ledger item(s) could not be read and are not counted." }
                }
            }
        }
    };
    let mut out = page.into_string();
    out.push('\n');
    out
}

fn kpi_text(r: &SavingsReport) -> String {
    r.compliance_kpi_percent.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn record(account: &str, region: &str, hours_ago: i64, result: &str, findings: usize) -> crate::state::RunRecord {
        crate::state::RunRecord {
            rule: "idle-ec2".into(),
            at: Utc::now() - Duration::hours(hours_ago),
            mode: "dry-run".into(),
            account: account.into(),
            region: region.into(),
            scanned: 10,
            findings,
            estimated_monthly_savings_usd: 10.0 * findings as f64,
            outcomes: Default::default(),
            duration_ms: 1,
            errors: Vec::new(),
            result: result.into(),
            cost: None,
        }
    }

    #[test]
    fn the_last_result_is_each_places_last_run_so_a_failure_elsewhere_shows() {
        // A newer success in one place does not hide the last run failing in another.
        let records = [
            record("111111111111", "us-east-1", 30, "failed", 0),
            record("111111111111", "us-east-1", 2, "ok", 3),
            record("222222222222", "eu-west-1", 5, "failed", 0),
            record("333333333333", "eu-west-1", 1, "ok", 2),
        ];
        let t = ScanTotals::of(&records).unwrap();
        assert_eq!((t.runs, t.failed), (4, 2));
        assert_eq!(t.last_result, "failed in 222222222222/eu-west-1; ok in 2 places");
        assert_eq!((t.last_findings, t.last_usd), (5, 50.0), "the places' last runs summed");
        let one = ScanTotals::of(&records[..2]).unwrap();
        assert_eq!((one.last_result.as_str(), one.last_findings), ("ok", 3));
        // A place that stopped reporting is named as behind; its old findings are not summed.
        let stale = [
            record("111111111111", "us-east-1", 1, "ok", 3),
            record("444444444444", "us-east-1", 72, "ok", 9),
        ];
        let t = ScanTotals::of(&stale).unwrap();
        assert_eq!(t.last_result, "behind in 444444444444/us-east-1; ok in 1 place");
        assert_eq!(t.last_findings, 3);
    }

    #[test]
    fn weeks_start_on_monday_and_months_cross_the_year() {
        assert_eq!(monday(d("2026-11-26")), d("2026-11-23"));
        assert_eq!(monday(d("2026-11-23")), d("2026-11-23"));
        assert_eq!(start(d("2026-11-26"), 4), d("2026-11-02"));
        assert_eq!(
            months(d("2026-11-20"), d("2027-02-01")),
            ["2026-11", "2026-12", "2027-01", "2027-02"]
        );
    }

    #[test]
    fn hostile_owners_rules_and_outcomes_are_escaped_in_the_report() {
        let hostile = "<script>alert(\"x\")</script> & 'co' é漢";
        let day = d("2026-11-23");
        let report = SavingsReport {
            from: day,
            to: d("2026-11-30"),
            generated_at: "2026-11-30T08:00:00Z".parse().unwrap(),
            weeks: vec![],
            by_rule: BTreeMap::from([(hostile.to_string(), Totals::default())]),
            by_owner: vec![(hostile.to_string(), Totals::default())],
            by_outcome: BTreeMap::from([(hostile.to_string(), 1)]),
            open_by_age: vec![],
            compliance: vec![],
            compliance_kpi_percent: 95.0,
            estimated_usd: 0.0,
            realised_usd: 0.0,
            realisation_percent: 0.0,
            unreadable: 0,
            scans: BTreeMap::new(),
            scans_unread: None,
            own_cost_usd: 0.0,
            own_cost_since: None,
        };
        let html = render_html(&report);
        assert!(!html.contains("<script>"), "{html}");
        assert_eq!(html.matches("&lt;script&gt;").count(), 3, "{html}");
        assert!(html.contains("é漢") && html.contains("&amp; "), "{html}");
    }
}

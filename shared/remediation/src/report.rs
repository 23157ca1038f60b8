//! The weekly savings report, from the ledger: monthly dollars estimated at detection against
//! dollars realised by executed actions, by week, rule and owner; open findings by age; findings
//! by outcome; the tag-compliance trend. Built as data (for the Slack summary) and rendered as one
//! self-contained HTML page (inline SVG charts, inline CSS, no scripts, nothing fetched).
//!
//! All dollars are monthly run-rates: what the findings cost (or save) per month.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
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
}

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
        }
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

/// Escapes text for HTML (owners and rules come from resource tags: outside data).
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `$1,234.50`.
pub fn dollars(v: f64) -> String {
    crate::slack::usd(Some(v))
}

/// Grouped bars: estimated and realised dollars per week.
fn weeks_chart(r: &SavingsReport) -> String {
    let (w, h, pad, base) = (720.0, 240.0, 48.0, 200.0);
    let max = r
        .weeks
        .iter()
        .map(|x| x.estimated_usd.max(x.realised_usd))
        .fold(0.0_f64, f64::max)
        .max(1.0);
    let slot = (w - pad - 8.0) / r.weeks.len().max(1) as f64;
    let bar = (slot * 0.35).min(28.0);
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" aria-label="Estimated and realised monthly savings by week">"#
    );
    let _ = write!(
        svg,
        r##"<line x1="{pad}" y1="{base}" x2="{}" y2="{base}" stroke="#999"/>"##,
        w - 8.0
    );
    let _ = write!(
        svg,
        r##"<text x="4" y="16" font-size="11" fill="#555">{}</text>"##,
        esc(&dollars(max))
    );
    for (i, x) in r.weeks.iter().enumerate() {
        let x0 = pad + slot * i as f64 + (slot - 2.0 * bar) / 2.0;
        let he = x.estimated_usd / max * (base - 24.0);
        let hr = x.realised_usd / max * (base - 24.0);
        let _ = write!(
            svg,
            r##"<rect x="{x0:.1}" y="{:.1}" width="{bar:.1}" height="{he:.1}" fill="#8fb3de"><title>week of {}: estimated {}</title></rect>"##,
            base - he,
            x.week_start,
            esc(&dollars(x.estimated_usd))
        );
        let _ = write!(
            svg,
            r##"<rect x="{:.1}" y="{:.1}" width="{bar:.1}" height="{hr:.1}" fill="#2e8540"><title>week of {}: realised {}</title></rect>"##,
            x0 + bar,
            base - hr,
            x.week_start,
            esc(&dollars(x.realised_usd))
        );
        let _ = write!(
            svg,
            r##"<text x="{:.1}" y="{}" font-size="10" text-anchor="middle" fill="#555">{}</text>"##,
            x0 + bar,
            base + 14.0,
            x.week_start.format("%d %b")
        );
    }
    let _ = write!(
        svg,
        r##"<rect x="{pad}" y="{}" width="10" height="10" fill="#8fb3de"/><text x="{}" y="{}" font-size="11">estimated at detection</text><rect x="{}" y="{}" width="10" height="10" fill="#2e8540"/><text x="{}" y="{}" font-size="11">realised by actions</text></svg>"##,
        h - 14.0,
        pad + 14.0,
        h - 5.0,
        pad + 170.0,
        h - 14.0,
        pad + 184.0,
        h - 5.0
    );
    svg
}

/// A line of overall compliance per sweep, with the KPI as a dashed line.
fn compliance_chart(r: &SavingsReport) -> String {
    let (w, h, pad) = (720.0, 180.0, 40.0);
    let y = |p: f64| 10.0 + (100.0 - p.clamp(0.0, 100.0)) / 100.0 * (h - 40.0);
    let span = ((r.to - r.from).num_days().max(1)) as f64;
    let x = |d: NaiveDate| pad + (d - r.from).num_days() as f64 / span * (w - pad - 10.0);
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" aria-label="Tag compliance by sweep">"#
    );
    for p in [0.0, 50.0, 100.0] {
        let _ = write!(
            svg,
            r##"<text x="4" y="{:.1}" font-size="10" fill="#555">{p}%</text><line x1="{pad}" y1="{:.1}" x2="{}" y2="{:.1}" stroke="#eee"/>"##,
            y(p) + 3.0,
            y(p),
            w - 10.0,
            y(p)
        );
    }
    let _ = write!(
        svg,
        r##"<line x1="{pad}" y1="{:.1}" x2="{}" y2="{:.1}" stroke="#c00" stroke-dasharray="4 3"><title>KPI {}%</title></line>"##,
        y(r.compliance_kpi_percent),
        w - 10.0,
        y(r.compliance_kpi_percent),
        r.compliance_kpi_percent
    );
    let points: Vec<String> = r
        .compliance
        .iter()
        .map(|p| format!("{:.1},{:.1}", x(p.date), y(p.overall_percent)))
        .collect();
    if !points.is_empty() {
        let _ = write!(
            svg,
            r##"<polyline points="{}" fill="none" stroke="#1f5fa8" stroke-width="2"/>"##,
            points.join(" ")
        );
    }
    for p in &r.compliance {
        let _ = write!(
            svg,
            r##"<circle cx="{:.1}" cy="{:.1}" r="3" fill="#1f5fa8"><title>{}: {:.1}%</title></circle>"##,
            x(p.date),
            y(p.overall_percent),
            p.date,
            p.overall_percent
        );
    }
    svg.push_str("</svg>");
    svg
}

fn totals_table(title: &str, first: &str, rows: &[(String, Totals)]) -> String {
    let mut t = format!(
        "<h2>{}</h2><table><tr><th>{}</th><th>findings</th><th>estimated /month</th><th>realised /month</th></tr>",
        esc(title),
        esc(first)
    );
    for (k, v) in rows {
        let _ = write!(
            t,
            "<tr><td>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td></tr>",
            esc(k),
            v.findings,
            dollars(v.estimated_usd),
            dollars(v.realised_usd)
        );
    }
    if rows.is_empty() {
        t.push_str("<tr><td colspan=4>nothing in this period</td></tr>");
    }
    t.push_str("</table>");
    t
}

/// The report as one self-contained HTML page.
pub fn render_html(r: &SavingsReport) -> String {
    let (open, open_usd) = r.open();
    let latest = r
        .compliance
        .last()
        .map(|p| format!("{:.1}%", p.overall_percent))
        .unwrap_or_else(|| "no sweep recorded".into());
    let mut h = String::new();
    let _ = write!(
        h,
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>FinOps Autopilot savings report {from} to {to}</title>
<style>body{{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:780px}}table{{border-collapse:collapse;margin:8px 0 20px}}td,th{{border-bottom:1px solid #ddd;padding:4px 10px;text-align:left}}.n{{text-align:right}}.kpi{{display:inline-block;margin:0 24px 12px 0}}.kpi b{{display:block;font-size:22px}}</style></head><body>
<h1>Savings report</h1><p>{from} to {to} · generated {gen} · dollars are monthly run-rates</p>
<div class="kpi" id="estimated">estimated<b>{est}</b></div><div class="kpi" id="realised">realised<b>{real}</b></div><div class="kpi" id="rate">realised of estimated<b>{rate:.1}%</b></div><div class="kpi" id="open">open findings<b>{open} · {open_usd}</b></div><div class="kpi" id="compliance">tag compliance<b>{latest}</b></div>
<h2>By week</h2>{chart}<table><tr><th>week of</th><th>detected</th><th>estimated /month</th><th>executed</th><th>realised /month</th></tr>"#,
        from = r.from,
        to = r.to,
        gen = r.generated_at.format("%Y-%m-%d %H:%M UTC"),
        est = dollars(r.estimated_usd),
        real = dollars(r.realised_usd),
        rate = r.realisation_percent,
        open_usd = dollars(open_usd),
        chart = weeks_chart(r),
    );
    for w in &r.weeks {
        let _ = write!(
            h,
            "<tr><td>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td></tr>",
            w.week_start,
            w.detected,
            dollars(w.estimated_usd),
            w.realised,
            dollars(w.realised_usd)
        );
    }
    h.push_str("</table>");
    let rules: Vec<(String, Totals)> = r.by_rule.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    h.push_str(&totals_table("By rule", "rule", &rules));
    h.push_str(&totals_table("By owner", "owner", &r.by_owner));
    h.push_str("<h2>Open findings by age</h2><table><tr><th>age</th><th>findings</th><th>estimated /month</th></tr>");
    for b in &r.open_by_age {
        let _ = write!(
            h,
            "<tr><td>{}</td><td class=n>{}</td><td class=n>{}</td></tr>",
            esc(&b.label),
            b.findings,
            dollars(b.estimated_usd)
        );
    }
    h.push_str("</table><h2>Findings by outcome</h2><table><tr><th>outcome</th><th>findings</th></tr>");
    for (k, v) in &r.by_outcome {
        let _ = write!(h, "<tr><td>{}</td><td class=n>{v}</td></tr>", esc(k));
    }
    if r.by_outcome.is_empty() {
        h.push_str("<tr><td colspan=2>nothing in this period</td></tr>");
    }
    let _ = write!(
        h,
        "</table><h2>Tag compliance</h2><p>Overall compliance per sweep; the dashed line is the KPI ({}%).</p>{}",
        r.compliance_kpi_percent,
        compliance_chart(r)
    );
    if r.unreadable > 0 {
        let _ = write!(
            h,
            "<p>{} ledger item(s) could not be read and are not counted.</p>",
            r.unreadable
        );
    }
    h.push_str("</body></html>\n");
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
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
    fn html_escapes_outside_text() {
        assert_eq!(
            esc("<b>\"eve\" & 'co'</b>"),
            "&lt;b&gt;&quot;eve&quot; &amp; &#39;co&#39;&lt;/b&gt;"
        );
    }
}

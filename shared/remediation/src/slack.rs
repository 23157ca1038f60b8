//! Slack: request signatures (interactivity), Block Kit rendering of every message type, and
//! posting through an incoming webhook or a bot token, honouring 429 `Retry-After`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::Sha256;

use crate::error::{Error, Result};
use crate::evidence::Catalog;
use crate::http::{HttpClient, RetryAfter};
use crate::model::{Finding, OutcomeKind};
use crate::notify::alarm::AlarmNotification;
use crate::notify::{Incoming, Message};

/// Slack rejects requests older than this; so do we (replay protection).
pub const MAX_SIGNATURE_AGE_SECONDS: i64 = 5 * 60;

/// Why a Slack request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("missing X-Slack-Signature or X-Slack-Request-Timestamp")]
    Missing,
    #[error("request timestamp is more than 5 minutes from now")]
    Stale,
    #[error("signature does not match")]
    Mismatch,
}

/// Checks Slack's `v0` signature: HMAC-SHA256 of `v0:{timestamp}:{body}` with the signing secret,
/// hex, compared in constant time; the timestamp must be within 5 minutes of `now`.
pub fn verify_signature(
    signing_secret: &[u8],
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: DateTime<Utc>,
) -> std::result::Result<(), SignatureError> {
    let (Some(ts), Some(sig)) = (timestamp, signature) else {
        return Err(SignatureError::Missing);
    };
    let ts_num: i64 = ts.trim().parse().map_err(|_| SignatureError::Missing)?;
    // Any i64 may arrive: an age that does not fit is as stale as one that does not pass.
    let age = now.timestamp().checked_sub(ts_num).map(i64::unsigned_abs);
    if age.is_none_or(|a| a > MAX_SIGNATURE_AGE_SECONDS.unsigned_abs()) {
        return Err(SignatureError::Stale);
    }
    let hex = sig.trim().strip_prefix("v0=").ok_or(SignatureError::Mismatch)?;
    let expected = decode_hex(hex).ok_or(SignatureError::Mismatch)?;
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(signing_secret) else {
        return Err(SignatureError::Mismatch);
    };
    mac.update(format!("v0:{}:", ts.trim()).as_bytes());
    mac.update(body);
    mac.verify_slice(&expected).map_err(|_| SignatureError::Mismatch)
}

/// Signs like Slack does (tests and local tools use it to build genuine requests).
pub fn sign(signing_secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(signing_secret) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    mac.update(format!("v0:{timestamp}:").as_bytes());
    mac.update(body);
    let bytes = mac.finalize().into_bytes();
    format!("v0={}", bytes.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    // Digits only: `from_str_radix` alone would read "+a" as 0x0a.
    if s.len() % 2 != 0 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Rendering

pub use crate::model::usd;

/// Slack's mrkdwn needs `&`, `<` and `>` escaped in text that is not a link.
/// Text as Slack's mrkdwn shows it literally (`&`, `<`, `>` escaped).
pub fn escape(s: &str) -> String {
    esc(s)
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

fn header(text: &str) -> Value {
    // Header blocks take at most 150 characters of plain text.
    let t: String = text.chars().take(150).collect();
    json!({"type": "header", "text": {"type": "plain_text", "text": t, "emoji": true}})
}

/// The first of `lines` that fit one section with room for a closing "… and N more" line.
fn within_section(lines: Vec<String>) -> Vec<String> {
    // A section takes 3,000 characters: the title and the closing line get the rest.
    const BUDGET: usize = 3000 - 200;
    let mut used = 0;
    let mut out = Vec::new();
    for line in lines {
        let n = line.chars().count() + 1;
        if used + n > BUDGET {
            break;
        }
        used += n;
        out.push(line);
    }
    out
}

fn section(text: &str) -> Value {
    let t: String = text.chars().take(3000).collect();
    json!({"type": "section", "text": {"type": "mrkdwn", "text": t}})
}

fn fields(pairs: &[(&str, String)]) -> Value {
    let f: Vec<Value> = pairs
        .iter()
        .take(10)
        .map(|(k, v)| json!({"type": "mrkdwn", "text": format!("*{k}*\n{v}")}))
        .collect();
    json!({"type": "section", "fields": f})
}

fn context(text: &str) -> Value {
    json!({"type": "context", "elements": [{"type": "mrkdwn", "text": text}]})
}

fn button(text: &str, url: &str, style: Option<&str>, action_id: &str) -> Value {
    let mut b =
        json!({"type": "button", "text": {"type": "plain_text", "text": text}, "url": url, "action_id": action_id});
    if let Some(s) = style {
        b["style"] = json!(s);
    }
    b
}

/// The evidence as short `key: value` lines (numbers the detector used).
pub fn evidence_lines(f: &Finding) -> Vec<String> {
    evidence_pairs(f)
        .into_iter()
        .map(|(k, shown)| format!("{k}: {}", esc(&shown)))
        .collect()
}

/// A finding's evidence as (label, value) pairs, unescaped: the first 8 fields, series shown as
/// their length, long values cut; then where the price came from, always (a dollar figure
/// without its source and region is not one a reader can check).
pub fn evidence_pairs(f: &Finding) -> Vec<(String, String)> {
    let v = serde_json::to_value(&f.evidence).unwrap_or(Value::Null);
    let Value::Object(map) = v else {
        return vec![];
    };
    // What a reader decides on first (a rightsizing recommendation and who explained it), then
    // the rest in name order.
    const FIRST: [&str; 6] = [
        "recommended_type",
        "risk",
        "rationale_source",
        "rationale",
        "current_type",
        // A stop releases it: what a person approving the stop must see.
        "public_ipv4_changes",
    ];
    const LAST: &str = "price_source";
    let mut fields: Vec<(&String, &Value)> = map.iter().filter(|(k, v)| !v.is_null() && *k != LAST).collect();
    fields.sort_by_key(|(k, _)| FIRST.iter().position(|f| f == k).unwrap_or(FIRST.len()));
    fields.truncate(8);
    if let Some((k, v)) = map.get_key_value(LAST).filter(|(_, v)| !v.is_null()) {
        fields.push((k, v));
    }
    fields
        .into_iter()
        .map(|(k, v)| {
            let shown = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                // Per-day series and the like: the count, not the data.
                Value::Array(a) => format!("{} entries", a.len()),
                other => {
                    let s = other.to_string();
                    if s.chars().count() > 120 {
                        format!("{}…", s.chars().take(120).collect::<String>())
                    } else {
                        s
                    }
                }
            };
            (k.replace('_', " "), shown)
        })
        .collect()
}

fn finding_blocks(f: &Finding, checks: &Catalog) -> Vec<Value> {
    let mut blocks = vec![fields(&[
        (
            "Resource",
            format!(
                "`{}` ({})",
                esc(&f.resource.id),
                serde_json::to_value(f.resource.kind)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default()
            ),
        ),
        ("Owner", esc(f.owner())),
        ("Saves", format!("{}/month", usd(f.estimated_monthly_savings_usd))),
        ("Action", f.action.as_str().to_string()),
        (
            "Account / region",
            format!("{} / {}", f.resource.account, f.resource.region),
        ),
        ("Severity", f.severity.as_str().to_string()),
    ])];
    let ev = evidence_lines(f);
    if !ev.is_empty() {
        blocks.push(section(&format!("*Evidence*\n{}", ev.join("\n"))));
    }
    // What the check says to look at by hand (where AWS's own evaluation of a bucket's policy
    // differs from this reading, say): the person deciding reads it in words.
    for what in checks.to_look_at(f) {
        blocks.push(section(&format!(":mag: *To look at by hand:* {}.", esc(&what))));
    }
    blocks
}

/// How buttons behave, and who explains the findings.
#[derive(Debug, Clone, Copy)]
pub struct RenderOptions {
    /// Slack app with interactivity: buttons also carry the signed token as their `value`, so a
    /// click is decided in Slack (the link still opens the confirmation page otherwise).
    pub interactive: bool,
    /// The checks: what each finding's own check says of it (the "cannot be undone" warning,
    /// what to look at by hand).
    pub checks: &'static Catalog,
}

impl RenderOptions {
    /// Links only (no interactivity), the findings explained by `checks`.
    pub fn new(checks: &'static Catalog) -> RenderOptions {
        RenderOptions {
            interactive: false,
            checks,
        }
    }
}

/// A Slack message: `text` (notification fallback) and `blocks`.
pub fn render(message: &Message, opts: RenderOptions) -> Value {
    let (text, blocks) = match message {
        Message::Finding {
            mode,
            finding: f,
            snooze,
            ..
        } => {
            let text = format!(
                "{}: {} {} would save {}/month",
                f.rule,
                f.action.as_str(),
                f.resource.id,
                usd(f.estimated_monthly_savings_usd)
            );
            let mut b = vec![header(&format!("{} · {}", f.rule, f.resource.id))];
            b.extend(finding_blocks(f, opts.checks));
            b.extend(snooze_blocks(snooze, opts));
            b.push(context(&format!("mode {} · nothing was changed", mode.as_str())));
            (text, b)
        }
        Message::ApprovalRequest {
            request_id,
            finding: f,
            expires_at,
            approve_url,
            reject_url,
            snooze,
            held,
            ..
        } => {
            let text = format!(
                "Approval needed: {} {} ({}/month)",
                f.action.as_str(),
                f.resource.id,
                usd(f.estimated_monthly_savings_usd)
            );
            let mut b = vec![header(&format!("Approve? {} {}", f.action.as_str(), f.resource.id))];
            b.extend(finding_blocks(f, opts.checks));
            if opts.checks.cannot_be_undone(f) {
                b.push(section(
                    ":warning: *This cannot be undone*: no snapshot is taken before the delete (the policy accepts irreversible deletes).",
                ));
            }
            if let Some(why) = held {
                b.push(section(&format!(
                    ":pause_button: *Not done automatically*: {}",
                    esc(why)
                )));
            }
            let mut buttons = Vec::new();
            if let Some(u) = approve_url {
                buttons.push(with_value(
                    button("Approve", u, Some("primary"), "finops_approve"),
                    u,
                    opts,
                ));
            }
            if let Some(u) = reject_url {
                buttons.push(with_value(
                    button("Reject", u, Some("danger"), "finops_reject"),
                    u,
                    opts,
                ));
            }
            if !buttons.is_empty() {
                b.push(json!({"type": "actions", "elements": buttons}));
            }
            b.extend(snooze_blocks(snooze, opts));
            b.push(context(&format!(
                "request {request_id} · expires {} · the link opens a confirmation page",
                expires_at.format("%Y-%m-%d %H:%M UTC")
            )));
            (text, b)
        }
        Message::ActionResult {
            action_id,
            finding: f,
            outcome,
            detail,
            decided_by,
            rollback_url,
            rolled_back,
            ..
        } => {
            let verb = match (outcome, rolled_back) {
                (_, true) => "Rolled back",
                (OutcomeKind::Executed, _) => "Done",
                (OutcomeKind::Failed, _) => "Failed",
                _ => "Not done",
            };
            let text = format!("{verb}: {} {} ({decided_by})", f.action.as_str(), f.resource.id);
            let mut b = vec![
                header(&format!("{verb}: {} {}", f.action.as_str(), f.resource.id)),
                fields(&[
                    ("Resource", format!("`{}`", esc(&f.resource.id))),
                    ("Decided by", esc(decided_by)),
                    ("Saves", format!("{}/month", usd(f.estimated_monthly_savings_usd))),
                    ("Owner", esc(f.owner())),
                ]),
                section(&esc(detail)),
            ];
            if let (Some(u), false, OutcomeKind::Executed) = (rollback_url, rolled_back, outcome) {
                b.push(json!({"type": "actions", "elements": [with_value(button("Roll back", u, None, "finops_rollback"), u, opts)]}));
            }
            b.push(context(&format!("action {action_id}")));
            (text, b)
        }
        Message::ApprovalResult {
            request_id,
            finding: f,
            status,
            decided_by,
            detail,
            ..
        } => {
            let text = format!("{} {}: {status} ({decided_by})", f.action.as_str(), f.resource.id);
            let b = vec![
                section(&format!(
                    "*{}* · {} `{}` · {}",
                    status.to_uppercase(),
                    f.action.as_str(),
                    esc(&f.resource.id),
                    esc(detail)
                )),
                context(&format!("request {request_id} · {}", esc(decided_by))),
            ];
            (text, b)
        }
        Message::CostAlert { finding: f } => cost_alert(f),
        Message::TagReport {
            by_type,
            overall_percent,
            kpi_percent,
            non_compliant,
            non_compliant_total,
        } => {
            let text = format!("Tag compliance {overall_percent:.1}% (KPI {kpi_percent:.0}%)");
            let mut pairs: Vec<(&str, String)> = vec![(
                "Overall",
                format!(
                    "{overall_percent:.1}% {}",
                    if overall_percent >= kpi_percent {
                        "✅"
                    } else {
                        "⚠️ under KPI"
                    }
                ),
            )];
            let rows: Vec<(String, String)> = by_type
                .iter()
                .map(|(k, c)| (k.clone(), format!("{:.1}% ({}/{})", c.percent(), c.compliant, c.total)))
                .collect();
            pairs.extend(rows.iter().map(|(k, v)| (k.as_str(), v.clone())));
            let list: Vec<String> = non_compliant
                .iter()
                .take(15)
                .map(|(id, missing)| format!("• `{}` missing {}", esc(id), esc(&missing.join(", "))))
                .collect();
            let mut b = vec![header("Tag compliance report"), fields(&pairs)];
            if !list.is_empty() {
                b.push(section(&format!(
                    "*Non-compliant ({non_compliant_total})*\n{}",
                    list.join("\n")
                )));
            }
            (text, b)
        }
        Message::OrgDigest { digest: d } => {
            let compliance = d
                .compliance
                .map(|c| format!("; {:.1}% of {} resources tagged as required", c.percent(), c.total))
                .unwrap_or_default();
            let text = format!(
                "{} across the organisation: {} findings, {}/month in {} accounts{compliance}; {} of {} targets failed{}",
                d.rule,
                d.total_findings,
                usd(Some(d.total_usd)),
                d.accounts.len() + d.accounts_omitted,
                d.targets_failed(),
                d.targets_total(),
                if d.accounts_skipped > 0 {
                    format!(", {} accounts not scanned", d.accounts_skipped)
                } else {
                    String::new()
                }
            );
            // The largest first, as many as fit one section; what does not fit is counted,
            // never dropped silently.
            let mut accounts: Vec<_> = d.accounts.iter().collect();
            accounts.sort_by(|a, b| b.1.usd.total_cmp(&a.1.usd).then_with(|| a.0.cmp(b.0)));
            let rows: Vec<String> = accounts
                .iter()
                .map(|(account, t)| {
                    let tagged = t
                        .compliance
                        .map(|c| format!(", {:.1}% tagged", c.percent()))
                        .unwrap_or_default();
                    let regions = if t.regions.len() > 3 {
                        format!("{} regions", t.regions.len())
                    } else {
                        esc(&t.regions.join(", "))
                    };
                    let held = if t.held > 0 {
                        format!(", {} held back", t.held)
                    } else {
                        String::new()
                    };
                    format!(
                        "• `{}`: {} findings, {}/month ({} scanned in {regions}{tagged}{held})",
                        esc(account),
                        t.findings,
                        usd(Some(t.usd)),
                        t.scanned,
                    )
                })
                .collect();
            let mut text_rows = within_section(rows);
            let more = accounts.len() - text_rows.len() + d.accounts_omitted;
            if more > 0 {
                text_rows.push(format!("… and {more} more accounts"));
            }
            let mut b = vec![
                header(&format!("{} across the organisation", d.rule)),
                section(&format!("*Accounts*\n{}", text_rows.join("\n"))),
            ];
            b.push(section(&format!(
                ":receipt: This run cost about {} on the AWS bill, estimated at list prices: the calls of the {} that answered, and {} Step Functions transitions",
                crate::cost::shown_usd(d.own_cost()),
                match d.items - d.items_failed {
                    1 => "1 item".to_string(),
                    n => format!("{n} items"),
                },
                d.state_transitions
            )));
            if d.total_held > 0 {
                b.push(section(&format!(
                    ":pause_button: *{} held back from acting automatically*: the run's blast radius (max_actions, max_actions_percent, each account's share) was spent, or a person must decide (an address a stop releases); each was asked about instead",
                    d.total_held
                )));
            }
            let failed_total = d.failed_targets.len() + d.failed_targets_omitted;
            if failed_total > 0 {
                let mut groups = d.failure_groups.clone();
                if groups.is_empty() {
                    let mut whole = (**d).clone();
                    whole.group_failures();
                    groups = whole.failure_groups;
                }
                let lines: Vec<String> = groups
                    .iter()
                    .map(|g| {
                        let mut reason = g.reason.clone();
                        if reason.chars().count() > 160 {
                            reason = reason.chars().take(160).collect::<String>() + "…";
                        }
                        let examples = g
                            .examples
                            .iter()
                            .map(|e| format!("`{}`", esc(e)))
                            .collect::<Vec<_>>()
                            .join(", ");
                        let more = if g.targets > g.examples.len() { ", …" } else { "" };
                        format!("• {} × {}: {examples}{more}", g.targets, esc(&reason))
                    })
                    .collect();
                let mut lines = within_section(lines);
                let shown = lines.len();
                let listed: usize = groups.iter().take(shown).map(|g| g.targets).sum();
                if failed_total > listed {
                    let other = if shown > 0 { " for other reasons" } else { "" };
                    lines.push(format!(
                        "… {} failed{other} (the whole digest lists them)",
                        failed_total - listed
                    ));
                }
                b.push(section(&format!("*Problems ({failed_total})*\n{}", lines.join("\n"))));
            }
            if let Some(err) = &d.map_error {
                let err: String = err.chars().take(500).collect();
                b.push(context(&format!(
                    "The run stopped: {} ({} targets never started)",
                    esc(&err),
                    d.items_not_started
                )));
            }
            if let Some(key) = &d.digest_key {
                b.push(context(&format!("The whole digest: `{}`", esc(key))));
            }
            (text, b)
        }
        Message::SavingsReport { report: r, report_url } => {
            let (open, open_usd) = r.open();
            let text = format!(
                "Savings report {} to {}: {} estimated, {} realised per month",
                r.from,
                r.to,
                usd(Some(r.estimated_usd)),
                usd(Some(r.realised_usd))
            );
            let compliance = r
                .compliance
                .last()
                .map(|p| format!("{:.1}% (KPI {:.0}%)", p.overall_percent, r.compliance_kpi_percent))
                .unwrap_or_else(|| "no sweep recorded".into());
            let pairs = [
                (
                    "Estimated at detection",
                    format!("{}/month", usd(Some(r.estimated_usd))),
                ),
                (
                    "Realised by actions",
                    format!("{}/month ({:.1}%)", usd(Some(r.realised_usd)), r.realisation_percent),
                ),
                ("Open findings", format!("{open} ({}/month)", usd(Some(open_usd)))),
                ("Tag compliance", compliance),
                ("The autopilot itself", r.costs_and_saves()),
            ];
            let rules: Vec<String> = r
                .by_rule
                .iter()
                .map(|(k, t)| {
                    format!(
                        "• *{}*: {} findings, {} estimated, {} realised",
                        esc(k),
                        t.findings,
                        usd(Some(t.estimated_usd)),
                        usd(Some(t.realised_usd))
                    )
                })
                .collect();
            let mut b = vec![
                header(&format!("Savings report {} to {}", r.from, r.to)),
                fields(&pairs.iter().map(|(k, v)| (*k, v.clone())).collect::<Vec<_>>()),
            ];
            if !rules.is_empty() {
                b.push(section(&format!("*By rule*\n{}", rules.join("\n"))));
            }
            match report_url {
                Some(url) => b.push(section(&format!(
                    "<{url}|Open the full report> (charts by week, rule and owner)"
                ))),
                None => b.push(context(
                    "No link to the full HTML report: it was not uploaded to S3 (no report bucket).",
                )),
            }
            (text, b)
        }
        Message::Digest {
            mode,
            total_findings,
            total_usd,
            by_rule,
            top,
        } => {
            let text = format!(
                "{total_findings} findings, {}/month ({})",
                usd(Some(*total_usd)),
                mode.as_str()
            );
            let counts: Vec<String> = by_rule
                .iter()
                .map(|(r, c)| format!("{r}: {} ({}/month)", c.count, usd(Some(c.usd))))
                .collect();
            let mut b = vec![
                header(&format!("{total_findings} findings · {}/month", usd(Some(*total_usd)))),
                section(&format!("*By rule*\n{}", counts.join("\n"))),
            ];
            let mut lines = Vec::new();
            for item in top {
                let mut line = format!(
                    "• `{}` {} {} · {}/month · owner {}",
                    esc(&item.resource_id),
                    item.rule,
                    item.action,
                    usd(item.usd),
                    esc(&item.owner)
                );
                if let (Some(a), Some(r)) = (&item.approve_url, &item.reject_url) {
                    line.push_str(&format!(" · <{a}|Approve> · <{r}|Reject>"));
                }
                lines.push(line);
            }
            b.push(section(&format!(
                "*Top {} by dollars*\n{}",
                top.len(),
                lines.join("\n")
            )));
            if *total_findings > top.len() {
                b.push(context(&format!(
                    "{} more in the run report; each has its own request in the state table",
                    total_findings - top.len()
                )));
            }
            (text, b)
        }
        Message::Held {
            rule,
            would_act,
            limit,
            scanned,
            detail,
            acted,
        } => {
            let text = format!("{rule}: would act on {would_act}, limit {limit}: nothing done automatically");
            let stopped = if *acted == 0 {
                "stopped the whole run".to_string()
            } else {
                format!("held back all but {acted}")
            };
            let b = vec![
                header(&format!("{rule}: held back · would act on {would_act}, limit {limit}")),
                section(&esc(detail)),
                context(&format!(
                    "{scanned} scanned · the blast-radius limit (max_actions, max_actions_percent) {stopped}; approval requests follow where a human can decide"
                )),
            ];
            (text, b)
        }
    };
    // The fallback `text` is mrkdwn too (notifications, screen readers): whatever a person or a
    // resource put in it (an address typed on the page, a tag, a bucket name) is escaped, so
    // `<!channel>` or `<https://evil|CFO>` stays text.
    json!({"text": esc(&text), "blocks": blocks})
}

/// Anything that arrives on the topic, as a Slack message.
pub fn render_incoming(incoming: &Incoming, opts: RenderOptions) -> Value {
    match incoming {
        Incoming::FinOps(message) => render(message, opts),
        Incoming::Alarm(alarm) => render_alarm(alarm),
    }
}

/// A CloudWatch alarm's state change: a firing alarm is loud, a recovery reads as one, and a
/// lack of data is neither.
pub fn render_alarm(a: &AlarmNotification) -> Value {
    let (icon, text) = match a.new_state_value.as_str() {
        "ALARM" => (":rotating_light:", format!("ALARM: {} in {}", a.alarm_name, a.region)),
        "OK" => (
            ":white_check_mark:",
            format!("Recovered (OK): {} in {}", a.alarm_name, a.region),
        ),
        other => (":grey_question:", format!("{other}: {} in {}", a.alarm_name, a.region)),
    };
    let mut b = vec![header(&format!("{icon} {} · {}", a.new_state_value, a.alarm_name))];
    if let Some(d) = a.alarm_description.as_deref().filter(|d| !d.trim().is_empty()) {
        b.push(section(&esc(d)));
    }
    b.push(section(&format!("*Reason*\n{}", esc(&a.new_state_reason))));
    let state = match &a.old_state_value {
        Some(old) => format!("{} (was {old})", a.new_state_value),
        None => a.new_state_value.clone(),
    };
    let region = match a.region_code() {
        Some(code) => format!("{} ({code})", a.region),
        None => a.region.clone(),
    };
    let changed = a
        .changed_at()
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| a.state_change_time.clone());
    let mut pairs = vec![
        ("State", state),
        ("Changed", changed),
        ("Account / region", format!("{} / {}", a.aws_account_id, esc(&region))),
    ];
    if let Some(metric) = a.metric() {
        pairs.push(("Metric", esc(&metric)));
    }
    if let Some(condition) = a.condition() {
        pairs.push(("Fires when", esc(&condition)));
    }
    b.push(fields(&pairs));
    if let Some(arn) = &a.alarm_arn {
        b.push(context(&format!("CloudWatch alarm `{}`", esc(arn))));
    }
    json!({"text": esc(&text), "blocks": b})
}

/// The block id of the Snooze reason field; Slack sends its text in the click's `state`.
pub const SNOOZE_REASON_BLOCK: &str = "finops_snooze_reason";
/// The action id of the reason field.
pub const SNOOZE_REASON_ACTION: &str = "reason";
/// The action ids of the Snooze buttons start with this (`finops_snooze_30`).
pub const SNOOZE_ACTION_PREFIX: &str = "finops_snooze_";

/// The Snooze control: an optional reason and one button per length. Only a Slack app with
/// interactivity can take the click (a plain webhook's message has no way back), so nothing
/// is shown otherwise.
fn snooze_blocks(snooze: &[crate::notify::SnoozeButton], opts: RenderOptions) -> Vec<Value> {
    if !opts.interactive || snooze.is_empty() {
        return Vec::new();
    }
    let buttons: Vec<Value> = snooze
        .iter()
        .map(|z| {
            json!({
                "type": "button",
                "text": {"type": "plain_text", "text": format!("Snooze {} days", z.days)},
                "action_id": format!("{SNOOZE_ACTION_PREFIX}{}", z.days),
                "value": z.token,
            })
        })
        .collect();
    vec![
        json!({
            "type": "input",
            "block_id": SNOOZE_REASON_BLOCK,
            "optional": true,
            "label": {"type": "plain_text", "text": "Snooze reason"},
            "element": {
                "type": "plain_text_input",
                "action_id": SNOOZE_REASON_ACTION,
                "max_length": 200,
                "placeholder": {"type": "plain_text", "text": "why it should be left alone (optional)"},
            },
        }),
        json!({"type": "actions", "block_id": "finops_snooze", "elements": buttons}),
    ]
}

fn with_value(mut b: Value, url: &str, opts: RenderOptions) -> Value {
    if opts.interactive {
        // The token is the link's query parameter; Slack sends it back as the action's value.
        if let Some((_, token)) = url.split_once("token=") {
            b["value"] = json!(token);
        }
    }
    b
}

fn cost_alert(f: &Finding) -> (String, Vec<Value>) {
    let e = serde_json::to_value(&f.evidence).unwrap_or(Value::Null);
    let num = |k: &str| e.get(k).and_then(Value::as_f64);
    let text = format!(
        "Cost alert: {} at {} month to date (forecast {})",
        f.resource.id,
        usd(num("month_to_date_usd")),
        usd(num("forecast_usd"))
    );
    let mut b = vec![
        header(&format!("Cost alert · {}", f.resource.id)),
        fields(&[
            ("Month to date", usd(num("month_to_date_usd"))),
            ("Forecast", usd(num("forecast_usd"))),
            ("Threshold", usd(num("threshold_usd"))),
            (
                "Level",
                e.get("level_percent")
                    .map(|v| format!("{v}%"))
                    .unwrap_or_else(|| "-".into()),
            ),
            (
                "Forecast method",
                e.get("forecast_method")
                    .and_then(Value::as_str)
                    .unwrap_or("-")
                    .to_string(),
            ),
        ]),
    ];
    if let Some(top) = e.get("top_services").and_then(Value::as_array) {
        let lines: Vec<String> = top
            .iter()
            .take(5)
            .map(|s| {
                // (service, dollars) pairs.
                format!(
                    "• {} {}",
                    esc(s.get(0).and_then(Value::as_str).unwrap_or("?")),
                    usd(s.get(1).and_then(Value::as_f64))
                )
            })
            .collect();
        if !lines.is_empty() {
            b.push(section(&format!("*Top services*\n{}", lines.join("\n"))));
        }
    }
    (text, b)
}

// ---------------------------------------------------------------------------------------------
// Posting

/// Where messages go: an incoming webhook, or `chat.postMessage` with a bot token.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Destination {
    Webhook { webhook_url: String },
    Bot { bot_token: String, channel: String },
}

impl std::fmt::Debug for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Webhook URLs and tokens are secrets.
        match self {
            Destination::Webhook { .. } => f.write_str("Webhook(..)"),
            Destination::Bot { channel, .. } => write!(f, "Bot(channel {channel})"),
        }
    }
}

/// The address of Slack user `user_id`, from `users.info` with the bot token (scope
/// `users:read.email`). `None` when Slack does not say (no such user, no scope, no address): the
/// caller then cannot tell this user from a person who signed in, and counts them as one.
pub async fn user_email(http: &HttpClient, api_base: &str, bot_token: &str, user_id: &str) -> Result<Option<String>> {
    if user_id.is_empty() || !user_id.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Ok(None);
    }
    let url = format!("{}/users.info?user={user_id}", api_base.trim_end_matches('/'));
    let auth = format!("Bearer {bot_token}");
    let resp = http
        .send("slack", "GET", &url, &[("authorization", &auth)], Vec::new())
        .await?;
    if resp.status != 200 {
        return Err(crate::http::failure("slack", &resp));
    }
    let v: Value = serde_json::from_str(&resp.body).map_err(|_| Error::Http {
        service: "slack",
        message: "users.info answered something that is not JSON".into(),
    })?;
    if v.get("ok") != Some(&Value::Bool(true)) {
        let err = v.get("error").and_then(Value::as_str).unwrap_or("unknown error");
        tracing::warn!(error = err, "users.info gave no address");
        return Ok(None);
    }
    Ok(v.pointer("/user/profile/email")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|e| e.contains('@'))
        .map(str::to_string))
}

/// Posts messages, waiting as Slack asks on 429.
#[derive(Debug, Clone)]
pub struct SlackPoster {
    pub http: HttpClient,
    pub destination: Destination,
    /// Bot API base (`https://slack.com/api`); tests point it at a local server.
    pub api_base: String,
    /// The longest `Retry-After` waited for inside one invocation; longer fails (Lambda retries).
    pub max_wait: Duration,
    /// Posts tried per message (a 429 within `max_wait` is tried again).
    pub attempts: u32,
}

impl SlackPoster {
    /// A poster with Slack's API base, at most 3 tries and 20 s of waiting.
    pub fn new(http: HttpClient, destination: Destination) -> Self {
        SlackPoster {
            http,
            destination,
            api_base: "https://slack.com/api".into(),
            max_wait: Duration::from_secs(20),
            attempts: 3,
        }
    }

    /// Posts one rendered message (`{"text", "blocks"}`).
    pub async fn post(&self, payload: &Value) -> Result<()> {
        let (url, headers, body) = match &self.destination {
            Destination::Webhook { webhook_url } => (webhook_url.clone(), None, payload.clone()),
            Destination::Bot { bot_token, channel } => {
                let mut body = payload.clone();
                body["channel"] = json!(channel);
                (
                    format!("{}/chat.postMessage", self.api_base.trim_end_matches('/')),
                    Some(format!("Bearer {bot_token}")),
                    body,
                )
            }
        };
        let bytes = serde_json::to_vec(&body).map_err(|e| Error::Config(format!("cannot serialise a post: {e}")))?;
        let mut h: Vec<(&str, &str)> = vec![("content-type", "application/json; charset=utf-8")];
        if let Some(auth) = &headers {
            h.push(("authorization", auth));
        }
        let retry = RetryAfter {
            attempts: self.attempts,
            max_wait: self.max_wait,
        };
        let resp = self
            .http
            .send_honouring_retry_after("slack", "POST", &url, &h, bytes, retry)
            .await?;
        if resp.status != 200 {
            return Err(crate::http::failure("slack", &resp));
        }
        if matches!(self.destination, Destination::Bot { .. }) {
            // chat.postMessage answers 200 with {"ok": false, "error": ...} on failure.
            let v: Value = serde_json::from_str(&resp.body).map_err(|_| Error::Http {
                service: "slack",
                message: "chat.postMessage answered something that is not JSON".into(),
            })?;
            if v.get("ok") != Some(&Value::Bool(true)) {
                let err = v.get("error").and_then(Value::as_str).unwrap_or("unknown error");
                return Err(if err == "ratelimited" || err == "internal_error" {
                    Error::Http {
                        service: "slack",
                        message: format!("chat.postMessage: {err}"),
                    }
                } else {
                    Error::Refused {
                        service: "slack",
                        message: format!("chat.postMessage: {err}"),
                    }
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"8f742231b10e8888abcd99yyyzzz85a5";

    #[test]
    fn a_genuine_signature_verifies_and_anything_else_is_refused() {
        let now: DateTime<Utc> = "2026-11-26T08:00:00Z".parse().unwrap();
        let ts = now.timestamp();
        let body = b"payload=%7B%22type%22%3A%22block_actions%22%7D";
        let sig = sign(SECRET, ts, body);
        let t = ts.to_string();
        assert_eq!(verify_signature(SECRET, Some(&t), Some(&sig), body, now), Ok(()));
        assert_eq!(
            verify_signature(b"another-secret", Some(&t), Some(&sig), body, now),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_signature(SECRET, Some(&t), Some(&sig), b"payload=changed", now),
            Err(SignatureError::Mismatch)
        );
        let late = now + chrono::Duration::seconds(MAX_SIGNATURE_AGE_SECONDS + 1);
        assert_eq!(
            verify_signature(SECRET, Some(&t), Some(&sig), body, late),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify_signature(SECRET, None, Some(&sig), body, now),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            verify_signature(SECRET, Some(&t), Some("v0=zz"), body, now),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn slack_s_documented_example_verifies() {
        // The example from Slack's "Verifying requests from Slack" page.
        let body = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
        let now = DateTime::from_timestamp(1_531_420_618, 0).unwrap();
        assert_eq!(
            verify_signature(
                SECRET,
                Some("1531420618"),
                Some("v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"),
                body,
                now
            ),
            Ok(())
        );
    }

    #[test]
    fn the_template_s_error_alarm_without_a_description_shows_its_metric_math_and_insufficient_data_is_not_an_alarm() {
        let body = r#"{"AlarmName":"finops-ErrorsAlarm-X1","AlarmDescription":null,"AWSAccountId":"123456789012",
            "NewStateValue":"INSUFFICIENT_DATA","NewStateReason":"Insufficient Data: 1 datapoint was unknown.",
            "StateChangeTime":"2026-11-26T06:05:12.345+0000","Region":"EU (Ireland)","OldStateValue":"OK",
            "Trigger":{"Period":300,"EvaluationPeriods":1,"ComparisonOperator":"GreaterThanThreshold","Threshold":0.0,
            "Metrics":[{"Expression":"SUM([idle, ebs])","Id":"errors","ReturnData":true}]}}"#;
        let Incoming::Alarm(a) = Incoming::parse(body).unwrap() else {
            panic!("not read as an alarm")
        };
        let post = render_alarm(&a);
        let blocks = post["blocks"].as_array().unwrap();
        assert_eq!(
            blocks[0]["text"]["text"],
            ":grey_question: INSUFFICIENT_DATA · finops-ErrorsAlarm-X1"
        );
        assert!(blocks[1]["text"]["text"].as_str().unwrap().starts_with("*Reason*"));
        let text = post.to_string();
        assert!(
            text.contains("metric math: SUM([idle, ebs])") && text.contains("EU (Ireland)"),
            "{text}"
        );
    }
}

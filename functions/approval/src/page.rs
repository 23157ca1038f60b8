//! The small HTML pages a person sees: the confirmation (a GET never decides; its button POSTs)
//! and the result. Self-contained, no scripts; rendered with `maud`, which escapes every value,
//! so no value can be left unescaped by mistake.

use maud::{html, Markup, PreEscaped, DOCTYPE};
use remediation::approval::Decision;
use remediation::decide::Verdict;
use remediation::model::Finding;

const STYLE: &str =
    "body{font-family:system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem;color:#1d1d1f}\
dl{display:grid;grid-template-columns:max-content 1fr;gap:.3rem 1rem}dt{font-weight:600}\
button,a.button{font-size:1rem;padding:.5rem 1.2rem;border-radius:.4rem;border:0;color:#fff;background:#1f7a3d;cursor:pointer;text-decoration:none;display:inline-block}\
button.reject,button.roll-back,a.reject,a.roll-back{background:#b3261e}input{font-size:1rem;padding:.4rem;width:18rem}\
.status{color:#555}.unverified{color:#8a5a00}";

fn shell(title: &str, body: Markup) -> String {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width";
                meta name="robots" content="noindex";
                title { (title) }
                // A constant of this file, not data.
                style { (PreEscaped(STYLE)) }
            }
            body { main { (body) } }
        }
    }
    .into_string()
}

fn usd(v: Option<f64>) -> String {
    v.map(|v| format!("${v:.2}/month")).unwrap_or_else(|| "unknown".into())
}

fn verb(decision: Decision) -> &'static str {
    match decision {
        Decision::Approve => "Approve",
        Decision::Reject => "Reject",
        Decision::Rollback => "Roll back",
    }
}

/// How the person on the page may decide.
#[derive(Debug, Clone, Default)]
pub struct Ways {
    /// Where the form posts (the deployment's `/decide`).
    pub action: String,
    /// The token the form carries (none on the page a Jira issue links to).
    pub token: Option<String>,
    /// Signed in as this person: the form decides as them, with `session`.
    pub signed_in_as: Option<String>,
    /// The sign-in's session id (kept on the server, single use).
    pub session: Option<String>,
    /// Where a sign-in through the identity provider starts.
    pub sign_in: Option<String>,
    /// The policy lets anyone with the link decide by typing an address (recorded unverified).
    pub typed: bool,
}

/// What the confirmation page shows.
#[derive(Debug, Clone)]
pub struct Confirm<'a> {
    pub decision: Decision,
    pub finding: &'a Finding,
    pub approvers: &'a [String],
    /// How many verified people the approvals so far are.
    pub have: u32,
    pub required: u32,
    pub expires: Option<String>,
    /// Why this decision needs an explicit tick (a rollback that makes data public again under
    /// the emergency stop): shown, and the forms carry the tick.
    pub confirm_because: Option<&'a str>,
    /// For a rollback: what it will do, as recorded.
    pub will_do: Option<&'a str>,
    /// For a rollback: the digest of the record shown, carried back by the forms.
    pub shown: Option<&'a str>,
    pub ways: Ways,
}

/// The form field of that tick (`yes`).
pub const CONFIRM_FIELD: &str = "confirm_under_stop";
/// The form field of the shown record's digest.
pub const SHOWN_FIELD: &str = "shown";

/// The confirmation page.
pub fn confirm(c: &Confirm<'_>) -> String {
    let f = c.finding;
    let verb = verb(c.decision);
    let class = verb.to_ascii_lowercase().replace(' ', "-");
    let title = format!("{verb}: {} {}", f.action.as_str(), f.resource.id);
    let mut rows = vec![
        ("Rule", f.rule.clone()),
        ("Resource", f.resource.id.clone()),
        (
            "Account / region",
            format!("{} / {}", f.resource.account, f.resource.region),
        ),
        ("Owner", f.owner().to_string()),
        ("Action", f.action.as_str().to_string()),
        ("Saves", usd(f.estimated_monthly_savings_usd)),
    ];
    if c.decision != Decision::Reject {
        let so_far = if c.approvers.is_empty() {
            String::new()
        } else {
            format!(" ({})", c.approvers.join(", "))
        };
        rows.push(("Approvals", format!("{} of {} verified{so_far}", c.have, c.required)));
    }
    if let Some(e) = &c.expires {
        rows.push(("Expires", e.clone()));
    }
    if let Some(w) = c.will_do {
        rows.push(("Rolling back will", w.to_string()));
    }
    let w = &c.ways;
    let body = html! {
        h1 { (title) "?" }
        @if c.decision == Decision::Approve && finops_checks::CATALOG.cannot_be_undone(f) {
            p.warning #irreversible {
                strong { "This cannot be undone." }
                " No snapshot is taken before the delete: once approved, the volume and its data are gone for good."
            }
        }
        @if let Some(because) = c.confirm_because {
            p.warning #under-stop { strong { "Emergency stop: " } (because) }
        }
        p #why { (finops_checks::CATALOG.why(f)) }
        @if let Some(svg) = finops_checks::CATALOG.chart_svg(f) {
            // Numbers and dates only, drawn by the check's own code from its typed evidence:
            // nothing from outside is in it.
            figure #days { (PreEscaped(svg)) }
        }
        dl { @for (k, v) in &rows { dt { (k) } dd { (v) } } }
        details {
            summary { "All the evidence" }
            ul { @for l in remediation::slack::evidence_lines(f) { li { (l) } } }
        }
        @if let (Some(who), Some(session)) = (&w.signed_in_as, &w.session) {
            form method="post" action=(w.action) {
                input type="hidden" name="session" value=(session);
                @if let Some(shown) = c.shown {
                    input type="hidden" name=(SHOWN_FIELD) value=(shown);
                }
                @if c.confirm_because.is_some() {
                    p { label { input type="checkbox" name=(CONFIRM_FIELD) value="yes" required; " I know the emergency stop is on; roll back anyway" } }
                }
                p { "Signed in as " strong #who { (who) } "." }
                p { button #confirm class=(class) type="submit" { (verb) " as " (who) } }
            }
        } @else {
            @if let Some(url) = &w.sign_in {
                p { a #sign-in class={ "button " (class) } href=(url) { "Sign in to " (verb.to_ascii_lowercase()) } }
            }
            // Two verified people are needed: a typed address never counts as one of them.
            @if w.typed && w.token.is_some() && c.decision == Decision::Approve && c.required > 1 {
                p #needs-verified {
                    "This request needs " (c.required) " verified approvers; a typed address is recorded but never counts as one. "
                    @if w.sign_in.is_some() { "Sign in above" } @else { "Use the Approve button in Slack" }
                    " so that your approval counts."
                }
            }
            @if let (true, Some(token)) = (w.typed, &w.token) {
                form method="post" action=(w.action) {
                    input type="hidden" name="token" value=(token);
                    @if let Some(shown) = c.shown {
                        input type="hidden" name=(SHOWN_FIELD) value=(shown);
                    }
                    @if c.confirm_because.is_some() {
                        p { label { input type="checkbox" name=(CONFIRM_FIELD) value="yes" required; " I know the emergency stop is on; roll back anyway" } }
                    }
                    p {
                        label {
                            "Your email (recorded in the audit trail as unverified: a typed address proves nothing, "
                            "so it never counts as one of two approvers)"
                            br;
                            input #approver name="approver" type="email" required autocomplete="email";
                        }
                    }
                    p { button #confirm class=(class) type="submit" { (verb) } }
                }
            }
            @if w.sign_in.is_none() && !(w.typed && w.token.is_some()) {
                p #slack-only { "Decide with the buttons of the Slack message: this page cannot tell who you are." }
            }
        }
        p.status { "Nothing changes until you press " (verb) "." }
    };
    shell(&title, body)
}

/// The page after a decision (or a refusal).
pub fn result(v: &Verdict) -> String {
    let body = html! {
        h1 #result { (v.title) }
        p #detail { (v.message) }
    };
    shell(&v.title, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOSTILE: &str = "<script>alert(\"x\")</script> & 'quotes' é漢";

    fn hostile_finding() -> Finding {
        serde_json::from_value(serde_json::json!({
            "id": "f1", "rule": HOSTILE,
            "resource": {"kind": "ec2-instance", "id": HOSTILE, "account": HOSTILE, "region": "us-east-1",
                         "tags": {"Owner": HOSTILE}},
            "severity": "medium", "evidence": {"note": HOSTILE},
            "estimated_monthly_savings_usd": 1.0, "action": "stop", "detected_at": "2026-12-01T00:00:00Z"
        }))
        .expect("a finding")
    }

    fn escaped(page: &str) {
        assert!(!page.contains("<script>"), "{page}");
        assert!(page.contains("&lt;script&gt;"), "{page}");
        assert!(!page.contains("\"x\""), "{page}");
        assert!(page.contains("é漢"), "non-ASCII kept: {page}");
    }

    #[test]
    fn every_page_escapes_hostile_values() {
        let f = hostile_finding();
        let approvers = vec![HOSTILE.to_string()];
        for ways in [
            Ways {
                action: "https://x/decide".into(),
                session: Some(HOSTILE.into()),
                signed_in_as: Some(HOSTILE.into()),
                ..Ways::default()
            },
            Ways {
                action: "https://x/decide".into(),
                token: Some(HOSTILE.into()),
                sign_in: Some(format!("https://x/oidc/start?{HOSTILE}")),
                typed: true,
                ..Ways::default()
            },
            Ways::default(),
        ] {
            for decision in [Decision::Approve, Decision::Reject, Decision::Rollback] {
                escaped(&confirm(&Confirm {
                    decision,
                    finding: &f,
                    approvers: &approvers,
                    have: 1,
                    required: 2,
                    expires: Some(HOSTILE.into()),
                    confirm_because: None,
                    will_do: None,
                    shown: None,
                    ways: ways.clone(),
                }));
            }
        }
        escaped(&result(&Verdict {
            status: 200,
            title: HOSTILE.into(),
            message: HOSTILE.into(),
        }));
    }

    fn idle_finding() -> Finding {
        let days: Vec<serde_json::Value> = (1..=14)
            .map(|d| {
                serde_json::json!({"date": format!("2026-11-{d:02}"), "cpu_average_percent": if d == 3 { None } else { Some(0.8) },
                                   "network_bytes": 50_000.0, "idle": d != 3})
            })
            .collect();
        serde_json::from_value(serde_json::json!({
            "id": "idle-ec2:123456789012:us-east-1:i-0abc", "rule": "idle-ec2",
            "resource": {"kind": "ec2-instance", "id": "i-0abc", "account": "123456789012", "region": "us-east-1",
                         "tags": {"Owner": "ana"}},
            "severity": "medium",
            "evidence": {"instance_type": "t3.large", "lookback_days": 14, "idle_days": 13, "idle_days_required": 13,
                         "cpu_daily_average_below": 5.0, "network_bytes_per_day_below": 5_000_000.0,
                         "max_daily_cpu_average_percent": 0.8, "max_daily_network_bytes": 50_000.0,
                         "hourly_price_usd": 0.0832, "days": days},
            "estimated_monthly_savings_usd": 60.74, "action": "stop", "detected_at": "2026-12-01T00:00:00Z"
        }))
        .expect("an idle finding")
    }

    #[test]
    fn the_page_says_why_in_one_sentence_and_draws_the_days_it_judged() {
        let f = idle_finding();
        let page = confirm(&Confirm {
            decision: Decision::Approve,
            finding: &f,
            approvers: &[],
            have: 0,
            required: 1,
            expires: None,
            confirm_because: None,
            will_do: None,
            shown: None,
            ways: Ways::default(),
        });
        assert!(
            page.contains(r#"<p id="why">13/14 days idle (the policy asks for 13): CPU at most 0.8 %/day against a limit of 5.0 %, network at most 0.05 MB/day against 5.00 MB.</p>"#),
            "{page}"
        );
        let svg = &page[page.find("<svg").expect("a chart")..page.find("</svg>").expect("closed")];
        // Two series of fourteen days: 13 idle bars each, the day without CPU data grey.
        assert_eq!(svg.matches("fill=\"#1f7a3d\"").count(), 13 + 13, "{svg}");
        assert!(svg.contains("2026-11-03: no data"), "{svg}");
        assert_eq!(svg.matches("stroke-dasharray").count(), 2, "both limits drawn");
        // The raw keys are still there for who wants them, folded away.
        assert!(page.contains("<details><summary>All the evidence</summary>"), "{page}");
    }

    #[test]
    fn a_two_person_request_says_a_typed_address_cannot_count_and_no_page_shows_an_http_status() {
        let f = idle_finding();
        let typed = Ways {
            action: "https://x/decide".into(),
            token: Some("t".into()),
            typed: true,
            ..Ways::default()
        };
        let page = confirm(&Confirm {
            decision: Decision::Approve,
            finding: &f,
            approvers: &[],
            have: 0,
            required: 2,
            expires: None,
            confirm_because: None,
            will_do: None,
            shown: None,
            ways: typed.clone(),
        });
        assert!(page.contains("This request needs 2 verified approvers"), "{page}");
        assert!(page.contains("Use the Approve button in Slack"), "{page}");
        let one = confirm(&Confirm {
            decision: Decision::Approve,
            finding: &f,
            approvers: &[],
            have: 0,
            required: 1,
            expires: None,
            confirm_because: None,
            will_do: None,
            shown: None,
            ways: typed,
        });
        assert!(!one.contains("needs-verified"), "{one}");
        let done = result(&Verdict {
            status: 202,
            title: "Approved".into(),
            message: "The instance is being stopped.".into(),
        });
        assert!(!done.contains("HTTP") && !done.contains("202"), "{done}");
    }
}

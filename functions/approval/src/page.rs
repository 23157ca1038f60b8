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
    pub ways: Ways,
}

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
    let w = &c.ways;
    let body = html! {
        h1 { (title) "?" }
        @if c.decision == Decision::Approve && f.cannot_be_undone() {
            p.warning #irreversible {
                strong { "This cannot be undone." }
                " No snapshot is taken before the delete: once approved, the volume and its data are gone for good."
            }
        }
        dl { @for (k, v) in &rows { dt { (k) } dd { (v) } } }
        h2 { "Evidence" }
        ul { @for l in remediation::slack::evidence_lines(f) { li { (l) } } }
        @if let (Some(who), Some(session)) = (&w.signed_in_as, &w.session) {
            form method="post" action=(w.action) {
                input type="hidden" name="session" value=(session);
                p { "Signed in as " strong #who { (who) } "." }
                p { button #confirm class=(class) type="submit" { (verb) " as " (who) } }
            }
        } @else {
            @if let Some(url) = &w.sign_in {
                p { a #sign-in class={ "button " (class) } href=(url) { "Sign in to " (verb.to_ascii_lowercase()) } }
            }
            @if let (true, Some(token)) = (w.typed, &w.token) {
                form method="post" action=(w.action) {
                    input type="hidden" name="token" value=(token);
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
        p.status { "HTTP " (v.status) }
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
}

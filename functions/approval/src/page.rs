//! The two small HTML pages a person sees: the confirmation (a GET never decides; its button
//! POSTs) and the result. Self-contained, no scripts, everything escaped.

use remediation::approval::Decision;
use remediation::decide::Verdict;
use remediation::model::Finding;

/// Escapes text for HTML content and attribute values.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

const STYLE: &str =
    "body{font-family:system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem;color:#1d1d1f}\
dl{display:grid;grid-template-columns:max-content 1fr;gap:.3rem 1rem}dt{font-weight:600}\
button{font-size:1rem;padding:.5rem 1.2rem;border-radius:.4rem;border:0;color:#fff;background:#1f7a3d;cursor:pointer}\
button.reject,button.roll-back{background:#b3261e}input{font-size:1rem;padding:.4rem;width:18rem}\
.status{color:#555}";

fn shell(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">\
<meta name=\"robots\" content=\"noindex\"><title>{t}</title><style>{STYLE}</style></head><body><main>{body}</main></body></html>",
        t = esc(title)
    )
}

fn usd(v: Option<f64>) -> String {
    v.map(|v| format!("${v:.2}/month")).unwrap_or_else(|| "unknown".into())
}

/// The confirmation page for `decision` on `finding`; its form POSTs `token` and the approver.
pub fn confirm(
    decision: Decision,
    finding: &Finding,
    token: &str,
    approvers: &[String],
    required: u32,
    expires: Option<&str>,
) -> String {
    let verb = match decision {
        Decision::Approve => "Approve",
        Decision::Reject => "Reject",
        Decision::Rollback => "Roll back",
    };
    let title = format!("{verb}: {} {}", finding.action.as_str(), finding.resource.id);
    let evidence: String = remediation::slack::evidence_lines(finding)
        .iter()
        .map(|l| format!("<li>{}</li>", esc(l)))
        .collect();
    let mut rows = vec![
        ("Rule", finding.rule.clone()),
        ("Resource", finding.resource.id.clone()),
        (
            "Account / region",
            format!("{} / {}", finding.resource.account, finding.resource.region),
        ),
        ("Owner", finding.owner().to_string()),
        ("Action", finding.action.as_str().to_string()),
        ("Saves", usd(finding.estimated_monthly_savings_usd)),
    ];
    if decision == Decision::Approve {
        rows.push((
            "Approvals",
            format!(
                "{} of {required}{}",
                approvers.len(),
                if approvers.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", approvers.join(", "))
                }
            ),
        ));
    }
    if let Some(e) = expires {
        rows.push(("Expires", e.to_string()));
    }
    let dl: String = rows
        .iter()
        .map(|(k, v)| format!("<dt>{}</dt><dd>{}</dd>", esc(k), esc(v)))
        .collect();
    let class = verb.to_ascii_lowercase().replace(' ', "-");
    let warning = if decision == Decision::Approve && finding.cannot_be_undone() {
        "<p class=\"warning\" id=\"irreversible\"><strong>This cannot be undone.</strong> No snapshot is taken before the delete: once approved, the volume and its data are gone for good.</p>"
    } else {
        ""
    };
    let body = format!(
        "<h1>{title}?</h1>{warning}<dl>{dl}</dl><h2>Evidence</h2><ul>{evidence}</ul>\
<form method=\"post\" action=\"decide\"><input type=\"hidden\" name=\"token\" value=\"{token}\">\
<p><label>Your email (recorded in the audit trail)<br><input id=\"approver\" name=\"approver\" type=\"email\" required autocomplete=\"email\"></label></p>\
<p><button id=\"confirm\" class=\"{class}\" type=\"submit\">{verb}</button></p></form>\
<p class=\"status\">Nothing changes until you press {verb}.</p>",
        title = esc(&title),
        token = esc(token),
        verb = esc(verb),
    );
    shell(&title, &body)
}

/// The page after a decision (or a refusal).
pub fn result(v: &Verdict) -> String {
    let body = format!(
        "<h1 id=\"result\">{}</h1><p id=\"detail\">{}</p><p class=\"status\">HTTP {}</p>",
        esc(&v.title),
        esc(&v.message),
        v.status
    );
    shell(&v.title, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_in_data_is_escaped() {
        assert_eq!(esc("<script>\"x\"&'"), "&lt;script&gt;&quot;x&quot;&amp;&#39;");
        let page = result(&Verdict {
            status: 200,
            title: "<b>".into(),
            message: "a&b".into(),
        });
        assert!(page.contains("&lt;b&gt;") && page.contains("a&amp;b") && !page.contains("<b>"));
    }
}

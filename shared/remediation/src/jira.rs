//! Jira Cloud REST v3: an issue per finding (summary, Atlassian Document Format description,
//! labels, priority), comments on what happens next, and the transition to Done. Basic auth with
//! an account email and API token; 429 `Retry-After` honoured; Jira's error body kept in errors.

use base64::Engine;
use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::http::{failure, HttpClient, RetryAfter};
use crate::model::Finding;
use crate::policy::JiraPolicy;
use crate::slack::{evidence_pairs, usd};

/// Longest summary Jira accepts.
const SUMMARY_MAX: usize = 255;

// ---------------------------------------------------------------------------------------------
// Atlassian Document Format

/// A text node.
pub fn text(t: impl Into<String>) -> Value {
    json!({"type": "text", "text": t.into()})
}

/// A bold text node.
pub fn strong(t: impl Into<String>) -> Value {
    json!({"type": "text", "text": t.into(), "marks": [{"type": "strong"}]})
}

/// A link.
pub fn link(t: impl Into<String>, href: &str) -> Value {
    json!({"type": "text", "text": t.into(), "marks": [{"type": "link", "attrs": {"href": href}}]})
}

/// A paragraph of inline nodes.
pub fn paragraph(inlines: Vec<Value>) -> Value {
    json!({"type": "paragraph", "content": inlines})
}

/// A bullet list, one paragraph per item.
pub fn bullets(items: Vec<Vec<Value>>) -> Value {
    json!({
        "type": "bulletList",
        "content": items
            .into_iter()
            .map(|inl| json!({"type": "listItem", "content": [paragraph(inl)]}))
            .collect::<Vec<_>>(),
    })
}

/// A document of blocks.
pub fn doc(blocks: Vec<Value>) -> Value {
    json!({"type": "doc", "version": 1, "content": blocks})
}

// ---------------------------------------------------------------------------------------------
// What an issue says

/// The issue's summary: rule, resource, owner and dollars, at most 255 characters.
pub fn summary(f: &Finding) -> String {
    let s = format!(
        "[FinOps] {}: {} (owner {}) {}/month",
        f.rule,
        f.resource.id,
        f.owner(),
        usd(f.estimated_monthly_savings_usd)
    );
    if s.chars().count() > SUMMARY_MAX {
        format!("{}…", s.chars().take(SUMMARY_MAX - 1).collect::<String>())
    } else {
        s
    }
}

/// The description: what was found, the evidence, the dollars and, when a decision is asked for,
/// a link to the decision page. Never a decision token: an issue is read by many, for long, and a
/// token is a bearer secret; the page asks for a sign-in (or points to Slack).
pub fn description(f: &Finding, decide_url: Option<&str>) -> Value {
    let mut blocks = vec![
        paragraph(vec![
            strong(format!("{} ", f.rule)),
            text(format!(
                "found {} {} in account {} ({}). Proposed action: {}. Severity: {}.",
                serde_json::to_value(f.resource.kind)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default(),
                f.resource.id,
                f.resource.account,
                f.resource.region,
                f.action.as_str(),
                f.severity.as_str()
            )),
        ]),
        paragraph(vec![
            strong("Estimated savings: "),
            text(format!("{} per month", usd(f.estimated_monthly_savings_usd))),
        ]),
        paragraph(vec![strong("Evidence")]),
        bullets(
            evidence_pairs(f)
                .into_iter()
                .map(|(k, v)| vec![strong(format!("{k}: ")), text(v)])
                .collect(),
        ),
        paragraph(vec![
            strong("Owner: "),
            text(f.owner().to_string()),
            text(format!(" · finding {} · detected {}", f.id, f.detected_at.to_rfc3339())),
        ]),
    ];
    if let Some(url) = decide_url {
        blocks.push(paragraph(vec![
            strong("Decide: "),
            link("Open the decision page", url),
            text(" (sign in to approve or reject, or use the Slack message's buttons)"),
        ]));
    }
    doc(blocks)
}

/// The label that names a finding's issue (Jira labels allow no spaces; finding ids are long), so
/// an issue whose create went unanswered can be found again.
pub fn finding_label(finding_id: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(finding_id.as_bytes());
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("finops-id-{hex}")
}

/// The create-issue body for a finding under `policy`.
pub fn issue_fields(f: &Finding, policy: &JiraPolicy, decide_url: Option<&str>) -> Value {
    let mut labels = policy.labels.clone();
    labels.push(format!("finops-{}", f.rule));
    labels.push(finding_label(&f.id));
    let mut fields = json!({
        "project": {"key": policy.project_key},
        "issuetype": {"name": policy.issue_type},
        "summary": summary(f),
        "description": description(f, decide_url),
        "labels": labels,
    });
    if let Some(p) = policy.priorities.get(f.severity.as_str()) {
        fields["priority"] = json!({"name": p});
    }
    json!({"fields": fields})
}

// ---------------------------------------------------------------------------------------------
// The client

/// Jira Cloud through REST v3.
#[derive(Clone)]
pub struct JiraClient {
    http: HttpClient,
    site: String,
    authorization: String,
    pub retry: RetryAfter,
}

impl std::fmt::Debug for JiraClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The authorization header is a secret.
        f.debug_struct("JiraClient").field("site", &self.site).finish()
    }
}

/// Jira's error body (`errorMessages`, `errors`) in one line, or the start of the body.
fn jira_errors(body: &str) -> String {
    let Ok(v) = serde_json::from_str::<Value>(body) else {
        return body.chars().take(300).collect();
    };
    let mut parts: Vec<String> = v["errorMessages"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default();
    if let Some(map) = v["errors"].as_object() {
        parts.extend(
            map.iter()
                .map(|(k, m)| format!("{k}: {}", m.as_str().unwrap_or_default())),
        );
    }
    if parts.is_empty() {
        body.chars().take(300).collect()
    } else {
        parts.join("; ")
    }
}

impl JiraClient {
    /// A client for `site` (e.g. `https://example.atlassian.net`) as `email` with `api_token`.
    pub fn new(http: HttpClient, site: &str, email: &str, api_token: &str) -> Self {
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("{email}:{api_token}"));
        JiraClient {
            http,
            site: site.trim_end_matches('/').to_string(),
            authorization: format!("Basic {basic}"),
            retry: RetryAfter::default(),
        }
    }

    async fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value> {
        let url = format!("{}{path}", self.site);
        let bytes = match body {
            Some(b) => {
                serde_json::to_vec(b).map_err(|e| Error::Config(format!("cannot serialise a Jira request: {e}")))?
            }
            None => Vec::new(),
        };
        let headers = [
            ("authorization", self.authorization.as_str()),
            ("accept", "application/json"),
            ("content-type", "application/json"),
        ];
        let resp = match self
            .http
            .send_honouring_retry_after("jira", method, &url, &headers, bytes, self.retry)
            .await
        {
            // A read changes nothing: unanswered, it is simply tried again.
            Err(Error::Unanswered { service, message }) if method == "GET" => {
                return Err(Error::Http { service, message })
            }
            other => other?,
        };
        match resp.status {
            200..=299 if resp.body.trim().is_empty() => Ok(Value::Null),
            200..=299 => serde_json::from_str(&resp.body).map_err(|_| Error::Http {
                service: "jira",
                message: format!("{method} {path} answered {} with a body that is not JSON", resp.status),
            }),
            _ => {
                let mut e = failure("jira", &resp);
                let detail = format!("{method} {path}: HTTP {}: {}", resp.status, jira_errors(&resp.body));
                match &mut e {
                    Error::Http { message, .. }
                    | Error::Refused { message, .. }
                    | Error::Unanswered { message, .. } => *message = detail,
                    _ => {}
                }
                Err(e)
            }
        }
    }

    /// Creates an issue; returns its key (`FINOPS-12`).
    pub async fn create_issue(&self, body: &Value) -> Result<String> {
        let v = self.call("POST", "/rest/api/3/issue", Some(body)).await?;
        v["key"].as_str().map(str::to_string).ok_or_else(|| Error::Http {
            service: "jira",
            message: "create issue answered without a key".into(),
        })
    }

    /// The key of the issue in `project` labelled `label`, if there is one (enhanced JQL search).
    pub async fn find_by_label(&self, project: &str, label: &str) -> Result<Option<String>> {
        let jql = format!("project = \"{project}\" AND labels = \"{label}\" ORDER BY created ASC");
        let query: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("jql", &jql)
            .append_pair("fields", "key")
            .append_pair("maxResults", "1")
            .finish();
        let v = self
            .call("GET", &format!("/rest/api/3/search/jql?{query}"), None)
            .await?;
        let Some(issues) = v["issues"].as_array() else {
            return Err(Error::Http {
                service: "jira",
                message: "the issue search answered without an issues list".into(),
            });
        };
        Ok(issues.first().and_then(|i| i["key"].as_str()).map(str::to_string))
    }

    /// Adds a comment (an ADF document) to an issue.
    pub async fn comment(&self, key: &str, body: Value) -> Result<()> {
        self.call(
            "POST",
            &format!("/rest/api/3/issue/{key}/comment"),
            Some(&json!({"body": body})),
        )
        .await
        .map(|_| ())
    }

    /// Moves an issue to Done: the transition named `preferred` if given, else the first whose
    /// target status is in the Done category. Returns the transition's name, or `None` when the
    /// issue has no such transition (already done, or a workflow without one).
    pub async fn resolve(&self, key: &str, preferred: &str) -> Result<Option<String>> {
        let path = format!("/rest/api/3/issue/{key}/transitions");
        let v = self.call("GET", &path, None).await?;
        let transitions = v["transitions"].as_array().cloned().unwrap_or_default();
        let chosen = transitions.iter().find(|t| {
            if preferred.is_empty() {
                t["to"]["statusCategory"]["key"].as_str() == Some("done")
            } else {
                t["name"].as_str().is_some_and(|n| n.eq_ignore_ascii_case(preferred))
            }
        });
        let Some(t) = chosen else {
            return Ok(None);
        };
        let id = t["id"].as_str().unwrap_or_default();
        self.call("POST", &path, Some(&json!({"transition": {"id": id}})))
            .await?;
        Ok(Some(t["name"].as_str().unwrap_or(id).to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jira_error_bodies_are_summarised() {
        assert_eq!(
            jira_errors(r#"{"errorMessages":[],"errors":{"priority":"Specify a valid priority"}}"#),
            "priority: Specify a valid priority"
        );
        assert_eq!(
            jira_errors(
                r#"{"errorMessages":["Issue does not exist or you do not have permission to see it."],"errors":{}}"#
            ),
            "Issue does not exist or you do not have permission to see it."
        );
        assert_eq!(jira_errors("<html>bad gateway</html>"), "<html>bad gateway</html>");
    }
}

//! The weekly report: reads the ledger months the report's weeks touch (one Query each) and the
//! recorded tag-compliance figures, builds the report, puts the HTML in S3 (or, for local runs, a
//! folder), and publishes the summary with its link (served by the approval function) for slack-notify.

use remediation::error::SdkErrorExt as _;
use std::path::PathBuf;
use std::time::Duration;

use aws_sdk_s3::presigning::PresigningConfig;
use chrono::{DateTime, Utc};
use lambda_runtime::LambdaEvent;
use remediation::config::Deps;
use remediation::notify::Message;
use remediation::report::{self, SavingsReport};
use remediation::Error;
use serde_json::{json, Value};

/// Environment variable: a folder the HTML report is written to instead of S3 (local runs, the demo).
pub const REPORT_DIR_VAR: &str = "FINOPS_REPORT_DIR";

/// Environment variable: the reports' bucket (the stack's); overrides `savings_report.bucket`.
pub use remediation::config::REPORT_BUCKET_VAR;

/// Owners listed in the SNS message (the HTML lists them all).
const OWNERS_IN_MESSAGE: usize = 10;

/// Lambda entry point.
pub async fn function_handler(event: LambdaEvent<Value>, deps: &Deps) -> Result<Value, Error> {
    let dir = std::env::var(REPORT_DIR_VAR)
        .ok()
        .filter(|d| !d.trim().is_empty())
        .map(PathBuf::from);
    handle(event.payload, deps, dir, Utc::now()).await
}

/// The bucket the report goes to: `FINOPS_REPORT_BUCKET`, else the policy's.
fn bucket(deps: &Deps) -> String {
    remediation::config::report_bucket(&deps.policy)
}

/// Where the HTML went.
#[derive(Debug, Clone, PartialEq)]
pub enum Stored {
    File(PathBuf),
    S3 { bucket: String, key: String, url: String },
    Nowhere,
}

async fn store(
    html: &str,
    r: &SavingsReport,
    deps: &Deps,
    dir: Option<PathBuf>,
    now: DateTime<Utc>,
) -> Result<Stored, Error> {
    let name = format!("savings-report-{}.html", r.to);
    if let Some(dir) = dir {
        std::fs::create_dir_all(&dir).map_err(|e| Error::Config(format!("cannot create {}: {e}", dir.display())))?;
        let path = dir.join(&name);
        std::fs::write(&path, html).map_err(|e| Error::Config(format!("cannot write {}: {e}", path.display())))?;
        return Ok(Stored::File(path));
    }
    let p = &deps.policy.savings_report;
    let bucket = bucket(deps);
    if bucket.is_empty() {
        return Ok(Stored::Nowhere);
    }
    let config = &deps.clients.config;
    // Path-style only against a local endpoint; AWS gets virtual-hosted URLs.
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(config)
            .force_path_style(config.endpoint_url().is_some())
            .interceptor(deps.clients.calls.clone())
            .build(),
    );
    let key = format!("{}{name}", p.prefix);
    s3.put_object()
        .bucket(&bucket)
        .key(&key)
        .content_type("text/html; charset=utf-8")
        .server_side_encryption(aws_sdk_s3::types::ServerSideEncryption::Aes256)
        .body(html.as_bytes().to_vec().into())
        .send()
        .await
        .map_err(|e| Error::aws("s3", "PutObject", e))?;
    let lasts = chrono::Duration::hours(i64::from(p.link_hours));
    // Deployed: a link the approval function serves, signed with the report-link key, for as long
    // as the policy says. An S3 URL presigned with this role's credentials would die with the
    // role's session (hours), whatever it asked for; only a run with long-term credentials and no
    // report-link key (a laptop) presigns.
    let url = match &deps.report_links {
        Some(links) => links.report_link(&key, now + lasts),
        // Deployed with a report-link secret that gave no key: never a presigned link that dies.
        None if std::env::var(remediation::secrets::REPORT_LINK_SECRET_ID_VAR).is_ok_and(|v| !v.trim().is_empty()) => {
            return Err(Error::Config(format!(
                "no report-link key: the secret named by {} has no report_link_key or could not be read",
                remediation::secrets::REPORT_LINK_SECRET_ID_VAR
            )))
        }
        None => {
            let presign = PresigningConfig::expires_in(Duration::from_secs(u64::from(p.link_hours.min(168)) * 3600))
                .map_err(|e| Error::Config(format!("savings_report.link_hours: {e}")))?;
            s3.get_object()
                .bucket(&bucket)
                .key(&key)
                .presigned(presign)
                .await
                .map_err(|e| Error::aws("s3", "GetObject (presign)", e))?
                .uri()
                .to_string()
        }
    };
    Ok(Stored::S3 { bucket, key, url })
}

/// Builds, stores and publishes the report of the weeks ending at `now`.
pub async fn handle(payload: Value, deps: &Deps, dir: Option<PathBuf>, now: DateTime<Utc>) -> Result<Value, Error> {
    remediation::events::scheduled(&payload)?;
    let state = deps.state.as_ref().ok_or_else(|| {
        Error::Config("savings-report needs the state table (FINOPS_TABLE): the ledger is in it".into())
    })?;
    let p = &deps.policy.savings_report;
    let r = SavingsReport::load(
        state,
        p.weeks,
        deps.policy.tag_compliance.kpi_percent,
        &finops_checks::CATALOG,
        now,
    )
    .await?;
    let html = report::render_html(&r);
    let stored = store(&html, &r, deps, dir, now).await?;
    let (location, url) = match &stored {
        Stored::File(path) => (path.display().to_string(), None),
        Stored::S3 { bucket, key, url } => (format!("s3://{bucket}/{key}"), Some(url.clone())),
        Stored::Nowhere => ("not stored (savings_report.bucket is not set)".to_string(), None),
    };
    let mut summary = r.clone();
    summary.by_owner.truncate(OWNERS_IN_MESSAGE);
    let mut notes = Vec::new();
    if let Some(publisher) = &deps.publisher {
        let message = Message::SavingsReport {
            report: Box::new(summary),
            report_url: url.clone(),
        };
        // The report is stored; if the summary cannot be published the invocation fails, so the
        // schedule's retry sends it.
        remediation::notify::Publisher::publish(publisher, std::slice::from_ref(&message)).await?;
    } else {
        notes.push("FINOPS_TOPIC_ARN is not set: the summary was not published".to_string());
    }
    let (open, open_usd) = r.open();
    tracing::info!(estimated = r.estimated_usd, realised = r.realised_usd, open, location = %location, "savings report");
    Ok(json!({
        "from": r.from,
        "to": r.to,
        "estimated_monthly_usd": r.estimated_usd,
        "realised_monthly_usd": r.realised_usd,
        "realisation_percent": r.realisation_percent,
        "own_cost_usd": r.own_cost_usd,
        "open_findings": open,
        "open_monthly_usd": open_usd,
        "findings": r.by_outcome.values().sum::<usize>(),
        "scans": r.scans,
        "report": location,
        "report_url": url,
        "notes": notes,
    }))
}

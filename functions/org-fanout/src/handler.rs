//! The state machine's two steps around the Distributed Map:
//! - `{"source": "finops.targets", "rule", "run_id"}`: lists the (account, region) targets and
//!   writes them as the Map's items to the results bucket; answers where they are, how many, and
//!   the Map's bounds from the policy.
//! - `{"source": "finops.summary", "rule", "run_id", "targets", "skipped", "map_error"}`: reads
//!   the Map's results (its ResultWriter manifest under the run's prefix in the function's own
//!   bucket), adds them up into one organisation digest, writes it whole beside the results and
//!   publishes its headline form (the largest accounts, failures grouped by reason).
//!
//! No item is run here: Step Functions runs them, each in the rule's own Lambda.

use chrono::{DateTime, Utc};
use lambda_runtime::LambdaEvent;
use remediation::config::Deps;
use remediation::error::SdkErrorExt as _;
use remediation::notify::{Message, Publisher};
use remediation::org::{self, ItemResult, Manifest, OrgDigest};
use remediation::Error;
use serde::Deserialize;
use serde_json::{json, Value};

/// Environment variable: the bucket that holds the items and the Map's results.
pub const RESULTS_BUCKET_VAR: &str = "FINOPS_RESULTS_BUCKET";
/// Environment variable: the executions each fanned-out function reserves (the template's
/// FanOutConcurrency): the Map never runs more items at once than that.
pub const MAX_CONCURRENCY_VAR: &str = "FINOPS_FANOUT_MAX_CONCURRENCY";

/// The rules a fan-out may run (those that scan one account and region; cost-alert reads the
/// payer's Cost Explorer, which already spans the organisation).
pub const FAN_OUT_RULES: &[&str] = &["idle-ec2", "ebs-cleanup", "s3-public", "tag-compliance", "rightsizing"];

/// The executions a rule keeps out of the Map for AWS Config's evaluations (its single-account
/// reservation in the template): the Map of such a rule runs at most FanOutConcurrency less this
/// (never fewer than 1), so a fan-out never throttles Config's calls.
pub const CONFIG_HEADROOM: &[(&str, u32)] = &[("tag-compliance", 5), ("s3-public", 2)];

/// The most items at once for `rule` when each function reserves `reserved` executions.
pub fn map_bound(rule: &str, reserved: u32) -> u32 {
    let headroom = CONFIG_HEADROOM.iter().find(|(r, _)| *r == rule).map_or(0, |(_, h)| *h);
    reserved.saturating_sub(headroom).max(1)
}

/// The largest result file read (ResultWriter splits its files well below this).
const MAX_RESULT_FILE_BYTES: usize = 64 * 1024 * 1024;

/// What the function holds between invocations.
pub struct App {
    pub deps: Deps,
    pub bucket: String,
    /// The most items at once the functions' reserved concurrency allows.
    pub max_concurrency_cap: Option<u32>,
    s3: aws_sdk_s3::Client,
}

impl App {
    /// Needs the results bucket and an `organization` section in the policy.
    pub fn new(deps: Deps) -> Result<App, Error> {
        let bucket = std::env::var(RESULTS_BUCKET_VAR)
            .ok()
            .map(|b| b.trim().to_string())
            .filter(|b| !b.is_empty())
            .ok_or_else(|| Error::Config(format!("org-fanout needs the results bucket ({RESULTS_BUCKET_VAR})")))?;
        let mut app = App::with_bucket(deps, bucket)?;
        app.max_concurrency_cap = match std::env::var(MAX_CONCURRENCY_VAR) {
            Err(_) => None,
            Ok(v) => Some(v.trim().parse::<u32>().ok().filter(|n| *n >= 1).ok_or_else(|| {
                Error::Config(format!(
                    "{MAX_CONCURRENCY_VAR} must be a whole number of at least 1, got {v:?}"
                ))
            })?),
        };
        Ok(app)
    }

    /// As [`App::new`], with the bucket given.
    pub fn with_bucket(deps: Deps, bucket: String) -> Result<App, Error> {
        if deps.policy.organization.is_none() {
            return Err(Error::Config(
                "org-fanout needs an organization section in the policy (accounts, regions, role)".into(),
            ));
        }
        let config = &deps.clients.config;
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(config)
                .force_path_style(config.endpoint_url().is_some())
                .interceptor(deps.clients.calls.clone())
                .retry_config(remediation::aws::patience::S3.retry())
                .timeout_config(remediation::aws::patience::S3.timeouts())
                .build(),
        );
        Ok(App {
            deps,
            bucket,
            max_concurrency_cap: None,
            s3,
        })
    }

    async fn put_json(&self, key: &str, value: &Value) -> Result<(), Error> {
        self.s3
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type("application/json")
            .body(value.to_string().into_bytes().into())
            .send()
            .await
            .map_err(|e| Error::aws("s3", "PutObject", e))?;
        Ok(())
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, bucket: &str, key: &str) -> Result<T, Error> {
        let out = self
            .s3
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| Error::aws("s3", "GetObject", e))?;
        // ResultWriter always sends a length; without one the body is not read at all.
        if out.content_length().is_none_or(|n| n > MAX_RESULT_FILE_BYTES as i64) {
            return Err(Error::unexpected(
                "s3",
                "GetObject",
                format!("{key} is larger than 64 MiB"),
            ));
        }
        let bytes = out
            .body
            .collect()
            .await
            .map_err(|e| Error::unexpected("s3", "GetObject", format!("{key}: {e}")))?
            .into_bytes();
        serde_json::from_slice(&bytes)
            .map_err(|e| Error::unexpected("s3", "GetObject", format!("{key} does not read: {e}")))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TargetsEvent {
    #[allow(dead_code)]
    source: String,
    rule: String,
    run_id: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SummaryEvent {
    #[allow(dead_code)]
    source: String,
    rule: String,
    run_id: String,
    /// When given, must be the function's own bucket and the run's prefix: the summary reads and
    /// writes nowhere else, whatever its caller says.
    #[serde(default)]
    bucket: Option<String>,
    #[serde(default)]
    prefix: Option<String>,
    /// How many items the targets step listed.
    #[serde(default)]
    targets: usize,
    /// How many accounts the targets step left out (their reasons are in `skipped.json`).
    #[serde(default)]
    skipped: usize,
    /// The Map's error when it failed as a whole (too many failed items, say).
    #[serde(default)]
    map_error: Option<Value>,
}

/// Lambda entry point.
pub async fn function_handler(event: LambdaEvent<Value>, app: &App) -> Result<Value, Error> {
    remediation::flow::within_invocation(event.context.deadline, handle(event.payload, app, Utc::now())).await
}

fn check_rule(rule: &str) -> Result<(), Error> {
    if FAN_OUT_RULES.contains(&rule) {
        Ok(())
    } else {
        Err(Error::Event(format!(
            "rule {rule:?} does not fan out (one of {})",
            FAN_OUT_RULES.join(", ")
        )))
    }
}

/// Dispatches on the event's `source`.
pub async fn handle(payload: Value, app: &App, now: DateTime<Utc>) -> Result<Value, Error> {
    match payload.get("source").and_then(Value::as_str) {
        Some("finops.targets") => {
            let e: TargetsEvent = serde_json::from_value(payload)
                .map_err(|e| Error::Event(format!("a finops.targets event that does not read: {e}")))?;
            check_rule(&e.rule)?;
            targets(app, &e.rule, &e.run_id).await
        }
        Some("finops.summary") => {
            let e: SummaryEvent = serde_json::from_value(payload)
                .map_err(|e| Error::Event(format!("a finops.summary event that does not read: {e}")))?;
            check_rule(&e.rule)?;
            summary(app, e, now).await
        }
        other => Err(Error::Event(format!(
            "expected source finops.targets or finops.summary, got {other:?}"
        ))),
    }
}

/// Where a run's items are written.
pub fn items_key(rule: &str, run_id: &str) -> String {
    format!("runs/{rule}/{run_id}/items.json")
}

/// Where a run's results are written (the Map's ResultWriter prefix).
pub fn results_prefix(rule: &str, run_id: &str) -> String {
    format!("runs/{rule}/{run_id}/results")
}

/// Where a run's skipped accounts are written, with why.
pub fn skipped_key(rule: &str, run_id: &str) -> String {
    format!("runs/{rule}/{run_id}/skipped.json")
}

/// Where a run's whole digest is written.
pub fn digest_key(rule: &str, run_id: &str) -> String {
    format!("runs/{rule}/{run_id}/digest.json")
}

/// The most accounts and failure groups an SNS message of the digest carries (the whole digest
/// is in S3): a few tens of KiB, far below SNS's 256 KiB.
pub const MESSAGE_ACCOUNTS: usize = 50;
pub const MESSAGE_FAILURE_GROUPS: usize = 20;

async fn targets(app: &App, rule: &str, run_id: &str) -> Result<Value, Error> {
    let org_policy = app
        .deps
        .policy
        .organization
        .as_ref()
        .ok_or_else(|| Error::Config("no organization section in the policy".into()))?;
    let own = app.deps.clients.identity().await?;
    let directory = remediation::aws::organizations::Organization::new(&app.deps.clients);
    let t = org::targets(&directory, org_policy, &own.account, &own.partition, run_id).await?;
    let key = items_key(rule, run_id);
    let items = serde_json::to_value(&t.items).map_err(|e| Error::Config(format!("cannot serialise items: {e}")))?;
    app.put_json(&key, &items).await?;
    // The skipped accounts beside the items: an organisation's list would swell the state data.
    let skipped =
        serde_json::to_value(&t.skipped).map_err(|e| Error::Config(format!("cannot serialise skipped: {e}")))?;
    app.put_json(&skipped_key(rule, run_id), &skipped).await?;
    tracing::info!(
        rule,
        run_id,
        items = t.items.len(),
        accounts = t.accounts,
        skipped = t.skipped.len(),
        "targets listed"
    );
    Ok(json!({
        "rule": rule,
        "run_id": run_id,
        "bucket": app.bucket,
        "key": key,
        "prefix": results_prefix(rule, run_id),
        "items": t.items.len(),
        "accounts": t.accounts,
        "regions": t.regions,
        "skipped": t.skipped.len(),
        // No more at once than each function has executions reserved: the rest would only wait
        // on Lambda's throttling and use up their retries.
        "max_concurrency": app
            .max_concurrency_cap
            .map_or(org_policy.max_concurrency, |cap| map_bound(rule, cap).min(org_policy.max_concurrency)),
        "tolerated_failure_percentage": org_policy.tolerated_failure_percentage,
    }))
}

async fn summary(app: &App, e: SummaryEvent, _now: DateTime<Utc>) -> Result<Value, Error> {
    let prefix = results_prefix(&e.rule, &e.run_id);
    if e.bucket.as_ref().is_some_and(|b| *b != app.bucket) || e.prefix.as_ref().is_some_and(|p| *p != prefix) {
        return Err(Error::Event(format!(
            "finops.summary reads only s3://{}/{prefix}, not s3://{}/{}",
            app.bucket,
            e.bucket.as_deref().unwrap_or(&app.bucket),
            e.prefix.as_deref().unwrap_or(&prefix)
        )));
    }
    // The manifest's key holds the Map Run's id, which only the Map knows: find it under the prefix.
    let mut manifests: Vec<String> = Vec::new();
    let mut pages = app
        .s3
        .list_objects_v2()
        .bucket(&app.bucket)
        .prefix(format!("{prefix}/"))
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|err| Error::aws("s3", "ListObjectsV2", err))?;
        manifests.extend(
            page.contents()
                .iter()
                .filter_map(|o| o.key())
                .filter(|k| k.ends_with("/manifest.json"))
                .map(str::to_string),
        );
    }
    let mut results: Vec<ItemResult> = Vec::new();
    // A results file that cannot be read is a failed target of its own, never a lost digest.
    let mut unreadable: Vec<org::FailedTarget> = Vec::new();
    let mut lost = |what: String, err: Error| {
        unreadable.push(org::FailedTarget {
            account: "unknown".into(),
            region: "unknown".into(),
            reason: format!("{what} could not be read, so its items are not counted: {err}"),
        })
    };
    for key in &manifests {
        let manifest: Manifest = match app.get_json(&app.bucket, key).await {
            Ok(m) => m,
            Err(err) => {
                lost(format!("the Map's manifest {key}"), err);
                continue;
            }
        };
        // The manifest names where its files are: only this bucket, under this run's prefix.
        if manifest.destination_bucket != app.bucket {
            lost(
                format!("the Map's manifest {key}"),
                Error::Event(format!(
                    "it names bucket {}, not {}",
                    manifest.destination_bucket, app.bucket
                )),
            );
            continue;
        }
        for files in manifest.result_files.values() {
            for f in files {
                if !f.key.starts_with(&format!("{prefix}/")) {
                    lost(
                        format!("the results file {}", f.key),
                        Error::Event(format!("it is not under {prefix}/")),
                    );
                    continue;
                }
                match app
                    .get_json::<Vec<ItemResult>>(&manifest.destination_bucket, &f.key)
                    .await
                {
                    Ok(mut part) => results.append(&mut part),
                    Err(err) => lost(format!("the results file {}", f.key), err),
                }
            }
        }
    }
    let mut digest: OrgDigest = org::digest(&e.run_id, &e.rule, &results);
    digest.map_error = e.map_error.as_ref().map(describe_error);
    digest.targets = e.targets;
    if manifests.is_empty() {
        digest.failed_targets.push(org::FailedTarget {
            account: "all".into(),
            region: "all".into(),
            reason: match &digest.map_error {
                Some(err) => format!("the Map wrote no results: {err}"),
                None => format!("no results under s3://{}/{prefix}", app.bucket),
            },
        });
    }
    digest.failed_targets.extend(unreadable);
    if e.skipped > 0 {
        // The accounts themselves when the file reads, else the step's count of them.
        let skipped: Vec<(String, String)> = match app.get_json(&app.bucket, &skipped_key(&e.rule, &e.run_id)).await {
            Ok(s) => {
                digest.accounts_skipped = Vec::len(&s);
                s
            }
            Err(err) => {
                digest.accounts_skipped = e.skipped;
                vec![(
                    "unknown".into(),
                    format!("{} accounts were left out, and why could not be read: {err}", e.skipped),
                )]
            }
        };
        for (account, why) in skipped {
            digest.failed_targets.push(org::FailedTarget {
                account,
                region: "all".into(),
                reason: format!("not scanned: {why}"),
            });
        }
    }
    digest.group_failures();
    // The whole digest beside the results; the message and the step's answer stay small.
    let key = digest_key(&e.rule, &e.run_id);
    let whole =
        serde_json::to_value(&digest).map_err(|err| Error::Config(format!("cannot serialise the digest: {err}")))?;
    app.put_json(&key, &whole).await?;
    if let Some(publisher) = &app.deps.publisher {
        let headline = digest.for_message(
            MESSAGE_ACCOUNTS,
            MESSAGE_FAILURE_GROUPS,
            &format!("s3://{}/{key}", app.bucket),
        );
        publisher
            .publish(&[Message::OrgDigest {
                digest: Box::new(headline),
            }])
            .await?;
    }
    tracing::info!(rule = %e.rule, run_id = %e.run_id, items = digest.items, failed = digest.items_failed, findings = digest.total_findings, "organisation digest");
    Ok(json!({
        "rule": e.rule,
        "run_id": e.run_id,
        "digest_key": key,
        "items": digest.items,
        "items_failed": digest.items_failed,
        "items_not_started": digest.items_not_started,
        "targets": digest.targets_total(),
        "targets_failed": digest.targets_failed(),
        "accounts_skipped": digest.accounts_skipped,
        "total_findings": digest.total_findings,
        "total_usd": digest.total_usd,
        "map_error": digest.map_error,
    }))
}

/// A Step Functions error (`{"Error", "Cause"}`) in words.
fn describe_error(err: &Value) -> String {
    match (err["Error"].as_str(), err["Cause"].as_str()) {
        (Some(e), Some(c)) => format!("{e}: {c}"),
        (Some(e), None) => e.to_string(),
        _ => err.to_string(),
    }
}

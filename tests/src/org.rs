//! Organisation scale locally: an organisation in moto (moto's STS AssumeRole hands out
//! credentials for the role's account, and moto keeps each account's resources apart), and a
//! runner that does what the state machine does: the targets step, then a Map over the items with
//! a concurrency bound, each item given to the rule's own handler, the results written to S3 as
//! the Map's ResultWriter writes them, then the summary step.

use std::future::Future;
use std::pin::Pin;

use futures::StreamExt;
use remediation::aws::Clients;
use remediation::model::RunReport;
use remediation::org::{Item, ItemResult, ResultFile};
use serde_json::{json, Value};

/// The member role's name in every account (the policy's default).
pub const ROLE: &str = "FinOpsAutopilotMember";

/// Clients in `account` and `region`: the hub's own credentials for the hub's account, the
/// member role otherwise (as the functions reach it).
pub async fn clients_in(hub: &Clients, account: &str, region: &str) -> Clients {
    let own = hub.identity().await.expect("GetCallerIdentity");
    if own.account == account {
        return hub.in_region(region).expect("region");
    }
    let role = remediation::org::role_arn("aws", account, ROLE);
    hub.assume(&role, "finops-seed", None, region, account)
        .await
        .unwrap_or_else(|e| panic!("assume {role}: {e}"))
}

/// Creates the organisation with the hub as its management account and `members` new accounts
/// (moto picks their ids); returns the ids in creation order.
pub async fn organisation(hub: &Clients, members: usize) -> Vec<String> {
    let org = aws_sdk_organizations::Client::new(&hub.config);
    org.create_organization()
        .feature_set(aws_sdk_organizations::types::OrganizationFeatureSet::All)
        .send()
        .await
        .expect("CreateOrganization");
    let mut ids = Vec::new();
    for n in 0..members {
        let out = org
            .create_account()
            .account_name(format!("member-{n}"))
            .email(format!("member-{n}@example.com"))
            .send()
            .await
            .expect("CreateAccount");
        let id = out
            .create_account_status()
            .and_then(|s| s.account_id())
            .expect("an account id")
            .to_string();
        ids.push(id);
    }
    ids
}

/// The item event the Map hands a rule's Lambda for a member `account` in `region` (its member
/// role named [`ROLE`]).
pub fn member_item(run_id: &str, account: &str, region: &str) -> Value {
    json!({"source": remediation::org::ITEM_SOURCE, "run_id": run_id, "account": account, "region": region,
        "role_arn": remediation::org::role_arn("aws", account, ROLE)})
}

/// Closes an account (Organizations lists it SUSPENDED afterwards).
pub async fn close(hub: &Clients, account: &str) {
    aws_sdk_organizations::Client::new(&hub.config)
        .close_account()
        .account_id(account)
        .send()
        .await
        .expect("CloseAccount");
}

/// One rule's handler, given an item event.
pub type Rule<'a> =
    &'a (dyn Fn(Value) -> Pin<Box<dyn Future<Output = Result<RunReport, remediation::Error>> + Send + 'a>> + Sync);

/// What a local run did: the targets step's answer, every item's result and the digest.
pub struct OrgRun {
    pub targets: Value,
    /// Each item's result as the Map records it (the counts of its report, as the state
    /// machine's ResultSelector keeps them).
    pub results: Vec<ItemResult>,
    /// Each item's whole report, with its input (what the Lambda answered).
    pub reports: Vec<(Item, RunReport)>,
    pub digest: remediation::org::OrgDigest,
    /// The largest number of items that ran at once.
    pub peak_concurrency: usize,
}

/// Runs one fan-out of `rule` as the state machine does: targets → Map (at most the policy's
/// `max_concurrency` items at once; each child's input `{function, item}`, the Lambda given the
/// item and its answer judged as `function_handler` judges it) → ResultWriter files in S3 →
/// summary, its payload built from the template's `Summary` state.
pub async fn run(app: &org_fanout::handler::App, rule_name: &str, run_id: &str, rule: Rule<'_>) -> OrgRun {
    let now = chrono::Utc::now();
    let targets = org_fanout::handler::handle(
        json!({"source": "finops.targets", "rule": rule_name, "run_id": run_id}),
        app,
        now,
    )
    .await
    .expect("the targets step");
    let s3 = s3(&app.deps.clients);
    let bucket = targets["bucket"].as_str().expect("bucket").to_string();
    let key = targets["key"].as_str().expect("key").to_string();
    // The Map's ItemReader: the items file the targets step wrote.
    let body = s3
        .get_object()
        .bucket(&bucket)
        .key(&key)
        .send()
        .await
        .expect("GetObject items");
    let bytes = body.body.collect().await.expect("items body").into_bytes();
    let items: Vec<Item> = serde_json::from_slice(&bytes).expect("the items file reads");
    let bound = targets["max_concurrency"].as_u64().expect("max_concurrency") as usize;
    let running = std::sync::atomic::AtomicUsize::new(0);
    let peak = std::sync::atomic::AtomicUsize::new(0);
    let done: Vec<(ItemResult, Option<(Item, RunReport)>)> = futures::stream::iter(items.into_iter().map(|item| {
        let (running, peak) = (&running, &peak);
        async move {
            let now_running = running.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            peak.fetch_max(now_running, std::sync::atomic::Ordering::SeqCst);
            let payload = serde_json::to_value(&item).expect("item");
            // The ItemSelector's child input; the task hands the Lambda `$.item`.
            let input = json!({"function": format!("finops-{rule_name}"), "item": payload});
            let outcome = rule(payload).await.and_then(remediation::flow::invocation_result);
            running.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
            match outcome {
                Ok(report) => (
                    ItemResult {
                        status: "SUCCEEDED".into(),
                        input: input.to_string(),
                        output: Some(selected(&report).to_string()),
                        error: None,
                        cause: None,
                    },
                    Some((item, report)),
                ),
                // As Step Functions records a Lambda that returned an error: its type as the
                // Error, its JSON error as the Cause.
                Err(e) => {
                    let d = lambda_runtime::Diagnostic::from(e);
                    let result = ItemResult {
                        status: "FAILED".into(),
                        input: input.to_string(),
                        output: None,
                        error: Some(d.error_type.clone()),
                        cause: Some(json!({"errorType": d.error_type, "errorMessage": d.error_message}).to_string()),
                    };
                    (result, None)
                }
            }
        }
    }))
    .buffer_unordered(bound)
    .collect()
    .await;
    let (results, reports): (Vec<ItemResult>, Vec<Option<(Item, RunReport)>>) = done.into_iter().unzip();
    let prefix = targets["prefix"].as_str().expect("prefix").to_string();
    write_results(&s3, &bucket, &prefix, run_id, &results).await;
    let summary = org_fanout::handler::handle(summary_payload(rule_name, run_id, &targets), app, now)
        .await
        .expect("the summary step");
    let digest_key = summary["digest_key"].as_str().expect("digest_key");
    let body = s3
        .get_object()
        .bucket(&bucket)
        .key(digest_key)
        .send()
        .await
        .expect("GetObject digest");
    let digest: Value = serde_json::from_slice(&body.body.collect().await.expect("digest body").into_bytes())
        .expect("the digest reads");
    OrgRun {
        targets,
        results,
        reports: reports.into_iter().flatten().collect(),
        digest: serde_json::from_value(digest).expect("the digest is an OrgDigest"),
        peak_concurrency: peak.load(std::sync::atomic::Ordering::SeqCst),
    }
}

/// What the item task's ResultSelector keeps of a report, read from `infra/template.yaml`
/// (state `Item`): each `key.$: $.Payload.<field>` picks that field of the Lambda's answer. A
/// field the answer lacks fails the item in Step Functions (States.Runtime), so it panics here.
pub fn selected(report: &RunReport) -> Value {
    let report = serde_json::to_value(report).expect("report");
    let mut out = serde_json::Map::new();
    for (key, path) in item_result_selector() {
        let field = path
            .strip_prefix("$.Payload.")
            .unwrap_or_else(|| panic!("the local Map reads only $.Payload.<field>, not {path}"));
        let value = report
            .get(field)
            .unwrap_or_else(|| panic!("the answer has no {field}: Step Functions would fail the item"));
        out.insert(key, value.clone());
    }
    Value::Object(out)
}

/// The summary step's payload as the template's `Summary` state builds it (see
/// [`payload_of`]).
pub fn summary_payload(rule_name: &str, run_id: &str, targets: &Value) -> Value {
    payload_of("Summary", rule_name, run_id, targets, None)
}

/// The payload the template's `state` (`Summary` or `SummaryOfAFailedRun`) builds: literal keys
/// as they are, `$.rule`, `$$.Execution.Name`, `$.step.targets.<field>` and `$.map_error`
/// resolved; any other path panics (the local runner would not mirror it).
pub fn payload_of(state: &str, rule_name: &str, run_id: &str, targets: &Value, map_error: Option<&Value>) -> Value {
    let t = crate::infra::load("template.yaml");
    let payload =
        &t["Resources"]["FanOutStateMachine"]["Properties"]["Definition"]["States"][state]["Parameters"]["Payload"];
    let mut out = serde_json::Map::new();
    for (k, v) in payload.as_mapping().expect("the Summary state has a Payload") {
        let key = k.as_str().expect("key");
        let Some(key) = key.strip_suffix(".$") else {
            out.insert(
                key.to_string(),
                Value::String(v.as_str().expect("a literal").to_string()),
            );
            continue;
        };
        let path = v.as_str().expect("path");
        let value = match path {
            "$.rule" => Value::String(rule_name.to_string()),
            "$$.Execution.Name" => Value::String(run_id.to_string()),
            "$.map_error" => map_error
                .unwrap_or_else(|| panic!("{state} reads $.map_error: give it one"))
                .clone(),
            other => {
                let field = other
                    .strip_prefix("$.step.targets.")
                    .unwrap_or_else(|| panic!("the local runner does not resolve {other}"));
                targets
                    .get(field)
                    .unwrap_or_else(|| panic!("the targets step answers no {field}"))
                    .clone()
            }
        };
        out.insert(key.to_string(), value);
    }
    Value::Object(out)
}

/// The `Item` state's ResultSelector in the template: (key, JSONPath) pairs.
pub fn item_result_selector() -> Vec<(String, String)> {
    let t = crate::infra::load("template.yaml");
    let selector = &t["Resources"]["FanOutStateMachine"]["Properties"]["Definition"]["States"]["Scan"]["ItemProcessor"]
        ["States"]["Item"]["ResultSelector"];
    selector
        .as_mapping()
        .expect("the Item state has a ResultSelector")
        .iter()
        .map(|(k, v)| {
            let key = k.as_str().expect("key");
            let key = key
                .strip_suffix(".$")
                .unwrap_or_else(|| panic!("{key} is not a path key"));
            (key.to_string(), v.as_str().expect("path").to_string())
        })
        .collect()
}

fn s3(clients: &Clients) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&clients.config)
            .force_path_style(true)
            .build(),
    )
}

/// Writes `results` as ResultWriter does: `<prefix>/<map run id>/SUCCEEDED_0.json` (and
/// `FAILED_0.json`), each a JSON array, and a `manifest.json` naming them.
async fn write_results(s3: &aws_sdk_s3::Client, bucket: &str, prefix: &str, run_id: &str, results: &[ItemResult]) {
    let map_run = format!("{run_id}-map");
    let mut files: std::collections::BTreeMap<String, Vec<ResultFile>> = ["SUCCEEDED", "FAILED", "PENDING"]
        .iter()
        .map(|s| (s.to_string(), vec![]))
        .collect();
    for status in ["SUCCEEDED", "FAILED"] {
        let these: Vec<&ItemResult> = results.iter().filter(|r| r.status == status).collect();
        if these.is_empty() {
            continue;
        }
        let key = format!("{prefix}/{map_run}/{status}_0.json");
        let body = serde_json::to_vec(&these).expect("results");
        let size = body.len() as u64;
        s3.put_object()
            .bucket(bucket)
            .key(&key)
            .body(body.into())
            .send()
            .await
            .expect("PutObject results");
        files
            .entry(status.to_string())
            .or_default()
            .push(ResultFile { key, size });
    }
    let manifest = remediation::org::Manifest {
        destination_bucket: bucket.into(),
        map_run_arn: format!("arn:aws:states:us-east-1:123456789012:mapRun:finops-fan-out/Map:{map_run}"),
        result_files: files,
    };
    s3.put_object()
        .bucket(bucket)
        .key(format!("{prefix}/{map_run}/manifest.json"))
        .body(serde_json::to_vec(&manifest).expect("manifest").into())
        .send()
        .await
        .expect("PutObject manifest");
}

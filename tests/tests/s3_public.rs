//! s3-public end to end: the real handler, the real SDK clients (S3 and S3 Control), moto server.

use aws_sdk_s3::types::{
    BucketCannedAcl, IndexDocument, PublicAccessBlockConfiguration, Tag, Tagging, WebsiteConfiguration,
};
use chrono::Utc;
use finops_checks::executor::AwsExecutor;
use finops_checks::s3_public::detect::BlockSettings;
use finops_tests::Moto;
use remediation::config::Deps;
use remediation::decide::Executor;
use remediation::flow::{Decider, RunContext};
use remediation::model::{OutcomeKind, RunReport};
use remediation::policy::{Mode, Policy};

const TABLE: &str = "finops-state";
const ACCOUNT: &str = "123456789012";

fn sweep() -> serde_json::Value {
    serde_json::from_str(include_str!("../../events/s3-public/scheduled.json")).unwrap()
}

fn change(bucket: &str, compliance: &str) -> serde_json::Value {
    let mut e: serde_json::Value =
        serde_json::from_str(include_str!("../../events/s3-public/config-compliance-change.json")).unwrap();
    e["detail"]["resourceId"] = bucket.into();
    e["detail"]["newEvaluationResult"]["complianceType"] = compliance.into();
    e
}

fn s3(moto_config: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(moto_config)
            .force_path_style(true)
            .build(),
    )
}

fn block(b: BlockSettings) -> PublicAccessBlockConfiguration {
    PublicAccessBlockConfiguration::builder()
        .block_public_acls(b.block_public_acls)
        .ignore_public_acls(b.ignore_public_acls)
        .block_public_policy(b.block_public_policy)
        .restrict_public_buckets(b.restrict_public_buckets)
        .build()
}

fn allow_everyone(bucket: &str, condition: Option<serde_json::Value>) -> String {
    let mut statement = serde_json::json!({"Sid": "PublicRead", "Effect": "Allow", "Principal": "*",
        "Action": "s3:GetObject", "Resource": format!("arn:aws:s3:::{bucket}/*")});
    if let Some(c) = condition {
        statement["Condition"] = c;
    }
    serde_json::json!({"Version": "2012-10-17", "Statement": [statement]}).to_string()
}

const PARTIAL: BlockSettings = BlockSettings {
    block_public_acls: true,
    ignore_public_acls: false,
    block_public_policy: false,
    restrict_public_buckets: false,
};

async fn seed(moto: &Moto) -> aws_sdk_s3::Client {
    let client = s3(&moto.sdk_config().await);
    for b in [
        "public-acl",
        "public-policy",
        "vpce-only",
        "private",
        "website",
        "neutralised",
        "partial-block",
    ] {
        client.create_bucket().bucket(b).send().await.unwrap();
    }
    for b in ["public-acl", "website", "neutralised"] {
        client
            .put_bucket_acl()
            .bucket(b)
            .acl(BucketCannedAcl::PublicRead)
            .send()
            .await
            .unwrap();
    }
    client
        .put_bucket_policy()
        .bucket("public-policy")
        .policy(allow_everyone("public-policy", None))
        .send()
        .await
        .unwrap();
    client
        .put_bucket_policy()
        .bucket("partial-block")
        .policy(allow_everyone("partial-block", None))
        .send()
        .await
        .unwrap();
    let vpce = serde_json::json!({"StringEquals": {"aws:SourceVpce": "vpce-1a2b3c"}});
    client
        .put_bucket_policy()
        .bucket("vpce-only")
        .policy(allow_everyone("vpce-only", Some(vpce)))
        .send()
        .await
        .unwrap();
    let tagging = Tagging::builder()
        .tag_set(Tag::builder().key("finops:exempt").value("true").build().unwrap())
        .build()
        .unwrap();
    client
        .put_bucket_tagging()
        .bucket("website")
        .tagging(tagging)
        .send()
        .await
        .unwrap();
    let ignore = BlockSettings {
        ignore_public_acls: true,
        ..Default::default()
    };
    client
        .put_public_access_block()
        .bucket("neutralised")
        .public_access_block_configuration(block(ignore))
        .send()
        .await
        .unwrap();
    client
        .put_public_access_block()
        .bucket("partial-block")
        .public_access_block_configuration(block(PARTIAL))
        .send()
        .await
        .unwrap();
    finops_tests::seed::create_table(&moto.clients().await.dynamodb, TABLE).await;
    client
}

async fn deps(moto: &Moto, mode: Mode) -> Deps {
    finops_tests::deps(
        moto,
        "s3-public",
        Policy {
            mode,
            // The seeded account is small; the blast-radius limit has its own tests.
            max_actions_percent: 100.0,
            ..Policy::default()
        },
        Some(TABLE),
        None,
    )
    .await
}

/// A bucket that hosts a static website, readable by everyone through its policy.
async fn seed_website(client: &aws_sdk_s3::Client, bucket: &str) {
    client.create_bucket().bucket(bucket).send().await.unwrap();
    client
        .put_bucket_policy()
        .bucket(bucket)
        .policy(allow_everyone(bucket, None))
        .send()
        .await
        .unwrap();
    let site = WebsiteConfiguration::builder()
        .index_document(IndexDocument::builder().suffix("index.html").build().unwrap())
        .build();
    client
        .put_bucket_website()
        .bucket(bucket)
        .website_configuration(site)
        .send()
        .await
        .unwrap();
}

fn outcome_of<'a>(r: &'a RunReport, bucket: &str) -> &'a remediation::model::Outcome {
    r.outcomes
        .iter()
        .find(|o| o.finding_id.ends_with(&format!(":{bucket}")))
        .unwrap_or_else(|| panic!("no outcome for {bucket}: {:#?}", r.outcomes))
}

fn flagged(r: &RunReport) -> Vec<&str> {
    let mut v: Vec<&str> = r.findings.iter().map(|f| f.resource.id.as_str()).collect();
    v.sort();
    v
}

async fn bucket_block(client: &aws_sdk_s3::Client, bucket: &str) -> Option<BlockSettings> {
    match client.get_public_access_block().bucket(bucket).send().await {
        Ok(out) => out.public_access_block_configuration().map(|c| BlockSettings {
            block_public_acls: c.block_public_acls().unwrap_or(false),
            ignore_public_acls: c.ignore_public_acls().unwrap_or(false),
            block_public_policy: c.block_public_policy().unwrap_or(false),
            restrict_public_buckets: c.restrict_public_buckets().unwrap_or(false),
        }),
        Err(_) => None,
    }
}

#[tokio::test]
async fn the_sweep_finds_exactly_the_effectively_public_buckets_with_their_reasons() {
    let moto = Moto::start().unwrap();
    seed(&moto).await;
    let deps = deps(&moto, Mode::DryRun).await;

    let report = s3_public::handler::handle(sweep(), &deps, Utc::now()).await.unwrap();

    assert_eq!(report.scanned, 7);
    assert_eq!(flagged(&report), vec!["partial-block", "public-acl", "public-policy"]);
    let website = report
        .outcomes
        .iter()
        .find(|o| o.finding_id.ends_with(":website"))
        .unwrap();
    assert_eq!(website.outcome, OutcomeKind::Skipped);
    assert!(website.detail.contains("public but exempt"), "{}", website.detail);
    let evidence = |b: &str| {
        let f = report.findings.iter().find(|f| f.resource.id == b).unwrap();
        serde_json::to_value(&f.evidence).unwrap()
    };
    assert_eq!(evidence("public-acl")["reasons"][0]["source"], "acl");
    assert_eq!(evidence("public-acl")["reasons"][0]["grantee"], "AllUsers");
    assert_eq!(evidence("public-policy")["reasons"][0]["source"], "policy");
    assert_eq!(evidence("public-policy")["reasons"][0]["sid"], "PublicRead");
    assert_eq!(evidence("partial-block")["bucket_block"]["block_public_acls"], true);
    for f in &report.findings {
        assert_eq!(f.resource.account, ACCOUNT);
        assert_eq!(f.estimated_monthly_savings_usd, None);
    }
}

#[tokio::test]
async fn auto_mode_blocks_public_access_and_the_rollback_restores_the_prior_settings_exactly() {
    let moto = Moto::start().unwrap();
    let client = seed(&moto).await;
    let deps = deps(&moto, Mode::Auto).await;

    let report = s3_public::handler::handle(sweep(), &deps, Utc::now()).await.unwrap();

    for b in ["public-acl", "public-policy", "partial-block"] {
        let o = report
            .outcomes
            .iter()
            .find(|o| o.finding_id.ends_with(&format!(":{b}")))
            .unwrap();
        assert_eq!(o.outcome, OutcomeKind::Executed, "{o:?}");
        assert!(o.detail.contains("no longer public"), "{}", o.detail);
        assert_eq!(bucket_block(&client, b).await, Some(BlockSettings::ALL), "{b}");
    }
    // Exempt and private buckets are untouched.
    assert_eq!(bucket_block(&client, "website").await, None);
    assert_eq!(bucket_block(&client, "private").await, None);

    // A second sweep finds nothing left to do.
    let again = s3_public::handler::handle(sweep(), &deps, Utc::now()).await.unwrap();
    assert!(again.findings.is_empty());

    // Rollbacks from the records: no prior block → none again; a partial one → exactly it.
    let items = finops_tests::seed::scan_table(&moto.clients().await.dynamodb, TABLE).await;
    let adapter = remediation::aws::s3::S3::new(&deps.clients, ACCOUNT);
    for (bucket, expected) in [("public-acl", None), ("partial-block", Some(PARTIAL))] {
        let record = items
            .iter()
            .find(|i| i["pk"].starts_with("ACTION#") && i["resource_id"] == bucket)
            .unwrap();
        let pre: serde_json::Value = serde_json::from_str(&record["pre_state"]).unwrap();
        assert!(
            pre.get("policy").is_some() && pre.get("grants").is_some(),
            "ACL and policy captured: {pre}"
        );
        let rollback: remediation::act::Rollback = serde_json::from_str(&record["rollback"]).unwrap();
        let ports = finops_checks::executor::RollbackPorts {
            buckets: Some(&adapter),
            ..Default::default()
        };
        finops_checks::executor::rollback(&rollback, &ports).await.unwrap();
        assert_eq!(bucket_block(&client, bucket).await, expected, "{bucket}");
    }
}

#[tokio::test]
async fn a_config_compliance_change_looks_at_that_bucket_only() {
    let moto = Moto::start().unwrap();
    seed(&moto).await;
    let deps = deps(&moto, Mode::DryRun).await;

    let one = s3_public::handler::handle(change("public-policy", "NON_COMPLIANT"), &deps, Utc::now())
        .await
        .unwrap();
    assert_eq!(one.scanned, 1);
    assert_eq!(flagged(&one), vec!["public-policy"]);

    let compliant = s3_public::handler::handle(change("public-policy", "COMPLIANT"), &deps, Utc::now())
        .await
        .unwrap();
    assert_eq!(compliant.scanned, 0);
    assert!(compliant.notes[0].contains("nothing to do"));

    let gone = s3_public::handler::handle(change("no-such-bucket", "NON_COMPLIANT"), &deps, Utc::now())
        .await
        .unwrap();
    assert!(gone.outcomes[0].detail.contains("not found"));

    let mut not_s3 = change("i-123", "NON_COMPLIANT");
    not_s3["detail"]["resourceType"] = "AWS::EC2::Instance".into();
    let err = s3_public::handler::handle(not_s3, &deps, Utc::now()).await.unwrap_err();
    assert!(err.to_string().contains("AWS::EC2::Instance"), "{err}");
}

#[tokio::test]
async fn the_account_level_block_neutralises_public_buckets_through_s3_control() {
    let moto = Moto::start().unwrap();
    seed(&moto).await;
    let config = moto.sdk_config().await;
    // The test's own S3 Control client goes through the same host handling as the adapter.
    let deps = deps(&moto, Mode::DryRun).await;
    let adapter = remediation::aws::s3::S3::new(&deps.clients, ACCOUNT);
    use remediation::aws::s3::BucketApi;
    assert_eq!(adapter.account_block().await.unwrap(), None);
    let control = aws_sdk_s3control::Client::new(&config);
    let put = control
        .put_public_access_block()
        .account_id(ACCOUNT)
        .public_access_block_configuration(
            aws_sdk_s3control::types::PublicAccessBlockConfiguration::builder()
                .ignore_public_acls(true)
                .restrict_public_buckets(true)
                .build(),
        )
        .customize()
        .mutate_request(|req| {
            let uri = req.uri().replacen(&format!("://{ACCOUNT}."), "://", 1);
            let _ = req.set_uri(uri);
        })
        .send()
        .await;
    put.unwrap();

    let report = s3_public::handler::handle(sweep(), &deps, Utc::now()).await.unwrap();

    assert!(report.findings.is_empty(), "{:#?}", report.findings);
    assert_eq!(
        adapter
            .account_block()
            .await
            .unwrap()
            .map(|b| (b.ignore_public_acls, b.restrict_public_buckets)),
        Some((true, true))
    );
}

#[tokio::test]
async fn auto_mode_asks_for_an_approval_instead_of_blocking_a_public_website_bucket() {
    let moto = Moto::start().unwrap();
    let client = seed(&moto).await;
    seed_website(&client, "static-site").await;
    let c = moto.clients().await;
    let sqs = aws_sdk_sqs::Client::new(&moto.sdk_config().await);
    let (topic, queue) = finops_tests::seed::topic_with_queue(&c.sns, &sqs, "finops").await;
    let policy = Policy {
        mode: Mode::Auto,
        // Every public bucket of this small account may be blocked in one run (the blast radius
        // is tested on its own).
        max_actions_percent: 100.0,
        ..Policy::default()
    };
    let deps = finops_tests::deps(&moto, "s3-public", policy, Some(TABLE), Some(&topic)).await;

    let report = s3_public::handler::handle(sweep(), &deps, Utc::now()).await.unwrap();

    let site = outcome_of(&report, "static-site");
    assert_eq!(site.outcome, OutcomeKind::PendingApproval, "{site:?}");
    assert!(site.detail.contains("website hosting on"), "{}", site.detail);
    assert_eq!(bucket_block(&client, "static-site").await, None);
    // The other public buckets are still blocked at once.
    assert_eq!(outcome_of(&report, "public-acl").outcome, OutcomeKind::Executed);
    let messages = finops_tests::seed::drain_queue(&sqs, &queue).await;
    let requests: Vec<serde_json::Value> = messages
        .iter()
        .filter_map(|m| serde_json::from_str::<serde_json::Value>(m["Message"].as_str()?).ok())
        .filter(|m| m["type"] == "approval-request")
        .collect();
    assert_eq!(requests.len(), 1, "{messages:#?}");
    assert_eq!(requests[0]["finding"]["resource"]["id"], "static-site");
    assert_eq!(requests[0]["finding"]["evidence"]["website_hosting"], true);
}

#[tokio::test]
async fn approve_mode_requests_a_website_bucket_as_usual_saying_website_hosting_is_on() {
    let moto = Moto::start().unwrap();
    let client = seed(&moto).await;
    seed_website(&client, "static-site").await;
    let c = moto.clients().await;
    let sqs = aws_sdk_sqs::Client::new(&moto.sdk_config().await);
    let (topic, _queue) = finops_tests::seed::topic_with_queue(&c.sns, &sqs, "finops").await;
    let policy = Policy {
        mode: Mode::Approve,
        ..Policy::default()
    };
    let deps = finops_tests::deps(&moto, "s3-public", policy, Some(TABLE), Some(&topic)).await;

    let report = s3_public::handler::handle(sweep(), &deps, Utc::now()).await.unwrap();

    let site = outcome_of(&report, "static-site");
    assert_eq!(site.outcome, OutcomeKind::PendingApproval, "{site:?}");
    assert!(site.detail.contains("website hosting on"), "{}", site.detail);
    let finding = report.findings.iter().find(|f| f.resource.id == "static-site").unwrap();
    assert_eq!(
        serde_json::to_value(&finding.evidence).unwrap()["website_hosting"],
        true
    );
    let plain = report.findings.iter().find(|f| f.resource.id == "public-acl").unwrap();
    assert_eq!(serde_json::to_value(&plain.evidence).unwrap()["website_hosting"], false);
}

#[tokio::test]
async fn the_approval_executor_blocks_a_website_bucket_only_for_a_person() {
    let moto = Moto::start().unwrap();
    let client = seed(&moto).await;
    seed_website(&client, "static-site").await;
    let deps = deps(&moto, Mode::DryRun).await;
    let report = s3_public::handler::handle(sweep(), &deps, Utc::now()).await.unwrap();
    let finding = report.findings.iter().find(|f| f.resource.id == "static-site").unwrap();
    let policy = Policy {
        mode: Mode::Approve,
        ..Policy::default()
    };
    let executor = AwsExecutor {
        clients: deps.clients.clone(),
        policy: policy.clone(),
    };
    let ctx = RunContext::new("s3-public", &policy, deps.sinks(), Utc::now());

    let by_machine = Decider {
        sealer: None,
        by: "auto",
        request_id: None,
        budget: None,
    };
    let (acted, _) = executor.execute(&ctx, finding, by_machine).await;

    assert_ne!(acted.outcome.outcome, OutcomeKind::Executed, "{acted:?}");
    assert!(acted.outcome.detail.contains("website hosting on"), "{acted:?}");
    assert_eq!(bucket_block(&client, "static-site").await, None);

    let by_person = Decider {
        sealer: None,
        by: "ana@example.com",
        request_id: Some("r-1"),
        budget: None,
    };
    let (acted, _) = executor.execute(&ctx, finding, by_person).await;

    assert_eq!(acted.outcome.outcome, OutcomeKind::Executed, "{acted:?}");
    assert_eq!(bucket_block(&client, "static-site").await, Some(BlockSettings::ALL));
}

#[tokio::test]
async fn the_sweep_reads_tags_and_website_hosting_only_for_public_buckets() {
    let moto = Moto::start().unwrap();
    seed(&moto).await;
    let deps = deps(&moto, Mode::DryRun).await;

    s3_public::handler::handle(sweep(), &deps, Utc::now()).await.unwrap();

    let calls = deps.clients.calls.snapshot();
    let count = |op: &str| {
        calls
            .iter()
            .filter(|(k, _)| k.ends_with(op))
            .map(|(_, n)| *n)
            .sum::<u64>()
    };
    // Seven buckets, four of them public (the exempt one included): three reads each, two more
    // for each public one.
    assert_eq!(count(".GetBucketAcl"), 7, "{calls:?}");
    assert_eq!(count(".GetBucketTagging"), 4, "{calls:?}");
    assert_eq!(count(".GetBucketWebsite"), 4, "{calls:?}");
}

/// A first AWS Config evaluation sends one compliance-change event per bucket, all at once, and
/// EventBridge delivers at least once: 30 public buckets' events, 5 of them delivered twice, all
/// in flight together (the default template reserves no concurrency for s3-public, so Lambda runs
/// them side by side), to s3-public in approve mode as its template role. Each bucket gets exactly
/// one approval request and one pending approval; no event is lost and none counts twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_thirty_config_events_with_redeliveries_asks_once_per_bucket() {
    let moto = Moto::start().unwrap();
    let client = s3(&moto.sdk_config().await);
    let c = moto.clients().await;
    finops_tests::seed::create_table(&c.dynamodb, TABLE).await;
    let buckets: Vec<String> = (0..30).map(|n| format!("burst-{n:02}")).collect();
    for b in &buckets {
        client.create_bucket().bucket(b).send().await.expect("CreateBucket");
        client
            .put_bucket_policy()
            .bucket(b)
            .policy(allow_everyone(b, None))
            .send()
            .await
            .expect("PutBucketPolicy");
    }
    let sqs = aws_sdk_sqs::Client::new(&moto.sdk_config().await);
    let (topic, queue) = finops_tests::seed::topic_with_queue(&c.sns, &sqs, "finops").await;
    let mut policy = Policy {
        mode: Mode::Approve,
        ..Policy::default()
    };
    policy.approvals.anyone_with_link = true;
    let deps = finops_tests::deps(&moto, "s3-public", policy, Some(TABLE), Some(&topic)).await;
    let template = moto.template(&finops_tests::Stack::default()).await;
    assert!(
        template["s3-public"]["reserved_concurrency"].is_null(),
        "the default template reserves none: the burst runs side by side"
    );

    let events: Vec<serde_json::Value> = buckets
        .iter()
        .chain(buckets.iter().take(5))
        .map(|b| change(b, "NON_COMPLIANT"))
        .collect();
    // All in flight together, as Lambda runs them side by side.
    let runs = futures::future::join_all(
        events
            .into_iter()
            .map(|e| s3_public::handler::handle(e, &deps, Utc::now())),
    )
    .await;
    for r in runs {
        r.expect("each event is handled");
    }

    let messages = finops_tests::seed::drain_queue(&sqs, &queue).await;
    let mut asked: Vec<String> = messages
        .iter()
        .filter_map(|m| serde_json::from_str::<serde_json::Value>(m["Message"].as_str()?).ok())
        .filter(|m| m["type"] == "approval-request")
        .filter_map(|m| m["finding"]["resource"]["id"].as_str().map(str::to_string))
        .collect();
    asked.sort();
    assert_eq!(asked, buckets, "one approval request per bucket, none twice");
    let items = finops_tests::seed::scan_table(&c.dynamodb, TABLE).await;
    let pending = items
        .iter()
        .filter(|i| {
            i.get("sk").map(String::as_str) == Some("REQUEST") && i.get("status").map(String::as_str) == Some("pending")
        })
        .count();
    assert_eq!(pending, 30, "one pending approval per bucket");
    assert!(moto.iam_refusals().await.is_empty(), "{:?}", moto.iam_refusals().await);
    // Nothing was blocked: approve mode asks.
    assert_eq!(bucket_block(&client, "burst-00").await, None);
}

/// Issue 26, problem 1: each Config event runs alone (`scanned` 1, and 10 % of 1 rounds up to 1), so
/// before the period budget an auto-mode burst blocked every bucket, event by event. Now the
/// account's events share one rolling budget: `max_actions` (10) and `max_actions_percent` (here
/// 50 %) of the account's 30 buckets. 30 events and 5 redeliveries, all in flight together, as
/// s3-public's role: exactly 10 blocked, every other bucket asked about once, with why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_thirty_config_events_in_auto_mode_blocks_at_most_the_budget_and_asks_the_rest() {
    let moto = Moto::start().unwrap();
    let client = s3(&moto.sdk_config().await);
    let c = moto.clients().await;
    finops_tests::seed::create_table(&c.dynamodb, TABLE).await;
    let buckets: Vec<String> = (0..30).map(|n| format!("auto-burst-{n:02}")).collect();
    for b in &buckets {
        client.create_bucket().bucket(b).send().await.expect("CreateBucket");
        client
            .put_bucket_policy()
            .bucket(b)
            .policy(allow_everyone(b, None))
            .send()
            .await
            .expect("PutBucketPolicy");
    }
    let sqs = aws_sdk_sqs::Client::new(&moto.sdk_config().await);
    let (topic, queue) = finops_tests::seed::topic_with_queue(&c.sns, &sqs, "finops").await;
    let mut policy = Policy {
        mode: Mode::Auto,
        max_actions_percent: 50.0,
        ..Policy::default()
    };
    policy.approvals.anyone_with_link = true;
    let deps = finops_tests::deps(&moto, "s3-public", policy, Some(TABLE), Some(&topic)).await;

    let events: Vec<serde_json::Value> = buckets
        .iter()
        .chain(buckets.iter().take(5))
        .map(|b| change(b, "NON_COMPLIANT"))
        .collect();
    let runs = futures::future::join_all(
        events
            .into_iter()
            .map(|e| s3_public::handler::handle(e, &deps, Utc::now())),
    )
    .await;
    let mut held = 0;
    for r in runs {
        held += r.expect("each event is handled").held;
    }

    let mut blocked = Vec::new();
    for b in &buckets {
        if bucket_block(&client, b).await == Some(BlockSettings::ALL) {
            blocked.push(b.clone());
        }
    }
    assert_eq!(blocked.len(), 10, "the account's budget for events: {blocked:?}");
    let messages = finops_tests::seed::drain_queue(&sqs, &queue).await;
    let requests: Vec<serde_json::Value> = messages
        .iter()
        .filter_map(|m| serde_json::from_str::<serde_json::Value>(m["Message"].as_str()?).ok())
        .filter(|m| m["type"] == "approval-request")
        .collect();
    let mut asked: Vec<String> = requests
        .iter()
        .filter_map(|m| m["finding"]["resource"]["id"].as_str().map(str::to_string))
        .collect();
    asked.sort();
    let mut want: Vec<String> = buckets.iter().filter(|b| !blocked.contains(b)).cloned().collect();
    want.sort();
    assert_eq!(asked, want, "every bucket not blocked is asked about, once");
    assert!(
        requests.iter().all(|m| m["held"]
            .as_str()
            .is_some_and(|h| h.contains("budget spent") && h.contains("10 of 10"))),
        "each request says why it was not done: {requests:#?}"
    );
    assert!(held >= 20, "the reports count what was held back: {held}");
    assert!(moto.iam_refusals().await.is_empty(), "{:?}", moto.iam_refusals().await);
}

/// The real block, each run's re-check held until both runs have read theirs: two runs side by
/// side whose re-checks both saw the bucket public.
struct BothRechecked<'a> {
    inner: finops_checks::s3_public::act::BlockPublicAccess<'a>,
    barrier: &'a tokio::sync::Barrier,
}

#[async_trait::async_trait]
impl remediation::act::Remediation for BothRechecked<'_> {
    fn declaration(&self) -> &'static remediation::act::ActionDeclaration {
        self.inner.declaration()
    }
    async fn recheck(
        &self,
        findings: &[&remediation::model::Finding],
    ) -> remediation::Result<std::collections::HashMap<String, remediation::act::Recheck>> {
        let r = self.inner.recheck(findings).await;
        self.barrier.wait().await;
        r
    }
    fn rollback_for(&self, f: &remediation::model::Finding, pre: &serde_json::Value) -> remediation::act::Rollback {
        self.inner.rollback_for(f, pre)
    }
    async fn execute(
        &self,
        f: &remediation::model::Finding,
        pre: &serde_json::Value,
    ) -> remediation::Result<remediation::act::Executed> {
        self.inner.execute(f, pre).await
    }
}

/// Issue 26, problem 8: two runs acting on one resource (the sweep and a Config event, two Config
/// rules on one bucket, a Step Functions retry of an item still running), each having re-checked
/// it before the other acted, both acted: two action records, two Roll back links. The acting
/// lock every rule, run and the approval executor share lets one act; the other says why not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runs_that_rechecked_one_bucket_side_by_side_act_on_it_once() {
    let moto = Moto::start().unwrap();
    let client = s3(&moto.sdk_config().await);
    let c = moto.clients().await;
    finops_tests::seed::create_table(&c.dynamodb, TABLE).await;
    client.create_bucket().bucket("twice").send().await.unwrap();
    client
        .put_bucket_policy()
        .bucket("twice")
        .policy(allow_everyone("twice", None))
        .send()
        .await
        .unwrap();
    let policy = Policy {
        mode: Mode::Auto,
        max_actions_percent: 100.0,
        ..Policy::default()
    };
    let deps = finops_tests::deps(&moto, "s3-public", Policy::default(), Some(TABLE), None).await;
    let dry = s3_public::handler::handle(sweep(), &deps, Utc::now()).await.unwrap();
    assert_eq!(dry.findings.len(), 1, "{dry:#?}");
    let adapter = remediation::aws::s3::S3::new(&deps.clients, ACCOUNT);
    let barrier = tokio::sync::Barrier::new(2);
    let run = || async {
        let ctx = RunContext::new("s3-public", &policy, deps.sinks(), Utc::now());
        let action = BothRechecked {
            inner: finops_checks::s3_public::act::BlockPublicAccess {
                s3: &adapter,
                policy: &policy,
                approved: false,
            },
            barrier: &barrier,
        };
        remediation::flow::apply(&ctx, &dry.findings, &action, 1).await.0
    };
    let (a, b) = tokio::join!(run(), run());

    let outcomes: Vec<_> = a.iter().chain(&b).collect();
    let executed = outcomes.iter().filter(|o| o.outcome == OutcomeKind::Executed).count();
    assert_eq!(executed, 1, "{outcomes:#?}");
    assert!(
        outcomes
            .iter()
            .any(|o| o.detail.contains("another action is under way on it")),
        "{outcomes:#?}"
    );
    let items = finops_tests::seed::scan_table(&c.dynamodb, TABLE).await;
    let records = items.iter().filter(|i| i["pk"].starts_with("ACTION#")).count();
    assert_eq!(records, 1, "one action record");
    assert_eq!(bucket_block(&client, "twice").await, Some(BlockSettings::ALL));
}

/// Issue 26, problem 1 (the review's follow-up): s3-public's sweep runs every 6 hours besides its
/// Config events. Outside an organisation run both draw from the account's one rolling budget:
/// a sweep that blocked 5 of 30 buckets leaves the events of that day 5 more (max_actions 10).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_and_the_days_config_events_share_one_budget() {
    let moto = Moto::start().unwrap();
    let client = s3(&moto.sdk_config().await);
    let c = moto.clients().await;
    finops_tests::seed::create_table(&c.dynamodb, TABLE).await;
    let buckets: Vec<String> = (0..30).map(|n| format!("shared-{n:02}")).collect();
    for b in &buckets {
        client.create_bucket().bucket(b).send().await.expect("CreateBucket");
    }
    let make_public = |b: String| {
        let client = client.clone();
        async move {
            client
                .put_bucket_policy()
                .bucket(&b)
                .policy(allow_everyone(&b, None))
                .send()
                .await
                .expect("PutBucketPolicy");
        }
    };
    for b in &buckets[..5] {
        make_public(b.clone()).await;
    }
    let sqs = aws_sdk_sqs::Client::new(&moto.sdk_config().await);
    let (topic, _queue) = finops_tests::seed::topic_with_queue(&c.sns, &sqs, "finops").await;
    let mut policy = Policy {
        mode: Mode::Auto,
        max_actions_percent: 50.0,
        ..Policy::default()
    };
    policy.approvals.anyone_with_link = true;
    let deps = finops_tests::deps(&moto, "s3-public", policy, Some(TABLE), Some(&topic)).await;
    let swept = s3_public::handler::handle(sweep(), &deps, Utc::now()).await.unwrap();
    assert_eq!(
        swept
            .outcomes
            .iter()
            .filter(|o| o.outcome == OutcomeKind::Executed)
            .count(),
        5,
        "{swept:#?}"
    );

    for b in &buckets[5..15] {
        make_public(b.clone()).await;
    }
    let mut held = 0;
    for b in &buckets[5..15] {
        held += s3_public::handler::handle(change(b, "NON_COMPLIANT"), &deps, Utc::now())
            .await
            .unwrap()
            .held;
    }
    let mut blocked = 0;
    for b in &buckets {
        blocked += usize::from(bucket_block(&client, b).await == Some(BlockSettings::ALL));
    }
    assert_eq!(blocked, 10, "the sweep's 5 and 5 events: one budget");
    assert_eq!(held, 5, "the other 5 asked");
}

/// The review of issue 26: any detector role can write the state table, so a lock item claiming
/// to hold a bucket for ever would keep every rule and the approval executor off it (and the bucket
/// public). A lock that claims to hold longer than any lock is taken for is no lock.
#[tokio::test]
async fn a_forged_lock_that_claims_to_hold_for_ever_holds_nothing() {
    use aws_sdk_dynamodb::types::AttributeValue as V;
    let moto = Moto::start().unwrap();
    let client = s3(&moto.sdk_config().await);
    let c = moto.clients().await;
    finops_tests::seed::create_table(&c.dynamodb, TABLE).await;
    client.create_bucket().bucket("held-open").send().await.unwrap();
    client
        .put_bucket_policy()
        .bucket("held-open")
        .policy(allow_everyone("held-open", None))
        .send()
        .await
        .unwrap();
    // cost-alert's role (it may write the table, and never acts on buckets) writes the lock.
    let forger = finops_tests::deps(&moto, "cost-alert", Policy::default(), Some(TABLE), None).await;
    let lock = |until_ms: i64| {
        forger
            .clients
            .dynamodb
            .put_item()
            .table_name(TABLE)
            .item("pk", V::S(format!("LOCK#{ACCOUNT}/us-east-1/held-open")))
            .item("sk", V::S("LOCK".into()))
            .item("holder", V::S("forged".into()))
            .item("until_ms", V::N(until_ms.to_string()))
            .send()
    };
    let policy = Policy {
        mode: Mode::Auto,
        max_actions_percent: 100.0,
        ..Policy::default()
    };
    let deps = finops_tests::deps(&moto, "s3-public", policy, Some(TABLE), None).await;
    // A lock as an action takes it (ten minutes) holds: nothing is done under it.
    lock((Utc::now() + chrono::Duration::minutes(10)).timestamp_millis())
        .await
        .expect("a detector role may write the table");
    let held = s3_public::handler::handle(sweep(), &deps, Utc::now()).await.unwrap();
    assert!(
        held.outcomes[0].detail.contains("another action is under way"),
        "{held:#?}"
    );
    assert_eq!(bucket_block(&client, "held-open").await, None);
    // One that claims to hold for ever is no lock.
    lock(9_000_000_000_000_000)
        .await
        .expect("a detector role may write the table");
    let report = s3_public::handler::handle(sweep(), &deps, Utc::now()).await.unwrap();
    assert_eq!(report.outcomes[0].outcome, OutcomeKind::Executed, "{report:#?}");
    assert_eq!(bucket_block(&client, "held-open").await, Some(BlockSettings::ALL));
    // Nor is one whose end is not a number (DynamoDB compares nothing with it).
    client.create_bucket().bucket("held-open-2").send().await.unwrap();
    client
        .put_bucket_policy()
        .bucket("held-open-2")
        .policy(allow_everyone("held-open-2", None))
        .send()
        .await
        .unwrap();
    forger
        .clients
        .dynamodb
        .put_item()
        .table_name(TABLE)
        .item("pk", V::S(format!("LOCK#{ACCOUNT}/us-east-1/held-open-2")))
        .item("sk", V::S("LOCK".into()))
        .item("holder", V::S("forged".into()))
        .item("until_ms", V::S("for ever".into()))
        .send()
        .await
        .expect("a detector role may write the table");
    s3_public::handler::handle(sweep(), &deps, Utc::now()).await.unwrap();
    assert_eq!(bucket_block(&client, "held-open-2").await, Some(BlockSettings::ALL));
}

/// An S3 Control request's account host prefix removed, as the adapter does against a local endpoint.
fn local_host(req: &mut aws_sdk_s3control::config::http::HttpRequest) {
    let uri = req.uri().replacen(&format!("://{ACCOUNT}."), "://", 1);
    let _ = req.set_uri(uri);
}

/// An access point `name` on `bucket`: internet-facing with its own Block Public Access all off,
/// or inside a VPC; its policy allows everyone to read.
async fn seed_access_point(moto: &Moto, name: &str, bucket: &str, internet: bool) {
    let control = aws_sdk_s3control::Client::new(&moto.sdk_config().await);
    let mut create = control
        .create_access_point()
        .account_id(ACCOUNT)
        .name(name)
        .bucket(bucket)
        .public_access_block_configuration(
            aws_sdk_s3control::types::PublicAccessBlockConfiguration::builder()
                .block_public_acls(false)
                .ignore_public_acls(false)
                .block_public_policy(false)
                .restrict_public_buckets(false)
                .build(),
        );
    if !internet {
        create = create.vpc_configuration(
            aws_sdk_s3control::types::VpcConfiguration::builder()
                .vpc_id("vpc-1a2b3c4d")
                .build()
                .unwrap(),
        );
    }
    create
        .customize()
        .mutate_request(local_host)
        .send()
        .await
        .expect("CreateAccessPoint");
    let policy = serde_json::json!({"Version": "2012-10-17", "Statement": [{"Sid": "AnyoneReads", "Effect": "Allow",
        "Principal": "*", "Action": "s3:GetObject",
        "Resource": format!("arn:aws:s3:us-east-1:{ACCOUNT}:accesspoint/{name}/object/*")}]});
    control
        .put_access_point_policy()
        .account_id(ACCOUNT)
        .name(name)
        .policy(policy.to_string())
        .customize()
        .mutate_request(local_host)
        .send()
        .await
        .expect("PutAccessPointPolicy");
}

/// A bucket policy that hands the bucket's access to the account's access points (AWS's
/// recommended delegation): not public by itself.
fn delegate_to_access_points(bucket: &str) -> String {
    serde_json::json!({"Version": "2012-10-17", "Statement": [{"Sid": "DelegateToAccessPoints", "Effect": "Allow",
        "Principal": {"AWS": "*"}, "Action": "*",
        "Resource": [format!("arn:aws:s3:::{bucket}"), format!("arn:aws:s3:::{bucket}/*")],
        "Condition": {"StringEquals": {"s3:DataAccessPointAccount": ACCOUNT}}}]})
    .to_string()
}

fn evidence_of(r: &RunReport, bucket: &str) -> serde_json::Value {
    let f = r
        .findings
        .iter()
        .find(|f| f.resource.id == bucket)
        .unwrap_or_else(|| panic!("no finding for {bucket}: {:#?}", r.findings));
    serde_json::to_value(&f.evidence).unwrap()
}

/// Policies AWS calls public that the old reading passed over: an Allow with `NotPrincipal`
/// (everyone but the named), and an Allow to everyone "confined" by a wildcard source ARN. AWS's
/// own evaluation (the local AWS's GetBucketPolicyStatus, as documented) agrees, so auto mode blocks
/// both at once; a policy confined by a fixed VPC endpoint stays private by both readings.
#[tokio::test]
async fn not_principal_and_wildcard_conditions_are_public_as_aws_evaluates_them_and_auto_mode_blocks_them() {
    let moto = Moto::start().unwrap();
    let client = s3(&moto.sdk_config().await);
    finops_tests::seed::create_table(&moto.clients().await.dynamodb, TABLE).await;
    let not_principal = serde_json::json!({"Version": "2012-10-17", "Statement": [{"Sid": "AllButAuditors",
        "Effect": "Allow", "NotPrincipal": {"AWS": "arn:aws:iam::111122223333:role/auditor"},
        "Action": "s3:GetObject", "Resource": "arn:aws:s3:::not-principal/*"}]})
    .to_string();
    let any_distribution = allow_everyone(
        "any-distribution",
        Some(serde_json::json!({"StringLike": {"aws:SourceArn": "arn:aws:cloudfront::*:distribution/*"}})),
    );
    let vpce = allow_everyone(
        "vpce-only",
        Some(serde_json::json!({"StringEquals": {"aws:SourceVpce": "vpce-1a2b3c"}})),
    );
    for (bucket, policy) in [
        ("not-principal", not_principal),
        ("any-distribution", any_distribution),
        ("vpce-only", vpce),
    ] {
        client.create_bucket().bucket(bucket).send().await.unwrap();
        client
            .put_bucket_policy()
            .bucket(bucket)
            .policy(policy)
            .send()
            .await
            .unwrap();
    }
    let deps = deps(&moto, Mode::Auto).await;

    let report = s3_public::handler::handle(sweep(), &deps, Utc::now()).await.unwrap();

    assert_eq!(flagged(&report), vec!["any-distribution", "not-principal"]);
    for bucket in ["any-distribution", "not-principal"] {
        let e = evidence_of(&report, bucket);
        assert_eq!(e["reasons"][0]["source"], "policy", "{e}");
        assert_eq!(e["disagreements"], serde_json::json!([]), "{bucket}: AWS agrees: {e}");
        assert_eq!(outcome_of(&report, bucket).outcome, OutcomeKind::Executed);
        assert_eq!(
            bucket_block(&client, bucket).await,
            Some(BlockSettings::ALL),
            "{bucket}"
        );
    }
    assert_eq!(bucket_block(&client, "vpce-only").await, None);
}

/// A bucket whose policy delegates to its access points is public through an internet access
/// point with a public policy, and blocking the bucket closes that path; a VPC access point, or an
/// access point on a bucket that does not delegate, opens nothing. The region's access points are
/// listed once, and only buckets that delegate read theirs.
#[tokio::test]
async fn a_public_internet_access_point_the_bucket_delegates_to_is_found_and_blocking_the_bucket_closes_it() {
    let moto = Moto::start().unwrap();
    let client = s3(&moto.sdk_config().await);
    finops_tests::seed::create_table(&moto.clients().await.dynamodb, TABLE).await;
    for bucket in ["delegating", "inside-only", "not-delegating"] {
        client.create_bucket().bucket(bucket).send().await.unwrap();
    }
    for bucket in ["delegating", "inside-only"] {
        client
            .put_bucket_policy()
            .bucket(bucket)
            .policy(delegate_to_access_points(bucket))
            .send()
            .await
            .unwrap();
    }
    seed_access_point(&moto, "open-ap", "delegating", true).await;
    seed_access_point(&moto, "vpc-ap", "inside-only", false).await;
    seed_access_point(&moto, "stray-ap", "not-delegating", true).await;
    let deps = deps(&moto, Mode::Auto).await;

    let report = s3_public::handler::handle(sweep(), &deps, Utc::now()).await.unwrap();

    assert_eq!(flagged(&report), vec!["delegating"]);
    let e = evidence_of(&report, "delegating");
    assert_eq!(e["reasons"][0]["source"], "access-point", "{e}");
    assert_eq!(e["reasons"][0]["name"], "open-ap", "{e}");
    assert_eq!(e["disagreements"], serde_json::json!([]), "AWS agrees: {e}");
    let outcome = outcome_of(&report, "delegating");
    assert_eq!(outcome.outcome, OutcomeKind::Executed, "{outcome:?}");
    assert!(outcome.detail.contains("no longer public"), "{}", outcome.detail);
    assert_eq!(bucket_block(&client, "delegating").await, Some(BlockSettings::ALL));
    assert_eq!(bucket_block(&client, "not-delegating").await, None);

    let calls = deps.clients.calls.snapshot();
    let count = |op: &str| {
        calls
            .iter()
            .filter(|(k, _)| k.ends_with(op))
            .map(|(_, n)| *n)
            .sum::<u64>()
    };
    // One listing per run and region (it serves the re-check too), never one per bucket.
    assert_eq!(count(".ListAccessPoints"), 1, "{calls:?}");
    // open-ap at the sweep and the re-check; never vpc-ap or stray-ap.
    assert_eq!(count(".GetAccessPointPolicyStatus"), 2, "{calls:?}");
}

/// AWS's own evaluation and this reading disagree: GetBucketPolicyStatus calls a policy public
/// that this reading finds confined to a VPC endpoint (here AWS's answer is set by the local AWS,
/// as a future AWS rule this reading does not know would). Auto mode neither blocks it nor passes
/// it over: it asks a person, saying what differs, and a person's approval blocks it.
#[tokio::test]
async fn where_aws_s_own_evaluation_disagrees_the_bucket_is_asked_about_never_blocked_automatically() {
    let moto = Moto::start().unwrap();
    let client = s3(&moto.sdk_config().await);
    finops_tests::seed::create_table(&moto.clients().await.dynamodb, TABLE).await;
    client.create_bucket().bucket("vpce-only").send().await.unwrap();
    client
        .put_bucket_policy()
        .bucket("vpce-only")
        .policy(allow_everyone(
            "vpce-only",
            Some(serde_json::json!({"StringEquals": {"aws:SourceVpce": "vpce-1a2b3c"}})),
        ))
        .send()
        .await
        .unwrap();
    client.create_bucket().bucket("public-acl").send().await.unwrap();
    client
        .put_bucket_acl()
        .bucket("public-acl")
        .acl(BucketCannedAcl::PublicRead)
        .send()
        .await
        .unwrap();
    moto.fault_rule(serde_json::json!({"service": "s3", "operation": "GetBucketPolicyStatus", "share": 1.0,
        "status": 200, "content_type": "application/xml",
        "body": "<?xml version=\"1.0\" encoding=\"UTF-8\"?><PolicyStatus xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><IsPublic>true</IsPublic></PolicyStatus>"}))
        .await;
    let c = moto.clients().await;
    let sqs = aws_sdk_sqs::Client::new(&moto.sdk_config().await);
    let (topic, queue) = finops_tests::seed::topic_with_queue(&c.sns, &sqs, "finops").await;
    let policy = Policy {
        mode: Mode::Auto,
        max_actions_percent: 100.0,
        ..Policy::default()
    };
    let deps = finops_tests::deps(&moto, "s3-public", policy.clone(), Some(TABLE), Some(&topic)).await;

    let report = s3_public::handler::handle(sweep(), &deps, Utc::now()).await.unwrap();

    assert_eq!(flagged(&report), vec!["public-acl", "vpce-only"]);
    let e = evidence_of(&report, "vpce-only");
    assert_eq!(e["reasons"], serde_json::json!([]), "{e}");
    assert_eq!(
        e["disagreements"],
        serde_json::json!([{"access_point": null, "aws_public": true}]),
        "{e}"
    );
    let asked = outcome_of(&report, "vpce-only");
    assert_eq!(asked.outcome, OutcomeKind::PendingApproval, "{asked:?}");
    assert!(
        asked.detail.contains("AWS's own evaluation disagrees"),
        "{}",
        asked.detail
    );
    assert_eq!(bucket_block(&client, "vpce-only").await, None);
    assert_eq!(outcome_of(&report, "public-acl").outcome, OutcomeKind::Executed);
    let messages = finops_tests::seed::drain_queue(&sqs, &queue).await;
    let requests: Vec<serde_json::Value> = messages
        .iter()
        .filter_map(|m| serde_json::from_str::<serde_json::Value>(m["Message"].as_str()?).ok())
        .filter(|m| m["type"] == "approval-request")
        .collect();
    assert_eq!(requests.len(), 1, "{messages:#?}");
    assert_eq!(requests[0]["finding"]["resource"]["id"], "vpce-only");
    let message: remediation::notify::Message = serde_json::from_value(requests[0].clone()).unwrap();
    let slack = remediation::slack::render(
        &message,
        remediation::slack::RenderOptions::new(&finops_checks::CATALOG),
    )
    .to_string();
    assert!(
        slack.contains("To look at by hand")
            && slack.contains("AWS's own evaluation (GetBucketPolicyStatus) calls the bucket policy public"),
        "{slack}"
    );
    let finding = report.findings.iter().find(|f| f.resource.id == "vpce-only").unwrap();
    let shown = finops_checks::CATALOG.why(finding);
    assert!(shown.starts_with("Not public by this reading"), "{shown}");

    // The executor: the machine is refused, a person's approval blocks it.
    let executor = AwsExecutor {
        clients: deps.clients.clone(),
        policy: policy.clone(),
    };
    let ctx = RunContext::new("s3-public", &policy, deps.sinks(), Utc::now());
    let by_machine = Decider {
        sealer: None,
        by: "auto",
        request_id: None,
        budget: None,
    };
    let (acted, _) = executor.execute(&ctx, finding, by_machine).await;
    assert_ne!(acted.outcome.outcome, OutcomeKind::Executed, "{acted:?}");
    assert!(acted.outcome.detail.contains("GetBucketPolicyStatus"), "{acted:?}");
    assert_eq!(bucket_block(&client, "vpce-only").await, None);
    let by_person = Decider {
        sealer: None,
        by: "ana@example.com",
        request_id: Some("r-1"),
        budget: None,
    };
    let (acted, _) = executor.execute(&ctx, finding, by_person).await;
    assert_eq!(acted.outcome.outcome, OutcomeKind::Executed, "{acted:?}");
    assert_eq!(bucket_block(&client, "vpce-only").await, Some(BlockSettings::ALL));
}

/// A cross-check that cannot be read (here AccessDenied on GetBucketPolicyStatus, as a member
/// account whose role predates it answers) takes nothing away: the bucket is judged by its own ACL
/// and policy, as before the cross-check existed, is blocked in auto mode, and the run says what
/// it could not read.
#[tokio::test]
async fn a_cross_check_that_cannot_be_read_leaves_the_bucket_judged_as_before_and_the_run_says_so() {
    let moto = Moto::start().unwrap();
    let client = s3(&moto.sdk_config().await);
    finops_tests::seed::create_table(&moto.clients().await.dynamodb, TABLE).await;
    client.create_bucket().bucket("public-policy").send().await.unwrap();
    client
        .put_bucket_policy()
        .bucket("public-policy")
        .policy(allow_everyone("public-policy", None))
        .send()
        .await
        .unwrap();
    moto.fault_rule(serde_json::json!({"service": "s3", "operation": "GetBucketPolicyStatus", "share": 1.0,
        "status": 403, "content_type": "application/xml",
        "body": "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message><RequestId>r</RequestId></Error>"}))
        .await;
    let deps = deps(&moto, Mode::Auto).await;

    let report = s3_public::handler::handle(sweep(), &deps, Utc::now()).await.unwrap();

    let outcome = outcome_of(&report, "public-policy");
    assert_eq!(outcome.outcome, OutcomeKind::Executed, "{outcome:?}");
    assert_eq!(bucket_block(&client, "public-policy").await, Some(BlockSettings::ALL));
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.contains("judged by their own ACL and policy alone") && n.contains("GetBucketPolicyStatus")),
        "{:?}",
        report.notes
    );
}

//! `make org-demo`: an organisation in moto (the hub, three member accounts and a closed one) in
//! two regions, each seeded differently; the fan-out run as the state machine runs it (targets →
//! Map at the policy's concurrency → ResultWriter → summary), each item through the rule's own
//! handler with the item event the Map sends, and the organisation digest as Slack shows it.

use std::collections::BTreeMap;

use chrono::Utc;
use finops_tests::httpserver::PriceListStandIn;
use finops_tests::org::{self, clients_in};
use finops_tests::seed::{self, Usage};
use finops_tests::Moto;
use remediation::aws::pricelist::PriceList;
use remediation::notify::Message;
use remediation::policy::{Mode, OrganizationPolicy, Policy};
use serde_json::Value;

use super::{fail, money};

const REGIONS: [&str; 2] = ["us-east-1", "eu-west-1"];
const BUCKET: &str = "finops-fanout-results";
const TABLE: &str = "finops-org-demo";

/// (idle instances, unattached volumes) per account (hub first) and region.
const SEEDS: [[(usize, usize); 2]; 4] = [[(2, 1), (0, 0)], [(3, 0), (1, 2)], [(0, 1), (4, 0)], [(1, 0), (0, 0)]];

pub async fn run() {
    let moto = Moto::start().unwrap_or_else(|e| fail(e));
    println!("moto server (local AWS) on {}", moto.endpoint());
    let hub = moto.clients().await;
    seed::create_table(&hub.dynamodb, TABLE).await;
    let mut members = org::organisation(&hub, 4).await;
    let closed = members.pop().unwrap_or_else(|| fail("no fourth account"));
    org::close(&hub, &closed).await;
    let own = hub.identity().await.unwrap_or_else(|e| fail(e)).account;
    let accounts: Vec<String> = std::iter::once(own.clone()).chain(members.iter().cloned()).collect();
    for (n, account) in accounts.iter().enumerate() {
        for (r, region) in REGIONS.iter().enumerate() {
            let c = clients_in(&hub, account, region).await;
            let (idle, volumes) = SEEDS[n][r];
            for _ in 0..idle {
                let id = seed::run_instance(&c.ec2, "m5.large", &[("Owner", "demo")]).await;
                seed::put_usage(&c.cloudwatch, &id, Usage::IDLE, Utc::now(), 14).await;
            }
            let busy = seed::run_instance(&c.ec2, "c5.xlarge", &[("Owner", "demo")]).await;
            seed::put_usage(&c.cloudwatch, &busy, Usage::BUSY, Utc::now(), 14).await;
            for _ in 0..volumes {
                seed::create_volume(&c.ec2, "gp3", 500, None, &format!("{region}a"), &[]).await;
            }
        }
    }
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&hub.config)
            .force_path_style(true)
            .build(),
    );
    s3.create_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .unwrap_or_else(|e| fail(e));
    println!(
        "organisation: hub {own} (management account), members {}, closed {closed}; regions {}",
        members.join(", "),
        REGIONS.join(", ")
    );
    println!("each account-region seeded differently: idle m5.large instances, one busy c5.xlarge, unattached 500 GiB gp3 volumes");

    // eu-west-1's prices from the Price List API (a local stand-in answering as the API does).
    let (prices, price_server) = PriceListStandIn::start().await;
    prices.instance("eu-west-1", "m5.large", 0.107);
    prices.instance("eu-west-1", "c5.xlarge", 0.192);
    prices.volume("eu-west-1", "gp3", 0.088);

    // One member has not deployed the member role yet: STS refuses, as it does.
    let denied = members[2].clone();
    moto.fault_rule(serde_json::json!({
        "service": "sts", "operation": "AssumeRole", "body_contains": denied, "status": 403, "content_type": "text/xml",
        "body": format!("<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>User: arn:aws:sts::{own}:assumed-role/finops-IdleEc2FunctionRole/idle-ec2 is not authorized to perform: sts:AssumeRole on resource: arn:aws:iam::{denied}:role/FinOpsAutopilotMember</Message></Error><RequestId>0f4e2c3a-demo</RequestId></ErrorResponse>"),
    }))
    .await;
    println!(
        "member {denied} has no member role yet (StackSets not rolled out there): its items will fail, the rest go on"
    );

    let policy = Policy {
        mode: Mode::DryRun,
        organization: Some(OrganizationPolicy {
            regions: REGIONS.iter().map(|r| r.to_string()).collect(),
            max_concurrency: 4,
            ..OrganizationPolicy::default()
        }),
        ..Policy::default()
    };
    println!("\npolicy: organization: {{accounts_from: organizations, regions: [us-east-1, eu-west-1], max_concurrency: 4}}, mode dry-run");
    // Each rule runs as its own role in the template.
    let mut deps = finops_tests::deps(&moto, "idle-ec2", policy.clone(), Some(TABLE), None).await;
    let mut ebs_deps = finops_tests::deps(&moto, "ebs-cleanup", policy.clone(), Some(TABLE), None).await;
    for d in [&mut deps, &mut ebs_deps] {
        d.pricing = Some(PriceList::new(
            &d.clients.config,
            &d.clients.calls,
            Some(&price_server.url()),
        ));
    }
    let app = org_fanout::handler::App::with_bucket(
        finops_tests::deps(&moto, "org-fanout", policy, None, None).await,
        BUCKET.into(),
    )
    .unwrap_or_else(|e| fail(e));
    let now = Utc::now();

    for rule_name in ["idle-ec2", "ebs-cleanup"] {
        let rule = |v: Value| -> std::pin::Pin<Box<dyn std::future::Future<Output = _> + Send + '_>> {
            match rule_name {
                "idle-ec2" => Box::pin(idle_ec2::handler::handle(v, &deps, now)),
                _ => Box::pin(ebs_cleanup::handler::handle(v, &ebs_deps, now)),
            }
        };
        let run_id = format!("{rule_name}-demo-1");
        let run = org::run(&app, rule_name, &run_id, &rule).await;
        println!(
            "\n== {rule_name}: state machine execution {run_id}: {} items ({} accounts × {} regions), at most {} at once (seen {})",
            run.targets["items"], run.targets["accounts"], REGIONS.len(), run.targets["max_concurrency"], run.peak_concurrency
        );
        let mut rows: BTreeMap<(String, String), String> = BTreeMap::new();
        for (item, report) in &run.reports {
            let source = report
                .findings
                .first()
                .map(|f| price_source(&f.evidence))
                .unwrap_or_default();
            rows.insert(
                (item.account.clone(), item.region.clone()),
                format!(
                    "scanned {:>3}  findings {:>2}  {}/month  {}",
                    report.scanned,
                    report.findings.len(),
                    money(Some(report.estimated_monthly_savings_usd)),
                    source
                ),
            );
        }
        for f in &run.digest.failed_targets {
            rows.insert((f.account.clone(), f.region.clone()), format!("FAILED: {}", f.reason));
        }
        for ((account, region), row) in &rows {
            println!("   {account} {region:<10} {row}");
        }
        let rendered = remediation::slack::render(
            // As the summary publishes it: the largest accounts, failures grouped by reason.
            &Message::OrgDigest {
                digest: Box::new(run.digest.for_message(
                    org_fanout::handler::MESSAGE_ACCOUNTS,
                    org_fanout::handler::MESSAGE_FAILURE_GROUPS,
                    &format!(
                        "s3://{}/{}",
                        app.bucket,
                        org_fanout::handler::digest_key(rule_name, &run_id)
                    ),
                )),
            },
            remediation::slack::RenderOptions::new(&finops_checks::CATALOG),
        );
        println!(
            "\n   Slack, one organisation digest: {}",
            rendered["text"].as_str().unwrap_or_default()
        );
        let blocks = rendered["blocks"].as_array().cloned().unwrap_or_default();
        for b in blocks.iter().filter_map(|b| b["text"]["text"].as_str()) {
            for line in b.lines() {
                println!("     {line}");
            }
        }
    }
    println!(
        "\nthe items, the Map's results and its manifest are in s3://{BUCKET}/runs/<rule>/<run>/ as Step Functions' ResultWriter writes them"
    );
}

/// Where a finding's dollars came from, as its evidence says (the checks that price a resource).
fn price_source(e: &remediation::model::Evidence) -> String {
    e.as_json()["price_source"].as_str().unwrap_or_default().to_string()
}

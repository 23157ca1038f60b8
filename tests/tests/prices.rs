//! Savings outside us-east-1: prices from the AWS Price List API (a local stand-in answering as
//! the API does, since moto does not serve it), cached per region and month in the state table,
//! the embedded us-east-1 catalog as the fallback, and the evidence naming the source and region.

use chrono::Utc;
use finops_checks::ebs_cleanup::detect::EbsCleanupEvidence;
use finops_checks::idle_ec2::detect::IdleEc2Evidence;
use finops_tests::httpserver::PriceListStandIn;
use finops_tests::org::clients_in;
use finops_tests::seed::{self, Usage};
use finops_tests::Moto;
use remediation::aws::pricelist::PriceList;
use remediation::config::Deps;
use remediation::policy::{OrganizationPolicy, Policy};
use serde_json::{json, Value};

const TABLE: &str = "finops-state";
const HUB: &str = "123456789012";

fn policy() -> Policy {
    Policy {
        organization: Some(OrganizationPolicy {
            regions: vec!["eu-west-1".into()],
            ..OrganizationPolicy::default()
        }),
        ..Policy::default()
    }
}

/// The hub's own account in `region`, as the fan-out's item for it says.
fn item(region: &str) -> Value {
    json!({"source": "finops.fanout", "run_id": "prices-1", "account": HUB, "region": region})
}

async fn deps(moto: &Moto, prices: &finops_tests::httpserver::Server) -> Deps {
    let mut deps = finops_tests::deps(moto, "idle-ec2", policy(), Some(TABLE), None).await;
    deps.pricing = Some(PriceList::new(
        &deps.clients.config,
        &deps.clients.calls,
        Some(&prices.url()),
    ));
    deps
}

async fn seeded() -> (Moto, PriceListStandIn, finops_tests::httpserver::Server) {
    let moto = Moto::start().expect("moto");
    let hub = moto.clients().await;
    seed::create_table(&hub.dynamodb, TABLE).await;
    let eu = clients_in(&hub, HUB, "eu-west-1").await;
    let id = seed::run_instance(&eu.ec2, "m5.large", &[]).await;
    seed::put_usage(&eu.cloudwatch, &id, Usage::IDLE, Utc::now(), 14).await;
    let us = hub.clone();
    let id = seed::run_instance(&us.ec2, "m5.large", &[]).await;
    seed::put_usage(&us.cloudwatch, &id, Usage::IDLE, Utc::now(), 14).await;
    let (stand_in, server) = PriceListStandIn::start().await;
    stand_in.instance("eu-west-1", "m5.large", 0.107);
    stand_in.instance("eu-west-1", "t3.micro", 0.0114);
    stand_in.instance("us-east-1", "m5.large", 0.096);
    stand_in.volume("eu-west-1", "gp3", 0.088);
    stand_in.volume("eu-west-1", "gp2", 0.11);
    (moto, stand_in, server)
}

/// Scans `region` as a fan-out item of the hub and returns the cost of every idle-ec2 run
/// recorded so far, newest first.
async fn scan_costed(deps: &Deps, region: &str) -> Vec<remediation::cost::RunCost> {
    idle_ec2::handler::handle(item(region), deps, Utc::now())
        .await
        .expect("scan");
    let state = deps.state.as_ref().expect("state");
    let runs = state.runs("idle-ec2", None, None).await.expect("runs");
    runs.into_iter().filter_map(|r| r.cost).collect()
}

/// Whether any of `costs` was priced from a source saying `words`.
fn priced(costs: &[remediation::cost::RunCost], words: &str) -> bool {
    costs.iter().any(|c| c.prices.contains(words))
}

/// The Price List requests for anything but EC2's prices: the run costs' own lookups.
fn service_requests(stand_in: &PriceListStandIn) -> usize {
    stand_in
        .requests()
        .iter()
        .filter(|r| r.json()["ServiceCode"] != "AmazonEC2")
        .count()
}

fn idle_evidence(report: &remediation::model::RunReport) -> (f64, String) {
    assert_eq!(report.findings.len(), 1, "{report:#?}");
    let f = &report.findings[0];
    let Some(e) = f.evidence.get::<IdleEc2Evidence>() else {
        panic!("{f:?}")
    };
    (
        f.estimated_monthly_savings_usd.expect("a dollar figure"),
        e.price_source.clone().expect("a price source"),
    )
}

#[tokio::test]
async fn savings_outside_us_east_1_come_from_the_price_list_api_once_a_month_and_say_so() {
    let (moto, stand_in, server) = seeded().await;
    let deps = deps(&moto, &server).await;
    let month = Utc::now().format("%Y-%m").to_string();

    let report = idle_ec2::handler::handle(item("eu-west-1"), &deps, Utc::now())
        .await
        .expect("scan");
    let (usd, source) = idle_evidence(&report);
    assert_eq!(
        usd, 78.11,
        "0.107 $/h × 730 h: eu-west-1's price, not us-east-1's 70.08"
    );
    assert_eq!(source, format!("AWS Price List API, eu-west-1, {month}"));
    let asked = stand_in.requests_for("AmazonEC2");
    assert_eq!(asked.len(), 2, "one GetProducts for instances, one for volumes");
    let filters = asked[0].json()["Filters"].to_string();
    for f in [
        "regionCode",
        "eu-west-1",
        "operatingSystem",
        "Linux",
        "tenancy",
        "Shared",
        "capacitystatus",
        "Used",
    ] {
        assert!(filters.contains(f), "{filters}");
    }

    // Again this month: from the table's cache, not the API.
    let report = idle_ec2::handler::handle(item("eu-west-1"), &deps, Utc::now())
        .await
        .expect("scan");
    let (usd, source) = idle_evidence(&report);
    assert_eq!(usd, 78.11);
    assert_eq!(source, format!("AWS Price List API, eu-west-1, {month} (cached)"));
    assert_eq!(stand_in.requests_for("AmazonEC2").len(), 2, "the cache answered");

    // An unattached gp3 volume there: its storage at eu-west-1's rate.
    let eu = clients_in(&moto.clients().await, HUB, "eu-west-1").await;
    seed::create_volume(&eu.ec2, "gp3", 100, None, "eu-west-1a", &[]).await;
    let mut ebs_policy = policy();
    ebs_policy.ebs_cleanup.grace_days = 0;
    let mut ebs_deps = finops_tests::deps(&moto, "ebs-cleanup", ebs_policy, Some(TABLE), None).await;
    ebs_deps.pricing = deps.pricing.clone();
    let report = ebs_cleanup::handler::handle(item("eu-west-1"), &ebs_deps, Utc::now())
        .await
        .expect("scan");
    assert_eq!(report.findings.len(), 1, "{report:#?}");
    let Some(e) = report.findings[0].evidence.get::<EbsCleanupEvidence>() else {
        panic!()
    };
    assert_eq!(e.volume_usd_per_month, Some(8.8), "100 GiB × 0.088");
    assert_eq!(
        report.findings[0].estimated_monthly_savings_usd,
        Some(3.8),
        "net of the 100 GiB snapshot"
    );
    // The source says which part is regional and which is the catalog's us-east-1 rate.
    let source = format!(
        "storage: AWS Price List API, eu-west-1, {month} (cached); IOPS, throughput and snapshot: embedded catalog, us-east-1 rates"
    );
    assert_eq!(e.price_source.as_deref(), Some(source.as_str()), "{e:?}");
    // And Slack shows it, however many other fields the evidence has.
    let pairs = remediation::slack::evidence_pairs(&report.findings[0]);
    assert_eq!(pairs.last(), Some(&("price source".to_string(), source)), "{pairs:?}");

    // us-east-1 is the embedded catalog's own region: no API call.
    let before = stand_in.requests().len();
    let report = idle_ec2::handler::handle(item("us-east-1"), &deps, Utc::now())
        .await
        .expect("scan");
    let (usd, source) = idle_evidence(&report);
    assert_eq!((usd, source.as_str()), (70.08, "embedded catalog, us-east-1"));
    assert_eq!(stand_in.requests().len(), before);
}

#[tokio::test]
async fn with_the_price_list_api_down_the_embedded_catalog_stands_in_and_the_evidence_says_why() {
    let (moto, stand_in, server) = seeded().await;
    for _ in 0..4 {
        stand_in.answer_next(PriceListStandIn::error(400, "ThrottlingException", "Rate exceeded"));
    }
    let deps = deps(&moto, &server).await;
    let report = idle_ec2::handler::handle(item("eu-west-1"), &deps, Utc::now())
        .await
        .expect("scan");
    let (usd, source) = idle_evidence(&report);
    assert_eq!(usd, 70.08, "us-east-1's price, said to be so");
    assert!(
        source.starts_with("embedded catalog, us-east-1 prices for eu-west-1 (Price List API unavailable:")
            && source.contains("ThrottlingException"),
        "{source}"
    );
    // Nothing was cached: the next run asks the API again, and now it answers.
    let report = idle_ec2::handler::handle(item("eu-west-1"), &deps, Utc::now())
        .await
        .expect("scan");
    let (usd, source) = idle_evidence(&report);
    assert_eq!(usd, 78.11, "{source}");
}

#[tokio::test]
async fn a_cached_book_with_a_part_missing_is_asked_again_and_never_prices_a_volume_at_nothing() {
    let (moto, stand_in, server) = seeded().await;
    let deps = deps(&moto, &server).await;
    let month = Utc::now().format("%Y-%m").to_string();
    // A cached book whose EBS part is empty (a partial answer cached by an older version, or a
    // hand edit): volumes would find no rate and lose their dollars.
    let book = json!({"region": "eu-west-1", "source": "AWS Price List API, eu-west-1",
        "ec2_hourly": {"m5.large": 0.5}, "ebs_gb_month": {}});
    let hub = moto.clients().await;
    hub.dynamodb
        .put_item()
        .table_name(TABLE)
        .item(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S("PRICES#eu-west-1".into()),
        )
        .item("sk", aws_sdk_dynamodb::types::AttributeValue::S(month.clone()))
        .item("book", aws_sdk_dynamodb::types::AttributeValue::S(book.to_string()))
        .send()
        .await
        .expect("PutItem");
    let report = idle_ec2::handler::handle(item("eu-west-1"), &deps, Utc::now())
        .await
        .expect("scan");
    let (usd, source) = idle_evidence(&report);
    assert_eq!(
        (usd, source.as_str()),
        (78.11, format!("AWS Price List API, eu-west-1, {month}").as_str())
    );
    assert_eq!(
        stand_in.requests_for("AmazonEC2").len(),
        2,
        "asked the API again (EC2, EBS)"
    );

    // An API that lists instances but no volume prices: the catalog stands in, saying why.
    let (moto, stand_in, server) = seeded().await;
    stand_in.clear_volumes();
    let fresh = self::deps(&moto, &server).await;
    let report = idle_ec2::handler::handle(item("eu-west-1"), &fresh, Utc::now())
        .await
        .expect("scan");
    let (usd, source) = idle_evidence(&report);
    assert_eq!(usd, 70.08, "{source}");
    assert!(source.contains("listed 2 EC2 and 0 EBS prices"), "{source}");
}

/// Issue 30: a run that scans outside us-east-1 is costed at that region's prices from the Price
/// List API for what it asked there (CloudWatch, Config, S3), where it lists them (each by its
/// usage type, past the free tier), cached a month beside the instance prices, and at the
/// deployment's region's for what it used where it runs (Lambda, DynamoDB, SNS); the source says
/// which came from where and names the prices the API did not list.
#[tokio::test]
async fn a_run_outside_us_east_1_is_costed_at_its_region_s_prices_and_says_which() {
    let (moto, stand_in, server) = seeded().await;
    // eu-west-1's prices as the Price List names them there (EU- prefix); made dearer than
    // us-east-1's so the test tells them apart.
    stand_in.service_price("AmazonCloudWatch", "eu-west-1", "EU-CW:GMD-Metrics", &[(0, 0.000_012)]);
    stand_in.service_price(
        "AmazonDynamoDB",
        "eu-west-1",
        "EU-ReadRequestUnits",
        &[(0, 0.000_000_141)],
    );
    stand_in.service_price("AmazonDynamoDB", "eu-west-1", "EU-IA-ReadRequestUnits", &[(0, 0.000_9)]);
    stand_in.service_price(
        "AmazonDynamoDB",
        "eu-west-1",
        "EU-WriteRequestUnits",
        &[(0, 0.000_000_705)],
    );
    stand_in.service_price(
        "AmazonSNS",
        "eu-west-1",
        "EU-Requests-Tier1",
        &[(0, 0.0), (1_000_000, 0.000_000_5)],
    );
    stand_in.service_price(
        "AWSLambda",
        "eu-west-1",
        "EU-Lambda-GB-Second-ARM",
        &[(7_500_000_000, 0.000_012), (0, 0.000_013_333_4)],
    );
    stand_in.service_price("AWSLambda", "eu-west-1", "EU-Request-ARM", &[(0, 0.000_000_2)]);
    // Another region's price is not this one's.
    stand_in.service_price(
        "AmazonStates",
        "eu-central-1",
        "EUC1-StateTransition",
        &[(0, 0.000_025)],
    );
    let deps = deps(&moto, &server).await;
    let month = Utc::now().format("%Y-%m").to_string();

    let costs = scan_costed(&deps, "eu-west-1").await;
    let cost = costs[0].clone();
    let embedded = remediation::cost::ServicePrices::embedded();
    assert_eq!(
        cost.prices,
        format!(
            "where it ran (us-east-1): {}; where it scanned (eu-west-1): AWS Price List API, eu-west-1, {month}; \
             us-east-1 list prices (embedded) for AWSConfig ConfigRuleEvaluations, \
             AmazonStates StateTransition, AmazonS3 Requests-Tier1, AmazonS3 Requests-Tier2",
            embedded.source
        )
    );
    assert!(cost.usage.metrics_requested > 0, "{cost:?}");
    assert!(
        (cost.by_service["cloudwatch"] - cost.usage.metrics_requested as f64 * 0.000_012).abs() < 1e-15,
        "{cost:?}"
    );
    // The state table is the deployment's, in us-east-1: its requests at us-east-1's prices.
    let dynamodb = cost.usage.dynamodb_read_units as f64 * embedded.per_dynamodb_read_unit
        + cost.usage.dynamodb_write_units as f64 * embedded.per_dynamodb_write_unit;
    assert!(
        (cost.by_service["dynamodb"] - dynamodb).abs() < 1e-15,
        "billed where it runs: {cost:?}"
    );
    // One GetProducts per price, each for its service, region and usage type.
    let asked: Vec<Value> = stand_in
        .requests()
        .iter()
        .map(|r| r.json())
        .filter(|b| b["ServiceCode"] != "AmazonEC2")
        .collect();
    assert_eq!(asked.len(), remediation::cost::PRICE_LIST_LINES.len(), "{asked:#?}");
    let gmd = asked
        .iter()
        .find(|b| b["ServiceCode"] == "AmazonCloudWatch")
        .expect("CloudWatch asked");
    assert_eq!(
        gmd["Filters"],
        json!([{"Type": "TERM_MATCH", "Field": "regionCode", "Value": "eu-west-1"},
               {"Type": "CONTAINS", "Field": "usagetype", "Value": "CW:GMD-Metrics"}])
    );

    // The next run this month reads them from the table, and says so.
    let costs = scan_costed(&deps, "eu-west-1").await;
    assert_eq!(service_requests(&stand_in), asked.len(), "the cache answered");
    assert_eq!(costs.len(), 2);
    let cached = format!("(eu-west-1): AWS Price List API, eu-west-1, {month} (cached); ");
    assert!(priced(&costs, &cached), "{costs:#?}");

    // us-east-1 is costed at the embedded prices, its own, with no call.
    let costs = scan_costed(&deps, "us-east-1").await;
    assert!(costs.iter().any(|c| c.prices == embedded.source), "{costs:#?}");
    assert_eq!(service_requests(&stand_in), asked.len());
}

/// Issue 30: with the Price List API down, the run is costed at the embedded prices and its
/// record says why; nothing is cached, so the next run asks again.
#[tokio::test]
async fn with_the_price_list_down_a_run_is_costed_at_the_embedded_prices_and_says_why() {
    let (moto, stand_in, server) = seeded().await;
    stand_in.service_price("AmazonCloudWatch", "eu-west-1", "EU-CW:GMD-Metrics", &[(0, 0.000_012)]);
    let mut deps = deps(&moto, &server).await;
    deps.pricing = Some(PriceList::new(
        &deps.clients.config,
        &deps.clients.calls,
        Some("http://127.0.0.1:9"),
    ));
    let costs = scan_costed(&deps, "eu-west-1").await;
    let cost = costs[0].clone();
    assert!(
        cost.prices.contains(
            "where it scanned (eu-west-1): AWS list prices, us-east-1, before free tiers (embedded, 2026-12), standing in for eu-west-1 (Price List API unavailable:"
        ),
        "{}",
        cost.prices
    );
    assert!((cost.by_service["cloudwatch"] - cost.usage.metrics_requested as f64 * 0.000_01).abs() < 1e-15);

    // The next run within the hour does not wait on the API again: it says so.
    let costs = scan_costed(&deps, "eu-west-1").await;
    assert!(priced(&costs, "; asked again within the hour)"), "{costs:#?}");

    // Back up (a new container): the next run is costed at eu-west-1's price.
    deps.pricing = Some(PriceList::new(
        &deps.clients.config,
        &deps.clients.calls,
        Some(&server.url()),
    ));
    let costs = scan_costed(&deps, "eu-west-1").await;
    assert!(
        priced(&costs, "(eu-west-1): AWS Price List API, eu-west-1"),
        "{costs:#?}"
    );
}

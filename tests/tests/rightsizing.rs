//! rightsizing end to end: instances and 14 days of hourly peaks in moto, the real CloudWatch and
//! EC2 clients, and a Bedrock runtime stand-in (endpoint override for that client only) answering
//! well, malformed, out of the candidate set, 429 and 403.

use chrono::Utc;
use finops_checks::rightsizing::bedrock::{Explainer, SYSTEM};
use finops_checks::rightsizing::detect::RightsizingEvidence;
use finops_tests::approvals::Loop;
use finops_tests::httpserver::{BedrockStandIn, Server};
use finops_tests::seed;
use remediation::model::{OutcomeKind, RunReport};
use remediation::policy::Policy;
use serde_json::Value;

const MODEL: &str = "global.amazon.nova-2-lite-v1:0";

fn scheduled() -> Value {
    serde_json::from_str(include_str!("../../events/rightsizing/scheduled.json")).unwrap()
}

struct Rig {
    lp: Loop,
    bedrock: BedrockStandIn,
    _server: Server,
    app: rightsizing::handler::App,
}

async fn rig() -> Rig {
    let (bedrock, server) = BedrockStandIn::start().await;
    let lp = Loop::start(Policy::default()).await;
    let deps = lp.detector_deps("rightsizing", Policy::default()).await;
    let client = rightsizing::handler::App::bedrock(&deps, Some(&server.url()));
    let app = rightsizing::handler::App { deps, bedrock: client };
    Rig {
        lp,
        bedrock,
        _server: server,
        app,
    }
}

impl Rig {
    /// An m5.2xlarge whose CPU peaks at 20% (35% one hour a day) and memory at 30%.
    async fn oversized(&self, tags: &[(&str, &str)]) -> String {
        let c = self.lp.moto.clients().await;
        let id = seed::run_instance(&c.ec2, "m5.2xlarge", tags).await;
        let now = Utc::now();
        seed::put_hourly(&c.cloudwatch, "AWS/EC2", "CPUUtilization", &id, now, 14, |h| {
            if h % 24 == 14 {
                35.0
            } else {
                20.0
            }
        })
        .await;
        seed::put_hourly(&c.cloudwatch, "CWAgent", "mem_used_percent", &id, now, 14, |_| 30.0).await;
        id
    }

    async fn scan(&self) -> RunReport {
        let explainer = self.app.bedrock.as_ref().map(|b| b as &dyn Explainer);
        rightsizing::handler::handle(scheduled(), &self.app.deps, explainer, Utc::now())
            .await
            .unwrap()
    }
}

fn evidence(report: &RunReport) -> RightsizingEvidence {
    assert_eq!(report.findings.len(), 1, "{report:#?}");
    let evidence = &report.findings[0].evidence;
    evidence
        .get::<RightsizingEvidence>()
        .unwrap_or_else(|| panic!("not rightsizing evidence: {evidence:?}"))
}

#[tokio::test]
async fn bedrock_explains_within_the_candidates_and_the_catalog_sets_the_dollars() {
    let r = rig().await;
    let id = r.oversized(&[("Owner", "ana")]).await;
    r.bedrock.answer_next(BedrockStandIn::answer(
        r#"{"recommended_type": "r5.xlarge", "risk": "low", "rationale": "CPU peaks at 35% of 8 vCPUs (2.8 vCPU) fit 4 vCPUs; r5.xlarge keeps all 32 GiB, so memory cannot be the bottleneck."}"#,
    ));
    let report = r.scan().await;
    let e = evidence(&report);
    // The rules' sizing: p95 20% of 8 vCPUs × 1.3 = 2.08 vCPU; memory 30% of 32 GiB × 1.3 = 12.5 GiB.
    assert_eq!((e.required_vcpus, e.required_memory_gib), (2.08, 12.5));
    let names: Vec<&str> = e.candidates.iter().map(|c| c.instance_type.as_str()).collect();
    assert_eq!(names, ["m5.xlarge", "m6i.xlarge", "r5.xlarge"]);
    // The model picked the third candidate: its choice, its words, the catalog's dollars.
    assert_eq!(e.recommended_type, "r5.xlarge");
    assert_eq!(e.rationale_source, "bedrock");
    assert_eq!(e.model_id.as_deref(), Some(MODEL));
    assert!(e.rationale.starts_with("CPU peaks at 35%"));
    let f = &report.findings[0];
    assert_eq!(f.resource.id, id);
    assert_eq!(f.estimated_monthly_savings_usd, Some(96.36), "(0.384 - 0.252) × 730");
    assert_eq!(e.days_with_data, 14);
    assert_eq!(
        (e.cpu_p95_hourly_max_percent, e.cpu_max_percent, e.memory_p95_percent),
        (20.0, 35.0, Some(30.0))
    );

    // The request, as Converse expects it: signed for bedrock, the model in the path, the
    // instructions as system text, the evidence as the user's JSON, deterministic settings.
    let reqs = r.bedrock.requests();
    assert_eq!(reqs.len(), 1);
    let q = &reqs[0];
    assert_eq!(q.method, "POST");
    assert_eq!(q.path(), "/model/global.amazon.nova-2-lite-v1%3A0/converse");
    let auth = q.header("authorization").unwrap();
    assert!(
        auth.starts_with("AWS4-HMAC-SHA256 ") && auth.contains("/us-east-1/bedrock/aws4_request"),
        "{auth}"
    );
    let body = q.json();
    assert_eq!(body["system"][0]["text"], SYSTEM);
    assert_eq!(body["messages"][0]["role"], "user");
    assert_eq!(body["inferenceConfig"]["temperature"], 0.0);
    let prompt: Value = serde_json::from_str(body["messages"][0]["content"][0]["text"].as_str().unwrap()).unwrap();
    assert_eq!(prompt["instance_id"], id.as_str());
    assert_eq!(prompt["current_type"], "m5.2xlarge");
    assert_eq!(prompt["candidates_cheapest_first"].as_array().unwrap().len(), 3);
    assert!(
        !body.to_string().contains("usd"),
        "the model is never given dollars to repeat"
    );

    // Issue 30: the model's tokens are in the run's own cost, 412 read and 61 written (the
    // stand-in's `usage`) at Nova 2 Lite's list prices.
    let runs = r
        .app
        .deps
        .state
        .as_ref()
        .expect("state")
        .runs("rightsizing", None, None)
        .await
        .unwrap();
    let cost = runs[0].cost.as_ref().expect("the run's cost");
    assert_eq!(
        cost.usage.model_tokens[MODEL],
        remediation::cost::ModelTokens { input: 412, output: 61 }
    );
    let bedrock = (412.0 * 0.30 + 61.0 * 2.50) / 1e6;
    assert!((cost.by_service["bedrock"] - bedrock).abs() < 1e-15, "{cost:?}");
    assert!(cost.unpriced.is_empty(), "{cost:?}");
    assert!(report.own_cost_usd.is_some_and(|usd| usd >= bedrock), "{report:?}");

    // The finding reached SNS; Slack shows the recommendation and who explained it.
    let published = r.lp.drain().await;
    assert_eq!(Loop::of_type(&published, "finding").len(), 1);
    for res in r.lp.notify_slack(&published).await {
        res.unwrap();
    }
    let post = r.lp.slack.requests().last().unwrap().json().to_string();
    for want in ["r5.xlarge", "bedrock", "$96.36/month", "CPU peaks at 35%"] {
        assert!(post.contains(want), "{want:?} not in {post}");
    }
}

#[tokio::test]
async fn every_bad_answer_falls_back_to_the_rules_and_says_why() {
    let r = rig().await;
    r.oversized(&[("Owner", "ana")]).await;
    let cases = [
        (
            BedrockStandIn::answer("I would suggest an m5.xlarge, it is cheaper."),
            "not the JSON asked for",
        ),
        (
            BedrockStandIn::answer(
                r#"{"recommended_type": "t3.nano", "risk": "low", "rationale": "smallest is cheapest"}"#,
            ),
            "not one of the candidates",
        ),
        (
            BedrockStandIn::error(
                429,
                "ThrottlingException",
                "Too many requests, please wait before trying again.",
            ),
            "ThrottlingException",
        ),
        (
            BedrockStandIn::error(
                403,
                "AccessDeniedException",
                "You don't have access to the model with the specified model ID.",
            ),
            "AccessDeniedException",
        ),
    ];
    for (i, (answer, why)) in cases.into_iter().enumerate() {
        r.bedrock.answer_next(answer);
        let report = r.scan().await;
        let e = evidence(&report);
        assert_eq!(e.rationale_source, "rules", "case {i}");
        assert_eq!(e.recommended_type, "m5.xlarge", "case {i}: the cheapest candidate");
        assert!(
            e.rationale
                .contains("m5.xlarge (4 vCPUs, 16 GiB) is the cheapest x86_64 type"),
            "{}",
            e.rationale
        );
        let reason = e.fallback_reason.clone().unwrap_or_default();
        assert!(reason.contains(why), "case {i}: {reason}");
        assert_eq!(
            report.findings[0].estimated_monthly_savings_usd,
            Some(140.16),
            "(0.384 - 0.192) × 730"
        );
        // One request per scan: a throttled model is not retried inside the run.
        assert_eq!(r.bedrock.requests().len(), i + 1, "case {i}");
    }
}

#[tokio::test]
async fn busy_exempt_and_unmeasured_instances_get_no_recommendation() {
    let r = rig().await;
    let c = r.lp.moto.clients().await;
    let now = Utc::now();
    let busy = seed::run_instance(&c.ec2, "m5.xlarge", &[]).await;
    seed::put_hourly(&c.cloudwatch, "AWS/EC2", "CPUUtilization", &busy, now, 14, |_| 85.0).await;
    let exempt = r.oversized(&[("finops:exempt", "true")]).await;
    let fresh = seed::run_instance(&c.ec2, "m5.2xlarge", &[]).await;
    seed::put_hourly(&c.cloudwatch, "AWS/EC2", "CPUUtilization", &fresh, now, 3, |_| 5.0).await;
    let report = r.scan().await;
    assert!(report.findings.is_empty(), "{report:#?}");
    let outcome = |id: &str| {
        report
            .outcomes
            .iter()
            .find(|o| o.finding_id.ends_with(id))
            .map(|o| (o.outcome, o.detail.clone()))
            .unwrap()
    };
    assert_eq!(outcome(&busy).0, OutcomeKind::Skipped);
    assert!(outcome(&busy).1.contains("right-sized"), "{:?}", outcome(&busy));
    assert!(outcome(&exempt).1.contains("exempt"), "{:?}", outcome(&exempt));
    assert!(
        outcome(&fresh).1.contains("3 day(s) with CPU data, 7 needed"),
        "{:?}",
        outcome(&fresh)
    );
    assert!(r.bedrock.requests().is_empty(), "nothing to explain, nothing asked");
}

#[tokio::test]
async fn without_a_model_the_rules_explain() {
    let r = rig().await;
    r.oversized(&[]).await;
    let report = rightsizing::handler::handle(scheduled(), &r.app.deps, None, Utc::now())
        .await
        .unwrap();
    let e = evidence(&report);
    assert_eq!((e.rationale_source.as_str(), e.model_id.as_deref()), ("rules", None));
    assert!(e.fallback_reason.is_none());
    let mut policy = Policy::default();
    policy.rightsizing.bedrock_model_id = String::new();
    let deps = r.lp.detector_deps("rightsizing", policy).await;
    assert!(rightsizing::handler::App::bedrock(&deps, None).is_none());
}

#[tokio::test]
async fn a_snoozed_instance_is_set_aside_before_the_model_is_asked_about_it() {
    use remediation::state::ApprovalStore;
    let r = rig().await;
    let snoozed = r.oversized(&[("Owner", "ana")]).await;
    let other = r.oversized(&[("Owner", "bo")]).await;
    let now = Utc::now();
    let snooze = finops_tests::snooze(
        &snoozed,
        "U0ANA",
        "slack",
        "benchmark rig",
        now,
        now + chrono::Duration::days(30),
    );
    r.lp.state()
        .snooze(&snooze, false, &finops_checks::CATALOG)
        .await
        .unwrap();

    let report = r.scan().await;
    assert_eq!(report.findings.len(), 1, "{report:#?}");
    assert_eq!(report.findings[0].resource.id, other);
    let skipped = report
        .outcomes
        .iter()
        .find(|o| o.finding_id.ends_with(&snoozed))
        .unwrap();
    assert!(skipped.detail.contains("by U0ANA: benchmark rig"), "{skipped:?}");
    // The model was asked about the other one only: nothing about the snoozed one was sent.
    let asked: Vec<String> = r.bedrock.requests().iter().map(|q| q.json().to_string()).collect();
    assert_eq!(asked.len(), 1, "{asked:#?}");
    assert!(asked[0].contains(&other) && !asked[0].contains(&snoozed), "{asked:#?}");
}

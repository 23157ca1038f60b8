//! savings-report end to end against moto: a seeded ledger (and the ledger the approval loop
//! writes) → the report's figures, the HTML in S3 behind a signed link the approval function serves, the summary on SNS and
//! as slack-notify renders it.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use finops_tests::approvals::{token_of, Loop, TABLE};
use finops_tests::seed::{self, Usage};
use remediation::http::HttpClient;
use remediation::policy::{Mode, Policy};
use serde_json::Value;

const BUCKET: &str = "finops-reports";

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn policy() -> Policy {
    let mut p = Policy::default();
    p.savings_report.weeks = 4;
    p.savings_report.bucket = BUCKET.into();
    p
}

fn scheduled() -> Value {
    serde_json::from_str(include_str!("../../events/savings-report/scheduled.json")).unwrap()
}

/// A ledger line as the state code writes it.
/// `who`: (finding id, rule, owner); `what`: (estimated dollars, status, detected at).
async fn ledger(lp: &Loop, who: (&str, &str, &str), what: (&str, &str, &str), realised: Option<(&str, &str)>) {
    let ((id, rule, owner), (est, status, detected)) = (who, what);
    let s = |v: &str| AttributeValue::S(v.to_string());
    let mut item = HashMap::from([
        ("pk".to_string(), s(&format!("LEDGER#{}", &detected[..7]))),
        ("sk".to_string(), s(id)),
        ("kind".to_string(), s("ledger")),
        ("rule".to_string(), s(rule)),
        ("owner".to_string(), s(owner)),
        ("resource_id".to_string(), s(id)),
        ("estimated_usd".to_string(), AttributeValue::N(est.into())),
        ("realised_usd".to_string(), AttributeValue::N("0.00".into())),
        ("status".to_string(), s(status)),
        ("detected_at".to_string(), s(detected)),
    ]);
    if let Some((when, usd)) = realised {
        item.insert("realised_at".into(), s(when));
        item.insert("realised_usd".into(), AttributeValue::N(usd.into()));
    }
    lp.moto
        .clients()
        .await
        .dynamodb
        .put_item()
        .table_name(TABLE)
        .set_item(Some(item))
        .send()
        .await
        .unwrap();
}

async fn compliance(lp: &Loop, date: &str, pct: f64) {
    let point = remediation::state::CompliancePoint {
        date: date.parse().unwrap(),
        overall_percent: pct,
        by_type: [("ec2-instance".to_string(), pct)].into_iter().collect(),
    };
    lp.state().put_compliance(&point).await.unwrap();
}

#[tokio::test]
async fn the_report_of_a_seeded_ledger_has_its_numbers_in_s3_sns_and_slack() {
    let lp = Loop::start(policy()).await;
    let c = lp.moto.clients().await;
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&c.config)
            .force_path_style(true)
            .build(),
    )
    .create_bucket()
    .bucket(BUCKET)
    .send()
    .await
    .unwrap();
    // Four weeks ending Thursday 2026-11-26: from Monday 2026-11-02.
    ledger(
        &lp,
        ("a", "idle-ec2", "ana"),
        ("60.74", "realised", "2026-11-03T06:00:00Z"),
        Some(("2026-11-05T09:00:00Z", "60.74")),
    )
    .await;
    ledger(
        &lp,
        ("b", "ebs-cleanup", "bob"),
        ("8.00", "estimated", "2026-11-24T06:00:00Z"),
        None,
    )
    .await;
    ledger(
        &lp,
        ("c", "s3-public", "<b>eve</b>"),
        ("0.00", "rejected", "2026-11-10T06:00:00Z"),
        None,
    )
    .await;
    ledger(
        &lp,
        ("d", "idle-ec2", "ana"),
        ("30.37", "rolled-back", "2026-11-17T06:00:00Z"),
        Some(("2026-11-18T09:00:00Z", "0.00")),
    )
    .await;
    // Open since September: outside the weeks shown, but aged.
    ledger(
        &lp,
        ("e", "idle-ec2", "bob"),
        ("100.00", "estimated", "2026-09-15T06:00:00Z"),
        None,
    )
    .await;
    for (d, p) in [
        ("2026-10-01", 70.0),
        ("2026-11-09", 80.0),
        ("2026-11-16", 90.5),
        ("2026-11-23", 96.0),
    ] {
        compliance(&lp, d, p).await;
    }

    let deps = lp.detector_deps("savings-report", policy()).await;
    let now = at("2026-11-26T12:00:00Z");
    let out = savings_report::handler::handle(scheduled(), &deps, None, now)
        .await
        .unwrap();
    assert_eq!(out["from"], "2026-11-02");
    assert_eq!(out["estimated_monthly_usd"], 99.11);
    assert_eq!(out["realised_monthly_usd"], 60.74);
    assert_eq!(out["realisation_percent"], 61.3);
    assert_eq!(out["open_findings"], 2);
    assert_eq!(out["open_monthly_usd"], 108.0);
    assert_eq!(
        out["report"],
        "s3://finops-reports/finops-reports/savings-report-2026-11-26.html"
    );

    // The link is the approval function's own, signed with the link key (an S3 URL presigned
    // with the function's session credentials would die with the session, hours later): it
    // serves the page for the policy's 168 hours, then says it expired; a forged one shows nothing.
    let url = out["report_url"].as_str().unwrap();
    assert!(
        url.starts_with(&format!("{}/report?token=", lp.approval_server.url())) && !url.contains("X-Amz-"),
        "{url}"
    );
    let http = HttpClient::new(std::time::Duration::from_secs(10)).unwrap();
    let get = |u: String| {
        let http = http.clone();
        async move { http.send("approval", "GET", &u, &[], vec![]).await.unwrap() }
    };
    lp.set_clock(Some(now + chrono::Duration::hours(167)));
    let page = get(url.to_string()).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let html = page.body;
    let forged = format!("{}x", url.trim_end_matches(|c: char| c != '.'));
    let refused = get(forged).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(
        !refused.body.contains("estimated<b>"),
        "a forged link shows nothing of the report"
    );
    lp.set_clock(Some(now + chrono::Duration::hours(169)));
    let expired = get(url.to_string()).await;
    assert_eq!(expired.status, 410, "{}", expired.body);
    assert!(expired.body.contains("expired"), "{}", expired.body);
    lp.set_clock(None);
    for want in [
        r#"id="estimated">estimated<b>$99.11</b>"#,
        r#"id="realised">realised<b>$60.74</b>"#,
        r#"id="rate">realised of estimated<b>61.3%</b>"#,
        r#"id="open">open findings<b>2 · $108.00</b>"#,
        r#"id="compliance">tag compliance<b>96.0%</b>"#,
        // Weeks: detected / estimated / executed / realised.
        "<tr><td>2026-11-02</td><td class=\"n\">1</td><td class=\"n\">$60.74</td><td class=\"n\">1</td><td class=\"n\">$60.74</td></tr>",
        "<tr><td>2026-11-16</td><td class=\"n\">1</td><td class=\"n\">$30.37</td><td class=\"n\">0</td><td class=\"n\">$0.00</td></tr>",
        "<tr><td>2026-11-23</td><td class=\"n\">1</td><td class=\"n\">$8.00</td><td class=\"n\">0</td><td class=\"n\">$0.00</td></tr>",
        // By rule and owner (the owner tag escaped).
        "<tr><td>idle-ec2</td><td class=\"n\">2</td><td class=\"n\">$91.11</td><td class=\"n\">$60.74</td></tr>",
        "<tr><td>ana</td><td class=\"n\">2</td><td class=\"n\">$91.11</td><td class=\"n\">$60.74</td></tr>",
        "<tr><td>&lt;b&gt;eve&lt;/b&gt;</td><td class=\"n\">1</td>",
        // Open by age; outcomes.
        "<tr><td>0–7 days</td><td class=\"n\">1</td><td class=\"n\">$8.00</td></tr>",
        "<tr><td>31+ days</td><td class=\"n\">1</td><td class=\"n\">$100.00</td></tr>",
        "<tr><td>rolled-back</td><td class=\"n\">1</td></tr>",
        "<tr><td>rejected</td><td class=\"n\">1</td></tr>",
        "<title>2026-11-16: 90.5%</title>",
    ] {
        assert!(html.contains(want), "{want:?} not in the report:\n{html}");
    }
    // Self-contained: charts inline, nothing fetched, no script; September's sweep is not in these weeks.
    assert!(html.matches("<svg").count() == 2);
    assert!(!html.contains("<script") && !html.contains("src=") && !html.contains("<b>eve"));
    assert!(!html.contains("2026-10-01"));

    // The summary on SNS carries the figures and the link; slack-notify renders it.
    let published = lp.drain().await;
    let summaries = Loop::of_type(&published, "savings-report");
    assert_eq!(summaries.len(), 1);
    assert_eq!(summaries[0]["report_url"], url);
    assert_eq!(summaries[0]["report"]["realised_usd"], 60.74);
    for r in lp.notify_slack(&published).await {
        r.unwrap();
    }
    let post = lp.slack.requests().last().unwrap().json().to_string();
    for want in [
        "$99.11/month",
        "$60.74/month (61.3%)",
        "2 ($108.00/month)",
        "96.0% (KPI 95%)",
        "Open the full report",
    ] {
        assert!(post.contains(want), "{want:?} not in {post}");
    }
}

#[tokio::test]
async fn an_approved_stop_shows_as_realised_in_the_report() {
    let mut p = policy();
    p.mode = Mode::Approve;
    p.approvals.anyone_with_link = true;
    let lp = Loop::start(p.clone()).await;
    let c = lp.moto.clients().await;
    let id = seed::run_instance(&c.ec2, "t3.large", &[("Owner", "ana")]).await;
    seed::put_usage(&c.cloudwatch, &id, Usage::IDLE, Utc::now(), 14).await;
    let deps = lp.detector_deps("idle-ec2", p.clone()).await;
    idle_ec2::handler::handle(
        serde_json::from_str(include_str!("../../events/idle-ec2/scheduled.json")).unwrap(),
        &deps,
        Utc::now(),
    )
    .await
    .unwrap();
    let request = Loop::of_type(&lp.drain().await, "approval-request").remove(0);

    let dir = std::env::temp_dir().join(format!("finops-report-{}", std::process::id()));
    let before = savings_report::handler::handle(scheduled(), &deps, Some(dir.clone()), Utc::now())
        .await
        .unwrap();
    assert_eq!(before["open_findings"], 1);
    assert_eq!(before["open_monthly_usd"], 60.74);
    assert_eq!(before["realised_monthly_usd"], 0.0);

    let approve = request["approve_url"].as_str().unwrap();
    let (status, page) = lp
        .post_form(
            "/decide",
            &[("token", &token_of(approve)), ("approver", "ana@example.com")],
        )
        .await;
    assert_eq!(status, 200, "{page}");
    let after = savings_report::handler::handle(scheduled(), &deps, Some(dir.clone()), Utc::now())
        .await
        .unwrap();
    assert_eq!(after["open_findings"], 0);
    assert_eq!(after["realised_monthly_usd"], 60.74);
    // Written locally when a folder is given (the demo's way), not to S3.
    let path = after["report"].as_str().unwrap();
    assert!(path.starts_with(dir.to_str().unwrap()), "{path}");
    let html = std::fs::read_to_string(path).unwrap();
    assert!(html.contains(r#"id="realised">realised<b>$60.74</b>"#));
    // Issue 30: the scan's own cost (its 3 metrics, its DynamoDB requests) beside what it saved.
    let own = after["own_cost_usd"].as_f64().unwrap();
    assert!(own >= 3.0 * 0.00001, "{after:#}");
    // 3 metrics ($0.00003) and a few DynamoDB requests, all of it today.
    assert!(
        html.contains(&format!(
            "The autopilot itself costs under $0.0001 on the AWS bill since {} (about $0.00",
            Utc::now().date_naive()
        )) && html.contains("a month, estimated); saves $60.74 a month realised."),
        "{html}"
    );
    assert!(after["report_url"].is_null());
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn without_a_table_or_with_a_wrong_event_it_says_why() {
    let lp = Loop::start(policy()).await;
    let mut deps = lp.detector_deps("savings-report", policy()).await;
    let err = savings_report::handler::handle(serde_json::json!({"Records": []}), &deps, None, Utc::now())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("expected an EventBridge scheduled event"),
        "{err}"
    );
    deps.state = None;
    let err = savings_report::handler::handle(scheduled(), &deps, None, Utc::now())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("needs the state table"), "{err}");
}

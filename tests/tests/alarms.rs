//! CloudWatch alarms reach Slack: the template's alarms publish CloudWatch's own JSON (no FinOps
//! `type`, no message attributes) to the FinOps topic; the template's slack-notify subscription
//! lets it through (its filter policy applied with AWS's semantics), and slack-notify, running as
//! its template role, renders it and posts it once, through moto's SNS and the Slack stand-in.

use finops_tests::approvals::Loop;
use remediation::policy::Policy;
use serde_json::{json, Value};

const ALARM: &str = "finops-DeadLetterAlarm-1A2B3C4D5E6F";

/// The notification CloudWatch publishes to SNS when the dead-letter alarm changes state.
fn alarm_message(new: &str, old: &str, reason: &str, at: &str) -> String {
    json!({
        "AlarmName": ALARM,
        "AlarmDescription": "An event failed every retry and waits in the dead-letter queue.",
        "AWSAccountId": "123456789012",
        "AlarmConfigurationUpdatedTimestamp": "2026-11-20T09:12:45.123+0000",
        "NewStateValue": new,
        "NewStateReason": reason,
        "StateChangeTime": at,
        "Region": "US East (N. Virginia)",
        "AlarmArn": format!("arn:aws:cloudwatch:us-east-1:123456789012:alarm:{ALARM}"),
        "OldStateValue": old,
        "OKActions": ["arn:aws:sns:us-east-1:123456789012:finops"],
        "AlarmActions": ["arn:aws:sns:us-east-1:123456789012:finops"],
        "InsufficientDataActions": [],
        "Trigger": {
            "MetricName": "ApproximateNumberOfMessagesVisible",
            "Namespace": "AWS/SQS",
            "StatisticType": "Statistic",
            "Statistic": "MAXIMUM",
            "Unit": null,
            "Dimensions": [{"value": "finops-dlq", "name": "QueueName"}],
            "Period": 300,
            "EvaluationPeriods": 1,
            "DatapointsToAlarm": 1,
            "ComparisonOperator": "GreaterThanThreshold",
            "Threshold": 0.0,
            "TreatMissingData": "notBreaching",
            "EvaluateLowSampleCountPercentile": ""
        }
    })
    .to_string()
}

/// Publishes `message` to the loop's topic as CloudWatch does (a subject, no attributes) and
/// returns the envelope SNS delivered through the template's own slack-notify subscription (its
/// filter policy applied as AWS applies it).
async fn publish(lp: &Loop, subject: &str, message: &str) -> Value {
    lp.moto
        .clients()
        .await
        .sns
        .publish()
        .topic_arn(&lp.topic)
        .subject(subject)
        .message(message)
        .send()
        .await
        .unwrap();
    lp.drain().await;
    let mut delivered = lp.drain_for_slack_notify().await;
    assert_eq!(
        delivered.len(),
        1,
        "slack-notify's subscription let through {delivered:#?}"
    );
    delivered.pop().unwrap()
}

fn header(post: &Value) -> String {
    post["blocks"][0]["text"]["text"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn an_alarm_and_its_recovery_reach_slack_once_each_and_look_different() {
    let lp = Loop::start(Policy::default()).await;
    let firing = publish(
        &lp,
        &format!("ALARM: \"{ALARM}\" in US East (N. Virginia)"),
        &alarm_message(
            "ALARM",
            "OK",
            "Threshold Crossed: 1 out of the last 1 datapoints [3.0 (26/11/26 06:00:00)] was greater than the threshold (0.0) (minimum 1 datapoint for OK -> ALARM transition).",
            "2026-11-26T06:05:12.345+0000",
        ),
    )
    .await;

    for r in lp.notify_slack(std::slice::from_ref(&firing)).await {
        r.unwrap();
    }
    let posts = lp.slack.requests();
    assert_eq!(posts.len(), 1);
    let post = posts[0].json();
    let text = post.to_string();
    for expected in [
        ALARM,
        "was greater than the threshold (0.0)",
        "An event failed every retry",
        "123456789012",
        "US East (N. Virginia)",
        "2026-11-26 06:05:12 UTC",
        "AWS/SQS ApproximateNumberOfMessagesVisible",
    ] {
        assert!(text.contains(expected), "{expected:?} missing from {post:#}");
    }
    assert!(header(&post).starts_with(":rotating_light: ALARM"), "{post:#}");

    // SNS delivers the same notification again: it was already posted.
    lp.notify_slack(std::slice::from_ref(&firing))
        .await
        .pop()
        .unwrap()
        .unwrap();
    assert_eq!(lp.slack.requests().len(), 1);

    // The alarm clears: a second post, shown as a recovery.
    let cleared = publish(
        &lp,
        &format!("OK: \"{ALARM}\" in US East (N. Virginia)"),
        &alarm_message(
            "OK",
            "ALARM",
            "Threshold Crossed: 1 out of the last 1 datapoints [0.0 (26/11/26 07:00:00)] was not greater than the threshold (0.0) (minimum 1 datapoint for ALARM -> OK transition).",
            "2026-11-26T07:05:12.345+0000",
        ),
    )
    .await;
    lp.notify_slack(&[cleared]).await.pop().unwrap().unwrap();
    let posts = lp.slack.requests();
    assert_eq!(posts.len(), 2);
    let recovered = header(&posts[1].json());
    assert!(recovered.starts_with(":white_check_mark: OK"), "{recovered}");
    assert!(recovered.contains(ALARM), "{recovered}");
}

#[tokio::test]
async fn a_message_that_is_neither_finops_nor_an_alarm_fails_with_a_clear_error() {
    let lp = Loop::start(Policy::default()).await;
    let stray = publish(&lp, "hello", r#"{"greeting": "hello"}"#).await;

    let err = lp.notify_slack(&[stray]).await.pop().unwrap().unwrap_err();

    let said = err.to_string();
    assert!(
        said.contains("neither a FinOps message nor a CloudWatch alarm"),
        "{said}"
    );
    assert!(lp.slack.requests().is_empty());
}

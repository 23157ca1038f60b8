//! Every sample event in `events/` parses, and the function it is filed under accepts it.

use std::path::Path;

fn sample_events() -> Vec<(String, std::path::PathBuf)> {
    let root = finops_tests::moto::workspace_root().join("events");
    let mut out = Vec::new();
    for dir in std::fs::read_dir(&root).expect("events/ exists") {
        let dir = dir.expect("readable entry").path();
        if !dir.is_dir() {
            continue;
        }
        let function = dir.file_name().unwrap().to_string_lossy().into_owned();
        for file in std::fs::read_dir(&dir).expect("readable folder") {
            let file = file.expect("readable entry").path();
            if file.extension().and_then(|e| e.to_str()) == Some("json") {
                out.push((function.clone(), file));
            }
        }
    }
    out.sort();
    out
}

/// The FinOps message inside an SNS Lambda event.
fn sns_message(payload: &serde_json::Value) -> Option<remediation::notify::Message> {
    remediation::notify::from_sns_event(payload).ok()?.pop().map(|(_, m)| m)
}

fn accepts(function: &str, payload: &serde_json::Value, file: &Path) {
    match function {
        "idle-ec2" | "ebs-cleanup" | "cost-alert" | "rightsizing" | "savings-report" => {
            remediation::events::scheduled(payload).unwrap_or_else(|e| panic!("{} refused: {e}", file.display()));
        }
        "tag-compliance" => {
            let ok =
                remediation::events::scheduled(payload).is_ok() || remediation::events::config_rule(payload).is_ok();
            assert!(ok, "{} refused", file.display());
        }
        "s3-public" => {
            let ok = remediation::events::scheduled(payload).is_ok()
                || remediation::events::compliance_change(payload).is_ok_and(|c| c.resource_type == "AWS::S3::Bucket");
            assert!(ok, "{} refused", file.display());
        }
        "approval" => {
            let ok = remediation::events::scheduled(payload).is_ok()
                || (payload.get("rawPath").is_some() && payload.pointer("/requestContext/http/method").is_some())
                || sns_message(payload).is_some();
            assert!(ok, "{} refused", file.display());
        }
        "slack-notify" => {
            // FinOps messages and the CloudWatch alarms the template sends to the same topic.
            let ok = remediation::notify::incoming_from_sns_event(payload).is_ok_and(|m| !m.is_empty());
            assert!(ok, "{} refused", file.display());
        }
        "jira-sync" => {
            assert!(sns_message(payload).is_some(), "{} refused", file.display());
        }
        other => panic!(
            "{}: events/{other}/ has no function crate to check it against",
            file.display()
        ),
    }
}

#[test]
fn every_sample_event_parses_and_its_function_accepts_it() {
    let events = sample_events();
    assert!(!events.is_empty(), "events/ holds no samples");
    for (function, file) in &events {
        let text = std::fs::read_to_string(file).unwrap();
        let payload: serde_json::Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", file.display()));
        accepts(function, &payload, file);
        assert!(
            finops_tests::moto::workspace_root()
                .join("functions")
                .join(function)
                .is_dir(),
            "events/{function} names no function"
        );
    }
}

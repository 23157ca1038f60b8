//! Function URL requests of any shape against the approval function, served as Lambda serves it
//! (the event its Function URL builds) with its state table in moto: methods, paths, query
//! strings, bodies, the base64 flag and headers (Slack's signature headers among them) drawn at
//! random around the real routes. Whatever arrives: an HTTP answer, never a 5xx, a 4xx for what is
//! malformed or unsigned, and nothing in the state table changed.

use base64::Engine;
use chrono::Utc;
use finops_tests::approvals::Loop;
use finops_tests::seed;
use proptest::prelude::*;
use remediation::policy::{Mode, Policy};
use serde_json::{json, Value};

struct Rig {
    rt: tokio::runtime::Runtime,
    lp: Loop,
    ddb: aws_sdk_dynamodb::Client,
}

fn rig() -> Rig {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let policy = Policy {
        mode: Mode::Approve,
        ..Policy::default()
    };
    let lp = rt.block_on(Loop::start(policy));
    let ddb = rt.block_on(lp.moto.clients()).dynamodb;
    Rig { rt, lp, ddb }
}

fn method() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("GET".to_string()),
        Just("POST".to_string()),
        Just("HEAD".to_string()),
        Just("PUT".to_string()),
        "[A-Za-z]{0,8}",
    ]
}

fn path() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("/decide".to_string()),
        Just("/request".to_string()),
        Just("/slack".to_string()),
        Just("/oidc/start".to_string()),
        Just("/oidc/callback".to_string()),
        Just("/".to_string()),
        "/[a-z/%.]{0,24}",
        any::<String>(),
    ]
}

fn query() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "token=[A-Za-z0-9_.~-]{0,80}",
        "(id|action|d|token|state|code)=[%A-Za-z0-9&=+]{0,40}",
        "%[0-9A-F]{2}[a-z=&]{0,10}",
        any::<String>(),
    ]
}

fn body() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "token=[A-Za-z0-9_.~-]{0,80}&approver=[a-z@.]{0,20}",
        "payload=[%A-Za-z0-9{}:\",]{0,120}",
        any::<String>(),
        // Beyond the limit the function reads.
        (64usize * 1024..200 * 1024).prop_map(|n| "a".repeat(n)),
    ]
}

fn headers() -> impl Strategy<Value = Vec<(String, String)>> {
    let header = prop_oneof![
        (
            "content-type",
            prop_oneof![Just("application/x-www-form-urlencoded".to_string()), "[ -~]{0,40}"]
        ),
        (
            "x-slack-request-timestamp",
            prop_oneof!["[0-9]{1,12}", "-?[0-9]{19}", "[ -~]{0,20}"]
        ),
        ("x-slack-signature", prop_oneof!["v0=[0-9a-f]{64}", "[ -~]{0,80}"]),
        ("cookie", "[ -~]{0,80}"),
    ]
    .prop_map(|(k, v)| (k.to_string(), v));
    proptest::collection::vec(header, 0..4)
}

fn event(method: &str, path: &str, query: &str, body: &str, base64: bool, headers: &[(String, String)]) -> Value {
    let headers: serde_json::Map<String, Value> = headers.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
    json!({
        "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": query,
        "headers": headers,
        "requestContext": {"accountId": "anonymous", "apiId": "local", "domainName": "127.0.0.1",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "198.51.100.7", "userAgent": "x"},
            "requestId": "fuzz", "stage": "$default", "time": "03/Dec/2026:08:00:00 +0000", "timeEpoch": 0},
        "body": body, "isBase64Encoded": base64,
    })
}

#[test]
fn a_function_url_request_of_any_shape_gets_an_answer_never_a_5xx_and_changes_nothing() {
    // One moto for every case, stopped when the test ends (a static would outlive the process).
    let r = rig();
    let config = ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let encode = prop_oneof![Just(None), Just(Some(true)), Just(Some(false))];
    let mut runner = proptest::test_runner::TestRunner::new(config);
    let outcome = runner.run(
        &(method(), path(), query(), body(), encode, headers()),
        |(method, path, query, body, encode, headers)| {
            // The flag set and the body encoded, or the flag set over text that may not be base64.
            let (body, flag) = match encode {
                Some(true) => (base64::engine::general_purpose::STANDARD.encode(&body), true),
                Some(false) => (body, true),
                None => (body, false),
            };
            let payload = event(&method, &path, &query, &body, flag, &headers);
            let before = r.rt.block_on(seed::scan_table(&r.ddb, "finops-state"));
            let answer =
                r.rt.block_on(approval::handler::handle(payload, r.lp.approval_app(), Utc::now()));
            let answer = answer.map_err(|e| TestCaseError::fail(format!("an error, not an answer: {e}")))?;
            let status = answer["statusCode"].as_u64().unwrap_or(0);
            prop_assert!((200..500).contains(&status), "{status}: {answer}");
            // Over twice the 64 KiB the function reads: refused before anything else is looked at.
            if body.len() > 128 * 1024 {
                prop_assert_eq!(status, 400, "{}", answer);
            }
            let after = r.rt.block_on(seed::scan_table(&r.ddb, "finops-state"));
            prop_assert_eq!(before, after, "the table changed: {}", answer);
            Ok(())
        },
    );
    if let Err(e) = outcome {
        panic!("{e}");
    }
}

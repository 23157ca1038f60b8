//! Load on the approval function: many idle instances asked for approval, then 200 requests at
//! once through its Function URL stand-in — each request's valid approval, the same approval
//! replayed, forged links, Slack clicks with a stale signature and oversized bodies — with each
//! answer's status and latency. The test (`tests/approval_load.rs`) holds it to its promises;
//! `make bench` prints the latency distribution.

use std::time::{Duration, Instant};

use chrono::Utc;
use futures::future::join_all;
use remediation::policy::{ApprovalsPolicy, Mode, Policy};

use crate::approvals::{enc, token_of, Loop, SIGNING_SECRET};
use crate::seed::{self, Usage};

/// What a request of the mix is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Valid,
    Replayed,
    Forged,
    StaleSlack,
    Oversized,
}

/// One answer.
#[derive(Debug, Clone)]
pub struct Answer {
    pub kind: Kind,
    /// The approval request it names (valid and replayed ones).
    pub request_id: Option<String>,
    pub status: u16,
    pub body: String,
    pub latency: Duration,
}

/// An approval request open for one idle instance.
#[derive(Debug, Clone)]
pub struct Open {
    pub request_id: String,
    pub approve_url: String,
    pub instance: String,
}

pub fn policy() -> Policy {
    Policy {
        mode: Mode::Approve,
        max_actions: 1000,
        max_actions_percent: 100.0,
        approvals: ApprovalsPolicy {
            slack_users: vec!["U0ANA".into()],
            anyone_with_link: true,
            ..ApprovalsPolicy::default()
        },
        ..Policy::default()
    }
}

/// `n` idle instances, one idle-ec2 run in approve mode: the open requests.
pub async fn open_requests(lp: &Loop, n: usize) -> Vec<Open> {
    let c = lp.moto.clients().await;
    let ids = seed::run_instances(&c.ec2, "t3.large", n as i32, &[("Owner", "ana")], false).await;
    for id in &ids {
        seed::put_usage(&c.cloudwatch, id, Usage::IDLE, Utc::now(), 14).await;
    }
    let deps = lp.detector_deps("idle-ec2", policy()).await;
    let event = serde_json::from_str(include_str!("../../events/idle-ec2/scheduled.json")).expect("the sample event");
    idle_ec2::handler::handle(event, &deps, Utc::now())
        .await
        .expect("the idle run");
    Loop::of_type(&lp.drain().await, "approval-request")
        .into_iter()
        .map(|m| Open {
            request_id: m["request_id"].as_str().unwrap_or_default().to_string(),
            approve_url: m["approve_url"].as_str().unwrap_or_default().to_string(),
            instance: m["finding"]["resource"]["id"].as_str().unwrap_or_default().to_string(),
        })
        .collect()
}

/// A link token with one character of its signature changed.
fn forged(token: &str) -> String {
    let mut chars: Vec<char> = token.chars().collect();
    if let Some(last) = chars.last_mut() {
        *last = if *last == 'A' { 'B' } else { 'A' };
    }
    chars.into_iter().collect()
}

/// Fires the mix at once: for each open request its approval and a replay of it, a forged link,
/// a stale Slack click and an oversized body (5 × `open.len()` requests).
pub async fn fire(lp: &Loop, open: &[Open]) -> Vec<Answer> {
    let decide = |kind: Kind, request_id: Option<String>, token: String| async move {
        let body = format!("token={}&approver={}", enc(&token), enc("ana@example.com"));
        send(
            lp,
            kind,
            request_id,
            "/decide",
            &[("content-type", "application/x-www-form-urlencoded")],
            body,
        )
        .await
    };
    let mut all = Vec::new();
    for o in open {
        let token = token_of(&o.approve_url);
        all.push(Box::pin(decide(Kind::Valid, Some(o.request_id.clone()), token.clone()))
            as std::pin::Pin<Box<dyn std::future::Future<Output = Answer> + Send + '_>>);
        all.push(Box::pin(decide(
            Kind::Replayed,
            Some(o.request_id.clone()),
            token.clone(),
        )));
        all.push(Box::pin(decide(Kind::Forged, None, forged(&token))));
        let value = token.clone();
        all.push(Box::pin(async move {
            let payload = serde_json::json!({"type": "block_actions", "user": {"id": "U0ANA"},
                "actions": [{"action_id": "approve", "value": value}]});
            let body = format!("payload={}", enc(&payload.to_string()));
            let ts = Utc::now().timestamp() - 600;
            let sig = remediation::slack::sign(SIGNING_SECRET.as_bytes(), ts, body.as_bytes());
            let ts = ts.to_string();
            let headers = [
                ("content-type", "application/x-www-form-urlencoded"),
                ("x-slack-request-timestamp", ts.as_str()),
                ("x-slack-signature", sig.as_str()),
            ];
            send(lp, Kind::StaleSlack, None, "/slack/actions", &headers, body).await
        }));
        all.push(Box::pin(async move {
            let body = format!(
                "token={}&approver=ana%40example.com&pad={}",
                enc(&token),
                "x".repeat(100 * 1024)
            );
            send(
                lp,
                Kind::Oversized,
                None,
                "/decide",
                &[("content-type", "application/x-www-form-urlencoded")],
                body,
            )
            .await
        }));
    }
    join_all(all).await
}

async fn send(
    lp: &Loop,
    kind: Kind,
    request_id: Option<String>,
    path: &str,
    headers: &[(&str, &str)],
    body: String,
) -> Answer {
    let started = Instant::now();
    let url = format!("{}{path}", lp.approval_server.url());
    let r = lp.http.send("load", "POST", &url, headers, body.into_bytes()).await;
    let latency = started.elapsed();
    let (status, body) = match r {
        Ok(r) => (r.status, r.body),
        Err(e) => (0, e.to_string()),
    };
    Answer {
        kind,
        request_id,
        status,
        body,
        latency,
    }
}

/// The `q`-quantile (0..=1) of the latencies, nearest rank.
pub fn quantile(latencies: &[Duration], q: f64) -> Duration {
    let mut sorted = latencies.to_vec();
    sorted.sort();
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

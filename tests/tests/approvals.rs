//! The human in the loop, end to end: idle-ec2 in approve mode → DynamoDB + SNS → slack-notify
//! → the link in the rendered message → GET (no change) → POST → the instance stopped in moto →
//! audit and ledger → action-result → Roll back. Then everything that must change nothing.

use chrono::{Duration, Utc};
use finops_tests::approvals::{button_urls, token_of, Loop, SIGNING_SECRET, TABLE};
use finops_tests::httpserver::Response;
use finops_tests::seed::{self, Usage};
use remediation::approval::{Decision, LinkSigner};
use remediation::model::OutcomeKind;
use remediation::policy::{ApprovalsPolicy, Approver, Mode, Policy};
use remediation::state::{ApprovalStore, StateStore};
use serde_json::Value;

/// Approve mode with the test's two Slack users listed and, for the page's typed-address form,
/// anyone with the link allowed (recorded as unverified).
fn approve_policy() -> Policy {
    Policy {
        mode: Mode::Approve,
        approvals: ApprovalsPolicy {
            slack_users: vec!["U0ANA".into(), "U0BO".into()],
            anyone_with_link: true,
            ..ApprovalsPolicy::default()
        },
        ..Policy::default()
    }
}

fn scheduled() -> Value {
    serde_json::from_str(include_str!("../../events/idle-ec2/scheduled.json")).unwrap()
}

/// One idle instance (14 quiet days), with `tags`.
async fn idle_instance(lp: &Loop, tags: &[(&str, &str)]) -> String {
    let c = lp.moto.clients().await;
    let id = seed::run_instance(&c.ec2, "t3.large", tags).await;
    seed::put_usage(&c.cloudwatch, &id, Usage::IDLE, Utc::now(), 14).await;
    id
}

/// [`idle_instance`] with today's usage idle too, for a test whose re-check may fall after
/// midnight UTC (it then judges today as a whole day since detection).
async fn idle_instance_through_today(lp: &Loop, tags: &[(&str, &str)]) -> String {
    let id = idle_instance(lp, tags).await;
    let c = lp.moto.clients().await;
    seed::put_usage(&c.cloudwatch, &id, Usage::IDLE, Utc::now() + Duration::days(1), 1).await;
    id
}

async fn state_of(lp: &Loop, id: &str) -> String {
    seed::state_of(&lp.moto.clients().await.ec2, id).await
}

/// Runs idle-ec2 in approve mode, renders what it published through slack-notify, and returns
/// the request id and the Approve and Reject links of the posted message.
async fn request_approval(lp: &Loop) -> (String, String, String) {
    let deps = lp.detector_deps("idle-ec2", approve_policy()).await;
    let report = idle_ec2::handler::handle(scheduled(), &deps, Utc::now()).await.unwrap();
    assert_eq!(report.outcomes.len(), 1, "{report:#?}");
    assert_eq!(report.outcomes[0].outcome, OutcomeKind::PendingApproval);
    let published = lp.drain().await;
    let requests = Loop::of_type(&published, "approval-request");
    assert_eq!(requests.len(), 1, "{published:#?}");
    let before = lp.slack.requests().len();
    for r in lp.notify_slack(&published).await {
        r.unwrap();
    }
    let posts = lp.slack.requests();
    assert_eq!(posts.len(), before + 1, "one post per approval request");
    let urls = button_urls(&posts[before].json());
    let link = |name: &str| {
        urls.iter()
            .find(|(t, _)| t == name)
            .map(|(_, u)| u.clone())
            .unwrap_or_else(|| panic!("no {name} button in {urls:?}"))
    };
    (
        requests[0]["request_id"].as_str().unwrap().to_string(),
        link("Approve"),
        link("Reject"),
    )
}

async fn approval_status(lp: &Loop, request_id: &str) -> String {
    lp.state().approval(request_id).await.unwrap().unwrap().status
}

#[tokio::test]
async fn the_whole_loop_from_detection_to_rollback() {
    let lp = Loop::start(approve_policy()).await;
    let id = idle_instance(&lp, &[("Owner", "ana")]).await;
    let (request_id, approve, _reject) = request_approval(&lp).await;
    assert!(approve.starts_with(&format!("{}/decide?token=", lp.approval_server.url())));

    // The Slack post carries what a person needs to decide.
    let post = lp.slack.requests()[0].json();
    let text = post.to_string();
    assert!(
        text.contains(&id) && text.contains("ana") && text.contains("$60.74/month"),
        "{text}"
    );

    // GET: a confirmation page; nothing changes (scanners prefetch links).
    let (status, page) = lp.get(&approve).await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains(&format!(
            "<form method=\"post\" action=\"{}/decide\"",
            lp.approval_server.url()
        )) && page.contains(&id),
        "{page}"
    );
    assert_eq!(approval_status(&lp, &request_id).await, "pending");
    assert_eq!(state_of(&lp, &id).await, "running");

    // POST: decided, re-checked, executed.
    let (status, page) = lp
        .post_form(
            "/decide",
            &[("token", &token_of(&approve)), ("approver", "ana@example.com")],
        )
        .await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Done: stop"), "{page}");
    assert_eq!(state_of(&lp, &id).await, "stopped");
    let stored = lp.state().approval(&request_id).await.unwrap().unwrap();
    assert_eq!(stored.status, "executed");
    assert_eq!(stored.approvers, vec!["unverified:ana@example.com".to_string()]);
    let action_id = stored.action_id.clone().unwrap();

    // Audit trail: every transition, in order.
    let trail: Vec<String> = lp
        .state()
        .audit_trail(&stored.finding.id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event)
        .collect();
    for event in [
        "approval-requested",
        "approval-vote",
        "approved",
        "executing",
        "action-executing",
        "action-executed",
        "executed",
    ] {
        assert!(trail.contains(&event.to_string()), "{event} missing from {trail:?}");
    }
    // Ledger: estimated at detection, realised at execution.
    let items = seed::scan_table(&lp.moto.clients().await.dynamodb, TABLE).await;
    let ledger = items
        .iter()
        .find(|i| i["pk"].starts_with("LEDGER#") && i["sk"] == stored.finding.id)
        .expect("a ledger line");
    assert_eq!(
        (ledger["estimated_usd"].as_str(), ledger["realised_usd"].as_str()),
        ("60.74", "60.74")
    );
    assert_eq!(ledger["owner"], "ana");

    // The action result reaches Slack with a Roll back button.
    let published = lp.drain().await;
    let results = Loop::of_type(&published, "action-result");
    assert_eq!(results.len(), 1, "{published:#?}");
    assert_eq!(results[0]["decided_by"], "unverified:ana@example.com");
    lp.notify_slack(&published).await.into_iter().for_each(|r| {
        r.unwrap();
    });
    let last = lp.slack.requests().last().unwrap().json();
    let rollback = button_urls(&last)
        .into_iter()
        .find(|(t, _)| t == "Roll back")
        .map(|(_, u)| u)
        .expect("a Roll back button");

    // Roll back is a decision of its own: GET shows it, POST does it.
    let (status, page) = lp.get(&rollback).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(state_of(&lp, &id).await, "stopped");
    let (status, page) = lp
        .post_form(
            "/decide",
            &[("token", &token_of(&rollback)), ("approver", "bo@example.com")],
        )
        .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(state_of(&lp, &id).await, "running");
    assert_eq!(approval_status(&lp, &request_id).await, "rolled-back");
    assert_eq!(
        lp.state().action(&action_id).await.unwrap().unwrap().status,
        "rolled-back"
    );
    let items = seed::scan_table(&lp.moto.clients().await.dynamodb, TABLE).await;
    let ledger = items
        .iter()
        .find(|i| i["pk"].starts_with("LEDGER#") && i["sk"] == stored.finding.id)
        .unwrap();
    assert_eq!(
        (ledger["status"].as_str(), ledger["realised_usd"].as_str()),
        ("rolled-back", "0.00")
    );
    // A second rollback finds nothing to do.
    let (status, _) = lp
        .post_form(
            "/decide",
            &[("token", &token_of(&rollback)), ("approver", "bo@example.com")],
        )
        .await;
    assert_eq!(status, 409);
}

#[tokio::test]
async fn bad_tokens_change_nothing() {
    let lp = Loop::start(approve_policy()).await;
    let id = idle_instance(&lp, &[("Owner", "ana")]).await;
    let (request_id, approve, reject) = request_approval(&lp).await;
    let token = token_of(&approve);
    let post = |t: String| {
        let lp = &lp;
        async move {
            lp.post_form("/decide", &[("token", &t), ("approver", "ana@example.com")])
                .await
        }
    };

    // Tampered: the claims say approve, the signature is another token's.
    let (payload, _) = token.split_once('.').unwrap();
    let (_, other_sig) = token_of(&reject)
        .split_once('.')
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .unwrap();
    assert_eq!(post(format!("{payload}.{other_sig}")).await.0, 403);
    // Signed with another key.
    let forger = LinkSigner::new(vec![9u8; 32], lp.approval_server.url()).unwrap();
    assert_eq!(
        post(forger.token(&request_id, Decision::Approve, Utc::now() + Duration::hours(1)))
            .await
            .0,
        403
    );
    // Expired.
    let signer = LinkSigner::new(
        finops_tests::approvals::LINK_KEY.as_bytes().to_vec(),
        lp.approval_server.url(),
    )
    .unwrap();
    assert_eq!(
        post(signer.token(&request_id, Decision::Approve, Utc::now() - Duration::seconds(1)))
            .await
            .0,
        410
    );
    // Unknown request, genuinely signed.
    assert_eq!(
        post(signer.token("no-such-request", Decision::Approve, Utc::now() + Duration::hours(1)))
            .await
            .0,
        404
    );
    // Wrong decision for the id: a rollback token naming a request, not an action.
    assert_eq!(
        post(signer.token(&request_id, Decision::Rollback, Utc::now() + Duration::hours(1)))
            .await
            .0,
        404
    );
    // Garbage.
    assert_eq!(post("not-a-token".into()).await.0, 400);
    // No approver.
    assert_eq!(lp.post_form("/decide", &[("token", &token)]).await.0, 400);
    // None of it changed anything.
    assert_eq!(approval_status(&lp, &request_id).await, "pending");
    assert_eq!(state_of(&lp, &id).await, "running");

    // Replayed: the first POST decides, the second is refused.
    assert_eq!(post(token.clone()).await.0, 200);
    assert_eq!(post(token.clone()).await.0, 409);
    // And the Reject link of a decided request changes nothing either.
    let (status, _) = post(token_of(&reject)).await;
    assert_eq!(status, 409);
    assert_eq!(approval_status(&lp, &request_id).await, "executed");
    let actions = seed::scan_table(&lp.moto.clients().await.dynamodb, TABLE)
        .await
        .into_iter()
        .filter(|i| i["pk"].starts_with("ACTION#"))
        .count();
    assert_eq!(actions, 1);
}

#[tokio::test]
async fn fifty_concurrent_approvals_execute_once() {
    let lp = Loop::start(approve_policy()).await;
    let id = idle_instance(&lp, &[("Owner", "ana")]).await;
    let (request_id, approve, _) = request_approval(&lp).await;
    let token = token_of(&approve);
    let clicks = (0..50).map(|i| {
        let (lp, token) = (&lp, token.clone());
        async move {
            let who = format!("person{i}@example.com");
            lp.post_form("/decide", &[("token", &token), ("approver", &who)])
                .await
                .0
        }
    });
    let statuses = futures::future::join_all(clicks).await;
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1, "{statuses:?}");
    assert!(statuses.iter().all(|s| *s == 200 || *s == 409), "{statuses:?}");
    assert_eq!(state_of(&lp, &id).await, "stopped");
    assert_eq!(approval_status(&lp, &request_id).await, "executed");
    let items = seed::scan_table(&lp.moto.clients().await.dynamodb, TABLE).await;
    assert_eq!(items.iter().filter(|i| i["pk"].starts_with("ACTION#")).count(), 1);
    let results = Loop::of_type(&lp.drain().await, "action-result");
    assert_eq!(results.len(), 1);
}

#[tokio::test]
async fn a_replayed_event_and_message_give_one_request_and_one_post() {
    let lp = Loop::start(approve_policy()).await;
    idle_instance(&lp, &[("Owner", "ana")]).await;
    let deps = lp.detector_deps("idle-ec2", approve_policy()).await;
    for _ in 0..3 {
        idle_ec2::handler::handle(scheduled(), &deps, Utc::now()).await.unwrap();
    }
    let published = lp.drain().await;
    let requests = Loop::of_type(&published, "approval-request");
    assert_eq!(requests.len(), 1, "{published:#?}");
    let items = seed::scan_table(&lp.moto.clients().await.dynamodb, TABLE).await;
    assert_eq!(items.iter().filter(|i| i["pk"].starts_with("APPROVAL#")).count(), 1);
    // SNS delivers the same message three times: one post.
    let envelope = published
        .iter()
        .find(|e| e["Message"].as_str().is_some_and(|m| m.contains("approval-request")))
        .unwrap();
    for _ in 0..3 {
        lp.notify_slack(std::slice::from_ref(envelope))
            .await
            .pop()
            .unwrap()
            .unwrap();
    }
    assert_eq!(lp.slack.requests().len(), 1);
}

#[tokio::test]
async fn slack_answering_429_is_waited_for_and_the_message_delivered_once() {
    let lp = Loop::start(approve_policy()).await;
    idle_instance(&lp, &[("Owner", "ana")]).await;
    let deps = lp.detector_deps("idle-ec2", approve_policy()).await;
    idle_ec2::handler::handle(scheduled(), &deps, Utc::now()).await.unwrap();
    let published = lp.drain().await;
    let mut limited = Response::new(429, "text/plain", "rate_limited");
    limited.headers.push(("retry-after".into(), "1".into()));
    lp.slack.answer_next(limited);
    lp.notify_slack(&published).await.pop().unwrap().unwrap();
    let reqs = lp.slack.requests();
    assert_eq!(reqs.len(), 2, "one refused, one delivered");
    assert_eq!(reqs[0].body, reqs[1].body, "the same message, sent again");
    assert!(
        reqs[1].received.duration_since(reqs[0].received) >= std::time::Duration::from_secs(1),
        "waited as asked"
    );
    // Posted once: a replay is not sent again.
    lp.notify_slack(&published).await.pop().unwrap().unwrap();
    assert_eq!(lp.slack.requests().len(), 2);
}

#[tokio::test]
async fn a_failed_post_fails_the_invocation_and_the_retry_posts() {
    let lp = Loop::start(approve_policy()).await;
    idle_instance(&lp, &[("Owner", "ana")]).await;
    let deps = lp.detector_deps("idle-ec2", approve_policy()).await;
    idle_ec2::handler::handle(scheduled(), &deps, Utc::now()).await.unwrap();
    let published = lp.drain().await;
    lp.slack.answer_next(Response::new(500, "text/plain", "oops"));
    let err = lp.notify_slack(&published).await.pop().unwrap().unwrap_err();
    assert!(err.is_retryable(), "{err}");
    // Lambda's retry of the same event: delivered.
    lp.notify_slack(&published).await.pop().unwrap().unwrap();
    assert_eq!(lp.slack.requests().len(), 2);
    assert_eq!(lp.slack.requests()[1].path(), "/services/T000/B000/XXXX");
}

fn slack_body(token: &str, user: &str) -> String {
    let payload = serde_json::json!({
        "type": "block_actions",
        "user": {"id": user, "username": "ana"},
        "actions": [{"action_id": "finops_approve", "value": token}],
        "response_url": "https://hooks.slack.com/actions/T/1/x"
    });
    format!("payload={}", finops_tests::approvals::enc(&payload.to_string()))
}

#[tokio::test]
async fn slack_buttons_are_verified_then_executed_through_sns() {
    let lp = Loop::start(approve_policy()).await;
    let id = idle_instance(&lp, &[("Owner", "ana")]).await;
    let (request_id, approve, _) = request_approval(&lp).await;
    let body = slack_body(&token_of(&approve), "U0ANA");
    let ts = Utc::now().timestamp();
    let good = remediation::slack::sign(SIGNING_SECRET.as_bytes(), ts, body.as_bytes());
    let ts_s = ts.to_string();
    let form = ("content-type", "application/x-www-form-urlencoded");

    // Bad signature, stale timestamp, no headers: 401, nothing changes.
    let bad = remediation::slack::sign(b"not-the-secret", ts, body.as_bytes());
    assert_eq!(
        lp.post_raw(
            "/slack/actions",
            &[form, ("x-slack-request-timestamp", &ts_s), ("x-slack-signature", &bad)],
            &body
        )
        .await
        .0,
        401
    );
    let old = ts - 6 * 60;
    let old_sig = remediation::slack::sign(SIGNING_SECRET.as_bytes(), old, body.as_bytes());
    assert_eq!(
        lp.post_raw(
            "/slack/actions",
            &[
                form,
                ("x-slack-request-timestamp", &old.to_string()),
                ("x-slack-signature", &old_sig)
            ],
            &body
        )
        .await
        .0,
        401
    );
    assert_eq!(lp.post_raw("/slack/actions", &[form], &body).await.0, 401);
    assert_eq!(approval_status(&lp, &request_id).await, "pending");

    // Genuine: approved at once (Slack's 3 s), executed when the approval-result arrives on SNS.
    let (status, reply) = lp
        .post_raw(
            "/slack/actions",
            &[form, ("x-slack-request-timestamp", &ts_s), ("x-slack-signature", &good)],
            &body,
        )
        .await;
    assert_eq!(status, 200, "{reply}");
    assert!(reply.contains("Approved"), "{reply}");
    assert_eq!(approval_status(&lp, &request_id).await, "approved");
    assert_eq!(state_of(&lp, &id).await, "running");
    let published = lp.drain().await;
    assert_eq!(Loop::of_type(&published, "approval-result").len(), 1);
    // SNS delivers it twice: one execution.
    lp.deliver_to_approval(&published).await.pop().unwrap().unwrap();
    lp.deliver_to_approval(&published).await.pop().unwrap().unwrap();
    assert_eq!(state_of(&lp, &id).await, "stopped");
    let stored = lp.state().approval(&request_id).await.unwrap().unwrap();
    assert_eq!(
        (stored.status.as_str(), stored.decided_via.as_deref()),
        ("executed", Some("slack"))
    );
    assert_eq!(Loop::of_type(&lp.drain().await, "action-result").len(), 1);
}

/// Approve mode where only sign-ins decide on the page: addresses of example.com.
fn sign_in_policy() -> Policy {
    Policy {
        mode: Mode::Approve,
        approvals: ApprovalsPolicy {
            email_domains: vec!["example.com".into()],
            slack_users: vec!["U0ANA".into(), "U0BO".into()],
            ..ApprovalsPolicy::default()
        },
        ..Policy::default()
    }
}

#[tokio::test]
async fn the_approvers_list_and_two_approvers_for_prod() {
    // Two people, each proven by the identity provider, and only addresses of the listed domain.
    let lp = Loop::start_with_sign_in(sign_in_policy()).await;
    let id = idle_instance(&lp, &[("Owner", "ana"), ("Environment", "Prod")]).await;
    let (request_id, approve, _) = request_approval(&lp).await;
    let (status, page) = lp.decide_signed_in(&approve, "mallory@elsewhere.org").await;
    assert_eq!(status, 403, "{page}");
    assert!(page.contains("not on the approvers list"), "{page}");
    let (status, page) = lp.decide_signed_in(&approve, "ana@example.com").await;
    assert_eq!(status, 202, "{page}");
    assert!(page.contains("1 of 2 verified approvers"), "{page}");
    assert_eq!(state_of(&lp, &id).await, "running");
    // The same person twice (another sign-in, another case) does not make two.
    assert_eq!(lp.decide_signed_in(&approve, "ANA@example.com").await.0, 409);
    assert_eq!(state_of(&lp, &id).await, "running");
    let (status, page) = lp.decide_signed_in(&approve, "bo@example.com").await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(state_of(&lp, &id).await, "stopped");
    let stored = lp.state().approval(&request_id).await.unwrap().unwrap();
    assert_eq!(
        stored.approvers,
        vec!["oidc:ana@example.com".to_string(), "oidc:bo@example.com".to_string()]
    );
    assert!(stored.ballots.iter().all(|b| b.verified && b.via == "oidc"));
    // A typed address is refused outright here: the policy has no anyone_with_link.
    let (status, page) = lp
        .post_form(
            "/decide",
            &[("token", &token_of(&approve)), ("approver", "bo@example.com")],
        )
        .await;
    assert_eq!(status, 403, "{page}");
}

#[tokio::test]
async fn one_person_typing_two_addresses_cannot_execute_a_prod_stop() {
    // The hostile user of the issue: the same link twice, two addresses typed.
    let lp = Loop::start(approve_policy()).await;
    let id = idle_instance(&lp, &[("Owner", "ana"), ("Environment", "prod")]).await;
    let (request_id, approve, _) = request_approval(&lp).await;
    let (status, page) = lp
        .post_form(
            "/decide",
            &[("token", &token_of(&approve)), ("approver", "ana@example.com")],
        )
        .await;
    assert_eq!(status, 202, "{page}");
    assert!(
        page.contains("0 of 2 verified approvers") && page.contains("unverified"),
        "{page}"
    );
    // At most one typed address is kept: the others are refused, not piled up (issue 25 item 5).
    for who in ["bo@example.com", "carol@example.com"] {
        let (status, page) = lp
            .post_form("/decide", &[("token", &token_of(&approve)), ("approver", who)])
            .await;
        assert_eq!(status, 409, "{page}");
        assert!(page.contains("typed addresses do not count"), "{page}");
    }
    assert_eq!(state_of(&lp, &id).await, "running");
    let stored = lp.state().approval(&request_id).await.unwrap().unwrap();
    assert_eq!(stored.status, "pending");
    assert_eq!(stored.ballots.len(), 1);
    assert!(stored.ballots.iter().all(|b| !b.verified));
    // A Slack click plus the page it opens is not two people either: one verified ballot.
    let body = slack_body(&token_of(&approve), "U0ANA");
    let (status, reply) = signed_slack_post(&lp, &body).await;
    assert_eq!(status, 200, "{reply}");
    assert!(reply.contains("1 of 2 verified approvers"), "{reply}");
    assert_eq!(approval_status(&lp, &request_id).await, "pending");
}

#[tokio::test]
async fn a_slack_user_and_the_same_persons_sign_in_count_once() {
    let mut policy = sign_in_policy();
    policy.approvals.people = vec![remediation::policy::Person {
        slack: "U0ANA".into(),
        email: "ana@example.com".into(),
    }];
    let lp = Loop::start_with_sign_in(policy).await;
    let id = idle_instance(&lp, &[("Owner", "ana"), ("Environment", "prod")]).await;
    let (request_id, approve, _) = request_approval(&lp).await;
    // Paired: Slack's U0ANA is ana@example.com; her sign-in is the same person.
    let (status, reply) = signed_slack_post(&lp, &slack_body(&token_of(&approve), "U0ANA")).await;
    assert_eq!(status, 200, "{reply}");
    assert!(reply.contains("1 of 2"), "{reply}");
    let (status, page) = lp.decide_signed_in(&approve, "ana@example.com").await;
    assert_eq!(status, 409, "{page}");
    assert!(page.contains("already approved"), "{page}");
    // Not paired and Slack cannot say (no bot token): U0BO may be anyone who signed in, so
    // U0BO with ana is still one person for certain... and U0BO is not ana's Slack (U0ANA is):
    // ana (paired) and U0BO are two.
    let (status, reply) = signed_slack_post(&lp, &slack_body(&token_of(&approve), "U0BO")).await;
    assert_eq!(status, 200, "{reply}");
    assert!(reply.contains("Approved"), "{reply}");
    lp.deliver_to_approval(&lp.drain().await).await;
    assert_eq!(state_of(&lp, &id).await, "stopped");
    assert_eq!(approval_status(&lp, &request_id).await, "executed");
}

#[tokio::test]
async fn an_unknown_slack_user_and_a_sign_in_do_not_make_two_people() {
    let lp = Loop::start_with_sign_in(sign_in_policy()).await;
    let id = idle_instance(&lp, &[("Owner", "ana"), ("Environment", "prod")]).await;
    let (request_id, approve, _) = request_approval(&lp).await;
    let (status, reply) = signed_slack_post(&lp, &slack_body(&token_of(&approve), "U0BO")).await;
    assert_eq!(status, 200, "{reply}");
    // bo's sign-in: U0BO's address is unknown, so this may be the same person.
    let (status, page) = lp.decide_signed_in(&approve, "bo@example.com").await;
    assert_eq!(status, 202, "{page}");
    assert!(page.contains("1 of 2 verified approvers"), "{page}");
    assert_eq!(state_of(&lp, &id).await, "running");
    // A second Slack user is a second person for certain.
    let (status, reply) = signed_slack_post(&lp, &slack_body(&token_of(&approve), "U0ANA")).await;
    assert!(status == 200 && reply.contains("Approved"), "{reply}");
    lp.deliver_to_approval(&lp.drain().await).await;
    assert_eq!(state_of(&lp, &id).await, "stopped");
    assert_eq!(approval_status(&lp, &request_id).await, "executed");
}

#[tokio::test]
async fn slack_users_info_gives_the_address_with_the_bot_token() {
    let (slack, server) = finops_tests::httpserver::SlackStandIn::start().await;
    slack.answer_next(Response::new(
        200,
        "application/json",
        r#"{"ok":true,"user":{"id":"U0BO","name":"bo","profile":{"email":"bo@example.com"}}}"#,
    ));
    slack.answer_next(Response::new(
        200,
        "application/json",
        r#"{"ok":false,"error":"user_not_found"}"#,
    ));
    let http = remediation::http::HttpClient::new(std::time::Duration::from_secs(5)).unwrap();
    let api = format!("{}/api", server.url());
    let found = remediation::slack::user_email(&http, &api, "xoxb-test", "U0BO")
        .await
        .unwrap();
    assert_eq!(found.as_deref(), Some("bo@example.com"));
    let r = &slack.requests()[0];
    assert_eq!(r.target, "/api/users.info?user=U0BO");
    assert_eq!(r.header("authorization"), Some("Bearer xoxb-test"));
    assert_eq!(
        remediation::slack::user_email(&http, &api, "xoxb-test", "U0NONE")
            .await
            .unwrap(),
        None
    );
    // An id that is not one is never sent.
    assert_eq!(
        remediation::slack::user_email(&http, &api, "xoxb-test", "U0&x=1")
            .await
            .unwrap(),
        None
    );
    assert_eq!(slack.requests().len(), 2);
}

#[tokio::test]
async fn a_sign_in_whose_id_token_does_not_verify_decides_nothing() {
    use finops_tests::oidc::Tamper;
    let lp = Loop::start_with_sign_in(sign_in_policy()).await;
    let id = idle_instance(&lp, &[("Owner", "ana")]).await;
    let (request_id, approve, _) = request_approval(&lp).await;
    let (idp, _) = lp.idp.as_ref().unwrap();
    for t in [
        Tamper::OtherKey,
        Tamper::WrongAudience,
        Tamper::WrongIssuer,
        Tamper::WrongNonce,
        Tamper::Expired,
        Tamper::NoEmail,
        Tamper::EmailNotVerified,
    ] {
        idp.tamper_next(t);
        let (_, page) = lp.get(&approve).await;
        let (status, page) = lp.sign_in(&page, "ana@example.com").await;
        assert_eq!(status, 403, "{t:?}: {page}");
        assert!(
            page.contains("could not be verified") && !page.contains("name=\"session\""),
            "{t:?}: {page}"
        );
        assert_eq!(approval_status(&lp, &request_id).await, "pending", "{t:?}");
    }
    assert_eq!(idp.issued(), 7);
    // A callback replayed (same state) is refused: a state works once.
    let (_, page) = lp.get(&approve).await;
    let (callback, cookie) = lp.sign_in_until_callback(&page, "ana@example.com").await;
    assert_eq!(lp.get_with(&callback, &[("cookie", &cookie)]).await.status, 200);
    assert_eq!(lp.get_with(&callback, &[("cookie", &cookie)]).await.status, 410);
    // The session is ana's and kept on the server: a token or an address sent beside it changes
    // nothing, and it decides once.
    let (_, page) = lp.get(&approve).await;
    let (_, page) = lp.sign_in(&page, "ana@example.com").await;
    let session = finops_tests::oidc::form_session(&page).unwrap();
    let fields = [
        ("session", session.as_str()),
        ("token", "forged.token"),
        ("approver", "mallory@elsewhere.org"),
    ];
    let (status, page) = lp.post_form("/decide", &fields).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(lp.post_form("/decide", &[("session", &session)]).await.0, 410);
    assert_eq!(state_of(&lp, &id).await, "stopped");
    let stored = lp.state().approval(&request_id).await.unwrap().unwrap();
    assert_eq!(stored.approvers, vec!["oidc:ana@example.com".to_string()]);
}

#[tokio::test]
async fn with_no_approver_configured_approve_mode_refuses_to_start_and_nobody_decides() {
    let err = Policy::from_yaml("mode: approve\n", "policy.yaml")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("approvals.slack_users")
            && err.contains("approvals.oidc")
            && err.contains("approvals.anyone_with_link"),
        "{err}"
    );
    let (p, source) = Policy::default().with_mode_from("defaults".into(), None).unwrap();
    assert!(
        p.with_mode_from(source, Some("approve")).is_err(),
        "FINOPS_MODE=approve is checked too"
    );
    assert!(Policy::from_yaml("mode: approve\napprovals: {anyone_with_link: true}\n", "p").is_ok());
    assert!(Policy::from_yaml("mode: approve\napprovals: {slack_users: [U0ANA]}\n", "p").is_ok());
    // Addresses without a sign-in to prove them are refused as a configuration.
    let err = Policy::from_yaml("mode: approve\napprovals: {emails: [ana@example.com]}\n", "p")
        .unwrap_err()
        .to_string();
    assert!(err.contains("approvals.oidc"), "{err}");

    // And if such a policy reached the function anyway, nobody could decide: closed by default.
    let closed = Policy {
        mode: Mode::Approve,
        ..Policy::default()
    };
    let lp = Loop::start(closed).await;
    let id = idle_instance(&lp, &[("Owner", "ana")]).await;
    let (request_id, approve, reject) = request_approval(&lp).await;
    let (status, reply) = signed_slack_post(&lp, &slack_body(&token_of(&approve), "U0ANA")).await;
    assert!(status == 200 && reply.contains("not on the approvers list"), "{reply}");
    for link in [&approve, &reject] {
        let (status, page) = lp
            .post_form(
                "/decide",
                &[("token", &token_of(link)), ("approver", "ana@example.com")],
            )
            .await;
        assert_eq!(status, 403, "{page}");
    }
    assert_eq!(approval_status(&lp, &request_id).await, "pending");
    assert_eq!(state_of(&lp, &id).await, "running");
}

#[tokio::test]
async fn each_channel_is_judged_by_its_own_list() {
    // Slack users listed, and anyone with the link allowed on the page: the Slack list does not
    // close the page, and the page's openness does not open Slack to an unlisted user.
    let policy = Policy {
        mode: Mode::Approve,
        approvals: ApprovalsPolicy {
            slack_users: vec!["U0ANA".into()],
            anyone_with_link: true,
            ..ApprovalsPolicy::default()
        },
        ..Policy::default()
    };
    let lp = Loop::start(policy).await;
    idle_instance(&lp, &[("Owner", "ana")]).await;
    let (request_id, approve, _) = request_approval(&lp).await;
    let (_, reply) = signed_slack_post(&lp, &slack_body(&token_of(&approve), "U0MALLORY")).await;
    assert!(reply.contains("not on the approvers list"), "{reply}");
    assert_eq!(approval_status(&lp, &request_id).await, "pending");
    let (status, page) = lp
        .post_form(
            "/decide",
            &[("token", &token_of(&approve)), ("approver", "ana@example.com")],
        )
        .await;
    assert_eq!(status, 200, "{page}");
    let stored = lp.state().approval(&request_id).await.unwrap().unwrap();
    assert_eq!(stored.approvers, vec!["unverified:ana@example.com".to_string()]);
}

#[tokio::test]
async fn a_prod_rollback_needs_two_verified_approvers_like_the_action() {
    let lp = Loop::start_with_sign_in(sign_in_policy()).await;
    let id = idle_instance(&lp, &[("Owner", "ana"), ("Environment", "prod")]).await;
    let (_, approve, _) = request_approval(&lp).await;
    assert_eq!(lp.decide_signed_in(&approve, "ana@example.com").await.0, 202);
    assert_eq!(lp.decide_signed_in(&approve, "bo@example.com").await.0, 200);
    assert_eq!(state_of(&lp, &id).await, "stopped");
    let published = lp.drain().await;
    let result = &Loop::of_type(&published, "action-result")[0];
    let rollback = result["rollback_url"].as_str().unwrap().to_string();
    let action_id = result["action_id"].as_str().unwrap().to_string();
    let (status, page) = lp.decide_signed_in(&rollback, "ana@example.com").await;
    assert_eq!(status, 202, "{page}");
    assert!(
        page.contains("Rollback approval recorded") && page.contains("1 of 2"),
        "{page}"
    );
    assert_eq!(state_of(&lp, &id).await, "stopped");
    assert_eq!(lp.decide_signed_in(&rollback, "ana@example.com").await.0, 409);
    let (status, page) = lp.decide_signed_in(&rollback, "bo@example.com").await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(state_of(&lp, &id).await, "running");
    let action = lp.state().action(&action_id).await.unwrap().unwrap();
    assert_eq!(action.status, "rolled-back");
    assert_eq!(action.rollback_ballots.len(), 2);
}

#[tokio::test]
async fn the_rollback_window_is_kept_by_the_server_not_only_by_the_links_expiry() {
    let lp = Loop::start_with_sign_in(sign_in_policy()).await;
    let id = idle_instance(&lp, &[("Owner", "ana")]).await;
    let (_, approve, _) = request_approval(&lp).await;
    assert_eq!(lp.decide_signed_in(&approve, "ana@example.com").await.0, 200);
    assert_eq!(state_of(&lp, &id).await, "stopped");
    let result = &Loop::of_type(&lp.drain().await, "action-result")[0];
    let page = format!(
        "{}/request?action={}",
        lp.approval_server.url(),
        result["action_id"].as_str().unwrap()
    );
    assert_eq!(lp.get(&page).await.0, 200);
    // 31 days later the sign-in page (which makes no link) refuses it too.
    *lp.clock.lock().unwrap() = Some(Utc::now() + Duration::days(31));
    let (status, shown) = lp.get(&page).await;
    assert_eq!(status, 410, "{shown}");
    assert!(shown.contains("Rollback window closed"), "{shown}");
    assert_eq!(state_of(&lp, &id).await, "stopped");
}

#[tokio::test]
async fn a_vote_that_completes_the_quorum_is_one_transaction_even_when_dynamodb_conflicts() {
    let lp = Loop::start_with_sign_in(sign_in_policy()).await;
    let id = idle_instance(&lp, &[("Owner", "ana"), ("Environment", "prod")]).await;
    let (request_id, approve, _) = request_approval(&lp).await;
    assert_eq!(lp.decide_signed_in(&approve, "ana@example.com").await.0, 202);
    // The transaction that would approve the request is cancelled once, as DynamoDB cancels a
    // transaction another one is working on.
    lp.moto
        .inject_dynamodb_fault(
            "TransactWriteItems",
            ":approved",
            1,
            400,
            serde_json::json!({
                "__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
                "Message": "Transaction cancelled, please refer cancellation reasons for specific reasons [TransactionConflict, None, None]",
                "CancellationReasons": [
                    {"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item"},
                    {"Code": "None"}, {"Code": "None"}
                ]
            }),
        )
        .await;
    let (status, page) = lp.decide_signed_in(&approve, "bo@example.com").await;
    // Never a request left pending with enough votes: the vote is tried again, whole.
    assert_eq!(status, 200, "{page}");
    assert_eq!(state_of(&lp, &id).await, "stopped");
    let stored = lp.state().approval(&request_id).await.unwrap().unwrap();
    assert_eq!(stored.status, "executed");
    assert_eq!(stored.ballots.len(), 2);
}

#[tokio::test]
async fn a_request_that_leaves_pending_loses_its_ttl_and_a_late_rollback_completes() {
    let lp = Loop::start(approve_policy()).await;
    let id = idle_instance(&lp, &[("Owner", "ana")]).await;
    let (request_id, approve, _) = request_approval(&lp).await;
    let ddb = lp.moto.clients().await.dynamodb;
    let item = |items: &[std::collections::HashMap<String, String>]| {
        items
            .iter()
            .find(|i| i["pk"] == format!("APPROVAL#{request_id}"))
            .cloned()
    };
    let pending = item(&seed::scan_table(&ddb, TABLE).await).unwrap();
    assert!(pending.contains_key("expires_at"), "{pending:?}");
    let (status, page) = lp
        .post_form(
            "/decide",
            &[("token", &token_of(&approve)), ("approver", "ana@example.com")],
        )
        .await;
    assert_eq!(status, 200, "{page}");
    let executed = item(&seed::scan_table(&ddb, TABLE).await).unwrap();
    // The pending TTL (the decision deadline) is gone: the request is kept past any rollback
    // window (365 days at most), and the deadline stays as `deadline`.
    let kept: i64 = executed["expires_at"].parse().unwrap();
    assert!(kept > (Utc::now() + Duration::days(399)).timestamp(), "{executed:?}");
    assert_eq!(executed["deadline"], pending["expires_at"]);
    // A request that lapsed anyway (written before this fix): the rollback still completes.
    ddb.delete_item()
        .table_name(TABLE)
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("APPROVAL#{request_id}")),
        )
        .key("sk", aws_sdk_dynamodb::types::AttributeValue::S("REQUEST".into()))
        .send()
        .await
        .unwrap();
    let published = lp.drain().await;
    let result = &Loop::of_type(&published, "action-result")[0];
    let rollback = result["rollback_url"].as_str().unwrap();
    let finding_id = result["finding"]["id"].as_str().unwrap();
    let (status, page) = lp
        .post_form(
            "/decide",
            &[("token", &token_of(rollback)), ("approver", "ana@example.com")],
        )
        .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(state_of(&lp, &id).await, "running");
    let action_id = result["action_id"].as_str().unwrap();
    assert_eq!(
        lp.state().action(action_id).await.unwrap().unwrap().status,
        "rolled-back"
    );
    let trail: Vec<String> = lp
        .state()
        .audit_trail(finding_id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event)
        .collect();
    assert_eq!(trail.last().map(String::as_str), Some("rolled-back"), "{trail:?}");
    let ledger = seed::scan_table(&ddb, TABLE)
        .await
        .into_iter()
        .find(|i| i["pk"].starts_with("LEDGER#") && i["sk"] == finding_id)
        .unwrap();
    assert_eq!(ledger["status"], "rolled-back");
}

#[tokio::test]
async fn a_slack_approval_held_by_the_emergency_stop_is_executed_by_the_sweep_after_resume() {
    let lp = Loop::start(approve_policy()).await;
    let id = idle_instance_through_today(&lp, &[("Owner", "ana")]).await;
    let (request_id, approve, _) = request_approval(&lp).await;
    let (status, reply) = signed_slack_post(&lp, &slack_body(&token_of(&approve), "U0ANA")).await;
    assert!(status == 200 && reply.contains("Approved"), "{reply}");
    // The stop goes on before the approval-result reaches the function.
    lp.state()
        .set_emergency_stop(true, "ops", "incident 42", Utc::now())
        .await
        .unwrap();
    let published = lp.drain().await;
    let delivered = lp.deliver_to_approval(&published).await;
    assert!(delivered.iter().all(Result::is_ok), "held, not failed: {delivered:?}");
    assert_eq!(approval_status(&lp, &request_id).await, "approved");
    assert_eq!(state_of(&lp, &id).await, "running");
    // The sweep under the stop executes nothing.
    let later = Utc::now() + Duration::minutes(10);
    let swept = approval::handler::handle(sweep_event(), lp.approval_app(), later)
        .await
        .unwrap();
    assert_eq!(swept["executed_approved"], 0, "{swept}");
    assert_eq!(state_of(&lp, &id).await, "running");
    // `make resume`, then the next hourly sweep executes it.
    lp.state()
        .set_emergency_stop(false, "ops", "resolved", Utc::now())
        .await
        .unwrap();
    let swept = approval::handler::handle(sweep_event(), lp.approval_app(), later)
        .await
        .unwrap();
    assert_eq!(swept["executed_approved"], 1, "{swept}");
    assert_eq!(state_of(&lp, &id).await, "stopped");
    assert_eq!(approval_status(&lp, &request_id).await, "executed");
}

#[tokio::test]
async fn an_approved_item_whose_ballots_are_not_enough_people_is_closed_not_executed() {
    // An item approved by an earlier version with two typed addresses (or written by anything
    // else): the status says approved, the ballots do not.
    let lp = Loop::start(approve_policy()).await;
    let id = idle_instance(&lp, &[("Owner", "ana"), ("Environment", "prod")]).await;
    let (request_id, _, _) = request_approval(&lp).await;
    let ddb = lp.moto.clients().await.dynamodb;
    ddb.update_item()
        .table_name(TABLE)
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("APPROVAL#{request_id}")),
        )
        .key("sk", aws_sdk_dynamodb::types::AttributeValue::S("REQUEST".into()))
        .update_expression("SET #st = :a, decided_at = :t ADD approvers :who")
        .expression_attribute_names("#st", "status")
        .expression_attribute_values(":a", aws_sdk_dynamodb::types::AttributeValue::S("approved".into()))
        .expression_attribute_values(
            ":t",
            aws_sdk_dynamodb::types::AttributeValue::S((Utc::now() - Duration::hours(1)).to_rfc3339()),
        )
        .expression_attribute_values(
            ":who",
            aws_sdk_dynamodb::types::AttributeValue::Ss(vec![
                "email:ana@example.com".into(),
                "email:bo@example.com".into(),
            ]),
        )
        .send()
        .await
        .unwrap();
    let swept = approval::handler::handle(sweep_event(), lp.approval_app(), Utc::now())
        .await
        .unwrap();
    assert_eq!(swept["executed_approved"], 1, "{swept}");
    assert_eq!(state_of(&lp, &id).await, "running");
    let stored = lp.state().approval(&request_id).await.unwrap().unwrap();
    assert_eq!(stored.status, "failed");
    assert!(stored.detail.unwrap_or_default().contains("0 of the 2 verified people"));
}

#[tokio::test]
async fn an_approval_held_for_more_than_a_week_is_closed_not_carried_out() {
    let lp = Loop::start(approve_policy()).await;
    let id = idle_instance(&lp, &[("Owner", "ana")]).await;
    let (request_id, approve, _) = request_approval(&lp).await;
    lp.state()
        .set_emergency_stop(true, "ops", "incident 43", Utc::now())
        .await
        .unwrap();
    let (status, reply) = signed_slack_post(&lp, &slack_body(&token_of(&approve), "U0ANA")).await;
    // Under the stop the click itself is refused; taken before it went on, it is held.
    assert!(status == 200 && reply.contains("Emergency stop is on"), "{reply}");
    lp.state()
        .set_emergency_stop(false, "ops", "resolved", Utc::now())
        .await
        .unwrap();
    let (_, reply) = signed_slack_post(&lp, &slack_body(&token_of(&approve), "U0ANA")).await;
    assert!(reply.contains("Approved"), "{reply}");
    lp.drain().await; // the approval-result is lost
    let swept = approval::handler::handle(sweep_event(), lp.approval_app(), Utc::now() + Duration::days(8))
        .await
        .unwrap();
    assert_eq!(swept["executed_approved"], 1, "{swept}");
    assert_eq!(state_of(&lp, &id).await, "running");
    let stored = lp.state().approval(&request_id).await.unwrap().unwrap();
    assert_eq!(stored.status, "failed");
    assert!(stored.detail.unwrap_or_default().contains("too late to act on"));
}

fn sweep_event() -> Value {
    serde_json::from_str(include_str!("../../events/approval/scheduled.json")).unwrap()
}

async fn signed_slack_post(lp: &Loop, body: &str) -> (u16, String) {
    let ts = Utc::now().timestamp();
    let sig = remediation::slack::sign(SIGNING_SECRET.as_bytes(), ts, body.as_bytes());
    lp.post_raw(
        "/slack/actions",
        &[
            ("content-type", "application/x-www-form-urlencoded"),
            ("x-slack-request-timestamp", &ts.to_string()),
            ("x-slack-signature", &sig),
        ],
        body,
    )
    .await
}

#[tokio::test]
async fn every_page_is_uncached_unframed_and_tells_nothing_internal() {
    let lp = Loop::start(approve_policy()).await;
    idle_instance(&lp, &[("Owner", "ana")]).await;
    let (request_id, approve, _) = request_approval(&lp).await;
    for url in [
        approve.clone(),
        format!("{}/decide?token=garbage", lp.approval_server.url()),
        format!("{}/nowhere/%3Cscript%3E", lp.approval_server.url()),
    ] {
        let r = lp.get_full(&url).await;
        assert_eq!(r.header("cache-control"), Some("no-store"), "{url}");
        assert_eq!(r.header("referrer-policy"), Some("no-referrer"), "{url}");
        assert!(
            r.header("content-security-policy")
                .is_some_and(|c| c.contains("frame-ancestors 'none'")),
            "{url}: {:?}",
            r.headers
        );
        assert!(!r.body.contains("<script>"), "{}", r.body);
    }
    // The emergency stop: that it is on, not who set it or why.
    lp.state()
        .set_emergency_stop(true, "alice@ops", "secret incident 42", Utc::now())
        .await
        .unwrap();
    let (status, page) = lp
        .post_form(
            "/decide",
            &[("token", &token_of(&approve)), ("approver", "ana@example.com")],
        )
        .await;
    assert_eq!(status, 503, "{page}");
    assert!(page.contains("Emergency stop is on"), "{page}");
    assert!(!page.contains("secret incident") && !page.contains("alice"), "{page}");
    // A request whose item cannot be read: "try again", no DynamoDB text.
    let ddb = lp.moto.clients().await.dynamodb;
    ddb.update_item()
        .table_name(TABLE)
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("APPROVAL#{request_id}")),
        )
        .key("sk", aws_sdk_dynamodb::types::AttributeValue::S("REQUEST".into()))
        .update_expression("SET finding = :x")
        .expression_attribute_values(":x", aws_sdk_dynamodb::types::AttributeValue::S("{not json".into()))
        .send()
        .await
        .unwrap();
    let (status, page) = lp.get(&approve).await;
    assert_eq!(status, 503, "{page}");
    for internal in ["dynamodb", "GetItem", "unreadable", "finding"] {
        assert!(!page.contains(internal), "{internal} in {page}");
    }
}

#[tokio::test]
async fn rejection_and_expiry_are_recorded_and_published() {
    let mut policy = approve_policy();
    policy.approval_ttl_hours = 1;
    let lp = Loop::start(policy.clone()).await;
    let a = idle_instance(&lp, &[("Owner", "ana")]).await;
    let b = idle_instance(&lp, &[("Owner", "bo")]).await;
    let deps = lp.detector_deps("idle-ec2", policy).await;
    idle_ec2::handler::handle(scheduled(), &deps, Utc::now()).await.unwrap();
    let requests = Loop::of_type(&lp.drain().await, "approval-request");
    assert_eq!(requests.len(), 2);
    let of = |id: &str| {
        requests
            .iter()
            .find(|r| r["finding"]["resource"]["id"] == id)
            .unwrap()
            .clone()
    };
    let (ra, rb) = (of(&a), of(&b));
    let reject = token_of(ra["reject_url"].as_str().unwrap());
    let (status, _) = lp
        .post_form("/decide", &[("token", &reject), ("approver", "ana@example.com")])
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        approval_status(&lp, ra["request_id"].as_str().unwrap()).await,
        "rejected"
    );
    let results = Loop::of_type(&lp.drain().await, "approval-result");
    assert_eq!((results.len(), results[0]["status"].as_str()), (1, Some("rejected")));

    // Two hours later the hourly sweep expires the other one.
    let later = Utc::now() + Duration::hours(2);
    let expired = approval::handler::handle(
        serde_json::from_str(include_str!("../../events/approval/scheduled.json")).unwrap(),
        lp.approval_app(),
        later,
    )
    .await
    .unwrap();
    assert_eq!(expired["expired"], 1);
    assert_eq!(
        approval_status(&lp, rb["request_id"].as_str().unwrap()).await,
        "expired"
    );
    let results = Loop::of_type(&lp.drain().await, "approval-result");
    assert_eq!((results.len(), results[0]["status"].as_str()), (1, Some("expired")));
    assert_eq!(state_of(&lp, &a).await, "running");
    assert_eq!(state_of(&lp, &b).await, "running");
    // The ledger closes both lines without savings (the savings report counts them so).
    let ledger: Vec<(String, String)> = seed::scan_table(&lp.moto.clients().await.dynamodb, TABLE)
        .await
        .into_iter()
        .filter(|i| i["pk"].starts_with("LEDGER#"))
        .map(|i| {
            (
                i["resource_id"].clone(),
                format!("{} {}", i["status"], i["realised_usd"]),
            )
        })
        .collect();
    assert_eq!(ledger.len(), 2, "{ledger:?}");
    assert!(ledger.contains(&(a.clone(), "rejected 0.00".into())), "{ledger:?}");
    assert!(ledger.contains(&(b.clone(), "expired 0.00".into())), "{ledger:?}");
}

/// Flips the switch with the operator's `finops stop` / `finops resume`, against moto.
fn switch(lp: &Loop, state: &str, reason: &str) {
    let command = if state == "on" { "stop" } else { "resume" };
    let out = std::process::Command::new(finops_tests::finops_bin())
        .args(["--table", TABLE, command, "--by", "ops@example.com", "--reason", reason])
        .env("AWS_ENDPOINT_URL", lp.moto.endpoint())
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test]
async fn the_emergency_stop_turns_everything_into_dry_run() {
    let lp = Loop::start(approve_policy()).await;
    let id = idle_instance(&lp, &[("Owner", "ana")]).await;
    let (request_id, approve, _) = request_approval(&lp).await;
    // What `make emergency-stop` runs.
    switch(&lp, "on", "incident 42");
    // A click is refused while it is on; the request stays pending.
    let (status, page) = lp
        .post_form(
            "/decide",
            &[("token", &token_of(&approve)), ("approver", "ana@example.com")],
        )
        .await;
    assert_eq!(status, 503, "{page}");
    assert_eq!(approval_status(&lp, &request_id).await, "pending");
    // A detector in auto mode runs as dry-run and says why.
    let auto = Policy {
        mode: Mode::Auto,
        ..Policy::default()
    };
    let report = idle_ec2::handler::handle(
        scheduled(),
        &lp.detector_deps("idle-ec2", auto.clone()).await,
        Utc::now(),
    )
    .await
    .unwrap();
    assert_eq!(report.mode, Mode::DryRun);
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.contains("EMERGENCY STOP") && n.contains("incident 42")),
        "{:?}",
        report.notes
    );
    assert_eq!(state_of(&lp, &id).await, "running");
    // Resumed: the same click goes through.
    switch(&lp, "off", "resolved");
    assert!(!lp.state().emergency_stop().await.unwrap().unwrap().on);
    let (status, _) = lp
        .post_form(
            "/decide",
            &[("token", &token_of(&approve)), ("approver", "ana@example.com")],
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(state_of(&lp, &id).await, "stopped");
}

#[tokio::test]
async fn many_findings_make_one_digest_post() {
    let lp = Loop::start(approve_policy()).await;
    for i in 0..7 {
        idle_instance(&lp, &[("Owner", if i % 2 == 0 { "ana" } else { "bo" })]).await;
    }
    let deps = lp.detector_deps("idle-ec2", approve_policy()).await;
    idle_ec2::handler::handle(scheduled(), &deps, Utc::now()).await.unwrap();
    let published = lp.drain().await;
    assert_eq!(Loop::of_type(&published, "approval-request").len(), 7);
    assert_eq!(Loop::of_type(&published, "digest").len(), 1);
    lp.notify_slack(&published).await.into_iter().for_each(|r| {
        r.unwrap();
    });
    let posts = lp.slack.requests();
    assert_eq!(posts.len(), 1, "one digest, not seven posts");
    let text = posts[0].json().to_string();
    assert!(text.contains("7 findings") && text.contains("$425.18/month"), "{text}");
    assert!(text.contains("idle-ec2: 7"), "{text}");
}

async fn bucket_block(s3: &aws_sdk_s3::Client, bucket: &str) -> Option<bool> {
    s3.get_public_access_block()
        .bucket(bucket)
        .send()
        .await
        .ok()
        .and_then(|o| {
            o.public_access_block_configuration()
                .and_then(|c| c.ignore_public_acls())
        })
}

#[tokio::test]
async fn a_public_bucket_is_blocked_on_approval_and_restored_on_rollback() {
    // The approval function acts in the finding's account: S3's account-level Block Public Access
    // is read per account during the re-check.
    let lp = Loop::start(approve_policy()).await;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&lp.moto.sdk_config().await)
            .force_path_style(true)
            .build(),
    );
    s3.create_bucket().bucket("shared-reports").send().await.unwrap();
    s3.put_bucket_acl()
        .bucket("shared-reports")
        .acl(aws_sdk_s3::types::BucketCannedAcl::PublicRead)
        .send()
        .await
        .unwrap();
    let deps = lp.detector_deps("s3-public", approve_policy()).await;
    let event: Value = serde_json::from_str(include_str!("../../events/s3-public/scheduled.json")).unwrap();
    let report = s3_public::handler::handle(event, &deps, Utc::now()).await.unwrap();
    assert_eq!(report.findings.len(), 1, "{report:#?}");
    let published = lp.drain().await;
    let request = &Loop::of_type(&published, "approval-request")[0];
    let approve = token_of(request["approve_url"].as_str().unwrap());
    assert_eq!(bucket_block(&s3, "shared-reports").await, None);

    let (status, page) = lp
        .post_form("/decide", &[("token", &approve), ("approver", "ana@example.com")])
        .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(bucket_block(&s3, "shared-reports").await, Some(true));

    let result = &Loop::of_type(&lp.drain().await, "action-result")[0];
    let rollback = token_of(result["rollback_url"].as_str().unwrap());
    let (status, page) = lp
        .post_form("/decide", &[("token", &rollback), ("approver", "ana@example.com")])
        .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(
        bucket_block(&s3, "shared-reports").await,
        None,
        "no block before, none after"
    );

    // Detected again once the first request's lock has lapsed (a decided request keeps the
    // finding's lock until its expiry), then the account itself starts ignoring public ACLs: the
    // re-check, in the finding's account, sees it is no longer public and changes nothing.
    let event: Value = serde_json::from_str(include_str!("../../events/s3-public/scheduled.json")).unwrap();
    s3_public::handler::handle(event, &deps, Utc::now() + Duration::hours(73))
        .await
        .unwrap();
    let request = &Loop::of_type(&lp.drain().await, "approval-request")[0];
    let approve = token_of(request["approve_url"].as_str().unwrap());
    let control = aws_sdk_s3control::Client::new(&lp.moto.sdk_config().await);
    control
        .put_public_access_block()
        .account_id("123456789012")
        .public_access_block_configuration(
            aws_sdk_s3control::types::PublicAccessBlockConfiguration::builder()
                .ignore_public_acls(true)
                .build(),
        )
        .customize()
        .mutate_request(|req| {
            let uri = req.uri().replacen("://123456789012.", "://", 1);
            let _ = req.set_uri(uri);
        })
        .send()
        .await
        .unwrap();
    let (status, page) = lp
        .post_form("/decide", &[("token", &approve), ("approver", "ana@example.com")])
        .await;
    assert_eq!(status, 409, "{page}");
    assert!(page.contains("no longer public"), "{page}");
    assert_eq!(bucket_block(&s3, "shared-reports").await, None);
    // A decision that is no longer true closes as obsolete, in the request, the ledger and Slack.
    let request_id = request["request_id"].as_str().unwrap();
    assert_eq!(approval_status(&lp, request_id).await, "obsolete");
    let results = Loop::of_type(&lp.drain().await, "approval-result");
    assert_eq!(results[0]["status"], "obsolete", "{results:#?}");
    let finding_id = request["finding"]["id"].as_str().unwrap();
    let items = seed::scan_table(&lp.moto.clients().await.dynamodb, TABLE).await;
    let ledger = items
        .iter()
        .find(|i| i["pk"].starts_with("LEDGER#") && i["sk"] == finding_id)
        .expect("a ledger line");
    assert_eq!(ledger["status"], "obsolete");
}

#[tokio::test]
async fn links_take_their_base_from_the_deployment_never_from_a_request_or_a_message() {
    // Without its own URL from the deployment the approval function does not start.
    let lp = Loop::start(approve_policy()).await;
    let mut deps = lp.detector_deps("approval", approve_policy()).await;
    deps.links = None;
    let err = approval::handler::App::new(deps)
        .await
        .err()
        .expect("refused")
        .to_string();
    assert!(err.contains("approval_url"), "{err}");

    // A request that arrives under another name, and a message that names another base, change
    // nothing: every link points at the deployment's URL.
    let id = idle_instance(&lp, &[("Owner", "ana")]).await;
    let (_, approve, _) = request_approval(&lp).await;
    let event = serde_json::json!({
        "version": "2.0", "rawPath": "/decide", "rawQueryString": format!("token={}", token_of(&approve)),
        "headers": {"host": "evil.example"},
        "requestContext": {"domainName": "evil.example", "timeEpoch": 0,
            "http": {"method": "GET", "path": "/decide", "protocol": "HTTP/1.1", "sourceIp": "203.0.113.9", "userAgent": "x"}},
        "isBase64Encoded": false
    });
    let page = approval::handler::handle(event, lp.approval_app(), Utc::now())
        .await
        .unwrap();
    let body = page["body"].as_str().unwrap();
    assert!(
        body.contains(&format!("action=\"{}/decide\"", lp.approval_server.url())),
        "{body}"
    );
    assert!(!body.contains("evil.example"), "{body}");
    let (status, reply) = signed_slack_post(&lp, &slack_body(&token_of(&approve), "U0ANA")).await;
    assert_eq!(status, 200, "{reply}");
    let mut published = lp.drain().await;
    for envelope in published.iter_mut() {
        if let Some(m) = envelope.get_mut("Message").and_then(|m| m.as_str().map(str::to_string)) {
            let mut v: Value = serde_json::from_str(&m).unwrap();
            v["links_base"] = serde_json::json!("https://evil.example");
            envelope["Message"] = serde_json::json!(v.to_string());
        }
    }
    lp.deliver_to_approval(&published).await.pop().unwrap().unwrap();
    assert_eq!(state_of(&lp, &id).await, "stopped");
    let result = &Loop::of_type(&lp.drain().await, "action-result")[0];
    let rollback = result["rollback_url"].as_str().unwrap();
    assert!(
        rollback.starts_with(&format!("{}/decide?token=", lp.approval_server.url())),
        "{rollback}"
    );
}

#[tokio::test]
async fn a_rollback_runs_while_the_emergency_stop_is_on_and_the_audit_says_so() {
    let lp = Loop::start(approve_policy()).await;
    let id = idle_instance(&lp, &[("Owner", "ana")]).await;
    let (request_id, approve, _) = request_approval(&lp).await;
    let (status, page) = lp
        .post_form(
            "/decide",
            &[("token", &token_of(&approve)), ("approver", "ana@example.com")],
        )
        .await;
    assert_eq!(status, 200, "{page}");
    let published = lp.drain().await;
    lp.notify_slack(&published).await.into_iter().for_each(|r| {
        r.unwrap();
    });
    let rollback = button_urls(&lp.slack.requests().last().unwrap().json())
        .into_iter()
        .find(|(t, _)| t == "Roll back")
        .map(|(_, u)| u)
        .expect("a Roll back button");
    switch(&lp, "on", "incident 42");

    // Undoing restores, so it is not what the stop is for: it goes through.
    let (status, page) = lp
        .post_form(
            "/decide",
            &[("token", &token_of(&rollback)), ("approver", "ana@example.com")],
        )
        .await;

    assert_eq!(status, 200, "{page}");
    assert_eq!(state_of(&lp, &id).await, "running");
    assert_eq!(approval_status(&lp, &request_id).await, "rolled-back");
    let finding = lp.state().approval(&request_id).await.unwrap().unwrap().finding;
    let trail = lp.state().audit_trail(&finding.id).await.unwrap();
    let done = trail
        .iter()
        .find(|e| e.event == "rolled-back")
        .unwrap_or_else(|| panic!("no rolled-back entry in {trail:?}"));
    assert!(
        done.detail.contains("emergency stop is on") && done.detail.contains("incident 42"),
        "{done:?}"
    );
}

#[tokio::test]
async fn an_irreversible_delete_says_so_in_slack_and_on_the_page_and_runs_only_when_approved() {
    let mut policy = approve_policy();
    policy.ebs_cleanup.snapshot_before_delete = false;
    policy.ebs_cleanup.allow_irreversible_delete = true;
    policy.ebs_cleanup.grace_days = 0;
    let lp = Loop::start(policy.clone()).await;
    let c = lp.moto.clients().await;
    let vol = seed::create_volume(&c.ec2, "gp2", 100, None, "us-east-1a", &[("Owner", "ana")]).await;
    let event: Value = serde_json::from_str(include_str!("../../events/ebs-cleanup/scheduled.json")).unwrap();
    let report = ebs_cleanup::handler::handle(event, &lp.detector_deps("ebs-cleanup", policy).await, Utc::now())
        .await
        .unwrap();
    assert_eq!(report.outcomes[0].outcome, OutcomeKind::PendingApproval, "{report:#?}");
    let published = lp.drain().await;
    let requests = Loop::of_type(&published, "approval-request");
    assert_eq!(requests.len(), 1);
    lp.notify_slack(&published).await.into_iter().for_each(|r| {
        r.unwrap();
    });
    let post = lp.slack.requests().last().unwrap().json().to_string();
    assert!(post.contains("cannot be undone"), "{post}");

    let approve = requests[0]["approve_url"].as_str().unwrap().to_string();
    let (status, page) = lp.get(&approve).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("This cannot be undone"), "{page}");
    let (status, page) = lp
        .post_form(
            "/decide",
            &[("token", &token_of(&approve)), ("approver", "ana@example.com")],
        )
        .await;

    assert_eq!(status, 200, "{page}");
    assert!(seed::volumes(&c.ec2).await.is_empty(), "the volume is deleted");
    assert!(seed::snapshots(&c.ec2).await.is_empty(), "no snapshot was taken");
    let items = seed::scan_table(&c.dynamodb, TABLE).await;
    let record = items
        .iter()
        .find(|i| i["pk"].starts_with("ACTION#") && i["resource_id"] == vol)
        .expect("an action record");
    let rollback: Value = serde_json::from_str(&record["rollback"]).unwrap();
    assert_eq!(
        rollback["action"], "irreversible",
        "the record says there is no way back"
    );
}

/// A datapoint of `metric` for `id` a minute ago (today's partial day).
async fn put_today(lp: &Loop, id: &str, metric: &str, value: f64) {
    let c = lp.moto.clients().await;
    let datum = aws_sdk_cloudwatch::types::MetricDatum::builder()
        .metric_name(metric)
        .dimensions(
            aws_sdk_cloudwatch::types::Dimension::builder()
                .name("InstanceId")
                .value(id)
                .build(),
        )
        .timestamp(aws_smithy_types::DateTime::from_secs(
            (Utc::now() - Duration::minutes(1)).timestamp(),
        ))
        .value(value)
        .build();
    seed::put_datums(&c.cloudwatch, vec![datum]).await;
}

/// An idle instance asked about; then today's `usage` (metric, value); then ana approves. Returns
/// the loop, the instance, the request, its Approve link and the page's status and body.
async fn approved_after_today(usage: &[(&str, f64)]) -> (Loop, String, String, String, (u16, String)) {
    let lp = Loop::start(approve_policy()).await;
    let id = idle_instance(&lp, &[("Owner", "ana")]).await;
    let (request_id, approve, _) = request_approval(&lp).await;
    for (metric, value) in usage {
        put_today(&lp, &id, metric, *value).await;
    }
    let answer = lp
        .post_form(
            "/decide",
            &[("token", &token_of(&approve)), ("approver", "ana@example.com")],
        )
        .await;
    (lp, id, request_id, approve, answer)
}

#[tokio::test]
async fn an_approved_stop_of_an_instance_busy_since_detection_closes_as_obsolete() {
    // After detection the instance got busy: 40% CPU today (the partial day counts).
    let (lp, id, request_id, approve, (status, page)) = approved_after_today(&[("CPUUtilization", 40.0)]).await;
    assert_eq!(status, 409, "{page}");
    assert!(
        page.contains("Obsolete") && page.contains("busy since detection"),
        "{page}"
    );
    assert_eq!(state_of(&lp, &id).await, "running", "a busy instance is not stopped");
    let stored = lp.state().approval(&request_id).await.unwrap().unwrap();
    assert_eq!(stored.status, "obsolete");
    assert!(stored
        .detail
        .as_deref()
        .unwrap_or_default()
        .contains("CPU averaged 40.0%"));

    // The audit trail, the ledger and Slack say why.
    let trail = lp.state().audit_trail(&stored.finding.id).await.unwrap();
    let last = trail.last().unwrap();
    assert_eq!(last.event, "obsolete", "{trail:?}");
    assert!(last.detail.contains("busy since detection"), "{last:?}");
    assert!(
        !trail.iter().any(|e| e.event.starts_with("action-")),
        "no action was begun: {trail:?}"
    );
    let items = seed::scan_table(&lp.moto.clients().await.dynamodb, TABLE).await;
    let ledger = items
        .iter()
        .find(|i| i["pk"].starts_with("LEDGER#") && i["sk"] == stored.finding.id)
        .expect("a ledger line");
    assert_eq!(
        (ledger["status"].as_str(), ledger["realised_usd"].as_str()),
        ("obsolete", "0.00")
    );
    let published = lp.drain().await;
    let results = Loop::of_type(&published, "approval-result");
    assert_eq!(results.len(), 1, "{published:#?}");
    assert_eq!(results[0]["status"], "obsolete");
    for r in lp.notify_slack(&published).await {
        r.unwrap();
    }
    let post = lp.slack.requests().last().unwrap().json().to_string();
    assert!(
        post.contains("OBSOLETE") && post.contains("busy since detection"),
        "{post}"
    );
    // The finding's open-approval lock is released: a later run may ask about it again.
    let items = seed::scan_table(&lp.moto.clients().await.dynamodb, TABLE).await;
    assert!(
        !items
            .iter()
            .any(|i| i["sk"] == "OPEN_APPROVAL" && i["request_id"] == request_id),
        "the lock of an obsolete request is released"
    );

    // The same link again changes nothing.
    let (status, _) = lp
        .post_form(
            "/decide",
            &[("token", &token_of(&approve)), ("approver", "ana@example.com")],
        )
        .await;
    assert_eq!(status, 409);
    assert_eq!(state_of(&lp, &id).await, "running");
}

#[tokio::test]
async fn an_approved_stop_of_an_instance_still_quiet_today_goes_ahead() {
    // Quiet today too: under 5% CPU and a little network.
    let (lp, id, request_id, _, (status, page)) =
        approved_after_today(&[("CPUUtilization", 1.5), ("NetworkIn", 1000.0)]).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(state_of(&lp, &id).await, "stopped");
    assert_eq!(approval_status(&lp, &request_id).await, "executed");
}

#[tokio::test]
async fn an_approved_delete_of_a_volume_attached_again_since_detection_closes_as_obsolete() {
    let lp = Loop::start(approve_policy()).await;
    let c = lp.moto.clients().await;
    let volume = seed::create_volume(&c.ec2, "gp3", 200, None, "us-east-1a", &[("Owner", "ana")]).await;
    let deps = lp.detector_deps("ebs-cleanup", approve_policy()).await;
    let event = || -> Value { serde_json::from_str(include_str!("../../events/ebs-cleanup/scheduled.json")).unwrap() };
    // First seen unattached ten days ago; flagged today and asked about.
    let now = Utc::now();
    ebs_cleanup::handler::handle(event(), &deps, now - Duration::days(10))
        .await
        .unwrap();
    let report = ebs_cleanup::handler::handle(event(), &deps, now).await.unwrap();
    assert_eq!(report.outcomes[0].outcome, OutcomeKind::PendingApproval, "{report:#?}");
    let request = Loop::of_type(&lp.drain().await, "approval-request")[0].clone();
    let request_id = request["request_id"].as_str().unwrap().to_string();

    // Before anyone approves, it is attached, written to, and detached again; the daily scans see
    // it attached (its sighting goes) and unattached again (a new spell, within its grace).
    let instance = seed::run_instance(&c.ec2, "t3.micro", &[]).await;
    seed::attach(&c.ec2, &volume, &instance).await;
    ebs_cleanup::handler::handle(event(), &deps, now + Duration::minutes(1))
        .await
        .unwrap();
    c.ec2
        .detach_volume()
        .volume_id(&volume)
        .instance_id(&instance)
        .device("/dev/sdf")
        .send()
        .await
        .unwrap();
    ebs_cleanup::handler::handle(event(), &deps, now + Duration::minutes(2))
        .await
        .unwrap();

    let (status, page) = lp
        .post_form(
            "/decide",
            &[
                ("token", &token_of(request["approve_url"].as_str().unwrap())),
                ("approver", "ana@example.com"),
            ],
        )
        .await;
    assert_eq!(status, 409, "{page}");
    assert!(
        page.contains("Obsolete") && page.contains("attached again since detection"),
        "{page}"
    );
    assert!(
        seed::volumes(&c.ec2)
            .await
            .iter()
            .any(|v| v.volume_id() == Some(volume.as_str())),
        "the volume that holds new data is not deleted"
    );
    assert!(seed::snapshots(&c.ec2).await.is_empty(), "nothing was even snapshotted");
    assert_eq!(approval_status(&lp, &request_id).await, "obsolete");
    let results = Loop::of_type(&lp.drain().await, "approval-result");
    assert_eq!(results[0]["status"], "obsolete");
}

#[tokio::test]
async fn an_approved_stop_of_an_instance_tagged_since_detection_closes_as_obsolete() {
    let mut policy = approve_policy();
    policy.tag_compliance.action = remediation::policy::TagAction::MarkAndStop;
    let lp = Loop::start(policy.clone()).await;
    let c = lp.moto.clients().await;
    let id = seed::run_instance(&c.ec2, "t3.large", &[("Owner", "ana")]).await;
    let marked = (Utc::now() - Duration::days(20)).date_naive().to_string();
    seed::tag(&c.ec2, &id, "finops:untagged-since", &marked).await;
    let deps = lp.detector_deps("tag-compliance", policy).await;
    let event: Value = serde_json::from_str(include_str!("../../events/tag-compliance/scheduled.json")).unwrap();
    tag_compliance::handler::handle(event, &deps, Utc::now()).await.unwrap();
    let requests = Loop::of_type(&lp.drain().await, "approval-request");
    let request = requests
        .iter()
        .find(|r| r["finding"]["action"] == "stop" && r["finding"]["resource"]["id"] == id.as_str())
        .unwrap_or_else(|| panic!("a stop request for {id}: {requests:#?}"));

    // The owner adds the missing tags before anyone approves.
    seed::tag(&c.ec2, &id, "CostCenter", "cc-42").await;
    seed::tag(&c.ec2, &id, "Environment", "dev").await;
    let (status, page) = lp
        .post_form(
            "/decide",
            &[
                ("token", &token_of(request["approve_url"].as_str().unwrap())),
                ("approver", "ana@example.com"),
            ],
        )
        .await;
    assert_eq!(status, 409, "{page}");
    assert!(page.contains("no longer missing required tags"), "{page}");
    assert_eq!(state_of(&lp, &id).await, "running");
    assert_eq!(
        approval_status(&lp, request["request_id"].as_str().unwrap()).await,
        "obsolete"
    );
}

#[tokio::test]
async fn the_hourly_sweep_resolves_executions_that_never_finished_by_reading_the_resource() {
    let lp = Loop::start(approve_policy()).await;
    let stopped = idle_instance(&lp, &[("Owner", "ana")]).await;
    let untouched = idle_instance(&lp, &[("Owner", "bo")]).await;
    let deps = lp.detector_deps("idle-ec2", approve_policy()).await;
    idle_ec2::handler::handle(scheduled(), &deps, Utc::now()).await.unwrap();
    let requests = Loop::of_type(&lp.drain().await, "approval-request");
    let of = |id: &str| {
        requests
            .iter()
            .find(|r| r["finding"]["resource"]["id"] == id)
            .unwrap()
            .clone()
    };
    let (ra, rb) = (of(&stopped), of(&untouched));
    let store = lp.state();
    let an_hour_ago = Utc::now() - Duration::hours(1);
    for r in [&ra, &rb] {
        let rid = r["request_id"].as_str().unwrap();
        store
            .vote(
                rid,
                &Approver::Unverified {
                    email: "ana@example.com".into(),
                }
                .ballot(an_hour_ago),
                &|_| 1,
                &remediation::decide::Judge::new(&lp.approval_app().sealer, &approve_policy(), an_hour_ago),
                an_hour_ago,
            )
            .await
            .unwrap()
            .unwrap();
        assert!(store
            .begin_execution(rid, r["finding"]["id"].as_str().unwrap(), an_hour_ago)
            .await
            .unwrap());
    }
    // The first execution recorded its action and stopped the instance, then its Lambda died
    // before recording the end; the second died before recording any action.
    let finding: remediation::model::Finding = serde_json::from_value(ra["finding"].clone()).unwrap();
    let record = remediation::state::ActionRecord {
        action_id: "a-died-midway".into(),
        finding: finding.clone(),
        mode: Mode::Approve,
        decided_by: "email:ana@example.com".into(),
        request_id: Some(ra["request_id"].as_str().unwrap().to_string()),
        pre_state: serde_json::json!({"state": "running"}),
        rollback: remediation::act::Rollback::StartInstance {
            instance_id: stopped.clone(),
            region: "us-east-1".into(),
            hibernated: false,
            launched_at: None,
        },
        started_at: an_hour_ago,
        seal: None,
    };
    // As the approval function writes it: sealed (an unsealed record claiming a decision is
    // another role's, and the sweep leaves it alone).
    let record = remediation::state::ActionRecord {
        seal: Some(lp.approval_app().sealer.seal(
            remediation::state::ACTION_SEAL,
            &[&remediation::state::record_on(
                &record.action_id,
                &record.finding,
                &record.decided_by,
                record.request_id.as_deref(),
                &record.rollback,
                Some(record.started_at),
            )],
        )),
        ..record
    };
    store.begin_action(&record).await.unwrap();
    seed::stop(&lp.moto.clients().await.ec2, &stopped).await;
    lp.drain().await;

    let swept = approval::handler::handle(
        serde_json::from_str(include_str!("../../events/approval/scheduled.json")).unwrap(),
        lp.approval_app(),
        Utc::now(),
    )
    .await
    .unwrap();
    assert_eq!(swept["resolved_stale"], 2, "{swept}");

    // Found stopped: executed and realised in the ledger; announced without a Roll back link
    // (a person may have stopped it: who did cannot be told).
    let action = store.action("a-died-midway").await.unwrap().unwrap();
    assert_eq!(action.status, "executed");
    assert_eq!(
        approval_status(&lp, ra["request_id"].as_str().unwrap()).await,
        "executed"
    );
    let trail = store.audit_trail(&finding.id).await.unwrap();
    let resolved = trail
        .iter()
        .find(|e| e.event == "action-executed")
        .expect("resolved in the audit");
    assert!(
        resolved.detail.contains("hourly sweep") && resolved.detail.contains("stopped"),
        "{resolved:?}"
    );
    let items = seed::scan_table(&lp.moto.clients().await.dynamodb, TABLE).await;
    let ledger = items
        .iter()
        .find(|i| i["pk"].starts_with("LEDGER#") && i["sk"] == finding.id)
        .unwrap();
    assert_eq!(ledger["realised_usd"], "60.74");
    let published = lp.drain().await;
    let results = Loop::of_type(&published, "action-result");
    assert_eq!(results.len(), 1, "{published:#?}");
    assert!(results[0]["rollback_url"].is_null(), "{:#?}", results[0]);
    assert!(results[0]["detail"].as_str().unwrap().contains("cannot be told"));
    // Nothing recorded, nothing done: the other request fails, saying so; its instance runs on.
    let b = store
        .approval(rb["request_id"].as_str().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(b.status, "failed");
    assert!(b.detail.unwrap_or_default().contains("nothing was done"));
    assert_eq!(state_of(&lp, &untouched).await, "running");
    let failed = Loop::of_type(&published, "approval-result");
    assert_eq!((failed.len(), failed[0]["status"].as_str()), (1, Some("failed")));

    // A second sweep finds nothing left.
    let again = approval::handler::handle(
        serde_json::from_str(include_str!("../../events/approval/scheduled.json")).unwrap(),
        lp.approval_app(),
        Utc::now(),
    )
    .await
    .unwrap();
    assert_eq!(again["resolved_stale"], 0);
}

/// Everything the functions log while `f` runs, at every level.
async fn logs_of<F: std::future::Future>(f: F) -> (F::Output, String) {
    use tracing::instrument::WithSubscriber;
    #[derive(Clone, Default)]
    struct Buf(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Buf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let out = f.with_subscriber(subscriber).await;
    let text = String::from_utf8_lossy(&buf.0.lock().unwrap()).to_string();
    (out, text)
}

#[tokio::test]
async fn no_token_reaches_the_logs() {
    let lp = Loop::start_with_sign_in(sign_in_policy()).await;
    idle_instance(&lp, &[("Owner", "ana")]).await;
    let (_, approve, reject) = request_approval(&lp).await;
    let (token, other) = (token_of(&approve), token_of(&reject));
    let app = lp.approval_app();
    let event = |method: &str, target: &str, body: &str, headers: Vec<(String, String)>| {
        finops_tests::httpserver::function_url_event(&finops_tests::httpserver::Request {
            method: method.into(),
            target: target.into(),
            headers,
            body: body.into(),
            received: std::time::Instant::now(),
        })
    };
    let form = vec![(
        "content-type".to_string(),
        "application/x-www-form-urlencoded".to_string(),
    )];
    let slack_headers = |body: &str| {
        let ts = Utc::now().timestamp();
        vec![
            (
                "content-type".to_string(),
                "application/x-www-form-urlencoded".to_string(),
            ),
            ("x-slack-request-timestamp".to_string(), ts.to_string()),
            (
                "x-slack-signature".to_string(),
                remediation::slack::sign(SIGNING_SECRET.as_bytes(), ts, body.as_bytes()),
            ),
        ]
    };
    // A payload whose shape is wrong where the token is: serde would quote it.
    let odd = format!(
        "payload={}",
        finops_tests::approvals::enc(&serde_json::json!({"user": {"id": "U0ANA"}, "actions": other}).to_string())
    );
    let good = slack_body(&other, "U0MALLORY");
    let (_, logs) = logs_of(async {
        for e in [
            event("GET", &format!("/decide?token={token}"), "", vec![]),
            event(
                "POST",
                "/decide",
                &format!("token={token}&approver=x%40example.com"),
                form.clone(),
            ),
            event("GET", &format!("/oidc/start?token={token}"), "", vec![]),
            event("POST", "/slack/actions", &odd, slack_headers(&odd)),
            event("POST", "/slack/actions", &good, slack_headers(&good)),
            event("POST", "/slack/actions", &good, vec![]),
        ] {
            approval::handler::handle(e, app, Utc::now()).await.unwrap();
        }
        // An event that is no event at all, carrying the token.
        let _ = approval::handler::handle(serde_json::json!({"token": token}), app, Utc::now()).await;
    })
    .await;
    assert!(logs.contains("refused"), "the run logged: {logs}");
    for t in [&token, &other] {
        let signature = t.split('.').next_back().unwrap();
        assert!(!logs.contains(signature), "a token in the logs: {logs}");
    }
}

/// Issue 26, problem 12: a volume a rollback restores is a new unattached volume, so auto mode
/// deleted it again once its grace period ended. It is snoozed (30 days by default) as it is
/// restored: a later auto run leaves it alone and says why.
#[tokio::test]
async fn a_volume_restored_by_a_rollback_is_snoozed_so_auto_mode_leaves_it_alone() {
    let mut policy = approve_policy();
    policy.ebs_cleanup.grace_days = 0;
    let lp = Loop::start(policy.clone()).await;
    let c = lp.moto.clients().await;
    let vol = seed::create_volume(&c.ec2, "gp2", 100, None, "us-east-1a", &[("Owner", "ana")]).await;
    let event = || -> Value { serde_json::from_str(include_str!("../../events/ebs-cleanup/scheduled.json")).unwrap() };
    ebs_cleanup::handler::handle(
        event(),
        &lp.detector_deps("ebs-cleanup", policy.clone()).await,
        Utc::now(),
    )
    .await
    .unwrap();
    let request = Loop::of_type(&lp.drain().await, "approval-request")[0].clone();
    let approve = token_of(request["approve_url"].as_str().unwrap());
    let (status, page) = lp
        .post_form("/decide", &[("token", &approve), ("approver", "ana@example.com")])
        .await;
    assert_eq!(status, 200, "{page}");
    assert!(seed::volumes(&c.ec2).await.is_empty(), "deleted");
    let result = Loop::of_type(&lp.drain().await, "action-result")[0].clone();
    let rollback = token_of(result["rollback_url"].as_str().unwrap());
    let (status, page) = lp
        .post_form("/decide", &[("token", &rollback), ("approver", "ana@example.com")])
        .await;
    assert_eq!(status, 200, "{page}");
    let restored = seed::volumes(&c.ec2).await;
    assert_eq!(restored.len(), 1, "restored");
    let restored = restored[0].volume_id().unwrap().to_string();
    assert_ne!(restored, vol);
    assert!(page.contains("snoozed until"), "the page says so: {page}");

    // A month later in auto mode (its grace period long over): left alone, saying why.
    let mut auto = policy.clone();
    auto.mode = Mode::Auto;
    let deps = lp.detector_deps("ebs-cleanup", auto).await;
    ebs_cleanup::handler::handle(event(), &deps, Utc::now()).await.unwrap();
    let later = ebs_cleanup::handler::handle(event(), &deps, Utc::now() + Duration::days(20))
        .await
        .unwrap();
    assert_eq!(seed::volumes(&c.ec2).await.len(), 1, "{later:#?}");
    let o = later
        .outcomes
        .iter()
        .find(|o| o.finding_id.ends_with(&restored))
        .unwrap_or_else(|| panic!("{later:#?}"));
    assert_eq!(o.outcome, OutcomeKind::Skipped, "{o:?}");
    assert!(
        o.detail.contains("snoozed until") && o.detail.contains("restored by the rollback"),
        "{o:?}"
    );
}

/// Issue 26, problem 11: a rollback put back the settings from before the action whatever was
/// there now. When someone changed the bucket's Block Public Access since the action, the
/// rollback says what changed and leaves it as it is (the action stays executed: it may be rolled
/// back once the bucket is as the action left it, or changed by hand).
#[tokio::test]
async fn a_rollback_that_would_overwrite_a_later_change_says_so_and_changes_nothing() {
    let lp = Loop::start(approve_policy()).await;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&lp.moto.sdk_config().await)
            .force_path_style(true)
            .build(),
    );
    s3.create_bucket().bucket("changed-since").send().await.unwrap();
    s3.put_bucket_acl()
        .bucket("changed-since")
        .acl(aws_sdk_s3::types::BucketCannedAcl::PublicRead)
        .send()
        .await
        .unwrap();
    let deps = lp.detector_deps("s3-public", approve_policy()).await;
    let event: Value = serde_json::from_str(include_str!("../../events/s3-public/scheduled.json")).unwrap();
    s3_public::handler::handle(event, &deps, Utc::now()).await.unwrap();
    let request = Loop::of_type(&lp.drain().await, "approval-request")[0].clone();
    let approve = token_of(request["approve_url"].as_str().unwrap());
    let (status, page) = lp
        .post_form("/decide", &[("token", &approve), ("approver", "ana@example.com")])
        .await;
    assert_eq!(status, 200, "{page}");
    let result = Loop::of_type(&lp.drain().await, "action-result")[0].clone();

    // The bucket's owner then sets Block Public Access their own way.
    s3.put_public_access_block()
        .bucket("changed-since")
        .public_access_block_configuration(
            aws_sdk_s3::types::PublicAccessBlockConfiguration::builder()
                .block_public_acls(true)
                .ignore_public_acls(false)
                .block_public_policy(true)
                .restrict_public_buckets(false)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let rollback = token_of(result["rollback_url"].as_str().unwrap());
    let (status, page) = lp
        .post_form("/decide", &[("token", &rollback), ("approver", "ana@example.com")])
        .await;
    assert_eq!(status, 502, "{page}");
    assert_eq!(
        bucket_block(&s3, "changed-since").await,
        Some(false),
        "the owner's settings stay"
    );
    let said = Loop::of_type(&lp.drain().await, "action-result");
    let detail = said[0]["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("someone changed it since") && detail.contains("would overwrite"),
        "{said:#?}"
    );
    let action = lp
        .state()
        .action(result["action_id"].as_str().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(action.status, "executed", "it may be rolled back later");
}

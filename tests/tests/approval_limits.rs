//! The approval path's limits (issue 25, items 3 to 9): who each channel admits, how old a ballot
//! may be, how many people a resource needs when it acts, what a person's input may look like,
//! how long an old link key lives, and what the service says to ids it never makes.

use chrono::{Duration, Utc};
use finops_tests::approvals::{token_of, Loop, LINK_KEY};
use finops_tests::seed::{self, Usage};
use remediation::approval::{Decision, LinkSigner};
use remediation::model::Finding;
use remediation::notify::Message;
use remediation::policy::{ApprovalsPolicy, Mode, Policy};
use remediation::state::ApprovalStore;
use serde_json::Value;

fn policy(mode: Mode) -> Policy {
    Policy {
        mode,
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

async fn idle_instance(lp: &Loop, tags: &[(&str, &str)], until: chrono::DateTime<Utc>) -> String {
    let c = lp.moto.clients().await;
    let id = seed::run_instance(&c.ec2, "t3.large", tags).await;
    seed::put_usage(&c.cloudwatch, &id, Usage::IDLE, until, 14).await;
    id
}

async fn state_of(lp: &Loop, id: &str) -> String {
    seed::state_of(&lp.moto.clients().await.ec2, id).await
}

/// idle-ec2 (as its role, with `policy`, at `now`) runs once; what it published.
async fn run(lp: &Loop, policy: Policy, now: chrono::DateTime<Utc>) -> Vec<Value> {
    let deps = lp.detector_deps("idle-ec2", policy).await;
    idle_ec2::handler::handle(scheduled(), &deps, now).await.unwrap();
    lp.drain().await
}

fn links(lp: &Loop) -> LinkSigner {
    LinkSigner::new(LINK_KEY.as_bytes().to_vec(), &lp.stack.approval_url).unwrap()
}

#[tokio::test]
async fn anyone_with_the_link_admits_typed_addresses_only_never_any_slack_user_or_sign_in() {
    // No Slack list and no sign-in list: only typed addresses may decide.
    let mut p = policy(Mode::Approve);
    p.approvals.slack_users.clear();
    let lp = Loop::start_with_sign_in(p.clone()).await;
    let id = idle_instance(&lp, &[("Owner", "ana")], Utc::now()).await;
    let published = run(&lp, p, Utc::now()).await;
    let request = &Loop::of_type(&published, "approval-request")[0];
    let rid = request["request_id"].as_str().unwrap();
    let token = links(&lp).token(rid, Decision::Approve, Utc::now() + Duration::hours(1));
    // Any Slack user: refused.
    let (status, reply) = lp
        .slack_click("finops_approve", &token, "U0EVE", None, Utc::now())
        .await;
    assert!(reply.contains("not on the approvers list"), "{status} {reply}");
    // A sign-in, with no address listed for sign-ins: refused before the provider is asked, with
    // or without a token.
    for start in [
        format!("/oidc/start?token={token}"),
        format!("/oidc/start?rid={rid}&d=approve"),
    ] {
        let (status, page) = lp.get(&format!("{}{start}", lp.approval_server.url())).await;
        assert_eq!(status, 403, "{page}");
        assert!(page.contains("admits nobody"), "{page}");
    }
    assert_eq!(state_of(&lp, &id).await, "running");
    assert_eq!(lp.state().approval(rid).await.unwrap().unwrap().status, "pending");
}

#[tokio::test]
async fn a_resource_tagged_prod_after_detection_needs_two_approvers_when_it_acts() {
    let lp = Loop::start(policy(Mode::Approve)).await;
    let id = idle_instance(&lp, &[("Owner", "ana")], Utc::now()).await;
    let published = run(&lp, policy(Mode::Approve), Utc::now()).await;
    let request = &Loop::of_type(&published, "approval-request")[0];
    let rid = request["request_id"].as_str().unwrap();
    // Tagged production after the request was made (for one approver).
    let ec2 = lp.moto.clients().await.ec2;
    ec2.create_tags()
        .resources(&id)
        .tags(
            aws_sdk_ec2::types::Tag::builder()
                .key("Environment")
                .value("prod")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let token = links(&lp).token(rid, Decision::Approve, Utc::now() + Duration::hours(1));
    lp.slack_click("finops_approve", &token, "U0ANA", None, Utc::now())
        .await;
    for envelope in lp.drain().await {
        let _ = approval::handler::handle(Loop::sns_event(&envelope), lp.approval_app(), Utc::now()).await;
    }
    assert_eq!(
        state_of(&lp, &id).await,
        "running",
        "one approval stopped a prod instance"
    );
    let stored = lp.state().approval(rid).await.unwrap().unwrap();
    assert_ne!(stored.status, "executed");
}

#[tokio::test]
async fn rollback_ballots_older_than_a_week_do_not_count() {
    let lp = Loop::start(policy(Mode::Approve)).await;
    let now = Utc::now();
    // A production instance, stopped on two Slack approvals.
    let id = idle_instance(&lp, &[("Owner", "ana"), ("Environment", "prod")], now).await;
    let published = run(&lp, policy(Mode::Approve), now).await;
    let rid = Loop::of_type(&published, "approval-request")[0]["request_id"]
        .as_str()
        .unwrap()
        .to_string();
    let approve = links(&lp).token(&rid, Decision::Approve, now + Duration::hours(1));
    lp.slack_click("finops_approve", &approve, "U0ANA", None, now).await;
    let (_, reply) = lp.slack_click("finops_approve", &approve, "U0BO", None, now).await;
    assert!(reply.contains("Approved"), "{reply}");
    for r in lp.deliver_to_approval(&lp.drain().await).await {
        r.unwrap();
    }
    assert_eq!(state_of(&lp, &id).await, "stopped");
    let results = Loop::of_type(&lp.drain().await, "action-result");
    assert_eq!(results.len(), 1, "{results:#?}");
    let rollback = token_of(results[0]["rollback_url"].as_str().unwrap());
    // Ana asks for the rollback today; Bo eight days later (within the 30-day window).
    let (_, reply) = lp
        .slack_click("finops_rollback", &rollback, "U0ANA", None, Utc::now())
        .await;
    assert!(reply.contains("1 of 2"), "{reply}");
    let later = Utc::now() + Duration::days(8);
    lp.set_clock(Some(later));
    let (_, reply) = lp.slack_click("finops_rollback", &rollback, "U0BO", None, later).await;
    lp.set_clock(None);
    assert!(!reply.contains("Rolled back"), "{reply}");
    assert!(reply.contains("1 of 2"), "{reply}");
    assert_eq!(state_of(&lp, &id).await, "stopped");
}

#[tokio::test]
async fn what_a_person_types_is_an_address_and_stays_text_in_slack() {
    let lp = Loop::start(policy(Mode::Approve)).await;
    idle_instance(&lp, &[("Owner", "ana")], Utc::now()).await;
    let published = run(&lp, policy(Mode::Approve), Utc::now()).await;
    let request = &Loop::of_type(&published, "approval-request")[0];
    let rid = request["request_id"].as_str().unwrap();
    let token = links(&lp).token(rid, Decision::Reject, Utc::now() + Duration::hours(1));
    for typed in [
        "<!channel>@x.y",
        "<https://evil.example|CFO>@x.y",
        "ana@exa<mple.com",
        "a|b@x.yz",
    ] {
        let (status, page) = lp.post_form("/decide", &[("token", &token), ("approver", typed)]).await;
        assert_eq!(status, 400, "{typed}: {page}");
    }
    assert_eq!(lp.state().approval(rid).await.unwrap().unwrap().status, "pending");
    // Whatever reached a message (a name from elsewhere), the notification text shows it as text.
    let finding: Finding = serde_json::from_value(request["finding"].clone()).unwrap();
    let message = Message::ApprovalResult {
        request_id: rid.into(),
        finding,
        status: "rejected".into(),
        decided_by: "unverified:<!channel>@x.y".into(),
        detail: "rejected".into(),
    };
    let rendered = remediation::slack::render(
        &message,
        remediation::slack::RenderOptions::new(&finops_checks::CATALOG),
    );
    let text = rendered["text"].as_str().unwrap();
    assert!(!text.contains("<!channel>"), "{text}");
    assert!(text.contains("&lt;!channel&gt;"), "{text}");
}

#[tokio::test]
async fn ids_states_and_sessions_of_the_wrong_shape_are_the_senders_error_not_ours() {
    let mut p = policy(Mode::Approve);
    p.approvals.email_domains = vec!["example.com".into()];
    let lp = Loop::start_with_sign_in(p).await;
    let base = lp.approval_server.url();
    let long = "a".repeat(3000);
    let (status, page) = lp.get(&format!("{base}/request?id={long}")).await;
    assert_eq!(status, 400, "{page}");
    let (status, page) = lp.get(&format!("{base}/request?action={long}")).await;
    assert_eq!(status, 400, "{page}");
    let (status, page) = lp.get(&format!("{base}/oidc/callback?state={long}&code=x")).await;
    assert_eq!(status, 400, "{page}");
    let (status, page) = lp.get(&format!("{base}/oidc/start?rid={long}&d=approve")).await;
    assert_eq!(status, 400, "{page}");
    let (status, page) = lp.post_form("/decide", &[("session", &long)]).await;
    assert_eq!(status, 400, "{page}");
    // A link signed with the real key (any function that mints links holds it) naming a 3 KB id.
    let token = links(&lp).token(&long, Decision::Approve, Utc::now() + Duration::hours(1));
    let (status, page) = lp.get(&format!("{base}/decide?token={token}")).await;
    assert_eq!(status, 400, "{page}");
    let (status, page) = lp
        .post_form("/decide", &[("token", &token), ("approver", "ana@example.com")])
        .await;
    assert_eq!(status, 400, "{page}");
}

#[tokio::test]
async fn the_old_link_key_is_accepted_for_thirty_days_at_most() {
    let lp = Loop::start(policy(Mode::Approve)).await;
    let deps = lp.detector_deps("idle-ec2", policy(Mode::Approve)).await;
    let mut secrets = deps.secrets.clone();
    secrets.link_signing_key = Some("n".repeat(64));
    secrets.approval_url = Some(lp.stack.approval_url.clone());
    secrets.previous_link_signing_key = Some("o".repeat(64));
    let mut p = policy(Mode::Approve);
    // Asked for 400 days: the function still starts (it must keep deciding), and the old key is
    // accepted for 30 days only.
    p.approvals.previous_link_key_until = Some(Utc::now() + Duration::days(400));
    let deps = remediation::config::Deps::from_parts(deps.clients.clone(), p, "test".into(), secrets).unwrap();
    let links = deps.links.expect("links");
    let old = LinkSigner::new("o".repeat(64).into_bytes(), &lp.stack.approval_url).unwrap();
    let now = Utc::now();
    let soon = old.token("abc", Decision::Approve, now + Duration::days(20));
    assert!(links.verify(&soon, now).is_ok());
    let late = old.token("abc", Decision::Approve, now + Duration::days(40));
    assert!(links.verify(&late, now).is_err(), "an old-key link living past 30 days");
    assert!(links.verify(&soon, now + Duration::days(31)).is_err());
}

#[tokio::test]
async fn a_sign_in_finishes_only_in_the_browser_that_started_it() {
    let mut p = policy(Mode::Approve);
    p.approvals.email_domains = vec!["example.com".into()];
    let lp = Loop::start_with_sign_in(p.clone()).await;
    idle_instance(&lp, &[("Owner", "ana")], Utc::now()).await;
    let published = run(&lp, p, Utc::now()).await;
    let request = &Loop::of_type(&published, "approval-request")[0];
    let rid = request["request_id"].as_str().unwrap();
    let link = links(&lp).link(rid, Decision::Approve, Utc::now() + Duration::hours(1));
    let (_, page) = lp.get(&link).await;
    // Started here, finished elsewhere (a link sent to someone, a login CSRF): refused.
    let (callback, cookie) = lp.sign_in_until_callback(&page, "ana@example.com").await;
    assert!(cookie.starts_with("__Host-finops-sign-in-"), "{cookie}");
    let (status, body) = lp.get(&callback).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("another browser"), "{body}");
    let (name, _) = cookie.split_once('=').unwrap();
    let wrong = format!("{name}=not-the-one-this-browser-was-given-0123456789");
    let (callback, _) = lp.sign_in_until_callback(&page, "ana@example.com").await;
    let r = lp.get_with(&callback, &[("cookie", &wrong)]).await;
    assert_eq!(r.status, 403, "{}", r.body);
    // In the browser that started it: the confirmation page, as the person signed in.
    let (status, body) = lp.sign_in(&page, "ana@example.com").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("oidc:ana@example.com"), "{body}");
}

/// Under the emergency stop, a rollback that makes a bucket public again is done only from its
/// page, with an explicit tick that says why; restarting an instance is as before.
#[tokio::test]
async fn under_the_emergency_stop_re_exposing_a_bucket_needs_a_tick_on_its_page() {
    let lp = Loop::start(policy(Mode::Auto)).await;
    let config = lp.moto.sdk_config().await;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&config)
            .force_path_style(true)
            .build(),
    );
    s3.create_bucket().bucket("open-data").send().await.unwrap();
    let policy_doc = serde_json::json!({"Version": "2012-10-17", "Statement": [{"Sid": "PublicRead", "Effect": "Allow",
        "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::open-data/*"}]});
    s3.put_bucket_policy()
        .bucket("open-data")
        .policy(policy_doc.to_string())
        .send()
        .await
        .unwrap();
    let deps = lp.detector_deps("s3-public", policy(Mode::Auto)).await;
    let sweep: Value = serde_json::from_str(include_str!("../../events/s3-public/scheduled.json")).unwrap();
    s3_public::handler::handle(sweep, &deps, Utc::now()).await.unwrap();
    let results = Loop::of_type(&lp.drain().await, "action-result");
    assert_eq!(results.len(), 1, "{results:#?}");
    let rollback_link = results[0]["rollback_url"].as_str().unwrap().to_string();
    let blocked = || async {
        s3.get_public_access_block()
            .bucket("open-data")
            .send()
            .await
            .ok()
            .and_then(|o| {
                o.public_access_block_configuration()
                    .and_then(|c| c.block_public_policy())
            })
            == Some(true)
    };
    assert!(blocked().await);
    lp.state()
        .set_emergency_stop(true, "ops", "incident 77", Utc::now())
        .await
        .unwrap();
    // Slack cannot show the tick: refused, nothing recorded.
    let (_, reply) = lp
        .slack_click("finops_rollback", &token_of(&rollback_link), "U0ANA", None, Utc::now())
        .await;
    assert!(
        reply.contains("Confirm on the page") && reply.contains("incident 77"),
        "{reply}"
    );
    assert!(blocked().await);
    // The page says why and asks for the tick; without it, refused.
    let (status, page) = lp.get(&rollback_link).await;
    assert_eq!(status, 200, "{page}");
    let shown = finops_tests::oidc::form_shown(&page).expect("the page's form names the record it shows");
    assert!(
        page.contains("under-stop") && page.contains("confirm_under_stop"),
        "{page}"
    );
    // What the rollback will do, as recorded, is what the person approves.
    assert!(
        page.contains("Rolling back will") && page.contains("put back open-data"),
        "{page}"
    );
    let token = token_of(&rollback_link);
    let (status, page) = lp
        .post_form(
            "/decide",
            &[("token", &token), ("approver", "ana@example.com"), ("shown", &shown)],
        )
        .await;
    assert_eq!(status, 409, "{page}");
    assert!(blocked().await);
    // With it: rolled back, the stop named in the record.
    let (status, page) = lp
        .post_form(
            "/decide",
            &[
                ("token", &token),
                ("approver", "ana@example.com"),
                ("confirm_under_stop", "yes"),
                ("shown", &shown),
            ],
        )
        .await;
    assert_eq!(status, 200, "{page}");
    assert!(!blocked().await);
}

/// A judge that seals as the approval function does but counts no ballot (people the lists
/// no longer admit, say): votes pile up without a quorum.
struct CountsNone<'a>(remediation::decide::Judge<'a>);

impl remediation::state::BallotJudge for CountsNone<'_> {
    fn seal(&self, ballot: remediation::identity::Ballot, on: &str) -> remediation::identity::Ballot {
        self.0.seal(ballot, on)
    }
    fn cast_here(&self, ballot: &remediation::identity::Ballot, on: &str) -> bool {
        self.0.cast_here(ballot, on)
    }
    fn counts(&self, _: &remediation::identity::Ballot, _: &str) -> bool {
        false
    }
}

#[tokio::test]
async fn a_request_keeps_at_most_twenty_ballots() {
    let lp = Loop::start(policy(Mode::Approve)).await;
    idle_instance(&lp, &[("Owner", "ana")], Utc::now()).await;
    let published = run(&lp, policy(Mode::Approve), Utc::now()).await;
    let rid = Loop::of_type(&published, "approval-request")[0]["request_id"]
        .as_str()
        .unwrap()
        .to_string();
    let p = policy(Mode::Approve);
    let judge = CountsNone(remediation::decide::Judge::new(
        &lp.approval_app().sealer,
        &p,
        Utc::now(),
    ));
    let store = lp.state();
    let vote = |n: usize| {
        let ballot = remediation::policy::Approver::Slack {
            user_id: format!("U{n:04}"),
            name: String::new(),
            email: None,
            paired: false,
        }
        .ballot(Utc::now());
        let judge = &judge;
        let rid = rid.clone();
        // Two needed; only the new ballot counts each time: never a quorum.
        async move { store.vote(&rid, &ballot, &|_| 2, judge, Utc::now()).await.unwrap() }
    };
    for n in 0..remediation::state::MAX_BALLOTS {
        assert!(
            matches!(vote(n).await, Ok(remediation::state::Vote::NeedMore { .. })),
            "{n}"
        );
    }
    assert_eq!(vote(99).await, Err(remediation::state::Refusal::Full));
    let stored = store.approval(&rid).await.unwrap().unwrap();
    assert_eq!(stored.ballots.len(), remediation::state::MAX_BALLOTS);
    assert_eq!(stored.status, "pending");
}

//! One browser test: headless Chromium (Debian's, driven through chromedriver's WebDriver API)
//! opens the Approve link taken from the rendered Slack message, sees the confirmation page,
//! types an address, clicks Approve and sees the result page; the instance is stopped in moto.
//! `make test` installs chromium and chromium-driver when missing.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use chrono::Utc;
use finops_tests::approvals::{button_urls, Loop};
use finops_tests::seed::{self, Usage};
use remediation::http::HttpClient;
use remediation::policy::{Mode, Policy};
use serde_json::{json, Value};

struct Driver {
    child: Child,
    base: String,
    http: HttpClient,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    async fn start() -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (Debian's chromium-driver; `make test` installs it)");
        let d = Driver {
            child,
            base: format!("http://127.0.0.1:{port}"),
            http: HttpClient::new(Duration::from_secs(60)).unwrap(),
        };
        for _ in 0..100 {
            if d.http
                .send("chromedriver", "GET", &format!("{}/status", d.base), &[], vec![])
                .await
                .is_ok()
            {
                return d;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("chromedriver did not start");
    }

    async fn call(&self, method: &str, path: &str, body: Value) -> Value {
        let r = self
            .http
            .send(
                "chromedriver",
                method,
                &format!("{}{path}", self.base),
                &[("content-type", "application/json")],
                if method == "GET" || method == "DELETE" {
                    vec![]
                } else {
                    body.to_string().into_bytes()
                },
            )
            .await
            .expect("WebDriver call");
        let v: Value = serde_json::from_str(&r.body).unwrap_or(Value::Null);
        assert!(r.status < 300, "{method} {path}: {} {}", r.status, r.body);
        v["value"].clone()
    }
}

#[tokio::test]
async fn a_person_approves_in_a_real_browser() {
    let policy = Policy {
        mode: Mode::Approve,
        // No identity provider here: the page's typed address, which the policy must allow.
        approvals: remediation::policy::ApprovalsPolicy {
            anyone_with_link: true,
            ..Default::default()
        },
        ..Policy::default()
    };
    let lp = Loop::start(policy.clone()).await;
    let c = lp.moto.clients().await;
    let id = seed::run_instance(&c.ec2, "t3.large", &[("Owner", "ana")]).await;
    seed::put_usage(&c.cloudwatch, &id, Usage::IDLE, Utc::now(), 14).await;
    let deps = lp.detector_deps("idle-ec2", policy).await;
    let event: Value = serde_json::from_str(include_str!("../../events/idle-ec2/scheduled.json")).unwrap();
    idle_ec2::handler::handle(event, &deps, Utc::now()).await.unwrap();
    lp.notify_slack(&lp.drain().await).await.into_iter().for_each(|r| {
        r.unwrap();
    });
    let post = lp.slack.requests()[0].json();
    let approve = button_urls(&post)
        .into_iter()
        .find(|(t, _)| t == "Approve")
        .map(|(_, u)| u)
        .expect("an Approve button");

    let driver = Driver::start().await;
    let caps = json!({"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
        "binary": "/usr/bin/chromium",
        "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]
    }}}});
    let session = driver.call("POST", "/session", caps).await;
    let sid = session["sessionId"].as_str().expect("a session").to_string();
    let s = |p: &str| format!("/session/{sid}{p}");
    let find = |css: &'static str| {
        let (driver, s) = (&driver, s(""));
        async move {
            let el = driver
                .call(
                    "POST",
                    &format!("{s}/element"),
                    json!({"using": "css selector", "value": css}),
                )
                .await;
            el.as_object()
                .and_then(|o| o.values().next())
                .and_then(Value::as_str)
                .unwrap_or_else(|| panic!("no element {css}"))
                .to_string()
        }
    };

    driver.call("POST", &s("/url"), json!({"url": approve})).await;
    let title = driver.call("GET", &s("/title"), Value::Null).await;
    assert!(title.as_str().unwrap().starts_with("Approve: stop"), "{title}");
    // Opening the link changed nothing.
    assert_eq!(seed::state_of(&c.ec2, &id).await, "running");

    let email = find("#approver").await;
    driver
        .call(
            "POST",
            &s(&format!("/element/{email}/value")),
            json!({"text": "ana@example.com"}),
        )
        .await;
    let button = find("#confirm").await;
    driver
        .call("POST", &s(&format!("/element/{button}/click")), json!({}))
        .await;
    let mut result = String::new();
    for _ in 0..100 {
        let v = driver
            .call("POST", &s("/execute/sync"), json!({"script": "var e = document.getElementById('result'); return e ? e.textContent : '';", "args": []}))
            .await;
        result = v.as_str().unwrap_or_default().to_string();
        if !result.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(result.starts_with("Done: stop"), "result page says {result:?}");
    assert_eq!(seed::state_of(&c.ec2, &id).await, "stopped");
    driver.call("DELETE", &s(""), Value::Null).await;
}

//! Starts moto server (the pinned PyPI version in the workspace's `.venv`) on a free loopback
//! port, waits until it answers, resets it on demand, and stops it when dropped.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use remediation::aws::Clients;

/// A running moto server; killed on drop.
#[derive(Debug)]
pub struct Moto {
    child: Child,
    /// The loopback port it listens on.
    pub port: u16,
}

/// The workspace root (the folder with the top-level Cargo.toml).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The moto server command: `FINOPS_MOTO_SERVER` if set (a path, arguments allowed), else
/// `tests/moto_server.py` (stock moto with DynamoDB requests made atomic, as DynamoDB's are) run
/// by the workspace venv's Python.
fn server_command() -> Vec<String> {
    match std::env::var("FINOPS_MOTO_SERVER") {
        Ok(cmd) if !cmd.trim().is_empty() => cmd.split_whitespace().map(str::to_string).collect(),
        _ => {
            let root = workspace_root();
            [root.join(".venv/bin/python"), root.join("tests/moto_server.py")]
                .iter()
                .map(|p| p.to_string_lossy().into_owned())
                .collect()
        }
    }
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl Moto {
    /// Starts the default moto server.
    pub fn start() -> Result<Moto, String> {
        Moto::start_command(server_command())
    }

    /// Starts `command` with `-H 127.0.0.1 -p PORT` appended, on a free port (retried if the port
    /// was taken in between), and waits up to 60 s for it to answer.
    pub fn start_command(command: Vec<String>) -> Result<Moto, String> {
        let (program, args) = command.split_first().ok_or("empty moto command")?;
        if program.contains('/') && !PathBuf::from(program).exists() {
            return Err(format!(
                "{program} not found: run `make test` (or `make venv`), which installs the pinned moto"
            ));
        }
        let mut last_error = String::new();
        for _ in 0..3 {
            let port = free_port().map_err(|e| format!("no free port: {e}"))?;
            let mut child = Command::new(program)
                .args(args)
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .env("MOTO_ALLOW_NONEXISTENT_REGION", "false")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| format!("cannot start {program}: {e}"))?;
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                if let Ok(Some(status)) = child.try_wait() {
                    last_error = format!("moto exited with {status} on port {port}");
                    break;
                }
                if http(port, "GET", "/moto-api/data.json", "").is_ok_and(|r| r.starts_with("HTTP/1.1 200")) {
                    return Ok(Moto { child, port });
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!("moto did not answer on port {port} within 60 s"));
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Err(last_error)
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Makes DynamoDB answer the next `times` requests of `operation` whose body contains
    /// `body_contains` with `status` and `response`, as DynamoDB answers a fault (a rule of the
    /// fault layer in `tests/moto_server.py`).
    pub async fn inject_dynamodb_fault(
        &self,
        operation: &str,
        body_contains: &str,
        times: u32,
        status: u16,
        response: serde_json::Value,
    ) {
        let rule = serde_json::json!({
            "service": "dynamodb", "operation": operation, "body_contains": body_contains,
            "times": times, "share": 1.0, "status": status, "response": response,
        });
        self.fault_control("POST", rule.to_string()).await;
    }

    /// Answers a seeded `share` of `service`'s `operation` ("*": any) requests with `fault`
    /// (`throttle`, `500`, `503`, `drop`, `lost`, `slow`) as the service does (see `tests/moto_server.py`).
    pub async fn inject_fault(&self, service: &str, operation: &str, share: f64, seed: u64, fault: &str) {
        let rule = serde_json::json!({
            "service": service, "operation": operation, "share": share, "seed": seed, "fault": fault,
        });
        self.fault_control("POST", rule.to_string()).await;
    }

    /// Adds one fault rule as `tests/moto_server.py` reads it (e.g. a `lost` fault, or a counting
    /// rule of share 0 after the others).
    pub async fn fault_rule(&self, rule: serde_json::Value) {
        self.fault_control("POST", rule.to_string()).await;
    }

    /// Each fault rule with how many requests it saw and how many it failed.
    pub async fn faults(&self) -> serde_json::Value {
        self.fault_control("GET", String::new()).await
    }

    /// GetMetricData as CloudWatch bills it, counted at the server since it started (or since
    /// [`Moto::clear_metrics_requested`]): `(calls, metrics requested)`.
    pub async fn metrics_requested(&self) -> (u64, u64) {
        let v = self.control("cloudwatch", "GET", String::new()).await;
        (
            v["get_metric_data"].as_u64().unwrap_or(0),
            v["metrics_requested"].as_u64().unwrap_or(0),
        )
    }

    /// Starts the GetMetricData count again.
    pub async fn clear_metrics_requested(&self) {
        self.control("cloudwatch", "DELETE", String::new()).await;
    }

    /// Removes every fault rule.
    pub async fn clear_faults(&self) {
        self.fault_control("DELETE", String::new()).await;
    }

    async fn fault_control(&self, method: &str, body: String) -> serde_json::Value {
        self.control("faults", method, body).await
    }

    /// One of the harness's own endpoints in `tests/moto_server.py` (`/_finops/<what>`).
    async fn control(&self, what: &str, method: &str, body: String) -> serde_json::Value {
        let http = remediation::http::HttpClient::new(std::time::Duration::from_secs(10)).expect("http");
        let r = http
            .send(
                "moto",
                method,
                &format!("{}/_finops/{what}", self.endpoint()),
                &[("content-type", "application/json")],
                body.into_bytes(),
            )
            .await
            .unwrap_or_else(|e| panic!("moto's {what} control: {e}"));
        assert_eq!(r.status, 200, "/_finops/{what}: {}", r.body);
        serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("/_finops/{what} answered no JSON ({e}): {}", r.body))
    }

    /// Every function of `infra/template.yaml` as `stack` deploys it, resolved by the harness
    /// (`tests/aws_template.py`): `{"<binary>": {"deployed", "statements", "environment",
    /// "reserved_concurrency", "timeout", "memory", "events"}}`.
    pub async fn template(&self, stack: &Stack) -> serde_json::Value {
        let ask = serde_json::json!({"parameters": stack.parameters, "physical": stack.physical()});
        self.control("template", "POST", ask.to_string()).await
    }

    /// An SDK configuration whose requests this server authorises as `function`'s role in the
    /// template, resolved for `stack` (`tests/aws_iam.py`: actions, resources and conditions, as
    /// AWS evaluates them); a call outside it is refused as AWS refuses it. Each call registers
    /// a fresh access key, so two roles never share one.
    pub async fn sdk_config_as(&self, function: &str, stack: &Stack) -> SdkConfig {
        let key = self.role_key(function, stack).await;
        aws_config::defaults(BehaviorVersion::latest())
            .endpoint_url(self.endpoint())
            .region(Region::new("us-east-1"))
            .credentials_provider(aws_sdk_ec2::config::Credentials::new(
                key,
                "role-secret",
                None,
                None,
                "template-role",
            ))
            .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(3))
            .load()
            .await
    }

    /// A fresh access key whose requests this server authorises as `function`'s role in the
    /// template, resolved for `stack` (for a binary's `AWS_ACCESS_KEY_ID`).
    pub async fn role_key(&self, function: &str, stack: &Stack) -> String {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let key = format!("AKIAROLE{}{n:04}", function.to_ascii_uppercase().replace('-', ""));
        // A function deployed only with its feature on runs as that deployment's role.
        let mut stack = stack.clone();
        if function == "jira-sync" {
            stack.parameters.insert("EnableJira".into(), "true".into());
        }
        if function == "org-fanout" && !stack.parameters.contains_key("EnableOrganization") {
            stack.organisation(self).await;
        }
        let ask = serde_json::json!({
            "access_key": key, "function": function,
            "parameters": stack.parameters, "physical": stack.physical(),
        });
        self.control("iam", "POST", ask.to_string()).await;
        key
    }

    /// The system's clients as `function`'s template role (see [`Moto::sdk_config_as`]).
    pub async fn clients_as(&self, function: &str, stack: &Stack) -> Clients {
        match Clients::from_config(&self.sdk_config_as(function, stack).await) {
            Ok(c) => c,
            Err(e) => panic!("the moto SDK config always has a region: {e}"),
        }
    }

    /// Every request a template role was refused so far: `[{"principal", "action", "resource", "why"}]`.
    pub async fn iam_refusals(&self) -> Vec<serde_json::Value> {
        let v = self.control("iam", "GET", String::new()).await;
        v["refusals"].as_array().cloned().unwrap_or_default()
    }

    /// Empties every service of the emulated account.
    pub fn reset(&self) -> Result<(), String> {
        let r = http(self.port, "POST", "/moto-api/reset", "")?;
        if r.starts_with("HTTP/1.1 200") {
            Ok(())
        } else {
            Err(format!("reset answered {}", r.lines().next().unwrap_or_default()))
        }
    }

    /// SDK configuration pointing every client at this server (dummy credentials, us-east-1).
    /// `max_attempts` 1 turns the SDK's retries off.
    pub async fn sdk_config_with_attempts(&self, max_attempts: u32) -> SdkConfig {
        sdk_config_for(&self.endpoint(), max_attempts).await
    }

    /// SDK configuration with the SDK's standard retries.
    pub async fn sdk_config(&self) -> SdkConfig {
        self.sdk_config_with_attempts(3).await
    }

    /// The system's clients, pointed at this server.
    pub async fn clients(&self) -> Clients {
        match Clients::from_config(&self.sdk_config().await) {
            Ok(c) => c,
            Err(e) => panic!("the moto SDK config always has a region: {e}"),
        }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where the template's resources are in a test: what `Ref` and `Fn::GetAtt` of each resolve to,
/// and the stack's parameters (the rest at their defaults).
#[derive(Debug, Clone)]
pub struct Stack {
    /// The state table's name.
    pub table: String,
    /// The topic's ARN.
    pub topic: String,
    /// The topic's customer managed key (its ARN).
    pub topic_key_arn: String,
    /// The secret's ARN (the `SecretArn` parameter).
    pub secret_arn: String,
    /// The link secret's ARN.
    pub link_secret_arn: String,
    /// The report-link secret's ARN.
    pub report_link_secret_arn: String,
    /// The approval function's decision secret's ARN.
    pub decision_secret_arn: String,
    /// The approval function's URL.
    pub approval_url: String,
    /// The savings reports' bucket.
    pub report_bucket: String,
    /// The fan-out's bucket.
    pub results_bucket: String,
    /// Parameters other than their defaults (`SecretArn` is set from `secret_arn`).
    pub parameters: std::collections::BTreeMap<String, String>,
}

impl Default for Stack {
    fn default() -> Self {
        Stack {
            table: "finops-state".into(),
            // The topic the tests' seeders make (`seed::topic_with_queue(.., "finops")`).
            topic: "arn:aws:sns:us-east-1:123456789012:finops".into(),
            topic_key_arn: "arn:aws:kms:us-east-1:123456789012:key/00000000-0000-0000-0000-000000000000".into(),
            secret_arn: "arn:aws:secretsmanager:us-east-1:123456789012:secret:finops-AbCdEf".into(),
            link_secret_arn: "arn:aws:secretsmanager:us-east-1:123456789012:secret:finops/approval-links-AbCdEf".into(),
            report_link_secret_arn: "arn:aws:secretsmanager:us-east-1:123456789012:secret:finops/report-links-AbCdEf"
                .into(),
            decision_secret_arn: "arn:aws:secretsmanager:us-east-1:123456789012:secret:finops/decisions-AbCdEf".into(),
            approval_url: "http://127.0.0.1:9/".into(),
            report_bucket: "finops-reports".into(),
            results_bucket: "finops-fanout-results".into(),
            parameters: Default::default(),
        }
    }
}

impl Stack {
    /// The stack with its table and topic named so.
    pub fn with(table: Option<&str>, topic: Option<&str>) -> Stack {
        let mut s = Stack::default();
        if let Some(t) = table {
            s.table = t.into();
        }
        if let Some(t) = topic {
            s.topic = t.into();
        }
        s
    }

    /// Organisation mode (`EnableOrganization`), in the organisation moto holds: its id is left
    /// empty here and the harness (`tests/aws_iam.py`) resolves the roles with the organisation
    /// moto holds when a request is made (a test may create it after the roles were made).
    pub async fn organisation(&mut self, _moto: &Moto) {
        self.parameters.insert("EnableOrganization".into(), "true".into());
        self.parameters.insert("OrganizationId".into(), String::new());
    }

    /// What `Ref` and `Fn::GetAtt` resolve to (`"Logical"` and `"Logical.Attr"`).
    pub fn physical(&self) -> serde_json::Value {
        let acct = "123456789012";
        serde_json::json!({
            "StateTable": self.table,
            "StateTable.Arn": format!("arn:aws:dynamodb:us-east-1:{acct}:table/{}", self.table),
            "Topic": self.topic,
            "TopicKey": self.topic_key_arn,
            "TopicKey.Arn": self.topic_key_arn,
            "LinkSecret": self.link_secret_arn,
            "ReportLinkSecret": self.report_link_secret_arn,
            "DecisionSecret": self.decision_secret_arn,
            "ApprovalFunctionUrl.FunctionUrl": self.approval_url,
            "ReportBucket": self.report_bucket,
            "ReportBucket.Arn": format!("arn:aws:s3:::{}", self.report_bucket),
            "ResultsBucket": self.results_bucket,
            "ResultsBucket.Arn": format!("arn:aws:s3:::{}", self.results_bucket),
            "DeadLetterQueue.Arn": format!("arn:aws:sqs:us-east-1:{acct}:finops-dlq"),
            "FanOutStateMachine": format!("arn:aws:states:us-east-1:{acct}:stateMachine:finops-fan-out"),
            "IdleEc2Function.Arn": format!("arn:aws:lambda:us-east-1:{acct}:function:idle-ec2"),
            "EbsCleanupFunction.Arn": format!("arn:aws:lambda:us-east-1:{acct}:function:ebs-cleanup"),
            "S3PublicFunction.Arn": format!("arn:aws:lambda:us-east-1:{acct}:function:s3-public"),
            "TagComplianceFunction.Arn": format!("arn:aws:lambda:us-east-1:{acct}:function:tag-compliance"),
            "RightsizingFunction.Arn": format!("arn:aws:lambda:us-east-1:{acct}:function:rightsizing"),
            "CostAlertFunction.Arn": format!("arn:aws:lambda:us-east-1:{acct}:function:cost-alert"),
        })
        .as_object()
        .map(|m| {
            let mut m = m.clone();
            m.insert("SecretArn".into(), self.secret_arn.clone().into());
            serde_json::Value::Object(m)
        })
        .unwrap_or_default()
    }
}

/// SDK configuration for the moto server at `endpoint` (us-east-1, its test credentials, up to
/// `max_attempts` tries per call).
pub async fn sdk_config_for(endpoint: &str, max_attempts: u32) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(aws_sdk_ec2::config::Credentials::new(
            "testing", "testing", None, None, "moto",
        ))
        .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(max_attempts))
        .load()
        .await
}

/// A minimal HTTP/1.1 request on loopback (moto's control API needs nothing more).
pub fn http(port: u16, method: &str, path: &str, body: &str) -> Result<String, String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect 127.0.0.1:{port}: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).map_err(|e| e.to_string())?;
    let mut response = String::new();
    stream.read_to_string(&mut response).map_err(|e| e.to_string())?;
    Ok(response)
}

//! A minimal HTTP/1.1 server on a free loopback port, for the services that have no emulator:
//! a Slack stand-in that records every request and answers from a script, and the approval
//! function served as its Function URL would be (each request becomes the Lambda event).

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// A request as received.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// Path and query, as sent.
    pub target: String,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub received: Instant,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }

    pub fn query(&self) -> &str {
        self.target.split_once('?').map(|(_, q)| q).unwrap_or("")
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// An answer.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub fate: Fate,
}

/// What becomes of an answer on the wire.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fate {
    /// Sent at once.
    Answer,
    /// Never sent: the connection is reset (RST) after the request was read.
    Reset,
    /// Sent after the delay (longer than the client waits, in the fault tests).
    Stall(std::time::Duration),
}

impl Response {
    pub fn new(status: u16, content_type: &str, body: impl Into<String>) -> Self {
        Response {
            status,
            headers: vec![("content-type".into(), content_type.into())],
            body: body.into(),
            fate: Fate::Answer,
        }
    }

    /// No answer at all: the request is read and the connection reset.
    pub fn reset() -> Self {
        Response {
            fate: Fate::Reset,
            ..Response::new(502, "text/plain", "")
        }
    }
}

type Handler = Arc<dyn Fn(Request) -> Pin<Box<dyn Future<Output = Response> + Send>> + Send + Sync>;

/// A running server; stops when dropped.
pub struct Server {
    pub port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Server {
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Serves `handler` on a free loopback port.
    pub async fn start(handler: Handler) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
        let port = listener.local_addr().expect("local addr").port();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let handler = handler.clone();
                tokio::spawn(async move {
                    let _ = serve_one(stream, handler).await;
                });
            }
        });
        Server { port, task }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        409 => "Conflict",
        410 => "Gone",
        415 => "Unsupported Media Type",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        _ => "Status",
    }
}

async fn serve_one(stream: tokio::net::TcpStream, handler: Handler) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let mut parts = line.split_whitespace();
        let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
            return Ok(());
        };
        let (method, target) = (method.to_string(), target.to_string());
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            reader.read_line(&mut h).await?;
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        let len: usize = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0u8; len];
        reader.read_exact(&mut body).await?;
        let close = headers
            .iter()
            .any(|(k, v)| k == "connection" && v.eq_ignore_ascii_case("close"));
        let req = Request {
            method,
            target,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
            received: Instant::now(),
        };
        let resp = handler(req).await;
        match resp.fate {
            Fate::Answer => {}
            Fate::Reset => {
                // Linger 0: closing sends RST, as a load balancer dropping the connection does (a
                // zero linger never blocks, which is what the deprecation warns of).
                #[allow(deprecated)]
                let _ = reader.get_ref().set_linger(Some(std::time::Duration::ZERO));
                return Ok(());
            }
            Fate::Stall(d) => tokio::time::sleep(d).await,
        }
        let mut out = format!("HTTP/1.1 {} {}\r\n", resp.status, reason(resp.status));
        for (k, v) in &resp.headers {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        out.push_str(&format!("content-length: {}\r\n\r\n", resp.body.len()));
        let stream = reader.get_mut();
        stream.write_all(out.as_bytes()).await?;
        stream.write_all(resp.body.as_bytes()).await?;
        stream.flush().await?;
        if close {
            return Ok(());
        }
    }
}

/// A Slack stand-in: records requests; answers each from the script (Slack did not post it), else
/// posts it (200 `ok`, or for the Web API `{"ok": true}`) — then, if a loss is queued, loses that
/// answer on the wire (the message is in the channel, the client never hears so).
#[derive(Clone, Default)]
pub struct SlackStandIn {
    pub requests: Arc<Mutex<Vec<Request>>>,
    pub script: Arc<Mutex<VecDeque<Response>>>,
    /// The messages that reached the channel.
    pub posted: Arc<Mutex<Vec<Request>>>,
    pub losses: Arc<Mutex<VecDeque<Fate>>>,
}

impl SlackStandIn {
    /// Starts it; webhook URL is `<url>/services/T000/B000/XXXX`, Web API base `<url>/api`.
    pub async fn start() -> (SlackStandIn, Server) {
        let me = SlackStandIn::default();
        let state = me.clone();
        let server = Server::start(Arc::new(move |req: Request| {
            let state = state.clone();
            Box::pin(async move {
                let api = req.path().starts_with("/api/");
                state.requests.lock().expect("lock").push(req.clone());
                if let Some(scripted) = state.script.lock().expect("lock").pop_front() {
                    return scripted;
                }
                // A webhook message without text or blocks is refused and not posted, as Slack
                // does (400 `no_text`; a body that is not JSON: `invalid_payload`).
                if !api {
                    match serde_json::from_str::<serde_json::Value>(&req.body) {
                        Err(_) => return Response::new(400, "text/plain", "invalid_payload"),
                        Ok(v) if v.get("text").is_none() && v.get("blocks").is_none() => {
                            return Response::new(400, "text/plain", "no_text")
                        }
                        Ok(_) => {}
                    }
                }
                state.posted.lock().expect("lock").push(req);
                let mut resp = if api {
                    Response::new(
                        200,
                        "application/json",
                        r#"{"ok":true,"channel":"C0FINOPS","ts":"1700000000.000100"}"#,
                    )
                } else {
                    Response::new(200, "text/plain", "ok")
                };
                if let Some(fate) = state.losses.lock().expect("lock").pop_front() {
                    resp.fate = fate;
                }
                resp
            })
        }))
        .await;
        (me, server)
    }

    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().expect("lock").clone()
    }

    /// The messages in the channel.
    pub fn posted(&self) -> Vec<Request> {
        self.posted.lock().expect("lock").clone()
    }

    pub fn answer_next(&self, r: Response) {
        self.script.lock().expect("lock").push_back(r);
    }

    /// The next message is posted, but its answer meets `fate`.
    pub fn lose_next_answer(&self, fate: Fate) {
        self.losses.lock().expect("lock").push_back(fate);
    }
}

/// Turns an HTTP request into a Lambda Function URL event (payload format 2.0).
pub fn function_url_event(req: &Request) -> serde_json::Value {
    // As Lambda's payload 2.0: cookies in `cookies`, not among the headers.
    let headers: serde_json::Map<String, serde_json::Value> = req
        .headers
        .iter()
        .filter(|(k, _)| !k.eq_ignore_ascii_case("cookie"))
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect();
    let cookies: Vec<String> = req
        .headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("cookie"))
        .flat_map(|(_, v)| v.split(';').map(|c| c.trim().to_string()).collect::<Vec<_>>())
        .filter(|c| !c.is_empty())
        .collect();
    serde_json::json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": req.path(),
        "rawQueryString": req.query(),
        "headers": headers,
        "requestContext": {
            "accountId": "anonymous",
            "apiId": "local",
            "domainName": "127.0.0.1",
            "http": {"method": req.method, "path": req.path(), "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": req.header("user-agent").unwrap_or("")},
            "requestId": "local",
            "stage": "$default",
            "time": "26/Nov/2026:08:00:00 +0000",
            "timeEpoch": 0
        },
        "body": req.body,
        "cookies": cookies,
        "isBase64Encoded": false
    })
}

/// Turns a Function URL response back into HTTP.
pub fn from_function_url_response(v: &serde_json::Value) -> Response {
    let status = v.get("statusCode").and_then(|s| s.as_u64()).unwrap_or(500) as u16;
    let headers = v
        .get("headers")
        .and_then(|h| h.as_object())
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                .collect()
        })
        .unwrap_or_default();
    let mut headers: Vec<(String, String)> = headers;
    // Lambda turns a response's `cookies` into Set-Cookie headers.
    for c in v.get("cookies").and_then(|c| c.as_array()).into_iter().flatten() {
        if let Some(c) = c.as_str() {
            headers.push(("set-cookie".to_string(), c.to_string()));
        }
    }
    Response {
        status,
        headers,
        body: v.get("body").and_then(|b| b.as_str()).unwrap_or("").to_string(),
        fate: Fate::Answer,
    }
}

/// An issue in the Jira stand-in.
#[derive(Debug, Clone)]
pub struct JiraIssue {
    pub key: String,
    /// The `fields` object it was created with.
    pub fields: serde_json::Value,
    /// Comment bodies (ADF documents), in order.
    pub comments: Vec<serde_json::Value>,
    /// `To Do` or `Done`.
    pub status: String,
}

/// A Jira Cloud stand-in (REST v3): checks Basic auth, the create-issue fields (known project,
/// issue type and priority, a summary of at most 255 characters, labels without spaces, an ADF
/// document as description), ADF comment bodies and transition ids, and answers with Jira's
/// status codes and error bodies. Scripted answers go first.
#[derive(Clone)]
pub struct JiraStandIn {
    pub requests: Arc<Mutex<Vec<Request>>>,
    pub script: Arc<Mutex<VecDeque<Response>>>,
    pub issues: Arc<Mutex<Vec<JiraIssue>>>,
    /// `Basic base64(email:token)` accepted.
    pub authorization: String,
    pub project: String,
    pub losses: Arc<Mutex<VecDeque<Fate>>>,
}

fn jira_error(status: u16, messages: &[&str], errors: serde_json::Value) -> Response {
    Response::new(
        status,
        "application/json;charset=UTF-8",
        serde_json::json!({"errorMessages": messages, "errors": errors}).to_string(),
    )
}

/// Whether `v` is an ADF document: `{"type": "doc", "version": 1, "content": [nodes with a type]}`.
pub fn is_adf_doc(v: &serde_json::Value) -> bool {
    v["type"] == "doc"
        && v["version"] == 1
        && v["content"]
            .as_array()
            .is_some_and(|c| c.iter().all(|n| n["type"].is_string()))
}

impl JiraStandIn {
    /// Starts it for project `project`, accepting `email` with `token`.
    pub async fn start(project: &str, email: &str, token: &str) -> (JiraStandIn, Server) {
        use base64::Engine;
        let me = JiraStandIn {
            requests: Arc::default(),
            script: Arc::default(),
            issues: Arc::default(),
            authorization: format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{email}:{token}"))
            ),
            project: project.to_string(),
            losses: Arc::default(),
        };
        let state = me.clone();
        let server = Server::start(Arc::new(move |req: Request| {
            let state = state.clone();
            Box::pin(async move {
                state.requests.lock().expect("lock").push(req.clone());
                if let Some(r) = state.script.lock().expect("lock").pop_front() {
                    return r;
                }
                let mut resp = state.answer(&req);
                if let Some(fate) = state.losses.lock().expect("lock").pop_front() {
                    resp.fate = fate;
                }
                resp
            })
        }))
        .await;
        (me, server)
    }

    fn answer(&self, req: &Request) -> Response {
        if req.header("authorization") != Some(self.authorization.as_str()) {
            return jira_error(
                401,
                &["You are not authenticated. Authentication required to perform this operation."],
                serde_json::json!({}),
            );
        }
        let path = req.path().to_string();
        let parts: Vec<&str> = path.trim_start_matches("/rest/api/3/").split('/').collect();
        let body = req.json();
        let mut issues = self.issues.lock().expect("lock");
        match (req.method.as_str(), parts.as_slice()) {
            ("POST", ["issue"]) => {
                if req
                    .header("content-type")
                    .is_none_or(|c| !c.starts_with("application/json"))
                {
                    return Response::new(415, "text/plain", "Unsupported Media Type");
                }
                let f = &body["fields"];
                let mut errors = serde_json::Map::new();
                if f["project"]["key"].as_str() != Some(self.project.as_str()) {
                    errors.insert("project".into(), "valid project is required".into());
                }
                if !["Task", "Bug", "Story"].contains(&f["issuetype"]["name"].as_str().unwrap_or("")) {
                    errors.insert("issuetype".into(), "Specify an issue type".into());
                }
                match f["summary"].as_str() {
                    Some(s) if !s.trim().is_empty() && s.chars().count() <= 255 => {}
                    Some(s) if s.chars().count() > 255 => {
                        errors.insert("summary".into(), "Summary must be less than 255 characters.".into());
                    }
                    _ => {
                        errors.insert("summary".into(), "You must specify a summary of the issue.".into());
                    }
                }
                if !is_adf_doc(&f["description"]) {
                    errors.insert(
                        "description".into(),
                        "Operation value must be an Atlassian Document (see the Atlassian Document Format)".into(),
                    );
                }
                if let Some(p) = f.get("priority") {
                    if !["Highest", "High", "Medium", "Low", "Lowest"].contains(&p["name"].as_str().unwrap_or("")) {
                        errors.insert(
                            "priority".into(),
                            "Specify the Priority (name) in the string format".into(),
                        );
                    }
                }
                if f["labels"]
                    .as_array()
                    .is_some_and(|l| l.iter().any(|x| x.as_str().is_none_or(|s| s.contains(' '))))
                {
                    errors.insert("labels".into(), "The label can't contain spaces.".into());
                }
                if !errors.is_empty() {
                    return jira_error(400, &[], serde_json::Value::Object(errors));
                }
                let n = issues.len() + 1;
                let key = format!("{}-{n}", self.project);
                issues.push(JiraIssue {
                    key: key.clone(),
                    fields: f.clone(),
                    comments: vec![],
                    status: "To Do".into(),
                });
                Response::new(
                    201,
                    "application/json;charset=UTF-8",
                    serde_json::json!({"id": (10000 + n).to_string(), "key": key, "self": format!("http://jira.local/rest/api/3/issue/{}", 10000 + n)}).to_string(),
                )
            }
            ("GET", ["search", "jql"]) => {
                // Enhanced search, for the one query the client makes:
                // `project = "P" AND labels = "L" ORDER BY created ASC`.
                let jql = form_urlencoded::parse(req.query().as_bytes())
                    .find(|(k, _)| k == "jql")
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default();
                let quoted = |field: &str| {
                    let start = jql.find(&format!("{field} = \""))? + field.len() + 4;
                    let len = jql[start..].find('"')?;
                    Some(jql[start..start + len].to_string())
                };
                let (Some(project), Some(label)) = (quoted("project"), quoted("labels")) else {
                    return jira_error(400, &[&format!("Error in the JQL Query: {jql}")], serde_json::json!({}));
                };
                let found: Vec<serde_json::Value> = issues
                    .iter()
                    .enumerate()
                    .filter(|(_, i)| i.key.starts_with(&format!("{project}-")))
                    .filter(|(_, i)| {
                        i.fields["labels"]
                            .as_array()
                            .is_some_and(|l| l.iter().any(|x| x.as_str() == Some(label.as_str())))
                    })
                    .map(|(n, i)| serde_json::json!({"id": (10001 + n).to_string(), "key": i.key}))
                    .take(1)
                    .collect();
                Response::new(
                    200,
                    "application/json;charset=UTF-8",
                    serde_json::json!({"issues": found, "isLast": true}).to_string(),
                )
            }
            (method, ["issue", key, what]) => {
                let Some(issue) = issues.iter_mut().find(|i| i.key == *key) else {
                    return jira_error(
                        404,
                        &["Issue does not exist or you do not have permission to see it."],
                        serde_json::json!({}),
                    );
                };
                match (method, *what) {
                    ("POST", "comment") => {
                        if !is_adf_doc(&body["body"]) {
                            return jira_error(400, &[], serde_json::json!({"comment": "Comment body is not valid!"}));
                        }
                        issue.comments.push(body["body"].clone());
                        let id = issue.comments.len() + 10000;
                        Response::new(
                            201,
                            "application/json;charset=UTF-8",
                            serde_json::json!({"id": id.to_string(), "body": body["body"]}).to_string(),
                        )
                    }
                    ("GET", "transitions") => {
                        let mut t = vec![
                            serde_json::json!({"id": "11", "name": "To Do", "to": {"name": "To Do", "statusCategory": {"key": "new"}}}),
                        ];
                        t.push(serde_json::json!({"id": "21", "name": "In Progress", "to": {"name": "In Progress", "statusCategory": {"key": "indeterminate"}}}));
                        if issue.status != "Done" {
                            t.push(serde_json::json!({"id": "31", "name": "Done", "to": {"name": "Done", "statusCategory": {"key": "done"}}}));
                        }
                        Response::new(
                            200,
                            "application/json;charset=UTF-8",
                            serde_json::json!({"expand": "transitions", "transitions": t}).to_string(),
                        )
                    }
                    ("POST", "transitions") => match body["transition"]["id"].as_str() {
                        Some("31") if issue.status != "Done" => {
                            issue.status = "Done".into();
                            Response::new(204, "application/json", "")
                        }
                        Some("11") | Some("21") => {
                            issue.status = "To Do".into();
                            Response::new(204, "application/json", "")
                        }
                        _ => jira_error(
                            400,
                            &["Transition id is not valid for this issue."],
                            serde_json::json!({}),
                        ),
                    },
                    _ => jira_error(404, &["Not found"], serde_json::json!({})),
                }
            }
            _ => jira_error(404, &["Not found"], serde_json::json!({})),
        }
    }

    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().expect("lock").clone()
    }

    pub fn issues(&self) -> Vec<JiraIssue> {
        self.issues.lock().expect("lock").clone()
    }

    /// The next request is carried out, but its answer meets `fate`.
    pub fn lose_next_answer(&self, fate: Fate) {
        self.losses.lock().expect("lock").push_back(fate);
    }

    pub fn answer_next(&self, r: Response) {
        self.script.lock().expect("lock").push_back(r);
    }
}

/// An Amazon Bedrock runtime stand-in (Converse): records requests and answers from the script,
/// as bedrock-runtime does (JSON bodies; errors with `x-amzn-ErrorType` and `{"message"}`).
#[derive(Clone, Default)]
pub struct BedrockStandIn {
    pub requests: Arc<Mutex<Vec<Request>>>,
    pub script: Arc<Mutex<VecDeque<Response>>>,
}

impl BedrockStandIn {
    pub async fn start() -> (BedrockStandIn, Server) {
        let me = BedrockStandIn::default();
        let state = me.clone();
        let server = Server::start(Arc::new(move |req: Request| {
            let state = state.clone();
            Box::pin(async move {
                state.requests.lock().expect("lock").push(req);
                state
                    .script
                    .lock()
                    .expect("lock")
                    .pop_front()
                    .unwrap_or_else(|| BedrockStandIn::error(500, "InternalServerException", "nothing scripted"))
            })
        }))
        .await;
        (me, server)
    }

    /// A Converse answer whose assistant message is `text`.
    pub fn answer(text: &str) -> Response {
        Response::new(
            200,
            "application/json",
            serde_json::json!({
                "output": {"message": {"role": "assistant", "content": [{"text": text}]}},
                "stopReason": "end_turn",
                "usage": {"inputTokens": 412, "outputTokens": 61, "totalTokens": 473},
                "metrics": {"latencyMs": 840}
            })
            .to_string(),
        )
    }

    /// An error as bedrock-runtime sends it.
    pub fn error(status: u16, kind: &str, message: &str) -> Response {
        let mut r = Response::new(
            status,
            "application/json",
            serde_json::json!({"message": message}).to_string(),
        );
        r.headers.push((
            "x-amzn-errortype".into(),
            format!("{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/"),
        ));
        r
    }

    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().expect("lock").clone()
    }

    pub fn answer_next(&self, r: Response) {
        self.script.lock().expect("lock").push_back(r);
    }
}

/// An AWS Price List API stand-in (`AWSPriceListService.GetProducts`, awsJson 1.1): checks each
/// request is signed for `pricing` in us-east-1 and well formed, filters its products by the
/// request's TERM_MATCH filters, pages by `MaxResults`/`NextToken`, and answers with the API's
/// shape: `PriceList` entries are JSON documents in strings. Errors as the API sends them.
#[derive(Clone, Default)]
pub struct PriceListStandIn {
    pub requests: Arc<Mutex<Vec<Request>>>,
    /// Every product (the `PriceList` document, before it is turned into a string).
    pub products: Arc<Mutex<Vec<serde_json::Value>>>,
    /// Answers to give before any product answer (an outage, throttling).
    pub script: Arc<Mutex<VecDeque<Response>>>,
}

impl PriceListStandIn {
    pub async fn start() -> (PriceListStandIn, Server) {
        let me = PriceListStandIn::default();
        let state = me.clone();
        let server = Server::start(Arc::new(move |req: Request| {
            let state = state.clone();
            Box::pin(async move {
                state.requests.lock().expect("lock").push(req.clone());
                if let Some(r) = state.script.lock().expect("lock").pop_front() {
                    return r;
                }
                state.answer(&req)
            })
        }))
        .await;
        (me, server)
    }

    /// An error as the Price List API sends it.
    pub fn error(status: u16, kind: &str, message: &str) -> Response {
        Response::new(
            status,
            "application/x-amz-json-1.1",
            serde_json::json!({"__type": format!("com.amazonaws.pricing#{kind}"), "Message": message}).to_string(),
        )
    }

    fn answer(&self, req: &Request) -> Response {
        let auth = req.header("authorization").unwrap_or_default();
        if !auth.starts_with("AWS4-HMAC-SHA256 Credential=") || !auth.contains("/us-east-1/pricing/aws4_request") {
            return Self::error(
                403,
                "AccessDeniedException",
                "the request is not signed for pricing in us-east-1",
            );
        }
        if req.method != "POST"
            || req.header("x-amz-target") != Some("AWSPriceListService.GetProducts")
            || req.header("content-type") != Some("application/x-amz-json-1.1")
        {
            return Self::error(400, "InvalidParameterException", "only GetProducts is served");
        }
        let body = req.json();
        let Some(service) = body["ServiceCode"].as_str().map(str::to_string) else {
            return Self::error(400, "InvalidParameterException", "ServiceCode is required");
        };
        if body["FormatVersion"] != "aws_v1" {
            return Self::error(400, "InvalidParameterException", "FormatVersion aws_v1");
        }
        // TERM_MATCH and CONTAINS are served; any other filter type is refused, not ignored.
        let mut filters: Vec<(String, String, bool)> = Vec::new();
        for f in body["Filters"].as_array().into_iter().flatten() {
            let (Some(field), Some(value)) = (f["Field"].as_str(), f["Value"].as_str()) else {
                return Self::error(400, "InvalidParameterException", "a filter needs Field and Value");
            };
            let contains = match f["Type"].as_str() {
                Some("TERM_MATCH") => false,
                Some("CONTAINS") => true,
                other => {
                    return Self::error(
                        400,
                        "InvalidParameterException",
                        &format!("filter type {other:?} is not served here"),
                    )
                }
            };
            filters.push((field.to_string(), value.to_string(), contains));
        }
        let max = body["MaxResults"].as_u64().unwrap_or(100).clamp(1, 100) as usize;
        let start: usize = match body["NextToken"].as_str() {
            None => 0,
            Some(t) => match t.strip_prefix("page-").and_then(|n| n.parse().ok()) {
                Some(n) => n,
                None => return Self::error(400, "InvalidNextTokenException", "The next token is invalid"),
            },
        };
        let matching: Vec<String> = self
            .products
            .lock()
            .expect("lock")
            .iter()
            .filter(|p| p["serviceCode"].as_str() == Some(service.as_str()))
            .filter(|p| {
                filters.iter().all(|(field, value, contains)| {
                    let attrs = &p["product"]["attributes"];
                    let have = if field == "productFamily" {
                        p["product"]["productFamily"].as_str()
                    } else {
                        attrs[field.as_str()].as_str()
                    };
                    have.is_some_and(|h| {
                        if *contains {
                            h.to_ascii_lowercase().contains(&value.to_ascii_lowercase())
                        } else {
                            h.eq_ignore_ascii_case(value)
                        }
                    })
                })
            })
            .map(|p| p.to_string())
            .collect();
        let page: Vec<&String> = matching.iter().skip(start).take(max).collect();
        let mut answer = serde_json::json!({"FormatVersion": "aws_v1", "PriceList": page});
        if start + max < matching.len() {
            answer["NextToken"] = serde_json::json!(format!("page-{}", start + max));
        }
        Response::new(200, "application/x-amz-json-1.1", answer.to_string())
    }

    /// Adds a price of what the autopilot uses (`service`'s `usage_type`, named as the region
    /// names it: `EU-CW:GMD-Metrics`) in `region`, by tier: `(begin_range, usd)`.
    pub fn service_price(&self, service: &str, region: &str, usage_type: &str, tiers: &[(u64, f64)]) {
        let sku = format!("SVC{}", self.products.lock().expect("lock").len());
        let dims: serde_json::Map<String, serde_json::Value> = tiers
            .iter()
            .enumerate()
            .map(|(i, (begin, usd))| {
                (
                    format!("{sku}.JRTCKXETXF.{i}"),
                    serde_json::json!({"unit": "Requests", "beginRange": begin.to_string(), "endRange": "Inf",
                        "pricePerUnit": {"USD": format!("{usd:.10}")}, "description": format!("{usage_type} tier {i}")}),
                )
            })
            .collect();
        self.products.lock().expect("lock").push(serde_json::json!({
            "product": {"productFamily": "API Request", "sku": sku, "attributes": {
                "regionCode": region, "servicecode": service, "usagetype": usage_type}},
            "serviceCode": service,
            "terms": {"OnDemand": {format!("{sku}.JRTCKXETXF"): {"priceDimensions": dims}}},
            "version": "20261201000000", "publicationDate": "2026-12-01T00:00:00Z"
        }));
    }

    /// The requests for `service`'s products.
    pub fn requests_for(&self, service: &str) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|r| r.json()["ServiceCode"] == service)
            .collect()
    }

    /// Adds an On-Demand Linux instance price (and, beside it, the same type's Windows and
    /// dedicated prices and a reserved term, which the filters and the On-Demand term must leave out).
    pub fn instance(&self, region: &str, instance_type: &str, usd_per_hour: f64) {
        let product = |os: &str, tenancy: &str, usd: f64, sku: &str| {
            serde_json::json!({
                "product": {"productFamily": "Compute Instance", "sku": sku, "attributes": {
                    "instanceType": instance_type, "regionCode": region, "operatingSystem": os, "tenancy": tenancy,
                    "preInstalledSw": "NA", "capacitystatus": "Used", "licenseModel": "No License required",
                    "servicecode": "AmazonEC2", "usagetype": format!("EU-BoxUsage:{instance_type}")}},
                "serviceCode": "AmazonEC2",
                "terms": {
                    "OnDemand": {format!("{sku}.JRTCKXETXF"): {"priceDimensions": {format!("{sku}.JRTCKXETXF.6YS6EN2CT7"): {
                        "unit": "Hrs", "pricePerUnit": {"USD": format!("{usd:.10}")},
                        "description": format!("${usd} per On Demand {os} {instance_type} Instance Hour")}}}},
                    "Reserved": {format!("{sku}.4NA7Y494T4"): {"priceDimensions": {format!("{sku}.4NA7Y494T4.6YS6EN2CT7"): {
                        "unit": "Hrs", "pricePerUnit": {"USD": format!("{:.10}", usd * 0.6)}}}}}
                },
                "version": "20261201000000", "publicationDate": "2026-12-01T00:00:00Z"
            })
        };
        let mut products = self.products.lock().expect("lock");
        let n = products.len();
        products.push(product("Linux", "Shared", usd_per_hour, &format!("SKU{n}L")));
        products.push(product("Windows", "Shared", usd_per_hour * 1.8, &format!("SKU{n}W")));
        products.push(product("Linux", "Dedicated", usd_per_hour * 1.1, &format!("SKU{n}D")));
    }

    /// Forgets every volume price (the API then lists none for EBS).
    pub fn clear_volumes(&self) {
        self.products
            .lock()
            .expect("lock")
            .retain(|p| p["product"]["productFamily"] != "Storage");
    }

    /// Adds an EBS storage price (USD per GB-month).
    pub fn volume(&self, region: &str, volume_api_name: &str, usd_per_gb_month: f64) {
        let n = self.products.lock().expect("lock").len();
        let sku = format!("SKU{n}V");
        self.products.lock().expect("lock").push(serde_json::json!({
            "product": {"productFamily": "Storage", "sku": sku, "attributes": {
                "regionCode": region, "volumeApiName": volume_api_name, "storageMedia": "SSD-backed", "servicecode": "AmazonEC2"}},
            "serviceCode": "AmazonEC2",
            "terms": {"OnDemand": {format!("{sku}.JRTCKXETXF"): {"priceDimensions": {format!("{sku}.JRTCKXETXF.6YS6EN2CT7"): {
                "unit": "GB-Mo", "pricePerUnit": {"USD": format!("{usd_per_gb_month:.10}")}}}}}},
            "version": "20261201000000", "publicationDate": "2026-12-01T00:00:00Z"
        }));
    }

    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().expect("lock").clone()
    }

    pub fn answer_next(&self, r: Response) {
        self.script.lock().expect("lock").push_back(r);
    }
}

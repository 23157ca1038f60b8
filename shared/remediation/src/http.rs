//! A small outbound HTTP(S) client for the services that are not AWS (Slack; later Jira): the
//! hyper 1 + rustls stack the SDK already uses, a timeout on every request, and the answer as
//! status, headers and body.

use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::error::{Error, Result};

/// An answer.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    /// A header's value (name case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The client; cheap to clone.
#[derive(Clone)]
pub struct HttpClient {
    inner: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
    timeout: Duration,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient").field("timeout", &self.timeout).finish()
    }
}

impl HttpClient {
    /// HTTPS with the system's roots (plain HTTP allowed, for local test servers). `timeout` bounds
    /// each request; connecting may take a third of it, so a timeout after that means the request
    /// was sent.
    pub fn new(timeout: Duration) -> Result<Self> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(connect_timeout(timeout)));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()
            .map_err(|e| Error::Config(format!("no TLS root certificates: {e}")))?
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        Ok(HttpClient {
            // No idle connections kept: a Lambda frozen between invocations wakes to pooled
            // connections the peer has closed, and a request written into one fails in a way
            // that cannot be told from "sent, not answered". A fresh connection per request
            // costs a handshake and keeps `Unanswered` for what may really have arrived.
            inner: Client::builder(TokioExecutor::new())
                .pool_max_idle_per_host(0)
                .build(https),
            timeout,
        })
    }

    /// Sends one request; `service` names the peer in errors. A failure before the request left
    /// (no connection) is [`Error::Http`]; one after it may have arrived (no answer in time, the
    /// connection cut mid-answer) is [`Error::Unanswered`], since the peer may have acted on it.
    pub async fn send(
        &self,
        service: &'static str,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<Response> {
        let unreachable = |message: String| Error::Http { service, message };
        let unanswered = |message: String| Error::Unanswered { service, message };
        let mut req = hyper::Request::builder().method(method).uri(url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| Error::Config(format!("bad {service} request to {url}: {e}")))?;
        let answer = tokio::time::timeout(self.timeout, async {
            let resp = self.inner.request(req).await.map_err(|e| {
                if e.is_connect() {
                    unreachable(format!("could not connect: {e}"))
                } else {
                    unanswered(format!("the connection failed after the request was sent: {e}"))
                }
            })?;
            let status = resp.status().as_u16();
            let headers = resp
                .headers()
                .iter()
                .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or_default().to_string()))
                .collect();
            let bytes = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| unanswered(format!("answer cut short: {e}")))?
                .to_bytes();
            Ok::<_, Error>(Response {
                status,
                headers,
                body: String::from_utf8_lossy(&bytes).into_owned(),
            })
        })
        .await
        .map_err(|_| unanswered(format!("no answer within {:.1} s", self.timeout.as_secs_f64())))??;
        Ok(answer)
    }
}

/// The share of a request's time that connecting may take: a third, at least 100 ms.
fn connect_timeout(timeout: Duration) -> Duration {
    (timeout / 3).max(Duration::from_millis(100))
}

/// How long to honour a service's 429 `Retry-After` inside one invocation.
#[derive(Debug, Clone, Copy)]
pub struct RetryAfter {
    /// Requests tried in all (a 429 within `max_wait` is tried again).
    pub attempts: u32,
    /// The longest wait honoured; a longer one fails (the invocation is then retried by Lambda).
    pub max_wait: Duration,
}

impl Default for RetryAfter {
    /// 3 tries, at most 20 s of waiting each.
    fn default() -> Self {
        RetryAfter {
            attempts: 3,
            max_wait: Duration::from_secs(20),
        }
    }
}

impl HttpClient {
    /// Sends a request and, while the service answers 429 with a `Retry-After` (seconds; 1 when
    /// absent) within `retry.max_wait`, waits and sends it again, at most `retry.attempts` times.
    /// Returns the first answer that is not a 429; a 429 that cannot be waited for is an
    /// [`Error::Http`] (retryable).
    pub async fn send_honouring_retry_after(
        &self,
        service: &'static str,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
        retry: RetryAfter,
    ) -> Result<Response> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let resp = self.send(service, method, url, headers, body.clone()).await?;
            if resp.status != 429 {
                return Ok(resp);
            }
            let wait = resp
                .header("retry-after")
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(1);
            if attempt >= retry.attempts || Duration::from_secs(wait) > retry.max_wait {
                return Err(Error::Http {
                    service,
                    message: format!("rate limited (Retry-After {wait} s) after {attempt} attempt(s)"),
                });
            }
            tracing::warn!(service, wait_seconds = wait, attempt, "asked to wait");
            tokio::time::sleep(Duration::from_secs(wait)).await;
        }
    }
}

/// The error for an answer that is not a success: 5xx retryable, anything else refused for good.
pub fn failure(service: &'static str, resp: &Response) -> Error {
    let message = format!(
        "HTTP {}: {}",
        resp.status,
        resp.body.chars().take(300).collect::<String>()
    );
    if resp.status >= 500 {
        Error::Http { service, message }
    } else {
        Error::Refused { service, message }
    }
}

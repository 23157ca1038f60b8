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
    /// HTTPS with the system's roots (plain HTTP allowed, for local test servers).
    pub fn new(timeout: Duration) -> Result<Self> {
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()
            .map_err(|e| Error::Config(format!("no TLS root certificates: {e}")))?
            .https_or_http()
            .enable_http1()
            .build();
        Ok(HttpClient {
            inner: Client::builder(TokioExecutor::new()).build(https),
            timeout,
        })
    }

    /// Sends one request; `service` names the peer in errors.
    pub async fn send(
        &self,
        service: &'static str,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<Response> {
        let unreachable = |message: String| Error::Http { service, message };
        let mut req = hyper::Request::builder().method(method).uri(url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| Error::Config(format!("bad {service} request to {url}: {e}")))?;
        let answer = tokio::time::timeout(self.timeout, async {
            let resp = self
                .inner
                .request(req)
                .await
                .map_err(|e| unreachable(format!("request failed: {e}")))?;
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
                .map_err(|e| unreachable(format!("answer cut short: {e}")))?
                .to_bytes();
            Ok::<_, Error>(Response {
                status,
                headers,
                body: String::from_utf8_lossy(&bytes).into_owned(),
            })
        })
        .await
        .map_err(|_| unreachable(format!("no answer within {} s", self.timeout.as_secs())))??;
        Ok(answer)
    }
}

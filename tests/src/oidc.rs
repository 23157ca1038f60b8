//! An OpenID Connect provider stand-in (no emulator exists): discovery, an authorize endpoint
//! that checks the request and signs in a scripted person, a token endpoint that checks client
//! authentication, the code, the redirect URI and the PKCE verifier, and answers with an RS256 ID
//! token signed by a real key (its JWKS served beside it). Errors are RFC 6749's.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::httpserver::{Request, Response, Server};

pub const CLIENT_ID: &str = "finops-approvals";
pub const CLIENT_SECRET: &str = "s3cret-of-the-finops-client";
const PROVIDER_KEY: &[u8] = include_bytes!("../fixtures/oidc/provider-key.der");
const PROVIDER_JWKS: &str = include_str!("../fixtures/oidc/provider-jwks.json");
const OTHER_KEY: &[u8] = include_bytes!("../fixtures/oidc/other-key.der");

/// A way the next ID token is wrong (what a hostile or broken provider, or a replay, would send).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tamper {
    /// Signed by a key that is not in the JWKS (with the JWKS key's id).
    OtherKey,
    WrongAudience,
    WrongIssuer,
    WrongNonce,
    Expired,
    NoEmail,
    EmailNotVerified,
}

#[derive(Debug, Clone)]
struct Grant {
    redirect_uri: String,
    challenge: String,
    nonce: String,
    email: String,
}

#[derive(Default)]
struct State {
    /// Who signs in at the next authorize requests (default ana@example.com).
    people: VecDeque<String>,
    codes: HashMap<String, Grant>,
    tamper: Option<Tamper>,
    issued: u32,
}

/// The stand-in; the server stops when dropped.
#[derive(Clone, Default)]
pub struct OidcStandIn {
    pub requests: Arc<Mutex<Vec<Request>>>,
    state: Arc<Mutex<State>>,
}

fn query(q: &str) -> HashMap<String, String> {
    form_urlencoded::parse(q.as_bytes()).into_owned().collect()
}

fn error(status: u16, code: &str, description: &str) -> Response {
    Response::new(
        status,
        "application/json",
        json!({"error": code, "error_description": description}).to_string(),
    )
}

impl OidcStandIn {
    pub async fn start() -> (OidcStandIn, Server) {
        let me = OidcStandIn::default();
        let issuer: Arc<Mutex<String>> = Arc::default();
        let (state, iss) = (me.clone(), issuer.clone());
        let server = Server::start(Arc::new(move |req: Request| {
            let (state, iss) = (state.clone(), iss.clone());
            Box::pin(async move {
                state.requests.lock().expect("lock").push(req.clone());
                let issuer = iss.lock().expect("lock").clone();
                state.answer(&req, &issuer)
            })
        }))
        .await;
        *issuer.lock().expect("lock") = server.url();
        (me, server)
    }

    /// The next sign-in is `email`'s.
    pub fn sign_in_as(&self, email: &str) {
        self.state.lock().expect("lock").people.push_back(email.to_string());
    }

    /// The next ID token is wrong in this way.
    pub fn tamper_next(&self, t: Tamper) {
        self.state.lock().expect("lock").tamper = Some(t);
    }

    /// ID tokens issued so far.
    pub fn issued(&self) -> u32 {
        self.state.lock().expect("lock").issued
    }

    fn answer(&self, req: &Request, issuer: &str) -> Response {
        match (req.method.as_str(), req.path()) {
            ("GET", "/.well-known/openid-configuration") => Response::new(
                200,
                "application/json",
                json!({
                    "issuer": issuer,
                    "authorization_endpoint": format!("{issuer}/authorize"),
                    "token_endpoint": format!("{issuer}/token"),
                    "jwks_uri": format!("{issuer}/jwks"),
                    "response_types_supported": ["code"],
                    "subject_types_supported": ["public"],
                    "id_token_signing_alg_values_supported": ["RS256"],
                    "code_challenge_methods_supported": ["S256"],
                    "token_endpoint_auth_methods_supported": ["client_secret_basic"]
                })
                .to_string(),
            ),
            ("GET", "/jwks") => Response::new(200, "application/json", PROVIDER_JWKS),
            ("GET", "/authorize") => self.authorize(&query(req.query())),
            ("POST", "/token") => self.token(req, issuer),
            _ => Response::new(404, "text/plain", "not found"),
        }
    }

    fn authorize(&self, q: &HashMap<String, String>) -> Response {
        let get = |k: &str| q.get(k).map(String::as_str).unwrap_or("");
        // Without a valid client and redirect URI the provider must not redirect (RFC 6749 4.1.2.1).
        if get("client_id") != CLIENT_ID || !get("redirect_uri").starts_with("http") {
            return Response::new(400, "text/plain", "unknown client or redirect_uri");
        }
        let redirect = |params: &[(&str, &str)]| {
            let mut s = form_urlencoded::Serializer::new(String::new());
            for (k, v) in params {
                s.append_pair(k, v);
            }
            let mut r = Response::new(302, "text/plain", "");
            r.headers
                .push(("location".into(), format!("{}?{}", get("redirect_uri"), s.finish())));
            r
        };
        let problems = [
            (get("response_type") != "code", "response_type must be code"),
            (
                !get("scope").split(' ').any(|s| s == "openid"),
                "scope must include openid",
            ),
            (get("state").len() < 32, "state missing or short"),
            (get("nonce").len() < 32, "nonce missing or short"),
            (get("code_challenge_method") != "S256", "PKCE S256 required"),
            (get("code_challenge").len() != 43, "code_challenge missing"),
        ];
        if let Some((_, why)) = problems.iter().find(|(bad, _)| *bad) {
            return redirect(&[
                ("error", "invalid_request"),
                ("error_description", why),
                ("state", get("state")),
            ]);
        }
        let mut st = self.state.lock().expect("lock");
        let email = st.people.pop_front().unwrap_or_else(|| "ana@example.com".into());
        let code = format!("code-{}-{}", st.codes.len() + 1, &get("state")[..8]);
        st.codes.insert(
            code.clone(),
            Grant {
                redirect_uri: get("redirect_uri").into(),
                challenge: get("code_challenge").into(),
                nonce: get("nonce").into(),
                email,
            },
        );
        drop(st);
        redirect(&[("code", &code), ("state", get("state"))])
    }

    fn token(&self, req: &Request, issuer: &str) -> Response {
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"));
        if req.header("authorization") != Some(&format!("Basic {basic}")) {
            return error(401, "invalid_client", "client authentication failed");
        }
        if !req
            .header("content-type")
            .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"))
        {
            return error(400, "invalid_request", "form body expected");
        }
        let f = query(&req.body);
        let get = |k: &str| f.get(k).map(String::as_str).unwrap_or("");
        if get("grant_type") != "authorization_code" {
            return error(400, "unsupported_grant_type", "only authorization_code");
        }
        let mut st = self.state.lock().expect("lock");
        // A code works once.
        let Some(grant) = st.codes.remove(get("code")) else {
            return error(400, "invalid_grant", "unknown or used code");
        };
        if grant.redirect_uri != get("redirect_uri") {
            return error(
                400,
                "invalid_grant",
                "redirect_uri differs from the authorize request's",
            );
        }
        let challenge =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(get("code_verifier").as_bytes()));
        if challenge != grant.challenge {
            return error(400, "invalid_grant", "PKCE verification failed");
        }
        let tamper = st.tamper.take();
        st.issued += 1;
        drop(st);
        let now = chrono::Utc::now().timestamp();
        let mut claims = json!({
            "iss": issuer,
            "sub": format!("user-{}", grant.email.split('@').next().unwrap_or("x")),
            "aud": CLIENT_ID,
            "iat": now,
            "exp": now + 300,
            "nonce": grant.nonce,
            "email": grant.email,
            "email_verified": true,
        });
        let mut key = PROVIDER_KEY;
        match tamper {
            Some(Tamper::OtherKey) => key = OTHER_KEY,
            Some(Tamper::WrongAudience) => claims["aud"] = json!("someone-else"),
            Some(Tamper::WrongIssuer) => claims["iss"] = json!("https://evil.example"),
            Some(Tamper::WrongNonce) => claims["nonce"] = json!("not-the-nonce-sent"),
            Some(Tamper::Expired) => {
                claims["iat"] = json!(now - 7200);
                claims["exp"] = json!(now - 3600);
            }
            Some(Tamper::NoEmail) => {
                if let Some(o) = claims.as_object_mut() {
                    o.remove("email");
                }
            }
            Some(Tamper::EmailNotVerified) => claims["email_verified"] = json!(false),
            None => {}
        }
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some("provider-key-1".into());
        let id_token = match jsonwebtoken::encode(&header, &claims, &EncodingKey::from_rsa_der(key)) {
            Ok(t) => t,
            Err(e) => return error(500, "server_error", &e.to_string()),
        };
        Response::new(
            200,
            "application/json",
            json!({"access_token": "at-opaque", "token_type": "Bearer", "expires_in": 3600, "id_token": id_token})
                .to_string(),
        )
    }
}

/// The `value` of the first `name="session"` input of a page (the signed-in confirmation).
pub fn form_session(page: &str) -> Option<String> {
    let at = page.find("name=\"session\" value=\"")? + "name=\"session\" value=\"".len();
    let rest = &page[at..];
    Some(rest[..rest.find('"')?].to_string())
}

/// The hidden `shown` field of a rollback page's form (the digest of the record it shows).
pub fn form_shown(page: &str) -> Option<String> {
    let at = page.find("name=\"shown\" value=\"")? + "name=\"shown\" value=\"".len();
    let rest = &page[at..];
    Some(rest[..rest.find('"')?].to_string())
}

/// The `href` of the element with `id`.
pub fn href_of(page: &str, id: &str) -> Option<String> {
    let at = page.find(&format!("id=\"{id}\""))?;
    let tag_start = page[..at].rfind('<')?;
    let tag = &page[tag_start..at + page[at..].find('>')?];
    let h = tag.find("href=\"")? + 6;
    let href = &tag[h..];
    Some(href[..href.find('"')?].replace("&amp;", "&"))
}

/// Parses a JSON body.
pub fn json_of(r: &Response) -> Value {
    serde_json::from_str(&r.body).unwrap_or(Value::Null)
}

//! Sign-in through the organisation's identity provider on the confirmation page: OpenID Connect,
//! authorization code with PKCE (S256). The provider's metadata comes from its discovery document;
//! the ID token is verified with `jsonwebtoken` against the provider's JWKS: signature, issuer,
//! audience, expiry and the nonce this sign-in sent. Only then is its `email` an identity.

use std::sync::Mutex;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::http::HttpClient;
use crate::identity::Approver;
use crate::policy::OidcPolicy;

/// The algorithms an ID token may be signed with (asymmetric only: never `none`, never HMAC
/// with a key the client knows).
const ALGORITHMS: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::ES256,
    Algorithm::ES384,
];

/// Clock skew allowed on `exp`, `nbf` and `iat`, in seconds.
const LEEWAY_SECONDS: u64 = 60;

/// The discovery document's fields this client uses.
#[derive(Debug, Clone, Deserialize)]
pub struct Discovery {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
}

/// A configured provider.
pub struct Provider {
    pub client_id: String,
    /// Refuse an ID token that does not say `email_verified: true` (the policy may waive it for
    /// a provider that never sends the claim and whose addresses it trusts).
    email_verified_required: bool,
    client_secret: String,
    pub discovery: Discovery,
    http: HttpClient,
    keys: Mutex<Option<JwkSet>>,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider")
            .field("issuer", &self.discovery.issuer)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// A fresh random value (32 bytes, base64url): state, nonce, PKCE verifier.
pub fn random() -> Result<String> {
    let mut buf = [0u8; 32];
    getrandom::getrandom(&mut buf).map_err(|e| Error::Config(format!("no system randomness: {e}")))?;
    Ok(URL_SAFE_NO_PAD.encode(buf))
}

/// The PKCE S256 challenge of `verifier`.
pub fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

#[derive(Debug, Deserialize)]
struct IdClaims {
    sub: String,
    #[serde(default)]
    email: Option<String>,
    /// A boolean, or (some providers) the string "true".
    #[serde(default)]
    email_verified: Option<serde_json::Value>,
    #[serde(default)]
    nonce: Option<String>,
    #[serde(default)]
    azp: Option<String>,
    #[serde(default)]
    aud: serde_json::Value,
}

fn bad(message: impl Into<String>) -> Error {
    Error::Refused {
        service: "oidc",
        message: message.into(),
    }
}

impl Provider {
    /// Reads the provider's discovery document; its `issuer` must be the configured one.
    pub async fn discover(http: HttpClient, policy: &OidcPolicy, client_secret: String) -> Result<Provider> {
        let issuer = policy.issuer.trim_end_matches('/');
        let url = format!("{issuer}/.well-known/openid-configuration");
        let resp = http
            .send("oidc", "GET", &url, &[("accept", "application/json")], Vec::new())
            .await?;
        if resp.status != 200 {
            return Err(crate::http::failure("oidc", &resp));
        }
        let discovery: Discovery = serde_json::from_str(&resp.body)
            .map_err(|e| bad(format!("the discovery document at {url} is not usable: {e}")))?;
        if discovery.issuer.trim_end_matches('/') != issuer {
            return Err(bad(format!(
                "the discovery document names issuer {:?}, not the configured {issuer:?}",
                discovery.issuer
            )));
        }
        Ok(Provider {
            email_verified_required: policy.email_verified_required,
            client_id: policy.client_id.clone(),
            client_secret,
            discovery,
            http,
            keys: Mutex::new(None),
        })
    }

    /// Where the person's browser is sent to sign in.
    pub fn authorize_url(&self, redirect_uri: &str, state: &str, nonce: &str, verifier: &str) -> String {
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("scope", "openid email")
            .append_pair("state", state)
            .append_pair("nonce", nonce)
            .append_pair("code_challenge", &challenge(verifier))
            .append_pair("code_challenge_method", "S256")
            .finish();
        let sep = if self.discovery.authorization_endpoint.contains('?') {
            '&'
        } else {
            '?'
        };
        format!("{}{sep}{query}", self.discovery.authorization_endpoint)
    }

    /// Exchanges the authorization code for the ID token (client_secret_basic).
    pub async fn exchange(&self, code: &str, redirect_uri: &str, verifier: &str) -> Result<String> {
        let body = form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "authorization_code")
            .append_pair("code", code)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("code_verifier", verifier)
            .finish();
        // RFC 6749 2.3.1: the id and secret are form-encoded before the Basic encoding.
        let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let basic = base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            enc(&self.client_id),
            enc(&self.client_secret)
        ));
        let auth = format!("Basic {basic}");
        let resp = self
            .http
            .send(
                "oidc",
                "POST",
                &self.discovery.token_endpoint,
                &[
                    ("content-type", "application/x-www-form-urlencoded"),
                    ("accept", "application/json"),
                    ("authorization", &auth),
                ],
                body.into_bytes(),
            )
            .await?;
        let v: serde_json::Value = serde_json::from_str(&resp.body).unwrap_or(serde_json::Value::Null);
        if resp.status != 200 {
            // RFC 6749 5.2: {"error": "invalid_grant", "error_description": ...}
            let error = v.get("error").and_then(|e| e.as_str()).unwrap_or("unknown error");
            return Err(bad(format!(
                "the token endpoint refused the code ({} {error})",
                resp.status
            )));
        }
        v.get("id_token")
            .and_then(|t| t.as_str())
            .map(str::to_string)
            .ok_or_else(|| bad("the token endpoint answered without an id_token"))
    }

    async fn fetch_keys(&self) -> Result<JwkSet> {
        let resp = self
            .http
            .send(
                "oidc",
                "GET",
                &self.discovery.jwks_uri,
                &[("accept", "application/json")],
                Vec::new(),
            )
            .await?;
        if resp.status != 200 {
            return Err(crate::http::failure("oidc", &resp));
        }
        serde_json::from_str(&resp.body).map_err(|e| bad(format!("the provider's JWKS is not usable: {e}")))
    }

    /// The key `kid` names, from the cached JWKS or (a key not seen yet: rotated) a fresh one.
    async fn key(&self, kid: Option<&str>) -> Result<DecodingKey> {
        let find = |set: &JwkSet| match kid {
            Some(kid) => set.find(kid).cloned(),
            None if set.keys.len() == 1 => set.keys.first().cloned(),
            None => None,
        };
        let cached = self.keys.lock().ok().and_then(|k| k.as_ref().and_then(find));
        let jwk = match cached {
            Some(jwk) => jwk,
            None => {
                let set = self.fetch_keys().await?;
                let found = find(&set);
                if let Ok(mut k) = self.keys.lock() {
                    *k = Some(set);
                }
                found.ok_or_else(|| bad(format!("the ID token's key {kid:?} is not in the provider's JWKS")))?
            }
        };
        DecodingKey::from_jwk(&jwk).map_err(|e| bad(format!("the provider's key cannot be used: {e}")))
    }

    /// Verifies `id_token` (signature by the provider's key, issuer, audience, expiry, the nonce
    /// sent) and returns the person it proves.
    pub async fn verify(&self, id_token: &str, nonce: &str, now: DateTime<Utc>) -> Result<Approver> {
        let header =
            jsonwebtoken::decode_header(id_token).map_err(|e| bad(format!("the ID token is malformed: {e}")))?;
        if !ALGORITHMS.contains(&header.alg) {
            return Err(bad(format!(
                "the ID token is signed with {:?}, which is not accepted",
                header.alg
            )));
        }
        let key = self.key(header.kid.as_deref()).await?;
        let mut validation = Validation::new(header.alg);
        validation.algorithms = vec![header.alg];
        validation.set_issuer(&[&self.discovery.issuer]);
        validation.set_audience(&[&self.client_id]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        validation.leeway = LEEWAY_SECONDS;
        // `exp` is checked against this function's clock (tests move it), not the library's.
        validation.validate_exp = false;
        let data = jsonwebtoken::decode::<serde_json::Value>(id_token, &key, &validation)
            .map_err(|e| bad(format!("the ID token does not verify: {e}")))?;
        let exp = data.claims.get("exp").and_then(serde_json::Value::as_i64).unwrap_or(0);
        if exp + LEEWAY_SECONDS as i64 <= now.timestamp() {
            return Err(bad("the ID token has expired"));
        }
        let claims: IdClaims = serde_json::from_value(data.claims)
            .map_err(|e| bad(format!("the ID token's claims are not usable: {e}")))?;
        if claims.nonce.as_deref() != Some(nonce) {
            return Err(bad("the ID token's nonce is not this sign-in's"));
        }
        // OpenID Connect Core 3.1.3.7: with several audiences, the authorised party must be us.
        if claims.aud.as_array().is_some_and(|a| a.len() > 1) && claims.azp.as_deref() != Some(self.client_id.as_str())
        {
            return Err(bad(
                "the ID token is for several audiences and not authorised for this client",
            ));
        }
        let email = claims.email.filter(|e| e.contains('@')).ok_or_else(|| {
            bad(format!(
                "the ID token of {} carries no email (ask for the email scope)",
                claims.sub
            ))
        })?;
        let verified = match &claims.email_verified {
            Some(serde_json::Value::Bool(b)) => Some(*b),
            Some(serde_json::Value::String(s)) => Some(s.eq_ignore_ascii_case("true")),
            _ => None,
        };
        match verified {
            Some(true) => {}
            None if !self.email_verified_required => {}
            _ => return Err(bad(format!("the provider does not say that {email} is verified"))),
        }
        Ok(Approver::SignedIn {
            email,
            issuer: self.discovery.issuer.clone(),
            subject: claims.sub,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pkce_challenge_is_base64url_of_sha256() {
        // Computed independently (Python's hashlib and base64).
        assert_eq!(
            challenge("dBjftJeZ4CVP-mJ92K1RGqdKYV0wF8tfRxrJ8z9j4Rd"),
            "aQOAeK_GERSi8Nnt1-agCQlb0nQsZ3vd2J1xJkxpwDw"
        );
    }

    #[test]
    fn random_values_are_long_and_different() {
        let (a, b) = (random().unwrap(), random().unwrap());
        assert_eq!(a.len(), 43);
        assert_ne!(a, b);
    }
}

//! Signed approval links. A token carries the request id, the decision and an expiry, signed with
//! HMAC-SHA256; a GET of the link only shows a confirmation page (issue: approvals), the POST decides.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::error::{Error, Result};

/// What a link asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Decision {
    Approve,
    Reject,
    /// Undo an executed action (the token's id is the action id).
    Rollback,
}

impl Decision {
    /// The spelling in pages and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Approve => "approve",
            Decision::Reject => "reject",
            Decision::Rollback => "roll back",
        }
    }
}

/// What a token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The approval request id.
    pub rid: String,
    /// The decision.
    pub d: Decision,
    /// Expiry, epoch seconds.
    pub exp: i64,
}

/// What a Snooze button says: leave the resource of finding `fid` alone for `days` days. Signed
/// apart from decisions (its MAC covers a domain of its own, and its fields are not a decision's),
/// so neither kind of token is ever taken for the other.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnoozeClaims {
    /// The finding id (its account and region).
    pub fid: String,
    /// The resource the snooze is for (the finding's resource id: a finding id may name more, as
    /// tag-compliance's `…:<instance>:stop` does).
    pub res: String,
    pub days: u32,
    /// Expiry of the button, epoch seconds.
    pub exp: i64,
}

/// What a weekly report's link says: the report stored under `key`, readable until `exp`. Signed
/// apart from decisions and snoozes (a domain of its own, fields of its own).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportClaims {
    /// The report's object key in the report bucket.
    pub key: String,
    /// Expiry of the link, epoch seconds.
    pub exp: i64,
}

const REPORT_DOMAIN: &[u8] = b"finops-report\n";

/// The lengths a snooze may have (the Slack control's choices).
pub const SNOOZE_DAYS: [u32; 3] = [7, 30, 90];

const SNOOZE_DOMAIN: &[u8] = b"finops-snooze\n";

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("malformed token")]
    Malformed,
    #[error("bad signature")]
    BadSignature,
    #[error("token expired")]
    Expired,
}

/// Signs and checks approval tokens and builds links to the approval function.
#[derive(Clone)]
pub struct LinkSigner {
    key: Vec<u8>,
    /// A key whose links are still accepted (never used to sign) until an instant: a key
    /// replaced on upgrade, for links that expire by then.
    previous: Option<(Vec<u8>, DateTime<Utc>)>,
    base_url: String,
}

impl std::fmt::Debug for LinkSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkSigner")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

type HmacSha256 = Hmac<Sha256>;

fn mac_with(key: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length; this cannot fail.
    match HmacSha256::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    }
}

impl LinkSigner {
    /// A signer with `key` (at least 32 bytes) for links to `base_url` (the approval Function URL).
    pub fn new(key: impl Into<Vec<u8>>, base_url: impl Into<String>) -> Result<Self> {
        let key = key.into();
        if key.len() < 32 {
            return Err(Error::Config("the link-signing key must be at least 32 bytes".into()));
        }
        Ok(LinkSigner {
            key,
            previous: None,
            base_url: base_url.into().trim_end_matches('/').to_string(),
        })
    }

    /// Also accepts, until `until`, links signed with `key` (a key this one replaced) that expire
    /// by then; signs with the new one only.
    pub fn accepting(mut self, key: impl Into<Vec<u8>>, until: DateTime<Utc>) -> Self {
        let key = key.into();
        if key.len() >= 32 && key != self.key {
            self.previous = Some((key, until));
        }
        self
    }

    /// The approval function's URL the links point at.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    fn mac(&self) -> HmacSha256 {
        mac_with(&self.key)
    }

    /// A signed token for a decision on a request. It proves nothing about who follows it.
    pub fn token(&self, request_id: &str, decision: Decision, expires_at: DateTime<Utc>) -> String {
        self.sign(&Claims {
            rid: request_id.to_string(),
            d: decision,
            exp: expires_at.timestamp(),
        })
    }

    fn sign(&self, claims: &Claims) -> String {
        self.sign_in_domain(claims, b"")
    }

    fn sign_in_domain<T: Serialize>(&self, claims: &T, domain: &[u8]) -> String {
        // Serialising these structs of strings and numbers cannot fail.
        let payload = serde_json::to_vec(claims).unwrap_or_default();
        let mut mac = self.mac();
        mac.update(domain);
        mac.update(&payload);
        let sig = mac.finalize().into_bytes();
        format!("{}.{}", URL_SAFE_NO_PAD.encode(&payload), URL_SAFE_NO_PAD.encode(sig))
    }

    /// A signed Snooze button: the resource of `finding_id` left alone for `days` days, usable
    /// until `expires_at`.
    pub fn snooze_token(&self, finding_id: &str, resource_id: &str, days: u32, expires_at: DateTime<Utc>) -> String {
        self.sign_in_domain(
            &SnoozeClaims {
                fid: finding_id.to_string(),
                res: resource_id.to_string(),
                days,
                exp: expires_at.timestamp(),
            },
            SNOOZE_DOMAIN,
        )
    }

    /// Checks a Snooze button's signature (in constant time) and expiry.
    pub fn verify_snooze(&self, token: &str, now: DateTime<Utc>) -> std::result::Result<SnoozeClaims, TokenError> {
        let claims: SnoozeClaims = self.verified_in_domain(token, now, SNOOZE_DOMAIN, |c: &SnoozeClaims| c.exp)?;
        Ok(claims)
    }

    /// A link to the weekly report stored under `key`, served by the approval function until
    /// `expires_at` (a link of our own: an S3 URL presigned with a Lambda role's credentials dies
    /// with the role's session, hours later, whatever lifetime it asks for).
    pub fn report_link(&self, key: &str, expires_at: DateTime<Utc>) -> String {
        let token = self.sign_in_domain(
            &ReportClaims {
                key: key.to_string(),
                exp: expires_at.timestamp(),
            },
            REPORT_DOMAIN,
        );
        format!("{}/report?token={token}", self.base_url)
    }

    /// Checks a report link's token (in constant time) and expiry: the report's key.
    pub fn verify_report(&self, token: &str, now: DateTime<Utc>) -> std::result::Result<ReportClaims, TokenError> {
        self.verified_in_domain(token, now, REPORT_DOMAIN, |c: &ReportClaims| c.exp)
    }

    /// The link a human follows.
    pub fn link(&self, request_id: &str, decision: Decision, expires_at: DateTime<Utc>) -> String {
        format!(
            "{}/decide?token={}",
            self.base_url,
            self.token(request_id, decision, expires_at)
        )
    }

    /// Checks signature (in constant time) and expiry.
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> std::result::Result<Claims, TokenError> {
        self.verified_in_domain(token, now, b"", |c: &Claims| c.exp)
    }

    fn verified_in_domain<T: serde::de::DeserializeOwned>(
        &self,
        token: &str,
        now: DateTime<Utc>,
        domain: &[u8],
        exp: impl Fn(&T) -> i64,
    ) -> std::result::Result<T, TokenError> {
        let (payload, sig) = token.split_once('.').ok_or(TokenError::Malformed)?;
        let payload = URL_SAFE_NO_PAD.decode(payload).map_err(|_| TokenError::Malformed)?;
        let sig = URL_SAFE_NO_PAD.decode(sig).map_err(|_| TokenError::Malformed)?;
        let signed_by = |key: &[u8]| {
            let mut mac = mac_with(key);
            mac.update(domain);
            mac.update(&payload);
            mac.verify_slice(&sig).is_ok()
        };
        let by_current = signed_by(&self.key);
        let by_previous = !by_current
            && self
                .previous
                .as_ref()
                .is_some_and(|(key, until)| now < *until && signed_by(key));
        if !(by_current || by_previous) {
            return Err(TokenError::BadSignature);
        }
        let claims: T = serde_json::from_slice(&payload).map_err(|_| TokenError::Malformed)?;
        let expiry = exp(&claims);
        if by_previous
            && self
                .previous
                .as_ref()
                .is_some_and(|(_, until)| expiry > until.timestamp())
        {
            // An old-key link that outlives the transition: forged, or not to be trusted.
            return Err(TokenError::BadSignature);
        }
        if expiry <= now.timestamp() {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }
}

/// A request or action id as this stack makes them (at most 64 letters, digits, `-` or `_`),
/// checked before anything is read with it: a key DynamoDB would refuse is the sender's error
/// (400), not ours (5xx).
pub fn plausible_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Seals what only the approval function may write (ballots, sign-in sessions, the record of an
/// action it took) with its decision key, which no other function can read (its own secret). The
/// state table is writable by other roles; a record that one of them wrote, or changed, carries no
/// seal that checks and is not believed. Each seal names its domain (`ballot`, `session`, ...) and
/// its parts are length-prefixed, so one kind of record is never taken for another.
#[derive(Clone)]
pub struct Sealer {
    key: Vec<u8>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer").finish_non_exhaustive()
    }
}

impl Sealer {
    /// A sealer with `key` (at least 32 bytes).
    pub fn new(key: impl Into<Vec<u8>>) -> Result<Self> {
        let key = key.into();
        if key.len() < 32 {
            return Err(Error::Config("the decision key must be at least 32 bytes".into()));
        }
        Ok(Sealer { key })
    }

    fn mac(&self, domain: &str, parts: &[&str]) -> HmacSha256 {
        let mut mac = mac_with(&self.key);
        for p in std::iter::once(domain).chain(parts.iter().copied()) {
            mac.update(&(p.len() as u64).to_be_bytes());
            mac.update(p.as_bytes());
        }
        mac
    }

    /// The seal of `parts` in `domain`.
    pub fn seal(&self, domain: &str, parts: &[&str]) -> String {
        URL_SAFE_NO_PAD.encode(self.mac(domain, parts).finalize().into_bytes())
    }

    /// Whether `seal` is the seal of `parts` in `domain` (compared in constant time).
    pub fn holds(&self, domain: &str, parts: &[&str], seal: &str) -> bool {
        match URL_SAFE_NO_PAD.decode(seal) {
            Ok(sig) => self.mac(domain, parts).verify_slice(&sig).is_ok(),
            Err(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> LinkSigner {
        LinkSigner::new(vec![7u8; 32], "https://abc.lambda-url.us-east-1.on.aws/").unwrap()
    }

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn a_fresh_token_verifies_to_its_claims() {
        let t = signer().token("r1", Decision::Approve, at("2026-11-29T00:00:00Z"));
        let c = signer().verify(&t, at("2026-11-26T00:00:00Z")).unwrap();
        assert_eq!((c.rid.as_str(), c.d), ("r1", Decision::Approve));
    }

    #[test]
    fn a_report_link_reads_back_its_key_until_it_expires_and_is_never_a_decision_or_a_snooze() {
        let now = at("2026-11-26T00:00:00Z");
        let link = signer().report_link("finops-reports/2026-11-23.html", at("2026-12-26T00:00:00Z"));
        let token = link.rsplit_once("token=").unwrap().1;
        assert!(link.starts_with("https://abc.lambda-url.us-east-1.on.aws/report?token="));
        assert_eq!(
            signer().verify_report(token, now).unwrap().key,
            "finops-reports/2026-11-23.html"
        );
        assert_eq!(
            signer().verify_report(token, at("2026-12-27T00:00:00Z")),
            Err(TokenError::Expired)
        );
        assert!(signer().verify(token, now).is_err() && signer().verify_snooze(token, now).is_err());
        let decision = signer().token("r1", Decision::Approve, at("2026-11-29T00:00:00Z"));
        assert_eq!(signer().verify_report(&decision, now), Err(TokenError::BadSignature));
        let other = LinkSigner::new(vec![8u8; 32], "https://x").unwrap();
        assert_eq!(other.verify_report(token, now), Err(TokenError::BadSignature));
    }

    #[test]
    fn a_snooze_button_and_a_decision_are_never_taken_for_each_other() {
        let now = at("2026-11-26T00:00:00Z");
        let until = at("2026-11-29T00:00:00Z");
        let z = signer().snooze_token("idle-ec2:123456789012:us-east-1:i-1", "i-1", 30, until);
        let c = signer().verify_snooze(&z, now).unwrap();
        assert_eq!(
            (c.fid.as_str(), c.res.as_str(), c.days),
            ("idle-ec2:123456789012:us-east-1:i-1", "i-1", 30)
        );
        assert_eq!(signer().verify(&z, now), Err(TokenError::BadSignature));
        let approve = signer().token("r1", Decision::Approve, until);
        assert_eq!(signer().verify_snooze(&approve, now), Err(TokenError::BadSignature));
        // The days are signed: a payload re-encoded with 90 days keeps no valid signature.
        let (payload, sig) = z.split_once('.').unwrap();
        let claims = String::from_utf8(URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        let forged = format!("{}.{sig}", URL_SAFE_NO_PAD.encode(claims.replace("30", "90")));
        assert_eq!(signer().verify_snooze(&forged, now), Err(TokenError::BadSignature));
        assert_eq!(signer().verify_snooze(&z, until), Err(TokenError::Expired));
    }

    #[test]
    fn a_link_points_at_the_approval_function() {
        let l = signer().link("r1", Decision::Reject, at("2026-11-29T00:00:00Z"));
        assert!(
            l.starts_with("https://abc.lambda-url.us-east-1.on.aws/decide?token="),
            "{l}"
        );
    }

    #[test]
    fn a_tampered_token_is_refused() {
        let t = signer().token("r1", Decision::Reject, at("2026-11-29T00:00:00Z"));
        let (_, sig) = t.split_once('.').unwrap();
        let forged = serde_json::to_vec(&Claims {
            rid: "r1".into(),
            d: Decision::Approve,
            exp: at("2026-11-29T00:00:00Z").timestamp(),
        })
        .unwrap();
        let forged = format!("{}.{sig}", URL_SAFE_NO_PAD.encode(forged));
        assert_eq!(
            signer().verify(&forged, at("2026-11-26T00:00:00Z")),
            Err(TokenError::BadSignature)
        );
        let other_key = LinkSigner::new(vec![8u8; 32], "https://x").unwrap();
        assert_eq!(
            other_key.verify(&t, at("2026-11-26T00:00:00Z")),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn an_expired_or_garbled_token_is_refused() {
        let t = signer().token("r1", Decision::Approve, at("2026-11-26T00:00:00Z"));
        assert_eq!(
            signer().verify(&t, at("2026-11-26T00:00:00Z")),
            Err(TokenError::Expired)
        );
        assert_eq!(
            signer().verify("nonsense", at("2026-11-26T00:00:00Z")),
            Err(TokenError::Malformed)
        );
        assert_eq!(
            signer().verify("a.b.c", at("2026-11-26T00:00:00Z")),
            Err(TokenError::Malformed)
        );
    }

    #[test]
    fn links_of_a_replaced_key_verify_only_during_the_transition_the_policy_names() {
        let old = signer();
        let t_old = old.token("r1", Decision::Approve, at("2026-11-29T00:00:00Z"));
        let new = LinkSigner::new(vec![9u8; 32], "https://x")
            .unwrap()
            .accepting(vec![7u8; 32], at("2026-12-01T00:00:00Z"));
        assert!(new.verify(&t_old, at("2026-11-26T00:00:00Z")).is_ok());
        let t_new = new.token("r1", Decision::Approve, at("2026-11-29T00:00:00Z"));
        assert_eq!(
            old.verify(&t_new, at("2026-11-26T00:00:00Z")),
            Err(TokenError::BadSignature)
        );
        // After the transition, or for an old-key link that outlives it: refused.
        assert_eq!(
            new.verify(&t_old, at("2026-12-01T00:00:00Z")),
            Err(TokenError::BadSignature)
        );
        let forged = old.token("r1", Decision::Approve, at("2027-06-01T00:00:00Z"));
        assert_eq!(
            new.verify(&forged, at("2026-11-26T00:00:00Z")),
            Err(TokenError::BadSignature)
        );
        // Without an instant, never.
        let strict = LinkSigner::new(vec![9u8; 32], "https://x").unwrap();
        assert_eq!(
            strict.verify(&t_old, at("2026-11-26T00:00:00Z")),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn a_short_key_is_refused() {
        assert!(LinkSigner::new(vec![1u8; 8], "https://x").is_err());
    }
}

//! A sign-in in progress (OIDC): what the browser's round trip to the identity provider must come
//! back to. Keyed by the random `state`, taken once, lapsing after [`SIGN_IN_MINUTES`].

use crate::error::SdkErrorExt as _;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use chrono::{DateTime, Utc};

use super::dynamo::{n, s, TTL_ATTRIBUTE};
use super::DynamoState;
use crate::approval::{Decision, Sealer};

/// The seal domain of sign-ins and sessions.
const SIGN_IN_SEAL: &str = "sign-in";
use crate::error::{Error, Result};

/// How long a sign-in may take.
pub const SIGN_IN_MINUTES: i64 = 10;

/// What a sign-in was started for.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SignIn {
    /// The request (approve, reject) or action (roll back).
    pub rid: String,
    pub d: Decision,
    pub nonce: String,
    /// The PKCE verifier.
    pub verifier: String,
    pub started_at: DateTime<Utc>,
    /// The value of the cookie the browser that started it was given (RFC 9700 §4.7.1: the
    /// `state` is bound to the user agent); the callback is taken only from that browser.
    #[serde(default)]
    pub browser: String,
}

/// A person proven by a sign-in, about to decide: kept on the server under a random id that the
/// confirmation form carries (a token signed with the link key would let any function that holds
/// the key mint a "signed-in" person).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Session {
    pub rid: String,
    pub d: Decision,
    pub who: crate::identity::Approver,
    pub started_at: DateTime<Utc>,
}

impl DynamoState {
    /// Records `body` under `pk` (new only), lapsing after [`SIGN_IN_MINUTES`], sealed by the
    /// approval function's decision key over the key, its kind and its body.
    async fn put_once<T: serde::Serialize>(
        &self,
        pk: String,
        kind: &str,
        body: &T,
        at: DateTime<Utc>,
        sealer: &Sealer,
    ) -> Result<()> {
        let body =
            serde_json::to_string(body).map_err(|e| Error::Config(format!("a {kind} that does not serialise: {e}")))?;
        let seal = sealer.seal(SIGN_IN_SEAL, &[&pk, kind, &body]);
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(pk))
            .item("sk", s("OIDC"))
            .item("kind", s(kind))
            .item("body", s(&body))
            .item("seal", s(seal))
            .item(
                TTL_ATTRIBUTE,
                n((at + chrono::Duration::minutes(SIGN_IN_MINUTES)).timestamp()),
            )
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        if super::dynamo::written(put)? {
            Ok(())
        } else {
            Err(Error::Precondition {
                resource: kind.into(),
                message: "one with this id exists".into(),
            })
        }
    }

    /// Takes (deletes: it works once) what [`Self::put_once`] recorded under `pk` as `kind`; one
    /// whose seal does not hold (written by another role) is taken away and not believed.
    async fn take_once<T: serde::de::DeserializeOwned>(
        &self,
        pk: String,
        kind: &str,
        sealer: &Sealer,
    ) -> Result<Option<T>> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(&pk))
            .key("sk", s("OIDC"))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| Error::aws("dynamodb", "DeleteItem", e))?;
        let Some(AttributeValue::S(raw)) = out.attributes.as_ref().and_then(|a| a.get("body")) else {
            return Ok(None);
        };
        let sealed = match out.attributes.as_ref().and_then(|a| a.get("seal")) {
            Some(AttributeValue::S(seal)) => sealer.holds(SIGN_IN_SEAL, &[&pk, kind, raw], seal),
            _ => false,
        };
        if !sealed {
            tracing::error!(
                kind,
                "a {kind} item without a seal that holds: not written by the approval function; refused"
            );
            return Ok(None);
        }
        serde_json::from_str(raw)
            .map(Some)
            .map_err(|e| Error::unexpected("dynamodb", "DeleteItem", format!("an unreadable sign-in item: {e}")))
    }

    /// The sign-in recorded under `state`, read without taking it (its seal checked): the
    /// callback checks the browser's cookie before a sign-in is spent.
    pub async fn peek_sign_in(&self, state: &str, now: DateTime<Utc>, sealer: &Sealer) -> Result<Option<SignIn>> {
        let pk = format!("SIGNIN#{state}");
        let Some(item) = self.get(&pk, "OIDC").await? else {
            return Ok(None);
        };
        let (Some(AttributeValue::S(raw)), Some(AttributeValue::S(seal))) = (item.get("body"), item.get("seal")) else {
            return Ok(None);
        };
        if !sealer.holds(SIGN_IN_SEAL, &[&pk, "sign-in", raw], seal) {
            return Ok(None);
        }
        let sign_in: Option<SignIn> = serde_json::from_str(raw).ok();
        Ok(sign_in.filter(|s| s.started_at + chrono::Duration::minutes(SIGN_IN_MINUTES) > now))
    }

    /// Records a sign-in under `state` (new only).
    pub async fn start_sign_in(&self, state: &str, sign_in: &SignIn, sealer: &Sealer) -> Result<()> {
        self.put_once(
            format!("SIGNIN#{state}"),
            "sign-in",
            sign_in,
            sign_in.started_at,
            sealer,
        )
        .await
    }

    /// Takes the sign-in recorded under `state` (a state works once); `None` when there is
    /// none, or it is older than [`SIGN_IN_MINUTES`].
    pub async fn take_sign_in(&self, state: &str, now: DateTime<Utc>, sealer: &Sealer) -> Result<Option<SignIn>> {
        let sign_in: Option<SignIn> = self.take_once(format!("SIGNIN#{state}"), "sign-in", sealer).await?;
        Ok(sign_in.filter(|s| s.started_at + chrono::Duration::minutes(SIGN_IN_MINUTES) > now))
    }

    /// Records a signed-in person's session under `id` (new only).
    pub async fn start_session(&self, id: &str, session: &Session, sealer: &Sealer) -> Result<()> {
        self.put_once(format!("SESSION#{id}"), "session", session, session.started_at, sealer)
            .await
    }

    /// Takes the session recorded under `id` (it decides once); `None` when there is none, or
    /// it is older than [`SIGN_IN_MINUTES`].
    pub async fn take_session(&self, id: &str, now: DateTime<Utc>, sealer: &Sealer) -> Result<Option<Session>> {
        let session: Option<Session> = self.take_once(format!("SESSION#{id}"), "session", sealer).await?;
        Ok(session.filter(|s| s.started_at + chrono::Duration::minutes(SIGN_IN_MINUTES) > now))
    }
}

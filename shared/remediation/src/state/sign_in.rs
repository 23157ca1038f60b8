//! A sign-in in progress (OIDC): what the browser's round trip to the identity provider must come
//! back to. Keyed by the random `state`, taken once, lapsing after [`SIGN_IN_MINUTES`].

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use chrono::{DateTime, Utc};

use super::dynamo::{n, s, TTL_ATTRIBUTE};
use super::DynamoState;
use crate::approval::Decision;
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
}

impl DynamoState {
    /// Records a sign-in under `state` (new only).
    pub async fn start_sign_in(&self, state: &str, sign_in: &SignIn) -> Result<()> {
        let body = super::dynamo::json(sign_in)?;
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(format!("SIGNIN#{state}")))
            .item("sk", s("OIDC"))
            .item("kind", s("sign-in"))
            .item("sign_in", body)
            .item(
                TTL_ATTRIBUTE,
                n((sign_in.started_at + chrono::Duration::minutes(SIGN_IN_MINUTES)).timestamp()),
            )
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        if super::dynamo::written(put)? {
            Ok(())
        } else {
            Err(Error::Precondition {
                resource: "sign-in".into(),
                message: "a sign-in with this state exists".into(),
            })
        }
    }

    /// Takes the sign-in recorded under `state` (deletes it: a state works once); `None` when
    /// there is none, or it is older than [`SIGN_IN_MINUTES`].
    pub async fn take_sign_in(&self, state: &str, now: DateTime<Utc>) -> Result<Option<SignIn>> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(format!("SIGNIN#{state}")))
            .key("sk", s("OIDC"))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| Error::aws("dynamodb", "DeleteItem", e))?;
        let Some(AttributeValue::S(raw)) = out.attributes.as_ref().and_then(|a| a.get("sign_in")) else {
            return Ok(None);
        };
        let sign_in: SignIn = serde_json::from_str(raw)
            .map_err(|e| Error::unexpected("dynamodb", "DeleteItem", format!("an unreadable sign-in: {e}")))?;
        if sign_in.started_at + chrono::Duration::minutes(SIGN_IN_MINUTES) <= now {
            return Ok(None);
        }
        Ok(Some(sign_in))
    }
}

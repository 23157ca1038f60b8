//! Amazon Bedrock explains a rightsizing recommendation (Converse API). It is given the evidence
//! and the candidates and must answer strict JSON `{recommended_type, risk, rationale}`; the
//! answer is validated here, and anything else — invalid JSON, a type that is not a candidate, a
//! timeout, access denied, throttling — leaves the rules' recommendation in place, with the reason.

use remediation::error::SdkErrorExt as _;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_bedrockruntime::types::{
    ContentBlock, ConversationRole, ConverseOutput, InferenceConfiguration, Message, SystemContentBlock,
};
use serde::Deserialize;
use serde_json::json;

use crate::rightsizing::detect::{Candidate, RightsizingEvidence, Risk};
use remediation::error::{Error, Result};

/// Longest rationale kept from a model.
pub const RATIONALE_MAX_CHARS: usize = 1200;

/// What rightsizing needs of a model.
#[async_trait]
pub trait Explainer: Send + Sync {
    /// The model asked.
    fn model_id(&self) -> &str;
    /// Sends the system text and the prompt; returns the model's text.
    async fn ask(&self, system: &str, prompt: &str) -> Result<String>;
}

/// Bedrock's Converse API through the SDK.
#[derive(Debug, Clone)]
pub struct Bedrock {
    client: aws_sdk_bedrockruntime::Client,
    model_id: String,
}

impl Bedrock {
    /// The model asked (a model id or an inference profile).
    pub fn model_id(&self) -> &str {
        &self.model_id
    }

    /// A client from `config` (its own `endpoint`, if given) that gives up after `timeout` and
    /// does not retry: a throttled or slow model falls back to the rules at once.
    pub fn new(config: &aws_config::SdkConfig, endpoint: Option<&str>, model_id: &str, timeout: Duration) -> Bedrock {
        let mut b = aws_sdk_bedrockruntime::config::Builder::from(config)
            .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(1))
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .operation_timeout(timeout)
                    .build(),
            );
        if let Some(e) = endpoint {
            b = b.endpoint_url(e);
        }
        Bedrock {
            client: aws_sdk_bedrockruntime::Client::from_conf(b.build()),
            model_id: model_id.to_string(),
        }
    }
}

#[async_trait]
impl Explainer for Bedrock {
    fn model_id(&self) -> &str {
        &self.model_id
    }

    async fn ask(&self, system: &str, prompt: &str) -> Result<String> {
        let message = Message::builder()
            .role(ConversationRole::User)
            .content(ContentBlock::Text(prompt.to_string()))
            .build()
            .map_err(|e| Error::Config(format!("bad Bedrock message: {e}")))?;
        let out = self
            .client
            .converse()
            .model_id(&self.model_id)
            .system(SystemContentBlock::Text(system.to_string()))
            .messages(message)
            .inference_config(
                InferenceConfiguration::builder()
                    .max_tokens(500)
                    .temperature(0.0)
                    .build(),
            )
            .send()
            .await
            .map_err(|e| Error::aws("bedrock-runtime", "Converse", e))?;
        // Billed by the tokens read and written, answer or not.
        if let Some(u) = out.usage() {
            remediation::aws::CallCounter::note_model_tokens(
                &self.model_id,
                u.input_tokens().max(0) as u64,
                u.output_tokens().max(0) as u64,
            );
        }
        let Some(ConverseOutput::Message(m)) = out.output() else {
            return Err(Error::unexpected(
                "bedrock-runtime",
                "Converse",
                "no message in the answer",
            ));
        };
        let text: String = m
            .content()
            .iter()
            .filter_map(|b| b.as_text().ok().cloned())
            .collect::<Vec<_>>()
            .join("");
        Ok(text)
    }
}

/// The instructions: explain, choose only among the candidates, answer JSON only.
pub const SYSTEM: &str = "You review EC2 rightsizing recommendations for a FinOps team. You are given \
measured utilisation and a list of candidate instance types that all fit the measured peaks with \
headroom. Choose one candidate, rate the risk of the move (low, medium or high) and explain in at \
most three sentences, citing the numbers. Never propose a type that is not in the list. Never state \
dollar amounts. Answer with one JSON object and nothing else: \
{\"recommended_type\": \"...\", \"risk\": \"low|medium|high\", \"rationale\": \"...\"}";

/// The prompt: the evidence the rules used, as JSON.
pub fn prompt(instance_id: &str, e: &RightsizingEvidence) -> String {
    let candidates: Vec<_> = e
        .candidates
        .iter()
        .map(|c| json!({"instance_type": c.instance_type, "vcpus": c.vcpus, "memory_gib": c.memory_gib}))
        .collect();
    json!({
        "instance_id": instance_id,
        "current_type": e.current_type,
        "current_vcpus": e.current_vcpus,
        "current_memory_gib": e.current_memory_gib,
        "days_with_data": e.days_with_data,
        "cpu_p95_of_hourly_maxima_percent": e.cpu_p95_hourly_max_percent,
        "cpu_highest_hour_percent": e.cpu_max_percent,
        "memory_p95_percent": e.memory_p95_percent,
        "memory_highest_percent": e.memory_max_percent,
        "memory_measured": e.memory_p95_percent.is_some(),
        "network_highest_day_bytes": e.network_max_daily_bytes,
        "headroom_percent": e.headroom_percent,
        "candidates_cheapest_first": candidates,
    })
    .to_string()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Answer {
    recommended_type: String,
    risk: Risk,
    rationale: String,
}

/// Validates a model's text: one JSON object (a Markdown code fence around it is tolerated)
/// with a candidate type, a known risk and a non-empty rationale. The error says what was wrong.
pub fn validate(text: &str, candidates: &[Candidate]) -> std::result::Result<(String, Risk, String), String> {
    let t = text.trim();
    let t = t
        .strip_prefix("```json")
        .or_else(|| t.strip_prefix("```"))
        .and_then(|x| x.strip_suffix("```"))
        .map(str::trim)
        .unwrap_or(t);
    let a: Answer = serde_json::from_str(t).map_err(|e| format!("the answer is not the JSON asked for: {e}"))?;
    if !candidates.iter().any(|c| c.instance_type == a.recommended_type) {
        return Err(format!(
            "the model proposed {:?}, which is not one of the candidates",
            a.recommended_type.chars().take(40).collect::<String>()
        ));
    }
    let rationale = a.rationale.trim();
    if rationale.is_empty() {
        return Err("the model gave no rationale".into());
    }
    let rationale = if rationale.chars().count() > RATIONALE_MAX_CHARS {
        format!("{}…", rationale.chars().take(RATIONALE_MAX_CHARS).collect::<String>())
    } else {
        rationale.to_string()
    };
    Ok((a.recommended_type, a.risk, rationale))
}

/// Asks `explainer` about `e` and applies a valid answer; otherwise keeps the rules' choice and
/// records why. Returns whether the model's answer was used.
pub async fn explain(explainer: &dyn Explainer, instance_id: &str, e: &mut RightsizingEvidence) -> bool {
    e.model_id = Some(explainer.model_id().to_string());
    let outcome = match explainer.ask(SYSTEM, &prompt(instance_id, e)).await {
        Ok(text) => validate(&text, &e.candidates),
        Err(err) => Err(match &err {
            Error::Aws { code, message, .. } => format!("Bedrock refused or failed: {code}: {message}"),
            other => format!("Bedrock unavailable: {other}"),
        }),
    };
    match outcome {
        Ok((t, risk, rationale)) => crate::rightsizing::detect::choose(e, &t, risk, rationale, "bedrock"),
        Err(reason) => {
            tracing::warn!(instance = instance_id, reason = %reason, "using the rules' rationale");
            e.fallback_reason = Some(reason);
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidates() -> Vec<Candidate> {
        ["r5.large", "r6i.large"]
            .iter()
            .map(|t| Candidate {
                instance_type: t.to_string(),
                vcpus: 2,
                memory_gib: 16.0,
                usd_per_hour: 0.126,
                monthly_savings_usd: 48.18,
            })
            .collect()
    }

    #[test]
    fn a_valid_answer_is_taken_fenced_or_not() {
        let good = r#"{"recommended_type": "r6i.large", "risk": "medium", "rationale": "Peaks stay under 1.4 vCPU."}"#;
        assert_eq!(
            validate(good, &candidates()),
            Ok(("r6i.large".into(), Risk::Medium, "Peaks stay under 1.4 vCPU.".into()))
        );
        assert!(validate(&format!("```json\n{good}\n```"), &candidates()).is_ok());
    }

    #[test]
    fn anything_else_is_refused_with_the_reason() {
        let cases = [
            ("Sure! I recommend r5.large.", "not the JSON asked for"),
            (
                r#"{"recommended_type": "m5.24xlarge", "risk": "low", "rationale": "x"}"#,
                "not one of the candidates",
            ),
            (
                r#"{"recommended_type": "r5.large", "risk": "none", "rationale": "x"}"#,
                "not the JSON asked for",
            ),
            (
                r#"{"recommended_type": "r5.large", "risk": "low", "rationale": "  "}"#,
                "no rationale",
            ),
            (
                r#"{"recommended_type": "r5.large", "risk": "low", "rationale": "x", "savings_usd": 9999}"#,
                "not the JSON asked for",
            ),
        ];
        for (text, why) in cases {
            let err = validate(text, &candidates()).unwrap_err();
            assert!(err.contains(why), "{text}: {err}");
        }
    }
}

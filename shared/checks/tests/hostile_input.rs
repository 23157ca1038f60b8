//! Property tests of the checks' parsers of outside data: whatever arrives, the parser returns
//! (never panics), and an error names what is wrong. `PROPTEST_CASES` sets the number of cases
//! (`make fuzz` runs a million).

#![cfg(feature = "aws")]

use proptest::prelude::*;
use serde_json::{json, Value};

use finops_checks::rightsizing::bedrock::{self, RATIONALE_MAX_CHARS};
use finops_checks::rightsizing::detect::{Candidate, Risk};

/// Any JSON value, a few levels deep, its objects mostly keyed as the model's answer is: what a
/// model may say instead of the answer asked for.
fn any_json() -> impl Strategy<Value = Value> {
    const ANSWER_KEYS: &[&str] = &["recommended_type", "risk", "rationale", "low", "t3.small", ""];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        // NaN and infinities become null, as serde_json does.
        any::<f64>().prop_map(Value::from),
        any::<String>().prop_map(Value::from),
        prop::sample::select(ANSWER_KEYS).prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        let key = prop_oneof![
            3 => prop::sample::select(ANSWER_KEYS).prop_map(str::to_string),
            1 => any::<String>(),
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(key, inner, 0..6).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn config() -> ProptestConfig {
    ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Bedrock's answers (rightsizing::bedrock::validate): model output is outside data too

fn candidates() -> impl Strategy<Value = Vec<Candidate>> {
    prop::collection::vec(
        (
            "[a-z][0-9][a-z]{0,2}\\.(nano|micro|small|medium|large|[0-9]{0,2}xlarge)",
            1u32..=448,
            0u32..=24_576,
        )
            .prop_map(|(instance_type, vcpus, memory)| Candidate {
                instance_type,
                vcpus,
                memory_gib: f64::from(memory) / 4.0,
                usd_per_hour: 0.1,
                monthly_savings_usd: 10.0,
            }),
        1..6,
    )
}

fn risk() -> impl Strategy<Value = Risk> {
    prop_oneof![Just(Risk::Low), Just(Risk::Medium), Just(Risk::High)]
}

/// How a model may wrap its JSON: bare, or in a Markdown fence.
const FENCES: &[(&str, &str)] = &[
    ("", ""),
    ("```json\n", "\n```"),
    ("```\n", "\n```"),
    ("  ```json", "```  "),
];

const BEDROCK_ERRORS: &[&str] = &[
    "the answer is not the JSON asked for: ",
    "the model proposed ",
    "the model gave no rationale",
];

proptest! {
    #![proptest_config(config())]

    #[test]
    fn a_well_formed_model_answer_is_taken_with_its_rationale_trimmed_and_capped(
        candidates in candidates(),
        pick in any::<prop::sample::Index>(),
        risk in risk(),
        rationale in prop_oneof![any::<String>(), "[a-zé ]{1190,1300}"]
            .prop_filter("a rationale", |r| !r.trim().is_empty()),
        fence in prop::sample::select(FENCES),
    ) {
        let chosen = pick.get(&candidates).instance_type.clone();
        let answer = json!({"recommended_type": chosen, "risk": risk.as_str(), "rationale": rationale});
        let text = format!("{}{answer}{}", fence.0, fence.1);
        let trimmed = rationale.trim();
        let expected = if trimmed.chars().count() > RATIONALE_MAX_CHARS {
            format!("{}…", trimmed.chars().take(RATIONALE_MAX_CHARS).collect::<String>())
        } else {
            trimmed.to_string()
        };
        prop_assert_eq!(bedrock::validate(&text, &candidates), Ok((chosen, risk, expected)));
    }

    #[test]
    fn a_model_answer_of_any_text_is_taken_only_if_valid_and_otherwise_says_why(
        candidates in candidates(),
        text in prop_oneof![
            any::<String>(),
            any_json().prop_map(|v| v.to_string()),
            any_json().prop_map(|v| format!("```json\n{v}\n```")),
        ],
    ) {
        match bedrock::validate(&text, &candidates) {
            Ok((t, _, rationale)) => {
                prop_assert!(candidates.iter().any(|c| c.instance_type == t));
                prop_assert!(!rationale.is_empty());
            }
            Err(m) => prop_assert!(BEDROCK_ERRORS.iter().any(|p| m.starts_with(p)), "{m}"),
        }
    }

    #[test]
    fn a_model_answer_proposing_another_type_is_refused_naming_it(
        candidates in candidates(),
        proposed in any::<String>(),
        risk in risk(),
    ) {
        prop_assume!(candidates.iter().all(|c| c.instance_type != proposed));
        let text = json!({"recommended_type": proposed, "risk": risk.as_str(), "rationale": "fits"}).to_string();
        let quoted = format!("{:?}", proposed.chars().take(40).collect::<String>());
        prop_assert_eq!(
            bedrock::validate(&text, &candidates),
            Err(format!("the model proposed {quoted}, which is not one of the candidates"))
        );
    }

    #[test]
    fn a_model_answer_with_a_blank_rationale_is_refused_as_such(
        candidates in candidates(),
        rationale in "[ \t\r\n\u{3000}]{0,8}",
        risk in risk(),
    ) {
        let chosen = &candidates[0].instance_type;
        let text = json!({"recommended_type": chosen, "risk": risk.as_str(), "rationale": rationale}).to_string();
        prop_assert_eq!(bedrock::validate(&text, &candidates), Err("the model gave no rationale".to_string()));
    }

    #[test]
    fn a_model_answer_with_an_extra_field_or_unknown_risk_is_refused_naming_it(
        candidates in candidates(),
        extra in "[a-z_]{1,16}",
        risk in "[a-zA-Z]{0,10}",
    ) {
        prop_assume!(!["recommended_type", "risk", "rationale"].contains(&extra.as_str()));
        let mut answer = json!({"recommended_type": candidates[0].instance_type, "risk": "low", "rationale": "fits"});
        answer[extra.as_str()] = json!(1);
        let m = bedrock::validate(&answer.to_string(), &candidates).expect_err("an extra field");
        prop_assert!(m.starts_with(&format!("the answer is not the JSON asked for: unknown field `{extra}`")), "{m}");

        prop_assume!(!["low", "medium", "high"].contains(&risk.as_str()));
        let answer = json!({"recommended_type": candidates[0].instance_type, "risk": risk, "rationale": "fits"});
        let m = bedrock::validate(&answer.to_string(), &candidates).expect_err("an unknown risk");
        prop_assert!(m.starts_with(&format!("the answer is not the JSON asked for: unknown variant `{risk}`")), "{m}");
    }
}

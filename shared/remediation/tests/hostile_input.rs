//! Property tests of every parser of outside data in the shared crate: whatever arrives, the
//! parser returns (never panics), and an error names what is wrong. Well-formed input parses to
//! what was generated. `PROPTEST_CASES` sets the number of cases (`make fuzz` runs a million).

use chrono::{DateTime, FixedOffset, SecondsFormat, Utc};
use proptest::prelude::*;
use serde_json::{json, Value};

use remediation::approval::{Claims, Decision, LinkSigner, TokenError};
use remediation::aws::config::ConfigItem;
use remediation::events::{self, ComplianceChange, ConfigInvocation, ConfigRuleEvent};
use remediation::notify::{self, DigestItem, Incoming, Message, RuleTotals};
use remediation::policy::{Mode, Policy};
use remediation::slack::{self, SignatureError, MAX_SIGNATURE_AGE_SECONDS};

// ---------------------------------------------------------------------------------------------
// Generators

/// Field names the parsers look for, so that arbitrary objects hit real code paths.
const KNOWN_KEYS: &[&str] = &[
    "version",
    "id",
    "detail-type",
    "source",
    "account",
    "time",
    "region",
    "resources",
    "detail",
    "configRuleName",
    "resourceType",
    "resourceId",
    "newEvaluationResult",
    "complianceType",
    "invokingEvent",
    "resultToken",
    "eventLeftScope",
    "accountId",
    "messageType",
    "configurationItem",
    "configurationItemSummary",
    "configurationItemStatus",
    "configurationItemCaptureTime",
    "notificationCreationTime",
    "tags",
    "Records",
    "Sns",
    "Message",
    "type",
    "AlarmName",
];

/// Strings the parsers compare against.
const ODD_STRINGS: &[&str] = &[
    "",
    " ",
    "\u{0}",
    "aws.events",
    "Scheduled Event",
    "aws.config",
    "2026-11-26T06:00:00Z",
    "dry-run",
    "approve",
    "auto",
    "block-public-access",
    "UnblendedCost",
    "https://example.atlassian.net",
];

/// An object key: mostly one of `keys`, sometimes anything.
fn json_key(keys: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(keys).prop_map(str::to_string),
        1 => any::<String>(),
    ]
}

/// Any JSON value: every type, odd numbers, odd strings, a few levels deep.
fn any_json() -> impl Strategy<Value = Value> {
    json_over(KNOWN_KEYS)
}

/// Any JSON value whose objects mostly use `keys`.
fn json_over(keys: &'static [&'static str]) -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        // NaN and infinities become null, as serde_json does.
        any::<f64>().prop_map(Value::from),
        any::<String>().prop_map(Value::from),
        prop::sample::select(ODD_STRINGS).prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(json_key(keys), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Any JSON value that is not a string.
fn non_string_json() -> impl Strategy<Value = Value> {
    any_json().prop_filter("not a string", |v| !v.is_string())
}

/// An instant between 1970 and 2100 with millisecond precision (what AWS writes).
fn instant() -> impl Strategy<Value = DateTime<Utc>> {
    (0i64..4_102_444_800, 0u32..1000)
        .prop_map(|(secs, ms)| DateTime::from_timestamp(secs, ms * 1_000_000).unwrap_or_default())
}

/// The same instant as RFC 3339 text in some whole-minute offset (`Z` half of the time).
fn rfc3339(t: DateTime<Utc>, offset_minutes: Option<i32>) -> String {
    match offset_minutes.and_then(|m| FixedOffset::east_opt(m * 60)) {
        Some(offset) => t.with_timezone(&offset).to_rfc3339_opts(SecondsFormat::Millis, false),
        None => t.to_rfc3339_opts(SecondsFormat::Millis, true),
    }
}

fn offset_minutes() -> impl Strategy<Value = Option<i32>> {
    prop::option::of(-1439i32..=1439)
}

/// A key of `v` (an object) to change; `None` when it has none.
fn pick_key(v: &Value, index: &prop::sample::Index) -> Option<String> {
    let keys: Vec<&String> = v.as_object()?.keys().collect();
    if keys.is_empty() {
        return None;
    }
    Some(index.get(&keys).to_string())
}

/// Replaces (`Some`) or removes (`None`) one top-level field of an object.
fn mutate(mut v: Value, index: &prop::sample::Index, replacement: Option<Value>) -> Value {
    if let Some(key) = pick_key(&v, index) {
        if let Some(map) = v.as_object_mut() {
            match replacement {
                Some(r) => {
                    map.insert(key, r);
                }
                None => {
                    map.remove(&key);
                }
            }
        }
    }
    v
}

fn message_of(e: remediation::Error) -> String {
    e.to_string()
}

fn config() -> ProptestConfig {
    ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------------------------
// EventBridge scheduled events (events::scheduled)

fn scheduled_event(account: &str, id: &str, region: &str) -> Value {
    json!({
        "version": "0",
        "id": id,
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": account,
        "time": "2026-11-26T06:00:00Z",
        "region": region,
        "resources": [format!("arn:aws:events:{region}:{account}:rule/finops-hourly")],
        "detail": {}
    })
}

fn scheduled_parts() -> impl Strategy<Value = (String, String, String)> {
    (
        "[0-9]{12}",
        "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
        "[a-z]{2}-[a-z]{4,9}-[1-9]",
    )
}

/// The beginnings of every message `events::scheduled` returns.
const SCHEDULED_ERRORS: &[&str] = &[
    "invalid event: expected an EventBridge scheduled event: ",
    "invalid event: expected source \"aws.events\" and detail-type \"Scheduled Event\", got source ",
];

/// The fields of an EventBridge event that must be there.
const SCHEDULED_REQUIRED: &[&str] = &["source", "detail-type"];

fn names_a_scheduled_problem(message: &str) -> bool {
    SCHEDULED_ERRORS.iter().any(|p| message.starts_with(p))
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn a_scheduled_event_parses_to_its_account((account, id, region) in scheduled_parts()) {
        let parsed = events::scheduled(&scheduled_event(&account, &id, &region));
        prop_assert!(matches!(&parsed, Ok(s) if s.account == account), "{parsed:?}");
    }

    #[test]
    fn a_scheduled_event_of_any_shape_parses_or_names_what_is_wrong(payload in any_json()) {
        if let Err(e) = events::scheduled(&payload) {
            let m = message_of(e);
            prop_assert!(names_a_scheduled_problem(&m), "{m}");
        }
    }

    #[test]
    fn a_scheduled_event_with_one_field_changed_parses_or_names_what_is_wrong(
        (account, id, region) in scheduled_parts(),
        index in any::<prop::sample::Index>(),
        replacement in prop::option::of(any_json()),
    ) {
        let payload = mutate(scheduled_event(&account, &id, &region), &index, replacement);
        match events::scheduled(&payload) {
            Ok(s) => {
                // Only the optional fields may change and still be accepted.
                prop_assert_eq!(payload["source"].as_str(), Some("aws.events"));
                prop_assert_eq!(payload["detail-type"].as_str(), Some("Scheduled Event"));
                prop_assert_eq!(s.account, payload["account"].as_str().unwrap_or_default().to_string());
            }
            Err(e) => {
                let m = message_of(e);
                prop_assert!(names_a_scheduled_problem(&m), "{m}");
            }
        }
    }

    #[test]
    fn an_event_from_another_source_or_type_is_refused_naming_what_came(
        (account, id, region) in scheduled_parts(),
        source in prop_oneof![Just("aws.events".to_string()), any::<String>()],
        detail_type in prop_oneof![Just("Scheduled Event".to_string()), any::<String>()],
    ) {
        prop_assume!(source != "aws.events" || detail_type != "Scheduled Event");
        let mut payload = scheduled_event(&account, &id, &region);
        payload["source"] = json!(source);
        payload["detail-type"] = json!(detail_type);
        let m = message_of(events::scheduled(&payload).expect_err("another source or type"));
        prop_assert!(m.contains(&format!("got source {source:?} and detail-type {detail_type:?}")), "{m}");
    }

    #[test]
    fn a_scheduled_event_without_source_or_detail_type_names_the_missing_field(
        (account, id, region) in scheduled_parts(),
        field in prop::sample::select(SCHEDULED_REQUIRED),
    ) {
        let mut payload = scheduled_event(&account, &id, &region);
        if let Some(m) = payload.as_object_mut() {
            m.remove(field);
        }
        let m = message_of(events::scheduled(&payload).expect_err("a required field is missing"));
        prop_assert!(m.contains(&format!("missing field `{field}`")), "{m}");
    }
}

// ---------------------------------------------------------------------------------------------
// Config compliance changes (events::compliance_change)

/// Where `compliance_change` reads each field, and the field as its messages name it.
const COMPLIANCE_FIELDS: &[(&[&str], &str)] = &[
    (&["configRuleName"], "detail.configRuleName"),
    (&["resourceType"], "detail.resourceType"),
    (&["resourceId"], "detail.resourceId"),
    (
        &["newEvaluationResult", "complianceType"],
        "detail.newEvaluationResult.complianceType",
    ),
];

fn compliance_event(c: &ComplianceChange) -> Value {
    json!({
        "version": "0",
        "id": "5e2c8f1a-0000-0000-0000-000000000000",
        "detail-type": "Config Rules Compliance Change",
        "source": "aws.config",
        "account": c.account,
        "time": "2026-11-26T06:00:00Z",
        "region": "us-east-1",
        "resources": [],
        "detail": {
            "resourceId": c.resource_id,
            "awsRegion": "us-east-1",
            "awsAccountId": c.account,
            "configRuleName": c.rule_name,
            "recordVersion": "1.0",
            "configRuleARN": "arn:aws:config:us-east-1:123456789012:config-rule/config-rule-0abc12",
            "messageType": "ComplianceChangeNotification",
            "newEvaluationResult": {"complianceType": c.compliance, "annotation": "public"},
            "resourceType": c.resource_type,
        }
    })
}

fn compliance_change() -> impl Strategy<Value = ComplianceChange> {
    (
        "[0-9]{12}",
        any::<String>(),
        prop_oneof![Just("AWS::S3::Bucket".to_string()), any::<String>()],
        any::<String>(),
        prop_oneof![
            Just("COMPLIANT".to_string()),
            Just("NON_COMPLIANT".to_string()),
            Just("NOT_APPLICABLE".to_string()),
            Just("INSUFFICIENT_DATA".to_string()),
            any::<String>(),
        ],
    )
        .prop_map(
            |(account, rule_name, resource_type, resource_id, compliance)| ComplianceChange {
                account,
                rule_name,
                resource_type,
                resource_id,
                compliance,
            },
        )
}

/// Sets (`Some`) or removes (`None`) the value at `path` under `detail`.
fn set_in_detail(payload: &mut Value, path: &[&str], value: Option<Value>) {
    let mut cur = &mut payload["detail"];
    for key in &path[..path.len() - 1] {
        cur = &mut cur[*key];
    }
    let last = path[path.len() - 1];
    match value {
        Some(v) => cur[last] = v,
        None => {
            if let Some(m) = cur.as_object_mut() {
                m.remove(last);
            }
        }
    }
}

const COMPLIANCE_ERRORS: &[&str] = &[
    "invalid event: expected an EventBridge Config compliance event: ",
    "invalid event: expected source \"aws.config\" and detail-type \"Config Rules Compliance Change\", got source ",
    "invalid event: compliance event has no detail.",
];

fn names_a_compliance_problem(message: &str) -> bool {
    COMPLIANCE_ERRORS.iter().any(|p| message.starts_with(p))
        || (message.starts_with("invalid event: detail.") && message.ends_with(" is not a string"))
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn a_compliance_change_parses_to_the_rule_resource_and_state_it_names(c in compliance_change()) {
        let parsed = events::compliance_change(&compliance_event(&c));
        prop_assert!(matches!(&parsed, Ok(p) if *p == c), "{parsed:?} != {c:?}");
    }

    #[test]
    fn a_compliance_change_of_any_shape_parses_or_names_what_is_wrong(payload in any_json()) {
        if let Err(e) = events::compliance_change(&payload) {
            let m = message_of(e);
            prop_assert!(names_a_compliance_problem(&m), "{m}");
        }
    }

    #[test]
    fn a_compliance_change_with_one_field_changed_parses_or_names_what_is_wrong(
        c in compliance_change(),
        index in any::<prop::sample::Index>(),
        replacement in prop::option::of(any_json()),
        in_detail in any::<bool>(),
    ) {
        let mut payload = compliance_event(&c);
        if in_detail {
            let detail = mutate(payload["detail"].take(), &index, replacement);
            payload["detail"] = detail;
        } else {
            payload = mutate(payload, &index, replacement);
        }
        if let Err(e) = events::compliance_change(&payload) {
            let m = message_of(e);
            prop_assert!(names_a_compliance_problem(&m), "{m}");
        }
    }

    #[test]
    fn a_compliance_change_without_a_field_names_that_field(
        c in compliance_change(),
        field in prop::sample::select(COMPLIANCE_FIELDS),
    ) {
        let (path, name) = field;
        let mut payload = compliance_event(&c);
        set_in_detail(&mut payload, path, None);
        let m = message_of(events::compliance_change(&payload).expect_err("a field is missing"));
        prop_assert_eq!(m, format!("invalid event: compliance event has no {name}"));
    }

    #[test]
    fn a_compliance_change_with_a_field_that_is_not_text_names_that_field(
        c in compliance_change(),
        field in prop::sample::select(COMPLIANCE_FIELDS),
        value in non_string_json(),
    ) {
        let (path, name) = field;
        let mut payload = compliance_event(&c);
        set_in_detail(&mut payload, path, Some(value));
        let m = message_of(events::compliance_change(&payload).expect_err("a field is not a string"));
        prop_assert_eq!(m, format!("invalid event: {name} is not a string"));
    }
}

// ---------------------------------------------------------------------------------------------
// Config custom rule events (events::config_rule)

/// A generated Config rule event: what `config_rule` should return, and the offset its times are
/// written in.
#[derive(Debug, Clone)]
struct GeneratedRuleEvent {
    expected: ConfigRuleEvent,
    offset_minutes: Option<i32>,
}

fn config_invocation() -> impl Strategy<Value = ConfigInvocation> {
    prop_oneof![
        (
            any::<String>(),
            any::<String>(),
            prop_oneof![
                Just("OK".to_string()),
                Just("ResourceDeleted".to_string()),
                any::<String>()
            ],
            prop::collection::btree_map(any::<String>(), any::<String>(), 0..5),
            instant(),
        )
            .prop_map(|(resource_type, resource_id, status, tags, capture_time)| {
                ConfigInvocation::Change(ConfigItem {
                    resource_type,
                    resource_id,
                    status,
                    tags,
                    capture_time,
                })
            }),
        (any::<String>(), any::<String>(), instant()).prop_map(|(resource_type, resource_id, capture_time)| {
            ConfigInvocation::Oversized {
                resource_type,
                resource_id,
                capture_time,
            }
        }),
        instant().prop_map(|at| ConfigInvocation::Scheduled { at }),
    ]
}

fn config_rule_event() -> impl Strategy<Value = GeneratedRuleEvent> {
    (
        "[0-9]{12}",
        any::<String>(),
        any::<String>().prop_filter("a result token", |t| !t.is_empty()),
        any::<bool>(),
        config_invocation(),
        offset_minutes(),
    )
        .prop_map(
            |(account, rule_name, result_token, event_left_scope, invocation, offset_minutes)| GeneratedRuleEvent {
                expected: ConfigRuleEvent {
                    account,
                    rule_name,
                    result_token,
                    event_left_scope,
                    invocation,
                },
                offset_minutes,
            },
        )
}

/// The invoking event Config would send for an invocation.
fn invoking_event(invocation: &ConfigInvocation, offset: Option<i32>) -> Value {
    match invocation {
        ConfigInvocation::Change(item) => json!({
            "configurationItem": {
                "configurationItemVersion": "1.3",
                "configurationItemCaptureTime": rfc3339(item.capture_time, offset),
                "configurationItemStatus": item.status,
                "resourceType": item.resource_type,
                "resourceId": item.resource_id,
                "awsRegion": "us-east-1",
                "tags": item.tags,
                "configuration": {"instanceType": "t3.large"},
            },
            "notificationCreationTime": "2026-11-26T05:58:30.000Z",
            "messageType": "ConfigurationItemChangeNotification",
            "recordVersion": "1.3",
        }),
        ConfigInvocation::Oversized {
            resource_type,
            resource_id,
            capture_time,
        } => json!({
            "configurationItemSummary": {
                "configurationItemCaptureTime": rfc3339(*capture_time, offset),
                "resourceType": resource_type,
                "resourceId": resource_id,
                "changeType": "UPDATE",
            },
            "notificationCreationTime": "2026-11-26T05:58:30.000Z",
            "messageType": "OversizedConfigurationItemChangeNotification",
            "recordVersion": "1.0",
        }),
        ConfigInvocation::Scheduled { at } => json!({
            "awsAccountId": "123456789012",
            "notificationCreationTime": rfc3339(*at, offset),
            "messageType": "ScheduledNotification",
            "recordVersion": "1.0",
        }),
    }
}

fn config_rule_payload(e: &ConfigRuleEvent, invoking: &Value) -> Value {
    json!({
        "version": "1.0",
        "configRuleName": e.rule_name,
        "configRuleArn": "arn:aws:config:us-east-1:123456789012:config-rule/config-rule-0abc12",
        "configRuleId": "config-rule-0abc12",
        "accountId": e.account,
        "resultToken": e.result_token,
        "eventLeftScope": e.event_left_scope,
        "ruleParameters": "{}",
        "invokingEvent": invoking.to_string(),
    })
}

/// The beginnings of every message `events::config_rule` returns.
const CONFIG_RULE_ERRORS: &[&str] = &[
    "invalid event: expected an AWS Config rule event: ",
    "invalid event: Config rule event without invokingEvent",
    "invalid event: invokingEvent is not JSON: ",
    "invalid event: Config rule event without resultToken",
    "invalid event: invokingEvent has no ",
    "invalid event: unknown Config messageType ",
];

fn names_a_config_rule_problem(message: &str) -> bool {
    CONFIG_RULE_ERRORS.iter().any(|p| message.starts_with(p))
        || (message.starts_with("invalid event: invokingEvent.")
            && (message.ends_with(" is not a string") || message.contains(" is not a time (")))
}

/// The fields of a configuration item the parser reads as text.
const ITEM_FIELDS: &[&str] = &[
    "resourceType",
    "resourceId",
    "configurationItemStatus",
    "configurationItemCaptureTime",
];

/// Where a mutation lands: the Lambda event, the invoking event, or the item inside it.
#[derive(Debug, Clone, Copy)]
enum Depth {
    Event,
    Invoking,
    Item,
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn a_config_rule_event_parses_to_the_invocation_it_carries(g in config_rule_event()) {
        let invoking = invoking_event(&g.expected.invocation, g.offset_minutes);
        let parsed = events::config_rule(&config_rule_payload(&g.expected, &invoking));
        prop_assert!(matches!(&parsed, Ok(p) if *p == g.expected), "{parsed:?} != {:?}", g.expected);
    }

    #[test]
    fn a_config_rule_event_of_any_shape_parses_or_names_what_is_wrong(payload in any_json()) {
        if let Err(e) = events::config_rule(&payload) {
            let m = message_of(e);
            prop_assert!(names_a_config_rule_problem(&m), "{m}");
        }
    }

    #[test]
    fn a_config_rule_event_with_one_field_changed_at_any_depth_parses_or_names_what_is_wrong(
        g in config_rule_event(),
        depth in prop_oneof![Just(Depth::Event), Just(Depth::Invoking), Just(Depth::Item)],
        index in any::<prop::sample::Index>(),
        replacement in prop::option::of(any_json()),
    ) {
        let mut invoking = invoking_event(&g.expected.invocation, g.offset_minutes);
        let payload = match depth {
            Depth::Event => mutate(config_rule_payload(&g.expected, &invoking), &index, replacement),
            Depth::Invoking => {
                invoking = mutate(invoking, &index, replacement);
                config_rule_payload(&g.expected, &invoking)
            }
            Depth::Item => {
                for key in ["configurationItem", "configurationItemSummary"] {
                    if let Some(item) = invoking.get_mut(key) {
                        let changed = mutate(item.take(), &index, replacement.clone());
                        *item = changed;
                    }
                }
                config_rule_payload(&g.expected, &invoking)
            }
        };
        if let Err(e) = events::config_rule(&payload) {
            let m = message_of(e);
            prop_assert!(names_a_config_rule_problem(&m), "{m}");
        }
    }

    #[test]
    fn a_configuration_item_without_a_field_names_that_field(
        g in config_rule_event(),
        field in prop::sample::select(ITEM_FIELDS),
        value in prop::option::of(non_string_json()),
    ) {
        let ConfigInvocation::Change(_) = &g.expected.invocation else {
            return Ok(());
        };
        let mut invoking = invoking_event(&g.expected.invocation, g.offset_minutes);
        let item = &mut invoking["configurationItem"];
        let expected = match value {
            Some(v) => {
                item[field] = v;
                format!("invalid event: invokingEvent.{field} is not a string")
            }
            None => {
                if let Some(m) = item.as_object_mut() {
                    m.remove(field);
                }
                format!("invalid event: invokingEvent has no {field}")
            }
        };
        let parsed = events::config_rule(&config_rule_payload(&g.expected, &invoking));
        let m = message_of(parsed.expect_err("a broken item"));
        prop_assert_eq!(m, expected);
    }

    #[test]
    fn a_capture_time_that_is_not_rfc3339_is_refused_quoting_it(g in config_rule_event(), text in any::<String>()) {
        prop_assume!(DateTime::parse_from_rfc3339(&text).is_err());
        let mut invoking = invoking_event(&g.expected.invocation, g.offset_minutes);
        let path = match &g.expected.invocation {
            ConfigInvocation::Change(_) => {
                invoking["configurationItem"]["configurationItemCaptureTime"] = json!(text);
                "configurationItemCaptureTime"
            }
            ConfigInvocation::Oversized { .. } => {
                invoking["configurationItemSummary"]["configurationItemCaptureTime"] = json!(text);
                "configurationItemSummary.configurationItemCaptureTime"
            }
            ConfigInvocation::Scheduled { .. } => {
                invoking["notificationCreationTime"] = json!(text);
                "notificationCreationTime"
            }
        };
        let m = message_of(events::config_rule(&config_rule_payload(&g.expected, &invoking)).expect_err("a bad time"));
        prop_assert!(m.starts_with(&format!("invalid event: invokingEvent.{path} is not a time ({text:?}): ")), "{m}");
    }

    #[test]
    fn an_unknown_message_type_is_refused_naming_it(g in config_rule_event(), kind in any::<String>()) {
        prop_assume!(![
            "ConfigurationItemChangeNotification",
            "OversizedConfigurationItemChangeNotification",
            "ScheduledNotification",
        ]
        .contains(&kind.as_str()));
        let mut invoking = invoking_event(&g.expected.invocation, g.offset_minutes);
        invoking["messageType"] = json!(kind);
        let parsed = events::config_rule(&config_rule_payload(&g.expected, &invoking));
        let m = message_of(parsed.expect_err("unknown type"));
        prop_assert_eq!(m, format!("invalid event: unknown Config messageType {kind:?}"));
    }

    #[test]
    fn an_invoking_event_that_is_not_json_is_refused_as_such(g in config_rule_event(), text in any::<String>()) {
        prop_assume!(serde_json::from_str::<Value>(&text).is_err());
        let mut payload = config_rule_payload(&g.expected, &Value::Null);
        payload["invokingEvent"] = json!(text);
        let m = message_of(events::config_rule(&payload).expect_err("not JSON"));
        prop_assert!(m.starts_with("invalid event: invokingEvent is not JSON: "), "{m}");
    }

    #[test]
    fn a_config_rule_event_without_invoking_event_or_result_token_says_which(
        g in config_rule_event(),
        missing_token in any::<bool>(),
        as_null in any::<bool>(),
    ) {
        let invoking = invoking_event(&g.expected.invocation, g.offset_minutes);
        let mut payload = config_rule_payload(&g.expected, &invoking);
        let (field, expected) = if missing_token {
            ("resultToken", "invalid event: Config rule event without resultToken")
        } else {
            ("invokingEvent", "invalid event: Config rule event without invokingEvent")
        };
        if as_null {
            payload[field] = if missing_token { json!("") } else { Value::Null };
        } else if let Some(m) = payload.as_object_mut() {
            m.remove(field);
        }
        let m = message_of(events::config_rule(&payload).expect_err("a field is missing"));
        prop_assert_eq!(m, expected);
    }
}

// ---------------------------------------------------------------------------------------------
// SNS events (notify::incoming_from_sns_event, notify::from_sns_event, Incoming::parse)

fn sns_record(body: &str) -> Value {
    json!({
        "EventSource": "aws:sns",
        "EventVersion": "1.0",
        "EventSubscriptionArn": "arn:aws:sns:us-east-1:123456789012:finops:2bcfbf39-05c3-41de-beaa-fcfcc21c8f55",
        "Sns": {
            "Type": "Notification",
            "MessageId": "95df01b4-ee98-5cb9-9903-4c221d41eb5e",
            "TopicArn": "arn:aws:sns:us-east-1:123456789012:finops",
            "Subject": null,
            "Message": body,
            "Timestamp": "2026-11-26T06:00:05.000Z",
            "SignatureVersion": "1",
            "Signature": "EXAMPLE",
            "SigningCertUrl": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-example.pem",
            "UnsubscribeUrl": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe",
            "MessageAttributes": {"type": {"Type": "String", "Value": "held"}}
        }
    })
}

fn sns_event(bodies: &[String]) -> Value {
    json!({"Records": bodies.iter().map(|b| sns_record(b)).collect::<Vec<_>>()})
}

/// Whole dollars: exact in JSON whatever float parsing serde_json uses.
fn dollars() -> impl Strategy<Value = f64> {
    (0u32..10_000_000).prop_map(f64::from)
}

fn mode() -> impl Strategy<Value = Mode> {
    prop_oneof![Just(Mode::DryRun), Just(Mode::Approve), Just(Mode::Auto)]
}

/// FinOps messages that need no finding: a held run and a digest.
fn finops_message() -> impl Strategy<Value = Message> {
    let digest_item = (
        any::<String>(),
        any::<String>(),
        any::<String>(),
        any::<String>(),
        any::<String>(),
        prop::option::of(dollars()),
        prop::option::of(any::<String>()),
        prop::option::of(any::<String>()),
    )
        .prop_map(
            |(finding_id, rule, resource_id, action, owner, usd, approve_url, reject_url)| DigestItem {
                finding_id,
                rule,
                resource_id,
                action,
                owner,
                usd,
                approve_url,
                reject_url,
            },
        );
    prop_oneof![
        (
            any::<String>(),
            any::<usize>(),
            any::<usize>(),
            any::<usize>(),
            any::<String>()
        )
            .prop_map(|(rule, would_act, limit, scanned, detail)| Message::Held {
                rule,
                would_act,
                limit,
                scanned,
                detail,
                acted: would_act / 2,
            }),
        (
            mode(),
            any::<usize>(),
            dollars(),
            prop::collection::btree_map(
                any::<String>(),
                (any::<usize>(), dollars()).prop_map(|(count, usd)| RuleTotals { count, usd }),
                0..4
            ),
            prop::collection::vec(digest_item, 0..4),
        )
            .prop_map(|(mode, total_findings, total_usd, by_rule, top)| Message::Digest {
                mode,
                total_findings,
                total_usd,
                by_rule,
                top,
            }),
    ]
}

/// A CloudWatch alarm notification's required fields, and its body.
fn alarm_body() -> impl Strategy<Value = ([String; 6], String)> {
    (
        any::<String>(),
        "[0-9]{12}",
        prop_oneof![Just("ALARM".to_string()), Just("OK".to_string()), any::<String>()],
        any::<String>(),
        any::<String>(),
        any::<String>(),
    )
        .prop_map(|(name, account, state, reason, time, region)| {
            let body = json!({
                "AlarmName": name,
                "AlarmDescription": null,
                "AWSAccountId": account,
                "NewStateValue": state,
                "NewStateReason": reason,
                "StateChangeTime": time,
                "Region": region,
            })
            .to_string();
            ([name, account, state, reason, time, region], body)
        })
}

/// Every FinOps message `type`.
const MESSAGE_KINDS: &[&str] = &[
    "finding",
    "approval-request",
    "digest",
    "approval-result",
    "cost-alert",
    "tag-report",
    "savings-report",
    "held",
    "action-result",
];

const SNS_ERRORS: &[&str] = &[
    "invalid event: not an SNS event: ",
    "invalid event: an SNS message that is neither a FinOps message nor a CloudWatch alarm (as a FinOps message: ",
];

fn names_an_sns_problem(message: &str) -> bool {
    SNS_ERRORS.iter().any(|p| message.starts_with(p))
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn finops_messages_on_sns_parse_to_what_was_published_with_their_bodies_byte_for_byte(
        messages in prop::collection::vec(finops_message(), 0..4),
    ) {
        let bodies: Vec<String> = messages.iter().map(|m| serde_json::to_string(m).unwrap_or_default()).collect();
        let event = sns_event(&bodies);
        let incoming = notify::incoming_from_sns_event(&event);
        let Ok(incoming) = incoming else {
            return Err(TestCaseError::fail(format!("{incoming:?}")));
        };
        prop_assert_eq!(incoming.len(), messages.len());
        for ((body, parsed), (published, message)) in incoming.iter().zip(bodies.iter().zip(&messages)) {
            prop_assert_eq!(body, published);
            prop_assert!(matches!(parsed, Incoming::FinOps(m) if **m == *message), "{parsed:?} != {message:?}");
        }
        let typed = notify::from_sns_event(&event);
        let Ok(typed) = typed else {
            return Err(TestCaseError::fail(format!("{typed:?}")));
        };
        prop_assert_eq!(typed.into_iter().map(|(_, m)| m).collect::<Vec<_>>(), messages);
    }

    #[test]
    fn a_cloudwatch_alarm_on_sns_parses_to_its_fields((fields, body) in alarm_body()) {
        let incoming = notify::incoming_from_sns_event(&sns_event(std::slice::from_ref(&body)));
        let Ok(incoming) = incoming else {
            return Err(TestCaseError::fail(format!("{incoming:?}")));
        };
        prop_assert_eq!(incoming.len(), 1);
        let (published, parsed) = &incoming[0];
        prop_assert_eq!(published, &body);
        let Incoming::Alarm(a) = parsed else {
            return Err(TestCaseError::fail(format!("not an alarm: {parsed:?}")));
        };
        let [name, account, state, reason, time, region] = &fields;
        prop_assert_eq!(&a.alarm_name, name);
        prop_assert_eq!(&a.aws_account_id, account);
        prop_assert_eq!(&a.new_state_value, state);
        prop_assert_eq!(&a.new_state_reason, reason);
        prop_assert_eq!(&a.state_change_time, time);
        prop_assert_eq!(&a.region, region);
        prop_assert_eq!(parsed.kind(), "cloudwatch-alarm");
    }

    #[test]
    fn an_sns_event_of_any_shape_parses_or_names_what_is_wrong(payload in any_json()) {
        match notify::incoming_from_sns_event(&payload) {
            Ok(v) => prop_assert!(v.is_empty() || payload.get("Records").is_some()),
            Err(e) => {
                let m = message_of(e);
                prop_assert!(names_an_sns_problem(&m), "{m}");
            }
        }
    }

    #[test]
    fn an_sns_record_with_one_field_changed_parses_or_names_what_is_wrong(
        message in finops_message(),
        in_envelope in any::<bool>(),
        index in any::<prop::sample::Index>(),
        replacement in prop::option::of(any_json()),
    ) {
        let body = serde_json::to_string(&message).unwrap_or_default();
        let mut record = sns_record(&body);
        if in_envelope {
            record = mutate(record, &index, replacement);
        } else {
            let sns = mutate(record["Sns"].take(), &index, replacement);
            record["Sns"] = sns;
        }
        match notify::incoming_from_sns_event(&json!({"Records": [record.clone()]})) {
            // One record, one message, its body as the record carries it.
            Ok(v) => {
                prop_assert_eq!(v.len(), 1);
                prop_assert_eq!(Some(v[0].0.as_str()), record["Sns"]["Message"].as_str());
            }
            Err(e) => {
                let m = message_of(e);
                prop_assert!(names_an_sns_problem(&m), "{m}");
            }
        }
    }

    #[test]
    fn an_sns_message_body_of_any_text_parses_or_says_how_each_reading_failed(body in any::<String>()) {
        if let Err(e) = Incoming::parse(&body) {
            let m = message_of(e);
            prop_assert!(m.starts_with(SNS_ERRORS[1]) && m.contains("; as an alarm: "), "{m}");
        }
        if let Err(e) = notify::from_sns_event(&sns_event(&[body])) {
            let m = message_of(e);
            prop_assert!(m.starts_with("invalid event: an SNS message that is not a FinOps message: "), "{m}");
        }
    }

    #[test]
    fn a_finops_message_with_one_field_changed_parses_or_says_how_each_reading_failed(
        message in finops_message(),
        index in any::<prop::sample::Index>(),
        replacement in prop::option::of(any_json()),
    ) {
        let value = mutate(serde_json::to_value(&message).unwrap_or_default(), &index, replacement);
        if let Err(e) = Incoming::parse(&value.to_string()) {
            let m = message_of(e);
            prop_assert!(m.starts_with(SNS_ERRORS[1]) && m.contains("; as an alarm: "), "{m}");
        }
    }

    #[test]
    fn a_message_of_an_unknown_type_is_refused_as_an_unknown_variant(kind in any::<String>()) {
        // A known type with missing fields is refused too, for another reason.
        prop_assume!(!MESSAGE_KINDS.contains(&kind.as_str()));
        let body = json!({"type": kind, "rule": "idle-ec2"}).to_string();
        let m = message_of(Incoming::parse(&body).expect_err("no such type"));
        prop_assert!(m.contains("as a FinOps message: unknown variant"), "{m}");
    }
}

// ---------------------------------------------------------------------------------------------
// Signed approval links (approval::LinkSigner)

const BASE_URL: &str = "https://abc.lambda-url.us-east-1.on.aws/";

fn link_key() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 32..80)
}

fn decision() -> impl Strategy<Value = Decision> {
    prop_oneof![
        Just(Decision::Approve),
        Just(Decision::Reject),
        Just(Decision::Rollback)
    ]
}

fn signer(key: &[u8]) -> LinkSigner {
    LinkSigner::new(key.to_vec(), BASE_URL).expect("a key of at least 32 bytes")
}

fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(secs, 0).unwrap_or_default()
}

/// Seconds between 2001 and 2100.
fn now_secs() -> impl Strategy<Value = i64> {
    1_000_000_000i64..4_102_444_800
}

/// A change to a token or signature string.
#[derive(Debug, Clone)]
enum Mutation {
    /// Replace the character at an index with another one.
    Replace(prop::sample::Index, char),
    /// Keep only a strict prefix.
    Truncate(prop::sample::Index),
    /// Add text at the end.
    Append(String),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let token_char = "[A-Za-z0-9_.=+/-]".prop_map(|s| s.chars().next().unwrap_or('A'));
    prop_oneof![
        (any::<prop::sample::Index>(), prop_oneof![token_char, any::<char>()])
            .prop_map(|(i, c)| Mutation::Replace(i, c)),
        any::<prop::sample::Index>().prop_map(Mutation::Truncate),
        any::<String>()
            .prop_filter("something to append", |s| !s.is_empty())
            .prop_map(Mutation::Append),
    ]
}

/// Applies a mutation; the result always differs from `s` (which must not be empty).
fn apply(s: &str, m: &Mutation) -> String {
    let mut chars: Vec<char> = s.chars().collect();
    match m {
        Mutation::Replace(i, c) => {
            let at = i.index(chars.len());
            chars[at] = if chars[at] == *c {
                if *c == 'A' {
                    'B'
                } else {
                    'A'
                }
            } else {
                *c
            };
            chars.into_iter().collect()
        }
        Mutation::Truncate(i) => chars[..i.index(chars.len())].iter().collect(),
        Mutation::Append(tail) => format!("{s}{tail}"),
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn a_minted_token_verifies_to_its_claims(
        key in link_key(),
        rid in any::<String>(),
        d in decision(),
        now in now_secs(),
        ttl in 1i64..=90 * 86_400,
    ) {
        let s = signer(&key);
        let token = s.token(&rid, d, at(now + ttl));
        prop_assert_eq!(s.verify(&token, at(now)), Ok(Claims { rid: rid.clone(), d, exp: now + ttl }));
        let link = s.link(&rid, d, at(now + ttl));
        prop_assert_eq!(link, format!("{}/decide?token={token}", BASE_URL.trim_end_matches('/')));
    }

    #[test]
    fn a_token_changed_in_any_way_is_refused(
        key in link_key(),
        rid in any::<String>(),
        d in decision(),
        now in now_secs(),
        ttl in 1i64..=90 * 86_400,
        m in mutation(),
    ) {
        let s = signer(&key);
        let token = s.token(&rid, d, at(now + ttl));
        let changed = apply(&token, &m);
        prop_assert_ne!(&changed, &token);
        let verdict = s.verify(&changed, at(now));
        prop_assert!(verdict.is_err(), "{m:?} turned {token} into {changed}, which verified: {verdict:?}");
    }

    #[test]
    fn any_string_is_refused_as_a_token(key in link_key(), token in any::<String>(), now in now_secs()) {
        prop_assert!(signer(&key).verify(&token, at(now)).is_err());
    }

    #[test]
    fn well_encoded_claims_with_a_made_up_signature_are_refused_as_a_bad_signature(
        key in link_key(),
        rid in any::<String>(),
        d in decision(),
        exp in any::<i64>(),
        signature in prop::collection::vec(any::<u8>(), 0..64),
        now in now_secs(),
    ) {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use base64::Engine;
        let payload = serde_json::to_vec(&Claims { rid, d, exp }).unwrap_or_default();
        let token = format!("{}.{}", URL_SAFE_NO_PAD.encode(payload), URL_SAFE_NO_PAD.encode(signature));
        prop_assert_eq!(signer(&key).verify(&token, at(now)), Err(TokenError::BadSignature));
    }

    #[test]
    fn a_token_of_another_key_is_refused_as_a_bad_signature(
        key in link_key(),
        other in link_key(),
        rid in any::<String>(),
        d in decision(),
        now in now_secs(),
    ) {
        prop_assume!(key != other);
        let token = signer(&other).token(&rid, d, at(now + 3600));
        prop_assert_eq!(signer(&key).verify(&token, at(now)), Err(TokenError::BadSignature));
    }

    #[test]
    fn a_token_at_or_past_its_expiry_is_refused_as_expired(
        key in link_key(),
        rid in any::<String>(),
        d in decision(),
        now in now_secs(),
        age in 0i64..=10 * 365 * 86_400,
    ) {
        let s = signer(&key);
        let token = s.token(&rid, d, at(now - age));
        prop_assert_eq!(s.verify(&token, at(now)), Err(TokenError::Expired));
    }

    #[test]
    fn a_replaced_key_is_trusted_only_before_its_instant_and_for_links_expiring_by_then(
        old in link_key(),
        new in link_key(),
        rid in any::<String>(),
        d in decision(),
        now in now_secs(),
        until_in in -86_400i64..=30 * 86_400,
        ttl in 1i64..=60 * 86_400,
    ) {
        prop_assume!(old != new);
        let until = now + until_in;
        let s = signer(&new).accepting(old.clone(), at(until));
        let token = signer(&old).token(&rid, d, at(now + ttl));
        let verdict = s.verify(&token, at(now));
        if now < until && now + ttl <= until {
            prop_assert_eq!(verdict, Ok(Claims { rid, d, exp: now + ttl }));
        } else {
            prop_assert_eq!(verdict, Err(TokenError::BadSignature));
        }
    }

    #[test]
    fn a_link_key_shorter_than_32_bytes_is_refused_saying_so(key in prop::collection::vec(any::<u8>(), 0..32)) {
        let m = message_of(LinkSigner::new(key, BASE_URL).expect_err("a short key"));
        prop_assert!(m.contains("the link-signing key must be at least 32 bytes"), "{m}");
    }
}

// ---------------------------------------------------------------------------------------------
// Slack request signatures (slack::sign, slack::verify_signature)

fn secret() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..64)
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..512)
}

fn skew() -> impl Strategy<Value = i64> {
    -MAX_SIGNATURE_AGE_SECONDS..=MAX_SIGNATURE_AGE_SECONDS
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn a_slack_request_signed_with_the_secret_verifies_within_five_minutes(
        secret in secret(),
        body in body(),
        ts in now_secs(),
        skew in skew(),
    ) {
        let sig = slack::sign(&secret, ts, &body);
        prop_assert_eq!(
            slack::verify_signature(&secret, Some(ts.to_string().as_str()), Some(sig.as_str()), &body, at(ts + skew)),
            Ok(())
        );
    }

    #[test]
    fn a_slack_request_with_another_body_is_refused_as_a_mismatch(
        secret in secret(),
        body in body(),
        other in body(),
        ts in now_secs(),
    ) {
        prop_assume!(body != other);
        let sig = slack::sign(&secret, ts, &body);
        prop_assert_eq!(
            slack::verify_signature(&secret, Some(ts.to_string().as_str()), Some(sig.as_str()), &other, at(ts)),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn a_slack_request_with_another_timestamp_is_refused_as_a_mismatch(
        secret in secret(),
        body in body(),
        ts in now_secs(),
        shift in skew(),
    ) {
        prop_assume!(shift != 0);
        let sig = slack::sign(&secret, ts, &body);
        prop_assert_eq!(
            slack::verify_signature(
                &secret,
                Some((ts + shift).to_string().as_str()),
                Some(sig.as_str()),
                &body,
                at(ts)
            ),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn a_slack_request_signed_with_another_secret_is_refused_as_a_mismatch(
        secret in secret(),
        other in secret(),
        body in body(),
        ts in now_secs(),
    ) {
        // HMAC pads short keys with zeros: keys that differ only in trailing zeros are the same key.
        prop_assume!(secret.iter().rev().skip_while(|b| **b == 0).ne(other.iter().rev().skip_while(|b| **b == 0)));
        let sig = slack::sign(&other, ts, &body);
        prop_assert_eq!(
            slack::verify_signature(&secret, Some(ts.to_string().as_str()), Some(sig.as_str()), &body, at(ts)),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn a_slack_signature_changed_in_any_way_is_refused_as_a_mismatch(
        secret in secret(),
        body in body(),
        ts in now_secs(),
        m in mutation(),
    ) {
        let sig = slack::sign(&secret, ts, &body);
        let changed = apply(&sig, &m);
        // Slack's hex is lower case, but upper case decodes to the same bytes; blanks are trimmed.
        prop_assume!(changed.trim().to_ascii_lowercase() != sig);
        prop_assert_eq!(
            slack::verify_signature(&secret, Some(ts.to_string().as_str()), Some(changed.as_str()), &body, at(ts)),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn a_stale_slack_request_is_refused_as_stale_even_when_signed(
        secret in secret(),
        body in body(),
        ts in now_secs(),
        age in (MAX_SIGNATURE_AGE_SECONDS + 1)..=10 * 365 * 86_400,
        future in any::<bool>(),
    ) {
        let sig = slack::sign(&secret, ts, &body);
        let now = if future { ts - age } else { ts + age };
        prop_assert_eq!(
            slack::verify_signature(&secret, Some(ts.to_string().as_str()), Some(sig.as_str()), &body, at(now)),
            Err(SignatureError::Stale)
        );
    }

    #[test]
    fn a_slack_request_without_both_headers_is_refused_as_missing(
        secret in secret(),
        body in body(),
        ts in prop::option::of(any::<String>()),
        sig in prop::option::of(any::<String>()),
        now in now_secs(),
    ) {
        prop_assume!(ts.is_none() || sig.is_none());
        prop_assert_eq!(
            slack::verify_signature(&secret, ts.as_deref(), sig.as_deref(), &body, at(now)),
            Err(SignatureError::Missing)
        );
    }

    #[test]
    fn slack_headers_of_any_value_are_refused_without_panicking(
        secret in secret(),
        body in body(),
        ts in prop_oneof![
            any::<String>(),
            any::<i64>().prop_map(|n| n.to_string()),
            Just(i64::MIN.to_string()),
            Just(i64::MAX.to_string()),
        ],
        sig in prop_oneof![any::<String>(), "v0=[0-9a-fA-F]{0,70}", "v0=.{0,70}"],
        now in now_secs(),
    ) {
        let verdict = slack::verify_signature(&secret, Some(ts.as_str()), Some(sig.as_str()), &body, at(now));
        prop_assert!(verdict.is_err(), "{ts:?} {sig:?} verified");
        if ts.trim().parse::<i64>().is_err() {
            // A timestamp that is not a number is reported as a missing one.
            prop_assert_eq!(verdict, Err(SignatureError::Missing));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Policy YAML (Policy::from_yaml, Policy::validate)

const SOURCE: &str = "team.yaml";

/// Every section and field name of the policy, so that generated YAML reaches real fields.
const POLICY_KEYS: &[&str] = &[
    "mode",
    "exempt_tag",
    "required_tags",
    "approval_ttl_hours",
    "max_actions",
    "max_actions_percent",
    "action_time_margin_seconds",
    "action_concurrency",
    "idle_ec2",
    "ebs_cleanup",
    "cost_alert",
    "s3_public",
    "tag_compliance",
    "approvals",
    "notify",
    "rightsizing",
    "jira",
    "savings_report",
    "lookback_days",
    "cpu_daily_average_below",
    "network_bytes_per_day_below",
    "idle_days_required",
    "grace_days",
    "snapshot_before_delete",
    "allow_irreversible_delete",
    "snapshot_wait_seconds",
    "metric",
    "total_usd",
    "per_service_usd",
    "levels_percent",
    "over_last_month_percent",
    "action",
    "block",
    "block_public_acls",
    "ignore_public_acls",
    "block_public_policy",
    "restrict_public_buckets",
    "stop_after_days",
    "kpi_percent",
    "slack_users",
    "emails",
    "email_domains",
    "oidc",
    "issuer",
    "client_id",
    "email_verified_required",
    "anyone_with_link",
    "people",
    "slack",
    "email",
    "two_approvers_when_tagged",
    "rollback_link_days",
    "previous_link_key_until",
    "digest_over",
    "digest_top",
    "headroom_percent",
    "min_days_with_data",
    "bedrock_model_id",
    "bedrock_timeout_seconds",
    "max_candidates",
    "site_url",
    "project_key",
    "issue_type",
    "labels",
    "priorities",
    "done_transition",
    "rules",
    "weeks",
    "bucket",
    "prefix",
    "link_hours",
];

/// The policy's sections ("" is the top level).
const POLICY_SECTIONS: &[&str] = &[
    "",
    "idle_ec2",
    "ebs_cleanup",
    "cost_alert",
    "s3_public",
    "s3_public.block",
    "tag_compliance",
    "approvals",
    "approvals.oidc",
    "notify",
    "rightsizing",
    "jira",
    "savings_report",
];

/// YAML values a person might write, right or wrong, each well-formed YAML.
const YAML_VALUES: &[&str] = &[
    "0",
    "1",
    "-1",
    "3",
    "7",
    "16",
    "17",
    "100",
    "101",
    "455",
    "456",
    "1000",
    "1001",
    "4294967295",
    "4294967296",
    "18446744073709551616",
    "-0.0",
    "0.5",
    "1e3",
    "1e309",
    ".nan",
    ".inf",
    "-.inf",
    "0x10",
    "0o17",
    "~",
    "null",
    "''",
    "' '",
    "true",
    "false",
    "yes",
    "dry-run",
    "approve",
    "auto",
    "notify",
    "mark-and-stop",
    "block-public-access",
    "UnblendedCost",
    "https://example.atlassian.net",
    "https://accounts.example.com",
    "ftp://x",
    "x",
    "x y",
    "[]",
    "[1, 2]",
    "['', ' ']",
    "[x y]",
    "[ana@example.com]",
    "[example.com]",
    "[{slack: U0ANA, email: ana@example.com}]",
    "{}",
    "{a: 1}",
    "{Amazon EC2: -5}",
    "{issuer: 'https://accounts.example.com', client_id: abc}",
    "!!str 5",
    "&anchor 5",
    "2026-11-26T06:00:00Z",
];

/// The policy's error messages all start like this.
fn policy_error_prefix(source: &str) -> String {
    format!("invalid policy in {source}: ")
}

/// The numbers a policy accepts with its checks are finite.
fn checked_numbers_are_finite(p: &Policy) -> bool {
    p.max_actions_percent.is_finite()
        && p.idle_ec2.cpu_daily_average_below.is_finite()
        && p.idle_ec2.network_bytes_per_day_below.is_finite()
        && p.cost_alert.total_usd.is_finite()
        && p.cost_alert.per_service_usd.values().all(|v| v.is_finite())
        && p.cost_alert.over_last_month_percent.is_none_or(f64::is_finite)
        && p.tag_compliance.kpi_percent.is_finite()
        && p.rightsizing.headroom_percent.is_finite()
}

/// The metrics Cost Explorer alerts may use.
const COST_METRICS: &[&str] = &[
    "UnblendedCost",
    "BlendedCost",
    "AmortizedCost",
    "NetUnblendedCost",
    "NetAmortizedCost",
];

fn rule_mode() -> impl Strategy<Value = Option<Mode>> {
    prop::option::of(mode())
}

/// Text a person might leave in a field: anything, empty or blank.
fn policy_text() -> impl Strategy<Value = String> {
    prop_oneof![any::<String>(), Just(String::new()), Just(" ".to_string())]
}

/// Numbers with the awkward ones made likely.
fn policy_number() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>(),
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(0.0),
        Just(-0.0),
        Just(100.0),
    ]
}

/// A valid policy: every checked field in range, the rest anything.
fn valid_policy() -> impl Strategy<Value = Policy> {
    let word = "[A-Za-z][A-Za-z0-9:_./-]{0,20}";
    let top = (
        mode(),
        word,
        prop::collection::vec(word, 0..4),
        1u32..=720,
        any::<u32>(),
        (0u32..=10_000).prop_map(|c| f64::from(c) / 100.0),
        0u32..=600,
        1u32..=16,
        prop::collection::vec("U[A-Z0-9]{8}", 0..3),
        any::<bool>(),
    );
    let idle = (
        rule_mode(),
        1u32..=455,
        any::<u32>(),
        (1u32..=10_000).prop_map(|c| f64::from(c) / 100.0),
        (0u64..1_000_000_000_000).prop_map(|b| b as f64),
    );
    let ebs = (rule_mode(), any::<u32>(), any::<bool>(), any::<bool>(), 0u32..=840);
    let cost = (
        rule_mode(),
        prop::sample::select(COST_METRICS),
        (1u32..1_000_000_000).prop_map(f64::from),
        prop::collection::btree_map(
            "[A-Z][A-Za-z0-9 ()-]{0,20}",
            (1u32..1_000_000).prop_map(f64::from),
            0..4,
        ),
        prop::collection::vec(1u32..=1000, 1..5),
        prop::option::of((0u32..100_000).prop_map(|c| f64::from(c) / 100.0)),
    );
    (top, idle, ebs, cost).prop_map(|(top, idle, ebs, cost)| {
        let mut p = Policy::default();
        (
            p.mode,
            p.exempt_tag,
            p.required_tags,
            p.approval_ttl_hours,
            p.max_actions,
            p.max_actions_percent,
            p.action_time_margin_seconds,
            p.action_concurrency,
            p.approvals.slack_users,
            p.approvals.anyone_with_link,
        ) = top;
        let (mode, lookback, required, cpu, network) = idle;
        p.idle_ec2.mode = mode;
        p.idle_ec2.lookback_days = lookback;
        p.idle_ec2.idle_days_required = 1 + required % lookback;
        p.idle_ec2.cpu_daily_average_below = cpu;
        p.idle_ec2.network_bytes_per_day_below = network;
        (
            p.ebs_cleanup.mode,
            p.ebs_cleanup.grace_days,
            p.ebs_cleanup.snapshot_before_delete,
            p.ebs_cleanup.allow_irreversible_delete,
            p.ebs_cleanup.snapshot_wait_seconds,
        ) = ebs;
        let (mode, metric, total, per_service, levels, over_last_month) = cost;
        p.cost_alert.mode = mode;
        p.cost_alert.metric = metric.to_string();
        p.cost_alert.total_usd = total;
        p.cost_alert.per_service_usd = per_service;
        p.cost_alert.levels_percent = levels;
        p.cost_alert.over_last_month_percent = over_last_month;
        // Approve mode needs someone who may approve.
        if !p.approvals.has_approvers() {
            p.approvals.anyone_with_link = true;
        }
        p
    })
}

/// A policy built in code with anything in its checked fields: NaN, infinities, zero, the limits.
fn any_policy() -> impl Strategy<Value = Policy> {
    let top = (
        mode(),
        policy_text(),
        prop::collection::vec(policy_text(), 0..3),
        any::<u32>(),
        policy_number(),
        any::<u32>(),
        any::<u32>(),
        any::<u32>(),
        any::<bool>(),
        prop::collection::vec(policy_text(), 0..2),
    );
    let idle = (
        any::<u32>(),
        any::<u32>(),
        policy_number(),
        policy_number(),
        any::<u32>(),
    );
    let cost = (
        policy_number(),
        prop::collection::btree_map(any::<String>(), policy_number(), 0..3),
        prop::collection::vec(any::<u32>(), 0..3),
        prop::option::of(policy_number()),
        policy_text(),
        policy_number(),
    );
    let rest = (
        any::<u32>(),
        any::<u32>(),
        policy_number(),
        any::<u64>(),
        any::<usize>(),
        any::<u32>(),
        any::<u32>(),
        policy_text(),
    );
    (top, idle, cost, rest).prop_map(|(top, idle, cost, rest)| {
        let mut p = Policy::default();
        (
            p.mode,
            p.exempt_tag,
            p.required_tags,
            p.approval_ttl_hours,
            p.max_actions_percent,
            p.action_time_margin_seconds,
            p.action_concurrency,
            p.approvals.rollback_link_days,
            p.approvals.anyone_with_link,
            p.approvals.email_domains,
        ) = top;
        (
            p.idle_ec2.lookback_days,
            p.idle_ec2.idle_days_required,
            p.idle_ec2.cpu_daily_average_below,
            p.idle_ec2.network_bytes_per_day_below,
            p.ebs_cleanup.snapshot_wait_seconds,
        ) = idle;
        (
            p.cost_alert.total_usd,
            p.cost_alert.per_service_usd,
            p.cost_alert.levels_percent,
            p.cost_alert.over_last_month_percent,
            p.cost_alert.metric,
            p.tag_compliance.kpi_percent,
        ) = cost;
        (
            p.rightsizing.lookback_days,
            p.rightsizing.min_days_with_data,
            p.rightsizing.headroom_percent,
            p.rightsizing.bedrock_timeout_seconds,
            p.rightsizing.max_candidates,
            p.savings_report.weeks,
            p.savings_report.link_hours,
            p.jira.site_url,
        ) = rest;
        p
    })
}

/// A YAML document setting one field (maybe one the section does not have) to some value.
fn one_field_yaml() -> impl Strategy<Value = (String, String, String)> {
    (
        prop::sample::select(POLICY_SECTIONS),
        prop::sample::select(POLICY_KEYS),
        prop::sample::select(YAML_VALUES),
    )
        .prop_map(|(section, key, value)| {
            let mut yaml = String::new();
            let mut indent = String::new();
            for part in section.split('.').filter(|s| !s.is_empty()) {
                yaml.push_str(&format!("{indent}{part}:\n"));
                indent.push_str("  ");
            }
            yaml.push_str(&format!("{indent}{key}: {value}\n"));
            (yaml, section.to_string(), key.to_string())
        })
}

/// A field out of its range, as YAML, and how the error must begin.
fn out_of_range_yaml() -> impl Strategy<Value = (String, String)> {
    // Zero, or above the range's top and within u32.
    let beyond = |hi: u64| prop_oneof![Just(0u64), (hi + 1)..=u64::from(u32::MAX)];
    prop_oneof![
        beyond(720).prop_map(|n| (
            format!("approval_ttl_hours: {n}\n"),
            "approval_ttl_hours: must be between 1 and 720".to_string()
        )),
        beyond(16).prop_map(|n| (
            format!("action_concurrency: {n}\n"),
            format!("action_concurrency: must be between 1 and 16, got {n}")
        )),
        beyond(455).prop_map(|n| (
            format!("idle_ec2:\n  lookback_days: {n}\n"),
            format!("idle_ec2.lookback_days: must be between 1 and 455, got {n}")
        )),
        beyond(52).prop_map(|n| (
            format!("savings_report:\n  weeks: {n}\n"),
            format!("savings_report.weeks: must be between 1 and 52, got {n}")
        )),
        beyond(63).prop_map(|n| (
            format!("rightsizing:\n  lookback_days: {n}\n"),
            format!("rightsizing.lookback_days: must be between 1 and 63, got {n}")
        )),
        (u64::from(u32::MAX) + 1..=u64::MAX).prop_map(|n| (
            format!("idle_ec2:\n  lookback_days: {n}\n"),
            "idle_ec2.lookback_days: ".to_string()
        )),
        // Within ±1e15, Rust writes floats without an exponent: plain YAML floats.
        prop_oneof![-1e15f64..-1e-3, 100.000_001f64..1e15].prop_map(|v| (
            format!("max_actions_percent: {v:?}\n"),
            format!("max_actions_percent: must be between 0 and 100, got {v}")
        )),
        prop_oneof![Just(0.0f64), Just(-0.0f64), -1e15f64..0.0].prop_map(|v| (
            format!("cost_alert:\n  total_usd: {v:?}\n"),
            format!("cost_alert.total_usd: must be a positive amount, got {v}")
        )),
        "[ \t]{0,4}".prop_map(|blank| (
            format!("exempt_tag: '{blank}'\n"),
            "exempt_tag: must not be blank".to_string()
        )),
        "[a-z]{1,12}"
            .prop_filter("not a field", |k| !POLICY_KEYS.contains(&k.as_str()))
            .prop_map(|k| (format!("{k}: 1\n"), format!("unknown field `{k}`"))),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn a_valid_policy_written_as_yaml_reads_back_as_the_same_policy(p in valid_policy()) {
        prop_assert_eq!(p.validate(), Ok(()));
        let yaml = serde_norway::to_string(&p).unwrap_or_default();
        let back = Policy::from_yaml(&yaml, SOURCE);
        prop_assert!(matches!(&back, Ok(b) if *b == p), "{yaml}\n{back:?}");
    }

    #[test]
    fn policy_text_of_any_kind_is_read_or_refused_naming_its_source(
        text in prop_oneof![any::<String>(), "[ -~\n]{0,200}"],
        source in prop_oneof![Just(SOURCE.to_string()), any::<String>()],
    ) {
        match Policy::from_yaml(&text, &source) {
            Ok(p) => {
                prop_assert_eq!(p.validate(), Ok(()));
                prop_assert!(checked_numbers_are_finite(&p), "{p:?}");
            }
            Err(e) => {
                let m = message_of(e);
                prop_assert!(m.starts_with(&policy_error_prefix(&source)), "{m}");
            }
        }
    }

    #[test]
    fn a_policy_of_any_shape_is_read_or_refused_naming_its_source(
        doc in prop::collection::btree_map(prop::sample::select(POLICY_KEYS), json_over(POLICY_KEYS), 0..6),
    ) {
        let yaml = serde_norway::to_string(&doc).unwrap_or_default();
        match Policy::from_yaml(&yaml, SOURCE) {
            Ok(p) => {
                prop_assert_eq!(p.validate(), Ok(()));
                prop_assert!(checked_numbers_are_finite(&p), "{p:?}");
            }
            Err(e) => {
                let m = message_of(e);
                prop_assert!(m.starts_with(&policy_error_prefix(SOURCE)), "{m}");
            }
        }
    }

    #[test]
    fn a_policy_setting_one_field_to_any_value_is_read_or_refused_naming_that_field(
        (yaml, section, key) in one_field_yaml(),
    ) {
        match Policy::from_yaml(&yaml, SOURCE) {
            Ok(p) => {
                prop_assert_eq!(p.validate(), Ok(()));
                prop_assert!(checked_numbers_are_finite(&p), "{yaml}{p:?}");
            }
            Err(e) => {
                let m = message_of(e);
                // The field, or its section when the section as a whole is wrong (`oidc` lacking a field).
                let named = m.contains(&key) || (!section.is_empty() && m.contains(&section));
                prop_assert!(m.starts_with(&policy_error_prefix(SOURCE)) && named, "{yaml}{m}");
            }
        }
    }

    #[test]
    fn a_policy_field_out_of_range_is_refused_naming_the_field_and_the_range((yaml, expected) in out_of_range_yaml()) {
        let m = message_of(Policy::from_yaml(&yaml, SOURCE).expect_err("out of range"));
        let prefix = format!("{}{expected}", policy_error_prefix(SOURCE));
        let unknown_field = expected.starts_with("unknown field") && m.contains(&expected);
        prop_assert!(m.starts_with(&prefix) || unknown_field, "{yaml}{m}");
    }

    #[test]
    fn deeply_nested_policy_yaml_is_refused_without_overflowing_the_stack(
        depth in 2usize..3_000,
        flow in any::<bool>(),
    ) {
        // One level is a valid value (`[]`, `{a: x}`); two or more are not strings.
        let yaml = if flow {
            format!("required_tags: {}{}\n", "[".repeat(depth), "]".repeat(depth))
        } else {
            format!("approvals:\n  two_approvers_when_tagged: {}x{}\n", "{a: ".repeat(depth), "}".repeat(depth))
        };
        let m = message_of(Policy::from_yaml(&yaml, SOURCE).expect_err("nested too deep for a list of tags"));
        prop_assert!(m.starts_with(&policy_error_prefix(SOURCE)), "{m}");
    }

    #[test]
    fn any_policy_built_in_code_validates_or_names_the_field_that_is_wrong(p in any_policy()) {
        match p.validate() {
            Ok(()) => prop_assert!(checked_numbers_are_finite(&p), "{p:?}"),
            Err(m) => {
                let names_a_field = POLICY_KEYS
                    .iter()
                    .any(|k| [":", ".", "["].iter().any(|after| m.starts_with(&format!("{k}{after}"))));
                // check_approvers opens with the mode that needs approvers, then names the fields.
                let names_approvers = m.starts_with("approve mode (") && m.contains("approvals.");
                prop_assert!(names_a_field || names_approvers, "{m}");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Dollar amounts from message bodies (slack::usd renders what SNS delivered)

proptest! {
    #![proptest_config(config())]

    #[test]
    fn a_dollar_amount_of_any_size_renders_without_panicking(
        v in prop_oneof![
            any::<f64>(),
            Just(f64::NAN),
            Just(f64::INFINITY),
            Just(f64::NEG_INFINITY),
            Just(f64::MAX),
            Just(f64::MIN),
            Just(-1e300),
        ],
    ) {
        let text = slack::usd(Some(v));
        if v.is_finite() {
            prop_assert!(text.starts_with('$') && text.contains('.'), "{v}: {text}");
        } else {
            // Not a number of dollars: said so, not printed as one.
            prop_assert_eq!(text, "unknown");
        }
    }

    #[test]
    fn a_dollar_amount_renders_as_its_value_in_cents_with_thousands_separators(
        cents in -100_000_000_000_000i64..100_000_000_000_000,
    ) {
        let v = cents as f64 / 100.0;
        let text = slack::usd(Some(v));
        let digits: String = text.trim_start_matches('$').chars().filter(|c| *c != ',').collect();
        prop_assert_eq!(digits.parse::<f64>().ok(), Some(v), "{}", text);
        let unsigned = text.trim_start_matches('$').trim_start_matches('-');
        let whole = unsigned.split('.').next().unwrap_or_default();
        prop_assert!(whole.split(',').skip(1).all(|group| group.len() == 3), "{text}");
    }
}

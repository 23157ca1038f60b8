//! Property tests of the approval function's pure parser of outside data: the query strings and
//! form bodies (`handler::form`) of Function URL requests and Slack interactivity posts. The rest
//! of the request handling needs an `App` (AWS clients and a state table): see the shared crate's
//! `hostile_input` tests for the token and signature checks it calls.

use std::collections::HashMap;

use approval::handler::form;
use chrono::DateTime;
use proptest::prelude::*;
use remediation::approval::{Decision, LinkSigner};

fn config() -> ProptestConfig {
    ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Text without U+FFFD: `form` reads that character as the mark of a bad escape.
fn form_text() -> impl Strategy<Value = String> {
    any::<String>().prop_filter("no replacement character", |s| !s.contains('\u{FFFD}'))
}

fn encode<'a>(pairs: impl IntoIterator<Item = (&'a String, &'a String)>) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

fn decision() -> impl Strategy<Value = Decision> {
    prop_oneof![
        Just(Decision::Approve),
        Just(Decision::Reject),
        Just(Decision::Rollback)
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn a_query_or_body_of_any_bytes_is_read_only_if_it_is_utf8(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let parsed = form(&bytes);
        if std::str::from_utf8(&bytes).is_err() {
            prop_assert_eq!(parsed, None);
        }
    }

    #[test]
    fn a_query_or_body_of_any_text_is_read_or_refused_without_panicking(
        text in prop_oneof![any::<String>(), "[a-z=&%+0-9A-F.;]{0,64}"],
    ) {
        if let Some(fields) = form(text.as_bytes()) {
            // Whatever was read decoded cleanly.
            let clean = fields.iter().all(|(k, v)| !k.contains(char::REPLACEMENT_CHARACTER) && !v.contains(char::REPLACEMENT_CHARACTER));
            prop_assert!(clean, "a replacement character in {:?}", fields);
        }
    }

    #[test]
    fn an_encoded_form_reads_back_as_its_fields(
        fields in prop::collection::hash_map(form_text(), form_text(), 0..6),
    ) {
        let encoded = encode(&fields);
        prop_assert_eq!(form(encoded.as_bytes()), Some(fields));
    }

    #[test]
    fn a_field_given_twice_keeps_its_last_value(
        key in form_text(),
        first in form_text(),
        last in form_text(),
    ) {
        let encoded = encode([(&key, &first), (&key, &last)]);
        let fields = form(encoded.as_bytes());
        prop_assert_eq!(fields.as_ref().and_then(|f| f.get(&key)), Some(&last));
        prop_assert_eq!(fields.map(|f| f.len()), Some(1));
    }

    #[test]
    fn an_escape_that_decodes_to_invalid_utf8_is_refused(
        key in "[a-z]{1,8}",
        prefix in "[a-z0-9]{0,8}",
        byte in 0x80u8..=0xff,
    ) {
        // A lone byte of 0x80 or above is never UTF-8 on its own.
        let query = format!("{key}={prefix}%{byte:02X}");
        prop_assert_eq!(form(query.as_bytes()), None);
    }

    #[test]
    fn a_link_query_yields_the_token_that_verifies(
        key in prop::collection::vec(any::<u8>(), 32..64),
        rid in any::<String>(),
        d in decision(),
        now in 1_000_000_000i64..4_000_000_000,
    ) {
        let signer = LinkSigner::new(key, "https://abc.lambda-url.us-east-1.on.aws").expect("a 32-byte key");
        let at = |secs: i64| DateTime::from_timestamp(secs, 0).unwrap_or_default();
        let link = signer.link(&rid, d, at(now + 3600));
        let query = link.split_once('?').map(|(_, q)| q).unwrap_or_default();
        let fields: HashMap<String, String> = form(query.as_bytes()).unwrap_or_default();
        let token = fields.get("token").map(String::as_str).unwrap_or_default();
        let claims = signer.verify(token, at(now));
        prop_assert!(matches!(&claims, Ok(c) if c.rid == rid && c.d == d), "{link}: {claims:?}");
    }
}

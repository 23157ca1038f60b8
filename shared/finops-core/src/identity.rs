//! Who decided, and how many people that makes. A decision counts toward a quorum only when the
//! person was proven by something other than their word: a signature-verified Slack interaction,
//! or a sign-in through the organisation's identity provider (an ID token verified on the
//! confirmation page). An address typed on a page is recorded, as `unverified`, and counts for
//! nothing a two-person rule needs.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Someone deciding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "via", rename_all = "kebab-case")]
pub enum Approver {
    /// A Slack user, from a signature-verified interactivity request; `email` when the policy
    /// pairs the user with an address (`paired`) or Slack's `users.info` gave it. Only a pairing
    /// proves that the user is *not* someone who signed in with another address (a Slack member
    /// may change their own address); an address from Slack can only show that they *are*.
    Slack {
        user_id: String,
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        email: Option<String>,
        #[serde(default)]
        paired: bool,
    },
    /// Signed in through the identity provider: the ID token's verified `email`, and its issuer
    /// and subject.
    SignedIn {
        email: String,
        issuer: String,
        #[serde(default)]
        subject: String,
    },
    /// A link follower who typed this address: not an identity.
    Unverified { email: String },
}

fn normal(email: &str) -> String {
    email.trim().to_ascii_lowercase()
}

impl Approver {
    /// How the audit trail names them.
    pub fn id(&self) -> String {
        match self {
            Approver::Slack { user_id, .. } => format!("slack:{user_id}"),
            Approver::SignedIn { email, .. } => format!("oidc:{}", normal(email)),
            Approver::Unverified { email } => format!("unverified:{}", normal(email)),
        }
    }

    /// Where the decision came from.
    pub fn via(&self) -> &'static str {
        match self {
            Approver::Slack { .. } => "slack",
            Approver::SignedIn { .. } => "oidc",
            Approver::Unverified { .. } => "link",
        }
    }

    /// Whether something other than the person's word proves who they are.
    pub fn verified(&self) -> bool {
        !matches!(self, Approver::Unverified { .. })
    }

    /// The person behind the identity, the same whatever the channel: `email:<address>` when the
    /// address is known (signed in, or a Slack user whose address is known), `slack:<id>` for a
    /// Slack user whose address is not; none for an unverified decision.
    pub fn person(&self) -> Option<String> {
        match self {
            Approver::Slack { email: Some(email), .. } => Some(format!("email:{}", normal(email))),
            Approver::Slack { user_id, .. } => Some(format!("slack:{user_id}")),
            Approver::SignedIn { email, .. } => Some(format!("email:{}", normal(email))),
            Approver::Unverified { .. } => None,
        }
    }

    /// The ballot this decision casts.
    pub fn ballot(&self, at: DateTime<Utc>) -> Ballot {
        Ballot {
            id: self.id(),
            via: self.via().to_string(),
            verified: self.verified(),
            person: self.person(),
            proven: match self {
                Approver::Slack { paired, email, .. } => *paired && email.is_some(),
                Approver::SignedIn { .. } => true,
                Approver::Unverified { .. } => false,
            },
            subject: match self {
                Approver::SignedIn { issuer, subject, .. } if !subject.is_empty() => {
                    Some(format!("{issuer}|{subject}"))
                }
                _ => None,
            },
            at,
            seal: None,
        }
    }
}

/// One approval as stored with the request (or with the action, for a rollback).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ballot {
    /// The identity as the audit trail names it (`slack:U123`, `oidc:ana@example.com`,
    /// `unverified:ana@example.com`).
    pub id: String,
    /// `slack`, `oidc` or `link`.
    pub via: String,
    pub verified: bool,
    /// The person, when known (see [`Approver::person`]).
    #[serde(default)]
    pub person: Option<String>,
    /// Whether `person` is proven (a sign-in, or the policy's pairing) rather than only said by
    /// Slack: an unproven address may merge this ballot with another, never set it apart.
    #[serde(default)]
    pub proven: bool,
    /// A sign-in's `issuer` and `subject`: the provider's own id of the person, whatever address
    /// they signed in with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    pub at: DateTime<Utc>,
    /// The approval function's seal over this ballot and what it was cast on (see
    /// [`Ballot::sealed`]): a ballot without one that holds was not cast through the approval
    /// function and counts for nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seal: Option<String>,
}

/// The seal domain of ballots.
const BALLOT_SEAL: &str = "ballot";

impl Ballot {
    fn sealed_parts(&self, on: &str) -> Vec<String> {
        vec![
            on.to_string(),
            self.id.clone(),
            self.via.clone(),
            self.verified.to_string(),
            // Present or not is part of what is sealed (`None` is not `Some("")`).
            self.person
                .as_ref()
                .map_or_else(|| "-".to_string(), |p| format!("={p}")),
            self.proven.to_string(),
            self.subject
                .as_ref()
                .map_or_else(|| "-".to_string(), |p| format!("={p}")),
            self.at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        ]
    }

    /// This ballot sealed by the approval function for `on` (what it decides: the request or
    /// action, its finding, resource and what would be done), so it counts there and nowhere else.
    pub fn sealed(mut self, sealer: &crate::approval::Sealer, on: &str) -> Ballot {
        let parts = self.sealed_parts(on);
        let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
        self.seal = Some(sealer.seal(BALLOT_SEAL, &parts));
        self
    }

    /// Whether the approval function cast this ballot on `on` (its seal holds).
    pub fn seal_holds(&self, sealer: &crate::approval::Sealer, on: &str) -> bool {
        let Some(seal) = &self.seal else {
            return false;
        };
        let parts = self.sealed_parts(on);
        let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
        sealer.holds(BALLOT_SEAL, &parts, seal)
    }

    /// Whether this ballot and `other` are the same person's: the same identity, the same
    /// provider subject, or the same proven address. (An address only Slack says is not enough
    /// to refuse a vote — a member could set a colleague's address to block them — but
    /// [`people`] still counts such ballots as one person.)
    pub fn same_as(&self, other: &Ballot) -> bool {
        self.id == other.id
            || (self.subject.is_some() && self.subject == other.subject)
            || (self.proven && other.proven && self.person.is_some() && self.person == other.person)
    }
}

/// How many distinct people the verified ballots are, counted so that one person never counts
/// twice: an address is proven only by a sign-in or the policy's pairing; a Slack user whose
/// address is not proven (unknown, or only Slack's word) may be any one of the people who signed
/// in and are not known Slack users, so each such user counts only beyond them.
pub fn people(ballots: &[Ballot]) -> u32 {
    // One provider subject is one person, whatever addresses it signed in with.
    let mut subjects = BTreeSet::new();
    let verified: Vec<&Ballot> = ballots
        .iter()
        .filter(|b| b.verified)
        .filter(|b| b.subject.as_ref().is_none_or(|s| subjects.insert(s.clone())))
        .collect();
    let proven = |b: &&Ballot| b.proven && b.person.as_deref().is_some_and(|p| p.starts_with("email:"));
    let signed_in: BTreeSet<&str> = verified
        .iter()
        .filter(|b| b.via != "slack" && proven(b))
        .filter_map(|b| b.person.as_deref())
        .collect();
    let paired: BTreeSet<&str> = verified
        .iter()
        .filter(|b| b.via == "slack" && proven(b))
        .filter_map(|b| b.person.as_deref())
        .collect();
    let emails: BTreeSet<&str> = signed_in.union(&paired).copied().collect();
    // Slack users not proven: merged with a proven person when Slack's address matches one,
    // otherwise possibly anyone who signed in.
    let unknown: BTreeSet<&str> = verified
        .iter()
        .filter(|b| b.via == "slack" && !proven(b))
        .filter(|b| !b.person.as_deref().is_some_and(|p| emails.contains(p)))
        .map(|b| b.id.as_str())
        .collect();
    let candidates = signed_in.difference(&paired).count();
    let n = emails.len() + unknown.len() - unknown.len().min(candidates);
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Whether `ballots` meet a quorum of `required`: one decision (verified or, where the policy
/// lets anyone with the link decide, not) when one approver is needed; that many distinct
/// verified people otherwise.
pub fn quorum_met(ballots: &[Ballot], required: u32) -> bool {
    if required <= 1 {
        !ballots.is_empty()
    } else {
        people(ballots) >= required
    }
}

/// The ballots an item written before ballots were stored stands for: its approver ids, Slack
/// ones verified, typed addresses not.
pub fn legacy_ballots(ids: &[String], at: DateTime<Utc>) -> Vec<Ballot> {
    ids.iter()
        .map(|id| {
            let slack = id.starts_with("slack:");
            Ballot {
                id: id.clone(),
                via: if slack { "slack" } else { "link" }.into(),
                verified: slack,
                person: slack.then(|| id.clone()),
                proven: false,
                subject: None,
                at,
                seal: None,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> DateTime<Utc> {
        "2026-12-01T00:00:00Z".parse().unwrap()
    }

    /// A Slack user paired by the policy with `email` (or with none).
    fn slack(id: &str, email: Option<&str>) -> Ballot {
        Approver::Slack {
            user_id: id.into(),
            name: id.into(),
            email: email.map(str::to_string),
            paired: email.is_some(),
        }
        .ballot(at())
    }

    /// A Slack user whose address only Slack's users.info gave.
    fn slack_says(id: &str, email: &str) -> Ballot {
        Approver::Slack {
            user_id: id.into(),
            name: id.into(),
            email: Some(email.into()),
            paired: false,
        }
        .ballot(at())
    }

    fn signed_in(email: &str) -> Ballot {
        signed_in_as(email, &format!("sub-{email}"))
    }

    fn signed_in_as(email: &str, subject: &str) -> Ballot {
        Approver::SignedIn {
            email: email.into(),
            issuer: "https://idp".into(),
            subject: subject.into(),
        }
        .ballot(at())
    }

    fn typed(email: &str) -> Ballot {
        Approver::Unverified { email: email.into() }.ballot(at())
    }

    #[test]
    fn typed_addresses_never_make_a_second_person() {
        let b = [typed("ana@example.com"), typed("bo@example.com")];
        assert_eq!(people(&b), 0);
        assert!(!quorum_met(&b, 2));
        assert!(!quorum_met(&[signed_in("ana@example.com"), typed("bo@example.com")], 2));
        // One approver needed: a decision the policy admitted is enough.
        assert!(quorum_met(&[typed("ana@example.com")], 1));
    }

    #[test]
    fn two_verified_people_make_two() {
        assert!(quorum_met(&[slack("U1", None), slack("U2", None)], 2));
        assert!(quorum_met(
            &[signed_in("ana@example.com"), signed_in("bo@example.com")],
            2
        ));
        assert!(quorum_met(
            &[slack("U1", Some("ana@example.com")), signed_in("bo@example.com")],
            2
        ));
    }

    #[test]
    fn one_person_on_two_channels_counts_once() {
        // Known to be the same person (paired, or Slack said so): one.
        let paired = [slack("U1", Some("Ana@Example.com")), signed_in("ana@example.com")];
        assert!(paired[0].same_as(&paired[1]));
        assert_eq!(people(&paired), 1);
        // Not known: a Slack user with no address and a sign-in may be the same person.
        assert_eq!(people(&[slack("U1", None), signed_in("ana@example.com")]), 1);
        assert!(!quorum_met(&[slack("U1", None), signed_in("ana@example.com")], 2));
        // Two Slack users and one sign-in: at least two people.
        assert_eq!(
            people(&[slack("U1", None), slack("U2", None), signed_in("ana@example.com")]),
            2
        );
        // A Slack user known to be bo, and one unknown, and a sign-in by ana: the unknown may be ana.
        assert_eq!(
            people(&[
                slack("U1", Some("bo@example.com")),
                slack("U2", None),
                signed_in("ana@example.com")
            ]),
            2
        );
    }

    #[test]
    fn an_address_only_slack_gives_merges_people_but_never_sets_them_apart() {
        // Ana changes her Slack address to ana+x@, approves in Slack, then signs in as ana@.
        assert_eq!(
            people(&[slack_says("U1", "ana+x@example.com"), signed_in("ana@example.com")]),
            1
        );
        // Slack's address matches the sign-in: the same person, counted once (the vote is not
        // refused on Slack's word alone, so nobody can block a colleague by taking their address).
        let same = [slack_says("U1", "ana@example.com"), signed_in("ana@example.com")];
        assert!(!same[0].same_as(&same[1]));
        assert_eq!(people(&same), 1);
        // Two Slack users are two people whatever Slack says their addresses are.
        assert_eq!(people(&[slack_says("U1", "a@x.com"), slack_says("U2", "b@x.com")]), 2);
    }

    #[test]
    fn one_provider_subject_with_two_addresses_is_one_person() {
        let b = [
            signed_in_as("ana@example.com", "u-1"),
            signed_in_as("ana.b@example.com", "u-1"),
        ];
        assert!(b[0].same_as(&b[1]));
        assert_eq!(people(&b), 1);
        assert_eq!(
            people(&[
                signed_in_as("ana@example.com", "u-1"),
                signed_in_as("bo@example.com", "u-2")
            ]),
            2
        );
    }

    #[test]
    fn ballots_of_items_written_before_ballots_are_conservative() {
        let b = legacy_ballots(&["slack:U1".into(), "email:ana@example.com".into()], at());
        assert!(b[0].verified && !b[1].verified);
        assert_eq!(people(&b), 1);
    }
}

//! The organisation digest: one rule's run over every account and region, added up (built by
//! the fan-out's summary step, `org::digest`, posted once to Slack). Below the notifications that
//! carry it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::Compliance;

/// One account's figures for one rule in the organisation digest.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AccountTotals {
    pub findings: usize,
    pub usd: f64,
    pub scanned: usize,
    /// Resources that could not be assessed, and failed actions.
    pub failed: usize,
    /// Findings the run's blast radius held back from acting (asked about instead).
    #[serde(default)]
    pub held: usize,
    /// Regions that answered.
    pub regions: Vec<String>,
    /// tag-compliance: the account's resources judged and compliant, over its regions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compliance: Option<Compliance>,
}

/// Failed targets that share a reason: how many, and a few of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailureGroup {
    pub reason: String,
    pub targets: usize,
    /// Up to [`FailureGroup::EXAMPLES`] of them, as `account region`.
    pub examples: Vec<String>,
}

impl FailureGroup {
    pub const EXAMPLES: usize = 3;
}

/// An item that failed, with AWS's (or the function's) reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailedTarget {
    pub account: String,
    pub region: String,
    pub reason: String,
}

/// The organisation digest of one run of one rule.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OrgDigest {
    pub run_id: String,
    pub rule: String,
    /// Per account: its figures.
    pub accounts: BTreeMap<String, AccountTotals>,
    pub failed_targets: Vec<FailedTarget>,
    pub total_findings: usize,
    pub total_usd: f64,
    /// Findings the run's blast radius held back from acting, over every account.
    #[serde(default)]
    pub total_held: usize,
    /// What the run cost on the AWS bill, estimated: its items' own costs, and the Step Functions
    /// state transitions of the run (see [`OrgDigest::own_cost`]).
    #[serde(default)]
    pub items_cost_usd: f64,
    #[serde(default)]
    pub state_transitions: u64,
    pub items: usize,
    pub items_failed: usize,
    /// Items the Map never started (it stopped first: too many failures, or an error of its own).
    #[serde(default)]
    pub items_not_started: usize,
    /// The Map's own error, when it failed as a whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub map_error: Option<String>,
    /// The items the targets step listed (0 when not known): more than have a result means some
    /// results were lost (an unreadable file, no manifest).
    #[serde(default)]
    pub targets: usize,
    /// Accounts the targets step left out (suspended, not found), each also a failed target.
    #[serde(default)]
    pub accounts_skipped: usize,
    /// tag-compliance: the organisation's resources judged and compliant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compliance: Option<Compliance>,
    /// The failed targets grouped by reason, the largest group first.
    #[serde(default)]
    pub failure_groups: Vec<FailureGroup>,
    /// In a message: the accounts and failed targets left out to stay within SNS's 256 KiB (the
    /// whole digest is at `digest_key`).
    #[serde(default)]
    pub accounts_omitted: usize,
    #[serde(default)]
    pub failed_targets_omitted: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest_key: Option<String>,
}

impl OrgDigest {
    /// Targets with no usable result: failed, never started, or whose result was lost.
    pub fn targets_failed(&self) -> usize {
        self.items_failed + self.targets.saturating_sub(self.items)
    }

    /// The targets of the run: as listed, or as many as have a result when that is not known.
    pub fn targets_total(&self) -> usize {
        self.targets.max(self.items)
    }

    /// Whether anything went wrong: a failed or lost target, a skipped account, the Map's error.
    pub fn has_problems(&self) -> bool {
        self.targets_failed() > 0
            || self.map_error.is_some()
            || !self.failed_targets.is_empty()
            || self.failed_targets_omitted > 0
            || self.accounts_skipped > 0
    }

    /// Groups the failed targets by reason, the largest first: account ids in a reason (STS
    /// names the member's role ARN) read as `<account>`, so one cause across a thousand accounts
    /// is one group; reasons cut to 300 characters.
    pub fn group_failures(&mut self) {
        let mut groups: BTreeMap<String, FailureGroup> = BTreeMap::new();
        for f in &self.failed_targets {
            let reason = cut(&without_account_ids(&f.reason), 300);
            let g = groups.entry(reason.clone()).or_insert_with(|| FailureGroup {
                reason,
                targets: 0,
                examples: vec![],
            });
            g.targets += 1;
            if g.examples.len() < FailureGroup::EXAMPLES {
                g.examples.push(format!("{} {}", f.account, f.region));
            }
        }
        let mut groups: Vec<FailureGroup> = groups.into_values().collect();
        groups.sort_by(|a, b| b.targets.cmp(&a.targets).then_with(|| a.reason.cmp(&b.reason)));
        self.failure_groups = groups;
    }

    /// The digest as a message carries it: the `max_accounts` largest accounts by dollars, the
    /// `max_groups` largest failure groups and no per-target list, with what was left out
    /// counted and the whole digest's key. It stays far below SNS's 256 KiB whatever the
    /// organisation's size.
    pub fn for_message(&self, max_accounts: usize, max_groups: usize, digest_key: &str) -> OrgDigest {
        let mut d = self.clone();
        if d.failure_groups.is_empty() && !d.failed_targets.is_empty() {
            d.group_failures();
        }
        let mut accounts: Vec<(String, AccountTotals)> = std::mem::take(&mut d.accounts).into_iter().collect();
        accounts.sort_by(|a, b| b.1.usd.total_cmp(&a.1.usd).then_with(|| a.0.cmp(&b.0)));
        d.accounts_omitted = self.accounts_omitted + accounts.len().saturating_sub(max_accounts);
        d.accounts = accounts.into_iter().take(max_accounts).collect();
        d.failed_targets_omitted = self.failed_targets_omitted + d.failed_targets.len();
        d.failed_targets.clear();
        d.failure_groups.truncate(max_groups);
        d.map_error = d.map_error.map(|e| cut(&e, 1000));
        d.digest_key = Some(digest_key.to_string());
        d
    }
}

/// `s` with every run of exactly 12 digits (an account id) read as `<account>`.
pub(crate) fn without_account_ids(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut digits = String::new();
    let flush = |digits: &mut String, out: &mut String| {
        if digits.len() == 12 {
            out.push_str("<account>");
        } else {
            out.push_str(digits);
        }
        digits.clear();
    };
    for c in s.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
        } else {
            flush(&mut digits, &mut out);
            out.push(c);
        }
    }
    flush(&mut digits, &mut out);
    out
}

/// `s` cut to `max` characters, with an ellipsis when cut.
pub(crate) fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        s.chars().take(max).collect::<String>() + "…"
    }
}

impl OrgDigest {
    /// The run's own estimated AWS cost: its items' (each recorded by the item's function) and
    /// its Step Functions transitions at list price.
    pub fn own_cost(&self) -> f64 {
        let prices = crate::cost::ServicePrices::embedded();
        self.items_cost_usd + self.state_transitions as f64 * prices.per_state_transition
    }
}

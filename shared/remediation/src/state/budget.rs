//! The blast radius across runs: one budget of automatic actions per rule and period, wherever
//! the runs come from. A rule with Config events (s3-public) draws, for its events and its
//! sweeps in one account alike, from one rolling window (24 h by default); the items of an
//! organisation run draw from one budget for the run, each account from its share. A rule that
//! only runs on a daily schedule is held by each run's own limit (it sees all it acts on).
//!
//! The budget is one item (`BUDGET#<rule>#<period>`) holding the actions drawn so far; a draw
//! reads it and writes it back on its version (optimistic concurrency), so runs side by side can
//! never draw more than it holds. What cannot be drawn is asked about, never done.

use crate::error::SdkErrorExt as _;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::dynamo::{applied, n, s, DynamoState, TTL_ATTRIBUTE};
use crate::error::{Error, Result};

/// Which budget a run's automatic actions draw from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Period {
    /// The rule's automatic actions in `account` outside an organisation run (its Config events
    /// and its sweeps): a rolling window of `hours`; the percent limit is of `resources`, the
    /// account's count of what the rule looks at.
    Events {
        account: String,
        hours: u32,
        resources: usize,
    },
    /// One organisation run (`run_id`, the fan-out's execution): the percent limit is of what its
    /// items have scanned so far, and each of its `accounts` may draw its share of `max_actions`.
    Org {
        run_id: String,
        account: String,
        /// This item (`account/region`): its scanned count is added to the run's once.
        item: String,
        accounts: usize,
        scanned: usize,
    },
}

impl Period {
    /// The partition of this budget for `rule`.
    pub fn key(&self, rule: &str) -> String {
        match self {
            Period::Events { account, .. } => format!("BUDGET#{rule}#events#{account}"),
            Period::Org { run_id, .. } => format!("BUDGET#{rule}#run#{run_id}"),
        }
    }

    /// The account an action drawn under this period is in.
    fn account(&self) -> &str {
        match self {
            Period::Events { account, .. } | Period::Org { account, .. } => account,
        }
    }

    /// How the period reads in a note ("Config events in the last 24 h", "organisation run r1").
    pub fn describe(&self) -> String {
        match self {
            Period::Events { hours, account, .. } => {
                format!("the automatic actions in account {account} over the last {hours} h")
            }
            Period::Org { run_id, .. } => format!("the automatic actions of organisation run {run_id}"),
        }
    }
}

/// One action drawn from a budget.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drawn {
    /// `account/region/resource`: a second draw for the same resource (a retry) is the same one.
    pub resource: String,
    pub account: String,
    pub at: DateTime<Utc>,
}

/// What a budget holds: the actions drawn, and (an organisation run's) what has been scanned.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Book {
    pub drawn: Vec<Drawn>,
    pub scanned: usize,
}

/// Where a run's automatic actions draw from, as its trigger says (the run fills in its count).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Budget {
    /// A run in `account` outside an organisation run (a Config event, a sweep), whose count of
    /// what the rule looks at is `resources`.
    Events { account: String, resources: usize },
    /// An item of organisation run `run_id` in `account`/`region`, one of `accounts` accounts.
    Org {
        run_id: String,
        account: String,
        region: String,
        accounts: usize,
    },
}

impl Budget {
    /// The period a run that scanned `scanned` draws from (events: a window of `hours`).
    pub fn period(&self, scanned: usize, hours: u32) -> Period {
        match self {
            Budget::Events { account, resources } => Period::Events {
                account: account.clone(),
                hours,
                resources: *resources,
            },
            Budget::Org {
                run_id,
                account,
                region,
                accounts,
            } => Period::Org {
                run_id: run_id.clone(),
                account: account.clone(),
                item: format!("{account}/{region}"),
                accounts: *accounts,
                scanned,
            },
        }
    }
}

/// The answer to a draw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    /// Drawn (or drawn before for the same resource): the action may go ahead.
    Granted,
    /// The budget is spent: the action is asked about instead. Says why, as a person reads it.
    Spent(String),
}

/// The limits a draw is judged against.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_actions: u32,
    pub max_actions_percent: f64,
}

impl Limits {
    /// The policy's limits.
    pub fn of(policy: &crate::policy::Policy) -> Self {
        Limits {
            max_actions: policy.max_actions,
            max_actions_percent: policy.max_actions_percent,
        }
    }
}

/// Judges one draw for `resource` on `book` at `now` (pure): the window's old draws are dropped,
/// a resource drawn before is granted again, and otherwise the period's cap (`max_actions` and the
/// percent, rounded up) and an organisation account's share are checked. Returns the book to write
/// back when granted.
pub fn judge(
    book: &Book,
    period: &Period,
    limits: Limits,
    resource: &str,
    now: DateTime<Utc>,
) -> (Grant, Option<Book>) {
    let mut drawn: Vec<Drawn> = match period {
        Period::Events { hours, .. } => {
            let since = now - Duration::hours(i64::from(*hours));
            book.drawn.iter().filter(|d| d.at > since).cloned().collect()
        }
        Period::Org { .. } => book.drawn.clone(),
    };
    if drawn.iter().any(|d| d.resource == resource) {
        return (Grant::Granted, None);
    }
    let of = match period {
        Period::Events { resources, .. } => *resources,
        Period::Org { scanned, .. } => book.scanned.max(*scanned),
    };
    let percent_cap = (of as f64 * limits.max_actions_percent / 100.0).ceil();
    let percent_cap = if percent_cap.is_finite() && percent_cap >= 0.0 {
        percent_cap as usize
    } else {
        0
    };
    let cap = percent_cap.min(limits.max_actions as usize);
    if drawn.len() >= cap {
        return (
            Grant::Spent(format!(
                "budget spent: {} of {cap} used by {} (max_actions {}, max_actions_percent {} of {of})",
                drawn.len(),
                period.describe(),
                limits.max_actions,
                limits.max_actions_percent
            )),
            None,
        );
    }
    if let Period::Org { accounts, account, .. } = period {
        let share = share_of(limits.max_actions, *accounts);
        let mine = drawn.iter().filter(|d| d.account == *account).count();
        if mine >= share {
            return (
                Grant::Spent(format!(
                    "account {account}'s share is spent: {mine} of {share} ({} across {accounts} account(s)) in {}",
                    limits.max_actions,
                    period.describe()
                )),
                None,
            );
        }
    }
    drawn.push(Drawn {
        resource: resource.to_string(),
        account: period.account().to_string(),
        at: now,
    });
    (
        Grant::Granted,
        Some(Book {
            drawn,
            scanned: book.scanned,
        }),
    )
}

/// One account's share of an organisation run's `max_actions` (rounded up, at least one).
pub fn share_of(max_actions: u32, accounts: usize) -> usize {
    (max_actions as usize).div_ceil(accounts.max(1)).max(1)
}

/// How many times a draw reads and writes again when another run wrote between.
const DRAW_ATTEMPTS: u32 = 12;

/// How long a budget item is kept after its last draw.
fn kept_until(period: &Period, now: DateTime<Utc>) -> i64 {
    let keep = match period {
        Period::Events { hours, .. } => Duration::hours(i64::from(*hours)) + Duration::days(1),
        Period::Org { .. } => Duration::days(7),
    };
    (now + keep).timestamp()
}

impl DynamoState {
    /// The budget `key` as it stands (strongly consistent), with its version (0: none yet).
    async fn read_book(&self, key: &str) -> Result<(Book, i64)> {
        let got = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(key))
            .key("sk", s("BUDGET"))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| Error::aws("dynamodb", "GetItem", e))?;
        let Some(item) = got.item else {
            return Ok((Book::default(), 0));
        };
        let number = |name: &str| -> Result<i64> {
            match item.get(name) {
                None => Ok(0),
                Some(aws_sdk_dynamodb::types::AttributeValue::N(v)) => v
                    .parse()
                    .map_err(|_| Error::Config(format!("budget {key}: {name} \"{v}\" is not a number"))),
                Some(_) => Err(Error::Config(format!("budget {key}: {name} is not a number"))),
            }
        };
        let drawn = match item.get("drawn") {
            None => Vec::new(),
            Some(aws_sdk_dynamodb::types::AttributeValue::S(text)) => serde_json::from_str(text)
                .map_err(|e| Error::Config(format!("budget {key}: its draws do not read ({e})")))?,
            Some(_) => return Err(Error::Config(format!("budget {key}: its draws are not a string"))),
        };
        let scanned = usize::try_from(number("scanned")?).unwrap_or(0);
        Ok((Book { drawn, scanned }, number("version")?))
    }

    /// Adds an organisation item's scanned count to its run's budget, once per item (a retried
    /// item is not counted twice).
    pub(crate) async fn add_scanned(&self, rule: &str, period: &Period, now: DateTime<Utc>) -> Result<()> {
        let Period::Org { item, scanned, .. } = period else {
            return Ok(());
        };
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(period.key(rule)))
            .key("sk", s("BUDGET"))
            .update_expression("ADD scanned :n, scanned_by :item SET #ttl = :ttl")
            .condition_expression("attribute_not_exists(scanned_by) OR NOT contains(scanned_by, :me)")
            .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
            .expression_attribute_values(":n", n(i64::try_from(*scanned).unwrap_or(i64::MAX)))
            .expression_attribute_values(":item", aws_sdk_dynamodb::types::AttributeValue::Ss(vec![item.clone()]))
            .expression_attribute_values(":me", s(item.clone()))
            .expression_attribute_values(":ttl", n(kept_until(period, now)))
            .send()
            .await;
        applied("UpdateItem", update).map(|_| ())
    }

    /// Draws one automatic action on `resource` from the rule's budget for `period`.
    pub(crate) async fn draw_from(
        &self,
        rule: &str,
        period: &Period,
        limits: Limits,
        resource: &str,
        now: DateTime<Utc>,
    ) -> Result<Grant> {
        let key = period.key(rule);
        for attempt in 0..DRAW_ATTEMPTS {
            let (book, version) = self.read_book(&key).await?;
            let (grant, write) = judge(&book, period, limits, resource, now);
            let Some(next) = write else {
                return Ok(grant);
            };
            let drawn = serde_json::to_string(&next.drawn)
                .map_err(|e| Error::Config(format!("cannot serialise budget {key}: {e}")))?;
            let update = self
                .client
                .update_item()
                .table_name(&self.table)
                .key("pk", s(&key))
                .key("sk", s("BUDGET"))
                .update_expression("SET drawn = :drawn, version = :next, #ttl = :ttl")
                .condition_expression(if version == 0 {
                    "attribute_not_exists(version)"
                } else {
                    "version = :version"
                })
                .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
                .expression_attribute_values(":drawn", s(drawn))
                .expression_attribute_values(":next", n(version + 1))
                .expression_attribute_values(":ttl", n(kept_until(period, now)));
            let update = if version == 0 {
                update
            } else {
                update.expression_attribute_values(":version", n(version))
            };
            if applied("UpdateItem", update.send().await)? {
                return Ok(Grant::Granted);
            }
            // Another run drew in between: read again, after a short jittered pause.
            let pause = 20 + u64::from(attempt) * 30 + u64::from(rand_jitter(&key, attempt));
            tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
        }
        Err(Error::Config(format!(
            "budget {key}: {DRAW_ATTEMPTS} runs wrote it while this one tried to draw"
        )))
    }
}

/// A pause's jitter (0–49 ms) that differs between runs side by side.
fn rand_jitter(key: &str, attempt: u32) -> u8 {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(key.as_bytes());
    h.update(attempt.to_be_bytes());
    h.update(Utc::now().timestamp_nanos_opt().unwrap_or_default().to_be_bytes());
    h.update(format!("{:?}", std::thread::current().id()).as_bytes());
    h.finalize()[0] % 50
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    const LIMITS: Limits = Limits {
        max_actions: 10,
        max_actions_percent: 10.0,
    };

    fn events(resources: usize) -> Period {
        Period::Events {
            account: "111111111111".into(),
            hours: 24,
            resources,
        }
    }

    /// Draws for `n` resources in turn, writing back each granted book.
    fn draw_many(book: &mut Book, period: &Period, n: usize, now: DateTime<Utc>) -> usize {
        let mut granted = 0;
        for i in 0..n {
            let (g, next) = judge(book, period, LIMITS, &format!("r{i}"), now);
            if g == Grant::Granted {
                granted += 1;
            }
            if let Some(next) = next {
                *book = next;
            }
        }
        granted
    }

    #[test]
    fn events_in_one_window_draw_at_most_the_account_limit_and_a_retry_is_the_same_draw() {
        let now = t("2026-12-07T10:00:00Z");
        let mut book = Book::default();
        // 40 buckets in the account: 10 % is 4.
        assert_eq!(draw_many(&mut book, &events(40), 30, now), 4);
        // The same resource again (a redelivered event) is granted, and uses nothing more.
        let (again, write) = judge(&book, &events(40), LIMITS, "r0", now);
        assert_eq!((again, write), (Grant::Granted, None));
        // 300 buckets: the absolute limit, 10.
        let mut big = Book::default();
        assert_eq!(draw_many(&mut big, &events(300), 30, now), 10);
        // A day later the window has moved on.
        let (later, _) = judge(&big, &events(300), LIMITS, "new", now + Duration::hours(25));
        assert_eq!(later, Grant::Granted);
        let (within, _) = judge(&big, &events(300), LIMITS, "new", now + Duration::hours(23));
        assert!(matches!(within, Grant::Spent(why) if why.contains("10 of 10")));
    }

    #[test]
    fn an_organisation_run_holds_one_cap_and_each_account_its_share() {
        let now = t("2026-12-07T10:00:00Z");
        let mut book = Book {
            drawn: vec![],
            scanned: 240,
        };
        let mut granted = 0;
        for account in 0..6 {
            let period = Period::Org {
                run_id: "r1".into(),
                account: format!("{account:012}"),
                item: format!("{account:012}/eu-west-1"),
                accounts: 6,
                scanned: 40,
            };
            for i in 0..3 {
                let (g, next) = judge(&book, &period, LIMITS, &format!("{account}-{i}"), now);
                granted += usize::from(g == Grant::Granted);
                if let Some(next) = next {
                    book = next;
                }
            }
        }
        assert_eq!(granted, 10, "one cap for the run");
        for account in 0..6 {
            let mine = book
                .drawn
                .iter()
                .filter(|d| d.account == format!("{account:012}"))
                .count();
            assert!(mine <= 2, "account {account} drew {mine}, over its share of 2");
        }
        assert_eq!(share_of(10, 300), 1);
        assert_eq!(share_of(10, 0), 10);
    }
}

//! State in one DynamoDB table (`pk`/`sk` strings): approval requests, action records with their
//! pre-state and rollback, and an audit item for every transition. Every write is conditional,
//! so a replayed event or a double click changes nothing.

mod approvals;
pub mod budget;
pub mod dynamo;
pub mod guards;
mod locks;
mod prices;
mod report;
pub mod rollback;
mod runs;
pub mod sign_in;
pub mod snoozes;
mod tickets;

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::model::Finding;
use crate::policy::Mode;
use rollback::Rollback;

pub use dynamo::DynamoState;
pub use report::{CompliancePoint, LedgerLine};
pub use tickets::Ticket;

impl RunRecord {
    /// The record of a run of `rule` in `account`/`region` at `at` that took `took` and ended in
    /// `result` (`mode` is the policy's, for a run that failed before it had a report).
    pub fn of(
        rule: &str,
        account: &str,
        region: &str,
        at: DateTime<Utc>,
        took: std::time::Duration,
        mode: Mode,
        result: &std::result::Result<crate::model::RunReport, crate::error::Error>,
    ) -> RunRecord {
        let mut record = RunRecord {
            rule: rule.to_string(),
            at,
            mode: mode.as_str().to_string(),
            account: account.to_string(),
            region: region.to_string(),
            scanned: 0,
            findings: 0,
            estimated_monthly_savings_usd: 0.0,
            outcomes: std::collections::BTreeMap::new(),
            duration_ms: u64::try_from(took.as_millis()).unwrap_or(u64::MAX),
            errors: Vec::new(),
            result: "failed".into(),
            cost: None,
        };
        match result {
            Err(e) => record.errors.push(e.to_string()),
            Ok(r) => {
                record.mode = r.mode.as_str().to_string();
                record.scanned = r.scanned;
                record.findings = r.findings_total.max(r.findings.len());
                record.estimated_monthly_savings_usd = r.estimated_monthly_savings_usd;
                for o in &r.outcomes {
                    *record.outcomes.entry(o.outcome.as_str().to_string()).or_default() += 1;
                }
                // A fan-out item's lists may be cut: these two counts are whole.
                let whole = [
                    (crate::model::OutcomeKind::Failed, r.failed),
                    (crate::model::OutcomeKind::Skipped, r.skipped),
                ];
                for (kind, n) in whole {
                    if n > 0 {
                        record.outcomes.insert(kind.as_str().to_string(), n);
                    }
                }
                record.errors = r
                    .outcomes
                    .iter()
                    .filter(|o| o.outcome == crate::model::OutcomeKind::Failed)
                    .take(5)
                    .map(|o| format!("{}: {}", o.finding_id, o.detail))
                    .collect();
                record.result = if r.assessed_nothing() {
                    "failed"
                } else if r.failed > 0 {
                    "partial"
                } else {
                    "ok"
                }
                .into();
            }
        }
        record
    }
}

/// A request for a human decision about one finding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalRequest {
    pub request_id: String,
    pub finding: Finding,
    pub created_at: DateTime<Utc>,
    /// After this the request means "do nothing" (also the item's TTL).
    pub expires_at: DateTime<Utc>,
    /// Distinct approvers needed (two for resources the policy marks sensitive).
    pub required_approvals: u32,
}

/// What opening an approval request did.
#[derive(Debug, Clone, PartialEq)]
pub enum ApprovalOpened {
    /// A new pending request was written.
    Created,
    /// A request for this finding is still open; nothing was written.
    AlreadyOpen {
        request_id: String,
        notified: bool,
        /// When it was opened (`None`: unreadable).
        created_at: Option<DateTime<Utc>>,
        /// Its run tried to send it and failed: the next run sends it at once.
        unsent: bool,
    },
}

/// An action as recorded before it runs (status `executing`) and after (`executed` / `failed`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionRecord {
    pub action_id: String,
    pub finding: Finding,
    pub mode: Mode,
    /// Who or what decided: `auto`, or an approver.
    pub decided_by: String,
    /// The approval request this action carries out, if any.
    pub request_id: Option<String>,
    /// The resource as it was right before the action.
    pub pre_state: serde_json::Value,
    /// How to undo the action.
    pub rollback: Rollback,
    pub started_at: DateTime<Utc>,
    /// The approval function's seal over the record ([`record_on`]) when it wrote it (an approved
    /// action); none for a detector's own (auto mode).
    pub seal: Option<String>,
}

/// The seal domain of action records.
pub const ACTION_SEAL: &str = "action";

/// What the approval function's seal of an action record covers: the action, its finding (and
/// the resource's tags it was decided on), who decided, the request and the way back.
pub fn record_on(
    action_id: &str,
    f: &Finding,
    decided_by: &str,
    request_id: Option<&str>,
    rollback: &Rollback,
    started_at: Option<DateTime<Utc>>,
) -> String {
    format!(
        "action|{action_id}|{}|{}|{}|{}|{}|{decided_by}|{}|{}|{}",
        f.id,
        f.action.as_str(),
        f.resource.account,
        f.resource.region,
        f.resource.id,
        request_id.unwrap_or("-"),
        serde_json::to_string(&(&f.resource.tags, rollback)).unwrap_or_default(),
        started_at.map_or_else(
            || "-".to_string(),
            |t| t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
        )
    )
}

/// How a recorded action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionEnd {
    Executed,
    /// Executed by AWS's own answer, but its reads had not shown it yet: recorded `executed`
    /// and marked `unverified` for the hourly sweep to confirm.
    Unverified,
    /// Started, to be finished by a later run.
    Deferred,
    Failed,
}

impl ActionEnd {
    /// The record's status.
    pub fn as_str(self) -> &'static str {
        match self {
            ActionEnd::Executed | ActionEnd::Unverified => "executed",
            ActionEnd::Deferred => "deferred",
            ActionEnd::Failed => "failed",
        }
    }
}

/// The state the flow needs.
#[async_trait]
pub trait StateStore: Send + Sync {
    /// Opens a pending approval unless one for the same finding is still open.
    async fn open_approval(&self, request: &ApprovalRequest) -> Result<ApprovalOpened>;
    /// Notes that the approval request reached SNS.
    async fn mark_notified(&self, request_id: &str) -> Result<()>;
    /// Notes that sending the approval request failed (the next run sends it at once).
    async fn mark_unsent(&self, request_id: &str) -> Result<()>;
    /// Records an action and its pre-state and rollback before it runs; fails if it exists.
    async fn begin_action(&self, record: &ActionRecord) -> Result<()>;
    /// Records how an action ended; only from `executing`.
    async fn finish_action(&self, record: &ActionRecord, end: ActionEnd, detail: &str, at: DateTime<Utc>)
        -> Result<()>;

    /// Claims the right to send `scope`'s alert at `level` in `month` (yyyy-mm): `false` if this or
    /// a higher level was already sent this month, or another run claimed one less than 5 minutes
    /// ago.
    async fn claim_alert(&self, scope: &str, month: &str, level: u32, at: DateTime<Utc>) -> Result<bool>;
    /// Records the alert claimed `at` as sent (SNS accepted it); the sent level never goes down.
    async fn confirm_alert(&self, scope: &str, month: &str, level: u32, at: DateTime<Utc>) -> Result<()>;
    /// Releases the claim made `at` after a failed publish, so the next run alerts.
    async fn release_alert(&self, scope: &str, month: &str, at: DateTime<Utc>) -> Result<()>;

    /// When each of `present` was first seen in `scope` (now, for those seen for the first time);
    /// forgets the ids of `scope` that are no longer present.
    async fn first_seen(
        &self,
        scope: &str,
        present: &[String],
        now: DateTime<Utc>,
    ) -> Result<std::collections::HashMap<String, DateTime<Utc>>>;

    /// Empties scope `from` into scope `to`: the sightings of `present` move, keeping their
    /// first-seen times (an entry already in `to` stands), and every other one is forgotten (as
    /// [`StateStore::first_seen`] forgets what is no longer present); answers how many moved.
    async fn retire_sightings(&self, from: &str, to: &str, present: &[String]) -> Result<usize>;

    /// Records a tag-compliance sweep's figures (the savings report's trend).
    async fn record_compliance(&self, point: &CompliancePoint) -> Result<()>;

    /// When `id` was first seen in `scope`, if it is still on record (read-only: unlike
    /// [`StateStore::first_seen`] it neither records nor forgets anything).
    async fn sighting(&self, scope: &str, id: &str) -> Result<Option<DateTime<Utc>>>;

    /// The emergency switch, if it was ever set (read before every action; a value of the wrong
    /// type reads as on).
    async fn emergency_stop(&self) -> Result<Option<EmergencyStop>>;

    /// The snoozes in force at `now` (read by every run, and again right before each batch of
    /// actions).
    async fn snoozes(&self, now: DateTime<Utc>) -> Result<Vec<Snooze>>;

    /// The snoozes of one resource id in force at `now`, wherever they hold (read right before
    /// each action, and before an irreversible step that waited).
    async fn snoozes_of(&self, resource_id: &str, now: DateTime<Utc>) -> Result<Vec<Snooze>>;

    /// When the last snooze that covered each of `resources` ended or was lifted, before `now`
    /// (an ended snooze is kept on record for 90 days), by resource id; one read for them all.
    async fn snooze_ends(
        &self,
        resources: &[&crate::model::Resource],
        now: DateTime<Utc>,
    ) -> Result<HashMap<String, DateTime<Utc>>>;

    /// Records one scan's figures (`RUN#<rule>`), kept 90 days.
    async fn record_run(&self, run: &RunRecord) -> Result<()>;

    /// Takes the acting lock on `resource` (`account/region/id`) for `holder` (an action id):
    /// `None` when taken, else who holds it (every rule, run and the approval executor share it).
    /// `read_at`: when the taker's re-check read the resource (a lock whose action finished
    /// before then does not hold it).
    async fn lock_resource(
        &self,
        resource: &str,
        holder: &str,
        now: DateTime<Utc>,
        read_at: DateTime<Utc>,
    ) -> Result<Option<String>>;

    /// Marks the lock's action finished at `at` (the lock is kept until it lapses).
    async fn lock_done(&self, resource: &str, holder: &str, at: DateTime<Utc>) -> Result<()>;

    /// Who holds the acting lock on `resource` at `now` with an action still under way, if anyone.
    async fn resource_lock(&self, resource: &str, now: DateTime<Utc>) -> Result<Option<String>>;

    /// Gives the lock back (only when nothing was started under it).
    async fn unlock_resource(&self, resource: &str, holder: &str) -> Result<()>;

    /// Adds an organisation item's scanned count to its run's budget, once per item.
    async fn register_scanned(&self, rule: &str, period: &budget::Period, now: DateTime<Utc>) -> Result<()>;

    /// Draws one automatic action on `resource` (`account/region/id`) from `rule`'s budget for
    /// `period`: granted, or spent (then the action is asked about, never done).
    async fn draw_action(
        &self,
        rule: &str,
        period: &budget::Period,
        limits: budget::Limits,
        resource: &str,
        now: DateTime<Utc>,
    ) -> Result<budget::Grant>;
}

/// A resource left alone until `until`: every rule treats it as exempt until then.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snooze {
    pub resource_id: String,
    pub until: DateTime<Utc>,
    /// Who granted it: a Slack user id, or the operator's AWS identity.
    pub by: String,
    /// How: `slack` or `cli`.
    pub via: String,
    pub reason: String,
    /// When it was granted.
    pub at: DateTime<Utc>,
    /// The finding it was granted from, when it came from one.
    pub finding_id: Option<String>,
    /// The account it holds in (`None`: every account). A snooze from Slack holds where its
    /// finding is; ids such as cost-alert's `TOTAL` are the same in every account.
    #[serde(default)]
    pub account: Option<String>,
    /// The region it holds in (`None`: every region).
    #[serde(default)]
    pub region: Option<String>,
    /// Who lifted it before it ended, and when (a lifted snooze holds nowhere, whatever `until`
    /// a clock behind the lifter's reads).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifted_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifted_at: Option<DateTime<Utc>>,
}

/// Characters that change how text reads without being seen: bidirectional overrides and
/// isolates, zero-width characters, the soft hyphen and the byte-order mark.
fn invisible(c: char) -> bool {
    matches!(c, '\u{00AD}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
}

/// The sort key of a snooze: the resource id alone when it holds everywhere, else the id and
/// where it holds (`i-1@123456789012/us-east-1`, `*` for any).
pub fn snooze_key(resource_id: &str, account: Option<&str>, region: Option<&str>) -> String {
    match (account, region) {
        (None, None) => resource_id.to_string(),
        (a, r) => format!("{resource_id}@{}/{}", a.unwrap_or("*"), r.unwrap_or("*")),
    }
}

impl Snooze {
    /// A reason as stored: trimmed, control and invisible characters dropped, at most 200
    /// characters.
    pub fn clean_reason(reason: &str) -> String {
        reason
            .trim()
            .chars()
            .filter(|c| !c.is_control() && !invisible(*c))
            .take(200)
            .collect::<String>()
            .trim()
            .to_string()
    }

    /// Its sort key in the `SNOOZES` partition.
    pub fn key(&self) -> String {
        snooze_key(&self.resource_id, self.account.as_deref(), self.region.as_deref())
    }

    /// Whether it is in force at `now`: not lifted, and not ended.
    pub fn in_force(&self, now: DateTime<Utc>) -> bool {
        self.lifted_at.is_none() && self.until > now
    }

    /// When it ended, if it has by `now` (lifted, or run out).
    pub fn ended(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self.lifted_at {
            Some(at) => Some(at.min(self.until)),
            None => (self.until <= now).then_some(self.until),
        }
    }

    /// Whether it holds for `resource` (its id, and its account and region when it names them).
    pub fn covers(&self, resource: &crate::model::Resource) -> bool {
        self.resource_id == resource.id
            && self.account.as_deref().is_none_or(|a| a == resource.account)
            && self.region.as_deref().is_none_or(|r| r == resource.region)
    }

    /// Where it holds, as people read it: `everywhere`, or `<account>/<region>`.
    pub fn where_text(&self) -> String {
        match (&self.account, &self.region) {
            (None, None) => "everywhere".to_string(),
            (a, r) => format!(
                "{}/{}",
                a.as_deref().unwrap_or("any account"),
                r.as_deref().unwrap_or("any region")
            ),
        }
    }

    /// The end, as people read it.
    pub fn until_text(&self) -> String {
        self.until.format("%Y-%m-%d %H:%M UTC").to_string()
    }

    /// What a skipped finding says: `snoozed until 2027-01-05 09:00 UTC by U123: quarter-end batch`.
    pub fn describe(&self) -> String {
        let reason = if self.reason.trim().is_empty() {
            "no reason given"
        } else {
            self.reason.trim()
        };
        format!("snoozed until {} by {}: {reason}", self.until_text(), self.by)
    }
}

/// What granting a snooze did besides recording it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SnoozeGranted {
    /// The pending approval requests it closed (id and finding).
    pub closed_requests: Vec<(String, Finding)>,
    /// The snooze it replaced, if one was in force.
    pub replaced: Option<Snooze>,
    /// A snooze in force that ends later, kept as it was: nothing was recorded (a Slack click
    /// never cuts a longer snooze short).
    pub kept: Option<Snooze>,
    /// What could not be done after the snooze was recorded (a pending request left open): the
    /// snooze holds all the same, and the run re-check sets those findings aside.
    pub warnings: Vec<String>,
}

/// What lifting a snooze did.
#[derive(Debug, Clone, PartialEq)]
pub enum Unsnoozed {
    /// It was lifted (as it was before).
    Lifted(Snooze),
    /// It had ended or been lifted already.
    Gone,
    /// Another snooze took its place since it was read; that one stands.
    Replaced(Snooze),
}

/// The snoozes in force, looked up by resource.
#[derive(Debug, Clone, Default)]
pub struct Snoozes(HashMap<String, Vec<Snooze>>);

impl Snoozes {
    pub fn new(snoozes: Vec<Snooze>) -> Snoozes {
        let mut by_id: HashMap<String, Vec<Snooze>> = HashMap::new();
        for z in snoozes {
            by_id.entry(z.resource_id.clone()).or_default().push(z);
        }
        Snoozes(by_id)
    }

    /// The snooze that holds for `resource` (the one ending last, if several do).
    pub fn covering(&self, resource: &crate::model::Resource) -> Option<&Snooze> {
        self.0
            .get(&resource.id)?
            .iter()
            .filter(|z| z.covers(resource))
            .max_by_key(|z| z.until)
    }
}

/// One scan, as `finops status` and the savings report read it (`RUN#<rule>` / its time).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub rule: String,
    /// The run's time (its `now`).
    pub at: DateTime<Utc>,
    /// `dry-run`, `approve` or `auto`.
    pub mode: String,
    /// The account and region scanned.
    pub account: String,
    pub region: String,
    pub scanned: usize,
    pub findings: usize,
    pub estimated_monthly_savings_usd: f64,
    /// Outcomes by kind (`dry-run`, `skipped`, `executed`, …).
    pub outcomes: std::collections::BTreeMap<String, usize>,
    pub duration_ms: u64,
    /// The run's error when it failed as a whole, then the first failures (at most 5).
    pub errors: Vec<String>,
    /// `ok`, `partial` (some resources failed) or `failed` (nothing could be assessed, or an error).
    pub result: String,
    /// What the run itself cost on the AWS bill (estimated); `None` for records written before
    /// it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<crate::cost::RunCost>,
}

/// An approval request as stored, with its place in the state machine
/// `pending → approved → executing → executed | failed`, `pending → rejected | expired`,
/// `executed → rolled-back`.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredApproval {
    pub request_id: String,
    pub status: String,
    pub finding: Finding,
    pub expires_at: DateTime<Utc>,
    pub required_approvals: u32,
    /// Who has approved so far (ids such as `slack:U123` or `oidc:ana@example.com`).
    pub approvers: Vec<String>,
    /// The approvals so far, with how each was proven.
    pub ballots: Vec<crate::identity::Ballot>,
    /// When it was approved (for the sweep that executes approvals the emergency stop held).
    pub decided_at: Option<DateTime<Utc>>,
    /// Bumped by every vote (optimistic concurrency; 0 before the first).
    pub version: i64,
    pub decided_by: Option<String>,
    pub decided_via: Option<String>,
    pub action_id: Option<String>,
    pub detail: Option<String>,
}

/// An action as stored (for rollback).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredAction {
    pub action_id: String,
    pub status: String,
    pub finding: Finding,
    pub rollback: Rollback,
    pub request_id: Option<String>,
    pub decided_by: String,
    /// Approvals of a rollback so far (a rollback needs as many approvers as the action did).
    pub rollback_ballots: Vec<crate::identity::Ballot>,
    /// Bumped by every rollback vote (0 before the first).
    pub rollback_version: i64,
    /// When the action began (its rollback window counts from it).
    pub started_at: Option<DateTime<Utc>>,
    /// The approval function's seal over the record, if it wrote it (see [`record_on`]).
    pub seal: Option<String>,
}

impl StoredAction {
    /// A short digest of the record as a page shows it (its finding, way back and start): the
    /// page's form carries it, and a rollback runs only on the record the person saw.
    pub fn shown_as(&self) -> String {
        use base64::Engine;
        use sha2::Digest;
        let digest = sha2::Sha256::digest(self.sealed_as().as_bytes());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..16])
    }

    /// What its seal, if any, must cover.
    pub fn sealed_as(&self) -> String {
        record_on(
            &self.action_id,
            &self.finding,
            &self.decided_by,
            self.request_id.as_deref(),
            &self.rollback,
            self.started_at,
        )
    }

    /// Whether the record claims a person's decision (an approval request, or a decider other
    /// than `auto`): only the approval function writes such records, sealed.
    pub fn claims_a_decision(&self) -> bool {
        self.request_id.is_some() || self.decided_by != "auto"
    }
}

/// What a rollback approval did.
#[derive(Debug, Clone, PartialEq)]
pub enum RollbackVote {
    /// Enough approvers: the action is now `rolling-back` (this vote moved it).
    Begin(Box<StoredAction>),
    /// Recorded; more approvers are needed.
    NeedMore { have: u32, need: u32 },
}

/// What the hourly sweep finds left `executing`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StaleExecutions {
    /// Actions begun (pre-state recorded) and never finished.
    pub actions: Vec<StoredAction>,
    /// Requests taken for execution and never finished, each with the action it recorded (when
    /// it got that far).
    pub requests: Vec<(StoredApproval, Option<StoredAction>)>,
    /// Actions left `rolling-back` (the rollback's Lambda died before recording its end).
    pub rollbacks: Vec<StoredAction>,
}

/// What an approval vote did.
#[derive(Debug, Clone, PartialEq)]
pub enum Vote {
    /// Enough distinct approvers: the request is now `approved` (this vote moved it).
    Approved(Box<StoredApproval>),
    /// Recorded; more approvers are needed.
    NeedMore { have: u32, need: u32 },
}

/// Why a decision changed nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("no such request")]
    Unknown,
    #[error("the request is already {0}")]
    NotPending(String),
    #[error("the request has expired")]
    Expired,
    #[error("this approver has already approved; a second, different approver is needed")]
    SameApprover,
    #[error("the action is {0}, not executed, so there is nothing to roll back")]
    NotExecuted(String),
    /// The item holds as many ballots as it may ([`MAX_BALLOTS`]).
    #[error("this decision has as many ballots as it can hold; nothing more is recorded")]
    Full,
    /// A typed address is kept already, and typed addresses count for nothing a two-person rule
    /// needs.
    #[error("a typed address is recorded already and typed addresses do not count here: sign in or decide in Slack")]
    TypedAlready,
    /// The action record's way back is not for its own finding's resource.
    #[error("this action's recorded way back is not for its own resource, so it is not run")]
    ForeignRollback,
}

/// The most ballots one request or action keeps (a person's second ballot is refused anyway; a
/// request with this many has long had its quorum): far below DynamoDB's 400 KB item.
pub const MAX_BALLOTS: usize = 20;

/// How the approval function seals a ballot it casts and judges the ballots it finds: its decision
/// key, today's approvers lists and a maximum age. A ballot that some other role wrote into the
/// table has no seal that holds and counts for nothing.
pub trait BallotJudge: Send + Sync {
    /// `ballot` sealed for `on` (see [`approval_on`], [`rollback_on`]).
    fn seal(&self, ballot: Ballot, on: &str) -> Ballot;
    /// Whether the approval function cast `ballot` on `on` (its seal holds), whatever it counts
    /// for today.
    fn cast_here(&self, ballot: &Ballot, on: &str) -> bool;
    /// Whether `ballot` counts toward a decision on `on` now.
    fn counts(&self, ballot: &Ballot, on: &str) -> bool;
}

use crate::identity::Ballot;

/// What an approval ballot is cast on: the request, its finding, the action proposed and the
/// resource (account, region, id). A ballot moved to another request, or a request whose finding
/// was rewritten after the vote, does not count.
pub fn approval_on(request_id: &str, f: &Finding) -> String {
    format!(
        "approve|{request_id}|{}|{}|{}|{}|{}",
        f.id,
        f.action.as_str(),
        f.resource.account,
        f.resource.region,
        f.resource.id
    )
}

/// What a rollback ballot is cast on: the action, its finding's resource, the recorded way back
/// and the attempt (a failed rollback's ballots do not count for the next).
pub fn rollback_on(a: &StoredAction, attempt: i64) -> String {
    format!(
        "rollback|{}|{attempt}|{}|{}|{}|{}|{}",
        a.action_id,
        a.finding.id,
        a.finding.resource.account,
        a.finding.resource.region,
        a.finding.resource.id,
        serde_json::to_string(&a.rollback).unwrap_or_default()
    )
}

/// The emergency stop switch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmergencyStop {
    pub on: bool,
    pub by: String,
    pub at: String,
    pub reason: String,
}

/// One line of a finding's audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    pub at: String,
    pub event: String,
    pub ref_id: String,
    pub detail: String,
}

/// How an approved request's execution ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecutionEnd {
    /// Done.
    Executed,
    /// Refused because the decision is no longer true (the re-evaluation on fresh data said so):
    /// the request is closed, not retried.
    Obsolete,
    /// Tried and failed, or stopped for a reason that is not the resource's (the emergency stop).
    Failed,
}

impl ExecutionEnd {
    /// The request's status, as stored and published.
    pub fn as_str(self) -> &'static str {
        match self {
            ExecutionEnd::Executed => "executed",
            ExecutionEnd::Obsolete => "obsolete",
            ExecutionEnd::Failed => "failed",
        }
    }
}

/// What the approval function and slack-notify need beyond the detectors' [`StateStore`].
#[async_trait]
pub trait ApprovalStore: Send + Sync {
    /// The request, if it exists.
    async fn approval(&self, request_id: &str) -> Result<Option<StoredApproval>>;
    /// Adds a ballot to a pending, unexpired request and, when it completes the quorum, moves it
    /// to `approved` in the same transaction (a vote never leaves a met quorum pending).
    /// The quorum is the request's stored count or `at_least(finding)` (today's policy),
    /// whichever is higher.
    /// Only ballots `judge` counts are counted (and compared with the new one); the new one is
    /// sealed by it for this request; an item holds at most [`MAX_BALLOTS`] and one typed address.
    /// A request whose decision is over (executed, rejected, expired, snoozed) takes no vote,
    /// whatever its item says.
    async fn vote(
        &self,
        request_id: &str,
        ballot: &crate::identity::Ballot,
        at_least: &(dyn for<'f> Fn(&'f Finding) -> u32 + Send + Sync),
        judge: &dyn BallotJudge,
        now: DateTime<Utc>,
    ) -> Result<std::result::Result<Vote, Refusal>>;
    /// Requests `approved` before `before` and never taken for execution (the emergency stop
    /// held them, or their SNS message was lost).
    async fn approved_waiting(&self, before: DateTime<Utc>) -> Result<Vec<StoredApproval>>;
    /// `pending → rejected`; returns the request as it now is.
    async fn reject(
        &self,
        request_id: &str,
        approver: &str,
        via: &str,
        now: DateTime<Utc>,
    ) -> Result<std::result::Result<StoredApproval, Refusal>>;
    /// `approved → executing`; `false` if someone else already took it.
    async fn begin_execution(&self, request_id: &str, finding_id: &str, now: DateTime<Utc>) -> Result<bool>;
    /// `executing → executed | obsolete | failed` (a started execution always ends in one of them);
    /// an obsolete request closes its ledger line too.
    async fn finish_execution(
        &self,
        request_id: &str,
        finding: &crate::model::Finding,
        end: ExecutionEnd,
        action_id: Option<&str>,
        detail: &str,
        now: DateTime<Utc>,
    ) -> Result<()>;
    /// Executions that began before `before` and never finished (the function died or ran out of
    /// time mid-action): actions still `executing`, and requests still `executing` with the action
    /// they recorded, if any.
    async fn stale_executions(&self, before: DateTime<Utc>) -> Result<StaleExecutions>;
    /// Actions recorded `executed` on AWS's own answer whose reads had not shown it yet
    /// (`unverified`), for the hourly sweep to confirm.
    async fn unverified_actions(&self) -> Result<Vec<StoredAction>>;
    /// Settles an unverified action: `confirmed` (the mark removed), or found not in effect
    /// (`failed`, with what was found); `false` if it was no longer an unverified `executed`.
    async fn settle_unverified(
        &self,
        action: &StoredAction,
        confirmed: bool,
        detail: &str,
        now: DateTime<Utc>,
    ) -> Result<bool>;
    /// Closes a stale `executing` action as `executed` (the ledger realised) or `failed`, with what
    /// was found; `false` if it was no longer executing.
    async fn resolve_stale_action(
        &self,
        action: &StoredAction,
        executed: bool,
        detail: &str,
        now: DateTime<Utc>,
    ) -> Result<bool>;
    /// `pending → expired` for every pending request past its expiry; returns them.
    async fn expire_pending(&self, now: DateTime<Utc>) -> Result<Vec<StoredApproval>>;
    /// The action record.
    async fn action(&self, action_id: &str) -> Result<Option<StoredAction>>;
    /// Adds a rollback ballot to an executed action; `executed → rolling-back` in the same
    /// transaction once `required` distinct approvers have voted (one rollback at a time).
    /// As [`ApprovalStore::vote`], only ballots `judge` counts for this attempt count.
    async fn begin_rollback(
        &self,
        action_id: &str,
        ballot: &crate::identity::Ballot,
        required: u32,
        judge: &dyn BallotJudge,
        now: DateTime<Utc>,
    ) -> Result<std::result::Result<RollbackVote, Refusal>>;
    /// How many rollbacks of `action_id` have begun (the attempt a rollback ballot is cast on).
    async fn rollback_attempts(&self, action_id: &str) -> Result<i64>;
    /// `rolling-back → rolled-back` (and the request `executed → rolled-back`, the ledger's
    /// realised dollars back to 0), or back to `executed` when the rollback failed.
    async fn finish_rollback(
        &self,
        action: &StoredAction,
        ok: bool,
        by: &str,
        detail: &str,
        now: DateTime<Utc>,
    ) -> Result<()>;
    /// Sets the switch.
    async fn set_emergency_stop(&self, on: bool, by: &str, reason: &str, now: DateTime<Utc>) -> Result<()>;
    /// Claims the right to post message `key` (`false`: already posted, or being posted by
    /// another invocation less than 5 minutes ago).
    async fn claim_post(&self, key: &str, now: DateTime<Utc>) -> Result<bool>;
    /// Marks `key` posted.
    async fn mark_posted(&self, key: &str, now: DateTime<Utc>) -> Result<()>;
    /// The status of the post of `key` (`posting`, `posted`, `uncertain`), if claimed.
    async fn post_status(&self, key: &str) -> Result<Option<String>>;
    /// Releases a claim after a failed post, so the retry may post.
    async fn release_post(&self, key: &str) -> Result<()>;
    /// Records that the post of `key` may have reached Slack without an answer (`why`): the claim
    /// stays, so no retry posts it a second time.
    async fn mark_post_uncertain(&self, key: &str, now: DateTime<Utc>, why: &str) -> Result<()>;
    /// A finding's audit trail, oldest first.
    async fn audit_trail(&self, finding_id: &str) -> Result<Vec<AuditEntry>>;
    /// Records a snooze (replacing one on the same resource), with its audit items, and closes
    /// the resource's pending approval requests.
    /// With `keep_longer` (a Slack click), a snooze in force that ends later is kept instead. The
    /// requests closed are those of any of `checks`' rules on the resource.
    async fn snooze(
        &self,
        snooze: &Snooze,
        keep_longer: bool,
        checks: &crate::evidence::Catalog,
    ) -> Result<SnoozeGranted>;
    /// Lifts `snooze` as it was read (ends it now); if it was replaced or lifted since, nothing
    /// is changed and the answer says so.
    async fn unsnooze(&self, snooze: &Snooze, by: &str, reason: &str, now: DateTime<Utc>) -> Result<Unsnoozed>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Resource, ResourceKind};

    fn resource(id: &str, account: &str, region: &str) -> Resource {
        Resource {
            kind: ResourceKind::Ec2Instance,
            id: id.into(),
            account: account.into(),
            region: region.into(),
            tags: Default::default(),
        }
    }

    fn snooze(id: &str, account: Option<&str>, region: Option<&str>, days: i64) -> Snooze {
        let at = DateTime::parse_from_rfc3339("2026-12-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        Snooze {
            resource_id: id.into(),
            until: at + chrono::Duration::days(days),
            by: "U1".into(),
            via: "slack".into(),
            reason: "r".into(),
            at,
            finding_id: None,
            account: account.map(str::to_string),
            region: region.map(str::to_string),
            lifted_by: None,
            lifted_at: None,
        }
    }

    #[test]
    fn a_snooze_from_one_account_leaves_the_same_id_elsewhere_assessed() {
        // cost-alert's TOTAL is the same id in every account and region.
        let z = Snoozes::new(vec![snooze("TOTAL", Some("111111111111"), Some("us-east-1"), 30)]);
        assert!(z.covering(&resource("TOTAL", "111111111111", "us-east-1")).is_some());
        assert!(z.covering(&resource("TOTAL", "222222222222", "us-east-1")).is_none());
        assert!(z.covering(&resource("TOTAL", "111111111111", "eu-west-1")).is_none());
        // One by id alone holds everywhere; of several, the one ending last is shown.
        let z = Snoozes::new(vec![
            snooze("i-1", Some("111111111111"), Some("us-east-1"), 7),
            snooze("i-1", None, None, 90),
        ]);
        assert_eq!(
            z.covering(&resource("i-1", "111111111111", "us-east-1"))
                .map(|z| z.until - z.at),
            Some(chrono::Duration::days(90))
        );
        assert!(z.covering(&resource("i-1", "222222222222", "eu-west-1")).is_some());
        assert!(z.covering(&resource("i-2", "111111111111", "us-east-1")).is_none());
        assert_eq!(snooze("i-1", None, None, 1).key(), "i-1");
        assert_eq!(snooze("i-1", Some("1"), None, 1).key(), "i-1@1/*");
    }

    #[test]
    fn a_reason_keeps_no_invisible_or_control_characters() {
        assert_eq!(
            Snooze::clean_reason(" quarter\u{202E}-end\u{200B} batch\u{0007}\n "),
            "quarter-end batch"
        );
        assert_eq!(Snooze::clean_reason(&"x".repeat(500)).len(), 200);
    }
}

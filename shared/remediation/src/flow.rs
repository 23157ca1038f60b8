//! The one flow every rule reuses after detection: plan (mode and exemptions) → approve or act →
//! record → notify. A failure on one finding is an outcome, never an abort of the run.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use futures::StreamExt;
use sha2::{Digest, Sha256};

use crate::act::{Executed, Refused, Remediation, Rollback};
use crate::approval::{Decision, LinkSigner};
use crate::error::{Error, Result};
use crate::model::{is_exempt, Finding, Outcome, OutcomeKind};
use crate::notify::{DigestItem, Message, Publisher};
use crate::policy::{Mode, Policy};
use crate::state::budget::{Budget, Grant, Limits, Period};
use crate::state::{ActionEnd, ActionRecord, ApprovalOpened, ApprovalRequest, StateStore};

/// Where a run keeps state and sends messages; each is optional in dry-run.
#[derive(Clone, Copy, Default)]
pub struct Sinks<'a> {
    pub state: Option<&'a dyn StateStore>,
    pub publisher: Option<&'a dyn Publisher>,
    pub links: Option<&'a LinkSigner>,
    /// A fan-out item's run: its findings go to the topic for Jira but not one by one to Slack,
    /// and no per-item digest or report is sent; the organisation digest is Slack's view.
    pub fanout: bool,
    /// The budget beyond this run that its automatic actions draw from (s3-public's account
    /// window, an organisation run); none for a daily scan of one account, held by its own limit.
    pub budget: Option<&'a Budget>,
}

/// Everything the flow needs to know about the run.
pub struct RunContext<'a> {
    pub mode: Mode,
    pub policy: &'a Policy,
    pub now: DateTime<Utc>,
    pub sinks: Sinks<'a>,
    /// How many findings the blast radius held back from acting (asked about instead).
    pub held: std::sync::atomic::AtomicUsize,
}

impl<'a> RunContext<'a> {
    /// The context of a run of `rule` at `now`, in the mode the policy sets for it.
    pub fn new(rule: &str, policy: &'a Policy, sinks: Sinks<'a>, now: DateTime<Utc>) -> Self {
        RunContext {
            mode: policy.mode_for(rule),
            policy,
            now,
            sinks,
            held: Default::default(),
        }
    }

    /// Refuses a mode the configured sinks cannot support: acting or asking without a table would
    /// act without a record. Dry-run needs nothing.
    pub fn check_sinks(&self) -> Result<()> {
        if self.mode != Mode::DryRun && self.sinks.state.is_none() {
            return Err(Error::Config(format!(
                "mode {} needs the state table (FINOPS_TABLE): nothing is done without a record",
                self.mode.as_str()
            )));
        }
        if self.mode == Mode::Approve && self.sinks.publisher.is_none() {
            return Err(Error::Config(
                "mode approve needs the SNS topic (FINOPS_TOPIC_ARN): nobody would be asked".into(),
            ));
        }
        Ok(())
    }

    /// The run's response: what was found and done, the savings, and the notes (what is switched
    /// off first, then the run's own).
    pub fn report(
        &self,
        rule: &str,
        scanned: usize,
        findings: Vec<Finding>,
        outcomes: Vec<Outcome>,
        notes: Vec<String>,
    ) -> crate::model::RunReport {
        let mut all_notes = self.notes();
        all_notes.extend(notes);
        crate::model::RunReport {
            rule: rule.to_string(),
            mode: self.mode,
            scanned,
            estimated_monthly_savings_usd: crate::model::RunReport::total_savings(&findings),
            failed: crate::model::RunReport::count_failed(&outcomes),
            findings_total: findings.len(),
            skipped: crate::model::RunReport::count_skipped(&outcomes),
            compliance: None,
            findings,
            outcomes,
            notes: all_notes,
            held: self.held.load(std::sync::atomic::Ordering::Relaxed),
            own_cost_usd: None,
        }
    }

    /// Sets aside the findings on snoozed resources, each as a skipped outcome that says whose
    /// snooze it is and until when (one Query of the snoozes per call). When the snoozes cannot
    /// be read, a run that would ask or act does neither (it cannot know what it was told to leave
    /// alone): every finding is set aside as failed, with the reason; a dry run keeps them and
    /// says so in a note.
    pub async fn set_aside_snoozed(&self, findings: Vec<Finding>) -> (Vec<Finding>, Vec<Outcome>, Vec<String>) {
        let Some(state) = self.sinks.state else {
            return (findings, Vec::new(), Vec::new());
        };
        if findings.is_empty() {
            return (findings, Vec::new(), Vec::new());
        }
        match snoozed_resources(state, self.now).await {
            Ok(snoozes) => {
                let (snoozed, kept): (Vec<Finding>, Vec<Finding>) = findings
                    .into_iter()
                    .partition(|f| snoozes.covering(&f.resource).is_some());
                let outcomes = snoozed
                    .iter()
                    .map(|f| {
                        Outcome::new(
                            &f.id,
                            OutcomeKind::Skipped,
                            snoozes.covering(&f.resource).map(|z| z.describe()).unwrap_or_default(),
                        )
                    })
                    .collect();
                (kept, outcomes, Vec::new())
            }
            Err(e) if self.mode == Mode::DryRun => {
                let note = format!("the snoozes could not be read ({e}): snoozed resources may be listed");
                (findings, Vec::new(), vec![note])
            }
            Err(e) => {
                let why = format!("the snoozes could not be read ({e}), so nothing is asked or done");
                let outcomes = findings
                    .iter()
                    .map(|f| Outcome::new(&f.id, OutcomeKind::Failed, why.clone()))
                    .collect();
                (Vec::new(), outcomes, vec![why])
            }
        }
    }

    /// Notes for the report about what is switched off.
    pub fn notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        if self.sinks.state.is_none() {
            notes.push("state is off: no FINOPS_TABLE configured".to_string());
        }
        if self.sinks.publisher.is_none() {
            notes.push("notifications are off: no FINOPS_TOPIC_ARN configured".to_string());
        }
        notes
    }
}

/// A moment strictly after `t` (and not before the wall clock), so each step sorts after the one
/// before it in the audit trail.
pub fn later(t: DateTime<Utc>) -> DateTime<Utc> {
    Utc::now().max(t + Duration::microseconds(1))
}

pub use crate::deadline::{time_left, wait_budget, within_deadline, within_invocation};

/// What a scan's invocation returns: its report, or — when it could assess nothing (a service
/// down) — an error naming the first failure, after the report has been logged, so Lambda counts
/// an error (the template's errors alarm) and retries the event.
pub fn invocation_result(report: crate::model::RunReport) -> Result<crate::model::RunReport> {
    if !report.assessed_nothing() {
        return Ok(report);
    }
    let first = report
        .outcomes
        .iter()
        .find(|o| o.outcome == OutcomeKind::Failed)
        .map(|o| format!("{}: {}", o.finding_id, o.detail))
        .unwrap_or_default();
    tracing::error!(report = %serde_json::to_string(&report).unwrap_or_default(), "nothing could be assessed");
    Err(Error::Unassessed {
        rule: report.rule,
        failed: report.failed,
        first,
    })
}

/// `Some(seconds left)` when the invocation is inside the policy's margin: no new action.
fn out_of_time(policy: &Policy) -> Option<i64> {
    let left = time_left()?;
    (left < Duration::seconds(i64::from(policy.action_time_margin_seconds))).then(|| left.num_seconds().max(0))
}

/// A short id, unique per (seed, time).
pub fn new_id(seed: &str, now: DateTime<Utc>) -> String {
    let mut h = Sha256::new();
    h.update(seed.as_bytes());
    h.update(now.timestamp_nanos_opt().unwrap_or_default().to_be_bytes());
    let digest = h.finalize();
    digest.iter().take(10).map(|b| format!("{b:02x}")).collect()
}

fn dollars(f: &Finding) -> String {
    match f.estimated_monthly_savings_usd {
        Some(usd) => format!("${usd:.2}/month"),
        None => "savings unknown".to_string(),
    }
}

/// Applies the mode to the findings of a run that scanned `scanned` resources; returns one
/// outcome per finding and notes for the report.
pub async fn apply(
    ctx: &RunContext<'_>,
    findings: &[Finding],
    remediation: &dyn Remediation,
    scanned: usize,
) -> (Vec<Outcome>, Vec<String>) {
    match ctx.mode {
        Mode::DryRun => dry_run_with(ctx, findings, Some(remediation)).await,
        Mode::Approve => {
            let (askable, mut outcomes) = askable(findings, remediation);
            let (asked, notes) = request_approvals(ctx, &askable).await;
            outcomes.extend(asked);
            (outcomes, notes)
        }
        Mode::Auto => act(ctx, findings, remediation, scanned).await,
    }
}

/// The findings a human may be asked about, and a `skipped` outcome for each action that cannot
/// be undone while the policy does not accept that.
fn askable(findings: &[Finding], remediation: &dyn Remediation) -> (Vec<Finding>, Vec<Outcome>) {
    let mut outcomes = Vec::new();
    let mut askable = Vec::with_capacity(findings.len());
    for f in findings {
        match remediation.irreversible(f) {
            Some(i) if !i.accepted => outcomes.push(Outcome::new(
                &f.id,
                OutcomeKind::Skipped,
                format!("not asked: it could not be undone: {}", i.reason),
            )),
            _ => askable.push(f.clone()),
        }
    }
    (askable, outcomes)
}

async fn publish(ctx: &RunContext<'_>, messages: &[Message], notes: &mut Vec<String>) {
    if messages.is_empty() {
        return;
    }
    if let Some(publisher) = ctx.sinks.publisher {
        if let Err(e) = publisher.publish(messages).await {
            tracing::error!(error = %e, messages = messages.len(), "publishing failed");
            notes.push(format!("notification failed ({} message(s)): {e}", messages.len()));
        }
    }
}

pub async fn dry_run(ctx: &RunContext<'_>, findings: &[Finding]) -> (Vec<Outcome>, Vec<String>) {
    dry_run_with(ctx, findings, None).await
}

async fn dry_run_with(
    ctx: &RunContext<'_>,
    findings: &[Finding],
    remediation: Option<&dyn Remediation>,
) -> (Vec<Outcome>, Vec<String>) {
    let outcomes = findings
        .iter()
        .map(|f| {
            let no_way_back = match remediation.and_then(|r| r.irreversible(f)) {
                Some(i) => format!(" (cannot be undone: {})", i.reason),
                None => String::new(),
            };
            Outcome::new(
                &f.id,
                OutcomeKind::DryRun,
                format!("would {}: {}{no_way_back}", f.action.as_str(), dollars(f)),
            )
        })
        .collect();
    let in_digest = ctx.sinks.fanout || findings.len() > ctx.policy.notify.digest_over;
    let mut messages: Vec<Message> = findings
        .iter()
        .map(|f| Message::Finding {
            mode: Mode::DryRun,
            finding: f.clone(),
            in_digest,
            snooze: snooze_buttons(ctx, f),
        })
        .collect();
    if in_digest && !ctx.sinks.fanout {
        messages.push(digest(ctx, findings, &HashMap::new()));
    }
    let mut notes = Vec::new();
    publish(ctx, &messages, &mut notes).await;
    (outcomes, notes)
}

/// The Snooze choices of a finding's message, usable as long as a rollback link is.
fn snooze_buttons(ctx: &RunContext<'_>, f: &Finding) -> Vec<crate::notify::SnoozeButton> {
    let until = ctx.now + Duration::days(i64::from(ctx.policy.approvals.rollback_link_days));
    ctx.sinks
        .links
        .map(|links| crate::notify::SnoozeButton::all_for(links, f, until))
        .unwrap_or_default()
}

/// One message for many findings: counts and dollars per rule, the largest by dollars (with their
/// approval links when asked for).
fn digest(ctx: &RunContext<'_>, findings: &[Finding], links: &HashMap<String, (String, String)>) -> Message {
    let all: Vec<&Finding> = findings.iter().collect();
    let mut sorted = all.clone();
    sorted.sort_by(|a, b| {
        b.estimated_monthly_savings_usd
            .unwrap_or(0.0)
            .total_cmp(&a.estimated_monthly_savings_usd.unwrap_or(0.0))
            .then_with(|| a.id.cmp(&b.id))
    });
    let top = sorted
        .iter()
        .take(ctx.policy.notify.digest_top)
        .map(|f| DigestItem {
            finding_id: f.id.clone(),
            rule: f.rule.clone(),
            resource_id: f.resource.id.clone(),
            action: f.action.as_str().to_string(),
            owner: f.owner().to_string(),
            usd: f.estimated_monthly_savings_usd,
            approve_url: links.get(&f.id).map(|l| l.0.clone()),
            reject_url: links.get(&f.id).map(|l| l.1.clone()),
        })
        .collect();
    Message::Digest {
        mode: ctx.mode,
        total_findings: findings.len(),
        total_usd: crate::model::RunReport::total_savings(findings),
        by_rule: crate::notify::totals(&all),
        top,
    }
}

/// Records and sends one approval request per finding (the approve mode; also what a rule asks
/// instead of acting when a finding needs a person whatever the mode).
pub async fn request_approvals(ctx: &RunContext<'_>, findings: &[Finding]) -> (Vec<Outcome>, Vec<String>) {
    ask(ctx, findings, &HashMap::new()).await
}

/// [`request_approvals`], each request saying why it was not done automatically where `held`
/// names the finding.
async fn ask(
    ctx: &RunContext<'_>,
    findings: &[Finding],
    held: &HashMap<String, String>,
) -> (Vec<Outcome>, Vec<String>) {
    let mut outcomes = Vec::with_capacity(findings.len());
    let mut notes = Vec::new();
    let Some(state) = ctx.sinks.state else {
        return (
            outcomes,
            vec!["approve mode without a state table: nothing requested".into()],
        );
    };
    let expires_at = ctx.now + Duration::hours(i64::from(ctx.policy.approval_ttl_hours));
    let in_digest = findings.len() > ctx.policy.notify.digest_over;
    let mut digest_links: HashMap<String, (String, String)> = HashMap::new();
    let mut sent: Vec<Finding> = Vec::new();
    for f in findings {
        let request = ApprovalRequest {
            request_id: new_id(&f.id, ctx.now),
            finding: f.clone(),
            created_at: ctx.now,
            expires_at,
            required_approvals: ctx.policy.approvals.required_approvals(&f.resource.tags),
        };
        let (request_id, notify) = match state.open_approval(&request).await {
            Ok(ApprovalOpened::Created) => (request.request_id.clone(), true),
            Ok(ApprovalOpened::AlreadyOpen {
                request_id,
                notified,
                created_at,
                unsent,
            }) => {
                // Opened moments ago, not yet marked sent and not known unsent: the run that
                // opened it is sending it now (a burst of events for one resource runs side by
                // side); sent once, by it.
                let being_sent = !unsent && created_at.is_some_and(|t| ctx.now - t < Duration::minutes(5));
                if notified || being_sent {
                    outcomes.push(Outcome::new(
                        &f.id,
                        OutcomeKind::PendingApproval,
                        format!("already awaiting approval (request {request_id}); no new request"),
                    ));
                    continue;
                }
                // The earlier run recorded the request but its message never left: send it now.
                (request_id, true)
            }
            Err(e) => {
                outcomes.push(Outcome::new(
                    &f.id,
                    OutcomeKind::Failed,
                    format!("could not record the approval request: {e}"),
                ));
                continue;
            }
        };
        if notify {
            let message = Message::ApprovalRequest {
                request_id: request_id.clone(),
                finding: f.clone(),
                expires_at,
                approve_url: ctx
                    .sinks
                    .links
                    .map(|l| l.link(&request_id, Decision::Approve, expires_at)),
                reject_url: ctx
                    .sinks
                    .links
                    .map(|l| l.link(&request_id, Decision::Reject, expires_at)),
                in_digest,
                snooze: snooze_buttons(ctx, f),
                held: held.get(&f.id).cloned(),
            };
            if let Message::ApprovalRequest {
                approve_url: Some(a),
                reject_url: Some(r),
                ..
            } = &message
            {
                digest_links.insert(f.id.clone(), (a.clone(), r.clone()));
            }
            let mut publish_notes = Vec::new();
            publish(ctx, std::slice::from_ref(&message), &mut publish_notes).await;
            if publish_notes.is_empty() {
                sent.push(f.clone());
                if let Err(e) = state.mark_notified(&request_id).await {
                    notes.push(format!("request {request_id} sent but not marked as sent: {e}"));
                }
                outcomes.push(Outcome::new(
                    &f.id,
                    OutcomeKind::PendingApproval,
                    format!(
                        "approval requested (request {request_id}, expires {}): {} {}",
                        expires_at.to_rfc3339(),
                        f.action.as_str(),
                        dollars(f)
                    ),
                ));
            } else {
                notes.extend(publish_notes);
                if let Err(e) = state.mark_unsent(&request_id).await {
                    notes.push(format!("request {request_id} not sent, and not marked unsent: {e}"));
                }
                outcomes.push(Outcome::new(
                    &f.id,
                    OutcomeKind::Failed,
                    format!("approval request {request_id} recorded but not sent; the next run sends it"),
                ));
            }
        }
    }
    if in_digest && !sent.is_empty() {
        let d = digest(ctx, &sent, &digest_links);
        publish(ctx, std::slice::from_ref(&d), &mut notes).await;
    }
    (outcomes, notes)
}

/// Auto mode: acts on what it may, within the blast radius; above it, acts on none and asks.
async fn act(
    ctx: &RunContext<'_>,
    findings: &[Finding],
    remediation: &dyn Remediation,
    scanned: usize,
) -> (Vec<Outcome>, Vec<String>) {
    // Exempt findings are skipped by `execute` itself; they do not count toward the limit.
    let (mut outcomes, actionable): (Vec<Outcome>, Vec<Finding>) = {
        let mut outcomes = Vec::new();
        let mut actionable = Vec::new();
        for f in findings {
            match remediation.irreversible(f) {
                Some(i) => outcomes.push(Outcome::new(
                    &f.id,
                    OutcomeKind::Skipped,
                    format!(
                        "not done automatically: it could not be undone ({}); only a human's approval may run it",
                        i.reason
                    ),
                )),
                None => actionable.push(f.clone()),
            }
        }
        (outcomes, actionable)
    };
    let would_act = actionable
        .iter()
        .filter(|f| !is_exempt(&f.resource.tags, &ctx.policy.exempt_tag))
        .count();
    let limit = ctx.policy.action_limit(scanned);
    if would_act > limit {
        let held = format!(
            "blast radius: would act on {would_act} of {scanned} scanned, limit {limit} (max_actions {}, max_actions_percent {}): nothing done automatically",
            ctx.policy.max_actions, ctx.policy.max_actions_percent
        );
        tracing::warn!(would_act, limit, scanned, "blast radius exceeded: acting on none");
        ctx.held.fetch_add(would_act, std::sync::atomic::Ordering::Relaxed);
        let mut notes = vec![held.clone()];
        publish(
            ctx,
            &[Message::Held {
                rule: findings.first().map(|f| f.rule.clone()).unwrap_or_default(),
                would_act,
                limit,
                scanned,
                detail: held.clone(),
                acted: 0,
            }],
            &mut notes,
        )
        .await;
        // Above the limit the run asks instead (when it can: a topic to ask through).
        if ctx.sinks.publisher.is_some() {
            let (asked, ask_notes) = request_approvals(ctx, &actionable).await;
            notes.extend(ask_notes);
            outcomes.extend(asked.into_iter().map(|mut o| {
                o.detail = format!("{held}; {}", o.detail);
                o
            }));
        } else {
            outcomes.extend(
                actionable
                    .iter()
                    .map(|f| Outcome::new(&f.id, OutcomeKind::Skipped, held.clone())),
            );
        }
        return (outcomes, notes);
    }
    // Beyond this run: the budget of its period (Config events, an organisation run).
    let mut notes = Vec::new();
    let period = ctx
        .sinks
        .budget
        .map(|b| b.period(scanned, ctx.policy.event_budget_hours));
    if let (Some(state), Some(period @ Period::Org { .. })) = (ctx.sinks.state, &period) {
        if let Err(e) = state.register_scanned(&rule_of(findings), period, ctx.now).await {
            // The run's percent is then of less than it scanned: stricter, never looser.
            notes.push(format!(
                "this item's scanned count was not added to the run's budget: {e}"
            ));
        }
    }
    let (acted, exec_notes) = execute(
        ctx,
        &actionable,
        remediation,
        Decider {
            by: "auto",
            request_id: None,
            sealer: None,
            budget: period.as_ref(),
        },
    )
    .await;
    notes.extend(exec_notes);
    let mut held: Vec<(Finding, String)> = Vec::new();
    let mut done = 0;
    for a in acted {
        match a.held {
            Some(why) => {
                if let Some(f) = actionable.iter().find(|f| f.id == a.outcome.finding_id) {
                    held.push((f.clone(), why));
                }
            }
            None => {
                done += usize::from(a.outcome.outcome == OutcomeKind::Executed);
                outcomes.push(a.outcome);
            }
        }
    }
    if !held.is_empty() {
        let (asked, ask_notes) = hold_back(ctx, &held, done, scanned).await;
        outcomes.extend(asked);
        notes.extend(ask_notes);
    }
    (outcomes, notes)
}

/// The rule of a run's findings (its budget's name).
fn rule_of(findings: &[Finding]) -> String {
    findings.first().map(|f| f.rule.clone()).unwrap_or_default()
}

/// The findings the budget of the period held back, each with why: asked about (each request
/// says why it was not done automatically; an organisation run's digest counts them), never done.
async fn hold_back(
    ctx: &RunContext<'_>,
    held: &[(Finding, String)],
    done: usize,
    scanned: usize,
) -> (Vec<Outcome>, Vec<String>) {
    ctx.held.fetch_add(held.len(), std::sync::atomic::Ordering::Relaxed);
    tracing::warn!(held = held.len(), done, scanned, "period budget spent: asking instead");
    let mut notes = vec![format!(
        "{} held back from acting ({done} done): {}; asked instead",
        held.len(),
        held.first().map(|h| h.1.as_str()).unwrap_or_default()
    )];
    let findings: Vec<Finding> = held.iter().map(|h| h.0.clone()).collect();
    if ctx.sinks.publisher.is_none() {
        let outcomes = held
            .iter()
            .map(|(f, why)| Outcome::new(&f.id, OutcomeKind::Skipped, format!("{why}: not done")))
            .collect();
        return (outcomes, notes);
    }
    let reasons: HashMap<String, String> = held.iter().map(|(f, why)| (f.id.clone(), why.clone())).collect();
    let (asked, ask_notes) = ask(ctx, &findings, &reasons).await;
    notes.extend(ask_notes);
    let outcomes = asked
        .into_iter()
        .map(|mut o| {
            if let Some((_, why)) = held.iter().find(|h| h.0.id == o.finding_id) {
                o.detail = format!("{why}; {}", o.detail);
            }
            o
        })
        .collect();
    (outcomes, notes)
}

/// Who decided an action, and on which approval request.
#[derive(Debug, Clone, Copy)]
pub struct Decider<'a> {
    /// `auto`, or the approvers.
    pub by: &'a str,
    pub request_id: Option<&'a str>,
    /// The approval function's sealer: its action records are sealed (a detector's are not).
    pub sealer: Option<&'a crate::approval::Sealer>,
    /// The period budget an automatic action draws from right before it starts (none: the
    /// run's own limit is all, or a person decided).
    pub budget: Option<&'a Period>,
}

/// What happened to one finding that was up for action.
#[derive(Debug, Clone, PartialEq)]
pub struct Acted {
    pub outcome: Outcome,
    /// The action record, when one was written.
    pub action_id: Option<String>,
    /// Refused because the decision is no longer true on fresh data (exempt now, gone, no
    /// longer idle, public, untagged or unattached): an approval of it is closed as obsolete.
    pub obsolete: bool,
    /// Not finished in this invocation (out of time, or a snapshot still being taken): a later
    /// run takes it up.
    pub deferred: bool,
    /// Not done because the period's budget is spent (why): a person is asked instead.
    pub held: Option<String>,
}

fn acted(finding_id: &str, kind: OutcomeKind, detail: impl Into<String>) -> Acted {
    Acted {
        outcome: Outcome::new(finding_id, kind, detail),
        action_id: None,
        obsolete: false,
        deferred: false,
        held: None,
    }
}

fn obsolete(finding_id: &str, detail: impl Into<String>) -> Acted {
    Acted {
        obsolete: true,
        ..acted(finding_id, OutcomeKind::Skipped, detail)
    }
}

/// A resource as the budgets and the acting lock name it: `account/region/id`.
pub fn resource_key(r: &crate::model::Resource) -> String {
    format!("{}/{}/{}", r.account, r.region, r.id)
}

/// The snoozes in force at `now`, looked up by resource.
pub async fn snoozed_resources(state: &dyn StateStore, now: DateTime<Utc>) -> Result<crate::state::Snoozes> {
    Ok(crate::state::Snoozes::new(state.snoozes(now).await?))
}

pub use crate::state::guards::{snoozed, stopped};

/// Acts on findings someone (or the auto mode) decided on: exemption from the finding's tags,
/// a batched re-check of the resources right now, the pre-state and rollback recorded before
/// anything changes, the action, its record finished, and one `action-result` message each.
pub async fn execute(
    ctx: &RunContext<'_>,
    findings: &[Finding],
    remediation: &dyn Remediation,
    decider: Decider<'_>,
) -> (Vec<Acted>, Vec<String>) {
    let mut out = Vec::with_capacity(findings.len());
    let mut notes = Vec::new();
    let Some(state) = ctx.sinks.state else {
        return (out, vec!["acting without a state table: nothing done".into()]);
    };
    // Exemption first, from the finding's own tags: never even re-read an exempt resource.
    let (exempt, candidates): (Vec<&Finding>, Vec<&Finding>) = findings
        .iter()
        .partition(|f| is_exempt(&f.resource.tags, &ctx.policy.exempt_tag));
    for f in exempt {
        out.push(obsolete(&f.id, format!("exempt: tag {}=true", ctx.policy.exempt_tag)));
    }
    if candidates.is_empty() {
        return (out, notes);
    }
    // A snooze granted since the decision is honoured: read again right before acting.
    let candidates = match snoozed_resources(state, ctx.now).await {
        Ok(snoozes) => {
            let (snoozed, rest): (Vec<&Finding>, Vec<&Finding>) = candidates
                .into_iter()
                .partition(|f| snoozes.covering(&f.resource).is_some());
            for f in snoozed {
                out.push(obsolete(
                    &f.id,
                    snoozes.covering(&f.resource).map(|z| z.describe()).unwrap_or_default(),
                ));
            }
            rest
        }
        Err(e) => {
            for f in candidates {
                out.push(acted(
                    &f.id,
                    OutcomeKind::Failed,
                    format!("the snoozes could not be read ({e}), so nothing was done"),
                ));
            }
            return (out, notes);
        }
    };
    if candidates.is_empty() {
        return (out, notes);
    }
    // When the resources were read: a finished action's lock holds only runs that read before it.
    let read_at = Utc::now();
    let rechecked = match remediation.recheck(&candidates).await {
        Ok(r) => r,
        Err(e) => {
            for f in candidates {
                out.push(acted(
                    &f.id,
                    OutcomeKind::Failed,
                    format!("re-check failed, nothing done: {e}"),
                ));
            }
            return (out, notes);
        }
    };
    // Each finding's action in turn, up to `action_concurrency` at once (snapshot waits overlap),
    // outcomes kept in the findings' order.
    let concurrency = ctx.policy.action_concurrency.max(1) as usize;
    // The futures are built first: a closure inside the stream would not be `Send` for every
    // lifetime, which the `async_trait` executors need.
    let mut actions = Vec::with_capacity(candidates.len());
    for f in candidates {
        actions.push(act_on(
            ctx,
            state,
            remediation,
            decider,
            f,
            rechecked.get(&f.id),
            read_at,
        ));
    }
    let results: Vec<(Acted, Option<Message>, Vec<String>)> =
        futures::stream::iter(actions).buffered(concurrency).collect().await;
    let mut messages = Vec::new();
    let mut out_of_time = 0;
    for (a, message, n) in results {
        out_of_time += usize::from(a.deferred && a.action_id.is_none());
        out.push(a);
        messages.extend(message);
        notes.extend(n);
    }
    if out_of_time > 0 {
        notes.push(format!(
            "time budget: {out_of_time} action(s) not started with under {}s of the invocation left; deferred to the next run",
            ctx.policy.action_time_margin_seconds
        ));
    }
    publish(ctx, &messages, &mut notes).await;
    (out, notes)
}

/// One finding's action after its re-check: the guards that judge the moment (no way back, the
/// time budget, the emergency stop), the record, the action, its end; and its `action-result`.
async fn act_on(
    ctx: &RunContext<'_>,
    state: &dyn StateStore,
    remediation: &dyn Remediation,
    decider: Decider<'_>,
    f: &Finding,
    rechecked: Option<&crate::act::Recheck>,
    read_at: DateTime<Utc>,
) -> (Acted, Option<Message>, Vec<String>) {
    let mut notes = Vec::new();
    let pre_state = match rechecked {
        Some(Ok(pre)) => pre.clone(),
        Some(Err(Refused::Obsolete(reason))) => return (obsolete(&f.id, reason.clone()), None, notes),
        Some(Err(Refused::NotNow(reason))) => return (acted(&f.id, OutcomeKind::Skipped, reason.clone()), None, notes),
        None => {
            return (
                acted(&f.id, OutcomeKind::Skipped, "re-check returned nothing; nothing done"),
                None,
                notes,
            )
        }
    };
    let rollback = remediation.rollback_for(f, &pre_state);
    match &rollback {
        Rollback::Nothing { reason } => {
            return (
                acted(
                    &f.id,
                    OutcomeKind::Skipped,
                    format!("no way back, so not done: {reason}"),
                ),
                None,
                notes,
            )
        }
        Rollback::Irreversible { reason } if decider.request_id.is_none() => {
            return (
                acted(
                    &f.id,
                    OutcomeKind::Skipped,
                    format!(
                        "not done automatically: it could not be undone ({reason}); only a human's approval may run it"
                    ),
                ),
                None,
                notes,
            )
        }
        _ => {}
    }
    // The time budget: an action is not started that the invocation may not see through.
    if let Some(left) = out_of_time(ctx.policy) {
        return (
            Acted {
                deferred: true,
                ..acted(
                    &f.id,
                    OutcomeKind::Skipped,
                    format!(
                        "deferred: the invocation has {left}s left, under the {}s margin (action_time_margin_seconds); the next run takes it up",
                        ctx.policy.action_time_margin_seconds
                    ),
                )
            },
            None,
            notes,
        );
    }
    // The emergency stop and the resource's snoozes, read right before each action (a batch's
    // later actions may start minutes after the run read them); both fail closed.
    if let Some(why) = stopped(state).await {
        return (
            acted(&f.id, OutcomeKind::Skipped, format!("{why}: not done")),
            None,
            notes,
        );
    }
    if let Some(why) = snoozed(state, &f.resource, ctx.now).await {
        return (
            acted(&f.id, OutcomeKind::Skipped, format!("{why}: not done")),
            None,
            notes,
        );
    }
    // What needs a person even in auto mode (an address a stop releases): asked about instead.
    if decider.request_id.is_none() {
        if let Some(why) = remediation.asks_first(f, &pre_state) {
            return (
                Acted {
                    held: Some(why.clone()),
                    ..acted(&f.id, OutcomeKind::Skipped, why)
                },
                None,
                notes,
            );
        }
    }
    let key = resource_key(&f.resource);
    // The period's budget, drawn last, once nothing else stands in the way: what it cannot
    // grant is asked about.
    if let Some(period) = decider.budget {
        let why = match state
            .draw_action(&f.rule, period, Limits::of(ctx.policy), &key, ctx.now)
            .await
        {
            Ok(Grant::Granted) => None,
            Ok(Grant::Spent(why)) => Some(why),
            Err(e) => Some(format!("the blast-radius budget could not be drawn from ({e})")),
        };
        if let Some(why) = why {
            return (
                Acted {
                    held: Some(why.clone()),
                    ..acted(&f.id, OutcomeKind::Skipped, why)
                },
                None,
                notes,
            );
        }
    }
    // One id per attempt: two invocations given the same time (a replayed event, a test's clock)
    // never collide on one record.
    let attempt = Utc::now().timestamp_nanos_opt().unwrap_or_default();
    let action_id = new_id(&format!("{}#{attempt}", f.id), ctx.now);
    // One action on a resource at a time, whichever rule, run or approval: a run whose re-check
    // was read before another acted does not act again (the lock is kept until it lapses).
    match state
        .lock_resource(&key, &action_id, Utc::now().max(ctx.now), read_at)
        .await
    {
        Ok(None) => {}
        Ok(Some(held)) => {
            return (
                acted(
                    &f.id,
                    OutcomeKind::Skipped,
                    format!("another action is under way on it ({held}): not done twice"),
                ),
                None,
                notes,
            )
        }
        Err(e) => {
            return (
                acted(
                    &f.id,
                    OutcomeKind::Failed,
                    format!("its acting lock could not be taken ({e}), so nothing was done"),
                ),
                None,
                notes,
            )
        }
    }
    let seal = decider.sealer.map(|sealer| {
        sealer.seal(
            crate::state::ACTION_SEAL,
            &[&crate::state::record_on(
                &action_id,
                f,
                decider.by,
                decider.request_id,
                &rollback,
                Some(ctx.now),
            )],
        )
    });
    let record = ActionRecord {
        action_id,
        finding: f.clone(),
        mode: ctx.mode,
        decided_by: decider.by.to_string(),
        request_id: decider.request_id.map(str::to_string),
        rollback,
        pre_state,
        started_at: ctx.now,
        seal,
    };
    // The pre-state and rollback are on record before anything changes.
    if let Err(e) = state.begin_action(&record).await {
        if let Err(e) = state.unlock_resource(&key, &record.action_id).await {
            tracing::warn!(error = %e, resource = %key, "the acting lock was not given back; it lapses");
        }
        return (
            acted(&f.id, OutcomeKind::Failed, format!("not recorded, so not done: {e}")),
            None,
            notes,
        );
    }
    let (kind, end, detail) = match remediation.execute(f, &record.pre_state).await {
        Ok(Executed::Done(detail)) => (OutcomeKind::Executed, ActionEnd::Executed, detail),
        Ok(Executed::Unverified(detail)) => (OutcomeKind::Executed, ActionEnd::Unverified, detail),
        Ok(Executed::Deferred(detail)) => (OutcomeKind::Skipped, ActionEnd::Deferred, detail),
        Err(e) => (OutcomeKind::Failed, ActionEnd::Failed, e.to_string()),
    };
    tracing::info!(resource_id = %f.resource.id, outcome = ?kind, detail = %detail, "action finished");
    // Done: the lock is kept until it lapses, marked finished (a run that re-checked before
    // now must not act again; one that reads the resource later sees this action's effect).
    // Failed or deferred: given back, so a retry re-checks and tries again.
    let lock_end = match end {
        // Seen done by a read: a run that reads the resource from now on sees it too.
        ActionEnd::Executed => state.lock_done(&key, &record.action_id, Utc::now()).await,
        // Not yet seen: the lock holds every run until it lapses.
        ActionEnd::Unverified => Ok(()),
        ActionEnd::Deferred | ActionEnd::Failed => state.unlock_resource(&key, &record.action_id).await,
    };
    if let Err(e) = lock_end {
        tracing::warn!(error = %e, resource = %key, "the acting lock was not marked; it lapses");
    }
    if let Err(e) = state.finish_action(&record, end, &detail, later(ctx.now)).await {
        notes.push(format!(
            "action {} finished but its outcome was not recorded: {e}",
            record.action_id
        ));
    }
    let done = Acted {
        outcome: Outcome::new(
            &f.id,
            kind,
            format!("{detail} (action {}; way back: {})", record.action_id, record.rollback),
        ),
        action_id: Some(record.action_id.clone()),
        obsolete: false,
        deferred: end == ActionEnd::Deferred,
        held: None,
    };
    if kind == OutcomeKind::Executed {
        crate::telemetry::emit(&[crate::telemetry::realised_metric(
            &f.rule,
            f.estimated_monthly_savings_usd.unwrap_or(0.0),
            Utc::now().timestamp_millis(),
        )]);
    }
    let rollback_url = match (kind, ctx.sinks.links) {
        (OutcomeKind::Executed, Some(links)) => Some(links.link(
            &record.action_id,
            Decision::Rollback,
            ctx.now + Duration::days(i64::from(ctx.policy.approvals.rollback_link_days)),
        )),
        _ => None,
    };
    let message = Message::ActionResult {
        action_id: record.action_id.clone(),
        finding: f.clone(),
        outcome: kind,
        detail,
        decided_by: record.decided_by.clone(),
        rollback: record.rollback.clone(),
        rollback_url,
        rolled_back: false,
    };
    (done, Some(message), notes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_real_lambda_deadline_leaves_its_time_and_an_emulators_constant_leaves_no_deadline() {
        let policy = Policy::default();
        let now_ms = u64::try_from(Utc::now().timestamp_millis()).unwrap();
        // Lambda-Runtime-Deadline-Ms for a 900 s function just invoked: acts.
        let left = within_invocation(now_ms + 900_000, async { (time_left(), out_of_time(&policy)) }).await;
        let secs = left.0.expect("a deadline").num_seconds();
        assert!((895..=900).contains(&secs), "{secs}");
        assert_eq!(left.1, None);
        // Ten seconds left, under the 30 s margin: no new action.
        let near = within_invocation(now_ms + 10_000, async { out_of_time(&policy) }).await;
        assert!(near.is_some_and(|s| s <= 10), "{near:?}");
        // cargo lambda watch's 600000 (1970) and 0: no deadline, so nothing is deferred for it.
        for constant in [600_000, 0] {
            let none = within_invocation(constant, async { (time_left(), out_of_time(&policy)) }).await;
            assert_eq!(none, (None, None), "{constant}");
        }
    }

    #[test]
    fn ids_differ_by_seed_and_time_and_are_short_hex() {
        let t: DateTime<Utc> = "2026-11-26T06:00:00Z".parse().unwrap();
        let a = new_id("x", t);
        assert_eq!(a.len(), 20);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, new_id("y", t));
        assert_ne!(a, new_id("x", t + Duration::nanoseconds(1)));
    }

    #[test]
    fn acting_or_asking_without_a_table_is_refused_and_dry_run_is_not() {
        let policy = Policy::default();
        let ctx = |mode| RunContext {
            mode,
            policy: &policy,
            now: Utc::now(),
            sinks: Sinks::default(),
            held: Default::default(),
        };
        assert!(ctx(Mode::DryRun).check_sinks().is_ok());
        assert!(ctx(Mode::Auto)
            .check_sinks()
            .unwrap_err()
            .to_string()
            .contains("FINOPS_TABLE"));
        assert!(ctx(Mode::Approve).check_sinks().is_err());
        assert_eq!(ctx(Mode::DryRun).notes().len(), 2);
    }
}

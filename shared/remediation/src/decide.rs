//! The human in the loop: what a signed link or a Slack button does. A GET only previews; a
//! decision is a conditional write (single use), checked against the approvers list and the
//! emergency stop; an approval re-checks the resource and acts through the same flow as the auto
//! mode; a rollback is a decision of its own.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::act::Rollback;
use crate::approval::{Claims, Decision, LinkSigner, Sealer, TokenError};
use crate::error::Result;
use crate::flow::{self, later, Acted, Decider, RunContext, Sinks};
use crate::identity::Ballot;
use crate::model::{Finding, OutcomeKind};
use crate::notify::{Message, Publisher};
use crate::policy::{Approver, Mode, Policy};
use crate::state::{
    approval_on, rollback_on, ApprovalStore, BallotJudge, ExecutionEnd, Refusal, RollbackVote, StateStore,
    StoredAction, StoredApproval, Vote,
};

/// Carries out approved findings and rollbacks against AWS.
#[async_trait]
pub trait Executor: Send + Sync {
    /// Re-checks and acts on one approved finding through [`flow::execute`].
    async fn execute(&self, ctx: &RunContext<'_>, finding: &Finding, decider: Decider<'_>) -> (Acted, Vec<String>);
    /// Undoes an action taken on `finding`'s resource.
    async fn rollback(&self, finding: &Finding, rollback: &Rollback) -> Result<crate::act::Undone>;
    /// Reads `finding`'s resource to tell whether its action took effect (the hourly sweep's look
    /// at an execution that never finished).
    async fn observe(&self, finding: &Finding) -> Result<Observed>;
    /// Reads `finding`'s resource to tell whether `rollback` took effect (the hourly sweep's look
    /// at a rollback that never recorded its end): and the resource it made, if any.
    async fn observe_rollback(&self, finding: &Finding, rollback: &Rollback) -> Result<(Observed, Option<String>)>;
    /// The resource's tags now (`None`: it is gone), read right before an approved action: the
    /// number of approvers it needs is counted from them too.
    async fn tags_now(&self, finding: &Finding) -> Result<Option<crate::model::Tags>>;
}

/// What a resource shows of an action that never recorded its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observed {
    /// The action's effect is there (stopped, deleted, blocked).
    Done(String),
    /// It is not: nothing (or not all) was done.
    NotDone(String),
}

/// The approval function's judge of ballots: its decision key seals each ballot it casts, and a
/// ballot counts only when its seal holds for what is decided, today's lists admit its person,
/// and it is at most [`BALLOT_MAX_DAYS`] old.
pub struct Judge<'a> {
    sealer: &'a Sealer,
    policy: &'a Policy,
    now: DateTime<Utc>,
}

impl<'a> Judge<'a> {
    /// The judge of ballots at `now`, sealing with `sealer` and admitting by `policy`'s lists.
    pub fn new(sealer: &'a Sealer, policy: &'a Policy, now: DateTime<Utc>) -> Judge<'a> {
        Judge { sealer, policy, now }
    }
}

/// How long a ballot counts (approvals and rollbacks alike).
pub const BALLOT_MAX_DAYS: i64 = WAITING_APPROVAL_MAX_DAYS;

impl BallotJudge for Judge<'_> {
    fn seal(&self, ballot: Ballot, on: &str) -> Ballot {
        ballot.sealed(self.sealer, on)
    }

    fn cast_here(&self, ballot: &Ballot, on: &str) -> bool {
        ballot.seal_holds(self.sealer, on)
    }

    fn counts(&self, ballot: &Ballot, on: &str) -> bool {
        self.cast_here(ballot, on)
            && self.policy.approvals.admits_ballot(ballot)
            && ballot.at + chrono::Duration::days(BALLOT_MAX_DAYS) > self.now
            // A ballot from the future was not cast by this function's clock.
            && ballot.at <= self.now + chrono::Duration::minutes(5)
    }
}

/// What a page's form adds to a decision.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Form {
    /// The tick that confirms a rollback re-exposing data under the emergency stop.
    pub confirmed_under_stop: bool,
    /// The digest of the action record the page showed ([`StoredAction::shown_as`]).
    pub shown: Option<String>,
}

/// What the person sees: an HTTP status, a title and a sentence (pages and Slack replies).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub status: u16,
    pub title: String,
    pub message: String,
}

impl Verdict {
    fn new(status: u16, title: impl Into<String>, message: impl Into<String>) -> Self {
        Verdict {
            status,
            title: title.into(),
            message: message.into(),
        }
    }
}

/// What a GET shows: the request and the decision the link asks for, or why not.
#[derive(Debug, Clone, PartialEq)]
pub enum Preview {
    /// The confirmation form.
    Confirm {
        decision: Decision,
        finding: Box<Finding>,
        /// Who approved so far, how many verified people that is, and how many are needed.
        approvers: Vec<String>,
        have: u32,
        required: u32,
        expires_at: Option<DateTime<Utc>>,
        /// Why this decision must be confirmed explicitly, if it must (a rollback that makes data
        /// public again while the emergency stop is on).
        confirm_because: Option<String>,
        /// For a rollback: what it will do, as recorded (the person approves that, not a label).
        will_do: Option<String>,
        /// For a rollback: the digest of the record shown, which the form carries back.
        shown: Option<String>,
    },
    /// Nothing to decide.
    Refused(Verdict),
}

/// A vote recorded short of the quorum.
fn need_more(who: &Approver, have: u32, need: u32) -> Verdict {
    let proof = if who.verified() {
        ""
    } else {
        " A typed address is recorded as unverified and is not one of them: sign in or use Slack."
    };
    Verdict::new(
        202,
        "Approval recorded",
        format!(
            "{have} of {need} verified approvers so far; a second, different person must approve before anything is done.{proof}"
        ),
    )
}

fn token_refusal(e: TokenError) -> Verdict {
    match e {
        TokenError::Expired => Verdict::new(410, "Link expired", "This link has expired; nothing was changed."),
        TokenError::BadSignature => Verdict::new(
            403,
            "Invalid link",
            "This link's signature is not valid; nothing was changed.",
        ),
        TokenError::Malformed => Verdict::new(400, "Invalid link", "This link is malformed; nothing was changed."),
    }
}

fn refusal(r: Refusal) -> Verdict {
    match r {
        Refusal::Unknown => Verdict::new(404, "Unknown request", "There is no such request; nothing was changed."),
        Refusal::Expired => Verdict::new(410, "Request expired", "This request has expired; nothing was changed."),
        Refusal::NotPending(s) => Verdict::new(
            409,
            format!("Already {s}"),
            format!("This request is already {s}; nothing was changed."),
        ),
        Refusal::SameApprover => Verdict::new(
            409,
            "Already approved by you",
            "You have already approved this (under this or another name); a second, different person is needed. Nothing was changed.",
        ),
        Refusal::NotExecuted(s) => Verdict::new(
            409,
            "Nothing to roll back",
            format!("The action is {s}; nothing was changed."),
        ),
        Refusal::Full => Verdict::new(
            409,
            "No more ballots",
            "This decision holds as many ballots as it can; nothing was changed.",
        ),
        Refusal::TypedAlready => Verdict::new(
            409,
            "Sign in to decide",
            "A typed address is already recorded here, and typed addresses do not count toward this decision: sign in, or decide in Slack. Nothing was changed.",
        ),
        Refusal::ForeignRollback => {
            tracing::error!("an action record's way back is not for its own resource: refused (written by something other than this stack's functions?)");
            Verdict::new(
                409,
                "Not rolled back",
                "This action's recorded way back does not undo its own resource, so it is not run; nothing was changed.",
            )
        }
    }
}

/// A signed link naming no request this stack makes (it signs none such): the sender's error.
fn odd_link() -> Verdict {
    tracing::warn!("a signed link names an id this stack does not make");
    Verdict::new(
        400,
        "Invalid link",
        "This link names no request this service makes; nothing was changed.",
    )
}

/// A failure of ours: logged in full, shown to the person without anything internal.
fn internal(e: impl std::fmt::Display) -> Verdict {
    tracing::error!(error = %e, "decision failed");
    Verdict::new(
        503,
        "Try again",
        "The decision could not be recorded just now; nothing was changed. Try again in a minute.",
    )
}

/// The emergency stop, as a token holder is told of it: that it is on, not who set it or why.
fn stopped_verdict(why: &str, message: &str) -> Verdict {
    tracing::warn!(reason = %why, "refused: emergency stop");
    Verdict::new(503, "Emergency stop is on", message)
}

/// The approval service.
pub struct Approvals<'a> {
    pub store: &'a dyn ApprovalStore,
    pub state: &'a dyn StateStore,
    pub publisher: Option<&'a dyn Publisher>,
    pub links: &'a LinkSigner,
    /// Seals ballots (the decision key only the approval function reads).
    pub sealer: &'a Sealer,
    pub policy: &'a Policy,
    pub executor: &'a dyn Executor,
    /// The checks: which rules a finding id may name, and which rules a snooze closes.
    pub checks: &'a crate::evidence::Catalog,
}

impl Approvals<'_> {
    fn judge(&self, now: DateTime<Utc>) -> Judge<'_> {
        Judge {
            sealer: self.sealer,
            policy: self.policy,
            now,
        }
    }

    /// The ballots of `ballots` that count toward a decision on `on` now.
    fn counted(&self, ballots: &[Ballot], on: &str, now: DateTime<Utc>) -> Vec<Ballot> {
        let judge = self.judge(now);
        ballots.iter().filter(|b| judge.counts(b, on)).cloned().collect()
    }

    fn ctx(&self, now: DateTime<Utc>) -> RunContext<'_> {
        RunContext {
            mode: Mode::Approve,
            policy: self.policy,
            now,
            sinks: Sinks {
                state: Some(self.state),
                publisher: self.publisher,
                links: Some(self.links),
                fanout: false,
                budget: None,
            },
            held: Default::default(),
        }
    }

    async fn publish(&self, message: Message) {
        if let Some(p) = self.publisher {
            if let Err(e) = p.publish(std::slice::from_ref(&message)).await {
                tracing::error!(error = %e, kind = message.kind(), "publishing failed");
            }
        }
    }

    /// A GET of a link: checks the token and shows what it would do. Never writes.
    pub async fn preview(&self, token: &str, now: DateTime<Utc>) -> Preview {
        match self.links.verify(token, now) {
            Ok(claims) if !crate::approval::plausible_id(&claims.rid) => Preview::Refused(odd_link()),
            Ok(claims) => self.preview_of(&claims.rid, claims.d, now).await,
            Err(e) => Preview::Refused(token_refusal(e)),
        }
    }

    /// What decision `d` on `rid` (a request, or an action for a rollback) would be about, for a
    /// page that holds no token (the sign-in page a Jira issue links to). Never writes.
    pub async fn preview_of(&self, rid: &str, d: Decision, now: DateTime<Utc>) -> Preview {
        let claims = Claims {
            rid: rid.to_string(),
            d,
            exp: 0,
        };
        match claims.d {
            Decision::Rollback => match self.store.action(&claims.rid).await {
                Ok(Some(a)) if a.status == "executed" => match self.rollback_terms(&a, now).await {
                    // What a POST from this page would meet (the stop's tick aside: the page asks
                    // for it).
                    Ok(required) => {
                        // What a POST from this page would meet (the stop's tick aside: the page
                        // asks for it).
                        if let Some(v) = self.rollback_gate(&a, true, true).await {
                            return Preview::Refused(v);
                        }
                        let attempt = match self.store.rollback_attempts(&a.action_id).await {
                            Ok(n) => n,
                            Err(e) => return Preview::Refused(internal(e)),
                        };
                        let counted = self.counted(&a.rollback_ballots, &rollback_on(&a, attempt), now);
                        Preview::Confirm {
                            decision: Decision::Rollback,
                            required,
                            have: crate::identity::people(&counted),
                            approvers: counted.into_iter().map(|b| b.id).collect(),
                            confirm_because: self.reexposes_under_stop(&a).await,
                            will_do: Some(a.rollback.to_string()),
                            shown: Some(a.shown_as()),
                            finding: Box::new(a.finding),
                            expires_at: None,
                        }
                    }
                    Err(v) => Preview::Refused(v),
                },
                Ok(Some(a)) => Preview::Refused(refusal(Refusal::NotExecuted(a.status))),
                Ok(None) => Preview::Refused(refusal(Refusal::Unknown)),
                Err(e) => Preview::Refused(internal(e)),
            },
            d => match self.store.approval(&claims.rid).await {
                Ok(Some(a)) if a.status != "pending" => Preview::Refused(refusal(Refusal::NotPending(a.status))),
                Ok(Some(a)) if a.expires_at <= now => Preview::Refused(refusal(Refusal::Expired)),
                Ok(Some(a)) => {
                    let counted = self.counted(&a.ballots, &approval_on(&a.request_id, &a.finding), now);
                    Preview::Confirm {
                        decision: d,
                        required: a.required_approvals.max(self.required_now(&a.finding)),
                        have: crate::identity::people(&counted),
                        approvers: counted.into_iter().map(|b| b.id).collect(),
                        finding: Box::new(a.finding),
                        expires_at: Some(a.expires_at),
                        confirm_because: None,
                        will_do: None,
                        shown: None,
                    }
                }
                Ok(None) => Preview::Refused(refusal(Refusal::Unknown)),
                Err(e) => Preview::Refused(internal(e)),
            },
        }
    }

    /// Checks a token, the approver and the emergency stop. While the stop is on (or cannot be
    /// read) approvals execute nothing; rejections and rollbacks (which only restore) go ahead.
    /// A token minted for one person decides as that person only.
    async fn admit(&self, token: &str, who: &Approver, now: DateTime<Utc>) -> std::result::Result<Claims, Verdict> {
        let claims = self.links.verify(token, now).map_err(token_refusal)?;
        if !crate::approval::plausible_id(&claims.rid) {
            return Err(odd_link());
        }
        self.admit_claims(claims, who).await
    }

    /// [`Self::admit`] for a decision whose request and kind are already proven (a sign-in's
    /// session, kept on the server).
    async fn admit_claims(&self, claims: Claims, who: &Approver) -> std::result::Result<Claims, Verdict> {
        self.policy
            .approvals
            .allows(who)
            .map_err(|why| Verdict::new(403, "Not allowed", format!("{why}; nothing was changed.")))?;
        if claims.d == Decision::Approve {
            if let Some(why) = flow::stopped(self.state).await {
                return Err(stopped_verdict(
                    &why,
                    "Nothing is executed while the emergency stop is on. The request stays as it was.",
                ));
            }
        }
        Ok(claims)
    }

    /// A decision through a signed link (the confirmation page's POST): acts at once.
    /// `confirmed`: the person ticked the page's confirmation of a rollback that makes data
    /// public again under the emergency stop.
    pub async fn decide_link(&self, token: &str, who: &Approver, form: &Form, now: DateTime<Utc>) -> Verdict {
        match self.admit(token, who, now).await {
            Ok(claims) => self.decide(claims, who, form, now).await,
            Err(v) => v,
        }
    }

    /// A decision by a person who signed in: `rid` and `d` come from the server-side session the
    /// sign-in created, not from anything the browser sent.
    pub async fn decide_signed_in(
        &self,
        rid: &str,
        d: Decision,
        who: &Approver,
        form: &Form,
        now: DateTime<Utc>,
    ) -> Verdict {
        let claims = Claims {
            rid: rid.to_string(),
            d,
            exp: 0,
        };
        match self.admit_claims(claims, who).await {
            Ok(claims) => self.decide(claims, who, form, now).await,
            Err(v) => v,
        }
    }

    async fn decide(&self, claims: Claims, who: &Approver, form: &Form, now: DateTime<Utc>) -> Verdict {
        match claims.d {
            Decision::Approve => match self
                .store
                .vote(
                    &claims.rid,
                    &who.ballot(now),
                    &|f| self.required_now(f),
                    &self.judge(now),
                    now,
                )
                .await
            {
                Ok(Ok(Vote::Approved(_))) => self.execute_approved(&claims.rid, now).await,
                Ok(Ok(Vote::NeedMore { have, need })) => need_more(who, have, need),
                Ok(Err(r)) => refusal(r),
                Err(e) => internal(e),
            },
            Decision::Reject => self.reject(&claims.rid, who, now).await,
            Decision::Rollback => self.rollback(&claims.rid, who, form, true, now).await,
        }
    }

    /// A Snooze button pressed in Slack (the request's Slack signature already checked): the
    /// button's own signature, the person on the allow-list, then the snooze recorded with its
    /// audit items and the resource's pending requests closed, each announced. A snooze only
    /// makes the system do less, so the emergency stop does not hold it.
    pub async fn snooze_slack(&self, token: &str, who: &Approver, reason: &str, now: DateTime<Utc>) -> Verdict {
        let claims = match self.links.verify_snooze(token, now) {
            Ok(c) => c,
            Err(e) => return token_refusal(e),
        };
        if let Err(why) = self.policy.approvals.allows(who) {
            return Verdict::new(403, "Not allowed", format!("{why}; nothing was changed."));
        }
        // Lengths DynamoDB keys take (2 KB partition, 1 KB sort): a longer one is the sender's error.
        if claims.fid.len() > 1024 || claims.res.len() > 512 {
            return odd_link();
        }
        let Some(parts) = self.checks.parse_id(&claims.fid) else {
            return Verdict::new(
                400,
                "Invalid link",
                "This button names no finding; nothing was changed.",
            );
        };
        if !crate::approval::SNOOZE_DAYS.contains(&claims.days) {
            return Verdict::new(
                400,
                "Invalid link",
                "This button's length is not one a snooze may have; nothing was changed.",
            );
        }
        let by = match who {
            Approver::Slack { user_id, .. } => user_id.clone(),
            other => other.id(),
        };
        // The resource the button names, where its finding is (an id like cost-alert's `TOTAL`
        // is the same in every account and region).
        let snooze = crate::state::Snooze {
            resource_id: claims.res.clone(),
            until: now + chrono::Duration::days(i64::from(claims.days)),
            by,
            via: who.via().to_string(),
            reason: crate::state::Snooze::clean_reason(reason),
            at: now,
            finding_id: Some(claims.fid.clone()),
            account: Some(parts.account.to_string()),
            region: Some(parts.region.to_string()),
            lifted_by: None,
            lifted_at: None,
        };
        if snooze.resource_id.trim().is_empty() {
            return Verdict::new(
                400,
                "Invalid link",
                "This button names no resource; nothing was changed.",
            );
        }
        let granted = match self.store.snooze(&snooze, true, self.checks).await {
            Ok(g) => g,
            Err(e) => return internal(e),
        };
        if let Some(kept) = &granted.kept {
            return Verdict::new(
                200,
                "Already snoozed",
                format!(
                    "{} is already snoozed until {} by {}, which is later: that snooze stands and nothing was changed.",
                    kept.resource_id,
                    kept.until_text(),
                    kept.by
                ),
            );
        }
        for (request_id, finding) in &granted.closed_requests {
            self.publish(Message::ApprovalResult {
                request_id: request_id.clone(),
                finding: finding.clone(),
                status: "snoozed".into(),
                decided_by: who.id(),
                detail: format!("closed, nothing done: {}", snooze.describe()),
            })
            .await;
        }
        let mut closed = match granted.closed_requests.len() {
            0 => String::new(),
            n => format!(" {n} pending request(s) closed; nothing will be done."),
        };
        for w in &granted.warnings {
            closed.push_str(&format!(" Warning: {w}."));
        }
        Verdict::new(
            200,
            "Snoozed",
            format!(
                "{} is left alone until {} (every rule skips it until then).{closed}",
                snooze.resource_id,
                snooze.until_text()
            ),
        )
    }

    /// A decision through a Slack button: records it and answers at once (Slack waits 3 s);
    /// an approval is executed by this function's SNS subscription to `approval-result`
    /// (status `approved`).
    pub async fn decide_slack(&self, token: &str, who: &Approver, now: DateTime<Utc>) -> Verdict {
        let claims = match self.admit(token, who, now).await {
            Ok(c) => c,
            Err(v) => return v,
        };
        match claims.d {
            Decision::Approve => match self
                .store
                .vote(
                    &claims.rid,
                    &who.ballot(now),
                    &|f| self.required_now(f),
                    &self.judge(now),
                    now,
                )
                .await
            {
                Ok(Ok(Vote::Approved(a))) => {
                    self.publish(Message::ApprovalResult {
                        request_id: claims.rid.clone(),
                        decided_by: a.approvers.join(", "),
                        finding: a.finding,
                        status: "approved".into(),
                        detail: "approved in Slack; executing".into(),
                    })
                    .await;
                    Verdict::new(
                        200,
                        "Approved",
                        "Approved: the action runs now and its result is posted here.",
                    )
                }
                Ok(Ok(Vote::NeedMore { have, need })) => Verdict {
                    status: 200,
                    ..need_more(who, have, need)
                },
                Ok(Err(r)) => refusal(r),
                Err(e) => internal(e),
            },
            Decision::Reject => self.reject(&claims.rid, who, now).await,
            // Slack cannot show the confirmation a rollback under the stop may need: the page can.
            Decision::Rollback => self.rollback(&claims.rid, who, &Form::default(), false, now).await,
        }
    }

    async fn reject(&self, request_id: &str, who: &Approver, now: DateTime<Utc>) -> Verdict {
        match self.store.reject(request_id, &who.id(), who.via(), now).await {
            Ok(Ok(a)) => {
                self.publish(Message::ApprovalResult {
                    request_id: request_id.to_string(),
                    finding: a.finding,
                    status: "rejected".into(),
                    decided_by: who.id(),
                    detail: "rejected: nothing will be done".into(),
                })
                .await;
                Verdict::new(200, "Rejected", "Rejected: nothing will be done.")
            }
            Ok(Err(r)) => refusal(r),
            Err(e) => internal(e),
        }
    }

    /// Whether `approval` is to be carried out now: `Ok(None)` yes; `Ok(Some((detail, verdict)))`
    /// no, and it is to be closed (`detail` for the record, `verdict` for the person);
    /// `Err(verdict)`: not now, it stays as it is.
    async fn judged(
        &self,
        approval: &StoredApproval,
        now: DateTime<Utc>,
    ) -> std::result::Result<Option<(String, Verdict)>, Verdict> {
        // The status says approved; the ballots must say so too, under today's rules (an item
        // approved by an earlier version or policy, or written by something else, is not trusted
        // as such), and the decision must still be one to carry out.
        if let Some(why) = self.not_to_carry_out(approval, now) {
            return Ok(Some((
                format!("not carried out: {why}; the next run asks again"),
                Verdict::new(
                    409,
                    "Not carried out",
                    "The approval on record is not one to act on any more; nothing was done and the request is closed.",
                ),
            )));
        }
        // The approvers needed are counted again from the resource's tags now: a resource
        // tagged `Environment=prod` since detection needs two, whatever the request says.
        match self.executor.tags_now(&approval.finding).await {
            Ok(Some(tags)) => {
                let needed = self.policy.approvals.required_approvals(&tags);
                let admitted = self.counted(
                    &approval.ballots,
                    &approval_on(&approval.request_id, &approval.finding),
                    now,
                );
                if !crate::identity::quorum_met(&admitted, needed) {
                    return Ok(Some((
                        format!(
                            "not carried out: the resource's tags now ask for {needed} verified approvers and {} approved; the next run asks again",
                            crate::identity::people(&admitted)
                        ),
                        Verdict::new(
                            409,
                            "Not carried out",
                            format!("The resource is now tagged so that {needed} people must approve; nothing was done and the request is closed (the next run asks again)."),
                        ),
                    )));
                }
                Ok(None)
            }
            // Gone: the re-check before the action says so.
            Ok(None) => Ok(None),
            Err(e) => {
                tracing::warn!(error = %e, request_id = %approval.request_id, "tags unreadable: not executed yet");
                Err(Verdict::new(
                    503,
                    "Not executed yet",
                    "The resource could not be read to count the approvers it needs now; nothing was done, the request stays approved and the hourly sweep tries again.",
                ))
            }
        }
    }

    /// Executes an approved request once (`approved → executing` is the single-use gate):
    /// re-check, act, record, publish.
    pub async fn execute_approved(&self, request_id: &str, now: DateTime<Utc>) -> Verdict {
        let approval: StoredApproval = match self.store.approval(request_id).await {
            Ok(Some(a)) => a,
            Ok(None) => return refusal(Refusal::Unknown),
            Err(e) => return internal(e),
        };
        // Only what reads as approved is judged, and only what was judged is taken.
        if approval.status != "approved" {
            return refusal(Refusal::NotPending(approval.status));
        }
        if let Some(why) = flow::stopped(self.state).await {
            return stopped_verdict(
                &why,
                "The request is approved; it is executed once the emergency stop is off (the hourly sweep picks it up).",
            );
        }
        // Another action under way on the resource (a run, another approval): not now. The
        // request stays approved; the hourly sweep carries it out once that action is done.
        match self
            .state
            .resource_lock(&flow::resource_key(&approval.finding.resource), now)
            .await
        {
            Ok(None) => {}
            Ok(Some(held)) => {
                tracing::info!(request_id, held = %held, "approved, but another action is under way on the resource");
                return Verdict::new(
                    409,
                    "Another action is under way",
                    format!(
                        "Another action is under way on {} ({held}). The request stays approved; the hourly sweep carries it out once that action is done.",
                        approval.finding.resource.id
                    ),
                );
            }
            Err(e) => return internal(e),
        }
        let judged_at = now;
        match self.judged(&approval, judged_at).await {
            Ok(None) => {}
            Ok(Some((detail, verdict))) => {
                self.close_unexecuted(&approval, &detail, now).await;
                return verdict;
            }
            Err(verdict) => return verdict,
        }
        let now = later(now);
        match self.store.begin_execution(request_id, &approval.finding.id, now).await {
            Ok(true) => {}
            Ok(false) => return refusal(Refusal::NotPending(self.status_of(request_id).await)),
            Err(e) => return internal(e),
        }
        // Taken. The item is in a table other roles write: it is read and judged once more (at
        // the same time as before: `later` only orders the records), and what is acted on is
        // that very copy (its finding, its sealed ballots), never one read before the take.
        let approval = match self.store.approval(request_id).await {
            Ok(Some(taken)) => match self.judged(&taken, judged_at).await {
                Ok(None) => taken,
                Ok(Some((detail, verdict))) => {
                    self.fail_taken(&taken, &detail, judged_at).await;
                    return verdict;
                }
                Err(verdict) => {
                    self.fail_taken(&taken, "not carried out: the resource could not be read to count the approvers it needs; the next run asks again", judged_at)
                        .await;
                    return Verdict { status: 409, ..verdict };
                }
            },
            Ok(None) => return refusal(Refusal::Unknown),
            Err(e) => {
                self.fail_taken(
                    &approval,
                    "not carried out: the request could not be read again once taken",
                    now,
                )
                .await;
                return internal(e);
            }
        };
        // Who decided: the people whose sealed ballots count, never names another role added.
        let by = self.deciders(&approval, judged_at);
        let now = later(now);
        let ctx = self.ctx(now);
        let (acted, notes) = self
            .executor
            .execute(
                &ctx,
                &approval.finding,
                Decider {
                    by: &by,
                    request_id: Some(request_id),
                    sealer: Some(self.sealer),
                    budget: None,
                },
            )
            .await;
        for n in &notes {
            tracing::warn!(note = %n, "execution note");
        }
        let executed = acted.outcome.outcome == OutcomeKind::Executed;
        let end = match (executed, acted.obsolete) {
            (true, _) => ExecutionEnd::Executed,
            (false, true) => ExecutionEnd::Obsolete,
            (false, false) => ExecutionEnd::Failed,
        };
        if let Err(e) = self
            .store
            .finish_execution(
                request_id,
                &approval.finding,
                end,
                acted.action_id.as_deref(),
                &acted.outcome.detail,
                later(now),
            )
            .await
        {
            tracing::error!(error = %e, request_id, "execution finished but not recorded");
        }
        if acted.action_id.is_none() {
            // Refused before any action record: obsolete (the decision is no longer true on fresh
            // data), or not executed (the re-check could not read, the emergency stop): say so.
            self.publish(Message::ApprovalResult {
                request_id: request_id.to_string(),
                finding: approval.finding.clone(),
                status: match end {
                    ExecutionEnd::Obsolete => "obsolete".into(),
                    _ => "not-executed".into(),
                },
                decided_by: by.clone(),
                detail: acted.outcome.detail.clone(),
            })
            .await;
        }
        let f = &approval.finding;
        if executed {
            Verdict::new(
                200,
                format!("Done: {} {}", f.action.as_str(), f.resource.id),
                acted.outcome.detail,
            )
        } else if end == ExecutionEnd::Obsolete {
            Verdict::new(
                409,
                format!("Obsolete: {} {}", f.action.as_str(), f.resource.id),
                format!(
                    "Nothing was done and the request is closed: the decision is no longer true ({})",
                    acted.outcome.detail
                ),
            )
        } else {
            // Why (which may be an AWS error) is in the audit trail and the Slack message.
            Verdict::new(
                409,
                format!("Not done: {} {}", f.action.as_str(), f.resource.id),
                "The action was not carried out; the request is closed and the next run may ask again. The audit trail says why.",
            )
        }
    }

    /// Why an approved request is not to be carried out now, if it is not: too few verified
    /// people among the ballots today's lists admit, the rule in dry-run now, or approved too
    /// long ago.
    fn not_to_carry_out(&self, approval: &StoredApproval, now: DateTime<Utc>) -> Option<String> {
        let too_old = |t: DateTime<Utc>| t + chrono::Duration::days(WAITING_APPROVAL_MAX_DAYS) < now;
        // Only ballots this function cast on this request and finding (sealed), by people
        // today's lists admit, at most BALLOT_MAX_DAYS old.
        let sealed: Vec<Ballot> = approval
            .ballots
            .iter()
            .filter(|b| {
                self.judge(now)
                    .cast_here(b, &approval_on(&approval.request_id, &approval.finding))
            })
            .cloned()
            .collect();
        // The decision's time is the last sealed ballot's (the item's `decided_at` is not sealed).
        if approval.decided_at.is_none_or(too_old) || sealed.iter().map(|b| b.at).max().is_some_and(too_old) {
            return Some(format!(
                "approved more than {WAITING_APPROVAL_MAX_DAYS} days ago (or at an unknown time), too late to act on"
            ));
        }
        let required = approval.required_approvals.max(self.required_now(&approval.finding));
        let admitted = self.counted(&sealed, &approval_on(&approval.request_id, &approval.finding), now);
        if !crate::identity::quorum_met(&admitted, required) {
            return Some(format!(
                "the approvals on record are {} of the {required} verified people needed (by today's approvers lists)",
                crate::identity::people(&admitted)
            ));
        }
        if self.policy.mode_for(&approval.finding.rule) == Mode::DryRun {
            return Some(format!("{} is in dry-run now", approval.finding.rule));
        }
        None
    }

    /// Closes an approved request without acting (`approved → executing → failed`, with the
    /// reason), and says so on the topic.
    async fn close_unexecuted(&self, approval: &StoredApproval, detail: &str, now: DateTime<Utc>) {
        let rid = &approval.request_id;
        match self.store.begin_execution(rid, &approval.finding.id, later(now)).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                tracing::error!(error = %e, request_id = %rid, "not closed");
                return;
            }
        }
        self.fail_taken(approval, detail, now).await;
    }

    /// The ids of the people whose ballots on `approval` count now (sealed by this function, on
    /// today's lists), or `nobody` when none does.
    fn deciders(&self, approval: &StoredApproval, now: DateTime<Utc>) -> String {
        let ids: Vec<String> = self
            .counted(
                &approval.ballots,
                &approval_on(&approval.request_id, &approval.finding),
                now,
            )
            .into_iter()
            .map(|b| b.id)
            .collect();
        if ids.is_empty() {
            "nobody".to_string()
        } else {
            ids.join(", ")
        }
    }

    /// Ends a taken request (`executing`) without acting: recorded as failed with `detail`, and
    /// said on the topic.
    async fn fail_taken(&self, approval: &StoredApproval, detail: &str, now: DateTime<Utc>) {
        let rid = &approval.request_id;
        if let Err(e) = self
            .store
            .finish_execution(rid, &approval.finding, ExecutionEnd::Failed, None, detail, later(now))
            .await
        {
            tracing::error!(error = %e, request_id = %rid, "closed but not recorded");
        }
        self.publish(Message::ApprovalResult {
            request_id: rid.clone(),
            finding: approval.finding.clone(),
            status: "not-executed".into(),
            decided_by: self.deciders(approval, now),
            detail: detail.to_string(),
        })
        .await;
    }

    async fn status_of(&self, request_id: &str) -> String {
        match self.store.approval(request_id).await {
            Ok(Some(a)) => a.status,
            _ => "unknown".into(),
        }
    }

    /// How many verified approvers today's policy asks for `finding`.
    fn required_now(&self, finding: &Finding) -> u32 {
        self.policy.approvals.required_approvals(&finding.resource.tags)
    }

    /// Whether `action` may still be rolled back (within `rollback_link_days` of the action,
    /// checked here, not only by the link's expiry: a sign-in makes no link), and how many
    /// verified approvers that needs: as many as the action needed, and never fewer than today's
    /// policy says.
    async fn rollback_terms(&self, action: &StoredAction, now: DateTime<Utc>) -> std::result::Result<u32, Verdict> {
        if !action.rollback.is_for(&action.finding) {
            return Err(refusal(Refusal::ForeignRollback));
        }
        let days = i64::from(self.policy.approvals.rollback_link_days);
        // A record without its start (another role's doing) is past any window.
        if action
            .started_at
            .is_none_or(|t| t + chrono::Duration::days(days) <= now)
        {
            return Err(Verdict::new(
                410,
                "Rollback window closed",
                format!("This action is more than {days} days old and can no longer be rolled back from here; nothing was changed."),
            ));
        }
        // A record that claims a person's decision is the approval function's, sealed: one that
        // is not was written (or rewritten) by another role.
        if action.claims_a_decision() && !self.sealed_by_us(action) {
            tracing::error!(action_id = %action.action_id, "an action record claims a decision but carries no seal that holds: refused");
            return Err(Verdict::new(
                409,
                "Not rolled back",
                "This action's record was not written by the approval function as it reads now, so its way back is not run; nothing was changed.",
            ));
        }
        let stored = match &action.request_id {
            Some(rid) => match self.store.approval(rid).await {
                Ok(a) => a.map_or(1, |a| a.required_approvals),
                Err(e) => return Err(internal(e)),
            },
            None => 1,
        };
        // As for an approval: the resource's tags now count too (the recorded ones may be old, or
        // another role's).
        let now_needs = match self.executor.tags_now(&action.finding).await {
            Ok(Some(tags)) => self.policy.approvals.required_approvals(&tags),
            Ok(None) => 1,
            Err(e) => {
                tracing::warn!(error = %e, action_id = %action.action_id, "tags unreadable: no rollback now");
                return Err(Verdict::new(
                    503,
                    "Try again",
                    "The resource could not be read to count the approvers a rollback needs; nothing was changed. Try again in a minute.",
                ));
            }
        };
        Ok(stored
            .max(self.policy.approvals.required_approvals(&action.finding.resource.tags))
            .max(now_needs))
    }

    /// Snoozes the resource a rollback made in place of the removed one (a restored volume) for
    /// `ebs_cleanup.restored_snooze_days`; says so, or why not, for the rollback's detail.
    async fn snooze_restored(
        &self,
        action: &StoredAction,
        restored: Option<&str>,
        by: &str,
        now: DateTime<Utc>,
    ) -> String {
        let Some(id) = restored else {
            return String::new();
        };
        let days = self.policy.ebs_cleanup.restored_snooze_days;
        if days == 0 {
            return String::new();
        }
        let until = now + chrono::Duration::days(i64::from(days));
        let snooze = crate::state::Snooze {
            resource_id: id.to_string(),
            until,
            by: by.to_string(),
            via: "rollback".into(),
            reason: format!(
                "restored by the rollback of action {} ({}): left alone for {days} days",
                action.action_id, action.finding.resource.id
            ),
            at: now,
            finding_id: None,
            account: Some(action.finding.resource.account.clone()).filter(|a| !a.is_empty()),
            region: Some(action.finding.resource.region.clone()).filter(|r| !r.is_empty()),
            lifted_by: None,
            lifted_at: None,
        };
        match self.store.snooze(&snooze, true, self.checks).await {
            Ok(_) => format!(
                "; {id} is snoozed until {} so auto mode leaves it alone",
                until.format("%Y-%m-%d")
            ),
            Err(e) => {
                tracing::error!(error = %e, volume = %id, "the restored volume could not be snoozed");
                format!("; {id} could NOT be snoozed ({e}): auto mode may delete it again after its grace period")
            }
        }
    }

    /// Whether this function wrote `action` as it reads now (its seal holds).
    fn sealed_by_us(&self, action: &StoredAction) -> bool {
        action.seal.as_deref().is_some_and(|seal| {
            self.sealer
                .holds(crate::state::ACTION_SEAL, &[&action.sealed_as()], seal)
        })
    }

    /// Why a rollback of `action` may not go ahead through this channel now, if it may not: one
    /// that re-exposes data under the emergency stop needs its page's tick (`confirmed`), and a
    /// record this function did not seal (a detector's own, in auto mode) is rolled back only
    /// from its page, which shows what it will do (a Slack button shows what a message says, and
    /// any role can publish a message).
    async fn rollback_gate(&self, action: &StoredAction, confirmed: bool, via_page: bool) -> Option<Verdict> {
        if let (Some(why), false) = (self.reexposes_under_stop(action).await, confirmed) {
            tracing::warn!(action_id = %action.action_id, "a rollback that re-exposes data under the emergency stop, unconfirmed: refused");
            return Some(Verdict::new(
                409,
                "Confirm on the page",
                format!("{why} Nothing was changed: open the rollback's page and tick the confirmation to go ahead."),
            ));
        }
        if self.sealed_by_us(action) {
            return None;
        }
        // A detector's own record (auto mode) cannot be sealed: it is believed only as far as
        // today's facts back it. Its rule acts automatically today and takes this very action,
        // and the resource shows the action's effect now.
        let f = &action.finding;
        if !self.checks.takes(&f.rule, f.action) || self.policy.mode_for(&f.rule) != Mode::Auto {
            tracing::error!(action_id = %action.action_id, "an unsealed action record its rule would not write today: refused");
            return Some(Verdict::new(
                409,
                "Not rolled back",
                "This action's record is not one this deployment's automatic mode writes today, so its way back is not run; nothing was changed.",
            ));
        }
        match self.executor.observe(f).await {
            Ok(Observed::Done(_)) => {}
            Ok(Observed::NotDone(found)) => {
                return Some(Verdict::new(
                    409,
                    "Nothing to roll back",
                    format!("The resource does not show this action's effect ({found}); nothing was changed."),
                ))
            }
            Err(e) => {
                tracing::warn!(error = %e, action_id = %action.action_id, "resource unreadable: no rollback now");
                return Some(Verdict::new(
                    503,
                    "Try again",
                    "The resource could not be read to check the action's effect; nothing was changed. Try again in a minute.",
                ));
            }
        }
        if !via_page {
            return Some(Verdict::new(
                409,
                "Roll back from the page",
                format!(
                    "This action was taken automatically; its rollback is decided on its page, which shows what it will do ({}). Nothing was changed.",
                    action.rollback
                ),
            ));
        }
        None
    }

    /// Why a rollback of `action` must be confirmed on its page, if it must: the emergency stop is
    /// on and the rollback makes data public again (Block Public Access put back looser).
    /// Restarting an instance or recreating a volume re-exposes nothing and needs no more.
    async fn reexposes_under_stop(&self, action: &StoredAction) -> Option<String> {
        let crate::act::Rollback::RestorePublicAccessBlock { bucket, prior, .. } = &action.rollback else {
            return None;
        };
        let why = flow::stopped(self.state).await?;
        Some(format!(
            "The emergency stop is on ({why}). Rolling back puts {bucket}'s Block Public Access back to {}: the bucket may be public again while the incident lasts.",
            crate::inventory::shown_block(*prior)
        ))
    }

    async fn rollback(
        &self,
        action_id: &str,
        who: &Approver,
        form: &Form,
        via_page: bool,
        now: DateTime<Utc>,
    ) -> Verdict {
        let confirmed = form.confirmed_under_stop;
        // A rollback needs as many approvers as the action did (undoing Block Public Access makes
        // a bucket public again).
        let required = match self.store.action(action_id).await {
            Ok(Some(a)) => {
                if let Some(v) = self.rollback_gate(&a, confirmed, via_page).await {
                    return v;
                }
                match self.rollback_terms(&a, now).await {
                    Ok(r) => r,
                    Err(v) => return v,
                }
            }
            Ok(None) => return refusal(Refusal::Unknown),
            Err(e) => return internal(e),
        };
        let action = match self
            .store
            .begin_rollback(action_id, &who.ballot(now), required, &self.judge(now), now)
            .await
        {
            Ok(Ok(RollbackVote::Begin(a))) => *a,
            Ok(Ok(RollbackVote::NeedMore { have, need })) => {
                return Verdict {
                    title: "Rollback approval recorded".into(),
                    ..need_more(who, have, need)
                }
            }
            Ok(Err(r)) => return refusal(r),
            Err(e) => return internal(e),
        };
        // The record the ballots were counted on (read inside the vote) is judged again: the
        // table may have changed between the first read and the vote.
        // A record this function did not seal could be another record than the page showed (it
        // is in a table other roles write): it runs only if it is the one the person saw.
        let swapped = !self.sealed_by_us(&action) && form.shown.as_deref() != Some(action.shown_as().as_str());
        let judged_again = match self.rollback_gate(&action, confirmed, via_page).await {
            Some(v) => Some(v),
            None if swapped => Some(Verdict::new(
                409,
                "The page is out of date",
                "This action's record is not the one your page showed; open the link again and decide on what it shows now. Nothing was changed.",
            )),
            // And the approvers it needs are counted on that copy too (the first read may have
            // been another, cheaper, record).
            None => match self.rollback_terms(&action, now).await {
                Err(v) => Some(v),
                Ok(needed) => {
                    let counting: Vec<Ballot> = action
                        .rollback_ballots
                        .iter()
                        .filter(|b| {
                            self.policy.approvals.admits_ballot(b)
                                && b.at + chrono::Duration::days(BALLOT_MAX_DAYS) > now
                        })
                        .cloned()
                        .collect();
                    (!crate::identity::quorum_met(&counting, needed)).then(|| {
                        Verdict::new(
                            409,
                            "More approvers needed",
                            format!("This rollback needs {needed} verified approvers as the action reads now; approve it again with them. Nothing was changed."),
                        )
                    })
                }
            },
        };
        if let Some(v) = judged_again {
            if let Err(e) = self
                .store
                .finish_rollback(
                    &action,
                    false,
                    &who.id(),
                    &format!("not rolled back: {}", v.message),
                    later(now),
                )
                .await
            {
                tracing::error!(error = %e, action_id, "a refused rollback not recorded");
            }
            return v;
        }
        // Rollbacks only restore, so they run under the emergency stop too; the audit says so.
        // The audit trail and Slack say who set the stop and why; the page only that it was on.
        let stop = flow::stopped(self.state).await;
        let under_stop = stop
            .as_ref()
            .map(|why| format!(" (run while the {why})"))
            .unwrap_or_default();
        let page_note = if stop.is_some() {
            " (run while the emergency stop was on)"
        } else {
            ""
        };
        let result = self.executor.rollback(&action.finding, &action.rollback).await;
        // A restored volume is a new, unattached volume: snoozed, so that auto mode does not
        // delete it again once its grace period ends.
        let restored_note = match &result {
            Ok(undone) => {
                self.snooze_restored(&action, undone.restored.as_deref(), &who.id(), now)
                    .await
            }
            Err(_) => String::new(),
        };
        let (ok, detail) = match &result {
            Ok(d) => (true, format!("{d}{restored_note}{under_stop}")),
            Err(e) => (false, format!("rollback failed: {e}{under_stop}")),
        };
        let page_detail = match &result {
            Ok(d) => format!("{d}{restored_note}{page_note}"),
            Err(_) => String::new(),
        };
        if let Err(e) = self
            .store
            .finish_rollback(&action, ok, &who.id(), &detail, later(now))
            .await
        {
            tracing::error!(error = %e, action_id, "rollback finished but not recorded");
        }
        self.publish(Message::ActionResult {
            action_id: action.action_id.clone(),
            finding: action.finding.clone(),
            outcome: if ok { OutcomeKind::Executed } else { OutcomeKind::Failed },
            detail: detail.clone(),
            decided_by: who.id(),
            rollback: action.rollback.clone(),
            rollback_url: None,
            rolled_back: ok,
        })
        .await;
        if ok {
            Verdict::new(200, format!("Rolled back: {}", action.finding.resource.id), page_detail)
        } else {
            // The error itself is in the audit trail and the Slack message, not on the page.
            Verdict::new(
                502,
                format!("Rollback failed: {}", action.finding.resource.id),
                "The rollback did not complete; the action stays recorded as executed and may be rolled back again. The audit trail has the details.",
            )
        }
    }

    /// Marks every pending request past its expiry `expired` and says so on the topic.
    pub async fn expire(&self, now: DateTime<Utc>) -> Result<usize> {
        let expired = self.store.expire_pending(now).await?;
        for a in &expired {
            self.publish(Message::ApprovalResult {
                request_id: a.request_id.clone(),
                finding: a.finding.clone(),
                status: "expired".into(),
                decided_by: "expiry".into(),
                detail: format!(
                    "no decision by {}: nothing was done",
                    a.expires_at.format("%Y-%m-%d %H:%M UTC")
                ),
            })
            .await;
        }
        Ok(expired.len())
    }

    /// Executes every request approved more than [`WAITING_APPROVAL_MINUTES`] ago and never taken
    /// for execution (held by the emergency stop, or its SNS message lost). While the emergency
    /// stop is on, none (they wait for the next sweep). Returns how many were executed or closed.
    pub async fn execute_waiting(&self, now: DateTime<Utc>) -> Result<usize> {
        if let Some(why) = flow::stopped(self.state).await {
            tracing::info!(reason = %why, "approved requests wait: emergency stop");
            return Ok(0);
        }
        let waiting = self
            .store
            .approved_waiting(now - chrono::Duration::minutes(WAITING_APPROVAL_MINUTES))
            .await?;
        let mut done = 0;
        for a in &waiting {
            let v = self.execute_approved(&a.request_id, now).await;
            tracing::info!(request_id = %a.request_id, status = v.status, title = %v.title, "executed by the hourly sweep");
            if v.status != 503 {
                done += 1;
            }
        }
        Ok(done)
    }

    /// Resolves every execution left `executing` for longer than a Lambda can run: reads each
    /// resource, records what it found (`executed` or `failed`, with the request), and says so.
    pub async fn resolve_stale(&self, now: DateTime<Utc>) -> Result<usize> {
        let stale = self
            .store
            .stale_executions(now - chrono::Duration::minutes(STALE_EXECUTION_MINUTES))
            .await?;
        let mut resolved = 0;
        for action in &stale.actions {
            // A record claiming a person's decision that this function did not seal is another
            // role's: not resolved, not announced (it stays for the operator to see).
            if action.claims_a_decision() && !self.sealed_by_us(action) {
                tracing::error!(action_id = %action.action_id, "a stale action record claims a decision without a seal that holds: left alone");
                continue;
            }
            let (executed, found) = match self.executor.observe(&action.finding).await {
                Ok(Observed::Done(d)) => (true, d),
                Ok(Observed::NotDone(d)) => (false, d),
                Err(e) => {
                    tracing::warn!(error = %e, action_id = %action.action_id, "stale action: resource unreadable");
                    continue;
                }
            };
            let detail = if executed {
                // The resource shows the action's effect; whether this action or a person caused it
                // cannot be told, so no Roll back link is offered for it.
                format!(
                    "resolved by the hourly sweep (it never recorded its end): {found}; who made the change cannot be told, so no Roll back link is sent"
                )
            } else {
                format!("resolved by the hourly sweep (it never recorded its end): {found}")
            };
            let now = later(now);
            match self.store.resolve_stale_action(action, executed, &detail, now).await {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => {
                    tracing::error!(error = %e, action_id = %action.action_id, "stale action not resolved");
                    continue;
                }
            }
            resolved += 1;
            if let Some(rid) = &action.request_id {
                let end = if executed {
                    ExecutionEnd::Executed
                } else {
                    ExecutionEnd::Failed
                };
                // Not executing any more (finished after all) is fine: the action's end is what counts.
                let _ = self
                    .store
                    .finish_execution(rid, &action.finding, end, Some(&action.action_id), &detail, later(now))
                    .await;
            }
            self.publish(Message::ActionResult {
                action_id: action.action_id.clone(),
                finding: action.finding.clone(),
                outcome: if executed {
                    OutcomeKind::Executed
                } else {
                    OutcomeKind::Failed
                },
                detail,
                decided_by: action.decided_by.clone(),
                rollback: action.rollback.clone(),
                rollback_url: None,
                rolled_back: false,
            })
            .await;
        }
        for (request, recorded) in &stale.requests {
            // A request whose action is itself stale was resolved with it above.
            if recorded.as_ref().is_some_and(|a| a.status == "executing") {
                continue;
            }
            let (end, detail) = match recorded {
                None => (
                    ExecutionEnd::Failed,
                    "resolved by the hourly sweep: the execution stopped before its action was recorded, so nothing was done".to_string(),
                ),
                Some(a) => (
                    if a.status == "executed" { ExecutionEnd::Executed } else { ExecutionEnd::Failed },
                    format!("resolved by the hourly sweep: its action {} ended {}", a.action_id, a.status),
                ),
            };
            let action_id = recorded.as_ref().map(|a| a.action_id.as_str());
            match self
                .store
                .finish_execution(
                    &request.request_id,
                    &request.finding,
                    end,
                    action_id,
                    &detail,
                    later(now),
                )
                .await
            {
                Ok(()) => resolved += 1,
                Err(e) => {
                    tracing::warn!(error = %e, request_id = %request.request_id, "stale request not resolved");
                    continue;
                }
            }
            self.publish(Message::ApprovalResult {
                request_id: request.request_id.clone(),
                finding: request.finding.clone(),
                status: end.as_str().into(),
                decided_by: "sweep".into(),
                detail,
            })
            .await;
        }
        for action in &stale.rollbacks {
            if action.claims_a_decision() && !self.sealed_by_us(action) {
                tracing::error!(action_id = %action.action_id, "a rolling-back record claims a decision without a seal that holds: left alone");
                continue;
            }
            // The rollback's Lambda died between its start and its end: the resource says
            // whether it happened (running again, the settings back, a restored volume). Not:
            // the action is `executed` again (a person may ask once more).
            let (undone, found, restored) = match self
                .executor
                .observe_rollback(&action.finding, &action.rollback)
                .await
            {
                Ok((Observed::Done(d), restored)) => (true, d, restored),
                Ok((Observed::NotDone(d), _)) => (false, d, None),
                Err(e) => {
                    tracing::warn!(error = %e, action_id = %action.action_id, "stale rollback: resource unreadable");
                    continue;
                }
            };
            let restored_note = self.snooze_restored(action, restored.as_deref(), "sweep", now).await;
            let detail = if undone {
                format!(
                    "resolved by the hourly sweep (the rollback never recorded its end): {found}, so it is rolled back{restored_note}"
                )
            } else {
                format!(
                    "resolved by the hourly sweep (the rollback never recorded its end): {found}, so the rollback did not happen; it may be asked for again"
                )
            };
            match self
                .store
                .finish_rollback(action, undone, "sweep", &detail, later(now))
                .await
            {
                Ok(()) => resolved += 1,
                Err(e) => {
                    tracing::warn!(error = %e, action_id = %action.action_id, "stale rollback not resolved");
                    continue;
                }
            }
            self.publish(Message::ActionResult {
                action_id: action.action_id.clone(),
                finding: action.finding.clone(),
                outcome: if undone {
                    OutcomeKind::Executed
                } else {
                    OutcomeKind::Failed
                },
                detail,
                decided_by: "sweep".into(),
                rollback: action.rollback.clone(),
                rollback_url: None,
                rolled_back: undone,
            })
            .await;
        }
        Ok(resolved)
    }
}

impl Approvals<'_> {
    /// Confirms the actions recorded `executed` on AWS's own answer whose reads had not caught
    /// up (`unverified`): the resource shows the effect (confirmed, quietly), or it does not
    /// (`failed`, said in Slack: someone changed it back since, or the change did not hold).
    pub async fn confirm_unverified(&self, now: DateTime<Utc>) -> Result<usize> {
        let mut settled = 0;
        for action in self.store.unverified_actions().await? {
            if action.claims_a_decision() && !self.sealed_by_us(&action) {
                tracing::error!(action_id = %action.action_id, "an unverified record claims a decision without a seal that holds: left alone");
                continue;
            }
            // Reads trail writes for seconds, not for the length of a Lambda: only an action begun
            // longer ago than that is looked at, and one whose change is not seen yet is recorded
            // failed only after a day of sweeps that did not see it.
            let age = action.started_at.map(|t| now - t);
            if age.is_none_or(|a| a < chrono::Duration::minutes(STALE_EXECUTION_MINUTES)) {
                continue;
            }
            let (confirmed, found) = match self.executor.observe(&action.finding).await {
                Ok(Observed::Done(d)) => (true, d),
                Ok(Observed::NotDone(_)) if age.is_some_and(|a| a < chrono::Duration::hours(UNVERIFIED_HOURS)) => {
                    continue
                }
                Ok(Observed::NotDone(d)) => (false, d),
                Err(e) => {
                    tracing::warn!(error = %e, action_id = %action.action_id, "unverified action: resource unreadable");
                    continue;
                }
            };
            let detail = if confirmed {
                format!("confirmed by the hourly sweep: {found}")
            } else {
                format!(
                    "not in effect at the hourly sweep: {found} (AWS accepted the change; it was undone since, or did not hold)"
                )
            };
            match self
                .store
                .settle_unverified(&action, confirmed, &detail, later(now))
                .await
            {
                Ok(true) => settled += 1,
                Ok(false) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, action_id = %action.action_id, "unverified action not settled");
                    continue;
                }
            }
            if !confirmed {
                self.publish(Message::ActionResult {
                    action_id: action.action_id.clone(),
                    finding: action.finding.clone(),
                    outcome: OutcomeKind::Failed,
                    detail,
                    decided_by: action.decided_by.clone(),
                    rollback: action.rollback.clone(),
                    rollback_url: None,
                    rolled_back: false,
                })
                .await;
            }
        }
        Ok(settled)
    }
}

/// An approval not taken for execution this long after it was given was held (the emergency stop,
/// or a lost SNS message): the hourly sweep executes it.
pub const WAITING_APPROVAL_MINUTES: i64 = 5;

/// An approval held longer than this is not carried out any more: it is closed, and the next run
/// asks again.
pub const WAITING_APPROVAL_MAX_DAYS: i64 = 7;

/// An action AWS accepted whose change the hourly sweeps have not seen for this long is recorded
/// failed (it was undone since, or did not hold).
pub const UNVERIFIED_HOURS: i64 = 24;

/// An execution still `executing` after this long died: Lambda runs 15 minutes at most.
pub const STALE_EXECUTION_MINUTES: i64 = 20;

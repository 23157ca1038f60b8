//! The policy: what the system looks for and what it may do. YAML, partial files allowed (what is
//! left out takes the defaults), validated at start-up with errors that name the field and the source.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// How far a rule may go on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Report only; nothing is changed and no state is needed.
    DryRun,
    /// Ask a human: a pending approval in DynamoDB and an approval request on SNS.
    Approve,
    /// Act at once (after the re-check), recording pre-state and rollback.
    Auto,
}

impl Mode {
    /// The policy spelling of the mode (`dry-run`, `approve`, `auto`).
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::DryRun => "dry-run",
            Mode::Approve => "approve",
            Mode::Auto => "auto",
        }
    }
}

/// The whole policy. Every field has a default, so `{}` is a valid policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Policy {
    /// Global mode; each rule may override it.
    pub mode: Mode,
    /// Tag key whose value `true` (trimmed, any case) exempts a resource from every rule.
    pub exempt_tag: String,
    /// Tag keys every resource must carry (case-sensitive; a blank value counts as missing).
    pub required_tags: Vec<String>,
    /// How long an approval request stays open before it expires (hours).
    pub approval_ttl_hours: u32,
    /// Blast radius: one rule's run acts automatically on at most this many resources; above it
    /// the run acts on none of them and asks for approvals instead.
    pub max_actions: u32,
    /// ... and on at most this share (percent, rounded up to whole resources) of what it scanned.
    pub max_actions_percent: f64,
    /// Time budget: an acting run starts no new action once the invocation has less than this
    /// left (seconds); the rest is deferred to the next run. Snapshot waits end this early too.
    pub action_time_margin_seconds: u32,
    /// How many actions of one run go on at once (their snapshot waits overlap).
    pub action_concurrency: u32,
    /// The rolling window (hours) whose Config events of one rule in one account share one
    /// blast radius: `max_actions` and `max_actions_percent` of the account's resources.
    pub event_budget_hours: u32,
    /// The idle EC2 rule.
    pub idle_ec2: IdleEc2Policy,
    /// The unattached EBS volume rule.
    pub ebs_cleanup: EbsCleanupPolicy,
    /// The cost threshold rule.
    pub cost_alert: CostAlertPolicy,
    /// The public S3 bucket rule.
    pub s3_public: S3PublicPolicy,
    /// The required-tags rule.
    pub tag_compliance: TagCompliancePolicy,
    /// Who may decide, and when two people must.
    pub approvals: ApprovalsPolicy,
    /// How messages reach people.
    pub notify: NotifyPolicy,
    /// The rightsizing rule (recommendations; Bedrock explains them).
    pub rightsizing: RightsizingPolicy,
    /// Jira tickets for findings.
    pub jira: JiraPolicy,
    /// The weekly savings report.
    pub savings_report: SavingsReportPolicy,
    /// Organisation scale: the accounts and regions a fan-out scans. Absent (the default): the
    /// functions scan the one account and region they run in.
    pub organization: Option<OrganizationPolicy>,
}

/// Where a fan-out's member accounts come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AccountSource {
    /// AWS Organizations' `ListAccounts` (the hub must be the management account or a delegated
    /// administrator), limited by `accounts` and `ous` when they are set; suspended accounts skipped.
    Organizations,
    /// Exactly the accounts in `accounts`.
    List,
}

/// The accounts and regions a fan-out scans, and how it reaches them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OrganizationPolicy {
    pub accounts_from: AccountSource,
    /// With `organizations`: only these account ids (empty: all). With `list`: the accounts.
    pub accounts: Vec<String>,
    /// With `organizations`: only the accounts under these OUs (`ou-…`, child OUs included).
    pub ous: Vec<String>,
    /// The regions scanned in every account; empty: every region enabled in the hub's account.
    pub regions: Vec<String>,
    /// The member role's name, the same in every account (`infra/member-role.yaml`).
    pub role_name: String,
    /// The external id the member role's trust asks for (empty: none is sent).
    pub external_id: String,
    /// Items (account, region) scanned at once: the Map's `MaxConcurrency`.
    pub max_concurrency: u32,
    /// The share of items that may fail (a role that cannot be assumed, a throttled account)
    /// before the whole run is reported failed: the Map's `ToleratedFailurePercentage`.
    pub tolerated_failure_percentage: u32,
}

impl Default for OrganizationPolicy {
    fn default() -> Self {
        OrganizationPolicy {
            accounts_from: AccountSource::Organizations,
            accounts: Vec::new(),
            ous: Vec::new(),
            regions: Vec::new(),
            role_name: "FinOpsAutopilotMember".into(),
            external_id: String::new(),
            max_concurrency: 10,
            tolerated_failure_percentage: 20,
        }
    }
}

impl OrganizationPolicy {
    fn validate(&self) -> std::result::Result<(), String> {
        if let Some(a) = self.accounts.iter().find(|a| !crate::ids::is_account_id(a)) {
            return Err(format!("organization.accounts: {a:?} is not a 12-digit account id"));
        }
        if self.accounts_from == AccountSource::List && self.accounts.is_empty() {
            return Err("organization.accounts: accounts_from is list, so name at least one account".into());
        }
        if self.accounts_from == AccountSource::List && !self.ous.is_empty() {
            return Err("organization.ous: OUs need accounts_from: organizations".into());
        }
        if let Some(o) = self.ous.iter().find(|o| !(o.starts_with("ou-") || o.starts_with("r-"))) {
            return Err(format!(
                "organization.ous: {o:?} is not an OU id (ou-…) or a root (r-…)"
            ));
        }
        if let Some(r) = self.regions.iter().find(|r| !crate::ids::is_region(r)) {
            return Err(format!("organization.regions: {r:?} is not a region name"));
        }
        let name_ok = |c: char| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c);
        if self.role_name.is_empty() || self.role_name.len() > 64 || !self.role_name.chars().all(name_ok) {
            return Err(format!(
                "organization.role_name: {:?} is not an IAM role name",
                self.role_name
            ));
        }
        let external_ok = |c: char| c.is_ascii_alphanumeric() || "+=,.@:/_-".contains(c);
        if !self.external_id.is_empty()
            && (self.external_id.len() < 2
                || self.external_id.len() > 1224
                || !self.external_id.chars().all(external_ok))
        {
            return Err(
                "organization.external_id: 2 to 1224 of the characters STS allows (letters, digits, +=,.@:/_-)".into(),
            );
        }
        // Step Functions runs a Distributed Map's children up to 10,000 at once.
        if !(1..=1000).contains(&self.max_concurrency) {
            return Err(format!(
                "organization.max_concurrency: must be between 1 and 1000, got {}",
                self.max_concurrency
            ));
        }
        if self.tolerated_failure_percentage > 100 {
            return Err(format!(
                "organization.tolerated_failure_percentage: must be between 0 and 100, got {}",
                self.tolerated_failure_percentage
            ));
        }
        Ok(())
    }
}

/// Who may approve, reject or roll back. Closed by default: each channel decides only for the
/// people its own list names, unless `anyone_with_link` says explicitly that anyone may.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApprovalsPolicy {
    /// Slack user ids allowed to decide with Slack's buttons.
    pub slack_users: Vec<String>,
    /// Addresses allowed to decide after signing in through `oidc`.
    pub emails: Vec<String>,
    /// Domains (`example.com`) whose addresses may decide after signing in through `oidc`.
    pub email_domains: Vec<String>,
    /// The organisation's identity provider, for sign-ins on the confirmation page.
    pub oidc: Option<OidcPolicy>,
    /// `true`: anyone holding a link may decide on the page by typing an address (recorded as
    /// `unverified`, never one of the two approvals a two-person rule needs). Typed addresses
    /// only: Slack buttons and sign-ins are always judged by their own lists. Off by default.
    pub anyone_with_link: bool,
    /// Slack users and addresses that are the same person (one person counts once, whatever the
    /// channel).
    pub people: Vec<Person>,
    /// A resource carrying any of these tag values (value compared trimmed, any case) needs two
    /// distinct approvers.
    pub two_approvers_when_tagged: BTreeMap<String, String>,
    /// How long a Roll back link stays valid (days).
    pub rollback_link_days: u32,
    /// After moving the link key into the link secret: until this instant, links signed with the
    /// shared secret's old `link_signing_key` (and expiring by then) are still accepted. Unset
    /// (the default): only the link secret's key.
    pub previous_link_key_until: Option<chrono::DateTime<chrono::Utc>>,
}

/// One person's Slack user id and address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Person {
    pub slack: String,
    pub email: String,
}

/// An OpenID Connect provider (authorization code with PKCE); the client secret is
/// `oidc_client_secret` in the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcPolicy {
    /// The issuer URL; its `/.well-known/openid-configuration` is read at the first sign-in.
    pub issuer: String,
    pub client_id: String,
    /// Refuse ID tokens that do not say `email_verified: true` (default). Set false only for a
    /// provider that never sends the claim and whose `email` cannot be changed by its users.
    #[serde(default = "yes")]
    pub email_verified_required: bool,
}

fn yes() -> bool {
    true
}

impl Default for ApprovalsPolicy {
    fn default() -> Self {
        ApprovalsPolicy {
            slack_users: Vec::new(),
            emails: Vec::new(),
            email_domains: Vec::new(),
            oidc: None,
            anyone_with_link: false,
            people: Vec::new(),
            two_approvers_when_tagged: BTreeMap::from([("Environment".to_string(), "prod".to_string())]),
            rollback_link_days: 30,
            previous_link_key_until: None,
        }
    }
}

pub use crate::identity::Approver;

impl ApprovalsPolicy {
    /// Whether a sign-in can admit anyone: an address or domain list (with `oidc`).
    pub fn sign_in_admits_anyone(&self) -> bool {
        self.oidc.is_some() && !(self.emails.is_empty() && self.email_domains.is_empty())
    }

    /// Whether anyone at all can decide: a Slack user list, a sign-in with an address list, or
    /// the explicit `anyone_with_link`.
    pub fn has_approvers(&self) -> bool {
        self.anyone_with_link
            || !self.slack_users.is_empty()
            || (self.oidc.is_some() && !(self.emails.is_empty() && self.email_domains.is_empty()))
    }

    /// The address the policy pairs with Slack user `user_id`.
    pub fn email_of(&self, user_id: &str) -> Option<&str> {
        self.people.iter().find(|p| p.slack == user_id).map(|p| p.email.trim())
    }

    /// Whether a recorded ballot would be admitted by this policy today (an approval held since
    /// an earlier policy counts only with the ballots today's lists still accept).
    pub fn admits_ballot(&self, b: &crate::identity::Ballot) -> bool {
        let who = match b.id.split_once(':') {
            Some(("slack", user_id)) => Approver::Slack {
                user_id: user_id.to_string(),
                name: String::new(),
                email: None,
                paired: false,
            },
            Some(("oidc", email)) => Approver::SignedIn {
                email: email.to_string(),
                issuer: String::new(),
                subject: String::new(),
            },
            Some((_, email)) => Approver::Unverified {
                email: email.to_string(),
            },
            None => return false,
        };
        self.allows(&who).is_ok()
    }

    /// `Ok` when `who` may decide; otherwise why not. Each channel is judged by its own list only.
    pub fn allows(&self, who: &Approver) -> std::result::Result<(), String> {
        match who {
            Approver::Slack { user_id, .. } => {
                // `anyone_with_link` is about typed addresses on the page only: Slack always needs
                // its own list.
                if self.slack_users.iter().any(|u| u == user_id) {
                    Ok(())
                } else {
                    Err(format!("Slack user {user_id} is not on the approvers list"))
                }
            }
            Approver::SignedIn { email, .. } => {
                let email = email.trim().to_ascii_lowercase();
                let domain = email.rsplit_once('@').map(|(_, d)| d).unwrap_or_default();
                // A sign-in always needs its own list (`anyone_with_link` admits typed addresses).
                let listed = self.emails.iter().any(|e| e.trim().eq_ignore_ascii_case(&email))
                    || (!domain.is_empty()
                        && self
                            .email_domains
                            .iter()
                            .any(|d| d.trim().trim_start_matches('@').eq_ignore_ascii_case(domain)));
                if listed {
                    Ok(())
                } else {
                    Err(format!("{email} is not on the approvers list"))
                }
            }
            Approver::Unverified { .. } => {
                if self.anyone_with_link {
                    Ok(())
                } else if self.oidc.is_some() {
                    Err("a typed address proves nothing: sign in to decide".into())
                } else {
                    Err("decisions on this page need a sign-in, which is not configured: decide in Slack".into())
                }
            }
        }
    }

    /// How many distinct approvers a resource with `tags` needs.
    pub fn required_approvals(&self, tags: &BTreeMap<String, String>) -> u32 {
        let sensitive = self.two_approvers_when_tagged.iter().any(|(k, v)| {
            tags.get(k)
                .is_some_and(|have| have.trim().eq_ignore_ascii_case(v.trim()))
        });
        if sensitive {
            2
        } else {
            1
        }
    }
}

/// How findings are announced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotifyPolicy {
    /// A run with more findings than this sends one digest to Slack instead of one post each.
    pub digest_over: usize,
    /// How many findings (the largest by dollars) a digest lists.
    pub digest_top: usize,
}

impl Default for NotifyPolicy {
    fn default() -> Self {
        NotifyPolicy {
            digest_over: 5,
            digest_top: 10,
        }
    }
}

/// What tag-compliance does about an untagged resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TagAction {
    /// Report it (the tag report and findings).
    Notify,
    /// Also tag instances and volumes `finops:untagged-since=<date>`.
    Mark,
    /// Also stop instances marked `stop_after_days` ago or more (the guarded idle-ec2 stop).
    MarkAndStop,
}

/// Settings of the required-tags rule (the keys are `required_tags`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TagCompliancePolicy {
    /// Overrides the global mode for this rule.
    pub mode: Option<Mode>,
    pub action: TagAction,
    /// Days after marking before an untagged instance is stopped (`mark-and-stop`).
    pub stop_after_days: u32,
    /// The compliance the organisation aims for, in percent (reported beside the figures).
    pub kpi_percent: f64,
}

impl Default for TagCompliancePolicy {
    fn default() -> Self {
        TagCompliancePolicy {
            mode: None,
            action: TagAction::Notify,
            stop_after_days: 14,
            kpi_percent: 95.0,
        }
    }
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            mode: Mode::DryRun,
            exempt_tag: "finops:exempt".into(),
            required_tags: vec!["Owner".into(), "CostCenter".into(), "Environment".into()],
            approval_ttl_hours: 72,
            max_actions: 10,
            max_actions_percent: 10.0,
            action_time_margin_seconds: 30,
            action_concurrency: 4,
            event_budget_hours: 24,
            idle_ec2: IdleEc2Policy::default(),
            ebs_cleanup: EbsCleanupPolicy::default(),
            cost_alert: CostAlertPolicy::default(),
            s3_public: S3PublicPolicy::default(),
            tag_compliance: TagCompliancePolicy::default(),
            approvals: ApprovalsPolicy::default(),
            notify: NotifyPolicy::default(),
            rightsizing: RightsizingPolicy::default(),
            jira: JiraPolicy::default(),
            savings_report: SavingsReportPolicy::default(),
            organization: None,
        }
    }
}

/// Settings of the rightsizing rule. It recommends; it changes nothing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RightsizingPolicy {
    /// Whole UTC days of metrics looked at.
    pub lookback_days: u32,
    /// Spare capacity a candidate must keep above the observed peak, in percent.
    pub headroom_percent: f64,
    /// At least this many days with CPU data, or no recommendation.
    pub min_days_with_data: u32,
    /// The Bedrock model asked to explain (a model id or inference profile); empty: rules only.
    pub bedrock_model_id: String,
    /// Seconds Bedrock has to answer before the rules' explanation is used.
    pub bedrock_timeout_seconds: u64,
    /// Candidates offered to the model (the cheapest that fit).
    pub max_candidates: usize,
}

impl Default for RightsizingPolicy {
    fn default() -> Self {
        RightsizingPolicy {
            lookback_days: 14,
            headroom_percent: 30.0,
            min_days_with_data: 7,
            // Amazon's own model through the global inference profile: no AWS Marketplace
            // subscription or use-case form (third-party models need both on their first call),
            // and Active (Claude 3 Haiku reached its end of life in most regions on 2026-09-10).
            bedrock_model_id: "global.amazon.nova-2-lite-v1:0".into(),
            bedrock_timeout_seconds: 20,
            max_candidates: 3,
        }
    }
}

/// How findings become Jira issues.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JiraPolicy {
    /// The Jira Cloud site, e.g. `https://example.atlassian.net` (email and API token are in the secret).
    pub site_url: String,
    pub project_key: String,
    pub issue_type: String,
    /// Labels on every issue (the rule's own, `finops-<rule>`, is added).
    pub labels: Vec<String>,
    /// Jira priority name by severity (`low`, `medium`, `high`, `critical`); a severity left out sets none.
    pub priorities: BTreeMap<String, String>,
    /// The transition that resolves an issue; empty: the first whose target status is in the Done category.
    pub done_transition: String,
    /// The rules whose findings become issues; empty: every rule. (A tag sweep can find hundreds
    /// of untagged resources; `[idle-ec2, ebs-cleanup, s3-public, cost-alert, rightsizing]` leaves
    /// those to the tag report.)
    pub rules: Vec<String>,
}

impl Default for JiraPolicy {
    fn default() -> Self {
        JiraPolicy {
            site_url: String::new(),
            project_key: "FINOPS".into(),
            issue_type: "Task".into(),
            labels: vec!["finops-autopilot".into()],
            priorities: [
                ("low", "Low"),
                ("medium", "Medium"),
                ("high", "High"),
                ("critical", "Highest"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
            done_transition: String::new(),
            rules: Vec::new(),
        }
    }
}

/// The weekly savings report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SavingsReportPolicy {
    /// Weeks shown (the ledger months they touch are read).
    pub weeks: u32,
    /// Where the HTML report is put: an S3 bucket (empty: not uploaded).
    pub bucket: String,
    /// Key prefix of the reports in the bucket.
    pub prefix: String,
    /// How long the report's link in the message works, in hours (at most 90 days): a link the
    /// approval function serves, signed with the link key.
    pub link_hours: u32,
}

impl Default for SavingsReportPolicy {
    fn default() -> Self {
        SavingsReportPolicy {
            weeks: 8,
            bucket: String::new(),
            prefix: "finops-reports/".into(),
            link_hours: 168,
        }
    }
}

/// Thresholds of the idle EC2 rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IdleEc2Policy {
    /// Overrides the global mode for this rule.
    pub mode: Option<Mode>,
    /// Whole UTC days looked back over, ending at today's 00:00 UTC.
    pub lookback_days: u32,
    /// A day is idle only if its average CPUUtilization (%) is below this.
    pub cpu_daily_average_below: f64,
    /// ... and its NetworkIn + NetworkOut (bytes) is below this.
    pub network_bytes_per_day_below: f64,
    /// How many idle days within the lookback make an instance idle.
    pub idle_days_required: u32,
}

impl Default for IdleEc2Policy {
    fn default() -> Self {
        IdleEc2Policy {
            mode: None,
            lookback_days: 14,
            cpu_daily_average_below: 5.0,
            network_bytes_per_day_below: 5_000_000.0,
            idle_days_required: 14,
        }
    }
}

/// Settings of the unattached EBS volume rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EbsCleanupPolicy {
    /// Overrides the global mode for this rule.
    pub mode: Option<Mode>,
    /// Days a volume must have been seen unattached before it is proposed for deletion.
    pub grace_days: u32,
    /// Take a snapshot (and wait for it) before deleting.
    pub snapshot_before_delete: bool,
    /// With `snapshot_before_delete: false`, whether deleting a volume that then cannot be brought
    /// back is accepted at all. Even then it happens only on a human's approval, never in `auto`.
    pub allow_irreversible_delete: bool,
    /// How long one run waits for a snapshot to complete; a longer one defers the delete to a
    /// later run. Keep it under the function's timeout.
    pub snapshot_wait_seconds: u32,
    /// A volume a rollback restored is a new unattached volume: it is snoozed this many days
    /// (0: not), so that auto mode does not delete it again after the grace period.
    pub restored_snooze_days: u32,
}

impl Default for EbsCleanupPolicy {
    fn default() -> Self {
        EbsCleanupPolicy {
            mode: None,
            grace_days: 7,
            snapshot_before_delete: true,
            allow_irreversible_delete: false,
            snapshot_wait_seconds: 120,
            restored_snooze_days: 30,
        }
    }
}

/// Thresholds of the cost alert rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CostAlertPolicy {
    /// Overrides the global mode for this rule (alerts never change resources).
    pub mode: Option<Mode>,
    /// Cost Explorer metric.
    pub metric: String,
    /// Account-wide monthly threshold in USD.
    pub total_usd: f64,
    /// Per-service monthly thresholds in USD, keyed by Cost Explorer SERVICE name.
    pub per_service_usd: BTreeMap<String, f64>,
    /// Escalation levels, in percent of a threshold; each higher level crossed alerts again.
    pub levels_percent: Vec<u32>,
    /// Also alert when the month runs this many percent over last month's total.
    pub over_last_month_percent: Option<f64>,
}

impl Default for CostAlertPolicy {
    fn default() -> Self {
        CostAlertPolicy {
            mode: None,
            metric: "UnblendedCost".into(),
            total_usd: 10_000.0,
            per_service_usd: BTreeMap::new(),
            levels_percent: vec![100, 120, 150],
            over_last_month_percent: None,
        }
    }
}

/// Settings of the public S3 bucket rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct S3PublicPolicy {
    /// Overrides the global mode for this rule.
    pub mode: Option<Mode>,
    /// What to do with a public bucket.
    pub action: String,
    /// The Block Public Access flags the action puts (all four by default).
    pub block: BlockFlags,
}

/// Block Public Access flags to put; each one left out of the policy is `true`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BlockFlags {
    pub block_public_acls: bool,
    pub ignore_public_acls: bool,
    pub block_public_policy: bool,
    pub restrict_public_buckets: bool,
}

impl Default for BlockFlags {
    fn default() -> Self {
        BlockFlags {
            block_public_acls: true,
            ignore_public_acls: true,
            block_public_policy: true,
            restrict_public_buckets: true,
        }
    }
}

impl Default for S3PublicPolicy {
    fn default() -> Self {
        S3PublicPolicy {
            mode: None,
            action: "block-public-access".into(),
            block: BlockFlags::default(),
        }
    }
}

/// Environment variable: the global mode, overriding the policy's (deployments set it).
pub const MODE_VAR: &str = "FINOPS_MODE";
/// Environment variable naming a policy file.
pub const POLICY_FILE_VAR: &str = "FINOPS_POLICY_FILE";
/// Environment variable holding the policy YAML itself.
pub const POLICY_INLINE_VAR: &str = "FINOPS_POLICY";

impl Policy {
    /// The same policy with every rule in dry-run (the emergency stop).
    pub fn all_dry_run(&self) -> Policy {
        let mut p = self.clone();
        p.mode = Mode::DryRun;
        p.idle_ec2.mode = None;
        p.ebs_cleanup.mode = None;
        p.cost_alert.mode = None;
        p.s3_public.mode = None;
        p.tag_compliance.mode = None;
        p
    }

    /// How many of `scanned` resources one run may act on automatically: the smaller of
    /// `max_actions` and `max_actions_percent` of `scanned` (rounded up, so that a small
    /// account can still act on one).
    pub fn action_limit(&self, scanned: usize) -> usize {
        let share = (scanned as f64 * self.max_actions_percent / 100.0).ceil();
        let share = if share.is_finite() && share >= 0.0 {
            share as usize
        } else {
            0
        };
        share.min(self.max_actions as usize)
    }

    /// `approve` mode with nobody who may approve would ask questions nobody may answer, or
    /// (before this check) let anyone who saw a link answer them: refused, naming the fields.
    pub fn check_approvers(&self) -> std::result::Result<(), String> {
        let approving: Vec<&str> = ["idle-ec2", "ebs-cleanup", "cost-alert", "s3-public", "tag-compliance"]
            .into_iter()
            .filter(|r| self.mode_for(r) == Mode::Approve)
            .collect();
        let a = &self.approvals;
        if !approving.is_empty() && !a.has_approvers() {
            return Err(format!(
                "approve mode ({}) needs someone who may approve: set approvals.slack_users (Slack buttons), \
                 or approvals.oidc with approvals.emails or approvals.email_domains (sign-in on the page), \
                 or approvals.anyone_with_link: true to let anyone holding a link decide",
                approving.join(", ")
            ));
        }
        if a.oidc.is_none() && !(a.emails.is_empty() && a.email_domains.is_empty()) {
            return Err(
                "approvals.emails and approvals.email_domains are for sign-ins: set approvals.oidc too \
                 (a typed address proves nothing)"
                    .into(),
            );
        }
        if let Some(o) = &a.oidc {
            if !o.issuer.starts_with("https://")
                && !o.issuer.starts_with("http://127.0.0.1")
                && !o.issuer.starts_with("http://localhost")
            {
                return Err(format!(
                    "approvals.oidc.issuer: must be an https URL, got {:?}",
                    o.issuer
                ));
            }
            if o.client_id.trim().is_empty() {
                return Err("approvals.oidc.client_id: must not be blank".into());
            }
        }
        if let Some(p) = a
            .people
            .iter()
            .find(|p| p.slack.trim().is_empty() || !p.email.contains('@'))
        {
            return Err(format!(
                "approvals.people: {{slack: {:?}, email: {:?}}} needs a Slack user id and an address",
                p.slack, p.email
            ));
        }
        Ok(())
    }

    /// The mode in force for a rule: the rule's override, else the global mode.
    pub fn mode_for(&self, rule: &str) -> Mode {
        let override_mode = match rule {
            "idle-ec2" => self.idle_ec2.mode,
            "ebs-cleanup" => self.ebs_cleanup.mode,
            "cost-alert" => self.cost_alert.mode,
            "s3-public" => self.s3_public.mode,
            "tag-compliance" => self.tag_compliance.mode,
            // Rightsizing only recommends: it has no mode of its own.
            _ => None,
        };
        override_mode.unwrap_or(self.mode)
    }

    /// Loads the policy named by the environment: `FINOPS_POLICY_FILE` (a path), else
    /// `FINOPS_POLICY` (YAML text), else the built-in defaults. Returns the policy and where it came from.
    /// `FINOPS_MODE` (`dry-run`, `approve`, `auto`), when set, replaces the policy's global mode
    /// (the deployment's one switch; per-rule overrides in the policy still win for their rule).
    pub fn from_env() -> Result<(Policy, String)> {
        let (policy, source) = Policy::file_or_inline_from_env()?;
        policy.with_mode_from(source, std::env::var(MODE_VAR).ok().as_deref())
    }

    /// Applies a `FINOPS_MODE` value (if any, not blank) to the global mode; says so in the source.
    pub fn with_mode_from(mut self, source: String, mode: Option<&str>) -> Result<(Policy, String)> {
        let Some(m) = mode.map(str::trim).filter(|m| !m.is_empty()) else {
            return Ok((self, source));
        };
        self.mode = match m {
            "dry-run" => Mode::DryRun,
            "approve" => Mode::Approve,
            "auto" => Mode::Auto,
            other => {
                return Err(Error::Policy {
                    source_name: MODE_VAR.into(),
                    message: format!("must be dry-run, approve or auto, got {other:?}"),
                })
            }
        };
        self.check_approvers().map_err(|message| Error::Policy {
            source_name: format!("{source}, mode {m} from {MODE_VAR}"),
            message,
        })?;
        Ok((self, format!("{source}, mode {m} from {MODE_VAR}")))
    }

    fn file_or_inline_from_env() -> Result<(Policy, String)> {
        if let Ok(path) = std::env::var(POLICY_FILE_VAR) {
            if !path.trim().is_empty() {
                return Ok((Policy::from_file(Path::new(&path))?, path));
            }
        }
        if let Ok(text) = std::env::var(POLICY_INLINE_VAR) {
            if !text.trim().is_empty() {
                return Ok((
                    Policy::from_yaml(&text, POLICY_INLINE_VAR)?,
                    POLICY_INLINE_VAR.to_string(),
                ));
            }
        }
        Ok((Policy::default(), "built-in defaults".to_string()))
    }

    /// Reads and validates a policy file.
    pub fn from_file(path: &Path) -> Result<Policy> {
        let source_name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| Error::Policy {
            source_name: source_name.clone(),
            message: format!("cannot read the file: {e}"),
        })?;
        Policy::from_yaml(&text, &source_name)
    }

    /// Parses and validates policy YAML; `source_name` is used in error messages.
    pub fn from_yaml(text: &str, source_name: &str) -> Result<Policy> {
        let fail = |message: String| Error::Policy {
            source_name: source_name.to_string(),
            message,
        };
        // An empty file (or one with only comments) means "all defaults".
        let policy = if text
            .lines()
            .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
        {
            Policy::default()
        } else {
            let deserializer = serde_norway::Deserializer::from_str(text);
            serde_path_to_error::deserialize(deserializer).map_err(|e| {
                let path = e.path().to_string();
                let inner = e.into_inner();
                if path == "." || path.is_empty() {
                    fail(inner.to_string())
                } else {
                    fail(format!("{path}: {inner}"))
                }
            })?
        };
        policy.validate().map_err(fail)?;
        Ok(policy)
    }

    /// Checks the ranges serde cannot; the message starts with the field's path.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.exempt_tag.trim().is_empty() {
            return Err("exempt_tag: must not be blank".into());
        }
        if let Some(i) = self.required_tags.iter().position(|t| t.trim().is_empty()) {
            return Err(format!("required_tags[{i}]: must not be blank"));
        }
        if self.approval_ttl_hours == 0 || self.approval_ttl_hours > 24 * 30 {
            return Err("approval_ttl_hours: must be between 1 and 720".into());
        }
        if !(0.0..=100.0).contains(&self.max_actions_percent) {
            return Err(format!(
                "max_actions_percent: must be between 0 and 100, got {}",
                self.max_actions_percent
            ));
        }
        if self.action_time_margin_seconds > 600 {
            return Err(format!(
                "action_time_margin_seconds: must be at most 600 (Lambda runs 15 minutes at most), got {}",
                self.action_time_margin_seconds
            ));
        }
        if !(1..=720).contains(&self.event_budget_hours) {
            return Err(format!(
                "event_budget_hours: must be between 1 and 720, got {}",
                self.event_budget_hours
            ));
        }
        if !(1..=16).contains(&self.action_concurrency) {
            return Err(format!(
                "action_concurrency: must be between 1 and 16, got {}",
                self.action_concurrency
            ));
        }
        if !(1..=365).contains(&self.approvals.rollback_link_days) {
            return Err("approvals.rollback_link_days: must be between 1 and 365".into());
        }
        if let Some(d) = self.approvals.email_domains.iter().find(|d| !d.contains('.')) {
            return Err(format!("approvals.email_domains: {d:?} is not a domain"));
        }
        self.check_approvers()?;
        if let Some(org) = &self.organization {
            org.validate()?;
        }
        if self.notify.digest_top == 0 {
            return Err("notify.digest_top: must be at least 1".into());
        }
        let rs = &self.rightsizing;
        if !(1..=63).contains(&rs.lookback_days) {
            // Hourly data points are kept 63 days at 1-minute..1-hour resolution; 1-hour for 455,
            // but 14 to 63 days is what a rightsizing decision needs.
            return Err(format!(
                "rightsizing.lookback_days: must be between 1 and 63, got {}",
                rs.lookback_days
            ));
        }
        if rs.min_days_with_data == 0 || rs.min_days_with_data > rs.lookback_days {
            return Err(format!(
                "rightsizing.min_days_with_data: must be between 1 and rightsizing.lookback_days ({}), got {}",
                rs.lookback_days, rs.min_days_with_data
            ));
        }
        if !(rs.headroom_percent.is_finite() && (0.0..=400.0).contains(&rs.headroom_percent)) {
            return Err(format!(
                "rightsizing.headroom_percent: must be between 0 and 400, got {}",
                rs.headroom_percent
            ));
        }
        if !(1..=120).contains(&rs.bedrock_timeout_seconds) {
            return Err("rightsizing.bedrock_timeout_seconds: must be between 1 and 120".into());
        }
        if !(1..=10).contains(&rs.max_candidates) {
            return Err("rightsizing.max_candidates: must be between 1 and 10".into());
        }
        let jira = &self.jira;
        let site = jira.site_url.as_str();
        if !(site.is_empty() || site.starts_with("https://") || site.starts_with("http://")) {
            return Err(format!(
                "jira.site_url: must be an http(s) URL, got {:?}",
                jira.site_url
            ));
        }
        if jira.project_key.trim().is_empty() || jira.issue_type.trim().is_empty() {
            return Err("jira.project_key and jira.issue_type: must not be blank".into());
        }
        if let Some(l) = jira
            .labels
            .iter()
            .find(|l| l.is_empty() || l.contains(char::is_whitespace))
        {
            return Err(format!("jira.labels: {l:?} is not a Jira label (no spaces, not empty)"));
        }
        if let Some(k) = jira
            .priorities
            .keys()
            .find(|k| !["low", "medium", "high", "critical"].contains(&k.as_str()))
        {
            return Err(format!(
                "jira.priorities: {k:?} is not a severity (low, medium, high, critical)"
            ));
        }
        let report = &self.savings_report;
        if !(1..=52).contains(&report.weeks) {
            return Err(format!(
                "savings_report.weeks: must be between 1 and 52, got {}",
                report.weeks
            ));
        }
        if !(1..=2160).contains(&report.link_hours) {
            return Err(format!(
                "savings_report.link_hours: must be between 1 and 2160 (90 days), got {}",
                report.link_hours
            ));
        }
        let idle = &self.idle_ec2;
        // CloudWatch keeps data at 1-hour resolution (and coarser) for 455 days.
        if !(1..=455).contains(&idle.lookback_days) {
            return Err(format!(
                "idle_ec2.lookback_days: must be between 1 and 455, got {}",
                idle.lookback_days
            ));
        }
        if idle.idle_days_required == 0 || idle.idle_days_required > idle.lookback_days {
            return Err(format!(
                "idle_ec2.idle_days_required: must be between 1 and idle_ec2.lookback_days ({}), got {}",
                idle.lookback_days, idle.idle_days_required
            ));
        }
        if !(idle.cpu_daily_average_below > 0.0 && idle.cpu_daily_average_below <= 100.0) {
            return Err(format!(
                "idle_ec2.cpu_daily_average_below: must be a percentage above 0 and at most 100, got {}",
                idle.cpu_daily_average_below
            ));
        }
        if !(idle.network_bytes_per_day_below.is_finite() && idle.network_bytes_per_day_below >= 0.0) {
            return Err(format!(
                "idle_ec2.network_bytes_per_day_below: must be a non-negative number of bytes, got {}",
                idle.network_bytes_per_day_below
            ));
        }
        if self.ebs_cleanup.snapshot_wait_seconds > 840 {
            return Err(format!(
                "ebs_cleanup.snapshot_wait_seconds: must be at most 840 (Lambda runs 15 minutes at most), got {}",
                self.ebs_cleanup.snapshot_wait_seconds
            ));
        }
        if !(self.cost_alert.total_usd.is_finite() && self.cost_alert.total_usd > 0.0) {
            return Err(format!(
                "cost_alert.total_usd: must be a positive amount, got {}",
                self.cost_alert.total_usd
            ));
        }
        let metrics = [
            "UnblendedCost",
            "BlendedCost",
            "AmortizedCost",
            "NetUnblendedCost",
            "NetAmortizedCost",
        ];
        if !metrics.contains(&self.cost_alert.metric.as_str()) {
            return Err(format!(
                "cost_alert.metric: must be one of {metrics:?}, got {:?}",
                self.cost_alert.metric
            ));
        }
        if self.cost_alert.levels_percent.is_empty()
            || self.cost_alert.levels_percent.iter().any(|l| *l == 0 || *l > 1000)
        {
            return Err("cost_alert.levels_percent: must list levels between 1 and 1000".into());
        }
        if let Some(pct) = self.cost_alert.over_last_month_percent {
            if !(pct.is_finite() && pct >= 0.0) {
                return Err(format!(
                    "cost_alert.over_last_month_percent: must be a non-negative percentage, got {pct}"
                ));
            }
        }
        for (service, usd) in &self.cost_alert.per_service_usd {
            if !(usd.is_finite() && *usd > 0.0) {
                return Err(format!(
                    "cost_alert.per_service_usd.{service}: must be a positive amount, got {usd}"
                ));
            }
        }
        if !(self.tag_compliance.kpi_percent > 0.0 && self.tag_compliance.kpi_percent <= 100.0) {
            return Err(format!(
                "tag_compliance.kpi_percent: must be a percentage above 0 and at most 100, got {}",
                self.tag_compliance.kpi_percent
            ));
        }
        let b = self.s3_public.block;
        if !(b.block_public_acls || b.ignore_public_acls || b.block_public_policy || b.restrict_public_buckets) {
            return Err("s3_public.block: at least one flag must be true, or the action changes nothing".into());
        }
        if self.s3_public.action != "block-public-access" {
            return Err(format!(
                "s3_public.action: must be block-public-access, got {:?}",
                self.s3_public.action
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err_of(yaml: &str) -> String {
        match Policy::from_yaml(yaml, "team.yaml") {
            Ok(p) => panic!("expected an error, got {p:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn an_empty_policy_is_the_documented_default() {
        let p = Policy::from_yaml("# nothing here\n", "team.yaml").unwrap();
        assert_eq!(p, Policy::default());
        assert_eq!(p.mode, Mode::DryRun);
        assert_eq!(p.exempt_tag, "finops:exempt");
        assert_eq!(p.idle_ec2.lookback_days, 14);
        assert_eq!(p.idle_ec2.cpu_daily_average_below, 5.0);
        assert_eq!(p.idle_ec2.network_bytes_per_day_below, 5_000_000.0);
        assert_eq!(p.ebs_cleanup.grace_days, 7);
        assert_eq!(p.cost_alert.total_usd, 10_000.0);
    }

    #[test]
    fn the_blast_radius_is_on_by_default_and_the_smaller_limit_wins() {
        let p = Policy::default();
        assert_eq!((p.max_actions, p.max_actions_percent), (10, 10.0));
        // 10% of 370 is 37, but never more than 10.
        assert_eq!(p.action_limit(370), 10);
        // 10% of 40 is 4; of 5, rounded up, 1; of nothing, nothing.
        assert_eq!(p.action_limit(40), 4);
        assert_eq!(p.action_limit(5), 1);
        assert_eq!(p.action_limit(0), 0);
        assert!(err_of("max_actions_percent: 150\n").contains("max_actions_percent"));
    }

    #[test]
    fn a_partial_policy_keeps_the_defaults_it_leaves_out() {
        let p = Policy::from_yaml("idle_ec2:\n  cpu_daily_average_below: 2.5\n  mode: auto\n", "team.yaml").unwrap();
        assert_eq!(p.idle_ec2.cpu_daily_average_below, 2.5);
        assert_eq!(p.idle_ec2.lookback_days, 14);
        assert_eq!(p.mode_for("idle-ec2"), Mode::Auto);
        assert_eq!(p.mode_for("ebs-cleanup"), Mode::DryRun);
    }

    #[test]
    fn a_misspelt_field_is_named_with_its_path_and_the_file() {
        let e = err_of("idle_ec2:\n  lookbak_days: 3\n");
        assert!(e.contains("team.yaml"), "{e}");
        assert!(e.contains("idle_ec2"), "{e}");
        assert!(e.contains("lookbak_days"), "{e}");
    }

    #[test]
    fn an_unknown_mode_is_rejected_with_the_allowed_values() {
        let e = err_of("mode: yolo\n");
        assert!(e.contains("mode"), "{e}");
        assert!(e.contains("dry-run"), "{e}");
    }

    #[test]
    fn a_wrongly_typed_value_names_the_field() {
        let e = err_of("idle_ec2:\n  lookback_days: two weeks\n");
        assert!(e.contains("idle_ec2.lookback_days"), "{e}");
    }

    #[test]
    fn out_of_range_thresholds_are_rejected() {
        assert!(err_of("idle_ec2: {lookback_days: 0}").contains("idle_ec2.lookback_days"));
        assert!(err_of("idle_ec2: {cpu_daily_average_below: 150}").contains("idle_ec2.cpu_daily_average_below"));
        assert!(err_of("idle_ec2: {idle_days_required: 20}").contains("idle_ec2.idle_days_required"));
        assert!(err_of("idle_ec2: {network_bytes_per_day_below: -1}").contains("network_bytes_per_day_below"));
        assert!(err_of("exempt_tag: '  '").contains("exempt_tag"));
    }

    #[test]
    fn yaml_that_is_not_a_mapping_is_rejected_clearly() {
        let e = err_of("- just\n- a list\n");
        assert!(e.contains("team.yaml"), "{e}");
    }

    #[test]
    fn a_missing_file_is_a_clear_error_naming_it() {
        let e = Policy::from_file(Path::new("/nonexistent/finops.yaml"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("/nonexistent/finops.yaml") && e.contains("cannot read"),
            "{e}"
        );
    }

    #[test]
    fn the_deployment_s_mode_replaces_the_global_mode_but_not_a_rule_s_own() {
        let p = Policy::from_yaml("{idle_ec2: {mode: dry-run}}", "t.yaml").unwrap();
        let (p, source) = p.with_mode_from("t.yaml".into(), Some(" auto ")).unwrap();
        assert_eq!(
            (p.mode, p.mode_for("ebs-cleanup"), p.mode_for("idle-ec2")),
            (Mode::Auto, Mode::Auto, Mode::DryRun)
        );
        assert_eq!(source, "t.yaml, mode auto from FINOPS_MODE");
        let (same, _) = Policy::default().with_mode_from("d".into(), Some("  ")).unwrap();
        assert_eq!(same.mode, Mode::DryRun);
        let err = Policy::default()
            .with_mode_from("d".into(), Some("yolo"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("FINOPS_MODE") && err.contains("yolo"), "{err}");
    }
}

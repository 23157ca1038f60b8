//! Organisation scale: the fan-out's item events (one account and region each), the targets a run
//! lists, the clients that reach a member account through its role, and the organisation digest
//! built from a Distributed Map's results.
//!
//! Step Functions does the fanning out (`infra/template.yaml`); this module only answers the
//! questions each step asks: which items, how to reach one, what came back.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::aws::Clients;
pub use crate::digest::{AccountTotals, FailedTarget, FailureGroup, OrgDigest};
use crate::error::{Error, Result};
use crate::model::Compliance;
use crate::policy::{AccountSource, OrganizationPolicy};

/// The largest answer an item gives: Step Functions refuses a state's data above 256 KiB.
pub const MAX_ITEM_ANSWER_BYTES: usize = 200 * 1024;

/// The `source` of an item event.
pub const ITEM_SOURCE: &str = "finops.fanout";

/// One (account, region) of a fan-out run: what the Distributed Map hands each rule's Lambda.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Item {
    /// Always [`ITEM_SOURCE`].
    pub source: String,
    /// The run (the state machine execution's name): the STS session name carries it.
    pub run_id: String,
    pub account: String,
    pub region: String,
    /// The member role to assume; absent for the hub's own account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// How many accounts the run scans: each may draw its share of the run's `max_actions`
    /// (absent in items written before it existed: no share, only the run's cap).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accounts: Option<usize>,
}

pub use finops_core::ids::{is_account_id, is_region};

/// The account a role ARN belongs to, when it is a role ARN (`arn:<partition>:iam::<account>:role/<name>`).
fn role_account(arn: &str) -> Option<&str> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    match parts.as_slice() {
        ["arn", partition, "iam", "", account, resource]
            if partition.starts_with("aws") && resource.starts_with("role/") && resource.len() > 5 =>
        {
            Some(account)
        }
        _ => None,
    }
}

impl Item {
    /// The item event in `payload`: `Ok(None)` when the payload is some other trigger (its
    /// `source` is not [`ITEM_SOURCE`]); an error when it says it is an item but is not a sound one.
    pub fn from_event(payload: &Value) -> Result<Option<Item>> {
        if payload.get("source").and_then(Value::as_str) != Some(ITEM_SOURCE) {
            return Ok(None);
        }
        let item: Item = serde_json::from_value(payload.clone())
            .map_err(|e| Error::Event(format!("a {ITEM_SOURCE} item event that does not read: {e}")))?;
        item.check()?;
        Ok(Some(item))
    }

    /// Checks the fields an item is trusted with: the role must be in the item's own account, so
    /// no item can act on another account than the one it names.
    pub fn check(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Event(format!("{ITEM_SOURCE} item: {m}")));
        if !is_account_id(&self.account) {
            return bad(format!("account {:?} is not a 12-digit account id", self.account));
        }
        if !is_region(&self.region) {
            return bad(format!("region {:?} is not a region name", self.region));
        }
        let session_ok = |c: char| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c);
        if self.run_id.is_empty() || self.run_id.len() > 80 || !self.run_id.chars().all(session_ok) {
            return bad(format!(
                "run_id {:?} must be 1 to 80 of the characters an STS session name allows",
                self.run_id
            ));
        }
        if let Some(arn) = &self.role_arn {
            match role_account(arn) {
                Some(a) if a == self.account => {}
                Some(a) => {
                    return bad(format!(
                        "role_arn {arn} is in account {a}, not the item's account {}",
                        self.account
                    ))
                }
                None => return bad(format!("role_arn {arn:?} is not an IAM role ARN")),
            }
        }
        if self.role_arn.is_none() && self.external_id.is_some() {
            return bad("external_id without role_arn".into());
        }
        Ok(())
    }

    /// The STS session name: `finops-<run id>`, cut to STS's 64 characters.
    pub fn session_name(&self) -> String {
        let mut name = format!("finops-{}", self.run_id);
        name.truncate(64);
        name
    }
}

/// Where a scan or an action runs: the account and region, and clients that reach them.
#[derive(Debug, Clone)]
pub struct Reach {
    pub account: String,
    pub region: String,
    pub clients: Clients,
    /// The fan-out run this scan belongs to (none for a scheduled scan).
    pub run_id: Option<String>,
    /// The run's budget of automatic actions this item draws from (a fan-out item's).
    pub budget: Option<crate::state::budget::Budget>,
    /// The function's own account and home region, with its own credentials: where a
    /// single-account deployment always scanned (what older versions' state is about).
    pub home: bool,
}

/// Clients for the item's account and region: the member role assumed through STS (session
/// named for the run, the external id when given), or — for the hub's own account, which has no
/// role — the function's own credentials, once STS has said they are that account's.
pub async fn reach(hub: &Clients, item: &Item) -> Result<Reach> {
    item.check()?;
    let home = item.role_arn.is_none() && item.region == hub.region;
    let clients = match &item.role_arn {
        None => {
            let own = hub.identity().await?;
            if own.account != item.account {
                return Err(Error::Event(format!(
                    "{ITEM_SOURCE} item for account {} has no role_arn, but this function runs in account {}",
                    item.account, own.account
                )));
            }
            hub.in_region(&item.region)?
        }
        Some(role_arn) => {
            hub.assume(
                role_arn,
                &item.session_name(),
                item.external_id.as_deref(),
                &item.region,
                &item.account,
            )
            .await?
        }
    };
    Ok(Reach {
        account: item.account.clone(),
        region: item.region.clone(),
        clients,
        run_id: Some(item.run_id.clone()),
        budget: Some(crate::state::budget::Budget::Org {
            run_id: item.run_id.clone(),
            account: item.account.clone(),
            region: item.region.clone(),
            accounts: item.accounts.unwrap_or(1),
        }),
        home,
    })
}

/// `s` with every character an STS session name does not allow replaced by `-`, cut to 80.
fn session_safe(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "+=,.@_-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    out.truncate(80);
    out
}

/// Whether cost-alert can watch the organisation's spend from here, with a note for the report.
/// Cost Explorer shows the whole organisation only in its management account
/// (https://docs.aws.amazon.com/cost-management/latest/userguide/ce-access.html): anywhere else
/// (a delegated administrator) it shows that account's own spend, and an alert on it would say the
/// organisation is under its budget when it is not. So the run fails there, naming both accounts.
///
/// Reading through a role in the management account was considered: the member role there grants
/// stops and deletes, which cost-alert must never hold, and a Cost-Explorer-only role is one more
/// stack to deploy; running cost-alert from the management account is the supported way.
pub async fn payer(hub: &Clients) -> Result<String> {
    let own = hub.identity().await?;
    let management = crate::aws::organizations::Organization::new(hub)
        .management_account()
        .await
        .map_err(|e| {
            Error::Config(format!(
                "organisation mode: cost-alert could not learn the organisation's management account ({e}), so it cannot tell whether Cost Explorer here shows the organisation's spend or only account {}'s: nothing was checked",
                own.account
            ))
        })?;
    if management != own.account {
        return Err(Error::Config(format!(
            "organisation mode: this stack runs in account {}, not in the organisation's management account {management}, and only the management account's Cost Explorer shows the whole organisation's spend: nothing was checked. Run cost-alert from a stack in {management}: only there does Cost Explorer see every account",
            own.account
        )));
    }
    Ok(format!(
        "Cost Explorer of the organisation's management account {management}: the whole organisation's spend"
    ))
}

/// The member role's ARN in `account`.
pub fn role_arn(partition: &str, account: &str, role_name: &str) -> String {
    format!("arn:{partition}:iam::{account}:role/{role_name}")
}

/// Clients that act on a finding's resource: in its account (through the member role, unless it
/// is the hub's own) and region, the STS session named for the resource (CloudTrail tells the
/// actions apart). Single-account mode (no `organization` in the policy) acts only on findings of
/// the function's own account: another account's is refused, never acted on with these
/// credentials.
pub async fn reach_finding(
    hub: &Clients,
    org: Option<&OrganizationPolicy>,
    account: &str,
    region: &str,
    resource_id: &str,
) -> Result<Clients> {
    if !is_region(region) {
        return Err(Error::Event(format!(
            "the finding's region {region:?} is not a region name"
        )));
    }
    let own = hub.identity().await?;
    if own.account == account {
        return hub.in_region(region);
    }
    let Some(org) = org else {
        return Err(Error::Config(format!(
            "the finding is in account {account}, but this deployment acts in its own account {} only (no organization section in the policy)",
            own.account
        )));
    };
    let item = Item {
        source: ITEM_SOURCE.into(),
        run_id: session_safe(&format!("act-{resource_id}")),
        account: account.into(),
        region: region.into(),
        role_arn: Some(role_arn(&own.partition, account, &org.role_name)),
        external_id: Some(org.external_id.clone()).filter(|e| !e.is_empty()),
        accounts: None,
    };
    Ok(reach(hub, &item).await?.clients)
}

pub use crate::aws::organizations::{Account, Directory};

/// The targets of one run: the items, and the accounts left out with the reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Targets {
    pub run_id: String,
    pub items: Vec<Item>,
    /// Accounts not scanned, each with why (suspended, closing).
    pub skipped: Vec<(String, String)>,
    pub accounts: usize,
    pub regions: Vec<String>,
}

/// Lists the targets: the accounts (Organizations, limited to the policy's OUs and ids, suspended
/// ones skipped; or the policy's list), always the hub's own, times the regions (the policy's,
/// or every enabled region). The hub's items have no role: it scans with its own credentials.
pub async fn targets(
    directory: &dyn Directory,
    org: &OrganizationPolicy,
    hub_account: &str,
    partition: &str,
    run_id: &str,
) -> Result<Targets> {
    let mut skipped = Vec::new();
    let mut ids: BTreeSet<String> = BTreeSet::new();
    match org.accounts_from {
        AccountSource::List => ids.extend(org.accounts.iter().cloned()),
        AccountSource::Organizations => {
            let listed = if org.ous.is_empty() {
                directory.accounts().await?
            } else {
                let mut found = Vec::new();
                let mut parents: Vec<String> = org.ous.clone();
                let mut seen = BTreeSet::new();
                while let Some(parent) = parents.pop() {
                    if !seen.insert(parent.clone()) {
                        continue;
                    }
                    found.extend(directory.accounts_under(&parent).await?);
                    parents.extend(directory.child_ous(&parent).await?);
                }
                found
            };
            let wanted: BTreeSet<&String> = org.accounts.iter().collect();
            let listed_ids: BTreeSet<&str> = listed.iter().map(|a| a.id.as_str()).collect();
            for missing in wanted.iter().filter(|w| !listed_ids.contains(w.as_str())) {
                skipped.push((
                    (*missing).clone(),
                    format!("{missing} is not an account of the organisation (or of the OUs named)"),
                ));
            }
            for a in listed {
                if !wanted.is_empty() && !wanted.contains(&a.id) {
                    continue;
                }
                if a.status != "ACTIVE" {
                    skipped.push((a.id.clone(), format!("{} ({}) is {}", a.id, a.name, a.status)));
                    continue;
                }
                ids.insert(a.id);
            }
        }
    }
    ids.remove(hub_account);
    let regions = if org.regions.is_empty() {
        let mut r = directory.enabled_regions().await?;
        r.sort();
        r.dedup();
        r
    } else {
        let mut r = org.regions.clone();
        r.sort();
        r.dedup();
        r
    };
    let external_id = Some(org.external_id.clone()).filter(|e| !e.is_empty());
    // An execution's name may hold characters an STS session name may not (a hand-started run):
    // cleaned, never a reason to scan nothing.
    let run_id = session_safe(run_id);
    let run_id = if run_id.is_empty() { "run".to_string() } else { run_id };
    let mut items = Vec::new();
    for account in std::iter::once(hub_account.to_string()).chain(ids.iter().cloned()) {
        for region in &regions {
            let own = account == hub_account;
            let item = Item {
                source: ITEM_SOURCE.into(),
                run_id: run_id.clone(),
                account: account.clone(),
                region: region.clone(),
                role_arn: (!own).then(|| role_arn(partition, &account, &org.role_name)),
                external_id: if own { None } else { external_id.clone() },
                accounts: Some(ids.len() + 1),
            };
            item.check()?;
            items.push(item);
        }
    }
    skipped.sort();
    Ok(Targets {
        run_id,
        accounts: ids.len() + 1,
        regions,
        items,
        skipped,
    })
}

/// One item's result, as a Distributed Map's ResultWriter records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemResult {
    /// `SUCCEEDED`, `FAILED`, `TIMED_OUT` or `ABORTED`.
    #[serde(rename = "Status")]
    pub status: String,
    /// The item's input, as a JSON string.
    #[serde(rename = "Input", default)]
    pub input: String,
    /// The item's output (the rule's report), as a JSON string; absent on failure.
    #[serde(rename = "Output", default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    #[serde(rename = "Error", default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(rename = "Cause", default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
}

/// ResultWriter's `manifest.json`: where the results of each status were written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    #[serde(rename = "DestinationBucket")]
    pub destination_bucket: String,
    #[serde(rename = "MapRunArn")]
    pub map_run_arn: String,
    #[serde(rename = "ResultFiles")]
    pub result_files: BTreeMap<String, Vec<ResultFile>>,
}

/// One results file of a manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultFile {
    #[serde(rename = "Key")]
    pub key: String,
    #[serde(rename = "Size")]
    pub size: u64,
}

/// The cause of a failed item in words: the Lambda's `errorMessage` when the cause is its JSON
/// error, else the cause (or the error name) as it came.
fn reason(result: &ItemResult) -> String {
    let cause = result.cause.clone().unwrap_or_default();
    let from_json = serde_json::from_str::<Value>(&cause)
        .ok()
        .and_then(|v| v.get("errorMessage").and_then(Value::as_str).map(str::to_string));
    match (from_json, cause.is_empty(), &result.error) {
        (Some(m), _, _) => m,
        (None, false, _) => cause,
        (None, true, Some(e)) => e.clone(),
        (None, true, None) => format!("the item ended {}", result.status),
    }
}

/// One item's figures.
struct Figures {
    findings: usize,
    usd: f64,
    scanned: usize,
    failed: usize,
    held: usize,
    compliance: Option<Compliance>,
    own_cost_usd: f64,
}

/// The figures of an item's output: a rule's report, or the counts the state machine keeps of it
/// (`findings` as a number, so a child's output stays small).
fn figures(output: &str) -> std::result::Result<Figures, String> {
    let v: Value = serde_json::from_str(output).map_err(|e| format!("its output is not a rule's report: {e}"))?;
    let count = |key: &str| -> std::result::Result<usize, String> {
        match v.get(key) {
            Some(Value::Array(a)) => Ok(a.len()),
            Some(n) => n
                .as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(|| format!("its output is not a rule's report: {key} is {n}")),
            None => Err(format!("its output is not a rule's report: no {key}")),
        }
    };
    let usd = v
        .get("estimated_monthly_savings_usd")
        .and_then(Value::as_f64)
        .filter(|u| u.is_finite())
        .ok_or_else(|| "its output is not a rule's report: no estimated_monthly_savings_usd".to_string())?;
    Ok(Figures {
        findings: count("findings")?,
        usd,
        scanned: count("scanned")?,
        failed: v.get("failed").map_or(Ok(0), |_| count("failed"))?,
        held: v.get("held").map_or(Ok(0), |_| count("held"))?,
        own_cost_usd: v
            .get("own_cost_usd")
            .and_then(Value::as_f64)
            .filter(|c| c.is_finite() && *c >= 0.0)
            .unwrap_or(0.0),
        compliance: match v.get("compliance") {
            None | Some(Value::Null) => None,
            Some(c) => Some(
                serde_json::from_value(c.clone())
                    .map_err(|e| format!("its output is not a rule's report: compliance {c}: {e}"))?,
            ),
        },
    })
}

/// Adds up the items' results into one digest. An item whose output is not a rule's report is
/// counted as failed, with what was wrong: nothing is dropped silently.
pub fn digest(run_id: &str, rule: &str, results: &[ItemResult]) -> OrgDigest {
    let mut d = OrgDigest {
        run_id: run_id.into(),
        rule: rule.into(),
        items: results.len(),
        ..OrgDigest::default()
    };
    for r in results {
        let item: Option<Item> = serde_json::from_str::<Value>(&r.input)
            .ok()
            .and_then(|v| serde_json::from_value(v.get("item").cloned().unwrap_or(v)).ok());
        let (account, region) = match &item {
            Some(i) => (i.account.clone(), i.region.clone()),
            None => ("unknown".into(), "unknown".into()),
        };
        let report = match (r.status.as_str(), &r.output) {
            ("SUCCEEDED", Some(out)) => figures(out),
            ("SUCCEEDED", None) => Err("it succeeded without an output".into()),
            ("PENDING", _) => {
                d.items_not_started += 1;
                Err("not started: the Map stopped before it".into())
            }
            _ => Err(reason(r)),
        };
        match report {
            Ok(report) => {
                let t = d.accounts.entry(account).or_default();
                t.findings += report.findings;
                t.usd += report.usd;
                t.scanned += report.scanned;
                t.failed += report.failed;
                t.held += report.held;
                t.regions.push(region);
                t.regions.sort();
                if let Some(c) = report.compliance {
                    add_compliance(&mut t.compliance, c);
                    add_compliance(&mut d.compliance, c);
                }
                d.total_findings += report.findings;
                d.total_usd += report.usd;
                d.total_held += report.held;
                d.items_cost_usd += report.own_cost_usd;
            }
            Err(reason) => {
                d.items_failed += 1;
                d.failed_targets.push(FailedTarget {
                    account,
                    region,
                    reason,
                });
            }
        }
    }
    d.failed_targets
        .sort_by(|a, b| (&a.account, &a.region).cmp(&(&b.account, &b.region)));
    // The run's own state transitions: the parent's main path (Targets, Scan, Summary) and one
    // Item state in each item's child execution (a retry adds one; not counted).
    d.state_transitions = PARENT_STATES + (d.items - d.items_not_started) as u64;
    d
}

/// The fan-out state machine's states on a run's main path: Targets, Scan (the Map), Summary.
const PARENT_STATES: u64 = 3;

fn add_compliance(sum: &mut Option<Compliance>, c: Compliance) {
    let s = sum.get_or_insert_with(Compliance::default);
    s.compliant += c.compliant;
    s.total += c.total;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(account: &str, role: Option<&str>) -> Item {
        Item {
            source: ITEM_SOURCE.into(),
            run_id: "run-1".into(),
            account: account.into(),
            region: "eu-west-1".into(),
            role_arn: role.map(str::to_string),
            external_id: None,
            accounts: None,
        }
    }

    #[test]
    fn an_item_whose_role_is_in_another_account_is_refused() {
        let i = item(
            "111111111111",
            Some("arn:aws:iam::222222222222:role/FinOpsAutopilotMember"),
        );
        let err = i.check().unwrap_err().to_string();
        assert!(err.contains("not the item's account 111111111111"), "{err}");
        assert!(item(
            "111111111111",
            Some("arn:aws:iam::111111111111:role/FinOpsAutopilotMember")
        )
        .check()
        .is_ok());
    }

    #[test]
    fn an_item_event_is_told_apart_from_other_triggers_and_checked() {
        let scheduled = serde_json::json!({"source": "aws.events", "detail-type": "Scheduled Event"});
        assert_eq!(Item::from_event(&scheduled).unwrap(), None);
        let ok = serde_json::json!({"source": "finops.fanout", "run_id": "r1", "account": "111111111111",
            "region": "eu-west-1", "role_arn": "arn:aws:iam::111111111111:role/M", "external_id": "x-1"});
        assert_eq!(
            Item::from_event(&ok).unwrap().unwrap().external_id.as_deref(),
            Some("x-1")
        );
        for bad in [
            serde_json::json!({"source": "finops.fanout", "run_id": "r1", "account": "1111", "region": "eu-west-1"}),
            serde_json::json!({"source": "finops.fanout", "run_id": "r1", "account": "111111111111", "region": "Europe"}),
            serde_json::json!({"source": "finops.fanout", "run_id": "r 1", "account": "111111111111", "region": "eu-west-1"}),
            serde_json::json!({"source": "finops.fanout", "run_id": "r1", "account": "111111111111", "region": "eu-west-1", "extra": 1}),
            serde_json::json!({"source": "finops.fanout", "run_id": "r1", "account": "111111111111", "region": "eu-west-1", "role_arn": "arn:aws:iam::111111111111:user/x"}),
        ] {
            assert!(Item::from_event(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn region_names_are_recognised() {
        for r in [
            "us-east-1",
            "eu-west-1",
            "us-gov-west-1",
            "ap-southeast-5",
            "eu-central-2",
            "eusc-de-east-1",
        ] {
            assert!(is_region(r), "{r}");
        }
        for r in [
            "",
            "us",
            "us-east",
            "US-EAST-1",
            "us-east-1a",
            "us--1",
            "useast-1-",
            "europe-west-1",
        ] {
            assert!(!is_region(r), "{r}");
        }
    }

    struct Fake {
        accounts: Vec<Account>,
        under: BTreeMap<String, (Vec<&'static str>, Vec<&'static str>)>,
    }

    #[async_trait::async_trait]
    impl Directory for Fake {
        async fn accounts(&self) -> Result<Vec<Account>> {
            Ok(self.accounts.clone())
        }
        async fn accounts_under(&self, parent: &str) -> Result<Vec<Account>> {
            let ids = self.under.get(parent).map(|u| u.0.clone()).unwrap_or_default();
            Ok(self
                .accounts
                .iter()
                .filter(|a| ids.contains(&a.id.as_str()))
                .cloned()
                .collect())
        }
        async fn child_ous(&self, parent: &str) -> Result<Vec<String>> {
            Ok(self
                .under
                .get(parent)
                .map(|u| u.1.iter().map(|s| s.to_string()).collect())
                .unwrap_or_default())
        }
        async fn enabled_regions(&self) -> Result<Vec<String>> {
            Ok(vec!["us-east-1".into(), "eu-west-1".into()])
        }
    }

    fn fake() -> Fake {
        let a = |id: &str, status: &str| Account {
            id: id.into(),
            name: format!("acct-{id}"),
            status: status.into(),
        };
        Fake {
            accounts: vec![
                a("123456789012", "ACTIVE"),
                a("111111111111", "ACTIVE"),
                a("222222222222", "SUSPENDED"),
                a("333333333333", "ACTIVE"),
            ],
            under: [
                ("ou-a".to_string(), (vec!["111111111111"], vec!["ou-b"])),
                ("ou-b".to_string(), (vec!["222222222222", "333333333333"], vec![])),
            ]
            .into_iter()
            .collect(),
        }
    }

    #[tokio::test]
    async fn targets_are_every_active_account_and_the_hub_times_every_region() {
        let org = OrganizationPolicy::default();
        let t = targets(&fake(), &org, "123456789012", "aws", "run-1").await.unwrap();
        let pairs: Vec<(String, String, bool)> = t
            .items
            .iter()
            .map(|i| (i.account.clone(), i.region.clone(), i.role_arn.is_some()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("123456789012", "eu-west-1", false),
                ("123456789012", "us-east-1", false),
                ("111111111111", "eu-west-1", true),
                ("111111111111", "us-east-1", true),
                ("333333333333", "eu-west-1", true),
                ("333333333333", "us-east-1", true),
            ]
            .map(|(a, r, role)| (a.to_string(), r.to_string(), role))
        );
        assert_eq!(t.skipped.len(), 1);
        assert!(t.skipped[0].1.contains("SUSPENDED"), "{:?}", t.skipped);
        assert_eq!(
            t.items[2].role_arn.as_deref(),
            Some("arn:aws:iam::111111111111:role/FinOpsAutopilotMember")
        );
    }

    #[tokio::test]
    async fn targets_limited_to_ous_include_child_ous_and_the_hub() {
        let org = OrganizationPolicy {
            ous: vec!["ou-a".into()],
            regions: vec!["eu-west-1".into()],
            external_id: "ext-1".into(),
            ..OrganizationPolicy::default()
        };
        let t = targets(&fake(), &org, "123456789012", "aws", "run-1").await.unwrap();
        let accounts: Vec<&str> = t.items.iter().map(|i| i.account.as_str()).collect();
        assert_eq!(accounts, ["123456789012", "111111111111", "333333333333"]);
        assert_eq!(t.items[0].external_id, None);
        assert_eq!(t.items[1].external_id.as_deref(), Some("ext-1"));
    }

    #[tokio::test]
    async fn a_run_id_with_characters_sts_refuses_is_cleaned_not_a_reason_to_scan_nothing() {
        let org = OrganizationPolicy::default();
        let t = targets(&fake(), &org, "123456789012", "aws", "manual run: 2026/12/03")
            .await
            .unwrap();
        assert_eq!(t.items.len(), 6);
        assert!(
            t.items.iter().all(|i| i.run_id == "manual-run--2026-12-03"),
            "{:?}",
            t.items[0]
        );
        assert_eq!(t.run_id, "manual-run--2026-12-03");
    }

    fn report_of(account: &str, region: &str, usd: f64, compliance: Option<(usize, usize)>) -> ItemResult {
        let mut out = serde_json::json!({"rule": "tag-compliance", "mode": "dry-run", "scanned": 5, "findings": 2,
            "failed": 0, "estimated_monthly_savings_usd": usd});
        if let Some((compliant, total)) = compliance {
            out["compliance"] = serde_json::json!({"compliant": compliant, "total": total});
        }
        ItemResult {
            status: "SUCCEEDED".into(),
            input: serde_json::json!({"function": "f", "item": item_in(account, region)}).to_string(),
            output: Some(out.to_string()),
            error: None,
            cause: None,
        }
    }

    #[test]
    fn tag_compliance_counts_add_up_per_account_and_for_the_organisation() {
        let d = digest(
            "run-1",
            "tag-compliance",
            &[
                report_of("111111111111", "eu-west-1", 0.0, Some((3, 5))),
                report_of("111111111111", "us-east-1", 0.0, Some((5, 5))),
                report_of("222222222222", "eu-west-1", 0.0, Some((1, 10))),
            ],
        );
        assert_eq!(
            d.compliance,
            Some(Compliance {
                compliant: 9,
                total: 20
            })
        );
        assert_eq!(d.compliance.unwrap().percent(), 45.0);
        assert_eq!(
            d.accounts["111111111111"].compliance,
            Some(Compliance {
                compliant: 8,
                total: 10
            })
        );
        assert_eq!(d.accounts["222222222222"].compliance.unwrap().percent(), 10.0);
    }

    #[test]
    fn the_message_form_of_a_large_digest_stays_small_and_counts_what_it_leaves_out() {
        // 2,000 accounts × 3 regions, a third failing with one of two long reasons.
        let mut results = Vec::new();
        for n in 0..2000u64 {
            let account = format!("{:012}", 100_000_000_000 + n);
            for region in ["eu-west-1", "us-east-1", "ap-south-1"] {
                if n % 3 == 0 {
                    let why = if n % 2 == 0 { "AccessDenied" } else { "ExpiredToken" };
                    results.push(ItemResult {
                        status: "FAILED".into(),
                        input: serde_json::json!({"function": "f", "item": item_in(&account, region)}).to_string(),
                        output: None,
                        error: Some("NonRetryable".into()),
                        cause: Some(format!(
                            "STS.AssumeRole failed: {why}: User: arn:aws:sts::123456789012:assumed-role/finops-idle/finops-run-1 is not authorized to perform: sts:AssumeRole on resource: arn:aws:iam::{account}:role/FinOpsAutopilotMember {}",
                            "x".repeat(400)
                        )),
                    });
                } else {
                    results.push(report_of(&account, region, n as f64, None));
                }
            }
        }
        let mut d = digest("run-1", "idle-ec2", &results);
        d.targets = results.len() + 10;
        let whole = serde_json::to_vec(&d).unwrap().len();
        assert!(whole > 256 * 1024, "the whole digest is {whole} bytes");
        let m = d.for_message(50, 20, "runs/idle-ec2/run-1/digest.json");
        let size = serde_json::to_vec(&m).unwrap().len();
        assert!(size < 64 * 1024, "{size} bytes");
        // The largest accounts by dollars, the rest counted; totals whole.
        assert_eq!(m.accounts.len(), 50);
        assert!(m.accounts.contains_key(&format!("{:012}", 100_000_000_000u64 + 1999)));
        assert_eq!(m.accounts_omitted, d.accounts.len() - 50);
        assert_eq!((m.total_findings, m.total_usd), (d.total_findings, d.total_usd));
        // Failures grouped by reason with their counts; none of them silently gone.
        assert!(m.failed_targets.is_empty());
        assert_eq!(m.failed_targets_omitted, d.failed_targets.len());
        // One group per cause, not per account: the account ids in STS's message read as one.
        assert_eq!(m.failure_groups.len(), 2, "{:?}", m.failure_groups);
        assert!(
            m.failure_groups[0].reason.contains("arn:aws:iam::<account>:role/"),
            "{:?}",
            m.failure_groups[0]
        );
        assert_eq!(
            m.failure_groups.iter().map(|g| g.targets).sum::<usize>(),
            d.failed_targets.len()
        );
        assert!(m
            .failure_groups
            .iter()
            .all(|g| g.examples.len() == 3 && g.reason.chars().count() <= 301));
        assert_eq!(m.digest_key.as_deref(), Some("runs/idle-ec2/run-1/digest.json"));
        // Ten listed targets have no result at all: counted as failed.
        assert_eq!(m.targets_failed(), d.items_failed + 10);
        assert!(m.has_problems());
        // As Slack shows it: every section within Slack's 3,000 characters, and what did not
        // fit still counted on its last line.
        static NO_CHECKS: crate::evidence::Catalog = crate::evidence::Catalog::new(&[]);
        let rendered = crate::slack::render(
            &crate::notify::Message::OrgDigest { digest: Box::new(m) },
            crate::slack::RenderOptions::new(&NO_CHECKS),
        );
        let sections: Vec<&str> = rendered["blocks"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|b| b["text"]["text"].as_str())
            .collect();
        for text in &sections {
            assert!(text.chars().count() <= 3000, "{} characters", text.chars().count());
        }
        let accounts = sections.iter().find(|t| t.starts_with("*Accounts*")).unwrap();
        assert!(accounts.lines().last().unwrap().starts_with("… and "), "{accounts}");
        let problems = sections.iter().find(|t| t.starts_with("*Problems (")).unwrap();
        assert_eq!(
            problems.lines().filter(|l| l.starts_with("• ")).count(),
            2,
            "{problems}"
        );
        assert!(
            problems.contains("arn:aws:sts::&lt;account&gt;:assumed-role"),
            "{problems}"
        );
    }

    #[test]
    fn the_digest_adds_up_each_account_and_names_each_failed_target_with_its_reason() {
        let ok = |account: &str, region: &str, usd: f64| ItemResult {
            status: "SUCCEEDED".into(),
            input: serde_json::to_string(&item_in(account, region)).unwrap(),
            output: Some(
                serde_json::json!({"rule": "idle-ec2", "mode": "dry-run", "scanned": 5, "findings": [],
                    "outcomes": [], "estimated_monthly_savings_usd": usd})
                .to_string(),
            ),
            error: None,
            cause: None,
        };
        let results = vec![
            ok("111111111111", "eu-west-1", 10.0),
            ok("111111111111", "us-east-1", 5.5),
            ItemResult {
                status: "FAILED".into(),
                input: serde_json::to_string(&item_in("222222222222", "eu-west-1")).unwrap(),
                output: None,
                error: Some("NonRetryable".into()),
                cause: Some(
                    r#"{"errorType":"NonRetryable","errorMessage":"STS.AssumeRole failed: AccessDenied: not authorized"}"#
                        .into(),
                ),
            },
            ItemResult {
                status: "SUCCEEDED".into(),
                input: "{}".into(),
                output: Some("\"not a report\"".into()),
                error: None,
                cause: None,
            },
        ];
        let d = digest("run-1", "idle-ec2", &results);
        assert_eq!(d.items, 4);
        assert_eq!(d.items_failed, 2);
        assert_eq!(d.accounts["111111111111"].usd, 15.5);
        assert_eq!(d.accounts["111111111111"].regions, ["eu-west-1", "us-east-1"]);
        assert_eq!(d.total_usd, 15.5);
        assert_eq!(d.failed_targets[0].account, "222222222222");
        assert_eq!(
            d.failed_targets[0].reason,
            "STS.AssumeRole failed: AccessDenied: not authorized"
        );
        assert!(d.failed_targets[1].reason.contains("not a rule's report"));
    }

    fn item_in(account: &str, region: &str) -> Item {
        Item {
            region: region.into(),
            ..item(account, None)
        }
    }
}

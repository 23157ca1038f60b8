//! A function's configuration from its environment, read once at start-up (fail fast, clearly),
//! and the dependencies built from it.

use crate::approval::LinkSigner;
use crate::aws::Clients;
use crate::error::{Error, Result};
use crate::flow::Sinks;
use crate::notify::SnsPublisher;
use crate::org::Reach;
use crate::policy::Policy;
use crate::secrets::Secrets;
use crate::state::DynamoState;
use crate::state::StateStore;

/// Environment variable: the DynamoDB table (state off when unset).
pub const TABLE_VAR: &str = "FINOPS_TABLE";
/// Environment variable: the SNS topic ARN (notifications off when unset).
pub const TOPIC_VAR: &str = "FINOPS_TOPIC_ARN";
/// Environment variable: the approval function's URL, for links in messages.
pub const APPROVAL_URL_VAR: &str = "FINOPS_APPROVAL_URL";
/// Environment variable: the link-signing key, for local runs only (deployments keep it in the
/// secret named by `FINOPS_SECRET_ID`).
pub const LINK_KEY_VAR: &str = "FINOPS_LINK_SIGNING_KEY";
/// How far ahead `approvals.previous_link_key_until` may be (the old link key's last day).
pub const MAX_PREVIOUS_LINK_KEY_DAYS: i64 = 30;
/// The approval function's decision key for a local run (deployed, it comes from its own secret).
pub const DECISION_KEY_VAR: &str = "FINOPS_DECISION_KEY";
/// Environment variable: `true` sends Config evaluations with TestMode (not recorded). Off in
/// production; local emulators accept PutEvaluations only in TestMode.
pub const CONFIG_TEST_MODE_VAR: &str = "FINOPS_CONFIG_TEST_MODE";
/// Environment variable: where Price List API requests go (a local stand-in); unset: AWS's own
/// endpoint, or none when `AWS_ENDPOINT_URL` points every client at a local emulator.
pub const PRICE_LIST_URL_VAR: &str = "FINOPS_PRICE_LIST_URL";
/// Environment variable: GetMetricData calls in flight at once (default 4).
pub const METRICS_CONCURRENCY_VAR: &str = "FINOPS_METRICS_CONCURRENCY";

/// Environment variable: the bucket the weekly reports are put in (savings-report) and read from
/// (the approval function's `/report`).
pub const REPORT_BUCKET_VAR: &str = "FINOPS_REPORT_BUCKET";

/// The weekly reports' bucket: `FINOPS_REPORT_BUCKET` (the template's ReportBucket), else the
/// policy's `savings_report.bucket`; empty when neither says.
pub fn report_bucket(policy: &Policy) -> String {
    var(REPORT_BUCKET_VAR).unwrap_or_else(|| policy.savings_report.bucket.trim().to_string())
}

fn var(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// The approval function's URL as the deployment fixed it: the link secret's `approval_url`, else
/// `FINOPS_APPROVAL_URL` (the template sets it on every function but the approval function itself).
pub fn approval_url(secrets: &Secrets) -> Option<String> {
    secrets.approval_url.clone().or_else(|| var(APPROVAL_URL_VAR))
}

/// Everything a detector function needs, built once per container.
#[derive(Debug)]
pub struct Deps {
    pub clients: Clients,
    pub policy: Policy,
    /// Where the policy came from (file, variable or defaults).
    pub policy_source: String,
    pub state: Option<DynamoState>,
    pub publisher: Option<SnsPublisher>,
    pub links: Option<LinkSigner>,
    /// Signs (savings-report) and checks (the approval function) the weekly report's links, with a
    /// key of their own: whoever holds it signs report links, never decisions.
    pub report_links: Option<LinkSigner>,
    pub metrics_concurrency: usize,
    /// Send Config evaluations in TestMode (never in production).
    pub config_test_mode: bool,
    /// The secret's fields (Slack credentials for slack-notify and approval).
    pub secrets: Secrets,
    /// The AWS Price List API, for savings outside us-east-1 (none against a local emulator
    /// unless `FINOPS_PRICE_LIST_URL` names a stand-in).
    pub pricing: Option<crate::aws::pricelist::PriceList>,
}

impl Deps {
    /// Reads the environment (and the secret it names) and builds the clients.
    pub async fn from_env() -> Result<Deps> {
        let (policy, policy_source) = Policy::from_env()?;
        let clients = Clients::from_env().await?;
        let secrets = Secrets::from_env(&clients.config).await?;
        Deps::from_parts(clients, policy, policy_source, secrets)
    }

    /// Builds from already loaded clients, policy and secrets, reading the rest from the
    /// environment. The link-signing key comes from the secret; `FINOPS_LINK_SIGNING_KEY` is a
    /// fallback for local runs only.
    pub fn from_parts(clients: Clients, policy: Policy, policy_source: String, secrets: Secrets) -> Result<Deps> {
        let key = secrets.link_signing_key.clone().or_else(|| var(LINK_KEY_VAR));
        let url = approval_url(&secrets);
        let links = match (url, key) {
            (Some(url), Some(key)) => {
                let signer = LinkSigner::new(key.into_bytes(), url)?;
                Some(
                    match (&secrets.previous_link_signing_key, policy.approvals.previous_link_key_until) {
                        (Some(old), Some(until)) => {
                            // At most 30 days ahead: a later date is cut to that, loudly (never a
                            // refusal to start: the approval function must keep deciding).
                            let latest = chrono::Utc::now() + chrono::Duration::days(MAX_PREVIOUS_LINK_KEY_DAYS);
                            if until > latest {
                                tracing::error!(
                                    asked = %until.format("%Y-%m-%d %H:%M UTC"),
                                    until = %latest.format("%Y-%m-%d %H:%M UTC"),
                                    "approvals.previous_link_key_until is more than {MAX_PREVIOUS_LINK_KEY_DAYS} days ahead: the old link key is accepted until the earlier date only"
                                );
                            }
                            signer.accepting(old.clone().into_bytes(), until.min(latest))
                        }
                        _ => signer,
                    },
                )
            }
            (None, _) => None,
            // The approval URL alone (jira-sync's `FINOPS_APPROVAL_URL`): links to the decision
            // page, which carry no token, so nothing to sign. Only a function given a link secret
            // must find the key in it.
            (Some(_), None) if var(crate::secrets::LINK_SECRET_ID_VAR).is_none() => None,
            (Some(_), None) => {
                return Err(Error::Config(format!(
                    "the approval URL is set but there is no link-signing key: put link_signing_key in the link secret ({})",
                    crate::secrets::LINK_SECRET_ID_VAR
                )))
            }
        };
        let metrics_concurrency = match var(METRICS_CONCURRENCY_VAR) {
            None => 4,
            Some(v) => v
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=64).contains(n))
                .ok_or_else(|| Error::Config(format!("{METRICS_CONCURRENCY_VAR} must be 1..=64, got {v:?}")))?,
        };
        let config_test_mode = match var(CONFIG_TEST_MODE_VAR).as_deref() {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => {
                return Err(Error::Config(format!(
                    "{CONFIG_TEST_MODE_VAR} must be true or false, got {other:?}"
                )))
            }
        };
        let pricing = match var(PRICE_LIST_URL_VAR) {
            Some(url) => Some(crate::aws::pricelist::PriceList::new(
                &clients.config,
                &clients.calls,
                Some(&url),
            )),
            None if clients.config.endpoint_url().is_some() => None,
            None => Some(crate::aws::pricelist::PriceList::new(
                &clients.config,
                &clients.calls,
                None,
            )),
        };
        let report_links = match (&secrets.report_link_key, approval_url(&secrets)) {
            (Some(key), Some(url)) => Some(LinkSigner::new(key.clone().into_bytes(), url)?),
            _ => None,
        };
        Ok(Deps {
            report_links,
            pricing,
            config_test_mode,
            state: var(TABLE_VAR).map(|t| DynamoState::new(clients.dynamodb.clone(), t)),
            publisher: var(TOPIC_VAR).map(|t| SnsPublisher::new(clients.sns.clone(), t)),
            links,
            metrics_concurrency,
            clients,
            policy,
            policy_source,
            secrets,
        })
    }

    /// The policy this run obeys: the configured one, or — while the emergency stop is on —
    /// the same with every rule in dry-run, with a note saying so. Without a state table there
    /// is no switch to read (and nothing can act anyway).
    /// A rule already in dry-run has nothing to stop, so the switch is not read for it.
    pub async fn policy_for_run(&self, rule: &str) -> Result<(Policy, Option<String>)> {
        let Some(state) = &self.state else {
            return Ok((self.policy.clone(), None));
        };
        if self.policy.mode_for(rule) == crate::policy::Mode::DryRun {
            return Ok((self.policy.clone(), None));
        }
        // Fails closed: a switch that cannot be read is a switch that is on.
        match state.emergency_stop().await {
            Ok(Some(stop)) if stop.on => Ok((
                self.policy.all_dry_run(),
                Some(format!(
                    "EMERGENCY STOP is on (set by {} at {}: {}): running as dry-run, nothing is changed",
                    stop.by, stop.at, stop.reason
                )),
            )),
            Ok(_) => Ok((self.policy.clone(), None)),
            Err(e) => Ok((
                self.policy.all_dry_run(),
                Some(format!(
                    "the emergency stop could not be read ({e}): running as dry-run, nothing is changed"
                )),
            )),
        }
    }

    /// Finishes a run's report: where the policy came from and the emergency stop's note first,
    /// and the run's metrics (EMF) out to CloudWatch.
    pub fn finish_report(&self, report: &mut crate::model::RunReport, stop: Option<String>) {
        if let Some(stop) = stop {
            report.notes.insert(0, stop);
        }
        report.notes.insert(0, format!("policy: {}", self.policy_source));
        report.failed = crate::model::RunReport::count_failed(&report.outcomes);
        report.findings_total = report.findings.len();
        report.skipped = crate::model::RunReport::count_skipped(&report.outcomes);
        crate::telemetry::emit(&crate::telemetry::run_metrics(
            report,
            chrono::Utc::now().timestamp_millis(),
        ));
    }

    /// Where a scan triggered by `payload` runs: a fan-out item's account and region (through its
    /// member role), or `None` when `payload` is another trigger.
    pub async fn item_reach(&self, payload: &serde_json::Value) -> Result<Option<Reach>> {
        match crate::org::Item::from_event(payload)? {
            Some(_) if self.policy.organization.is_none() => Err(crate::error::Error::Event(format!(
                "a {} item event, but the policy has no organization section: this deployment scans its own account only",
                crate::org::ITEM_SOURCE
            ))),
            Some(item) => {
                let reach = crate::org::reach(&self.clients, &item).await?;
                tracing::info!(account = %reach.account, region = %reach.region, run_id = %item.run_id, "fan-out item");
                Ok(Some(reach))
            }
            None => Ok(None),
        }
    }

    /// The function's own account (as its trigger named it) and region.
    pub fn own_reach(&self, account: String) -> Reach {
        Reach {
            account,
            region: self.clients.region.clone(),
            clients: self.clients.clone(),
            run_id: None,
            budget: None,
            home: true,
        }
    }

    /// Where a scan runs for a scheduled event or a fan-out item.
    pub async fn scheduled_reach(&self, payload: &serde_json::Value) -> Result<Reach> {
        if let Some(reach) = self.item_reach(payload).await? {
            return Ok(reach);
        }
        let trigger = crate::events::scheduled(payload)?;
        Ok(self.own_reach(trigger.account))
    }

    /// The prices of a scan in `region` at `now` (see [`crate::aws::pricelist::price_book`]).
    pub async fn price_book(&self, region: &str, now: chrono::DateTime<chrono::Utc>) -> crate::pricing::PriceBook {
        crate::aws::pricelist::price_book(self.pricing.as_ref(), self.state.as_ref().map(|s| s as _), region, now).await
    }

    /// The prices a run in `region` at `now` is costed at (see
    /// [`crate::aws::pricelist::service_prices`]).
    pub async fn service_prices(&self, region: &str, now: chrono::DateTime<chrono::Utc>) -> crate::cost::ServicePrices {
        crate::aws::pricelist::service_prices(self.pricing.as_ref(), self.state.as_ref().map(|s| s as _), region, now)
            .await
    }

    /// The prices a run that scanned `region` is costed at: what it used where it runs (Lambda,
    /// DynamoDB, SNS) at this deployment's region's, what it asked where it scanned (CloudWatch,
    /// Config, S3) at `region`'s.
    pub async fn run_prices(&self, region: &str, now: chrono::DateTime<chrono::Utc>) -> crate::cost::ServicePrices {
        let hub = self.service_prices(&self.clients.region, now).await;
        if region == self.clients.region {
            return hub;
        }
        let scanned = self.service_prices(region, now).await;
        crate::cost::ServicePrices::billed_where(&hub, &self.clients.region, &scanned, region)
    }

    /// [`Deps::finish_report`], then — for a fan-out item — the answer cut to what Step
    /// Functions carries.
    pub fn finish_report_for(&self, report: &mut crate::model::RunReport, stop: Option<String>, reach: &Reach) {
        self.finish_report(report, stop);
        if reach.run_id.is_some() {
            report.fit(crate::org::MAX_ITEM_ANSWER_BYTES);
        }
    }

    /// Runs one scan of `rule` triggered by `payload` at `now` and records it (`RUN#<rule>`):
    /// its figures, or its error. An event that does not read is no run and is not recorded; a
    /// record that cannot be written is a note, never the run's failure.
    pub async fn recorded(
        &self,
        rule: &str,
        payload: &serde_json::Value,
        now: chrono::DateTime<chrono::Utc>,
        scan: impl std::future::Future<Output = Result<crate::model::RunReport>>,
    ) -> Result<crate::model::RunReport> {
        let started = std::time::Instant::now();
        // This run's own calls, whatever else shares the clients meanwhile.
        let calls = crate::aws::CallCounter::default();
        let mut result = crate::aws::CallCounter::counting(calls.clone(), scan).await;
        let took = started.elapsed();
        if matches!(result, Err(Error::Event(_))) {
            return result;
        }
        let (account, region) = match crate::org::Item::from_event(payload) {
            Ok(Some(item)) => (item.account, item.region),
            // A scheduled event names its account `account`, a Config rule event `accountId`.
            _ => (
                ["account", "accountId"]
                    .iter()
                    .find_map(|k| payload.get(*k).and_then(serde_json::Value::as_str))
                    .unwrap_or_default()
                    .to_string(),
                self.clients.region.clone(),
            ),
        };
        let prices = self.run_prices(&region, now).await;
        let cost = run_cost(calls.usage(), took, &prices);
        if let Ok(report) = &mut result {
            report.own_cost_usd = Some(cost.usd);
        }
        let Some(state) = &self.state else {
            return result;
        };
        let mut record =
            crate::state::RunRecord::of(rule, &account, &region, now, took, self.policy.mode_for(rule), &result);
        record.cost = Some(cost);
        if let Err(e) = state.record_run(&record).await {
            tracing::warn!(error = %e, rule, "the run record was not written");
            if let Ok(report) = &mut result {
                report
                    .notes
                    .push(format!("run record not written (finops status misses this run): {e}"));
            }
        }
        result
    }

    /// The sinks for the flow.
    pub fn sinks(&self) -> Sinks<'_> {
        Sinks {
            state: self.state.as_ref().map(|s| s as _),
            publisher: self.publisher.as_ref().map(|p| p as _),
            links: self.links.as_ref(),
            fanout: false,
            budget: None,
        }
    }

    /// The sinks for a scan that runs where `reach` says (a fan-out item's are marked so).
    pub fn sinks_for<'a>(&'a self, reach: &'a Reach) -> Sinks<'a> {
        Sinks {
            fanout: reach.run_id.is_some(),
            budget: reach.budget.as_ref(),
            ..self.sinks()
        }
    }
}

/// A run's cost: the calls its clients made (the record's own write aside, a few millionths of a
/// dollar) and, in Lambda, the invocation's GB-seconds (the run's time at the function's memory,
/// `AWS_LAMBDA_FUNCTION_MEMORY_SIZE`) and its request.
fn run_cost(
    mut usage: crate::cost::RunUsage,
    took: std::time::Duration,
    prices: &crate::cost::ServicePrices,
) -> crate::cost::RunCost {
    let memory_mb = std::env::var("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        .ok()
        .and_then(|m| m.trim().parse::<f64>().ok());
    if let Some(mb) = memory_mb {
        usage.lambda_gb_seconds = took.as_secs_f64() * mb / 1024.0;
        usage.lambda_requests = 1;
    }
    crate::cost::RunCost::estimate(usage, prices)
}

//! tag-compliance, two ways in:
//! - as an AWS Config custom rule: evaluate the changed resource (or, on the periodic
//!   notification, every resource) and send PutEvaluations with the event's result token;
//! - as a scheduled sweep: instances, volumes and buckets against the required keys, compliance
//!   by type and overall, a `tag-report` message, and the policy's action (notify; mark with
//!   `finops:untagged-since`; mark, then stop instances through the same guarded stop as idle-ec2).

use chrono::{DateTime, NaiveDate, Utc};

use crate::idle_ec2::act::StopInstance;
use crate::tag_compliance::detect::{
    self as tag_compliance, kind_of, missing_tags, TagComplianceEvidence, APPLICABLE_TYPES, RULE,
};
use finops_core::model::{is_exempt, ActionKind, Finding, Outcome, OutcomeKind, Resource, ResourceKind, RunReport};
use finops_core::policy::{Mode, Policy, TagAction};
use remediation::aws::config::{ConfigApi, ConfigItem, Evaluation};
use remediation::aws::ec2::{InstanceApi, VolumeApi};
use remediation::aws::s3::BucketApi;
use remediation::error::Result;
use remediation::events::{ConfigInvocation, ConfigRuleEvent};
use remediation::flow::{self, RunContext, Sinks};
use remediation::notify::Message;

pub use crate::tag_compliance::detect::MARK_TAG;

/// The AWS ports the rule reads and acts through.
pub struct Ports<'a> {
    pub instances: &'a dyn InstanceApi,
    pub volumes: &'a dyn VolumeApi,
    pub buckets: &'a dyn BucketApi,
    pub config: &'a dyn ConfigApi,
}

/// What the sweep read: every instance (not terminated), volume and bucket with its tags, and the
/// buckets whose tags could not be read (AWS's error beside each), which are not assessed.
pub struct Inventory {
    pub resources: Vec<Resource>,
    pub unread: Vec<(Resource, String)>,
}

impl Inventory {
    /// A `failed` outcome per resource whose tags could not be read.
    fn failed_outcomes(&self) -> Vec<Outcome> {
        self.unread
            .iter()
            .map(|(r, e)| {
                Outcome::new(
                    Finding::id_for(RULE, r),
                    OutcomeKind::Failed,
                    format!("tags unreadable, not assessed: {e}"),
                )
            })
            .collect()
    }
}

/// Reads the inventory. A listing that fails fails the run; one bucket whose tags cannot be read
/// is reported, and the others go on.
pub async fn inventory(ports: &Ports<'_>, account: &str, region: &str) -> Result<Inventory> {
    let mut out: Vec<Resource> = ports
        .instances
        .live_instances()
        .await?
        .iter()
        .map(|i| i.resource())
        .collect();
    out.extend(ports.volumes.all_volumes().await?.iter().map(|v| v.resource()));
    let mut unread = Vec::new();
    for (name, bucket_region) in ports.buckets.buckets().await? {
        let mut bucket = Resource {
            kind: ResourceKind::S3Bucket,
            id: name,
            account: account.to_string(),
            region: bucket_region,
            tags: Default::default(),
        };
        match ports.buckets.bucket_tags(&bucket.id, &bucket.region).await {
            Ok(tags) => {
                bucket.tags = tags;
                out.push(bucket);
            }
            Err(e) => unread.push((bucket, e.to_string())),
        }
    }
    for r in out.iter_mut() {
        if r.account.is_empty() {
            r.account = account.to_string();
        }
        if r.region.is_empty() {
            r.region = region.to_string();
        }
    }
    Ok(Inventory { resources: out, unread })
}

/// The Config evaluation of one configuration item.
pub fn evaluate(item: &ConfigItem, left_scope: bool, policy: &Policy) -> Evaluation {
    let verdict = |compliance: &str, annotation: String| Evaluation {
        resource_type: item.resource_type.clone(),
        resource_id: item.resource_id.clone(),
        compliance: compliance.to_string(),
        annotation,
        ordering: item.capture_time,
    };
    if !APPLICABLE_TYPES.contains(&item.resource_type.as_str()) {
        return verdict(
            "NOT_APPLICABLE",
            format!("{} is not evaluated by this rule", item.resource_type),
        );
    }
    if left_scope
        || matches!(
            item.status.as_str(),
            "ResourceDeleted" | "ResourceDeletedNotRecorded" | "ResourceNotRecorded"
        )
    {
        return verdict(
            "NOT_APPLICABLE",
            format!("resource is {}", if left_scope { "out of scope" } else { &item.status }),
        );
    }
    let missing = missing_tags(&item.tags, &policy.required_tags);
    if missing.is_empty() {
        verdict("COMPLIANT", "all required tags present".into())
    } else if is_exempt(&item.tags, &policy.exempt_tag) {
        // Exempt from action, not from the compliance figure.
        verdict(
            "NON_COMPLIANT",
            format!(
                "missing required tags: {} (exempt from action: tag {}=true)",
                missing.join(", "),
                policy.exempt_tag
            ),
        )
    } else {
        verdict(
            "NON_COMPLIANT",
            format!("missing required tags: {}", missing.join(", ")),
        )
    }
}

/// Handles one Config custom rule invocation. Sending evaluations is the rule's duty whatever
/// the mode: it changes no resource. `test_mode` is Config's TestMode (evaluations not recorded),
/// an explicit setting that is off in production.
pub async fn on_config_event(
    ports: &Ports<'_>,
    event: ConfigRuleEvent,
    region: &str,
    policy: &Policy,
    test_mode: bool,
    now: DateTime<Utc>,
) -> Result<RunReport> {
    let mut notes = vec![format!("Config rule {}", event.rule_name)];
    let mut unassessed = Vec::new();
    let items: Vec<ConfigItem> = match event.invocation {
        ConfigInvocation::Change(item) => vec![item],
        ConfigInvocation::Oversized {
            resource_type,
            resource_id,
            capture_time,
        } => match ports.config.current_item(&resource_type, &resource_id).await? {
            Some(item) => vec![item],
            None => {
                notes.push(format!("Config has no item for {resource_id}: evaluated as deleted"));
                vec![ConfigItem {
                    resource_type,
                    resource_id,
                    status: "ResourceNotRecorded".into(),
                    tags: Default::default(),
                    capture_time,
                }]
            }
        },
        ConfigInvocation::Scheduled { at } => {
            let read = inventory(ports, &event.account, region).await?;
            unassessed = read.failed_outcomes();
            if !unassessed.is_empty() {
                notes.push(format!(
                    "{} bucket(s) not evaluated (tags unreadable): Config keeps their last evaluation",
                    unassessed.len()
                ));
            }
            read.resources
                .into_iter()
                .filter_map(|r| {
                    Some(ConfigItem {
                        resource_type: tag_compliance::config_type(r.kind)?.to_string(),
                        resource_id: r.id,
                        status: "OK".into(),
                        tags: r.tags,
                        capture_time: at,
                    })
                })
                .collect()
        }
    };
    let evaluations: Vec<Evaluation> = items
        .iter()
        .map(|i| evaluate(i, event.event_left_scope, policy))
        .collect();
    let refused = ports
        .config
        .put_evaluations(&evaluations, &event.result_token, test_mode)
        .await?;
    if refused > 0 {
        notes.push(format!("Config refused {refused} evaluation(s)"));
    }
    let mut findings = Vec::new();
    let mut outcomes = Vec::new();
    for (item, e) in items.iter().zip(&evaluations) {
        let resource = Resource {
            kind: kind_of(&item.resource_type).unwrap_or(ResourceKind::Ec2Instance),
            id: item.resource_id.clone(),
            account: event.account.clone(),
            region: region.to_string(),
            tags: item.tags.clone(),
        };
        let id = Finding::id_for(RULE, &resource);
        outcomes.push(Outcome::new(
            &id,
            OutcomeKind::Executed,
            format!("{}: {}", e.compliance, e.annotation),
        ));
        if e.compliance == "NON_COMPLIANT" {
            let sweep = tag_compliance::sweep(std::slice::from_ref(&resource), policy, now);
            findings.extend(sweep.findings);
        }
    }
    let scanned = items.len() + unassessed.len();
    outcomes.extend(unassessed);
    let ctx = RunContext::new(RULE, policy, Sinks::default(), now);
    let mut report = ctx.report(RULE, scanned, findings, outcomes, notes);
    report
        .notes
        .retain(|n| !n.starts_with("state is off") && !n.starts_with("notifications are off"));
    Ok(report)
}

/// Sets `resource`'s mark to `day` (its grace period counts from there).
async fn set_mark(ports: &Ports<'_>, resource: &Resource, day: NaiveDate) -> Result<()> {
    ports
        .instances
        .tag_resource(&resource.id, MARK_TAG, &day.to_string())
        .await
}

fn marked_since(r: &Resource) -> Option<NaiveDate> {
    crate::tag_compliance::detect::marked_since(&r.tags)
}

/// The scheduled sweep.
#[tracing::instrument(skip_all, fields(rule = RULE))]
pub async fn sweep(
    ports: &Ports<'_>,
    account: &str,
    region: &str,
    policy: &Policy,
    sinks: Sinks<'_>,
    now: DateTime<Utc>,
) -> Result<RunReport> {
    let ctx = RunContext::new(RULE, policy, sinks, now);
    let p = &policy.tag_compliance;
    if p.action == TagAction::MarkAndStop {
        ctx.check_sinks()?;
    }
    let read = inventory(ports, account, region).await?;
    let unassessed = read.failed_outcomes();
    let resources = read.resources;
    let result = tag_compliance::sweep(&resources, policy, now);
    let pct = |t: &str| result.by_type.get(t).map(|c| c.percent()).unwrap_or(100.0);
    let mut notes = vec![format!(
        "tag compliance {:.2}% overall (KPI {:.0}%): instances {:.2}%, volumes {:.2}%, buckets {:.2}%",
        result.overall.percent(),
        p.kpi_percent,
        pct("AWS::EC2::Instance"),
        pct("AWS::EC2::Volume"),
        pct("AWS::S3::Bucket")
    )];
    if !unassessed.is_empty() {
        notes.push(format!(
            "{} bucket(s) not assessed (tags unreadable) and left out of the figures",
            unassessed.len()
        ));
    }
    // Snoozed resources are counted (a snooze is no tag) but never marked or stopped; when the
    // snoozes cannot be read nothing is.
    let (snoozes, snoozes_unread) = match sinks.state {
        None => (remediation::state::Snoozes::default(), None),
        Some(state) => match flow::snoozed_resources(state, now).await {
            Ok(z) => (z, None),
            Err(e) => (remediation::state::Snoozes::default(), Some(e.to_string())),
        },
    };
    if let Some(e) = &snoozes_unread {
        notes.push(if ctx.mode == Mode::DryRun {
            format!("the snoozes could not be read ({e}): snoozed resources may be listed")
        } else {
            format!("the snoozes could not be read ({e}), so nothing is marked or stopped")
        });
    }
    let acting = ctx.mode != Mode::DryRun && snoozes_unread.is_none();
    let today = now.date_naive();
    let scanned = resources.len() + unassessed.len();
    let mut outcomes = unassessed;
    for f in &result.findings {
        let missing = f
            .evidence
            .get::<TagComplianceEvidence>()
            .map(|e| e.missing.join(", "))
            .unwrap_or_default();
        let detail = match (p.action, f.resource.kind, acting) {
            (_, _, _) if snoozes.covering(&f.resource).is_some() => {
                let held = snoozes.covering(&f.resource).map(|z| z.describe()).unwrap_or_default();
                match marked_since(&f.resource) {
                    // A marked instance's mark moves with the snooze, so its grace period starts
                    // again when the snooze ends (whatever record of the snooze is left then,
                    // and for the re-check right before a stop).
                    Some(since)
                        if acting
                            && p.action == TagAction::MarkAndStop
                            && f.resource.kind == ResourceKind::Ec2Instance
                            && !is_exempt(&f.resource.tags, &policy.exempt_tag)
                            && since < today =>
                    {
                        match set_mark(ports, &f.resource, today).await {
                            Ok(()) => (
                                OutcomeKind::Skipped,
                                format!(
                                    "missing {missing}; {held}: counted, not stopped; its mark moved from {since} to {today}, so its grace period starts again when the snooze ends"
                                ),
                            ),
                            // Not stopped all the same (snoozed); its grace then rests on the
                            // snooze's record: a failure, so the run says so.
                            Err(e) => (
                                OutcomeKind::Failed,
                                format!("missing {missing}; {held}: counted, not stopped; its mark could not be moved to {today}: {e}"),
                            ),
                        }
                    }
                    _ => (
                        OutcomeKind::Skipped,
                        format!("missing {missing}; {held}: counted but not marked or stopped"),
                    ),
                }
            }
            (TagAction::Notify, _, _) => (OutcomeKind::DryRun, format!("missing {missing}: reported")),
            (_, _, _) if is_exempt(&f.resource.tags, &policy.exempt_tag) => (
                OutcomeKind::Skipped,
                format!(
                    "missing {missing}; exempt: tag {}=true, counted but not marked or stopped",
                    policy.exempt_tag
                ),
            ),
            (_, ResourceKind::S3Bucket, _) => (
                OutcomeKind::Skipped,
                format!("missing {missing}; buckets are not marked (PutBucketTagging replaces every tag)"),
            ),
            (_, _, _) if marked_since(&f.resource).is_some() => (
                OutcomeKind::Skipped,
                format!(
                    "missing {missing}; marked since {}",
                    f.resource.tags.get(MARK_TAG).map(String::as_str).unwrap_or("?")
                ),
            ),
            (_, _, false) => (
                OutcomeKind::DryRun,
                format!("missing {missing}; would mark {MARK_TAG}={today}"),
            ),
            (_, _, true) => match set_mark(ports, &f.resource, today).await {
                Ok(()) => (
                    OutcomeKind::Executed,
                    format!("missing {missing}; marked {MARK_TAG}={today}"),
                ),
                Err(e) => (OutcomeKind::Failed, format!("missing {missing}; mark failed: {e}")),
            },
        };
        outcomes.push(Outcome::new(&f.id, detail.0, detail.1));
    }
    // A resource tagged properly again loses its mark, so a later lapse starts a new grace period.
    if acting && p.action != TagAction::Notify {
        for r in resources
            .iter()
            .filter(|r| r.kind != ResourceKind::S3Bucket && marked_since(r).is_some())
        {
            if missing_tags(&r.tags, &policy.required_tags).is_empty() {
                match ports.instances.untag_resource(&r.id, MARK_TAG).await {
                    Ok(()) => notes.push(format!("{} is tagged again: mark removed", r.id)),
                    Err(e) => notes.push(format!("{}: mark not removed: {e}", r.id)),
                }
            }
        }
    }
    // Instances marked long enough ago are stopped through the guarded idle-ec2 stop.
    let mut stops = Vec::new();
    if p.action == TagAction::MarkAndStop && (snoozes_unread.is_none() || ctx.mode == Mode::DryRun) {
        let due: Vec<(&Finding, NaiveDate)> = result
            .findings
            .iter()
            .filter(|f| f.resource.kind == ResourceKind::Ec2Instance)
            // Exempt instances are counted, never stopped (their outcome above says so).
            .filter(|f| !is_exempt(&f.resource.tags, &policy.exempt_tag))
            .filter(|f| snoozes.covering(&f.resource).is_none())
            .filter_map(|f| marked_since(&f.resource).map(|since| (f, since)))
            .filter(|(_, since)| (today - *since).num_days() >= i64::from(p.stop_after_days))
            .collect();
        // A snooze that ended since the mark gives the grace period again, from its end: the ends
        // of the candidates' snooze are read once.
        let ends = match sinks.state.filter(|_| !due.is_empty()) {
            None => Ok(Default::default()),
            Some(state) => {
                let resources: Vec<&Resource> = due.iter().map(|(f, _)| &f.resource).collect();
                state.snooze_ends(&resources, now).await
            }
        };
        for (f, since) in due {
            // Why it waits, and whether that is a failure to report.
            let wait = match ends.as_ref().map(|e| e.get(&f.resource.id)) {
                Err(e) => Some((
                    format!("; the end of its last snooze could not be read ({e}): not stopped"),
                    true,
                )),
                Ok(Some(end)) if end.date_naive() >= since => {
                    let ended = end.date_naive();
                    let due = ended + chrono::Duration::days(i64::from(p.stop_after_days));
                    let waits = format!("; its snooze ended {ended}");
                    match (today < due, acting && ended > since) {
                        (false, _) => None,
                        (true, false) => Some((format!("{waits}: stopped no sooner than {due}"), false)),
                        // The mark moves to the end too, so the re-check right before a stop (an
                        // approval carried out later) counts from there as well.
                        (true, true) => Some(match set_mark(ports, &f.resource, ended).await {
                            Ok(()) => (
                                format!("{waits}: mark moved there, stopped no sooner than {due}"),
                                false,
                            ),
                            Err(e) => (
                                format!(
                                    "{waits}: stopped no sooner than {due} (its mark could not be moved there: {e})"
                                ),
                                true,
                            ),
                        }),
                    }
                }
                Ok(_) => None,
            };
            if let Some((wait, failed)) = wait {
                if let Some(o) = outcomes.iter_mut().find(|o| o.finding_id == f.id) {
                    o.detail.push_str(&wait);
                    if failed {
                        o.outcome = OutcomeKind::Failed;
                    }
                }
                continue;
            }
            let mut stop = f.clone();
            stop.action = ActionKind::Stop;
            stop.id = format!("{}:stop", f.id);
            stops.push(stop);
        }
    }
    if !stops.is_empty() {
        let stop = StopInstance {
            ec2: ports.instances,
            policy,
            // Tag-compliance stops are re-evaluated on the instance's tags, not its usage.
            usage: None,
            others: &[(RULE, tag_compliance::stop_still_due)],
            now,
        };
        // The blast radius is a share of what this rule may stop: the instances (not exempt),
        // never its volumes and buckets, which it only reports.
        let stoppable = resources
            .iter()
            .filter(|r| r.kind == ResourceKind::Ec2Instance && !is_exempt(&r.tags, &policy.exempt_tag))
            .count();
        let (acted, flow_notes) = flow::apply(&ctx, &stops, &stop, stoppable).await;
        outcomes.extend(acted);
        notes.extend(flow_notes);
    }
    // A fan-out item sees one account and region: its figure is not the organisation's KPI.
    if sinks.fanout {
        notes.push(
            "a fan-out item: its compliance counts go to the organisation digest, not the KPI trend or a tag report"
                .into(),
        );
    }
    if let Some(state) = sinks.state.filter(|_| !sinks.fanout) {
        let point = remediation::state::CompliancePoint {
            date: ctx.now.date_naive(),
            overall_percent: result.overall.percent(),
            by_type: result.by_type.iter().map(|(k, c)| (k.clone(), c.percent())).collect(),
        };
        if let Err(e) = state.record_compliance(&point).await {
            notes.push(format!(
                "compliance figures not recorded (the savings report's trend misses today): {e}"
            ));
        }
    }
    if let Some(publisher) = sinks.publisher.filter(|_| !sinks.fanout) {
        let report = Message::TagReport {
            by_type: result.by_type.clone(),
            overall_percent: result.overall.percent(),
            kpi_percent: p.kpi_percent,
            non_compliant: result
                .findings
                .iter()
                .take(50)
                .map(|f| {
                    let missing = f.evidence.get::<TagComplianceEvidence>().map(|e| e.missing);
                    (f.resource.id.clone(), missing.unwrap_or_default())
                })
                .collect(),
            non_compliant_total: result.findings.len(),
        };
        if let Err(e) = publisher.publish(std::slice::from_ref(&report)).await {
            notes.push(format!("tag report not published: {e}"));
        }
    }
    let overall = result.overall;
    let mut findings = result.findings;
    findings.extend(stops);
    let mut report = ctx.report(RULE, scanned, findings, outcomes, notes);
    report.compliance = Some(overall);
    Ok(report)
}

//! The subcommands: each reads (or, for stop/resume/snooze/unsnooze, writes through the same
//! conditional, audited state code the functions use) and returns what to print.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, Utc};
use remediation::aws::Clients;
use remediation::config::Deps;
use remediation::model::{Finding, Outcome, OutcomeKind, RunReport};
use remediation::notify::{Message, Publisher, SnsPublisher};
use remediation::policy::Policy;
use remediation::state::snoozes::resource_audit_id;
use remediation::state::{ApprovalStore, AuditEntry, DynamoState, Snooze, StateStore, Unsnoozed};
use serde_json::{json, Value};

use crate::output::{table, usd, when, Paint, Spinner};
use crate::{Cli, Command, Format, Rule};

type Out = Result<String, String>;

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

fn pretty(v: &impl serde::Serialize) -> Out {
    serde_json::to_string_pretty(v).map(|s| s + "\n").map_err(err)
}

/// What every table-reading subcommand holds.
struct Ctx {
    clients: Clients,
    state: DynamoState,
    json: bool,
    paint: Paint,
}

impl Ctx {
    async fn new(cli: &Cli) -> Result<Ctx, String> {
        let table = cli
            .table
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or("no state table: pass --table or set FINOPS_TABLE (the stack's StateTable output)")?;
        let clients = Clients::from_env().await.map_err(err)?;
        Ok(Ctx {
            state: DynamoState::new(clients.dynamodb.clone(), table),
            clients,
            json: cli.output == Format::Json,
            paint: Paint::detect(),
        })
    }

    /// Who is acting, as records name them: the caller's AWS identity, and a name given with
    /// `--by` beside it (never instead of it: a record cannot be made in another's name alone).
    async fn who(&self, by: &Option<String>) -> String {
        let arn = match self.clients.sts.get_caller_identity().send().await {
            Ok(out) => out.arn().map(str::to_string),
            Err(_) => None,
        };
        let named = by.as_deref().map(Snooze::clean_reason).filter(|b| !b.is_empty());
        match (named, arn) {
            (Some(b), Some(arn)) => format!("{b} (as {arn})"),
            (Some(b), None) => format!("{b} (AWS identity unknown)"),
            (None, Some(arn)) => arn,
            (None, None) => std::env::var("USER")
                .map(|u| format!("{u} (AWS identity unknown)"))
                .unwrap_or_else(|_| "unknown".into()),
        }
    }
}

/// `finops doctor`: the report, and whether every check passed.
pub async fn doctor(cli: &Cli) -> Result<(String, bool), String> {
    let Command::Doctor {
        secret,
        link_secret,
        report_link_secret,
        approval_secret,
        jira_secret,
        config_rules,
        reserve_concurrency,
        slack_interactive,
        fanout_concurrency,
        member_sample,
        policy,
    } = &cli.command
    else {
        return Err("not the doctor".into());
    };
    let policy = match policy {
        Some(file) => Policy::from_file(file).map_err(err)?,
        None => Policy::from_env().map_err(err)?.0,
    };
    let clients = Clients::from_env().await.map_err(err)?;
    let asked = crate::doctor::Asked {
        secret: secret.clone(),
        link_secret: link_secret.clone(),
        report_link_secret: report_link_secret.clone(),
        approval_secret: approval_secret.clone(),
        jira_secret: jira_secret.clone(),
        config_rules: *config_rules,
        reserve_concurrency: *reserve_concurrency,
        slack_interactive: *slack_interactive,
        fanout_concurrency: policy.organization.as_ref().map(|_| *fanout_concurrency),
        member_sample: *member_sample,
        bedrock_endpoint: std::env::var("FINOPS_BEDROCK_ENDPOINT")
            .ok()
            .filter(|e| !e.trim().is_empty()),
    };
    let checks = crate::doctor::run(&clients, &policy, &asked).await;
    let passed = checks.iter().all(|c| c.verdict != crate::doctor::Verdict::Fail);
    let text = if cli.output == Format::Json {
        pretty(&crate::doctor::to_json(&checks))?
    } else {
        crate::doctor::render(&checks)
    };
    Ok((text, passed))
}

/// Runs the parsed command; the text to print (and whether a scan left resources unassessed),
/// or the error to report.
pub async fn run(cli: &Cli) -> Result<(String, bool), String> {
    if let Command::Scan { rule, policy } = &cli.command {
        return scan(cli, *rule, policy.as_deref()).await;
    }
    let c = Ctx::new(cli).await?;
    let now = Utc::now();
    let result = table_command(cli, &c, now).await;
    result.map(|text| (text, false)).map_err(|e| {
        if e.contains("ResourceNotFoundException") {
            format!(
                "{e}\n  is {} the state table in {}? Pass --table or set FINOPS_TABLE to the stack's StateTable output",
                c.state.table_name(),
                c.clients.region
            )
        } else {
            e
        }
    })
}

async fn table_command(cli: &Cli, c: &Ctx, now: DateTime<Utc>) -> Out {
    match &cli.command {
        Command::Status => status(c, now).await,
        Command::Stop { reason, by } => switch(c, true, reason, by, now).await,
        Command::Resume { reason, by } => switch(c, false, reason, by, now).await,
        Command::Approvals { status } => approvals(c, status.as_deref()).await,
        Command::Audit { id } => audit(c, id, now).await,
        Command::Snooze {
            resource,
            days,
            reason,
            by,
            place,
        } => snooze(c, resource, *days, reason, by, place, now).await,
        Command::Snoozes { all } => snoozes(c, *all, now).await,
        Command::Unsnooze {
            resource,
            reason,
            by,
            all_places,
            place,
        } => unsnooze(c, resource, reason, by, *all_places, place, now).await,
        Command::Report { weeks } => report(c, *weeks, now).await,
        Command::Scan { .. } | Command::Doctor { .. } | Command::Secrets { .. } => Err("unreachable".into()),
    }
}

async fn status(c: &Ctx, now: DateTime<Utc>) -> Out {
    let stop = c.state.emergency_stop().await.map_err(err)?;
    let pending = c.state.approvals_with_status(Some("pending")).await.map_err(err)?;
    let mut open: BTreeMap<String, usize> = BTreeMap::new();
    let mut awaiting_expiry = 0;
    for a in &pending {
        if a.expires_at > now {
            *open.entry(a.finding.rule.clone()).or_default() += 1;
        } else {
            awaiting_expiry += 1;
        }
    }
    let snoozes = c.state.snoozes(now).await.map_err(err)?;
    let mut last = BTreeMap::new();
    // The autopilot's own AWS bill over the last 30 days, rule by rule, from its run records.
    let mut own_cost: BTreeMap<&str, f64> = BTreeMap::new();
    // Where their prices came from: the embedded us-east-1 list, or a region's Price List.
    let mut price_sources: BTreeSet<String> = BTreeSet::new();
    for rule in finops_checks::CATALOG.rules() {
        last.insert(rule, c.state.last_runs(rule).await.map_err(err)?);
        let month = c
            .state
            .runs(rule, Some(now - Duration::days(30)), None)
            .await
            .map_err(err)?;
        own_cost.insert(rule, month.iter().filter_map(|r| r.cost.as_ref()).map(|c| c.usd).sum());
        price_sources.extend(
            month
                .iter()
                .filter_map(|r| r.cost.as_ref())
                .map(|c| price_source(&c.prices)),
        );
    }
    let own_total: f64 = own_cost.values().sum();
    if c.json {
        return pretty(&json!({
            "emergency_stop": stop.as_ref().map(|s| json!({"on": s.on, "by": s.by, "at": s.at, "reason": s.reason})),
            "open_approvals": open,
            "open_approvals_total": open.values().sum::<usize>(),
            "pending_past_deadline": awaiting_expiry,
            "snoozes": snoozes.len(),
            "last_runs": last,
            "own_cost_usd_30_days": own_cost,
            "own_cost_usd_30_days_total": own_total,
            "own_cost_prices": price_sources,
        }));
    }
    let p = c.paint;
    let mut out = String::new();
    out += &match &stop {
        Some(s) if s.on => format!(
            "{} (set by {} at {}: {})\n",
            p.red("Emergency stop: ON — every function runs as dry-run"),
            s.by,
            s.at,
            s.reason
        ),
        _ => format!("Emergency stop: {}\n", p.green("off")),
    };
    let total: usize = open.values().sum();
    let by_rule: Vec<String> = open.iter().map(|(r, n)| format!("{r} {n}")).collect();
    out += &format!(
        "Open approvals: {}{}\n",
        p.bold(&total.to_string()),
        if by_rule.is_empty() {
            String::new()
        } else {
            format!(" ({})", by_rule.join(", "))
        }
    );
    if awaiting_expiry > 0 {
        out += &format!("  {awaiting_expiry} more past their deadline (the hourly sweep expires them)\n");
    }
    out += &format!("Snoozes in force: {}\n\n", snoozes.len());
    let rows = last
        .iter()
        .flat_map(|(rule, runs)| last_run_rows(p, rule, runs))
        .collect();
    out += &table(
        &[
            "rule",
            "where",
            "last run",
            "mode",
            "scanned",
            "findings",
            "$/month",
            "run cost",
            "result",
            "first error",
        ],
        rows,
        &[4, 5, 6, 7],
    );
    let by_rule: Vec<String> = own_cost
        .iter()
        .filter(|(_, usd)| **usd > 0.0)
        .map(|(rule, usd)| format!("{rule} {}", remediation::cost::shown_usd(*usd)))
        .collect();
    let known = last.values().flatten().any(|r| r.cost.is_some()) || own_total > 0.0;
    out += &if known {
        format!(
            "\nThe autopilot's own AWS cost, last 30 days: {}{}, estimated from its runs at {}\n",
            p.bold(&remediation::cost::shown_usd(own_total)),
            if by_rule.is_empty() {
                String::new()
            } else {
                format!(" ({})", by_rule.join(", "))
            },
            match price_sources.len() {
                0 => remediation::cost::ServicePrices::embedded().source,
                1 => price_sources.iter().next().cloned().unwrap_or_default(),
                n => format!("the prices of each run's region ({n} price sources: finops status --json lists them)"),
            }
        )
    } else {
        "\nThe autopilot's own AWS cost, last 30 days: not known yet (no run has recorded it)\n".to_string()
    };
    Ok(out)
}

use remediation::report::BEHIND_HOURS as BEHIND;

/// `rule`'s rows in the status table: a row of its own for each account and region whose last run
/// did not end well or is more than a day behind the rule's newest, and one row summing the rest
/// (so a hundred healthy accounts take one line and the one failing is never hidden).
fn last_run_rows(p: Paint, rule: &str, runs: &[remediation::state::RunRecord]) -> Vec<Vec<String>> {
    let Some(newest) = runs.iter().map(|r| r.at).max() else {
        let mut row = vec![rule.to_string(), String::new(), "never".into()];
        row.resize(10, String::new());
        return vec![row];
    };
    let behind = |r: &remediation::state::RunRecord| newest - r.at > Duration::hours(BEHIND);
    let (healthy, apart): (Vec<_>, Vec<_>) = runs.iter().partition(|r| r.result == "ok" && !behind(r));
    let mut rows = Vec::new();
    if let [one] = healthy.as_slice() {
        rows.push(place_row(p, rule, one, behind(one)));
    } else if let Some(first) = healthy.first() {
        let modes: std::collections::BTreeSet<&str> = healthy.iter().map(|r| r.mode.as_str()).collect();
        rows.push(vec![
            rule.to_string(),
            format!("{} places", healthy.len()),
            when(first.at),
            modes.into_iter().collect::<Vec<_>>().join(", "),
            healthy.iter().map(|r| r.scanned).sum::<usize>().to_string(),
            healthy.iter().map(|r| r.findings).sum::<usize>().to_string(),
            usd(healthy.iter().map(|r| r.estimated_monthly_savings_usd).sum()),
            run_cost(healthy.iter().copied()),
            p.green("ok"),
            String::new(),
        ]);
    }
    rows.extend(apart.into_iter().map(|r| place_row(p, rule, r, behind(r))));
    rows
}

fn place_row(p: Paint, rule: &str, r: &remediation::state::RunRecord, behind: bool) -> Vec<String> {
    let result = match r.result.as_str() {
        "ok" => p.green("ok"),
        "partial" => p.yellow("partial"),
        other => p.red(other),
    };
    vec![
        rule.to_string(),
        format!("{}/{}", r.account, r.region),
        when(r.at),
        r.mode.clone(),
        r.scanned.to_string(),
        r.findings.to_string(),
        usd(r.estimated_monthly_savings_usd),
        run_cost(std::iter::once(r)),
        if behind {
            format!("{result}, {}", p.yellow("not run since"))
        } else {
            result
        },
        r.errors.first().cloned().unwrap_or_default(),
    ]
}

/// The last runs' own cost, summed; blank for records kept before it was.
/// A run's price source as the status groups them: the same prices whether read fresh or from
/// the cache, and a fallback the same whatever kept the Price List from answering that time.
fn price_source(prices: &str) -> String {
    let prices = prices.replace(" (cached)", "");
    match prices.find(", standing in for ") {
        Some(at) => {
            let rest = &prices[at + ", standing in for ".len()..];
            let region = rest.split([' ', ';']).next().unwrap_or_default();
            format!("{}, standing in for {region}", &prices[..at])
        }
        None => prices,
    }
}

fn run_cost<'a>(runs: impl Iterator<Item = &'a remediation::state::RunRecord>) -> String {
    let costs: Vec<f64> = runs.filter_map(|r| r.cost.as_ref().map(|c| c.usd)).collect();
    if costs.is_empty() {
        String::new()
    } else {
        remediation::cost::shown_usd(costs.iter().sum())
    }
}

async fn switch(c: &Ctx, on: bool, reason: &str, by: &Option<String>, now: DateTime<Utc>) -> Out {
    let reason = reason.trim();
    if on && reason.is_empty() {
        return Err("give a --reason: it is shown in every run's notes while the stop is on".into());
    }
    let who = c.who(by).await;
    c.state.set_emergency_stop(on, &who, reason, now).await.map_err(err)?;
    if c.json {
        return pretty(&json!({"emergency_stop": {"on": on, "by": who, "at": now, "reason": reason}}));
    }
    Ok(if on {
        format!(
            "{} by {who}: every function runs as dry-run, approvals execute nothing\n",
            c.paint.red("Emergency stop ON")
        )
    } else {
        format!(
            "Emergency stop {} by {who}: the functions obey their policy again\n",
            c.paint.green("off")
        )
    })
}

async fn approvals(c: &Ctx, status: Option<&str>) -> Out {
    let list = c.state.approvals_with_status(status).await.map_err(err)?;
    if c.json {
        let v: Vec<Value> = list
            .iter()
            .map(|a| {
                json!({
                    "request_id": a.request_id,
                    "status": a.status,
                    "rule": a.finding.rule,
                    "resource_id": a.finding.resource.id,
                    "account": a.finding.resource.account,
                    "region": a.finding.resource.region,
                    "action": a.finding.action.as_str(),
                    "estimated_monthly_savings_usd": a.finding.estimated_monthly_savings_usd,
                    "finding_id": a.finding.id,
                    "expires_at": a.expires_at,
                    "approvers": a.approvers,
                    "required_approvals": a.required_approvals,
                    "decided_by": a.decided_by,
                    "decided_via": a.decided_via,
                    "detail": a.detail,
                })
            })
            .collect();
        return pretty(&v);
    }
    if list.is_empty() {
        return Ok(match status {
            Some(s) => format!("No approval request is {s}.\n"),
            None => "No approval request on record.\n".into(),
        });
    }
    let rows = list
        .iter()
        .map(|a| {
            vec![
                a.request_id.clone(),
                a.status.clone(),
                a.finding.rule.clone(),
                a.finding.resource.id.clone(),
                a.finding.action.as_str().to_string(),
                usd(a.finding.estimated_monthly_savings_usd.unwrap_or(0.0)),
                when(a.expires_at),
                match (&a.decided_by, a.approvers.is_empty()) {
                    (Some(by), _) => format!("{by} via {}", a.decided_via.as_deref().unwrap_or("?")),
                    (None, false) => format!(
                        "{} of {}: {}",
                        a.approvers.len(),
                        a.required_approvals,
                        a.approvers.join(", ")
                    ),
                    (None, true) => String::new(),
                },
            ]
        })
        .collect();
    Ok(table(
        &[
            "request", "status", "rule", "resource", "action", "$/month", "deadline", "decided",
        ],
        rows,
        &[5],
    ))
}

/// One line of a merged trail.
#[derive(serde::Serialize)]
struct TrailLine {
    at: String,
    event: String,
    /// The finding the line is about, or `resource` for the resource's own trail (snoozes).
    about: String,
    reference: String,
    detail: String,
}

async fn audit(c: &Ctx, id: &str, now: DateTime<Utc>) -> Out {
    let id = id.trim();
    let (finding_ids, resource_id): (Vec<String>, String) = match finops_checks::CATALOG.parse_id(id) {
        Some(parts) => (vec![id.to_string()], parts.resource_id.to_string()),
        None => {
            // A resource id: its findings are the ledger's lines about it (the year before now).
            let months = remediation::report::months((now - Duration::days(400)).date_naive(), now.date_naive());
            let (lines, _) = c.state.ledger_lines(&months).await.map_err(err)?;
            let mut ids: Vec<String> = lines
                .into_iter()
                .filter(|l| l.resource_id == id)
                .map(|l| l.finding_id)
                .collect();
            ids.sort();
            ids.dedup();
            (ids, id.to_string())
        }
    };
    let mut lines: Vec<(Option<DateTime<Utc>>, TrailLine)> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut add = |about: &str, e: AuditEntry| {
        if seen.insert((e.at.clone(), e.event.clone(), e.ref_id.clone())) {
            let at = DateTime::parse_from_rfc3339(&e.at).ok().map(|t| t.with_timezone(&Utc));
            lines.push((
                at,
                TrailLine {
                    at: e.at,
                    event: e.event,
                    about: about.to_string(),
                    reference: e.ref_id,
                    detail: e.detail,
                },
            ));
        }
    };
    for f in &finding_ids {
        for e in c.state.audit_trail(f).await.map_err(err)? {
            add(f, e);
        }
    }
    for e in c
        .state
        .audit_trail(&resource_audit_id(&resource_id))
        .await
        .map_err(err)?
    {
        add("resource", e);
    }
    lines.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.at.cmp(&b.1.at)));
    let lines: Vec<TrailLine> = lines.into_iter().map(|(_, l)| l).collect();
    if c.json {
        return pretty(&lines);
    }
    if lines.is_empty() {
        return Ok(format!(
            "No audit trail for {id}: nothing was asked, done or snoozed about it.\n"
        ));
    }
    // One table in time order; the findings it spans are named above it, and each line says
    // which rule (account and region when more than one) it is about.
    let mut findings: Vec<&str> = lines
        .iter()
        .map(|l| l.about.as_str())
        .filter(|a| *a != "resource")
        .collect();
    findings.sort();
    findings.dedup();
    let places: std::collections::HashSet<(&str, &str)> = findings
        .iter()
        .filter_map(|f| finops_checks::CATALOG.parse_id(f))
        .map(|p| (p.account, p.region))
        .collect();
    let mut out = format!("Audit trail of {resource_id}\n");
    for f in &findings {
        out.push_str(&format!("  finding {f}\n"));
    }
    let rows = lines
        .iter()
        .map(|l| {
            let at = DateTime::parse_from_rfc3339(&l.at)
                .map(|t| t.with_timezone(&Utc).format("%Y-%m-%d %H:%M:%S UTC").to_string())
                .unwrap_or_else(|_| l.at.clone());
            let about = match finops_checks::CATALOG.parse_id(&l.about) {
                Some(p) if places.len() > 1 => format!("{} {}/{}", p.rule, p.account, p.region),
                Some(p) => p.rule.to_string(),
                None => "snooze".to_string(),
            };
            vec![at, about, l.event.clone(), l.reference.clone(), l.detail.clone()]
        })
        .collect();
    out.push_str(&table(
        &["when", "about", "event", "ref", "who, how and what"],
        rows,
        &[],
    ));
    Ok(out)
}

/// A named account or region, trimmed; blank is none.
fn named(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

async fn snooze(
    c: &Ctx,
    resource: &str,
    days: u32,
    reason: &str,
    by: &Option<String>,
    place: &crate::Place,
    now: DateTime<Utc>,
) -> Out {
    let resource = resource.trim();
    if resource.is_empty() {
        return Err("name the resource to snooze (its id)".into());
    }
    let reason = Snooze::clean_reason(reason);
    if reason.is_empty() {
        return Err("give a --reason: it is shown on every finding the snooze sets aside".into());
    }
    let z = Snooze {
        resource_id: resource.to_string(),
        until: now + Duration::days(i64::from(days)),
        by: c.who(by).await,
        via: "cli".into(),
        reason,
        at: now,
        finding_id: place.finding.clone(),
        account: named(&place.account),
        region: named(&place.region),
        lifted_by: None,
        lifted_at: None,
    };
    // An operator's command replaces a snooze in force, and says so.
    let granted = c.state.snooze(&z, false, &finops_checks::CATALOG).await.map_err(err)?;
    let mut warnings = granted.warnings.clone();
    // The requests it closed are announced on the topic when one is configured (Slack and Jira
    // then say so); without one, their Slack buttons answer "already snoozed".
    let mut announced = false;
    if let Some(topic) = std::env::var(remediation::config::TOPIC_VAR)
        .ok()
        .filter(|t| !t.trim().is_empty())
    {
        let publisher = SnsPublisher::new(c.clients.sns.clone(), topic);
        let messages: Vec<Message> = granted
            .closed_requests
            .iter()
            .map(|(rid, f)| Message::ApprovalResult {
                request_id: rid.clone(),
                finding: f.clone(),
                status: "snoozed".into(),
                decided_by: z.by.clone(),
                detail: format!("closed, nothing done: {}", z.describe()),
            })
            .collect();
        if !messages.is_empty() {
            // The snooze and the closures are on record: a failed announcement is a warning.
            match publisher.publish(&messages).await {
                Ok(_) => announced = true,
                Err(e) => warnings.push(format!("the closed requests were not announced on the topic: {e}")),
            }
        }
    }
    if c.json {
        return pretty(&json!({
            "snooze": z,
            "closed_requests": granted.closed_requests.iter().map(|(r, _)| r).collect::<Vec<_>>(),
            "announced": announced,
            "replaced": granted.replaced,
            "warnings": warnings,
        }));
    }
    let mut out = format!(
        "Snoozed {} ({}): {}. Every rule skips it until then.\n",
        c.paint.bold(&z.resource_id),
        z.where_text(),
        z.describe()
    );
    if let Some(old) = &granted.replaced {
        out += &format!("  It replaces the snooze until {} by {}.\n", old.until_text(), old.by);
    }
    for (rid, f) in &granted.closed_requests {
        out += &format!(
            "  Closed pending request {rid} ({} {}): nothing will be done.\n",
            f.rule,
            f.action.as_str()
        );
    }
    for w in &warnings {
        out += &format!("  {} {w}\n", c.paint.yellow("Warning:"));
    }
    Ok(out)
}

async fn snoozes(c: &Ctx, all: bool, now: DateTime<Utc>) -> Out {
    let (mut list, unreadable) = c.state.all_snoozes().await.map_err(err)?;
    if !all {
        list.retain(|z| z.in_force(now));
    }
    list.sort_by(|a, b| a.until.cmp(&b.until).then_with(|| a.resource_id.cmp(&b.resource_id)));
    if c.json {
        return pretty(&list);
    }
    if list.is_empty() {
        return Ok("No snooze in force.\n".into());
    }
    let rows = list
        .iter()
        .map(|z| {
            vec![
                z.resource_id.clone(),
                z.where_text(),
                match (&z.lifted_by, z.lifted_at) {
                    (by, Some(at)) => format!(
                        "{} (lifted {} by {})",
                        z.until_text(),
                        when(at),
                        by.as_deref().unwrap_or("someone")
                    ),
                    _ if z.until > now => z.until_text(),
                    _ => format!("{} (ended)", z.until_text()),
                },
                z.by.clone(),
                z.via.clone(),
                z.reason.clone(),
                when(z.at),
            ]
        })
        .collect();
    let mut out = table(
        &["resource", "where", "until", "by", "via", "reason", "granted"],
        rows,
        &[],
    );
    if unreadable > 0 {
        out += &format!("{unreadable} snooze item(s) could not be read; they snooze nothing.\n");
    }
    Ok(out)
}

async fn unsnooze(
    c: &Ctx,
    resource: &str,
    reason: &str,
    by: &Option<String>,
    all_places: bool,
    place: &crate::Place,
    now: DateTime<Utc>,
) -> Out {
    let who = c.who(by).await;
    let resource = resource.trim();
    let (account, region) = (named(&place.account), named(&place.region));
    let reason = Snooze::clean_reason(reason);
    // The snooze under the key named (everywhere without a place), or with --all-places every one.
    let key = remediation::state::snooze_key(resource, account.as_deref(), region.as_deref());
    // Whether `z` holds in some of the place named (a snooze everywhere covers every place), or,
    // `wholly`, in all of it.
    let holds = |z: &Snooze, wholly: bool| {
        let meets = |named: &Option<String>, held: &Option<String>| match (named, held) {
            (Some(n), Some(h)) => n == h,
            (None, Some(_)) => !wholly,
            (_, None) => true,
        };
        meets(&account, &z.account) && meets(&region, &z.region)
    };
    let live = c.state.snoozes_of(resource, now).await.map_err(err)?;
    let targets: Vec<&Snooze> = live.iter().filter(|z| all_places || z.key() == key).collect();
    if targets.is_empty() {
        let named_place = account.is_some() || region.is_some();
        return Err(match live.iter().find(|z| named_place && holds(z, true)) {
            _ if live.is_empty() => format!("{resource} is not snoozed"),
            Some(wider) => format!(
                "{resource} has no snooze of its own there; it is snoozed {}, which holds there too: lift that with finops unsnooze {resource}{}",
                there(wider),
                place_flags(wider)
            ),
            None => format!(
                "{resource} is not snoozed {}; it is snoozed {} (name the place with --account and --region, or lift every snooze of it with --all-places)",
                if named_place { "there" } else { "everywhere" },
                live.iter().map(there).collect::<Vec<_>>().join(", ")
            ),
        });
    }
    let (mut lifted, mut warnings, mut failed) = (Vec::new(), Vec::new(), false);
    for z in targets {
        // One failure does not hide the lifts already done: it is reported beside them.
        match c.state.unsnooze(z, &who, &reason, now).await {
            Ok(Unsnoozed::Lifted(z)) => lifted.push(z),
            Ok(Unsnoozed::Gone) => warnings.push(format!("the snooze {} had already ended or been lifted", there(z))),
            Ok(Unsnoozed::Replaced(n)) => warnings.push(format!(
                "the snooze {} was replaced while it was being lifted ({}): that one stands",
                there(z),
                n.describe()
            )),
            Err(e) => {
                failed = true;
                warnings.push(format!("the snooze {} was not lifted: {e}", there(z)));
            }
        }
    }
    let (here, elsewhere): (Vec<Snooze>, Vec<Snooze>) = c
        .state
        .snoozes_of(resource, now)
        .await
        .map_err(err)?
        .into_iter()
        .partition(|z| holds(z, false));
    if lifted.is_empty() {
        return Err(format!("nothing was lifted: {}", warnings.join("; ")));
    }
    if c.json && failed {
        return Err(format!(
            "lifted {}; not every snooze was lifted: {}",
            lifted.iter().map(there).collect::<Vec<_>>().join(", "),
            warnings.join("; ")
        ));
    }
    if c.json {
        return pretty(&json!({
            "lifted": lifted,
            "still_snoozed": here,
            "snoozed_elsewhere": elsewhere,
            "by": who,
            "warnings": warnings,
        }));
    }
    let mut out = String::new();
    for z in &lifted {
        out += &format!(
            "Snooze of {} {} lifted by {who} (it ran until {}).\n",
            z.resource_id,
            there(z),
            z.until_text()
        );
    }
    for w in &warnings {
        out += &format!("  {} {w}\n", c.paint.yellow("Warning:"));
    }
    let place_named = match (&account, &region) {
        (None, None) => String::new(),
        _ => format!(" in {}", lifted[0].where_text()),
    };
    if here.is_empty() {
        out +=
            &format!("No snooze holds {resource}{place_named} any more: the next runs assess it{place_named} again.\n");
    }
    for z in &here {
        out += &format!(
            "  {} {resource} is still snoozed {} ({}): lift it with finops unsnooze {resource}{}\n",
            c.paint.yellow("Note:"),
            there(z),
            z.describe(),
            place_flags(z)
        );
    }
    for z in &elsewhere {
        out += &format!("  Also snoozed {} ({}).\n", there(z), z.describe());
    }
    if failed {
        // What was lifted is printed; the exit code says not everything was.
        return Err(format!("{out}not every snooze was lifted (see the warnings above)"));
    }
    Ok(out)
}

/// Where `z` holds, after "snoozed": `everywhere`, or `in <account>/<region>`.
fn there(z: &Snooze) -> String {
    match (&z.account, &z.region) {
        (None, None) => z.where_text(),
        _ => format!("in {}", z.where_text()),
    }
}

/// The flags that name where `z` holds.
fn place_flags(z: &Snooze) -> String {
    let mut flags = String::new();
    if let Some(a) = &z.account {
        flags += &format!(" --account {a}");
    }
    if let Some(r) = &z.region {
        flags += &format!(" --region {r}");
    }
    flags
}

async fn report(c: &Ctx, weeks: u32, now: DateTime<Utc>) -> Out {
    let kpi = Policy::default().tag_compliance.kpi_percent;
    let r = remediation::report::SavingsReport::load(&c.state, weeks, kpi, &finops_checks::CATALOG, now)
        .await
        .map_err(err)?;
    if c.json {
        return pretty(&r);
    }
    let p = c.paint;
    let (open, open_usd) = r.open();
    let mut out = format!(
        "Savings {} to {}: {} estimated, {} realised ({}%); {} open finding(s) worth {}/month\nThe autopilot itself {}.\n\n",
        r.from,
        r.to,
        p.bold(&usd(r.estimated_usd)),
        p.green(&usd(r.realised_usd)),
        r.realisation_percent,
        open,
        usd(open_usd),
        r.costs_and_saves()
    );
    let weeks_rows = r
        .weeks
        .iter()
        .map(|w| {
            vec![
                w.week_start.to_string(),
                w.detected.to_string(),
                usd(w.estimated_usd),
                w.realised.to_string(),
                usd(w.realised_usd),
            ]
        })
        .collect();
    out += &table(
        &["week of", "detected", "estimated /month", "realised", "realised /month"],
        weeks_rows,
        &[1, 2, 3, 4],
    );
    let rule_rows = r
        .by_rule
        .iter()
        .map(|(rule, t)| {
            vec![
                rule.clone(),
                t.findings.to_string(),
                usd(t.estimated_usd),
                usd(t.realised_usd),
            ]
        })
        .collect();
    if !r.by_rule.is_empty() {
        out += &table(&["rule", "findings", "estimated", "realised"], rule_rows, &[1, 2, 3]);
    }
    if !r.scans.is_empty() {
        let scan_rows = r
            .scans
            .iter()
            .map(|(rule, s)| {
                vec![
                    rule.clone(),
                    s.runs.to_string(),
                    s.failed.to_string(),
                    when(s.last_at),
                    s.last_result.clone(),
                    s.last_findings.to_string(),
                ]
            })
            .collect();
        out += &table(
            &["rule", "scans", "failed", "last scan", "result", "findings"],
            scan_rows,
            &[1, 2, 5],
        );
    }
    if let Some(why) = &r.scans_unread {
        out += &format!("{why}: the scans are not shown.\n");
    }
    if r.unreadable > 0 {
        out += &format!(
            "{} ledger item(s) could not be read and are not counted.\n",
            r.unreadable
        );
    }
    Ok(out)
}

/// A laptop scan: the rule's own function code, in dry-run, with no table, topic or links (so
/// nothing is written or sent); snoozes are read (only) when a table is given.
/// A laptop scan's text, and whether some resources could not be assessed (its exit says so).
async fn scan(cli: &Cli, rule: Rule, policy_file: Option<&std::path::Path>) -> Result<(String, bool), String> {
    let now = Utc::now();
    let (policy, source) = match policy_file {
        Some(path) => (Policy::from_file(path).map_err(err)?, path.display().to_string()),
        None => (Policy::default(), "built-in defaults".to_string()),
    };
    let clients = Clients::from_env().await.map_err(err)?;
    let mut deps = Deps::from_parts(clients, policy.all_dry_run(), source, Default::default()).map_err(err)?;
    deps.state = None;
    deps.publisher = None;
    deps.links = None;
    let account = deps.clients.identity().await.map_err(err)?.account;
    let region = deps.clients.region.clone();
    let event = json!({
        "version": "0",
        "id": "finops-cli-scan",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": account,
        "time": now,
        "region": region,
        "resources": [],
        "detail": {},
    });
    let spinner = Spinner::start(format!("{}: scanning {account} in {region} (dry run)…", rule.name()));
    let result = match rule {
        Rule::IdleEc2 => idle_ec2::handler::handle(event, &deps, now).await,
        Rule::EbsCleanup => ebs_cleanup::handler::handle(event, &deps, now).await,
        Rule::S3Public => s3_public::handler::handle(event, &deps, now).await,
        Rule::CostAlert => cost_alert::handler::handle(event, &deps, now).await,
        Rule::TagCompliance => tag_compliance::handler::handle(event, &deps, now).await,
        Rule::Rightsizing => rightsizing::handler::handle(event, &deps, None, now).await,
    };
    drop(spinner);
    let mut report = result.map_err(err)?;
    // The laptop scan has no table or topic on purpose: say so once, not as if something were off.
    report
        .notes
        .retain(|n| !n.starts_with("state is off") && !n.starts_with("notifications are off"));
    report
        .notes
        .push("a laptop scan: nothing recorded, nothing sent, nothing changed".into());
    if let Some(table) = cli.table.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        let state = DynamoState::new(deps.clients.dynamodb.clone(), table);
        set_aside_snoozed(&mut report, &state, now).await;
    }
    let incomplete = report.assessed_nothing() || RunReport::count_failed(&report.outcomes) > 0 || report.failed > 0;
    if cli.output == Format::Json {
        return pretty(&report).map(|t| (t, incomplete));
    }
    Ok((scan_table(&report, &account, &region, Paint::detect()), incomplete))
}

/// Moves the findings on snoozed resources out of a laptop scan's report, as the functions do.
async fn set_aside_snoozed(report: &mut RunReport, state: &DynamoState, now: DateTime<Utc>) {
    match remediation::flow::snoozed_resources(state, now).await {
        Err(e) => report.notes.push(format!(
            "the snoozes could not be read ({e}): snoozed resources may be listed"
        )),
        Ok(snoozes) => {
            let (snoozed, kept): (Vec<Finding>, Vec<Finding>) = std::mem::take(&mut report.findings)
                .into_iter()
                .partition(|f| snoozes.covering(&f.resource).is_some());
            for f in &snoozed {
                report.outcomes.retain(|o| o.finding_id != f.id);
                report.outcomes.push(Outcome::new(
                    &f.id,
                    OutcomeKind::Skipped,
                    snoozes.covering(&f.resource).map(|z| z.describe()).unwrap_or_default(),
                ));
            }
            report.findings = kept;
            report.findings_total = report.findings.len();
            report.estimated_monthly_savings_usd = RunReport::total_savings(&report.findings);
            report.skipped = RunReport::count_skipped(&report.outcomes);
        }
    }
}

fn scan_table(r: &RunReport, account: &str, region: &str, p: Paint) -> String {
    let mut out = format!(
        "{} in {account}/{region}: {} scanned, {} finding(s), {}/month — dry run, nothing changed\n",
        p.bold(&r.rule),
        r.scanned,
        r.findings.len(),
        p.bold(&usd(r.estimated_monthly_savings_usd))
    );
    if !r.findings.is_empty() {
        let detail = |f: &Finding| {
            r.outcomes
                .iter()
                .find(|o| o.finding_id == f.id)
                .map(|o| o.detail.clone())
                .unwrap_or_default()
        };
        let rows = r
            .findings
            .iter()
            .map(|f| {
                vec![
                    f.resource.id.clone(),
                    f.action.as_str().to_string(),
                    f.estimated_monthly_savings_usd
                        .map(usd)
                        .unwrap_or_else(|| "unknown".into()),
                    f.owner().to_string(),
                    detail(f),
                ]
            })
            .collect();
        out += &table(&["resource", "action", "$/month", "owner", "would"], rows, &[2]);
    }
    let skipped: Vec<&Outcome> = r.outcomes.iter().filter(|o| o.outcome != OutcomeKind::DryRun).collect();
    if !skipped.is_empty() {
        let rows = skipped
            .iter()
            .map(|o| vec![o.finding_id.clone(), o.outcome.as_str().to_string(), o.detail.clone()])
            .collect();
        out += &table(&["passed over", "outcome", "why"], rows, &[]);
    }
    for n in &r.notes {
        out += &format!("note: {n}\n");
    }
    out
}

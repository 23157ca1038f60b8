//! `finops`: the operator's command line. Every subcommand finds the state table in `--table` or
//! `FINOPS_TABLE`, and AWS in the usual environment (`AWS_REGION`, credentials, and
//! `AWS_ENDPOINT_URL` for a local emulator), as the functions do. Tables on a terminal (coloured
//! there only), `--output json` for scripts; errors go to stderr with a non-zero exit.

mod commands;
mod doctor;
mod output;
mod split;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};

/// FinOps Autopilot's operator tool.
/// Where a snooze holds: every account and region unless named (ids such as cost-alert's
/// `TOTAL` are the same in every account: name the account for those).
#[derive(Debug, Clone, Args)]
pub struct Place {
    /// Only in this account (its 12-digit id).
    #[arg(long, value_parser = account_id)]
    pub account: Option<String>,
    /// Only in this region (eu-west-1, …).
    #[arg(long, value_parser = region_name)]
    pub region: Option<String>,
    /// The finding the resource was named by, when a finding id was given.
    #[arg(skip)]
    pub finding: Option<String>,
}

fn account_id(v: &str) -> Result<String, String> {
    let v = v.trim();
    if v.len() == 12 && v.bytes().all(|b| b.is_ascii_digit()) {
        Ok(v.to_string())
    } else {
        Err("an AWS account id is 12 digits".into())
    }
}

fn region_name(v: &str) -> Result<String, String> {
    let v = v.trim();
    let b = v.as_bytes();
    let shaped = b.first().is_some_and(u8::is_ascii_lowercase)
        && b.last().is_some_and(u8::is_ascii_digit)
        && v.contains('-')
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-');
    if shaped {
        Ok(v.to_string())
    } else {
        Err("a region is named like eu-west-1".into())
    }
}

/// A name for `--by`: one that cannot pass for an AWS identity or the "(as …)" the record adds.
fn person(v: &str) -> Result<String, String> {
    let v = v.trim();
    if v.is_empty() {
        Err("name the person (an email, a handle)".into())
    } else if v.contains(['(', ')']) || v.to_ascii_lowercase().starts_with("arn:") {
        Err("a name, not an ARN or parentheses: the record adds the caller's AWS identity itself".into())
    } else {
        Ok(v.to_string())
    }
}

/// A resource id to snooze or unsnooze: not blank, no control character, and no `@` (it
/// separates a snooze's place in its key: name the place with --account and --region).
fn resource_id(v: &str) -> Result<String, String> {
    let v = v.trim();
    if v.is_empty() {
        Err("name the resource (its id)".into())
    } else if v.contains('@') {
        Err("a resource id has no '@': name the place with --account and --region".into())
    } else if v.chars().any(char::is_control) {
        Err("a resource id has no control characters".into())
    } else {
        Ok(v.to_string())
    }
}

/// A finding id (`rule:account:region:resource`, as `finops audit`, `scan` and `approvals` show
/// it) given where a resource id is expected: its resource (a tag-compliance stop's `:stop`
/// dropped: the instance), where the finding is. A place named as well must be the finding's,
/// and a finding (one place) cannot go with `--all-places`.
fn resource_of_finding(resource: &mut String, place: &mut Place, all_places: bool) -> Result<(), String> {
    let Some(p) = finops_checks::CATALOG.parse_id(resource) else {
        return Ok(());
    };
    if all_places {
        return Err(format!(
            "{resource} is a finding in one place; --all-places lifts every place: give the resource id"
        ));
    }
    for (flag, named, found) in [
        ("--account", &place.account, p.account),
        ("--region", &place.region, p.region),
    ] {
        if named.as_deref().is_some_and(|n| n != found) {
            return Err(format!(
                "{resource} is a finding in {found}; {flag} names another place"
            ));
        }
    }
    let id = match p.resource_id.strip_suffix(":stop") {
        Some(instance) if p.rule == "tag-compliance" => instance,
        _ => p.resource_id,
    };
    let id = resource_id(id)?;
    let (account, region) = (account_id(p.account)?, region_name(p.region)?);
    place.finding = Some(resource.clone());
    *resource = id;
    place.account = Some(account);
    place.region = Some(region);
    Ok(())
}

#[derive(Debug, Parser)]
#[command(name = "finops", version, about = "FinOps Autopilot's operator tool: what it is doing, and how to steer it", long_about = None)]
pub struct Cli {
    /// The state table (the stack's StateTable output).
    #[arg(long, env = "FINOPS_TABLE", global = true)]
    pub table: Option<String>,
    /// How to print: readable tables, or JSON for scripts.
    #[arg(long, value_enum, default_value_t = Format::Table, global = true)]
    pub output: Format,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
}

/// The rules a laptop scan can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Rule {
    IdleEc2,
    EbsCleanup,
    S3Public,
    CostAlert,
    TagCompliance,
    Rightsizing,
}

impl Rule {
    pub fn name(self) -> &'static str {
        match self {
            Rule::IdleEc2 => "idle-ec2",
            Rule::EbsCleanup => "ebs-cleanup",
            Rule::S3Public => "s3-public",
            Rule::CostAlert => "cost-alert",
            Rule::TagCompliance => "tag-compliance",
            Rule::Rightsizing => "rightsizing",
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The emergency switch, open approvals by rule, snoozes, and each rule's last run.
    Status,
    /// Turn the emergency switch on: every function runs as dry-run, approvals execute nothing.
    Stop {
        /// Why (shown in every run's notes).
        #[arg(long)]
        reason: String,
        /// A name recorded beside the caller's AWS identity (never instead of it).
        #[arg(long, value_parser = person)]
        by: Option<String>,
    },
    /// Turn the emergency switch off: the functions obey their policy again.
    Resume {
        #[arg(long, default_value = "resumed from the command line")]
        reason: String,
        /// A name recorded beside the caller's AWS identity (never instead of it).
        #[arg(long, value_parser = person)]
        by: Option<String>,
    },
    /// Approval requests, latest deadline first.
    Approvals {
        /// Only those in this state: pending, approved, executed, rejected, expired, snoozed, …
        #[arg(long)]
        status: Option<String>,
    },
    /// The audit trail of a finding (its id) or of a resource (its id), oldest first.
    Audit { id: String },
    /// Leave a resource alone for N days: every rule skips it, and its open approvals close.
    Snooze {
        /// The resource id (instance, volume, bucket, …), or a finding id (as `finops audit`
        /// shows it): its resource, where the finding is.
        #[arg(value_parser = resource_id)]
        resource: String,
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=365))]
        days: u32,
        #[arg(long)]
        reason: String,
        /// A name recorded beside the caller's AWS identity (never instead of it).
        #[arg(long, value_parser = person)]
        by: Option<String>,
        #[command(flatten)]
        place: Place,
    },
    /// The snoozes in force.
    Snoozes {
        /// With those that have ended but are still on record.
        #[arg(long)]
        all: bool,
    },
    /// Lift a snooze before it ends.
    ///
    /// Without --account or --region, the snooze that holds everywhere; with them, the one
    /// there; with --all-places, every snooze of the resource.
    Unsnooze {
        #[arg(value_parser = resource_id)]
        resource: String,
        #[arg(long, default_value = "lifted from the command line")]
        reason: String,
        /// A name recorded beside the caller's AWS identity (never instead of it).
        #[arg(long, value_parser = person)]
        by: Option<String>,
        /// Every snooze of the resource, wherever it holds (ids such as cost-alert's `TOTAL`
        /// are snoozed by account: this lifts them all).
        #[arg(long, conflicts_with_all = ["account", "region"])]
        all_places: bool,
        #[command(flatten)]
        place: Place,
    },
    /// One dry-run scan of the current credentials' account and region: findings and dollars,
    /// nothing changed, nothing recorded, nothing sent.
    Scan {
        #[arg(value_enum)]
        rule: Rule,
        /// A policy file (default: the built-in defaults).
        #[arg(long)]
        policy: Option<PathBuf>,
    },
    /// The deployment's preflight and health check: what the stack needs in this account and
    /// region, each ok or what is wrong and the fix (exit 1 on any failure). Changes nothing.
    Doctor {
        /// The operator's secret (the stack's SecretArn parameter).
        #[arg(long, env = "FINOPS_SECRET_ID")]
        secret: Option<String>,
        /// The link secret (`<stack>/approval-links`).
        #[arg(long, env = "FINOPS_LINK_SECRET_ID")]
        link_secret: Option<String>,
        /// The report-link secret (`<stack>/report-links`).
        #[arg(long, env = "FINOPS_REPORT_LINK_SECRET_ID")]
        report_link_secret: Option<String>,
        /// The approval function's own secret (the stack's ApprovalSecretArn parameter).
        #[arg(long)]
        approval_secret: Option<String>,
        /// jira-sync's own secret (the stack's JiraSecretArn parameter).
        #[arg(long)]
        jira_secret: Option<String>,
        /// The stack is (to be) deployed with EnableConfigRules=true.
        #[arg(long)]
        config_rules: bool,
        /// The stack is (to be) deployed with ReserveConcurrency=true.
        #[arg(long)]
        reserve_concurrency: bool,
        /// The stack is (to be) deployed with SlackInteractive=true.
        #[arg(long)]
        slack_interactive: bool,
        /// Organisation mode's FanOutConcurrency (when the policy has an organization section).
        #[arg(long, default_value_t = 10)]
        fanout_concurrency: u32,
        /// Member accounts whose role is tried, at most.
        #[arg(long, default_value_t = 3)]
        member_sample: usize,
        /// The policy file (default: FINOPS_POLICY_FILE, FINOPS_POLICY, or the defaults).
        #[arg(long)]
        policy: Option<PathBuf>,
    },
    /// The stack's secrets.
    Secrets {
        #[command(subcommand)]
        command: SecretsCommand,
    },
    /// The savings summary of the last weeks.
    Report {
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=52))]
        weeks: u32,
    },
}

#[derive(Debug, Subcommand)]
pub enum SecretsCommand {
    /// From one secret read by every function to a secret per function: writes the approval
    /// function's (Slack's signing secret, the identity provider's client secret) and jira-sync's
    /// (the Jira token) and prints the parameters to deploy with; then, after the deploy,
    /// `--prune` leaves the old secret with Slack's delivery credentials only (slack-notify's).
    Split {
        /// The stack's SecretArn (the secret every credential is in today).
        #[arg(long, env = "FINOPS_SECRET_ID")]
        from: String,
        /// The approval function's secret (created if missing), e.g. `<stack>/approval`.
        #[arg(long)]
        approval: String,
        /// jira-sync's secret (created if missing), e.g. `<stack>/jira`; needed when the old
        /// secret holds Jira keys.
        #[arg(long)]
        jira: Option<String>,
        /// Remove the moved keys from the old secret (after deploying with the new parameters;
        /// only keys the new secrets hold are removed).
        #[arg(long)]
        prune: bool,
    },
}

fn main() -> ExitCode {
    let mut cli = Cli::parse();
    let all_places = matches!(&cli.command, Command::Unsnooze { all_places: true, .. });
    if let Command::Snooze { resource, place, .. } | Command::Unsnooze { resource, place, .. } = &mut cli.command {
        if let Err(e) = resource_of_finding(resource, place, all_places) {
            Cli::command().error(clap::error::ErrorKind::ArgumentConflict, e).exit();
        }
    }
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("finops: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Command::Secrets {
        command:
            SecretsCommand::Split {
                from,
                approval,
                jira,
                prune,
            },
    } = &cli.command
    {
        let split = split::Split {
            from,
            approval,
            jira: jira.as_deref(),
            prune: *prune,
        };
        return match runtime.block_on(async {
            let clients = remediation::aws::Clients::from_env().await.map_err(|e| e.to_string())?;
            split::run(&aws_sdk_secretsmanager::Client::new(&clients.config), &split).await
        }) {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("finops: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if let Command::Doctor { .. } = &cli.command {
        return match runtime.block_on(commands::doctor(&cli)) {
            Ok((text, true)) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Ok((text, false)) => {
                print!("{text}");
                ExitCode::FAILURE
            }
            Err(e) => {
                eprintln!("finops: {e}");
                ExitCode::FAILURE
            }
        };
    }
    match runtime.block_on(commands::run(&cli)) {
        Ok((text, false)) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        // A scan that printed its findings but could not assess everything: exit 3 (2 is a usage
        // error), so a script does not take a partial scan for a clean one.
        Ok((text, true)) => {
            print!("{text}");
            eprintln!("finops: some resources could not be assessed (see the failed outcomes and notes)");
            ExitCode::from(3)
        }
        Err(e) => {
            eprintln!("finops: {e}");
            ExitCode::FAILURE
        }
    }
}

//! `finops`: the operator's command line. Every subcommand finds the state table in `--table` or
//! `FINOPS_TABLE`, and AWS in the usual environment (`AWS_REGION`, credentials, and
//! `AWS_ENDPOINT_URL` for a local emulator), as the functions do. Tables on a terminal (coloured
//! there only), `--output json` for scripts; errors go to stderr with a non-zero exit.

mod commands;
mod output;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// FinOps Autopilot's operator tool.
/// Where a snooze holds: every account and region unless named (ids such as cost-alert's
/// `TOTAL` are the same in every account: name the account for those).
#[derive(Debug, Clone, Args)]
pub struct Place {
    /// Only in this account.
    #[arg(long)]
    pub account: Option<String>,
    /// Only in this region.
    #[arg(long)]
    pub region: Option<String>,
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
        /// Who is stopping it (default: the caller's AWS identity).
        #[arg(long)]
        by: Option<String>,
    },
    /// Turn the emergency switch off: the functions obey their policy again.
    Resume {
        #[arg(long, default_value = "resumed from the command line")]
        reason: String,
        #[arg(long)]
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
        /// The resource id (instance, volume, bucket, …).
        resource: String,
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=365))]
        days: u32,
        #[arg(long)]
        reason: String,
        #[arg(long)]
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
    Unsnooze {
        resource: String,
        #[arg(long, default_value = "lifted from the command line")]
        reason: String,
        #[arg(long)]
        by: Option<String>,
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
    /// The savings summary of the last weeks.
    Report {
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=52))]
        weeks: u32,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("finops: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
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

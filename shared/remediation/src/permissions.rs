//! What each function may do in IAM terms, stated once from the code's own declarations: each
//! scan's reads, each action's [`ActionDeclaration`](crate::act::ActionDeclaration) (and, for the
//! approval function, each rollback's), the state table, the topic and the secret. The SAM
//! template's policies are checked against this, no more and no less.

use std::collections::BTreeSet;

use crate::act::{block_public_access, snapshot_and_delete, stop_instance, ActionDeclaration};

/// Which resource an IAM action is granted on in the template.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    /// The state table (and its indexes).
    Table,
    /// The notification topic.
    Topic,
    /// The topic's customer managed KMS key (publishing to an encrypted topic).
    TopicKey,
    /// The secret.
    Secret,
    /// The link secret (link-signing key and approval URL).
    LinkSecret,
    /// The report-link secret (the weekly report links' key and the approval URL).
    ReportLinkSecret,
    /// The savings reports' bucket (its objects).
    ReportBucket,
    /// The fan-out's items and results bucket.
    ResultsBucket,
    /// Resources of the account and region (EC2, S3, Config, CloudWatch, Cost Explorer).
    Account,
}

/// The idle scan's reads.
pub const IDLE_SCAN: &[&str] = &[
    "ec2:DescribeInstances",
    "ec2:DescribeInstanceTypes",
    "cloudwatch:GetMetricData",
];
/// The unattached-volume scan's reads.
pub const EBS_SCAN: &[&str] = &["ec2:DescribeVolumes"];
/// The public-bucket scan's reads (ListBuckets is authorised as ListAllMyBuckets).
pub const S3_SCAN: &[&str] = &[
    "s3:ListAllMyBuckets",
    "s3:GetBucketAcl",
    "s3:GetBucketPolicy",
    "s3:GetBucketPublicAccessBlock",
    "s3:GetBucketTagging",
    "s3:GetBucketWebsite",
    "s3:GetAccountPublicAccessBlock",
];
/// Rightsizing's reads: the idle scan's, and the model it asks (Converse is authorised as InvokeModel).
pub const RIGHTSIZING_SCAN: &[&str] = &[
    "ec2:DescribeInstances",
    "ec2:DescribeInstanceTypes",
    "cloudwatch:GetMetricData",
    "bedrock:InvokeModel",
];
/// The regional prices of the scans that put a dollar figure on an instance or a volume.
pub const PRICE_LIST: &[&str] = &["pricing:GetProducts"];
/// The cost reads.
pub const COST_SCAN: &[&str] = &["ce:GetCostAndUsage", "ce:GetCostForecast"];
/// The tag sweep and the Config rule: reads, evaluations, and the `finops:untagged-since` mark.
pub const TAG_SCAN: &[&str] = &[
    "ec2:DescribeInstances",
    "ec2:DescribeInstanceTypes",
    "ec2:DescribeVolumes",
    "s3:ListAllMyBuckets",
    "s3:GetBucketTagging",
    "config:GetResourceConfigHistory",
    "config:PutEvaluations",
    "ec2:CreateTags",
    "ec2:DeleteTags",
];
/// What a detector does in the state table (approvals, actions, sightings, alerts, the switch).
/// A transaction is authorised as its items' own PutItem, UpdateItem, DeleteItem and
/// ConditionCheckItem: `dynamodb:TransactWriteItems` is no IAM action
/// (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/transaction-apis-iam.html).
pub const DETECTOR_STATE: &[&str] = &[
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:Query",
];
/// The approval function's state: a detector's, plus the expiry sweep's Scan.
pub const APPROVAL_STATE: &[&str] = &[
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:Query",
    "dynamodb:Scan",
];
/// slack-notify's state: claiming, reading (a redelivery finds its claim), marking and releasing posts.
pub const NOTIFY_STATE: &[&str] = &[
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
];
/// jira-sync's state: the `TICKET#` items.
pub const TICKET_STATE: &[&str] = &[
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
];
/// savings-report's reads of the ledger and the compliance figures.
pub const REPORT_STATE: &[&str] = &["dynamodb:Query"];
/// rightsizing's state: the price cache (`PRICES#<region>`) and its run records (read and
/// written), and the snoozes (read only, in a statement of their own; [`OPERATOR_KEYS`] are
/// denied to it as well).
pub const PRICE_CACHE_STATE: &[&str] = &["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query"];
/// The state-table partitions only the approval function and the operator may write: the
/// emergency switch and the snoozes (every other function is denied writing them).
pub const OPERATOR_KEYS: &[&str] = &["CONTROL", "SNOOZES"];
/// savings-report's writes of the HTML (its link is served by the approval function, which reads it).
pub const REPORT_OBJECTS: &[&str] = &["s3:PutObject"];
/// The approval function's read of a report a signed report link names.
pub const REPORT_READ: &[&str] = &["s3:GetObject"];
/// Publishing (PublishBatch is authorised as Publish).
pub const PUBLISH: &[&str] = &["sns:Publish"];
/// Publishing to a topic encrypted with a customer managed key: the publisher needs the key
/// (https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html).
pub const PUBLISH_KEY: &[&str] = &["kms:GenerateDataKey", "kms:Decrypt"];
/// The fan-out's targets: the organisation's accounts and the enabled regions.
pub const FANOUT_TARGETS: &[&str] = &[
    "organizations:ListAccounts",
    "organizations:ListAccountsForParent",
    "organizations:ListOrganizationalUnitsForParent",
    "ec2:DescribeRegions",
];
/// The fan-out's items (written) and the Map's results (listed and read).
pub const FANOUT_OBJECTS: &[&str] = &["s3:ListBucket", "s3:PutObject", "s3:GetObject"];
/// Reading the secret.
pub const SECRET: &[&str] = &["secretsmanager:GetSecretValue"];

/// The functions that mint or verify approval links: the only readers of the link secret.
pub const LINK_FUNCTIONS: &[&str] = &["idle-ec2", "ebs-cleanup", "s3-public", "tag-compliance", "approval"];

/// The functions that sign (savings-report) or check (approval) the weekly report's links: the
/// only readers of the report-link secret.
pub const REPORT_LINK_FUNCTIONS: &[&str] = &["savings-report", "approval"];

/// The state-table keys a notifying function may write (`dynamodb:LeadingKeys`); `None`: the
/// function's writes are not limited by key (but no function other than the approval function
/// may write the emergency switch, `CONTROL`).
pub fn writable_keys(function: &str) -> Option<&'static [&'static str]> {
    match function {
        "slack-notify" => Some(&["POST#*"]),
        "jira-sync" => Some(&["TICKET#*"]),
        "rightsizing" => Some(&["PRICES#*", "RUN#*"]),
        _ => None,
    }
}

/// What the stack reserves with `ReserveConcurrency=true` (each function's
/// `ReservedConcurrentExecutions` in the template, added up): in one account, or in organisation
/// mode with `FanOutConcurrency` (five fanned-out functions reserve it each). The template test
/// checks this against the template's own figures.
pub fn reserved_concurrency(fanout_concurrency: Option<u32>) -> u32 {
    // approval 20, slack-notify 5, jira-sync 2, cost-alert 1, savings-report 1.
    const FIXED: u32 = 29;
    match fanout_concurrency {
        // org-fanout 2, and each fanned-out function the fan-out's concurrency.
        Some(n) => FIXED + 2 + 5 * n,
        // idle-ec2 1, ebs-cleanup 1, s3-public 2, tag-compliance 5, rightsizing 1.
        None => FIXED + 10,
    }
}

/// The functions this workspace deploys.
pub const FUNCTIONS: &[&str] = &[
    "idle-ec2",
    "ebs-cleanup",
    "s3-public",
    "cost-alert",
    "tag-compliance",
    "approval",
    "slack-notify",
    "jira-sync",
    "savings-report",
    "rightsizing",
    "org-fanout",
];

/// The functions that scan or act in member accounts through the member role (and may assume it).
pub const MEMBER_FUNCTIONS: &[&str] = &[
    "idle-ec2",
    "ebs-cleanup",
    "s3-public",
    "tag-compliance",
    "rightsizing",
    "approval",
];

/// Actions those functions take with their own credentials even for a member's item: the model
/// that explains a recommendation and the Price List API are the hub's.
const HUB_ONLY: &[&str] = &["bedrock:InvokeModel", "pricing:GetProducts"];

/// What the member role (`infra/member-role.yaml`) grants: every account-level action of the
/// functions that reach member accounts, and nothing else.
pub fn member_role() -> BTreeSet<&'static str> {
    MEMBER_FUNCTIONS
        .iter()
        .filter_map(|f| for_function(f))
        .flat_map(|grants| grants.into_iter())
        .filter(|(scope, action)| *scope == Scope::Account && !HUB_ONLY.contains(action))
        .map(|(_, action)| action)
        .collect()
}

fn action(d: &ActionDeclaration, rollback: bool) -> Vec<&'static str> {
    let mut v = d.permissions.to_vec();
    if rollback {
        v.extend_from_slice(d.rollback_permissions);
    }
    v
}

/// The IAM actions `function` needs, by the resource they are granted on.
pub fn for_function(function: &str) -> Option<BTreeSet<(Scope, &'static str)>> {
    let account: Vec<&'static str> = match function {
        "idle-ec2" => [
            IDLE_SCAN.to_vec(),
            PRICE_LIST.to_vec(),
            action(&stop_instance::DECLARATION, false),
        ]
        .concat(),
        "ebs-cleanup" => [
            EBS_SCAN.to_vec(),
            PRICE_LIST.to_vec(),
            action(&snapshot_and_delete::DECLARATION, false),
        ]
        .concat(),
        "s3-public" => [S3_SCAN.to_vec(), action(&block_public_access::DECLARATION, false)].concat(),
        "cost-alert" => COST_SCAN.to_vec(),
        "rightsizing" => [RIGHTSIZING_SCAN.to_vec(), PRICE_LIST.to_vec()].concat(),
        "tag-compliance" => [TAG_SCAN.to_vec(), action(&stop_instance::DECLARATION, false)].concat(),
        "approval" => [
            action(&stop_instance::DECLARATION, true),
            action(&snapshot_and_delete::DECLARATION, true),
            action(&block_public_access::DECLARATION, true),
        ]
        .concat(),
        "org-fanout" => FANOUT_TARGETS.to_vec(),
        "slack-notify" | "jira-sync" | "savings-report" => vec![],
        _ => return None,
    };
    let (state, publish): (&[&'static str], bool) = match function {
        "approval" => (APPROVAL_STATE, true),
        "slack-notify" => (NOTIFY_STATE, false),
        "jira-sync" => (TICKET_STATE, false),
        "savings-report" => (REPORT_STATE, true),
        // Reads the results, publishes the digest: no state.
        "org-fanout" => (&[], true),
        // Recommends only: no state but the price cache.
        "rightsizing" => (PRICE_CACHE_STATE, true),
        _ => (DETECTOR_STATE, true),
    };
    let mut out: BTreeSet<(Scope, &'static str)> = account.into_iter().map(|a| (Scope::Account, a)).collect();
    out.extend(state.iter().map(|a| (Scope::Table, *a)));
    if publish {
        out.extend(PUBLISH.iter().map(|a| (Scope::Topic, *a)));
        out.extend(PUBLISH_KEY.iter().map(|a| (Scope::TopicKey, *a)));
    }
    out.extend(SECRET.iter().map(|a| (Scope::Secret, *a)));
    if LINK_FUNCTIONS.contains(&function) {
        out.extend(SECRET.iter().map(|a| (Scope::LinkSecret, *a)));
    }
    if REPORT_LINK_FUNCTIONS.contains(&function) {
        out.extend(SECRET.iter().map(|a| (Scope::ReportLinkSecret, *a)));
    }
    if function == "savings-report" {
        out.extend(REPORT_OBJECTS.iter().map(|a| (Scope::ReportBucket, *a)));
    }
    if function == "approval" {
        out.extend(REPORT_READ.iter().map(|a| (Scope::ReportBucket, *a)));
    }
    if function == "org-fanout" {
        out.extend(FANOUT_OBJECTS.iter().map(|a| (Scope::ResultsBucket, *a)));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_function_has_a_declaration_and_destructive_actions_stay_where_they_belong() {
        for f in FUNCTIONS {
            assert!(for_function(f).is_some(), "{f}");
        }
        let has = |f: &str, a: &str| for_function(f).unwrap().iter().any(|(_, x)| *x == a);
        assert!(has("idle-ec2", "ec2:StopInstances") && !has("idle-ec2", "ec2:StartInstances"));
        assert!(has("approval", "ec2:StartInstances") && has("approval", "ec2:CreateVolume"));
        assert!(!has("cost-alert", "ec2:StopInstances") && !has("slack-notify", "sns:Publish"));
        assert!(!has("ebs-cleanup", "ec2:StopInstances") && has("ebs-cleanup", "ec2:DeleteVolume"));
        assert!(for_function("nope").is_none());
    }
}

//! The local-AWS harness: moto server on a free loopback port, reached through the real SDK
//! clients, plus seeders that build demo and test accounts in it.

pub mod approvals;
pub mod httpserver;
pub mod infra;
pub mod load;
pub mod local;
pub mod midway;
pub mod moto;
pub mod oidc;
pub mod org;
pub mod seed;

pub use moto::{Moto, Stack};

use remediation::approval::LinkSigner;
use remediation::config::Deps;
use remediation::notify::SnsPublisher;
use remediation::policy::Policy;
use remediation::state::DynamoState;

/// `function`'s dependencies as `main` builds them, pointed at `moto` and running as that
/// function's role in the template (its requests authorised as AWS would: see
/// [`Moto::sdk_config_as`]): the state table and topic when named, signed links, Config TestMode
/// on (moto accepts PutEvaluations only so).
pub async fn deps(moto: &Moto, function: &str, policy: Policy, table: Option<&str>, topic: Option<&str>) -> Deps {
    let mut stack = moto::Stack::with(table, topic);
    if policy.organization.is_some() {
        stack.organisation(moto).await;
    }
    let clients = moto.clients_as(function, &stack).await;
    Deps {
        state: table.map(|t| DynamoState::new(clients.dynamodb.clone(), t)),
        publisher: topic.map(|t| SnsPublisher::new(clients.sns.clone(), t)),
        links: LinkSigner::new(vec![42u8; 32], "http://127.0.0.1:9/approval").ok(),
        report_links: LinkSigner::new(vec![43u8; 32], "http://127.0.0.1:9/approval").ok(),
        metrics_concurrency: 4,
        config_test_mode: true,
        clients,
        policy,
        policy_source: "test".into(),
        pricing: None,
        secrets: Default::default(),
    }
}

/// A snooze of `resource` everywhere, granted at `at` until `until` by `by` via `via`.
pub fn snooze(
    resource: &str,
    by: &str,
    via: &str,
    reason: &str,
    at: chrono::DateTime<chrono::Utc>,
    until: chrono::DateTime<chrono::Utc>,
) -> remediation::state::Snooze {
    remediation::state::Snooze {
        resource_id: resource.into(),
        until,
        by: by.into(),
        via: via.into(),
        reason: reason.into(),
        at,
        finding_id: None,
        account: None,
        region: None,
        lifted_by: None,
        lifted_at: None,
    }
}

/// The `finops` binary of this build (beside the test binaries: `cargo test --workspace` builds
/// it for the CLI's own tests).
pub fn finops_bin() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    // target/debug/deps/<test> → target/debug/finops
    let dir = exe.parent().and_then(|d| d.parent()).map(std::path::Path::to_path_buf);
    dir.unwrap_or_else(|| moto::workspace_root().join("target/debug"))
        .join("finops")
}

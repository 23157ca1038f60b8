//! AWS Organizations (the accounts and OUs) and EC2's region list: what the fan-out's targets
//! step reads ([`Directory`]).

use crate::error::SdkErrorExt as _;
use aws_sdk_organizations::types::Account as SdkAccount;

use crate::error::{Error, Result};

/// One account as Organizations lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: String,
    pub name: String,
    /// `ACTIVE`, `SUSPENDED`, `PENDING_CLOSURE` (the older `Status`).
    pub status: String,
}

/// What the targets step reads: the organisation's accounts and the hub's enabled regions.
#[async_trait::async_trait]
pub trait Directory: Send + Sync {
    /// Every account of the organisation.
    async fn accounts(&self) -> Result<Vec<Account>>;
    /// The accounts directly under an OU or root.
    async fn accounts_under(&self, parent: &str) -> Result<Vec<Account>>;
    /// The OUs directly under an OU or root.
    async fn child_ous(&self, parent: &str) -> Result<Vec<String>>;
    /// The regions enabled in the hub's account.
    async fn enabled_regions(&self) -> Result<Vec<String>>;
}

/// The organisation as the hub (management or delegated administrator account) sees it.
pub struct Organization {
    client: aws_sdk_organizations::Client,
    ec2: aws_sdk_ec2::Client,
}

impl Organization {
    /// Organizations through `clients`' configuration (Organizations answers in its home region
    /// whatever the client's region) and `clients`' EC2 for the region list.
    pub fn new(clients: &crate::aws::Clients) -> Organization {
        Organization {
            client: aws_sdk_organizations::Client::from_conf(
                aws_sdk_organizations::config::Builder::from(&clients.config)
                    .interceptor(clients.calls.clone())
                    .retry_config(crate::aws::patience::STS.retry())
                    .timeout_config(crate::aws::patience::STS.timeouts())
                    .build(),
            ),
            ec2: clients.ec2.clone(),
        }
    }
}

impl Organization {
    /// The organisation's management account (DescribeOrganization, which any account of the
    /// organisation may call).
    pub async fn management_account(&self) -> Result<String> {
        let out = self
            .client
            .describe_organization()
            .send()
            .await
            .map_err(|e| Error::aws("organizations", "DescribeOrganization", e))?;
        out.organization()
            .and_then(|o| o.master_account_id())
            .map(str::to_string)
            .ok_or_else(|| Error::unexpected("organizations", "DescribeOrganization", "no management account id"))
    }
}

fn convert(a: &SdkAccount) -> Option<Account> {
    let id = a.id()?.to_string();
    // `State` replaces `Status` (which AWS retires in 2026); read either.
    let status = a
        .state()
        .map(|s| s.as_str().to_string())
        .or_else(|| a.status().map(|s| s.as_str().to_string()))
        .unwrap_or_else(|| "UNKNOWN".into());
    Some(Account {
        id,
        name: a.name().unwrap_or_default().to_string(),
        status,
    })
}

#[async_trait::async_trait]
impl Directory for Organization {
    async fn accounts(&self) -> Result<Vec<Account>> {
        let mut out = Vec::new();
        let mut pages = self.client.list_accounts().into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| Error::aws("organizations", "ListAccounts", e))?;
            out.extend(page.accounts().iter().filter_map(convert));
        }
        Ok(out)
    }

    async fn accounts_under(&self, parent: &str) -> Result<Vec<Account>> {
        let mut out = Vec::new();
        let mut pages = self
            .client
            .list_accounts_for_parent()
            .parent_id(parent)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| Error::aws("organizations", "ListAccountsForParent", e))?;
            out.extend(page.accounts().iter().filter_map(convert));
        }
        Ok(out)
    }

    async fn child_ous(&self, parent: &str) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let mut pages = self
            .client
            .list_organizational_units_for_parent()
            .parent_id(parent)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| Error::aws("organizations", "ListOrganizationalUnitsForParent", e))?;
            out.extend(
                page.organizational_units()
                    .iter()
                    .filter_map(|ou| ou.id().map(str::to_string)),
            );
        }
        Ok(out)
    }

    async fn enabled_regions(&self) -> Result<Vec<String>> {
        // Without AllRegions, DescribeRegions lists only the regions enabled for the account.
        let out = self
            .ec2
            .describe_regions()
            .send()
            .await
            .map_err(|e| Error::aws("ec2", "DescribeRegions", e))?;
        Ok(out
            .regions()
            .iter()
            .filter_map(|r| r.region_name().map(str::to_string))
            .collect())
    }
}

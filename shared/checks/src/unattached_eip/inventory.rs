//! The addresses of the account and region, as the check judges them (DescribeAddresses: one
//! call, not paginated).

use async_trait::async_trait;

use remediation::error::{Error, Result, SdkErrorExt as _};

use super::detect::ElasticIp;

/// Where the check reads the addresses.
#[async_trait]
pub trait AddressApi: Send + Sync {
    /// Every Elastic IP address of the account and region, with its tags.
    async fn addresses(&self) -> Result<Vec<ElasticIp>>;
}

/// The addresses through EC2.
pub struct Addresses {
    pub client: aws_sdk_ec2::Client,
    pub account: String,
    pub region: String,
}

#[async_trait]
impl AddressApi for Addresses {
    async fn addresses(&self) -> Result<Vec<ElasticIp>> {
        let out = self
            .client
            .describe_addresses()
            .send()
            .await
            .map_err(|e| Error::aws("ec2", "DescribeAddresses", e))?;
        let text = |s: Option<&str>| s.filter(|s| !s.is_empty()).map(str::to_string);
        Ok(out
            .addresses()
            .iter()
            // Every VPC address has an allocation id (EC2-Classic, which had none, is retired).
            .filter_map(|a| {
                Some(ElasticIp {
                    allocation_id: text(a.allocation_id())?,
                    public_ip: a.public_ip().unwrap_or_default().to_string(),
                    association_id: text(a.association_id()),
                    instance_id: text(a.instance_id()),
                    network_interface_id: text(a.network_interface_id()),
                    tags: a
                        .tags()
                        .iter()
                        .filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or_default().to_string())))
                        .collect(),
                    account: self.account.clone(),
                    region: self.region.clone(),
                })
            })
            .collect())
    }
}

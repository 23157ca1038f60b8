//! EC2: the instance inventory, the guarded re-check, stop and start.

use async_trait::async_trait;
use aws_sdk_ec2::types::{Filter, Instance, InstanceStateName};

use super::to_chrono;
use crate::error::{Error, Result};
use crate::model::{Ec2Instance, Tags};

/// What the idle-ec2 flow needs of EC2.
#[async_trait]
pub trait InstanceApi: Send + Sync {
    /// Every running instance in the region, with tags.
    async fn running_instances(&self) -> Result<Vec<Ec2Instance>>;
    /// The current view of these instances (any state); ids AWS no longer knows are simply absent.
    async fn describe(&self, ids: &[String]) -> Result<Vec<Ec2Instance>>;
    /// Stops an instance; returns the state AWS reports afterwards.
    async fn stop(&self, id: &str) -> Result<String>;
    /// Starts an instance; returns the state AWS reports afterwards.
    async fn start(&self, id: &str) -> Result<String>;
}

/// The SDK adapter.
#[derive(Debug, Clone)]
pub struct Ec2 {
    client: aws_sdk_ec2::Client,
    region: String,
}

impl Ec2 {
    /// Wraps a client that talks to `region`.
    pub fn new(client: aws_sdk_ec2::Client, region: impl Into<String>) -> Self {
        Ec2 {
            client,
            region: region.into(),
        }
    }

    async fn describe_filtered(&self, filters: Vec<Filter>) -> Result<Vec<Ec2Instance>> {
        let mut out = Vec::new();
        // 1,000 is the API's largest page (moto defaults to 100 otherwise).
        let mut pages = self
            .client
            .describe_instances()
            .set_filters(Some(filters))
            .max_results(1000)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| Error::aws("ec2", "DescribeInstances", e))?;
            for reservation in page.reservations() {
                let account = reservation.owner_id().unwrap_or_default();
                for instance in reservation.instances() {
                    out.push(convert(instance, account, &self.region)?);
                }
            }
        }
        Ok(out)
    }
}

fn convert(i: &Instance, account: &str, region: &str) -> Result<Ec2Instance> {
    let id = i
        .instance_id()
        .ok_or_else(|| Error::unexpected("ec2", "DescribeInstances", "an instance without an InstanceId"))?;
    let tags: Tags = i
        .tags()
        .iter()
        .filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or_default().to_string())))
        .collect();
    Ok(Ec2Instance {
        id: id.to_string(),
        instance_type: i.instance_type().map(|t| t.as_str().to_string()).unwrap_or_default(),
        state: i
            .state()
            .and_then(|s| s.name())
            .map(|n| n.as_str().to_string())
            .unwrap_or_else(|| "unknown".into()),
        account: account.to_string(),
        region: region.to_string(),
        lifecycle: i.instance_lifecycle().map(|l| l.as_str().to_string()),
        root_device_type: i.root_device_type().map(|r| r.as_str().to_string()).unwrap_or_default(),
        launch_time: i.launch_time().and_then(to_chrono),
        tags,
    })
}

fn filter(name: &str, values: impl IntoIterator<Item = String>) -> Filter {
    Filter::builder()
        .name(name)
        .set_values(Some(values.into_iter().collect()))
        .build()
}

#[async_trait]
impl InstanceApi for Ec2 {
    async fn running_instances(&self) -> Result<Vec<Ec2Instance>> {
        self.describe_filtered(vec![filter("instance-state-name", ["running".to_string()])])
            .await
    }

    async fn describe(&self, ids: &[String]) -> Result<Vec<Ec2Instance>> {
        // A filter (not InstanceIds) so that one vanished instance does not fail the whole call.
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(200) {
            out.extend(
                self.describe_filtered(vec![filter("instance-id", chunk.iter().cloned())])
                    .await?,
            );
        }
        Ok(out)
    }

    async fn stop(&self, id: &str) -> Result<String> {
        let out = self
            .client
            .stop_instances()
            .instance_ids(id)
            .send()
            .await
            .map_err(|e| Error::aws("ec2", "StopInstances", e))?;
        Ok(state_after(
            out.stopping_instances().first().and_then(|c| c.current_state()),
        ))
    }

    async fn start(&self, id: &str) -> Result<String> {
        let out = self
            .client
            .start_instances()
            .instance_ids(id)
            .send()
            .await
            .map_err(|e| Error::aws("ec2", "StartInstances", e))?;
        Ok(state_after(
            out.starting_instances().first().and_then(|c| c.current_state()),
        ))
    }
}

fn state_after(state: Option<&aws_sdk_ec2::types::InstanceState>) -> String {
    state
        .and_then(|s| s.name())
        .map(InstanceStateName::as_str)
        .unwrap_or("unknown")
        .to_string()
}

//! EC2: the instance inventory, the guarded re-check, stop and start.

use crate::error::SdkErrorExt as _;
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use aws_sdk_ec2::types::{Filter, Instance, InstanceStateName, InstanceType, ResourceType, TagSpecification};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::to_chrono;
use crate::error::{Error, Result};
use crate::model::{EbsVolume, Ec2Instance, Tags};

/// What the idle-ec2 flow needs of EC2.
#[async_trait]
pub trait InstanceApi: Send + Sync {
    /// Every running instance in the region, with tags.
    async fn running_instances(&self) -> Result<Vec<Ec2Instance>>;
    /// The current view of these instances (any state); ids AWS no longer knows are simply absent.
    async fn describe(&self, ids: &[String]) -> Result<Vec<Ec2Instance>>;
    /// Stops an instance (hibernating it when `hibernate`); returns the state AWS reports afterwards.
    async fn stop(&self, id: &str, hibernate: bool) -> Result<String>;
    /// Starts an instance; returns the state AWS reports afterwards.
    async fn start(&self, id: &str) -> Result<String>;
    /// Every instance that is not terminated (pending, running, stopping, stopped).
    async fn live_instances(&self) -> Result<Vec<Ec2Instance>>;
    /// Adds (or overwrites) one tag on an instance or volume.
    async fn tag_resource(&self, id: &str, key: &str, value: &str) -> Result<()>;
    /// Removes one tag from an instance or volume.
    async fn untag_resource(&self, id: &str, key: &str) -> Result<()>;
}

/// The SDK adapter.
#[derive(Debug, Clone)]
pub struct Ec2 {
    client: aws_sdk_ec2::Client,
    region: String,
    /// The account id, for volumes (DescribeVolumes carries none); learnt from instances or set.
    account: String,
    /// Whether each instance type has instance storage, as DescribeInstanceTypes said (a type's
    /// storage never changes, so it is asked once per type for the adapter's life).
    instance_storage: Arc<Mutex<HashMap<String, bool>>>,
}

impl Ec2 {
    /// Wraps a client that talks to `region`.
    pub fn new(client: aws_sdk_ec2::Client, region: impl Into<String>) -> Self {
        Ec2 {
            client,
            region: region.into(),
            account: String::new(),
            instance_storage: Arc::default(),
        }
    }

    fn storage_cache(&self) -> std::sync::MutexGuard<'_, HashMap<String, bool>> {
        match self.instance_storage.lock() {
            Ok(map) => map,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Sets each instance's `instance_store` from DescribeInstanceTypes (`InstanceStorageSupported`),
    /// one call per 100 types not asked before. A failed call leaves those types unknown (`None`),
    /// which the guards treat as "may have instance storage": nothing is stopped on a guess.
    async fn fill_instance_store(&self, instances: &mut [Ec2Instance]) {
        let missing: Vec<String> = {
            let known = self.storage_cache();
            instances
                .iter()
                .map(|i| i.instance_type.clone())
                .filter(|t| !t.is_empty() && !known.contains_key(t))
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect()
        };
        for chunk in missing.chunks(100) {
            let asked = self
                .client
                .describe_instance_types()
                .set_instance_types(Some(chunk.iter().map(|t| InstanceType::from(t.as_str())).collect()))
                .send()
                .await;
            match asked {
                Ok(out) => {
                    let mut known = self.storage_cache();
                    for t in out.instance_types() {
                        if let (Some(name), Some(supported)) = (t.instance_type(), t.instance_storage_supported()) {
                            known.insert(name.as_str().to_string(), supported);
                        }
                    }
                }
                Err(e) => {
                    let e = Error::aws("ec2", "DescribeInstanceTypes", e);
                    tracing::warn!(error = %e, types = ?chunk, "instance storage unknown for these types");
                }
            }
        }
        let known = self.storage_cache();
        for i in instances.iter_mut() {
            i.instance_store = known.get(&i.instance_type).copied();
        }
    }

    /// Sets the account id reported on volumes.
    pub fn with_account(mut self, account: impl Into<String>) -> Self {
        self.account = account.into();
        self
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
        self.fill_instance_store(&mut out).await;
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
        instance_store: None,
        tags,
        hibernation: i.hibernation_options().and_then(|h| h.configured()).unwrap_or(false),
        public_ipv4: i.public_ip_address().map(|address| crate::model::PublicIpv4 {
            address: address.to_string(),
            // AWS names the owner of an Elastic IP; an auto-assigned address is "amazon"'s.
            elastic: i.network_interfaces().iter().any(|n| {
                n.association()
                    .is_some_and(|a| a.public_ip() == Some(address) && a.ip_owner_id().is_some_and(|o| o != "amazon"))
            }),
        }),
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

    async fn live_instances(&self) -> Result<Vec<Ec2Instance>> {
        let states = ["pending", "running", "stopping", "stopped"].map(String::from);
        self.describe_filtered(vec![filter("instance-state-name", states)])
            .await
    }

    async fn tag_resource(&self, id: &str, key: &str, value: &str) -> Result<()> {
        self.client
            .create_tags()
            .resources(id)
            .tags(aws_sdk_ec2::types::Tag::builder().key(key).value(value).build())
            .send()
            .await
            .map_err(|e| Error::aws("ec2", "CreateTags", e))?;
        Ok(())
    }

    async fn untag_resource(&self, id: &str, key: &str) -> Result<()> {
        self.client
            .delete_tags()
            .resources(id)
            .tags(aws_sdk_ec2::types::Tag::builder().key(key).build())
            .send()
            .await
            .map_err(|e| Error::aws("ec2", "DeleteTags", e))?;
        Ok(())
    }

    async fn stop(&self, id: &str, hibernate: bool) -> Result<String> {
        let out = self
            .client
            .stop_instances()
            .instance_ids(id)
            .set_hibernate(hibernate.then_some(true))
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

/// What the ebs-cleanup flow needs of EC2.
#[async_trait]
pub trait VolumeApi: Send + Sync {
    /// Every unattached (`available`) volume in the region, with tags.
    async fn available_volumes(&self) -> Result<Vec<EbsVolume>>;
    /// Every volume in the region, with tags.
    async fn all_volumes(&self) -> Result<Vec<EbsVolume>>;
    /// The current view of these volumes; ids AWS no longer knows are absent.
    async fn describe_volumes(&self, ids: &[String]) -> Result<Vec<EbsVolume>>;
    /// Starts a snapshot of `volume_id` with `tags`; returns its id. One attempt, never retried
    /// inside: an error may follow a snapshot AWS did start.
    async fn create_snapshot(&self, volume_id: &str, description: &str, tags: &Tags) -> Result<String>;
    /// Snapshots of this account carrying `tag_key` = `tag_value`, as (id, state, start time), newest first.
    async fn snapshots_tagged(
        &self,
        tag_key: &str,
        tag_value: &str,
    ) -> Result<Vec<(String, String, Option<DateTime<Utc>>)>>;
    /// Deletes a volume.
    async fn delete_volume(&self, volume_id: &str) -> Result<()>;
    /// Creates a volume from a snapshot; returns the new volume's id. One attempt, with a client
    /// token derived from the snapshot (AWS answers a repeat with the same volume).
    async fn create_volume(&self, spec: &VolumeSpec, snapshot_id: &str) -> Result<String>;
    /// Volumes carrying `tag_key` = `tag_value`.
    async fn volumes_tagged(&self, tag_key: &str, tag_value: &str) -> Result<Vec<EbsVolume>>;
}

/// Everything needed to recreate a volume as it was.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VolumeSpec {
    pub source_volume_id: String,
    pub availability_zone: String,
    pub volume_type: String,
    pub size_gib: i32,
    pub iops: Option<i32>,
    pub throughput: Option<i32>,
    pub encrypted: bool,
    pub kms_key_id: Option<String>,
    pub tags: Tags,
}

impl VolumeSpec {
    /// The spec of an existing volume.
    pub fn of(v: &EbsVolume) -> VolumeSpec {
        VolumeSpec {
            source_volume_id: v.id.clone(),
            availability_zone: v.availability_zone.clone(),
            volume_type: v.volume_type.clone(),
            size_gib: v.size_gib,
            iops: v.iops,
            throughput: v.throughput,
            encrypted: v.encrypted,
            kms_key_id: v.kms_key_id.clone(),
            tags: v.tags.clone(),
        }
    }
}

fn convert_volume(v: &aws_sdk_ec2::types::Volume, account: &str, region: &str) -> Result<EbsVolume> {
    let id = v
        .volume_id()
        .ok_or_else(|| Error::unexpected("ec2", "DescribeVolumes", "a volume without a VolumeId"))?;
    Ok(EbsVolume {
        id: id.to_string(),
        volume_type: v.volume_type().map(|t| t.as_str().to_string()).unwrap_or_default(),
        size_gib: v.size().unwrap_or(0),
        iops: v.iops(),
        throughput: v.throughput(),
        availability_zone: v.availability_zone().unwrap_or_default().to_string(),
        state: v
            .state()
            .map(|s| s.as_str().to_string())
            .unwrap_or_else(|| "unknown".into()),
        attached_to: v
            .attachments()
            .iter()
            .filter_map(|a| a.instance_id().map(str::to_string))
            .collect(),
        encrypted: v.encrypted().unwrap_or(false),
        kms_key_id: v.kms_key_id().map(str::to_string),
        snapshot_id: v.snapshot_id().filter(|s| !s.is_empty()).map(str::to_string),
        create_time: v.create_time().and_then(to_chrono),
        account: account.to_string(),
        region: region.to_string(),
        tags: v
            .tags()
            .iter()
            .filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or_default().to_string())))
            .collect(),
    })
}

/// AWS reserves the `aws:` tag prefix; such tags cannot be copied onto new resources.
fn settable(tags: &Tags) -> Vec<aws_sdk_ec2::types::Tag> {
    tags.iter()
        .filter(|(k, _)| !k.starts_with("aws:"))
        .take(50)
        .map(|(k, v)| aws_sdk_ec2::types::Tag::builder().key(k).value(v).build())
        .collect()
}

impl Ec2 {
    async fn volumes_filtered(&self, filters: Vec<Filter>) -> Result<Vec<EbsVolume>> {
        let mut out = Vec::new();
        let mut pages = self
            .client
            .describe_volumes()
            .set_filters(Some(filters))
            .max_results(1000)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| Error::aws("ec2", "DescribeVolumes", e))?;
            for v in page.volumes() {
                out.push(convert_volume(v, &self.account, &self.region)?);
            }
        }
        Ok(out)
    }
}

#[async_trait]
impl VolumeApi for Ec2 {
    async fn available_volumes(&self) -> Result<Vec<EbsVolume>> {
        self.volumes_filtered(vec![filter("status", ["available".to_string()])])
            .await
    }

    async fn all_volumes(&self) -> Result<Vec<EbsVolume>> {
        self.volumes_filtered(vec![]).await
    }

    async fn describe_volumes(&self, ids: &[String]) -> Result<Vec<EbsVolume>> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(200) {
            out.extend(
                self.volumes_filtered(vec![filter("volume-id", chunk.iter().cloned())])
                    .await?,
            );
        }
        Ok(out)
    }

    async fn create_snapshot(&self, volume_id: &str, description: &str, tags: &Tags) -> Result<String> {
        let spec = TagSpecification::builder()
            .resource_type(ResourceType::Snapshot)
            .set_tags(Some(settable(tags)))
            .build();
        // One attempt: CreateSnapshot takes no client token, so a retry after an answer that was
        // lost takes a second snapshot. The caller looks for the first before it tries again.
        let out = self
            .client
            .create_snapshot()
            .volume_id(volume_id)
            .description(description)
            .tag_specifications(spec)
            .customize()
            .config_override(
                aws_sdk_ec2::config::Builder::default().retry_config(aws_smithy_types::retry::RetryConfig::disabled()),
            )
            .send()
            .await
            .map_err(|e| Error::aws("ec2", "CreateSnapshot", e))?;
        out.snapshot_id
            .ok_or_else(|| Error::unexpected("ec2", "CreateSnapshot", "no SnapshotId in the answer"))
    }

    async fn snapshots_tagged(
        &self,
        tag_key: &str,
        tag_value: &str,
    ) -> Result<Vec<(String, String, Option<DateTime<Utc>>)>> {
        let mut out = Vec::new();
        let mut pages = self
            .client
            .describe_snapshots()
            .owner_ids("self")
            .filters(filter(&format!("tag:{tag_key}"), [tag_value.to_string()]))
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| Error::aws("ec2", "DescribeSnapshots", e))?;
            for s in page.snapshots() {
                if let Some(id) = s.snapshot_id() {
                    let state = s
                        .state()
                        .map(|st| st.as_str().to_string())
                        .unwrap_or_else(|| "unknown".into());
                    out.push((id.to_string(), state, s.start_time().and_then(to_chrono)));
                }
            }
        }
        out.sort_by_key(|s| std::cmp::Reverse(s.2));
        Ok(out)
    }

    async fn delete_volume(&self, volume_id: &str) -> Result<()> {
        self.client
            .delete_volume()
            .volume_id(volume_id)
            .send()
            .await
            .map_err(|e| Error::aws("ec2", "DeleteVolume", e))?;
        Ok(())
    }

    async fn volumes_tagged(&self, tag_key: &str, tag_value: &str) -> Result<Vec<EbsVolume>> {
        self.volumes_filtered(vec![filter(&format!("tag:{tag_key}"), [tag_value.to_string()])])
            .await
    }

    async fn create_volume(&self, spec: &VolumeSpec, snapshot_id: &str) -> Result<String> {
        let mut req = self
            .client
            .create_volume()
            .snapshot_id(snapshot_id)
            .availability_zone(&spec.availability_zone)
            .volume_type(aws_sdk_ec2::types::VolumeType::from(spec.volume_type.as_str()))
            .size(spec.size_gib)
            .set_iops(
                spec.iops
                    .filter(|_| matches!(spec.volume_type.as_str(), "io1" | "io2" | "gp3")),
            )
            .set_throughput(spec.throughput.filter(|_| spec.volume_type == "gp3"));
        if spec.encrypted {
            req = req.encrypted(true).set_kms_key_id(spec.kms_key_id.clone());
        }
        let tags = settable(&spec.tags);
        if !tags.is_empty() {
            req = req.tag_specifications(
                TagSpecification::builder()
                    .resource_type(ResourceType::Volume)
                    .set_tags(Some(tags))
                    .build(),
            );
        }
        let out = req
            .client_token(format!("finops-restore-{snapshot_id}"))
            .customize()
            .config_override(
                aws_sdk_ec2::config::Builder::default().retry_config(aws_smithy_types::retry::RetryConfig::disabled()),
            )
            .send()
            .await
            .map_err(|e| Error::aws("ec2", "CreateVolume", e))?;
        out.volume_id
            .ok_or_else(|| Error::unexpected("ec2", "CreateVolume", "no VolumeId in the answer"))
    }
}

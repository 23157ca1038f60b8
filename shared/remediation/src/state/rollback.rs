//! How to undo an executed action, as stored with its action record (the actions, `act`, carry
//! it out).

use serde::{Deserialize, Serialize};

use crate::aws::ec2::VolumeSpec;

/// How to undo an executed action; stored with the action record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Rollback {
    /// Start an instance that an action stopped (resume it, when it was hibernated).
    StartInstance {
        instance_id: String,
        region: String,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        hibernated: bool,
        /// When the instance was last started before the action stopped it (EC2's `LaunchTime`,
        /// "the time that the instance was last launched"): a later one means someone started it
        /// since, and stopped it again, and a start would undo their stop.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        launched_at: Option<chrono::DateTime<chrono::Utc>>,
    },
    /// Recreate a deleted volume from the snapshot taken before the delete.
    RecreateVolume {
        spec: VolumeSpec,
        /// The unattached spell whose snapshot to restore (the `finops:source-sighting` tag);
        /// records written before it existed restore the newest completed snapshot of the volume.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sighting: Option<String>,
    },
    /// Put back a bucket's Block Public Access as it was (`None`: there was none).
    RestorePublicAccessBlock {
        bucket: String,
        region: String,
        prior: Option<crate::inventory::BlockSettings>,
        /// The settings the action put: settings other than these now mean someone changed them
        /// since, and putting `prior` back would overwrite that.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        left: Option<crate::inventory::BlockSettings>,
    },
    /// The action cannot be undone (say why); such an action is refused before it runs.
    Nothing { reason: String },
    /// The action cannot be undone and the policy accepts that (say why): it runs only on a
    /// human's approval, never automatically.
    Irreversible { reason: String },
}

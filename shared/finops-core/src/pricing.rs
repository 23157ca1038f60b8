//! The embedded instance catalog: us-east-1 On-Demand Linux (shared tenancy) prices, vCPUs, memory
//! and architecture. Source: the AWS price list for us-east-1 as published in 2025. Prices change
//! rarely; an unknown type gives no dollar figure rather than a guess.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// AWS bills a "month" of On-Demand time as 730 hours (365 × 24 / 12).
pub const HOURS_PER_MONTH: f64 = 730.0;

/// CPU architecture of an instance type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Arch {
    X86_64,
    Arm64,
}

/// One instance type of the catalog.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct InstanceType {
    pub name: &'static str,
    pub family: &'static str,
    pub arch: Arch,
    pub vcpus: u32,
    pub memory_gib: f64,
    pub usd_per_hour: f64,
}

impl InstanceType {
    /// On-Demand dollars per month.
    pub fn usd_per_month(&self) -> f64 {
        self.usd_per_hour * HOURS_PER_MONTH
    }
}

const fn it(
    name: &'static str,
    family: &'static str,
    arch: Arch,
    vcpus: u32,
    memory_gib: f64,
    usd_per_hour: f64,
) -> InstanceType {
    InstanceType {
        name,
        family,
        arch,
        vcpus,
        memory_gib,
        usd_per_hour,
    }
}

/// Every type the catalog knows, grouped by family.
pub static CATALOG: &[InstanceType] = &[
    it("t2.nano", "t2", Arch::X86_64, 1, 0.5, 0.0058),
    it("t2.micro", "t2", Arch::X86_64, 1, 1.0, 0.0116),
    it("t2.small", "t2", Arch::X86_64, 1, 2.0, 0.023),
    it("t2.medium", "t2", Arch::X86_64, 2, 4.0, 0.0464),
    it("t2.large", "t2", Arch::X86_64, 2, 8.0, 0.0928),
    it("t2.xlarge", "t2", Arch::X86_64, 4, 16.0, 0.1856),
    it("t2.2xlarge", "t2", Arch::X86_64, 8, 32.0, 0.3712),
    it("t3.nano", "t3", Arch::X86_64, 2, 0.5, 0.0052),
    it("t3.micro", "t3", Arch::X86_64, 2, 1.0, 0.0104),
    it("t3.small", "t3", Arch::X86_64, 2, 2.0, 0.0208),
    it("t3.medium", "t3", Arch::X86_64, 2, 4.0, 0.0416),
    it("t3.large", "t3", Arch::X86_64, 2, 8.0, 0.0832),
    it("t3.xlarge", "t3", Arch::X86_64, 4, 16.0, 0.1664),
    it("t3.2xlarge", "t3", Arch::X86_64, 8, 32.0, 0.3328),
    it("t3a.nano", "t3a", Arch::X86_64, 2, 0.5, 0.0047),
    it("t3a.micro", "t3a", Arch::X86_64, 2, 1.0, 0.0094),
    it("t3a.small", "t3a", Arch::X86_64, 2, 2.0, 0.0188),
    it("t3a.medium", "t3a", Arch::X86_64, 2, 4.0, 0.0376),
    it("t3a.large", "t3a", Arch::X86_64, 2, 8.0, 0.0752),
    it("t3a.xlarge", "t3a", Arch::X86_64, 4, 16.0, 0.1504),
    it("t3a.2xlarge", "t3a", Arch::X86_64, 8, 32.0, 0.3008),
    it("t4g.nano", "t4g", Arch::Arm64, 2, 0.5, 0.0042),
    it("t4g.micro", "t4g", Arch::Arm64, 2, 1.0, 0.0084),
    it("t4g.small", "t4g", Arch::Arm64, 2, 2.0, 0.0168),
    it("t4g.medium", "t4g", Arch::Arm64, 2, 4.0, 0.0336),
    it("t4g.large", "t4g", Arch::Arm64, 2, 8.0, 0.0672),
    it("t4g.xlarge", "t4g", Arch::Arm64, 4, 16.0, 0.1344),
    it("t4g.2xlarge", "t4g", Arch::Arm64, 8, 32.0, 0.2688),
    it("m5.large", "m5", Arch::X86_64, 2, 8.0, 0.096),
    it("m5.xlarge", "m5", Arch::X86_64, 4, 16.0, 0.192),
    it("m5.2xlarge", "m5", Arch::X86_64, 8, 32.0, 0.384),
    it("m5.4xlarge", "m5", Arch::X86_64, 16, 64.0, 0.768),
    it("m5.8xlarge", "m5", Arch::X86_64, 32, 128.0, 1.536),
    it("m5.12xlarge", "m5", Arch::X86_64, 48, 192.0, 2.304),
    it("m5.16xlarge", "m5", Arch::X86_64, 64, 256.0, 3.072),
    it("m5.24xlarge", "m5", Arch::X86_64, 96, 384.0, 4.608),
    it("m5.metal", "m5", Arch::X86_64, 96, 384.0, 4.608),
    it("m6i.large", "m6i", Arch::X86_64, 2, 8.0, 0.096),
    it("m6i.xlarge", "m6i", Arch::X86_64, 4, 16.0, 0.192),
    it("m6i.2xlarge", "m6i", Arch::X86_64, 8, 32.0, 0.384),
    it("m6i.4xlarge", "m6i", Arch::X86_64, 16, 64.0, 0.768),
    it("m6i.8xlarge", "m6i", Arch::X86_64, 32, 128.0, 1.536),
    it("m6i.12xlarge", "m6i", Arch::X86_64, 48, 192.0, 2.304),
    it("m6i.16xlarge", "m6i", Arch::X86_64, 64, 256.0, 3.072),
    it("m6i.24xlarge", "m6i", Arch::X86_64, 96, 384.0, 4.608),
    it("m6i.32xlarge", "m6i", Arch::X86_64, 128, 512.0, 6.144),
    it("m6i.metal", "m6i", Arch::X86_64, 128, 512.0, 6.144),
    it("m6g.medium", "m6g", Arch::Arm64, 1, 4.0, 0.0385),
    it("m6g.large", "m6g", Arch::Arm64, 2, 8.0, 0.077),
    it("m6g.xlarge", "m6g", Arch::Arm64, 4, 16.0, 0.154),
    it("m6g.2xlarge", "m6g", Arch::Arm64, 8, 32.0, 0.308),
    it("m6g.4xlarge", "m6g", Arch::Arm64, 16, 64.0, 0.616),
    it("m6g.8xlarge", "m6g", Arch::Arm64, 32, 128.0, 1.232),
    it("m6g.12xlarge", "m6g", Arch::Arm64, 48, 192.0, 1.848),
    it("m6g.16xlarge", "m6g", Arch::Arm64, 64, 256.0, 2.464),
    it("m6g.metal", "m6g", Arch::Arm64, 64, 256.0, 2.464),
    it("m7g.medium", "m7g", Arch::Arm64, 1, 4.0, 0.0408),
    it("m7g.large", "m7g", Arch::Arm64, 2, 8.0, 0.0816),
    it("m7g.xlarge", "m7g", Arch::Arm64, 4, 16.0, 0.1632),
    it("m7g.2xlarge", "m7g", Arch::Arm64, 8, 32.0, 0.3264),
    it("m7g.4xlarge", "m7g", Arch::Arm64, 16, 64.0, 0.6528),
    it("m7g.8xlarge", "m7g", Arch::Arm64, 32, 128.0, 1.3056),
    it("m7g.12xlarge", "m7g", Arch::Arm64, 48, 192.0, 1.9584),
    it("m7g.16xlarge", "m7g", Arch::Arm64, 64, 256.0, 2.6112),
    it("m7g.metal", "m7g", Arch::Arm64, 64, 256.0, 2.6112),
    it("c5.large", "c5", Arch::X86_64, 2, 4.0, 0.085),
    it("c5.xlarge", "c5", Arch::X86_64, 4, 8.0, 0.17),
    it("c5.2xlarge", "c5", Arch::X86_64, 8, 16.0, 0.34),
    it("c5.4xlarge", "c5", Arch::X86_64, 16, 32.0, 0.68),
    it("c5.9xlarge", "c5", Arch::X86_64, 36, 72.0, 1.53),
    it("c5.12xlarge", "c5", Arch::X86_64, 48, 96.0, 2.04),
    it("c5.18xlarge", "c5", Arch::X86_64, 72, 144.0, 3.06),
    it("c5.24xlarge", "c5", Arch::X86_64, 96, 192.0, 4.08),
    it("c5.metal", "c5", Arch::X86_64, 96, 192.0, 4.08),
    it("c6i.large", "c6i", Arch::X86_64, 2, 4.0, 0.085),
    it("c6i.xlarge", "c6i", Arch::X86_64, 4, 8.0, 0.17),
    it("c6i.2xlarge", "c6i", Arch::X86_64, 8, 16.0, 0.34),
    it("c6i.4xlarge", "c6i", Arch::X86_64, 16, 32.0, 0.68),
    it("c6i.8xlarge", "c6i", Arch::X86_64, 32, 64.0, 1.36),
    it("c6i.12xlarge", "c6i", Arch::X86_64, 48, 96.0, 2.04),
    it("c6i.16xlarge", "c6i", Arch::X86_64, 64, 128.0, 2.72),
    it("c6i.24xlarge", "c6i", Arch::X86_64, 96, 192.0, 4.08),
    it("c6i.32xlarge", "c6i", Arch::X86_64, 128, 256.0, 5.44),
    it("c6i.metal", "c6i", Arch::X86_64, 128, 256.0, 5.44),
    it("c7g.medium", "c7g", Arch::Arm64, 1, 2.0, 0.0363),
    it("c7g.large", "c7g", Arch::Arm64, 2, 4.0, 0.0725),
    it("c7g.xlarge", "c7g", Arch::Arm64, 4, 8.0, 0.145),
    it("c7g.2xlarge", "c7g", Arch::Arm64, 8, 16.0, 0.29),
    it("c7g.4xlarge", "c7g", Arch::Arm64, 16, 32.0, 0.58),
    it("c7g.8xlarge", "c7g", Arch::Arm64, 32, 64.0, 1.16),
    it("c7g.12xlarge", "c7g", Arch::Arm64, 48, 96.0, 1.74),
    it("c7g.16xlarge", "c7g", Arch::Arm64, 64, 128.0, 2.32),
    it("c7g.metal", "c7g", Arch::Arm64, 64, 128.0, 2.32),
    it("r5.large", "r5", Arch::X86_64, 2, 16.0, 0.126),
    it("r5.xlarge", "r5", Arch::X86_64, 4, 32.0, 0.252),
    it("r5.2xlarge", "r5", Arch::X86_64, 8, 64.0, 0.504),
    it("r5.4xlarge", "r5", Arch::X86_64, 16, 128.0, 1.008),
    it("r5.8xlarge", "r5", Arch::X86_64, 32, 256.0, 2.016),
    it("r5.12xlarge", "r5", Arch::X86_64, 48, 384.0, 3.024),
    it("r5.16xlarge", "r5", Arch::X86_64, 64, 512.0, 4.032),
    it("r5.24xlarge", "r5", Arch::X86_64, 96, 768.0, 6.048),
    it("r5.metal", "r5", Arch::X86_64, 96, 768.0, 6.048),
    it("r6i.large", "r6i", Arch::X86_64, 2, 16.0, 0.126),
    it("r6i.xlarge", "r6i", Arch::X86_64, 4, 32.0, 0.252),
    it("r6i.2xlarge", "r6i", Arch::X86_64, 8, 64.0, 0.504),
    it("r6i.4xlarge", "r6i", Arch::X86_64, 16, 128.0, 1.008),
    it("r6i.8xlarge", "r6i", Arch::X86_64, 32, 256.0, 2.016),
    it("r6i.12xlarge", "r6i", Arch::X86_64, 48, 384.0, 3.024),
    it("r6i.16xlarge", "r6i", Arch::X86_64, 64, 512.0, 4.032),
    it("r6i.24xlarge", "r6i", Arch::X86_64, 96, 768.0, 6.048),
    it("r6i.32xlarge", "r6i", Arch::X86_64, 128, 1024.0, 8.064),
    it("r6i.metal", "r6i", Arch::X86_64, 128, 1024.0, 8.064),
];

/// The catalog entry of an instance type, if known.
pub fn instance_type(name: &str) -> Option<&'static InstanceType> {
    CATALOG.iter().find(|t| t.name == name)
}

/// On-Demand monthly dollars of an instance type, if known.
pub fn ec2_monthly_usd(name: &str) -> Option<f64> {
    instance_type(name).map(InstanceType::usd_per_month)
}

/// us-east-1 EBS prices (2025): storage per GB-month by volume type, and the provisioned extras.
pub mod ebs {
    /// Storage, USD per GB-month, by volume type.
    pub fn storage_usd_per_gb_month(volume_type: &str) -> Option<f64> {
        Some(match volume_type {
            "gp2" => 0.10,
            "gp3" => 0.08,
            "io1" | "io2" => 0.125,
            "st1" => 0.045,
            "sc1" => 0.015,
            "standard" => 0.05,
            _ => return None,
        })
    }

    /// gp3 includes 3,000 IOPS and 125 MiB/s; above that: $0.005 per IOPS-month, $0.04 per MiB/s-month.
    /// io1/io2: $0.065 per provisioned IOPS-month (io2's first tier).
    pub fn provisioned_usd_per_month(volume_type: &str, iops: Option<i32>, throughput: Option<i32>) -> f64 {
        let iops = f64::from(iops.unwrap_or(0).max(0));
        let throughput = f64::from(throughput.unwrap_or(0).max(0));
        match volume_type {
            "gp3" => (iops - 3000.0).max(0.0) * 0.005 + (throughput - 125.0).max(0.0) * 0.04,
            "io1" | "io2" => iops * 0.065,
            _ => 0.0,
        }
    }

    /// Monthly cost of a volume; `None` for an unknown type.
    pub fn volume_usd_per_month(
        volume_type: &str,
        size_gib: i32,
        iops: Option<i32>,
        throughput: Option<i32>,
    ) -> Option<f64> {
        let storage = storage_usd_per_gb_month(volume_type)? * f64::from(size_gib.max(0));
        Some(storage + provisioned_usd_per_month(volume_type, iops, throughput))
    }

    /// Standard-tier snapshot storage, USD per GB-month.
    pub const SNAPSHOT_USD_PER_GB_MONTH: f64 = 0.05;

    /// Upper bound of a snapshot's monthly cost: the whole volume size (a snapshot stores only the
    /// blocks in use, which AWS does not report up front).
    pub fn snapshot_usd_per_month(size_gib: i32) -> f64 {
        SNAPSHOT_USD_PER_GB_MONTH * f64::from(size_gib.max(0))
    }
}

/// The region the embedded catalog's prices are for.
pub const EMBEDDED_REGION: &str = "us-east-1";

/// The prices one scan uses: its region's, from the AWS Price List API (or the table's cache of
/// it), or the embedded us-east-1 catalog. Specs (vCPUs, memory, architecture) always come from
/// the catalog; a type the regional prices lack has no price rather than another region's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PriceBook {
    /// The region the prices are for.
    pub region: String,
    /// Where they came from, in words (it goes into each finding's evidence).
    pub source: String,
    /// On-Demand Linux shared-tenancy USD per hour by type; `None`: the embedded catalog's.
    pub ec2_hourly: Option<BTreeMap<String, f64>>,
    /// EBS storage USD per GB-month by volume type; `None`: the embedded catalog's.
    pub ebs_gb_month: Option<BTreeMap<String, f64>>,
}

impl PriceBook {
    /// The embedded us-east-1 catalog, for a scan in us-east-1.
    pub fn embedded() -> PriceBook {
        PriceBook {
            region: EMBEDDED_REGION.into(),
            source: "embedded catalog, us-east-1".into(),
            ec2_hourly: None,
            ebs_gb_month: None,
        }
    }

    /// The embedded catalog standing in for `region`'s prices, saying why.
    pub fn fallback(region: &str, why: &str) -> PriceBook {
        PriceBook {
            region: region.into(),
            source: format!("embedded catalog, us-east-1 prices for {region} ({why})"),
            ec2_hourly: None,
            ebs_gb_month: None,
        }
    }

    /// Regional prices from the Price List API (`source` says whether fresh or cached).
    pub fn regional(region: &str, source: String, ec2: BTreeMap<String, f64>, ebs: BTreeMap<String, f64>) -> PriceBook {
        PriceBook {
            region: region.into(),
            source,
            ec2_hourly: Some(ec2),
            ebs_gb_month: Some(ebs),
        }
    }

    /// Whether the book can price both instances and volumes: the catalog's (no maps), or a
    /// regional one with both maps non-empty and every price finite and positive.
    pub fn is_sound(&self) -> bool {
        let part = |m: &Option<BTreeMap<String, f64>>| {
            m.as_ref()
                .is_none_or(|m| !m.is_empty() && m.values().all(|p| p.is_finite() && *p > 0.0))
        };
        self.ec2_hourly.is_some() == self.ebs_gb_month.is_some() && part(&self.ec2_hourly) && part(&self.ebs_gb_month)
    }

    /// A catalog type with this book's price.
    pub fn instance_type(&self, name: &str) -> Option<InstanceType> {
        let spec = *instance_type(name)?;
        match &self.ec2_hourly {
            None => Some(spec),
            Some(prices) => prices
                .get(name)
                .filter(|p| p.is_finite() && **p > 0.0)
                .map(|p| InstanceType {
                    usd_per_hour: *p,
                    ..spec
                }),
        }
    }

    /// Every catalog type this book prices.
    pub fn catalog(&self) -> Vec<InstanceType> {
        CATALOG.iter().filter_map(|t| self.instance_type(t.name)).collect()
    }

    /// Where a volume's figures come from: the storage rate is this book's; the provisioned IOPS
    /// and throughput extras and the rollback snapshot are always the embedded us-east-1
    /// catalog's, and a regional book says so.
    pub fn volume_source(&self) -> String {
        match &self.ebs_gb_month {
            None => self.source.clone(),
            Some(_) => format!(
                "storage: {}; IOPS, throughput and snapshot: embedded catalog, us-east-1 rates",
                self.source
            ),
        }
    }

    /// A volume's monthly cost: storage at this book's rate (the provisioned IOPS and throughput
    /// extras at the catalog's, which [`PriceBook::volume_source`] says).
    pub fn volume_usd_per_month(
        &self,
        volume_type: &str,
        size_gib: i32,
        iops: Option<i32>,
        throughput: Option<i32>,
    ) -> Option<f64> {
        let rate = match &self.ebs_gb_month {
            None => ebs::storage_usd_per_gb_month(volume_type)?,
            Some(prices) => *prices.get(volume_type).filter(|p| p.is_finite() && **p > 0.0)?,
        };
        Some(rate * f64::from(size_gib.max(0)) + ebs::provisioned_usd_per_month(volume_type, iops, throughput))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_required_family_is_priced() {
        for family in [
            "t2", "t3", "t3a", "t4g", "m5", "m6i", "m6g", "m7g", "c5", "c6i", "c7g", "r5", "r6i",
        ] {
            assert!(CATALOG.iter().any(|t| t.family == family), "{family} missing");
        }
    }

    #[test]
    fn a_t3_medium_costs_about_thirty_dollars_a_month() {
        let usd = ec2_monthly_usd("t3.medium").unwrap();
        assert!((usd - 30.368).abs() < 1e-9, "{usd}");
    }

    #[test]
    fn ebs_prices_cover_every_type_and_the_provisioned_extras() {
        for t in ["gp2", "gp3", "io1", "io2", "st1", "sc1", "standard"] {
            assert!(ebs::storage_usd_per_gb_month(t).is_some(), "{t}");
        }
        assert_eq!(ebs::volume_usd_per_month("gp2", 100, None, None), Some(10.0));
        // gp3 with 6,000 IOPS and 250 MiB/s: 8 + 3000×0.005 + 125×0.04 = 28.
        let gp3 = ebs::volume_usd_per_month("gp3", 100, Some(6000), Some(250)).unwrap();
        assert!((gp3 - 28.0).abs() < 1e-9, "{gp3}");
        // Included gp3 performance costs nothing extra.
        assert_eq!(ebs::volume_usd_per_month("gp3", 100, Some(3000), Some(125)), Some(8.0));
        let io1 = ebs::volume_usd_per_month("io1", 100, Some(1000), None).unwrap();
        assert!((io1 - 77.5).abs() < 1e-9, "{io1}");
        assert_eq!(ebs::volume_usd_per_month("gp9", 100, None, None), None);
        assert_eq!(ebs::snapshot_usd_per_month(100), 5.0);
    }

    #[test]
    fn a_regional_book_prices_with_its_own_rates_and_never_with_another_regions() {
        let ec2 = BTreeMap::from([("m5.large".to_string(), 0.107)]);
        let ebs = BTreeMap::from([("gp3".to_string(), 0.088)]);
        let book = PriceBook::regional("eu-west-1", "AWS Price List API, eu-west-1".into(), ec2, ebs);
        let m5 = book.instance_type("m5.large").unwrap();
        assert_eq!((m5.usd_per_hour, m5.vcpus), (0.107, 2));
        assert_eq!(
            book.instance_type("t3.medium"),
            None,
            "not priced in eu-west-1: no us-east-1 price instead"
        );
        assert_eq!(book.catalog().len(), 1);
        let gp3 = book.volume_usd_per_month("gp3", 100, None, None).unwrap();
        assert!((gp3 - 8.8).abs() < 1e-9, "{gp3}");
        assert_eq!(book.volume_usd_per_month("sc1", 100, None, None), None);
        let embedded = PriceBook::embedded();
        assert_eq!(embedded.instance_type("t3.medium").unwrap().usd_per_hour, 0.0416);
        assert_eq!(embedded.catalog().len(), CATALOG.len());
    }

    #[test]
    fn an_unknown_type_has_no_price() {
        assert_eq!(ec2_monthly_usd("x9z.mega"), None);
    }

    #[test]
    fn the_catalog_has_no_duplicate_and_no_zero_price() {
        let mut names: Vec<_> = CATALOG.iter().map(|t| t.name).collect();
        names.sort();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len());
        assert!(CATALOG
            .iter()
            .all(|t| t.usd_per_hour > 0.0 && t.vcpus > 0 && t.memory_gib > 0.0));
        assert!(CATALOG
            .iter()
            .all(|t| t.name.starts_with(t.family) && t.name[t.family.len()..].starts_with('.')));
    }
}

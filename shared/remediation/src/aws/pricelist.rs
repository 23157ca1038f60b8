//! The AWS Price List API (`pricing:GetProducts`): a region's On-Demand EC2 and EBS storage
//! prices, and the prices of what the autopilot itself uses there ([`crate::cost`]), cached per
//! region and month in the state table, with the embedded us-east-1 prices as the fallback.

use crate::error::SdkErrorExt as _;
use std::collections::BTreeMap;

use aws_sdk_pricing::types::{Filter, FilterType};
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::cost::{ServicePrices, PRICE_LIST_LINES};
use crate::error::{Error, Result};
use crate::pricing::{PriceBook, EMBEDDED_REGION};

/// The Price List API's own region (it also answers in eu-central-1 and ap-south-1).
const PRICING_REGION: &str = "us-east-1";

/// The Price List API client.
#[derive(Debug, Clone)]
pub struct PriceList {
    client: aws_sdk_pricing::Client,
    /// When a region's service prices last could not be had, and why: not asked again for
    /// [`MISS_PAUSE`] (a container's runs do not each wait on an API that is out of reach).
    misses: std::sync::Arc<std::sync::Mutex<BTreeMap<String, (std::time::Instant, String)>>>,
}

/// How long a region's service prices are not asked again after a failure.
const MISS_PAUSE: std::time::Duration = std::time::Duration::from_secs(3600);
/// The longest a run waits for its region's service prices (ten small queries).
const SERVICES_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Reads a `PriceList` entry's On-Demand price in `unit` (`Hrs`, `GB-Mo`) and the attribute
/// `key` it is for. An entry without them is skipped (Savings Plans, reserved terms, other units).
fn entry(text: &str, key: &str, unit: &str) -> Option<(String, f64)> {
    let v: Value = serde_json::from_str(text).ok()?;
    let name = v["product"]["attributes"][key].as_str()?.to_string();
    let terms = v["terms"]["OnDemand"].as_object()?;
    let price = terms
        .values()
        .filter_map(|t| t["priceDimensions"].as_object())
        .flat_map(|d| d.values())
        .filter(|d| d["unit"].as_str() == Some(unit))
        .filter_map(|d| d["pricePerUnit"]["USD"].as_str()?.parse::<f64>().ok())
        .find(|p| p.is_finite() && *p > 0.0)?;
    Some((name, price))
}

/// Reads a `PriceList` entry of `usage_type` (as named in us-east-1, or after a region's prefix:
/// `EU-CW:GMD-Metrics` is `CW:GMD-Metrics` in eu-west-1, never `EU-IA-ReadRequestUnits` for
/// `ReadRequestUnits`): its On-Demand price of the first priced tier (the list price past any
/// free tier, as the embedded prices are).
fn service_entry(text: &str, region: &str, usage_type: &str) -> Option<f64> {
    let v: Value = serde_json::from_str(text).ok()?;
    // Another region's product is not this one's, whatever the server's filter let through.
    if v["product"]["attributes"]["regionCode"].as_str() != Some(region) {
        return None;
    }
    let name = v["product"]["attributes"]["usagetype"].as_str()?;
    let matches = name == usage_type
        || name.split_once('-').is_some_and(|(prefix, rest)| {
            rest == usage_type
                && !prefix.is_empty()
                && prefix.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        });
    if !matches {
        return None;
    }
    let terms = v["terms"]["OnDemand"].as_object()?;
    terms
        .values()
        .filter_map(|t| t["priceDimensions"].as_object())
        .flat_map(|d| d.values())
        .filter_map(|d| {
            let usd = d["pricePerUnit"]["USD"].as_str()?.parse::<f64>().ok()?;
            let begins = d["beginRange"].as_str().map_or(Some(0.0), |b| b.parse::<f64>().ok())?;
            (usd.is_finite() && usd > 0.0 && begins.is_finite()).then_some((begins, usd))
        })
        .min_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, usd)| usd)
}

fn term(field: &str, value: &str) -> Result<Filter> {
    Filter::builder()
        .r#type(FilterType::TermMatch)
        .field(field)
        .value(value)
        .build()
        .map_err(|e| Error::Config(format!("a Price List filter: {e}")))
}

impl PriceList {
    /// The client, in the API's region, from `config`'s credentials; `endpoint` overrides where
    /// it is sent (a local stand-in).
    pub fn new(config: &aws_config::SdkConfig, calls: &crate::aws::CallCounter, endpoint: Option<&str>) -> PriceList {
        let mut b = aws_sdk_pricing::config::Builder::from(config)
            .region(aws_config::Region::new(PRICING_REGION))
            .interceptor(calls.clone())
            .retry_config(crate::aws::patience::STS.retry())
            .timeout_config(crate::aws::patience::STS.timeouts());
        if let Some(url) = endpoint {
            b = b.endpoint_url(url);
        }
        PriceList {
            client: aws_sdk_pricing::Client::from_conf(b.build()),
            misses: Default::default(),
        }
    }

    /// Every product of `service` matching `filters`, each read by `read` (`None`: skipped).
    async fn products<T>(
        &self,
        service: &str,
        filters: Vec<Filter>,
        read: impl Fn(&str) -> Option<T>,
    ) -> Result<Vec<T>> {
        let mut out = Vec::new();
        let mut pages = self
            .client
            .get_products()
            .service_code(service)
            .format_version("aws_v1")
            .set_filters(Some(filters))
            .max_results(100)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| Error::aws("pricing", "GetProducts", e))?;
            out.extend(page.price_list().iter().filter_map(|text| read(text)));
        }
        Ok(out)
    }

    /// Every EC2 product's price matching `filters`, by the attribute `key`.
    async fn prices(&self, filters: Vec<Filter>, key: &str, unit: &str) -> Result<BTreeMap<String, f64>> {
        let mut out = BTreeMap::new();
        for (name, price) in self
            .products("AmazonEC2", filters, |text| entry(text, key, unit))
            .await?
        {
            out.entry(name).or_insert(price);
        }
        Ok(out)
    }

    /// `region`'s prices of what the autopilot uses ([`PRICE_LIST_LINES`]), by field; a line the
    /// API does not list there is left out.
    pub async fn services(&self, region: &str) -> Result<BTreeMap<String, f64>> {
        let mut out = BTreeMap::new();
        for (field, service, usage_type) in PRICE_LIST_LINES {
            let filters = vec![
                term("regionCode", region)?,
                Filter::builder()
                    .r#type(FilterType::Contains)
                    .field("usagetype")
                    .value(*usage_type)
                    .build()
                    .map_err(|e| Error::Config(format!("a Price List filter: {e}")))?,
            ];
            let found = self
                .products(service, filters, |text| service_entry(text, region, usage_type))
                .await?;
            // Two products of one usage type (there should be one): the dearer, so the estimate
            // is never below the bill.
            if let Some(usd) = found.into_iter().reduce(f64::max) {
                out.insert(field.to_string(), usd);
            }
        }
        Ok(out)
    }

    /// `region`'s On-Demand Linux shared-tenancy prices of the catalog's instance types, and its
    /// EBS storage prices.
    pub async fn region(&self, region: &str) -> Result<(BTreeMap<String, f64>, BTreeMap<String, f64>)> {
        let ec2 = self
            .prices(
                vec![
                    term("regionCode", region)?,
                    term("operatingSystem", "Linux")?,
                    term("tenancy", "Shared")?,
                    term("preInstalledSw", "NA")?,
                    term("capacitystatus", "Used")?,
                    term("licenseModel", "No License required")?,
                ],
                "instanceType",
                "Hrs",
            )
            .await?;
        let ec2 = ec2
            .into_iter()
            .filter(|(name, _)| crate::pricing::instance_type(name).is_some())
            .collect();
        let ebs = self
            .prices(
                vec![term("regionCode", region)?, term("productFamily", "Storage")?],
                "volumeApiName",
                "GB-Mo",
            )
            .await?;
        Ok((ec2, ebs))
    }
}

/// Where cached price books are kept (the state table).
#[async_trait::async_trait]
pub trait PriceCache: Send + Sync {
    async fn cached_prices(&self, region: &str, month: &str) -> Result<Option<PriceBook>>;
    async fn cache_prices(&self, month: &str, book: &PriceBook, expires_at: i64) -> Result<()>;
    async fn cached_service_prices(&self, region: &str, month: &str) -> Result<Option<ServicePrices>>;
    async fn cache_service_prices(
        &self,
        region: &str,
        month: &str,
        prices: &ServicePrices,
        expires_at: i64,
    ) -> Result<()>;
}

/// The prices a run in `region` at `now` is costed at ([`crate::cost`]): the embedded ones in
/// us-east-1 (their own region) or without a Price List endpoint; else this month's cached ones,
/// else the Price List API's (then cached), each price it does not list staying the embedded one;
/// the embedded ones when it cannot be read, saying why. Never fails.
pub async fn service_prices(
    api: Option<&PriceList>,
    cache: Option<&dyn PriceCache>,
    region: &str,
    now: DateTime<Utc>,
) -> ServicePrices {
    if region == EMBEDDED_REGION {
        return ServicePrices::embedded();
    }
    let Some(api) = api else {
        return ServicePrices::embedded_for(region, "no Price List API endpoint for a local emulator");
    };
    let month = now.format("%Y-%m").to_string();
    if let Some(cache) = cache {
        match cache.cached_service_prices(region, &month).await {
            Ok(Some(mut prices)) if prices.is_sound() => {
                prices.source = prices.source.replacen(&month, &format!("{month} (cached)"), 1);
                return prices;
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, region, "service price cache unreadable"),
        }
    }
    let recent_miss = {
        let misses = api.misses.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        misses
            .get(region)
            .filter(|(at, _)| at.elapsed() < MISS_PAUSE)
            .map(|(_, why)| why.clone())
    };
    if let Some(why) = recent_miss {
        return ServicePrices::embedded_for(region, &format!("{why}; asked again within the hour"));
    }
    let missed = |why: String| {
        let mut misses = api.misses.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        misses.insert(region.to_string(), (std::time::Instant::now(), why.clone()));
        ServicePrices::embedded_for(region, &why)
    };
    match tokio::time::timeout(SERVICES_WAIT, api.services(region)).await {
        Err(_) => missed(format!(
            "the Price List API did not answer within {} s",
            SERVICES_WAIT.as_secs()
        )),
        Ok(Ok(found)) if found.is_empty() => missed("the Price List API listed none of them there".into()),
        Ok(Ok(found)) => {
            let prices = ServicePrices::regional(region, &month, &found);
            if let Some(cache) = cache {
                let expires = now.timestamp() + 45 * 86_400;
                if let Err(e) = cache.cache_service_prices(region, &month, &prices, expires).await {
                    tracing::warn!(error = %e, region, "service prices not cached");
                }
            }
            prices
        }
        Ok(Err(e)) => missed(format!("Price List API unavailable: {e}")),
    }
}

/// The prices a scan in `region` uses at `now`: none asked for us-east-1 (the embedded catalog
/// is its own); else this month's cached book, else the Price List API's (then cached); the
/// embedded catalog when neither answers, saying why. Never fails: a price is evidence, not a gate.
pub async fn price_book(
    api: Option<&PriceList>,
    cache: Option<&dyn PriceCache>,
    region: &str,
    now: DateTime<Utc>,
) -> PriceBook {
    if region == EMBEDDED_REGION {
        return PriceBook::embedded();
    }
    let month = now.format("%Y-%m").to_string();
    if let Some(cache) = cache {
        match cache.cached_prices(region, &month).await {
            Ok(Some(mut book)) if book.is_sound() => {
                book.source = format!("AWS Price List API, {region}, {month} (cached)");
                return book;
            }
            // Missing, or a book with a part left empty: asked again, never trusted.
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, region, "price cache unreadable"),
        }
    }
    let Some(api) = api else {
        return PriceBook::fallback(region, "no Price List API endpoint for a local emulator");
    };
    match api.region(region).await {
        Ok((ec2, ebs)) if ec2.is_empty() || ebs.is_empty() => PriceBook::fallback(
            region,
            &format!(
                "the Price List API listed {} EC2 and {} EBS prices there",
                ec2.len(),
                ebs.len()
            ),
        ),
        Ok((ec2, ebs)) => {
            let book = PriceBook::regional(region, format!("AWS Price List API, {region}, {month}"), ec2, ebs);
            if let Some(cache) = cache {
                // Kept about six weeks: this month's runs read it, next month asks again.
                let expires = now.timestamp() + 45 * 86_400;
                if let Err(e) = cache.cache_prices(&month, &book, expires).await {
                    tracing::warn!(error = %e, region, "prices not cached");
                }
            }
            book
        }
        Err(e) => PriceBook::fallback(region, &format!("Price List API unavailable: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_gives_its_on_demand_price_in_the_unit_asked_and_nothing_else() {
        let text = serde_json::json!({
            "product": {"productFamily": "Compute Instance", "attributes": {"instanceType": "m5.large", "regionCode": "eu-west-1"}},
            "serviceCode": "AmazonEC2",
            "terms": {"OnDemand": {"SKU.JRTCKXETXF": {"priceDimensions": {"SKU.JRTCKXETXF.6YS6EN2CT7": {
                "unit": "Hrs", "pricePerUnit": {"USD": "0.1070000000"}, "description": "$0.107 per On Demand Linux m5.large Instance Hour"}}}}}
        })
        .to_string();
        assert_eq!(entry(&text, "instanceType", "Hrs"), Some(("m5.large".into(), 0.107)));
        assert_eq!(entry(&text, "instanceType", "GB-Mo"), None);
        assert_eq!(entry("not json", "instanceType", "Hrs"), None);
        let zero = text.replace("0.1070000000", "0.0000000000");
        assert_eq!(entry(&zero, "instanceType", "Hrs"), None, "a zero price is no price");
    }

    fn service_product(usage_type: &str, tiers: &[(&str, &str)]) -> String {
        let dims: serde_json::Map<String, Value> = tiers
            .iter()
            .enumerate()
            .map(|(i, (begin, usd))| {
                (
                    format!("SKU.T.{i}"),
                    serde_json::json!({"unit": "Requests", "beginRange": begin, "endRange": "Inf",
                        "pricePerUnit": {"USD": usd}}),
                )
            })
            .collect();
        serde_json::json!({
            "product": {"productFamily": "API Request", "attributes": {"usagetype": usage_type, "regionCode": "eu-west-1"}},
            "terms": {"OnDemand": {"SKU.T": {"priceDimensions": dims}}}
        })
        .to_string()
    }

    #[test]
    fn a_service_price_is_its_usage_type_s_in_any_region_past_the_free_tier() {
        // SNS's first million publishes a month are free: the price is the next tier's.
        let sns = service_product(
            "EU-Requests-Tier1",
            &[("0", "0.0000000000"), ("1000000", "0.0000005000")],
        );
        assert_eq!(service_entry(&sns, "eu-west-1", "Requests-Tier1"), Some(0.0000005));
        // Lambda's tiers fall with volume: the first is the one a small deployment pays.
        let lambda = service_product(
            "Lambda-GB-Second-ARM",
            &[
                ("18750000000", "0.0000106667"),
                ("0", "0.0000133334"),
                ("7500000000", "0.0000120001"),
            ],
        );
        assert_eq!(
            service_entry(&lambda, "eu-west-1", "Lambda-GB-Second-ARM"),
            Some(0.0000133334)
        );
        let prefixed = service_product("USE1-StateTransition", &[("0", "0.0000250000")]);
        assert_eq!(service_entry(&prefixed, "eu-west-1", "StateTransition"), Some(0.000025));
        // Another table class's reads, another storage class's requests: not these.
        let ia = service_product("EU-IA-ReadRequestUnits", &[("0", "0.0000003125")]);
        assert_eq!(service_entry(&ia, "eu-west-1", "ReadRequestUnits"), None);
        let int = service_product("EU-Requests-INT-Tier1", &[("0", "0.0000050000")]);
        assert_eq!(service_entry(&int, "eu-west-1", "Requests-Tier1"), None);
        let lower = service_product("eu-Requests-Tier1", &[("0", "0.0000050000")]);
        assert_eq!(
            service_entry(&lower, "eu-west-1", "Requests-Tier1"),
            None,
            "a prefix is a region's code"
        );
        let free = service_product("Requests-Tier1", &[("0", "0.0000000000")]);
        assert_eq!(
            service_entry(&free, "eu-west-1", "Requests-Tier1"),
            None,
            "no priced tier, no price"
        );
        assert_eq!(service_entry("[]", "eu-west-1", "Requests-Tier1"), None);
        let elsewhere = service_product("EUC1-Requests-Tier1", &[("0", "0.0000050000")]);
        assert_eq!(
            service_entry(&elsewhere, "eu-central-1", "Requests-Tier1"),
            None,
            "the product says eu-west-1"
        );
    }
}

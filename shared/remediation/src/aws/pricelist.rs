//! The AWS Price List API (`pricing:GetProducts`): a region's On-Demand EC2 and EBS storage
//! prices, cached per region and month in the state table, with the embedded us-east-1 catalog
//! as the fallback.

use std::collections::BTreeMap;

use aws_sdk_pricing::types::{Filter, FilterType};
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::pricing::{PriceBook, EMBEDDED_REGION};

/// The Price List API's own region (it also answers in eu-central-1 and ap-south-1).
const PRICING_REGION: &str = "us-east-1";

/// The Price List API client.
#[derive(Debug, Clone)]
pub struct PriceList {
    client: aws_sdk_pricing::Client,
}

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
        }
    }

    /// Every product's price matching `filters`, by the attribute `key`.
    async fn prices(&self, filters: Vec<Filter>, key: &str, unit: &str) -> Result<BTreeMap<String, f64>> {
        let mut out = BTreeMap::new();
        let mut pages = self
            .client
            .get_products()
            .service_code("AmazonEC2")
            .format_version("aws_v1")
            .set_filters(Some(filters))
            .max_results(100)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| Error::aws("pricing", "GetProducts", e))?;
            for text in page.price_list() {
                if let Some((name, price)) = entry(text, key, unit) {
                    out.entry(name).or_insert(price);
                }
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
}

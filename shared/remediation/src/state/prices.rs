//! The price cache: one `PRICES#<region>` item per month holding that month's price book from the
//! Price List API (sort key the month), and one beside it holding the prices of what the
//! autopilot itself uses there (sort key `<month>#services`), so a region's prices are asked once
//! a month, not once a scan.

use crate::error::SdkErrorExt as _;
use std::collections::HashMap;

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::dynamo::{json, n, s, TTL_ATTRIBUTE};
use super::DynamoState;
use crate::aws::pricelist::PriceCache;
use crate::cost::ServicePrices;
use crate::error::{Error, Result};
use crate::pricing::PriceBook;

impl DynamoState {
    /// The cached value under `region` and `sk`; an unreadable one is `None` (asked again, not trusted).
    async fn cached<T: DeserializeOwned>(&self, region: &str, sk: &str) -> Result<Option<T>> {
        let Some(item) = self.get(&format!("PRICES#{region}"), sk).await? else {
            return Ok(None);
        };
        let Some(text) = item.get("book").and_then(|v| v.as_s().ok()) else {
            return Ok(None);
        };
        Ok(serde_json::from_str::<T>(text).ok())
    }

    async fn cache<T: Serialize>(&self, region: &str, sk: &str, value: &T, expires_at: i64) -> Result<()> {
        let item = HashMap::from([
            ("pk".to_string(), s(format!("PRICES#{region}"))),
            ("sk".to_string(), s(sk)),
            ("kind".to_string(), s("prices")),
            ("book".to_string(), json(value)?),
            (TTL_ATTRIBUTE.to_string(), n(expires_at)),
        ]);
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| Error::aws("dynamodb", "PutItem", e))?;
        Ok(())
    }
}

#[async_trait]
impl PriceCache for DynamoState {
    async fn cached_prices(&self, region: &str, month: &str) -> Result<Option<PriceBook>> {
        Ok(self
            .cached::<PriceBook>(region, month)
            .await?
            .filter(|book| book.region == region))
    }

    async fn cache_prices(&self, month: &str, book: &PriceBook, expires_at: i64) -> Result<()> {
        self.cache(&book.region, month, book, expires_at).await
    }

    async fn cached_service_prices(&self, region: &str, month: &str) -> Result<Option<ServicePrices>> {
        Ok(self
            .cached::<ServicePrices>(region, &format!("{month}#services"))
            .await?
            // The source names the region and month the prices are for.
            .filter(|p| p.source.contains(&format!(", {region}, {month}"))))
    }

    async fn cache_service_prices(
        &self,
        region: &str,
        month: &str,
        prices: &ServicePrices,
        expires_at: i64,
    ) -> Result<()> {
        self.cache(region, &format!("{month}#services"), prices, expires_at)
            .await
    }
}

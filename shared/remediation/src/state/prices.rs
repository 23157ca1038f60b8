//! The price cache: one `PRICES#<region>` item per month holding that month's price book from the
//! Price List API, so a region's prices are asked once a month, not once a scan.

use std::collections::HashMap;

use async_trait::async_trait;

use super::dynamo::{json, n, s, TTL_ATTRIBUTE};
use super::DynamoState;
use crate::aws::pricelist::PriceCache;
use crate::error::{Error, Result};
use crate::pricing::PriceBook;

#[async_trait]
impl PriceCache for DynamoState {
    async fn cached_prices(&self, region: &str, month: &str) -> Result<Option<PriceBook>> {
        let Some(item) = self.get(&format!("PRICES#{region}"), month).await? else {
            return Ok(None);
        };
        let Some(text) = item.get("book").and_then(|v| v.as_s().ok()) else {
            return Ok(None);
        };
        // An unreadable cached book is asked again, not trusted.
        match serde_json::from_str::<PriceBook>(text) {
            Ok(book) if book.region == region => Ok(Some(book)),
            _ => Ok(None),
        }
    }

    async fn cache_prices(&self, month: &str, book: &PriceBook, expires_at: i64) -> Result<()> {
        let item = HashMap::from([
            ("pk".to_string(), s(format!("PRICES#{}", book.region))),
            ("sk".to_string(), s(month)),
            ("kind".to_string(), s("prices")),
            ("book".to_string(), json(book)?),
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

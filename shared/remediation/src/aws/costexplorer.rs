//! Cost Explorer: month-to-date cost by service and day, the month's forecast, last month's total.
//! Each call costs $0.01 on AWS; a run makes two or three (and more pages for very many services).

use crate::error::SdkErrorExt as _;
use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_costexplorer::types::{DateInterval, Granularity, GroupDefinition, GroupDefinitionType, Metric};
use chrono::NaiveDate;

use crate::error::{Error, Result};

/// Cost by SERVICE for each day.
pub type DailyCosts = BTreeMap<NaiveDate, BTreeMap<String, f64>>;

/// What the cost-alert flow needs of Cost Explorer.
#[async_trait]
pub trait CostApi: Send + Sync {
    /// Cost by SERVICE over `[start, end)`.
    async fn cost_by_service(&self, start: NaiveDate, end: NaiveDate, metric: &str) -> Result<BTreeMap<String, f64>>;
    /// Cost by SERVICE over `[start, end)`, day by day (keyed by the day a result starts), so the
    /// caller can tell whole days from today's billed-so-far cost.
    async fn daily_cost_by_service(&self, start: NaiveDate, end: NaiveDate, metric: &str) -> Result<DailyCosts>;
    /// Cost Explorer's forecast of `[start, end)` (the rest of the month).
    async fn forecast(&self, start: NaiveDate, end: NaiveDate, metric: &str) -> Result<f64>;
}

/// The SDK adapter.
#[derive(Debug, Clone)]
pub struct CostExplorer {
    client: aws_sdk_costexplorer::Client,
}

impl CostExplorer {
    /// Wraps a client (Cost Explorer's endpoint is in us-east-1 whatever the region).
    pub fn new(client: aws_sdk_costexplorer::Client) -> Self {
        CostExplorer { client }
    }

    /// GetCostAndUsage grouped by SERVICE at `granularity`, every page, keyed by the day each
    /// result period starts.
    async fn by_period(
        &self,
        start: NaiveDate,
        end: NaiveDate,
        metric: &str,
        granularity: Granularity,
    ) -> Result<DailyCosts> {
        let mut out = DailyCosts::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .client
                .get_cost_and_usage()
                .time_period(interval(start, end, "GetCostAndUsage")?)
                .granularity(granularity.clone())
                .metrics(metric)
                .group_by(
                    GroupDefinition::builder()
                        .r#type(GroupDefinitionType::Dimension)
                        .key("SERVICE")
                        .build(),
                )
                .set_next_page_token(token.take())
                .send()
                .await
                .map_err(|e| Error::aws("ce", "GetCostAndUsage", e))?;
            for period in page.results_by_time() {
                let began = period.time_period().map(|t| t.start()).unwrap_or_default();
                let day = NaiveDate::parse_from_str(began, "%Y-%m-%d").map_err(|_| {
                    Error::unexpected("ce", "GetCostAndUsage", format!("period start {began:?} is not a date"))
                })?;
                let services = out.entry(day).or_default();
                for group in period.groups() {
                    let service = group.keys().first().cloned().unwrap_or_else(|| "unknown".into());
                    let value = group
                        .metrics()
                        .and_then(|m| m.get(metric))
                        .map(|m| amount(m.amount(), "GetCostAndUsage"))
                        .transpose()?
                        .unwrap_or(0.0);
                    *services.entry(service).or_insert(0.0) += value;
                }
            }
            match page.next_page_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => break,
            }
        }
        Ok(out)
    }
}

fn interval(start: NaiveDate, end: NaiveDate, operation: &'static str) -> Result<DateInterval> {
    DateInterval::builder()
        .start(start.format("%Y-%m-%d").to_string())
        .end(end.format("%Y-%m-%d").to_string())
        .build()
        .map_err(|e| Error::unexpected("ce", operation, e.to_string()))
}

fn amount(text: Option<&str>, operation: &'static str) -> Result<f64> {
    let text = text.unwrap_or("0");
    text.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .ok_or_else(|| Error::unexpected("ce", operation, format!("amount {text:?} is not a number")))
}

/// The forecast API names metrics in SCREAMING_CASE.
fn forecast_metric(metric: &str) -> Metric {
    Metric::from(match metric {
        "BlendedCost" => "BLENDED_COST",
        "AmortizedCost" => "AMORTIZED_COST",
        "NetUnblendedCost" => "NET_UNBLENDED_COST",
        "NetAmortizedCost" => "NET_AMORTIZED_COST",
        _ => "UNBLENDED_COST",
    })
}

#[async_trait]
impl CostApi for CostExplorer {
    async fn cost_by_service(&self, start: NaiveDate, end: NaiveDate, metric: &str) -> Result<BTreeMap<String, f64>> {
        let mut out = BTreeMap::new();
        for services in self
            .by_period(start, end, metric, Granularity::Monthly)
            .await?
            .into_values()
        {
            for (service, usd) in services {
                *out.entry(service).or_insert(0.0) += usd;
            }
        }
        Ok(out)
    }

    async fn daily_cost_by_service(&self, start: NaiveDate, end: NaiveDate, metric: &str) -> Result<DailyCosts> {
        self.by_period(start, end, metric, Granularity::Daily).await
    }

    async fn forecast(&self, start: NaiveDate, end: NaiveDate, metric: &str) -> Result<f64> {
        let out = self
            .client
            .get_cost_forecast()
            .time_period(interval(start, end, "GetCostForecast")?)
            .granularity(Granularity::Monthly)
            .metric(forecast_metric(metric))
            .send()
            .await
            .map_err(|e| Error::aws("ce", "GetCostForecast", e))?;
        amount(out.total().and_then(|t| t.amount()), "GetCostForecast")
    }
}

//! Seeders: instances with tags, explicit daily CloudWatch datapoints, the state table, and an SNS
//! topic with an SQS queue subscribed so tests can read what was published.

use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit};
use aws_sdk_dynamodb::types::{AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType};
use aws_sdk_ec2::types::{InstanceMarketOptionsRequest, InstanceType, MarketType, ResourceType, Tag, TagSpecification};
use chrono::{DateTime, NaiveDate, Utc};
use finops_checks::idle_ec2::detect::lookback_days;

/// An Amazon Linux AMI that moto knows.
pub const AMI: &str = "ami-760aaa0f";

/// Daily usage to seed for one instance.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Usage {
    /// Daily average CPU (%).
    pub cpu: f64,
    /// NetworkIn bytes per day.
    pub net_in: f64,
    /// NetworkOut bytes per day.
    pub net_out: f64,
}

impl Usage {
    /// A quiet instance: 1% CPU, 100 KB of traffic a day.
    pub const IDLE: Usage = Usage {
        cpu: 1.0,
        net_in: 60_000.0,
        net_out: 40_000.0,
    };
    /// A busy instance: 45% CPU, 2 GB a day.
    pub const BUSY: Usage = Usage {
        cpu: 45.0,
        net_in: 1.2e9,
        net_out: 0.8e9,
    };
    /// Low CPU but heavy traffic (a proxy).
    pub const PROXY: Usage = Usage {
        cpu: 2.0,
        net_in: 3.0e8,
        net_out: 3.0e8,
    };
}

/// Launches `count` instances of `instance_type` with `tags` (a spot request when `spot`), with
/// private addresses only (a public IPv4 address a stop would release makes auto mode ask:
/// [`run_public_instances`] launches those).
pub async fn run_instances(
    ec2: &aws_sdk_ec2::Client,
    instance_type: &str,
    count: i32,
    tags: &[(&str, &str)],
    spot: bool,
) -> Vec<String> {
    launch(ec2, instance_type, count, tags, spot, false).await
}

/// As [`run_instances`] (On-Demand), each with an auto-assigned public IPv4 address.
pub async fn run_public_instances(
    ec2: &aws_sdk_ec2::Client,
    instance_type: &str,
    count: i32,
    tags: &[(&str, &str)],
) -> Vec<String> {
    launch(ec2, instance_type, count, tags, false, true).await
}

async fn launch(
    ec2: &aws_sdk_ec2::Client,
    instance_type: &str,
    count: i32,
    tags: &[(&str, &str)],
    spot: bool,
    public: bool,
) -> Vec<String> {
    let mut spec = TagSpecification::builder().resource_type(ResourceType::Instance);
    for (k, v) in tags {
        spec = spec.tags(Tag::builder().key(*k).value(*v).build());
    }
    let mut req = ec2
        .run_instances()
        .image_id(AMI)
        .instance_type(InstanceType::from(instance_type))
        .min_count(count)
        .max_count(count)
        .network_interfaces(
            aws_sdk_ec2::types::InstanceNetworkInterfaceSpecification::builder()
                .device_index(0)
                .associate_public_ip_address(public)
                .build(),
        );
    if !tags.is_empty() {
        req = req.tag_specifications(spec.build());
    }
    if spot {
        req = req.instance_market_options(
            InstanceMarketOptionsRequest::builder()
                .market_type(MarketType::Spot)
                .build(),
        );
    }
    let out = req.send().await.expect("RunInstances against moto");
    out.instances()
        .iter()
        .filter_map(|i| i.instance_id().map(str::to_string))
        .collect()
}

/// Launches one instance and returns its id.
pub async fn run_instance(ec2: &aws_sdk_ec2::Client, instance_type: &str, tags: &[(&str, &str)]) -> String {
    run_instances(ec2, instance_type, 1, tags, false).await.remove(0)
}

/// Stops an instance.
pub async fn stop(ec2: &aws_sdk_ec2::Client, id: &str) {
    ec2.stop_instances()
        .instance_ids(id)
        .send()
        .await
        .expect("StopInstances against moto");
}

/// The state name of an instance.
pub async fn state_of(ec2: &aws_sdk_ec2::Client, id: &str) -> String {
    // A filter, not InstanceIds: an unknown id is "missing", not an error. With a second filter
    // (any state) it is the test's own look at the truth: the fault layer's stale reads answer
    // only a read naming the one instance alone (tests/moto_server.py).
    let filter = aws_sdk_ec2::types::Filter::builder()
        .name("instance-id")
        .values(id)
        .build();
    let any_state = aws_sdk_ec2::types::Filter::builder()
        .name("instance-state-name")
        .set_values(Some(
            [
                "pending",
                "running",
                "stopping",
                "stopped",
                "shutting-down",
                "terminated",
            ]
            .map(String::from)
            .to_vec(),
        ))
        .build();
    let out = ec2
        .describe_instances()
        .filters(filter)
        .filters(any_state)
        .send()
        .await
        .expect("DescribeInstances");
    out.reservations()
        .iter()
        .flat_map(|r| r.instances())
        .find_map(|i| i.state().and_then(|s| s.name()).map(|n| n.as_str().to_string()))
        .unwrap_or_else(|| "missing".into())
}

/// Adds or replaces a tag.
pub async fn tag(ec2: &aws_sdk_ec2::Client, id: &str, key: &str, value: &str) {
    ec2.create_tags()
        .resources(id)
        .tags(Tag::builder().key(key).value(value).build())
        .send()
        .await
        .expect("CreateTags against moto");
}

/// Creates a volume (unattached) and returns its id.
pub async fn create_volume(
    ec2: &aws_sdk_ec2::Client,
    volume_type: &str,
    size_gib: i32,
    iops: Option<i32>,
    az: &str,
    tags: &[(&str, &str)],
) -> String {
    let mut req = ec2
        .create_volume()
        .availability_zone(az)
        .size(size_gib)
        .volume_type(aws_sdk_ec2::types::VolumeType::from(volume_type))
        .set_iops(iops);
    if !tags.is_empty() {
        let mut spec = TagSpecification::builder().resource_type(ResourceType::Volume);
        for (k, v) in tags {
            spec = spec.tags(Tag::builder().key(*k).value(*v).build());
        }
        req = req.tag_specifications(spec.build());
    }
    let out = req.send().await.expect("CreateVolume against moto");
    out.volume_id().expect("volume id").to_string()
}

/// Attaches a volume to an instance.
pub async fn attach(ec2: &aws_sdk_ec2::Client, volume: &str, instance: &str) {
    ec2.attach_volume()
        .volume_id(volume)
        .instance_id(instance)
        .device("/dev/sdf")
        .send()
        .await
        .expect("AttachVolume against moto");
}

/// Every volume of the account: (id, state, type, az, size, iops, tags).
pub async fn volumes(ec2: &aws_sdk_ec2::Client) -> Vec<aws_sdk_ec2::types::Volume> {
    let out = ec2
        .describe_volumes()
        .max_results(1000)
        .send()
        .await
        .expect("DescribeVolumes");
    out.volumes().to_vec()
}

/// Every snapshot FinOps Autopilot took (moto's account also holds its AMIs' snapshots).
pub async fn snapshots(ec2: &aws_sdk_ec2::Client) -> Vec<aws_sdk_ec2::types::Snapshot> {
    let out = ec2
        .describe_snapshots()
        .owner_ids("self")
        .send()
        .await
        .expect("DescribeSnapshots");
    out.snapshots()
        .iter()
        .filter(|s| s.tags().iter().any(|t| t.key() == Some("finops:source-volume-id")))
        .cloned()
        .collect()
}

/// One datapoint per metric per day, at noon UTC, for every day of the lookback ending before `now`.
/// Days in `skip` get no CPU datapoint (as when an agent or CloudWatch has a gap).
pub fn daily_datums(
    instance_id: &str,
    usage: Usage,
    now: DateTime<Utc>,
    days: u32,
    skip: &[NaiveDate],
) -> Vec<MetricDatum> {
    let dim = Dimension::builder().name("InstanceId").value(instance_id).build();
    let mut out = Vec::new();
    for day in lookback_days(now, days) {
        let Some(noon) = day.and_hms_opt(12, 0, 0) else {
            continue;
        };
        let ts = aws_smithy_types::DateTime::from_secs(noon.and_utc().timestamp());
        let datum = |name: &str, value: f64, unit: StandardUnit| {
            MetricDatum::builder()
                .metric_name(name)
                .dimensions(dim.clone())
                .timestamp(ts)
                .value(value)
                .unit(unit)
                .build()
        };
        if !skip.contains(&day) {
            out.push(datum("CPUUtilization", usage.cpu, StandardUnit::Percent));
        }
        out.push(datum("NetworkIn", usage.net_in, StandardUnit::Bytes));
        out.push(datum("NetworkOut", usage.net_out, StandardUnit::Bytes));
    }
    out
}

/// Puts datums in the AWS/EC2 namespace, 1,000 per call (the API's limit).
pub async fn put_datums(cw: &aws_sdk_cloudwatch::Client, datums: Vec<MetricDatum>) {
    for chunk in datums.chunks(1000) {
        cw.put_metric_data()
            .namespace("AWS/EC2")
            .set_metric_data(Some(chunk.to_vec()))
            .send()
            .await
            .expect("PutMetricData against moto");
    }
}

/// Seeds `days` days of `usage` for an instance.
pub async fn put_usage(cw: &aws_sdk_cloudwatch::Client, id: &str, usage: Usage, now: DateTime<Utc>, days: u32) {
    put_datums(cw, daily_datums(id, usage, now, days, &[])).await;
}

/// Creates the single state table (`pk`/`sk`, on demand), as the SAM template does.
pub async fn create_table(ddb: &aws_sdk_dynamodb::Client, name: &str) {
    let attr = |n: &str| {
        AttributeDefinition::builder()
            .attribute_name(n)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .expect("attribute definition")
    };
    let key = |n: &str, t: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(n)
            .key_type(t)
            .build()
            .expect("key")
    };
    ddb.create_table()
        .table_name(name)
        .attribute_definitions(attr("pk"))
        .attribute_definitions(attr("sk"))
        .key_schema(key("pk", KeyType::Hash))
        .key_schema(key("sk", KeyType::Range))
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .expect("CreateTable against moto");
}

/// Every item of the table, as JSON-ish maps of strings (scan, all pages).
pub async fn scan_table(ddb: &aws_sdk_dynamodb::Client, name: &str) -> Vec<std::collections::HashMap<String, String>> {
    use aws_sdk_dynamodb::types::AttributeValue;
    let mut items = Vec::new();
    let mut pages = ddb.scan().table_name(name).into_paginator().items().send();
    while let Some(item) = pages.next().await {
        let item = item.expect("Scan against moto");
        items.push(
            item.into_iter()
                .map(|(k, v)| {
                    let v = match v {
                        AttributeValue::S(s) => s,
                        AttributeValue::N(n) => n,
                        AttributeValue::Bool(b) => b.to_string(),
                        other => format!("{other:?}"),
                    };
                    (k, v)
                })
                .collect(),
        );
    }
    items
}

/// A topic with an SQS queue subscribed (envelopes, not raw, so attributes are visible).
pub async fn topic_with_queue(sns: &aws_sdk_sns::Client, sqs: &aws_sdk_sqs::Client, name: &str) -> (String, String) {
    let topic = sns.create_topic().name(name).send().await.expect("CreateTopic");
    let topic_arn = topic.topic_arn().expect("topic arn").to_string();
    let queue_url = subscribed_queue(sns, sqs, &topic_arn, &format!("{name}-q"), &[]).await;
    (topic_arn, queue_url)
}

/// Creates the secret `name` holding `value` (JSON text); its ARN.
pub async fn create_secret(sm: &aws_sdk_secretsmanager::Client, name: &str, value: &str) -> String {
    sm.create_secret()
        .name(name)
        .secret_string(value)
        .send()
        .await
        .expect("CreateSecret")
        .arn()
        .unwrap_or_default()
        .to_string()
}

/// Encrypts `topic_arn` with the key `key_arn`, as the template encrypts its topic with its own
/// customer managed key (publishers then need that key: `tests/aws_iam.py`).
pub async fn encrypt_topic(sns: &aws_sdk_sns::Client, topic_arn: &str, key_arn: &str) {
    sns.set_topic_attributes()
        .topic_arn(topic_arn)
        .attribute_name("KmsMasterKeyId")
        .attribute_value(key_arn)
        .send()
        .await
        .expect("SetTopicAttributes KmsMasterKeyId");
}

/// A queue named `name` subscribed to `topic_arn` with the subscription attributes `attributes`
/// (e.g. `FilterPolicy` and `FilterPolicyScope` as a template gives them); its URL.
pub async fn subscribed_queue(
    sns: &aws_sdk_sns::Client,
    sqs: &aws_sdk_sqs::Client,
    topic_arn: &str,
    name: &str,
    attributes: &[(&str, String)],
) -> String {
    let queue = sqs.create_queue().queue_name(name).send().await.expect("CreateQueue");
    let queue_url = queue.queue_url().expect("queue url").to_string();
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(&queue_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("GetQueueAttributes");
    let queue_arn = attrs
        .attributes()
        .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn))
        .expect("queue arn")
        .clone();
    let mut subscribe = sns.subscribe().topic_arn(topic_arn).protocol("sqs").endpoint(queue_arn);
    for (k, v) in attributes {
        subscribe = subscribe.attributes(*k, v.clone());
    }
    subscribe.send().await.expect("Subscribe");
    queue_url
}

/// Every message waiting in the queue, each as the SNS envelope (JSON), removed from the queue.
pub async fn drain_queue(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    loop {
        let batch = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .send()
            .await
            .expect("ReceiveMessage");
        let messages = batch.messages();
        if messages.is_empty() {
            break;
        }
        for m in messages {
            if let Some(body) = m.body() {
                out.push(serde_json::from_str(body).expect("SNS envelope is JSON"));
            }
            if let Some(handle) = m.receipt_handle() {
                sqs.delete_message()
                    .queue_url(queue_url)
                    .receipt_handle(handle)
                    .send()
                    .await
                    .expect("DeleteMessage");
            }
        }
    }
    out
}

/// Seeds one datapoint per hour (at half past) of `days` whole days before `now`'s day, of
/// `namespace`/`metric` for an instance, with `value(hour index)`.
pub async fn put_hourly(
    cw: &aws_sdk_cloudwatch::Client,
    namespace: &str,
    metric: &str,
    instance_id: &str,
    now: DateTime<Utc>,
    days: u32,
    value: impl Fn(usize) -> f64,
) {
    let dim = Dimension::builder().name("InstanceId").value(instance_id).build();
    let unit = if metric.contains("percent") || metric == "CPUUtilization" {
        StandardUnit::Percent
    } else {
        StandardUnit::Bytes
    };
    let mut datums = Vec::new();
    for (d, day) in lookback_days(now, days).into_iter().enumerate() {
        for hour in 0..24 {
            let Some(t) = day.and_hms_opt(hour, 30, 0) else {
                continue;
            };
            datums.push(
                MetricDatum::builder()
                    .metric_name(metric)
                    .dimensions(dim.clone())
                    .timestamp(aws_smithy_types::DateTime::from_secs(t.and_utc().timestamp()))
                    .value(value(d * 24 + hour as usize))
                    .unit(unit.clone())
                    .build(),
            );
        }
    }
    for chunk in datums.chunks(1000) {
        cw.put_metric_data()
            .namespace(namespace)
            .set_metric_data(Some(chunk.to_vec()))
            .send()
            .await
            .expect("PutMetricData against moto");
    }
}

/// Queues one GetCostAndUsage answer in moto for `start`..`end`, one group per (service, USD)
/// (moto hands queued answers to new distinct requests in order, and the same answer to a repeat).
pub fn queue_costs<S: AsRef<str>>(moto: &crate::Moto, start: &str, end: &str, services: &[(S, f64)]) {
    let groups: Vec<serde_json::Value> = services
        .iter()
        .map(|(s, usd)| {
            serde_json::json!({"Keys": [s.as_ref()], "Metrics": {"UnblendedCost": {"Amount": usd.to_string(), "Unit": "USD"}}})
        })
        .collect();
    let body = serde_json::json!({"results": [{
        "ResultsByTime": [{"TimePeriod": {"Start": start, "End": end}, "Total": {}, "Groups": groups, "Estimated": true}],
        "DimensionValueAttributes": []
    }]});
    match crate::moto::http(
        moto.port,
        "POST",
        "/moto-api/static/ce/cost-and-usage-results",
        &body.to_string(),
    ) {
        Ok(r) if r.starts_with("HTTP/1.1 201") => {}
        other => panic!("moto did not queue the costs: {other:?}"),
    }
}

//! The local AWS's eventual consistency (a `stale` rule of the fault layer in
//! `tests/moto_server.py`): right after a write, a read of that resource may show the state before
//! it, as EC2, S3 bucket configuration and DynamoDB's eventually consistent reads do; after the
//! window, and for a strongly consistent read, the new state.

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_ec2::types::InstanceStateName;
use finops_tests::{seed, Moto};
use serde_json::json;

/// The instance's state, read by its id as the actions' own verifications read it (the stale layer
/// answers reads that name one resource; `seed::state_of` reads through a filter).
async fn state(ec2: &aws_sdk_ec2::Client, id: &str) -> Option<InstanceStateName> {
    let out = ec2
        .describe_instances()
        .instance_ids(id)
        .send()
        .await
        .expect("DescribeInstances");
    out.reservations()
        .iter()
        .flat_map(|r| r.instances())
        .find_map(|i| i.state().and_then(|s| s.name()).cloned())
}

#[tokio::test]
async fn at_a_full_stale_rate_reads_right_after_a_write_show_the_old_state_until_the_window_ends() {
    let moto = Moto::start().expect("moto");
    let c = moto.clients().await;
    let ids = seed::run_instances(&c.ec2, "t3.micro", 1, &[], false).await;
    let id = &ids[0];
    seed::create_table(&c.dynamodb, "finops-state").await;
    moto.fault_rule(json!({"fault": "stale", "service": "*", "share": 1.0, "seed": 1, "window_ms": 1500}))
        .await;

    c.ec2
        .stop_instances()
        .instance_ids(id)
        .send()
        .await
        .expect("StopInstances");
    assert_eq!(
        state(&c.ec2, id).await,
        Some(InstanceStateName::Running),
        "the read right after shows the old state"
    );

    let key = |v: &str| AttributeValue::S(v.to_string());
    c.dynamodb
        .put_item()
        .table_name("finops-state")
        .item("pk", key("APPROVAL#1"))
        .item("sk", key("REQUEST"))
        .send()
        .await
        .expect("PutItem");
    let eventual = c
        .dynamodb
        .get_item()
        .table_name("finops-state")
        .key("pk", key("APPROVAL#1"))
        .key("sk", key("REQUEST"))
        .send()
        .await
        .expect("GetItem");
    assert!(
        eventual.item().is_none(),
        "an eventually consistent read may miss a new item"
    );
    let strong = c
        .dynamodb
        .get_item()
        .table_name("finops-state")
        .key("pk", key("APPROVAL#1"))
        .key("sk", key("REQUEST"))
        .consistent_read(true)
        .send()
        .await
        .expect("GetItem");
    assert!(strong.item().is_some(), "a strongly consistent read sees it");

    tokio::time::sleep(std::time::Duration::from_millis(1700)).await;
    assert_eq!(
        state(&c.ec2, id).await,
        Some(InstanceStateName::Stopped),
        "after the window, the new state"
    );
    let rules = moto.faults().await;
    assert!(rules[0]["injected"].as_u64().unwrap_or(0) >= 2, "{rules}");
}

//! unattached-eip end to end against moto (EC2's addresses, network interfaces and tags): the real
//! handler and SDK.

use aws_sdk_ec2::types::{DomainType, Tag};
use chrono::Utc;
use finops_tests::{seed, Moto};
use remediation::model::{ActionKind, OutcomeKind};
use remediation::policy::{Mode, Policy};

const TABLE: &str = "finops-state";

fn event() -> serde_json::Value {
    serde_json::from_str(include_str!("../../events/unattached-eip/scheduled.json")).unwrap()
}

async fn allocate(ec2: &aws_sdk_ec2::Client) -> String {
    let out = ec2.allocate_address().domain(DomainType::Vpc).send().await.unwrap();
    out.allocation_id().unwrap().to_string()
}

#[tokio::test]
async fn only_the_address_associated_with_nothing_is_reported_and_none_is_released_even_in_auto_mode() {
    let moto = Moto::start().unwrap();
    let c = moto.clients().await;
    seed::create_table(&c.dynamodb, TABLE).await;
    let ec2 = &c.ec2;

    let instance = seed::run_instance(ec2, "t3.micro", &[]).await;
    let on_instance = allocate(ec2).await;
    ec2.associate_address()
        .allocation_id(&on_instance)
        .instance_id(&instance)
        .send()
        .await
        .unwrap();
    // A NAT gateway's or a load balancer's address: on a network interface, no instance.
    let subnets = ec2.describe_subnets().send().await.unwrap();
    let subnet = subnets.subnets()[0].subnet_id().unwrap().to_string();
    let eni = ec2.create_network_interface().subnet_id(&subnet).send().await.unwrap();
    let eni = eni
        .network_interface()
        .unwrap()
        .network_interface_id()
        .unwrap()
        .to_string();
    let on_interface = allocate(ec2).await;
    ec2.associate_address()
        .allocation_id(&on_interface)
        .network_interface_id(&eni)
        .send()
        .await
        .unwrap();
    let exempt = allocate(ec2).await;
    ec2.create_tags()
        .resources(&exempt)
        .tags(Tag::builder().key("finops:exempt").value("true").build())
        .send()
        .await
        .unwrap();
    let free = allocate(ec2).await;

    let policy = Policy {
        mode: Mode::Auto,
        ..Policy::default()
    };
    let deps = finops_tests::deps(&moto, "unattached-eip", policy, Some(TABLE), None).await;
    let report = unattached_eip::handler::handle(event(), &deps, Utc::now())
        .await
        .unwrap();

    assert_eq!(
        report.mode,
        Mode::DryRun,
        "whatever the policy says: a release cannot be undone"
    );
    assert_eq!(report.findings.len(), 1, "{:#?}", report.findings);
    let f = &report.findings[0];
    assert_eq!(f.resource.id, free);
    assert_eq!(f.action, ActionKind::Notify);
    assert_eq!(f.estimated_monthly_savings_usd, Some(3.65));
    let outcome = |id: &str| {
        report
            .outcomes
            .iter()
            .find(|o| o.finding_id.ends_with(&format!(":{id}")))
            .unwrap_or_else(|| panic!("no outcome for {id}: {:#?}", report.outcomes))
    };
    assert_eq!(outcome(&free).outcome, OutcomeKind::DryRun);
    for (id, why) in [
        (&on_instance, format!("associated with {instance}")),
        (&on_interface, format!("associated with {eni}")),
        (&exempt, "exempt: tag finops:exempt=true".to_string()),
    ] {
        assert_eq!(outcome(id).outcome, OutcomeKind::Skipped);
        assert_eq!(outcome(id).detail, why);
    }
    // Nothing was released.
    let left = ec2.describe_addresses().send().await.unwrap();
    assert_eq!(left.addresses().len(), 4);
}

//! 200 concurrent mixed requests on the approval function (issue 12, item 8): 40 open requests,
//! each approved once and replayed at the same moment, 40 forged links, 40 Slack clicks whose
//! signature is ten minutes old and 40 oversized bodies. Each request executes exactly once; every
//! bad request gets its 4xx; nothing answers 5xx.

use std::collections::BTreeMap;

use finops_tests::approvals::Loop;
use finops_tests::load::{self, Kind};
use finops_tests::seed;
use remediation::state::ApprovalStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_mixed_requests_at_once_execute_each_approval_once_and_refuse_the_rest() {
    let lp = Loop::start(load::policy()).await;
    let open = load::open_requests(&lp, 40).await;
    assert_eq!(open.len(), 40);
    lp.moto
        .fault_rule(serde_json::json!({"service": "ec2", "operation": "StopInstances", "share": 0.0}))
        .await;
    let answers = load::fire(&lp, &open).await;
    assert_eq!(answers.len(), 200);

    let mut by_kind: BTreeMap<Kind, Vec<u16>> = BTreeMap::new();
    for a in &answers {
        by_kind.entry(a.kind).or_default().push(a.status);
    }
    for a in &answers {
        assert!(
            a.status != 0 && a.status < 500,
            "{:?} answered {}: {}",
            a.kind,
            a.status,
            a.body
        );
    }
    for kind in [Kind::Forged, Kind::StaleSlack, Kind::Oversized] {
        let statuses = &by_kind[&kind];
        assert!(
            statuses.iter().all(|s| (400..500).contains(s)),
            "{kind:?}: {statuses:?}"
        );
    }
    // Of each approval and its replay, one executed; the other was told it is decided already (409).
    for o in &open {
        let pair: Vec<_> = answers
            .iter()
            .filter(|a| a.request_id.as_deref() == Some(o.request_id.as_str()))
            .collect();
        assert_eq!(pair.len(), 2);
        let done = pair
            .iter()
            .filter(|a| a.status == 200 && a.body.contains("Done"))
            .count();
        assert_eq!(
            done,
            1,
            "{}: {:?}",
            o.request_id,
            pair.iter().map(|a| (a.status, &a.body)).collect::<Vec<_>>()
        );
        let stored = lp.state().approval(&o.request_id).await.unwrap().unwrap();
        assert_eq!(stored.status, "executed", "{}", o.request_id);
        assert_eq!(
            seed::state_of(&lp.moto.clients().await.ec2, &o.instance).await,
            "stopped"
        );
    }
    // One StopInstances per request reached AWS: nothing executed twice.
    let rules = lp.moto.faults().await;
    assert_eq!(rules[0]["seen"], 40, "{rules}");
    let items = seed::scan_table(&lp.moto.clients().await.dynamodb, finops_tests::approvals::TABLE).await;
    assert_eq!(items.iter().filter(|i| i["pk"].starts_with("ACTION#")).count(), 40);
}

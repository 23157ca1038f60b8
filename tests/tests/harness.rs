//! The moto harness itself: it starts on a free port, answers the real SDK, and resets.

use finops_tests::{seed, Moto};

#[tokio::test]
async fn two_servers_run_side_by_side_and_reset_empties_the_account() {
    let a = Moto::start().unwrap();
    let b = Moto::start().unwrap();
    assert_ne!(a.port, b.port);
    let ca = a.clients().await;
    let id = seed::run_instance(&ca.ec2, "t3.micro", &[]).await;
    assert_eq!(seed::state_of(&ca.ec2, &id).await, "running");
    // b is a separate account.
    let cb = b.clients().await;
    assert_eq!(seed::state_of(&cb.ec2, &id).await, "missing");

    a.reset().unwrap();
    assert_eq!(seed::state_of(&ca.ec2, &id).await, "missing");
}

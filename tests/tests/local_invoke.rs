//! `make invoke` (the `local` binary): a function that fails at start-up ends the invocation at
//! once with its error, and an invocation that is interrupted or killed leaves no process behind.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use finops_tests::local::debug_dir;
use finops_tests::moto::workspace_root;

/// The processes (other than the caller's) whose environment carries `marker`.
fn marked(marker: &str) -> Vec<String> {
    let needle = format!("FINOPS_TEST_MARKER={marker}");
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let pid = entry.file_name().to_string_lossy().to_string();
        if !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(env) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        if env.split(|b| *b == 0).any(|v| v == needle.as_bytes()) {
            let cmd = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            out.push(format!("{pid}: {}", String::from_utf8_lossy(&cmd).replace('\0', " ")));
        }
    }
    out
}

/// `local invoke idle-ec2 <event>` with only `env` (and PATH with the venv's cargo-lambda).
fn invoke(marker: &str, env: &[(&str, String)], own_group: bool) -> Child {
    let root = workspace_root();
    let path = format!(
        "{}:{}",
        root.join(".venv/bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = Command::new(debug_dir().join("local"));
    cmd.args(["invoke", "idle-ec2"])
        .arg(root.join("events/idle-ec2/scheduled.json"))
        .env_clear()
        .env("PATH", path)
        .env("HOME", std::env::var("HOME").unwrap_or_default())
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("FINOPS_TEST_MARKER", marker)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if own_group {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
    }
    cmd.spawn()
        .expect("the local binary runs (built by cargo test --workspace)")
}

/// Waits for `child` to exit, killing it and failing the test if it has not after `limit` (a
/// hang, not a slow run: the expected exit is within a second or two).
fn exit_within(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("local invoke hung for {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn none_left(marker: &str) {
    // The parent-death signal is delivered at once; allow the kernel a moment to reap.
    let start = Instant::now();
    while !marked(marker).is_empty() && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(marked(marker), Vec::<String>::new(), "processes left behind");
}

fn marker(name: &str) -> String {
    format!("{name}-{}", std::process::id())
}

#[test]
fn a_function_that_fails_at_start_up_ends_the_invocation_at_once_with_its_error() {
    let m = marker("startup");
    let mut child = invoke(&m, &[], false);
    let status = exit_within(&mut child, Duration::from_secs(120));
    let out = child.wait_with_output().expect("output");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("local: idle-ec2 exited before answering: Error: Config(\"no AWS region: set AWS_REGION\")"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty(), "nothing on stdout but a response");
    none_left(&m);
}

#[test]
fn an_invocation_interrupted_or_killed_mid_run_leaves_no_process_behind() {
    // An endpoint that takes connections and never answers: the function waits inside its scan.
    let silent = TcpListener::bind("127.0.0.1:0").expect("bind");
    let endpoint = format!("http://{}", silent.local_addr().expect("addr"));
    let env = [
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_REGION", "us-east-1".to_string()),
        ("AWS_ACCESS_KEY_ID", "testing".to_string()),
        ("AWS_SECRET_ACCESS_KEY", "testing".to_string()),
    ];
    let running = |m: &str| {
        let start = Instant::now();
        while !marked(m).iter().any(|p| p.contains("debug/idle-ec2")) {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "the function never started: {:?}",
                marked(m)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };

    // Ctrl-C in a terminal: SIGINT to the whole foreground group.
    let m = marker("ctrl-c");
    let mut child = invoke(&m, &env, true);
    running(&m);
    let pgid = libc::pid_t::try_from(child.id()).expect("pid");
    // SAFETY: sends a signal to the group this test made for the child alone.
    unsafe {
        libc::killpg(pgid, libc::SIGINT);
    }
    exit_within(&mut child, Duration::from_secs(30));
    none_left(&m);

    // Killed outright (SIGKILL to `local` alone: no handler, no drop runs).
    let m = marker("killed");
    let mut child = invoke(&m, &env, false);
    running(&m);
    child.kill().expect("kill");
    exit_within(&mut child, Duration::from_secs(30));
    none_left(&m);
    drop(silent);
}

/// `make invoke` runs the function with the deadline Lambda would give it (now plus its Timeout
/// in the template, 900 s for ebs-cleanup) through a real `Lambda-Runtime-Deadline-Ms` header,
/// so in auto mode it acts: an unattached volume past its grace period is snapshotted (the
/// snapshot kept, tagged with its way back) and deleted, as its template role may do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn make_invoke_in_auto_mode_snapshots_and_deletes_an_unattached_volume() {
    let moto = finops_tests::Moto::start().expect("moto");
    let c = moto.clients().await;
    finops_tests::seed::create_table(&c.dynamodb, "finops-state").await;
    let volume = finops_tests::seed::create_volume(&c.ec2, "gp3", 100, None, "us-east-1a", &[("Owner", "ana")]).await;
    let key = moto.role_key("ebs-cleanup", &finops_tests::Stack::default()).await;
    let root = workspace_root();
    let path = format!(
        "{}:{}",
        root.join(".venv/bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let policy = r#"{"mode": "auto", "max_actions_percent": 100, "ebs_cleanup": {"grace_days": 0}}"#;
    let out = tokio::task::spawn_blocking(move || {
        Command::new("make")
            .current_dir(&root)
            .args([
                "-s",
                "invoke",
                "FN=ebs-cleanup",
                "EVENT=events/ebs-cleanup/scheduled.json",
            ])
            .env_clear()
            .env("PATH", path)
            .env("HOME", std::env::var("HOME").unwrap_or_default())
            .env("CARGO_TARGET_DIR", debug_dir().parent().expect("target dir"))
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_ENDPOINT_URL", moto.endpoint())
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", key)
            .env("AWS_SECRET_ACCESS_KEY", "role-secret")
            .env("FINOPS_TABLE", "finops-state")
            .env("FINOPS_POLICY", policy)
            .stdin(Stdio::null())
            .output()
            .map(|o| (o, moto))
    })
    .await
    .expect("join")
    .expect("make invoke runs");
    let (out, moto) = out;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "make invoke failed: {stderr}");
    let response: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object on stdout");
    let outcomes = response["outcomes"].to_string();
    assert!(!outcomes.contains("deferred"), "an action was deferred: {outcomes}");
    assert_eq!(response["outcomes"][0]["outcome"], "executed", "{response:#}");
    let c = moto.clients().await;
    let left: Vec<String> = finops_tests::seed::volumes(&c.ec2)
        .await
        .iter()
        .filter_map(|v| v.volume_id().map(str::to_string))
        .collect();
    assert!(!left.contains(&volume), "{volume} is still there: {outcomes}");
    let snapshots = finops_tests::seed::snapshots(&c.ec2).await;
    assert!(
        snapshots.iter().any(|s| s.volume_id() == Some(volume.as_str())),
        "no snapshot of {volume} was kept"
    );
    assert!(moto.iam_refusals().await.is_empty(), "{:?}", moto.iam_refusals().await);
}

/// The Runtime API that `make invoke` uses hands out Lambda's deadline: epoch milliseconds, now
/// plus the function's Timeout in the template (ebs-cleanup 900 s, idle-ec2 the Globals' 300 s).
#[test]
fn the_local_runtime_hands_out_now_plus_the_templates_timeout_as_the_deadline() {
    assert_eq!(
        finops_tests::local::deployed_timeout("ebs-cleanup"),
        Duration::from_secs(900)
    );
    assert_eq!(
        finops_tests::local::deployed_timeout("idle-ec2"),
        Duration::from_secs(300)
    );
    assert_eq!(
        finops_tests::local::deployed_timeout("cost-alert"),
        Duration::from_secs(60)
    );
    for f in finops_checks::permissions::FUNCTIONS {
        let t = finops_tests::local::deployed_timeout(f);
        assert!(
            t >= Duration::from_secs(30) && t <= Duration::from_secs(900),
            "{f}: {t:?}"
        );
    }
    // A port nobody listens on: the scan fails at once, after the event was handed over.
    let closed = TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr");
    let env: Vec<(String, String)> = [
        ("AWS_REGION", "us-east-1".to_string()),
        ("AWS_ENDPOINT_URL", format!("http://{closed}")),
        ("AWS_ACCESS_KEY_ID", "testing".to_string()),
        ("AWS_SECRET_ACCESS_KEY", "testing".to_string()),
        ("AWS_MAX_ATTEMPTS", "1".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let watch = finops_tests::local::Watch::start("idle-ec2", &env).expect("starts");
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let _ = watch.invoke("idle-ec2", &workspace_root().join("events/idle-ec2/scheduled.json"));
    let deadlines = watch.deadlines();
    assert_eq!(deadlines.len(), 1);
    let left = deadlines[0].saturating_sub(before);
    assert!(
        (299_000..=301_000).contains(&left),
        "deadline {} is now + {left} ms",
        deadlines[0]
    );
}

//! Runs a function's real Lambda binary locally: an emulator of Lambda's Runtime API
//! ([`RuntimeApi`]) serves it on a free loopback port, the function's binary (from the shared
//! workspace build, never rebuilt here) runs against it, and one event is handed to it with the
//! deadline Lambda would give: now plus the function's `Timeout` in the template. (`cargo lambda
//! watch` hands every invocation the fixed `Lambda-Runtime-Deadline-Ms: 600000`, a deadline in
//! 1970, so nothing run through it could ever act.) The function is our own child, so a function
//! that dies (at start-up or mid-invocation) ends the invocation at once with its error; it stays
//! in our process group (a Ctrl-C reaches it too), dies with us whatever kills us (Linux's
//! parent-death signal), and is killed on drop.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use crate::httpserver::{Response, Server};
use crate::moto::workspace_root;
/// The lines of the function's stderr kept for an error message.
const KEPT_LINES: usize = 20;

/// A child that dies with this process, and is killed on drop.
struct Group(Child);

impl Group {
    fn spawn(mut cmd: Command) -> std::io::Result<Group> {
        #[cfg(target_os = "linux")]
        {
            use std::os::unix::process::CommandExt;
            // SAFETY: prctl is async-signal-safe; it only sets the signal the child gets when
            // the thread that started it dies.
            unsafe {
                cmd.pre_exec(|| {
                    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        cmd.spawn().map(Group)
    }

    fn kill(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The emulator and the function running against it.
pub struct Watch {
    function: String,
    emulator: RuntimeApi,
    process: Group,
    /// The last lines the function wrote to stderr (also passed through to ours).
    stderr_tail: Arc<Mutex<Vec<String>>>,
    /// The port invocations go to.
    pub port: u16,
}

/// Variables passed through to the function: AWS settings and the system's own.
fn passthrough_env() -> Vec<(String, String)> {
    std::env::vars()
        .filter(|(k, _)| k.starts_with("AWS_") || k.starts_with("FINOPS_") || k == "RUST_LOG")
        .collect()
}

/// Where the workspace's debug binaries are: `CARGO_TARGET_DIR`, or beside this executable
/// (`target/debug/…`, or `target/debug/deps/…` for a test), or `target/debug`.
pub fn debug_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("debug");
    }
    let exe = std::env::current_exe().ok();
    let beside = exe.as_deref().and_then(Path::parent).map(|d| {
        if d.ends_with("deps") {
            d.parent().map(Path::to_path_buf).unwrap_or_else(|| d.to_path_buf())
        } else {
            d.to_path_buf()
        }
    });
    beside.unwrap_or_else(|| workspace_root().join("target/debug"))
}

impl Watch {
    /// Starts the emulator, then `function`'s binary (built by `make debug-build`) with `env`
    /// plus the pass-through variables.
    pub fn start(function: &str, env: &[(String, String)]) -> Result<Watch, String> {
        let binary = debug_dir().join(function);
        if !binary.is_file() {
            return Err(format!(
                "no binary at {}: build it first (make debug-build)",
                binary.display()
            ));
        }
        let emulator = RuntimeApi::start(function, deployed_timeout(function))?;
        let port = emulator.port;
        let mut cmd = Command::new(&binary);
        cmd.env_remove("AWS_LAMBDA_RUNTIME_API")
            .envs(passthrough_env())
            .envs(env.iter().cloned())
            .env("AWS_LAMBDA_RUNTIME_API", format!("http://127.0.0.1:{port}"))
            .env("AWS_LAMBDA_FUNCTION_NAME", function)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut process = Group::spawn(cmd).map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
        let stderr_tail: Arc<Mutex<Vec<String>>> = Arc::default();
        if let Some(err) = process.0.stderr.take() {
            let tail = stderr_tail.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(err).lines().map_while(Result::ok) {
                    eprintln!("{line}");
                    if let Ok(mut t) = tail.lock() {
                        t.push(line);
                        let over = t.len().saturating_sub(KEPT_LINES);
                        t.drain(..over);
                    }
                }
            });
        }
        Ok(Watch {
            function: function.to_string(),
            emulator,
            process,
            stderr_tail,
            port,
        })
    }

    /// Why the function died: its last line on stderr (Rust's `Error: …` of a failed `main`),
    /// which was also passed through to ours.
    fn last_words(&self) -> String {
        // Let the reader thread catch the last lines of a process that just exited.
        std::thread::sleep(Duration::from_millis(200));
        let tail = self.stderr_tail.lock().map(|t| t.clone()).unwrap_or_default();
        tail.iter()
            .rev()
            .find(|l| l.starts_with("Error: "))
            .or_else(|| tail.iter().rev().find(|l| !l.trim().is_empty()))
            .cloned()
            .unwrap_or_else(|| "(it wrote nothing to stderr)".into())
    }

    /// Invokes the function once with the event in `event_file`; its JSON response, or its error
    /// (what it returned, or why it died) as soon as it is known.
    pub fn invoke(&self, function: &str, event_file: &Path) -> Result<serde_json::Value, String> {
        if function != self.function {
            return Err(format!("this runs {}, not {function}", self.function));
        }
        let event = std::fs::read(event_file).map_err(|e| format!("cannot read {}: {e}", event_file.display()))?;
        let answers = self.emulator.hand(event);
        let started = Instant::now();
        let limit = self.emulator.timeout + Duration::from_secs(5);
        // The process handle is only read here (try_wait through a shared borrow is not
        // possible), so poll its pid for exit instead.
        let pid = self.process.0.id();
        loop {
            match answers.recv_timeout(Duration::from_millis(100)) {
                Ok(Answer::Response(body)) => {
                    return serde_json::from_str(body.trim())
                        .map_err(|e| format!("{function} answered something that is not JSON ({e}): {body}"))
                }
                Ok(Answer::Error(body)) => return Err(format!("{function} failed: {body}")),
                Ok(Answer::InitError(body)) => return Err(format!("{function} failed at start-up: {body}")),
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(format!("the invocation of {function} ended without an answer"))
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
            if !alive(pid) {
                return Err(format!("{function} exited before answering: {}", self.last_words()));
            }
            if started.elapsed() > limit {
                return Err(format!(
                    "{function} timed out after {} s (its Timeout in the template), as Lambda would end it",
                    self.emulator.timeout.as_secs()
                ));
            }
        }
    }

    /// The `Lambda-Runtime-Deadline-Ms` of each invocation handed out so far.
    pub fn deadlines(&self) -> Vec<u64> {
        self.emulator
            .shared
            .deadlines
            .lock()
            .map(|d| d.clone())
            .unwrap_or_default()
    }
}

/// `function`'s `Timeout` as the template deploys it (its own, else the `Globals`', else
/// Lambda's default of 3 s).
pub fn deployed_timeout(function: &str) -> Duration {
    let t = crate::infra::load("template.yaml");
    let own = t["Resources"].as_mapping().and_then(|resources| {
        resources.values().find(|r| {
            r["Type"].as_str() == Some("AWS::Serverless::Function")
                && r["Metadata"]["BuildProperties"]["Binary"].as_str() == Some(function)
        })
    });
    let seconds = own
        .and_then(|r| r["Properties"]["Timeout"].as_u64())
        .or_else(|| t["Globals"]["Function"]["Timeout"].as_u64())
        .unwrap_or(3);
    Duration::from_secs(seconds)
}

/// What the function said about the event it was handed.
enum Answer {
    Response(String),
    Error(String),
    InitError(String),
}

/// The state the Runtime API's handler shares with [`Watch`].
struct Shared {
    function: String,
    timeout: Duration,
    /// The event waiting for the function's next `/invocation/next`, with its request id.
    next: Mutex<Option<(String, Vec<u8>)>>,
    /// Where the answer to the event in flight goes.
    answers: Mutex<Option<mpsc::Sender<Answer>>>,
    /// Each deadline handed out (milliseconds since the epoch).
    deadlines: Mutex<Vec<u64>>,
}

/// Lambda's Runtime API (https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html) for one
/// function: `GET /2018-06-01/runtime/invocation/next` hands over an event with its request id
/// and the deadline (now + the function's timeout, in epoch milliseconds), and the function
/// answers on `/invocation/{id}/response` or `/invocation/{id}/error`, or reports a failed start
/// on `/init/error`.
struct RuntimeApi {
    shared: Arc<Shared>,
    timeout: Duration,
    port: u16,
    _server: Server,
    /// Its own runtime (a `Watch` is used from plain threads and from async tests alike); shut
    /// down in the background on drop, which never blocks an async caller.
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl RuntimeApi {
    fn start(function: &str, timeout: Duration) -> Result<RuntimeApi, String> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .map_err(|e| format!("no runtime for the Runtime API: {e}"))?;
        let shared = Arc::new(Shared {
            function: function.to_string(),
            timeout,
            next: Mutex::default(),
            answers: Mutex::default(),
            deadlines: Mutex::default(),
        });
        let served = shared.clone();
        // Started on its own runtime and handed back over a channel: block_on would panic when
        // the caller is itself inside a runtime (an async test).
        let (tx, rx) = mpsc::channel();
        runtime.spawn(async move {
            let server = Server::start(Arc::new(move |req| {
                let shared = served.clone();
                Box::pin(async move { runtime_api(&shared, &req.method, &req.target, req.body).await })
            }))
            .await;
            let _ = tx.send(server);
        });
        let server = rx
            .recv_timeout(Duration::from_secs(10))
            .map_err(|e| format!("the Runtime API did not start: {e}"))?;
        Ok(RuntimeApi {
            shared,
            timeout,
            port: server.port,
            _server: server,
            runtime: Some(runtime),
        })
    }

    /// Hands `event` to the function's next `/invocation/next`; its answer arrives on the receiver.
    fn hand(&self, event: Vec<u8>) -> mpsc::Receiver<Answer> {
        let (tx, rx) = mpsc::channel();
        if let Ok(mut a) = self.shared.answers.lock() {
            *a = Some(tx);
        }
        let id = format!("{:032x}", rand_id());
        if let Ok(mut n) = self.shared.next.lock() {
            *n = Some((id, event));
        }
        rx
    }
}

/// A request id that differs between invocations (no randomness needed beyond that).
fn rand_id() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default()
}

async fn runtime_api(shared: &Shared, method: &str, target: &str, body: String) -> Response {
    let answer = |a: Answer| {
        if let Some(tx) = shared.answers.lock().ok().and_then(|a| a.clone()) {
            let _ = tx.send(a);
        }
        Response::new(202, "application/json", r#"{"status":"OK"}"#)
    };
    let path = target.split('?').next().unwrap_or_default();
    match (method, path) {
        ("GET", "/2018-06-01/runtime/invocation/next") => loop {
            let next = shared.next.lock().ok().and_then(|mut n| n.take());
            if let Some((id, event)) = next {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_millis() as u64)
                    .unwrap_or_default();
                let deadline = now + shared.timeout.as_millis() as u64;
                if let Ok(mut d) = shared.deadlines.lock() {
                    d.push(deadline);
                }
                let mut r = Response::new(200, "application/json", String::from_utf8_lossy(&event).into_owned());
                r.headers.extend([
                    ("lambda-runtime-aws-request-id".to_string(), id),
                    ("lambda-runtime-deadline-ms".to_string(), deadline.to_string()),
                    (
                        "lambda-runtime-invoked-function-arn".to_string(),
                        format!("arn:aws:lambda:us-east-1:123456789012:function:{}", shared.function),
                    ),
                    (
                        "lambda-runtime-trace-id".to_string(),
                        "Root=1-00000000-000000000000000000000000;Sampled=0".to_string(),
                    ),
                ]);
                return r;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        },
        ("POST", "/2018-06-01/runtime/init/error") => answer(Answer::InitError(body)),
        ("POST", p) if p.ends_with("/response") => answer(Answer::Response(body)),
        ("POST", p) if p.ends_with("/error") => answer(Answer::Error(body)),
        _ => Response::new(
            404,
            "application/json",
            r#"{"errorMessage":"unknown Runtime API path"}"#,
        ),
    }
}

/// Whether process `pid` is still running (a zombie — exited, not yet reaped — is not).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state is the field after the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.process.kill();
        let _ = std::io::stderr().flush();
    }
}

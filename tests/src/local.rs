//! Runs a function's real Lambda binary locally: `cargo lambda watch --only-lambda-apis` serves
//! the Lambda runtime and invoke APIs on a free port, the function's binary (from the shared
//! workspace build, never rebuilt here) runs against it, and one event goes through the invoke
//! API. The function is our own child, so a function that dies (at start-up or mid-invocation)
//! ends the invocation at once with its error. Both children stay in our process group (a
//! Ctrl-C reaches them too), die with us whatever kills us (Linux's parent-death signal), and are
//! killed on drop.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use crate::moto::workspace_root;

/// How long one invocation may take (Lambda's own limit).
const INVOCATION_LIMIT: Duration = Duration::from_secs(900);
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
    emulator: Group,
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

fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
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
        let port = free_port()?;
        let mut emulator = Command::new("cargo");
        emulator
            .current_dir(workspace_root())
            .args(["lambda", "watch", "--only-lambda-apis", "-A", "127.0.0.1", "-P"])
            .arg(port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut emulator = Group::spawn(emulator)
            .map_err(|e| format!("cannot start cargo lambda watch: {e} (is cargo-lambda on PATH? `make venv`)"))?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = emulator.0.try_wait() {
                return Err(format!("cargo lambda watch exited with {status}"));
            }
            if Instant::now() > deadline {
                return Err("cargo lambda watch did not open its port within 30 s".into());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let mut cmd = Command::new(&binary);
        cmd.env_remove("AWS_LAMBDA_RUNTIME_API")
            .envs(passthrough_env())
            .envs(env.iter().cloned())
            .env("AWS_LAMBDA_RUNTIME_API", format!("http://127.0.0.1:{port}/.rt"))
            .env("AWS_LAMBDA_FUNCTION_NAME", "_")
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
        let (tx, rx) = mpsc::channel();
        let url = format!("http://127.0.0.1:{}/2015-03-31/functions/_/invocations", self.port);
        std::thread::spawn(move || {
            let answer = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
                .and_then(|rt| {
                    rt.block_on(async {
                        let http = remediation::http::HttpClient::new(INVOCATION_LIMIT).map_err(|e| e.to_string())?;
                        http.send("lambda", "POST", &url, &[("content-type", "application/json")], event)
                            .await
                            .map_err(|e| e.to_string())
                    })
                });
            let _ = tx.send(answer);
        });
        let started = Instant::now();
        // The process handle is only read here (try_wait through a shared borrow is not
        // possible), so poll its pid for exit instead.
        let pid = self.process.0.id();
        loop {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(Ok(r)) => {
                    let body: serde_json::Value = serde_json::from_str(r.body.trim())
                        .map_err(|e| format!("{function} answered something that is not JSON ({e}): {}", r.body))?;
                    let failed = r.status >= 300
                        || r.header("x-amz-function-error").is_some()
                        || body.get("errorType").is_some();
                    if failed {
                        return Err(format!("{function} failed: {body}"));
                    }
                    return Ok(body);
                }
                Ok(Err(e)) => return Err(format!("the invocation of {function} failed: {e}")),
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(format!("the invocation of {function} ended without an answer"))
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
            if !alive(pid) {
                return Err(format!("{function} exited before answering: {}", self.last_words()));
            }
            if started.elapsed() > INVOCATION_LIMIT {
                return Err(format!(
                    "{function} did not answer within {} s",
                    INVOCATION_LIMIT.as_secs()
                ));
            }
        }
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
        self.emulator.kill();
        let _ = std::io::stderr().flush();
    }
}

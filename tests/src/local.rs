//! Runs a function's real Lambda binary locally: `cargo lambda watch` serves the Lambda runtime
//! API on a free port, `cargo lambda invoke` sends one event, and the JSON response comes back.

use std::io::Write;
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::moto::workspace_root;

/// A `cargo lambda watch` process; killed (with its function) on drop.
pub struct Watch {
    child: Child,
    /// The port invocations go to.
    pub port: u16,
}

impl Drop for Watch {
    fn drop(&mut self) {
        // cargo-lambda runs the function as its own child: signal the whole process group, which
        // `start` made for it alone, and only while it is still running (its pid is then ours).
        if let Ok(None) = self.child.try_wait() {
            if let Ok(pgid) = libc::pid_t::try_from(self.child.id()) {
                if pgid > 1 {
                    // SAFETY: killpg only sends a signal; the group is the watch's own.
                    unsafe {
                        libc::killpg(pgid, libc::SIGTERM);
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A dotenv line that keeps the value as it is (double-quoted, `\` and `"` escaped).
fn env_line(key: &str, value: &str) -> String {
    format!("{key}=\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Variables passed through to the function: AWS settings and the system's own.
fn passthrough_env() -> Vec<(String, String)> {
    std::env::vars()
        .filter(|(k, _)| k.starts_with("AWS_") || k.starts_with("FINOPS_") || k == "RUST_LOG")
        .collect()
}

impl Watch {
    /// Starts `cargo lambda watch` for `function` with `env` (plus the pass-through variables) and
    /// waits until its invoke port answers. The first start compiles the function.
    pub fn start(function: &str, env: &[(String, String)]) -> Result<Watch, String> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free port: {e}"))?
            .port();
        let mut vars = passthrough_env();
        vars.extend(env.iter().cloned());
        let env_file = std::env::temp_dir().join(format!("finops-watch-{function}-{port}.env"));
        let mut f =
            std::fs::File::create(&env_file).map_err(|e| format!("cannot write {}: {e}", env_file.display()))?;
        for (k, v) in &vars {
            if v.contains('\n') {
                return Err(format!(
                    "{k} holds a newline; pass a policy with FINOPS_POLICY_FILE instead"
                ));
            }
            writeln!(f, "{}", env_line(k, v)).map_err(|e| e.to_string())?;
        }
        drop(f);
        let mut cmd = Command::new("cargo");
        cmd.current_dir(workspace_root())
            .args([
                "lambda",
                "watch",
                "--quiet",
                "--ignore-changes",
                "-A",
                "127.0.0.1",
                "-P",
            ])
            .arg(port.to_string())
            .args(["--package", function, "--bin", function, "--env-file"])
            .arg(&env_file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        #[cfg(unix)]
        {
            use std::os::unix::process::CommandExt;
            cmd.process_group(0);
        }
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start cargo lambda watch: {e} (is cargo-lambda on PATH? `make venv`)"))?;
        let mut watch = Watch { child, port };
        let deadline = Instant::now() + Duration::from_secs(900);
        loop {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(watch);
            }
            if let Ok(Some(status)) = watch.child.try_wait() {
                return Err(format!("cargo lambda watch exited with {status}"));
            }
            if Instant::now() > deadline {
                return Err("cargo lambda watch did not open its port within 15 minutes".into());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Invokes the function once with the event in `event_file`; returns its JSON response.
    pub fn invoke(&self, function: &str, event_file: &Path) -> Result<serde_json::Value, String> {
        if !event_file.is_file() {
            return Err(format!("no event file at {}", event_file.display()));
        }
        let out = Command::new("cargo")
            .current_dir(workspace_root())
            .args(["lambda", "invoke", function, "-A", "127.0.0.1", "-P"])
            .arg(self.port.to_string())
            .arg("--data-file")
            .arg(event_file)
            .args(["--output-format", "json"])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run cargo lambda invoke: {e}"))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            return Err(format!(
                "{function} failed: {}{}",
                String::from_utf8_lossy(&out.stderr).trim(),
                stdout.trim()
            ));
        }
        serde_json::from_str(stdout.trim())
            .map_err(|e| format!("{function} answered something that is not JSON ({e}): {stdout}"))
    }
}

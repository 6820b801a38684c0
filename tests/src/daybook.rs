//! Runs the `daybook` binary as a child process on port 0 and learns its addresses from the
//! JSON line it prints.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The `daybook` binary next to the test executable (built by `cargo build -p daybook`,
/// which the README's test command runs first).
pub fn binary() -> PathBuf {
    if let Ok(p) = std::env::var("DAYBOOK_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe.parent().and_then(Path::parent).expect("target profile directory");
    let bin = dir.join("daybook");
    assert!(bin.exists(), "{} not found: run `cargo build -p daybook` first (scripts/test does)", bin.display());
    bin
}

/// A running daybook process; killed on drop.
#[derive(Debug)]
pub struct Daybook {
    child: Child,
    /// `http://127.0.0.1:PORT` of the HTTP listener (if it has one).
    pub http: Option<String>,
    /// `http://127.0.0.1:PORT` of the embedded S3 endpoint (if it has one).
    pub s3: Option<String>,
    /// `http://127.0.0.1:PORT` of the metrics listener (projector).
    pub metrics: Option<String>,
}

impl Daybook {
    /// Starts `daybook <args>` and waits for its `listening` line.
    pub fn start(args: &[&str], envs: &[(&str, &str)]) -> Self {
        let mut cmd = Command::new(binary());
        cmd.args(args)
            .stdout(Stdio::piped())
            .stderr(if std::env::var_os("DAYBOOK_TEST_LOGS").is_some() { Stdio::inherit() } else { Stdio::null() })
            .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()));
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn daybook");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            while let Some(Ok(line)) = lines.next() {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                    if v["event"] == "listening" {
                        let _ = tx.send(v);
                    }
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let v = loop {
            if let Ok(v) = rx.recv_timeout(Duration::from_millis(100)) {
                break v;
            }
            if let Some(status) = child.try_wait().expect("child status") {
                panic!("daybook {args:?} exited with {status} before listening (DAYBOOK_TEST_LOGS=1 shows its log)");
            }
            assert!(Instant::now() < deadline, "daybook {args:?} did not start listening within 60s");
        };
        let url = |k: &str| v[k].as_str().map(|a| format!("http://{a}"));
        Self { http: url("http"), s3: url("s3"), metrics: url("metrics"), child }
    }

    /// `daybook run` on port 0 (HTTP and embedded S3) with its data in `data_dir`, plus `extra` flags.
    pub fn run_in(data_dir: &str, extra: &[&str]) -> Self {
        Self::start(&run_args(data_dir, extra).iter().map(String::as_str).collect::<Vec<_>>(), &[])
    }

    /// The HTTP base URL.
    pub fn http(&self) -> &str {
        self.http.as_deref().expect("this process has an http listener")
    }

    /// SIGTERM, then waits for a clean exit.
    pub fn stop(mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(s) = self.child.try_wait().expect("child status") {
                return s;
            }
            assert!(Instant::now() < deadline, "daybook did not stop within 30s of SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL: a crash.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daybook {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The arguments of [`Daybook::run_in`], for starting the same server again.
pub fn run_args(data_dir: &str, extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = ["run", "--data-dir", data_dir, "--http-addr", "127.0.0.1:0", "--s3-addr", "127.0.0.1:0"]
        .map(String::from)
        .to_vec();
    v.extend(extra.iter().map(|s| (*s).to_owned()));
    v
}

/// Runs `daybook <args>` to completion and returns its stdout.
pub fn output(args: &[&str], envs: &[(&str, &str)]) -> String {
    let mut cmd = Command::new(binary());
    cmd.args(args);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run daybook");
    assert!(out.status.success(), "daybook {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// A bearer token printed by `daybook token …` (its last stdout line).
pub fn token(args: &[&str]) -> String {
    let mut full = vec!["token"];
    full.extend_from_slice(args);
    output(&full, &[]).lines().last().expect("a token line").trim().to_owned()
}

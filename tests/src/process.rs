//! The `daybook` binary as a child process, for what only a process shows: signals, a kill -9,
//! the command-line tools. Used by daybook's own integration tests (`daybook/tests/`), where
//! cargo builds the binary and names it: `const DAYBOOK: Bin = Bin(env!("CARGO_BIN_EXE_daybook"))`.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The path of the `daybook` binary under test.
#[derive(Debug, Clone, Copy)]
pub struct Bin(pub &'static str);

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

impl Bin {
    /// Starts `daybook <args>` and waits for its `listening` line.
    pub fn start(self, args: &[&str], envs: &[(&str, &str)]) -> Daybook {
        let mut cmd = Command::new(self.0);
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
        Daybook { http: url("http"), s3: url("s3"), metrics: url("metrics"), child }
    }

    /// `daybook run` on port 0 (HTTP and embedded S3) with its data in `data_dir`, plus `extra` flags.
    pub fn run_in(self, data_dir: &str, extra: &[&str]) -> Daybook {
        let mut args = vec!["run", "--data-dir", data_dir, "--http-addr", "127.0.0.1:0", "--s3-addr", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        self.start(&args, &[])
    }

    /// Runs `daybook <args>` to completion and returns its stdout.
    pub fn output(self, args: &[&str], envs: &[(&str, &str)]) -> String {
        let mut cmd = Command::new(self.0);
        cmd.args(args);
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let out = cmd.output().expect("run daybook");
        assert!(out.status.success(), "daybook {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).expect("utf-8 output")
    }

    /// A bearer token printed by `daybook token …` (its last stdout line).
    pub fn token(self, args: &[&str]) -> String {
        let mut full = vec!["token"];
        full.extend_from_slice(args);
        self.output(&full, &[]).lines().last().expect("a token line").trim().to_owned()
    }
}

impl Daybook {
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

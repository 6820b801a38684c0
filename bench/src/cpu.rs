//! CPU time of a server under test, read from `/proc/<pid>/stat`.
//!
//! Every server the benchmarks measure (the all-in-one pipeline, the direct baseline, the bare
//! no-op handler) is this binary again in a child process (`burst::Server`), and the load
//! generator runs in the parent. So the child's own `utime + stime` is exactly the server's
//! CPU: the generator's CPU is in another process and never counted, and the process-wide
//! figure includes threads that have already exited (tokio's blocking pool, the SQLite writer),
//! which summing `/proc/<pid>/task/*/stat` would miss. The granularity is one clock tick
//! (10 ms at the usual `CLK_TCK` of 100): ±1 % of a run that burns a core-second.

use std::sync::OnceLock;
use std::time::Duration;

use serde::Serialize;

/// What a server used over a span (`burst::CpuSpan::spent`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Spent {
    pub(crate) cpu: Duration,
    pub(crate) switches: u64,
}

/// What the server under test and the bare no-op server paid for the same schedule: the cost
/// figures `burst` and `sustain` both report (flattened into their `result.json`).
#[derive(Debug, Serialize)]
pub(crate) struct Cost {
    /// Server CPU (user + system of its process) per accepted report, µs.
    pub(crate) cpu_us_per_report: Option<f64>,
    /// The bare no-op server's CPU per answered request, µs, under the same schedule.
    pub(crate) bare_cpu_us_per_request: Option<f64>,
    /// `cpu_us_per_report / bare_cpu_us_per_request`.
    pub(crate) cpu_ratio_vs_bare: Option<f64>,
    /// Context switches of the server's threads per accepted report ([`context_switches`]).
    pub(crate) context_switches_per_report: Option<f64>,
    /// The same of the bare no-op server, per answered request.
    pub(crate) bare_context_switches_per_request: Option<f64>,
    /// Raw CPU seconds behind the per-report figures.
    pub(crate) cpu_s: f64,
    pub(crate) bare_cpu_s: f64,
}

impl Cost {
    /// The server spent `server` on `reports` accepted reports, the bare server `bare` on
    /// `requests` answered requests.
    pub(crate) fn of(server: Spent, reports: usize, bare: Spent, requests: usize) -> Self {
        let cpu_us_per_report = us_per(server.cpu, reports);
        let bare_cpu_us_per_request = us_per(bare.cpu, requests);
        Self {
            cpu_us_per_report,
            bare_cpu_us_per_request,
            cpu_ratio_vs_bare: ratio(cpu_us_per_report, bare_cpu_us_per_request),
            context_switches_per_report: per(server.switches, reports),
            bare_context_switches_per_request: per(bare.switches, requests),
            cpu_s: server.cpu.as_secs_f64(),
            bare_cpu_s: bare.cpu.as_secs_f64(),
        }
    }

    /// The context-switch line of a human summary.
    pub(crate) fn switches_line(&self) -> String {
        format!(
            "context switches: {} per report (server), {} per request (bare no-op)",
            opt(self.context_switches_per_report, 2),
            opt(self.bare_context_switches_per_request, 2)
        )
    }
}

/// `-` for a figure that was not measured.
pub(crate) fn opt(v: Option<f64>, decimals: usize) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.decimals$}"))
}

/// `utime + stime` in clock ticks from the text of `/proc/<pid>/stat`. The command name (field
/// 2) is in parentheses and may itself hold spaces and parentheses, so the fields are counted
/// from the *last* `)`: after it come state (field 3) … utime (field 14) and stime (field 15).
pub(crate) fn stat_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// Clock ticks per second (`getconf CLK_TCK`; 100, the Linux USER_HZ, if that fails).
fn ticks_per_s() -> u64 {
    static TICKS: OnceLock<u64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .filter(|t| *t > 0)
            .unwrap_or(100)
    })
}

/// User + system CPU time the process `pid` has used so far (zero if it cannot be read).
pub(crate) fn process_cpu(pid: u32) -> Duration {
    let ticks = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok().and_then(|s| stat_cpu_ticks(&s));
    let ticks = ticks.unwrap_or(0);
    let per_s = ticks_per_s();
    Duration::from_secs(ticks / per_s) + Duration::from_nanos((ticks % per_s) * 1_000_000_000 / per_s)
}

/// Current resident set (VmRSS) of the process `pid`, MiB (zero if it cannot be read).
pub(crate) fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Context switches, voluntary and involuntary, of the threads of `pid` alive now: the sum of
/// `voluntary_ctxt_switches` and `nonvoluntary_ctxt_switches` over `/proc/<pid>/task/*/status`
/// (the process's own `status` has its main thread's only). A figure the generator sharing the
/// cores blurs less than CPU time: each switch is a thread hand-off or a preemption the server
/// paid for. Threads that exited since are missing from it (the server's threads live as long
/// as it does, except idle blocking-pool threads).
pub(crate) fn context_switches(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return 0 };
    tasks
        .filter_map(Result::ok)
        .filter_map(|t| std::fs::read_to_string(t.path().join("status")).ok())
        .map(|status| status_switches(&status))
        .sum()
}

/// `voluntary_ctxt_switches + nonvoluntary_ctxt_switches` from the text of a `status` file.
fn status_switches(status: &str) -> u64 {
    status
        .lines()
        .filter_map(|l| {
            l.strip_prefix("voluntary_ctxt_switches:").or_else(|| l.strip_prefix("nonvoluntary_ctxt_switches:"))
        })
        .filter_map(|v| v.trim().parse::<u64>().ok())
        .sum()
}

/// The process listening on TCP `port` (IPv4 or IPv6), found as `ss -ltnp` does: the
/// listening socket's inode in `/proc/net/tcp{,6}`, then the process holding a descriptor of
/// that socket in `/proc/*/fd`. For the broker's CPU beside the server's (`burst --log
/// kafka://…`); `None` when no such process is visible (another user's, another host's).
pub(crate) fn listening_pid(port: u16) -> Option<u32> {
    let inode = ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .find_map(|table| listening_inode(&table, port))?;
    let target = format!("socket:[{inode}]");
    std::fs::read_dir("/proc").ok()?.filter_map(Result::ok).find_map(|entry| {
        let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
        let fds = std::fs::read_dir(entry.path().join("fd")).ok()?;
        fds.filter_map(Result::ok)
            .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|l| l.to_str() == Some(target.as_str())))
            .then_some(pid)
    })
}

/// The inode of the socket listening on `port` in the text of `/proc/net/tcp` (or `tcp6`):
/// lines of `sl local_address rem_address st … inode`, addresses as `HEXADDR:HEXPORT`,
/// state `0A` = LISTEN.
fn listening_inode(table: &str, port: u16) -> Option<u64> {
    table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        let local_port = u16::from_str_radix(f.get(1)?.rsplit_once(':')?.1, 16).ok()?;
        (local_port == port && *f.get(3)? == "0A").then(|| f.get(9)?.parse().ok()).flatten()
    })
}

/// Per item (`None` without items).
pub(crate) fn per(count: u64, items: usize) -> Option<f64> {
    (items > 0).then(|| count as f64 / items as f64)
}

/// CPU microseconds per item (`None` without items).
pub(crate) fn us_per(cpu: Duration, items: usize) -> Option<f64> {
    (items > 0).then(|| cpu.as_secs_f64() * 1e6 / items as f64)
}

/// `a / b`, `None` unless both are known and `b` is positive.
pub(crate) fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_cpu_ticks_sums_utime_and_stime_after_a_command_name_with_spaces_and_parentheses() {
        let stat = "4242 (tokio (rt) w) S 1 4242 4242 0 -1 4194560 1234 0 0 0 731 269 0 0 20 0 9 0 55 0 0";
        assert_eq!(stat_cpu_ticks(stat), Some(731 + 269));
        let plain = "1 (daybook-bench) R 0 1 1 0 -1 0 0 0 0 0 5 7 0 0 20 0 1 0 1 0 0\n";
        assert_eq!(stat_cpu_ticks(plain), Some(12));
    }

    #[test]
    fn stat_cpu_ticks_refuses_truncated_or_garbled_text() {
        assert_eq!(stat_cpu_ticks(""), None);
        assert_eq!(stat_cpu_ticks("1 (x) S 1 2 3"), None);
        assert_eq!(stat_cpu_ticks("1 (x) S 1 1 1 0 -1 0 0 0 0 0 abc 7"), None);
    }

    #[test]
    fn own_process_cpu_is_readable_and_grows() {
        let before = process_cpu(std::process::id());
        let t = std::time::Instant::now();
        let mut x = 0u64;
        // Spin until a clock tick is charged (bounded: a busy machine may deschedule us).
        while process_cpu(std::process::id()) <= before && t.elapsed() < Duration::from_secs(10) {
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
            }
        }
        assert!(process_cpu(std::process::id()) > before, "no CPU charged after {:?}", t.elapsed());
    }

    #[test]
    fn status_switches_adds_both_kinds() {
        let status = "Name:\tdaybook-log-wri\nState:\tS (sleeping)\nvoluntary_ctxt_switches:\t1500\nnonvoluntary_ctxt_switches:\t42\n";
        assert_eq!(status_switches(status), 1542);
        assert_eq!(status_switches("Name:\tx\n"), 0);
        assert!(context_switches(std::process::id()) > 0, "this test's own threads have switched");
        assert_eq!(per(30, 10), Some(3.0));
        assert_eq!(per(30, 0), None);
    }

    #[test]
    fn listening_inode_finds_the_listener_of_a_port() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:2384 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0 100 0 0 10 0
   1: 0100007F:2384 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 4343 1 0 20 4 30 10 -1
";
        assert_eq!(listening_inode(table, 0x2384), Some(4242));
        assert_eq!(listening_inode(table, 9093), None);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        assert_eq!(listening_pid(port), Some(std::process::id()));
    }

    #[test]
    fn us_per_and_ratio() {
        assert_eq!(us_per(Duration::from_millis(250), 1000), Some(250.0));
        assert_eq!(us_per(Duration::from_secs(1), 0), None);
        assert_eq!(ratio(Some(30.0), Some(10.0)), Some(3.0));
        assert_eq!(ratio(Some(30.0), Some(0.0)), None);
        assert_eq!(ratio(None, Some(1.0)), None);
    }
}

//! The `# HELP` text (and unit) of every metric daybook emits, in one table, registered with
//! the recorder when it is installed (`ops::install_metrics`). A metric emitted anywhere in the
//! workspace without a line here fails this module's tests, and so does a line here for a
//! metric nothing emits any more; `daybook/tests/metrics_help.rs` scrapes a running
//! application and checks that every `# TYPE` has its `# HELP` (and runs `promtool check
//! metrics` on it). The Grafana dashboard and the alert rules in `infra/` use these names.

use metrics::Unit;

/// What kind of metric a name is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// One described metric: name, kind, unit (none when it has no physical unit), help text.
pub(crate) type Described = (&'static str, Kind, Option<Unit>, &'static str);

use Kind::{Counter, Gauge, Histogram};

/// Every metric daybook emits, grouped by the part that emits it.
pub(crate) const METRICS: &[Described] = &[
    // HTTP listener (daybook/src/http.rs, daybook/src/ops.rs, seams/src/web.rs).
    (
        "daybook_http_requests_total",
        Counter,
        None,
        "HTTP requests answered, by method, route (the route template, e.g. /v1/devices/{cid}/events; \
         `unmatched` when no route matched) and status (the code for common ones, else 2xx/4xx/5xx).",
    ),
    (
        "daybook_http_request_seconds",
        Histogram,
        Some(Unit::Seconds),
        "Time to answer an HTTP request, from routing to the response head, by route template.",
    ),
    (
        "daybook_http_errors_total",
        Counter,
        None,
        "Error answers sent in the {\"error\": {\"code\", \"message\"}} contract, by code \
         (e.g. log_unavailable, log_full, overloaded, store_unavailable, rate_limited, unauthorized, forbidden).",
    ),
    (
        "daybook_http_connections",
        Gauge,
        None,
        "HTTP connections open now on the device and viewer listener (at most --max-connections).",
    ),
    (
        "daybook_http_connections_refused_total",
        Counter,
        None,
        "Connections answered 503 too_many_connections and closed: --max-connections were open, all inside a request.",
    ),
    (
        "daybook_http_connections_evicted_total",
        Counter,
        None,
        "Idle connections (or ones still sending headers) closed to make room for a new one at --max-connections.",
    ),
    (
        "daybook_http_body_timeouts_total",
        Counter,
        None,
        "Request bodies not received within --body-timeout-ms of their headers (answered 400 unreadable_body).",
    ),
    (
        "daybook_api_deadline_exceeded_total",
        Counter,
        None,
        "Viewer requests the store did not answer within the request deadline (answered 503 store_unavailable).",
    ),
    // Device API (ingest).
    (
        "daybook_ingest_reports_accepted_total",
        Counter,
        None,
        "Device reports appended durably to the log and acknowledged (201/202); a batch counts each of its reports.",
    ),
    (
        "daybook_ingest_rejected_total",
        Counter,
        None,
        "Device requests refused by admission, by reason: rate (429, the device is over --device-rate/--device-burst), \
         inflight (503 overloaded, more than --max-inflight reports waiting on the log), digest_slot (429, a digest \
         outside its device's slot while there is no headroom).",
    ),
    (
        "daybook_ingest_inflight_reports",
        Gauge,
        None,
        "Reports waiting for the log to confirm their append, as of the last admission (503 overloaded above --max-inflight).",
    ),
    (
        "daybook_ingest_append_seconds",
        Histogram,
        Some(Unit::Seconds),
        "Time the log took to confirm (or fail) the append of one request's reports.",
    ),
    (
        "daybook_ingest_clock_skew_reports_total",
        Counter,
        None,
        "Reports whose device clock was ahead of the server's by more than --future-tolerance-secs \
         (kept, filed by the server's time, answered with clock_skew_ms).",
    ),
    (
        "daybook_ingest_log_available",
        Gauge,
        None,
        "1 while ingest's appends to the log succeed; 0 while they fail or time out and reports are refused \
         with 503 log_unavailable (one probe request per interval finds out when the log is back).",
    ),
    (
        "daybook_ingest_refused_log_down_total",
        Counter,
        None,
        "Reports refused at once with 503 log_unavailable because the log was known to be down (nothing was stored).",
    ),
    // Embedded log (infra/src/embedded_log.rs).
    (
        "daybook_log_queue_records",
        Gauge,
        None,
        "Embedded log: records queued for the writer thread, after each group commit (appends are refused \
         with 503 log_full when the queue is full).",
    ),
    (
        "daybook_log_rejected_total",
        Counter,
        None,
        "Embedded log: appends refused before queueing, by reason (full: the writer queue is at its bound; \
         the device is answered 503 log_full).",
    ),
    (
        "daybook_log_commit_errors_total",
        Counter,
        None,
        "Embedded log: group commits (one write and fsync) that failed; every append in them was answered 503 and their offsets are never used again.",
    ),
    (
        "daybook_log_commit_seconds",
        Histogram,
        Some(Unit::Seconds),
        "Embedded log: time of one group commit (one write of the group's frames and its fsync).",
    ),
    (
        "daybook_log_group_commit_records",
        Histogram,
        Some(Unit::Count),
        "Embedded log: records written by one group commit.",
    ),
    (
        "daybook_log_group_commit_requests",
        Histogram,
        Some(Unit::Count),
        "Embedded log: append requests answered by one group commit.",
    ),
    (
        "daybook_log_groups_expired_total",
        Counter,
        None,
        "Embedded log: consumer groups forgotten because they had not committed within --group-retention-hours.",
    ),
    (
        "daybook_log_groups_lagging",
        Gauge,
        None,
        "Embedded log: consumer groups whose next record was truncated by retention before they read it \
         (they skip to the oldest record left).",
    ),
    // Kafka log (infra/src/kafka).
    (
        "daybook_kafka_inflight",
        Gauge,
        None,
        "Kafka: records in the producer's queue not yet acknowledged by the brokers.",
    ),
    (
        "daybook_kafka_produce_seconds",
        Histogram,
        Some(Unit::Seconds),
        "Kafka: time from enqueueing an append's records to the brokers' acknowledgement of all of them (successful appends).",
    ),
    (
        "daybook_kafka_delivery_errors_total",
        Counter,
        None,
        "Kafka: appends that failed, by reason (full, timeout, unavailable); the device was answered 503.",
    ),
    (
        "daybook_kafka_consumer_lag",
        Gauge,
        None,
        "Kafka: records between this projector's position and the high watermark, by assigned partition (0 once revoked).",
    ),
    (
        "daybook_kafka_rebalances_total",
        Counter,
        None,
        "Kafka: consumer group rebalances seen by this member, by kind (assign, revoke, error).",
    ),
    (
        "daybook_kafka_poll_batch_records",
        Histogram,
        Some(Unit::Count),
        "Kafka: records handed to the projector by one non-empty poll.",
    ),
    (
        "daybook_kafka_commits_ignored_total",
        Counter,
        None,
        "Kafka: offset commits skipped or refused because this member no longer owned the partition (its next owner replays).",
    ),
    (
        "daybook_kafka_records_without_headers_total",
        Counter,
        None,
        "Kafka: records read without daybook's report-kind and schema headers (written by a foreign producer).",
    ),
    // Projector (projector/src/lib.rs).
    (
        "daybook_projector_reports_total",
        Counter,
        None,
        "Reports the projector wrote to the store and committed in the log.",
    ),
    (
        "daybook_projector_rows_total",
        Counter,
        None,
        "Store rows the projector wrote (one report writes one or more rows); paced under --max-rows-per-s.",
    ),
    (
        "daybook_projector_batch_reports",
        Histogram,
        Some(Unit::Count),
        "Log records in one projector batch (bounded by --max-batch and --linger-ms).",
    ),
    (
        "daybook_projector_write_seconds",
        Histogram,
        Some(Unit::Seconds),
        "Time of one successful store write of a projector batch (isolating records the store refuses included).",
    ),
    (
        "daybook_projector_write_errors_total",
        Counter,
        None,
        "Store writes by the projector (a batch, or its quarantined records) that failed and are retried with backoff; \
         nothing is committed in the log meanwhile.",
    ),
    (
        "daybook_projector_commit_errors_total",
        Counter,
        None,
        "Log offset commits that failed after the batch was written (the next commit covers it).",
    ),
    (
        "daybook_projector_log_errors_total",
        Counter,
        None,
        "Log reads by the projector that failed (log unavailable or timed out); it waits and polls again.",
    ),
    (
        "daybook_projector_lag_records",
        Gauge,
        None,
        "Records in the log this projector has not projected yet (summed over its partitions); \
         refreshed at most once a second while busy, and whenever it finds nothing to read.",
    ),
    (
        "daybook_projector_undecodable_total",
        Counter,
        None,
        "Log records the projector could not decode (set aside in quarantine).",
    ),
    (
        "daybook_projector_quarantined_total",
        Counter,
        None,
        "Records set aside in the store's quarantine table instead of being projected, by reason (undecodable; \
         rejected: refused by the store for good); `daybook quarantine list` shows them.",
    ),
    (
        "daybook_projector_revoked_records_total",
        Counter,
        None,
        "Records dropped from a batch before writing because a rebalance revoked their partition (its new owner writes them).",
    ),
    // Scheduled backups (daybook/src/backup/schedule.rs).
    (
        "daybook_backup_last_success_timestamp_seconds",
        Gauge,
        Some(Unit::Seconds),
        "Unix time of the last complete backup taken by `run --backup-to` (the DaybookBackupsStopped alert fires 26 h after it).",
    ),
    (
        "daybook_backup_duration_seconds",
        Gauge,
        Some(Unit::Seconds),
        "Time the last complete backup took, by kind (full, incremental).",
    ),
    (
        "daybook_backup_bytes",
        Gauge,
        Some(Unit::Bytes),
        "Bytes the last complete backup stored in its destination (compressed, encrypted), by kind (full, incremental).",
    ),
    (
        "daybook_backup_failures_total",
        Counter,
        None,
        "Scheduled backups that failed (the log names the reason); the previous complete backups stay usable.",
    ),
    (
        "daybook_backup_prune_problems_total",
        Counter,
        None,
        "Problems met while pruning old backups (--keep-full) after a complete backup: a backup that cannot be read (kept, never deleted) or cannot be deleted; the backup just taken stands.",
    ),
    // Upkeep (daybook/src/app.rs).
    (
        "daybook_objects_expired_total",
        Counter,
        None,
        "Embedded S3 endpoint: objects deleted because their day passed retention.",
    ),
];

/// Registers the help text and unit of every metric with the installed recorder.
pub(crate) fn describe() {
    for &(name, kind, unit, help) in METRICS {
        match (kind, unit) {
            (Counter, Some(unit)) => metrics::describe_counter!(name, unit, help),
            (Counter, None) => metrics::describe_counter!(name, help),
            (Gauge, Some(unit)) => metrics::describe_gauge!(name, unit, help),
            (Gauge, None) => metrics::describe_gauge!(name, help),
            (Histogram, Some(unit)) => metrics::describe_histogram!(name, unit, help),
            (Histogram, None) => metrics::describe_histogram!(name, help),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::{Path, PathBuf};

    use super::*;

    /// The crates whose sources emit metrics.
    const CRATES: [&str; 7] = ["schemas", "seams", "infra", "ingest", "projector", "api", "daybook"];

    fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                rust_files(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    /// Every metric name a `counter!`, `gauge!` or `histogram!` call in the crates' `src/` emits
    /// (a `daybook_` string literal as its first argument), with its kind and file.
    fn emitted() -> BTreeMap<String, (Kind, String)> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut files = Vec::new();
        for krate in CRATES {
            rust_files(&root.join(krate).join("src"), &mut files);
        }
        let mut found = BTreeMap::new();
        for file in files.into_iter().filter(|f| !f.ends_with("daybook/src/metrics_help.rs")) {
            let text = std::fs::read_to_string(&file).expect("source file");
            for (macro_name, kind) in [("counter!(", Counter), ("gauge!(", Gauge), ("histogram!(", Histogram)] {
                for (at, _) in text.match_indices(macro_name) {
                    if text[..at].ends_with("describe_") {
                        continue;
                    }
                    let rest = text[at + macro_name.len()..].trim_start();
                    let Some(rest) = rest.strip_prefix('"') else { continue };
                    let name = &rest[..rest.find('"').expect("closing quote")];
                    if name.starts_with("daybook_") {
                        let place = format!("{}", file.display());
                        let previous = found.insert(name.to_owned(), (kind, place.clone()));
                        if let Some((k, p)) = previous {
                            assert_eq!(k, kind, "{name} is emitted as two kinds ({p}, {place})");
                        }
                    }
                }
            }
        }
        found
    }

    #[test]
    fn every_emitted_metric_is_described_with_its_kind() {
        let described: BTreeMap<_, _> = METRICS.iter().map(|m| (m.0, m.1)).collect();
        let emitted = emitted();
        assert!(emitted.len() > 30, "the source scan found only {} metrics", emitted.len());
        for (name, (kind, place)) in &emitted {
            match described.get(name.as_str()) {
                None => panic!("{name} (emitted in {place}) has no help text in daybook/src/metrics_help.rs"),
                Some(k) => assert_eq!(k, kind, "{name} is described as a {k:?} but emitted as a {kind:?} in {place}"),
            }
        }
        for name in described.keys() {
            assert!(emitted.contains_key(*name), "{name} is described but nothing emits it any more");
        }
    }

    /// The `daybook_…` metric names in `text` (histogram series suffixes taken off).
    fn names_in(text: &str) -> Vec<String> {
        let histograms: Vec<_> = METRICS.iter().filter(|m| m.1 == Histogram).map(|m| m.0).collect();
        let mut names = Vec::new();
        for (at, _) in text.match_indices("daybook_") {
            if text[..at].chars().next_back().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
                continue;
            }
            let len = text[at..].find(|c: char| !(c.is_ascii_lowercase() || c == '_')).unwrap_or(text.len() - at);
            let name = &text[at..at + len];
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s).filter(|b| histograms.contains(b)))
                .unwrap_or(name);
            names.push(base.to_owned());
        }
        names
    }

    /// The alert rules (infra/prometheus) and the dashboard (infra/grafana) use only metrics
    /// that exist, under their real names.
    #[test]
    fn dashboard_and_alerts_use_only_described_metrics() {
        let infra = Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra");
        let described: Vec<_> = METRICS.iter().map(|m| m.0).collect();
        // The backup feature (issue 12) will export it; its rule is inactive until then.
        let future = ["daybook_backup_last_success_timestamp_seconds"];

        let dashboard = std::fs::read_to_string(infra.join("grafana/daybook.json")).expect("dashboard");
        let json: serde_json::Value = serde_json::from_str(&dashboard).expect("the dashboard is JSON");
        assert_eq!(json["__inputs"][0]["name"], "DS_PROMETHEUS");
        let panels = json["panels"].as_array().expect("panels");
        let exprs: Vec<&str> = panels
            .iter()
            .flat_map(|p| p["targets"].as_array().into_iter().flatten())
            .filter_map(|t| t["expr"].as_str())
            .collect();
        assert!(exprs.len() >= 10, "{} queries on the dashboard", exprs.len());
        for expr in &exprs {
            let names = names_in(expr);
            assert!(!names.is_empty(), "a dashboard query without a daybook metric: {expr}");
            for name in names {
                assert!(
                    described.contains(&name.as_str()),
                    "the dashboard queries {name}, which daybook does not emit"
                );
            }
        }

        let alerts = std::fs::read_to_string(infra.join("prometheus/alerts.yml")).expect("alert rules");
        let names = names_in(&alerts);
        assert!(names.len() >= 10, "{} metric names in the alert rules", names.len());
        for name in names {
            assert!(
                described.contains(&name.as_str()) || future.contains(&name.as_str()),
                "the alert rules use {name}, which daybook does not emit"
            );
        }
    }

    #[test]
    fn names_and_help_texts_are_well_formed() {
        let mut seen = std::collections::BTreeSet::new();
        for &(name, kind, unit, help) in METRICS {
            assert!(seen.insert(name), "{name} described twice");
            assert!(name.starts_with("daybook_") && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
            assert_eq!(kind == Counter, name.ends_with("_total"), "{name}: counters, and only they, end in _total");
            if name.ends_with("_seconds") {
                assert_eq!(unit, Some(Unit::Seconds), "{name}");
            }
            assert!(help.len() > 30 && !help.contains('\n') && !help.contains("  "), "{name}: help {help:?}");
        }
    }
}

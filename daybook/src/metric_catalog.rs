//! Every metric daybook emits, gathered from the crates that declare them.
//!
//! Each metric is declared once, as a [`Metric`] const beside the code that emits it (see
//! [`seams::metric`]), and listed in its crate's `METRICS`; [`CATALOG`] gathers those lists.
//! The help text and unit of every entry are registered with the recorder when it is installed
//! (`ops::install_metrics` calls `describe`), and [`metrics_reference`] renders them as
//! `docs/metrics.md`.
//!
//! This module's tests check that names and help texts are well formed and unique, that every
//! `counter!`/`gauge!`/`histogram!` call in the workspace's sources names a declared metric by
//! its const, with the kind and label keys declared, that every declared metric is emitted,
//! that the Grafana dashboard and the alert rules in `infra/` use only declared names, and that
//! `docs/metrics.md` is what [`metrics_reference`] generates. `daybook/tests/metrics_help.rs`
//! scrapes a running application: every `# TYPE` has its `# HELP`.

use std::fmt::Write as _;

use seams::metric::Metric;

/// The metrics one crate emits.
#[derive(Debug, Clone, Copy)]
pub struct CrateMetrics {
    /// The crate's name.
    pub krate: &'static str,
    /// What in the crate emits them (a sentence of the reference page).
    pub about: &'static str,
    /// The crate's list, `<crate>::METRICS`.
    pub metrics: &'static [Metric],
}

/// Every crate that emits metrics, with its list, in the order of the reference page.
pub const CATALOG: &[CrateMetrics] = &[
    CrateMetrics {
        krate: "seams",
        about: "The JSON error contract both HTTP services share (`seams/src/web.rs`).",
        metrics: seams::METRICS,
    },
    CrateMetrics {
        krate: "ingest",
        about: "The device API: admission, the appends to the log and the breaker that refuses reports \
                while the log is down (`ingest/src/`).",
        metrics: ingest::METRICS,
    },
    CrateMetrics {
        krate: "infra",
        about: "The log engines: the embedded log (`infra/src/embedded_log/`) and Kafka \
                (`infra/src/kafka/`).",
        metrics: infra::METRICS,
    },
    CrateMetrics {
        krate: "projector",
        about: "The projector, which writes the log's reports into the store (`projector/src/lib.rs`).",
        metrics: projector::METRICS,
    },
    CrateMetrics {
        krate: "daybook",
        about: "The application: the HTTP listener and request metrics (`daybook/src/http.rs`, \
                `daybook/src/ops.rs`), scheduled backups (`daybook/src/backup/`) and upkeep \
                (`daybook/src/app.rs`).",
        metrics: crate::METRICS,
    },
];

/// The command that regenerates `docs/metrics.md` (stated in the page and printed by its test).
pub const METRICS_REFERENCE_REGENERATE: &str = "cargo run -p daybook -- docs metrics > docs/metrics.md";

/// Every declared metric, crate by crate.
pub fn all() -> impl Iterator<Item = &'static Metric> {
    CATALOG.iter().flat_map(|c| c.metrics)
}

/// Registers the help text and unit of every metric with the installed recorder.
pub(crate) fn describe() {
    for c in CATALOG {
        seams::metric::describe(c.metrics);
    }
}

/// `docs/metrics.md`: one table per crate of the metrics it emits (name, kind, unit, label
/// keys, help text), from [`CATALOG`].
pub fn metrics_reference() -> String {
    let mut out = String::new();
    out.push_str("# Metrics reference\n\n");
    let _ = writeln!(
        out,
        "> Generated from the metric declarations in the code; do not edit by hand. Regenerate with \
         `{METRICS_REFERENCE_REGENERATE}` (`daybook/tests/docs.rs` fails while this file differs from \
         what the code generates)."
    );
    out.push('\n');
    let _ = writeln!(
        out,
        "Every metric daybook exports on `GET /metrics` (Prometheus text format), with the text of its \
         `# HELP` line. Each one is declared once, as a `Metric` const (`seams/src/metric.rs`) beside \
         the code that emits it, and listed in its crate's `METRICS`; `daybook/src/metric_catalog.rs` \
         gathers the lists, and its tests fail on a metric emitted without a declaration. {} metrics \
         in all.",
        all().count()
    );
    out.push('\n');
    out.push_str(
        "A counter's name ends in `_total`. A histogram is exported as the series `<name>_bucket`, \
         `<name>_sum` and `<name>_count`. Labels are the label keys every sample of the metric \
         carries.\n\n",
    );
    for c in CATALOG {
        let _ = writeln!(out, "- [{}](#{}) ({})", c.krate, c.krate, c.metrics.len());
    }
    for c in CATALOG {
        let _ = writeln!(out, "\n## {}\n\n{}\n", c.krate, c.about);
        out.push_str("| Name | Kind | Unit | Labels | Help |\n|---|---|---|---|---|\n");
        for m in c.metrics {
            let unit = m.unit.map_or("—", |u| u.as_str());
            let labels = if m.labels.is_empty() {
                "—".to_owned()
            } else {
                m.labels.iter().map(|l| format!("`{l}`")).collect::<Vec<_>>().join(", ")
            };
            let help = m.help.replace('|', "\\|");
            let _ = writeln!(out, "| `{}` | {} | {unit} | {labels} | {help} |", m.name, m.kind.as_str());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::{Path, PathBuf};

    use seams::metric::{Kind, Unit};

    use super::*;

    /// The crates whose sources are scanned for metric emissions: every crate of the
    /// workspace's services, including those that emit nothing today.
    const CRATES: [&str; 7] = ["schemas", "seams", "infra", "ingest", "projector", "api", "daybook"];

    fn repo() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
    }

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

    /// Every `.rs` file under the scanned crates' `src/` (this one, whose tests hold examples,
    /// excepted), with its path from the repository root.
    fn sources() -> Vec<(String, String)> {
        let mut files = Vec::new();
        for krate in CRATES {
            rust_files(&repo().join(krate).join("src"), &mut files);
        }
        files.sort();
        files
            .into_iter()
            .filter(|f| !f.ends_with("daybook/src/metric_catalog.rs"))
            .map(|f| {
                let text = std::fs::read_to_string(&f).expect("source file");
                let shown = f.strip_prefix(repo()).unwrap_or(&f).display().to_string();
                (shown, text)
            })
            .collect()
    }

    /// The line (from 1) of byte `at` of `text`.
    fn line_of(text: &str, at: usize) -> usize {
        text[..at].matches('\n').count() + 1
    }

    /// The metric name a const of that identifier declares: `LOG_REJECTED_TOTAL` →
    /// `daybook_log_rejected_total`.
    fn name_of_const(ident: &str) -> String {
        format!("daybook_{}", ident.to_ascii_lowercase())
    }

    /// The arguments of the macro call whose `(` ends `text[..open]`, split at the top-level
    /// commas and trimmed (strings and nested brackets are skipped over).
    fn arguments(text: &str, open: usize) -> Vec<String> {
        let (mut args, mut current, mut depth, mut chars) = (Vec::new(), String::new(), 0usize, text[open..].chars());
        while let Some(c) = chars.next() {
            match c {
                '"' => {
                    current.push(c);
                    while let Some(s) = chars.next() {
                        current.push(s);
                        match s {
                            '\\' => current.extend(chars.next()),
                            '"' => break,
                            _ => {}
                        }
                    }
                    continue;
                }
                '(' | '[' | '{' => depth += 1,
                ')' | ']' | '}' if depth == 0 => break,
                ')' | ']' | '}' => depth -= 1,
                ',' if depth == 0 => {
                    args.push(std::mem::take(&mut current).trim().to_owned());
                    continue;
                }
                _ => {}
            }
            current.push(c);
        }
        if !current.trim().is_empty() {
            args.push(current.trim().to_owned());
        }
        args
    }

    /// One `counter!`/`gauge!`/`histogram!` call: where, the kind, the const it names, its label keys.
    #[derive(Debug)]
    struct Emission {
        place: String,
        kind: Kind,
        ident: String,
        labels: Vec<String>,
    }

    /// Every metric macro call in `sources` (comments and `describe_…!` calls skipped); a
    /// call that does not name its metric as `<CONST>.name`, or whose labels are not
    /// `"key" => value` pairs, is an error.
    fn emissions(sources: &[(String, String)]) -> (Vec<Emission>, Vec<String>) {
        let (mut found, mut errors) = (Vec::new(), Vec::new());
        for (file, text) in sources {
            for (macro_name, kind) in
                [("counter!(", Kind::Counter), ("gauge!(", Kind::Gauge), ("histogram!(", Kind::Histogram)]
            {
                for (at, _) in text.match_indices(macro_name) {
                    let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
                    if text[..at].ends_with("describe_") || text[line_start..at].contains("//") {
                        continue;
                    }
                    let place = format!("{file}:{}", line_of(text, at));
                    let args = arguments(text, at + macro_name.len());
                    let first = args.first().map_or("", String::as_str);
                    let ident = first.strip_suffix(".name").map(|path| path.rsplit("::").next().unwrap_or(path));
                    let Some(ident) = ident.filter(|i| {
                        !i.is_empty() && i.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
                    }) else {
                        let hint = if first.starts_with("\"daybook_") {
                            "a metric name as a string literal: declare a `seams::metric::Metric` const beside the \
                             code, list it in the crate's METRICS, and emit `CONST.name`"
                        } else {
                            "the first argument must be a declared metric's name, `CONST.name`"
                        };
                        errors.push(format!("{place}: `{}{first}, …)`: {hint}", &macro_name));
                        continue;
                    };
                    let mut labels = Vec::new();
                    for label in &args[1..] {
                        match label.split_once("=>").map(|(k, _)| k.trim()) {
                            Some(key) if key.len() >= 2 && key.starts_with('"') && key.ends_with('"') => {
                                labels.push(key[1..key.len() - 1].to_owned());
                            }
                            _ => errors.push(format!("{place}: label `{label}` is not a `\"key\" => value` pair")),
                        }
                    }
                    found.push(Emission { place, kind, ident: ident.to_owned(), labels });
                }
            }
        }
        (found, errors)
    }

    /// Every `const IDENT: Metric = Metric { name: "…", … }` declaration in `sources`:
    /// `(IDENT, name, place)`.
    fn declarations(sources: &[(String, String)]) -> Vec<(String, String, String)> {
        let mut found = Vec::new();
        for (file, text) in sources {
            for (at, _) in text.match_indices("const ") {
                let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
                let rest = &text[at + "const ".len()..];
                let Some((ident, ty)) = rest.split_once(':') else { continue };
                let head = ty.lines().next().unwrap_or("").trim();
                if !(head.ends_with("Metric {") && head.contains("Metric = "))
                    || ident.contains(char::is_whitespace)
                    || text[line_start..at].contains("//")
                {
                    continue;
                }
                let name = ty.split_once("name: \"").and_then(|(_, n)| n.split_once('"')).map_or("", |(n, _)| n);
                let place = format!("{file}:{}", line_of(text, at));
                found.push((ident.to_owned(), name.to_owned(), place));
            }
        }
        found
    }

    #[test]
    fn the_source_scan_reads_calls_and_declarations() {
        let text = r#"
            metrics::counter!(crate::a::LOG_REJECTED_TOTAL.name, "reason" => f(x, "y)"), "kind" => k).increment(1);
            // metrics::counter!("daybook_in_a_comment_total")
            metrics::gauge!("daybook_literal", "a" => "b").set(1.0);
            metrics::describe_histogram!("daybook_described_seconds", "help");
            metrics::histogram!(HISTO.name, labels).record(1.0);
            pub(crate) const LOG_REJECTED_TOTAL: seams::metric::Metric = seams::metric::Metric {
                name: "daybook_log_rejected_total",
            };
            const NOT_A_METRIC: usize = 3;
        "#;
        let sources = [("x.rs".to_owned(), text.to_owned())];
        let (found, errors) = emissions(&sources);
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!((found[0].kind, found[0].ident.as_str()), (Kind::Counter, "LOG_REJECTED_TOTAL"));
        assert_eq!(found[0].labels, ["reason", "kind"]);
        assert_eq!((found[1].kind, found[1].ident.as_str()), (Kind::Histogram, "HISTO"));
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].starts_with("x.rs:4: `gauge!(\"daybook_literal\", …)`: a metric name as a string literal"));
        assert!(errors[1].contains("label `labels` is not"), "{errors:?}");
        let declared = declarations(&sources);
        assert_eq!(declared.len(), 1, "{declared:?}");
        assert_eq!(
            (declared[0].0.as_str(), declared[0].1.as_str()),
            ("LOG_REJECTED_TOTAL", "daybook_log_rejected_total")
        );
        assert_eq!(name_of_const("LOG_REJECTED_TOTAL"), "daybook_log_rejected_total");
    }

    /// Every metric macro call in the crates' sources names a declared metric by its const,
    /// with that metric's kind and label keys; every declared metric is emitted; every
    /// `Metric` const is named after its metric and listed in [`CATALOG`].
    #[test]
    fn every_emission_uses_a_declared_metric() {
        let declared: BTreeMap<&str, &Metric> = all().map(|m| (m.name, m)).collect();
        let sources = sources();
        let (found, mut errors) = emissions(&sources);
        assert!(found.len() > 40, "the source scan found only {} metric calls", found.len());

        let mut emitted = BTreeSet::new();
        for e in &found {
            let name = name_of_const(&e.ident);
            let Some(m) = declared.get(name.as_str()) else {
                errors.push(format!(
                    "{}: `{}.name` is no declared metric: no crate's METRICS lists {name} (a Metric const is \
                     named after its metric without `daybook_`, upper case, and listed in its crate's METRICS, \
                     which daybook/src/metric_catalog.rs gathers)",
                    e.place, e.ident
                ));
                continue;
            };
            emitted.insert(m.name);
            if m.kind != e.kind {
                errors.push(format!("{}: {name} is declared a {:?} but emitted with {:?}", e.place, m.kind, e.kind));
            }
            let (mut want, mut have) = (m.labels.to_vec(), e.labels.iter().map(String::as_str).collect::<Vec<_>>());
            want.sort_unstable();
            have.sort_unstable();
            if want != have {
                errors.push(format!("{}: {name} is emitted with labels {have:?}, declared with {want:?}", e.place));
            }
        }
        for name in declared.keys().filter(|n| !emitted.contains(*n)) {
            errors.push(format!("{name} is declared but nothing emits it any more"));
        }

        let consts = declarations(&sources);
        for (ident, name, place) in &consts {
            if *name != name_of_const(ident) {
                errors.push(format!("{place}: const {ident} declares {name:?}; name it after its metric"));
            } else if !declared.contains_key(name.as_str()) {
                errors.push(format!("{place}: {name} is declared but in no crate's METRICS"));
            }
        }
        assert_eq!(consts.len(), declared.len(), "Metric consts in the sources vs metrics in the catalog");
        assert!(errors.is_empty(), "\n{}\n", errors.join("\n"));
    }

    #[test]
    fn names_and_help_texts_are_well_formed() {
        let mut seen = BTreeSet::new();
        for m in all() {
            let name = m.name;
            assert!(seen.insert(name), "{name} declared twice");
            assert!(
                name.starts_with("daybook_") && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{name}: daybook_ and snake case"
            );
            assert_eq!(
                m.kind == Kind::Counter,
                name.ends_with("_total"),
                "{name}: counters, and only they, end in _total"
            );
            if name.ends_with("_seconds") {
                assert_eq!(m.unit, Some(Unit::Seconds), "{name}");
            }
            let help = m.help;
            assert!(help.len() > 30 && !help.contains('\n') && !help.contains("  "), "{name}: help {help:?}");
            let mut labels = BTreeSet::new();
            for label in m.labels {
                assert!(labels.insert(label), "{name}: label {label} twice");
                assert!(
                    !label.is_empty() && label.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                    "{name}: label {label:?} is not snake case"
                );
            }
        }
        assert!(seen.len() > 40, "{} metrics in the catalog", seen.len());
    }

    /// The `daybook_…` metric names in `text` (histogram series suffixes taken off).
    fn names_in(text: &str) -> Vec<String> {
        let histograms: Vec<_> = all().filter(|m| m.kind == Kind::Histogram).map(|m| m.name).collect();
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
    fn dashboard_and_alerts_use_only_declared_metrics() {
        let infra = repo().join("infra");
        let declared: Vec<_> = all().map(|m| m.name).collect();

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
                assert!(declared.contains(&name.as_str()), "the dashboard queries {name}, which daybook does not emit");
            }
        }

        let alerts = std::fs::read_to_string(infra.join("prometheus/alerts.yml")).expect("alert rules");
        let names = names_in(&alerts);
        assert!(names.len() >= 10, "{} metric names in the alert rules", names.len());
        for name in names {
            assert!(declared.contains(&name.as_str()), "the alert rules use {name}, which daybook does not emit");
        }
    }
}

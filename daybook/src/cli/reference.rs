//! `daybook docs …` (hidden): reference pages of `docs/` generated from the code, so they
//! cannot drift from it. `daybook/tests/docs.rs` regenerates each one and fails when the
//! checked-in file differs.
//!
//! - `docs configuration` → `docs/configuration.md`: every subcommand's flags (name, value,
//!   environment variable, default, help text) from the clap definitions in `cli/`.
//!
//! A generated page is one more [`DocsCmd`] variant, a `pub fn` returning its markdown, and one
//! line in the test's list of generated pages.
//! - `docs metrics` → `docs/metrics.md`: every metric's name, kind, unit, labels and help, from
//!   the declarations beside the code that emits them (`crate::metric_catalog`).

use std::fmt::Write as _;

use clap::{Arg, ArgAction, Command, CommandFactory, Subcommand};

use super::Cli;

/// The command that regenerates `docs/configuration.md` (printed in the page and by the test).
pub const CONFIGURATION_REGENERATE: &str = "cargo run -p daybook -- docs configuration > docs/configuration.md";

#[derive(Debug, Subcommand)]
pub enum DocsCmd {
    /// Print docs/configuration.md: every subcommand's flags, environment variables and
    /// defaults, from the command-line definitions.
    Configuration,
    /// Print docs/metrics.md: every metric daybook emits, from its declaration.
    Metrics,
}

/// Prints the page `cmd` names on stdout.
pub fn run(cmd: DocsCmd) -> anyhow::Result<()> {
    match cmd {
        DocsCmd::Configuration => print!("{}", configuration()),
        DocsCmd::Metrics => print!("{}", crate::metric_catalog::metrics_reference()),
    }
    Ok(())
}

/// `docs/configuration.md`: the `daybook` command tree walked from [`Cli::command`], one
/// section per visible (sub)command with a table of its flags and arguments.
pub fn configuration() -> String {
    let root = Cli::command();
    let mut commands = Vec::new();
    collect(&root, &[root.get_name().to_owned()], &mut commands);

    let mut out = String::new();
    out.push_str("# Configuration reference\n\n");
    let _ = writeln!(
        out,
        "> Generated from the `daybook` binary's command-line definitions (`daybook/src/cli/`); do not \
         edit by hand. Regenerate with `{CONFIGURATION_REGENERATE}`: `daybook/tests/docs.rs` fails \
         while this file differs from what the code generates."
    );
    out.push('\n');
    out.push_str(
        "Every flag that names an environment variable can be set through it instead; a flag on the \
         command line wins over the variable, the variable over the default. `daybook <command> \
         --help` prints the same text. Durations written like `1h` or `7d` are humantime \
         (`30m`, `12h`, `90d`, `1y`).\n\n",
    );

    out.push_str("- [Flags of every command](#flags-of-every-command)\n");
    for (path, _) in &commands {
        let title = path.join(" ");
        let _ = writeln!(out, "- [`{title}`](#{})", title.replace(' ', "-"));
    }
    out.push_str("- [Environment variables without a flag](#environment-variables-without-a-flag)\n\n");

    out.push_str("## Flags of every command\n\n");
    out.push_str("Accepted before or after the subcommand.\n\n");
    table(&mut out, root.get_arguments().filter(|a| !a.is_hide_set()));

    for (path, cmd) in &commands {
        let _ = writeln!(out, "## {}\n", path.join(" "));
        if let Some(about) = cmd.get_long_about().or(cmd.get_about()) {
            let _ = writeln!(out, "{}\n", paragraphs(&about.to_string(), "\n\n"));
        }
        let subcommands: Vec<_> = cmd.get_subcommands().filter(|c| !c.is_hide_set()).collect();
        if !subcommands.is_empty() {
            let names: Vec<_> = subcommands
                .iter()
                .map(|c| {
                    let title = format!("{} {}", path.join(" "), c.get_name());
                    format!("[`{}`](#{})", c.get_name(), title.replace(' ', "-"))
                })
                .collect();
            let _ = writeln!(out, "Subcommands: {}.\n", names.join(", "));
        }
        let args: Vec<_> = cmd.get_arguments().filter(|a| !a.is_hide_set() && !a.is_global_set()).collect();
        if !args.is_empty() {
            table(&mut out, args.into_iter());
        }
        if let Some(after) = cmd.get_after_long_help().or(cmd.get_after_help()) {
            let _ = writeln!(out, "{}\n", paragraphs(&after.to_string(), "\n\n"));
        }
    }
    out.push_str(ENVIRONMENT);
    out.truncate(out.trim_end().len());
    out.push('\n');
    out
}

/// The variables read without a flag of their own (their names are checked against the
/// sources by `daybook/tests/docs.rs`).
const ENVIRONMENT: &str = "\
## Environment variables without a flag

| variable | meaning |
|---|---|
| `DAYBOOK_TOKEN_SECRET` | the one key that signs and verifies tokens (at least 32 characters); without it, the keys of `DATA_DIR/token-keys`, else a secret generated once into `DATA_DIR/token-secret` ([tokens.md](tokens.md)) |
| `DAYBOOK_KAFKA_<PROP>` | a librdkafka property (`DAYBOOK_KAFKA_SASL_MECHANISM=SCRAM-SHA-512` sets `sasl.mechanism`), applied after `--kafka-config` |
| `DAYBOOK_FAULTS` | fault injection, to rehearse an outage ([operations.md](operations.md#drills)) |
| `RUST_LOG` | log verbosity (default `info`); `--log-format` chooses text or JSON |
| `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, a profile, an instance role | credentials of an external S3 endpoint (`--s3-endpoint`) and of `s3://` backup destinations: the AWS chain |
";

/// Every visible subcommand under `cmd`, depth first in declaration order, with its path from
/// the binary's name (`["daybook", "token", "keys", "add"]`).
fn collect<'a>(cmd: &'a Command, path: &[String], out: &mut Vec<(Vec<String>, &'a Command)>) {
    for sub in cmd.get_subcommands().filter(|c| !c.is_hide_set()) {
        let mut sub_path = path.to_vec();
        sub_path.push(sub.get_name().to_owned());
        out.push((sub_path.clone(), sub));
        collect(sub, &sub_path, out);
    }
}

/// One table row per argument: how it is written, its environment variable, its default and
/// its help text.
fn table<'a>(out: &mut String, args: impl Iterator<Item = &'a Arg>) {
    out.push_str("| flag | environment | default | meaning |\n|---|---|---|---|\n");
    for arg in args {
        let takes_value = arg.get_action().takes_values();
        let value = value_names(arg);
        let mut flag = match arg.get_long() {
            Some(long) if takes_value => format!("`--{long} {value}`"),
            Some(long) => format!("`--{long}`"),
            None => format!("`{value}`"),
        };
        if let Some(aliases) = arg.get_visible_aliases() {
            for alias in aliases {
                let _ = write!(flag, ", `--{alias}`");
            }
        }
        let env = match arg.get_env() {
            Some(env) if !arg.is_hide_env_set() => format!("`{}`", env.to_string_lossy()),
            _ => String::new(),
        };
        let defaults: Vec<_> = arg.get_default_values().iter().map(|v| v.to_string_lossy().into_owned()).collect();
        let default = if !takes_value || arg.is_hide_default_value_set() || defaults.is_empty() {
            String::new()
        } else {
            format!("`{}`", defaults.join(","))
        };
        let mut meaning =
            arg.get_long_help().or(arg.get_help()).map(|h| paragraphs(&h.to_string(), "<br>")).unwrap_or_default();
        let possible: Vec<_> = arg
            .get_possible_values()
            .iter()
            .filter(|p| !p.is_hide_set())
            .map(|p| format!("`{}`", p.get_name()))
            .collect();
        if !possible.is_empty() && takes_value && !arg.is_hide_possible_values_set() {
            let _ = write!(meaning, " One of {}.", possible.join(", "));
        }
        if arg.is_required_set() {
            meaning.insert_str(0, "**Required.** ");
        }
        let _ = writeln!(out, "| {flag} | {env} | {default} | {} |", meaning.replace('|', "\\|"));
    }
    out.push('\n');
}

/// `<NAME>` for each value of the argument (`<CIDS>...` for a list).
fn value_names(arg: &Arg) -> String {
    let names: Vec<String> = match arg.get_value_names() {
        Some(names) => names.iter().map(|n| n.to_string()).collect(),
        None => vec![arg.get_id().as_str().to_uppercase()],
    };
    let mut value = names.iter().map(|n| format!("<{n}>")).collect::<Vec<_>>().join(" ");
    if matches!(arg.get_action(), ArgAction::Append) || arg.get_num_args().is_some_and(|n| n.max_values() > 1) {
        value.push_str("...");
    }
    value
}

/// Help text on one markdown line (or paragraph): lines of a paragraph joined with spaces,
/// paragraphs with `separator`.
fn paragraphs(text: &str, separator: &str) -> String {
    text.trim()
        .split("\n\n")
        .map(|p| p.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" "))
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join(separator)
}

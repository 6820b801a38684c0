//! The documentation against the code.
//!
//! - The generated pages of `docs/` (`daybook docs …`, see `daybook/src/cli/reference.rs`) are
//!   what the code generates today.
//! - README.md, every `docs/**/*.md` and `bench/RESULTS.md` name only repository paths that exist
//!   (in code spans, code blocks and relative links, anchors included), only `daybook` flags the
//!   command line defines, and only `DAYBOOK_*` environment variables something reads.
//!
//! What is checked, so that the check is useful and never flaky:
//! - a path in a code span or a code block counts when its first component is an entry of the
//!   repository's root (`infra/src/s3.rs`, `scripts/test`, `web/`); runtime paths are skipped
//!   (`./data`, `DATA_DIR/log/`, `~/.cache/…`, `$HOME/…`, `/tmp/…`, `log/HEAD`, URLs), and a
//!   placeholder component (`<target>`, `{cid}`, `DIR`, `*`, `…`) ends the part checked;
//! - a relative markdown link must name an existing file, and its `#anchor` a heading of the
//!   markdown file it points to;
//! - a `--flag` is checked in a `daybook …` command (`daybook backup list --flag`, also
//!   `cargo run -p daybook -- …`, and a code span that starts with a subcommand, `run
//!   --backup-to DEST`): against the flags of the subcommand it names (and the global ones); in
//!   a code span that starts with a flag (`--retention-days`, `--ttl 90d`, `--scylla-*`):
//!   against every flag of the command tree. Flags of other tools (cargo, curl, `daybook-bench`,
//!   scripts) are not checked, except that a code span made only of another tool's flag must be
//!   listed in [`OTHER_TOOLS_FLAGS`];
//! - a `DAYBOOK_*` variable must be one the command line reads or one named in the sources
//!   (scripts, tests, fuzzing): `DAYBOOK_KAFKA_<PROP>` and `DAYBOOK_DIGEST_WINDOW_*` are prefixes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use clap::CommandFactory;
use daybook::cli::{reference, Cli};

/// Pages generated from the code: path in the repository, generator, command that regenerates
/// it.
/// A generated page: its path, its generator, the command that regenerates it.
type Generated = (&'static str, fn() -> String, &'static str);

const GENERATED: &[Generated] = &[
    ("docs/configuration.md", reference::configuration, reference::CONFIGURATION_REGENERATE),
    (
        "docs/metrics.md",
        daybook::metric_catalog::metrics_reference,
        daybook::metric_catalog::METRICS_REFERENCE_REGENERATE,
    ),
];

/// Flags of other tools that the documents mention in a code span of their own (`--skip-direct`
/// of `daybook-bench`): not daybook's, so not checked against its command line.
const OTHER_TOOLS_FLAGS: &[(&str, &[&str])] = &[
    (
        "daybook-bench",
        &[
            "skip-direct",
            "read-rps",
            "fraction",
            "seconds",
            "out",
            "log",
            "with-embedded",
            "replays",
            "replay-after-s",
            "devices",
            "broker-pid",
            "max-rows-per-s",
            "rate",
            "bad-receivers",
            "subscribe-person",
        ],
    ),
    ("cargo", &["release", "workspace", "nocapture", "locked", "no-run", "test", "bench"]),
    ("clients/python/examples/duckdb_calendar.py", &["day", "days", "bootstrap", "topic", "device", "db"]),
];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the daybook crate is in the workspace").to_owned()
}

#[test]
fn generated_pages_are_up_to_date() {
    let bless = std::env::var_os("DAYBOOK_BLESS").is_some();
    let mut stale = Vec::new();
    for (path, generate, command) in GENERATED {
        let want = generate();
        let file = repo().join(path);
        let have = std::fs::read_to_string(&file).unwrap_or_default();
        if have == want {
            continue;
        }
        if bless {
            std::fs::write(&file, &want).unwrap_or_else(|e| panic!("writing {path}: {e}"));
            continue;
        }
        let line = have
            .lines()
            .zip(want.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(have.lines().count().min(want.lines().count()));
        stale.push(format!(
            "{path} is not what the code generates (first difference at line {}):\n  checked in: {:?}\n  generated:  {:?}\n\
             regenerate it from the repository's root with\n    {command}\n\
             (or `DAYBOOK_BLESS=1 cargo test -p daybook --test docs`), then review the diff.",
            line + 1,
            have.lines().nth(line).unwrap_or("(end of file)"),
            want.lines().nth(line).unwrap_or("(end of file)"),
        ));
    }
    assert!(stale.is_empty(), "\n{}\n", stale.join("\n\n"));
}

#[test]
fn the_docs_name_only_paths_flags_and_variables_that_exist() {
    let root = repo();
    let checker = Checker::new(&root);
    let mut documents = vec![root.join("README.md"), root.join("bench/RESULTS.md")];
    markdown_files(&root.join("docs"), &mut documents);
    let mut problems = Vec::new();
    for doc in &documents {
        let text = std::fs::read_to_string(doc).unwrap_or_else(|e| panic!("{}: {e}", doc.display()));
        problems.extend(checker.check(doc, &text));
    }
    assert!(documents.len() > 3, "found only {documents:?}");
    assert!(
        problems.is_empty(),
        "\n{} stale reference(s) in the documentation (daybook/tests/docs.rs says what is checked):\n{}\n",
        problems.len(),
        problems.join("\n")
    );
}

/// The checker itself: each kind of stale reference is found, and the runtime paths, other
/// tools' flags and placeholders it must leave alone are left alone.
#[test]
fn the_reference_checker_finds_stale_references_and_only_those() {
    let root = repo();
    let checker = Checker::new(&root);
    let doc = root.join("docs/example.md");
    let stale = "\
See `infra/src/no_such_file.rs` and [the guide](no-such-page.md), [backups](../README.md#no-such-heading).
Run `daybook backup list /b --no-such-flag`, or `daybook restore --keep-full 2` (a flag of `backup` only).
`--no-such-option` alone, `run --also-missing`, and `DAYBOOK_NO_SUCH_VARIABLE`.
```sh
cargo run --release -p daybook -- run --missing-in-a-block
python clients/python/examples/missing.py --bootstrap x
```
";
    let found = checker.check(&doc, stale);
    assert!(found.iter().any(|p| p.contains("--also-missing") && p.contains("daybook run")), "{}", found.join("\n"));
    let expect = [
        "infra/src/no_such_file.rs",
        "no-such-page.md",
        "no-such-heading",
        "--no-such-flag",
        "--keep-full",
        "--no-such-option",
        "--also-missing",
        "DAYBOOK_NO_SUCH_VARIABLE",
        "--missing-in-a-block",
        "clients/python/examples/missing.py",
    ];
    for needle in expect {
        assert!(found.iter().any(|p| p.contains(needle)), "not found: {needle}\n{}", found.join("\n"));
    }
    assert_eq!(found.len(), expect.len(), "{}", found.join("\n"));

    let fine = "\
State in `./data`, `DATA_DIR/log/`, `log/HEAD`, `~/.cache/daybook`, `$HOME/x`, `/tmp/drill`, `DIR/result.json`,
`fuzz/corpus/<target>/`, `devices/{cid}/segments/{segment_id}`, `s3://BUCKET/PREFIX`, `kafka://k1:9092/t`, [x](#fine).
`daybook token device cam-1 --tz Europe/Paris --ttl 90d`, `daybook <command> --help`, `--backup-interval`.
`daybook-bench burst --skip-direct --whatever`, `cargo test --release -- --nocapture`, `curl -s --data-binary @x`.
`DAYBOOK_KAFKA_<PROP>`, `DAYBOOK_DIGEST_WINDOW_*`, `DAYBOOK_RETENTION_DAYS`, `DAYBOOK_TEST_KAFKA`.

## Fine

```sh
daybook() { cargo run -q --release -p daybook -- \"$@\"; }
DEV=$(daybook token device cam-1 --tz Europe/Paris | tail -1)   # in ./data
DAYBOOK_FAULTS=\"append=hang; apply=fail_fraction:0.1\" daybook run --data-dir /tmp/drill
cargo run --release -p daybook-bench -- burst --out DIR
```
";
    let found = checker.check(&doc, fine);
    assert!(found.is_empty(), "{}", found.join("\n"));
}

fn markdown_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let mut entries: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            markdown_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "md") {
            out.push(path);
        }
    }
}

/// A command of the `daybook` tree: its flags (with their aliases, and the global ones) and its
/// subcommands.
#[derive(Debug, Default)]
struct CommandFlags {
    flags: BTreeSet<String>,
    subcommands: BTreeMap<String, CommandFlags>,
}

impl CommandFlags {
    fn of(cmd: &clap::Command, global: &BTreeSet<String>) -> Self {
        let mut flags = global.clone();
        flags.extend(["help".to_owned(), "version".to_owned()]);
        let mut global = global.clone();
        for arg in cmd.get_arguments() {
            let names = arg.get_long().into_iter().chain(arg.get_all_aliases().unwrap_or_default());
            for name in names {
                flags.insert(name.to_owned());
                if arg.is_global_set() {
                    global.insert(name.to_owned());
                }
            }
        }
        let subcommands = cmd.get_subcommands().map(|c| (c.get_name().to_owned(), Self::of(c, &global))).collect();
        Self { flags, subcommands }
    }

    fn all(&self, out: &mut BTreeSet<String>) {
        out.extend(self.flags.iter().cloned());
        for sub in self.subcommands.values() {
            sub.all(out);
        }
    }
}

struct Checker {
    root: PathBuf,
    /// Entries of the repository's root: a path starting with one of them is the repository's.
    top: BTreeSet<String>,
    tree: CommandFlags,
    all_flags: BTreeSet<String>,
    /// Variables the command line reads.
    env: BTreeSet<String>,
    /// Every `DAYBOOK_…` word of the sources (scripts, tests, code), for the variables read
    /// elsewhere than by the command line.
    source_words: BTreeSet<String>,
}

/// Paths the repository does not hold because something creates them when it runs.
const RUNTIME_PATHS: &[&str] = &["target", "data", "fuzz/artifacts"];

impl Checker {
    fn new(root: &Path) -> Self {
        let top = std::fs::read_dir(root)
            .expect("the repository's root")
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|name| name != ".git")
            .collect();
        let command = Cli::command();
        let tree = CommandFlags::of(&command, &BTreeSet::new());
        let mut all_flags = BTreeSet::new();
        tree.all(&mut all_flags);
        let mut env = BTreeSet::new();
        collect_env(&command, &mut env);
        let mut source_words = BTreeSet::new();
        source_daybook_words(root, root, &mut source_words);
        Self { root: root.to_owned(), top, tree, all_flags, env, source_words }
    }

    /// Every stale reference of one document, as `path:line: what`.
    fn check(&self, doc: &Path, text: &str) -> Vec<String> {
        let name = doc.strip_prefix(&self.root).unwrap_or(doc).display().to_string();
        let mut problems = Vec::new();
        let lines: Vec<&str> = text.lines().collect();
        let mut i = 0;
        while i < lines.len() {
            let trimmed = lines[i].trim_start();
            if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
                let marker = &trimmed[..3];
                i += 1;
                while i < lines.len() && !lines[i].trim_start().starts_with(marker) {
                    let mut report = |what: String| problems.push(format!("{name}:{}: {what}", i + 1));
                    self.check_code(lines[i], false, &mut report);
                    i += 1;
                }
                i += 1;
                continue;
            }
            // A block: a table row or a heading alone, else a paragraph up to a blank line (a
            // code span or a link may wrap).
            let first = i;
            let alone = |l: &str| {
                let t = l.trim_start();
                t.starts_with('|') || t.starts_with('#') || t.starts_with("```") || t.starts_with("~~~")
            };
            let mut block = String::new();
            loop {
                block.push_str(lines[i]);
                block.push('\n');
                i += 1;
                if alone(lines[i - 1]) || i == lines.len() || lines[i].trim().is_empty() || alone(lines[i]) {
                    break;
                }
            }
            let line_of = |offset: usize| first + block[..offset].matches('\n').count() + 1;
            let (spans, prose) = code_spans(&block);
            for (offset, span) in spans {
                let mut report = |what: String| problems.push(format!("{name}:{}: {what}", line_of(offset)));
                self.check_code(&span.replace('\n', " "), true, &mut report);
            }
            for (offset, target) in links(&prose) {
                let mut report = |what: String| problems.push(format!("{name}:{}: {what}", line_of(offset)));
                self.check_link(doc, text, &target, &mut report);
            }
        }
        problems
    }

    /// A code span (`inline`) or a line of a code block.
    fn check_code(&self, code: &str, inline: bool, report: &mut impl FnMut(String)) {
        for word in code.split_whitespace() {
            let word = word.trim_matches(|c: char| "\"'`(),;[]".contains(c));
            if let Some(path) = self.repo_path(word) {
                let target = self.root.join(path.trim_end_matches('/'));
                if !target.exists() || (path.ends_with('/') && !target.is_dir()) {
                    report(format!("`{word}`: no such path in the repository"));
                }
            }
        }
        for var in daybook_words(code) {
            let known = if let Some(prefix) = var.strip_suffix('_') {
                self.env.iter().chain(&self.source_words).any(|v| v.starts_with(&format!("{prefix}_")))
            } else {
                self.env.contains(&var) || self.source_words.contains(&var)
            };
            if !known {
                report(format!("`{var}`: no such environment variable (neither a flag's nor read by any source)"));
            }
        }
        self.check_flags(code, inline, report);
    }

    /// The repository path a word names, if it names one (see the module's documentation).
    fn repo_path(&self, word: &str) -> Option<String> {
        if word.contains("://") || word.starts_with(['/', '~', '$', '.', '@', '<', '-']) || !word.contains('/') {
            return None;
        }
        let first = word.split('/').next()?;
        if !self.top.contains(first) || word.contains('=') {
            return None;
        }
        if RUNTIME_PATHS.iter().any(|p| word.trim_end_matches('/') == *p || word.starts_with(&format!("{p}/"))) {
            return None;
        }
        let mut kept = Vec::new();
        for component in word.split('/') {
            let placeholder = component.contains(['<', '{', '*', '…', '$', '%', '[', ':'])
                || (component.len() > 1
                    && component.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'));
            if placeholder {
                kept.push("");
                break;
            }
            kept.push(component);
        }
        let path = kept.join("/");
        (!path.is_empty()).then_some(path)
    }

    /// The `--flags` of `daybook` commands in `code` (see the module's documentation).
    fn check_flags(&self, code: &str, inline: bool, report: &mut impl FnMut(String)) {
        // One shell command at a time: `a | b`, `a; b`, `$(a)`, and no comments.
        let code = match code.find(" #") {
            Some(i) => &code[..i],
            None => code,
        };
        let words_of_code: Vec<&str> = code.split_whitespace().collect();
        let standalone = inline && words_of_code.first().is_some_and(|w| is_flag(w));
        if standalone {
            for word in &words_of_code {
                if let Some(flag) = flag_name(word) {
                    let other = OTHER_TOOLS_FLAGS.iter().any(|(_, flags)| flags.contains(&flag.as_str()));
                    if !defines(&self.all_flags, &flag) && !other {
                        report(format!("`--{flag}`: no `daybook` command has this flag"));
                    }
                }
            }
            return;
        }
        for command in code.split(['|', ';', '(', ')']).flat_map(|c| c.split(" && ")) {
            let words: Vec<&str> = command.split_whitespace().collect();
            let start = words.iter().enumerate().find_map(|(i, w)| {
                let after_package = i > 0 && ["-p", "--package", "--bin"].contains(&words[i - 1]);
                if *w == "daybook" && !after_package {
                    Some(i + 1)
                } else if *w == "daybook"
                    && words.get(i + 1) == Some(&"--")
                    && words[..i].windows(2).any(|p| p == ["cargo", "run"])
                {
                    Some(i + 2)
                } else {
                    None
                }
            });
            let start = match start {
                Some(start) => start,
                // `run --backup-to DEST`: a code span that is a daybook subcommand line.
                None if inline && words.first().is_some_and(|w| self.tree.subcommands.contains_key(*w)) => 0,
                None => continue,
            };
            let mut path = vec!["daybook".to_owned()];
            let mut at = &self.tree;
            let mut descending = true;
            for word in &words[start..] {
                if let Some(flag) = flag_name(word) {
                    descending = false;
                    if !defines(&at.flags, &flag) {
                        report(format!("`--{flag}`: not a flag of `{}`", path.join(" ")));
                    }
                } else if descending {
                    match at.subcommands.get(*word) {
                        Some(sub) => {
                            path.push((*word).to_owned());
                            at = sub;
                        }
                        None => descending = false,
                    }
                }
            }
        }
    }

    /// A relative link of `doc` (whose text is `text`).
    fn check_link(&self, doc: &Path, text: &str, target: &str, report: &mut impl FnMut(String)) {
        if target.contains("://") || target.starts_with("mailto:") {
            return;
        }
        let (file, anchor) = match target.split_once('#') {
            Some((file, anchor)) => (file, Some(anchor)),
            None => (target, None),
        };
        let path = doc.parent().expect("a document is in a directory").join(file);
        if !file.is_empty() && !path.exists() {
            report(format!("link `{target}`: no such file"));
            return;
        }
        let Some(anchor) = anchor else { return };
        let target_text = if file.is_empty() {
            text.to_owned()
        } else if path.extension().is_some_and(|e| e == "md") {
            std::fs::read_to_string(&path).unwrap_or_default()
        } else {
            return;
        };
        if !heading_anchors(&target_text).contains(anchor) {
            report(format!("link `{target}`: no heading with this anchor"));
        }
    }
}

fn is_flag(word: &str) -> bool {
    flag_name(word).is_some()
}

/// `data-dir` in `--data-dir`, `[--data-dir`, `--data-dir=X`, `--data-dir…]`; `scylla-*` (a
/// family of flags) in `--scylla-*`.
fn flag_name(word: &str) -> Option<String> {
    let word = word.trim_start_matches(['[', '(', '`', '"', '\'']);
    let rest = word.strip_prefix("--")?;
    let name: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '-').collect();
    let family = rest[name.len()..].starts_with('*');
    let name = if family { format!("{name}*") } else { name.trim_end_matches('-').to_owned() };
    name.starts_with(|c: char| c.is_ascii_lowercase()).then_some(name)
}

/// Whether `flag` (or, for `scylla-*`, any flag of the family) is in `flags`.
fn defines(flags: &BTreeSet<String>, flag: &str) -> bool {
    match flag.strip_suffix('*') {
        Some(prefix) => flags.iter().any(|f| f.starts_with(prefix)),
        None => flags.contains(flag),
    }
}

/// The code spans of a block of markdown with their offsets, and the block with each span
/// blanked out (same length, so offsets still hold).
fn code_spans(block: &str) -> (Vec<(usize, String)>, String) {
    let mut spans = Vec::new();
    let mut prose = block.to_owned().into_bytes();
    let mut at = 0;
    while let Some(open) = block[at..].find('`').map(|o| at + o) {
        let ticks = block[open..].chars().take_while(|c| *c == '`').count();
        let inner = open + ticks;
        let fence = "`".repeat(ticks);
        match block[inner..].find(&fence).map(|c| inner + c) {
            Some(close) => {
                spans.push((open, block[inner..close].trim().to_owned()));
                for b in &mut prose[open..close + ticks] {
                    if *b != b'\n' {
                        *b = b' ';
                    }
                }
                at = close + ticks;
            }
            None => at = inner,
        }
    }
    (spans, String::from_utf8_lossy(&prose).into_owned())
}

/// The targets of the inline links of a text (`[text](target)`, `[text](target "title")`),
/// with their offsets.
fn links(prose: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(i) = prose[at..].find("](").map(|i| at + i) {
        at = i + 2;
        let Some(end) = prose[at..].find(')').map(|e| at + e) else { break };
        let target = prose[at..end].split_whitespace().next().unwrap_or("").trim_matches(['<', '>']);
        if !target.is_empty() {
            out.push((i, target.to_owned()));
        }
        at = end;
    }
    out
}

/// The anchors GitHub gives the headings of a markdown text: lower case, punctuation dropped,
/// spaces as hyphens, `-1`, `-2`… for repeated ones.
fn heading_anchors(text: &str) -> BTreeSet<String> {
    let mut anchors = BTreeSet::new();
    let mut fence = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fence = !fence;
            continue;
        }
        let Some(heading) = line.strip_prefix('#') else { continue };
        if fence {
            continue;
        }
        let heading = heading.trim_start_matches('#');
        if !heading.starts_with(' ') {
            continue;
        }
        // A link in a heading keeps its text.
        let (_, prose) = code_spans(heading);
        let text: String = if links(&prose).is_empty() {
            heading.to_owned()
        } else {
            let mut out = String::new();
            let mut rest = heading;
            while let Some(i) = rest.find("](") {
                out.push_str(&rest[..i]);
                rest = &rest[i..];
                rest = rest.find(')').map_or("", |end| &rest[end + 1..]);
            }
            out.push_str(rest);
            out
        };
        let slug: String = text
            .trim()
            .to_lowercase()
            .chars()
            .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
            .map(|c| if c == ' ' { '-' } else { c })
            .collect();
        let mut candidate = slug.clone();
        let mut n = 0;
        while anchors.contains(&candidate) {
            n += 1;
            candidate = format!("{slug}-{n}");
        }
        anchors.insert(candidate);
    }
    anchors
}

/// The `DAYBOOK_…` words of a text; a name cut by a placeholder (`DAYBOOK_KAFKA_<PROP>`,
/// `DAYBOOK_DIGEST_WINDOW_*`) keeps its trailing `_`, as a prefix.
fn daybook_words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("DAYBOOK_") {
        let boundary = rest[..i].chars().next_back().is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '_'));
        let word: String =
            rest[i..].chars().take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_').collect();
        rest = &rest[i + word.len()..];
        if boundary && word.len() > "DAYBOOK_".len() {
            out.push(word);
        }
    }
    out
}

fn collect_env(cmd: &clap::Command, out: &mut BTreeSet<String>) {
    for arg in cmd.get_arguments() {
        if let Some(env) = arg.get_env() {
            out.insert(env.to_string_lossy().into_owned());
        }
    }
    for sub in cmd.get_subcommands() {
        collect_env(sub, out);
    }
}

/// The `DAYBOOK_…` words of the repository's sources and scripts (not of its documents).
fn source_daybook_words(root: &Path, dir: &Path, out: &mut BTreeSet<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if path.is_dir() {
            let skip = name.starts_with('.') && name != ".ci"
                || ["target", "node_modules", "docs", "data"].contains(&name.as_str());
            if !skip {
                source_daybook_words(root, &path, out);
            }
            continue;
        }
        let source = ["rs", "sh", "py", "mjs", "js", "yml", "yaml", "toml"]
            .iter()
            .any(|ext| path.extension().is_some_and(|e| e == *ext))
            || path.parent() == Some(&root.join(".ci"))
            || path.parent() == Some(&root.join("scripts"))
            || name.starts_with("Dockerfile");
        // This file names variables that do not exist, on purpose.
        let this_test = path == root.join("daybook/tests/docs.rs");
        if !source || this_test || entry.metadata().map_or(true, |m| m.len() > 2 << 20) {
            continue;
        }
        if let Ok(text) = std::fs::read_to_string(&path) {
            out.extend(daybook_words(&text));
        }
    }
}

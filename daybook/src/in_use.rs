//! Whether a data directory is in use by another process: the embedded log's append lock, and
//! any file under the directory held open (Linux `/proc/*/fd`). `restore --force` and
//! `rebuild` replace files under a data directory and refuse while anything uses it:
//! whatever a running daybook wrote after the swap would go to unlinked files and be lost.

use std::fs;
use std::path::{Path, PathBuf};

/// The log's append lock, held while replacing a data directory's files, so that no
/// `daybook run` or `ingest` starts appending meanwhile.
#[derive(Debug)]
pub(crate) struct AppendLock {
    _file: fs::File,
}

impl AppendLock {
    /// Takes `DATA_DIR/log/LOCK` (creating the log directory); fails, naming the reason, when
    /// another process appends to the log.
    pub(crate) fn take(data_dir: &Path) -> anyhow::Result<Self> {
        let log_dir = data_dir.join("log");
        fs::create_dir_all(&log_dir)?;
        let file = fs::OpenOptions::new().create(true).truncate(false).write(true).open(log_dir.join("LOCK"))?;
        match file.try_lock() {
            Ok(()) => Ok(Self { _file: file }),
            Err(fs::TryLockError::WouldBlock) => anyhow::bail!(
                "{} is being appended to by another process: stop `daybook run` (or `ingest`) on {} first",
                log_dir.display(),
                data_dir.display()
            ),
            Err(fs::TryLockError::Error(e)) => Err(e.into()),
        }
    }
}

/// Processes other than this one holding a file under `dir` open, with one such file each
/// (best effort: empty where `/proc` cannot be read).
pub(crate) fn holders(dir: &Path) -> Vec<(u32, PathBuf)> {
    let Ok(root) = dir.canonicalize() else { return Vec::new() };
    let me = std::process::id();
    let Ok(procs) = fs::read_dir("/proc") else { return Vec::new() };
    let mut out = Vec::new();
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        if pid == me {
            continue;
        }
        let Ok(fds) = fs::read_dir(p.path().join("fd")) else { continue };
        if let Some(held) = fds.flatten().filter_map(|fd| fs::read_link(fd.path()).ok()).find(|l| l.starts_with(&root))
        {
            out.push((pid, held));
        }
    }
    out
}

/// Fails, naming the processes and what to stop, when another process holds a file under
/// `path` (a file or a directory) open.
pub(crate) fn ensure_unused(path: &Path, data_dir: &Path) -> anyhow::Result<()> {
    let held = holders(path);
    if let Some((_, file)) = held.first() {
        let pids: Vec<u32> = held.iter().map(|(pid, _)| *pid).collect();
        anyhow::bail!(
            "{} is open in process {pids:?} ({}): stop `daybook run` (or `ingest`, `projector`, `api`) on {} first",
            path.display(),
            file.display(),
            data_dir.display()
        );
    }
    Ok(())
}

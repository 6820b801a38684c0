//! The embedded store's files, for tools that work on a data directory (backups, restores,
//! their checks, rebuilds): a consistent snapshot of a live store, its integrity check, and
//! the WAL housekeeping around swapping a store file. The store's format is SQLite's; this is
//! the one place outside the store that opens its file.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};

fn other(e: rusqlite::Error) -> io::Error {
    io::Error::other(e)
}

/// Rows per table of the database at `db`.
fn row_counts(db: &Connection) -> rusqlite::Result<BTreeMap<String, u64>> {
    let tables: Vec<String> = db
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let mut counts = BTreeMap::new();
    for t in tables {
        let n: i64 = db.query_row(&format!("SELECT count(*) FROM \"{t}\""), [], |r| r.get(0))?;
        counts.insert(t, n as u64);
    }
    Ok(counts)
}

/// Copies the store at `store` (possibly open in a running daybook) into a new file `out`
/// with SQLite's online backup API: one step, one read transaction — a consistent snapshot
/// that does not block the writer (WAL). Returns its rows per table.
pub fn snapshot(store: &Path, out: &Path) -> io::Result<BTreeMap<String, u64>> {
    let src = Connection::open_with_flags(store, OpenFlags::SQLITE_OPEN_READ_WRITE).map_err(other)?;
    src.busy_timeout(Duration::from_secs(30)).map_err(other)?;
    let mut dst = Connection::open(out).map_err(other)?;
    {
        let copy = Backup::new(&src, &mut dst).map_err(other)?;
        loop {
            match copy.step(-1).map_err(other)? {
                StepResult::Done => break,
                StepResult::More => {}
                _ => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }
    row_counts(&dst).map_err(other)
}

/// Checks the store file at `path`: SQLite's integrity check, and the rows per table
/// `expected` (as [`snapshot`] counted them).
pub fn check(path: &Path, expected: &BTreeMap<String, u64>) -> io::Result<()> {
    let invalid = |why: String| io::Error::new(io::ErrorKind::InvalidData, why);
    let db = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(other)?;
    let ok: String = db.query_row("PRAGMA integrity_check", [], |row| row.get(0)).map_err(other)?;
    if ok != "ok" {
        return Err(invalid(format!("integrity check says {ok}")));
    }
    let got = row_counts(&db).map_err(other)?;
    for (table, n) in expected {
        let has = got.get(table).copied().unwrap_or(0);
        if has != *n {
            return Err(invalid(format!("table {table} has {has} rows, {n} expected")));
        }
    }
    Ok(())
}

/// The erasures the store at `path` has applied (`schemas::rows`, erasure marks): per device, its
/// newest erasure's `received_at` (epoch ms). None for a store that does not exist yet or that
/// predates erasures.
pub fn erasures(path: &Path) -> io::Result<Vec<(String, i64)>> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let db = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(other)?;
    db.busy_timeout(Duration::from_secs(30)).map_err(other)?;
    let has: bool = db
        .query_row("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'erasures'", [], |r| r.get(0))
        .map_err(other)?;
    if !has {
        return Ok(Vec::new());
    }
    let mut stmt = db.prepare("SELECT cid, erased_at FROM erasures ORDER BY erased_at, cid").map_err(other)?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).map_err(other)?;
    rows.collect::<Result<_, _>>().map_err(other)
}

/// Folds a store's WAL into its main file, so the file alone is the whole store.
pub fn checkpoint(path: &Path) -> io::Result<()> {
    let db = Connection::open(path).map_err(other)?;
    db.busy_timeout(Duration::from_secs(30)).map_err(other)?;
    db.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).map_err(other)
}

/// Deletes a store file and its WAL, shared-memory and journal files (those missing are fine).
pub fn remove(path: &Path) -> io::Result<()> {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        match fs::remove_file(PathBuf::from(p)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

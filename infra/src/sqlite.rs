//! SQLite connection setup shared by the embedded log and store.
//!
//! Why SQLite (rusqlite, bundled): a single-file, crash-safe engine with WAL (readers never
//! block the writer), `synchronous=FULL` durability at each commit, and SQL for the viewer
//! queries, so neither the log nor the store needs a hand-rolled file format.

use std::path::Path;
use std::time::Duration;

use rusqlite::Connection;

/// Opens `path` with what every connection has: a busy timeout, temporary tables in memory, a
/// cache of prepared statements.
fn connect(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// Opens `path` in WAL mode with every commit fsync'd.
pub(crate) fn open(path: &Path) -> rusqlite::Result<Connection> {
    let conn = connect(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // FULL: a commit is on disk when it returns — what "acknowledged" means here.
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "cache_size", -16_000)?; // 16 MiB page cache per connection
    Ok(conn)
}

/// Opens `path` for a bulk load into a scratch file that is thrown away unless the load
/// completes (`daybook rebuild`'s `store.db.rebuild`): nothing is fsync'd, the rollback journal
/// is kept in memory (a failed transaction still rolls back; a crash leaves a file that is
/// discarded anyway), and the file is locked exclusively, so this connection is its only user.
/// `cache_kib`: the page cache.
pub(crate) fn open_bulk(path: &Path, cache_kib: i64) -> rusqlite::Result<Connection> {
    let conn = connect(path)?;
    conn.pragma_update(None, "locking_mode", "EXCLUSIVE")?;
    conn.pragma_update(None, "journal_mode", "MEMORY")?;
    conn.pragma_update(None, "synchronous", "OFF")?;
    conn.pragma_update(None, "cache_size", -cache_kib)?;
    Ok(conn)
}

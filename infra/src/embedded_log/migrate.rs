//! Moves a log of an older release (one SQLite table, `DATA_DIR/log.db`) into segments,
//! keeping every record's offset and every group's position, so projectors and analytics
//! consumers resume exactly where they were.
//!
//! Crash-safe: the segments are written into `log.migrating/`, fsync'd, and renamed to `log/`
//! in one step; only then is `log.db` renamed to `log.db.migrated` (kept for the operator to
//! delete). A crash before the rename starts over; after it, the next open finishes the job.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags, OptionalExtension};
use seams::LogRecord;

use super::{groups, segment, EmbeddedLogConfig};

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Migrates `dir` + `.db` into `dir` when the former exists and the latter has no segments.
pub(super) fn if_needed(dir: &Path, config: &EmbeddedLogConfig) -> io::Result<()> {
    let db = with_suffix(dir, ".db");
    if !db.exists() {
        return Ok(());
    }
    let migrated = dir.exists() && !segment::list(dir)?.is_empty();
    if !migrated {
        let work = with_suffix(dir, ".migrating");
        if work.exists() {
            fs::remove_dir_all(&work)?;
        }
        fs::create_dir_all(work.join("groups"))?;
        let (records, groups) = copy(&db, &work, config)?;
        segment::sync_dir(&work)?;
        if dir.exists() {
            // An empty directory left by a release that opened it before migrating.
            fs::remove_dir_all(dir)?;
        }
        fs::rename(&work, dir)?;
        segment::sync_dir(dir.parent().unwrap_or(Path::new(".")))?;
        tracing::info!(db = %db.display(), dir = %dir.display(), records, groups, "moved the SQLite log into segments");
    }
    for suffix in ["", "-wal", "-shm"] {
        let from = with_suffix(&db, suffix);
        if from.exists() {
            fs::rename(&from, with_suffix(&db, &format!(".migrated{suffix}")))?;
        }
    }
    Ok(())
}

fn sql(e: rusqlite::Error) -> io::Error {
    io::Error::other(format!("reading the SQLite log: {e}"))
}

/// Copies the records and group positions; returns how many of each.
fn copy(db: &Path, work: &Path, config: &EmbeddedLogConfig) -> io::Result<(u64, usize)> {
    // Read-write (not read-only), so SQLite replays a WAL left by a crash.
    let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_WRITE).map_err(sql)?;
    let seq: Option<i64> = conn
        .query_row("SELECT seq FROM sqlite_sequence WHERE name = 'log'", [], |r| r.get(0))
        .optional()
        .map_err(sql)?;
    let head = seq.unwrap_or(0) + 1;
    let mut stmt = conn.prepare("SELECT off, ts, key, kind, schema, value FROM log ORDER BY off").map_err(sql)?;
    let mut rows = stmt.query([]).map_err(sql)?;
    let mut file: Option<(File, u64)> = None;
    let mut buf = Vec::new();
    let mut records = 0u64;
    let mut next = None;
    while let Some(row) = rows.next().map_err(sql)? {
        let offset: i64 = row.get(0).map_err(sql)?;
        if next.is_some_and(|n| offset != n) {
            // Offsets of a segment rise by one: a gap starts a new segment.
            flush(&mut file, &mut buf)?;
            file = None;
        }
        let record = LogRecord {
            key: row.get(2).map_err(sql)?,
            report_kind: row.get(3).map_err(sql)?,
            schema: row.get(4).map_err(sql)?,
            value: row.get(5).map_err(sql)?,
        };
        if file.as_ref().is_none_or(|(_, len)| *len >= config.segment_bytes) {
            flush(&mut file, &mut buf)?;
            file = Some((File::create_new(segment::path_of(work, offset))?, 0));
        }
        let before = buf.len();
        segment::encode(&mut buf, offset, row.get(1).map_err(sql)?, &record).map_err(io::Error::other)?;
        if let Some((_, len)) = file.as_mut() {
            *len += (buf.len() - before) as u64;
        }
        if buf.len() >= 4 << 20 {
            write_buf(&mut file, &mut buf)?;
        }
        records += 1;
        next = Some(offset + 1);
    }
    flush(&mut file, &mut buf)?;
    // The newest segment starts at the head, so offsets never repeat (an empty one when the
    // last record's segment would otherwise be reopened with a gap after truncation).
    if next != Some(head) {
        File::create_new(segment::path_of(work, head))?.sync_all()?;
    }
    let mut groups_copied = 0;
    let has_time: bool = conn
        .query_row("SELECT count(*) FROM pragma_table_info('offsets') WHERE name = 'committed_ms'", [], |r| {
            r.get::<_, i64>(0).map(|n| n > 0)
        })
        .map_err(sql)?;
    let query =
        if has_time { "SELECT grp, next, committed_ms FROM offsets" } else { "SELECT grp, next, 0 FROM offsets" };
    let now = chrono::Utc::now().timestamp_millis();
    let mut stmt = conn.prepare(query).map_err(sql)?;
    let mut rows = stmt.query([]).map_err(sql)?;
    while let Some(row) = rows.next().map_err(sql)? {
        let (group, next, committed): (String, i64, i64) =
            (row.get(0).map_err(sql)?, row.get(1).map_err(sql)?, row.get(2).map_err(sql)?);
        groups::write(&work.join("groups"), &group, next, if committed == 0 { now } else { committed })?;
        groups_copied += 1;
    }
    Ok((records, groups_copied))
}

fn write_buf(file: &mut Option<(File, u64)>, buf: &mut Vec<u8>) -> io::Result<()> {
    if let Some((f, _)) = file.as_mut() {
        io::Write::write_all(f, buf)?;
    }
    buf.clear();
    Ok(())
}

fn flush(file: &mut Option<(File, u64)>, buf: &mut Vec<u8>) -> io::Result<()> {
    write_buf(file, buf)?;
    if let Some((f, _)) = file.as_ref() {
        f.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::EmbeddedLog;
    use super::*;
    use seams::ReportLog;
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_sqlite_log_moves_into_segments_with_its_offsets_and_groups() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("log.db");
        {
            let conn = Connection::open(&db).unwrap();
            conn.execute_batch(
                "CREATE TABLE log (off INTEGER PRIMARY KEY AUTOINCREMENT, ts INTEGER NOT NULL, key TEXT NOT NULL,
                   kind TEXT NOT NULL, schema INTEGER NOT NULL, value BLOB NOT NULL);
                 CREATE TABLE offsets (grp TEXT PRIMARY KEY, next INTEGER NOT NULL, committed_ms INTEGER NOT NULL DEFAULT 0);",
            )
            .unwrap();
            for i in 0..10 {
                conn.execute(
                    "INSERT INTO log (ts, key, kind, schema, value) VALUES (?1, ?2, 'event_started', 1, ?3)",
                    rusqlite::params![1000 + i, format!("cam-{i}"), vec![i as u8; 8]],
                )
                .unwrap();
            }
            // Truncated by retention: the first three are gone.
            conn.execute("DELETE FROM log WHERE off <= 3", []).unwrap();
            conn.execute("INSERT INTO offsets (grp, next, committed_ms) VALUES ('daybook-projector', 6, 42)", [])
                .unwrap();
        }
        let log = EmbeddedLog::open(&dir.path().join("log"), EmbeddedLogConfig::default()).unwrap();
        assert!(!db.exists() && dir.path().join("log.db.migrated").exists());
        let groups = log.groups().await.unwrap();
        assert_eq!((groups[0].group.as_str(), groups[0].next, groups[0].lag), ("daybook-projector", 6, 5));
        let mut c = log.consumer("daybook-projector").await.unwrap();
        let got = c.poll(100, Duration::from_millis(100)).await.unwrap();
        assert_eq!(got.iter().map(|c| c.position.offset).collect::<Vec<_>>(), [6, 7, 8, 9, 10]);
        assert_eq!((got[0].key.as_str(), got[0].timestamp_ms, got[0].value.clone()), ("cam-5", 1005, vec![5u8; 8]));
        // New appends continue the offsets.
        let p =
            log.append(vec![LogRecord { key: "k".into(), report_kind: "x".into(), schema: 1, value: vec![] }]).await;
        assert_eq!(p.unwrap()[0].offset, 11);
        log.shutdown().await.unwrap();
        // Opening again migrates nothing.
        drop(log);
        let again = EmbeddedLog::open(&dir.path().join("log"), EmbeddedLogConfig::default()).unwrap();
        assert_eq!(again.head().await.unwrap(), 12);
    }
}

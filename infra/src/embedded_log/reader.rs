//! Consumers of the embedded log: read the segment files directly, never past the durable head.

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use seams::{Consumed, LogConsumer, LogError, Position};
use tokio::sync::watch;

use super::segment::{self, Reader, Stop};
use super::{blocking, groups, Shared, READER_TICK};

/// Where a reader is: a segment and a reader in it.
#[derive(Debug)]
struct Cursor {
    base: i64,
    reader: Reader,
}

/// A reader of the embedded log. One partition, so a group has one useful member.
#[derive(Debug)]
pub(super) struct EmbeddedConsumer {
    shared: Arc<Shared>,
    head: watch::Receiver<i64>,
    group: String,
    /// The next offset to hand out.
    next: i64,
    /// `None` until the first read (and while a read has it).
    cursor: Option<Cursor>,
}

impl EmbeddedConsumer {
    pub(super) fn new(shared: Arc<Shared>, group: String, next: i64) -> Self {
        let head = shared.head.subscribe();
        Self { shared, head, group, next, cursor: None }
    }
}

/// Opens a cursor at the first record at or after `next` (the oldest record left, when
/// `next` was truncated away); `None` when the log has no segment yet.
fn seek(dir: &Path, next: i64) -> io::Result<Option<Cursor>> {
    let bases = segment::list(dir)?;
    let Some(&base) = bases.iter().rev().find(|&&b| b <= next).or(bases.first()) else { return Ok(None) };
    let mut reader = Reader::open(&segment::path_of(dir, base), 0)?;
    loop {
        let at = reader.pos;
        match reader.next_frame()? {
            Ok(f) if f.consumed.position.offset < next => {}
            Ok(_) | Err(_) => {
                reader.rewind(at);
                return Ok(Some(Cursor { base, reader }));
            }
        }
    }
}

/// Reads up to `max` records from `next` on, stopping before `bound` (the durable head) when
/// there is one.
fn read(
    dir: &Path,
    cursor: Option<Cursor>,
    next: i64,
    max: usize,
    bound: Option<i64>,
) -> io::Result<(Option<Cursor>, Vec<Consumed>)> {
    let mut cursor = match cursor {
        Some(c) => c,
        None => match seek(dir, next)? {
            Some(c) => c,
            None => return Ok((None, Vec::new())),
        },
    };
    let mut out = Vec::new();
    while out.len() < max {
        let at = cursor.reader.pos;
        match cursor.reader.next_frame()? {
            Ok(frame) => {
                let offset = frame.consumed.position.offset;
                if bound.is_some_and(|b| offset >= b) {
                    cursor.reader.rewind(at);
                    break;
                }
                if offset >= next {
                    out.push(frame.consumed);
                }
            }
            Err(stop) => {
                cursor.reader.rewind(at);
                // The end of this segment so far. A newer segment means this one is closed:
                // go on there. (In the writer's process, only when the head says there is
                // more; elsewhere, look every time.)
                if bound.is_some_and(|b| out.last().map_or(next, |c| c.position.offset + 1) >= b) {
                    break;
                }
                let newer = segment::list(dir)?.into_iter().find(|&b| b > cursor.base);
                match (newer, stop) {
                    (Some(base), Stop::Incomplete) => {
                        cursor = Cursor { base, reader: Reader::open(&segment::path_of(dir, base), 0)? };
                    }
                    (Some(_), Stop::Corrupt(why)) => {
                        let path = segment::path_of(dir, cursor.base);
                        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("{}: {why}", path.display())));
                    }
                    // The newest segment: a frame still being written (by another process).
                    (None, _) => break,
                }
            }
        }
    }
    Ok((Some(cursor), out))
}

#[async_trait]
impl LogConsumer for EmbeddedConsumer {
    async fn poll(&mut self, max_records: usize, max_wait: Duration) -> Result<Vec<Consumed>, LogError> {
        let deadline = tokio::time::Instant::now() + max_wait;
        loop {
            // Marks the head seen, so a commit after this read wakes the wait below.
            let _ = self.head.borrow_and_update();
            let (shared, cursor, next) = (self.shared.clone(), self.cursor.take(), self.next);
            let (cursor, batch) = blocking(move || {
                let bound = shared.bound()?;
                read(&shared.dir, cursor, next, max_records.max(1), bound)
            })
            .await?;
            self.cursor = cursor;
            if let Some(last) = batch.last() {
                self.next = last.position.offset + 1;
                return Ok(batch);
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(Vec::new());
            }
            // Woken at once by appends of this process; the tick also sees appends made by
            // another process on the same directory.
            let tick = (now + READER_TICK).min(deadline);
            let _ = tokio::time::timeout_at(tick, self.head.changed()).await;
        }
    }

    async fn commit(&mut self, positions: &[Position]) -> Result<(), LogError> {
        let Some(next) = positions.iter().filter(|p| p.partition == 0).map(|p| p.offset).max() else {
            return Ok(());
        };
        let (dir, group) = (self.shared.groups_dir(), self.group.clone());
        let now = chrono::Utc::now().timestamp_millis();
        blocking(move || groups::write(&dir, &group, next, now)).await
    }

    /// The embedded log has one partition, and every member of a group reads all of it.
    fn owns(&self, partition: i32) -> bool {
        partition == 0
    }

    async fn lag(&mut self) -> Result<Vec<(i32, i64)>, LogError> {
        let shared = self.shared.clone();
        let head = blocking(move || shared.head()).await?;
        Ok(vec![(0, (head - self.next).max(0))])
    }
}

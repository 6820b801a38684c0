//! The published head: `log/HEAD`, how far the log is durable, for every process that reads
//! the log's files.
//!
//! ```text
//! "DBKHEAD1" | i64 durable | i64 reserved | u32 CRC-32C of the 24 bytes before it
//! ```
//!
//! `durable` is the offset after the last record whose commit fsync returned: no reader, in
//! any process, reads at or past it (a frame after it may be written but not yet durable, or
//! be the rest of a commit that failed). `reserved` is the first offset never handed out: a
//! commit that fails burns its offsets, and a writer that starts takes its first offset from
//! here when that is past the last record, so an offset is never given to two records.
//!
//! The writer rewrites the file in place (one `pwrite`, 28 bytes at position 0) after every
//! commit; it fsyncs it when it starts and after a failed commit (the burn must outlive a
//! crash). After a successful commit it does not: a crash can leave an older `durable`, which
//! only holds readers back until the next writer republishes it at start. A reader that sees a
//! torn write (the checksum) reads again.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// The file name, in the log's directory.
pub const FILE: &str = "HEAD";
const MAGIC: &[u8; 8] = b"DBKHEAD1";
const LEN: usize = 28;

/// What `HEAD` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// The offset after the last durable record.
    pub durable: i64,
    /// The first offset never handed out (at or after `durable`).
    pub reserved: i64,
}

fn encode(head: Head) -> [u8; LEN] {
    let mut out = [0u8; LEN];
    out[..8].copy_from_slice(MAGIC);
    out[8..16].copy_from_slice(&head.durable.to_le_bytes());
    out[16..24].copy_from_slice(&head.reserved.to_le_bytes());
    let crc = crc32c::crc32c(&out[..24]);
    out[24..].copy_from_slice(&crc.to_le_bytes());
    out
}

fn decode(buf: &[u8]) -> Option<Head> {
    if buf.len() != LEN || &buf[..8] != MAGIC {
        return None;
    }
    let crc = u32::from_le_bytes(buf[24..28].try_into().expect("4 bytes"));
    if crc32c::crc32c(&buf[..24]) != crc {
        return None;
    }
    Some(Head {
        durable: i64::from_le_bytes(buf[8..16].try_into().expect("8 bytes")),
        reserved: i64::from_le_bytes(buf[16..24].try_into().expect("8 bytes")),
    })
}

/// Reads the published head of the log in `dir`: `None` when no writer of this format has
/// published one (a log restored or migrated and not yet opened for appending).
pub fn read(dir: &Path) -> io::Result<Option<Head>> {
    let file = match File::open(dir.join(FILE)) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut buf = [0u8; LEN];
    // A read that met the writer's pwrite half-way fails the checksum: read again.
    for _ in 0..100 {
        let n = file.read_at(&mut buf, 0)?;
        if n == 0 {
            return Ok(None);
        }
        if let Some(head) = decode(&buf[..n]) {
            return Ok(Some(head));
        }
        std::thread::yield_now();
    }
    Err(io::Error::new(io::ErrorKind::InvalidData, format!("{}: damaged", dir.join(FILE).display())))
}

/// The writer's handle on `HEAD`.
#[derive(Debug)]
pub(super) struct Publisher {
    file: File,
}

impl Publisher {
    pub(super) fn open(dir: &Path) -> io::Result<Self> {
        let file = OpenOptions::new().create(true).truncate(false).read(true).write(true).open(dir.join(FILE))?;
        Ok(Self { file })
    }

    /// Publishes `head`; fsyncs when `sync`.
    pub(super) fn publish(&self, head: Head, sync: bool) -> io::Result<()> {
        self.file.write_all_at(&encode(head), 0)?;
        if sync {
            self.file.sync_data()?;
        }
        Ok(())
    }
}

/// Writes `HEAD` for a log directory written by other means (a restore): `durable` and
/// `reserved` both `next`, fsync'd.
pub fn write(dir: &Path, next: i64) -> io::Result<()> {
    Publisher::open(dir)?.publish(Head { durable: next, reserved: next }, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_damage() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()).unwrap(), None);
        let p = Publisher::open(dir.path()).unwrap();
        p.publish(Head { durable: 7, reserved: 9 }, true).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Some(Head { durable: 7, reserved: 9 }));
        let bytes = encode(Head { durable: 7, reserved: 9 });
        for i in 0..LEN {
            let mut bad = bytes;
            bad[i] ^= 1;
            assert_eq!(decode(&bad), None, "byte {i}");
        }
    }
}

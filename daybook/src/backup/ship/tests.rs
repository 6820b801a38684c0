use std::fs;
use std::io::BufReader;
use std::path::Path;
use std::time::Instant;

use infra::embedded_log::files as logfiles;
use infra::embedded_log::{EmbeddedLog, EmbeddedLogConfig};
use seams::{LogRecord, ReportLog};

use super::super::restore::{restore, RestoreOptions, Until};
use super::super::{backup, BackupOptions};
use super::*;

fn record(i: usize) -> LogRecord {
    LogRecord { key: format!("cam-{i}"), report_kind: "event_started".into(), schema: 2, value: vec![i as u8; 300] }
}

/// Appends records `range` in commits of 7; returns, per record, (offset, when its request
/// began, when it was acknowledged) in Unix ms.
async fn append(dir: &Path, range: std::ops::Range<usize>) -> Vec<(i64, i64, i64)> {
    let config = EmbeddedLogConfig { segment_bytes: 8 << 10, ..EmbeddedLogConfig::default() };
    let log = EmbeddedLog::open(&dir.join("log"), config).unwrap();
    let mut ledger = Vec::new();
    for chunk in range.collect::<Vec<_>>().chunks(7) {
        let began = now_ms();
        let offsets = log.append(chunk.iter().copied().map(record).collect()).await.unwrap();
        let acked = now_ms();
        ledger.extend(offsets.into_iter().map(|p| (p.offset, began, acked)));
    }
    log.shutdown().await.unwrap();
    ledger
}

fn frames(dir: &Path) -> Vec<(i64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut buf = Vec::new();
    let log = dir.join("log");
    for base in logfiles::segments(&log).unwrap() {
        let mut r = BufReader::new(fs::File::open(logfiles::segment_path(&log, base)).unwrap());
        while let Ok(Some(offset)) = logfiles::read_raw(&mut r, &mut buf).unwrap() {
            out.push((offset, buf.clone()));
        }
    }
    out
}

fn replica(to: &Path) -> Replica {
    Replica { to: to.display().to_string(), every: Duration::from_secs(1), key_file: None, s3: S3Options::default() }
}

fn start(data: &Path, to: &Path) -> State {
    State::start(&replica(to), data, None, "test").map_err(|(e, _)| e).unwrap()
}

fn take(data: &Path, to: &Path) -> Manifest {
    let o = BackupOptions {
        data_dir: data.to_owned(),
        to: to.display().to_string(),
        full: false,
        differential: false,
        key: None,
        keep_full: None,
        s3: S3Options::default(),
    };
    backup(&o).unwrap().manifest
}

fn restore_to(from: &Path, data: &Path, until: Option<Until>) -> super::super::Restored {
    restore(&RestoreOptions {
        from: from.display().to_string(),
        at: None,
        data_dir: data.to_owned(),
        force: false,
        key: None,
        s3: S3Options::default(),
        until,
    })
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipping_continues_the_newest_backup_and_a_restore_takes_it_all() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, dest) = (tmp.path().join("data"), tmp.path().join("dest"));
    append(&data, 0..50).await;
    fs::write(data.join(crate::secrets::REVOKED_FILE), "").unwrap();
    let full = tokio::task::block_in_place(|| take(&data, &dest));
    let mut s = tokio::task::block_in_place(|| start(&data, &dest));
    assert_eq!(s.shipped, full.log.next, "the generation starts where the newest backup ends");

    append(&data, 50..80).await;
    // An object the endpoint stored, and a revocation, after the backup.
    let seg = data.join("objects/daybook/devices/cam-1/segments");
    fs::create_dir_all(&seg).unwrap();
    fs::write(seg.join("20261207-a"), vec![7u8; 5000]).unwrap();
    s.objects.insert("daybook/devices/cam-1/segments/20261207-a".into());
    fs::write(data.join(crate::secrets::REVOKED_FILE), "cam-9 1765000000\n").unwrap();
    tokio::task::block_in_place(|| s.round()).map_err(|r| r.0).unwrap();
    append(&data, 80..100).await;
    tokio::task::block_in_place(|| s.round()).map_err(|r| r.0).unwrap();

    let shipped = tokio::task::block_in_place(|| {
        wal::list(dest::open(&dest.display().to_string(), &S3Options::default(), false).unwrap().as_ref())
    })
    .unwrap();
    assert_eq!(shipped.len(), 1, "one generation");
    let pieces: Vec<(i64, i64)> = shipped[0].log.iter().map(|p| (p.first, p.next)).collect();
    assert_eq!(pieces, vec![(51, 81), (81, 101)], "consecutive pieces from the backup's end");
    assert_eq!(shipped[0].objects.len(), 1);
    assert!(!shipped[0].secrets.is_empty());

    let restored = tmp.path().join("restored");
    let r = tokio::task::block_in_place(|| restore_to(&dest, &restored, None));
    assert_eq!((r.records, r.shipped_records, r.log.next), (100, 50, 101));
    assert_eq!(r.generation.as_deref(), Some(shipped[0].generation.as_str()));
    assert_eq!(frames(&restored), frames(&data), "the whole log, frame for frame");
    assert_eq!(fs::read(restored.join("objects/daybook/devices/cam-1/segments/20261207-a")).unwrap(), vec![7u8; 5000]);
    assert_eq!(
        fs::read_to_string(restored.join(crate::secrets::REVOKED_FILE)).unwrap(),
        "cam-9 1765000000\n",
        "the revocation shipped after the backup is restored"
    );
    assert_eq!(logfiles::durable_head(&restored.join("log")).unwrap(), 101);

    // A backup folds what it holds: the pieces below its end go, the restore stays whole.
    let inc = tokio::task::block_in_place(|| take(&data, &dest));
    assert_eq!(inc.log.next, 101);
    let d = dest::open(&dest.display().to_string(), &S3Options::default(), false).unwrap();
    let after = tokio::task::block_in_place(|| wal::list(d.as_ref())).unwrap();
    assert!(after.iter().all(|g| g.log.is_empty() && g.objects.is_empty()), "folded: {after:?}");
    append(&data, 100..110).await;
    tokio::task::block_in_place(|| s.round()).map_err(|r| r.0).unwrap();
    let again = tmp.path().join("again");
    let r = tokio::task::block_in_place(|| restore_to(&dest, &again, None));
    assert_eq!((r.records, r.shipped_records), (110, 10));
    assert_eq!(frames(&again), frames(&data));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_point_in_time_restore_is_the_prefix_before_the_instant() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, dest) = (tmp.path().join("data"), tmp.path().join("dest"));
    let mut ledger = Vec::new();
    for batch in 0..6 {
        ledger.extend(append(&data, batch * 21..(batch + 1) * 21).await);
        tokio::time::sleep(Duration::from_millis(30)).await;
        if batch == 1 {
            tokio::task::block_in_place(|| take(&data, &dest));
        }
    }
    let mut s = tokio::task::block_in_place(|| start(&data, &dest));
    tokio::task::block_in_place(|| s.round()).map_err(|r| r.0).unwrap();
    let all = frames(&data);
    // Three instants: inside the backup's log, inside the shipped pieces, after everything.
    let instants = [ledger[30].2 + 1, ledger[80].2 + 1, now_ms()];
    for (i, t) in instants.into_iter().enumerate() {
        let target = tmp.path().join(format!("pit-{i}"));
        let r = tokio::task::block_in_place(|| restore_to(&dest, &target, Some(Until::Time(t))));
        let got = frames(&target);
        assert_eq!(got, all[..got.len()], "a prefix of the original log");
        let have: Vec<i64> = got.iter().map(|f| f.0).collect();
        for &(offset, began, acked) in &ledger {
            if acked <= t {
                assert!(have.contains(&offset), "instant {i}: {offset} acknowledged before it is missing");
            }
            if began > t {
                assert!(!have.contains(&offset), "instant {i}: {offset} begun after it is restored");
            }
        }
        assert_eq!(r.last_offset, have.last().copied());
        assert_eq!(logfiles::durable_head(&target.join("log")).unwrap(), have.last().map_or(1, |l| l + 1));
    }
    // At an offset.
    let target = tmp.path().join("at-offset");
    let r = tokio::task::block_in_place(|| restore_to(&dest, &target, Some(Until::Offset(99))));
    assert_eq!((r.records, r.last_offset), (99, Some(99)));
    assert_eq!(frames(&target), all[..99]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_data_directories_shipping_to_one_repository_never_mix() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, dest) = (tmp.path().join("a"), tmp.path().join("b"), tmp.path().join("dest"));
    append(&a, 0..40).await;
    tokio::task::block_in_place(|| take(&a, &dest));
    // b: a copy of a (restored, say) that goes on with other records.
    fs::create_dir_all(b.join("log")).unwrap();
    for base in logfiles::segments(&a.join("log")).unwrap() {
        fs::copy(logfiles::segment_path(&a.join("log"), base), logfiles::segment_path(&b.join("log"), base)).unwrap();
    }
    let mut sa = tokio::task::block_in_place(|| start(&a, &dest));
    append(&a, 100..130).await;
    tokio::task::block_in_place(|| sa.round()).map_err(|r| r.0).unwrap();
    // Generation ids are by the millisecond; b's comes after a's.
    std::thread::sleep(Duration::from_millis(5));
    let mut sb = tokio::task::block_in_place(|| start(&b, &dest));
    append(&b, 200..220).await;
    tokio::task::block_in_place(|| sb.round()).map_err(|r| r.0).unwrap();
    append(&a, 130..150).await;
    tokio::task::block_in_place(|| sa.round()).map_err(|r| r.0).unwrap();
    assert_ne!(sa.generation, sb.generation);

    let r = tokio::task::block_in_place(|| restore_to(&dest, &tmp.path().join("r"), None));
    assert_eq!(r.generation.as_deref(), Some(sb.generation.as_str()), "the newest generation");
    assert_eq!(frames(&tmp.path().join("r")), frames(&b), "b's log, nothing of a's after the copy");

    // A generation of another log is never taken: a third directory with other records.
    let c = tmp.path().join("c");
    append(&c, 500..560).await;
    std::thread::sleep(Duration::from_millis(5));
    let mut sc = tokio::task::block_in_place(|| start(&c, &dest));
    assert!(sc.prev.is_some(), "c has no backup of its own here: it ships from its head");
    append(&c, 560..570).await;
    tokio::task::block_in_place(|| sc.round()).map_err(|r| r.0).unwrap();
    let r = tokio::task::block_in_place(|| restore_to(&dest, &tmp.path().join("r2"), None));
    assert_eq!(r.generation.as_deref(), Some(sb.generation.as_str()), "c's pieces do not continue the backup");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sealed_pieces_need_the_key_and_a_damaged_piece_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, dest) = (tmp.path().join("data"), tmp.path().join("dest"));
    let key_file = tmp.path().join("key");
    fs::write(&key_file, "0f".repeat(32)).unwrap();
    let ring = KeyRing::from_file(&key_file).unwrap();
    append(&data, 0..30).await;
    let o = BackupOptions {
        data_dir: data.clone(),
        to: dest.display().to_string(),
        full: false,
        differential: false,
        key: Some(ring.clone()),
        keep_full: None,
        s3: S3Options::default(),
    };
    tokio::task::block_in_place(|| backup(&o)).unwrap();
    let r = Replica { key_file: Some(key_file.clone()), ..replica(&dest) };
    let mut s = tokio::task::block_in_place(|| State::start(&r, &data, None, "test").map_err(|(e, _)| e).unwrap());
    append(&data, 30..60).await;
    tokio::task::block_in_place(|| s.round()).map_err(|r| r.0).unwrap();
    let piece = walk_files(&dest.join("wal")).into_iter().find(|p| p.contains("/log-")).unwrap();
    assert!(fs::read(&piece).unwrap().starts_with(super::super::crypto::MAGIC), "sealed");

    let ropts = |target: &str| RestoreOptions {
        from: dest.display().to_string(),
        at: None,
        data_dir: tmp.path().join(target),
        force: false,
        key: Some(ring.clone()),
        s3: S3Options::default(),
        until: None,
    };
    let r = tokio::task::block_in_place(|| restore(&ropts("ok"))).unwrap();
    assert_eq!(r.records, 60);
    // One flipped byte: the restore fails naming the piece, never restores around it.
    let mut bytes = fs::read(&piece).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 1;
    fs::write(&piece, bytes).unwrap();
    let e = tokio::task::block_in_place(|| restore(&ropts("bad"))).unwrap_err();
    let name = Path::new(&piece).file_name().unwrap().to_string_lossy().into_owned();
    assert!(format!("{e:#}").contains(&name), "{e:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repository_with_an_erasure_journal_this_build_cannot_apply_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, dest) = (tmp.path().join("data"), tmp.path().join("dest"));
    append(&data, 0..10).await;
    tokio::task::block_in_place(|| take(&data, &dest));
    fs::create_dir_all(dest.join("journal")).unwrap();
    fs::write(dest.join("journal/000001-erasure.json"), "{}").unwrap();
    let e = tokio::task::block_in_place(|| {
        restore(&RestoreOptions {
            from: dest.display().to_string(),
            at: None,
            data_dir: tmp.path().join("r"),
            force: false,
            key: None,
            s3: S3Options::default(),
            until: None,
        })
    })
    .unwrap_err();
    assert!(format!("{e:#}").contains("erasure journal"), "{e:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shipper_behind_by_more_than_a_piece_catches_up_in_order() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, dest) = (tmp.path().join("data"), tmp.path().join("dest"));
    append(&data, 0..5).await;
    tokio::task::block_in_place(|| take(&data, &dest));
    let mut s = tokio::task::block_in_place(|| start(&data, &dest));
    append(&data, 5..400).await;
    let head = logfiles::durable_head(&data.join("log")).unwrap();
    // Small pieces: several per round, each starting where the one before ended.
    let started = Instant::now();
    let mut ranges = Vec::new();
    while s.shipped < head {
        let read = read_frames(&data.join("log"), s.cursor, s.shipped, head, 4096).unwrap();
        ranges.push((s.shipped, read.next));
        s.cursor = Some(read.cursor);
        s.prev = read.last;
        s.shipped = read.next;
        assert!(started.elapsed() < Duration::from_secs(30), "no progress");
    }
    assert!(ranges.len() > 5, "{ranges:?}");
    for w in ranges.windows(2) {
        assert_eq!(w[0].1, w[1].0);
    }
    assert_eq!(ranges.last().unwrap().1, head);
}

fn walk_files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk_files(&p));
        } else {
            out.push(p.display().to_string());
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repository_down_or_hanging_holds_back_only_itself() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, good) = (tmp.path().join("data"), tmp.path().join("good"));
    append(&data, 0..20).await;
    // Down: a path under a regular file. Hanging: an S3 endpoint that accepts and never answers.
    fs::write(tmp.path().join("file"), "").unwrap();
    let down = tmp.path().join("file/repo");
    let hanging = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    // Credentials, so the client gets as far as the connection (no other test reads them).
    std::env::set_var("AWS_ACCESS_KEY_ID", "test");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "test");
    let hanging_s3 = S3Options { endpoint: Some(format!("http://{}", hanging.local_addr().unwrap())), region: None };
    let every = Duration::from_millis(100);
    let shippers = [
        Replica { to: down.display().to_string(), every, key_file: None, s3: S3Options::default() },
        Replica { to: "s3://stuck/prefix".into(), every, key_file: None, s3: hanging_s3 },
        Replica { to: good.display().to_string(), every, key_file: None, s3: S3Options::default() },
    ]
    .map(|r| Shipper::start(r, data.clone(), None).unwrap());
    append(&data, 20..60).await;
    let head = logfiles::durable_head(&data.join("log")).unwrap();
    let started = Instant::now();
    loop {
        // Opened each time: the shipper creates the directory when it starts.
        let d = dest::open(&good.display().to_string(), &S3Options::default(), false);
        let shipped = d.ok().and_then(|d| wal::list(d.as_ref()).ok()).unwrap_or_default();
        if shipped.iter().flat_map(|g| &g.log).any(|p| p.next >= head) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "the working repository got nothing");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stopping = Instant::now();
    for s in shippers {
        tokio::task::spawn_blocking(move || s.stop()).await.unwrap();
    }
    assert!(stopping.elapsed() < Duration::from_secs(10), "a hanging repository held the stop");
    assert!(stopping.elapsed() >= STOP_WAIT, "the S3 repository did not hang: the test tests nothing");
    drop(hanging);
}

/// A repository that fills up misses rounds, never records: once it has room again the next
/// round stores everything since, and it restores whole; another repository is not held back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_repository_catches_up_once_it_has_room() {
    use ::tests::tmpfs::{fill, Tmpfs};
    let mount = match Tmpfs::mount("2m") {
        Ok(m) => m,
        Err(why) => {
            eprintln!("skipped: {why}");
            return;
        }
    };
    let tmp = tempfile::tempdir().unwrap();
    let (data, full, good) = (tmp.path().join("data"), mount.path().join("repo"), tmp.path().join("good"));
    append(&data, 0..20).await;
    tokio::task::block_in_place(|| take(&data, &full));
    let mut f = tokio::task::block_in_place(|| start(&data, &full));
    let mut g = tokio::task::block_in_place(|| start(&data, &good));
    let filler = mount.path().join("filler");
    fill(&filler);
    append(&data, 20..200).await;
    let head = logfiles::durable_head(&data.join("log")).unwrap();
    tokio::task::block_in_place(|| {
        f.round().map_err(|r| r.0).unwrap();
        g.round().map_err(|r| r.0).unwrap();
    });
    assert_eq!(g.shipped, head, "the other repository is not held back");
    assert!(f.shipped < head, "a full repository stored nothing");
    fs::remove_file(&filler).unwrap();
    tokio::task::block_in_place(|| f.round()).map_err(|r| r.0).unwrap();
    assert_eq!(f.shipped, head, "caught up");
    let r = tokio::task::block_in_place(|| restore_to(&full, &tmp.path().join("r"), None));
    assert_eq!(r.records, 200);
    assert_eq!(frames(&tmp.path().join("r")), frames(&data));
}

/// A generation that started at the log's head before any backup existed, and a backup that
/// then ends before that head (it read the log first): the gap would make the repository
/// unrestorable past the backup, so shipping starts again from the backup's end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_ending_before_the_generation_began_restarts_it_from_the_backup() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, dest, early) = (tmp.path().join("data"), tmp.path().join("dest"), tmp.path().join("early"));
    append(&data, 0..30).await;
    let b = tokio::task::block_in_place(|| take(&data, &early));
    append(&data, 30..60).await;
    let mut s = tokio::task::block_in_place(|| start(&data, &dest));
    assert_eq!((s.shipped, s.based), (61, false), "no backup in the repository: from the head");
    tokio::task::block_in_place(|| s.round()).map_err(|r| r.0).unwrap();
    // The backup lands in the repository, ending at 31.
    fs::rename(early.join(&b.id), dest.join(&b.id)).unwrap();
    let restart = tokio::task::block_in_place(|| s.round()).expect_err("a restart");
    assert!(restart.0.contains("before this generation's start"), "{}", restart.0);
    let mut s = tokio::task::block_in_place(|| start(&data, &dest));
    assert_eq!((s.shipped, s.based), (31, true));
    tokio::task::block_in_place(|| s.round()).map_err(|r| r.0).unwrap();
    let r = tokio::task::block_in_place(|| restore_to(&dest, &tmp.path().join("r"), None));
    assert_eq!(r.records, 60);
    assert_eq!(frames(&tmp.path().join("r")), frames(&data));
}

/// An erasure the store applied after the last backup reaches the repository's journal with
/// the next shipping round (once: the next rounds add nothing), and a restore applies it again:
/// to the restored store (its mark) and at the end of the restored log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shipping_round_journals_the_stores_erasures_and_a_restore_applies_them() {
    use infra::embedded_store::{files as storefiles, EmbeddedStore};
    use schemas::{DeviceErased, DeviceId, Envelope, Report, TimePolicy, Timestamp};
    use seams::ProjectionStore;

    let tmp = tempfile::tempdir().unwrap();
    let (data, dest) = (tmp.path().join("data"), tmp.path().join("dest"));
    append(&data, 0..20).await;
    let store = EmbeddedStore::open(&data.join("store.db"), TimePolicy::default()).unwrap();
    tokio::task::block_in_place(|| take(&data, &dest));
    let mut s = tokio::task::block_in_place(|| start(&data, &dest));
    let received_at = Timestamp::now();
    let cid = DeviceId::parse("cam-e").unwrap();
    let erasure = Envelope::new(Report::DeviceErased(DeviceErased { cid }), received_at);
    store.apply(std::slice::from_ref(&erasure)).await.unwrap();
    drop(store);
    let journal = || fs::read_dir(dest.join("journal")).map(|d| d.count()).unwrap_or(0);
    assert_eq!(journal(), 0, "the backup before the erasure wrote no entry");
    for _ in 0..2 {
        tokio::task::block_in_place(|| s.round()).map_err(|r| r.0).unwrap();
        assert_eq!(journal(), 1, "one entry, written once");
    }

    let restored = tmp.path().join("restored");
    let r = tokio::task::block_in_place(|| restore_to(&dest, &restored, None));
    assert_eq!(r.erasures, 1);
    let marks = storefiles::erasures(&restored.join("store.db")).unwrap();
    assert_eq!(marks, vec![("cam-e".to_owned(), received_at.millis())], "applied to the restored store");
    let (before, after) = (frames(&data), frames(&restored));
    assert_eq!(after.len(), before.len() + 1, "appended to the restored log");
    assert_eq!(after[..before.len()], before[..]);
    let value = erasure.encode();
    assert!(after.last().unwrap().1.windows(value.len()).any(|w| w == value), "the erasure's own report");
}

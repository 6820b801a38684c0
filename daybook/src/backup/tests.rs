use std::fs;
use std::io::{BufReader, Write};
use std::path::Path;
use std::time::Duration;

use infra::embedded_log::files as logfiles;
use infra::embedded_log::{EmbeddedLog, EmbeddedLogConfig};
use seams::{LogRecord, ReportLog};

use super::manifest::MANIFEST;
use super::*;

fn record(i: usize) -> LogRecord {
    LogRecord { key: format!("cam-{i}"), report_kind: "event_started".into(), schema: 2, value: vec![i as u8; 300] }
}

async fn append(dir: &Path, range: std::ops::Range<usize>) {
    let config = EmbeddedLogConfig { segment_bytes: 8 << 10, ..EmbeddedLogConfig::default() };
    let log = EmbeddedLog::open(&dir.join("log"), config).unwrap();
    for chunk in range.collect::<Vec<_>>().chunks(7) {
        log.append(chunk.iter().copied().map(record).collect()).await.unwrap();
    }
    log.shutdown().await.unwrap();
}

/// Every frame of a log directory, by offset.
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

fn opts(data: &Path, to: &Path) -> BackupOptions {
    BackupOptions {
        data_dir: data.to_owned(),
        to: to.display().to_string(),
        full: false,
        differential: false,
        key: None,
        keep_full: None,
        s3: S3Options::default(),
    }
}

fn ropts(from: &Path, data: &Path) -> RestoreOptions {
    RestoreOptions {
        from: from.display().to_string(),
        at: None,
        data_dir: data.to_owned(),
        force: false,
        key: None,
        s3: S3Options::default(),
        until: None,
    }
}

fn take(o: &BackupOptions) -> Manifest {
    tokio::task::block_in_place(|| backup(o)).unwrap().manifest
}

fn ring(text: &str) -> KeyRing {
    KeyRing::parse(text).unwrap()
}

fn error_of(e: &anyhow::Error) -> &BackupError {
    BackupError::of(e).unwrap_or_else(|| panic!("not a backup error: {e:#}"))
}

/// Moves backup `id` of the plain destination `from` into `to` as backup `new_id`.
fn transplant(from: &Path, id: &str, to: &Path, new_id: &str) {
    fs::create_dir_all(to.join(new_id)).unwrap();
    for entry in fs::read_dir(from.join(id)).unwrap() {
        let entry = entry.unwrap();
        fs::copy(entry.path(), to.join(new_id).join(entry.file_name())).unwrap();
    }
    let path = to.join(new_id).join(MANIFEST);
    let text = fs::read_to_string(&path).unwrap().replace(id, new_id);
    fs::write(path, text).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_pieces_keep_offsets_skip_a_torn_tail_and_chain() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, dest) = (tmp.path().join("data"), tmp.path().join("dest"));
    append(&data, 0..100).await;
    assert!(logfiles::segments(&data.join("log")).unwrap().len() > 3, "several segments");
    let objects = data.join("objects/daybook/devices/cam-1/segments");
    fs::create_dir_all(&objects).unwrap();
    for i in 0..10u8 {
        fs::write(objects.join(format!("20261201-{i}")), vec![i; 20_000]).unwrap();
    }
    // A frame being written when the backup reads: half of it on disk, past the durable head.
    let newest = *logfiles::segments(&data.join("log")).unwrap().last().unwrap();
    let mut f = fs::OpenOptions::new().append(true).open(logfiles::segment_path(&data.join("log"), newest)).unwrap();
    f.write_all(&[200, 1, 0, 0, 9, 9, 9]).unwrap();
    let full = take(&opts(&data, &dest));
    assert_eq!((full.kind, full.log), (Kind::Full, LogRange { first: 1, next: 101 }));
    assert_eq!(full.files.iter().filter(|f| is_objects_pack(&f.name)).count(), 3, "packs of 64 KiB");
    assert_eq!(full.counts.objects, 10);
    fs::write(objects.join("20261201-new"), b"late").unwrap();
    // The writer cuts the torn tail and goes on.
    append(&data, 100..130).await;
    let inc = take(&opts(&data, &dest));
    assert_eq!(
        (inc.kind, inc.log, inc.parent.as_deref()),
        (Kind::Incremental, LogRange { first: 101, next: 131 }, Some(full.id.as_str()))
    );
    assert_eq!(inc.counts.objects, 1, "only the new object");
    let nothing = take(&opts(&data, &dest));
    assert_eq!(
        (nothing.kind, nothing.log, nothing.counts.records),
        (Kind::Incremental, LogRange { first: 131, next: 131 }, 0)
    );

    let restored = tmp.path().join("restored");
    let r = tokio::task::block_in_place(|| restore(&ropts(&dest, &restored))).unwrap();
    assert_eq!((r.records, r.log), (130, LogRange { first: 1, next: 131 }));
    assert_eq!(frames(&restored), frames(&data));
    for i in 0..10u8 {
        let path = format!("objects/daybook/devices/cam-1/segments/20261201-{i}");
        assert_eq!(fs::read(restored.join(&path)).unwrap(), fs::read(data.join(&path)).unwrap());
        let mtime = |d: &Path| fs::metadata(d.join(&path)).unwrap().modified().unwrap();
        assert_eq!(mtime(&restored), mtime(&data), "mtimes kept");
    }
    assert_eq!(fs::read(restored.join("objects/daybook/devices/cam-1/segments/20261201-new")).unwrap(), b"late");
    // The restored log takes appends at the next offset.
    append(&restored, 130..131).await;
    assert_eq!(frames(&restored).last().unwrap().0, 131);
    // Restoring at the full stops at its end.
    let at_full = tmp.path().join("at-full");
    let r = tokio::task::block_in_place(|| {
        restore(&RestoreOptions { at: Some(full.id.clone()), ..ropts(&dest, &at_full) })
    })
    .unwrap();
    assert_eq!(r.records, 100);
    assert_eq!(frames(&at_full), frames(&data)[..100].to_vec());
    tokio::task::block_in_place(|| verify(&dest.display().to_string(), None, None, &S3Options::default(), None))
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_closed_segment_fails_the_backup_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, dest) = (tmp.path().join("data"), tmp.path().join("dest"));
    append(&data, 0..100).await;
    let first = logfiles::segment_path(&data.join("log"), 1);
    let mut bytes = fs::read(&first).unwrap();
    bytes[100] ^= 0xff;
    fs::write(&first, bytes).unwrap();
    let err = tokio::task::block_in_place(|| backup(&opts(&data, &dest))).unwrap_err();
    assert!(format!("{err:#}").contains("00000000000000000001.seg"), "{err:#}");
    assert!(matches!(error_of(&err), BackupError::Damaged { .. }), "{err:#}");
    assert!(dest.read_dir().unwrap().next().is_none(), "nothing left behind");
}

/// With a key, a backup that is not sealed is refused everywhere — verify, restore, list, and
/// as the parent of the next backup — and never read unauthenticated: a plain backup dropped
/// into an encrypted destination with a newer id installs nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_key_a_plain_backup_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, dest, plain_dest) = (tmp.path().join("data"), tmp.path().join("dest"), tmp.path().join("plain"));
    append(&data, 0..20).await;
    let key = ring(&"5a".repeat(32));
    let sealed = take(&BackupOptions { key: Some(key.clone()), ..opts(&data, &dest) });
    // Someone who can write to the destination makes a plain backup of another directory.
    let other = tmp.path().join("other");
    append(&other, 0..3).await;
    fs::write(other.join(crate::secrets::REVOKED_FILE), "").unwrap();
    let plain = take(&opts(&other, &plain_dest));
    let forged = "20991231T000000000Z";
    transplant(&plain_dest, &plain.id, &dest, forged);

    let to = dest.display().to_string();
    let err = tokio::task::block_in_place(|| verify(&to, None, Some(&key), &S3Options::default(), None)).unwrap_err();
    assert!(matches!(error_of(&err), BackupError::NotSealed { .. }), "{err:#}");
    assert!(format!("{err:#}").contains(forged), "{err:#}");
    let target = tmp.path().join("restored");
    let err =
        tokio::task::block_in_place(|| restore(&RestoreOptions { key: Some(key.clone()), ..ropts(&dest, &target) }))
            .unwrap_err();
    assert!(matches!(error_of(&err), BackupError::NotSealed { .. }), "{err:#}");
    assert!(!target.join("log").exists() || frames(&target).is_empty(), "nothing of it installed");
    // Its files are refused too, even under a sealed manifest's name.
    let listed = tokio::task::block_in_place(|| list(&to, Some(&key), &S3Options::default())).unwrap();
    let row = listed.iter().find(|l| l.id == forged).unwrap();
    assert!(row.problem.as_deref().unwrap().contains("not encrypted"), "{row:?}");
    // The genuine one still restores.
    let at = tokio::task::block_in_place(|| {
        restore(&RestoreOptions { key: Some(key.clone()), at: Some(sealed.id.clone()), ..ropts(&dest, &target) })
    })
    .unwrap();
    assert_eq!(at.records, 20);
    // The next backup does not continue the forged one: a full, sealed.
    let next = take(&BackupOptions { key: Some(key.clone()), ..opts(&data, &dest) });
    assert_eq!((next.kind, next.encrypted), (Kind::Full, true));
    // Without a key, the sealed ones are refused as needing one.
    let err = tokio::task::block_in_place(|| {
        restore(&RestoreOptions { at: Some(sealed.id), ..ropts(&dest, &tmp.path().join("t2")) })
    })
    .unwrap_err();
    assert!(matches!(error_of(&err), BackupError::NeedsKey { .. }), "{err:#}");
}

/// A destination whose newest backup is named after a time still to come (a clock that ran
/// ahead, then was corrected): the next backup is named just after it, at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_id_in_the_future_does_not_hold_the_next_backup() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, dest, first) = (tmp.path().join("data"), tmp.path().join("dest"), tmp.path().join("first"));
    append(&data, 0..10).await;
    let m = take(&opts(&data, &first));
    let ahead = "20991231T235959999Z";
    transplant(&first, &m.id, &dest, ahead);
    append(&data, 10..12).await;
    let (tx, rx) = std::sync::mpsc::channel();
    let o = opts(&data, &dest);
    std::thread::spawn(move || {
        let _ = tx.send(backup(&o).map(|t| t.manifest));
    });
    let next = rx.recv_timeout(Duration::from_secs(60)).expect("the backup finishes").unwrap();
    assert_eq!(next.id, "21000101T000000000Z");
    assert_eq!((next.kind, next.parent.as_deref(), next.counts.records), (Kind::Incremental, Some(ahead), 2));
}

/// Pruning never deletes a backup it cannot read, and its problems do not fail the backup just
/// written. A key file holds several keys: after a rotation (new key first, old one kept),
/// incrementals go on continuing the old chain, and everything restores.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pruning_keeps_what_it_cannot_read_and_keys_rotate() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, dest) = (tmp.path().join("data"), tmp.path().join("dest"));
    append(&data, 0..10).await;
    let (old, new) = ("01".repeat(32), "02".repeat(32));
    let with = |keys: &str, full: bool, keep: Option<usize>| BackupOptions {
        key: Some(ring(keys)),
        full,
        keep_full: keep,
        ..opts(&data, &dest)
    };
    let a = take(&with(&old, true, None));
    let b = take(&with(&old, true, None));
    // A damaged manifest in the oldest backup.
    fs::write(dest.join(&a.id).join(MANIFEST), b"garbage").unwrap();
    append(&data, 10..15).await;
    // Rotation: the new key seals, the old one still opens.
    let rotated = format!("{new}\n{old}\n");
    let taken = tokio::task::block_in_place(|| backup(&with(&rotated, false, Some(1)))).unwrap();
    let c = taken.manifest;
    assert_eq!(
        (c.kind, c.parent.as_deref()),
        (Kind::Incremental, Some(b.id.as_str())),
        "continues the old key's chain"
    );
    assert!(
        taken.prune_problems.iter().any(|p| p.contains(&a.id)),
        "the unreadable backup is reported: {:?}",
        taken.prune_problems
    );
    assert!(dest.join(&a.id).exists(), "and kept");
    assert!(dest.join(&b.id).exists() && dest.join(&c.id).exists());
    // A full sealed with the new key: the old full goes, the unreadable one stays.
    let d = tokio::task::block_in_place(|| backup(&with(&rotated, true, Some(1)))).unwrap();
    assert!(!dest.join(&b.id).exists() && !dest.join(&c.id).exists(), "older than the kept full");
    assert!(dest.join(&a.id).exists(), "never deleted unread");
    assert_eq!(d.prune_problems.len(), 1, "{:?}", d.prune_problems);
    // Only the new key: everything it sealed restores and verifies.
    let to = dest.display().to_string();
    let only_new = ring(&new);
    let r = tokio::task::block_in_place(|| {
        restore(&RestoreOptions { key: Some(only_new.clone()), ..ropts(&dest, &tmp.path().join("r")) })
    })
    .unwrap();
    assert_eq!(r.records, 15);
    tokio::task::block_in_place(|| verify(&to, Some(&d.manifest.id), Some(&only_new), &S3Options::default(), None))
        .unwrap();
}

/// An incremental needs the log from where its parent ended. When retention deleted those
/// records — before the backup looked, or between its look and its copy — it is never written
/// with a hole (which no restore accepts): the backup is a full one instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incremental_never_skips_records_retention_deleted() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, dest) = (tmp.path().join("data"), tmp.path().join("dest"));
    append(&data, 0..20).await;
    let full = take(&opts(&data, &dest));
    append(&data, 20..200).await;
    let log = data.join("log");
    let bases = logfiles::segments(&log).unwrap();
    // Retention: the segments holding the records right after the full.
    let gone: Vec<i64> = bases.iter().copied().take_while(|&b| b <= full.log.next + 40).collect();
    assert!(gone.len() >= 2 && gone.len() < bases.len());
    for base in &gone {
        fs::remove_file(logfiles::segment_path(&log, *base)).unwrap();
    }
    // The copy itself (as after a check that passed just before the deletion) refuses.
    let stage = tmp.path().join("stage");
    fs::create_dir_all(&stage).unwrap();
    let d = dest::open(&dest.display().to_string(), &S3Options::default(), false).unwrap();
    let err = take::copy_log(&log, Some(full.log.next), &stage, "x", None, d.as_ref()).err().expect("refused");
    assert!(matches!(error_of(&err), BackupError::LogMoved { .. }), "{err:#}");
    // The backup: a full, which restores and verifies.
    let m = take(&opts(&data, &dest));
    assert_eq!(m.kind, Kind::Full);
    let r = tokio::task::block_in_place(|| restore(&ropts(&dest, &tmp.path().join("r")))).unwrap();
    assert_eq!(r.records as usize, frames(&data).len());
    tokio::task::block_in_place(|| verify(&dest.display().to_string(), None, None, &S3Options::default(), None))
        .unwrap();
}

fn add_object(data: &Path, name: &str, bytes: &[u8]) {
    let dir = data.join("objects/daybook/devices/cam-1/segments");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join(name), bytes).unwrap();
}

fn differential(data: &Path, to: &Path) -> Manifest {
    take(&BackupOptions { differential: true, ..opts(data, to) })
}

fn listed(to: &Path) -> Vec<Listed> {
    tokio::task::block_in_place(|| list(&to.display().to_string(), None, &S3Options::default())).unwrap()
}

/// A differential holds everything since its full: a restore at it reads the full and the
/// differential only, however many incrementals came between, and gives what a restore of the
/// whole chain gives. Incrementals continue it; `list` says what each backup needs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_differential_restores_with_its_full_alone_and_incrementals_continue_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, dest) = (tmp.path().join("data"), tmp.path().join("dest"));
    append(&data, 0..40).await;
    add_object(&data, "a", b"in the full");
    let full = take(&opts(&data, &dest));
    append(&data, 40..60).await;
    add_object(&data, "b", b"after the full");
    let inc1 = take(&opts(&data, &dest));
    append(&data, 60..80).await;
    add_object(&data, "c", b"after the first incremental");
    let inc2 = take(&opts(&data, &dest));
    assert_eq!((inc2.kind, inc2.parent.as_deref()), (Kind::Incremental, Some(inc1.id.as_str())));
    append(&data, 80..90).await;
    let diff = differential(&data, &dest);
    assert_eq!((diff.kind, diff.parent.as_deref()), (Kind::Differential, Some(full.id.as_str())));
    assert_eq!(diff.log, LogRange { first: full.log.next, next: 91 }, "the log since the full");
    assert_eq!((diff.counts.records, diff.counts.objects), (50, 2), "every record and object since the full");

    let at_diff = tmp.path().join("at-diff");
    let r = tokio::task::block_in_place(|| {
        restore(&RestoreOptions { at: Some(diff.id.clone()), ..ropts(&dest, &at_diff) })
    })
    .unwrap();
    assert_eq!(r.chain, [full.id.clone(), diff.id.clone()], "the full and the differential only");
    assert_eq!(frames(&at_diff), frames(&data));
    let at_inc2 = tmp.path().join("at-inc2");
    tokio::task::block_in_place(|| restore(&RestoreOptions { at: Some(inc2.id.clone()), ..ropts(&dest, &at_inc2) }))
        .unwrap();
    assert_eq!(frames(&at_inc2), frames(&data)[..80].to_vec());
    for name in ["a", "b", "c"] {
        let path = format!("objects/daybook/devices/cam-1/segments/{name}");
        assert_eq!(fs::read(at_diff.join(&path)).unwrap(), fs::read(data.join(&path)).unwrap(), "{name}");
    }

    // Incrementals after the differential continue it.
    append(&data, 90..100).await;
    add_object(&data, "d", b"after the differential");
    let inc3 = take(&opts(&data, &dest));
    assert_eq!((inc3.kind, inc3.parent.as_deref(), inc3.log.first), (Kind::Incremental, Some(diff.id.as_str()), 91));
    assert_eq!(inc3.counts.objects, 1, "only what the full and the differential lack");
    let newest = tmp.path().join("newest");
    let r = tokio::task::block_in_place(|| restore(&ropts(&dest, &newest))).unwrap();
    assert_eq!(r.chain, [full.id.clone(), diff.id.clone(), inc3.id.clone()]);
    assert_eq!(frames(&newest), frames(&data));
    assert_eq!(objects_of(&newest), objects_of(&data));

    let needs: Vec<(Option<Kind>, Option<Vec<String>>)> =
        listed(&dest).into_iter().map(|l| (l.kind, l.needs)).collect();
    assert_eq!(
        needs,
        [
            (Some(Kind::Full), Some(vec![])),
            (Some(Kind::Incremental), Some(vec![full.id.clone()])),
            (Some(Kind::Incremental), Some(vec![full.id.clone(), inc1.id.clone()])),
            (Some(Kind::Differential), Some(vec![full.id.clone()])),
            (Some(Kind::Incremental), Some(vec![full.id.clone(), diff.id.clone()])),
        ]
    );
    tokio::task::block_in_place(|| {
        verify(&dest.display().to_string(), Some(&inc3.id), None, &S3Options::default(), None)
    })
    .unwrap();
}

/// Every file under `dir/objects`, by path.
fn objects_of(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let root = dir.join("objects");
    let mut all = Vec::new();
    packs::walk(&root, &root, &mut all).unwrap();
    let mut out: Vec<_> = all.into_iter().map(|(rel, _)| (rel.clone(), fs::read(root.join(&rel)).unwrap())).collect();
    out.sort();
    out
}

/// A differential's parent must be a full backup: a chain that says otherwise is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_differential_on_anything_but_a_full_is_a_broken_chain() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, dest) = (tmp.path().join("data"), tmp.path().join("dest"));
    append(&data, 0..10).await;
    let full = take(&opts(&data, &dest));
    append(&data, 10..20).await;
    let inc = take(&opts(&data, &dest));
    // An incremental relabelled as a differential: its parent is the full, so relabel the
    // full as an incremental of nothing instead — the differential's parent is then no full.
    let path = dest.join(&full.id).join(MANIFEST);
    let text = fs::read_to_string(&path).unwrap().replace("\"full\"", "\"incremental\"");
    fs::write(&path, text).unwrap();
    let path = dest.join(&inc.id).join(MANIFEST);
    let text = fs::read_to_string(&path).unwrap().replace("\"incremental\"", "\"differential\"");
    fs::write(&path, text).unwrap();
    let d = dest::open(&dest.display().to_string(), &S3Options::default(), false).unwrap();
    let err = stored::chain(d.as_ref(), &d.ids().unwrap(), &inc.id, None).unwrap_err();
    assert!(format!("{err:#}").contains("is differential, but its parent"), "{err:#}");
}

/// Pruning keeps every backup a kept backup's chain needs, however old: here a differential
/// newer than the newest full continues an older full, which stays; a full nothing needs goes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pruning_keeps_chains_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, first, dest) = (tmp.path().join("data"), tmp.path().join("first"), tmp.path().join("dest"));
    append(&data, 0..10).await;
    let f0 = take(&opts(&data, &first));
    append(&data, 10..20).await;
    let f1 = take(&BackupOptions { full: true, ..opts(&data, &first) });
    append(&data, 20..30).await;
    let d1 = differential(&data, &first);
    assert_eq!(d1.parent.as_deref(), Some(f1.id.as_str()));
    transplant(&first, &f0.id, &dest, &f0.id);
    transplant(&first, &f1.id, &dest, &f1.id);
    let f2 = take(&BackupOptions { full: true, ..opts(&data, &dest) });
    // The differential of f1, named after f2.
    let late = "20991231T000000000Z";
    transplant(&first, &d1.id, &dest, late);
    let d = dest::open(&dest.display().to_string(), &S3Options::default(), false).unwrap();
    let pruned = take::prune(d.as_ref(), 1, None, late);
    assert_eq!(pruned.deleted, std::slice::from_ref(&f0.id), "{:?}", pruned.problems);
    assert!(dest.join(&f1.id).exists(), "the differential after the kept full needs it");
    assert!(dest.join(&f2.id).exists() && dest.join(late).exists());
    let r = tokio::task::block_in_place(|| restore(&ropts(&dest, &tmp.path().join("r")))).unwrap();
    assert_eq!(r.chain, [f1.id.clone(), late.to_owned()]);
    assert_eq!(frames(&tmp.path().join("r")), frames(&data));
}

fn audit_lines(dir: &Path) -> Vec<serde_json::Value> {
    let text = fs::read_to_string(dir.join(crate::audit::FILE)).unwrap_or_default();
    text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect()
}

/// A backup, a restore and a rebuild each append one parseable line to their data directory's
/// audit trail, with the action, ids and outcome; a failed backup says why; pruning writes a
/// line per backup deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backups_restores_rebuilds_and_pruning_leave_audit_lines() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, dest) = (tmp.path().join("data"), tmp.path().join("dest"));
    append(&data, 0..20).await;
    let full = take(&opts(&data, &dest));
    let lines = audit_lines(&data);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let repo = dest.display().to_string();
    assert_eq!(
        (
            lines[0]["action"].as_str(),
            lines[0]["outcome"].as_str(),
            lines[0]["kind"].as_str(),
            lines[0]["repo"].as_str()
        ),
        (Some("backup"), Some("ok"), Some("full"), Some(repo.as_str()))
    );
    assert_eq!(lines[0]["ids"], serde_json::json!([full.id]));

    let restored = tmp.path().join("restored");
    tokio::task::block_in_place(|| restore(&ropts(&dest, &restored))).unwrap();
    let opts_rebuild = crate::rebuild::RebuildOptions {
        data_dir: restored.clone(),
        group: "daybook-projector".into(),
        policy: Default::default(),
        max_batch: 100,
        progress_every: Duration::from_secs(60),
    };
    // This test's records are no reports: the projector refuses them, and the rebuild fails.
    let err = crate::rebuild::rebuild(&opts_rebuild, |_| {}).await.unwrap_err();
    let lines = audit_lines(&restored);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!((lines[0]["action"].as_str(), lines[0]["outcome"].as_str()), (Some("restore"), Some("ok")));
    assert_eq!(lines[0]["ids"], serde_json::json!([full.id]));
    assert_eq!(lines[0]["chain"], serde_json::json!([full.id]));
    assert_eq!((lines[1]["action"].as_str(), lines[1]["outcome"].as_str()), (Some("rebuild"), Some("failed")));
    assert_eq!(lines[1]["error"].as_str(), Some(format!("{err:#}").as_str()));
    // A log with nothing to replay rebuilds.
    let empty = tmp.path().join("empty");
    append(&empty, 0..0).await;
    crate::rebuild::rebuild(&crate::rebuild::RebuildOptions { data_dir: empty.clone(), ..opts_rebuild }, |_| {})
        .await
        .unwrap();
    let lines = audit_lines(&empty);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!((lines[0]["action"].as_str(), lines[0]["outcome"].as_str()), (Some("rebuild"), Some("ok")));
    assert!(lines[0].get("error").is_none() && lines[0]["seconds"].as_f64().is_some());

    // A failing backup: a destination under a file.
    fs::write(tmp.path().join("file"), b"").unwrap();
    let bad = tmp.path().join("file/dest");
    tokio::task::block_in_place(|| backup(&opts(&data, &bad))).unwrap_err();
    let lines = audit_lines(&data);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!((lines[1]["action"].as_str(), lines[1]["outcome"].as_str()), (Some("backup"), Some("failed")));
    assert!(lines[1]["error"].as_str().unwrap().contains(&*bad.display().to_string()), "{}", lines[1]);

    // Pruning: a line per backup deleted.
    append(&data, 20..25).await;
    let taken =
        tokio::task::block_in_place(|| backup(&BackupOptions { full: true, keep_full: Some(1), ..opts(&data, &dest) }))
            .unwrap();
    assert_eq!(taken.pruned, std::slice::from_ref(&full.id));
    let lines = audit_lines(&data);
    let prune: Vec<_> = lines.iter().filter(|l| l["action"] == "prune").collect();
    assert_eq!(prune.len(), 1, "{lines:?}");
    assert_eq!(prune[0]["ids"], serde_json::json!([full.id]));
    assert_eq!(prune[0]["outcome"], "ok");
}

fn schedule_for(to: &Path, scratch: &Path) -> schedule::Schedule {
    let plan = schedule::Plan {
        interval: Duration::from_millis(200),
        full_every: Duration::from_secs(3600),
        differential_every: None,
        keep_full: None,
        key_file: None,
        s3: S3Options::default(),
        verify_every: None,
        verify_scratch: Some(scratch.to_owned()),
    };
    schedule::schedules([to.display().to_string()], &plan).remove(0)
}

/// The scheduled verify catches a damaged backup: the routine the schedule runs fails, naming
/// the repository and the file, and the audit trail has it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scheduled_verify_names_the_repository_and_the_damaged_file() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, dest) = (tmp.path().join("data"), tmp.path().join("dest"));
    // Scratch on another filesystem (shared memory), so that how full this machine's disk is
    // plays no part: the room check has its own tests.
    let shm = tempfile::tempdir_in("/dev/shm").unwrap();
    let scratch = shm.path().join("scratch");
    fs::create_dir_all(&scratch).unwrap();
    append(&data, 0..30).await;
    take(&opts(&data, &dest));
    append(&data, 30..50).await;
    let inc = take(&opts(&data, &dest));
    let s = schedule_for(&dest, &scratch);
    let v = tokio::task::block_in_place(|| trial::verify_scheduled(&s, &data)).unwrap();
    assert_eq!(v.backups.len(), 2, "the newest backup's chain");
    assert_eq!(fs::read_dir(&scratch).unwrap().count(), 0, "the trial restore is cleaned up");

    let piece = inc.files.iter().find(|f| f.log.is_some()).unwrap();
    let path = dest.join(&inc.id).join(&piece.name);
    let mut bytes = fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    fs::write(&path, bytes).unwrap();
    let err = tokio::task::block_in_place(|| trial::verify_scheduled(&s, &data)).unwrap_err();
    let text = format!("{err:#}");
    assert!(text.contains(&format!("scheduled verify of {}", dest.display())), "{text}");
    assert!(text.contains(&format!("{}/{}", inc.id, piece.name)), "{text}");
    let lines = audit_lines(&data);
    let verifies: Vec<_> = lines.iter().filter(|l| l["action"] == "verify").collect();
    assert_eq!(verifies.iter().map(|l| l["outcome"].as_str().unwrap()).collect::<Vec<_>>(), ["ok", "failed"]);
    assert!(verifies[1]["error"].as_str().unwrap().contains(&piece.name));
}

/// Two repositories, one of them unwritable: each has its own task, the other still gets its
/// backups on schedule, and the failure names the unwritable repository.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repository_that_fails_holds_up_none_of_the_others() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, good) = (tmp.path().join("data"), tmp.path().join("good"));
    append(&data, 0..10).await;
    fs::write(tmp.path().join("file"), b"").unwrap();
    let bad = tmp.path().join("file/backups");
    let plan = schedule_for(&good, tmp.path()).plan;
    let repos = schedule::schedules([bad.display().to_string(), good.display().to_string()], &plan);
    assert_eq!(repos.len(), 2);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let tasks: Vec<_> =
        repos.iter().map(|s| tokio::spawn(schedule::run(s.clone(), data.clone(), stopped.clone()))).collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while fs::read_dir(&good).map_or(0, |d| d.count()) < 3 {
        assert!(std::time::Instant::now() < deadline, "no backups in the good repository");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.send(true).unwrap();
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(30), t).await.unwrap().unwrap();
    }
    let err = tokio::task::block_in_place(|| schedule::backup_once(&repos[0], data.clone())).unwrap_err();
    assert!(format!("{err:#}").contains(&format!("backup into {}", bad.display())), "{err:#}");
    let failed = audit_lines(&data).iter().filter(|l| l["outcome"] == "failed").count();
    assert!(failed >= 2, "every failed attempt is in the audit trail");
}

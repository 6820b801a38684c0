//! Store cases of exports (`schemas::ExportRequested`, `schemas::ExportCompleted`): listed
//! pending then ready, the completion winning over its request in any order, erased with the
//! device (their archives purged), gone at their expiry.

use std::time::Duration;

use schemas::{Day, DayOffset, Envelope, ExportCompleted, ExportId, ExportOutcome, ExportRequested, Report, Timestamp};

use super::{cid, env, erasure, purged_keys, StoreHarness};
use crate::store::{ExportView, ProjectionStore};

fn today() -> Day {
    DayOffset::default().today()
}

/// A request of an export of `device`'s last two days, received now; its id is made at `n`
/// milliseconds past now, so ids made one after another sort in that order.
pub fn export_request(device: &str, n: i64) -> (ExportId, Envelope) {
    let id = ExportId::generate(Timestamp::now().plus_millis(n), n as u64);
    let report = ExportRequested { cid: cid(device), export_id: id.clone(), from: today().add_days(-1), to: today() };
    (id, env(Report::ExportRequested(report)))
}

/// The completion of `request` (as the worker makes it), ready with `bytes` unless `failed`,
/// expiring `ttl_ms` from now.
pub fn export_completion(request: &Envelope, bytes: Option<u64>, ttl_ms: i64) -> Envelope {
    let Report::ExportRequested(r) = &request.report else { panic!("not an export request") };
    let outcome = match bytes {
        Some(bytes) => {
            ExportOutcome::Ready { key: schemas::export::archive_key(&r.cid, &r.export_id), bytes, events: 3 }
        }
        None => ExportOutcome::Failed { reason: "object store unavailable".into() },
    };
    env(Report::ExportCompleted(ExportCompleted {
        cid: r.cid.clone(),
        export_id: r.export_id.clone(),
        requested_at: request.received_at,
        from: r.from,
        to: r.to,
        outcome,
        expires_at: Timestamp::now().plus_millis(ttl_ms),
    }))
}

const WEEK_MS: i64 = 7 * 86_400_000;

async fn listed(s: &dyn ProjectionStore, device: &str) -> Vec<ExportView> {
    s.exports(&cid(device), None, 100).await.unwrap()
}

async fn pending_ids(s: &dyn ProjectionStore) -> Vec<ExportId> {
    s.pending_exports(100).await.unwrap().into_iter().map(|v| v.export_id).collect()
}

/// A requested export is listed pending (with its days, for the worker too); completed, it is
/// ready with its archive's key and leaves the pending list; the list is newest first and pages
/// by the last id; another device's exports are not listed.
pub async fn an_export_is_pending_then_ready(mut h: impl StoreHarness) {
    let s = h.open().await;
    let (a, ra) = export_request("cam-x", 0);
    let (b, rb) = export_request("cam-x", 1);
    let (other, ro) = export_request("cam-x-other", 2);
    s.apply(&[ra.clone(), rb.clone(), ro]).await.unwrap();
    let views = listed(&*s, "cam-x").await;
    assert_eq!(
        views.iter().map(|v| v.export_id.clone()).collect::<Vec<_>>(),
        vec![b.clone(), a.clone()],
        "newest first"
    );
    let view = s.export(&cid("cam-x"), &a).await.unwrap().expect("listed");
    assert_eq!(
        (view.from, view.to, view.outcome.clone(), view.completed_at),
        (today().add_days(-1), today(), None, None)
    );
    assert_eq!(view.requested_at, ra.received_at);
    assert_eq!(view.expires_at, ra.received_at.plus_millis(WEEK_MS), "a pending export waits a week at most");
    assert_eq!(pending_ids(&*s).await, vec![a.clone(), b.clone(), other.clone()], "oldest first, any device");
    assert!(s.export(&cid("cam-x"), &other).await.unwrap().is_none(), "another device's export");

    let done = export_completion(&ra, Some(12_345), WEEK_MS);
    s.apply(std::slice::from_ref(&done)).await.unwrap();
    let view = s.export(&cid("cam-x"), &a).await.unwrap().expect("still listed");
    let key = format!("exports/cam-x/{a}.tar");
    assert_eq!(view.outcome, Some(ExportOutcome::Ready { key, bytes: 12_345, events: 3 }));
    assert_eq!(view.completed_at, Some(done.received_at));
    assert_eq!((view.from, view.to, view.requested_at), (today().add_days(-1), today(), ra.received_at));
    assert_eq!(pending_ids(&*s).await, vec![b.clone(), other], "a completed export is not pending");
    // Paged: one at a time, before the last id.
    let first = s.exports(&cid("cam-x"), None, 1).await.unwrap();
    assert_eq!(first.iter().map(|v| &v.export_id).collect::<Vec<_>>(), vec![&b]);
    let second = s.exports(&cid("cam-x"), Some(&b), 1).await.unwrap();
    assert_eq!(second.iter().map(|v| &v.export_id).collect::<Vec<_>>(), vec![&a]);
    assert!(s.exports(&cid("cam-x"), Some(&a), 1).await.unwrap().is_empty());
    // A failed one is listed as such.
    s.apply(&[export_completion(&rb, None, WEEK_MS)]).await.unwrap();
    let failed = s.export(&cid("cam-x"), &b).await.unwrap().unwrap().outcome;
    assert_eq!(failed, Some(ExportOutcome::Failed { reason: "object store unavailable".into() }));
}

/// A completion wins over its request whatever the order they are applied in — in one batch,
/// in two, the request replayed later, through a second handle — and of two completions the
/// newer wins.
pub async fn a_completion_beats_its_request_in_any_order(mut h: impl StoreHarness) {
    let s = h.open().await;
    let (a, ra) = export_request("cam-xo", 0);
    let done = export_completion(&ra, Some(10), WEEK_MS);
    s.apply(std::slice::from_ref(&done)).await.unwrap();
    s.apply(std::slice::from_ref(&ra)).await.unwrap();
    let ready =
        |v: Option<ExportView>| v.and_then(|v| v.outcome).is_some_and(|o| matches!(o, ExportOutcome::Ready { .. }));
    assert!(ready(s.export(&cid("cam-xo"), &a).await.unwrap()), "completed before requested still ends ready");
    assert!(pending_ids(&*s).await.is_empty(), "and is not pending");
    let (b, rb) = export_request("cam-xo", 1);
    let done_b = export_completion(&rb, Some(20), WEEK_MS);
    s.apply(&[done_b.clone(), rb.clone()]).await.unwrap();
    assert!(ready(s.export(&cid("cam-xo"), &b).await.unwrap()), "in one batch");
    let again = h.open_again().await;
    again.apply(&[rb, ra]).await.unwrap();
    for store in [&s, &again] {
        assert!(ready(store.export(&cid("cam-xo"), &a).await.unwrap()));
        assert!(ready(store.export(&cid("cam-xo"), &b).await.unwrap()));
        assert!(pending_ids(&**store).await.is_empty());
    }
    // Two workers completed it: the newer completion wins, the older replayed after it too.
    let newer = export_completion(&export_request_of(&done_b), None, WEEK_MS);
    s.apply(std::slice::from_ref(&newer)).await.unwrap();
    s.apply(std::slice::from_ref(&done_b)).await.unwrap();
    let outcome = s.export(&cid("cam-xo"), &b).await.unwrap().unwrap().outcome;
    assert!(matches!(outcome, Some(ExportOutcome::Failed { .. })), "{outcome:?}");
}

/// The request a completion answers, as received (its id, days and time).
fn export_request_of(completion: &Envelope) -> Envelope {
    let Report::ExportCompleted(c) = &completion.report else { panic!("not a completion") };
    let report = ExportRequested { cid: c.cid.clone(), export_id: c.export_id.clone(), from: c.from, to: c.to };
    Envelope::new(Report::ExportRequested(report), c.requested_at)
}

/// An erasure removes the device's exports (pending and completed) and lists their archives to
/// purge; a completion of an export asked for before the erasure, applied after it, is not
/// listed (its archive is purged); another device's exports stay.
pub async fn an_erasure_drops_exports_and_purges_archives(mut h: impl StoreHarness) {
    let s = h.open().await;
    let (a, ra) = export_request("cam-xe", 0);
    let (b, rb) = export_request("cam-xe", 1);
    let (k, rk) = export_request("cam-xe-keep", 2);
    s.apply(&[ra.clone(), rb.clone(), rk, export_completion(&ra, Some(10), WEEK_MS)]).await.unwrap();
    s.apply(&[erasure("cam-xe")]).await.unwrap();
    assert!(listed(&*s, "cam-xe").await.is_empty(), "the device's exports go");
    assert_eq!(pending_ids(&*s).await, vec![k.clone()], "and leave the worker's list");
    let keys = purged_keys(s.purges(100).await.unwrap());
    for id in [&a, &b] {
        let want = format!("exports/cam-xe/{id}.tar");
        assert!(keys.contains(&want), "{want} listed to purge: {keys:?}");
    }
    // The worker finishes b after the erasure: covered, never listed, its archive purged.
    let late = export_completion(&rb, Some(10), WEEK_MS);
    s.purged(&s.purges(100).await.unwrap()).await.unwrap();
    s.apply(&[late, rb, ra]).await.unwrap();
    assert!(listed(&*s, "cam-xe").await.is_empty(), "a late completion or a replay brings nothing back");
    let keys = purged_keys(s.purges(100).await.unwrap());
    assert!(keys.contains(&format!("exports/cam-xe/{b}.tar")), "the late archive is purged: {keys:?}");
    assert_eq!(listed(&*s, "cam-xe-keep").await.len(), 1, "another device's export stays");
    // The device asks again after its erasure: served.
    let (c, rc) = export_request("cam-xe", 3);
    s.apply(&[rc]).await.unwrap();
    assert_eq!(listed(&*s, "cam-xe").await.into_iter().map(|v| v.export_id).collect::<Vec<_>>(), vec![c]);
}

/// An export is gone at its expiry: a completed one at its `expires_at` (reads leave it out, the
/// janitor or the TTL drops it), a pending one a week after it was asked for; a report already
/// past its export's expiry writes nothing.
pub async fn exports_expire(mut h: impl StoreHarness) {
    let s = h.open().await;
    let (a, ra) = export_request("cam-xx", 0);
    s.apply(&[ra.clone(), export_completion(&ra, Some(10), 2_000)]).await.unwrap();
    assert!(s.export(&cid("cam-xx"), &a).await.unwrap().is_some());
    // Asked for over a week ago and never completed: not written.
    let (old, ro) = export_request("cam-xx", 1);
    let ro = Envelope { received_at: Timestamp::now().plus_millis(-WEEK_MS - 60_000), ..ro };
    s.apply(std::slice::from_ref(&ro)).await.unwrap();
    assert!(s.export(&cid("cam-xx"), &old).await.unwrap().is_none(), "a pending export past its week");
    assert!(!pending_ids(&*s).await.contains(&old));
    // A completion already expired: not written either (its request stays pending).
    let (gone, rg) = export_request("cam-xx", 2);
    s.apply(&[rg.clone(), export_completion(&rg, Some(10), -1_000)]).await.unwrap();
    assert_eq!(pending_ids(&*s).await, vec![gone.clone()]);
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    assert!(s.export(&cid("cam-xx"), &a).await.unwrap().is_none(), "expired");
    assert_eq!(listed(&*s, "cam-xx").await.into_iter().map(|v| v.export_id).collect::<Vec<_>>(), vec![gone]);
    s.drop_expired(DayOffset::default().today().add_days(-30)).await.unwrap();
    assert!(s.export(&cid("cam-xx"), &a).await.unwrap().is_none(), "and dropped");
}

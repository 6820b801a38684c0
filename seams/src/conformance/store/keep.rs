//! Store cases of keeps (`schemas::EventKept`, `schemas::EventUnkept`): a kept event outlives
//! retention whole, an un-kept one expires by the normal rule or at once, the newest of a keep
//! and an un-keep wins in any order, and the kept events restated as reports rebuild
//! themselves in an empty store.

use std::time::Duration;

use schemas::{EndStatus, Envelope, EventId, Report, TimePolicy, Timestamp};

use super::{cid, day, deletion, end, env, noon, segment, start, StoreHarness};
use crate::store::ProjectionStore;

/// A keep of `id`.
pub fn keep(id: &EventId) -> Envelope {
    env(Report::EventKept(schemas::EventKept { cid: id.device().clone(), event_id: id.clone() }))
}

/// An un-keep of `id`.
pub fn unkeep(id: &EventId) -> Envelope {
    env(Report::EventUnkept(schemas::EventUnkept { cid: id.device().clone(), event_id: id.clone() }))
}

async fn kept_ids(s: &dyn ProjectionStore, device: &str) -> Vec<EventId> {
    s.kept(&cid(device), None, 100).await.unwrap().into_iter().map(|e| e.event_id).collect()
}

/// Waits until `trigger`'s retention is over (TTLs are whole seconds, rounded up).
async fn past_retention(trigger: Timestamp) {
    let left = TimePolicy::default().expires_at(trigger).millis() - Timestamp::now().millis();
    tokio::time::sleep(Duration::from_millis(left.max(0) as u64 + 1_500)).await;
}

/// Of a keep and an un-keep of an event the newer wins, in one batch or many, in any order of
/// application; reads mark a kept event; a deleted event is not kept.
pub async fn the_newest_keep_or_unkeep_wins(mut h: impl StoreHarness) {
    let s = h.open().await;
    let (a, sa) = start("cam-k", "motion", noon(1, 0));
    let (b, sb) = start("cam-k", "person", noon(1, 60_000));
    s.apply(&[sa, sb]).await.unwrap();
    assert!(!s.event(&a).await.unwrap().unwrap().event.kept);
    let (k1, u1, k2) = (keep(&a), unkeep(&a), keep(&a));
    s.apply(&[k1.clone(), keep(&b)]).await.unwrap();
    assert_eq!(kept_ids(&*s, "cam-k").await, vec![a.clone(), b.clone()]);
    assert!(s.event(&a).await.unwrap().unwrap().event.kept, "the detail marks it");
    let page = s.day_page(&cid("cam-k"), day(1), None, 10, None).await.unwrap();
    assert!(page.events.iter().all(|e| e.kept), "the day page marks them: {page:?}");
    s.apply(std::slice::from_ref(&u1)).await.unwrap();
    assert_eq!(kept_ids(&*s, "cam-k").await, vec![b.clone()]);
    assert!(!s.event(&a).await.unwrap().unwrap().event.kept, "un-kept, inside retention: still served");
    // The older keep replayed after the un-keep changes nothing; the newer keep wins, in any order.
    s.apply(std::slice::from_ref(&k1)).await.unwrap();
    assert_eq!(kept_ids(&*s, "cam-k").await, vec![b.clone()]);
    s.apply(&[k2.clone(), u1.clone(), k1.clone()]).await.unwrap();
    assert_eq!(kept_ids(&*s, "cam-k").await, vec![a.clone(), b.clone()]);
    let again = h.open_again().await;
    again.apply(&[u1, k1]).await.unwrap();
    assert_eq!(kept_ids(&*again, "cam-k").await, vec![a.clone(), b.clone()]);
    // A deleted event is not kept, and a keep does not bring it back.
    s.apply(&[deletion(&b)]).await.unwrap();
    s.apply(&[keep(&b)]).await.unwrap();
    assert_eq!(kept_ids(&*s, "cam-k").await, vec![a.clone()]);
    assert!(s.event(&b).await.unwrap().is_none());
    assert_eq!(s.calendar(&cid("cam-k"), day(1), day(1)).await.unwrap(), vec![(day(1), 1)], "keeps count nothing");
}

/// A kept event outlives retention whole (its detail, its segments, its day page, the kept
/// list) while an event of the same day that is not kept goes; once un-kept past retention it
/// leaves every read at once, and the janitor takes its rows.
pub async fn a_kept_event_outlives_retention(mut h: impl StoreHarness) {
    let s = h.open().await;
    // Events with five seconds of retention left.
    let trigger = Timestamp::now().plus_millis(5_000 - TimePolicy::default().retention_ms());
    let old_day = schemas::DayOffset::default().day_of(trigger).unwrap();
    let (kept, sk) = start("cam-ko", "motion", trigger);
    let (gone, sg) = start("cam-ko", "motion", trigger.plus_millis(1));
    let seg = segment("cam-ko", "seg-ko", trigger, 3000, &[(&kept, 0, 0, 1000), (&gone, 0, 1000, 3000)]);
    let (ek, eg) = (end(&kept, 900, EndStatus::Complete), end(&gone, 900, EndStatus::Complete));
    s.apply(&[sk, sg, seg, ek, eg]).await.unwrap();
    let before = s.event(&kept).await.unwrap().unwrap();
    assert_eq!(before.segments.len(), 1);
    s.apply(&[keep(&kept)]).await.unwrap();
    past_retention(trigger).await;
    s.drop_expired(old_day.add_days(1)).await.unwrap();
    let after = s.event(&kept).await.unwrap().expect("a kept event outlives retention");
    assert!(after.event.kept);
    assert_eq!(
        (after.event.clone(), after.segments.clone()),
        (
            {
                let mut e = before.event;
                e.kept = true;
                e
            },
            before.segments
        )
    );
    assert!(s.event(&gone).await.unwrap().is_none(), "not kept: gone");
    let page = s.day_page(&cid("cam-ko"), old_day, None, 10, None).await.unwrap();
    assert_eq!(page.events.iter().map(|e| e.event_id.clone()).collect::<Vec<_>>(), vec![kept.clone()]);
    assert_eq!(kept_ids(&*s, "cam-ko").await, vec![kept.clone()]);
    // Un-kept past retention: gone from every read at once, and from the tables by the janitor.
    s.apply(&[unkeep(&kept)]).await.unwrap();
    assert!(s.event(&kept).await.unwrap().is_none(), "un-kept past retention: gone at once");
    assert!(s.day_page(&cid("cam-ko"), old_day, None, 10, None).await.unwrap().events.is_empty());
    assert!(kept_ids(&*s, "cam-ko").await.is_empty());
    s.drop_expired(old_day.add_days(1)).await.unwrap();
    assert!(s.event(&kept).await.unwrap().is_none());
    assert!(s.kept_reports(None).await.unwrap().devices.is_empty());
}

/// The kept events, restated as reports ([`ProjectionStore::kept_reports`]) and applied to an
/// empty store, read there as in the store they came from — past retention too, with the
/// segments their events map — and a replay of the log after them changes nothing.
pub async fn kept_events_restate_as_their_reports(mut h: impl StoreHarness) {
    let s = h.open().await;
    let trigger = Timestamp::now().plus_millis(4_000 - TimePolicy::default().retention_ms());
    let (old, so) = start("cam-kr", "motion", trigger);
    let (new, sn) = start("cam-kr", "person", noon(2, 0));
    let (other, sx) = start("cam-kr2", "motion", noon(3, 0));
    let (dropped, sd) = start("cam-kr", "motion", noon(2, 5_000));
    let shared = segment("cam-kr", "seg-kr", noon(2, 0), 2000, &[(&new, 0, 0, 1000), (&dropped, 0, 1000, 2000)]);
    let log = vec![
        so,
        sn,
        sx,
        sd,
        end(&old, 700, EndStatus::Aborted),
        end(&new, 1500, EndStatus::Complete),
        segment("cam-kr", "seg-old", trigger, 500, &[(&old, 0, 0, 500)]),
        shared,
        keep(&old),
        keep(&new),
        keep(&other),
        keep(&dropped),
        unkeep(&dropped),
    ];
    s.apply(&log).await.unwrap();
    past_retention(trigger).await;
    let mut restated = Vec::new();
    let mut cursor: Option<Vec<u8>> = None;
    loop {
        let page = s.kept_reports(cursor.as_deref()).await.unwrap();
        restated.extend(page.devices.into_iter().flat_map(|d| d.reports));
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let fresh = h.open_empty().await;
    fresh.apply(&restated).await.unwrap();
    for id in [&old, &new, &other] {
        let want = s.event(id).await.unwrap().expect("kept");
        assert_eq!(fresh.event(id).await.unwrap().as_ref(), Some(&want), "{id}");
    }
    assert!(fresh.event(&dropped).await.unwrap().is_none(), "un-kept: not restated");
    for device in ["cam-kr", "cam-kr2"] {
        assert_eq!(kept_ids(&*fresh, device).await, kept_ids(&*s, device).await);
    }
    // The log replayed after them (what `daybook rebuild` does): the same answers as the store
    // the log was applied to live, the event past retention included.
    fresh.apply(&log).await.unwrap();
    for id in [&old, &new, &other, &dropped] {
        assert_eq!(fresh.event(id).await.unwrap(), s.event(id).await.unwrap(), "{id}");
    }
    assert_eq!(
        fresh.calendar(&cid("cam-kr"), day(29), day(0)).await.unwrap(),
        s.calendar(&cid("cam-kr"), day(29), day(0)).await.unwrap()
    );
}

/// Keep against expiry at the boundary: events whose retention ends around the moment their
/// keep is applied end either kept whole (the event, its end, its segment) or gone — never
/// partly — and each one with time to spare is kept.
pub async fn keep_at_the_expiry_boundary_is_whole_or_nothing(mut h: impl StoreHarness) {
    let s = h.open().await;
    let retention = TimePolicy::default().retention_ms();
    let base = Timestamp::now().plus_millis(3_000 - retention);
    let mut history = Vec::new();
    let mut ids = Vec::new();
    for i in 0..12i64 {
        // From 3 s to about 0.25 s of retention left when written, 250 ms apart.
        let (id, st) = start("cam-kb", "motion", base.plus_millis(-250 * i));
        history.push(st);
        history.push(end(&id, 100, EndStatus::Complete));
        history.push(segment("cam-kb", &format!("seg-kb-{i}"), id.triggered_at(), 100, &[(&id, 0, 0, 100)]));
        ids.push(id);
    }
    s.apply(&history).await.unwrap();
    // The keeps land while the oldest are expiring.
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let keeps: Vec<Envelope> = ids.iter().map(keep).collect();
    s.apply(&keeps).await.unwrap();
    past_retention(base).await;
    let oldest = schemas::DayOffset::default().day_of(base).unwrap();
    s.drop_expired(oldest.add_days(1)).await.unwrap();
    let listed = kept_ids(&*s, "cam-kb").await;
    for (i, id) in ids.iter().enumerate() {
        match s.event(id).await.unwrap() {
            Some(d) => {
                assert!(d.event.kept && d.event.ended_at.is_some() && d.segments.len() == 1, "{i}: partly kept: {d:?}");
                assert!(listed.contains(id), "{i}");
            }
            None => {
                assert!(!listed.contains(id), "{i}: listed but not served");
                assert!(i >= 6, "{i}: had seconds of retention left when kept, yet gone");
            }
        }
    }
}

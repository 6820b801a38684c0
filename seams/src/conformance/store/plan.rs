//! Store cases of plans (docs/data-model.md, Plans): a report's rows expire by the retention
//! its envelope carries, the device's plan is that of its latest start, a plan change leaves
//! the rows already written their expiry, an un-keep restores the event's own, and an erasure
//! forgets the plan.

use schemas::{DayOffset, EndStatus, Envelope, Timestamp};

use super::keep::{keep, unkeep};
use super::{cid, day, end, erasure, expire, noon, start, StoreHarness};

/// `env` carrying `days` of retention (the device's plan when ingest accepted it).
fn planned(env: Envelope, days: u32) -> Envelope {
    env.with_retention(Some(days))
}

/// The deployment keeps 30 days: a report under a 60-day plan is written, served, counted and
/// kept by the janitor at 40 days, where the same report without a plan is past retention; the
/// device's plan reads 60.
pub async fn a_long_plan_outlives_the_deployments_retention(mut h: impl StoreHarness) {
    let s = h.open().await;
    let (long, sl) = start("cam-p60", "motion", noon(40, 0));
    let (short, ss) = start("cam-p30", "motion", noon(40, 0));
    let el = planned(end(&long, 5_000, EndStatus::Complete), 60);
    s.apply(&[planned(sl, 60), el, ss]).await.unwrap();
    s.drop_expired(day(30)).await.unwrap();
    let got = s.event(&long).await.unwrap().expect("kept for its 60-day plan");
    assert_eq!(got.event.status, crate::store::EventStatus::Complete);
    assert_eq!(s.calendar(&cid("cam-p60"), day(45), day(0)).await.unwrap(), vec![(day(40), 1)]);
    let page = s.day_page(&cid("cam-p60"), day(40), None, 10, None).await.unwrap();
    assert_eq!(page.events.len(), 1);
    assert!(s.event(&short).await.unwrap().is_none(), "the deployment's 30 days are over");
    assert_eq!(s.plan(&cid("cam-p60")).await.unwrap(), Some(60));
    assert_eq!(s.plan(&cid("cam-p30")).await.unwrap(), None);
}

/// A plan change applies to the reports received from then on: an event written under 30 days
/// expires at 30 after the device moved to 60, and one written under 60 is still served at 40
/// days after the device moved to 7 — the device's plan reads the newest.
pub async fn a_plan_change_leaves_written_rows_their_expiry(mut h: impl StoreHarness) {
    let s = h.open().await;
    // Upgrade: an event with four seconds of its 30 days left, then the device on 60 days.
    let trigger = Timestamp::now().plus_millis(4_000 - schemas::TimePolicy::default().retention_ms());
    let old_day = DayOffset::default().day_of(trigger).unwrap();
    let (old, so) = start("cam-up", "motion", trigger);
    s.apply(&[planned(so, 30)]).await.unwrap();
    let (new, sn) = start("cam-up", "motion", noon(0, 0).min(Timestamp::now()));
    s.apply(&[planned(sn, 60)]).await.unwrap();
    assert_eq!(s.plan(&cid("cam-up")).await.unwrap(), Some(60));
    expire(&*s, trigger, old_day).await;
    assert!(s.event(&old).await.unwrap().is_none(), "written under 30 days: expires at 30");
    assert!(s.calendar(&cid("cam-up"), old_day, old_day).await.unwrap().is_empty());
    assert!(s.event(&new).await.unwrap().is_some());
    // Downgrade: an event written under 60 days at 40 days old, then the device on 7.
    let (long, sl) = start("cam-down", "motion", noon(40, 0));
    s.apply(&[planned(sl, 60)]).await.unwrap();
    let (_, sd) = start("cam-down", "motion", noon(0, 0).min(Timestamp::now()));
    s.apply(&[planned(sd, 7)]).await.unwrap();
    assert_eq!(s.plan(&cid("cam-down")).await.unwrap(), Some(7));
    s.drop_expired(day(30)).await.unwrap();
    assert!(s.event(&long).await.unwrap().is_some(), "written under 60 days: kept its expiry");
    assert_eq!(s.calendar(&cid("cam-down"), day(40), day(40)).await.unwrap(), vec![(day(40), 1)]);
}

/// The device's plan is that of its latest start by filing time, whatever the order or
/// batching the starts are applied in; a start without one (the deployment's) reads `None`.
pub async fn the_plan_is_the_latest_starts_in_any_order(mut h: impl StoreHarness) {
    let s = h.open().await;
    let (_, a) = start("cam-pl", "motion", noon(3, 0));
    let (_, b) = start("cam-pl", "motion", noon(1, 0));
    let (_, c) = start("cam-pl", "motion", noon(2, 0));
    let (a, b, c) = (planned(a, 60), planned(b, 7), planned(c, 365));
    s.apply(&[b.clone(), a.clone(), c.clone()]).await.unwrap();
    assert_eq!(s.plan(&cid("cam-pl")).await.unwrap(), Some(7));
    let again = h.open_empty().await;
    again.apply(&[c]).await.unwrap();
    again.apply(&[b]).await.unwrap();
    again.apply(&[a]).await.unwrap();
    assert_eq!(again.plan(&cid("cam-pl")).await.unwrap(), Some(7));
    let (_, newest) = start("cam-pl", "motion", noon(0, 0).min(Timestamp::now()));
    s.apply(&[newest]).await.unwrap();
    assert_eq!(s.plan(&cid("cam-pl")).await.unwrap(), None, "back on the deployment's retention");
    assert_eq!(s.plan(&cid("cam-none")).await.unwrap(), None);
}

/// An un-keep restores the event's own expiry: an event of a 60-day plan, kept then un-kept
/// at 40 days, is still served (its plan runs to 60); one of the deployment's 30 days leaves
/// at once. Kept events restated as reports carry their plan.
pub async fn an_unkeep_restores_the_events_plan(mut h: impl StoreHarness) {
    let s = h.open().await;
    let (long, sl) = start("cam-uk", "motion", noon(40, 0));
    let (short, ss) = start("cam-uk", "person", noon(40, 0));
    // The short one is past the deployment's retention: written only as kept.
    s.apply(&[keep(&long), keep(&short), planned(sl, 60), ss]).await.unwrap();
    s.drop_expired(day(30)).await.unwrap();
    assert!(s.event(&long).await.unwrap().unwrap().event.kept);
    assert!(s.event(&short).await.unwrap().unwrap().event.kept);
    // Restated (for a rebuild), a kept event's reports carry the plan it was written under.
    let page = s.kept_reports(None).await.unwrap();
    let restated = |id: &schemas::EventId| {
        page.devices.iter().flat_map(|d| &d.reports).find_map(|e| match &e.report {
            schemas::Report::EventStarted(r) if &r.event_id == id => Some(e.retention_days),
            _ => None,
        })
    };
    assert_eq!((restated(&long), restated(&short)), (Some(Some(60)), Some(Some(30))));
    s.apply(&[unkeep(&long), unkeep(&short)]).await.unwrap();
    s.drop_expired(day(30)).await.unwrap();
    let back = s.event(&long).await.unwrap().expect("un-kept inside its 60-day plan: served");
    assert!(!back.event.kept);
    assert!(s.event(&short).await.unwrap().is_none(), "un-kept past the deployment's 30 days: gone");
}

/// An erasure forgets the device's plan with everything else of it.
pub async fn an_erasure_forgets_the_plan(mut h: impl StoreHarness) {
    let s = h.open().await;
    let (_, st) = start("cam-pe", "motion", noon(1, 0));
    s.apply(&[planned(st, 60)]).await.unwrap();
    assert_eq!(s.plan(&cid("cam-pe")).await.unwrap(), Some(60));
    s.apply(&[erasure("cam-pe")]).await.unwrap();
    assert_eq!(s.plan(&cid("cam-pe")).await.unwrap(), None);
}

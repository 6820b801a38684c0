//! One conformance suite per seam. Every implementation runs the same cases: the `tests`
//! crate instantiates them per backend with [`log_suite!`](crate::log_suite),
//! [`store_suite!`](crate::store_suite) and [`blob_suite!`](crate::blob_suite), so no backend
//! can quietly skip or swap a case.

pub mod blob;
pub mod log;
pub mod store;

use std::future::Future;
use std::time::{Duration, Instant};

/// Polls `check` until it yields `Some` or `timeout` passes (then panics with `what`).
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Instantiates the report-log suite: `log_suite!(harness_expr)` inside a module, where the
/// expression evaluates (asynchronously) to a fresh [`log::LogHarness`].
#[macro_export]
macro_rules! log_suite {
    ($harness:expr) => {
        $crate::__suite!(
            log,
            $harness,
            [
                append_returns_positions_in_key_order,
                new_group_reads_everything,
                a_new_group_can_start_at_the_end,
                a_new_groups_start_is_recorded_before_it_reads,
                commit_resumes_the_group,
                uncommitted_records_are_redelivered,
                concurrent_appends_keep_per_key_order,
                headers_and_bytes_survive,
                acknowledged_appends_survive_reopen,
                appends_after_shutdown_are_refused,
                a_member_owns_what_it_polled,
            ]
        );
    };
}

/// Instantiates the projection-store suite with a fresh [`store::StoreHarness`].
#[macro_export]
macro_rules! store_suite {
    ($harness:expr) => {
        $crate::__suite!(
            store,
            $harness,
            [
                start_then_end,
                end_before_start_merges,
                subscriptions_keep_their_newest_change,
                dead_letters_are_kept_until_released,
                replay_is_idempotent,
                events_live_on_the_cameras_local_day,
                the_devices_offset_is_its_latest_starts,
                calendar_counts_todays_events_of_a_camera_far_east_of_the_deployment,
                fast_clocks_are_filed_early_and_marked,
                calendar_counts_per_day,
                calendar_count_survives_replayed_batches,
                duplicate_reports_count_once,
                two_projectors_count_each_event_once,
                a_deleted_event_leaves_every_read,
                a_late_report_does_not_resurrect_a_deleted_event,
                two_projectors_delete_once,
                an_erased_device_leaves_every_read,
                reports_newer_than_an_erasure_are_served,
                two_projectors_erase_alike,
                usage_counts_each_segment_once,
                usage_drops_once_when_a_segment_is_deleted_whole,
                usage_counts_each_snapshot_once,
                two_projectors_count_usage_once,
                usage_expires_with_its_day,
                the_newest_keep_or_unkeep_wins,
                a_kept_event_outlives_retention,
                kept_events_restate_as_their_reports,
                keep_at_the_expiry_boundary_is_whole_or_nothing,
                an_export_is_pending_then_ready,
                a_completion_beats_its_request_in_any_order,
                an_erasure_drops_exports_and_purges_archives,
                exports_expire,
                counts_expire_with_their_day,
                a_long_plan_outlives_the_deployments_retention,
                a_plan_change_leaves_written_rows_their_expiry,
                the_plan_is_the_latest_starts_in_any_order,
                an_unkeep_restores_the_events_plan,
                an_erasure_forgets_the_plan,
                day_page_cursor_is_stable,
                day_page_filters_by_type,
                segments_map_into_events_in_index_order,
                segment_before_event_start_is_kept,
                pre_roll_segment_lives_as_long_as_its_event,
                unstorable_record_is_rejected_by_its_index,
                a_plan_change_is_applied_and_writes_no_row,
                quarantine_keeps_records_until_released,
                event_detail_pages_by_index,
                a_newer_segment_at_the_same_index_replaces_the_older,
                late_report_lands_in_trigger_day,
                digests_by_day,
                expired_days_are_dropped_whole,
                foreign_cursor_is_refused,
            ]
        );
    };
}

/// Instantiates the blob-signer suite with a fresh [`blob::BlobHarness`].
#[macro_export]
macro_rules! blob_suite {
    ($harness:expr) => {
        $crate::__suite!(
            blob,
            $harness,
            [
                put_then_get,
                tampered_signature_is_refused,
                swapped_key_is_refused,
                expired_url_is_refused,
                long_ttl_is_refused,
                wrong_length_is_refused,
            ]
        );
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __suite {
    ($seam:ident, $harness:expr, [$($case:ident),* $(,)?]) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let harness = $harness.await;
                $crate::conformance::$seam::$case(harness).await;
            }
        )*
    };
}

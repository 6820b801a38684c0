//! Kept events' objects on an external bucket (docs/data-model.md, Keeping events).
//!
//! The bucket's lifecycle rule expires everything under `devices/` by age
//! ([`S3Signer::ensure_bucket`]); it cannot tell a kept event's objects from the others. So
//! each object of a kept event is copied, server-side, under `kept/` (`seams::ObjectKey::kept_copy`) (which no rule
//! covers), and the copy is deleted once the event is no longer kept (un-kept, deleted, its
//! device erased). [`S3Signer::reconcile_kept`] makes the copies match the store's kept
//! events (`seams::kept_objects`): it is derived from the store alone, so a replay, a rebuild or
//! a missed round changes nothing — the next round catches up. Viewers are given the copy once
//! the event is past retention (`api`), when the original may be gone.

use std::collections::HashSet;

use aws_sdk_s3::error::ProvideErrorMetadata;
use seams::blob::KEPT_PREFIX;
use seams::BlobError;

use super::{unavailable, S3Signer};

/// What one [`S3Signer::reconcile_kept`] round did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct KeptCopies {
    /// Copies made.
    pub copied: u64,
    /// Kept objects whose original is gone (never uploaded, or expired before the keep was
    /// applied): nothing to copy.
    pub missing: u64,
    /// Copies deleted: their event is no longer kept.
    pub removed: u64,
}

impl S3Signer {
    /// Makes the bucket's kept copies match `kept` (the original objects' keys): copies each
    /// one that has no copy yet, and deletes each copy whose original is no longer kept. Memory
    /// is the number of copies and of kept objects.
    pub async fn reconcile_kept(&self, kept: &HashSet<String>) -> Result<KeptCopies, BlobError> {
        let copies = self.list_keys(KEPT_PREFIX).await?;
        let mut done = KeptCopies::default();
        for key in kept {
            let copy = format!("{KEPT_PREFIX}{key}");
            if copies.contains(&copy) {
                continue;
            }
            let sent = self
                .admin
                .copy_object()
                .bucket(&self.bucket)
                .key(&copy)
                // Object keys are made of `A-Z a-z 0-9 . _ - /` only: nothing to encode.
                .copy_source(format!("{}/{key}", self.bucket))
                .send()
                .await;
            match sent {
                Ok(_) => done.copied += 1,
                Err(e) if e.code() == Some("NoSuchKey") => done.missing += 1,
                Err(e) => {
                    let e = aws_sdk_s3::error::DisplayErrorContext(e);
                    return Err(unavailable(format!("copying {key} to {copy}: {e}")));
                }
            }
        }
        for copy in copies {
            let original = copy.strip_prefix(KEPT_PREFIX).unwrap_or(&copy);
            if kept.contains(original) {
                continue;
            }
            self.admin
                .delete_object()
                .bucket(&self.bucket)
                .key(&copy)
                .send()
                .await
                .map_err(|e| unavailable(format!("deleting {copy}: {}", aws_sdk_s3::error::DisplayErrorContext(e))))?;
            done.removed += 1;
        }
        Ok(done)
    }

    /// Every key under `prefix`.
    async fn list_keys(&self, prefix: &str) -> Result<HashSet<String>, BlobError> {
        let mut keys = HashSet::new();
        let mut pages = self.admin.list_objects_v2().bucket(&self.bucket).prefix(prefix).into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page
                .map_err(|e| unavailable(format!("listing {prefix}: {}", aws_sdk_s3::error::DisplayErrorContext(e))))?;
            keys.extend(page.contents().iter().filter_map(|o| o.key().map(str::to_owned)));
        }
        Ok(keys)
    }
}

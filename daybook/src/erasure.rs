//! Erasing a device (docs/data-model.md, Erasures; SECURITY.md): the erasure is a report on
//! the log like every owner's change, and the process that accepts it — `daybook erase device`,
//! or the viewer API — refuses the device's tokens issued until then in the data directory's
//! `revoked-devices` (as `daybook token revoke` does), once the erasure is durable.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use schemas::{DeviceId, ReportKind};

/// Refuses `cid`'s device tokens issued up to now (this second included): returns the epoch
/// second from which a token issued is accepted again.
pub fn revoke_tokens(data_dir: &Path, cid: &DeviceId) -> anyhow::Result<i64> {
    let before = chrono::Utc::now().timestamp() + 1;
    crate::secrets::revoke(data_dir, cid, before)?;
    Ok(before)
}

/// `appender`, revoking the device's tokens in `data_dir` after an erasure it put on the log.
pub fn revoking(appender: api::Appender, data_dir: PathBuf) -> api::Appender {
    Arc::new(move |record| {
        let erasure = (record.report_kind == ReportKind::DeviceErased.as_str()).then(|| record.key.clone());
        let (append, data_dir) = (appender(record), data_dir.clone());
        Box::pin(async move {
            append.await?;
            if let Some(cid) = erasure {
                let cid = DeviceId::parse(&cid).map_err(|e| seams::LogError::Unavailable(e.to_string()))?;
                // Durable on the log already: a failure here is reported, and the erasure, once
                // projected, serves nothing of the device whatever its tokens.
                if let Err(e) = revoke_tokens(&data_dir, &cid) {
                    tracing::error!(device = %cid, error = %format!("{e:#}"), "erasure: revoking the device's tokens failed");
                    return Err(seams::LogError::Unavailable(format!("erasure appended, tokens not revoked: {e:#}")));
                }
            }
            Ok(())
        })
    })
}

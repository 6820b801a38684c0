//! `daybook erase device CID`: the operator's erasure of a device (docs/operations.md).

use clap::{Args, Subcommand};
use schemas::{DeviceErased, DeviceId, Envelope, Report, Timestamp};
use seams::LogRecord;

use super::args::{DataArgs, LogArgs};

#[derive(Debug, Subcommand)]
pub enum EraseCmd {
    /// Erase a device: appends its erasure to the log (returning once durable) and refuses its
    /// device tokens issued until now. Once projected, nothing it reported before is served, its
    /// rows, counts, objects, quarantined records and dead letters are gone, and no rebuild or
    /// restore brings them back; what it reports after is served as usual (issue it a new
    /// token).
    Device(EraseDeviceArgs),
}

#[derive(Debug, Args)]
pub struct EraseDeviceArgs {
    /// The device.
    cid: String,
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    log: LogArgs,
}

pub async fn run(cmd: EraseCmd) -> anyhow::Result<()> {
    let EraseCmd::Device(a) = cmd;
    let cid = DeviceId::parse(&a.cid)?;
    let received_at = Timestamp::now();
    let report = Report::DeviceErased(DeviceErased { cid: cid.clone() });
    let record = LogRecord::of(&Envelope::new(report, received_at));
    crate::notify::changes::submit_record(record, &a.log.clone().into(), &a.data.data_dir).await?;
    let before = crate::erasure::revoke_tokens(&a.data.data_dir, &cid)?;
    println!("{}", serde_json::json!({"erased": cid, "received_at": received_at, "tokens_issued_before": before}));
    Ok(())
}

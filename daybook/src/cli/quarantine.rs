//! `daybook quarantine`: the records the projector set aside because no store accepts them
//! (docs/data-model.md, Quarantine) — list them, or replay them once an upgrade accepts them.

use std::io::Write;

use clap::{Args, Subcommand};
use schemas::Envelope;
use seams::{ProjectionStore, Quarantined, StoreError};

use super::args::{DataArgs, PolicyArgs, StoreArgs};

#[derive(Debug, Subcommand)]
pub enum QuarantineCmd {
    /// Print the quarantined records as JSON lines: position, device, reason, and the report
    /// when it decodes.
    List(QuarantineArgs),
    /// Apply the quarantined records to the store again, oldest first (after an upgrade that
    /// accepts them). Each one the store takes is released; one it still refuses stays, with
    /// its reason printed.
    Replay(QuarantineArgs),
}

#[derive(Debug, Args)]
pub struct QuarantineArgs {
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    policy: PolicyArgs,
    /// Most records to list or replay.
    #[arg(long, default_value_t = 1000)]
    limit: u32,
}

/// One printed line.
fn to_json(q: &Quarantined) -> serde_json::Value {
    let report = Envelope::decode(&q.value).ok().map(|e| serde_json::to_value(&e).expect("envelopes serialize"));
    serde_json::json!({
        "partition": q.position.partition,
        "offset": q.position.offset,
        "key": q.key,
        "reason": q.reason,
        "quarantined_at": q.quarantined_at,
        "envelope": report,
    })
}

pub async fn run(cmd: QuarantineCmd) -> anyhow::Result<()> {
    let (args, replay) = match cmd {
        QuarantineCmd::List(a) => (a, false),
        QuarantineCmd::Replay(a) => (a, true),
    };
    let store =
        crate::resolve::open_store(&args.store.clone().into(), &args.data.data_dir, args.policy.policy()).await?;
    let records = store.quarantined(args.limit).await?;
    if replay {
        let (replayed, kept) = replay_all(store.as_ref(), &records).await?;
        eprintln!("replayed {replayed} record(s); {kept} still refused");
    } else {
        let mut out = std::io::stdout().lock();
        for q in &records {
            writeln!(out, "{}", to_json(q))?;
        }
        eprintln!("{} quarantined record(s)", records.len());
    }
    Ok(())
}

/// Applies each record on its own, in position order; releases those the store takes.
/// Returns (replayed, still refused). A transient store error stops the replay.
pub async fn replay_all(store: &dyn ProjectionStore, records: &[Quarantined]) -> anyhow::Result<(u64, u64)> {
    let (mut replayed, mut kept) = (0, 0);
    for q in records {
        let outcome = match Envelope::decode(&q.value) {
            Ok(env) => store.apply(&[env]).await.map(drop),
            Err(e) => Err(StoreError::Rejected { index: Some(0), reason: format!("undecodable: {e}") }),
        };
        match outcome {
            Ok(()) => {
                store.release(std::slice::from_ref(q)).await?;
                replayed += 1;
            }
            Err(e) if e.is_permanent() => {
                kept += 1;
                eprintln!("partition {} offset {}: still refused: {e}", q.position.partition, q.position.offset);
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok((replayed, kept))
}

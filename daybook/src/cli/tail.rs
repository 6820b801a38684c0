//! `daybook tail`: the log as JSON lines, for analytics users and operators.

use std::io::Write;
use std::time::Duration;

use clap::Args;
use schemas::Envelope;
use seams::log::commit_positions;

use super::args::{DataArgs, LogArgs};

#[derive(Debug, Args)]
pub struct TailArgs {
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    log: LogArgs,
    /// Start at the beginning of the log (default: only reports appended from now on).
    #[arg(long)]
    from_beginning: bool,
    /// Consumer group; its committed position is resumed and advanced. Without it, tail reads
    /// with a throw-away group and commits nothing.
    #[arg(long)]
    group: Option<String>,
    /// Stop after this many reports.
    #[arg(long)]
    limit: Option<u64>,
}

/// One printed line: where the report sits in the log, then the value as
/// [`schemas::json::envelope_json`] renders it (the same object the golden vectors and the
/// Python decoder hold).
fn to_json(c: &seams::Consumed, env: &Envelope) -> serde_json::Value {
    let mut obj = serde_json::Map::new();
    obj.insert("partition".into(), c.position.partition.into());
    obj.insert("offset".into(), c.position.offset.into());
    obj.extend(schemas::json::envelope_json(c.schema, env));
    serde_json::Value::Object(obj)
}

pub(super) async fn run(a: TailArgs) -> anyhow::Result<()> {
    let log = crate::resolve::open_log(&a.log.clone().into(), &a.data.data_dir).await?.log;
    let committing = a.group.is_some();
    let group = a.group.clone().unwrap_or_else(|| format!("daybook-tail-{}", uuid::Uuid::new_v4().simple()));
    let mut consumer =
        if a.from_beginning || committing { log.consumer(&group).await? } else { log.consumer_at_end(&group).await? };
    let mut printed = 0u64;
    let stdout = std::io::stdout();
    let shutdown = crate::shutdown_signal();
    tokio::pin!(shutdown);
    'outer: loop {
        let batch = tokio::select! {
            b = consumer.poll(500, Duration::from_millis(500)) => b?,
            () = &mut shutdown => break,
        };
        let mut out = stdout.lock();
        for (done, c) in batch.iter().enumerate() {
            let line = match Envelope::decode(&c.value) {
                Ok(env) => to_json(c, &env),
                Err(e) => {
                    serde_json::json!({"partition": c.position.partition, "offset": c.position.offset, "cid": c.key, "type": c.report_kind, "error": e.to_string()})
                }
            };
            writeln!(out, "{line}")?;
            printed += 1;
            if a.limit.is_some_and(|l| printed >= l) {
                out.flush()?;
                if committing {
                    consumer.commit(&commit_positions(&batch[..=done])).await?;
                }
                break 'outer;
            }
        }
        out.flush()?;
        if committing && !batch.is_empty() {
            consumer.commit(&commit_positions(&batch)).await?;
        }
    }
    drop(consumer);
    log.shutdown().await?;
    Ok(())
}

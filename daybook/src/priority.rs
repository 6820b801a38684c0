//! Lowering a thread's CPU priority: background work (shipping, scheduled verifies, the
//! notifier) runs below the services, so under a burst accepting reports comes first.

/// Sets the calling thread's nice value (Linux gives each thread its own, and the thread's
/// I/O priority follows it). A failure is logged and otherwise ignored: the work still runs.
pub(crate) fn lower_this_thread(nice: i32) {
    if let Err(e) = rustix::process::setpriority_process(None, nice) {
        let name = std::thread::current().name().unwrap_or("unnamed").to_owned();
        tracing::debug!(error = %e, thread = %name, nice, "cannot lower the thread's priority");
    }
}

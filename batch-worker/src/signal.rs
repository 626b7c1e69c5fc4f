//! Shutdown: SIGINT and SIGTERM (which AWS Batch sends on termination and Spot interruption)
//! cancel a token that every stage watches, so the upload is aborted and devices are released
//! before the process exits.

use tokio_util::sync::CancellationToken;

/// A token cancelled by the first SIGINT or SIGTERM. Must be called inside a tokio runtime.
pub fn cancel_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing a SIGTERM handler only fails outside a runtime");
    tokio::spawn(async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        tracing::warn!("signal received: aborting");
        cancel.cancel();
    });
    token
}

//! Shutdown: SIGINT and SIGTERM (which AWS Batch sends on termination and Spot interruption)
//! cancel a token that every stage watches, so the upload is aborted and devices are released
//! before the process exits; [`with_grace`] bounds how long that cleanup may take.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// A token cancelled by the first SIGINT or SIGTERM. Must be called inside a tokio runtime; the
/// worker calls it first, before any AWS call, so that no step runs without it.
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

/// Runs `work` to its end, however long; once `cancel` fires, gives it at most `grace` more to
/// clean up, then drops it and returns `None`.
pub async fn with_grace<T>(work: impl Future<Output = T>, cancel: &CancellationToken, grace: Duration) -> Option<T> {
    tokio::pin!(work);
    tokio::select! {
        result = &mut work => Some(result),
        _ = cancel.cancelled() => tokio::time::timeout(grace, work).await.ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn work_runs_to_its_end_without_a_signal() {
        let cancel = CancellationToken::new();
        let work = async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            7
        };
        assert_eq!(with_grace(work, &cancel, Duration::from_secs(1)).await, Some(7));
    }

    #[tokio::test(start_paused = true)]
    async fn work_that_ignores_the_signal_is_dropped_after_the_grace() {
        let cancel = CancellationToken::new();
        cancel.cancel();
        let started = tokio::time::Instant::now();
        assert_eq!(with_grace(std::future::pending::<()>(), &cancel, Duration::from_secs(10)).await, None);
        assert_eq!(started.elapsed(), Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn work_that_stops_on_the_signal_returns_its_result() {
        let cancel = CancellationToken::new();
        let token = cancel.clone();
        let work = async move {
            token.cancelled().await;
            tokio::time::sleep(Duration::from_secs(2)).await;
            "aborted"
        };
        cancel.cancel();
        assert_eq!(with_grace(work, &cancel, Duration::from_secs(10)).await, Some("aborted"));
    }
}

//! Shutdown as one module (STYLE.md, "Streaming"): SIGTERM or Ctrl-C cancels a token that every
//! thread watches; the pipeline then stops taking input and drains, within a deadline; a second signal
//! ends the wait at once.

use std::future::Future;
use std::time::Duration;

use anyhow::Result;
use tokio_util::sync::CancellationToken;

/// What ended the wait of [`until_signal`].
#[derive(Debug, PartialEq, Eq)]
pub enum Ending {
    /// SIGTERM or Ctrl-C: the token is cancelled.
    Signal,
    /// A component ended by itself (an error, or a fatal condition).
    Finished,
}

/// Waits for the first signal, or for `finished`. On a signal the token is cancelled; in both cases
/// every thread watching it stops.
pub async fn until_signal(token: &CancellationToken, finished: impl Future<Output = ()>) -> Result<Ending> {
    let ending = tokio::select! {
        s = signal() => { s?; Ending::Signal }
        () = finished => Ending::Finished,
    };
    token.cancel();
    Ok(ending)
}

/// After the token was cancelled: waits for `drained` up to `deadline`. `None` when the deadline passed
/// or a second signal asked to stop at once.
pub async fn drain<T>(drained: impl Future<Output = T>, deadline: Duration) -> Result<Option<T>> {
    tokio::select! {
        v = drained => Ok(Some(v)),
        s = signal() => {
            s?;
            tracing::warn!(event = "shutdown_forced", "second signal: exiting now");
            Ok(None)
        }
        () = tokio::time::sleep(deadline) => {
            tracing::warn!(event = "shutdown_deadline", seconds = deadline.as_secs(), "drain did not finish in time");
            Ok(None)
        }
    }
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn signal() -> Result<()> {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = term.recv() => Ok(()),
            r = tokio::signal::ctrl_c() => r.map_err(Into::into),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await.map_err(Into::into)
    }
}

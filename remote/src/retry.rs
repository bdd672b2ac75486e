//! Retrying calls that failed with `UNAVAILABLE` or `RESOURCE_EXHAUSTED`: the server is
//! restarting or overloaded, so waiting helps. Exponential backoff from 100 ms, at most
//! [`ATTEMPTS`] tries; an interrupted build stops waiting.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::RemoteError;

/// How many times a transient failure is tried in all.
pub const ATTEMPTS: u32 = 6;

/// The wait before try `attempt` (1-based; the first try does not wait).
pub fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(100u64 << attempt.saturating_sub(1).min(6))
}

/// Run `call` until it succeeds, fails with a non-transient error, or has been tried
/// [`ATTEMPTS`] times.
pub async fn retry<T, F, Fut>(cancel: &AtomicBool, mut call: F) -> Result<T, RemoteError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, RemoteError>>,
{
    let mut attempt = 1;
    loop {
        match call().await {
            Err(e) if e.is_transient() && attempt < ATTEMPTS => {
                tracing::debug!("retrying after a transient failure: {e}");
                tokio::time::sleep(backoff(attempt)).await;
                if cancel.load(Ordering::SeqCst) {
                    return Err(RemoteError::Cancelled);
                }
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// Run `call`, giving up with [`RemoteError::Cancelled`] within 100 ms of `cancel` being set
/// (Ctrl-C in the middle of a large transfer); dropping the call closes its streams.
pub async fn cancellable<T>(
    cancel: &AtomicBool,
    call: impl Future<Output = Result<T, RemoteError>>,
) -> Result<T, RemoteError> {
    tokio::pin!(call);
    loop {
        tokio::select! {
            result = &mut call => return result,
            _ = tokio::time::sleep(Duration::from_millis(100)) => {
                if cancel.load(Ordering::SeqCst) {
                    return Err(RemoteError::Cancelled);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    fn rpc(code: tonic::Code) -> RemoteError {
        RemoteError::Rpc {
            address: "grpc://x:1".into(),
            call: "Execute",
            code,
            message: String::new(),
        }
    }

    #[tokio::test]
    async fn unavailable_is_retried_until_it_succeeds() {
        let calls = AtomicU32::new(0);
        let cancel = AtomicBool::new(false);
        let got = retry(&cancel, || async {
            match calls.fetch_add(1, Ordering::SeqCst) {
                0 => Err(rpc(tonic::Code::Unavailable)),
                1 => Err(rpc(tonic::Code::ResourceExhausted)),
                _ => Ok(7),
            }
        })
        .await
        .unwrap();
        assert_eq!((got, calls.load(Ordering::SeqCst)), (7, 3));
    }

    #[tokio::test]
    async fn other_codes_fail_at_once_and_retries_end() {
        let calls = AtomicU32::new(0);
        let cancel = AtomicBool::new(false);
        let e = retry(&cancel, || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err::<(), _>(rpc(tonic::Code::InvalidArgument))
        })
        .await
        .unwrap_err();
        assert!(!e.is_transient());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        calls.store(0, Ordering::SeqCst);
        let e = retry(&cancel, || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err::<(), _>(rpc(tonic::Code::Unavailable))
        })
        .await
        .unwrap_err();
        assert!(e.is_transient());
        assert_eq!(calls.load(Ordering::SeqCst), ATTEMPTS);
    }

    #[tokio::test]
    async fn a_cancelled_call_stops_waiting() {
        let cancel = AtomicBool::new(true);
        let forever = std::future::pending::<Result<(), RemoteError>>();
        let e = cancellable(&cancel, forever).await.unwrap_err();
        assert!(matches!(e, RemoteError::Cancelled));
        let done = cancellable(&AtomicBool::new(false), async { Ok(5) }).await;
        assert_eq!(done.unwrap(), 5);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert_eq!(backoff(1), Duration::from_millis(100));
        assert_eq!(backoff(2), Duration::from_millis(200));
        assert_eq!(backoff(20), Duration::from_millis(6400));
    }
}

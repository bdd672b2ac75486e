//! Running an action: `Execute` (the server looks in its action cache first), then the
//! operation's stream until it is done (`WaitExecution` when the stream ends early). An
//! interrupted build cancels the operation on the server (`CancelOperation`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bazel_remote_apis::google::longrunning::operations_client::OperationsClient;
use bazel_remote_apis::google::longrunning::{operation, CancelOperationRequest, Operation};

use crate::proto::execution_client::ExecutionClient;
use crate::proto::{
    digest_function, ActionResult, Digest, ExecuteRequest, ExecuteResponse, WaitExecutionRequest,
};
use crate::retry::retry;
use crate::{Remote, RemoteError};

/// How often a waiting execution looks at the cancel flag.
const CANCEL_POLL: Duration = Duration::from_millis(100);

/// What the server answered for an action.
#[derive(Debug, Clone)]
pub struct Execution {
    pub result: ActionResult,
    /// Served from the action cache: nothing ran.
    pub cached: bool,
    /// The server's own words about the execution, if any.
    pub message: String,
}

impl Remote {
    /// Execute the action `action_digest` (its command, input root and the action itself must
    /// be in the CAS) and wait for its result. The exit code is the caller's to judge; a
    /// failure to run at all (a bad input root, a timeout) is an error.
    pub async fn execute(
        &self,
        action_digest: &Digest,
        cancel: &AtomicBool,
    ) -> Result<Execution, RemoteError> {
        let mut name = String::new();
        let mut resumed = false;
        loop {
            let outcome = retry(cancel, || self.follow(action_digest, &name, cancel)).await;
            match outcome {
                Ok(Followed::Done(operation)) => {
                    return self.finish(operation);
                }
                // The stream ended early (a proxy, a restart): ask for the operation again, once.
                Ok(Followed::Ended(last)) if !resumed && !last.is_empty() => {
                    name = last;
                    resumed = true;
                }
                Ok(Followed::Ended(_)) => {
                    return Err(self.rpc_error(
                        "Execute",
                        tonic::Status::unavailable(
                            "the operation stream ended before the action finished",
                        ),
                    ));
                }
                Ok(Followed::Cancelled(last)) => {
                    self.cancel(&last).await;
                    return Err(RemoteError::Cancelled);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// One `Execute` (or `WaitExecution` of `name`) stream, followed to its end.
    async fn follow(
        &self,
        action_digest: &Digest,
        name: &str,
        cancel: &AtomicBool,
    ) -> Result<Followed, RemoteError> {
        let mut client = ExecutionClient::new(self.channel.clone());
        let response = if name.is_empty() {
            client
                .execute(self.request(ExecuteRequest {
                    instance_name: self.options.instance_name.clone(),
                    skip_cache_lookup: false,
                    action_digest: Some(action_digest.clone()),
                    digest_function: digest_function::Value::Sha256 as i32,
                    ..Default::default()
                }))
                .await
                .map_err(|s| self.rpc_error("Execute", s))?
        } else {
            client
                .wait_execution(self.request(WaitExecutionRequest {
                    name: name.to_string(),
                }))
                .await
                .map_err(|s| self.rpc_error("WaitExecution", s))?
        };
        let mut stream = response.into_inner();
        let mut last = name.to_string();
        loop {
            let message = tokio::select! {
                m = stream.message() => m.map_err(|s| self.rpc_error("Execute", s))?,
                _ = tokio::time::sleep(CANCEL_POLL) => {
                    if cancel.load(Ordering::SeqCst) {
                        return Ok(Followed::Cancelled(last));
                    }
                    continue;
                }
            };
            let Some(operation) = message else {
                return Ok(Followed::Ended(last));
            };
            if !operation.name.is_empty() {
                last = operation.name.clone();
            }
            if operation.done {
                return Ok(Followed::Done(operation));
            }
        }
    }

    fn finish(&self, operation: Operation) -> Result<Execution, RemoteError> {
        let any = match operation.result {
            Some(operation::Result::Response(any)) => any,
            Some(operation::Result::Error(status)) => {
                return Err(self.rpc_error(
                    "Execute",
                    tonic::Status::new(tonic::Code::from(status.code), status.message),
                ))
            }
            None => {
                return Err(self.rpc_error(
                    "Execute",
                    tonic::Status::internal("the finished operation has no result"),
                ))
            }
        };
        let response: ExecuteResponse =
            prost::Message::decode(any.value.as_slice()).map_err(|e| RemoteError::Decode {
                address: self.address().to_string(),
                what: "the ExecuteResponse",
                reason: e.to_string(),
            })?;
        let status = response.status.unwrap_or_default();
        if status.code != 0 {
            return Err(self.rpc_error(
                "Execute",
                tonic::Status::new(tonic::Code::from(status.code), status.message),
            ));
        }
        let Some(result) = response.result else {
            return Err(self.rpc_error(
                "Execute",
                tonic::Status::internal("the response has no ActionResult"),
            ));
        };
        let counter = if response.cached_result {
            &self.counters.cached_actions
        } else {
            &self.counters.executed_actions
        };
        counter.fetch_add(1, Ordering::Relaxed);
        Ok(Execution {
            result,
            cached: response.cached_result,
            message: response.message,
        })
    }

    /// Ask the server to stop an operation; best effort (the build is ending anyway).
    async fn cancel(&self, name: &str) {
        if name.is_empty() {
            return;
        }
        let mut client = OperationsClient::new(self.channel.clone());
        let mut request = self.request(CancelOperationRequest {
            name: name.to_string(),
        });
        request.set_timeout(Duration::from_secs(5));
        if let Err(e) = client.cancel_operation(request).await {
            tracing::debug!("cancelling remote operation {name}: {e}");
        }
    }
}

/// How one operation stream ended.
enum Followed {
    Done(Operation),
    /// The stream closed first; the operation's name, if it was told.
    Ended(String),
    /// The build was interrupted.
    Cancelled(String),
}

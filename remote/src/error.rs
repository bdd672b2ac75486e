//! The errors of the REAPI client: each names the endpoint, and the call or digest involved.

/// A failure talking to a remote executor.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// `--remote-executor` is not a `grpc://` or `grpcs://` address.
    #[error("bad remote executor address `{value}`: {reason}")]
    BadEndpoint { value: String, reason: String },
    /// A `--remote-header` that gRPC metadata cannot carry.
    #[error("bad remote header `{name}`: {reason}")]
    BadHeader { name: String, reason: String },
    /// The server could not be reached at all.
    #[error("cannot reach the remote executor at {address}: {reason}")]
    Unreachable { address: String, reason: String },
    /// A call failed with a gRPC status (after retries, for the retried codes).
    #[error("remote executor at {address}: {call} failed: {code:?}: {message}")]
    Rpc {
        address: String,
        call: &'static str,
        code: tonic::Code,
        message: String,
    },
    /// A blob the server was asked for does not exist there.
    #[error("remote executor at {address}: blob {digest} is missing from its CAS")]
    BlobMissing { address: String, digest: String },
    /// A blob the server sent does not hash to its digest.
    #[error("remote executor at {address}: blob {digest} does not match its digest (got {got})")]
    DigestMismatch {
        address: String,
        digest: String,
        got: String,
    },
    /// A message from the server could not be decoded.
    #[error("remote executor at {address}: cannot decode {what}: {reason}")]
    Decode {
        address: String,
        what: &'static str,
        reason: String,
    },
    /// Reading a local file to upload, or writing a downloaded one.
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The build was interrupted; the operation in flight was cancelled on the server.
    #[error("cancelled")]
    Cancelled,
}

impl RemoteError {
    /// Whether a retry may succeed (the server is overloaded or restarting).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            RemoteError::Rpc {
                code: tonic::Code::Unavailable | tonic::Code::ResourceExhausted,
                ..
            }
        )
    }
}

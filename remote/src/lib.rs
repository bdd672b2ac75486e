//! A client of the Remote Execution API v2 (REAPI): the protocol Bazel, Buck2, Pants and
//! BuildStream use to run actions on Buildbarn, BuildGrid, BuildBuddy, NativeLink or
//! `buildbox-casd`.
//!
//! It knows blobs, digests and actions, nothing of layers or Kubefiles: the engine builds the
//! input tree and reads the output tree (`engine/src/executor/remote.rs`). The main type is
//! [`Remote`], one gRPC channel to one endpoint shared by every RUN of a build:
//!
//! - [`Remote::find_missing`], [`Remote::upload`] (small blobs batched, large ones through
//!   ByteStream, several transfers at once), [`Remote::read_blob`] and
//!   [`Remote::download_to_files`] — the content-addressable storage, every read verified
//!   against its digest;
//! - [`Remote::execute`] — run an action (the server consults its action cache first) and wait
//!   for its result, cancellable;
//! - [`Counters`] — bytes and blobs moved, actions executed or served from the cache.
//!
//! `UNAVAILABLE` and `RESOURCE_EXHAUSTED` are retried with exponential backoff
//! ([`retry`]); every other failure is a [`RemoteError`] naming the endpoint and the call.
//!
//! ```no_run
//! # async fn f() -> Result<(), seal_remote::RemoteError> {
//! use seal_remote::{digest, Endpoint, Remote, RemoteOptions};
//! let options = RemoteOptions::new(Endpoint::parse("grpc://127.0.0.1:8980")?);
//! let remote = Remote::connect(options).await?;
//! let missing = remote.find_missing(vec![digest::of_bytes(b"hello")]).await?;
//! # let _ = missing; Ok(()) }
//! ```

pub mod cas;
mod client;
pub mod digest;
mod endpoint;
mod error;
pub mod execute;
pub mod retry;

pub use bazel_remote_apis::build::bazel::remote::execution::v2 as proto;
/// Protobuf well-known types the REAPI messages use (`UInt32Value` of `unix_mode`).
pub use bazel_remote_apis::google::protobuf;
pub use cas::BlobSource;
pub use client::{Counters, Remote, RemoteOptions};
pub use endpoint::Endpoint;
pub use error::RemoteError;
pub use execute::Execution;

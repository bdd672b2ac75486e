//! The engine's error type: what failed while executing an op.

use std::path::{Path, PathBuf};

use seal_store::StoreError;

/// Why an op (or the export) failed.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("exporting the cache to {location} failed: {reason} (add ignore-error=true to --cache-to to only warn)")]
    CacheExport { location: String, reason: String },
    #[error("COPY source `{source_path}` not found in the build context")]
    SourceNotFound { source_path: String },
    #[error(
        "COPY source `{source_path}` is excluded by the ignore file (.sealignore/.dockerignore)"
    )]
    SourceExcluded { source_path: String },
    #[error("COPY source `{source_path}` is outside the build context: {reason}")]
    SourceOutsideContext { source_path: String, reason: String },
    #[error("COPY --from source `{source_path}` is not in that stage's (or image's) filesystem")]
    SourceNotInStage { source_path: String },
    #[error("COPY source pattern `{pattern}` matches no file in the build context")]
    GlobNoMatch { pattern: String },
    #[error("invalid glob `{pattern}`: {reason}")]
    BadGlob { pattern: String, reason: String },
    #[error("invalid ignore-file pattern `{pattern}`: {reason}")]
    BadIgnorePattern { pattern: String, reason: String },
    #[error("`{path}` is a socket, fifo or device and cannot be copied")]
    UnsupportedFileType { path: String },
    #[error("file name is not UTF-8: {}", path.display())]
    NonUtf8Path { path: PathBuf },
    #[error("{} changed while it was being copied; run the build again", path.display())]
    FileChanged { path: PathBuf },
    #[error("{action} the extended attribute `{name}` of {}: {source}", path.display())]
    Xattr {
        action: &'static str,
        name: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("refusing layer entry `{path}`: {reason}")]
    UnsafeLayer { path: String, reason: String },
    #[error("destination `{dest}` cannot be resolved in the image below: {reason}")]
    DestinationUnresolvable { dest: String, reason: String },
    #[error("destination `{dest}` leads through a symlink of the image below to `{path}`, where image collection looks; write that path as the destination")]
    DestinationIntoCollection { dest: String, path: String },
    #[error("refusing entry `{entry}` of archive `{archive}`: {reason}")]
    UnsafeArchive {
        archive: String,
        entry: String,
        reason: String,
    },
    #[error("cannot unpack archive `{archive}`: {reason}")]
    BadArchive { archive: String, reason: String },
    #[error("downloading {url}: {reason}")]
    Download { url: String, reason: String },
    #[error("checksum mismatch for {url}: expected {expected}, got {actual}")]
    ChecksumMismatch {
        url: String,
        expected: String,
        actual: String,
    },
    #[error("the command exited with code {code}{}{}", if tail.is_empty() { String::new() } else { format!("; its last output:\n{tail}") }, hint.as_deref().map(|h| format!("\nhint: {h}")).unwrap_or_default())]
    RunFailed {
        code: i32,
        tail: String,
        hint: Option<String>,
    },
    /// A remote RUN could not be run, or its result could not be fetched.
    #[error(transparent)]
    Remote(#[from] seal_remote::RemoteError),
    /// A cloud RUN's host could not be reached or used (`--cloud-host`).
    #[error("cloud host {host}: {reason}")]
    Cloud { host: String, reason: String },
    #[error("RUN needs root: {reason}")]
    NeedsRoot { reason: String },
    #[error("could not start {what}: {reason}")]
    Spawn { what: String, reason: String },
    #[error("cannot tell how to launch app `{name}`: {reason}; add `APPCMDS {name} [...]`")]
    AppUndetectable { name: String, reason: String },
    #[error("app `{name}`: {reason}")]
    AppLayout { name: String, reason: String },
    #[error("image collection failed:\n  {}", .0.join("\n  "))]
    Collect(Vec<String>),
    #[error("cannot pull {reference}: {reason}")]
    Pull { reference: String, reason: String },
    #[error("build cancelled")]
    Cancelled,
    #[error("internal error: {0}")]
    Internal(String),
}

impl EngineError {
    /// An IO error while doing `what` on `path`.
    pub fn io(what: &'static str, path: &Path, source: std::io::Error) -> EngineError {
        EngineError::Io {
            what,
            path: path.to_path_buf(),
            source,
        }
    }
}

//! The solver-node implementation of each LLB op, one op per file; [`crate::vertex`] holds the
//! single `match` that dispatches to them.

pub mod collect;
pub mod exec;
pub mod file;
pub mod merge;
mod network;
pub mod registry_layer;
pub mod source;

use std::path::PathBuf;
use std::sync::Arc;

use seal_store::registry::Client;
use seal_store::Store;

/// What every op execution may use.
pub struct ExecEnv {
    pub store: Arc<Store>,
    pub context_dir: PathBuf,
    /// How image collection reaches registries: one client for the build, so the
    /// per-registry transfer limit and tokens are shared by every worker.
    pub registry: Client,
    /// `--pull never`: image collection asks no registry.
    pub pull_never: bool,
    /// `--remote-executor`: runs RUN steps whose mode is `remote`.
    pub remote: Option<Arc<crate::executor::remote::RemoteExecutor>>,
    /// `--cloud-host`: runs RUN steps whose mode is `cloud`.
    pub cloud: Option<Arc<crate::executor::cloud::CloudExecutor>>,
}

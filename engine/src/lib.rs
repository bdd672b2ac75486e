//! seal's engine: the LLB vocabulary and the solver-node implementation of each op.
//!
//! - [`llb`]: ops, digests and the `Definition` a frontend produces (no IO).
//! - [`vertex`]: an LLB node as a solver vertex; the one `match` dispatching to [`ops`].
//! - [`ops`]: one file per op: `source` (scratch, store image, build context), `file` (COPY),
//!   `exec` (RUN, a later issue), `merge`.
//! - [`context`] and [`ignore`]: resolving, walking and hashing COPY sources.
//! - [`layer`]: deterministic tar + compression into blobs.
//! - [`export`]: OCI config and manifest with Sealer's metadata.
//! - [`build`]: the entry point the CLI calls.
//!
//! What it deliberately does not do: parse Kubefiles (`frontend`), schedule (`solver`), own
//! on-disk formats (`store`), print or pick exit codes (`cli`).

pub mod build;
pub mod cache;
pub mod context;
mod error;
pub mod export;
pub mod ignore;
pub mod image_spec;
pub mod layer;
pub mod llb;
pub mod ops;
pub mod output;
pub mod paths;
pub mod vertex;

pub use build::{build, validate_sources, BuildError, BuildReport, BuildRequest};
pub use error::EngineError;
pub use image_spec::{HistoryStep, ImageSpec, Platform};

//! seal's engine: the LLB vocabulary and the solver-node implementation of each op.
//!
//! - [`llb`] (the `seal-llb` crate, re-exported): ops, digests, the `Definition` and
//!   `ImageSpec` a frontend produces (no IO).
//! - [`vertex`]: an LLB node as a solver vertex; the one `match` dispatching to [`ops`].
//! - [`ops`]: one file per op: `source` (scratch, store image, build context), `file` (COPY,
//!   ADD, APP), `exec` (RUN), `merge`, `collect` and `registry_layer` (image collection), with
//!   `network` (their registry work, a few requests at a time).
//!
//! Folders group the modules by concern: [`layers`] (write, unpack, diff, archives, xattrs,
//! path indexes), [`sources`] (the build context, ignore files, ADD's URLs and entries),
//! [`image`] (export, apps), [`collect`] (image collection), [`ops`] and [`executor`]; each
//! module is re-exported at the crate root under its own name.
//!
//! - [`executor`]: who runs RUN (`lite`: host tools; `container`: runc), [`unpack`] (layers into
//!   overlay snapshots, safely) and [`diff`] (an overlay upper dir into layer entries).
//! - [`context`] and [`ignore`]: resolving, walking and hashing COPY sources.
//! - [`layer`]: deterministic tar + compression into blobs; [`xattrs`]: which extended
//!   attributes a layer keeps, and how they are read, set and spelled in a tar;
//!   [`layer_index`]: each layer's path index in the store, and a COPY destination's
//!   resolution in the rootfs below; [`phase_times`]: where a layer write's time goes,
//!   for `seal build --trace` (every phase of a step is a `tracing` span of target
//!   `seal_trace`, disabled and free unless the CLI records a trace).
//! - [`export`]: OCI config and manifest with Sealer's metadata.
//! - [`add`]: ADD's layer entries: COPY rules plus [`archive`] (local tarballs, unpacked
//!   safely) and [`download`] (`http(s)://` sources, verified by `--checksum`).
//! - [`apps`]: APP/CNI/CSI type detection and Sealer's `applications` metadata.
//! - [`collect`]: the container images a context, rootfs, chart or manifest directory needs
//!   (`seal scan`): PodSpec images from YAML, Helm charts rendered without Helm, imageList.
//!   During a build, `ops::collect` resolves what the final rootfs needs and
//!   `ops::registry_layer` pulls it into a `registry/` layer ([`registry_layout`]).
//! - [`explain`]: what each build records of its steps per image name, and why a step ran
//!   (`seal build --explain`).
//! - [`build`]: the entry point the CLI calls.
//!
//! What it deliberately does not do: parse Kubefiles (`frontend`), schedule (`solver`), own
//! on-disk formats (`store`), print or pick exit codes (`cli`).

pub mod build;
pub mod cache;
pub mod collect;
mod error;
pub mod executor;
pub mod explain;
pub mod image;
pub mod layers;
pub mod ops;
pub mod output;
pub mod remote_cache;
pub mod sources;
pub mod vertex;

/// The LLB vocabulary: its own crate, `seal-llb`.
pub use seal_llb as llb;
/// The image-config side of a build (the `seal-llb` crate's).
pub use seal_llb::image_spec;
/// Kubefile path helpers (the `seal-llb` crate's).
pub use seal_llb::paths;
// The modules of each group, at the paths the rest of seal names them by.
pub use collect::registry_layout;
pub use image::{apps, export};
pub use layers::{archive, diff, layer, layer_index, phase_times, unpack, xattrs};
pub use sources::{add, context, download, ignore};

pub use apps::AppSpec;
pub use build::{build, validate_sources, BuildError, BuildReport, BuildRequest};
pub use error::EngineError;
pub use image_spec::{HistoryStep, ImageSpec, Platform};

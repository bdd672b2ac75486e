//! What an op yields: a context selection, or a chain of layers (a rootfs).

use std::sync::Arc;

use seal_solver::{ContentId, Id};
use seal_store::Digest;
use serde::{Deserialize, Serialize};

use crate::context::ContextSelection;
use crate::layer::Layer;
use crate::llb::encode::Encoder;

/// The result of one op.
#[derive(Debug, Clone)]
pub enum Output {
    /// A Local source: the selected context content.
    Context(Arc<ContextSelection>),
    /// A rootfs or a diff: layers bottom to top.
    Layers(LayerChain),
    /// The container images a rootfs needs, resolved (a [`crate::llb::CollectOp`]).
    Images(Arc<CollectedImages>),
}

/// What image collection found and resolved for one rootfs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CollectedImages {
    /// `OS/ARCH[/VARIANT]` the images were resolved for.
    pub platform: String,
    /// Sorted by reference, unique.
    pub images: Vec<CollectedImage>,
    /// Blobs the rootfs's `registry/` already holds.
    pub present: Vec<Digest>,
    /// Findings worth telling that did not stop the build (a manifest that is not YAML).
    pub warnings: Vec<String>,
}

/// One collected image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectedImage {
    /// The normalised reference (`docker.io/library/nginx:1.25`).
    pub reference: String,
    /// The app (`application/apps/<name>/`) it was found in, if any.
    pub app: Option<String>,
    /// What the reference names now: an index or a manifest.
    pub top: Digest,
    /// The manifest for the platform.
    pub manifest: Digest,
}

/// Layers bottom to top, plus the config of the base image they started from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerChain {
    pub layers: Vec<Layer>,
    /// The config blob of the FROM image, when the chain starts with one.
    pub base_config: Option<Digest>,
}

impl LayerChain {
    /// The chain's content id: what a later op's cache key reads of it.
    pub fn content_id(&self) -> Id {
        // The blob digest too, not only the diffID: records of later ops (a cached merge)
        // name blobs, so a zstd chain and a gzip chain of the same files must differ.
        let mut e = Encoder::new("seal.layers.v2");
        e.opt(self.base_config.as_ref(), |e, d| {
            e.str(&d.to_string());
        });
        e.u64(self.layers.len() as u64);
        for layer in &self.layers {
            e.str(&layer.diff_id.to_string())
                .str(&layer.digest.to_string());
        }
        e.finish()
    }
}

impl ContentId for Output {
    fn content_id(&self) -> Id {
        match self {
            Output::Context(sel) => sel.content_id,
            Output::Layers(chain) => chain.content_id(),
            Output::Images(collected) => {
                // Warnings and apps do not change the registry layer.
                let mut e = Encoder::new("seal.images.v1");
                e.str(&collected.platform);
                e.u64(collected.images.len() as u64);
                for image in &collected.images {
                    e.str(&image.reference)
                        .str(&image.top.to_string())
                        .str(&image.manifest.to_string());
                }
                e.u64(collected.present.len() as u64);
                for d in &collected.present {
                    e.str(&d.to_string());
                }
                e.finish()
            }
        }
    }
}

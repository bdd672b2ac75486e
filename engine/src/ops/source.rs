//! SourceOp: scratch, an image from the local store, or the build context.

use std::path::Path;
use std::sync::Arc;

use seal_store::{Digest, Store};

use crate::context;
use crate::ignore::IgnoreMatcher;
use crate::layer::Layer;
use crate::llb::SourceOp;
use crate::output::{LayerChain, Output};
use crate::EngineError;

/// Produce the source's output.
pub fn exec(op: &SourceOp, store: &Store, context_dir: &Path) -> Result<Output, EngineError> {
    match op {
        SourceOp::Scratch => Ok(Output::Layers(LayerChain::default())),
        SourceOp::Image {
            reference,
            manifest,
        } => image(store, reference, manifest),
        SourceOp::Local { include, exclude } => {
            let ignore = IgnoreMatcher::new(exclude)?;
            let selection = context::scan(store, context_dir, include, &ignore)?;
            Ok(Output::Context(Arc::new(selection)))
        }
    }
}

/// The layers of a stored image, pinned by manifest digest.
fn image(store: &Store, reference: &str, manifest: &str) -> Result<Output, EngineError> {
    let digest: Digest = manifest.parse().map_err(|_| {
        EngineError::Internal(format!(
            "image {reference} is pinned to an invalid digest {manifest}"
        ))
    })?;
    let manifest = store.manifest(&digest)?;
    let config = store.config(&manifest.config.digest)?;
    if config.rootfs.diff_ids.len() != manifest.layers.len() {
        return Err(EngineError::Store(seal_store::StoreError::Corrupt(
            format!(
                "image {reference}: {} layers but {} diff_ids",
                manifest.layers.len(),
                config.rootfs.diff_ids.len()
            ),
        )));
    }
    let layers = manifest
        .layers
        .iter()
        .zip(&config.rootfs.diff_ids)
        .map(|(desc, diff_id)| Layer {
            diff_id: diff_id.clone(),
            digest: desc.digest.clone(),
            size: desc.size,
            media_type: desc.media_type.clone(),
            collect_free: false,
        })
        .collect();
    Ok(Output::Layers(LayerChain {
        layers,
        base_config: Some(manifest.config.digest),
    }))
}

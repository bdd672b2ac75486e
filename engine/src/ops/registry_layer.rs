//! RegistryLayerOp: the images a [`crate::llb::CollectOp`] resolved, pulled into the store
//! (blobs it already has are not fetched again) and written as one layer in the distribution
//! registry's layout ([`crate::registry_layout`]). Cached by the resolved list, so a rebuild
//! in which no image changed fetches nothing and writes nothing.
//!
//! Images are pulled by a few threads at once, each image's blobs in order; the layer is
//! written once every blob is in the store.

use std::sync::atomic::{AtomicU64, Ordering};

use seal_solver::ExecContext;
use seal_store::oci::Manifest;
use seal_store::registry::TransferEvent;
use seal_store::{human_size, Digest, Reference, StoreError};

use crate::layer::write_layer;
use crate::llb::RegistryLayerOp;
use crate::ops::network;
use crate::ops::ExecEnv;
use crate::output::{CollectedImage, LayerChain, Output};
use crate::registry_layout::{self, LaidOutImage};
use crate::EngineError;

/// Images pulled at once.
const PULL_WORKERS: usize = 3;

/// One collected image with its parsed manifest.
struct Planned<'a> {
    image: &'a CollectedImage,
    reference: Reference,
    manifest: Manifest,
}

/// Pull what the store lacks and write the layer (no layer at all when nothing was collected).
pub fn exec(
    op: &RegistryLayerOp,
    inputs: &[Output],
    env: &ExecEnv,
    cx: &ExecContext,
) -> Result<Output, EngineError> {
    let Some(Output::Images(collected)) = inputs.first() else {
        return Err(EngineError::Internal(
            "the registry layer's input is not a list of images".into(),
        ));
    };
    if collected.images.is_empty() {
        return Ok(Output::Layers(LayerChain::default()));
    }
    let store = &env.store;
    let mut planned = Vec::new();
    for image in &collected.images {
        let reference =
            Reference::parse_container_image(&image.reference).map_err(|e| EngineError::Pull {
                reference: image.reference.clone(),
                reason: e.to_string(),
            })?;
        let manifest = store.manifest(&image.manifest)?;
        planned.push(Planned {
            image,
            reference,
            manifest,
        });
    }
    pull_missing(&planned, env, cx)?;
    let size = |d: &Digest| -> Result<u64, EngineError> {
        store
            .blobs()
            .size(d)
            .ok_or_else(|| StoreError::MissingBlob(d.clone()).into())
    };
    let mut laid_out = Vec::new();
    for p in &planned {
        let child = if p.image.manifest == p.image.top {
            None
        } else {
            Some((&p.image.manifest, size(&p.image.manifest)?))
        };
        laid_out.push(LaidOutImage {
            reference: &p.reference,
            top: (&p.image.top, size(&p.image.top)?),
            child,
            blobs: std::iter::once(&p.manifest.config)
                .chain(&p.manifest.layers)
                .map(|d| (&d.digest, d.size))
                .collect(),
        });
    }
    let present = collected.present.iter().cloned().collect();
    let entries = registry_layout::entries(&laid_out, &present, &|d| store.blobs().path(d));
    cx.log(format!(
        "writing registry/ with {} images",
        collected.images.len()
    ));
    let layer = write_layer(store.blobs(), &entries, op.format, &cx.cancel_flag())?;
    Ok(Output::Layers(LayerChain {
        layers: vec![layer],
        base_config: None,
    }))
}

/// Fetch every blob of `planned` the store lacks, a few images at a time (the client bounds
/// transfers per registry), reporting bytes as blobs complete.
fn pull_missing(
    planned: &[Planned<'_>],
    env: &ExecEnv,
    cx: &ExecContext,
) -> Result<(), EngineError> {
    let blobs = env.store.blobs();
    let missing = |p: &Planned<'_>| -> u64 {
        std::iter::once(&p.manifest.config)
            .chain(&p.manifest.layers)
            .filter(|d| !blobs.contains(&d.digest))
            .map(|d| d.size)
            .sum()
    };
    let total: u64 = planned.iter().map(missing).sum();
    if total == 0 {
        return Ok(());
    }
    let done = AtomicU64::new(0);
    let progress = |event: TransferEvent| {
        if let TransferEvent::Done { total: size, .. } = event {
            let now = done.fetch_add(size, Ordering::SeqCst) + size;
            cx.bytes(now, Some(total));
        }
    };
    network::map_all(planned, PULL_WORKERS, cx, |p| {
        let size = missing(p);
        if size == 0 {
            return Ok(());
        }
        cx.log(format!(
            "pulling {} ({})",
            p.image.reference,
            human_size(size)
        ));
        let descriptors: Vec<_> = std::iter::once(&p.manifest.config)
            .chain(&p.manifest.layers)
            .cloned()
            .collect();
        env.registry
            .fetch_blobs(&env.store, &p.reference, &descriptors, &progress)
            .map(|_| ())
            .map_err(|e| EngineError::Pull {
                reference: p.image.reference.clone(),
                reason: e.to_string(),
            })
    })?;
    Ok(())
}

//! `seal inspect`: an image as JSON — manifest digest first, then config, layers, history.

use std::path::Path;

use anyhow::Context;

use crate::args::InspectArgs;
use crate::commands::{find_image, open_existing_store};
use crate::failure::Failure;
use crate::output::outln;

/// Run `seal inspect`.
pub fn run(root: &Path, args: InspectArgs) -> Result<(), Failure> {
    let store = open_existing_store(root)?;
    let (name, record) = find_image(&store, &args.name)?;
    let manifest = store
        .manifest(&record.manifest)
        .context("reading the manifest")?;
    let config = store
        .config(&manifest.config.digest)
        .context("reading the config")?;
    let layers: Vec<serde_json::Value> = manifest
        .layers
        .iter()
        .zip(config.rootfs.diff_ids.iter())
        .map(|(l, diff_id)| {
            // A layer a cache import named and nothing has downloaded yet.
            let remote = store.remote_blob(&l.digest).ok().flatten().filter(|_| !store.blobs().contains(&l.digest));
            let mut layer = serde_json::json!({ "digest": l.digest, "diffID": diff_id, "size": l.size, "mediaType": l.media_type });
            if let Some(remote) = remote {
                layer["remote"] = remote.source.to_string().into();
            }
            layer
        })
        .collect();
    let out = serde_json::json!({
        "digest": record.manifest,
        "name": name,
        "config": config,
        "configDigest": manifest.config.digest,
        "layers": layers,
        "history": config.history,
        "annotations": manifest.annotations,
    });
    outln!(
        "{}",
        serde_json::to_string_pretty(&out).context("encoding JSON")?
    )?;
    Ok(())
}

//! `seal inspect`: an image as JSON — manifest digest first, then config, layers, history;
//! a multi-platform image as its index digest and one such object per platform.

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
    let entries = store
        .image_manifests(&record.manifest)
        .context("reading the manifest")?;
    let out = match entries.as_slice() {
        [one] if one.platform.is_none() => image_json(&store, &one.digest)?,
        _ => {
            let mut platforms = Vec::new();
            for entry in &entries {
                let mut image = image_json(&store, &entry.digest)?;
                image["platform"] =
                    serde_json::json!(entry.platform.as_ref().map(|p| p.to_string()));
                platforms.push(image);
            }
            serde_json::json!({ "digest": record.manifest, "mediaType": seal_store::oci::MEDIA_TYPE_INDEX, "platforms": platforms })
        }
    };
    let mut out = out;
    out["name"] = serde_json::json!(name);
    outln!(
        "{}",
        serde_json::to_string_pretty(&out).context("encoding JSON")?
    )?;
    Ok(())
}

/// One image manifest as JSON: digest, config, layers, history, annotations.
fn image_json(
    store: &seal_store::Store,
    digest: &seal_store::Digest,
) -> anyhow::Result<serde_json::Value> {
    let manifest = store.manifest(digest).context("reading the manifest")?;
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
    Ok(serde_json::json!({
        "digest": digest,
        "config": config,
        "configDigest": manifest.config.digest,
        "layers": layers,
        "history": config.history,
        "annotations": manifest.annotations,
    }))
}

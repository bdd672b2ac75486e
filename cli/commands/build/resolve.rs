//! FROM and `COPY --from` images for `seal build`: found in the store for the stage's platform
//! (an index's manifest of it), or pulled per `--pull` — every platform of the build at once,
//! so the name holds an index of all of them.

use std::cell::RefCell;
use std::path::Path;
use std::sync::Arc;

use seal_engine::Platform;
use seal_frontend::lower::ResolvedImage;
use seal_store::registry::Client;
use seal_store::{Reference, RegistryOptions, Store};

use crate::args::PullPolicy;
use crate::commands::registry::{Direction, TransferView};
use crate::commands::{open_store, store_platform};
use crate::failure::chain_text;
use crate::progress::Style;

pub(super) fn resolve_image(
    root: &Path,
    slot: &RefCell<Option<Arc<Store>>>,
    image: &str,
    pull: PullPolicy,
    registries: &RegistryOptions,
    style: Style,
    wanted: Wanted<'_>,
) -> Result<ResolvedImage, String> {
    let platform = wanted.platform;
    let reference = Reference::parse_cluster_image(image).map_err(|e| e.to_string())?;
    let exists = root.join("db").exists() || slot.borrow().is_some();
    // Known: stored, and holding this platform (a stored index of other platforms, or another
    // platform's image, is pulled again for every platform of the build).
    // Stored (with the platforms it has), and holding this one.
    let (stored, known) = if exists {
        let store = open_slot(root, slot)?;
        match store.image(&reference).map_err(|e| e.to_string())? {
            Some(r) => (
                Some(stored_platforms(&store, &r.manifest)),
                holds_platform(&store, &r.manifest, platform),
            ),
            None => (None, false),
        }
    } else {
        (None, false)
    };
    let must_pull = match pull {
        PullPolicy::Always => true,
        PullPolicy::Missing => !known,
        PullPolicy::Never => false,
    };
    if must_pull {
        let client = Client::new(registries.clone());
        let mut platforms: Vec<seal_store::Platform> =
            wanted.all.iter().map(store_platform).collect();
        if !wanted.all.contains(platform) {
            platforms.push(store_platform(platform));
        }
        // The manifest first: a name no registry has fails before the store is created.
        let resolved = client.resolve(&reference, &store_platform(platform));
        if let Err(e) = &resolved {
            return Err(match &stored {
                Some(has) if !known => format!(
                    "image {reference} in the local store is for {has}, not {platform}, and \
                     pulling {platform}'s failed: {e}"
                ),
                Some(_) => format!("pulling {reference}: {e}"),
                None => {
                    format!(
                        "image {reference} is not in the local store, and pulling it failed: {e}"
                    )
                }
            });
        }
        let store = open_slot(root, slot)?;
        // A FROM pull shows its transfers the way the build shows its steps (JSON stays JSON).
        let view = TransferView::new(style, Direction::Pull);
        view.note(&format!("pulling {reference}"));
        // With a remote cache (`lazy`), one platform's FROM stores its manifest and config
        // now and its layers when a step needs them; several platforms pull whole.
        let pulled = match resolved {
            Ok(remote) if wanted.lazy && platforms.len() == 1 => {
                client.pull_lazy(&store, &reference, remote, &|e| view.handle(e))
            }
            _ => client.pull_platforms(&store, &reference, &platforms, &|e| view.handle(e)),
        };
        view.finish();
        pulled.map_err(|e| format!("pulling {reference}: {e}"))?;
    } else if stored.is_none() {
        return Err(if exists {
            format!(
                "image {reference} is not in the local store and --pull never forbids pulling it"
            )
        } else {
            format!(
                "image {reference} is not in the local store (the store at {} is empty) and --pull never forbids pulling it",
                root.display()
            )
        });
    }
    let store = open_slot(root, slot)?;
    let record = store
        .image(&reference)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("image {reference} is not in the local store"))?;
    // A multi-platform image: the manifest of the platform being built.
    let digest = store
        .manifest_for(&record.manifest, &store_platform(platform))
        .map_err(|e| e.to_string())?
        .ok_or_else(|| {
            let has: Vec<String> = store
                .image_manifests(&record.manifest)
                .unwrap_or_default()
                .iter()
                .filter_map(|m| m.platform.as_ref().map(|p| p.to_string()))
                .collect();
            format!(
                "image {reference} has no image for platform {platform} (it has {})",
                has.join(", ")
            )
        })?;
    let manifest = store.manifest(&digest).map_err(|e| e.to_string())?;
    let config = store
        .config(&manifest.config.digest)
        .map_err(|e| e.to_string())?;
    let env = config
        .config
        .env
        .iter()
        .filter_map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect();
    Ok(ResolvedImage {
        reference: reference.to_string(),
        manifest: digest.to_string(),
        env,
        platform: Some(seal_engine::Platform {
            os: config.os.clone(),
            architecture: config.architecture.clone(),
            variant: None,
        }),
    })
}

/// The platform a FROM resolves for, and every platform of the build (a pull fetches them all
/// at once, so the name holds an index of all of them).
#[derive(Clone, Copy)]
pub(super) struct Wanted<'a> {
    pub platform: &'a Platform,
    pub all: &'a [Platform],
    /// With a remote cache: store one platform's manifest and config now, its layers when a
    /// step needs them.
    pub lazy: bool,
}

/// Whether the stored image or index at `digest` has an image of `platform` (an image whose
/// config says another platform has not).
fn holds_platform(store: &Store, digest: &seal_store::Digest, platform: &Platform) -> bool {
    let Ok(Some(manifest)) = store.manifest_for(digest, &store_platform(platform)) else {
        return false;
    };
    if &manifest != digest {
        return true;
    }
    let config = store
        .manifest(&manifest)
        .and_then(|m| store.config(&m.config.digest));
    config.is_ok_and(|c| c.os == platform.os && c.architecture == platform.architecture)
}

/// The platforms of the stored image or index at `digest`, for messages (`linux/amd64`,
/// `linux/amd64, linux/arm64`).
fn stored_platforms(store: &Store, digest: &seal_store::Digest) -> String {
    let entries = store.image_manifests(digest).unwrap_or_default();
    let named: Vec<String> = entries
        .iter()
        .filter_map(|m| m.platform.as_ref().map(|p| p.to_string()))
        .collect();
    if !named.is_empty() {
        return named.join(", ");
    }
    let config = store
        .manifest(digest)
        .and_then(|m| store.config(&m.config.digest));
    match config {
        Ok(c) => format!("{}/{}", c.os, c.architecture),
        Err(_) => "another platform".into(),
    }
}

/// The store the build shares with FROM resolution, opened (or created) on first use.
pub(super) fn open_slot(
    root: &Path,
    slot: &RefCell<Option<Arc<Store>>>,
) -> Result<Arc<Store>, String> {
    let mut slot = slot.borrow_mut();
    if let Some(s) = &*slot {
        return Ok(s.clone());
    }
    let s = Arc::new(open_store(root).map_err(|e| chain_text(&e))?);
    *slot = Some(s.clone());
    Ok(s)
}

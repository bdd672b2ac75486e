//! CollectOp: the container images the rootfs of input 0 needs, each resolved for the build's
//! platform (KUBEFILE.md "Image collection").
//!
//! Runs on every build, in two parts:
//! - the scan (`manifests/`, `application/apps/`, `charts/` of the rootfs, see
//!   [`crate::collect`]) is a pure function of the rootfs content, so its result is kept in the
//!   store's `collect` records under the rootfs's content id: a rebuild scans nothing;
//! - resolution asks each tag's registry for its current digest (one `HEAD` per tag); a digest
//!   seen before needs no further request, a digest reference none at all. With
//!   `--pull never` nothing is asked: the last resolution this store recorded is used.
//!
//! The output's content id is the resolved list, so the registry layer after it is rebuilt
//! exactly when an image changed, whatever edit produced the rootfs.

use std::collections::BTreeSet;
use std::sync::Arc;

use seal_solver::ExecContext;
use seal_store::registry::collect::Resolved;
use seal_store::registry::Client;
use seal_store::{Digest, Platform, Reference, Store};
use serde::{Deserialize, Serialize};

use crate::collect::{self, helm, rootfs, ScanOptions};
use crate::llb::encode::Encoder;
use crate::llb::CollectOp;
use crate::ops::network;
use crate::ops::ExecEnv;
use crate::output::{CollectedImage, CollectedImages, LayerChain, Output};
use crate::EngineError;

/// Registries asked at once while resolving.
const RESOLVE_WORKERS: usize = 4;

/// What a scan of one rootfs found (kept in the store's `collect` records).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ScanRecord {
    /// Normalised references with the app each was found in.
    images: Vec<(String, Option<String>)>,
    registry_blobs: Vec<Digest>,
    warnings: Vec<String>,
}

/// The last resolution of a reference for a platform.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ResolutionRecord {
    top: Digest,
    manifest: Digest,
}

/// Find and resolve the images.
pub fn exec(
    op: &CollectOp,
    inputs: &[Output],
    env: &ExecEnv,
    cx: &ExecContext,
) -> Result<Output, EngineError> {
    let Some(Output::Layers(chain)) = inputs.first() else {
        return Err(EngineError::Internal(
            "image collection's input is not a rootfs".into(),
        ));
    };
    let store = &env.store;
    let scan = scan_cached(op, chain, store)?;
    for w in &scan.warnings {
        cx.warn(w.clone());
    }
    let ignored: BTreeSet<&str> = op.ignored.iter().map(String::as_str).collect();
    let mut wanted: Vec<(String, Option<String>)> = scan
        .images
        .iter()
        .cloned()
        .chain(op.added.iter().map(|r| (r.clone(), None)))
        .filter(|(r, _)| !ignored.contains(r.as_str()))
        .collect();
    wanted.sort();
    wanted.dedup_by(|a, b| a.0 == b.0);
    let platform = Platform::parse(&op.platform).map_err(EngineError::Internal)?;
    if !wanted.is_empty() {
        cx.log(format!("resolving {} images for {platform}", wanted.len()));
    }
    let resolved = resolve_all(&wanted, &platform, env, cx)?;
    let images = wanted
        .into_iter()
        .zip(resolved)
        .map(|((reference, app), r)| CollectedImage {
            reference,
            app,
            top: r.top,
            manifest: r.manifest,
        })
        .collect();
    Ok(Output::Images(Arc::new(CollectedImages {
        platform: op.platform.clone(),
        images,
        present: scan.registry_blobs,
        warnings: scan.warnings,
    })))
}

/// The store's `collect` key of the scan of `chain` (a function of content only, so a remote
/// cache carries scan records between machines).
pub fn scan_key(op: &CollectOp, chain: &LayerChain) -> String {
    // v2: charts render with Go's map semantics and nil errors, and note an empty chart.
    let mut e = Encoder::new("seal.collect.scan.v2");
    e.str(env!("CARGO_PKG_VERSION"));
    e.str(&chain.content_id().to_hex());
    e.u64(op.chart_values.len() as u64);
    for v in &op.chart_values {
        e.str(&v.chart).str(&v.yaml);
    }
    format!("scan:{}", e.finish().to_hex())
}

/// The scan of `chain`, from the store's records or done now (and recorded).
fn scan_cached(
    op: &CollectOp,
    chain: &LayerChain,
    store: &Store,
) -> Result<ScanRecord, EngineError> {
    let key = scan_key(op, chain);
    if let Some(bytes) = store.collect_get(&key)? {
        if let Ok(record) = serde_json::from_slice::<ScanRecord>(&bytes) {
            return Ok(record);
        }
    }
    let record = scan(op, chain, store)?;
    let bytes = serde_json::to_vec(&record).map_err(|e| EngineError::Internal(e.to_string()))?;
    store.collect_put(&key, &bytes)?;
    Ok(record)
}

fn scan(op: &CollectOp, chain: &LayerChain, store: &Store) -> Result<ScanRecord, EngineError> {
    let tmp = store.blobs().tmp_dir();
    let dir = tempfile::Builder::new()
        .prefix("collect-")
        .tempdir_in(tmp)
        .map_err(|e| EngineError::io("creating a scratch directory in", tmp, e))?;
    let registry_blobs = rootfs::extract(store, &chain.layers, dir.path())?;
    let mut chart_values = Vec::new();
    for v in &op.chart_values {
        let values = helm::parse_values(&v.yaml, &v.file)
            .map_err(|e| EngineError::Collect(vec![format!("--chart-values: {e}")]))?;
        chart_values.push((v.chart.clone(), values));
    }
    let found = collect::scan(
        dir.path(),
        &ScanOptions {
            values_files: Vec::new(),
            chart_values,
        },
    );
    // Messages name rootfs paths (`charts/app/Chart.yaml`), not the scratch directory.
    let scratch = format!("{}/", dir.path().display());
    let rootfs_paths = |text: String| text.replace(&scratch, "");
    if !found.errors.is_empty() {
        return Err(EngineError::Collect(
            found
                .errors
                .iter()
                .map(|e| rootfs_paths(e.to_string()))
                .collect(),
        ));
    }
    let warnings = found
        .warnings
        .iter()
        .map(|w| match w.line {
            Some(line) => format!("{}:{line}: {}", w.file, w.message),
            None => format!("{}: {}", w.file, w.message),
        })
        .map(rootfs_paths)
        .collect();
    let images = found
        .images
        .iter()
        .map(|i| (i.reference.to_string(), app_of(&i.file)))
        .collect();
    Ok(ScanRecord {
        images,
        registry_blobs: registry_blobs.into_iter().collect(),
        warnings,
    })
}

/// `application/apps/<name>/...` -> `<name>`.
fn app_of(file: &str) -> Option<String> {
    let rest = file.strip_prefix("application/apps/")?;
    rest.split('/')
        .next()
        .filter(|n| !n.is_empty())
        .map(str::to_string)
}

/// Resolve every reference, a few registries at a time.
fn resolve_all(
    wanted: &[(String, Option<String>)],
    platform: &Platform,
    env: &ExecEnv,
    cx: &ExecContext,
) -> Result<Vec<Resolved>, EngineError> {
    network::map_all(wanted, RESOLVE_WORKERS, cx, |(reference, _)| {
        resolve(reference, platform, env, &env.registry)
    })
}

fn resolve(
    reference: &str,
    platform: &Platform,
    env: &ExecEnv,
    client: &Client,
) -> Result<Resolved, EngineError> {
    let failed = |reason: String| EngineError::Pull {
        reference: reference.to_string(),
        reason,
    };
    let name = Reference::parse_container_image(reference).map_err(|e| failed(e.to_string()))?;
    let store = &env.store;
    let key = format!("resolve:{platform}:{reference}");
    let recorded = store
        .collect_get(&key)?
        .and_then(|b| serde_json::from_slice::<ResolutionRecord>(&b).ok())
        .filter(|r| store.blobs().contains(&r.top) && store.blobs().contains(&r.manifest));
    let top =
        if env.pull_never {
            match (&name.digest, &recorded) {
                (Some(d), _) => d.clone(),
                (None, Some(r)) => r.top.clone(),
                (None, None) => return Err(failed(
                    "this store has never resolved it and --pull never forbids asking its registry"
                        .into(),
                )),
            }
        } else {
            client
                .current_digest(&name)
                .map_err(|e| failed(e.to_string()))?
        };
    if let Some(r) = recorded.filter(|r| r.top == top) {
        return Ok(Resolved {
            top: r.top,
            manifest: r.manifest,
        });
    }
    if env.pull_never && !store.blobs().contains(&top) {
        return Err(failed(format!(
            "its manifest {top} is not in the store and --pull never forbids fetching it"
        )));
    }
    let resolved = client
        .resolve_stored(store, &name, &top, platform)
        .map_err(|e| failed(e.to_string()))?;
    let record = ResolutionRecord {
        top: resolved.top.clone(),
        manifest: resolved.manifest.clone(),
    };
    let bytes = serde_json::to_vec(&record).map_err(|e| EngineError::Internal(e.to_string()))?;
    store.collect_put(&key, &bytes)?;
    Ok(resolved)
}

#[cfg(test)]
mod tests {
    use super::app_of;

    #[test]
    fn apps_from_paths() {
        assert_eq!(
            app_of("application/apps/calico/x.yaml").as_deref(),
            Some("calico")
        );
        assert_eq!(app_of("manifests/x.yaml"), None);
    }
}

//! Assembling the OCI image: config and manifest from the layer chain and the [`ImageSpec`],
//! with Sealer's metadata (KUBEFILE.md "Result"), stored under the image's name.

use std::collections::BTreeMap;

use seal_store::oci::{
    to_canonical_json, Descriptor, History, ImageConfig, Manifest, RootFs, MEDIA_TYPE_CONFIG,
    MEDIA_TYPE_MANIFEST,
};
use seal_store::{Digest, Reference, Store};
use serde::Serialize;

use crate::apps::Application;
use crate::image_spec::ImageSpec;
use crate::output::{CollectedImages, LayerChain};
use crate::EngineError;

/// The label Sealer puts on every cluster image.
pub const LABEL_SEALER_VERSION: &str = "io.sealer.version";
/// The manifest annotation with launch metadata.
pub const ANNOTATION_EXTENSION: &str = "sealer.image.extension";
/// The manifest annotation listing the container images carried in `registry/`.
pub const ANNOTATION_CONTAINER_IMAGES: &str = "sealer.image.container.images";

/// Sealer's `ImageExtension`, as JSON in [`ANNOTATION_EXTENSION`].
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Extension<'a> {
    build_client: BuildClient<'a>,
    schema_version: &'static str,
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    applications: &'a [Application],
    launch: Launch<'a>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    env: BTreeMap<&'a str, &'a str>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct BuildClient<'a> {
    sealer_version: &'a str,
    build_mode: &'a str,
}

#[derive(Debug, Serialize)]
struct Launch<'a> {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    cmds: Vec<&'a str>,
    /// LAUNCH: the apps `sealer run` starts, in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    app_names: Vec<&'a str>,
}

/// One entry of [`ANNOTATION_CONTAINER_IMAGES`] (Sealer's `ContainerImage`).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ContainerImage<'a> {
    image: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    app_name: Option<&'a str>,
    platform: PlatformJson<'a>,
}

#[derive(Debug, Serialize)]
struct PlatformJson<'a> {
    architecture: &'a str,
    os: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    variant: Option<&'a str>,
}

/// The stored image.
#[derive(Debug, Clone)]
pub struct Exported {
    pub manifest: Digest,
    pub config: Digest,
}

/// Write config and manifest for `chain` + `spec` (+ the detected `apps`) and point `name` (if
/// any: one platform of a multi-platform build is named by its index later) at the manifest.
pub fn export(
    store: &Store,
    chain: &LayerChain,
    spec: &ImageSpec,
    apps: &[Application],
    collected: Option<&CollectedImages>,
    name: Option<&Reference>,
    seal_version: &str,
) -> Result<Exported, EngineError> {
    // Every layer the image names must be intact: a cached step's layers were checked when
    // the cache served them, but a base image's are checked only here (one `stat` each for
    // blobs verified since their last write).
    for layer in &chain.layers {
        // A cache import's layer may stay remote: the image record is valid without its bytes.
        store.presence(&layer.digest, Some(layer.size))?;
    }
    let mut config = match &chain.base_config {
        Some(d) => {
            store.ensure_local(d)?;
            store.config(d)?
        }
        None => ImageConfig::default(),
    };
    let created = rfc3339(spec.source_date_epoch);
    config.created = Some(created.clone());
    config.architecture = spec.platform.architecture.clone();
    config.os = spec.platform.os.clone();
    if let Some(m) = &spec.maintainer {
        config.author = Some(m.clone());
    }
    for (k, v) in &spec.env {
        let prefix = format!("{k}=");
        config.config.env.retain(|e| !e.starts_with(&prefix));
        config.config.env.push(format!("{k}={v}"));
    }
    config
        .config
        .labels
        .extend(spec.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
    config
        .config
        .labels
        .insert(LABEL_SEALER_VERSION.into(), format!("seal-{seal_version}"));
    config.rootfs = RootFs {
        kind: "layers".into(),
        diff_ids: chain.layers.iter().map(|l| l.diff_id.clone()).collect(),
    };
    config.history.extend(spec.history.iter().map(|h| History {
        created: Some(created.clone()),
        created_by: Some(h.created_by.clone()),
        comment: Some("seal".into()),
        empty_layer: h.empty_layer,
    }));
    // The registry/ layer of collected images is a layer like the steps' and needs its entry:
    // tools pair history entries that are not `empty_layer` with the diffIDs, one for one.
    if let Some(collected) = collected.filter(|c| !c.images.is_empty()) {
        config.history.push(History {
            created: Some(created.clone()),
            created_by: Some(format!(
                "seal: {} container images collected into registry/",
                collected.images.len()
            )),
            comment: Some("seal".into()),
            empty_layer: false,
        });
    }
    let config_bytes = to_canonical_json(&config);
    let config_digest = store.blobs().put(&config_bytes)?;

    let env: BTreeMap<&str, &str> = spec
        .env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let mut cmds: Vec<&str> = spec.cmds.iter().map(String::as_str).collect();
    cmds.extend(spec.launch_cmds.iter().map(String::as_str));
    let extension = Extension {
        build_client: BuildClient {
            sealer_version: seal_version,
            build_mode: &spec.exec_mode,
        },
        schema_version: "v1alpha1",
        kind: "kube-installer",
        applications: apps,
        launch: Launch {
            cmds,
            app_names: spec.launch_apps.iter().map(String::as_str).collect(),
        },
        env,
    };
    let mut annotations = BTreeMap::new();
    annotations.insert(
        ANNOTATION_EXTENSION.to_string(),
        String::from_utf8(to_canonical_json(&extension)).unwrap_or_default(),
    );
    if let Some(collected) = collected.filter(|c| !c.images.is_empty()) {
        let mut parts = collected.platform.split('/');
        let (os, architecture, variant) = (
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
            parts.next(),
        );
        let list: Vec<ContainerImage> = collected
            .images
            .iter()
            .map(|i| ContainerImage {
                image: &i.reference,
                app_name: i.app.as_deref(),
                platform: PlatformJson {
                    architecture,
                    os,
                    variant,
                },
            })
            .collect();
        annotations.insert(
            ANNOTATION_CONTAINER_IMAGES.to_string(),
            String::from_utf8(to_canonical_json(&list)).unwrap_or_default(),
        );
    }
    let manifest = Manifest {
        schema_version: 2,
        media_type: MEDIA_TYPE_MANIFEST.into(),
        config: Descriptor {
            media_type: MEDIA_TYPE_CONFIG.into(),
            digest: config_digest.clone(),
            size: config_bytes.len() as u64,
            annotations: BTreeMap::new(),
            platform: None,
        },
        layers: chain
            .layers
            .iter()
            .map(|l| Descriptor {
                media_type: l.media_type.clone(),
                digest: l.digest.clone(),
                size: l.size,
                annotations: BTreeMap::new(),
                platform: None,
            })
            .collect(),
        annotations,
    };
    let manifest_digest = store.blobs().put(&to_canonical_json(&manifest))?;
    if let Some(name) = name {
        store.set_image(name, &manifest_digest)?;
    }
    Ok(Exported {
        manifest: manifest_digest,
        config: config_digest,
    })
}

/// `YYYY-MM-DDTHH:MM:SSZ` for seconds since the epoch (proleptic Gregorian, UTC).
pub fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's days_from_civil inverse.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::rfc3339;

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }
}

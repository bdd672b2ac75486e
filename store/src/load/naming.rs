//! Naming: which images of an OCI index.json are loaded and under which names (`-t`, the
//! containerd name annotation, or a whole `ref.name`).

use std::collections::BTreeMap;

use super::verify::Import;
use super::{invalid, Desc, IndexDoc, LoadError, Plan, Planned, ANNOTATION_CONTAINERD_NAME};
use crate::{Digest, Reference};

pub(super) enum OciPlan {
    Images(Plan),
    /// index.json names no image (the reason, for the error).
    Unnamed(String),
}

impl Import<'_> {
    /// Decide which manifests of index.json to import, under which names.
    pub(super) fn plan_oci(&self, name: Option<&Reference>) -> Result<OciPlan, LoadError> {
        if let Some(size) = self.source.lookup("oci-layout")? {
            let bytes = self.source.document("oci-layout", "oci-layout")?;
            let layout: serde_json::Value = serde_json::from_slice(&bytes)
                .map_err(|e| invalid(format!("oci-layout is not JSON: {e}")))?;
            let version = layout["imageLayoutVersion"].as_str().unwrap_or_default();
            if !version.starts_with("1.") {
                return Err(invalid(format!(
                    "oci-layout ({size} bytes) has imageLayoutVersion `{version}`, not 1.x"
                )));
            }
        }
        let bytes = self.source.document("index.json", "the index")?;
        let index: IndexDoc = serde_json::from_slice(&bytes)
            .map_err(|e| invalid(format!("index.json is not a valid image index: {e}")))?;
        if index.schema_version != 2 {
            return Err(invalid(format!(
                "index.json has schemaVersion {}, not 2",
                index.schema_version
            )));
        }
        if index.manifests.is_empty() {
            return Ok(OciPlan::Unnamed("index.json lists no image".into()));
        }
        let mut plan = Plan {
            format: "oci",
            images: Vec::new(),
            warnings: Vec::new(),
            docker: Vec::new(),
        };
        if let Some(name) = name {
            if index.manifests.len() != 1 {
                let list: Vec<String> = index.manifests.iter().map(describe).collect();
                return Err(invalid(format!(
                    "the archive holds {} images ({}); -t names exactly one, so load without -t",
                    index.manifests.len(),
                    list.join(", ")
                )));
            }
            let desc = self.resolve(&index.manifests[0], 0)?;
            plan.images.push((name.clone(), Planned::Oci(desc)));
            return Ok(OciPlan::Images(plan));
        }
        let mut names: BTreeMap<Reference, Digest> = BTreeMap::new();
        for entry in &index.manifests {
            let Some(image_name) = oci_name(entry)? else {
                plan.warnings.push(format!(
                    "skipping {}: it has no image name (load it alone with -t NAME)",
                    describe(entry)
                ));
                continue;
            };
            if let Some(other) = names.get(&image_name) {
                if other != &entry.digest {
                    return Err(invalid(format!(
                        "index.json names two different images {image_name}"
                    )));
                }
                continue;
            }
            names.insert(image_name.clone(), entry.digest.clone());
            let desc = self.resolve(entry, 0)?;
            plan.images.push((image_name, Planned::Oci(desc)));
        }
        if plan.images.is_empty() {
            return Ok(OciPlan::Unnamed(format!(
                "no image in index.json has a name ({ANNOTATION_CONTAINERD_NAME} or a full \
                 org.opencontainers.image.ref.name); give one with -t NAME"
            )));
        }
        Ok(OciPlan::Images(plan))
    }
}

/// The name an index.json entry gives its image: the containerd name, else a ref.name that is
/// a whole reference (a bare tag like `v1` is not a name).
fn oci_name(desc: &Desc) -> Result<Option<Reference>, LoadError> {
    let raw = match desc.annotations.get(ANNOTATION_CONTAINERD_NAME) {
        Some(n) => n,
        None => match desc.annotations.get(crate::oci::ANNOTATION_REF_NAME) {
            Some(r) if r.contains('/') || r.contains(':') => r,
            _ => return Ok(None),
        },
    };
    Reference::parse_cluster_image(raw)
        .map(Some)
        .map_err(|e| invalid(format!("index.json: {e}")))
}

/// How an index entry is shown in messages.
fn describe(desc: &Desc) -> String {
    match desc
        .annotations
        .get(ANNOTATION_CONTAINERD_NAME)
        .or_else(|| desc.annotations.get(crate::oci::ANNOTATION_REF_NAME))
    {
        Some(n) => format!("{} ({n})", desc.digest),
        None => desc.digest.to_string(),
    }
}

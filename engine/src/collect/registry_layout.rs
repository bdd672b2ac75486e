//! The on-disk layout of the CNCF distribution registry (`registry:2`, Debian's
//! `docker-registry`) under a rootfs's `registry/`, so that a stock registry pointed at that
//! directory serves the collected images:
//!
//! ```text
//! registry/docker/registry/v2/blobs/sha256/<xx>/<hex>/data
//! registry/docker/registry/v2/repositories/<repo>/_manifests/revisions/sha256/<hex>/link
//! registry/docker/registry/v2/repositories/<repo>/_manifests/tags/<tag>/current/link
//! registry/docker/registry/v2/repositories/<repo>/_manifests/tags/<tag>/index/sha256/<hex>/link
//! registry/docker/registry/v2/repositories/<repo>/_layers/sha256/<hex>/link
//! ```
//!
//! `<repo>` is the full repository path including the domain (`docker.io/library/nginx`), so
//! `a.com/x:1` and `b.com/x:1` never collide. A port is not allowed in a repository name, so
//! `host:port` is written `host_port` (`127.0.0.1:5000/app` -> `127.0.0.1_5000/app`).
//! No IO here: this only plans the layer's entries.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use seal_store::{Digest, Reference};

use crate::layer::{LayerEntry, LayerEntryKind};

/// The registry's root inside a rootfs.
pub const ROOT: &str = "registry/docker/registry/v2";

/// One image to lay out.
#[derive(Debug, Clone)]
pub struct LaidOutImage<'a> {
    pub reference: &'a Reference,
    /// What the reference names (an index or a manifest), and its size.
    pub top: (&'a Digest, u64),
    /// The platform's manifest when `top` is an index, and its size.
    pub child: Option<(&'a Digest, u64)>,
    /// Config and layers of the platform's manifest.
    pub blobs: Vec<(&'a Digest, u64)>,
}

/// The repository name of `reference` in the layout: domain and path, the port separator
/// written as `_`.
pub fn repository(reference: &Reference) -> String {
    format!("{}/{}", reference.domain.replace(':', "_"), reference.path)
}

/// The entries of a layer holding `images`, sorted, parents first. Blobs in `present` (already
/// in a lower layer's `registry/`) are not written again; `blob_path` locates a stored blob.
pub fn entries(
    images: &[LaidOutImage<'_>],
    present: &BTreeSet<Digest>,
    blob_path: &dyn Fn(&Digest) -> PathBuf,
) -> Vec<LayerEntry> {
    let mut files: BTreeMap<String, LayerEntryKind> = BTreeMap::new();
    let mut blob = |digest: &Digest, size: u64| {
        if present.contains(digest) {
            return;
        }
        let hex = digest.hex();
        files.insert(
            format!("{ROOT}/blobs/sha256/{}/{hex}/data", &hex[..2]),
            LayerEntryKind::Blob {
                source: blob_path(digest),
                size,
                digest: digest.clone(),
            },
        );
    };
    for image in images {
        blob(image.top.0, image.top.1);
        if let Some((d, size)) = image.child {
            blob(d, size);
        }
        for (d, size) in &image.blobs {
            blob(d, *size);
        }
    }
    for image in images {
        let repo = format!("{ROOT}/repositories/{}", repository(image.reference));
        let link = |d: &Digest| LayerEntryKind::Bytes(d.to_string().into_bytes());
        let revisions = std::iter::once(image.top.0).chain(image.child.map(|c| c.0));
        for d in revisions {
            files.insert(
                format!("{repo}/_manifests/revisions/sha256/{}/link", d.hex()),
                link(d),
            );
        }
        if image.reference.digest.is_none() {
            let tag = format!("{repo}/_manifests/tags/{}", image.reference.tag_or_latest());
            files.insert(format!("{tag}/current/link"), link(image.top.0));
            files.insert(
                format!("{tag}/index/sha256/{}/link", image.top.0.hex()),
                link(image.top.0),
            );
        }
        for (d, _) in &image.blobs {
            files.insert(format!("{repo}/_layers/sha256/{}/link", d.hex()), link(d));
        }
    }
    let mut dirs: BTreeSet<String> = BTreeSet::new();
    for path in files.keys() {
        let mut p = path.as_str();
        while let Some((parent, _)) = p.rsplit_once('/') {
            if !dirs.insert(parent.to_string()) {
                break;
            }
            p = parent;
        }
    }
    let mut out: Vec<LayerEntry> = dirs
        .into_iter()
        .map(|path| LayerEntry {
            path,
            kind: LayerEntryKind::Dir,
            mode: 0o755,
            uid: 0,
            gid: 0,
            xattrs: Default::default(),
        })
        .chain(files.into_iter().map(|(path, kind)| LayerEntry {
            path,
            kind,
            mode: 0o644,
            uid: 0,
            gid: 0,
            xattrs: Default::default(),
        }))
        .collect();
    // Tar order: sorted by path, which puts every directory before its children.
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_paths() {
        let r = Reference::parse_container_image("127.0.0.1:5000/team/app:1").unwrap();
        assert_eq!(repository(&r), "127.0.0.1_5000/team/app");
        let top = Digest::of(b"manifest");
        let config = Digest::of(b"config");
        let layer = Digest::of(b"layer");
        let image = LaidOutImage {
            reference: &r,
            top: (&top, 8),
            child: None,
            blobs: vec![(&config, 6), (&layer, 5)],
        };
        let present: BTreeSet<Digest> = [layer.clone()].into();
        let entries = entries(&[image], &present, &|d| PathBuf::from(d.hex()));
        let paths: Vec<&str> = entries.iter().map(|e| e.path.as_str()).collect();
        let repo = format!("{ROOT}/repositories/127.0.0.1_5000/team/app");
        assert!(paths.contains(&format!("{repo}/_manifests/tags/1/current/link").as_str()));
        assert!(paths
            .contains(&format!("{repo}/_manifests/revisions/sha256/{}/link", top.hex()).as_str()));
        assert!(paths.contains(&format!("{repo}/_layers/sha256/{}/link", layer.hex()).as_str()));
        let blob_path =
            |d: &Digest| format!("{ROOT}/blobs/sha256/{}/{}/data", &d.hex()[..2], d.hex());
        assert!(paths.contains(&blob_path(&config).as_str()));
        assert!(
            !paths.contains(&blob_path(&layer).as_str()),
            "present in a lower layer"
        );
        // Parents first, each once.
        let mut seen = BTreeSet::new();
        for e in &entries {
            if let Some((parent, _)) = e.path.rsplit_once('/') {
                assert!(seen.contains(parent), "{}", e.path);
            }
            assert!(seen.insert(e.path.clone()), "{} twice", e.path);
        }
    }
}

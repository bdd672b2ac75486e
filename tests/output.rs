//! What `seal build` stores and `seal save` writes, checked with independent tools: skopeo and
//! umoci read the OCI archive, GNU tar lists the layers. KUBEFILE.md "COPY semantics", "Result",
//! "Reproducibility".

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::{tool, Ctx, SavedLayout, Seal, OLD};
use serde_json::Value;
use tempfile::TempDir;

/// One entry of an unpacked rootfs.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    Dir,
    File { mode: u32, content: String },
    Link(String),
}

fn file(mode: u32, content: &str) -> Entry {
    Entry::File {
        mode,
        content: content.to_string(),
    }
}

/// Every entry below `root`, by relative path.
fn tree(root: &Path) -> BTreeMap<String, Entry> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Entry>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_str()
                .unwrap()
                .to_string();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.file_type().is_symlink() {
                out.insert(
                    rel,
                    Entry::Link(
                        std::fs::read_link(&path)
                            .unwrap()
                            .to_str()
                            .unwrap()
                            .to_string(),
                    ),
                );
            } else if meta.is_dir() {
                out.insert(rel, Entry::Dir);
                walk(root, &path, out);
            } else {
                let content = String::from_utf8(std::fs::read(&path).unwrap()).unwrap();
                out.insert(
                    rel,
                    Entry::File {
                        mode: meta.permissions().mode() & 0o7777,
                        content,
                    },
                );
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// An image saved with `seal save` and extracted into an OCI layout directory.
struct Saved {
    dir: TempDir,
    archive: PathBuf,
    layout: PathBuf,
}

impl Saved {
    fn new(seal: &Seal, name: &str) -> Saved {
        let saved = SavedLayout::new(seal, name);
        let archive = saved.dir.path().join("img.tar");
        Saved {
            layout: saved.layout,
            archive,
            dir: saved.dir,
        }
    }

    fn json(&self, rel: &str) -> Value {
        let text =
            std::fs::read_to_string(self.layout.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{rel} is not JSON: {e}"))
    }

    fn blob(&self, digest: &str) -> PathBuf {
        self.layout
            .join("blobs/sha256")
            .join(digest.strip_prefix("sha256:").unwrap())
    }

    /// The one manifest named in index.json.
    fn manifest(&self) -> (String, Value) {
        let index = self.json("index.json");
        let manifests = index["manifests"].as_array().expect("index.json manifests");
        assert_eq!(manifests.len(), 1, "{index}");
        let digest = manifests[0]["digest"].as_str().unwrap().to_string();
        let text = std::fs::read_to_string(self.blob(&digest)).unwrap();
        (digest, serde_json::from_str(&text).unwrap())
    }

    /// `skopeo inspect oci-archive:...`.
    fn skopeo(&self) -> Value {
        let reference = format!("oci-archive:{}", self.archive.display());
        let out = tool("skopeo", &["inspect", &reference], self.dir.path());
        serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("skopeo output is not JSON ({e}):\n{out}"))
    }

    /// `umoci unpack --rootless`, returning the rootfs.
    fn umoci_unpack(&self, tag: &str) -> PathBuf {
        let bundle = self.dir.path().join("bundle");
        let image = format!("{}:{tag}", self.layout.display());
        tool(
            "umoci",
            &[
                "unpack",
                "--rootless",
                "--image",
                &image,
                bundle.to_str().unwrap(),
            ],
            self.dir.path(),
        );
        bundle.join("rootfs")
    }

    /// Every layer of the manifest, listed by GNU tar: (perms, uid/gid, date time, path).
    fn layer_listings(&self) -> Vec<Vec<(String, String, String, String)>> {
        let (_, manifest) = self.manifest();
        let mut out = Vec::new();
        for layer in manifest["layers"].as_array().unwrap() {
            assert_eq!(
                layer["mediaType"], "application/vnd.oci.image.layer.v1.tar+gzip",
                "{layer}"
            );
            let blob = self.blob(layer["digest"].as_str().unwrap());
            let output = std::process::Command::new("tar")
                .args(["--numeric-owner", "-tvzf"])
                .arg(&blob)
                .env("TZ", "UTC")
                .output()
                .unwrap();
            assert!(
                output.status.success(),
                "tar -tvzf {}: {}",
                blob.display(),
                String::from_utf8_lossy(&output.stderr)
            );
            let rows = String::from_utf8(output.stdout)
                .unwrap()
                .lines()
                .map(|line| {
                    let f: Vec<&str> = line.split_whitespace().collect();
                    assert!(f.len() >= 6, "odd tar line: {line}");
                    (
                        f[0].to_string(),
                        f[1].to_string(),
                        format!("{} {}", f[3], f[4]),
                        f[5].trim_end_matches('/').to_string(),
                    )
                })
                .collect();
            out.push(rows);
        }
        out
    }
}

/// A context exercising every COPY form, plus files that no COPY reaches.
fn cluster_context() -> Ctx {
    let ctx = Ctx::new();
    ctx.kubefile(
        "FROM scratch\n\
         ENV FOO=bar\n\
         COPY scripts .\n\
         COPY --chmod=0600 key.pem etc\n\
         COPY charts/. charts\n\
         COPY yamls/a.yaml manifests/a.yaml\n\
         COPY *.yaml manifests\n\
         COPY --chown=1000:1000 data data\n\
         CMD kubectl apply -f manifests\n\
         CMD echo two\n",
    )
    .file_mode("scripts/init.sh", "#!/bin/sh\necho hi\n", 0o755)
    .file("scripts/lib/common.sh", "lib\n")
    .symlink("scripts/current", "init.sh")
    .file("key.pem", "secret\n")
    .file("charts/app/Chart.yaml", "name: app\n")
    .file("charts/app/templates/t.yaml", "kind: T\n")
    .file("yamls/a.yaml", "kind: A\n")
    .file("yamls/z.yaml", "kind: Z (not copied)\n")
    .file("b.yaml", "kind: B\n")
    .file("c.yaml", "kind: C\n")
    .file("d.yml", "not matched by *.yaml\n")
    .file("data/x", "x\n")
    .file("notes.txt", "not copied\n");
    ctx
}

const COPY_STEPS: usize = 6;

fn expected_tree() -> BTreeMap<String, Entry> {
    [
        ("scripts", Entry::Dir),
        ("scripts/init.sh", file(0o755, "#!/bin/sh\necho hi\n")),
        ("scripts/lib", Entry::Dir),
        ("scripts/lib/common.sh", file(0o644, "lib\n")),
        ("scripts/current", Entry::Link("init.sh".into())),
        ("etc", Entry::Dir),
        ("etc/key.pem", file(0o600, "secret\n")),
        ("charts", Entry::Dir),
        ("charts/app", Entry::Dir),
        ("charts/app/Chart.yaml", file(0o644, "name: app\n")),
        ("charts/app/templates", Entry::Dir),
        ("charts/app/templates/t.yaml", file(0o644, "kind: T\n")),
        ("manifests", Entry::Dir),
        ("manifests/a.yaml", file(0o644, "kind: A\n")),
        ("manifests/b.yaml", file(0o644, "kind: B\n")),
        ("manifests/c.yaml", file(0o644, "kind: C\n")),
        ("data", Entry::Dir),
        ("data/x", file(0o644, "x\n")),
    ]
    .into_iter()
    .map(|(p, e)| (p.to_string(), e))
    .collect()
}

#[test]
fn skopeo_and_umoci_read_the_archive_and_the_rootfs_is_what_the_kubefile_asked_for() {
    let seal = Seal::new();
    let ctx = cluster_context();
    let digest = seal.digest(ctx.path(), "demo:v1", &["--compression", "gzip"]);
    let saved = Saved::new(&seal, "demo:v1");

    let layout = saved.json("oci-layout");
    assert_eq!(layout["imageLayoutVersion"], "1.0.0");
    let index = saved.json("index.json");
    assert_eq!(
        index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"], "v1",
        "{index}"
    );
    let (manifest_digest, _) = saved.manifest();
    assert_eq!(manifest_digest, digest);

    let skopeo = saved.skopeo();
    assert_eq!(
        skopeo["Layers"].as_array().expect("skopeo Layers").len(),
        COPY_STEPS,
        "{skopeo}"
    );
    assert_eq!(skopeo["Digest"], digest.as_str());
    assert_eq!(skopeo["Os"], "linux");

    let rootfs = saved.umoci_unpack("v1");
    let got = tree(&rootfs);
    let want = expected_tree();
    for (path, entry) in &want {
        assert_eq!(got.get(path), Some(entry), "{path} in the unpacked rootfs");
    }
    let extra: Vec<_> = got.keys().filter(|p| !want.contains_key(*p)).collect();
    assert!(
        extra.is_empty(),
        "unexpected paths in the rootfs: {extra:?}"
    );
}

#[test]
fn layers_have_root_owners_normalised_mtimes_and_honour_chown() {
    let seal = Seal::new();
    let ctx = cluster_context();
    ctx.touch("b.yaml", OLD).touch("data/x", 1_900_000_000);
    seal.digest(ctx.path(), "demo:v1", &["--compression", "gzip"]);
    let listings = Saved::new(&seal, "demo:v1").layer_listings();
    assert_eq!(listings.len(), COPY_STEPS);
    let mut seen = 0;
    for rows in &listings {
        assert!(!rows.is_empty(), "an empty COPY layer");
        for (perms, owner, time, path) in rows {
            let want_owner = if path == "data" || path.starts_with("data/") {
                "1000/1000"
            } else {
                "0/0"
            };
            assert_eq!(owner, want_owner, "owner of {path} ({perms})");
            assert_eq!(time, "1970-01-01 00:00", "mtime of {path}");
            seen += 1;
        }
    }
    // Each layer holds only what its COPY copied: no path appears twice across layers, except
    // the parent directories two COPYs share (`manifests/`).
    let mut paths: Vec<&String> = listings.iter().flatten().map(|(_, _, _, p)| p).collect();
    paths.sort();
    paths.dedup();
    assert_eq!(
        paths.len() + 1,
        seen,
        "only `manifests` may be in two layers: {listings:?}"
    );
}

#[test]
fn inspect_shows_the_digest_sealer_metadata_and_one_layer_per_copy() {
    let seal = Seal::new();
    let ctx = cluster_context();
    let digest = seal.digest(ctx.path(), "demo:v1", &[]);
    let inspect = seal.inspect("demo:v1");
    assert_eq!(inspect["digest"], digest.as_str(), "{inspect:#}");
    assert_eq!(inspect["name"], "docker.io/sealerio/demo:v1");
    let labels = &inspect["config"]["config"]["Labels"];
    assert!(
        labels["io.sealer.version"]
            .as_str()
            .is_some_and(|v| !v.is_empty()),
        "{labels}"
    );

    let extension = inspect["annotations"]["sealer.image.extension"]
        .as_str()
        .unwrap_or_else(|| panic!("no sealer.image.extension annotation: {inspect:#}"));
    let extension: Value =
        serde_json::from_str(extension).expect("the extension annotation is JSON");
    assert_eq!(
        extension["launch"]["cmds"],
        serde_json::json!(["kubectl apply -f manifests", "echo two"]),
        "{extension}"
    );

    let layers = inspect["layers"].as_array().unwrap();
    assert_eq!(layers.len(), COPY_STEPS);
    for layer in layers {
        assert_eq!(
            layer["mediaType"], "application/vnd.oci.image.layer.v1.tar+zstd",
            "zstd is the default: {layer}"
        );
        assert!(layer["diffID"].as_str().unwrap().starts_with("sha256:"));
        assert!(layer["size"].as_u64().unwrap() > 0);
    }
    assert_eq!(
        inspect["config"]["config"]["Env"],
        serde_json::json!(["FOO=bar"])
    );

    let images = seal.run_in(ctx.path(), &["images", "--format", "json"]);
    assert_eq!(images.code, 0, "{}", images.stderr);
    let images: Value = serde_json::from_str(&images.stdout).unwrap();
    let row = images
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "docker.io/sealerio/demo:v1")
        .unwrap_or_else(|| panic!("demo:v1 not listed: {images}"));
    assert_eq!(row["digest"], digest.as_str());
}

#[test]
fn compression_changes_blobs_but_not_content() {
    let ctx = cluster_context();
    let mut diff_ids = Vec::new();
    let mut digests = Vec::new();
    for (compression, media) in [("gzip", "tar+gzip"), ("zstd", "tar+zstd"), ("none", "tar")] {
        let seal = Seal::new();
        digests.push(seal.digest(ctx.path(), "demo:v1", &["--compression", compression]));
        let inspect = seal.inspect("demo:v1");
        let layers = inspect["layers"].as_array().unwrap();
        for layer in layers {
            assert_eq!(
                layer["mediaType"],
                format!("application/vnd.oci.image.layer.v1.{media}"),
                "{layer}"
            );
        }
        if compression == "none" {
            for layer in layers {
                assert_eq!(
                    layer["digest"], layer["diffID"],
                    "an uncompressed layer is its own diffID"
                );
            }
        }
        diff_ids.push(
            layers
                .iter()
                .map(|l| l["diffID"].clone())
                .collect::<Vec<_>>(),
        );
    }
    assert_eq!(diff_ids[0], diff_ids[1]);
    assert_eq!(diff_ids[1], diff_ids[2]);
    digests.sort();
    digests.dedup();
    assert_eq!(digests.len(), 3, "three compressions, three manifests");
}

#[test]
fn from_a_stored_image_adds_layers_on_top_and_inherits_env() {
    let seal = Seal::new();
    let base = Ctx::new();
    base.kubefile("FROM scratch\nENV BASEVAR=from-base\nCOPY a.txt base\nCOPY b.txt base\n")
        .file("a.txt", "a\n")
        .file("b.txt", "b\n");
    seal.digest(base.path(), "base:1", &["--compression", "gzip"]);
    let base_inspect = seal.inspect("base:1");
    let base_layers: Vec<Value> = base_inspect["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].clone())
        .collect();
    assert_eq!(base_layers.len(), 2);

    let child = Ctx::new();
    child
        .kubefile("FROM base:1\nENV CHILDVAR=1\nCOPY c.txt child\n")
        .file("c.txt", "c\n");
    let digest = seal.digest(child.path(), "child:1", &["--compression", "gzip"]);
    let inspect = seal.inspect("child:1");
    assert_eq!(inspect["digest"], digest.as_str());
    let layers: Vec<Value> = inspect["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].clone())
        .collect();
    assert_eq!(layers.len(), base_layers.len() + 1, "{inspect:#}");
    assert_eq!(
        layers[..2],
        base_layers[..],
        "the base's layers come first, unchanged"
    );
    let env: Vec<&str> = inspect["config"]["config"]["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        env.contains(&"BASEVAR=from-base"),
        "the base's ENV is inherited: {env:?}"
    );
    assert!(env.contains(&"CHILDVAR=1"), "{env:?}");

    let saved = Saved::new(&seal, "child:1");
    let rootfs = saved.umoci_unpack("1");
    let got = tree(&rootfs);
    let want: BTreeMap<String, Entry> = [
        ("base", Entry::Dir),
        ("base/a.txt", file(0o644, "a\n")),
        ("base/b.txt", file(0o644, "b\n")),
        ("child", Entry::Dir),
        ("child/c.txt", file(0o644, "c\n")),
    ]
    .into_iter()
    .map(|(p, e)| (p.to_string(), e))
    .collect();
    assert_eq!(got, want);
}

#[test]
fn source_date_epoch_sets_created_and_layer_mtimes() {
    let ctx = cluster_context();
    ctx.touch("b.yaml", OLD);
    let default_seal = Seal::new();
    let default = default_seal.digest(ctx.path(), "demo:v1", &["--compression", "gzip"]);
    assert_eq!(
        default_seal.inspect("demo:v1")["config"]["created"],
        "1970-01-01T00:00:00Z"
    );

    let seal = Seal::new();
    let out = seal.build_env(
        ctx.path(),
        "demo:v1",
        &["--compression", "gzip"],
        &[("SOURCE_DATE_EPOCH", "1700000000")],
    );
    out.assert_built();
    assert_ne!(out.digest(), default);
    let inspect = seal.inspect("demo:v1");
    assert_eq!(
        inspect["config"]["created"], "2023-11-14T22:13:20Z",
        "{inspect:#}"
    );

    // Every entry gets that time, whether its file is older (b.yaml) or newer than the epoch.
    for rows in Saved::new(&seal, "demo:v1").layer_listings() {
        for (_, _, time, path) in rows {
            assert_eq!(time, "2023-11-14 22:13", "mtime of {path}");
        }
    }

    // And it is reproducible: the same epoch in another store gives the same image.
    let again = Seal::new().build_env(
        ctx.path(),
        "demo:v1",
        &["--compression", "gzip"],
        &[("SOURCE_DATE_EPOCH", "1700000000")],
    );
    again.assert_built();
    assert_eq!(again.digest(), out.digest());
}

#[test]
fn fifos_in_a_copied_dir_are_skipped_with_a_warning() {
    let seal = Seal::new();
    let ctx = Ctx::new();
    ctx.kubefile("FROM scratch\nCOPY d d\n").file("d/f", "f\n");
    tool("mkfifo", &["d/pipe"], ctx.path());
    let out = seal.build_ok(ctx.path(), "demo:v1", &["--compression", "gzip"]);
    assert!(
        out.stderr.contains("pipe"),
        "a warning should name the skipped fifo:\n{}",
        out.stderr
    );
    let saved = Saved::new(&seal, "demo:v1");
    let rootfs = saved.umoci_unpack("v1");
    let want: BTreeMap<String, Entry> = [("d", Entry::Dir), ("d/f", file(0o644, "f\n"))]
        .into_iter()
        .map(|(p, e)| (p.to_string(), e))
        .collect();
    assert_eq!(tree(&rootfs), want);
}

#[test]
fn cmd_forms_and_maintainer_are_recorded() {
    let seal = Seal::new();
    let ctx = Ctx::new();
    ctx.kubefile(
        "FROM scratch\n\
         MAINTAINER ops@example.com\n\
         COPY a.yaml manifests\n\
         CMD [\"kubectl apply -f a.yaml\", \"kubectl apply -f b.yaml\"]\n\
         CMD echo c\n",
    )
    .file("a.yaml", "kind: A\n");
    seal.digest(ctx.path(), "demo:v1", &[]);
    let inspect = seal.inspect("demo:v1");
    assert_eq!(
        inspect["config"]["author"], "ops@example.com",
        "{inspect:#}"
    );
    let extension: Value = serde_json::from_str(
        inspect["annotations"]["sealer.image.extension"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        extension["launch"]["cmds"],
        serde_json::json!([
            "kubectl apply -f a.yaml",
            "kubectl apply -f b.yaml",
            "echo c"
        ]),
        "{extension}"
    );
    assert_eq!(inspect["layers"].as_array().unwrap().len(), 1);
}

//! `seal save --format oci-archive|oci-dir|docker-archive` and `seal load`, checked with
//! skopeo and umoci, round trips into fresh stores, archives made by skopeo and by hand, and
//! hostile archives (each refused with exit 1, no new name, nothing written outside the store).

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use common::{tool, Ctx, Out, Seal};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use tempfile::TempDir;

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn sha256(bytes: &[u8]) -> String {
    let d = Sha256::digest(bytes);
    format!(
        "sha256:{}",
        d.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

fn hex_of(digest: &str) -> &str {
    digest.strip_prefix("sha256:").expect("a sha256 digest")
}

/// A cluster-image context: ENV, LABEL, two COPYs, CMD (so the manifest carries Sealer's
/// annotations and the config its metadata).
fn cluster_context() -> Ctx {
    let ctx = Ctx::new();
    ctx.kubefile(
        "FROM scratch\n\
         ENV FOO=bar\n\
         LABEL team=infra\n\
         COPY manifests manifests\n\
         COPY bin/tool bin\n\
         CMD kubectl apply -f manifests\n",
    )
    .file("manifests/a.yaml", "kind: A\n")
    .file("manifests/b.yaml", "kind: B\n")
    .file_mode("bin/tool", "#!/bin/sh\necho tool\n", 0o755);
    ctx
}

/// A scratch directory for outputs, and an empty working directory to run seal in (which must
/// stay empty).
struct Work {
    dir: TempDir,
    cwd: TempDir,
}

impl Work {
    fn new() -> Work {
        Work {
            dir: TempDir::new().unwrap(),
            cwd: TempDir::new().unwrap(),
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn seal(&self, seal: &Seal, args: &[&str]) -> Out {
        let out = seal.run_in(self.cwd.path(), args);
        assert_eq!(
            std::fs::read_dir(self.cwd.path()).unwrap().count(),
            0,
            "seal wrote into its working directory"
        );
        out
    }

    fn save(&self, seal: &Seal, format: &str, name: &str, out: &Path) {
        let o = self.seal(seal, &["save", "--format", format, "-o", s(out), name]);
        assert_eq!(
            o.code, 0,
            "seal save --format {format} failed:\n{}",
            o.stderr
        );
    }

    /// `seal load -i PATH [extra]`, required to succeed; returns (name, digest) per stdout line.
    fn load(&self, seal: &Seal, input: &Path, extra: &[&str]) -> (Vec<(String, String)>, Out) {
        let mut args = vec!["load", "-i", s(input)];
        args.extend_from_slice(extra);
        let o = self.seal(seal, &args);
        assert_eq!(o.code, 0, "seal load {input:?} failed:\n{}", o.stderr);
        let lines = o
            .stdout
            .lines()
            .map(|l| {
                let (n, d) = l.split_once(' ').expect("NAME DIGEST");
                (n.to_string(), d.to_string())
            })
            .collect();
        (lines, o)
    }
}

/// `seal images --format json` as (name, digest).
fn images(seal: &Seal) -> Vec<(String, String)> {
    let dir = TempDir::new().unwrap();
    let out = seal.run_in(dir.path(), &["images", "--format", "json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap().to_string(),
                r["digest"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn diff_ids(inspect: &Value) -> Vec<Value> {
    inspect["config"]["rootfs"]["diff_ids"]
        .as_array()
        .unwrap()
        .clone()
}

/// Every entry of a tar file: name -> bytes (directories and links as empty).
fn tar_entries(path: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut archive = tar::Archive::new(std::fs::File::open(path).unwrap());
    let mut out = BTreeMap::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().to_str().unwrap().to_string();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        out.insert(name, bytes);
    }
    out
}

fn json_of(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).expect("JSON")
}

/// `skopeo inspect REF` as JSON.
fn skopeo_inspect(reference: &str, cwd: &Path) -> Value {
    let out = tool("skopeo", &["inspect", reference], cwd);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("skopeo output ({e}):\n{out}"))
}

#[test]
fn oci_archive_round_trip_keeps_the_digest_and_the_image_builds_on() {
    let seal = Seal::new();
    let ctx = cluster_context();
    let digest = seal.digest(ctx.path(), "demo:v1", &[]);
    let work = Work::new();
    let archive = work.path("demo.tar");
    work.save(&seal, "oci-archive", "demo:v1", &archive);

    let fresh = Seal::new();
    let (loaded, out) = work.load(&fresh, &archive, &[]);
    assert_eq!(
        loaded,
        vec![("docker.io/sealerio/demo:v1".to_string(), digest.clone())]
    );
    assert!(out.stderr.contains("loaded 1 image"), "{}", out.stderr);
    let (a, b) = (seal.inspect("demo:v1"), fresh.inspect("demo:v1"));
    assert_eq!(a, b, "the loaded image inspects the same");
    assert_eq!(
        std::fs::read_dir(fresh.root().join("tmp")).unwrap().count(),
        0
    );

    // Loading again is a no-op that names the same manifest.
    let (again, _) = work.load(&fresh, &archive, &[]);
    assert_eq!(again, loaded);

    // The loaded image is a usable base (its layers unpack), and -t renames.
    let (renamed, _) = work.load(&fresh, &archive, &["-t", "other/base:2"]);
    assert_eq!(
        renamed,
        vec![("docker.io/other/base:2".to_string(), digest.clone())]
    );
    let child = Ctx::new();
    child
        .kubefile("FROM other/base:2\nCOPY c.txt child\n")
        .file("c.txt", "c\n");
    fresh.digest(child.path(), "child:1", &[]);
    let inspect = fresh.inspect("child:1");
    assert_eq!(inspect["layers"].as_array().unwrap().len(), 3);
    assert_eq!(
        inspect["config"]["config"]["Env"],
        json!(["FOO=bar"]),
        "{inspect:#}"
    );
}

#[test]
fn oci_dir_is_a_layout_skopeo_and_umoci_read_and_loads_back_unchanged() {
    let seal = Seal::new();
    let ctx = cluster_context();
    let digest = seal.digest(ctx.path(), "demo:v1", &["--compression", "gzip"]);
    let work = Work::new();
    let layout = work.path("layout");
    work.save(&seal, "oci-dir", "demo:v1", &layout);
    let names: Vec<String> = std::fs::read_dir(&layout)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_str().unwrap().to_string())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(names, ["blobs", "index.json", "oci-layout"]);
    let skopeo = skopeo_inspect(&format!("oci:{}:v1", s(&layout)), work.dir.path());
    assert_eq!(skopeo["Digest"], digest.as_str(), "{skopeo:#}");
    let bundle = work.path("bundle");
    tool(
        "umoci",
        &[
            "unpack",
            "--rootless",
            "--image",
            &format!("{}:v1", s(&layout)),
            s(&bundle),
        ],
        work.dir.path(),
    );
    assert_eq!(
        std::fs::read_to_string(bundle.join("rootfs/bin/tool")).unwrap(),
        "#!/bin/sh\necho tool\n"
    );
    // No temp directory is left beside it.
    let beside: Vec<_> = std::fs::read_dir(work.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_str().unwrap().starts_with(".seal"))
        .collect();
    assert!(beside.is_empty(), "{beside:?}");

    let fresh = Seal::new();
    let (loaded, out) = work.load(&fresh, &layout, &[]);
    assert_eq!(loaded[0].1, digest);
    assert!(out.stderr.contains("(oci:"), "{}", out.stderr);
    assert_eq!(seal.inspect("demo:v1"), fresh.inspect("demo:v1"));

    // The same bytes as the OCI archive's contents.
    let archive = work.path("demo.tar");
    work.save(&seal, "oci-archive", "demo:v1", &archive);
    for (name, bytes) in tar_entries(&archive) {
        if !name.ends_with('/') {
            assert_eq!(
                std::fs::read(layout.join(&name)).unwrap(),
                bytes,
                "{name} differs between oci-dir and oci-archive"
            );
        }
    }

    // An existing empty directory is fine; a non-empty one or a file is refused.
    let empty = work.path("empty");
    std::fs::create_dir(&empty).unwrap();
    work.save(&seal, "oci-dir", "demo:v1", &empty);
    assert!(empty.join("index.json").is_file());
    for taken in [&layout, &archive] {
        let o = work.seal(
            &seal,
            &["save", "--format", "oci-dir", "-o", s(taken), "demo:v1"],
        );
        assert_eq!(o.code, 1, "{}", o.stderr);
        assert!(o.stderr.contains("not an empty directory"), "{}", o.stderr);
    }
    assert!(archive.is_file());
}

#[test]
fn docker_archive_has_uncompressed_layers_skopeo_reads_and_round_trips_stably() {
    let seal = Seal::new();
    let ctx = cluster_context();
    seal.digest(ctx.path(), "demo:v1", &[]); // zstd layers
    let original = seal.inspect("demo:v1");
    let work = Work::new();
    let first = work.path("first.tar");
    work.save(&seal, "docker-archive", "demo:v1", &first);

    // docker save's shape: manifest.json -> config + uncompressed layer tars named by diffID.
    let entries = tar_entries(&first);
    let manifest = json_of(&entries["manifest.json"]);
    assert_eq!(
        manifest[0]["RepoTags"],
        json!(["docker.io/sealerio/demo:v1"])
    );
    let config_path = manifest[0]["Config"].as_str().unwrap();
    assert_eq!(
        sha256(&entries[config_path]),
        original["configDigest"].as_str().unwrap(),
        "the config is the image's own config blob"
    );
    let want_diff_ids = diff_ids(&original);
    let layer_paths = manifest[0]["Layers"].as_array().unwrap();
    assert_eq!(layer_paths.len(), want_diff_ids.len());
    for (path, diff_id) in layer_paths.iter().zip(&want_diff_ids) {
        let bytes = &entries[path.as_str().unwrap()];
        assert_eq!(&bytes[257..262], b"ustar", "{path} is a plain tar");
        assert_eq!(sha256(bytes), diff_id.as_str().unwrap());
    }

    // Independent readers.
    let skopeo = skopeo_inspect(&format!("docker-archive:{}", s(&first)), work.dir.path());
    assert_eq!(
        skopeo["Layers"].as_array().unwrap(),
        &want_diff_ids,
        "{skopeo:#}"
    );
    assert_eq!(skopeo["Labels"]["team"], "infra");
    let copied = work.path("copied");
    tool(
        "skopeo",
        &[
            "copy",
            "-q",
            &format!("docker-archive:{}", s(&first)),
            &format!("oci:{}:x", s(&copied)),
        ],
        work.dir.path(),
    );
    skopeo_inspect(&format!("oci-archive:{}", s(&first)), work.dir.path());

    // Saving twice gives the same bytes.
    let twice = work.path("twice.tar");
    work.save(&seal, "docker-archive", "demo:v1", &twice);
    assert_eq!(
        std::fs::read(&first).unwrap(),
        std::fs::read(&twice).unwrap()
    );

    // Load into a fresh store: the layers were re-encoded (plain tars now), so the manifest
    // digest differs, but diffIDs, config and Sealer's annotations are the same.
    let second_store = Seal::new();
    let (loaded, _) = work.load(&second_store, &first, &[]);
    assert_eq!(loaded[0].0, "docker.io/sealerio/demo:v1");
    let loaded_inspect = second_store.inspect("demo:v1");
    assert_ne!(loaded_inspect["digest"], original["digest"]);
    assert_eq!(diff_ids(&loaded_inspect), want_diff_ids);
    assert_eq!(loaded_inspect["config"], original["config"]);
    assert_eq!(loaded_inspect["configDigest"], original["configDigest"]);
    assert_eq!(loaded_inspect["annotations"], original["annotations"]);
    for layer in loaded_inspect["layers"].as_array().unwrap() {
        assert_eq!(layer["mediaType"], "application/vnd.oci.image.layer.v1.tar");
        assert_eq!(layer["digest"], layer["diffID"]);
    }

    // A second round trip of the loaded image is stable: same archive bytes, same manifest.
    let second = work.path("second.tar");
    work.save(&second_store, "docker-archive", "demo:v1", &second);
    assert_eq!(
        std::fs::read(&first).unwrap(),
        std::fs::read(&second).unwrap()
    );
    let third_store = Seal::new();
    let (again, _) = work.load(&third_store, &second, &[]);
    assert_eq!(again, loaded);

    // Without the OCI index only manifest.json is read: the same config and diffIDs, no
    // annotations (a plain docker archive has nowhere to keep them).
    let plain = work.path("plain.tar");
    let mut b = tar::Builder::new(std::fs::File::create(&plain).unwrap());
    for (name, bytes) in &entries {
        if name == "index.json" || name == "oci-layout" || name.ends_with('/') {
            continue;
        }
        let mut h = tar::Header::new_ustar();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, name, bytes.as_slice()).unwrap();
    }
    b.finish().unwrap();
    drop(b);
    let plain_store = Seal::new();
    let (_, out) = work.load(&plain_store, &plain, &[]);
    assert!(out.stderr.contains("docker-archive"), "{}", out.stderr);
    let plain_inspect = plain_store.inspect("demo:v1");
    assert_eq!(diff_ids(&plain_inspect), want_diff_ids);
    assert_eq!(plain_inspect["configDigest"], original["configDigest"]);
    assert_eq!(plain_inspect["annotations"], json!({}));
}

#[test]
fn archives_made_by_skopeo_load() {
    let seal = Seal::new();
    let ctx = cluster_context();
    seal.digest(ctx.path(), "demo:v1", &["--compression", "gzip"]);
    let original = seal.inspect("demo:v1");
    let work = Work::new();
    let archive = work.path("seal.tar");
    work.save(&seal, "oci-archive", "demo:v1", &archive);
    let other = work.path("other.tar");
    tool(
        "skopeo",
        &[
            "copy",
            "-q",
            &format!("oci-archive:{}", s(&archive)),
            &format!("docker-archive:{}:name:tag", s(&other)),
        ],
        work.dir.path(),
    );
    // skopeo's docker archives carry legacy `<id>/layer.tar` symlinks: tolerated, not followed.
    let fresh = Seal::new();
    let (loaded, out) = work.load(&fresh, &other, &[]);
    assert_eq!(loaded.len(), 1, "{}", out.stderr);
    assert_eq!(loaded[0].0, "docker.io/library/name:tag");
    let inspect = fresh.inspect("docker.io/library/name:tag");
    assert_eq!(diff_ids(&inspect), diff_ids(&original));
    assert_eq!(inspect["config"], original["config"]);
    assert_eq!(inspect["configDigest"], original["configDigest"]);

    // -t names the one image instead.
    let renamed = Seal::new();
    let (loaded, _) = work.load(&renamed, &other, &["-t", "mine:1"]);
    assert_eq!(loaded[0].0, "docker.io/sealerio/mine:1");
    assert_eq!(images(&renamed).len(), 1);

    // An OCI archive written by skopeo (names given as a whole reference in ref.name).
    let oci = work.path("skopeo-oci.tar");
    tool(
        "skopeo",
        &[
            "copy",
            "-q",
            &format!("oci-archive:{}", s(&archive)),
            &format!("oci-archive:{}:example.com/team/app:3", s(&oci)),
        ],
        work.dir.path(),
    );
    let fresh = Seal::new();
    let (loaded, _) = work.load(&fresh, &oci, &[]);
    assert_eq!(loaded[0].0, "example.com/team/app:3");
    assert_eq!(
        diff_ids(&fresh.inspect("example.com/team/app:3")),
        diff_ids(&original)
    );
}

// ---------------------------------------------------------------------------------------------
// Hand-made archives.

fn layer_tar(files: &[(&str, &str)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, content) in files {
        let mut h = tar::Header::new_ustar();
        h.set_size(content.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        b.append_data(&mut h, path, content.as_bytes()).unwrap();
    }
    b.into_inner().unwrap()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn zstd(bytes: &[u8]) -> Vec<u8> {
    zstd::encode_all(bytes, 3).unwrap()
}

const OCI_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
const OCI_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const OCI_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// Three layers: plain tar, gzip, zstd.
fn three_layers(tag: &str) -> Vec<(Vec<u8>, &'static str, Vec<u8>)> {
    let a = layer_tar(&[("a.txt", tag)]);
    let b = layer_tar(&[("b.txt", "b\n")]);
    let c = layer_tar(&[("c/c.txt", "c\n")]);
    vec![
        (a.clone(), OCI_TAR, a),
        (gzip(&b), OCI_GZIP, b),
        (zstd(&c), OCI_ZSTD, c),
    ]
}

/// An OCI layout being made by hand.
#[derive(Default)]
struct Layout {
    blobs: BTreeMap<String, Vec<u8>>,
}

impl Layout {
    fn blob(&mut self, bytes: Vec<u8>) -> (String, usize) {
        let d = sha256(&bytes);
        let n = bytes.len();
        self.blobs.insert(d.clone(), bytes);
        (d, n)
    }

    fn json(&mut self, media_type: &str, value: &Value) -> Value {
        let (digest, size) = self.blob(serde_json::to_vec(value).unwrap());
        json!({ "mediaType": media_type, "digest": digest, "size": size })
    }

    /// An image: (blob, media type, uncompressed) per layer. Returns its manifest descriptor.
    fn image(&mut self, layers: Vec<(Vec<u8>, &str, Vec<u8>)>, arch: &str) -> Value {
        let mut descs = Vec::new();
        let mut diff_ids = Vec::new();
        for (blob, media_type, raw) in layers {
            diff_ids.push(sha256(&raw));
            let (digest, size) = self.blob(blob);
            descs.push(json!({ "mediaType": media_type, "digest": digest, "size": size }));
        }
        let config = json!({
            "architecture": arch, "os": "linux",
            "config": { "Env": ["HAND=made"] },
            "rootfs": { "type": "layers", "diff_ids": diff_ids },
        });
        let config = self.json("application/vnd.oci.image.config.v1+json", &config);
        let manifest = json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": descs,
        });
        self.json(OCI_MANIFEST, &manifest)
    }

    /// Write the layout with this index.json into a new directory.
    fn write(&self, dir: &Path, manifests: Vec<Value>) {
        std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
        for (digest, bytes) in &self.blobs {
            std::fs::write(dir.join("blobs/sha256").join(hex_of(digest)), bytes).unwrap();
        }
        let index = json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests });
        std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
        std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    }

    /// The layout as a tar made by GNU tar (`./`-prefixed names).
    fn tar(&self, work: &Work, name: &str, manifests: Vec<Value>) -> PathBuf {
        let dir = work.path(&format!("{name}.d"));
        self.write(&dir, manifests);
        let out = work.path(name);
        tool(
            "tar",
            &["-C", s(&dir), "-cf", s(&out), "."],
            work.dir.path(),
        );
        out
    }
}

fn named(mut desc: Value, annotations: Value) -> Value {
    desc["annotations"] = annotations;
    desc
}

#[test]
fn a_hand_made_layout_loads_every_named_image_and_every_platform() {
    let mut layout = Layout::default();
    let one = layout.image(three_layers("one\n"), host_arch());
    let two = layout.image(three_layers("two\n"), host_arch());
    let bare = layout.image(three_layers("bare\n"), host_arch());
    let host = layout.image(three_layers("host\n"), host_arch());
    let foreign = layout.image(three_layers("foreign\n"), "s390x-none");
    let mut host_entry = host.clone();
    host_entry["platform"] = json!({ "os": "linux", "architecture": host_arch() });
    let mut foreign_entry = foreign.clone();
    foreign_entry["platform"] = json!({ "os": "linux", "architecture": "s390x-none" });
    let multi = layout.json(
        OCI_INDEX,
        &json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [foreign_entry, host_entry] }),
    );
    let work = Work::new();
    let archive = layout.tar(
        &work,
        "hand.tar",
        vec![
            named(
                one.clone(),
                json!({ "io.containerd.image.name": "docker.io/hand/one:1" }),
            ),
            named(
                two.clone(),
                json!({ "org.opencontainers.image.ref.name": "example.com/hand/two:2" }),
            ),
            named(bare, json!({ "org.opencontainers.image.ref.name": "v1" })),
            named(
                multi.clone(),
                json!({ "io.containerd.image.name": "hand/multi:3" }),
            ),
        ],
    );
    let seal = Seal::new();
    let (loaded, out) = work.load(&seal, &archive, &[]);
    let loaded: BTreeMap<String, String> = loaded.into_iter().collect();
    let want: BTreeMap<String, String> = [
        ("docker.io/hand/one:1", &one),
        ("example.com/hand/two:2", &two),
        // Every platform of a multi-platform image is in the archive: it loads whole (issue 19).
        ("docker.io/hand/multi:3", &multi),
    ]
    .into_iter()
    .map(|(n, d)| (n.to_string(), d["digest"].as_str().unwrap().to_string()))
    .collect();
    assert_eq!(loaded, want);
    assert!(
        out.stderr.contains("warning: skipping") && out.stderr.contains("(v1)"),
        "the unnamed image is skipped with a warning:\n{}",
        out.stderr
    );
    let inspect = seal.inspect("hand/multi:3");
    let platforms = inspect["platforms"].as_array().unwrap();
    assert_eq!(platforms.len(), 2, "{inspect:#}");
    let inspect = platforms
        .iter()
        .find(|p| p["digest"] == host["digest"])
        .unwrap();
    let media: Vec<&str> = inspect["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["mediaType"].as_str().unwrap())
        .collect();
    assert_eq!(media, [OCI_TAR, OCI_GZIP, OCI_ZSTD]);

    // The same layout as a directory, gzip-compressed, and on stdin.
    let dir = work.path("hand.tar.d");
    let (from_dir, _) = work.load(&Seal::new(), &dir, &[]);
    assert_eq!(from_dir.into_iter().collect::<BTreeMap<_, _>>(), want);
    let gz = work.path("hand.tar.gz");
    std::fs::write(&gz, gzip(&std::fs::read(&archive).unwrap())).unwrap();
    let (from_gz, _) = work.load(&Seal::new(), &gz, &[]);
    assert_eq!(from_gz.into_iter().collect::<BTreeMap<_, _>>(), want);
    let stdin_seal = Seal::new();
    let mut cmd = stdin_seal.command();
    cmd.current_dir(work.cwd.path())
        .args(["load", "-i", "-"])
        .stdin(std::fs::File::open(&archive).unwrap());
    let o = cmd.output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(images(&stdin_seal).len(), 3);

    // The unnamed image alone, with -t; -t with several images is refused.
    let mut alone = Layout::default();
    let only = alone.image(three_layers("alone\n"), host_arch());
    let single = alone.tar(&work, "alone.tar", vec![only.clone()]);
    let no_name = work.seal(&Seal::new(), &["load", "-i", s(&single)]);
    assert_eq!(no_name.code, 1);
    assert!(no_name.stderr.contains("-t NAME"), "{}", no_name.stderr);
    let (named_now, _) = work.load(&Seal::new(), &single, &["-t", "alone:1"]);
    assert_eq!(
        named_now,
        vec![(
            "docker.io/sealerio/alone:1".to_string(),
            only["digest"].as_str().unwrap().to_string()
        )]
    );
    let several = work.seal(&Seal::new(), &["load", "-i", s(&archive), "-t", "x:1"]);
    assert_eq!(several.code, 1);
    assert!(several.stderr.contains("exactly one"), "{}", several.stderr);
}

/// A docker archive by hand: classic `<id>/layer.tar` paths, layers tar / gzip / zstd.
fn docker_archive(work: &Work, name: &str, layers: &[Vec<u8>], diff_ids: &[String]) -> PathBuf {
    let config = serde_json::to_vec(&json!({
        "architecture": host_arch(), "os": "linux",
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
    }))
    .unwrap();
    let config_name = format!("{}.json", hex_of(&sha256(&config)));
    let mut files = vec![(config_name.clone(), config)];
    let mut paths = Vec::new();
    for (i, layer) in layers.iter().enumerate() {
        let path = format!("layer{i}/layer.tar");
        files.push((path.clone(), layer.clone()));
        paths.push(path);
    }
    let manifest =
        json!([{ "Config": config_name, "RepoTags": ["hand/docker:1"], "Layers": paths }]);
    files.push((
        "manifest.json".to_string(),
        serde_json::to_vec(&manifest).unwrap(),
    ));
    let out = work.path(name);
    let mut b = tar::Builder::new(std::fs::File::create(&out).unwrap());
    for (path, bytes) in files {
        let mut h = tar::Header::new_ustar();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, path, bytes.as_slice()).unwrap();
    }
    b.finish().unwrap();
    out
}

#[test]
fn a_hand_made_docker_archive_with_mixed_compression_loads_as_it_is() {
    let work = Work::new();
    let layers = three_layers("docker\n");
    let blobs: Vec<Vec<u8>> = layers.iter().map(|l| l.0.clone()).collect();
    let diff_ids: Vec<String> = layers.iter().map(|l| sha256(&l.2)).collect();
    let archive = docker_archive(&work, "docker.tar", &blobs, &diff_ids);
    let seal = Seal::new();
    let (loaded, _) = work.load(&seal, &archive, &[]);
    assert_eq!(loaded[0].0, "docker.io/hand/docker:1");
    let inspect = seal.inspect("hand/docker:1");
    let got: Vec<(String, String, String)> = inspect["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["mediaType"].as_str().unwrap().to_string(),
                l["digest"].as_str().unwrap().to_string(),
                l["diffID"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want: Vec<(String, String, String)> = layers
        .iter()
        .map(|(blob, media, raw)| (media.to_string(), sha256(blob), sha256(raw)))
        .collect();
    assert_eq!(
        got, want,
        "stored as they are, media types from the magic bytes"
    );
    // Loading the same archive again gives the same manifest.
    let (again, _) = work.load(&Seal::new(), &archive, &[]);
    assert_eq!(again, loaded);
}

// ---------------------------------------------------------------------------------------------
// Hostile archives.

enum Raw<'a> {
    File(&'a [u8]),
    /// A file whose header declares this many bytes (the data is not there).
    Declared(u64),
    Symlink(&'a str),
}

/// A tar with raw, unchecked entry names.
fn raw_tar(entries: &[(&str, Raw<'_>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (path, raw) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        let (data, size): (&[u8], u64) = match raw {
            Raw::File(d) => (d, d.len() as u64),
            Raw::Declared(n) => (&[], *n),
            Raw::Symlink(_) => (&[], 0),
        };
        h.set_entry_type(match raw {
            Raw::Symlink(_) => tar::EntryType::Symlink,
            _ => tar::EntryType::Regular,
        });
        if let Raw::Symlink(target) = raw {
            h.set_link_name(target).unwrap();
        }
        h.set_size(size);
        let name = h.as_old_mut().name.as_mut();
        name[..path.len()].copy_from_slice(path.as_bytes());
        h.set_cksum();
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.extend_from_slice(&[0u8; 1024]);
    out
}

/// The entries of a valid hand-made layout with one named image (so a hostile change is the
/// only thing wrong), and the image's manifest and first layer digests.
fn valid_layout() -> (Vec<(String, Vec<u8>)>, Value, String) {
    let mut layout = Layout::default();
    let manifest = layout.image(three_layers("x\n"), host_arch());
    let manifest_json = json_of(&layout.blobs[manifest["digest"].as_str().unwrap()]);
    let layer = manifest_json["layers"][1]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let index = json!({ "schemaVersion": 2, "manifests": [named(manifest.clone(), json!({ "io.containerd.image.name": "bad/image:1" }))] });
    let mut entries = vec![
        (
            "oci-layout".to_string(),
            br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
        ),
        (
            "index.json".to_string(),
            serde_json::to_vec(&index).unwrap(),
        ),
    ];
    for (digest, bytes) in layout.blobs {
        entries.push((format!("blobs/sha256/{}", hex_of(&digest)), bytes));
    }
    (entries, manifest, layer)
}

fn entries_tar(entries: &[(String, Vec<u8>)], extra: &[(&str, Raw<'_>)]) -> Vec<u8> {
    let mut all: Vec<(&str, Raw<'_>)> = entries
        .iter()
        .map(|(n, b)| (n.as_str(), Raw::File(b.as_slice())))
        .collect();
    for (n, r) in extra {
        all.push((
            n,
            match r {
                Raw::File(b) => Raw::File(b),
                Raw::Declared(n) => Raw::Declared(*n),
                Raw::Symlink(t) => Raw::Symlink(t),
            },
        ));
    }
    raw_tar(&all)
}

/// Load `bytes` as an archive into a fresh store: exit 1, `needle` in the error, no image
/// name, nothing left in the store's tmp/, nothing written beside the archive or in the cwd.
fn assert_refused(what: &str, bytes: &[u8], needle: &str) {
    let work = Work::new();
    let archive = work.path("hostile.tar");
    std::fs::write(&archive, bytes).unwrap();
    let seal = Seal::new();
    let out = work.seal(&seal, &["load", "-i", s(&archive)]);
    assert_eq!(out.code, 1, "{what}: exit code\n{}", out.stderr);
    assert!(
        out.stderr.contains(needle),
        "{what}: the error should say `{needle}`:\n{}",
        out.stderr
    );
    assert!(out.stdout.is_empty(), "{what}: {}", out.stdout);
    assert!(
        images(&seal).is_empty(),
        "{what}: an image name was created"
    );
    assert_eq!(
        std::fs::read_dir(seal.root().join("tmp")).unwrap().count(),
        0,
        "{what}: tmp/ is not empty"
    );
    let beside: Vec<_> = std::fs::read_dir(work.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(beside, ["hostile.tar"], "{what}: files beside the archive");
}

#[test]
fn hostile_archives_are_refused_and_name_nothing() {
    let (entries, manifest, layer) = valid_layout();
    let manifest_digest = manifest["digest"].as_str().unwrap().to_string();
    let layer_path = format!("blobs/sha256/{}", hex_of(&layer));
    // The valid layout itself loads.
    {
        let work = Work::new();
        let path = work.path("ok.tar");
        std::fs::write(&path, entries_tar(&entries, &[])).unwrap();
        work.load(&Seal::new(), &path, &[]);
    }

    assert_refused(
        "a ../ entry",
        &entries_tar(&entries, &[("../escape", Raw::File(b"x"))]),
        "refusing entry `../escape`: it leads outside the archive",
    );
    assert_refused(
        "an absolute entry",
        &entries_tar(&entries, &[("/tmp/escape", Raw::File(b"x"))]),
        "refusing entry `/tmp/escape`: it is an absolute path",
    );

    let without = |name: &str| -> Vec<(String, Vec<u8>)> {
        entries.iter().filter(|(n, _)| n != name).cloned().collect()
    };
    assert_refused(
        "a layer that is a symlink",
        &entries_tar(
            &without(&layer_path),
            &[(&layer_path, Raw::Symlink("/etc/passwd"))],
        ),
        "is a symbolic link in the archive; refusing to follow it",
    );
    assert_refused(
        "index.json that is a symlink",
        &entries_tar(
            &without("index.json"),
            &[("index.json", Raw::Symlink("/etc/passwd"))],
        ),
        "`index.json` is a symbolic link",
    );
    assert_refused(
        "a huge declared size",
        &entries_tar(&entries, &[("blobs/sha256/huge", Raw::Declared(1 << 40))]),
        "past the end of the archive",
    );
    let whole = entries_tar(&entries, &[]);
    assert_refused(
        "a truncated archive",
        &whole[..whole.len() / 2],
        "truncated",
    );
    assert_refused(
        "a missing blob",
        &entries_tar(&without(&layer_path), &[]),
        &format!("layer {layer} is missing from the archive"),
    );
    assert_refused(
        "a missing manifest",
        &entries_tar(
            &without(&format!("blobs/sha256/{}", hex_of(&manifest_digest))),
            &[],
        ),
        &format!("manifest {manifest_digest} is missing"),
    );

    // A tampered layer (same size): its digest no longer matches.
    let tampered: Vec<(String, Vec<u8>)> = entries
        .iter()
        .map(|(n, b)| {
            let mut b = b.clone();
            if *n == layer_path {
                let last = b.len() - 1;
                b[last] ^= 0xff;
            }
            (n.clone(), b)
        })
        .collect();
    assert_refused(
        "a tampered layer",
        &entries_tar(&tampered, &[]),
        &format!("layer {layer}: the content does not match its digest"),
    );

    // A manifest that is not JSON (its digest is right, so only the parse fails).
    let garbage = b"this is not json".to_vec();
    let garbage_digest = sha256(&garbage);
    let index = json!({ "schemaVersion": 2, "manifests": [{
        "mediaType": OCI_MANIFEST, "digest": garbage_digest, "size": garbage.len(),
        "annotations": { "io.containerd.image.name": "bad/image:1" } }] });
    let mut not_json = without("index.json");
    not_json.push(("index.json".into(), serde_json::to_vec(&index).unwrap()));
    not_json.push((format!("blobs/sha256/{}", hex_of(&garbage_digest)), garbage));
    assert_refused(
        "a manifest that is not JSON",
        &entries_tar(&not_json, &[]),
        "is not a valid image manifest",
    );
    // A descriptor whose size does not match the blob.
    let mut wrong_size = without("index.json");
    let mut lying = manifest.clone();
    lying["size"] = json!(1u64 << 40);
    lying["annotations"] = json!({ "io.containerd.image.name": "bad/image:1" });
    wrong_size.push((
        "index.json".into(),
        serde_json::to_vec(&json!({ "schemaVersion": 2, "manifests": [lying] })).unwrap(),
    ));
    assert_refused(
        "a size that lies",
        &entries_tar(&wrong_size, &[]),
        "its descriptor says 1099511627776",
    );
    assert_refused(
        "index.json that is not JSON",
        &entries_tar(&without("index.json"), &[("index.json", Raw::File(b"{"))]),
        "index.json is not a valid image index",
    );
    assert_refused("not a tar at all", &[b'x'; 2048], "not a valid tar archive");
    assert_refused("an empty tar", &[0u8; 1024], "neither an OCI archive");
    assert_refused(
        "a duplicate entry",
        &entries_tar(&entries, &[("index.json", Raw::File(b"{}"))]),
        "appears twice",
    );
}

#[test]
fn a_failed_load_names_no_image_even_after_good_ones() {
    // Two named images; the second's layer is corrupt: neither name may appear.
    let mut layout = Layout::default();
    let good = layout.image(three_layers("good\n"), host_arch());
    let bad = layout.image(three_layers("bad\n"), host_arch());
    let work = Work::new();
    let dir = work.path("layout");
    layout.write(
        &dir,
        vec![
            named(good, json!({ "io.containerd.image.name": "a/good:1" })),
            named(
                bad.clone(),
                json!({ "io.containerd.image.name": "z/bad:1" }),
            ),
        ],
    );
    let bad_manifest = json_of(&layout.blobs[bad["digest"].as_str().unwrap()]);
    let layer = bad_manifest["layers"][2]["digest"].as_str().unwrap();
    let path = dir.join("blobs/sha256").join(hex_of(layer));
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[0] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    let seal = Seal::new();
    // Something already in the store stays as it was.
    let ctx = cluster_context();
    let before = seal.digest(ctx.path(), "demo:v1", &[]);
    let out = work.seal(&seal, &["load", "-i", s(&dir)]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!(
            "layer {layer}: the content does not match its digest"
        )),
        "{}",
        out.stderr
    );
    assert_eq!(
        images(&seal),
        vec![("docker.io/sealerio/demo:v1".to_string(), before)]
    );
    assert_eq!(
        std::fs::read_dir(seal.root().join("tmp")).unwrap().count(),
        0
    );

    // A layer whose content does not match the config's diffID (docker archive).
    let layers = three_layers("d\n");
    let blobs: Vec<Vec<u8>> = layers.iter().map(|l| l.0.clone()).collect();
    let mut diff_ids: Vec<String> = layers.iter().map(|l| sha256(&l.2)).collect();
    diff_ids[1] = sha256(b"something else");
    let archive = docker_archive(&work, "lying.tar", &blobs, &diff_ids);
    let out = work.seal(&seal, &["load", "-i", s(&archive)]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("layer `layer1/layer.tar`")
            && out.stderr.contains("but the config says diffID"),
        "{}",
        out.stderr
    );
    assert_eq!(images(&seal).len(), 1);

    // A symlink inside a layout directory is not followed.
    let linked = work.path("linked");
    let mut one = Layout::default();
    let m = one.image(three_layers("l\n"), host_arch());
    one.write(
        &linked,
        vec![named(m, json!({ "io.containerd.image.name": "l/l:1" }))],
    );
    std::fs::rename(linked.join("index.json"), work.path("real-index.json")).unwrap();
    std::os::unix::fs::symlink(work.path("real-index.json"), linked.join("index.json")).unwrap();
    let out = work.seal(&seal, &["load", "-i", s(&linked)]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("symbolic link"), "{}", out.stderr);
    assert_eq!(images(&seal).len(), 1);
}

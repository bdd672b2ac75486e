//! Issue 12: COPY lands where Docker would, and no COPY/ADD/FROM flag is silently ignored.
//!
//! * points 1 and 2 — a COPY over a base follows the base's symlinks on its destination and
//!   keeps the mode and owner of the destination's existing directories; its cache key covers
//!   that resolution and nothing else of the base (an unrelated base change keeps it cached);
//! * point 3 — `FROM --platform` other than the host's, a malformed one, and FROM of an image
//!   of another platform are errors at the line;
//! * point 10 — a file-like destination warns; `--chmod` takes BuildKit's symbolic form;
//! * point 11 — `--link` is honoured (the layer ignores the base), `--keep-git-dir` is refused,
//!   `.dockerignore` is read beside `.sealignore`.
//!
//! Layers are built with `--compression none` and read back with the `tar` crate.

mod common;

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use common::{Ctx, SavedLayout, Seal, Step};

/// `path -> "mode uid:gid"` (plus ` -> target` for links) of every entry of a plain layer tar.
fn layer_listing(blob: &Path) -> BTreeMap<String, String> {
    let mut bytes = Vec::new();
    std::fs::File::open(blob)
        .unwrap()
        .read_to_end(&mut bytes)
        .unwrap();
    if bytes.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        bytes = zstd::decode_all(&bytes[..]).unwrap();
    }
    let mut out = BTreeMap::new();
    let mut archive = tar::Archive::new(&bytes[..]);
    for entry in archive.entries().unwrap() {
        let e = entry.unwrap();
        let h = e.header();
        let path = e.path().unwrap().display().to_string();
        let path = path.trim_end_matches('/').to_string();
        let mut what = format!(
            "{:o} {}:{}",
            h.mode().unwrap() & 0o7777,
            h.uid().unwrap(),
            h.gid().unwrap()
        );
        if let Some(target) = e.link_name().unwrap() {
            what.push_str(&format!(" -> {}", target.display()));
        }
        out.insert(path, what);
    }
    out
}

/// The listings of the image's layers, bottom to top.
fn layers(seal: &Seal, name: &str) -> Vec<BTreeMap<String, String>> {
    let saved = SavedLayout::new(seal, name);
    saved
        .layer_blobs()
        .iter()
        .map(|b| layer_listing(b))
        .collect()
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// A merged-/usr base: `bin -> usr/bin`, `etc/kubernetes/pki` at 0700, everything owned 5:6.
fn base_context(pki_mode: u32, unrelated: &str) -> Ctx {
    let ctx = Ctx::new();
    ctx.file_mode("rootfs/usr/bin/sh", "#!/bin/true\n", 0o755)
        .symlink("rootfs/bin", "usr/bin")
        .file_mode("rootfs/etc/kubernetes/pki/old.crt", "old\n", 0o600)
        .file("rootfs/opt/unrelated.txt", unrelated)
        .file("rootfs/opt/application/apps/.keep", "")
        .symlink("rootfs/application", "opt/application")
        .kubefile("FROM scratch\nCOPY --chown=5:6 rootfs/. .\n");
    std::fs::set_permissions(
        ctx.path().join("rootfs/etc/kubernetes/pki"),
        std::os::unix::fs::PermissionsExt::from_mode(pki_mode),
    )
    .unwrap();
    ctx.age();
    ctx
}

fn app_context(kubefile: &str) -> Ctx {
    let ctx = Ctx::new();
    ctx.file_mode("kubectl", "kubectl\n", 0o755)
        .file("ca.crt", "ca\n")
        .file("a.txt", "a\n")
        .file("calico/calico.yaml", "kind: List\n")
        .kubefile(kubefile);
    ctx.age();
    ctx
}

/// Layers uncompressed, so they can be read back (the same flag on every build of a test: the
/// compression is part of each step's cache key).
const NONE: &[&str] = &["--compression", "none"];

const APP: &str = "FROM base:v1\nCOPY kubectl bin\nCOPY ca.crt etc/kubernetes/pki\nADD a.txt /bin/\nAPP calico local://calico\n";

#[test]
fn issue12_copy_follows_the_base_symlink_and_keeps_existing_directories() {
    let seal = Seal::new();
    let base = base_context(0o700, "one\n");
    seal.build_ok(base.path(), "base:v1", &["--compression", "none"]);
    let app = app_context(APP);
    seal.build_ok(app.path(), "app:v1", &["--compression", "none"]);
    let l = layers(&seal, "app:v1");
    assert_eq!(l.len(), 5, "{l:#?}");
    // Point 1: `COPY kubectl bin` writes through the base's `bin -> usr/bin`, never a `bin/`
    // directory that would hide the link (and the base's `bin/sh` with it).
    let copy = &l[1];
    assert!(!copy.contains_key("bin"), "{copy:#?}");
    assert_eq!(copy["usr/bin/kubectl"], "755 0:0");
    // The existing ancestors are carried with the base's metadata.
    assert_eq!(copy["usr"], "755 5:6");
    assert_eq!(copy["usr/bin"], "755 5:6");
    // Point 2: the 0700 directory stays 0700 and keeps its owner.
    let pki = &l[2];
    assert_eq!(pki["etc/kubernetes/pki"], "700 5:6", "{pki:#?}");
    assert_eq!(pki["etc/kubernetes"], "755 5:6");
    assert_eq!(pki["etc/kubernetes/pki/ca.crt"], "644 0:0");
    // ADD shares the destination rules.
    let add = &l[3];
    assert!(!add.contains_key("bin"), "{add:#?}");
    assert_eq!(add["usr/bin/a.txt"], "644 0:0");
    // So does APP (a COPY to application/apps/<name>), through the base's `application` link.
    let app = &l[4];
    assert!(!app.contains_key("application"), "{app:#?}");
    assert_eq!(app["opt/application/apps/calico/calico.yaml"], "644 0:0");

    if is_root() {
        // A RUN on top sees the base's shell and the copied tool through the one `bin`.
        let run = app_context(&format!("{APP}RUN ls bin > seen && test -x bin/sh\n"));
        let out = seal.build_ok(run.path(), "app:run", &["--compression", "none"]);
        assert_eq!(out.step("RUN ls bin"), Step::Done);
        let l = layers(&seal, "app:run");
        assert!(l[5].contains_key("seen"), "{:#?}", l[5]);
    }
}

#[test]
fn issue12_copy_cache_covers_the_destination_resolution_and_nothing_else_of_the_base() {
    let seal = Seal::new();
    let app = app_context(APP);
    seal.build_ok(base_context(0o700, "one\n").path(), "base:v1", NONE);
    let first = seal.build_ok(app.path(), "app:v1", NONE);
    assert_eq!(first.step("COPY kubectl bin"), Step::Done);

    // An unrelated path of the base changes: every COPY stays cached.
    seal.build_ok(base_context(0o700, "two\n").path(), "base:v1", NONE);
    let second = seal.build_ok(app.path(), "app:v1", NONE);
    assert_eq!(
        second.step("COPY kubectl bin"),
        Step::Cached,
        "{}",
        second.stderr
    );
    assert_eq!(second.step("COPY ca.crt"), Step::Cached);
    assert_eq!(second.step("ADD a.txt"), Step::Cached);
    assert_ne!(first.digest(), second.digest(), "the base did change");

    // The destination's directory changes mode: that COPY re-runs and carries the new mode;
    // the others stay cached.
    seal.build_ok(base_context(0o750, "two\n").path(), "base:v1", NONE);
    let third = seal.build_ok(app.path(), "app:v1", NONE);
    assert_eq!(third.step("COPY ca.crt"), Step::Done, "{}", third.stderr);
    assert_eq!(third.step("COPY kubectl bin"), Step::Cached);
    let l = layers(&seal, "app:v1");
    assert_eq!(l[2]["etc/kubernetes/pki"], "750 5:6");

    // The same result as a clean build.
    let clean = Seal::new();
    clean.build_ok(base_context(0o750, "two\n").path(), "base:v1", NONE);
    let fresh = clean.build_ok(app.path(), "app:v1", NONE);
    assert_eq!(third.digest(), fresh.digest());
}

#[test]
fn issue12_copy_link_ignores_the_base_and_a_file_on_the_destination_fails() {
    let seal = Seal::new();
    seal.build_ok(base_context(0o700, "one\n").path(), "base:v1", NONE);
    // `--link` (BuildKit's meaning): the layer does not depend on the layers below, so the
    // destination is not resolved in them.
    let app = app_context("FROM base:v1\nCOPY --link kubectl bin\n");
    seal.build_ok(app.path(), "app:link", NONE);
    let l = layers(&seal, "app:link");
    assert_eq!(l[1]["bin"], "755 0:0", "{:#?}", l[1]);
    assert_eq!(l[1]["bin/kubectl"], "755 0:0");
    seal.build_ok(base_context(0o750, "two\n").path(), "base:v1", NONE);
    let again = seal.build_ok(app.path(), "app:link", NONE);
    assert_eq!(again.step("COPY --link"), Step::Cached);

    // A destination through a file of the base is an error at the line.
    let bad = app_context("FROM base:v1\nCOPY kubectl opt/unrelated.txt/x\n");
    let out = seal.build(bad.path(), "app:bad", &[]);
    assert_ne!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("opt/unrelated.txt") && out.stderr.contains("not a directory"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("Kubefile:2"), "{}", out.stderr);

    // Image collection skips steps whose destination is none of the directories it reads; a
    // base symlink that moves a COPY into one of them is an error, never a silently missed image.
    let linked = Ctx::new();
    linked
        .file("rootfs/manifests/.keep", "")
        .symlink("rootfs/deploy", "manifests")
        .kubefile("FROM scratch\nCOPY rootfs/. .\n");
    seal.build_ok(linked.path(), "base:linked", NONE);
    let app = app_context("FROM base:linked\nCOPY a.txt deploy\n");
    let out = seal.build(app.path(), "app:linked", NONE);
    assert_ne!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("manifests/a.txt"), "{}", out.stderr);
}

fn other_arch() -> &'static str {
    if std::env::consts::ARCH == "aarch64" {
        "amd64"
    } else {
        "arm64"
    }
}

fn host_arch() -> &'static str {
    if std::env::consts::ARCH == "aarch64" {
        "arm64"
    } else {
        "amd64"
    }
}

#[test]
fn issue12_from_platform_other_than_the_host_is_an_error_at_its_line() {
    let seal = Seal::new();
    let ctx = Ctx::new();
    ctx.dir(&format!("{}/bin", other_arch()))
        .file(&format!("{}/bin/tool", host_arch()), "t\n")
        .file(&format!("{}/bin/tool", other_arch()), "t\n");
    for (flag, expect) in [
        ("garbage".to_string(), "expected OS/ARCH[/VARIANT]"),
        ("linux/".to_string(), "expected OS/ARCH[/VARIANT]"),
    ] {
        ctx.kubefile(&format!(
            "FROM --platform={flag} scratch\nCOPY ${{ARCH}}/bin bin\n"
        ));
        let out = seal.build(ctx.path(), "p:v1", &[]);
        assert_eq!(out.code, 1, "--platform={flag}:\n{}", out.stderr);
        assert!(
            out.stderr.contains(expect),
            "--platform={flag}:\n{}",
            out.stderr
        );
        assert!(out.stderr.contains("Kubefile:1"), "{}", out.stderr);
    }
    // Since issue 19 another platform makes the stage's platform (BuildKit's meaning): the
    // image is labelled with it, and ${ARCH} stays the target's (the host's here).
    ctx.kubefile(&format!(
        "FROM --platform=linux/{} scratch\nCOPY ${{ARCH}}/bin bin\n",
        other_arch()
    ));
    seal.build_ok(ctx.path(), "p:other", &[]);
    assert_eq!(
        seal.inspect("p:other")["config"]["architecture"],
        other_arch()
    );
    // The host's platform, spelled with a variable or an alias, builds and copies its own arch.
    for flag in [format!("linux/{}", host_arch()), "$BUILDPLATFORM".into()] {
        ctx.kubefile(&format!(
            "FROM --platform={flag} scratch\nCOPY ${{ARCH}}/bin bin\n"
        ));
        seal.build_ok(ctx.path(), "p:v1", &[]);
    }
    let config = seal.inspect("p:v1");
    assert!(
        config.to_string().contains(&format!("\"{}\"", host_arch())),
        "{config}"
    );
}

/// An OCI archive of one empty-layer image for `linux/<arch>`, named `name`.
fn foreign_image(dir: &Path, name: &str, arch: &str) -> std::path::PathBuf {
    use sha2::Digest as _;
    let sha = |b: &[u8]| format!("sha256:{}", hex(&sha2::Sha256::digest(b)));
    let layer = vec![0u8; 1024];
    let config = format!(
        r#"{{"architecture":"{arch}","os":"linux","config":{{}},"rootfs":{{"type":"layers","diff_ids":["{}"]}}}}"#,
        sha(&layer)
    );
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{}","size":{}}}]}}"#,
        sha(config.as_bytes()),
        config.len(),
        sha(&layer),
        layer.len()
    );
    let index = format!(
        r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{}","size":{},"annotations":{{"io.containerd.image.name":"{name}"}}}}]}}"#,
        sha(manifest.as_bytes()),
        manifest.len()
    );
    let path = dir.join("foreign.tar");
    let mut builder = tar::Builder::new(std::fs::File::create(&path).unwrap());
    let mut add = |name: String, data: &[u8]| {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        builder.append_data(&mut h, name, data).unwrap();
    };
    add("oci-layout".into(), br#"{"imageLayoutVersion":"1.0.0"}"#);
    add("index.json".into(), index.as_bytes());
    for blob in [&layer[..], config.as_bytes(), manifest.as_bytes()] {
        add(format!("blobs/sha256/{}", &sha(blob)[7..]), blob);
    }
    builder.finish().unwrap();
    path
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn issue12_from_an_image_of_another_platform_names_both() {
    let seal = Seal::new();
    let tmp = tempfile::tempdir().unwrap();
    // Its registry is a local port nothing listens on: since issue 19 a stored image that
    // lacks the build's platform is pulled for it (`--pull missing`), and that fails here.
    let archive = foreign_image(tmp.path(), "127.0.0.1:9/sealerio/foreign:v1", other_arch());
    let load = seal.run_in(tmp.path(), &["load", "-i", archive.to_str().unwrap()]);
    assert_eq!(load.code, 0, "{}", load.stderr);
    let ctx = Ctx::new();
    ctx.file("a", "a\n")
        .kubefile("FROM 127.0.0.1:9/sealerio/foreign:v1\nCOPY a .\n");
    let out = seal.build(ctx.path(), "x:v1", &[]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let both = [
        format!("linux/{}", other_arch()),
        format!("linux/{}", host_arch()),
    ];
    assert!(
        both.iter().all(|p| out.stderr.contains(p.as_str())) && out.stderr.contains("Kubefile:1"),
        "{}",
        out.stderr
    );
    // Nor may its files be copied in.
    ctx.kubefile("FROM scratch\nCOPY --from=127.0.0.1:9/sealerio/foreign:v1 / x\n");
    let out = seal.build(ctx.path(), "x:v1", &[]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        both.iter().all(|p| out.stderr.contains(p.as_str())) && out.stderr.contains("Kubefile:2"),
        "{}",
        out.stderr
    );
}

#[test]
fn issue12_file_like_destination_warns_and_symbolic_chmod_keeps_dirs_traversable() {
    let seal = Seal::new();
    let ctx = Ctx::new();
    ctx.file("config.yaml", "c\n")
        .file_mode("tree/run.sh", "#!/bin/sh\n", 0o700)
        .file_mode("tree/sub/data.txt", "d\n", 0o600)
        .kubefile(
            "FROM scratch\nCOPY config.yaml /etc/app/app.yaml\nCOPY config.yaml /etc/other/x.yaml/\nCOPY --chmod=u=rwX,go=rX tree opt\n",
        );
    std::fs::set_permissions(
        ctx.path().join("tree/sub"),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    ctx.age();
    let out = seal.build_ok(ctx.path(), "w:v1", &["--compression", "none"]);
    // Point 10: what it creates and how to write the other, at the line; a trailing `/` says
    // "directory" and is not warned about.
    assert!(
        out.stderr
            .contains("line 2) creates etc/app/app.yaml/config.yaml")
            && out.stderr.contains("name the source app.yaml"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("x.yaml/config.yaml"), "{}", out.stderr);
    let l = layers(&seal, "w:v1");
    assert!(
        l[0].contains_key("etc/app/app.yaml/config.yaml"),
        "the seed's rule is kept"
    );
    let chmod = &l[2];
    assert_eq!(chmod["opt/tree"], "755 0:0", "{chmod:#?}");
    assert_eq!(chmod["opt/tree/sub"], "755 0:0");
    assert_eq!(chmod["opt/tree/run.sh"], "755 0:0", "already executable");
    assert_eq!(chmod["opt/tree/sub/data.txt"], "644 0:0");

    ctx.kubefile("FROM scratch\nCOPY --chmod=u=rwq tree opt\n");
    let bad = seal.build(ctx.path(), "w:v1", &[]);
    assert_eq!(bad.code, 1, "{}", bad.stderr);
    assert!(bad.stderr.contains("--chmod=u=rwq"), "{}", bad.stderr);
}

#[test]
fn issue12_example_cluster_directories_stay_traversable() {
    let seal = Seal::new();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/cluster");
    let out = seal.run_in(
        &example,
        &[
            "build",
            "--progress",
            "plain",
            "--build-mode",
            "lite",
            "--compression",
            "none",
            "-t",
            "ex:v1",
            ".",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    // `COPY --chmod=... manifests .`: the directory itself must stay traversable.
    let modes: Vec<String> = layers(&seal, "ex:v1")
        .into_iter()
        .filter_map(|l| l.get("manifests").cloned())
        .collect();
    assert!(!modes.is_empty());
    for what in modes {
        let mode = u32::from_str_radix(what.split(' ').next().unwrap(), 8).unwrap();
        assert_eq!(mode & 0o111, 0o111, "manifests/ is {what}");
    }
}

#[test]
fn issue12_keep_git_dir_is_refused_and_both_ignore_files_are_read() {
    let seal = Seal::new();
    let ctx = Ctx::new();
    ctx.file("a.txt", "a\n")
        .file("secret.key", "k\n")
        .file("scratch.tmp", "t\n")
        .file(".dockerignore", "*.key\n")
        .file(".sealignore", "*.tmp\n")
        .kubefile("FROM scratch\nADD --keep-git-dir a.txt d\n");
    let out = seal.build(ctx.path(), "g:v1", &[]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("--keep-git-dir"), "{}", out.stderr);
    for (file, which) in [
        ("secret.key", ".dockerignore"),
        ("scratch.tmp", ".sealignore"),
    ] {
        ctx.kubefile(&format!("FROM scratch\nCOPY {file} d\n"));
        let out = seal.build(ctx.path(), "g:v1", &[]);
        assert_ne!(
            out.code, 0,
            "{file} is excluded by {which}:\n{}",
            out.stderr
        );
        assert!(out.stderr.contains("excluded"), "{}", out.stderr);
    }
    ctx.kubefile("FROM scratch\nCOPY a.txt d\n");
    seal.build_ok(ctx.path(), "g:v1", &[]);
}

#[test]
fn issue12_a_loaded_base_is_indexed_from_its_layers_and_heredocs_follow_links_too() {
    // The base's layers come from an archive, so this store never wrote them: their path
    // indexes are read from the layer tars the first time a COPY needs them.
    let builder = Seal::new();
    builder.build_ok(base_context(0o700, "one\n").path(), "base:v1", &[]);
    let tmp = tempfile::tempdir().unwrap();
    let archive = tmp.path().join("base.tar");
    builder.save("base:v1", &archive);
    let seal = Seal::new();
    let load = seal.run_in(tmp.path(), &["load", "-i", archive.to_str().unwrap()]);
    assert_eq!(load.code, 0, "{}", load.stderr);
    let app =
        app_context("FROM base:v1\nCOPY kubectl bin\nCOPY <<hello.sh bin\necho hi\nhello.sh\n");
    seal.build_ok(app.path(), "app:v1", NONE);
    let l = layers(&seal, "app:v1");
    assert_eq!(l[1]["usr/bin/kubectl"], "755 0:0", "{:#?}", l[1]);
    assert_eq!(l[1]["usr/bin"], "755 5:6");
    assert!(!l[2].contains_key("bin"), "{:#?}", l[2]);
    assert_eq!(l[2]["usr/bin/hello.sh"], "644 0:0");
}

#[test]
fn issue12_build_help_says_what_copy_link_does() {
    let seal = Seal::new();
    let out = seal.run_in(Path::new("/"), &["build", "--help"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("--link") && out.stdout.contains("--keep-git-dir  refused"),
        "{}",
        out.stdout
    );
}

#[test]
fn issue12_a_directory_copied_under_its_own_name_follows_the_base_link() {
    // The seed's `COPY bin .` is Docker's `COPY bin /bin`: over a merged-/usr base it fills
    // `usr/bin` and keeps its mode and owner, instead of a `bin/` that hides the base's link.
    let seal = Seal::new();
    seal.build_ok(base_context(0o700, "one\n").path(), "base:v1", NONE);
    let app = app_context("FROM base:v1\nCOPY tools/bin .\n");
    std::fs::create_dir_all(app.path().join("tools/bin")).unwrap();
    std::fs::write(app.path().join("tools/bin/helm"), "helm\n").unwrap();
    std::fs::set_permissions(
        app.path().join("tools/bin"),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    seal.build_ok(app.path(), "app:v1", NONE);
    let l = layers(&seal, "app:v1");
    assert!(!l[1].contains_key("bin"), "{:#?}", l[1]);
    assert_eq!(
        l[1]["usr/bin"], "755 5:6",
        "the existing directory keeps its metadata"
    );
    assert_eq!(l[1]["usr/bin/helm"], "644 0:0");
}

//! Issue 16: `--cache-to` / `--cache-from` between two "machines" — two stores and two copies
//! of one context at different paths, with different mtimes and owners — through the Debian
//! `docker-registry` on 127.0.0.1 and through an OCI layout directory; `mode=min|max`;
//! concurrent exporters; every bad input the issue lists.

mod common;

use std::os::unix::fs::chown;
use std::path::Path;
use std::process::Command;

use common::registry::Registry;
use common::{Ctx, Out, Seal, Step, OLD};

const KUBEFILE: &str = "FROM scratch\nCOPY dir1 a\nCOPY dir2 b\n";

/// One machine's copy of the context: same bytes, its own path, mtimes and (when `owner` is
/// given) owner of every file.
fn context(mtime: i64, owner: Option<u32>) -> Ctx {
    let ctx = Ctx::new();
    ctx.kubefile(KUBEFILE);
    for i in 0..20 {
        ctx.file(&format!("dir1/sub{}/f{i}.txt", i % 3), format!("one {i}\n"));
    }
    ctx.file("dir2/x.txt", "two\n");
    ctx.file_mode("dir2/run.sh", "#!/bin/sh\n", 0o755);
    if let Some(id) = owner {
        chown_tree(ctx.path(), id);
    }
    ctx.touch_all(mtime);
    ctx
}

fn chown_tree(dir: &Path, id: u32) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        chown(&path, Some(id), Some(id)).unwrap();
        if path.is_dir() {
            chown_tree(&path, id);
        }
    }
}

/// An empty registry credentials file, so no test reads the machine's docker config, plus
/// any other variables a location needs (S3's).
struct Auth(tempfile::NamedTempFile, Vec<(String, String)>);

impl Auth {
    fn new() -> Auth {
        Auth::with(Vec::new())
    }

    fn with(vars: Vec<(String, String)>) -> Auth {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), "{}").unwrap();
        Auth(file, vars)
    }

    fn env(&self) -> Vec<(&str, &str)> {
        let mut env = vec![("REGISTRY_AUTH_FILE", self.0.path().to_str().unwrap())];
        env.extend(self.1.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        env
    }
}

fn build(seal: &Seal, ctx: &Ctx, auth: &Auth, extra: &[&str]) -> Out {
    seal.build_env(ctx.path(), "app:1", extra, &auth.env())
}

/// [`build`] as another host: in a UTS namespace of its own with hostname `seal-machine-b`.
fn build_elsewhere(seal: &Seal, ctx: &Ctx, auth: &Auth, extra: &[&str]) -> Out {
    let mut cmd = Command::new("unshare");
    cmd.current_dir(ctx.path())
        .args([
            "--uts",
            "sh",
            "-c",
            "hostname seal-machine-b && exec \"$@\"",
            "sh",
        ])
        .arg(env!("CARGO_BIN_EXE_seal"))
        .arg("--root")
        .arg(seal.root())
        .args(["build", "--progress", "plain", "-t", "app:1"])
        .args(extra)
        .arg(".")
        .env_remove("SOURCE_DATE_EPOCH")
        .env_remove("SEAL_ROOT");
    for (k, v) in auth.env() {
        cmd.env(k, v);
    }
    let out = Out::from_command(cmd);
    out.assert_built();
    out
}

fn built(seal: &Seal, ctx: &Ctx, auth: &Auth, extra: &[&str]) -> Out {
    let out = build(seal, ctx, auth, extra);
    out.assert_built();
    out
}

fn layer_digests(seal: &Seal, name: &str) -> Vec<String> {
    seal.inspect(name)["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_string())
        .collect()
}

fn seal_ok(seal: &Seal, args: &[&str]) -> String {
    let out = seal.run_in(Path::new("/"), args);
    assert_eq!(out.code, 0, "seal {args:?} failed:\n{}", out.stderr);
    out.stdout
}

/// A: build and export. B — another store path, context path, mtimes, owners and hostname —
/// imports only — nothing runs, same image, no layer downloaded; its
/// image lists remote layers that `images`, `inspect`, `du` and `fsck` understand. B changes
/// one file: only that step runs; B exports; A imports B's record. Run for each location.
fn args(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// Where a shared cache lives, as the test drives it.
struct Remote<'a> {
    to: String,
    from: String,
    /// A flag every command needs (`--insecure-registry=...`).
    flag: Option<String>,
    /// The server's request log, to find layer downloads in.
    log: Option<&'a dyn Fn() -> Vec<String>>,
    auth: Auth,
}

fn machines_share_one_cache(remote: Remote<'_>) {
    let Remote {
        to,
        from,
        flag: insecure,
        log: access_log,
        auth,
    } = remote;
    let (to, from) = (to.as_str(), from.as_str());
    let with = |flag: &str, spec: &str| -> Vec<String> {
        let mut v = vec![flag.to_string(), spec.to_string()];
        v.extend(insecure.clone());
        v
    };
    let (a, b) = (Seal::new(), Seal::new());
    let ctx_a = context(OLD, None);
    let ctx_b = context(OLD + 86_400, Some(4321));

    let out_a = built(&a, &ctx_a, &auth, &args(&with("--cache-to", to)));
    assert_eq!(out_a.summary().executed, 3, "{}", out_a.stderr);
    assert!(
        out_a.stderr.contains("cache records to"),
        "{}",
        out_a.stderr
    );
    let layers = layer_digests(&a, "app:1");
    let gets_before = access_log.map_or(0, |log| log().len());

    let out_b = build_elsewhere(&b, &ctx_b, &auth, &args(&with("--cache-from", from)));
    assert_eq!(
        out_b.summary().executed,
        0,
        "B ran steps:\n{}",
        out_b.stderr
    );
    assert_eq!(out_b.digest(), out_a.digest(), "B's image differs from A's");
    if let Some(access_log) = access_log {
        let log = access_log();
        let layer_gets: Vec<&String> = log[gets_before..]
            .iter()
            .filter(|l| l.contains("\"GET ") && layers.iter().any(|d| l.contains(d.as_str())))
            .collect();
        assert!(
            layer_gets.is_empty(),
            "B downloaded layers: {layer_gets:#?}"
        );
    }
    // B's store holds the image with its layers remote, and says so.
    for layer in &layers {
        assert!(!b.root().join("blobs/sha256").join(&layer[7..]).exists());
    }
    let inspected = b.inspect("app:1");
    assert!(
        inspected["layers"][0]["remote"].is_string(),
        "{inspected:#}"
    );
    assert!(seal_ok(&b, &["images"]).contains("remote"));
    assert!(seal_ok(&b, &["du"]).contains("remote blobs"));
    let fsck = seal_ok(&b, &["fsck"]);
    assert!(
        fsck.contains("remote blobs") && fsck.contains("no problems"),
        "{fsck}"
    );

    // B changes one file: only its step runs, and B exports the new record.
    ctx_b.file("dir2/x.txt", "two, changed\n");
    let mut both = with("--cache-from", from);
    both.extend(with("--cache-to", to));
    let changed = built(&b, &ctx_b, &auth, &args(&both));
    assert_eq!(changed.step("COPY dir2"), Step::Done, "{}", changed.stderr);
    assert_eq!(
        changed.step("COPY dir1"),
        Step::Cached,
        "{}",
        changed.stderr
    );
    assert_eq!(changed.summary().executed, 1, "{}", changed.stderr);
    // Only the new layer and the config are sent: the cache has the rest.
    assert!(changed.stderr.contains("2 sent)"), "{}", changed.stderr);

    // A, with the same change, imports B's record instead of running the step.
    ctx_a.file("dir2/x.txt", "two, changed\n");
    let again = built(&a, &ctx_a, &auth, &args(&with("--cache-from", from)));
    assert_eq!(again.summary().executed, 0, "{}", again.stderr);
    assert_eq!(again.digest(), changed.digest());

    // `seal save` downloads what it needs, verified; afterwards nothing is remote.
    let mut save = vec!["save", "-o"];
    let archive = tempfile::tempdir().unwrap();
    let file = archive.path().join("b.tar");
    save.push(file.to_str().unwrap());
    save.push("app:1");
    if let Some(flag) = &insecure {
        save.insert(0, flag);
    }
    let mut cmd = b.command();
    cmd.args(&save);
    for (k, v) in auth.env() {
        cmd.env(k, v);
    }
    let saved = Out::from_command(cmd);
    assert_eq!(saved.code, 0, "{}", saved.stderr);
    let fsck = seal_ok(&b, &["fsck"]);
    assert!(fsck.contains("no problems"), "{fsck}");
}

#[test]
fn machines_share_a_cache_through_a_registry() {
    let registry = Registry::start(None, |_| String::new()).unwrap();
    let spec = format!("type=registry,ref={}/cache/app:main", registry.host);
    machines_share_one_cache(Remote {
        to: spec.clone(),
        from: spec,
        flag: Some(format!("--insecure-registry={}", registry.host)),
        log: Some(&|| registry.access_log()),
        auth: Auth::new(),
    });
}

#[test]
fn machines_share_a_cache_through_s3() {
    let moto = common::s3::Moto::start();
    moto.create_bucket("ci-cache");
    let spec = format!(
        "type=s3,bucket=ci-cache,region=us-east-1,endpoint_url={},prefix=team/",
        moto.endpoint
    );
    machines_share_one_cache(Remote {
        to: format!("{spec},mode=max"),
        from: spec,
        flag: None,
        log: Some(&|| moto.access_log()),
        auth: Auth::with(moto.env()),
    });
    // BuildKit's shape: the tag object and the blobs under the prefix.
    let log = moto.access_log().join("\n");
    assert!(log.contains("PUT /ci-cache/team/manifests/latest"), "{log}");
    assert!(log.contains("GET /ci-cache/team/blobs/sha256/"), "{log}");
}

#[test]
fn machines_share_a_cache_through_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("cache");
    let to = format!("type=local,dest={}", d.display());
    let from = format!("type=local,src={}", d.display());
    machines_share_one_cache(Remote {
        to,
        from,
        flag: None,
        log: None,
        auth: Auth::new(),
    });
    // The directory is an OCI layout whose tag names an image manifest, not an index.
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("index.json")).unwrap()).unwrap();
    let manifest = index["manifests"][0]["digest"].as_str().unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(d.join("blobs/sha256").join(&manifest[7..])).unwrap(),
    )
    .unwrap();
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.seal.cache.config.v1+json"
    );
}

const MULTI_STAGE: &str = "FROM scratch AS builder\nCOPY dir1 /out\n\
                           FROM scratch\nCOPY dir2 b\nCOPY --from=builder /out a\n";

#[test]
fn mode_max_exports_the_builder_stage_and_mode_min_does_not() {
    let auth = Auth::new();
    for (mode, builder_runs) in [("min", true), ("max", false)] {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("cache");
        let (a, b) = (Seal::new(), Seal::new());
        let ctx_a = context(OLD, None);
        ctx_a.kubefile(MULTI_STAGE);
        let ctx_b = context(OLD + 60, None);
        ctx_b.kubefile(MULTI_STAGE);
        let to = format!("type=local,dest={},mode={mode}", d.display());
        let out_a = built(&a, &ctx_a, &auth, &["--cache-to", &to]);
        let from = format!("type=local,src={}", d.display());
        let out_b = built(&b, &ctx_b, &auth, &["--cache-from", &from]);
        assert_eq!(out_b.digest(), out_a.digest());
        let expected = if builder_runs {
            Step::Done
        } else {
            Step::Cached
        };
        assert_eq!(
            out_b.step("COPY dir1"),
            expected,
            "mode={mode}:\n{}",
            out_b.stderr
        );
        assert_eq!(
            out_b.step("COPY dir2"),
            Step::Cached,
            "mode={mode}:\n{}",
            out_b.stderr
        );
        assert_eq!(
            out_b.step("COPY --from"),
            Step::Cached,
            "mode={mode}:\n{}",
            out_b.stderr
        );
        assert_eq!(out_b.summary().executed, usize::from(builder_runs));
    }
}

#[test]
fn two_concurrent_exporters_to_one_ref_leave_a_usable_cache() {
    let registry = Registry::start(None, |_| String::new()).unwrap();
    let auth = Auth::new();
    let insecure = format!("--insecure-registry={}", registry.host);
    let spec = format!("type=registry,ref={}/cache/app:main", registry.host);
    let ctxs: Vec<Ctx> = (0..2)
        .map(|i| {
            let ctx = context(OLD, None);
            ctx.file("dir2/x.txt", format!("exporter {i}\n"));
            ctx
        })
        .collect();
    let seals = [Seal::new(), Seal::new()];
    let outs: Vec<Out> = std::thread::scope(|s| {
        let handles: Vec<_> = seals
            .iter()
            .zip(&ctxs)
            .map(|(seal, ctx)| {
                let (auth, insecure, spec) = (&auth, &insecure, &spec);
                s.spawn(move || build(seal, ctx, auth, &["--cache-to", spec, insecure]))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for out in &outs {
        out.assert_built();
    }
    // Whichever exporter moved the tag last, the tag names one whole cache: a fresh store
    // rebuilds that exporter's image running nothing.
    let fresh: Vec<usize> = ctxs
        .iter()
        .map(|ctx| {
            let c = Seal::new();
            let out = built(&c, ctx, &auth, &["--cache-from", &spec, &insecure]);
            assert!(!out.stderr.contains("is not used"), "{}", out.stderr);
            out.summary().executed
        })
        .collect();
    assert!(
        fresh.contains(&0),
        "neither exporter's cache is whole: {fresh:?}"
    );
    assert!(
        fresh.contains(&1),
        "the other exporter's step is not in the tag: {fresh:?}"
    );
}

/// A `--cache-from` that cannot be used is a warning naming it and why; the build goes on.
fn warns(out: &Out, spec_part: &str, reason: &str) {
    out.assert_built();
    assert_eq!(out.summary().executed, 3, "{}", out.stderr);
    let line = out
        .stderr
        .lines()
        .find(|l| l.contains("is not used"))
        .unwrap_or_else(|| panic!("no warning in:\n{}", out.stderr));
    assert!(line.contains(spec_part) && line.contains(reason), "{line}");
}

#[test]
fn unreachable_missing_and_unauthorised_caches_are_warnings() {
    let auth = Auth::new();
    let plain = Registry::start(None, |_| String::new()).unwrap();
    let locked = Registry::start(None, |dir| {
        let htpasswd = dir.join("htpasswd");
        std::fs::write(
            &htpasswd,
            "sealer:$2b$04$tkHDsPJUGXTYMWQGz4qTwOrCKOI4DEInvLR4Eg6qrZ5BHhP4U1KoO\n",
        )
        .unwrap();
        format!(
            "auth:\n  htpasswd:\n    realm: seal-test\n    path: {}\n",
            htpasswd.display()
        )
    })
    .unwrap();
    let ctx = context(OLD, None);
    let insecure = format!("--insecure-registry={},{}", plain.host, locked.host);
    for (spec, reason) in [
        (
            "type=registry,ref=127.0.0.1:1/cache/app:main".to_string(),
            "cannot reach",
        ),
        (
            format!("type=registry,ref={}/cache/none:main", plain.host),
            "not found",
        ),
        (
            format!("type=registry,ref={}/cache/app:main", locked.host),
            "requires credentials",
        ),
        ("type=local,src=/nonexistent/cache".to_string(), "no cache"),
    ] {
        let out = build(
            &Seal::new(),
            &ctx,
            &auth,
            &["--cache-from", &spec, &insecure],
        );
        let shown = spec.split(['=', ',']).nth(3).unwrap_or(&spec).to_string();
        warns(&out, &shown, reason);
    }
}

/// Export once into a directory, then damage the cache with `damage` and import it.
fn import_damaged(
    damage: impl FnOnce(&Path, &serde_json::Value),
) -> (Seal, Out, tempfile::TempDir) {
    let auth = Auth::new();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("cache");
    let ctx = context(OLD, None);
    built(
        &Seal::new(),
        &ctx,
        &auth,
        &["--cache-to", &format!("type=local,dest={}", d.display())],
    );
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("index.json")).unwrap()).unwrap();
    let manifest_path = d
        .join("blobs/sha256")
        .join(&index["manifests"][0]["digest"].as_str().unwrap()[7..]);
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&manifest_path).unwrap()).unwrap();
    damage(&d, &manifest);
    let b = Seal::new();
    let out = build(
        &b,
        &ctx,
        &auth,
        &["--cache-from", &format!("type=local,src={}", d.display())],
    );
    (b, out, dir)
}

/// Write `manifest` as the cache's tagged manifest.
fn retag(d: &Path, manifest: &serde_json::Value) {
    let bytes = serde_json::to_vec(manifest).unwrap();
    let hex = sha256_hex(&bytes);
    std::fs::write(d.join("blobs/sha256").join(&hex), &bytes).unwrap();
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": format!("sha256:{hex}"), "size": bytes.len(),
        "annotations": {"org.opencontainers.image.ref.name": "latest"}}]});
    std::fs::write(d.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
}

fn sha256_hex(bytes: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("x");
    std::fs::write(&f, bytes).unwrap();
    common::tool("sha256sum", &[f.to_str().unwrap()], dir.path())
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn malformed_oversized_and_inconsistent_caches_are_refused() {
    // Not a manifest at all.
    let (_, out, _d) = import_damaged(|d, _| retag(d, &serde_json::json!({"x": 1})));
    warns(&out, "cache", "refused");
    // A config larger than seal accepts.
    let (_, out, _d) = import_damaged(|d, m| {
        let mut m = m.clone();
        m["config"]["size"] = (65u64 << 20).into();
        retag(d, &m);
    });
    warns(&out, "cache", "more than");
    // A manifest whose layer size disagrees with the records.
    let (_, out, _d) = import_damaged(|d, m| {
        let mut m = m.clone();
        let size = m["layers"][0]["size"].as_u64().unwrap();
        m["layers"][0]["size"] = (size + 1).into();
        retag(d, &m);
    });
    warns(&out, "cache", "the manifest lists");
}

#[test]
fn a_cache_blob_with_wrong_bytes_is_refused_when_fetched_and_never_stored() {
    let (b, out, _d) = import_damaged(|d, m| {
        let layer = m["layers"][0]["digest"].as_str().unwrap();
        let path = d.join("blobs/sha256").join(&layer[7..]);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[0] ^= 0xff;
        std::fs::write(&path, bytes).unwrap();
    });
    // Lazy: the records are used without the bytes.
    out.assert_built();
    assert_eq!(out.summary().executed, 0, "{}", out.stderr);
    // Needing the bytes finds them wrong: a clear error, and nothing corrupt in the store.
    let file = tempfile::tempdir().unwrap();
    let target = file.path().join("x.tar");
    let saved = b.run_in(
        Path::new("/"),
        &["save", "-o", target.to_str().unwrap(), "app:1"],
    );
    assert_ne!(saved.code, 0);
    assert!(saved.stderr.contains("hashes to"), "{}", saved.stderr);
    assert!(!target.exists());
    let fsck = seal_ok(&b, &["fsck"]);
    assert!(fsck.contains("no problems"), "{fsck}");
}

#[test]
fn a_failed_export_fails_the_build_unless_errors_are_ignored() {
    let auth = Auth::new();
    let ctx = context(OLD, None);
    let spec = "type=registry,ref=127.0.0.1:1/cache/app:main";
    let insecure = "--insecure-registry=127.0.0.1:1";
    let out = build(&Seal::new(), &ctx, &auth, &["--cache-to", spec, insecure]);
    assert_ne!(out.code, 0);
    assert!(
        out.stderr
            .contains("exporting the cache to 127.0.0.1:1/cache/app:main"),
        "{}",
        out.stderr
    );
    let ignored = format!("{spec},ignore-error=true");
    let out = build(
        &Seal::new(),
        &ctx,
        &auth,
        &["--cache-to", &ignored, insecure],
    );
    out.assert_built();
    assert!(out.stderr.contains("ignore-error=true"), "{}", out.stderr);
}

/// A context whose first COPY is a busybox rootfs, so RUN has a shell.
fn busybox_context(mtime: i64, run: &str) -> Ctx {
    let ctx = context(mtime, None);
    let bin = ctx.path().join("rootfs/bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy("/bin/busybox", bin.join("busybox"))
        .expect("busybox-static is installed (scripts/install-system-packages.sh)");
    for applet in ["sh", "cat", "echo"] {
        std::os::unix::fs::symlink("busybox", bin.join(applet)).unwrap();
    }
    ctx.kubefile(&format!(
        "FROM scratch\nCOPY rootfs/. .\nCOPY dir2 b\nRUN {run}\n"
    ));
    ctx.touch_all(mtime);
    ctx
}

#[test]
fn a_run_on_a_fresh_machine_downloads_the_layers_below_it_and_only_then() {
    let auth = Auth::new();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("cache");
    let (a, b) = (Seal::new(), Seal::new());
    let to = format!("type=local,dest={}", d.display());
    let from = format!("type=local,src={}", d.display());
    let ctx_a = busybox_context(OLD, "cat b/dir2/x.txt > c");
    let out_a = built(&a, &ctx_a, &auth, &["--cache-to", &to]);
    let below: Vec<String> = layer_digests(&a, "app:1")[..2].to_vec();
    // B, same Kubefile: nothing runs, nothing is downloaded.
    let ctx_b = busybox_context(OLD + 5, "cat b/dir2/x.txt > c");
    let out_b = built(&b, &ctx_b, &auth, &["--cache-from", &from]);
    assert_eq!(out_b.summary().executed, 0, "{}", out_b.stderr);
    assert_eq!(out_b.digest(), out_a.digest());
    let on_disk = |d: &String| b.root().join("blobs/sha256").join(&d[7..]).exists();
    assert!(!below.iter().any(on_disk));
    // Another RUN needs the rootfs below it: those layers are downloaded now, verified.
    ctx_b.kubefile(
        "FROM scratch\nCOPY rootfs/. .\nCOPY dir2 b\nRUN cat b/dir2/x.txt b/dir2/x.txt > c\n",
    );
    let out = built(&b, &ctx_b, &auth, &["--cache-from", &from]);
    assert_eq!(out.summary().executed, 1, "{}", out.stderr);
    assert_eq!(out.step("RUN"), Step::Done);
    assert!(
        below.iter().all(on_disk),
        "the layers below the RUN were not fetched"
    );
}

#[test]
fn a_push_mounts_remote_layers_in_the_same_registry_and_downloads_them_for_another() {
    let registry = Registry::start(None, |_| String::new()).unwrap();
    let other = Registry::start(None, |_| String::new()).unwrap();
    let auth = Auth::new();
    let insecure = format!("--insecure-registry={}", registry.host);
    let spec = format!("type=registry,ref={}/cache/app:main", registry.host);
    let (a, b) = (Seal::new(), Seal::new());
    built(
        &a,
        &context(OLD, None),
        &auth,
        &["--cache-to", &spec, &insecure],
    );
    built(
        &b,
        &context(OLD, None),
        &auth,
        &["--cache-from", &spec, &insecure],
    );
    let layers = layer_digests(&b, "app:1");
    let push = |target: &str, flag: &str| {
        let name = format!("{target}/team/app:1");
        let tag = b.run_in(Path::new("/"), &["tag", "app:1", &name]);
        assert_eq!(tag.code, 0, "{}", tag.stderr);
        let mut cmd = b.command();
        cmd.args(["push", "--progress", "plain", flag, &name]);
        for (k, v) in auth.env() {
            cmd.env(k, v);
        }
        let out = Out::from_command(cmd);
        assert_eq!(out.code, 0, "{}", out.stderr);
    };
    let before = registry.access_log().len();
    push(&registry.host, &insecure);
    let log = registry.access_log()[before..].to_vec();
    let mounts = log.iter().filter(|l| l.contains("mount=")).count();
    assert_eq!(mounts, layers.len(), "{log:#?}");
    assert!(
        !log.iter()
            .any(|l| l.contains("\"GET ") && l.contains("/blobs/")),
        "{log:#?}"
    );
    // Another registry cannot mount from the cache's: the layers are downloaded, then sent.
    let both = format!("--insecure-registry={},{}", registry.host, other.host);
    push(&other.host, &both);
    let pulled = Seal::new();
    let name = format!("{}/team/app:1", other.host);
    let out = pulled.run_in(Path::new("/"), &["pull", &both, &name]);
    assert_eq!(out.code, 0, "{}", out.stderr);
}

#[test]
fn a_fresh_machine_downloads_no_layer_of_the_base_image_either() {
    let registry = Registry::start(None, |_| String::new()).unwrap();
    let auth = Auth::new();
    let insecure = format!("--insecure-registry={}", registry.host);
    // A base image in the registry, with manifests image collection reads.
    let base = Ctx::new();
    base.file("bin/tool", vec![7u8; 300 << 10])
        .file(
            "manifests/cm.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\n",
        )
        .kubefile("FROM scratch\nCOPY bin bin\nCOPY manifests manifests\n");
    let seed = Seal::new();
    let base_name = format!("{}/lib/base:1", registry.host);
    let mut cmd = seed.command();
    cmd.current_dir(base.path())
        .args(["build", "--build-mode", "lite", "-t", &base_name, "."]);
    assert_eq!(Out::from_command(cmd).code, 0);
    let pushed = seed.run_in(Path::new("/"), &["push", &insecure, &base_name]);
    assert_eq!(pushed.code, 0, "{}", pushed.stderr);
    let base_layers = layer_digests(&seed, &base_name);

    let kubefile = format!("FROM {base_name}\nCOPY dir2 b\nCOPY dir1 manifests/extra\n");
    let spec = format!("type=registry,ref={}/cache/app:main", registry.host);
    let (a, b) = (Seal::new(), Seal::new());
    let ctx_a = context(OLD, None);
    ctx_a.kubefile(&kubefile);
    let out_a = built(&a, &ctx_a, &auth, &["--cache-to", &spec, &insecure]);
    let before = registry.access_log().len();
    let ctx_b = context(OLD + 99, None);
    ctx_b.kubefile(&kubefile);
    let out_b = built(&b, &ctx_b, &auth, &["--cache-from", &spec, &insecure]);
    assert_eq!(out_b.summary().executed, 0, "{}", out_b.stderr);
    assert_eq!(out_b.digest(), out_a.digest());
    let layers = layer_digests(&b, "app:1");
    let log = registry.access_log()[before..].to_vec();
    let downloads: Vec<&String> = log
        .iter()
        .filter(|l| l.contains("\"GET ") && l.contains("/blobs/"))
        .filter(|l| {
            layers
                .iter()
                .chain(&base_layers)
                .any(|d| l.contains(d.as_str()))
        })
        .collect();
    assert!(downloads.is_empty(), "B downloaded layers: {downloads:#?}");
    // Its store knows the base's layers as remote, in the base's repository.
    let inspected = b.inspect(&base_name);
    assert!(
        inspected["layers"][0]["remote"]
            .as_str()
            .is_some_and(|r| r.contains("lib/base")),
        "{inspected:#}"
    );
}

#[test]
fn caches_are_consulted_after_the_store_in_the_order_given() {
    let auth = Auth::new();
    let dir = tempfile::tempdir().unwrap();
    let (x, y) = (dir.path().join("x"), dir.path().join("y"));
    let ctx_1 = context(OLD, None);
    built(
        &Seal::new(),
        &ctx_1,
        &auth,
        &["--cache-to", &format!("type=local,dest={}", x.display())],
    );
    let ctx_2 = context(OLD, None);
    ctx_2.file("dir2/x.txt", "second\n");
    built(
        &Seal::new(),
        &ctx_2,
        &auth,
        &["--cache-to", &format!("type=local,dest={}", y.display())],
    );
    // X has every step but the changed one, Y has that one too: B runs nothing, and reports
    // both caches.
    let b = Seal::new();
    let from_x = format!("type=local,src={}", x.display());
    let from_y = format!("type=local,src={}", y.display());
    let out = built(
        &b,
        &ctx_2,
        &auth,
        &["--cache-from", &from_x, "--cache-from", &from_y],
    );
    assert_eq!(out.summary().executed, 0, "{}", out.stderr);
    assert!(
        out.stderr
            .contains(&format!("cache records from {}", x.display())),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains(&format!("cache records from {}", y.display())),
        "{}",
        out.stderr
    );
    // The store comes first: with both caches gone, the same build still runs nothing.
    std::fs::remove_dir_all(&x).unwrap();
    std::fs::remove_dir_all(&y).unwrap();
    let again = build(&b, &ctx_2, &auth, &["--cache-from", &from_x]);
    again.assert_built();
    assert_eq!(again.summary().executed, 0, "{}", again.stderr);
}

#[test]
fn a_missing_bucket_is_a_warning_and_a_failed_s3_export_fails_the_build() {
    let moto = common::s3::Moto::start();
    let auth = Auth::with(moto.env());
    let ctx = context(OLD, None);
    let spec = format!(
        "type=s3,bucket=no-such-bucket,region=us-east-1,endpoint_url={}",
        moto.endpoint
    );
    let out = build(&Seal::new(), &ctx, &auth, &["--cache-from", &spec]);
    warns(&out, "s3://no-such-bucket", "NoSuchBucket");
    let out = build(&Seal::new(), &ctx, &auth, &["--cache-to", &spec]);
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("NoSuchBucket"), "{}", out.stderr);
}

//! ADD against the real binary: local archives of every kind unpacked into the destination,
//! hostile archives refused, and downloads from a tiny HTTP server on 127.0.0.1 (checksummed
//! and cached, mismatched, unpinned and never cached, redirected, missing).

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use common::{tool, Ctx, Out, SavedLayout, Seal, Step};
use sha2::{Digest as _, Sha256};
use tempfile::TempDir;

/// One layer as GNU tar lists it: `mode uid/gid path[ -> target]`, plus the files extracted.
struct LayerView {
    rows: Vec<String>,
    root: PathBuf,
    _dir: TempDir,
}

impl LayerView {
    fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.root.join(rel))
            .unwrap_or_else(|e| panic!("{rel} in the layer: {e}"))
    }
}

/// `seal save` the image (built with `--compression gzip`) and open every layer with GNU tar.
fn layers(seal: &Seal, name: &str) -> Vec<LayerView> {
    let saved = SavedLayout::new(seal, name);
    let d = saved.dir.path();
    saved
        .layer_blobs()
        .into_iter()
        .map(|path| {
            let listing = std::process::Command::new("tar")
                .args(["--numeric-owner", "-tvzf"])
                .arg(&path)
                .env("TZ", "UTC")
                .output()
                .unwrap();
            assert!(listing.status.success());
            let rows = String::from_utf8(listing.stdout)
                .unwrap()
                .lines()
                .map(|line| {
                    let f: Vec<&str> = line.split_whitespace().collect();
                    assert_eq!(f[3], "1970-01-01", "mtimes are normalised: {line}");
                    let mut row = format!("{} {} {}", f[0], f[1], f[5].trim_end_matches('/'));
                    if f.len() > 7 {
                        row.push_str(&format!(" -> {}", f[7]));
                    }
                    row
                })
                .collect();
            let out = TempDir::new().unwrap();
            let root = out.path().to_path_buf();
            tool("tar", &["-xzf", s(&path), "-C", s(&root)], d);
            LayerView {
                rows,
                root,
                _dir: out,
            }
        })
        .collect()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The files an archive is made of: modes, a subdirectory, a symlink.
fn archive_tree(ctx: &Ctx) {
    ctx.file_mode("tree/bin/kubeadm", "#!/bin/sh\necho kubeadm\n", 0o755)
        .file_mode("tree/etc/kubeadm.yml", "kind: InitConfiguration\n", 0o600)
        .symlink("tree/etc/current", "kubeadm.yml");
    std::fs::set_permissions(
        ctx.path().join("tree/bin"),
        std::os::unix::fs::PermissionsExt::from_mode(0o750),
    )
    .unwrap();
}

/// `tar -c` of `tree/` (contents at the archive root, owned by 1234:5678), written to `name`.
fn make_archive(ctx: &Ctx, name: &str, payload: &str) {
    ctx.file("tree/payload", payload);
    let plain = ctx.path().join(".plain.tar");
    tool(
        "tar",
        &[
            "--owner=+1234",
            "--group=+5678",
            "-cf",
            s(&plain),
            "-C",
            "tree",
            ".",
        ],
        ctx.path(),
    );
    let bytes = std::fs::read(&plain).unwrap();
    std::fs::remove_file(&plain).unwrap();
    let out = if name.ends_with(".tar") {
        bytes
    } else if name.ends_with(".gz") || name.ends_with(".tgz") {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&bytes).unwrap();
        enc.finish().unwrap()
    } else {
        zstd::encode_all(&bytes[..], 3).unwrap()
    };
    std::fs::write(ctx.path().join(name), out).unwrap();
}

/// What `tree/` unpacked into `dest` looks like in a layer (after `dest`'s own rows).
fn unpacked_rows(dest: &str) -> Vec<String> {
    vec![
        format!("drwxr-xr-x 0/0 {dest}"),
        format!("drwxr-x--- 0/0 {dest}/bin"),
        format!("-rwxr-xr-x 0/0 {dest}/bin/kubeadm"),
        format!("drwxr-xr-x 0/0 {dest}/etc"),
        format!("lrwxrwxrwx 0/0 {dest}/etc/current -> kubeadm.yml"),
        format!("-rw------- 0/0 {dest}/etc/kubeadm.yml"),
        format!("-rw-r--r-- 0/0 {dest}/payload"),
    ]
}

#[test]
fn archives_of_every_kind_are_unpacked_into_dest_and_cached_by_their_bytes() {
    let seal = Seal::new();
    let ctx = Ctx::new();
    archive_tree(&ctx);
    let kinds = ["a.tar", "b.tar.gz", "c.tgz", "d.tar.zst", "e.tar.zstd"];
    for name in kinds {
        make_archive(&ctx, name, name);
    }
    ctx.file_mode("plain.txt", "not an archive\n", 0o640);
    ctx.kubefile(
        "FROM scratch\n\
         ADD a.tar opt/a\n\
         ADD b.tar.gz opt/b\n\
         ADD c.tgz opt/c\n\
         ADD d.tar.zst opt/d\n\
         ADD e.tar.zstd opt/e\n\
         ADD plain.txt a.tar etc\n\
         ADD --chown=7:8 --chmod=0700 a.tar x\n",
    );
    let first = seal.digest(ctx.path(), "add:v1", &["--compression", "gzip"]);
    let views = layers(&seal, "add:v1");
    assert_eq!(views.len(), 7);
    for (i, name) in kinds.iter().enumerate() {
        let dest = format!("opt/{}", (b'a' + i as u8) as char);
        let mut expected = vec!["drwxr-xr-x 0/0 opt".to_string()];
        expected.extend(unpacked_rows(&dest));
        assert_eq!(views[i].rows, expected, "{name}");
        assert_eq!(views[i].read(&format!("{dest}/payload")), *name);
        assert_eq!(
            views[i].read(&format!("{dest}/bin/kubeadm")),
            "#!/bin/sh\necho kubeadm\n"
        );
    }
    // A plain file is copied; an archive lands in dest itself, not under its basename.
    let mut expected = unpacked_rows("etc");
    expected.push("-rw-r----- 0/0 etc/plain.txt".into());
    assert_eq!(views[5].rows, expected);
    assert_eq!(
        views[6].rows,
        [
            "drwxr-xr-x 7/8 x",
            "drwx------ 7/8 x/bin",
            "-rwx------ 7/8 x/bin/kubeadm",
            "drwx------ 7/8 x/etc",
            "lrwxrwxrwx 7/8 x/etc/current -> kubeadm.yml",
            "-rwx------ 7/8 x/etc/kubeadm.yml",
            "-rwx------ 7/8 x/payload",
        ]
    );

    // A rebuild reuses every step; new archive bytes re-run exactly the ADD that reads them.
    let again = seal.build_ok(ctx.path(), "add:v1", &["--compression", "gzip"]);
    assert_eq!(again.digest(), first);
    assert_eq!(again.summary().executed, 0, "{}", again.stderr);
    make_archive(&ctx, "d.tar.zst", "changed");
    let changed = seal.build_ok(ctx.path(), "add:v1", &["--compression", "gzip"]);
    assert_eq!(
        changed.step("ADD d.tar.zst"),
        Step::Done,
        "{}",
        changed.stderr
    );
    assert_eq!(changed.step("ADD b.tar.gz"), Step::Cached);
    assert_eq!(changed.step("ADD --chown"), Step::Cached);
    assert_eq!(layers(&seal, "add:v1")[3].read("opt/d/payload"), "changed");
}

/// A tar with raw, unchecked entry names: (name, type, data, link target).
fn hostile_tar(entries: &[(&str, tar::EntryType, &[u8], Option<&str>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, kind, data, link) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(*kind);
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        let name = h.as_old_mut().name.as_mut();
        name[..path.len()].copy_from_slice(path.as_bytes());
        if let Some(l) = link {
            h.set_link_name(l).unwrap();
        }
        h.set_cksum();
        b.append(&h, *data).unwrap();
    }
    b.into_inner().unwrap()
}

#[test]
fn hostile_archives_fail_naming_the_entry_and_leave_nothing_behind() {
    use tar::EntryType as T;
    let outside = TempDir::new().unwrap();
    let outside_dir = outside.path().to_str().unwrap().to_string();
    let evil_abs = format!("{outside_dir}/evil-abs");
    let cases: Vec<(Vec<u8>, String, &str)> = vec![
        (
            hostile_tar(&[
                ("ok", T::Regular, b"x", None),
                ("../evil", T::Regular, b"x", None),
            ]),
            "`../evil`".into(),
            "leaves the destination",
        ),
        (
            hostile_tar(&[(&evil_abs, T::Regular, b"x", None)]),
            format!("`{evil_abs}`"),
            "absolute",
        ),
        (
            hostile_tar(&[
                ("link", T::Symlink, b"", Some(&outside_dir)),
                ("link/evil", T::Regular, b"x", None),
            ]),
            "`link/evil`".into(),
            "through the symlink `link`",
        ),
        (
            hostile_tar(&[("hard", T::Link, b"", Some("../../etc/passwd"))]),
            "`hard`".into(),
            "outside the archive",
        ),
    ];
    for (bytes, entry, reason) in cases {
        let seal = Seal::new();
        let ctx = Ctx::new();
        ctx.file("ok.txt", "fine");
        std::fs::write(ctx.path().join("evil.tar.gz"), {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            enc.write_all(&bytes).unwrap();
            enc.finish().unwrap()
        })
        .unwrap();
        ctx.kubefile("FROM scratch\nADD ok.txt evil.tar.gz opt\n");
        let out = seal.build(ctx.path(), "evil:v1", &[]);
        assert_eq!(out.code, 1, "{}", out.stderr);
        assert!(out.stdout.is_empty());
        assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
        let message = format!("refusing entry {entry} of archive `evil.tar.gz`");
        assert!(
            out.stderr.contains(&message),
            "expected `{message}` in:\n{}",
            out.stderr
        );
        assert!(
            out.stderr.contains(reason),
            "expected `{reason}` in:\n{}",
            out.stderr
        );
        assert!(out.stderr.contains(" --> Kubefile:2:1\n"), "{}", out.stderr);
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
        assert!(!ctx.path().parent().unwrap().join("evil").exists());
        let tmp: Vec<_> = std::fs::read_dir(seal.root().join("tmp"))
            .unwrap()
            .collect();
        assert!(tmp.is_empty(), "store tmp left: {tmp:?}");
        let images = seal.run_in(ctx.path(), &["images"]);
        assert!(!images.stdout.contains("evil"), "{}", images.stdout);
    }
}

/// What the test server answers for a path.
#[derive(Clone)]
enum Route {
    Bytes(Vec<u8>),
    Redirect(&'static str),
}

/// An HTTP/1.1 server on 127.0.0.1 answering fixed routes (404 otherwise) and counting the
/// requests per path. It serves at most 200 connections, then stops by itself.
struct Server {
    base: String,
    hits: Arc<Mutex<BTreeMap<String, usize>>>,
}

impl Server {
    fn start(routes: Vec<(&'static str, Route)>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let hits: Arc<Mutex<BTreeMap<String, usize>>> = Arc::default();
        let counter = hits.clone();
        let routes: BTreeMap<&str, Route> = routes.into_iter().collect();
        std::thread::spawn(move || {
            for stream in listener.incoming().take(200) {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request_line = String::new();
                if reader.read_line(&mut request_line).is_err() {
                    continue;
                }
                loop {
                    let mut header = String::new();
                    match reader.read_line(&mut header) {
                        Ok(0) | Err(_) => break,
                        Ok(_) if header == "\r\n" => break,
                        Ok(_) => {}
                    }
                }
                let path = request_line
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or("")
                    .to_string();
                *counter.lock().unwrap().entry(path.clone()).or_default() += 1;
                let (head, body): (String, Vec<u8>) = match routes.get(path.as_str()) {
                    Some(Route::Bytes(b)) => ("200 OK".into(), b.clone()),
                    Some(Route::Redirect(to)) => {
                        (format!("302 Found\r\nLocation: {to}"), Vec::new())
                    }
                    None => ("404 Not Found".into(), b"no such file\n".to_vec()),
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {head}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(&body);
            }
        });
        Server { base, hits }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn hits(&self, path: &str) -> usize {
        self.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex(&Sha256::digest(bytes)))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn build(seal: &Seal, ctx: &Ctx, kubefile: &str) -> Out {
    ctx.kubefile(kubefile);
    seal.build(ctx.path(), "dl:v1", &["--compression", "gzip"])
}

const KUBECTL: &[u8] = b"\x7fELF pretend kubectl\n";

#[test]
fn a_checksummed_download_lands_under_its_name_and_is_cached_by_url_and_checksum() {
    let server = Server::start(vec![
        ("/v1.25/bin/kubectl", Route::Bytes(KUBECTL.to_vec())),
        (
            "/release.tar.gz",
            Route::Bytes(b"archives from URLs stay packed".to_vec()),
        ),
    ]);
    let seal = Seal::new();
    let ctx = Ctx::new();
    let kubefile = format!(
        "FROM scratch\n\
         ADD --checksum={} {} bin\n\
         ADD --chmod=0755 --checksum={} {} bin/release.tar.gz\n",
        sha256(KUBECTL),
        server.url("/v1.25/bin/kubectl"),
        sha256(b"archives from URLs stay packed"),
        server.url("/release.tar.gz"),
    );
    let out = build(&seal, &ctx, &kubefile);
    out.assert_built();
    assert!(!out.stderr.contains("warning"), "{}", out.stderr);
    let views = layers(&seal, "dl:v1");
    assert_eq!(
        views[0].rows,
        ["drwxr-xr-x 0/0 bin", "-rw------- 0/0 bin/kubectl"]
    );
    assert_eq!(views[0].read("bin/kubectl").as_bytes(), KUBECTL);
    assert_eq!(
        views[1].rows,
        ["drwxr-xr-x 0/0 bin", "-rwxr-xr-x 0/0 bin/release.tar.gz"]
    );
    assert_eq!(server.hits("/v1.25/bin/kubectl"), 1);

    let again = build(&seal, &ctx, &kubefile);
    assert_eq!(again.digest(), out.digest());
    assert_eq!(
        again.step("ADD --checksum"),
        Step::Cached,
        "{}",
        again.stderr
    );
    assert_eq!(again.step("ADD --chmod"), Step::Cached);
    assert_eq!(
        server.hits("/v1.25/bin/kubectl"),
        1,
        "a cached step downloads nothing"
    );
    assert_eq!(server.hits("/release.tar.gz"), 1);
    assert!(std::fs::read_dir(seal.root().join("tmp"))
        .unwrap()
        .next()
        .is_none());
}

#[test]
fn a_wrong_checksum_fails_naming_the_url_and_both_digests() {
    let server = Server::start(vec![("/kubectl", Route::Bytes(KUBECTL.to_vec()))]);
    let seal = Seal::new();
    let ctx = Ctx::new();
    let wrong = sha256(b"something else");
    let url = server.url("/kubectl");
    let out = build(
        &seal,
        &ctx,
        &format!("FROM scratch\nADD --checksum={wrong} {url} bin\n"),
    );
    assert_eq!(out.code, 1, "{}", out.stderr);
    let message = format!(
        "checksum mismatch for {url}: expected {wrong}, got {}",
        sha256(KUBECTL)
    );
    assert!(
        out.stderr.contains(&message),
        "expected `{message}` in:\n{}",
        out.stderr
    );
    assert!(out.stderr.contains(" --> Kubefile:2:1\n"), "{}", out.stderr);
    assert!(std::fs::read_dir(seal.root().join("tmp"))
        .unwrap()
        .next()
        .is_none());
}

#[test]
fn a_download_without_a_checksum_warns_and_runs_on_every_build() {
    let server = Server::start(vec![
        ("/latest/helm", Route::Redirect("/v3.12.0/helm")),
        ("/v3.12.0/helm", Route::Bytes(b"helm v3.12.0\n".to_vec())),
    ]);
    let seal = Seal::new();
    let ctx = Ctx::new();
    ctx.file("values.yaml", "replicas: 1\n");
    let kubefile = format!(
        "FROM scratch\nCOPY values.yaml etc\nADD {} bin\n",
        server.url("/latest/helm")
    );
    let first = build(&seal, &ctx, &kubefile);
    first.assert_built();
    assert!(
        first.stderr.contains("warning: ADD ")
            && first.stderr.contains("(line 3) has no --checksum")
            && first.stderr.contains("never cached"),
        "{}",
        first.stderr
    );
    let views = layers(&seal, "dl:v1");
    assert_eq!(
        views[1].rows,
        ["drwxr-xr-x 0/0 bin", "-rw------- 0/0 bin/helm"]
    );
    assert_eq!(views[1].read("bin/helm"), "helm v3.12.0\n");
    assert_eq!(server.hits("/latest/helm"), 1, "the redirect was followed");
    assert_eq!(server.hits("/v3.12.0/helm"), 1);

    let second = seal.build(ctx.path(), "dl:v1", &["--compression", "gzip", "--explain"]);
    assert_eq!(second.step("ADD http"), Step::Done, "{}", second.stderr);
    assert_eq!(second.step("COPY values.yaml"), Step::Cached);
    // `--explain` says why: the step is uncached by nature.
    let why: Vec<&str> = second
        .stderr
        .lines()
        .filter(|l| l.contains(" WHY: "))
        .collect();
    assert_eq!(
        why,
        ["#3 WHY: ADD of a URL without --checksum: runs on every build"],
        "{}",
        second.stderr
    );
    assert_eq!(server.hits("/v3.12.0/helm"), 2);
    assert_eq!(second.digest(), first.digest(), "same bytes, same image");
    assert!(std::fs::read_dir(seal.root().join("tmp"))
        .unwrap()
        .next()
        .is_none());
}

#[test]
fn a_missing_url_fails_with_the_status() {
    let server = Server::start(vec![]);
    let seal = Seal::new();
    let ctx = Ctx::new();
    let url = server.url("/nope/kubectl");
    let out = build(&seal, &ctx, &format!("FROM scratch\nADD {url} bin\n"));
    assert_eq!(out.code, 1, "{}", out.stderr);
    let message = format!("downloading {url}: the server answered 404 Not Found");
    assert!(
        out.stderr.contains(&message),
        "expected `{message}` in:\n{}",
        out.stderr
    );
    assert!(out.stderr.contains(" --> Kubefile:2:1\n"), "{}", out.stderr);
    assert!(std::fs::read_dir(seal.root().join("tmp"))
        .unwrap()
        .next()
        .is_none());
}

#[test]
fn bad_add_sources_and_flags_fail_at_lowering() {
    for (kubefile, at, message) in [
        (
            "FROM scratch\nADD ../a.tar opt\n",
            "2:5",
            "ADD source `../a.tar` is outside the build context",
        ),
        (
            "FROM scratch\nADD /etc/passwd.tar opt\n",
            "2:5",
            "ADD source `/etc/passwd.tar` is an absolute path",
        ),
        (
            "FROM scratch\nADD a.txt https://example.com/ opt\n",
            "2:11",
            "ADD source `https://example.com/` names no file",
        ),
        (
            "FROM scratch\nADD --checksum=sha256:00 https://example.com/x opt\n",
            "2:5",
            "a sha256 digest is 64 hex digits",
        ),
        (
            "FROM scratch\nADD --checksum=md5:00 https://example.com/x opt\n",
            "2:5",
            "only sha256 is supported",
        ),
    ] {
        let seal = Seal::new();
        let ctx = Ctx::new();
        ctx.file("a.txt", "a").kubefile(kubefile);
        let out = seal.build(ctx.path(), "bad:v1", &[]);
        assert_eq!(out.code, 1, "{kubefile}\n{}", out.stderr);
        assert!(
            out.stderr.contains(message),
            "expected `{message}` in:\n{}",
            out.stderr
        );
        assert!(
            out.stderr.contains(&format!(" --> Kubefile:{at}\n")),
            "expected Kubefile:{at} in:\n{}",
            out.stderr
        );
        assert!(!seal.root().exists(), "lowering errors open no store");
    }
    // --checksum pins one download; it cannot cover local files.
    let seal = Seal::new();
    let ctx = Ctx::new();
    let checksum = format!("sha256:{}", "0".repeat(64));
    ctx.file("a.txt", "a").kubefile(&format!(
        "FROM scratch\nADD --checksum={checksum} a.txt opt\n"
    ));
    let out = seal.build(ctx.path(), "bad:v1", &[]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .contains("ADD --checksum needs exactly one source, an http(s) URL"),
        "{}",
        out.stderr
    );
    // A missing local source points at its word, as for COPY.
    let ctx = Ctx::new();
    ctx.file("a.txt", "a")
        .kubefile("FROM scratch\nADD a.txt missing.tar.gz opt\n");
    let out = Seal::new().build(ctx.path(), "bad:v1", &[]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("`missing.tar.gz` not found"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains(" --> Kubefile:2:11\n"),
        "{}",
        out.stderr
    );
}

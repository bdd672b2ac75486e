//! RUN on a Remote Execution API server (issue 18), against a real `buildbox-casd` on
//! 127.0.0.1 (`tests/common/reapi.rs`): the same files as container mode, uploads of only what
//! the server lacks, the server's action cache, steps overlapping on the server, and clear
//! failures that store nothing.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::reapi::{free_port, Reapi, TlsFront};
use common::{Ctx, Out, Seal};

/// Applets of the busybox base.
const APPLETS: &[&str] = &[
    "sh", "ls", "echo", "cat", "mkdir", "rm", "chmod", "ln", "sleep", "stat", "touch", "pwd",
    "true", "false", "head",
];

/// A context whose `rootfs/` holds busybox-static, its applets, `/etc` and `/tmp`.
fn busybox_ctx() -> Ctx {
    let ctx = Ctx::new();
    let bin = ctx.path().join("rootfs/bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(ctx.path().join("rootfs/tmp")).unwrap();
    std::fs::copy("/bin/busybox", bin.join("busybox"))
        .expect("busybox-static is installed (scripts/install-system-packages.sh)");
    for applet in APPLETS {
        std::os::unix::fs::symlink("busybox", bin.join(applet)).unwrap();
    }
    ctx.file("rootfs/etc/keep", "keep\n")
        .file("rootfs/etc/old/gone", "gone\n");
    ctx
}

/// `--remote-executor URL` and the flags every remote build here uses.
fn remote_args(server: &Reapi) -> Vec<String> {
    vec![
        "--remote-executor".into(),
        server.url(),
        "--build-mode".into(),
        "lite".into(),
        "--compression".into(),
        "gzip".into(),
    ]
}

fn build(seal: &Seal, ctx: &Ctx, tag: &str, extra: &[String]) -> Out {
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    seal.build(ctx.path(), tag, &extra)
}

/// The numbers of each `remote:` progress line, in order of appearance.
fn remote_lines(stderr: &str) -> Vec<BTreeMap<String, String>> {
    stderr
        .lines()
        .filter_map(|line| {
            line.split_once("remote: uploaded_bytes=")
                .map(|(_, rest)| rest)
        })
        .map(|rest| {
            let mut fields = BTreeMap::new();
            let rest = format!("uploaded_bytes={rest}");
            for word in rest.trim_end_matches('"').split_whitespace() {
                match word.split_once('=') {
                    Some((k, v)) => {
                        fields.insert(k.to_string(), v.trim_end_matches('"').to_string())
                    }
                    None => fields.insert(word.trim_end_matches('"').to_string(), String::new()),
                };
            }
            fields
        })
        .collect()
}

/// `seal save` + `umoci unpack --rootless`: the image's rootfs.
fn rootfs(seal: &Seal, name: &str, dir: &Path) -> PathBuf {
    let archive = dir.join("img.tar");
    seal.save(name, &archive);
    let layout = dir.join("layout");
    std::fs::create_dir_all(&layout).unwrap();
    common::tool(
        "tar",
        &[
            "-xf",
            archive.to_str().unwrap(),
            "-C",
            layout.to_str().unwrap(),
        ],
        dir,
    );
    let bundle = dir.join("bundle");
    let tag = name.rsplit(':').next().unwrap();
    let out = Command::new("umoci")
        .args(["unpack", "--rootless", "--image"])
        .arg(format!("{}:{tag}", layout.display()))
        .arg(&bundle)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "umoci: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    bundle.join("rootfs")
}

/// Every path of a tree: type, mode, and content or link target (owners aside: REAPI has none).
fn listing(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let rel = path
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        let mode = meta.permissions().mode() & 0o7777;
        let what = if meta.file_type().is_symlink() {
            format!("link -> {}", std::fs::read_link(&path).unwrap().display())
        } else if meta.is_dir() {
            walk(root, &path, out);
            format!("dir {mode:o}")
        } else {
            let bytes = std::fs::read(&path).unwrap();
            format!("file {mode:o} {} bytes {:x}", bytes.len(), fnv(&bytes))
        };
        out.insert(rel, what);
    }
}

/// A cheap content fingerprint for listings.
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100000001b3)
    })
}

const COMPARED_RUNS: &str = "\
FROM scratch
COPY rootfs/. .
RUN mkdir -p /opt/app/sub && echo hi > /opt/app/sub/f && chmod 4755 /opt/app/sub/f \\
 && chmod 700 /opt/app && ln -s sub/f /opt/app/link && rm /bin/stat && rm -r /etc/old \\
 && echo changed > /etc/keep && chmod 600 /etc/keep
RUN head -c 1500000 /bin/busybox > /big && chmod 640 /big
RUN <<EOF
echo from-a-heredoc > /heredoc
chmod 751 /heredoc
EOF
";

#[test]
fn a_remote_run_gives_the_files_and_modes_of_container_mode() {
    let server = Reapi::start();
    let ctx = busybox_ctx();
    ctx.kubefile(COMPARED_RUNS);
    let (local, remote) = (Seal::new(), Seal::new());
    local.build_ok(
        ctx.path(),
        "cmp:1",
        &[
            "--mode",
            "container",
            "--build-mode",
            "lite",
            "--compression",
            "gzip",
        ],
    );
    let out = build(&remote, &ctx, "cmp:1", &remote_args(&server));
    out.assert_built();
    assert_eq!(remote_lines(&out.stderr).len(), 3, "{}", out.stderr);
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("l")).unwrap();
    std::fs::create_dir_all(tmp.path().join("r")).unwrap();
    let expected = listing(&rootfs(&local, "cmp:1", &tmp.path().join("l")));
    let got = listing(&rootfs(&remote, "cmp:1", &tmp.path().join("r")));
    assert_eq!(got, expected);
    // The comparison saw what the RUNs did.
    assert!(
        expected["opt/app/sub/f"].starts_with("file 4755"),
        "{expected:?}"
    );
    assert_eq!(expected["opt/app"], "dir 700");
    assert!(!expected.contains_key("bin/stat") && !expected.contains_key("etc/old"));
    assert!(expected["heredoc"].starts_with("file 751"));
    // Over 1 MiB: streamed through ByteStream both ways.
    assert!(expected["big"].starts_with("file 640 1500000 bytes"));
}

#[test]
fn a_new_layer_uploads_only_its_own_files_and_a_pruned_store_is_served_by_the_action_cache() {
    let server = Reapi::start();
    let seal = Seal::new();
    let ctx = busybox_ctx();
    ctx.kubefile("FROM scratch\nCOPY rootfs/. .\nRUN echo one > /one\n");
    let first = build(&seal, &ctx, "up:1", &remote_args(&server));
    first.assert_built();
    let busybox = std::fs::metadata("/bin/busybox").unwrap().len();
    let lines = remote_lines(&first.stderr);
    let uploaded: u64 = lines[0]["uploaded_bytes"].parse().unwrap();
    assert!(
        uploaded > busybox,
        "the first RUN uploads the rootfs: {lines:?}"
    );

    // The same rootfs plus one layer with one new 100 000-byte file.
    let payload = vec![b'x'; 100_000];
    ctx.file("payload/big", &payload).kubefile(
        "FROM scratch\nCOPY rootfs/. .\nCOPY payload/big /data/big\nRUN echo two > /two\n",
    );
    let second = build(&seal, &ctx, "up:2", &remote_args(&server));
    second.assert_built();
    let lines = remote_lines(&second.stderr);
    let uploaded: u64 = lines[0]["uploaded_bytes"].parse().unwrap();
    // The new file, the two directories on its way (`/` and `/data`), the command and the
    // action: nothing of the busybox layer again.
    assert!(
        (100_000..100_000 + 4096).contains(&uploaded),
        "uploaded {uploaded} bytes: {lines:?}"
    );
    assert_eq!(lines[0]["uploaded_blobs"], "5", "{lines:?}");

    // Nothing cached locally any more: the server answers from its action cache.
    let pruned = seal.run_in(ctx.path(), &["prune", "--all"]);
    assert_eq!(pruned.code, 0, "{}", pruned.stderr);
    let again = build(&seal, &ctx, "up:3", &remote_args(&server));
    again.assert_built();
    let lines = remote_lines(&again.stderr);
    assert_eq!(lines.len(), 1, "{}", again.stderr);
    assert!(lines[0].contains_key("cached_result"), "{lines:?}");
    assert!(
        again
            .stderr
            .contains("remote: 0 actions executed, 1 from its action cache"),
        "{}",
        again.stderr
    );
    assert_eq!(again.digest(), second.digest());
}

const TWO_SLOW_STAGES: &str = "\
FROM scratch AS base
COPY rootfs/. .

FROM base AS one
RUN sleep 2 && echo one > /one

FROM base AS two
RUN sleep 2 && echo two > /two

FROM scratch
COPY --from=one /one /one
COPY --from=two /two /two
";

#[test]
fn two_stages_runs_overlap_on_the_server_even_with_one_local_slot() {
    let server = Reapi::start();
    let seal = Seal::new();
    let ctx = busybox_ctx();
    ctx.kubefile(TWO_SLOW_STAGES);
    let remote = remote_args(&server);
    let mut args = vec![
        "build",
        "--progress",
        "json",
        "-t",
        "par:1",
        "--max-parallelism",
        "1",
    ];
    args.extend(remote.iter().map(String::as_str));
    args.push(".");
    let out = seal.run_in(ctx.path(), &args);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let mut spans: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    let mut workers = Vec::new();
    for line in out.stderr.lines() {
        let Ok(event) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let (Some(name), Some(time)) = (event["name"].as_str(), event["time"].as_f64()) else {
            continue;
        };
        let span = spans
            .entry(name.to_string())
            .or_insert((f64::NAN, f64::NAN));
        match event["event"].as_str() {
            Some("started") => span.0 = time,
            Some("done") => span.1 = time,
            Some("log") => {
                let text = event["line"].as_str().unwrap_or_default();
                if let Some(fields) = remote_lines(text).pop() {
                    let t = |k: &str| fields[k].parse::<f64>().unwrap();
                    workers.push((t("worker_start"), t("worker_completed")));
                }
            }
            _ => {}
        }
    }
    let one = spans
        .iter()
        .find(|(n, _)| n.contains("echo one"))
        .expect("one ran")
        .1;
    let two = spans
        .iter()
        .find(|(n, _)| n.contains("echo two"))
        .expect("two ran")
        .1;
    assert!(
        one.0 < two.1 && two.0 < one.1,
        "steps did not overlap: {one:?} {two:?}"
    );
    // And on the server itself: both workers ran at the same time.
    assert_eq!(workers.len(), 2, "{}", out.stderr);
    let (a, b) = (workers[0], workers[1]);
    assert!(
        a.0 < b.1 && b.0 < a.1,
        "the server ran them one after the other: {workers:?}"
    );
}

#[test]
fn a_failing_run_reports_its_code_output_and_line_and_stores_nothing() {
    let server = Reapi::start();
    let seal = Seal::new();
    let ctx = busybox_ctx();
    ctx.kubefile(
        "FROM scratch\nCOPY rootfs/. .\nRUN echo about to fail && echo on-stderr >&2 && exit 3\n",
    );
    let out = build(&seal, &ctx, "fail:1", &remote_args(&server));
    assert_ne!(out.code, 0);
    for needle in [
        "exited with code 3",
        "about to fail",
        "on-stderr",
        "Kubefile:3",
    ] {
        assert!(
            out.stderr.contains(needle),
            "no `{needle}` in:\n{}",
            out.stderr
        );
    }
    let images = seal.run_in(ctx.path(), &["images", "-q"]);
    assert_eq!(images.stdout.trim(), "", "a failed build named an image");
    // Fixed, the next build works.
    ctx.kubefile("FROM scratch\nCOPY rootfs/. .\nRUN echo fixed > /fixed\n");
    build(&seal, &ctx, "fail:1", &remote_args(&server)).assert_built();
}

#[test]
fn a_server_that_is_down_is_named_and_one_killed_mid_step_fails_cleanly() {
    let seal = Seal::new();
    let ctx = busybox_ctx();
    ctx.kubefile("FROM scratch\nCOPY rootfs/. .\nRUN sleep 3 && echo slow > /slow\n");
    let down = format!("grpc://127.0.0.1:{}", free_port());
    let out = seal.build(
        ctx.path(),
        "down:1",
        &["--remote-executor", &down, "--build-mode", "lite"],
    );
    assert_ne!(out.code, 0);
    assert!(
        out.stderr
            .contains(&format!("cannot reach the remote executor at {down}")),
        "{}",
        out.stderr
    );

    let mut server = Reapi::start();
    let args = remote_args(&server);
    let mut cmd = seal.command();
    cmd.current_dir(ctx.path())
        .args(["build", "--progress", "plain", "-t", "down:1"])
        .args(&args)
        .arg(".")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = cmd.spawn().unwrap();
    // Kill the server while the action runs.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    server.kill();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains(&server.url()),
        "the error names the server: {stderr}"
    );
    assert!(stderr.contains("Kubefile:3"), "{stderr}");
    let images = seal.run_in(ctx.path(), &["images", "-q"]);
    assert_eq!(images.stdout.trim(), "");
    // A server back on the same address: the next build works.
    let server = server.restart();
    build(&seal, &ctx, "down:1", &remote_args(&server)).assert_built();
}

/// Processes whose command line holds `marker` (the step's shell on the server).
fn processes_with(marker: &str) -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| std::fs::read(e.ok()?.path().join("cmdline")).ok())
        .filter(|cmdline| String::from_utf8_lossy(cmdline).contains(marker))
        .count()
}

#[test]
fn ctrl_c_cancels_the_action_on_the_server() {
    let server = Reapi::start();
    let seal = Seal::new();
    let ctx = busybox_ctx();
    let marker = format!("cancel-marker-{}", std::process::id());
    ctx.kubefile(&format!(
        "FROM scratch\nCOPY rootfs/. .\nRUN echo {marker}; sleep 30\n"
    ));
    let args = remote_args(&server);
    let mut cmd = seal.command();
    cmd.current_dir(ctx.path())
        .args(["build", "--progress", "plain", "-t", "cancel:1"])
        .args(&args)
        .arg(".")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = cmd.spawn().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while processes_with(&marker) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the step never ran on the server"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let interrupted = std::time::Instant::now();
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert!(
        interrupted.elapsed() < std::time::Duration::from_secs(10),
        "seal waited for the action: {stderr}"
    );
    // The server stopped the action: its shell is gone well before `sleep 30` would end.
    while processes_with(&marker) > 0 {
        assert!(
            interrupted.elapsed() < std::time::Duration::from_secs(15),
            "the action still runs on the server after Ctrl-C"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let images = seal.run_in(ctx.path(), &["images", "-q"]);
    assert_eq!(images.stdout.trim(), "");
}

#[test]
fn a_server_restarted_mid_step_is_retried_and_the_build_succeeds() {
    let seal = Seal::new();
    let ctx = busybox_ctx();
    ctx.kubefile("FROM scratch\nCOPY rootfs/. .\nRUN sleep 2 && echo done > /done\n");
    let server = Reapi::start();
    let args = remote_args(&server);
    let mut cmd = seal.command();
    cmd.current_dir(ctx.path())
        .args(["build", "--progress", "plain", "-t", "retry:1"])
        .args(&args)
        .arg(".")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = cmd.spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1200));
    // UNAVAILABLE while it is down; the same CAS on disk once it is back.
    let _server = server.restart();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
}

#[test]
fn a_result_blob_that_does_not_match_its_digest_fails_the_step_and_stores_nothing() {
    let server = Reapi::start();
    let seal = Seal::new();
    let ctx = busybox_ctx();
    let content = "the step output\n";
    ctx.kubefile(&format!(
        "FROM scratch\nCOPY rootfs/. .\nRUN printf '{}' > /out\n",
        content.replace('\n', "\\n")
    ));
    build(&seal, &ctx, "bad:1", &remote_args(&server)).assert_built();
    // Corrupt the output file in the server's CAS (same size, other bytes), then ask again
    // with an empty local cache: the action cache answers, the blob does not verify.
    let hash = hex_sha256(content.as_bytes());
    let object = server.cas_object(&hash);
    assert!(
        object.is_file(),
        "no CAS object for the output at {}",
        object.display()
    );
    let mut perms = std::fs::metadata(&object).unwrap().permissions();
    perms.set_mode(0o644);
    std::fs::set_permissions(&object, perms).unwrap();
    std::fs::write(&object, "X".repeat(content.len())).unwrap();
    let pruned = seal.run_in(ctx.path(), &["prune", "--all"]);
    assert_eq!(pruned.code, 0, "{}", pruned.stderr);
    let out = build(&seal, &ctx, "bad:2", &remote_args(&server));
    assert_ne!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("does not match its digest") || out.stderr.contains("is missing"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("Kubefile:3"), "{}", out.stderr);
    let images = seal.run_in(ctx.path(), &["images", "-q"]);
    assert_eq!(
        images.stdout.trim(),
        "docker.io/sealerio/bad:1",
        "{}",
        images.stderr
    );
    // No record of the step either: with the server's blob repaired the step runs again.
    std::fs::write(&object, content).unwrap();
    let again = build(&seal, &ctx, "bad:2", &remote_args(&server));
    again.assert_built();
    assert!(
        again.stderr.contains("remote: uploaded_bytes="),
        "{}",
        again.stderr
    );
}

fn hex_sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn the_remote_flags_reach_the_server() {
    let server = Reapi::start();
    let ctx = busybox_ctx();
    ctx.kubefile("FROM scratch\nCOPY rootfs/. .\nRUN echo p > /p\n");
    let with = |extra: &[&str]| {
        let mut args = remote_args(&server);
        args.extend(extra.iter().map(|s| s.to_string()));
        build(&Seal::new(), &ctx, "flags:1", &args)
    };
    // The instance name is sent: buildbox-casd serves only the default one.
    let out = with(&["--remote-instance-name", "elsewhere"]);
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("elsewhere"), "{}", out.stderr);
    // Platform properties are part of the action: another pool is another action, the same
    // pool again is the server's cached result.
    let a = with(&["--remote-platform", "pool=a"]);
    a.assert_built();
    assert!(
        remote_lines(&a.stderr)[0].contains_key("executed"),
        "{}",
        a.stderr
    );
    let b = with(&["--remote-platform", "pool=b"]);
    b.assert_built();
    assert!(
        remote_lines(&b.stderr)[0].contains_key("executed"),
        "{}",
        b.stderr
    );
    let again = with(&["--remote-platform", "pool=a"]);
    again.assert_built();
    assert!(
        remote_lines(&again.stderr)[0].contains_key("cached_result"),
        "{}",
        again.stderr
    );
    // The timeout bounds the action's wait.
    ctx.kubefile("FROM scratch\nCOPY rootfs/. .\nRUN sleep 5\n");
    let out = with(&["--remote-timeout", "1s"]);
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.contains("--remote-timeout is 1s"),
        "{}",
        out.stderr
    );
    // grpcs:// speaks TLS: to this plain-text server that is a connection error naming it.
    let tls = server.url().replace("grpc://", "grpcs://");
    let out = build(
        &Seal::new(),
        &ctx,
        "flags:2",
        &[
            "--remote-executor".to_string(),
            tls.clone(),
            "--build-mode".into(),
            "lite".into(),
        ],
    );
    assert_ne!(out.code, 0);
    assert!(
        out.stderr
            .contains(&format!("cannot reach the remote executor at {tls}")),
        "{}",
        out.stderr
    );
    // A remote flag without --remote-executor is a usage error.
    let out = Seal::new().build(ctx.path(), "flags:3", &["--remote-platform", "pool=a"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
}

#[test]
fn grpcs_reaches_a_server_behind_tls_with_a_ca_the_system_trusts() {
    let server = Reapi::start();
    let front = TlsFront::start(server.port);
    let ctx = busybox_ctx();
    ctx.kubefile("FROM scratch\nCOPY rootfs/. .\nRUN echo tls > /tls\n");
    let args = ["--remote-executor", &front.url(), "--build-mode", "lite"];
    // Trusted through the system's CA store (here: SSL_CERT_FILE, which it honours).
    let ca = front.ca();
    let out = Seal::new().build_env(
        ctx.path(),
        "tls:1",
        &args,
        &[("SSL_CERT_FILE", ca.to_str().unwrap())],
    );
    out.assert_built();
    assert!(
        remote_lines(&out.stderr)[0].contains_key("executed"),
        "{}",
        out.stderr
    );
    // A CA nobody trusts: an error naming the address, nothing built.
    let out = Seal::new().build(ctx.path(), "tls:2", &args);
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.contains(&format!(
            "cannot reach the remote executor at {}",
            front.url()
        )),
        "{}",
        out.stderr
    );
}

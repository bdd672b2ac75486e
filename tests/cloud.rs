//! `--mode cloud` against a real OpenSSH server on this machine (tests/common/sshd.rs: its own
//! mount namespace, `/var/lib/seal`, `/tmp` and HOME): the layer equals container mode's,
//! only the layers the host lacks travel, host keys are checked, and a host that dies
//! mid-step fails the step at its line with nothing partial in the store.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use common::sshd::{HostOptions, Sshd};
use common::{Ctx, Seal};

/// A base image `NAME`: busybox-static and a few applet links.
fn busybox_base(seal: &Seal, name: &str) {
    let ctx = Ctx::new();
    let bin = ctx.path().join("rootfs/bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(ctx.path().join("rootfs/tmp")).unwrap();
    std::fs::copy("/bin/busybox", bin.join("busybox"))
        .expect("busybox-static is installed (scripts/install-system-packages.sh)");
    for applet in ["sh", "echo", "mkdir", "sleep", "cat", "chmod", "ln", "dd"] {
        std::os::unix::fs::symlink("busybox", bin.join(applet)).unwrap();
    }
    ctx.kubefile("FROM scratch\nCOPY rootfs/. .\n");
    seal.build_ok(ctx.path(), name, &[]);
}

fn cloud_flags(sshd: &Sshd) -> Vec<String> {
    vec![
        "--mode".into(),
        "cloud".into(),
        "--cloud-host".into(),
        sshd.url(),
        "--cloud-ssh-config".into(),
        sshd.config().display().to_string(),
    ]
}

fn refs(flags: &[String]) -> Vec<&str> {
    flags.iter().map(String::as_str).collect()
}

/// `(digest, size)` of each layer of an image.
fn layers(seal: &Seal, name: &str) -> Vec<(String, u64)> {
    seal.inspect(name)["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["digest"].as_str().unwrap().to_string(),
                l["size"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// `(bytes sent, layers sent)` from the summary's `cloud:` part.
fn sent(stderr: &str) -> (u64, u64) {
    let line = stderr
        .lines()
        .rev()
        .find(|l| l.starts_with("built "))
        .expect("a summary");
    let cloud = line.split("; cloud: ").nth(1).expect("a cloud summary");
    let words: Vec<&str> = cloud.split_whitespace().collect();
    // `N steps run, B bytes sent in L layers, ...`
    (words[3].parse().unwrap(), words[7].parse().unwrap())
}

/// The entries of `dir` (the host's copies of seal), sorted.
fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    out.sort();
    out
}

/// Blob temp files anywhere in a store: what a failed transfer must not leave.
fn temp_blobs(root: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if entry.file_type().unwrap().is_dir() {
                if name != "snapshots" {
                    stack.push(entry.path());
                }
            } else if name.starts_with("blob-") {
                found.push(entry.path().display().to_string());
            }
        }
    }
    found
}

#[test]
fn a_cloud_run_gives_container_modes_layer_and_sends_only_what_the_host_lacks() {
    let sshd = Sshd::start();
    let seal = Seal::new();
    busybox_base(&seal, "base:1");
    let base = layers(&seal, "base:1");
    let ctx = Ctx::new();
    ctx.kubefile(
        "FROM base:1\nRUN mkdir -p /opt/x && echo hello > /opt/x/greeting && chmod 600 /opt/x/greeting && ln -s greeting /opt/x/link\n",
    );
    seal.build_ok(ctx.path(), "local:1", &["--mode", "container"]);
    let flags = cloud_flags(&sshd);
    let out = seal.build_ok(ctx.path(), "cloud:1", &refs(&flags));
    eprintln!(
        "first cloud build: {}",
        out.stderr.lines().last().unwrap_or_default()
    );
    assert_eq!(layers(&seal, "cloud:1"), layers(&seal, "local:1"));
    // The first build sends the base's layers, all of them.
    let base_bytes: u64 = base.iter().map(|(_, s)| s).sum();
    assert_eq!(
        sent(&out.stderr),
        (base_bytes, base.len() as u64),
        "{}",
        out.stderr
    );
    // The host ran this very binary, copied over and checked.
    let bin = sshd.remote_home().join(".cache/seal/bin");
    let copies = files_in(&bin);
    assert_eq!(copies.len(), 1, "{copies:?}");
    let ours = std::fs::read(env!("CARGO_BIN_EXE_seal")).unwrap();
    assert_eq!(std::fs::read(&copies[0]).unwrap(), ours);

    // One new COPY before the RUN: only its layer travels.
    ctx.file("new.txt", "a new file\n");
    ctx.kubefile("FROM base:1\nCOPY new.txt /new.txt\nRUN cat /new.txt > /copied\n");
    let out = seal.build_ok(ctx.path(), "cloud:2", &refs(&flags));
    eprintln!(
        "second cloud build: {}",
        out.stderr.lines().last().unwrap_or_default()
    );
    let image = layers(&seal, "cloud:2");
    let copy_layer = &image[base.len()];
    assert_eq!(sent(&out.stderr), (copy_layer.1, 1), "{}", out.stderr);
    let hex = copy_layer.0.strip_prefix("sha256:").unwrap();
    assert!(sshd.remote_store().join("blobs/sha256").join(hex).is_file());
    seal.build_ok(ctx.path(), "local:2", &["--mode", "container"]);
    assert_eq!(image, layers(&seal, "local:2"));
}

#[test]
fn host_keys_are_checked() {
    let sshd = Sshd::start();
    let seal = Seal::new();
    busybox_base(&seal, "base:1");
    let ctx = Ctx::new();
    ctx.kubefile("FROM base:1\nRUN echo hi > /hi\n");
    let flags = cloud_flags(&sshd);

    sshd.write_known_hosts(&sshd.other_key());
    let out = seal.build(ctx.path(), "k:1", &refs(&flags));
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("has changed"), "{}", out.stderr);
    assert!(out.stderr.contains(" --> Kubefile:2"), "{}", out.stderr);
    assert!(
        !sshd.remote_home().join(".cache").exists(),
        "nothing reached the host"
    );

    sshd.write_known_hosts("");
    let out = seal.build(ctx.path(), "k:1", &refs(&flags));
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.contains("--cloud-accept-new-host-key"),
        "{}",
        out.stderr
    );

    let mut accept = flags.clone();
    accept.push("--cloud-accept-new-host-key".into());
    seal.build_ok(ctx.path(), "k:1", &refs(&accept));
    let known = std::fs::read_to_string(sshd.config().with_file_name("known_hosts")).unwrap();
    assert!(known.contains(&sshd.host_key()), "{known}");
    // A changed key stays refused even when new keys are accepted.
    sshd.write_known_hosts(&sshd.other_key());
    ctx.kubefile("FROM base:1\nRUN echo again > /hi\n");
    let out = seal.build(ctx.path(), "k:2", &refs(&accept));
    assert_ne!(out.code, 0, "{}", out.stderr);

    // The host refuses the client's key.
    sshd.write_known_hosts(&sshd.host_key());
    std::fs::remove_file(sshd.remote_home().join(".ssh/authorized_keys")).unwrap();
    let out = seal.build(ctx.path(), "k:2", &refs(&flags));
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("Permission denied"), "{}", out.stderr);
    assert!(out.stderr.contains("refused every key"), "{}", out.stderr);
}

#[test]
fn a_host_without_runc_is_a_clear_error_at_the_run() {
    let sshd = Sshd::start_with(HostOptions {
        no_runc: true,
        ..HostOptions::default()
    });
    let seal = Seal::new();
    busybox_base(&seal, "base:1");
    let ctx = Ctx::new();
    ctx.kubefile("FROM base:1\nRUN echo hi > /hi\n");
    let out = seal.build(ctx.path(), "r:1", &refs(&cloud_flags(&sshd)));
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("cloud host root@"), "{}", out.stderr);
    assert!(
        out.stderr.contains("apt-get install runc"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains(" --> Kubefile:2"), "{}", out.stderr);
}

#[test]
fn a_full_disk_on_the_host_fails_the_step_and_the_next_build_works() {
    let sshd = Sshd::start_with(HostOptions {
        store_size: Some("24m"),
        ..HostOptions::default()
    });
    let seal = Seal::new();
    busybox_base(&seal, "base:1");
    let ctx = Ctx::new();
    ctx.kubefile("FROM base:1\nRUN dd if=/dev/zero of=/big bs=1M count=64\n");
    let flags = cloud_flags(&sshd);
    let out = seal.build(ctx.path(), "f:1", &refs(&flags));
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.contains("No space left on device"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains(" --> Kubefile:2"), "{}", out.stderr);
    assert_eq!(temp_blobs(seal.root()), Vec::<String>::new());
    ctx.kubefile("FROM base:1\nRUN echo small > /small\n");
    seal.build_ok(ctx.path(), "f:1", &refs(&flags));
}

#[test]
fn an_unreachable_host_is_a_clear_error_at_the_run() {
    let seal = Seal::new();
    busybox_base(&seal, "base:1");
    let ctx = Ctx::new();
    ctx.kubefile("FROM base:1\nRUN echo hi > /hi\n");
    let out = seal.build(
        ctx.path(),
        "u:1",
        &["--mode", "cloud", "--cloud-host", "ssh://root@127.0.0.1:1"],
    );
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.contains("cloud host root@127.0.0.1:1"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("unreachable"), "{}", out.stderr);
    assert!(out.stderr.contains(" --> Kubefile:2"), "{}", out.stderr);
    let out = seal.build(ctx.path(), "u:1", &["--mode", "cloud"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("--cloud-host"), "{}", out.stderr);
}

#[test]
fn a_host_dying_mid_step_fails_the_step_cleanly_and_the_next_build_works() {
    let mut sshd = Sshd::start();
    let seal = Seal::new();
    busybox_base(&seal, "base:1");
    let ctx = Ctx::new();
    ctx.kubefile("FROM base:1\nRUN echo step-$((40+2)) && sleep 60 && echo done > /done\n");
    let flags = cloud_flags(&sshd);
    // The output, not the step's title (which shows the command).
    let Running {
        mut child,
        mut stderr,
        mut seen,
    } = start_until(&seal, &ctx, "d:1", &flags, "step-42");
    assert!(!sshd.sessions().is_empty());
    sshd.kill_all();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    let status = child.wait().unwrap();
    seen.push_str(&rest);
    assert!(!status.success(), "{seen}");
    assert!(seen.contains("cloud host root@"), "{seen}");
    assert!(seen.contains(" --> Kubefile:2"), "{seen}");
    assert_eq!(temp_blobs(seal.root()), Vec::<String>::new());

    sshd.restart();
    ctx.kubefile("FROM base:1\nRUN echo step-started && echo done > /done\n");
    seal.build_ok(ctx.path(), "d:1", &refs(&flags));
}

#[test]
fn an_interrupted_build_stops_the_step_on_the_host() {
    let sshd = Sshd::start();
    let seal = Seal::new();
    busybox_base(&seal, "base:1");
    let ctx = Ctx::new();
    ctx.kubefile("FROM base:1\nRUN echo step-$((40+2)) && sleep 61 && echo done > /done\n");
    let Running {
        mut child,
        mut stderr,
        seen,
    } = start_until(&seal, &ctx, "i:1", &cloud_flags(&sshd), "step-42");
    assert!(!sshd.sessions().is_empty());
    // `step-42` is echoed before the shell starts `sleep`: wait for it to exist.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !running("sleep\x0061") {
        assert!(
            std::time::Instant::now() < deadline,
            "the step's process is visible"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    assert!(!child.wait().unwrap().success(), "{seen}{rest}");
    // The session ends, and with it the host's seal, runc and the step's processes.
    // (The step's `sleep 61` is looked up by name too: an orphan would leave the sshd tree.)
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !sshd.sessions().is_empty() || running("sleep\x0061") {
        assert!(
            std::time::Instant::now() < deadline,
            "left on the host: {:?}",
            sshd.sessions()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(temp_blobs(seal.root()), Vec::<String>::new());
}

/// A `seal build` running in the background.
struct Running {
    child: std::process::Child,
    stderr: BufReader<std::process::ChildStderr>,
    /// Its stderr so far.
    seen: String,
}

/// Start `seal build -t TAG FLAGS` of `ctx`; return once a line of its stderr contains
/// `marker`. The caller waits for the child (clippy cannot see a child that is returned).
#[allow(clippy::zombie_processes)]
fn start_until(seal: &Seal, ctx: &Ctx, tag: &str, flags: &[String], marker: &str) -> Running {
    let mut child = seal
        .command()
        .current_dir(ctx.path())
        .args(["build", "--progress", "plain", "-t", tag])
        .args(flags)
        .arg(".")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        if stderr.read_line(&mut line).unwrap() == 0 {
            let _ = child.wait();
            panic!("build ended early:\n{seen}");
        }
        seen.push_str(&line);
        if line.contains(marker) {
            return Running {
                child,
                stderr,
                seen,
            };
        }
    }
}

/// True when a process runs with exactly this command line (arguments NUL-separated).
fn running(cmdline: &str) -> bool {
    std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
        std::fs::read(e.path().join("cmdline"))
            .is_ok_and(|c| c.strip_suffix(b"\0") == Some(cmdline.as_bytes()))
    })
}

#[test]
fn two_builds_on_one_host_take_turns_and_the_second_is_told() {
    let sshd = Sshd::start();
    let flags = cloud_flags(&sshd);
    let (a, b) = (Seal::new(), Seal::new());
    busybox_base(&a, "base:1");
    busybox_base(&b, "base:1");
    let (ctx_a, ctx_b) = (Ctx::new(), Ctx::new());
    ctx_a.kubefile("FROM base:1\nRUN echo first-$((1+1)) && sleep 3 && echo a > /a\n");
    ctx_b.kubefile("FROM base:1\nRUN echo b > /b\n");
    let Running {
        child: mut first,
        mut stderr,
        mut seen,
    } = start_until(&a, &ctx_a, "a:1", &flags, "first-2");
    let second = b.build_ok(ctx_b.path(), "b:1", &refs(&flags));
    assert!(
        second.stderr.contains("waiting for another build's seal"),
        "{}",
        second.stderr
    );
    std::io::Read::read_to_string(&mut stderr, &mut seen).unwrap();
    assert!(first.wait().unwrap().success(), "{seen}");
}

#[test]
fn copies_of_seal_no_build_used_for_a_week_are_deleted_from_the_host() {
    let sshd = Sshd::start();
    let seal = Seal::new();
    busybox_base(&seal, "base:1");
    let ctx = Ctx::new();
    ctx.kubefile("FROM base:1\nRUN echo one > /one\n");
    let flags = cloud_flags(&sshd);
    seal.build_ok(ctx.path(), "c:1", &refs(&flags));
    let bin = sshd.remote_home().join(".cache/seal/bin");
    let ours = files_in(&bin);
    assert_eq!(ours.len(), 1, "{ours:?}");
    // Another version's copy, one a week old, an upload cut off long ago: and ours, unused for
    // as long (it is in use again now, so it stays).
    let stale = [bin.join("seal-0000"), bin.join("seal-1111.tmp.42")];
    let recent = bin.join("seal-2222");
    for path in stale.iter().chain([&recent]) {
        std::fs::write(path, "#!/bin/sh\n").unwrap();
    }
    for path in stale.iter().chain(&ours) {
        let status = std::process::Command::new("touch")
            .args(["-d", "10 days ago"])
            .arg(path)
            .status()
            .unwrap();
        assert!(status.success());
    }
    ctx.kubefile("FROM base:1\nRUN echo two > /two\n");
    seal.build_ok(ctx.path(), "c:2", &refs(&flags));
    let left = files_in(&bin);
    let mut want = vec![ours[0].clone(), recent];
    want.sort();
    assert_eq!(left, want);
}

#[test]
fn a_damaged_copy_on_the_host_is_replaced_and_a_foreign_binary_is_refused() {
    let sshd = Sshd::start();
    let seal = Seal::new();
    busybox_base(&seal, "base:1");
    let ctx = Ctx::new();
    ctx.kubefile("FROM base:1\nRUN echo one > /one\n");
    let flags = cloud_flags(&sshd);
    seal.build_ok(ctx.path(), "c:1", &refs(&flags));
    let bin = sshd.remote_home().join(".cache/seal/bin");
    let copy = files_in(&bin).remove(0);
    std::fs::write(&copy, "#!/bin/sh\nexit 1\n").unwrap();
    ctx.kubefile("FROM base:1\nRUN echo two > /two\n");
    seal.build_ok(ctx.path(), "c:2", &refs(&flags));
    let ours = std::fs::read(env!("CARGO_BIN_EXE_seal")).unwrap();
    assert_eq!(std::fs::read(&copy).unwrap(), ours);

    // An aarch64 ELF header: not for this x86_64 (or other) host.
    let foreign = ctx.path().join("seal-aarch64");
    let mut elf = b"\x7fELF\x02\x01\x01".to_vec();
    elf.resize(64, 0);
    elf[18] = 183;
    std::fs::write(&foreign, &elf).unwrap();
    let mut with = flags.clone();
    with.extend(["--cloud-seal-binary".into(), foreign.display().to_string()]);
    ctx.kubefile("FROM base:1\nRUN echo three > /three\n");
    let out = seal.build(ctx.path(), "c:3", &refs(&with));
    if std::env::consts::ARCH != "aarch64" {
        assert_ne!(out.code, 0);
        assert!(
            out.stderr.contains("is built for aarch64"),
            "{}",
            out.stderr
        );
        assert!(out.stderr.contains("--cloud-seal-binary"), "{}", out.stderr);
    }
}

//! RUN in lite and container modes against real overlayfs, mount namespaces and runc:
//! the layer a step leaves, isolation, failures, Ctrl-C, and early cutoff.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Ctx, Seal};

/// Mounts whose source or target mention the store: none may outlive a build.
fn mounts_under(root: &Path) -> Vec<String> {
    let table = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let needle = root.display().to_string();
    table
        .lines()
        .filter(|l| l.contains(&needle))
        .map(str::to_string)
        .collect()
}

/// Entries left in the store's temp directory (must be none after any build).
fn leftovers(root: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(root.join("tmp"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

/// A base image `bb:1` holding busybox-static and a few applet links.
fn busybox_base(seal: &Seal) -> Ctx {
    let ctx = Ctx::new();
    let bin = ctx.path().join("rootfs/bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy("/bin/busybox", bin.join("busybox"))
        .expect("busybox-static is installed (scripts/install-system-packages.sh)");
    for applet in [
        "sh", "ls", "echo", "cat", "mkdir", "rm", "ps", "ip", "sleep", "hostname", "wc",
    ] {
        std::os::unix::fs::symlink("busybox", bin.join(applet)).unwrap();
    }
    ctx.kubefile("FROM scratch\nCOPY rootfs/. .\n");
    seal.build_ok(ctx.path(), "bb:1", &[]);
    ctx
}

/// Save `name` (built with gzip layers) and unpack it with umoci; returns the rootfs.
fn umoci_rootfs(seal: &Seal, name: &str, tag: &str, dir: &Path) -> PathBuf {
    let archive = dir.join("img.tar");
    seal.save(name, &archive);
    let layout = dir.join("layout");
    std::fs::create_dir_all(&layout).unwrap();
    let ok = Command::new("tar")
        .arg("-xf")
        .arg(&archive)
        .arg("-C")
        .arg(&layout)
        .status()
        .unwrap();
    assert!(ok.success());
    let bundle = dir.join("bundle");
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

#[test]
fn lite_run_layer_holds_new_files_and_a_whiteout() {
    let seal = Seal::new();
    let ctx = Ctx::new();
    ctx.file("base/old", "old\n")
        .file("base/keep", "keep\n")
        .kubefile("FROM scratch\nCOPY base/. .\nRUN mkdir -p x && echo hi > x/f && rm -f old\n");
    seal.build_ok(ctx.path(), "r:1", &["--compression", "gzip"]);
    let inspect = seal.inspect("r:1");
    let layers = inspect["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 2);
    let blob = layers[1]["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_string();
    let listing = Command::new("tar")
        .arg("-tzf")
        .arg(seal.root().join("blobs/sha256").join(blob))
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout);
    let mut names: Vec<&str> = listing.lines().collect();
    names.sort();
    assert_eq!(names, [".wh.old", "x/", "x/f"]);

    let tmp = tempfile::tempdir().unwrap();
    let rootfs = umoci_rootfs(&seal, "r:1", "1", tmp.path());
    assert_eq!(std::fs::read_to_string(rootfs.join("x/f")).unwrap(), "hi\n");
    assert!(!rootfs.join("old").exists());
    assert!(rootfs.join("keep").exists());
    assert!(mounts_under(seal.root()).is_empty());
    assert!(leftovers(seal.root()).is_empty());
}

#[test]
fn lite_run_sees_args_env_and_the_rootfs_bin_on_path() {
    let seal = Seal::new();
    let ctx = Ctx::new();
    ctx.file_mode("tools/bin/hello-tool", "#!/bin/sh\necho tool-ran\n", 0o755).kubefile(
        "FROM scratch\nARG GREETING=hi\nENV WHO=world\nCOPY tools/. .\nRUN echo \"$GREETING $WHO\" > greeting && hello-tool > tool\n",
    );
    seal.build_ok(ctx.path(), "r:1", &["--build-arg", "GREETING=hello"]);
    let tmp = tempfile::tempdir().unwrap();
    seal.build_ok(
        ctx.path(),
        "r:2",
        &["--build-arg", "GREETING=hello", "--compression", "gzip"],
    );
    let rootfs = umoci_rootfs(&seal, "r:2", "2", tmp.path());
    assert_eq!(
        std::fs::read_to_string(rootfs.join("greeting")).unwrap(),
        "hello world\n"
    );
    assert_eq!(
        std::fs::read_to_string(rootfs.join("tool")).unwrap(),
        "tool-ran\n"
    );
}

#[test]
fn container_run_cannot_see_the_host() {
    let seal = Seal::new();
    busybox_base(&seal);
    let ctx = Ctx::new();
    ctx.kubefile("FROM bb:1\nRUN --network=none echo ROOT $(ls /); echo PID1 $(cat /proc/1/comm); ip -o link; echo HOST $(hostname)\n");
    let out = seal.build_ok(ctx.path(), "c:1", &["--mode", "container"]);
    // Log lines of the step are `#N <line>`; the step's own title line also mentions ROOT.
    let log = |prefix: &str| -> Vec<String> {
        out.stderr
            .lines()
            .filter_map(|l| l.split_once(' ').map(|(_, rest)| rest))
            .filter(|rest| rest.starts_with(prefix))
            .map(str::to_string)
            .collect()
    };
    let roots = log("ROOT ");
    let root_line = roots.first().expect("ls / output");
    let listed: Vec<&str> = root_line.split_whitespace().skip(1).collect();
    // Only the image's rootfs plus the runtime's mount points; none of the host's /usr, /etc...
    for entry in &listed {
        assert!(
            ["bin", "dev", "proc", "sys", "tmp"].contains(entry),
            "unexpected {entry} in {listed:?}"
        );
    }
    assert_eq!(
        log("PID1 "),
        ["PID1 sh"],
        "PID 1 is the step's shell:\n{}",
        out.stderr
    );
    let links: Vec<&str> = out.stderr.lines().filter(|l| l.contains(": <")).collect();
    assert_eq!(links.len(), 1, "only lo: {links:?}");
    assert!(links[0].contains(" lo: "));
    assert_eq!(log("HOST "), ["HOST seal"]);
    assert!(mounts_under(seal.root()).is_empty());
}

#[test]
fn a_failing_run_fails_the_build_with_its_output_and_line() {
    for mode in ["lite", "container"] {
        let seal = Seal::new();
        busybox_base(&seal);
        let ctx = Ctx::new();
        ctx.kubefile(
            "FROM bb:1\nRUN echo first-line-of-output\\\n && echo boom-output && exit 3\n",
        );
        let out = seal.build(ctx.path(), "f:1", &["--mode", mode]);
        assert_eq!(out.code, 1, "{mode}: {}", out.stderr);
        assert!(
            out.stderr.contains("Kubefile:2:1"),
            "{mode}: {}",
            out.stderr
        );
        assert!(
            out.stderr.contains("exited with code 3"),
            "{mode}: {}",
            out.stderr
        );
        assert!(out.stderr.contains("boom-output"), "{mode}: {}", out.stderr);
        assert!(
            mounts_under(seal.root()).is_empty(),
            "{mode}: a mount outlived the step"
        );
        assert!(
            leftovers(seal.root()).is_empty(),
            "{mode}: {:?}",
            leftovers(seal.root())
        );
        assert!(
            seal.run_in(ctx.path(), &["inspect", "f:1"]).code != 0,
            "no image was named"
        );
    }
}

#[test]
fn ctrl_c_stops_a_long_run_and_leaves_nothing_behind() {
    let seal = Seal::new();
    let ctx = Ctx::new();
    // A unique duration so the test can look for leftover processes of its own step only.
    let marker = format!("60.{}", std::process::id());
    ctx.file("f", "x")
        .kubefile(&format!("FROM scratch\nCOPY f .\nRUN sleep {marker}\n"));
    let mut child = seal
        .command()
        .current_dir(ctx.path())
        .args(["build", "--progress", "plain", "-t", "s:1", "."])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        if stderr.read_line(&mut line).unwrap() == 0 {
            panic!("the build ended before RUN started:\n{seen}");
        }
        seen.push_str(&line);
        if line.contains("RUN sleep") {
            break;
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    let sent = Instant::now();
    let ok = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            sent.elapsed() < Duration::from_secs(20),
            "seal did not stop after SIGINT"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    eprintln!("stopped {:?} after SIGINT", sent.elapsed());
    assert_eq!(status.code(), Some(130));
    let ps = Command::new("pgrep")
        .args(["-f", &format!("sleep {marker}")])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&ps.stdout).trim().is_empty(),
        "the step's sleep survived"
    );
    assert!(mounts_under(seal.root()).is_empty());
    assert!(leftovers(seal.root()).is_empty());
}

#[test]
fn a_rerun_that_yields_the_same_layer_keeps_later_steps_cached() {
    let seal = Seal::new();
    let ctx = Ctx::new();
    ctx.file("f", "x")
        .kubefile("FROM scratch\nCOPY f .\nRUN echo stable > a\nRUN cat a > b\n");
    let first = seal.digest(ctx.path(), "e:1", &[]);
    // Force step 3 to run again: it writes the same bytes, so step 4 keeps its cache entry.
    let again = seal.build_ok(ctx.path(), "e:1", &["--no-cache-filter", "3"]);
    assert_eq!(again.step("RUN echo stable"), common::Step::Done);
    assert_eq!(again.step("RUN cat a"), common::Step::Cached);
    assert_eq!(again.step("COPY f"), common::Step::Cached);
    assert_eq!(again.digest(), first);
}

#[test]
fn a_changed_run_command_reruns_it_and_what_follows() {
    let seal = Seal::new();
    let ctx = Ctx::new();
    ctx.file("f", "x")
        .kubefile("FROM scratch\nCOPY f .\nRUN echo one > a\nRUN cat a > b\n");
    let first = seal.digest(ctx.path(), "e:1", &[]);
    ctx.kubefile("FROM scratch\nCOPY f .\nRUN echo two > a\nRUN cat a > b\n");
    let out = seal.build_ok(ctx.path(), "e:1", &[]);
    assert_eq!(out.step("COPY f"), common::Step::Cached);
    assert_eq!(out.step("RUN echo two"), common::Step::Done);
    assert_eq!(out.step("RUN cat a"), common::Step::Done);
    assert_ne!(out.digest(), first);
}

/// Regression: merges are cached by their inputs' content ids; those once ignored the blob
/// digest, so a gzip build after a zstd build of the same files got the zstd layers back.
#[test]
fn changing_the_compression_changes_every_layer_even_through_cached_merges() {
    let seal = Seal::new();
    let ctx = Ctx::new();
    ctx.file("f", "x")
        .kubefile("FROM scratch\nCOPY f .\nRUN echo y > g\n");
    seal.build_ok(ctx.path(), "z:1", &[]);
    seal.build_ok(ctx.path(), "g:1", &["--compression", "gzip"]);
    let inspect = seal.inspect("g:1");
    for layer in inspect["layers"].as_array().unwrap() {
        assert_eq!(
            layer["mediaType"], "application/vnd.oci.image.layer.v1.tar+gzip",
            "{inspect}"
        );
    }
}

/// When seal itself is killed (SIGKILL: no chance to clean up), the step dies with it, its
/// mount goes with its namespace, and the next run of seal clears the leftovers.
#[test]
fn sigkill_of_seal_takes_the_step_down_and_the_next_start_cleans_up() {
    let seal = Seal::new();
    let ctx = Ctx::new();
    let marker = format!("61.{}", std::process::id());
    ctx.file("f", "x")
        .kubefile(&format!("FROM scratch\nCOPY f .\nRUN sleep {marker}\n"));
    let mut child = seal
        .command()
        .current_dir(ctx.path())
        .args(["build", "--progress", "plain", "-t", "k:1", "."])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("RUN sleep") {
        line.clear();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "the build ended before RUN started"
        );
    }
    std::thread::sleep(Duration::from_millis(300));
    child.kill().unwrap();
    child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ps = Command::new("pgrep")
            .args(["-f", &format!("sleep {marker}")])
            .output()
            .unwrap();
        if String::from_utf8_lossy(&ps.stdout).trim().is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "the step outlived seal");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(mounts_under(seal.root()).is_empty());
    // The killed build left its run directory; the next start of seal removes it.
    ctx.kubefile("FROM scratch\nCOPY f .\n");
    let again = seal.build_ok(ctx.path(), "k:2", &[]);
    assert_eq!(
        again.step("COPY f"),
        common::Step::Cached,
        "the finished COPY was kept"
    );
    assert!(
        leftovers(seal.root()).is_empty(),
        "{:?}",
        leftovers(seal.root())
    );
}

//! RUN for a foreign platform (issue 19 point 4): in container mode through qemu-user-static's
//! binfmt_misc handler, and the error at the RUN's line where the handler is missing.

mod common;

use std::path::Path;

use common::{Ctx, Seal};

/// The arm64 busybox `scripts/install-system-packages.sh` fetches.
const ARM64_BUSYBOX: &str = "/var/cache/seal-tests/busybox-arm64";

/// A context whose `rootfs/<arch>/` holds that architecture's busybox as `bin/busybox` and
/// `bin/sh`, and a Kubefile running `uname -m` and `cp` with it.
fn context() -> Option<Ctx> {
    if !cfg!(target_arch = "x86_64") {
        eprintln!("skipped: the test emulates arm64 on an amd64 machine");
        return None;
    }
    if !Path::new(ARM64_BUSYBOX).is_file() {
        eprintln!("skipped: no {ARM64_BUSYBOX} (scripts/install-system-packages.sh fetches it)");
        return None;
    }
    let ctx = Ctx::new();
    for (arch, busybox) in [("amd64", "/bin/busybox"), ("arm64", ARM64_BUSYBOX)] {
        let bin = ctx.path().join(format!("rootfs/{arch}/bin"));
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::create_dir_all(ctx.path().join(format!("rootfs/{arch}/tmp"))).unwrap();
        std::fs::copy(busybox, bin.join("busybox")).unwrap();
        std::os::unix::fs::symlink("busybox", bin.join("sh")).unwrap();
    }
    ctx.kubefile(
        "FROM scratch\nCOPY rootfs/${ARCH}/. .\n\
         RUN /bin/busybox uname -m > /arch.txt && /bin/busybox cp /bin/busybox /ran-by\n",
    );
    Some(ctx)
}

/// A file of a stored layer blob.
fn layer_file(seal: &Seal, digest: &str, path: &str) -> Vec<u8> {
    let blob = seal
        .root()
        .join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"));
    let bytes = std::fs::read(blob).unwrap();
    let tar = zstd::decode_all(bytes.as_slice()).unwrap();
    let mut archive = tar::Archive::new(tar.as_slice());
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry.path().unwrap().to_str() == Some(path) {
            let mut out = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut out).unwrap();
            return out;
        }
    }
    panic!("no {path} in layer {digest}");
}

/// The ELF machine of an executable (`e_machine`, little-endian at offset 18).
fn elf_machine(bytes: &[u8]) -> u16 {
    assert_eq!(&bytes[..4], b"\x7fELF");
    u16::from_le_bytes([bytes[18], bytes[19]])
}

#[test]
fn an_arm64_run_in_container_mode_runs_under_qemu() {
    let Some(ctx) = context() else { return };
    if !Path::new("/proc/sys/fs/binfmt_misc/qemu-aarch64").exists() {
        eprintln!(
            "skipped: no qemu-aarch64 binfmt_misc handler (scripts/install-system-packages.sh)"
        );
        return;
    }
    let seal = Seal::new();
    let args = [
        "--mode",
        "container",
        "--platform",
        "linux/amd64,linux/arm64",
    ];
    let out = seal.build_ok(ctx.path(), "q:1", &args);
    let inspect = seal.inspect("q:1");
    let images = inspect["platforms"].as_array().unwrap();
    let mut seen = Vec::new();
    for image in images {
        let platform = image["platform"].as_str().unwrap();
        let run_layer = image["layers"].as_array().unwrap().last().unwrap()["digest"]
            .as_str()
            .unwrap()
            .to_string();
        let arch = String::from_utf8(layer_file(&seal, &run_layer, "arch.txt")).unwrap();
        // The file the RUN's own busybox copied: its ELF header names the machine that ran.
        let ran_by = elf_machine(&layer_file(&seal, &run_layer, "ran-by"));
        seen.push((platform.to_string(), arch.trim().to_string(), ran_by));
    }
    assert_eq!(
        seen,
        [
            ("linux/amd64".to_string(), "x86_64".to_string(), 62),
            ("linux/arm64".to_string(), "aarch64".to_string(), 183),
        ],
        "{}",
        out.stderr
    );
}

#[test]
fn a_machine_without_the_handler_gets_the_error_at_the_run() {
    let Some(ctx) = context() else { return };
    let seal = Seal::new();
    let empty = tempfile::tempdir().unwrap();
    let out = seal.build_env(
        ctx.path(),
        "q:1",
        &["--mode", "container", "--platform", "linux/arm64"],
        &[("SEAL_BINFMT_MISC", empty.path().to_str().unwrap())],
    );
    assert_ne!(out.code, 0, "{}", out.stderr);
    for needle in [
        "Kubefile:3",
        "qemu-aarch64",
        "apt-get install qemu-user-static binfmt-support",
    ] {
        assert!(
            out.stderr.contains(needle),
            "no `{needle}` in:\n{}",
            out.stderr
        );
    }
    // Nothing ran: the check comes before any step.
    assert!(!out.stderr.contains("DONE"), "{}", out.stderr);
}

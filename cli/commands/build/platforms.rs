//! `seal build --platform`: the platforms asked for, whether this machine can run a RUN of
//! each (natively, or through a `qemu-user-static` binfmt_misc handler), and the image index
//! that names a multi-platform build's images.

use std::path::{Path, PathBuf};

use seal_engine::llb::ExecMode;
use seal_engine::Platform;
use seal_store::oci::IndexPlatform;
use seal_store::{Digest, Store};

use crate::failure::Failure;

/// Where the kernel lists its binfmt_misc handlers.
pub const BINFMT_MISC: &str = "/proc/sys/fs/binfmt_misc";

/// The binfmt_misc directory to consult: `$SEAL_BINFMT_MISC` (tests point it at a directory
/// without handlers, to see the error a machine without qemu gets), else [`BINFMT_MISC`].
pub fn binfmt_dir() -> PathBuf {
    std::env::var_os("SEAL_BINFMT_MISC")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(BINFMT_MISC))
}

/// The platforms of `--platform` (the host's when none), parsed, in order, without repeats.
pub fn parse_platforms(values: &[String]) -> Result<Vec<Platform>, Failure> {
    let mut out: Vec<Platform> = Vec::new();
    for value in values {
        let platform = Platform::parse(value.trim())
            .map_err(|e| Failure::Usage(format!("--platform: {e}")))?;
        if !out.contains(&platform) {
            out.push(platform);
        }
    }
    if out.is_empty() {
        out.push(Platform::host());
    }
    Ok(out)
}

/// Why a RUN for `platform` cannot run on this machine in `mode` (`None`: it can).
/// `binfmt_dir` is normally [`BINFMT_MISC`].
pub fn run_refusal(platform: &Platform, mode: ExecMode, binfmt_dir: &Path) -> Option<String> {
    // A remote executor or a cloud host runs the step on its own machine, which may be of the
    // platform (an arm64 host for arm64 steps): what this machine can run does not matter.
    if matches!(mode, ExecMode::Remote | ExecMode::Cloud) {
        return None;
    }
    let host = Platform::host();
    if platform.os == host.os && platform.architecture == host.architecture {
        return None;
    }
    if platform.os != "linux" {
        return Some(format!(
            "RUN for {platform} cannot run on this {host} machine: only linux programs run here"
        ));
    }
    if mode == ExecMode::Lite {
        return Some(format!(
            "RUN for {platform} cannot run in lite mode on this {host} machine: lite mode runs the \
             rootfs's programs on the host; use --mode container, which runs them through \
             qemu-user-static"
        ));
    }
    let Some(qemu) = qemu_name(&platform.architecture) else {
        return Some(format!(
            "RUN for {platform}: this machine ({host}) has no emulator for {}",
            platform.architecture
        ));
    };
    let entry = binfmt_dir.join(format!("qemu-{qemu}"));
    let install = "install Debian's qemu-user-static and binfmt-support \
                   (apt-get install qemu-user-static binfmt-support), which register the handlers";
    match std::fs::read_to_string(&entry) {
        Err(_) => Some(format!(
            "RUN for {platform} needs an emulator on this {host} machine, and {} has no \
             qemu-{qemu} handler: {install}",
            binfmt_dir.display()
        )),
        Ok(text) if text.lines().next() != Some("enabled") => Some(format!(
            "RUN for {platform}: the binfmt_misc handler {} is disabled; enable it \
             (update-binfmts --enable qemu-{qemu})",
            entry.display()
        )),
        // Without F the kernel looks the interpreter up inside the step's rootfs, where it is
        // not; Debian's qemu-user-static registers with F (the interpreter opened at once).
        Ok(text) if !flags_of(&text).contains('F') => Some(format!(
            "RUN for {platform}: the binfmt_misc handler {} lacks the F (fix-binary) flag, so \
             the emulator is not found inside a container; {install}",
            entry.display()
        )),
        Ok(_) => None,
    }
}

/// The `flags:` line of a binfmt_misc entry.
fn flags_of(entry: &str) -> String {
    entry
        .lines()
        .find_map(|l| l.strip_prefix("flags:"))
        .unwrap_or("")
        .trim()
        .to_string()
}

/// The name qemu-user-static gives an architecture (`qemu-aarch64`).
fn qemu_name(architecture: &str) -> Option<&'static str> {
    Some(match architecture {
        "amd64" => "x86_64",
        "arm64" => "aarch64",
        "arm" => "arm",
        "386" => "i386",
        "ppc64le" => "ppc64le",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        "mips64le" => "mips64el",
        _ => return None,
    })
}

/// Store the index of a multi-platform build's images (in the order built) and return its
/// digest.
pub fn write_index(store: &Store, images: &[(Platform, Digest)]) -> anyhow::Result<Digest> {
    let entries: Vec<(Digest, IndexPlatform)> = images
        .iter()
        .map(|(p, d)| {
            (
                d.clone(),
                IndexPlatform {
                    architecture: p.architecture.clone(),
                    os: p.os.clone(),
                    variant: p.variant.clone(),
                },
            )
        })
        .collect();
    Ok(store.put_index(&entries)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn foreign() -> Platform {
        let host = Platform::host();
        let arch = if host.architecture == "arm64" {
            "amd64"
        } else {
            "arm64"
        };
        Platform::parse(&format!("linux/{arch}")).unwrap()
    }

    #[test]
    fn platforms_default_to_the_host_and_lose_repeats() {
        assert_eq!(parse_platforms(&[]).unwrap(), vec![Platform::host()]);
        let list = [
            "linux/amd64".into(),
            "linux/arm64".into(),
            "linux/x86_64".into(),
        ];
        let parsed = parse_platforms(&list).unwrap();
        assert_eq!(parsed.len(), 2);
        assert!(matches!(
            parse_platforms(&["linux".into()]),
            Err(Failure::Usage(_))
        ));
    }

    #[test]
    fn a_foreign_run_needs_container_mode_and_an_enabled_fix_binary_handler() {
        let dir = tempfile::tempdir().unwrap();
        let host = Platform::host();
        assert_eq!(run_refusal(&host, ExecMode::Lite, dir.path()), None);
        let arm = foreign();
        let lite = run_refusal(&arm, ExecMode::Lite, dir.path()).unwrap();
        assert!(
            lite.contains("lite mode") && lite.contains("--mode container"),
            "{lite}"
        );
        // Another machine runs a remote or cloud step: this one's emulators do not matter.
        assert_eq!(run_refusal(&arm, ExecMode::Remote, dir.path()), None);
        assert_eq!(run_refusal(&arm, ExecMode::Cloud, dir.path()), None);
        let missing = run_refusal(&arm, ExecMode::Container, dir.path()).unwrap();
        assert!(
            missing.contains("qemu-user-static binfmt-support"),
            "{missing}"
        );
        let qemu = qemu_name(&arm.architecture).unwrap();
        let entry = dir.path().join(format!("qemu-{qemu}"));
        std::fs::write(
            &entry,
            "disabled\ninterpreter /usr/libexec/qemu-binfmt/x\nflags: POCF\n",
        )
        .unwrap();
        let disabled = run_refusal(&arm, ExecMode::Container, dir.path()).unwrap();
        assert!(disabled.contains("disabled"), "{disabled}");
        std::fs::write(&entry, "enabled\ninterpreter /usr/bin/qemu\nflags: \n").unwrap();
        let no_f = run_refusal(&arm, ExecMode::Container, dir.path()).unwrap();
        assert!(no_f.contains("F (fix-binary)"), "{no_f}");
        std::fs::write(
            &entry,
            "enabled\ninterpreter /usr/libexec/qemu-binfmt/x\nflags: POCF\n",
        )
        .unwrap();
        assert_eq!(run_refusal(&arm, ExecMode::Container, dir.path()), None);
        let windows = Platform::parse("windows/amd64").unwrap();
        assert!(run_refusal(&windows, ExecMode::Container, dir.path()).is_some());
    }
}

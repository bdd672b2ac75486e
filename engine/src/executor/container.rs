//! `--mode container`: the step runs inside an isolated container through runc, the way
//! `docker build` runs it.
//!
//! The merged overlay is the container's `/`; the container gets new PID, mount, UTS and IPC
//! namespaces, and a network namespace with only `lo` for `RUN --network=none` (the default
//! network is the host's, with a private copy of its `/etc/resolv.conf` and `/etc/hosts`). The
//! process gets Docker's default capabilities, its masked and read-only kernel paths, may gain
//! privileges through setuid binaries, and may create device nodes; `RUN
//! --security=insecure` gets every capability and nothing masked. `/tmp` is the rootfs's own.
//! Mount points runc has to create (`dev/`, `proc/`, `sys/`, `etc/resolv.conf`, ...) are
//! removed from the layer afterwards when they did not exist before. The runtime config is
//! generated with oci-spec's runtime types. runc is Debian's package (crun fails on these
//! hosts' hybrid cgroups).

use std::path::{Path, PathBuf};

use oci_spec::runtime::{
    Capability, LinuxCapabilitiesBuilder, LinuxDeviceCgroupBuilder, LinuxDeviceType,
    LinuxNamespaceType, LinuxResourcesBuilder, MountBuilder, ProcessBuilder, RootBuilder, Spec,
};
use seal_solver::ExecContext;

use crate::executor::lite::DEFAULT_PATH;
use crate::executor::process::{run_in_overlay, Namespace};
use crate::executor::setup::{read_probe, Op};
use crate::executor::{ExecRequest, Executor};
use crate::llb::{ExecOp, NetworkMode, SecurityMode};
use crate::EngineError;

/// Where Debian installs runc.
pub const RUNC: &str = "/usr/sbin/runc";

/// Docker's default capability set (moby's `oci/caps/defaults.go`).
const DOCKER_CAPABILITIES: [Capability; 14] = [
    Capability::Chown,
    Capability::DacOverride,
    Capability::Fsetid,
    Capability::Fowner,
    Capability::Mknod,
    Capability::NetRaw,
    Capability::Setgid,
    Capability::Setuid,
    Capability::Setfcap,
    Capability::Setpcap,
    Capability::NetBindService,
    Capability::SysChroot,
    Capability::Kill,
    Capability::AuditWrite,
];

/// Docker's masked paths: hidden from the container.
const MASKED_PATHS: [&str; 11] = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Docker's read-only kernel paths.
const READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Paths runc may create in the rootfs as mount points; removed from the layer when they are
/// still empty and did not exist below.
const MOUNT_STUBS: [&str; 6] = [
    "dev",
    "proc",
    "sys",
    "etc/resolv.conf",
    "etc/hosts",
    "etc/hostname",
];

/// Runs steps in runc containers.
pub struct ContainerExecutor;

impl Executor for ContainerExecutor {
    fn run(&self, request: &ExecRequest, cx: &ExecContext) -> Result<(), EngineError> {
        use std::os::unix::fs::PermissionsExt;
        let runnable = std::fs::metadata(RUNC)
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
        if !runnable {
            return Err(EngineError::Spawn {
                what: "runc".into(),
                reason: format!(
                    "{RUNC} is missing or not executable; install it with `apt-get install runc`"
                ),
            });
        }
        let bundle = request.run_dir.join("bundle");
        std::fs::create_dir_all(&bundle).map_err(|e| EngineError::io("creating", &bundle, e))?;
        let network_files = if request.network == NetworkMode::None {
            Vec::new()
        } else {
            host_network_files(&bundle)?
        };
        let spec = runtime_spec(request, &network_files)?;
        let config = serde_json::to_vec_pretty(&spec)
            .map_err(|e| EngineError::Internal(format!("encoding config.json: {e}")))?;
        std::fs::write(bundle.join("config.json"), config)
            .map_err(|e| EngineError::io("writing", &bundle.join("config.json"), e))?;
        let id = format!(
            "seal-{}",
            request
                .run_dir
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("step")
                .trim_start_matches('.')
        );
        let state_root = request.run_dir.join("runc-state");
        let command: Vec<String> = vec![
            RUNC.into(),
            "--root".into(),
            state_root.display().to_string(),
            "run".into(),
            "--bundle".into(),
            bundle.display().to_string(),
            id.clone(),
        ];
        let env = vec![("PATH".to_string(), DEFAULT_PATH.to_string())];
        // What the rootfs has where runc may make mount points, before it runs.
        let before = request.run_dir.join("stubs-before");
        let look = Namespace {
            setup: vec![Op::Probe {
                root: request.merged(),
                paths: stub_paths(),
                out: before.clone(),
            }],
            new_network: false,
        };
        let result = run_in_overlay(
            request,
            &look,
            &command,
            &request.run_dir.display().to_string(),
            &env,
            cx,
        );
        // A cancelled or crashed runc can leave its container behind: remove it by force.
        if result.is_err() {
            let _ = std::process::Command::new(RUNC)
                .args([
                    "--root",
                    &state_root.display().to_string(),
                    "delete",
                    "--force",
                    &id,
                ])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status();
        }
        result.map_err(|e| explain_missing_command(e, request))?;
        let below = read_probe(&before).map_err(|e| EngineError::io("reading", &before, e))?;
        remove_mount_stubs(&request.upper(), &below)
    }
}

/// The mount points runc may create and their parent directories (relative to the rootfs).
fn stub_paths() -> Vec<String> {
    let mut paths: Vec<String> = MOUNT_STUBS.iter().map(|s| s.to_string()).collect();
    for stub in MOUNT_STUBS {
        if let Some((parent, _)) = stub.rsplit_once('/') {
            if !paths.iter().any(|p| p == parent) {
                paths.push(parent.to_string());
            }
        }
    }
    paths
}

/// Private copies of the host's `/etc/resolv.conf` and `/etc/hosts` for a step on the host's
/// network: the step may change them; nothing reaches the host or the layer.
fn host_network_files(bundle: &Path) -> Result<Vec<(PathBuf, &'static str)>, EngineError> {
    let mut out = Vec::new();
    for (host, dest) in [
        ("/etc/resolv.conf", "/etc/resolv.conf"),
        ("/etc/hosts", "/etc/hosts"),
    ] {
        let copy = bundle.join(dest.trim_start_matches("/etc/"));
        let text = std::fs::read(host).unwrap_or_default();
        std::fs::write(&copy, text).map_err(|e| EngineError::io("writing", &copy, e))?;
        out.push((copy, dest));
    }
    Ok(out)
}

/// runc's "exec: no such file" for a shell-form RUN means the rootfs has no `/bin/sh`.
fn explain_missing_command(e: EngineError, request: &ExecRequest) -> EngineError {
    let EngineError::RunFailed { code, tail, .. } = &e else {
        return e;
    };
    let program = request.args.first().map(String::as_str).unwrap_or("");
    let missing = tail.lines().any(|l| {
        l.contains("exec:") && l.contains(program) && l.contains("no such file or directory")
    });
    if !missing {
        return e;
    }
    let what = if program == "/bin/sh" {
        "the rootfs has no /bin/sh, which a shell-form RUN needs".to_string()
    } else {
        format!("the rootfs has no {program}")
    };
    EngineError::RunFailed {
        code: *code,
        tail: tail.clone(),
        hint: Some(format!(
            "{what}; build FROM a base image that has it, COPY it in first, or write the RUN in \
             JSON form with a program the rootfs has (`RUN [\"/path/to/program\", \"arg\"]`)"
        )),
    }
}

/// Remove the mount points runc created in `upper` (empty, and absent from the rootfs before
/// the step: `below`, an [`Op::Probe`] of [`stub_paths`]), and directories that exist only to
/// hold them.
fn remove_mount_stubs(
    upper: &Path,
    below: &std::collections::HashMap<String, [u32; 3]>,
) -> Result<(), EngineError> {
    use std::os::unix::fs::MetadataExt;
    for stub in MOUNT_STUBS {
        let rel = Path::new(stub);
        let path = upper.join(rel);
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if below.contains_key(stub) {
            continue;
        }
        let empty = if meta.is_dir() {
            std::fs::read_dir(&path)
                .map(|mut d| d.next().is_none())
                .unwrap_or(false)
        } else {
            meta.is_file() && meta.len() == 0
        };
        if !empty {
            continue;
        }
        let removed = if meta.is_dir() {
            std::fs::remove_dir(&path)
        } else {
            std::fs::remove_file(&path)
        };
        removed.map_err(|e| EngineError::io("removing the mount point", &path, e))?;
        // A parent copied up only to hold the stub: empty now, same owner and mode as below,
        // not opaque.
        let Some(parent) = rel.parent().filter(|p| !p.as_os_str().is_empty()) else {
            continue;
        };
        let dir = upper.join(parent);
        let still_empty = std::fs::read_dir(&dir)
            .map(|mut d| d.next().is_none())
            .unwrap_or(false);
        if !still_empty || xattr_set(&dir, crate::unpack::OVERLAY_OPAQUE_XATTR) {
            continue;
        }
        let (Ok(here), Some(&[mode, uid, gid])) = (
            std::fs::symlink_metadata(&dir),
            parent.to_str().and_then(|p| below.get(p)),
        ) else {
            // Not in the rootfs before: runc created it for the stub.
            let _ = std::fs::remove_dir(&dir);
            continue;
        };
        if here.mode() == mode && here.uid() == uid && here.gid() == gid {
            let _ = std::fs::remove_dir(&dir);
        }
    }
    Ok(())
}

/// True when `path` carries the extended attribute `name`.
fn xattr_set(path: &Path, name: &str) -> bool {
    rustix::fs::lgetxattr(path, name, &mut [0u8; 8]).is_ok()
}

/// The OCI runtime config for one step.
fn runtime_spec(
    request: &ExecRequest,
    network_files: &[(PathBuf, &str)],
) -> Result<Spec, EngineError> {
    let err = |e: oci_spec::OciSpecError| {
        EngineError::Internal(format!("building the runtime config: {e}"))
    };
    let mut spec = Spec::default();
    let mut env: Vec<String> = request
        .env
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    if !request.env.iter().any(|(k, _)| k == "PATH") {
        env.push(format!("PATH={DEFAULT_PATH}"));
    }
    if !request.env.iter().any(|(k, _)| k == "HOME") {
        env.push("HOME=/root".into());
    }
    let insecure = request.security == SecurityMode::Insecure;
    let caps: std::collections::HashSet<Capability> = if insecure {
        all_capabilities()
    } else {
        DOCKER_CAPABILITIES.into_iter().collect()
    };
    let capabilities = LinuxCapabilitiesBuilder::default()
        .bounding(caps.clone())
        .effective(caps.clone())
        .permitted(caps)
        .build()
        .map_err(err)?;
    let process = ProcessBuilder::default()
        .terminal(false)
        .args(request.args.clone())
        .env(env)
        .cwd(if request.cwd.is_empty() {
            "/".to_string()
        } else {
            request.cwd.clone()
        })
        .capabilities(capabilities)
        // setuid binaries (su, sudo, ping) work in RUN, as in `docker build`.
        .no_new_privileges(false)
        .build()
        .map_err(err)?;
    spec.set_process(Some(process));
    spec.set_root(Some(
        RootBuilder::default()
            .path(request.merged())
            .readonly(false)
            .build()
            .map_err(err)?,
    ));
    spec.set_hostname(Some("seal".into()));
    let mut mounts = spec.mounts().clone().unwrap_or_default();
    // `/tmp` is the rootfs's own, as in Docker: what one RUN leaves there the next one sees.
    mounts.retain(|m| m.destination() != Path::new("/tmp"));
    mounts.push(
        MountBuilder::default()
            .destination(ExecOp::FILES_DIR)
            .typ("bind")
            .source(request.files_dir())
            .options(vec!["rbind".into(), "ro".into()])
            .build()
            .map_err(err)?,
    );
    for (source, dest) in network_files {
        mounts.push(
            MountBuilder::default()
                .destination(*dest)
                .typ("bind")
                .source(source)
                .options(vec!["rbind".into(), "rw".into()])
                .build()
                .map_err(err)?,
        );
    }
    spec.set_mounts(Some(mounts));
    if let Some(linux) = spec.linux_mut() {
        let mut namespaces = linux.namespaces().clone().unwrap_or_default();
        if request.network != NetworkMode::None {
            namespaces.retain(|n| n.typ() != LinuxNamespaceType::Network);
        }
        linux.set_namespaces(Some(namespaces));
        if insecure {
            linux.set_masked_paths(Some(Vec::new()));
            linux.set_readonly_paths(Some(Vec::new()));
        } else {
            linux.set_masked_paths(Some(MASKED_PATHS.iter().map(|p| p.to_string()).collect()));
            linux.set_readonly_paths(Some(READONLY_PATHS.iter().map(|p| p.to_string()).collect()));
        }
        // mknod of any device, as Docker allows (reading and writing them stays denied).
        let mut devices = Vec::new();
        for typ in [LinuxDeviceType::C, LinuxDeviceType::B] {
            devices.push(
                LinuxDeviceCgroupBuilder::default()
                    .allow(true)
                    .typ(typ)
                    .access("m")
                    .build()
                    .map_err(err)?,
            );
        }
        let mut resources = linux
            .resources()
            .clone()
            .unwrap_or_else(|| LinuxResourcesBuilder::default().build().unwrap_or_default());
        let mut rules = resources.devices().clone().unwrap_or_default();
        rules.extend(devices);
        resources.set_devices(Some(rules));
        linux.set_resources(Some(resources));
    }
    Ok(spec)
}

/// Every capability seal itself may pass on (`--security=insecure`): its own bounding set,
/// which on a normal host is every capability the kernel knows.
fn all_capabilities() -> std::collections::HashSet<Capability> {
    use std::str::FromStr;
    let bounding = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("CapBnd:"))
                .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        })
        .unwrap_or(0);
    let mut out: std::collections::HashSet<Capability> = DOCKER_CAPABILITIES.into_iter().collect();
    for (bit, name) in ALL_CAPABILITY_NAMES.iter().enumerate() {
        if bounding & (1 << bit) == 0 {
            continue;
        }
        if let Ok(cap) = Capability::from_str(name.trim_start_matches("CAP_")) {
            out.insert(cap);
        }
    }
    out
}

/// Capability names in kernel order (`include/uapi/linux/capability.h`).
const ALL_CAPABILITY_NAMES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kernel_capability_has_a_name() {
        let all = all_capabilities();
        assert!(all.len() >= 38, "{} capabilities", all.len());
        assert!(all.contains(&Capability::SysAdmin));
    }

    #[test]
    fn stubs_that_runc_made_go_and_real_content_stays() {
        let dir = tempfile::tempdir().unwrap();
        let (upper, lower) = (dir.path().join("upper"), dir.path().join("lower"));
        for d in [
            "upper/dev",
            "upper/proc",
            "upper/etc",
            "lower/etc",
            "upper/sys/x",
        ] {
            std::fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        std::fs::write(upper.join("etc/resolv.conf"), "").unwrap();
        std::fs::write(upper.join("etc/hosts"), "written by the step").unwrap();
        // What the step's setup records of the rootfs before runc runs.
        let probed = dir.path().join("probe");
        crate::executor::setup::probe(&lower, &stub_paths(), &probed).unwrap();
        let below = read_probe(&probed).unwrap();
        assert_eq!(below.keys().collect::<Vec<_>>(), ["etc"]);
        remove_mount_stubs(&upper, &below).unwrap();
        assert!(!upper.join("dev").exists());
        assert!(!upper.join("proc").exists());
        assert!(upper.join("sys/x").exists(), "not empty: kept");
        assert!(!upper.join("etc/resolv.conf").exists());
        assert!(upper.join("etc/hosts").exists());
    }
}

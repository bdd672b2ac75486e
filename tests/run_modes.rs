//! RUN as real Kubefiles use it, in lite and container mode: what package installs do (users,
//! owners, setuid, device nodes, hardlinks, another uid), hundreds of layers under one RUN,
//! Docker's container defaults, lite mode's read-only host and fixed rootfs path, every
//! heredoc form, long command lines, entitlements, and the error for a non-root user.

mod common;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use common::{Ctx, SavedLayout, Seal};

/// Applets the tests' busybox base links in `bin/`.
const APPLETS: &[&str] = &[
    "sh", "ls", "echo", "cat", "mkdir", "rm", "chown", "chgrp", "chmod", "mknod", "ln", "id",
    "stat", "touch", "cp", "su", "grep", "wc", "env", "pwd", "ip", "true", "test", "printf",
];

/// A base image `NAME` holding busybox-static, its applet links, and `/tmp`.
fn busybox_base(seal: &Seal, name: &str) {
    let ctx = Ctx::new();
    let bin = ctx.path().join("rootfs/bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(ctx.path().join("rootfs/tmp")).unwrap();
    std::fs::copy("/bin/busybox", bin.join("busybox"))
        .expect("busybox-static is installed (scripts/install-system-packages.sh)");
    for applet in APPLETS {
        std::os::unix::fs::symlink("busybox", bin.join(applet)).unwrap();
    }
    ctx.kubefile("FROM scratch\nCOPY rootfs/. .\n");
    seal.build_ok(ctx.path(), name, &[]);
}

/// One entry of a layer tar.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    kind: tar::EntryType,
    mode: u32,
    uid: u64,
    gid: u64,
    link: Option<String>,
}

/// The tar stream of a layer blob (zstd, gzip or plain tar).
fn layer_tar(blob: &Path) -> Vec<u8> {
    let bytes = std::fs::read(blob).unwrap();
    if bytes.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        zstd::decode_all(bytes.as_slice()).unwrap()
    } else if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(bytes.as_slice())
            .read_to_end(&mut out)
            .unwrap();
        out
    } else {
        bytes
    }
}

/// The entries of a layer blob, by path (without a trailing `/`).
fn layer_entries(blob: &Path) -> BTreeMap<String, Entry> {
    let tar_bytes = layer_tar(blob);
    let mut archive = tar::Archive::new(tar_bytes.as_slice());
    let mut out = BTreeMap::new();
    for entry in archive.entries().unwrap() {
        let entry = entry.unwrap();
        let header = entry.header();
        let path = entry
            .path()
            .unwrap()
            .to_string_lossy()
            .trim_end_matches('/')
            .to_string();
        out.insert(
            path,
            Entry {
                kind: header.entry_type(),
                mode: header.mode().unwrap(),
                uid: header.uid().unwrap(),
                gid: header.gid().unwrap(),
                link: entry
                    .link_name()
                    .unwrap()
                    .map(|l| l.to_string_lossy().into_owned()),
            },
        );
    }
    out
}

/// The entries of the top layer of image `name`.
fn top_layer(seal: &Seal, name: &str) -> BTreeMap<String, Entry> {
    let saved = SavedLayout::new(seal, name);
    let blobs = saved.layer_blobs();
    layer_entries(blobs.last().expect("a layer"))
}

/// Lines a step logged that start with `prefix` (log lines are `#N <line>`).
fn logged(stderr: &str, prefix: &str) -> Vec<String> {
    stderr
        .lines()
        .filter_map(|l| l.split_once(' ').map(|(_, rest)| rest))
        .filter(|rest| rest.starts_with(prefix))
        .map(str::to_string)
        .collect()
}

/// What a package install does, written with paths relative to the rootfs (the working
/// directory in both modes). `AS_APP` runs a command as uid 1000.
fn install_script(as_app: &str) -> String {
    [
        "set -e",
        "mkdir -p etc home/app srv",
        "echo 'root:x:0:0:root:/root:/bin/sh' > etc/passwd",
        "echo 'app:x:1000:1000:app:/home/app:/bin/sh' >> etc/passwd",
        "echo 'root:x:0:' > etc/group",
        "echo 'app:x:1000:' >> etc/group",
        "chown 1000:1000 home/app",
        "chmod 0750 home/app",
        "echo data > srv/owned",
        "chown 1000 srv/owned",
        "chgrp 1000 srv/owned",
        "cp bin/busybox bin/suidbox",
        "chmod u+s bin/suidbox",
        "mkdir -p srv/shared && chmod 2775 srv/shared",
        "mknod srv/null c 1 3",
        "echo linked > srv/a && ln srv/a srv/b",
        as_app,
    ]
    .join(" && ")
}

#[test]
fn a_package_install_keeps_users_owners_setuid_devices_and_links_in_both_modes() {
    for (mode, as_app) in [
        // Host tools: util-linux setpriv switches uid.
        (
            "lite",
            "setpriv --reuid=1000 --regid=1000 --clear-groups sh -c 'id -u > home/app/whoami'",
        ),
        // Inside the container: busybox su, reading the rootfs's own /etc/passwd.
        (
            "container",
            "su -s /bin/sh app -c 'id -u > /home/app/whoami'",
        ),
    ] {
        let seal = Seal::new();
        busybox_base(&seal, "bb:1");
        let ctx = Ctx::new();
        ctx.kubefile(&format!(
            "FROM bb:1 AS build\nRUN {}\nFROM build\nRUN set -e; for p in bin/suidbox srv/owned home/app srv/shared srv/null srv/a srv/b home/app/whoami; do echo STAT $p $(stat -c '%a %u %g %i %h %F' $p); done; echo WHO $(cat home/app/whoami)\n",
            install_script(as_app)
        ));
        let out = seal.build_ok(ctx.path(), "pkg:1", &["--mode", mode]);
        let stats: BTreeMap<String, Vec<String>> = logged(&out.stderr, "STAT ")
            .into_iter()
            .map(|l| {
                let mut words = l.split_whitespace().skip(1).map(str::to_string);
                let path = words.next().unwrap();
                (path, words.collect())
            })
            .collect();
        let field = |p: &str, i: usize| stats[p][i].clone();
        assert_eq!(field("bin/suidbox", 0), "4755", "{mode}: {stats:?}");
        assert_eq!(field("srv/owned", 1), "1000", "{mode}");
        assert_eq!(field("srv/owned", 2), "1000", "{mode}");
        assert_eq!(field("home/app", 0), "750", "{mode}");
        assert_eq!(field("home/app", 1), "1000", "{mode}");
        assert_eq!(field("srv/shared", 0), "2775", "{mode}");
        assert!(
            field("srv/null", 5).contains("character"),
            "{mode}: {stats:?}"
        );
        assert_eq!(field("srv/a", 3), field("srv/b", 3), "{mode}: one inode");
        // Two names at least: a snapshot's files are also linked from the store's objects
        // (issue 15), so the count a RUN sees includes those.
        let links: u32 = field("srv/a", 4).parse().unwrap();
        assert!(links >= 2, "{mode}: two links: {stats:?}");
        assert_eq!(field("srv/b", 4), field("srv/a", 4), "{mode}");
        assert_eq!(field("home/app/whoami", 1), "1000", "{mode}");
        assert_eq!(logged(&out.stderr, "WHO "), ["WHO 1000"], "{mode}");

        // The saved image: the install's layer (below the checking RUN's) says the same.
        let saved = SavedLayout::new(&seal, "pkg:1");
        let blobs = saved.layer_blobs();
        let install = layer_entries(&blobs[blobs.len() - 2]);
        assert_eq!(install["bin/suidbox"].mode, 0o4755, "{mode}");
        assert_eq!(install["srv/owned"].uid, 1000, "{mode}");
        assert_eq!(install["srv/owned"].gid, 1000, "{mode}");
        assert_eq!(install["srv/shared"].mode, 0o2775, "{mode}");
        assert_eq!(install["srv/null"].kind, tar::EntryType::Char, "{mode}");
        let (a, b) = (&install["srv/a"], &install["srv/b"]);
        let link = [a, b]
            .into_iter()
            .find(|e| e.kind == tar::EntryType::Link)
            .unwrap_or_else(|| panic!("{mode}: a hardlink entry, not two copies: {a:?} {b:?}"));
        assert_eq!(link.link.as_deref(), Some("srv/a"), "{mode}");
        for runtime_mount in ["dev", "proc", "sys", "etc/resolv.conf", "etc/hosts"] {
            assert!(
                !install.contains_key(runtime_mount),
                "{mode}: {runtime_mount} in the layer"
            );
        }
    }
}

#[test]
fn container_mode_has_dockers_capabilities_and_may_gain_privileges() {
    let seal = Seal::new();
    busybox_base(&seal, "bb:1");
    let ctx = Ctx::new();
    ctx.kubefile("FROM bb:1\nRUN grep -E '^(CapEff|CapBnd|NoNewPrivs)' /proc/self/status | while read k v; do echo \"CAP $k $v\"; done\n");
    let out = seal.build_ok(ctx.path(), "caps:1", &["--mode", "container"]);
    let caps = logged(&out.stderr, "CAP ");
    // Docker's default set: chown dac_override fowner fsetid kill setgid setuid setpcap
    // net_bind_service net_raw sys_chroot mknod audit_write setfcap.
    assert!(
        caps.contains(&"CAP CapEff: 00000000a80425fb".to_string()),
        "{caps:?}"
    );
    assert!(
        caps.contains(&"CAP CapBnd: 00000000a80425fb".to_string()),
        "{caps:?}"
    );
    assert!(caps.contains(&"CAP NoNewPrivs: 0".to_string()), "{caps:?}");
    // /proc/kcore is masked, /proc/sys read-only.
    ctx.kubefile("FROM bb:1\nRUN test ! -s /proc/kcore && ! echo 1 > /proc/sys/kernel/ns_last_pid && echo MASKED\n");
    let out = seal.build_ok(ctx.path(), "caps:2", &["--mode", "container"]);
    assert_eq!(logged(&out.stderr, "MASKED"), ["MASKED"], "{}", out.stderr);
}

#[test]
fn insecure_security_needs_the_entitlement_and_then_gets_every_capability() {
    let seal = Seal::new();
    busybox_base(&seal, "bb:1");
    let ctx = Ctx::new();
    ctx.kubefile("FROM bb:1\nRUN --security=insecure grep CapEff /proc/self/status | while read k v; do echo \"CAP $v\"; done\n");
    let out = seal.build(ctx.path(), "ins:1", &["--mode", "container"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("Kubefile:2"), "{}", out.stderr);
    assert!(
        out.stderr.contains("--allow security.insecure"),
        "{}",
        out.stderr
    );
    let out = seal.build_ok(
        ctx.path(),
        "ins:1",
        &["--mode", "container", "--allow", "security.insecure"],
    );
    let cap = logged(&out.stderr, "CAP ");
    let eff = u64::from_str_radix(cap[0].trim_start_matches("CAP "), 16).unwrap();
    assert_eq!(eff & (1 << 21), 1 << 21, "CAP_SYS_ADMIN in {cap:?}");
    // An unknown value is an error at the flag, with or without the entitlement.
    ctx.kubefile("FROM bb:1\nRUN --security=weird true\n");
    let out = seal.build(ctx.path(), "ins:2", &["--allow", "security.insecure"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("expected `sandbox` or `insecure`"),
        "{}",
        out.stderr
    );
}

#[test]
fn run_networks_are_none_default_and_host_with_its_entitlement() {
    let seal = Seal::new();
    busybox_base(&seal, "bb:1");
    let ctx = Ctx::new();
    let links =
        |out: &common::Out| -> usize { out.stderr.lines().filter(|l| l.contains(": <")).count() };
    for mode in ["lite", "container"] {
        ctx.kubefile("FROM bb:1\nRUN --network=none ip -o link\n");
        let none = seal.build_ok(ctx.path(), &format!("net-none-{mode}:1"), &["--mode", mode]);
        assert_eq!(links(&none), 1, "{mode}: only lo\n{}", none.stderr);
        ctx.kubefile("FROM bb:1\nRUN ip -o link\n");
        let default = seal.build_ok(
            ctx.path(),
            &format!("net-default-{mode}:1"),
            &["--mode", mode],
        );
        let host_links = std::fs::read_dir("/sys/class/net").unwrap().count();
        assert_eq!(
            links(&default),
            host_links,
            "{mode}: the host's network\n{}",
            default.stderr
        );
    }
    ctx.kubefile("FROM bb:1\nRUN --network=host ip -o link\n");
    let out = seal.build(ctx.path(), "net-host:1", &["--mode", "container"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("--allow network.host"),
        "{}",
        out.stderr
    );
    seal.build_ok(
        ctx.path(),
        "net-host:1",
        &["--mode", "container", "--allow", "network.host"],
    );
}

#[test]
fn container_tmp_persists_between_runs_and_run_true_leaves_an_empty_layer() {
    let seal = Seal::new();
    busybox_base(&seal, "bb:1");
    let ctx = Ctx::new();
    ctx.kubefile("FROM bb:1\nRUN echo kept > /tmp/a\nRUN echo TMP $(cat /tmp/a)\nRUN true\n");
    let out = seal.build_ok(ctx.path(), "tmp:1", &["--mode", "container"]);
    assert_eq!(logged(&out.stderr, "TMP "), ["TMP kept"], "{}", out.stderr);
    assert!(
        top_layer(&seal, "tmp:1").is_empty(),
        "RUN true leaves nothing"
    );
    // A rootfs without /dev, /proc, /sys or /etc: runc's mount points are not committed.
    let ctx = Ctx::new();
    ctx.file_mode("bin/busybox", std::fs::read("/bin/busybox").unwrap(), 0o755);
    ctx.symlink("bin/sh", "busybox");
    ctx.kubefile("FROM scratch\nCOPY bin bin\nRUN true\n");
    seal.build_ok(ctx.path(), "bare:1", &["--mode", "container"]);
    let layer = top_layer(&seal, "bare:1");
    assert!(layer.is_empty(), "{layer:?}");
}

#[test]
fn a_rootfs_without_a_shell_fails_with_a_clear_error() {
    let seal = Seal::new();
    let ctx = Ctx::new();
    ctx.file("data.txt", "x")
        .kubefile("FROM scratch\nCOPY data.txt .\nRUN echo hi\n");
    let out = seal.build(ctx.path(), "nosh:1", &["--mode", "container"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("Kubefile:3"), "{}", out.stderr);
    assert!(
        out.stderr.contains("the rootfs has no /bin/sh"),
        "{}",
        out.stderr
    );
}

#[test]
fn five_hundred_layers_under_a_run_in_both_modes() {
    let seal = Seal::new();
    busybox_base(&seal, "bb:1");
    let ctx = Ctx::new();
    let mut kubefile = String::from("FROM bb:1\n");
    for i in 0..500 {
        ctx.file(&format!("f/{i}"), format!("{i}\n"));
        kubefile.push_str(&format!("COPY f/{i} layers\n"));
    }
    kubefile.push_str("RUN ls layers | wc -l > count && cat layers/0 layers/499 >> count\n");
    ctx.kubefile(&kubefile);
    for mode in ["lite", "container"] {
        seal.build_ok(ctx.path(), &format!("deep-{mode}:1"), &["--mode", mode]);
        let saved = SavedLayout::new(&seal, &format!("deep-{mode}:1"));
        let blobs = saved.layer_blobs();
        assert!(blobs.len() >= 502, "{mode}: {} layers", blobs.len());
        let layer = layer_entries(blobs.last().unwrap());
        assert!(layer.contains_key("count"), "{mode}: {layer:?}");
    }
    // The count file's content: every layer was visible.
    let out = seal.run_in(ctx.path(), &["inspect", "deep-lite:1"]);
    assert_eq!(out.code, 0);
    ctx.kubefile("FROM deep-lite:1\nRUN echo COUNT $(cat count)\n");
    let out = seal.build_ok(ctx.path(), "deep-check:1", &[]);
    assert_eq!(
        logged(&out.stderr, "COUNT "),
        ["COUNT 500 0 499"],
        "{}",
        out.stderr
    );
}

#[test]
fn lite_mode_keeps_the_host_read_only_and_the_rootfs_at_one_path() {
    let seal = Seal::new();
    busybox_base(&seal, "bb:1");
    let ctx = Ctx::new();
    let probe = Path::new("/etc/seal-lite-probe");
    let _ = std::fs::remove_file(probe);
    ctx.kubefile("FROM bb:1\nRUN echo x > /etc/seal-lite-probe\n");
    let out = seal.build(ctx.path(), "ro:1", &[]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(!probe.exists(), "the host's /etc was written");
    assert!(
        out.stderr.contains("/etc/seal-lite-probe"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("--mode container"), "{}", out.stderr);
    // Writable: the rootfs, /tmp, $HOME; pwd is the same in every build; no host variables.
    ctx.kubefile("FROM bb:1\nRUN pwd > where && echo t > /tmp/t && echo h > $HOME/h && env > environ && cat /tmp/t $HOME/h > private\n");
    let mut cmd = seal.command();
    cmd.current_dir(ctx.path())
        .env("SEAL_LEAK_PROBE", "leaked")
        .args(["build", "-t", "ro:2", "."]);
    let out = common::Out::from_command(cmd);
    out.assert_built();
    let saved = SavedLayout::new(&seal, "ro:2");
    let blobs = saved.layer_blobs();
    let layer = layer_entries(blobs.last().unwrap());
    assert!(layer.contains_key("where"), "{layer:?}");
    let names: Vec<&String> = layer.keys().collect();
    assert!(!names.iter().any(|n| n.starts_with("tmp/t")), "{names:?}");
    let ctx2 = Ctx::new();
    ctx2.kubefile("FROM ro:2\nRUN echo WHERE $(cat where) && echo PRIVATE $(cat private) && grep -c -E 'OLDPWD|SEAL_LEAK_PROBE' environ || echo CLEAN\n");
    let out = seal.build_ok(ctx2.path(), "ro:3", &["--mode", "container"]);
    assert_eq!(logged(&out.stderr, "WHERE "), ["WHERE /run/seal/rootfs"]);
    assert_eq!(logged(&out.stderr, "PRIVATE "), ["PRIVATE t h"]);
    assert_eq!(logged(&out.stderr, "CLEAN"), ["CLEAN"], "{}", out.stderr);
    // Host tools still work: busybox from the host's /bin.
    ctx.kubefile("FROM bb:1\nRUN /bin/busybox true && /usr/bin/env true\n");
    seal.build_ok(ctx.path(), "ro:4", &[]);
}

#[test]
fn every_heredoc_form_runs_as_buildkit_runs_it() {
    for mode in ["lite", "container"] {
        let seal = Seal::new();
        busybox_base(&seal, "bb:1");
        let ctx = Ctx::new();
        // lite mode has the host's bash and python3; container mode busybox only.
        let (bash, python) = if mode == "lite" {
            (
                "RUN <<EOF\n#!/bin/bash\n[[ -n \"$BASH_VERSION\" ]] && echo bash > shebang\nEOF\nRUN <<EOF bash\n[[ 1 == 1 ]] && echo bash > stdin-bash\nEOF\nRUN python3 <<EOF\nopen('py', 'w').write('py\\n')\nEOF\n",
                true,
            )
        } else {
            (
                "RUN <<EOF\n#!/bin/busybox sh\necho busybox > shebang\nEOF\n",
                false,
            )
        };
        ctx.kubefile(&format!(
            "FROM bb:1\nENV WHO=world\nRUN <<EOT cat > out.txt\nhello $WHO\nEOT\n{bash}RUN sh <<EOT\necho sh-ok > sh-stdin\nEOT\nRUN cat <<EOT > literal\nkeep $WHO\nEOT\nRUN <<'EOT' cat > quoted\nkeep $WHO\nEOT\nRUN cat <<A > a && cat <<B > b\nfirst\nA\nsecond\nB\nRUN <<EOF\necho script > script\nEOF\n"
        ));
        seal.build_ok(
            ctx.path(),
            &format!("hd-{mode}:1"),
            &["--mode", mode, "--compression", "gzip"],
        );
        let saved = SavedLayout::new(&seal, &format!("hd-{mode}:1"));
        let mut files = BTreeMap::new();
        for blob in saved.layer_blobs() {
            let bytes = layer_tar(&blob);
            let mut archive = tar::Archive::new(bytes.as_slice());
            for entry in archive.entries().unwrap() {
                let mut entry = entry.unwrap();
                let path = entry.path().unwrap().to_string_lossy().into_owned();
                let mut text = String::new();
                if entry.header().entry_type().is_file() {
                    entry.read_to_string(&mut text).unwrap_or_default();
                    files.insert(path, text);
                }
            }
        }
        assert_eq!(files["out.txt"], "hello world\n", "{mode}");
        assert_eq!(files["sh-stdin"], "sh-ok\n", "{mode}");
        assert_eq!(files["literal"], "keep world\n", "{mode}");
        assert_eq!(files["quoted"], "keep $WHO\n", "{mode}");
        assert_eq!(files["a"], "first\n", "{mode}");
        assert_eq!(files["b"], "second\n", "{mode}");
        assert_eq!(files["script"], "script\n", "{mode}");
        if python {
            assert_eq!(files["shebang"], "bash\n");
            assert_eq!(files["stdin-bash"], "bash\n");
            assert_eq!(files["py"], "py\n");
        } else {
            assert_eq!(files["shebang"], "busybox\n");
        }
        // The heredoc scripts themselves never land in the image.
        assert!(
            !files.keys().any(|k| k.contains("pipes")),
            "{:?}",
            files.keys()
        );
    }
}

#[test]
fn a_three_megabyte_run_line_runs_from_a_script_file() {
    for mode in ["lite", "container"] {
        let seal = Seal::new();
        busybox_base(&seal, "bb:1");
        let ctx = Ctx::new();
        let long = "x".repeat(3 * 1024 * 1024);
        ctx.kubefile(&format!("FROM bb:1\nRUN v={long}; echo ${{#v}} > len\n"));
        let out = seal.build_ok(ctx.path(), &format!("long-{mode}:1"), &["--mode", mode]);
        assert!(
            out.stderr.len() < 64 * 1024,
            "{mode}: the line is not echoed: {} bytes",
            out.stderr.len()
        );
        let ctx2 = Ctx::new();
        ctx2.kubefile(&format!("FROM long-{mode}:1\nRUN echo LEN $(cat len)\n"));
        let out = seal.build_ok(ctx2.path(), "long-check:1", &[]);
        assert_eq!(logged(&out.stderr, "LEN "), [format!("LEN {}", long.len())]);
    }
}

#[test]
fn a_non_root_user_gets_a_clear_error_before_any_step() {
    let seal = Seal::new();
    let ctx = Ctx::new();
    ctx.file("a", "a")
        .kubefile("FROM scratch\nCOPY a .\nRUN echo hi\n");
    // The store, the context and a copy of the binary usable by `nobody` (the target dir may
    // sit in root's 0700 home).
    let bin_dir = tempfile::tempdir().unwrap();
    let bin = bin_dir.path().join("seal");
    std::fs::copy(env!("CARGO_BIN_EXE_seal"), &bin).unwrap();
    let store_parent = seal.root().parent().unwrap();
    for dir in [store_parent, ctx.path(), bin_dir.path()] {
        common::tool(
            "chmod",
            &["-R", "a+rwX", dir.to_str().unwrap()],
            Path::new("/"),
        );
    }
    let out = common::Out::from_command({
        let mut cmd = std::process::Command::new("setpriv");
        cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(&bin)
            .env("HOME", bin_dir.path())
            .arg("--root")
            .arg(seal.root())
            .args(["build", "-t", "nr:1", "."])
            .current_dir(ctx.path());
        cmd
    });
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("RUN needs root"), "{}", out.stderr);
    assert!(out.stderr.contains("Kubefile:3"), "{}", out.stderr);
    assert!(!out.stderr.contains("exited with code"), "{}", out.stderr);
    assert!(
        !out.stderr.contains("[1/2] COPY"),
        "no step ran: {}",
        out.stderr
    );
}

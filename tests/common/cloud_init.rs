//! What the provisioned-host tests (tests/cloud_aws.rs, tests/cloud_alicloud.rs) share: the
//! test plays cloud-init with the user-data seal sent (base64 cloud-config carrying the host
//! key and the client key), and a busybox base image for the RUN steps.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{Ctx, Seal};

/// `text` decoded from base64 (by coreutils' `base64 -d`, not seal's decoder).
pub fn base64_decode(text: &str) -> String {
    let mut child = Command::new("base64")
        .arg("-d")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "user-data is not base64");
    String::from_utf8(out.stdout).unwrap()
}

/// `(host private key, host public key, client public key)` from seal's cloud-config.
pub fn parse_cloud_config(text: &str) -> (String, String, String) {
    let mut private = String::new();
    let mut inside = false;
    let mut public = String::new();
    for line in text.lines() {
        if line == "  ed25519_private: |" {
            inside = true;
            continue;
        }
        if inside {
            if let Some(l) = line.strip_prefix("    ") {
                private.push_str(l);
                private.push('\n');
                continue;
            }
            inside = false;
        }
        if let Some(k) = line.strip_prefix("  ed25519_public: ") {
            public = k.to_string();
        }
    }
    let client = text
        .split("echo '")
        .nth(1)
        .and_then(|t| t.split('\'').next())
        .expect("the client key in runcmd")
        .to_string();
    assert!(private.contains("OPENSSH PRIVATE KEY"), "{text}");
    assert!(public.starts_with("ssh-ed25519 "), "{text}");
    (private, public, client)
}

/// A base image with busybox (as tests/cloud.rs builds it).
pub fn busybox_base(seal: &Seal, name: &str) {
    let ctx = Ctx::new();
    let bin = ctx.path().join("rootfs/bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(ctx.path().join("rootfs/tmp")).unwrap();
    std::fs::copy("/bin/busybox", bin.join("busybox")).unwrap();
    for applet in ["sh", "echo", "sleep", "cat", "false"] {
        std::os::unix::fs::symlink("busybox", bin.join(applet)).unwrap();
    }
    ctx.kubefile("FROM scratch\nCOPY rootfs/. .\n");
    seal.build_ok(ctx.path(), name, &[]);
}

/// Whether a process whose whole command line is `sleep SECS` runs (the RUN on the host).
fn sleeping(secs: u32) -> bool {
    Command::new("pgrep")
        .args(["-f", &format!("^sleep {secs}$")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Start `build` (a `seal build` of `ctx`) with a Kubefile whose RUN sleeps `secs`; return
/// once that RUN runs on the host. (`secs` tells one test's sleep from another's.)
pub fn start_sleeping(mut build: Command, ctx: &Ctx, secs: u32) -> Child {
    ctx.kubefile(&format!("FROM base:1\nRUN sleep {secs}\n"));
    let mut child = build
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !sleeping(secs) {
        if Instant::now() > deadline || child.try_wait().ok().flatten().is_some() {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the RUN never started on the host");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    child
}

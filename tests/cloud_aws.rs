//! `--cloud-provider aws` end to end: `moto_server` emulates EC2 (tests/common/s3.rs), the
//! test plays cloud-init (it gives the local sshd of tests/common/sshd.rs the host key and
//! client key the instance's user-data carries), and an ssh_config routes the instance's
//! name to that sshd, so nothing dials moto's made-up addresses. After every build —
//! passing, failing, interrupted — EC2 shows nothing of it left; `seal cloud ls|gc` find and
//! delete what a killed build left.

mod common;

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::cloud_init::{self, base64_decode, busybox_base, parse_cloud_config};
use common::s3::Moto;
use common::sshd::Sshd;
use common::{Ctx, Seal};

/// The texts of every `<tag>...</tag>` in `xml`.
fn all<'a>(xml: &'a str, tag: &str) -> Vec<&'a str> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    xml.split(open.as_str())
        .skip(1)
        .filter_map(|p| p.split(close.as_str()).next())
        .collect()
}

/// The instance ids tagged seal-build that are not terminated, and all tagged groups.
fn left(moto: &Moto) -> (Vec<String>, Vec<String>) {
    let xml = moto.ec2(
        "DescribeInstances",
        &[
            ("Filter.1.Name", "tag-key"),
            ("Filter.1.Value.1", "seal-build"),
        ],
    );
    let mut instances = Vec::new();
    for item in xml.split("<instanceId>").skip(1) {
        let id = item.split("</instanceId>").next().unwrap().to_string();
        let state = all(item, "name").first().copied().unwrap_or_default();
        if state != "terminated" {
            instances.push(format!("{id} ({state})"));
        }
    }
    let xml = moto.ec2(
        "DescribeSecurityGroups",
        &[
            ("Filter.1.Name", "tag-key"),
            ("Filter.1.Value.1", "seal-build"),
        ],
    );
    let groups = all(&xml, "groupId").iter().map(|s| s.to_string()).collect();
    (instances, groups)
}

fn nothing_left(moto: &Moto) {
    let (instances, groups) = left(moto);
    assert!(instances.is_empty(), "instances left: {instances:?}");
    assert!(groups.is_empty(), "security groups left: {groups:?}");
}

/// What the test's cloud-init saw of each instance.
#[derive(Default)]
struct Seen {
    instances: Vec<String>,
    /// DescribeSecurityGroups of the instance's group while it ran.
    groups_xml: Vec<String>,
}

/// Plays cloud-init until dropped: each new running instance's user-data goes into the sshd
/// (or, with `wrong_key`, only the client key: the server keeps a key seal never made).
struct CloudInit {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Seen>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl CloudInit {
    fn start(moto: &Moto, sshd: Arc<Mutex<Sshd>>, wrong_key: bool) -> CloudInit {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Seen::default()));
        let endpoint = moto.endpoint.clone();
        let (s, seen2) = (stop.clone(), seen.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                let xml = common::s3::ec2_call(
                    &endpoint,
                    "DescribeInstances",
                    &[
                        ("Filter.1.Name", "tag-key"),
                        ("Filter.1.Value.1", "seal-build"),
                        ("Filter.2.Name", "instance-state-name"),
                        ("Filter.2.Value.1", "running"),
                    ],
                );
                for id in all(&xml, "instanceId") {
                    if seen2.lock().unwrap().instances.iter().any(|i| i == id) {
                        continue;
                    }
                    let attr = common::s3::ec2_call(
                        &endpoint,
                        "DescribeInstanceAttribute",
                        &[("InstanceId", id), ("Attribute", "userData")],
                    );
                    let b64 = all(&attr, "value")
                        .first()
                        .copied()
                        .unwrap_or_default()
                        .to_string();
                    let config = base64_decode(&b64);
                    let (private, public, client) = parse_cloud_config(&config);
                    let group = all(&xml, "groupId")
                        .first()
                        .copied()
                        .unwrap_or_default()
                        .to_string();
                    let groups_xml = common::s3::ec2_call(
                        &endpoint,
                        "DescribeSecurityGroups",
                        &[("GroupId.1", &group)],
                    );
                    let mut sshd = sshd.lock().unwrap();
                    if wrong_key {
                        let (p, k) = (
                            std::fs::read_to_string(sshd.host_key_path()).unwrap(),
                            sshd.host_key(),
                        );
                        sshd.become_instance(&p, &k, &client);
                    } else {
                        sshd.become_instance(&private, &public, &client);
                    }
                    let mut seen = seen2.lock().unwrap();
                    seen.instances.push(id.to_string());
                    seen.groups_xml.push(groups_xml);
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        CloudInit {
            stop,
            seen,
            thread: Some(thread),
        }
    }
}

impl Drop for CloudInit {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Setup {
    moto: Moto,
    sshd: Arc<Mutex<Sshd>>,
    seal: Seal,
    route: String,
    /// seal's TMPDIR: the keys a SIGKILLed build leaves go with the test.
    tmp: tempfile::TempDir,
}

fn setup() -> Setup {
    let moto = Moto::start();
    let sshd = Sshd::start();
    let route = sshd.routing_config().display().to_string();
    let seal = Seal::new();
    busybox_base(&seal, "base:1");
    Setup {
        moto,
        sshd: Arc::new(Mutex::new(sshd)),
        seal,
        route,
        tmp: tempfile::TempDir::new().unwrap(),
    }
}

impl Setup {
    fn flags(&self, extra: &[&str]) -> Vec<String> {
        let mut flags: Vec<String> = [
            "--mode",
            "cloud",
            "--cloud-provider",
            "aws",
            "--cloud-endpoint",
            &self.moto.endpoint,
            "--cloud-region",
            "us-east-1",
            "--cloud-image",
            "ami-12345678",
            "--cloud-allow-from",
            "127.0.0.1/32",
            "--cloud-ssh-config",
            &self.route,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if !extra.contains(&"--cloud-wait") {
            flags.extend(["--cloud-wait".to_string(), "60s".to_string()]);
        }
        flags.extend(extra.iter().map(|s| s.to_string()));
        flags
    }

    fn command(&self, ctx: &Ctx, extra: &[&str]) -> Command {
        let mut cmd = self.seal.command();
        cmd.current_dir(ctx.path())
            .args(["build", "--progress", "plain", "-t", "out:1"])
            .args(self.flags(extra))
            .arg(".");
        for (k, v) in self.moto.env() {
            cmd.env(k, v);
        }
        cmd.env_remove("AWS_ENDPOINT_URL")
            .env_remove("AWS_ENDPOINT_URL_EC2")
            .env("TMPDIR", self.tmp.path());
        cmd
    }

    fn seal_cloud(&self, sub: &str) -> std::process::Output {
        let mut cmd = self.seal.command();
        cmd.args([
            "cloud",
            sub,
            "--cloud-provider",
            "aws",
            "--cloud-endpoint",
            &self.moto.endpoint,
        ]);
        for (k, v) in self.moto.env() {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    }

    /// Start a build whose RUN sleeps `secs`; return once that RUN runs on the host.
    fn start_sleeping(&self, ctx: &Ctx, secs: u32, extra: &[&str]) -> std::process::Child {
        cloud_init::start_sleeping(self.command(ctx, extra), ctx, secs)
    }
}

#[test]
fn a_provisioned_host_runs_the_build_and_everything_is_deleted() {
    let s = setup();
    let init = CloudInit::start(&s.moto, s.sshd.clone(), false);
    let ctx = Ctx::new();
    ctx.kubefile("FROM base:1\nRUN echo provisioned > /greeting\n");
    let out = common::Out::from_command(s.command(&ctx, &[]));
    out.assert_built();
    assert!(
        out.stderr.contains("; cloud: 1 steps run"),
        "{}",
        out.stderr
    );
    nothing_left(&s.moto);
    let seen = init.seen.lock().unwrap();
    assert_eq!(seen.instances.len(), 1);
    // While it ran, the group admitted port 22 from the given address only.
    let groups = seen.groups_xml[0]
        .split("<ipPermissions>")
        .nth(1)
        .expect("ingress rules");
    assert_eq!(all(groups, "fromPort"), ["22"], "{groups}");
    assert_eq!(all(groups, "toPort"), ["22"], "{groups}");
    assert_eq!(all(groups, "cidrIp"), ["127.0.0.1/32"], "{groups}");
    // Nothing dialled moto's made-up address: the instance was reached through the route.
    assert!(!out.stderr.contains("Connection refused"), "{}", out.stderr);
}

#[test]
fn a_host_is_created_only_when_a_cloud_run_needs_one() {
    let s = setup();
    let _init = CloudInit::start(&s.moto, s.sshd.clone(), false);
    let ctx = Ctx::new();
    ctx.file("a", "a\n");
    ctx.kubefile("FROM base:1\nCOPY a /a\nRUN cat /a > /b\n");
    common::Out::from_command(s.command(&ctx, &[])).assert_built();
    nothing_left(&s.moto);

    // From here on nothing listens at the endpoint: a build that tried to create a host
    // would fail with a connection error.
    let nowhere = |extra: &[&str]| {
        let mut cmd = s.seal.command();
        let flags: Vec<String> = s
            .flags(extra)
            .into_iter()
            .map(|f| {
                if f == s.moto.endpoint {
                    "http://127.0.0.1:9".to_string()
                } else {
                    f
                }
            })
            .collect();
        cmd.current_dir(ctx.path())
            .args(["build", "--progress", "plain", "-t", "out:1"])
            .args(flags)
            .arg(".");
        for (k, v) in s.moto.env() {
            cmd.env(k, v);
        }
        cmd.env("TMPDIR", s.tmp.path());
        common::Out::from_command(cmd)
    };
    // The RUN is cached: no host.
    let out = nowhere(&[]);
    out.assert_built();
    assert!(!out.stderr.contains("aws:"), "{}", out.stderr);
    // A Kubefile error is reported as such, before any host.
    ctx.kubefile("FROM base:1\nRUN cat /a > /b\nFROBNICATE x\n");
    let out = nowhere(&[]);
    assert_ne!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("Kubefile:3"), "{}", out.stderr);
    assert!(!out.stderr.contains("127.0.0.1:9"), "{}", out.stderr);
    // A RUN that is not cached needs the host: the failure to create it is at its line.
    ctx.kubefile("FROM base:1\nCOPY a /a\nRUN cat /a > /c\n");
    let out = nowhere(&["--cloud-wait", "5s"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("Kubefile:3"), "{}", out.stderr);
    assert!(out.stderr.contains("127.0.0.1:9"), "{}", out.stderr);
}

#[test]
fn a_failing_run_still_deletes_the_host() {
    let s = setup();
    let _init = CloudInit::start(&s.moto, s.sshd.clone(), false);
    let ctx = Ctx::new();
    ctx.kubefile("FROM base:1\nRUN false\n");
    let out = common::Out::from_command(s.command(&ctx, &[]));
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("Kubefile:2"), "{}", out.stderr);
    nothing_left(&s.moto);
}

#[test]
fn a_host_key_seal_did_not_make_is_refused_and_the_host_deleted() {
    let s = setup();
    let _init = CloudInit::start(&s.moto, s.sshd.clone(), true);
    let ctx = Ctx::new();
    ctx.kubefile("FROM base:1\nRUN echo hi > /hi\n");
    let out = common::Out::from_command(s.command(&ctx, &["--cloud-wait", "15s"]));
    assert_ne!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("does not answer SSH with seal's host key")
            && out.stderr.contains("Host key verification failed"),
        "{}",
        out.stderr
    );
    nothing_left(&s.moto);
}

#[test]
fn ctrl_c_mid_build_deletes_the_host() {
    let s = setup();
    let _init = CloudInit::start(&s.moto, s.sshd.clone(), false);
    let ctx = Ctx::new();
    let mut child = s.start_sleeping(&ctx, 121, &[]);
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    nothing_left(&s.moto);
}

#[test]
fn cloud_ls_and_gc_find_what_a_killed_build_left() {
    let s = setup();
    let _init = CloudInit::start(&s.moto, s.sshd.clone(), false);
    // A build killed outright (no chance to clean up), its resources already expired.
    let ctx = Ctx::new();
    let mut child = s.start_sleeping(&ctx, 122, &["--cloud-ttl", "1s"]);
    child.kill().unwrap();
    child.wait().unwrap();
    s.sshd.lock().unwrap().kill_all();
    s.sshd.lock().unwrap().restart();
    // And one not yet expired.
    let mut child = s.start_sleeping(&ctx, 123, &["--cloud-ttl", "1h"]);
    child.kill().unwrap();
    child.wait().unwrap();
    s.sshd.lock().unwrap().kill_all();
    let (instances, groups) = left(&s.moto);
    assert_eq!((instances.len(), groups.len()), (2, 2));

    std::thread::sleep(Duration::from_secs(2));
    let ls = s.seal_cloud("ls");
    assert!(
        ls.status.success(),
        "{}",
        String::from_utf8_lossy(&ls.stderr)
    );
    let text = String::from_utf8(ls.stdout).unwrap();
    let rows: Vec<&str> = text.lines().skip(1).collect();
    assert_eq!(rows.len(), 4, "{text}");
    let expired: Vec<&&str> = rows.iter().filter(|r| r.ends_with(" yes")).collect();
    assert_eq!(expired.len(), 2, "{text}");
    assert!(expired.iter().any(|r| r.contains("instance")), "{text}");
    assert!(
        expired.iter().any(|r| r.contains("security-group")),
        "{text}"
    );

    let gc = s.seal_cloud("gc");
    assert!(
        gc.status.success(),
        "{}",
        String::from_utf8_lossy(&gc.stderr)
    );
    let (instances, groups) = left(&s.moto);
    assert_eq!(
        (instances.len(), groups.len()),
        (1, 1),
        "{instances:?} {groups:?}"
    );
    let ls = String::from_utf8(s.seal_cloud("ls").stdout).unwrap();
    assert_eq!(
        ls.lines().skip(1).filter(|r| r.ends_with(" no")).count(),
        2,
        "{ls}"
    );
}

#[test]
fn ctrl_c_while_waiting_for_ssh_deletes_the_host() {
    // No cloud-init: the instance never admits seal, which waits for SSH until interrupted.
    let s = setup();
    let ctx = Ctx::new();
    ctx.kubefile("FROM base:1\nRUN echo never > /never\n");
    let mut child = s
        .command(&ctx, &[])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while left(&s.moto).0.is_empty() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("no instance was created");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    nothing_left(&s.moto);
}

#[test]
fn a_missing_cloud_seal_binary_is_refused_before_anything_is_created() {
    let ctx = Ctx::new();
    ctx.file("a", "a\n")
        .kubefile("FROM scratch\nCOPY a /a\nRUN true\n")
        .age();
    // Nothing listens at this endpoint: reaching it would be a connection error, not the
    // usage error that says the file is missing.
    let out = Seal::new().build(
        ctx.path(),
        "x:1",
        &[
            "--mode",
            "cloud",
            "--cloud-provider",
            "aws",
            "--cloud-endpoint",
            "http://127.0.0.1:9",
            "--cloud-region",
            "us-east-1",
            "--cloud-seal-binary",
            "/nonexistent/seal",
        ],
    );
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("--cloud-seal-binary /nonexistent/seal: no such file"),
        "{}",
        out.stderr
    );
}

/// `seal cloud ls` whose AWS configuration is only what `env` gives (no AWS variable of the
/// caller's, no `~/.aws`, no instance metadata).
fn cloud_ls_with(moto: &Moto, home: &std::path::Path, env: &[(&str, String)]) -> common::Out {
    let mut cmd = Seal::new().command();
    cmd.args([
        "cloud",
        "ls",
        "--cloud-provider",
        "aws",
        "--cloud-endpoint",
        &moto.endpoint,
    ]);
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("AWS_")) {
        cmd.env_remove(k);
    }
    cmd.env("HOME", home)
        .env("AWS_EC2_METADATA_DISABLED", "true");
    for (k, v) in env {
        cmd.env(k, v);
    }
    common::Out::from_command(cmd)
}

#[test]
fn credentials_and_region_come_from_a_profile_in_the_aws_config_files() {
    let moto = Moto::start();
    // A leftover in eu-west-1 only: listing it shows that the profile's region was used.
    common::s3::ec2_call_in(
        &moto.endpoint,
        "eu-west-1",
        "CreateSecurityGroup",
        &[
            ("GroupName", "seal-old"),
            ("GroupDescription", "left by a killed build"),
            ("TagSpecification.1.ResourceType", "security-group"),
            ("TagSpecification.1.Tag.1.Key", "seal-build"),
            ("TagSpecification.1.Tag.1.Value", "b0"),
        ],
    );
    let home = tempfile::TempDir::new().unwrap();
    let config = home.path().join("aws-config");
    let credentials = home.path().join("aws-credentials");
    std::fs::write(&config, "[profile ci]\nregion = eu-west-1\n").unwrap();
    std::fs::write(
        &credentials,
        "[ci]\naws_access_key_id = AKIDPROFILE\naws_secret_access_key = profile-secret-never-shown\n",
    )
    .unwrap();
    let env = |credentials: &std::path::Path| {
        vec![
            ("AWS_PROFILE", "ci".to_string()),
            ("AWS_CONFIG_FILE", config.display().to_string()),
            (
                "AWS_SHARED_CREDENTIALS_FILE",
                credentials.display().to_string(),
            ),
        ]
    };
    let out = cloud_ls_with(&moto, home.path(), &env(&credentials));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let rows: Vec<&str> = out.stdout.lines().skip(1).collect();
    assert_eq!(rows.len(), 1, "{}", out.stdout);
    assert!(
        rows[0].starts_with("b0 ") && rows[0].contains("security-group"),
        "{}",
        out.stdout
    );

    // Without the credentials file nothing else has any: a clear error naming where
    // credentials are looked for, and no secret in it.
    let out = cloud_ls_with(&moto, home.path(), &env(&home.path().join("none")));
    assert_eq!(out.code, 1, "{}", out.stderr);
    for wanted in [
        "AWS credentials: none found",
        "AWS_ACCESS_KEY_ID",
        "~/.aws/credentials",
        "AWS_PROFILE",
        "instance metadata",
    ] {
        assert!(out.stderr.contains(wanted), "{wanted}: {}", out.stderr);
    }
    assert!(!out.stderr.contains("profile-secret"), "{}", out.stderr);
}

#[test]
fn an_ec2_error_names_the_call_and_what_was_created_is_deleted() {
    let moto = Moto::start();
    let ctx = Ctx::new();
    ctx.file("a", "a\n")
        .kubefile("FROM scratch\nCOPY a /a\nRUN true\n");
    // seal passes --cloud-allow-from to EC2 as it is; moto refuses it in
    // AuthorizeSecurityGroupIngress, after CreateSecurityGroup made the group.
    let mut cmd = Seal::new().command();
    cmd.current_dir(ctx.path()).args([
        "build",
        "--progress",
        "plain",
        "-t",
        "x:1",
        "--mode",
        "cloud",
        "--cloud-provider",
        "aws",
        "--cloud-endpoint",
        &moto.endpoint,
        "--cloud-image",
        "ami-12345678",
        "--cloud-allow-from",
        "not-a-cidr",
        ".",
    ]);
    for (k, v) in moto.env() {
        cmd.env(k, v);
    }
    let out = common::Out::from_command(cmd);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("EC2 AuthorizeSecurityGroupIngress: InvalidParameterValue")
            && out.stderr.contains("not-a-cidr"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("deleted security group"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("seal-test-secret"), "{}", out.stderr);
    nothing_left(&moto);
}

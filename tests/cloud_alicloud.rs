//! `--cloud-provider alicloud` end to end. Alibaba Cloud has no emulator, so
//! tests/support/alicloud_standin.py stands in for its ECS and VPC APIs on 127.0.0.1: it
//! checks every request's HMAC-SHA1 signature with an implementation of its own (Python's
//! hmac), the common parameters and each action's parameters, keeps state, answers in
//! Alibaba's JSON shapes and logs the calls. The test plays cloud-init (the local sshd of
//! tests/common/sshd.rs takes the keys from the instance's user-data) and an ssh_config
//! routes the instance to that sshd, so nothing dials the stand-in's made-up addresses. The
//! build's RUN really runs over SSH. After every build — passing, failing, interrupted —
//! nothing is left; `seal cloud ls|gc` find and delete what a killed build left.

mod common;

use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use common::cloud_init::{self, base64_decode, busybox_base, parse_cloud_config};
use common::sshd::Sshd;
use common::{Ctx, Out, Seal};

const KEY_ID: &str = "LTAI5tStandInKeyId";
const SECRET: &str = "standin-secret-do-not-print";

/// The stand-in API server, killed on drop.
struct Standin {
    child: Child,
    endpoint: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Standin {
    fn start() -> Standin {
        let dir = tempfile::TempDir::new().unwrap();
        let log = dir.path().join("calls.jsonl");
        let script =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/support/alicloud_standin.py");
        let mut child = Command::new("python3")
            .arg(script)
            .args(["--key-id", KEY_ID, "--key-secret", SECRET, "--log"])
            .arg(&log)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port: u16 = line.trim().parse().expect("the stand-in's port");
        Standin {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            log,
            _dir: dir,
        }
    }

    /// Everything the stand-in holds (its unsigned `/_state`, not an Alibaba API).
    fn state(&self) -> Value {
        let out = Command::new("curl")
            .args(["-sf", &format!("{}/_state", self.endpoint)])
            .output()
            .expect("curl");
        assert!(out.status.success(), "the stand-in's state");
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Every call so far: `{"action", "params", "ok", "code"}`.
    fn calls(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// The actions that succeeded, repeats (polling) collapsed.
    fn sequence(&self) -> Vec<String> {
        let mut seq: Vec<String> = Vec::new();
        for c in self.calls().iter().filter(|c| c["ok"] == true) {
            let a = c["action"].as_str().unwrap().to_string();
            if seq.last() != Some(&a) {
                seq.push(a);
            }
        }
        seq
    }

    fn count(&self, kind: &str) -> usize {
        self.state()[kind].as_array().map_or(0, Vec::len)
    }

    fn nothing_left(&self) {
        let state = self.state();
        for kind in ["instances", "groups", "vswitches", "vpcs"] {
            assert_eq!(
                state[kind].as_array().map(Vec::len),
                Some(0),
                "{kind} left: {state:#}"
            );
        }
    }
}

impl Drop for Standin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The security group rules the test's cloud-init saw while the instance ran.
type Seen = Arc<Mutex<Vec<Value>>>;

/// Plays cloud-init until dropped: each running instance's user-data goes into the sshd.
struct CloudInit {
    stop: Arc<AtomicBool>,
    seen: Seen,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl CloudInit {
    fn start(endpoint: &str, sshd: Arc<Mutex<Sshd>>) -> CloudInit {
        let stop = Arc::new(AtomicBool::new(false));
        let seen: Seen = Arc::default();
        let (s, seen2) = (stop.clone(), seen.clone());
        let url = format!("{endpoint}/_state");
        let thread = std::thread::spawn(move || {
            let mut done: Vec<String> = Vec::new();
            while !s.load(Ordering::SeqCst) {
                let out = Command::new("curl").args(["-sf", &url]).output().unwrap();
                let state: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
                for i in state["instances"].as_array().into_iter().flatten() {
                    let id = i["id"].as_str().unwrap().to_string();
                    if i["status"] != "Running" || done.contains(&id) {
                        continue;
                    }
                    let config = base64_decode(i["user_data"].as_str().unwrap());
                    let (private, public, client) = parse_cloud_config(&config);
                    let group = state["groups"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .find(|g| g["id"] == i["group"])
                        .cloned()
                        .unwrap_or_default();
                    sshd.lock()
                        .unwrap()
                        .become_instance(&private, &public, &client);
                    seen2.lock().unwrap().push(group);
                    done.push(id);
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
    api: Standin,
    sshd: Arc<Mutex<Sshd>>,
    seal: Seal,
    route: String,
    /// seal's TMPDIR: the keys a SIGKILLed build leaves go with the test.
    tmp: tempfile::TempDir,
}

fn setup() -> Setup {
    let api = Standin::start();
    let sshd = Sshd::start();
    let route = sshd.routing_config().display().to_string();
    let seal = Seal::new();
    busybox_base(&seal, "base:1");
    Setup {
        api,
        sshd: Arc::new(Mutex::new(sshd)),
        seal,
        route,
        tmp: tempfile::TempDir::new().unwrap(),
    }
}

/// The environment Alibaba's tools read, cleared, then the stand-in's key.
fn credentials(cmd: &mut Command, secret: &str) {
    for name in [
        "ALIBABA_CLOUD_ACCESS_KEY_ID",
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
        "ALIBABA_CLOUD_SECURITY_TOKEN",
        "ALIBABA_CLOUD_REGION_ID",
        "ALIBABA_CLOUD_PROFILE",
        "ALICLOUD_ACCESS_KEY",
        "ALICLOUD_SECRET_KEY",
        "ALICLOUD_SECURITY_TOKEN",
        "ALICLOUD_REGION",
    ] {
        cmd.env_remove(name);
    }
    cmd.env("ALIBABA_CLOUD_ACCESS_KEY_ID", KEY_ID)
        .env("ALIBABA_CLOUD_ACCESS_KEY_SECRET", secret);
}

impl Setup {
    fn command(&self, ctx: &Ctx, extra: &[&str]) -> Command {
        let mut cmd = self.seal.command();
        cmd.current_dir(ctx.path())
            .args(["build", "--progress", "plain", "-t", "out:1"])
            .args([
                "--mode",
                "cloud",
                "--cloud-provider",
                "alicloud",
                "--cloud-endpoint",
                &self.api.endpoint,
                "--cloud-allow-from",
                "127.0.0.1/32",
                "--cloud-ssh-config",
                &self.route,
                "--cloud-wait",
                "60s",
            ])
            .args(extra)
            .arg(".")
            .env("TMPDIR", self.tmp.path());
        credentials(&mut cmd, SECRET);
        cmd
    }

    fn seal_cloud(&self, sub: &str) -> Out {
        let mut cmd = self.seal.command();
        cmd.args([
            "cloud",
            sub,
            "--cloud-provider",
            "alicloud",
            "--cloud-endpoint",
            &self.api.endpoint,
        ]);
        credentials(&mut cmd, SECRET);
        Out::from_command(cmd)
    }

    /// Start a build whose RUN sleeps `secs`; return once that RUN runs on the host.
    fn start_sleeping(&self, ctx: &Ctx, secs: u32, extra: &[&str]) -> Child {
        cloud_init::start_sleeping(self.command(ctx, extra), ctx, secs)
    }
}

#[test]
fn a_provisioned_host_runs_the_build_and_everything_is_deleted_in_order() {
    let s = setup();
    let init = CloudInit::start(&s.api.endpoint, s.sshd.clone());
    let ctx = Ctx::new();
    ctx.kubefile("FROM base:1\nRUN echo provisioned > /greeting\n");
    let out = Out::from_command(s.command(&ctx, &[]));
    out.assert_built();
    assert!(
        out.stderr.contains("; cloud: 1 steps run"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains(SECRET), "{}", out.stderr);
    s.api.nothing_left();
    assert_eq!(
        s.api.sequence(),
        [
            "DescribeImages",
            "DescribeZones",
            "CreateVpc",
            "DescribeVpcs",
            "CreateVSwitch",
            "DescribeVSwitches",
            "CreateSecurityGroup",
            "AuthorizeSecurityGroup",
            "RunInstances",
            "DescribeInstances",
            "DeleteInstances",
            "DescribeInstances",
            "DeleteSecurityGroup",
            "DeleteVSwitch",
            "DeleteVpc",
        ]
    );
    let calls = s.api.calls();
    // The only refusals: the group was still in use while the instance was being released,
    // and seal retried.
    let refused: Vec<&str> = calls
        .iter()
        .filter(|c| c["ok"] == false)
        .map(|c| c["code"].as_str().unwrap())
        .collect();
    assert!(
        !refused.is_empty(),
        "the stand-in keeps the group in use a while"
    );
    assert!(
        refused.iter().all(|c| c.starts_with("DependencyViolation")),
        "{refused:?}"
    );
    // Every resource carries the same build's tags.
    let creates: Vec<&Value> = calls
        .iter()
        .filter(|c| {
            c["ok"] == true
                && (c["action"].as_str().unwrap().starts_with("Create")
                    || c["action"] == "RunInstances")
        })
        .collect();
    assert_eq!(creates.len(), 4);
    let build = creates[0]["params"]["Tag.1.Value"].as_str().unwrap();
    for c in &creates {
        assert_eq!(c["params"]["Tag.1.Key"], "seal-build", "{c}");
        assert_eq!(c["params"]["Tag.1.Value"], build, "{c}");
        assert_eq!(c["params"]["Tag.2.Key"], "seal-expires", "{c}");
    }
    // The newest Ubuntu 24.04 system image, in a zone that sells the default type.
    let run = creates[3];
    assert_eq!(
        run["params"]["ImageId"],
        "ubuntu_24_04_x64_20G_alibase_20240812.vhd"
    );
    assert_eq!(run["params"]["InstanceType"], "ecs.g7.large");
    let vswitch = calls
        .iter()
        .find(|c| c["action"] == "CreateVSwitch")
        .unwrap();
    assert_eq!(vswitch["params"]["ZoneId"], "cn-hangzhou-i");
    // While it ran, the group admitted port 22 from the given address only.
    let seen = init.seen.lock().unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0]["rules"],
        serde_json::json!([{"IpProtocol": "tcp", "PortRange": "22/22",
                            "SourceCidrIp": "127.0.0.1/32", "Policy": "accept"}])
    );
}

#[test]
fn a_failing_run_still_deletes_everything() {
    let s = setup();
    let _init = CloudInit::start(&s.api.endpoint, s.sshd.clone());
    let ctx = Ctx::new();
    ctx.kubefile("FROM base:1\nRUN false\n");
    let out = Out::from_command(s.command(&ctx, &[]));
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("Kubefile:2"), "{}", out.stderr);
    s.api.nothing_left();
    assert_eq!(
        s.api.sequence().last().map(String::as_str),
        Some("DeleteVpc")
    );
}

#[test]
fn ctrl_c_mid_build_deletes_everything() {
    let s = setup();
    let _init = CloudInit::start(&s.api.endpoint, s.sshd.clone());
    let ctx = Ctx::new();
    let mut child = s.start_sleeping(&ctx, 131, &[]);
    assert_eq!(s.api.count("instances"), 1);
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    s.api.nothing_left();
}

#[test]
fn a_wrong_secret_is_a_clear_error_and_creates_nothing() {
    let s = setup();
    let ctx = Ctx::new();
    ctx.kubefile("FROM base:1\nRUN echo never > /never\n");
    let mut cmd = s.command(&ctx, &[]);
    credentials(&mut cmd, "not-the-secret");
    let out = Out::from_command(cmd);
    assert_eq!(out.code, 1, "{}", out.stderr);
    // The host is created for the first RUN: the error is at its line.
    assert!(out.stderr.contains("Kubefile:2"), "{}", out.stderr);
    assert!(
        out.stderr.contains("--cloud-provider alicloud")
            && out
                .stderr
                .contains("Alibaba Cloud ECS DescribeImages: SignatureDoesNotMatch"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("not-the-secret"), "{}", out.stderr);
    s.api.nothing_left();
    let calls = s.api.calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0]["code"], "SignatureDoesNotMatch");
}

#[test]
fn cloud_ls_and_gc_find_what_a_killed_build_left() {
    let s = setup();
    let _init = CloudInit::start(&s.api.endpoint, s.sshd.clone());
    // A build killed outright (no chance to clean up), its resources expired after 1 s.
    let ctx = Ctx::new();
    let mut child = s.start_sleeping(&ctx, 132, &["--cloud-ttl", "1s"]);
    child.kill().unwrap();
    child.wait().unwrap();
    s.sshd.lock().unwrap().kill_all();
    // Alibaba itself would release the instance at AutoReleaseTime (>= 30 min ahead).
    let run = s
        .api
        .calls()
        .into_iter()
        .find(|c| c["action"] == "RunInstances")
        .unwrap();
    assert!(run["params"]["AutoReleaseTime"].is_string(), "{run}");
    std::thread::sleep(Duration::from_secs(2));

    let ls = s.seal_cloud("ls");
    assert_eq!(ls.code, 0, "{}", ls.stderr);
    let rows: Vec<&str> = ls.stdout.lines().skip(1).collect();
    assert_eq!(rows.len(), 4, "{}", ls.stdout);
    for kind in ["instance", "security-group", "vswitch", "vpc"] {
        assert!(
            rows.iter()
                .any(|r| r.contains(&format!(" {kind} ")) && r.ends_with(" yes")),
            "{kind}: {}",
            ls.stdout
        );
    }
    let gc = s.seal_cloud("gc");
    assert_eq!(gc.code, 0, "{}", gc.stderr);
    assert!(
        gc.stderr.contains("deleted 4 expired resources"),
        "{}",
        gc.stderr
    );
    s.api.nothing_left();
    assert_eq!(s.seal_cloud("ls").stdout.lines().count(), 1);
}

#[test]
fn credentials_come_from_the_aliyun_cli_config_or_a_clear_error() {
    let api = Standin::start();
    let seal = Seal::new();
    let home = tempfile::TempDir::new().unwrap();
    let ls = |home: &std::path::Path| {
        let mut cmd = seal.command();
        cmd.args([
            "cloud",
            "ls",
            "--cloud-provider",
            "alicloud",
            "--cloud-endpoint",
            &api.endpoint,
        ]);
        credentials(&mut cmd, "");
        cmd.env_remove("ALIBABA_CLOUD_ACCESS_KEY_ID")
            .env_remove("ALIBABA_CLOUD_ACCESS_KEY_SECRET")
            .env("HOME", home);
        Out::from_command(cmd)
    };
    let none = ls(home.path());
    assert_eq!(none.code, 1, "{}", none.stderr);
    assert!(
        none.stderr.contains("ALIBABA_CLOUD_ACCESS_KEY_ID")
            && none.stderr.contains("~/.aliyun/config.json"),
        "{}",
        none.stderr
    );
    assert!(api.calls().is_empty());
    std::fs::create_dir_all(home.path().join(".aliyun")).unwrap();
    std::fs::write(
        home.path().join(".aliyun/config.json"),
        format!(
            r#"{{"current":"ci","profiles":[{{"name":"default","mode":"AK","access_key_id":"x","access_key_secret":"y"}},
                {{"name":"ci","mode":"AK","access_key_id":"{KEY_ID}","access_key_secret":"{SECRET}","region_id":"cn-hangzhou"}}]}}"#
        ),
    )
    .unwrap();
    let found = ls(home.path());
    assert_eq!(found.code, 0, "{}", found.stderr);
    assert_eq!(found.stdout.lines().count(), 1, "{}", found.stdout);
    assert!(api.calls().iter().all(|c| c["ok"] == true));
}

#[test]
fn an_api_error_names_the_call_and_what_was_created_is_deleted() {
    let s = setup();
    let ctx = Ctx::new();
    ctx.kubefile("FROM base:1\nRUN echo never > /never\n");
    let out = Out::from_command(s.command(&ctx, &["--cloud-image", "m-doesnotexist"]));
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("Alibaba Cloud ECS RunInstances: InvalidImageId.NotFound"),
        "{}",
        out.stderr
    );
    s.api.nothing_left();
    let seq = s.api.sequence();
    assert_eq!(
        seq[seq.len() - 4..],
        [
            "AuthorizeSecurityGroup",
            "DeleteSecurityGroup",
            "DeleteVSwitch",
            "DeleteVpc"
        ],
        "{seq:?}"
    );
    assert!(
        !seq.contains(&"DescribeImages".to_string()),
        "--cloud-image is used as given"
    );
}

#[test]
fn ctrl_c_while_waiting_for_ssh_deletes_everything() {
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
    while !s.api.calls().iter().any(|c| {
        c["action"] == "DescribeInstances" && s.api.state()["instances"][0]["status"] == "Running"
    }) {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the instance never ran");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(2));
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    s.api.nothing_left();
}

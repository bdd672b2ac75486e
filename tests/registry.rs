//! `seal push`, `seal pull`, `seal login` and FROM pulls against the Debian `docker-registry`
//! (distribution 2.8) started by each test on 127.0.0.1 with a free port, plain HTTP.

mod common;

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Ctx, Out, Seal};
use tempfile::TempDir;

const REGISTRY_BIN: &str = "/usr/bin/docker-registry";
const USER: &str = "sealer";
const PASSWORD: &str = "s3cret-pass";
/// bcrypt (cost 4) of PASSWORD, as `htpasswd -B` would write it.
const PASSWORD_BCRYPT: &str = "$2b$04$tkHDsPJUGXTYMWQGz4qTwOrCKOI4DEInvLR4Eg6qrZ5BHhP4U1KoO";

/// A running registry, killed on drop.
struct Registry {
    child: Child,
    host: String,
    _dir: TempDir,
}

impl Registry {
    /// Start one; `None` (the test is skipped with a message) when the binary is missing.
    fn start(with_auth: bool) -> Option<Registry> {
        if !Path::new(REGISTRY_BIN).exists() {
            eprintln!(
                "skipping: {REGISTRY_BIN} is not installed (apt-get install docker-registry)"
            );
            return None;
        }
        let dir = TempDir::new().expect("registry temp dir");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let host = format!("127.0.0.1:{port}");
        let mut config = format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {host}\n",
            dir.path().join("data").display()
        );
        if with_auth {
            let htpasswd = dir.path().join("htpasswd");
            std::fs::write(&htpasswd, format!("{USER}:{PASSWORD_BCRYPT}\n")).unwrap();
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: seal-test\n    path: {}\n",
                htpasswd.display()
            ));
        }
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).unwrap();
        let child = Command::new(REGISTRY_BIN)
            .arg("serve")
            .arg(&config_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting docker-registry");
        let registry = Registry {
            child,
            host,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(&registry.host).is_err() {
            assert!(Instant::now() < deadline, "docker-registry did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(registry)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `seal <args>` with a private auth file and no inherited registry settings.
fn seal(seal: &Seal, auth_file: &Path, args: &[&str]) -> Out {
    seal_env(seal, auth_file, args, &[])
}

fn seal_env(seal: &Seal, auth_file: &Path, args: &[&str], env: &[(&str, &str)]) -> Out {
    let mut cmd = seal.command();
    cmd.args(args)
        .env("REGISTRY_AUTH_FILE", auth_file)
        .env_remove("DOCKER_CONFIG")
        .env_remove("SEAL_INSECURE_REGISTRIES")
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let output = cmd.output().expect("running seal");
    Out {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn ok(out: &Out, what: &str) -> String {
    assert_eq!(out.code, 0, "{what} failed:\n{}", out.stderr);
    out.stdout.trim().to_string()
}

/// A small image built by seal, named `name`; returns its manifest digest.
fn build_image(s: &Seal, name: &str) -> String {
    let ctx = Ctx::new();
    ctx.file("dir1/a.txt", "hello registry\n")
        .file("dir2/b.txt", "second layer\n")
        .kubefile("FROM scratch\nCOPY dir1 a\nCOPY dir2 b\nLABEL k=v\n")
        .age();
    s.digest(ctx.path(), name, &[])
}

fn auth_path(dir: &TempDir) -> PathBuf {
    dir.path().join("auth.json")
}

#[test]
fn push_then_pull_into_a_fresh_store_keeps_the_digest() {
    let Some(registry) = Registry::start(false) else {
        return;
    };
    let auth = TempDir::new().unwrap();
    let name = format!("{}/x/y:1", registry.host);
    let insecure = format!("--insecure-registry={}", registry.host);
    let a = Seal::new();
    let digest = build_image(&a, &name);

    let pushed = seal(&a, &auth_path(&auth), &["push", &insecure, &name]);
    assert_eq!(ok(&pushed, "push"), digest);
    assert!(
        pushed.stderr.contains("3 blobs uploaded"),
        "{}",
        pushed.stderr
    );
    // An independent client reads back exactly the manifest seal pushed.
    let raw = common::tool(
        "skopeo",
        &[
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{name}"),
        ],
        auth.path(),
    );
    use sha2::Digest as _;
    assert_eq!(
        format!("sha256:{:x}", sha2::Sha256::digest(raw.as_bytes())),
        digest
    );
    // Again: every blob is already there.
    let again = seal(&a, &auth_path(&auth), &["push", &insecure, &name]);
    assert_eq!(ok(&again, "second push"), digest);
    assert!(
        again.stderr.contains("0 blobs uploaded, 3 already"),
        "{}",
        again.stderr
    );

    let b = Seal::new();
    let pulled = seal_env(
        &b,
        &auth_path(&auth),
        &["pull", &name],
        &[("SEAL_INSECURE_REGISTRIES", &registry.host)],
    );
    assert_eq!(ok(&pulled, "pull"), digest);
    assert_eq!(
        b.inspect(&name)["digest"].as_str(),
        a.inspect(&name)["digest"].as_str()
    );
    let repull = seal(&b, &auth_path(&auth), &["pull", &insecure, &name]);
    assert!(
        repull.stderr.contains("0 blobs fetched"),
        "{}",
        repull.stderr
    );

    // tag, then push under the new name: blobs are skipped.
    let other = format!("{}/x/z:2", registry.host);
    ok(&seal(&b, &auth_path(&auth), &["tag", &name, &other]), "tag");
    let pushed = seal(&b, &auth_path(&auth), &["push", &insecure, &other]);
    assert_eq!(ok(&pushed, "push of the tag"), digest);
}

#[test]
fn from_pulls_the_base_image_unless_told_not_to() {
    let Some(registry) = Registry::start(false) else {
        return;
    };
    let auth = TempDir::new().unwrap();
    let name = format!("{}/x/y:1", registry.host);
    let insecure = format!("--insecure-registry={}", registry.host);
    let a = Seal::new();
    build_image(&a, &name);
    ok(
        &seal(&a, &auth_path(&auth), &["push", &insecure, &name]),
        "push",
    );

    let ctx = Ctx::new();
    ctx.file("c.txt", "on top\n")
        .kubefile(&format!("FROM {name}\nCOPY c.txt c\n"))
        .age();
    let b = Seal::new();
    let never = b.build_env(
        ctx.path(),
        "top:1",
        &["--pull", "never", &insecure],
        &[("REGISTRY_AUTH_FILE", auth_path(&auth).to_str().unwrap())],
    );
    assert_eq!(never.code, 1, "{}", never.stderr);
    assert!(
        never.stderr.contains("not in the local store") && never.stderr.contains("--pull never"),
        "{}",
        never.stderr
    );

    let built = b.build_env(
        ctx.path(),
        "top:1",
        &[&insecure],
        &[("REGISTRY_AUTH_FILE", auth_path(&auth).to_str().unwrap())],
    );
    built.assert_built();
    assert!(
        built.stderr.contains(&format!("pulling {name}")),
        "{}",
        built.stderr
    );
    assert!(b.inspect(&name)["digest"].is_string());
}

#[test]
fn plain_http_needs_insecure_registry() {
    let Some(registry) = Registry::start(false) else {
        return;
    };
    let auth = TempDir::new().unwrap();
    let s = Seal::new();
    let out = seal(
        &s,
        &auth_path(&auth),
        &["pull", &format!("{}/x/y:1", registry.host)],
    );
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr
            .contains(&format!("--insecure-registry {}", registry.host))
            && out.stderr.contains("SEAL_INSECURE_REGISTRIES"),
        "{}",
        out.stderr
    );
}

#[test]
fn login_checks_the_password_and_saves_only_good_ones() {
    let Some(registry) = Registry::start(true) else {
        return;
    };
    let auth = TempDir::new().unwrap();
    let file = auth_path(&auth);
    let host = registry.host.as_str();
    let insecure = format!("--insecure-registry={host}");
    let s = Seal::new();
    let name = format!("{host}/x/y:1");
    build_image(&s, &name);

    let anonymous = seal(&s, &file, &["push", &insecure, &name]);
    assert_eq!(anonymous.code, 1, "{}", anonymous.stderr);
    assert!(
        anonymous.stderr.contains("seal login"),
        "{}",
        anonymous.stderr
    );

    let wrong = seal(
        &s,
        &file,
        &["login", &insecure, host, "-u", USER, "-p", "wrong"],
    );
    assert_eq!(wrong.code, 1, "{}", wrong.stderr);
    assert!(!file.exists(), "a failed login saved credentials");

    let good = seal(
        &s,
        &file,
        &["login", &insecure, host, "-u", USER, "-p", PASSWORD],
    );
    assert_eq!(good.code, 0, "{}", good.stderr);
    assert!(!good.stdout.contains(PASSWORD) && !good.stderr.contains(PASSWORD));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    let pushed = seal(&s, &file, &["push", &insecure, &name]);
    let digest = ok(&pushed, "authenticated push");
    let fresh = Seal::new();
    assert_eq!(
        ok(
            &seal(&fresh, &file, &["pull", &insecure, &name]),
            "authenticated pull"
        ),
        digest
    );

    ok(&seal(&s, &file, &["logout", host]), "logout");
    let after = seal(&Seal::new(), &file, &["pull", &insecure, &name]);
    assert_eq!(after.code, 1, "{}", after.stderr);
}

#[test]
fn pulls_a_docker_v2_schema_2_image_that_skopeo_pushed() {
    let Some(registry) = Registry::start(false) else {
        return;
    };
    let auth = TempDir::new().unwrap();
    let a = Seal::new();
    let ctx = Ctx::new();
    ctx.file("dir1/a.txt", "docker flavoured\n")
        .kubefile("FROM scratch\nCOPY dir1 a\n")
        .age();
    a.digest(ctx.path(), "dock:1", &["--compression", "gzip"]);
    let archive = auth.path().join("dock.tar");
    a.save("dock:1", &archive);
    let name = format!("{}/x/docker:1", registry.host);
    common::tool(
        "skopeo",
        &[
            "copy",
            "--quiet",
            "--dest-tls-verify=false",
            "--format",
            "v2s2",
            &format!("oci-archive:{}", archive.display()),
            &format!("docker://{name}"),
        ],
        auth.path(),
    );
    let raw = common::tool(
        "skopeo",
        &[
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{name}"),
        ],
        auth.path(),
    );
    assert!(
        raw.contains("application/vnd.docker.distribution.manifest.v2+json"),
        "{raw}"
    );
    use sha2::Digest as _;
    let expected = format!("sha256:{:x}", sha2::Sha256::digest(raw.as_bytes()));

    let b = Seal::new();
    let insecure = format!("--insecure-registry={}", registry.host);
    let pulled = seal(&b, &auth_path(&auth), &["pull", &insecure, &name]);
    assert_eq!(ok(&pulled, "pull of a v2s2 image"), expected);
    assert_eq!(b.inspect(&name)["digest"].as_str(), Some(expected.as_str()));
}

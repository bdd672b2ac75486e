//! `seal push`, `seal pull`, `seal login` and FROM pulls against the Debian `docker-registry`
//! (distribution 2.8) started by each test on 127.0.0.1 with a free port, plain HTTP: without
//! auth, with htpasswd (Basic) auth, or with token auth against a token server the test runs
//! (Python's http.server signing RS256 JWTs with a key and certificate made by `openssl`).
//! Credential helpers are a shell script speaking Docker's helper protocol over files.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::registry::{ok, run_seal, Registry, PASSWORD, USER};
use common::{Ctx, Out, Seal};
use tempfile::TempDir;

/// base64 of `sealer:wrong`, an `auths` entry with a wrong password.
const WRONG_AUTH: &str = "c2VhbGVyOndyb25n";
/// The identity token the token server accepts (as a helper hands it out: user `<token>`).
const IDENTITY_TOKEN: &str = "refresh-0123456789";

/// How a test registry checks clients.
enum Auth {
    None,
    Htpasswd,
    /// Token auth; the realm URL and the certificate the tokens are signed with.
    Token {
        realm: String,
        cert: PathBuf,
    },
}

/// Start a registry checking clients as `auth` says.
fn start_registry(auth: Auth) -> Option<Registry> {
    Registry::start(None, |dir| {
        match auth {
        Auth::None => String::new(),
        Auth::Htpasswd => common::registry::htpasswd_auth(dir),
        Auth::Token { realm, cert } => format!(
            "auth:\n  token:\n    realm: {realm}\n    service: seal-test-registry\n    issuer: {TOKEN_ISSUER}\n    rootcertbundle: {}\n",
            cert.display()
        ),
    }
    })
}

/// The requests a registry served so far whose line contains `needle` and that were
/// answered `status`.
fn count_requests(registry: &Registry, needle: &str, status: u16) -> usize {
    let status = format!("\" {status} ");
    registry
        .access_log()
        .iter()
        .filter(|l| l.contains(needle) && l.contains(&status))
        .count()
}

/// `seal <args>` with a private auth file and no inherited registry settings.
fn seal(seal: &Seal, auth_file: &Path, args: &[&str]) -> Out {
    seal_env(seal, auth_file, args, &[])
}

fn seal_env(seal: &Seal, auth_file: &Path, args: &[&str], env: &[(&str, &str)]) -> Out {
    run_seal(seal, None, auth_file, args, env)
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
    let Some(registry) = start_registry(Auth::None) else {
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
    let Some(registry) = start_registry(Auth::None) else {
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
    let Some(registry) = start_registry(Auth::None) else {
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
    let Some(registry) = start_registry(Auth::Htpasswd) else {
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
    let Some(registry) = start_registry(Auth::None) else {
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

/// A credential helper `docker-credential-sealtest`: Docker's protocol (`get`, `store`,
/// `erase`; the server on stdin) over one file per server in `state/`, every call logged.
struct Helper {
    dir: TempDir,
}

const HELPER_SCRIPT: &str = r#"#!/bin/sh
# docker-credential-sealtest: keeps credentials in files, one per server.
dir=__DIR__
echo "$1" >> "$dir/calls"
key() { printf %s "$1" | od -An -tx1 | tr -d ' \n'; }
case "$1" in
get)
  read -r server
  f="$dir/state/$(key "$server")"
  if [ -f "$f" ]; then cat "$f"; else echo "credentials not found in native keychain"; exit 1; fi ;;
store)
  json=$(cat)
  server=$(printf %s "$json" | sed -n 's/.*"ServerURL": *"\([^"]*\)".*/\1/p')
  [ -n "$server" ] || { echo "no ServerURL in the input" >&2; exit 1; }
  printf %s "$json" > "$dir/state/$(key "$server")" ;;
erase)
  read -r server
  f="$dir/state/$(key "$server")"
  [ -f "$f" ] || { echo "credentials not found in native keychain"; exit 1; }
  rm "$f" ;;
*)
  echo "unknown action $1" >&2; exit 1 ;;
esac
"#;

impl Helper {
    fn new() -> Helper {
        use std::os::unix::fs::PermissionsExt;
        let dir = TempDir::new().expect("helper temp dir");
        std::fs::create_dir_all(dir.path().join("bin")).unwrap();
        std::fs::create_dir_all(dir.path().join("state")).unwrap();
        let script = dir.path().join("bin/docker-credential-sealtest");
        std::fs::write(
            &script,
            HELPER_SCRIPT.replace("__DIR__", dir.path().to_str().expect("utf-8 path")),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        Helper { dir }
    }

    /// `PATH` with the helper first.
    fn path_env(&self) -> String {
        format!(
            "{}:{}",
            self.dir.path().join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        )
    }

    /// The actions seal asked for, in order.
    fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("calls"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// How many servers it holds credentials for.
    fn entries(&self) -> usize {
        std::fs::read_dir(self.dir.path().join("state"))
            .unwrap()
            .count()
    }

    /// Put credentials in directly, as another tool would have.
    fn put(&self, server: &str, user: &str, secret: &str) {
        let json = serde_json::json!({"ServerURL": server, "Username": user, "Secret": secret});
        let mut child = Command::new(self.dir.path().join("bin/docker-credential-sealtest"))
            .arg("store")
            .stdin(Stdio::piped())
            .spawn()
            .expect("running the helper");
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(json.to_string().as_bytes())
            .unwrap();
        assert!(child.wait().unwrap().success());
    }
}

/// A Docker config directory (`DOCKER_CONFIG`) plus the environment that makes seal use
/// only it (a missing `REGISTRY_AUTH_FILE`, a private HOME) and finds the helper.
struct DockerConfig {
    dir: TempDir,
    env: Vec<(String, String)>,
}

impl DockerConfig {
    fn new(helper: &Helper) -> DockerConfig {
        let dir = TempDir::new().expect("docker config temp dir");
        let p = |rel: &str| dir.path().join(rel).to_str().expect("utf-8").to_string();
        let env = vec![
            ("DOCKER_CONFIG".to_string(), p("")),
            ("REGISTRY_AUTH_FILE".to_string(), p("absent/auth.json")),
            ("HOME".to_string(), p("home")),
            ("PATH".to_string(), helper.path_env()),
        ];
        DockerConfig { dir, env }
    }

    fn write(&self, doc: serde_json::Value) {
        std::fs::write(self.file(), doc.to_string()).unwrap();
    }

    fn file(&self) -> PathBuf {
        self.dir.path().join("config.json")
    }

    fn run(&self, seal: &Seal, args: &[&str]) -> Out {
        let env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        seal_env(seal, &self.dir.path().join("absent/auth.json"), args, &env)
    }
}

#[test]
fn credential_helpers_store_get_and_erase_in_dockers_order() {
    let Some(registry) = start_registry(Auth::Htpasswd) else {
        return;
    };
    let host = registry.host.as_str();
    let insecure = format!("--insecure-registry={host}");
    let helper = Helper::new();
    let config = DockerConfig::new(&helper);
    config.write(serde_json::json!({ "credsStore": "sealtest" }));
    let s = Seal::new();
    let name = format!("{host}/x/y:1");
    build_image(&s, &name);

    // A refused login stores nothing.
    let wrong = config.run(&s, &["login", &insecure, host, "-u", USER, "-p", "wrong"]);
    assert_eq!(wrong.code, 1, "{}", wrong.stderr);
    assert_eq!(helper.entries(), 0);

    let good = config.run(&s, &["login", &insecure, host, "-u", USER, "-p", PASSWORD]);
    assert_eq!(good.code, 0, "{}", good.stderr);
    assert!(
        good.stdout.contains("docker-credential-sealtest"),
        "{}",
        good.stdout
    );
    assert_eq!(helper.calls(), ["store"]);
    assert_eq!(helper.entries(), 1);
    // Nothing went into the config file itself.
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(config.file()).unwrap()).unwrap();
    assert_eq!(doc, serde_json::json!({ "credsStore": "sealtest" }));

    let pushed = config.run(&s, &["push", &insecure, &name]);
    let digest = ok(&pushed, "push with the helper's credentials");
    assert!(helper.calls().contains(&"get".to_string()));

    // credHelpers[registry] wins over credsStore (here a helper that does not exist) and
    // over a wrong `auths` entry.
    config.write(serde_json::json!({
        "credsStore": "nothere",
        "credHelpers": { host: "sealtest" },
        "auths": { host: { "auth": WRONG_AUTH } },
    }));
    let pulled = config.run(&Seal::new(), &["pull", &insecure, &name]);
    assert_eq!(ok(&pulled, "pull through credHelpers"), digest);

    // credsStore wins over a wrong `auths` entry.
    config.write(serde_json::json!({
        "credsStore": "sealtest",
        "auths": { host: { "auth": WRONG_AUTH } },
    }));
    let pulled = config.run(&Seal::new(), &["pull", &insecure, &name]);
    assert_eq!(ok(&pulled, "pull through credsStore"), digest);

    // A configured helper that is not installed is an error naming it.
    config.write(serde_json::json!({ "credsStore": "nothere" }));
    let missing = config.run(&Seal::new(), &["pull", &insecure, &name]);
    assert_eq!(missing.code, 1, "{}", missing.stderr);
    assert!(
        missing.stderr.contains("docker-credential-nothere")
            && missing.stderr.contains("not found on PATH"),
        "{}",
        missing.stderr
    );

    // logout erases through the helper; afterwards the registry wants a login again.
    config.write(serde_json::json!({ "credsStore": "sealtest" }));
    let out = config.run(&s, &["logout", host]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(helper.calls().last().map(String::as_str), Some("erase"));
    assert_eq!(helper.entries(), 0);
    let after = config.run(&Seal::new(), &["pull", &insecure, &name]);
    assert_eq!(after.code, 1, "{}", after.stderr);
    assert!(
        after.stderr.contains(&format!("seal login {host}")),
        "{}",
        after.stderr
    );
    let again = config.run(&s, &["logout", host]);
    assert_eq!(again.code, 1, "{}", again.stderr);
}

#[test]
fn push_transfers_in_parallel_with_progress_and_mounts_across_repositories() {
    let Some(registry) = start_registry(Auth::None) else {
        return;
    };
    let auth = TempDir::new().unwrap();
    let host = registry.host.as_str();
    let insecure = format!("--insecure-registry={host}");
    let a = Seal::new();
    let first = format!("{host}/x/a:1");
    let digest = build_image(&a, &first);

    let pushed = seal(
        &a,
        &auth_path(&auth),
        &["push", &insecure, "--progress", "plain", &first],
    );
    assert_eq!(ok(&pushed, "push"), digest);
    assert_eq!(
        pushed.stderr.matches("pushing blob sha256:").count(),
        3,
        "{}",
        pushed.stderr
    );
    assert_eq!(
        pushed.stderr.matches("pushed blob sha256:").count(),
        3,
        "{}",
        pushed.stderr
    );
    assert!(pushed.stderr.contains(" bytes)"), "{}", pushed.stderr);

    // Another name of the same image, in another repository of the registry: every blob is
    // mounted from x/a, none uploaded.
    let second = format!("{host}/x/b:1");
    ok(
        &seal(&a, &auth_path(&auth), &["tag", &first, &second]),
        "tag",
    );
    let mounted = seal(&a, &auth_path(&auth), &["push", &insecure, &second]);
    assert_eq!(ok(&mounted, "push of the second name"), digest);
    assert!(
        mounted
            .stderr
            .contains("0 blobs uploaded, 0 already in the registry, 3 mounted"),
        "{}",
        mounted.stderr
    );
    assert!(mounted.stderr.contains("from x/a"), "{}", mounted.stderr);
    assert_eq!(count_requests(&registry, "?mount=sha256:", 201), 3);
    assert_eq!(
        count_requests(&registry, "PUT /v2/x/b/blobs/uploads/", 201),
        0
    );
    // An independent client reads both.
    for n in [&first, &second] {
        common::tool(
            "skopeo",
            &["inspect", "--tls-verify=false", &format!("docker://{n}")],
            auth.path(),
        );
    }

    // JSON progress, one transfer at a time, into a fresh store.
    let b = Seal::new();
    let pulled = seal(
        &b,
        &auth_path(&auth),
        &[
            "pull",
            &insecure,
            "--max-concurrent-transfers",
            "1",
            "--progress",
            "json",
            &second,
        ],
    );
    assert_eq!(ok(&pulled, "pull"), digest);
    let events: Vec<serde_json::Value> = pulled
        .stderr
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let done: Vec<&serde_json::Value> = events.iter().filter(|e| e["event"] == "done").collect();
    assert_eq!(done.len(), 3, "{}", pulled.stderr);
    assert!(done
        .iter()
        .all(|e| e["direction"] == "pull" && e["total"].as_u64().is_some_and(|t| t > 0)));

    let zero = seal(
        &b,
        &auth_path(&auth),
        &[
            "pull",
            &insecure,
            "--max-concurrent-transfers",
            "0",
            &second,
        ],
    );
    assert_eq!(zero.code, 2, "{}", zero.stderr);
}

#[test]
fn the_client_mounts_blobs_it_saw_in_another_repository() {
    use seal_store::registry::{Client, TransferEvent};
    use seal_store::{Reference, RegistryOptions, Store};
    let Some(registry) = start_registry(Auth::None) else {
        return;
    };
    let auth = TempDir::new().unwrap();
    let host = registry.host.as_str();
    let insecure = format!("--insecure-registry={host}");
    let s = Seal::new();
    let source = format!("{host}/x/a:1");
    let target = format!("{host}/x/b:1");
    build_image(&s, &source);
    ok(
        &seal(&s, &auth_path(&auth), &["push", &insecure, &source]),
        "push",
    );
    // Only the target name stays in the store: no store name points at x/a.
    ok(
        &seal(&s, &auth_path(&auth), &["tag", &source, &target]),
        "tag",
    );
    ok(&seal(&s, &auth_path(&auth), &["rmi", &source]), "rmi");

    let store = Store::open(s.root(), &mut || {}).expect("opening the store");
    let client = Client::new(RegistryOptions {
        insecure: vec![host.to_string()],
        ..RegistryOptions::default()
    });
    let source = Reference::parse_container_image(&source).unwrap();
    let target = Reference::parse_container_image(&target).unwrap();
    let record = store.image(&target).unwrap().expect("the target name");
    let manifest = store.manifest(&record.manifest).unwrap();
    let blobs: Vec<_> = std::iter::once(manifest.config.clone())
        .chain(manifest.layers.iter().cloned())
        .collect();
    // The store has every blob: nothing moves, but the client learns where they are.
    assert_eq!(
        client
            .fetch_blobs(&store, &source, &blobs, &|_| {})
            .unwrap(),
        (0, 3)
    );
    let events = std::sync::Mutex::new(Vec::new());
    let report = client
        .push(&store, &target, &|e| events.lock().unwrap().push(e))
        .unwrap();
    assert_eq!(
        (report.transferred, report.skipped, report.mounted),
        (0, 0, 3)
    );
    let events = events.into_inner().unwrap();
    assert_eq!(events.len(), 3);
    assert!(events
        .iter()
        .all(|e| matches!(e, TransferEvent::Mounted { from, .. } if from == "x/a")));
    assert_eq!(count_requests(&registry, "?mount=sha256:", 201), 3);
}

/// The issuer the token server signs as and the registry trusts.
const TOKEN_ISSUER: &str = "seal-test-issuer";

/// A token server in the image of Docker's: `GET /token?service=&scope=...` with optional
/// Basic credentials answers `{"token": <RS256 JWT>}`. USER/PASSWORD or any user with the
/// identity token get every scope asked for; anonymous clients get a token with no access;
/// wrong credentials get 401.
const TOKEN_SERVER: &str = r#"
import base64, json, os, subprocess, sys, time, uuid
from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler
from urllib.parse import urlparse, parse_qs

key, cert, port_file, log_file, user, password, id_token, issuer = sys.argv[1:9]
with open(cert) as f:
    der = "".join(line.strip() for line in f if "-----" not in line)

def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

def log(line):
    with open(log_file, "a") as f:
        f.write(line + "\n")

class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def reply(self, status, doc):
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        url = urlparse(self.path)
        query = parse_qs(url.query)
        if url.path != "/token":
            return self.reply(404, {"errors": [{"code": "NOT_FOUND"}]})
        account = ""
        header = self.headers.get("Authorization", "")
        if header:
            try:
                u, _, p = base64.b64decode(header.split(" ", 1)[1]).decode().partition(":")
            except Exception:
                return self.reply(400, {"errors": [{"code": "BAD_HEADER"}]})
            if not ((u == user and p == password) or p == id_token):
                log("DENIED " + u)
                return self.reply(401, {"errors": [{"code": "UNAUTHORIZED", "message": "bad credentials"}]})
            account = u
        scopes = [one for s in query.get("scope", []) for one in s.split()]
        access = []
        if account:
            for scope in scopes:
                kind, _, rest = scope.partition(":")
                name, _, actions = rest.rpartition(":")
                if kind == "repository" and name:
                    access.append({"type": kind, "name": name, "actions": actions.split(",")})
        log("TOKEN %s %s" % (account or "-", " ".join(scopes) or "-"))
        now = int(time.time())
        head = {"typ": "JWT", "alg": "RS256", "x5c": [der]}
        claims = {"iss": issuer, "sub": account, "aud": query.get("service", [""])[0],
                  "exp": now + 600, "nbf": now - 60, "iat": now, "jti": uuid.uuid4().hex,
                  "access": access}
        signing = b64url(json.dumps(head).encode()) + "." + b64url(json.dumps(claims).encode())
        signature = subprocess.run(["openssl", "dgst", "-sha256", "-sign", key],
                                   input=signing.encode(), capture_output=True, check=True).stdout
        token = signing + "." + b64url(signature)
        self.reply(200, {"token": token, "access_token": token, "expires_in": 600})

server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(port_file + ".tmp", "w") as f:
    f.write(str(server.server_port))
os.rename(port_file + ".tmp", port_file)
server.serve_forever()
"#;

/// A running token server, killed on drop.
struct TokenServer {
    child: Child,
    realm: String,
    dir: TempDir,
}

impl TokenServer {
    /// Fails the test, naming the tool, without python3 or openssl (always `Some`).
    fn start() -> Option<TokenServer> {
        for tool in ["/usr/bin/python3", "/usr/bin/openssl"] {
            assert!(
                Path::new(tool).exists(),
                "{tool} is missing: scripts/test.sh installs it"
            );
        }
        let dir = TempDir::new().expect("token server temp dir");
        common::tool(
            "openssl",
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "key.pem",
                "-out",
                "cert.pem",
                "-days",
                "2",
                "-subj",
                "/CN=seal-test-token-issuer",
            ],
            dir.path(),
        );
        let script = dir.path().join("token_server.py");
        std::fs::write(&script, TOKEN_SERVER).unwrap();
        let p = |rel: &str| dir.path().join(rel);
        let child = Command::new("python3")
            .arg(&script)
            .args([p("key.pem"), p("cert.pem"), p("port"), p("token.log")])
            .args([USER, PASSWORD, IDENTITY_TOKEN, TOKEN_ISSUER])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting the token server");
        let mut server = TokenServer {
            child,
            realm: String::new(),
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        let port = loop {
            if let Ok(port) = std::fs::read_to_string(server.dir.path().join("port")) {
                break port;
            }
            assert!(Instant::now() < deadline, "the token server did not start");
            std::thread::sleep(Duration::from_millis(50));
        };
        server.realm = format!("http://127.0.0.1:{}/token", port.trim());
        Some(server)
    }

    fn cert(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }

    /// The token server's log lines (`TOKEN <account> <scopes>`, `DENIED <user>`).
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("token.log")).unwrap_or_default()
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn bearer_tokens_from_a_token_server() {
    let Some(tokens) = TokenServer::start() else {
        return;
    };
    let Some(registry) = start_registry(Auth::Token {
        realm: tokens.realm.clone(),
        cert: tokens.cert(),
    }) else {
        return;
    };
    let auth = TempDir::new().unwrap();
    let file = auth_path(&auth);
    let host = registry.host.as_str();
    let insecure = format!("--insecure-registry={host}");
    let s = Seal::new();
    let name = format!("{host}/x/y:1");
    build_image(&s, &name);

    // Anonymous: the token server hands out a token without access; seal says to log in.
    let anonymous = seal(&Seal::new(), &file, &["pull", &insecure, &name]);
    assert_eq!(anonymous.code, 1, "{}", anonymous.stderr);
    assert!(
        anonymous.stderr.contains(&format!("seal login {host}")),
        "{}",
        anonymous.stderr
    );
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
    assert!(
        wrong.stderr.contains("wrong user name or password"),
        "{}",
        wrong.stderr
    );
    assert!(!file.exists(), "a failed login saved credentials");
    assert!(tokens.log().contains(&format!("DENIED {USER}")));

    let good = seal(
        &s,
        &file,
        &["login", &insecure, host, "-u", USER, "-p", PASSWORD],
    );
    assert_eq!(good.code, 0, "{}", good.stderr);
    assert!(file.exists());

    let pushed = seal(&s, &file, &["push", &insecure, &name]);
    let digest = ok(&pushed, "push with a token");
    assert!(
        pushed.stderr.contains("3 blobs uploaded"),
        "{}",
        pushed.stderr
    );
    assert!(
        tokens
            .log()
            .contains(&format!("TOKEN {USER} repository:x/y:pull,push")),
        "{}",
        tokens.log()
    );
    let fresh = Seal::new();
    assert_eq!(
        ok(
            &seal(&fresh, &file, &["pull", &insecure, &name]),
            "pull with a token"
        ),
        digest
    );

    // A mount needs a token for two repositories: both scopes are asked for.
    let other = format!("{host}/x/z:1");
    ok(&seal(&s, &file, &["tag", &name, &other]), "tag");
    let mounted = seal(&s, &file, &["push", &insecure, &other]);
    assert_eq!(ok(&mounted, "push with a mount"), digest);
    assert!(mounted.stderr.contains("3 mounted"), "{}", mounted.stderr);
    // Distribution lists the challenge's scopes in Go map order, which varies: one token
    // request must carry both, in either order.
    assert!(
        tokens.log().lines().any(|l| l.starts_with("TOKEN ")
            && l.split(' ').any(|w| w == "repository:x/z:pull,push")
            && l.split(' ').any(|w| w == "repository:x/y:pull")),
        "{}",
        tokens.log()
    );
    assert_eq!(count_requests(&registry, "?mount=sha256:", 201), 3);

    // An identity token from a credential helper is accepted in place of the password.
    let helper = Helper::new();
    helper.put(host, "<token>", IDENTITY_TOKEN);
    let config = DockerConfig::new(&helper);
    config.write(serde_json::json!({ "credHelpers": { host: "sealtest" } }));
    let pulled = config.run(&Seal::new(), &["pull", &insecure, &name]);
    assert_eq!(ok(&pulled, "pull with an identity token"), digest);
    assert!(
        tokens.log().contains("TOKEN <token> repository:x/y:pull"),
        "{}",
        tokens.log()
    );

    ok(&seal(&s, &file, &["logout", host]), "logout");
    let after = seal(&Seal::new(), &file, &["pull", &insecure, &name]);
    assert_eq!(after.code, 1, "{}", after.stderr);
    assert!(after.stderr.contains("seal login"), "{}", after.stderr);
}

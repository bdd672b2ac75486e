//! Private registries as enterprises run them, against the Debian `docker-registry` on
//! 127.0.0.1: TLS with a certificate from the test's own CA (made with `openssl`), trusted
//! through `--registry-ca` or Docker's `/etc/docker/certs.d` (seal runs in a mount namespace
//! whose `/etc` is an overlay, so the host's `/etc` is never touched), a registry that wants a
//! client certificate, and Sealer's `imageListWithAuth.yaml` against htpasswd auth.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::registry::{htpasswd_auth, ok, run_seal, Registry, PASSWORD, USER};

/// base64 of `USER:PASSWORD`, a Docker `auths` entry.
const USER_PASSWORD_BASE64: &str = "c2VhbGVyOnMzY3JldC1wYXNz";
use common::{Ctx, Out, Seal};
use tempfile::TempDir;

/// A CA, a server certificate for 127.0.0.1 and a client certificate, made by `openssl`.
struct Pki {
    dir: TempDir,
}

impl Pki {
    fn new() -> Pki {
        let dir = TempDir::new().unwrap();
        let d = dir.path();
        let sh = |script: &str| {
            let out = Command::new("sh")
                .args(["-euc", script])
                .current_dir(d)
                .stdout(Stdio::null())
                .output()
                .expect("openssl is needed (apt-get install openssl)");
            assert!(
                out.status.success(),
                "openssl failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        sh("openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=seal-test-ca 2>/dev/null");
        std::fs::write(
            d.join("server.ext"),
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        std::fs::write(
            d.join("client.ext"),
            "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n",
        )
        .unwrap();
        for (name, cn) in [("server", "127.0.0.1"), ("client", "seal-test-client")] {
            sh(&format!(
                "openssl req -newkey rsa:2048 -nodes -keyout {name}.key -out {name}.csr -subj /CN={cn} 2>/dev/null && \
                 openssl x509 -req -in {name}.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out {name}.pem -days 2 -extfile {name}.ext 2>/dev/null"
            ));
        }
        Pki { dir }
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A registry serving TLS with the server certificate; `client_certs`: it also wants a
    /// client certificate signed by the CA.
    fn registry(&self, client_certs: bool) -> Registry {
        let mut tls = format!(
            "  tls:\n    certificate: {}\n    key: {}\n",
            self.file("server.pem").display(),
            self.file("server.key").display()
        );
        if client_certs {
            tls.push_str(&format!(
                "    clientcas:\n      - {}\n",
                self.file("ca.pem").display()
            ));
        }
        Registry::start(None, |_| tls).expect("registry")
    }
}

/// `seal <args>` with an empty auth file, in `cwd`.
fn seal_in(seal: &Seal, cwd: &Path, args: &[&str]) -> Out {
    let auth = cwd.join(".auth.json");
    if !auth.exists() {
        std::fs::write(&auth, "{}").unwrap();
    }
    run_seal(seal, Some(cwd), &auth, args, &[])
}

/// `seal <args>` in a private mount namespace whose `/etc` is an overlay holding the files of
/// `etc` (relative path → source file) on top of the host's.
fn seal_with_etc(seal: &Seal, cwd: &Path, etc: &[(String, PathBuf)], args: &[&str]) -> Out {
    let staging = TempDir::new().unwrap();
    for (rel, src) in etc {
        let dest = staging.path().join("etc").join(rel);
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(src, &dest).unwrap();
    }
    let auth = cwd.join(".auth.json");
    std::fs::write(&auth, "{}").unwrap();
    let script = r#"s=$1; shift
mount -t tmpfs tmpfs "$s/mnt"
mkdir "$s/mnt/up" "$s/mnt/work"
cp -a "$s/etc/." "$s/mnt/up/"
mount -t overlay overlay -o "lowerdir=/etc,upperdir=$s/mnt/up,workdir=$s/mnt/work" /etc
exec "$@""#;
    std::fs::create_dir(staging.path().join("mnt")).unwrap();
    let inner = seal.command();
    let mut cmd = Command::new("unshare");
    cmd.args([
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-euc",
        script,
        "sh",
    ])
    .arg(staging.path())
    .arg(inner.get_program())
    .args(inner.get_args())
    .args(args)
    .current_dir(cwd)
    .env("REGISTRY_AUTH_FILE", &auth)
    .env_remove("DOCKER_CONFIG")
    .env_remove("SEAL_INSECURE_REGISTRIES")
    .env_remove("SOURCE_DATE_EPOCH")
    .env_remove("SEAL_ROOT")
    .stdin(Stdio::null());
    Out::from_command(cmd)
}

/// A one-file image built by `seal`, named `name`.
fn small_image(seal: &Seal, name: &str, content: &str) -> Ctx {
    let ctx = Ctx::new();
    ctx.file("app/content.txt", content)
        .kubefile("FROM scratch\nCOPY app app\n")
        .age();
    let out = seal_in(
        seal,
        ctx.path(),
        &["build", "--progress", "plain", "-t", name, "."],
    );
    assert_eq!(out.code, 0, "build failed:\n{}", out.stderr);
    ctx
}

/// The `sealer.image.container.images` annotation of a stored image.
fn collected(seal: &Seal, name: &str) -> String {
    seal.inspect(name)["annotations"]["sealer.image.container.images"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn a_registry_with_its_own_ca_is_trusted_through_registry_ca_and_certs_d() {
    let pki = Pki::new();
    let registry = pki.registry(false);
    let host = &registry.host;
    let name = format!("{host}/team/app:1");
    let a = Seal::new();
    let ctx = small_image(&a, &name, "tls\n");

    // Not trusted: the error names the registry and both ways to trust it.
    let refused = seal_in(&a, ctx.path(), &["push", &name]);
    assert_ne!(refused.code, 0);
    for needle in [
        host.as_str(),
        &format!("/etc/docker/certs.d/{host}/ca.crt"),
        &format!("--registry-ca {host}="),
    ] {
        assert!(
            refused.stderr.contains(needle),
            "`{needle}` missing:\n{}",
            refused.stderr
        );
    }

    // --registry-ca: push, pull into a fresh store, and collect the image in a build.
    let ca = format!("{host}={}", pki.file("ca.pem").display());
    let pushed = seal_in(&a, ctx.path(), &["push", "--registry-ca", &ca, &name]);
    let digest = ok(&pushed, "push");
    let b = Seal::new();
    let pulled = seal_in(&b, ctx.path(), &["pull", "--registry-ca", &ca, &name]);
    assert_eq!(ok(&pulled, "pull"), digest);
    let cluster = Ctx::new();
    cluster
        .file("manifests/app.yaml", format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: app\nspec:\n  containers:\n  - name: app\n    image: {name}\n"))
        .kubefile("FROM scratch\nCOPY manifests manifests\n")
        .age();
    let built = seal_in(
        &b,
        cluster.path(),
        &[
            "build",
            "--progress",
            "plain",
            "--registry-ca",
            &ca,
            "-t",
            "c:1",
            ".",
        ],
    );
    assert_eq!(built.code, 0, "{}", built.stderr);
    assert!(
        collected(&b, "c:1").contains(&name),
        "{}",
        collected(&b, "c:1")
    );

    // /etc/docker/certs.d/<host>/ca.crt, no flag: a fresh store pulls and collects.
    let certs_d = vec![(format!("docker/certs.d/{host}/ca.crt"), pki.file("ca.pem"))];
    let c = Seal::new();
    let pulled = seal_with_etc(&c, ctx.path(), &certs_d, &["pull", &name]);
    assert_eq!(ok(&pulled, "pull through certs.d"), digest);
    let built = seal_with_etc(
        &c,
        cluster.path(),
        &certs_d,
        &["build", "--progress", "plain", "-t", "c:2", "."],
    );
    assert_eq!(built.code, 0, "{}", built.stderr);
    assert!(collected(&c, "c:2").contains(&name));
    // The containers tools' directory works the same way.
    let containers_d = vec![(
        format!("containers/certs.d/{host}/ca.crt"),
        pki.file("ca.pem"),
    )];
    let d = Seal::new();
    let pulled = seal_with_etc(&d, ctx.path(), &containers_d, &["pull", &name]);
    assert_eq!(ok(&pulled, "pull through containers certs.d"), digest);

    // A --registry-ca file that is not PEM is refused before any request.
    let junk = ctx.path().join("junk.pem");
    std::fs::write(&junk, "junk").unwrap();
    let bad = seal_in(
        &d,
        ctx.path(),
        &[
            "pull",
            "--registry-ca",
            &format!("{host}={}", junk.display()),
            &name,
        ],
    );
    assert_ne!(bad.code, 0);
    assert!(bad.stderr.contains("no PEM certificate"), "{}", bad.stderr);
}

#[test]
fn a_registry_that_wants_a_client_certificate_gets_the_one_in_certs_d() {
    let pki = Pki::new();
    let registry = pki.registry(true);
    let host = &registry.host;
    let name = format!("{host}/team/app:1");
    let a = Seal::new();
    let ctx = small_image(&a, &name, "mtls\n");
    let ca_only = vec![(format!("docker/certs.d/{host}/ca.crt"), pki.file("ca.pem"))];
    let mut with_client = ca_only.clone();
    with_client.push((
        format!("docker/certs.d/{host}/client.cert"),
        pki.file("client.pem"),
    ));
    with_client.push((
        format!("docker/certs.d/{host}/client.key"),
        pki.file("client.key"),
    ));

    // Without a client certificate the registry hangs up.
    let refused = seal_with_etc(&a, ctx.path(), &ca_only, &["push", &name]);
    assert_ne!(refused.code, 0, "{}", refused.stderr);
    let pushed = seal_with_etc(&a, ctx.path(), &with_client, &["push", &name]);
    let digest = ok(&pushed, "push with a client certificate");
    let b = Seal::new();
    let pulled = seal_with_etc(&b, ctx.path(), &with_client, &["pull", &name]);
    assert_eq!(ok(&pulled, "pull with a client certificate"), digest);
}

/// Every file under `dir` whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let path = entry.path();
            let kind = entry.file_type().unwrap();
            if kind.is_dir() {
                stack.push(path);
            } else if kind.is_file() {
                let bytes = std::fs::read(&path).unwrap_or_default();
                if bytes.windows(needle.len()).any(|w| w == needle) {
                    found.push(path);
                }
            }
        }
    }
    found
}

#[test]
fn image_list_with_auth_pulls_with_its_credentials_and_keeps_them_nowhere() {
    let registry = Registry::start(None, htpasswd_auth).expect("registry");
    let host = &registry.host;
    let app = format!("{host}/team/app:1");
    // Push with credentials in an auth file (the build below has none).
    let pusher = Seal::new();
    let ctx = small_image(&pusher, &app, "private\n");
    let auth = ctx.path().join("pusher-auth.json");
    std::fs::write(
        &auth,
        format!(r#"{{"auths":{{"{host}":{{"auth":"{USER_PASSWORD_BASE64}"}}}}}}"#),
    )
    .unwrap();
    let insecure = format!("--insecure-registry={host}");
    ok(
        &run_seal(
            &pusher,
            Some(ctx.path()),
            &auth,
            &["push", &insecure, &app],
            &[],
        ),
        "push",
    );

    let seal = Seal::new();
    let cluster = Ctx::new();
    cluster
        .file("app/readme", "cluster\n")
        .file(
            "imageListWithAuth.yaml",
            format!("- registry: {host}\n  username: {USER}\n  password: {PASSWORD}\n  images:\n    - team/app:1\n"),
        )
        .kubefile("FROM scratch\nCOPY app app\n")
        .age();
    let built = seal_in(
        &seal,
        cluster.path(),
        &["build", "--progress", "plain", &insecure, "-t", "c:1", "."],
    );
    assert_eq!(built.code, 0, "{}", built.stderr);
    assert!(
        collected(&seal, "c:1").contains(&app),
        "{}",
        collected(&seal, "c:1")
    );
    // The password is in no output, no store file and no saved image.
    assert!(!built.stdout.contains(PASSWORD) && !built.stderr.contains(PASSWORD));
    let saved = cluster.path().join("saved.tar");
    seal.save("c:1", &saved);
    assert_eq!(
        files_containing(seal.root(), PASSWORD.as_bytes()),
        Vec::<PathBuf>::new()
    );
    let tar = std::fs::read(&saved).unwrap();
    assert!(!tar
        .windows(PASSWORD.len())
        .any(|w| w == PASSWORD.as_bytes()));

    // Without the file the image cannot be pulled: the credentials came from it.
    let other = Seal::new();
    let bare = Ctx::new();
    bare.file("app/readme", "cluster\n")
        .file("list", format!("{app}\n"))
        .kubefile("FROM scratch\nCOPY app app\n")
        .age();
    let denied = seal_in(
        &other,
        bare.path(),
        &[
            "build",
            "--progress",
            "plain",
            &insecure,
            "--image-list",
            "list",
            "-t",
            "c:1",
            ".",
        ],
    );
    assert_ne!(denied.code, 0, "{}", denied.stderr);

    // A wrong password fails the build, naming the registry, and is not printed.
    let wrong = Ctx::new();
    wrong
        .file("app/readme", "cluster\n")
        .file(
            "auth.yaml",
            format!("- registry: {host}\n  username: {USER}\n  password: not-{PASSWORD}-x\n  images: [team/app:1]\n"),
        )
        .kubefile("FROM scratch\nCOPY app app\n")
        .age();
    let failed = seal_in(
        &other,
        wrong.path(),
        &[
            "build",
            "--progress",
            "plain",
            &insecure,
            "--image-list-with-auth",
            "auth.yaml",
            "-t",
            "c:2",
            ".",
        ],
    );
    assert_ne!(failed.code, 0);
    assert!(failed.stderr.contains(host.as_str()), "{}", failed.stderr);
    assert!(
        failed.stderr.contains("imageListWithAuth"),
        "{}",
        failed.stderr
    );
    assert!(!failed.stderr.contains(&format!("not-{PASSWORD}-x")));

    // A missing password is an error at its file and line, before anything runs.
    std::fs::write(
        wrong.path().join("auth.yaml"),
        format!("- registry: {host}\n  username: {USER}\n  password: x\n  images: [a]\n- registry: {host}\n  username: {USER}\n  images: [b]\n"),
    )
    .unwrap();
    let invalid = seal_in(
        &other,
        wrong.path(),
        &[
            "build",
            "--progress",
            "plain",
            "--image-list-with-auth",
            "auth.yaml",
            "-t",
            "c:3",
            ".",
        ],
    );
    assert_ne!(invalid.code, 0);
    assert!(
        invalid.stderr.contains("auth.yaml:5:"),
        "{}",
        invalid.stderr
    );
    // And a collection flag with --build-mode lite is refused rather than ignored.
    let lite = seal_in(
        &other,
        wrong.path(),
        &[
            "build",
            "--build-mode",
            "lite",
            "--image-list-with-auth",
            "auth.yaml",
            "-t",
            "c:4",
            ".",
        ],
    );
    assert_eq!(lite.code, 2, "{}", lite.stderr);
    assert!(lite.stderr.contains("--build-mode lite"), "{}", lite.stderr);
}

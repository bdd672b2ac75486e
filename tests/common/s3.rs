//! A real S3 and EC2 API for the tests: `moto_server` (pip's `moto[server]`, installed by
//! scripts/install-system-packages.sh) on a free 127.0.0.1 port, its request log captured,
//! killed on drop.

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// A running moto S3 server.
pub struct Moto {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    dir: TempDir,
}

impl Moto {
    /// Start one. A missing `moto_server` fails the test, naming the install step.
    pub fn start() -> Moto {
        let dir = TempDir::new().expect("moto temp dir");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let log = std::fs::File::create(dir.path().join("access.log")).expect("moto log");
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("moto_server is installed (scripts/install-system-packages.sh: pip install 'moto[server]')");
        let moto = Moto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto_server did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        moto
    }

    /// Create a bucket (moto does not check signatures, so a plain PUT does).
    pub fn create_bucket(&self, name: &str) {
        let status = Command::new("curl")
            .args(["-sf", "-X", "PUT", &format!("{}/{name}", self.endpoint)])
            .stdout(Stdio::null())
            .status()
            .expect("running curl");
        assert!(status.success(), "creating bucket {name} failed");
    }

    /// One EC2 Query API call (`Action=...`, moto does not check signatures); the answer's
    /// XML text.
    pub fn ec2(&self, action: &str, params: &[(&str, &str)]) -> String {
        ec2_call(&self.endpoint, action, params)
    }

    /// The request log's lines so far (`"GET /bucket/key HTTP/1.1" 200 -`).
    pub fn access_log(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("access.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// The environment a client needs: any credentials, a region.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ACCESS_KEY_ID", "seal-test"),
            ("AWS_SECRET_ACCESS_KEY", "seal-test-secret"),
            ("AWS_REGION", "us-east-1"),
            // The AWS SDK's chains never ask 169.254.169.254 in a test.
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One EC2 Query API call to moto at `endpoint` (moto does not check the signature, but
/// routes by the service the Authorization header's scope names).
pub fn ec2_call(endpoint: &str, action: &str, params: &[(&str, &str)]) -> String {
    ec2_call_in(endpoint, "us-east-1", action, params)
}

/// [`ec2_call`] in `region` (moto keeps one EC2 per region, the one the scope names).
pub fn ec2_call_in(endpoint: &str, region: &str, action: &str, params: &[(&str, &str)]) -> String {
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-X", "POST", &format!("{endpoint}/")])
        .args([
            "-H",
            &format!(
                "Authorization: AWS4-HMAC-SHA256 Credential=seal-test/20260101/{region}/ec2/aws4_request, \
                 SignedHeaders=host, Signature=0"
            ),
        ])
        .args(["--data-urlencode", &format!("Action={action}")])
        .args(["--data-urlencode", "Version=2016-11-15"]);
    for (k, v) in params {
        cmd.args(["--data-urlencode", &format!("{k}={v}")]);
    }
    let out = cmd.output().expect("running curl");
    assert!(out.status.success(), "EC2 {action} failed");
    String::from_utf8(out.stdout).expect("UTF-8 answer")
}

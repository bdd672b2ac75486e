//! One connection to a remote executor: the channel, the options every call carries (instance
//! name, headers, timeout), and the counters of what moved.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tonic::metadata::{AsciiMetadataKey, AsciiMetadataValue, MetadataMap};
use tonic::transport::{Channel, ClientTlsConfig};

use crate::{Endpoint, RemoteError};

/// How to reach and use a remote executor (`--remote-*` flags).
#[derive(Debug, Clone)]
pub struct RemoteOptions {
    pub endpoint: Endpoint,
    /// `--remote-instance-name`: the server's instance (empty: its default one).
    pub instance_name: String,
    /// `--remote-header KEY=VALUE`: sent with every call (auth tokens).
    pub headers: Vec<(String, String)>,
    /// `--remote-timeout`: how long one call may take, an action's execution included.
    pub timeout: Duration,
    /// `--remote-platform KEY=VALUE`: platform properties of every action.
    pub platform: Vec<(String, String)>,
    /// `--remote-jobs`: how many transfers and actions may be in flight at once.
    pub jobs: usize,
}

impl RemoteOptions {
    /// Defaults for everything but the endpoint: the default instance, no headers, a one-hour
    /// timeout, no platform properties, 16 jobs.
    pub fn new(endpoint: Endpoint) -> RemoteOptions {
        RemoteOptions {
            endpoint,
            instance_name: String::new(),
            headers: Vec::new(),
            timeout: Duration::from_secs(3600),
            platform: Vec::new(),
            jobs: 16,
        }
    }
}

/// What a build moved to and from the remote executor; shared by every step.
#[derive(Debug, Default)]
pub struct Counters {
    /// Bytes of blobs uploaded (input files, directories, commands, actions).
    pub uploaded_bytes: AtomicU64,
    pub uploaded_blobs: AtomicU64,
    /// Bytes of blobs downloaded (output files and trees, logs).
    pub downloaded_bytes: AtomicU64,
    /// Actions the server ran.
    pub executed_actions: AtomicU64,
    /// Actions the server answered from its action cache.
    pub cached_actions: AtomicU64,
}

impl Counters {
    pub(crate) fn uploaded(&self, bytes: u64) {
        self.uploaded_bytes.fetch_add(bytes, Ordering::Relaxed);
        self.uploaded_blobs.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn downloaded(&self, bytes: u64) {
        self.downloaded_bytes.fetch_add(bytes, Ordering::Relaxed);
    }
}

/// A connected remote executor.
pub struct Remote {
    pub(crate) channel: Channel,
    pub(crate) options: RemoteOptions,
    metadata: MetadataMap,
    /// What this connection moved.
    pub counters: Counters,
}

impl Remote {
    /// Connect to `options.endpoint`; an unreachable server is an error naming its address.
    pub async fn connect(options: RemoteOptions) -> Result<Remote, RemoteError> {
        let metadata = metadata(&options.headers)?;
        let address = options.endpoint.address().to_string();
        let unreachable = |reason: String| RemoteError::Unreachable {
            address: address.clone(),
            reason,
        };
        let mut endpoint = Channel::from_shared(options.endpoint.uri().to_string())
            .map_err(|e| unreachable(e.to_string()))?
            .connect_timeout(Duration::from_secs(10))
            .tcp_nodelay(true);
        if options.endpoint.tls() {
            endpoint = endpoint
                .tls_config(ClientTlsConfig::new().with_native_roots())
                .map_err(|e| unreachable(error_chain(&e)))?;
        }
        let channel = endpoint
            .connect()
            .await
            .map_err(|e| unreachable(error_chain(&e)))?;
        Ok(Remote {
            channel,
            options,
            metadata,
            counters: Counters::default(),
        })
    }

    /// The options this connection was made with.
    pub fn options(&self) -> &RemoteOptions {
        &self.options
    }

    /// The address, for messages.
    pub fn address(&self) -> &str {
        self.options.endpoint.address()
    }

    /// A request carrying the headers and the timeout.
    pub(crate) fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        for entry in self.metadata.iter() {
            if let tonic::metadata::KeyAndValueRef::Ascii(key, value) = entry {
                request.metadata_mut().insert(key.clone(), value.clone());
            }
        }
        request.set_timeout(self.options.timeout);
        request
    }

    /// A gRPC status as an error of `call`.
    pub(crate) fn rpc_error(&self, call: &'static str, status: tonic::Status) -> RemoteError {
        // A status with a source was made on this side from a transport failure (a refused
        // or dropped connection, an h2 stream reset), whatever code tonic gave it: the server
        // went away, which is UNAVAILABLE and worth retrying. A server's own status has none.
        let mut message = status.message().to_string();
        let mut code = status.code();
        if code == tonic::Code::DeadlineExceeded {
            message = format!(
                "{message} (--remote-timeout is {}s)",
                self.options.timeout.as_secs()
            );
        }
        if let Some(source) = std::error::Error::source(&status) {
            code = tonic::Code::Unavailable;
            let chain = error_chain(source);
            if !message.contains(&chain) {
                message = format!("{message} ({chain})");
            }
        }
        RemoteError::Rpc {
            address: self.address().to_string(),
            call,
            code,
            message,
        }
    }
}

/// The `--remote-header` pairs as gRPC metadata (lowercase ASCII names).
fn metadata(headers: &[(String, String)]) -> Result<MetadataMap, RemoteError> {
    let mut map = MetadataMap::new();
    for (name, value) in headers {
        let bad = |reason: &str| RemoteError::BadHeader {
            name: name.clone(),
            reason: reason.to_string(),
        };
        if name.ends_with("-bin") {
            return Err(bad("binary (-bin) headers are not supported"));
        }
        let key = AsciiMetadataKey::from_bytes(name.to_ascii_lowercase().as_bytes())
            .map_err(|_| bad("not a valid header name"))?;
        let value = AsciiMetadataValue::try_from(value.as_str())
            .map_err(|_| bad("the value must be printable ASCII"))?;
        map.append(key, value);
    }
    Ok(map)
}

/// An error and its causes on one line.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text = format!("{text}: {cause_text}");
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_become_lowercase_metadata_and_bad_ones_are_named() {
        let map = metadata(&[("Authorization".into(), "Bearer abc".into())]).unwrap();
        assert_eq!(map.get("authorization").unwrap(), "Bearer abc");
        let e = metadata(&[("bad header".into(), "x".into())]).unwrap_err();
        assert!(e.to_string().contains("bad header"), "{e}");
        let e = metadata(&[("x".into(), "line\nbreak".into())]).unwrap_err();
        assert!(e.to_string().contains("printable ASCII"), "{e}");
    }

    /// A client that never connects (its calls are not made).
    fn offline(headers: &[(&str, &str)]) -> Remote {
        let endpoint = Endpoint::parse("grpc://127.0.0.1:1").unwrap();
        let mut options = RemoteOptions::new(endpoint);
        options.headers = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        options.timeout = Duration::from_secs(90);
        Remote {
            channel: Channel::from_static("http://127.0.0.1:1").connect_lazy(),
            metadata: metadata(&options.headers).unwrap(),
            options,
            counters: Counters::default(),
        }
    }

    #[tokio::test]
    async fn every_request_carries_the_headers_and_the_timeout() {
        let remote = offline(&[("Authorization", "Bearer t"), ("x-tenant", "a")]);
        let request = remote.request(());
        assert_eq!(request.metadata().get("authorization").unwrap(), "Bearer t");
        assert_eq!(request.metadata().get("x-tenant").unwrap(), "a");
        assert_eq!(request.metadata().get("grpc-timeout").unwrap(), "90000000u");
        let late = remote.rpc_error("Execute", tonic::Status::deadline_exceeded("late"));
        assert!(
            late.to_string().contains("--remote-timeout is 90s"),
            "{late}"
        );
    }

    #[tokio::test]
    async fn a_dropped_connection_is_transient_and_a_servers_own_status_is_not() {
        let remote = offline(&[]);
        let broken = std::io::Error::new(std::io::ErrorKind::BrokenPipe, "stream closed");
        let dropped = tonic::Status::from_error(Box::new(broken));
        assert!(remote.rpc_error("Execute", dropped).is_transient());
        let refused = tonic::Status::invalid_argument("bad digest");
        assert!(!remote.rpc_error("Execute", refused).is_transient());
    }

    #[tokio::test]
    async fn an_unreachable_server_is_named() {
        // A port nothing listens on: bind one, then drop it.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let endpoint = Endpoint::parse(&format!("grpc://127.0.0.1:{port}")).unwrap();
        let Err(e) = Remote::connect(RemoteOptions::new(endpoint)).await else {
            panic!("connected to a closed port");
        };
        let text = e.to_string();
        assert!(
            text.contains(&format!(
                "cannot reach the remote executor at grpc://127.0.0.1:{port}"
            )),
            "{text}"
        );
    }
}

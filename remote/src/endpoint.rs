//! `--remote-executor` addresses: `grpc://HOST:PORT` (plain HTTP/2) or `grpcs://HOST:PORT` (TLS
//! with the system's CA store).

use crate::RemoteError;

/// Where the remote executor listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// As the user wrote it, for messages.
    address: String,
    /// The `http://` or `https://` URI tonic connects to.
    uri: String,
    tls: bool,
}

impl Endpoint {
    /// Parse `grpc://HOST:PORT` or `grpcs://HOST:PORT`.
    pub fn parse(value: &str) -> Result<Endpoint, RemoteError> {
        let bad = |reason: &str| RemoteError::BadEndpoint {
            value: value.to_string(),
            reason: reason.to_string(),
        };
        let (tls, rest) = if let Some(rest) = value.strip_prefix("grpc://") {
            (false, rest)
        } else if let Some(rest) = value.strip_prefix("grpcs://") {
            (true, rest)
        } else {
            return Err(bad("it must start with grpc:// or grpcs://"));
        };
        let rest = rest.trim_end_matches('/');
        if rest.is_empty() || rest.contains('/') || rest.contains('@') {
            return Err(bad("expected HOST:PORT after the scheme"));
        }
        let Some((host, port)) = rest.rsplit_once(':') else {
            return Err(bad("the port is missing (HOST:PORT)"));
        };
        if host.is_empty() || port.parse::<u16>().map_or(true, |p| p == 0) {
            return Err(bad("expected HOST:PORT with a port from 1 to 65535"));
        }
        let scheme = if tls { "https" } else { "http" };
        Ok(Endpoint {
            address: value.to_string(),
            uri: format!("{scheme}://{rest}"),
            tls,
        })
    }

    /// The address as given (`grpc://127.0.0.1:8980`).
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The URI for the HTTP/2 connection.
    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// Whether the connection uses TLS.
    pub fn tls(&self) -> bool {
        self.tls
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_and_grpcs_addresses_parse() {
        let plain = Endpoint::parse("grpc://127.0.0.1:8980").unwrap();
        assert_eq!(plain.uri(), "http://127.0.0.1:8980");
        assert!(!plain.tls());
        let tls = Endpoint::parse("grpcs://remote.example:443/").unwrap();
        assert_eq!(tls.uri(), "https://remote.example:443");
        assert!(tls.tls());
    }

    #[test]
    fn other_addresses_are_refused_with_the_reason() {
        for (value, reason) in [
            ("http://host:1", "grpc:// or grpcs://"),
            ("grpc://host", "port is missing"),
            ("grpc://host:0", "1 to 65535"),
            ("grpc://host:x", "1 to 65535"),
            ("grpc://:80", "1 to 65535"),
            ("grpc://host:80/path", "HOST:PORT"),
        ] {
            let e = Endpoint::parse(value).unwrap_err().to_string();
            assert!(e.contains(value) && e.contains(reason), "{value}: {e}");
        }
    }
}

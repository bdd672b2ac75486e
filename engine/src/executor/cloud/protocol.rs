//! The messages between seal and `seal __seal-cloud-serve` on a cloud host, over the SSH
//! session's stdin and stdout: each is a big-endian `u32` length and that many bytes of JSON;
//! a [`Request::Blob`] and a [`Reply::Layer`] are followed by exactly the blob's bytes.

use std::io::{self, Read, Write};

use seal_store::Digest;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::layer::Layer;
use crate::llb::ExecOp;

/// No message of this protocol is near this size; a larger length is a broken stream.
const MAX_MESSAGE: u32 = 64 << 20;

/// What seal asks of the cloud host.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Request {
    /// Which of these blobs the host's store lacks.
    Missing { digests: Vec<Digest> },
    /// A blob for the host's store; `size` bytes follow.
    Blob { digest: Digest, size: u64 },
    /// Run `op` on the rootfs `layers` (bottom to top; the host has every blob).
    Run { op: ExecOp, layers: Vec<Layer> },
}

/// What the cloud host answers.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Reply {
    Missing {
        digests: Vec<Digest>,
    },
    /// The blob was verified and stored.
    Stored {
        digest: Digest,
    },
    /// A line of the running step's output.
    Log {
        line: String,
    },
    Warning {
        message: String,
    },
    /// The step's layer; `layer.size` bytes of its blob follow.
    Layer {
        layer: Layer,
    },
    /// The request failed; `exit` is set when the command itself failed.
    Failed {
        message: String,
        exit: Option<CommandExit>,
    },
}

/// A RUN command that exited non-zero, as `EngineError::RunFailed` holds it.
#[derive(Debug, Serialize, Deserialize)]
pub struct CommandExit {
    pub code: i32,
    pub tail: String,
    pub hint: Option<String>,
}

/// Write one message and flush.
pub fn write_message<W: Write, T: Serialize>(out: &mut W, message: &T) -> io::Result<()> {
    let json = serde_json::to_vec(message).map_err(io::Error::other)?;
    let len = u32::try_from(json.len())
        .ok()
        .filter(|l| *l <= MAX_MESSAGE)
        .ok_or_else(|| io::Error::other("message too large"))?;
    out.write_all(&len.to_be_bytes())?;
    out.write_all(&json)?;
    out.flush()
}

/// Read one message; `None` at a clean end of the stream (before a message starts).
pub fn read_message<R: Read, T: DeserializeOwned>(input: &mut R) -> io::Result<Option<T>> {
    let mut len = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match input.read(&mut len[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let len = u32::from_be_bytes(len);
    if len > MAX_MESSAGE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("a message of {len} bytes: not the seal cloud protocol"),
        ));
    }
    let mut json = vec![0u8; len as usize];
    input.read_exact(&mut json)?;
    serde_json::from_slice(&json)
        .map(Some)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Copy exactly `size` bytes from `input` to `out`; a short stream is an error.
pub fn copy_exact<R: Read, W: Write>(input: &mut R, out: &mut W, size: u64) -> io::Result<()> {
    let copied = io::copy(&mut input.take(size), out)?;
    if copied != size {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("the stream ended after {copied} of {size} bytes"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_end_cleanly() {
        let mut buf = Vec::new();
        let digest = Digest::from_sha256([7; 32]);
        write_message(
            &mut buf,
            &Request::Blob {
                digest: digest.clone(),
                size: 3,
            },
        )
        .unwrap();
        buf.extend_from_slice(b"abc");
        let mut input = &buf[..];
        let Some(Request::Blob { digest: d, size }) = read_message(&mut input).unwrap() else {
            panic!("not a blob request");
        };
        assert_eq!((d, size), (digest, 3));
        let mut bytes = Vec::new();
        copy_exact(&mut input, &mut bytes, size).unwrap();
        assert_eq!(bytes, b"abc");
        assert!(read_message::<_, Request>(&mut input).unwrap().is_none());
    }

    #[test]
    fn truncated_streams_and_huge_lengths_are_errors() {
        let mut buf = Vec::new();
        write_message(&mut buf, &Reply::Log { line: "x".into() }).unwrap();
        let mut short = &buf[..buf.len() - 1];
        assert!(read_message::<_, Reply>(&mut short).is_err());
        let mut huge = &[0xff, 0xff, 0xff, 0xff][..];
        assert!(read_message::<_, Reply>(&mut huge).is_err());
        let mut out = Vec::new();
        assert!(copy_exact(&mut &b"ab"[..], &mut out, 3).is_err());
    }
}

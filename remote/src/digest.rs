//! REAPI digests: SHA-256 of a blob and its size, the only digest function seal uses.

use sha2::{Digest as _, Sha256};

use crate::proto::Digest;

/// The digest of `bytes`.
pub fn of_bytes(bytes: &[u8]) -> Digest {
    Digest {
        hash: hex::encode(Sha256::digest(bytes)),
        size_bytes: bytes.len() as i64,
    }
}

/// The digest of a protobuf message's encoding (what the CAS stores for it).
pub fn of_message(message: &impl prost::Message) -> (Digest, Vec<u8>) {
    let bytes = message.encode_to_vec();
    (of_bytes(&bytes), bytes)
}

/// `HASH/SIZE`, as REAPI resource names and messages spell a digest.
pub fn display(digest: &Digest) -> String {
    format!("{}/{}", digest.hash, digest.size_bytes)
}

/// A streaming SHA-256 that yields a [`Digest`].
#[derive(Default)]
pub struct Hasher {
    sha: Sha256,
    size: u64,
}

impl Hasher {
    /// Add bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        self.sha.update(bytes);
        self.size += bytes.len() as u64;
    }

    /// The digest of everything added.
    pub fn finish(self) -> Digest {
        Digest {
            hash: hex::encode(self.sha.finalize()),
            size_bytes: self.size as i64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_empty_blob_has_the_well_known_digest() {
        let d = of_bytes(b"");
        assert_eq!(
            display(&d),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855/0"
        );
        let mut h = Hasher::default();
        h.update(b"ab");
        h.update(b"c");
        assert_eq!(h.finish(), of_bytes(b"abc"));
    }
}

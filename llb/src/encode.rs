//! The one canonical encoding of cache-key material.
//!
//! Tagged, length-prefixed fields fed straight into blake3: never JSON, never a `HashMap`
//! iteration (STYLE.md). Changing what an op encodes changes every digest, so the domain string
//! carries a version.

use crate::OpDigest;

/// Feeds typed fields into a blake3 hasher.
pub struct Encoder {
    hasher: blake3::Hasher,
}

impl Encoder {
    /// A new encoder for the domain `domain` (e.g. `seal.llb.v1`).
    pub fn new(domain: &str) -> Encoder {
        let mut e = Encoder {
            hasher: blake3::Hasher::new(),
        };
        e.str(domain);
        e
    }

    /// A one-byte tag naming what follows.
    pub fn tag(&mut self, tag: u8) -> &mut Self {
        self.hasher.update(&[tag]);
        self
    }

    /// A length-prefixed byte string.
    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.u64(b.len() as u64);
        self.hasher.update(b);
        self
    }

    /// A length-prefixed UTF-8 string.
    pub fn str(&mut self, s: &str) -> &mut Self {
        self.bytes(s.as_bytes())
    }

    /// A little-endian integer.
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.hasher.update(&v.to_le_bytes());
        self
    }

    /// A little-endian signed integer.
    pub fn i64(&mut self, v: i64) -> &mut Self {
        self.hasher.update(&v.to_le_bytes());
        self
    }

    /// An optional value: a presence byte, then the value.
    pub fn opt<T>(&mut self, v: Option<T>, f: impl FnOnce(&mut Self, T)) -> &mut Self {
        match v {
            None => {
                self.tag(0);
            }
            Some(v) => {
                self.tag(1);
                f(self, v);
            }
        }
        self
    }

    /// A length-prefixed list of strings.
    pub fn strs<S: AsRef<str>>(&mut self, items: &[S]) -> &mut Self {
        self.u64(items.len() as u64);
        for s in items {
            self.str(s.as_ref());
        }
        self
    }

    /// The digest of everything fed so far.
    pub fn finish(&self) -> OpDigest {
        self.hasher.finalize().into()
    }
}

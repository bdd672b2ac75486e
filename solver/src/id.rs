//! 32-byte identifiers: definition digests, content ids and cache keys.

use std::fmt;

/// A 32-byte blake3 digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Id(pub [u8; 32]);

impl Id {
    /// The digest as lowercase hex.
    pub fn to_hex(&self) -> String {
        let mut s = String::with_capacity(64);
        for b in self.0 {
            s.push_str(&format!("{b:02x}"));
        }
        s
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl From<blake3::Hash> for Id {
    fn from(h: blake3::Hash) -> Id {
        Id(*h.as_bytes())
    }
}

impl From<[u8; 32]> for Id {
    fn from(b: [u8; 32]) -> Id {
        Id(b)
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Id({})", &self.to_hex()[..12])
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// The cache key of a vertex: its definition digest plus its inputs' content ids.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CacheKey(pub Id);

impl CacheKey {
    /// `blake3("seal.cache.v1" || definition || len(inputs) || content_id(input)...)`.
    pub fn compute(definition: &Id, inputs: &[Id]) -> CacheKey {
        let mut h = blake3::Hasher::new();
        h.update(b"seal.cache.v1");
        h.update(definition.as_bytes());
        h.update(&(inputs.len() as u64).to_le_bytes());
        for input in inputs {
            h.update(input.as_bytes());
        }
        CacheKey(h.finalize().into())
    }
}

impl fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CacheKey({})", &self.0.to_hex()[..12])
    }
}

impl fmt::Display for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_depends_on_input_order_and_count() {
        let d = Id([1; 32]);
        let (a, b) = (Id([2; 32]), Id([3; 32]));
        assert_ne!(
            CacheKey::compute(&d, &[a, b]),
            CacheKey::compute(&d, &[b, a])
        );
        assert_ne!(CacheKey::compute(&d, &[a]), CacheKey::compute(&d, &[a, a]));
        assert_eq!(
            CacheKey::compute(&d, &[a, b]),
            CacheKey::compute(&d, &[a, b])
        );
    }
}

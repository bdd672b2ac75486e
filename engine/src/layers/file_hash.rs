//! blake3 of a file's bytes: the content id of every file a layer or the build context holds.

use std::fs;
use std::path::Path;

use crate::EngineError;

/// Files at least this big are hashed chunk by chunk on all cores.
const BIG_FILE: u64 = 4 << 20;
/// The chunk size for big files.
const CHUNK: usize = 8 << 20;

/// blake3 of a file's bytes. Big files are read in chunks hashed on all cores; never mapped,
/// so the pages do not count against the process's memory.
pub fn hash_file(path: &Path, size: u64) -> Result<[u8; 32], EngineError> {
    let mut hasher = blake3::Hasher::new();
    let mut file = fs::File::open(path).map_err(|e| EngineError::io("reading", path, e))?;
    if size >= BIG_FILE {
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n =
                read_full(&mut file, &mut buf).map_err(|e| EngineError::io("reading", path, e))?;
            if n == 0 {
                break;
            }
            hasher.update_rayon(&buf[..n]);
        }
    } else {
        hasher
            .update_reader(&mut file)
            .map_err(|e| EngineError::io("reading", path, e))?;
    }
    Ok(*hasher.finalize().as_bytes())
}

/// Read until `buf` is full or the file ends.
fn read_full(file: &mut fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    use std::io::Read;
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

//! Where the store lives: `--root`, then `SEAL_ROOT`, then the user's data directory.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

/// The store directory for this invocation.
pub fn store_root(flag: Option<PathBuf>) -> PathBuf {
    if let Some(root) = flag {
        return root;
    }
    if let Some(root) = std::env::var_os("SEAL_ROOT").filter(|v| !v.is_empty()) {
        return PathBuf::from(root);
    }
    let is_root = std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false);
    if is_root {
        return PathBuf::from("/var/lib/seal");
    }
    if let Some(data) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(data).join("seal");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".local/share/seal")
}

//! One file per subcommand, plus what they share.

pub mod build;
pub mod du;
pub mod fsck;
pub mod images;
pub mod inspect;
pub mod load;
pub mod prune;
pub mod registry;
pub mod rmi;
pub mod save;
pub mod scan;

use std::path::Path;

use anyhow::Context;
use seal_store::{Reference, Store};

use crate::failure::Failure;

/// Open the store, telling the user when another process holds it.
pub fn open_store(root: &Path) -> anyhow::Result<Store> {
    Store::open(root, &mut || {
        eprintln!(
            "waiting for another seal process to release the store at {} ...",
            root.display()
        )
    })
    .with_context(|| format!("opening the store at {}", root.display()))
}

/// Open an existing store read-only, without waiting for a build that holds it (read-only
/// commands must neither create the store nor queue behind a build).
pub fn open_existing_store(root: &Path) -> Result<Store, Failure> {
    if !root.join("db").exists() {
        return Err(Failure::Error(anyhow::anyhow!(
            "no store at {} (build an image first, or pass --root)",
            root.display()
        )));
    }
    Ok(Store::open_read_only(root)
        .with_context(|| format!("opening the store at {}", root.display()))?)
}

/// Parse an image name given on the command line (a usage error when invalid).
pub fn image_name(name: &str) -> Result<Reference, Failure> {
    Reference::parse_cluster_image(name).map_err(|e| Failure::Usage(e.to_string()))
}

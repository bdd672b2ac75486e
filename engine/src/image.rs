//! The image around the layers: the OCI config and manifest with Sealer's metadata
//! (`export`), and the apps it declares (`apps`).

pub mod apps;
pub mod export;

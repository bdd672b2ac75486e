//! `seal save`: write an image as an OCI archive.

use std::path::Path;

use anyhow::Context;

use crate::args::SaveArgs;
use crate::commands::{image_name, open_existing_store};
use crate::failure::Failure;

/// Run `seal save`.
pub fn run(root: &Path, args: SaveArgs) -> Result<(), Failure> {
    let name = image_name(&args.name)?;
    let store = open_existing_store(root)?;
    store
        .save_oci_archive(&name, &args.output)
        .with_context(|| format!("saving {name} to {}", args.output.display()))?;
    eprintln!("saved {name} to {}", args.output.display());
    Ok(())
}

//! `seal save`: write an image as an OCI archive, an OCI layout directory or a docker archive.

use std::path::Path;

use anyhow::Context;

use crate::args::{SaveArgs, SaveFormat};
use crate::commands::{image_name, open_existing_store};
use crate::failure::Failure;

/// Run `seal save`.
pub fn run(root: &Path, args: SaveArgs) -> Result<(), Failure> {
    let name = image_name(&args.name)?;
    let store = open_existing_store(root)?;
    let out = &args.output;
    let (result, what) = match args.format {
        SaveFormat::OciArchive => (store.save_oci_archive(&name, out), "an OCI archive"),
        SaveFormat::OciDir => (store.save_oci_dir(&name, out), "an OCI layout"),
        SaveFormat::DockerArchive => (store.save_docker_archive(&name, out), "a docker archive"),
    };
    result.with_context(|| format!("saving {name} to {}", out.display()))?;
    eprintln!("saved {name} to {} as {what}", out.display());
    Ok(())
}

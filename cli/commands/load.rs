//! `seal load`: import images from an OCI archive or layout directory, or a docker archive.
//!
//! Prints one line per image on stdout, `NAME DIGEST` (the manifest digest); warnings and a
//! summary go to stderr.

use std::path::Path;

use anyhow::Context;

use crate::args::LoadArgs;
use crate::commands::{image_name, open_store};
use crate::failure::Failure;
use crate::output::{errln, outln};

/// Run `seal load`.
pub fn run(root: &Path, args: LoadArgs) -> Result<(), Failure> {
    let name = match &args.tag {
        Some(tag) => {
            let name = image_name(tag)?;
            if name.digest.is_some() {
                return Err(Failure::Usage(format!(
                    "-t {tag}: a name to give cannot carry a digest"
                )));
            }
            Some(name)
        }
        None => None,
    };
    let input = &args.input;
    if input != Path::new("-") && !input.exists() {
        return Err(Failure::Error(anyhow::anyhow!(
            "{} does not exist",
            input.display()
        )));
    }
    let store = open_store(root)?;
    let report = store
        .load(input, name.as_ref())
        .with_context(|| format!("loading {}", input.display()))?;
    for warning in &report.warnings {
        errln!("warning: {warning}");
    }
    for image in &report.images {
        outln!("{} {}", image.name, image.manifest)?;
    }
    errln!(
        "loaded {} image{} from {} ({}: {} blobs, {})",
        report.images.len(),
        if report.images.len() == 1 { "" } else { "s" },
        input.display(),
        report.format,
        report.blobs,
        seal_store::human_size(report.bytes)
    );
    Ok(())
}

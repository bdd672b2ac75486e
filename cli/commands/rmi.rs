//! `seal rmi`: remove image names. Their blobs stay until `seal prune` finds nothing else
//! needs them.

use std::path::Path;

use crate::args::RmiArgs;
use crate::commands::{image_name, open_store};
use crate::failure::Failure;
use crate::output::{errln, outln};

/// Run `seal rmi`: every known name is removed; an unknown one is an error (exit 1) after the
/// others are done, unless `--force`.
pub fn run(root: &Path, args: RmiArgs) -> Result<(), Failure> {
    let names = args
        .names
        .iter()
        .map(|n| image_name(n))
        .collect::<Result<Vec<_>, _>>()?;
    // Without a store every name is unknown; do not create one just to say so.
    let store = if root.join("db").exists() {
        Some(open_store(root)?)
    } else {
        None
    };
    let mut unknown = 0;
    for name in &names {
        let known = match &store {
            Some(store) => store.image(name)?.is_some(),
            None => false,
        };
        if let (true, Some(store)) = (known, &store) {
            store.remove_image(name)?;
            outln!("untagged: {name}")?;
        } else if !args.force {
            errln!("error: no image named {name} in the store");
            unknown += 1;
        }
    }
    if unknown > 0 {
        return Err(Failure::Reported);
    }
    Ok(())
}

//! `seal scan`: the container images a context, rootfs, chart or manifest directory needs.
//!
//! Prints the normalised references (one per line, or JSON with where each was found) on
//! stdout, warnings and errors on stderr. Opens no store and pulls nothing. Exit code 1 when a
//! chart failed to render, a reference is invalid, or a path could not be read; the images
//! that were found are printed all the same.

use seal_engine::collect::{self, ScanOptions};

use crate::args::{ScanArgs, ScanFormat};
use crate::failure::Failure;
use crate::output::{errln, outln};

/// One image in `--format json` output (fields in this order).
#[derive(serde::Serialize)]
struct JsonImage<'a> {
    reference: String,
    file: &'a str,
    document: usize,
    field: &'a str,
}

/// Run `seal scan`.
pub fn run(args: ScanArgs) -> Result<(), Failure> {
    let scan = collect::scan(
        &args.path,
        &ScanOptions {
            values_files: args.values,
            ..ScanOptions::default()
        },
    );
    for w in &scan.warnings {
        match w.line {
            Some(line) => errln!("warning: {}:{line}: {}", w.file, w.message),
            None => errln!("warning: {}: {}", w.file, w.message),
        }
    }
    match args.format {
        ScanFormat::Text => {
            for image in &scan.images {
                outln!("{}", image.reference)?;
            }
        }
        ScanFormat::Json => {
            let items: Vec<JsonImage> = scan
                .images
                .iter()
                .map(|i| JsonImage {
                    reference: i.reference.to_string(),
                    file: &i.file,
                    document: i.document,
                    field: &i.field,
                })
                .collect();
            outln!("{}", serde_json::to_string_pretty(&items)?)?;
        }
    }
    if scan.errors.is_empty() {
        return Ok(());
    }
    for e in &scan.errors {
        errln!("error: {e}");
    }
    Err(Failure::Reported)
}

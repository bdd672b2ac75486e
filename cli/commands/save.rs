//! `seal save`: write an image (a multi-platform one whole, or the platforms of `--platform`)
//! as an OCI archive, an OCI layout directory or a docker archive,
//! to a file or (`-o -`, or no `-o` with stdout redirected, as `docker save`) to stdout.

use std::io::{BufWriter, IsTerminal};
use std::path::Path;

use crate::args::{SaveArgs, SaveFormat};
use crate::commands::{image_name, open_existing_store, store_platforms};
use crate::failure::{chain_text, Failure};
use crate::output::errln;

/// Run `seal save`.
pub fn run(
    root: &Path,
    args: SaveArgs,
    registries: &seal_store::RegistryOptions,
) -> Result<(), Failure> {
    let name = image_name(&args.name)?;
    let to_stdout = match &args.output {
        Some(path) => path == Path::new("-"),
        None if std::io::stdout().is_terminal() => {
            return Err(Failure::Usage(
                "refusing to write an archive to a terminal: give -o FILE, or redirect stdout"
                    .into(),
            ))
        }
        None => true,
    };
    if to_stdout && args.format == SaveFormat::OciDir {
        return Err(Failure::Usage(
            "--format oci-dir writes a directory: give it with -o DIR (stdout takes an archive \
             format)"
                .into(),
        ));
    }
    let platforms = store_platforms(&args.platform)?;
    let store = open_existing_store(root)?;
    // Layers a cache import left remote are downloaded first, verified, so a failed download
    // never leaves half an archive behind.
    store.set_fetcher(std::sync::Arc::new(seal_store::StandardFetcher::new(
        registries.clone(),
    )));
    if let Some(record) = store.image(&name).map_err(anyhow::Error::new)? {
        store
            .ensure_image_local(&record.manifest)
            .map_err(|e| anyhow::anyhow!("saving {name}: {e}"))?;
    }
    let what = match args.format {
        SaveFormat::OciArchive => "an OCI archive",
        SaveFormat::OciDir => "an OCI layout",
        SaveFormat::DockerArchive => "a docker archive",
    };
    let (result, shown) = if to_stdout {
        let shown = Path::new("stdout");
        let mut out = BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
        let result = match args.format {
            SaveFormat::DockerArchive => {
                store.write_docker_archive(&name, &platforms, &mut out, shown)
            }
            _ => store.write_oci_archive(&name, &platforms, &mut out, shown),
        };
        (result, shown.to_path_buf())
    } else {
        let out = args.output.clone().unwrap_or_default();
        let result = match args.format {
            SaveFormat::OciArchive => store.save_oci_archive(&name, &platforms, &out),
            SaveFormat::OciDir => store.save_oci_dir(&name, &platforms, &out),
            SaveFormat::DockerArchive => store.save_docker_archive(&name, &platforms, &out),
        };
        (result, out)
    };
    match result {
        Ok(()) => {
            errln!("saved {name} to {} as {what}", shown.display());
            Ok(())
        }
        Err(e) if to_stdout && e.is_broken_pipe() => Err(Failure::BrokenPipe),
        Err(e) => Err(Failure::Error(anyhow::anyhow!(
            "saving {name} to {}: {}",
            shown.display(),
            chain_text(&anyhow::Error::new(e))
        ))),
    }
}

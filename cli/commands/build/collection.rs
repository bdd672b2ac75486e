//! Image collection as the build's flags ask: `--image-list`, `--ignored-image-list`,
//! `--image-list-with-auth` (and the context's `imageListWithAuth.yaml`), `--chart-values`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use seal_engine::collect::auth_list::{self, AuthSection};
use seal_engine::llb::{ChartValues, CollectOp};
use seal_engine::Platform;
use seal_store::Reference;

use crate::args::BuildArgs;
use crate::failure::Failure;

/// Image collection as the flags ask: `--image-list`, `--ignored-image-list` and
/// `--chart-values` are read (and checked) now, so their content is part of the build graph.
/// The platform is the host's here; each platform of `--platform` sets its own.
pub(super) fn collect_op(args: &BuildArgs) -> Result<CollectOp, Failure> {
    let mut chart_values = Vec::new();
    for item in &args.chart_values {
        let Some((chart, file)) = item
            .split_once('=')
            .filter(|(c, f)| !c.is_empty() && !f.is_empty())
        else {
            return Err(Failure::Usage(format!(
                "--chart-values `{item}`: expected CHART_DIR=FILE, e.g. charts/app=values.yaml"
            )));
        };
        let yaml = std::fs::read_to_string(file)
            .with_context(|| format!("--chart-values: reading {file}"))?;
        seal_engine::collect::helm::parse_values(&yaml, file)
            .map_err(|e| Failure::Error(anyhow::anyhow!("--chart-values: {e}")))?;
        let chart = chart
            .trim_start_matches("./")
            .trim_start_matches('/')
            .trim_end_matches('/')
            .to_string();
        chart_values.push(ChartValues {
            chart,
            file: file.to_string(),
            yaml,
        });
    }
    Ok(CollectOp {
        platform: {
            let p = Platform::host();
            format!("{}/{}", p.os, p.architecture)
        },
        added: read_image_lists(&args.image_list, "--image-list")?,
        ignored: read_image_lists(&args.ignored_image_list, "--ignored-image-list")?,
        chart_values,
    })
}

/// `--build-mode lite` collects nothing: a flag about collection would be ignored.
pub(super) fn refuse_collection_flags(args: &BuildArgs) -> Result<(), Failure> {
    let given = [
        ("--image-list", !args.image_list.is_empty()),
        ("--ignored-image-list", !args.ignored_image_list.is_empty()),
        (
            "--image-list-with-auth",
            !args.image_list_with_auth.is_empty(),
        ),
        ("--chart-values", !args.chart_values.is_empty()),
    ];
    match given.iter().find(|(_, set)| *set) {
        Some((flag, _)) => Err(Failure::Usage(format!(
            "{flag} is about image collection, which --build-mode lite skips: drop one of them"
        ))),
        None => Ok(()),
    }
}

/// `imageListWithAuth.yaml` at the root of the context, when there is one, and the files of
/// `--image-list-with-auth`.
pub(super) fn read_auth_lists(
    context: &Path,
    files: &[PathBuf],
) -> Result<Vec<AuthSection>, Failure> {
    let in_context = context.join(auth_list::FILE_NAME);
    let mut paths: Vec<PathBuf> = Vec::new();
    if in_context.is_file() {
        paths.push(in_context);
    }
    paths.extend(files.iter().cloned());
    let mut sections = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("--image-list-with-auth: reading {}", path.display()))?;
        sections.extend(auth_list::parse(&text, &path).map_err(anyhow::Error::from)?);
    }
    Ok(sections)
}

/// Normalised references of image-list files: one per line, blank and `#` lines ignored.
fn read_image_lists(files: &[PathBuf], flag: &str) -> Result<Vec<String>, Failure> {
    let mut out = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("{flag}: reading {}", file.display()))?;
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let reference = Reference::parse_container_image(line).map_err(|e| {
                Failure::Error(anyhow::anyhow!(
                    "{}:{}: invalid image reference `{line}`: {}\nhelp: write one image per line, e.g. nginx:1.25 or quay.io/org/app@sha256:...",
                    file.display(),
                    i + 1,
                    e.reason
                ))
            })?;
            out.push(reference.to_string());
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

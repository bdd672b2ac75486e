//! Arbitrary bytes as a Kubefile: parse + check, render every diagnostic, and when it parses,
//! lower it with a resolver that refuses every image. Nothing may panic.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use seal_llb::{Compression, ExecMode, LayerFormat};
use seal_llb::Platform;
use seal_frontend::lower::{lower, LowerOptions, ResolvedImage};
use seal_frontend::{diagnostic, parse_checked};

fuzz_target!(|data: &[u8]| {
    let parsed = parse_checked(data);
    // Every span must index the source: rendering slices the text with it.
    for error in &parsed.errors {
        let _ = diagnostic::render(error, "Kubefile", data);
    }
    if !parsed.errors.is_empty() {
        return;
    }
    let mut resolve = |_: &str, _: &Platform| -> Result<ResolvedImage, String> { Err("no store".into()) };
    let options = LowerOptions {
        build_args: BTreeMap::from([("V".into(), "v1.22".into())]),
        ignore_patterns: vec!["*.bak".into()],
        format: LayerFormat {
            compression: Compression::Zstd,
            source_date_epoch: 0,
        },
        platform: Platform {
            os: "linux".into(),
            architecture: "amd64".into(),
            variant: None,
        },
        exec_mode: ExecMode::Lite,
        entitlements: Default::default(),
        target: None,
        resolve_image: &mut resolve,
        collect: None,
    };
    if let Err(errors) = lower(&parsed.kubefile, data, options) {
        for error in &errors {
            let _ = diagnostic::render(error, "Kubefile", data);
        }
    }
});

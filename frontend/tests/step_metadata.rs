//! What lowering tells about each step beyond its op, for `seal build --explain`: the line as
//! written and the ARG/ENV values the step's definition depends on.

use std::collections::BTreeMap;

use seal_frontend::lower::{lower, LowerOptions, ResolvedImage};
use seal_frontend::parse_checked;
use seal_llb::{Compression, ExecMode, LayerFormat, OpMetadata, Platform, SeenVar, VarKind};

/// The metadata of the steps of `source`, in Definition order, with `--build-arg`s `args`.
fn steps(source: &str, args: &[(&str, &str)]) -> Vec<OpMetadata> {
    let parsed = parse_checked(source.as_bytes());
    assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
    let mut resolve =
        |_: &str, _: &Platform| -> Result<ResolvedImage, String> { Err("no store".into()) };
    let lowered = lower(
        &parsed.kubefile,
        source.as_bytes(),
        LowerOptions {
            build_args: args
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
            ignore_patterns: vec![],
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
        },
    )
    .unwrap_or_else(|d| panic!("{d:?}"));
    lowered
        .definition
        .nodes
        .into_iter()
        .map(|n| n.metadata)
        .filter(|m| m.description.is_some())
        .collect()
}

fn var(kind: VarKind, name: &str, value: Option<&str>) -> SeenVar {
    SeenVar {
        kind,
        name: name.into(),
        value: value.map(String::from),
    }
}

#[test]
fn a_copy_depends_on_the_variables_its_words_expand_and_a_run_on_its_environment() {
    let source = "FROM scratch\nARG DIR=conf\nARG UNUSED=1\nENV MODE=fast\n\
                  COPY  $DIR   /etc/${MODE}/$MISSING\nRUN echo hi \\\n  there\n";
    let steps = steps(source, &[("DIR", "etc")]);
    let texts: Vec<Option<&str>> = steps.iter().map(|m| m.text.as_deref()).collect();
    assert_eq!(
        texts,
        [
            Some("FROM scratch"),
            Some("COPY $DIR /etc/${MODE}/$MISSING"),
            Some("RUN echo hi there"),
        ]
    );
    assert!(steps[0].vars.is_empty());
    // The COPY saw DIR (given by --build-arg), MODE and the unset MISSING; not UNUSED.
    assert_eq!(
        steps[1].vars,
        [
            var(VarKind::Arg, "DIR", Some("etc")),
            var(VarKind::Arg, "MISSING", None),
            var(VarKind::Env, "MODE", Some("fast")),
        ]
    );
    // A RUN sees every ARG with a value and every ENV in its environment.
    assert_eq!(
        steps[2].vars,
        [
            var(VarKind::Arg, "DIR", Some("etc")),
            var(VarKind::Env, "MODE", Some("fast")),
            var(VarKind::Arg, "UNUSED", Some("1")),
        ]
    );
}

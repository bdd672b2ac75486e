//! Lowering of the application instructions: APP, CNI, CSI, APPCMDS, APPENV, LAUNCH and
//! KUBEVERSION (KUBEFILE.md "Instructions").
//!
//! An APP (and a CNI or CSI, which is an APP plus a label) is lowered exactly like a COPY whose
//! destination is `application/apps/<name>`: a Local source selecting its `local://` paths and a
//! FileOp that makes its own layer. Its type (helm / kube / shell) depends on the selected files
//! and is detected by the engine at build time (`seal_llb::apps`); lowering only records the
//! app ([`AppSpec`]) with the FileOp's node. APPCMDS and APPENV complete an app declared before
//! them; LAUNCH names declared apps. The ordering rules (LAUNCH last, once, not with CMD) are
//! `check`'s.

use std::collections::BTreeMap;

use seal_llb::app_dir;
use seal_llb::{paths, AppSpec};
use seal_llb::{CopyAction, CopySource, FileAction, FileOp, Op};

use super::{Lowering, Scope};
use crate::ast::{Args, Instruction, Keyword, Span};
use crate::diagnostic::{closest, Diagnostic};
use crate::expand;

/// The source scheme of a file in the build context.
const LOCAL: &str = "local://";

impl Lowering<'_, '_> {
    /// APP, APPCMDS, APPENV, LAUNCH, CNI, CSI, KUBEVERSION.
    pub(super) fn app_instruction(&mut self, ins: &Instruction) -> Result<(), Diagnostic> {
        match ins.keyword {
            Keyword::App => self.app(ins, None),
            Keyword::Cni => self.app(ins, Some("cni")),
            Keyword::Csi => self.app(ins, Some("csi")),
            Keyword::AppCmds => self.app_cmds(ins),
            Keyword::AppEnv => self.app_env(ins),
            Keyword::Launch => self.launch(ins),
            Keyword::KubeVersion => self.kube_version(ins),
            other => Err(Diagnostic::new(
                format!("internal error: {other} is not an app instruction"),
                ins.keyword_span,
            )),
        }
    }

    /// `APP name local://path...`: a COPY to `application/apps/<name>`; CNI/CSI add the label
    /// `cluster.alpha.sealer.io/kube-<cni|csi>-<name>=true`.
    fn app(&mut self, ins: &Instruction, label: Option<&str>) -> Result<(), Diagnostic> {
        let keyword = ins.keyword;
        let words = self.words(ins, &Scope::Stage)?;
        let Some(((name, name_span), sources)) = words.split_first() else {
            return Err(Diagnostic::new(
                format!("{keyword} needs a name and at least one source"),
                ins.keyword_span,
            ));
        };
        check_app_name(name, *name_span)?;
        if self.image.apps.iter().any(|a| a.name == *name) {
            return Err(
                Diagnostic::new(format!("app `{name}` is declared twice"), *name_span)
                    .with_label("already declared by an earlier APP, CNI or CSI")
                    .with_help("give each app its own name, or list all its sources in one APP"),
            );
        }
        if sources.is_empty() {
            return Err(Diagnostic::new(
                format!("{keyword} needs a name and at least one source"),
                ins.args.span(),
            ));
        }
        let mut copy_sources = Vec::new();
        let mut source_spans = Vec::new();
        for (word, span) in sources {
            let path = app_source(keyword, word, *span)?;
            copy_sources.push(CopySource {
                pattern: paths::clean(path),
                contents_only: path.ends_with("/.") || path == ".",
            });
            source_spans.push((span.start, span.end));
        }
        let description = format!(
            "[{}/{}] {keyword} {}",
            self.next_step(),
            self.steps_total,
            self.instruction_text(ins)
        );
        let local = self.local_source(ins, &copy_sources);
        let op = Op::File(FileOp {
            actions: vec![FileAction::Copy(CopyAction {
                sources: copy_sources,
                dest: app_dir(name),
                chmod: None,
                chown: None,
            })],
            format: self.options.format,
        });
        let mut metadata = self.metadata(ins, description);
        metadata.source_spans = source_spans;
        let rootfs = self.rootfs();
        let node = self.builder.add(op, &[local, rootfs], metadata);
        self.push_layer(node);
        self.history(ins, false);
        if let Some(kind) = label {
            self.image.labels.insert(
                format!("cluster.alpha.sealer.io/kube-{kind}-{name}"),
                "true".into(),
            );
        }
        self.image.apps.push(AppSpec {
            name: name.clone(),
            node,
            cmds: Vec::new(),
            env: BTreeMap::new(),
            span: (ins.span.start, ins.span.end),
        });
        Ok(())
    }

    /// `APPCMDS name ["cmd", ...]`: the app's launch commands, replacing the type's defaults
    /// (a later APPCMDS for the same app replaces an earlier one). The commands are kept as
    /// written: they run in a shell at `sealer run`, with the app's APPENV.
    fn app_cmds(&mut self, ins: &Instruction) -> Result<(), Diagnostic> {
        let Args::Json { items, span } = &ins.args else {
            return Err(Diagnostic::new(
                "APPCMDS takes an app name and a JSON array of commands",
                ins.args.span(),
            ));
        };
        let Some((first, commands)) = items.split_first() else {
            return Err(Diagnostic::new("APPCMDS needs an app name", *span));
        };
        let name = self.expand_name(&first.text, first.span)?;
        let app = self.declared_app(&name, first.span, ins.keyword)?;
        self.image.apps[app].cmds = commands.iter().map(|w| w.text.clone()).collect();
        self.history(ins, true);
        Ok(())
    }

    /// `APPENV name k=v ...`: the app's environment (merged over earlier APPENVs of the app).
    fn app_env(&mut self, ins: &Instruction) -> Result<(), Diagnostic> {
        let Some((first, pairs)) = ins.words.split_first() else {
            return Err(Diagnostic::new(
                "APPENV needs an app name and `key=value` pairs",
                ins.args.span(),
            ));
        };
        let name = self.expand_name(&first.text, first.span)?;
        let app = self.declared_app(&name, first.span, ins.keyword)?;
        let mut env = Vec::new();
        {
            let lookup = self.lookup(&Scope::Stage);
            for word in pairs {
                let parsed = expand::parse_key_values(&word.text, self.kubefile.escape, &lookup)
                    .map_err(|e| Diagnostic::new(e.to_string(), word.span))?;
                env.extend(parsed);
            }
        }
        self.image.apps[app].env.extend(env);
        self.history(ins, true);
        Ok(())
    }

    /// `LAUNCH ["app", ...]` (or shell-form names): the apps `sealer run` starts, in order.
    fn launch(&mut self, ins: &Instruction) -> Result<(), Diagnostic> {
        let names = self.words(ins, &Scope::Stage)?;
        let mut launch: Vec<String> = Vec::new();
        for (name, span) in names {
            self.declared_app(&name, span, ins.keyword)?;
            if launch.contains(&name) {
                return Err(
                    Diagnostic::new(format!("app `{name}` is launched twice"), span)
                        .with_label("already in this LAUNCH")
                        .with_help("name each app once"),
                );
            }
            launch.push(name);
        }
        if launch.is_empty() {
            return Err(
                Diagnostic::new("LAUNCH needs at least one app", ins.args.span())
                    .with_help("write `LAUNCH [\"app\", ...]`"),
            );
        }
        self.image.launch_apps = launch;
        self.history(ins, true);
        Ok(())
    }

    /// `KUBEVERSION v`: label `app.alpha.sealer.io/supported-kube-version=v`.
    fn kube_version(&mut self, ins: &Instruction) -> Result<(), Diagnostic> {
        let words = self.words(ins, &Scope::Stage)?;
        let version = match words.as_slice() {
            [(version, _)] if !version.is_empty() => version.clone(),
            [(_, span)] => {
                return Err(Diagnostic::new("KUBEVERSION needs a version", *span)
                    .with_help("write `KUBEVERSION <version>`, e.g. `KUBEVERSION v1.22.15`"))
            }
            [] => {
                return Err(Diagnostic::new(
                    "KUBEVERSION needs a version",
                    ins.keyword_span,
                ))
            }
            [_, (_, extra), ..] => {
                return Err(Diagnostic::new("KUBEVERSION takes one version", *extra)
                    .with_label("unexpected word")
                    .with_help(
                        "write one version or constraint, e.g. `KUBEVERSION v1.22.15` \
                             (quote a constraint with spaces)",
                    ))
            }
        };
        self.image
            .labels
            .insert("app.alpha.sealer.io/supported-kube-version".into(), version);
        self.history(ins, true);
        Ok(())
    }

    fn expand_name(&self, text: &str, span: Span) -> Result<String, Diagnostic> {
        let lookup = self.lookup(&Scope::Stage);
        expand::expand_word(text, self.kubefile.escape, &lookup)
            .map_err(|e| Diagnostic::new(e.to_string(), span))
    }

    /// The index of the app `name` declared by an earlier APP/CNI/CSI.
    fn declared_app(&self, name: &str, span: Span, keyword: Keyword) -> Result<usize, Diagnostic> {
        if let Some(index) = self.image.apps.iter().position(|a| a.name == name) {
            return Ok(index);
        }
        let declared: Vec<&str> = self.image.apps.iter().map(|a| a.name.as_str()).collect();
        let help = if declared.is_empty() {
            format!(
                "no app is declared before this {keyword}; declare it first with `APP {name} local://<path>`"
            )
        } else {
            let listed = declared
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ");
            match closest(name, &declared) {
                Some(guess) => format!("declared apps: {listed} (did you mean `{guess}`?)"),
                None => format!(
                    "declared apps: {listed}; an app must be declared by APP, CNI or CSI before {keyword} names it"
                ),
            }
        };
        Err(Diagnostic::new(format!("unknown app `{name}`"), span)
            .with_label("not declared by an earlier APP, CNI or CSI")
            .with_help(help))
    }
}

/// An app name becomes a directory and a Helm release name: letters, digits, `-`, `_`, `.`,
/// starting with a letter or digit.
fn check_app_name(name: &str, span: Span) -> Result<(), Diagnostic> {
    let valid = name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if valid {
        return Ok(());
    }
    Err(Diagnostic::new(format!("invalid app name `{name}`"), span)
        .with_label("not an app name")
        .with_help(
            "an app name starts with a letter or digit and has only letters, digits, `-`, `_` and `.`",
        ))
}

/// The context path of one APP source word: `local://path` with COPY's safety rules.
fn app_source(keyword: Keyword, word: &str, span: Span) -> Result<&str, Diagnostic> {
    if word.starts_with("https://") || word.starts_with("http://") {
        return Err(
            Diagnostic::new(format!("{keyword} from a URL is not supported yet"), span)
                .with_label("not supported yet")
                .with_help("download the files into the build context and write `local://<path>`"),
        );
    }
    let Some(path) = word.strip_prefix(LOCAL) else {
        return Err(Diagnostic::new(
            format!("{keyword} source `{word}` has no `local://` or `https://` scheme"),
            span,
        )
        .with_label("expected `local://<path>`")
        .with_help(format!(
            "write `local://{word}` for a path in the build context"
        )));
    };
    if path.is_empty() {
        return Err(
            Diagnostic::new(format!("{keyword} source `{word}` has no path"), span)
                .with_help("write `local://<path>`, relative to the build context"),
        );
    }
    if path.starts_with('/') {
        return Err(Diagnostic::new(
            format!("{keyword} source `{path}` is an absolute path"),
            span,
        )
        .with_label("outside the build context")
        .with_help("sources are relative to the build context: write `local://<path>`"));
    }
    if paths::escapes(&paths::clean(path)) {
        return Err(Diagnostic::new(
            format!("{keyword} source `{path}` is outside the build context"),
            span,
        )
        .with_label("leaves the build context")
        .with_help("sources are relative to the build context and may not use `..` to leave it"));
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use seal_llb::Platform;
    use seal_llb::{Compression, ExecMode, FileAction, LayerFormat, Op, SourceOp};

    use crate::lower::{lower, LowerOptions, Lowered, ResolvedImage};
    use crate::{parse_checked, Diagnostic};

    /// Lower `source` (scratch only: FROM an image fails) with `--build-arg V=v1.22` and the
    /// ignore pattern `*.bak`.
    fn lower_diagnostics(source: &str) -> Result<Lowered, Vec<Diagnostic>> {
        let parsed = parse_checked(source.as_bytes());
        if !parsed.errors.is_empty() {
            return Err(parsed.errors);
        }
        let mut resolve =
            |_: &str, _: &Platform| -> Result<ResolvedImage, String> { Err("no store".into()) };
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
        lower(&parsed.kubefile, source.as_bytes(), options)
    }

    /// [`lower_diagnostics`] with each error as `message @ spanned text`.
    fn lower_text(source: &str) -> Result<Lowered, Vec<String>> {
        lower_diagnostics(source).map_err(|diags| {
            diags
                .iter()
                .map(|d| format!("{} @ {}", d.message, &source[d.span.start..d.span.end]))
                .collect()
        })
    }

    #[track_caller]
    fn ok(source: &str) -> Lowered {
        lower_text(source).unwrap_or_else(|e| panic!("{e:?}"))
    }

    #[track_caller]
    fn err(source: &str, expect: &str) {
        let errors = lower_text(source).expect_err("an error");
        assert_eq!(errors, [expect]);
    }

    #[test]
    fn app_is_a_copy_to_its_directory_with_its_own_layer() {
        let lowered = ok("FROM scratch\nARG N=web\nAPP $N local://charts/web local://x.yaml\n");
        let app = &lowered.image.apps[0];
        assert_eq!(app.name, "web");
        let node = &lowered.definition.nodes[app.node];
        assert_eq!(
            node.metadata.description.as_deref(),
            Some("[2/2] APP $N local://charts/web local://x.yaml")
        );
        let Op::File(file) = &node.op else {
            panic!("not a FileOp: {node:?}")
        };
        let [FileAction::Copy(copy)] = file.actions.as_slice() else {
            panic!("{file:?}")
        };
        assert_eq!(copy.dest, "application/apps/web");
        let patterns: Vec<&str> = copy.sources.iter().map(|s| s.pattern.as_str()).collect();
        assert_eq!(patterns, ["charts/web", "x.yaml"]);
        let local = &lowered.definition.nodes[node.inputs[0]];
        assert_eq!(
            local.op,
            Op::Source(SourceOp::Local {
                include: vec!["charts/web".into(), "x.yaml".into()],
                exclude: vec!["*.bak".into()],
            })
        );
        // The merge stacks the app's layer on the base.
        let merge = &lowered.definition.nodes[lowered.definition.output];
        assert!(merge.inputs.contains(&app.node));
        let history = lowered.image.history.last().unwrap();
        assert!(!history.empty_layer);
        assert_eq!(
            history.created_by,
            "APP $N local://charts/web local://x.yaml"
        );
    }

    #[test]
    fn appcmds_appenv_launch() {
        let lowered = ok("FROM scratch\nAPP a local://a\nAPP \"b\" local://b\nAPPCMDS \"a\" [\"helm install a $X\"]\n\
             APPENV a K=1 Q=\"x y\"\nAPPENV a K=2\nLAUNCH [\"b\", \"a\"]\n");
        let a = &lowered.image.apps[0];
        assert_eq!(a.cmds, ["helm install a $X"]);
        assert_eq!(
            a.env,
            BTreeMap::from([("K".into(), "2".into()), ("Q".into(), "x y".into())])
        );
        assert_eq!(lowered.image.apps[1].name, "b");
        assert!(lowered.image.apps[1].cmds.is_empty());
        assert_eq!(lowered.image.launch_apps, ["b", "a"]);
        let shell = ok("FROM scratch\nAPP a local://a\nAPP b local://b\nLAUNCH b a\n");
        assert_eq!(shell.image.launch_apps, ["b", "a"]);
    }

    #[test]
    fn cni_csi_kubeversion_labels() {
        let lowered = ok(
            "FROM scratch\nARG V\nCNI calico local://calico\nCSI openebs local://openebs\nKUBEVERSION $V\n",
        );
        let labels: Vec<(&str, &str)> = lowered
            .image
            .labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            labels,
            [
                ("app.alpha.sealer.io/supported-kube-version", "v1.22"),
                ("cluster.alpha.sealer.io/kube-cni-calico", "true"),
                ("cluster.alpha.sealer.io/kube-csi-openebs", "true"),
            ]
        );
        let names: Vec<&str> = lowered.image.apps.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["calico", "openebs"]);
    }

    #[test]
    fn unknown_apps() {
        err("FROM scratch\nAPPCMDS x [\"a\"]\n", "unknown app `x` @ x");
        err(
            "FROM scratch\nAPP web local://w\nAPPENV wbe K=1\n",
            "unknown app `wbe` @ wbe",
        );
        err(
            "FROM scratch\nAPP web local://w\nLAUNCH [\"web\", \"db\"]\n",
            "unknown app `db` @ \"db\"",
        );
        // Declared after use is not declared.
        err(
            "FROM scratch\nAPPENV web K=1\nAPP web local://w\n",
            "unknown app `web` @ web",
        );
    }

    #[test]
    fn unknown_app_help_lists_declared_apps() {
        let errors = lower_diagnostics(
            "FROM scratch\nAPP web local://w\nAPP db local://d\nAPPENV wbe K=1\n",
        )
        .unwrap_err();
        assert_eq!(
            errors[0].help.as_deref(),
            Some("declared apps: `web`, `db` (did you mean `web`?)")
        );
    }

    #[test]
    fn bad_app_declarations() {
        err(
            "FROM scratch\nAPP web https://example.com/a.yaml\n",
            "APP from a URL is not supported yet @ https://example.com/a.yaml",
        );
        err(
            "FROM scratch\nAPP web a.yaml\n",
            "APP source `a.yaml` has no `local://` or `https://` scheme @ a.yaml",
        );
        err(
            "FROM scratch\nCNI c local://../x\n",
            "CNI source `../x` is outside the build context @ local://../x",
        );
        err(
            "FROM scratch\nAPP w local:///etc/passwd\n",
            "APP source `/etc/passwd` is an absolute path @ local:///etc/passwd",
        );
        err(
            "FROM scratch\nAPP ../w local://a\n",
            "invalid app name `../w` @ ../w",
        );
        err(
            "FROM scratch\nAPP w local://a\nCSI w local://b\n",
            "app `w` is declared twice @ w",
        );
        err(
            "FROM scratch\nAPP w local://a\nLAUNCH w w\n",
            "app `w` is launched twice @ w",
        );
        err(
            "FROM scratch\nKUBEVERSION v1 v2\n",
            "KUBEVERSION takes one version @ v2",
        );
    }

    #[test]
    fn launch_rules_from_check() {
        err(
            "FROM scratch\nAPP a local://a\nLAUNCH [\"a\"]\nLABEL k=v\n",
            "LAUNCH must be the last instruction @ LAUNCH",
        );
        err(
            "FROM scratch\nAPP a local://a\nCMD x\nLAUNCH [\"a\"]\n",
            "LAUNCH and CMD cannot be used together @ LAUNCH",
        );
        let errors = lower_text("FROM scratch\nAPP a local://a\nLAUNCH [\"a\"]\nLAUNCH [\"a\"]\n")
            .unwrap_err();
        assert!(
            errors.contains(&"only one LAUNCH is allowed @ LAUNCH".to_string()),
            "{errors:?}"
        );
    }
}

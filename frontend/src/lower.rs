//! Lowering: a checked [`Kubefile`] -> an LLB [`Definition`] plus the image-config delta.
//!
//! Variables are expanded here (ARG with `--build-arg` overrides, ENV, and the predefined
//! `ARCH`/`TARGETARCH`/`TARGETOS`/`TARGETPLATFORM`). Each COPY becomes a Local source
//! selecting just its sources and a FileOp that builds a layer from them alone; the result is a
//! Merge of the base image and every layer in order. The caller resolves FROM images (that is
//! IO, and the frontend does none) through [`LowerOptions::resolve_image`].

mod add;
mod apps;
mod platform_args;
mod run;
mod stages;

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

use seal_llb::{paths, HistoryStep, ImageSpec, Platform};
use seal_llb::{
    Chmod, CollectOp, Compression, CopyAction, CopySource, Definition, ExecMode, FileAction,
    FileOp, LayerFormat, MergeOp, Op, OpMetadata, RegistryLayerOp, SeenVar, SourceOp, VarKind,
};

use crate::ast::{Args, Flag, Heredoc, Instruction, Keyword, Kubefile, Span};
use crate::diagnostic::Diagnostic;
use crate::expand::{self, ExpandError};
use crate::lexer;

pub use run::Entitlements;

/// A FROM image as the caller resolved it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedImage {
    /// The normalised reference.
    pub reference: String,
    /// The manifest digest (`sha256:...`) the build is pinned to.
    pub manifest: String,
    /// The image's ENV, visible to later instructions.
    pub env: Vec<(String, String)>,
    /// The image's platform (its config's `os` and `architecture`), when known: a build for
    /// another platform refuses it.
    pub platform: Option<Platform>,
}

/// Inputs of lowering besides the tree.
pub struct LowerOptions<'a> {
    /// `--build-arg NAME=VALUE` values.
    pub build_args: BTreeMap<String, String>,
    /// The ignore file's cleaned patterns (excluded from every Local source).
    pub ignore_patterns: Vec<String>,
    pub format: LayerFormat,
    pub platform: Platform,
    /// Who executes RUN steps.
    pub exec_mode: ExecMode,
    /// What `--allow` grants RUN steps.
    pub entitlements: Entitlements,
    /// The stage to build (`--target`); the last stage when `None`.
    pub target: Option<String>,
    /// Resolve a FROM image name (not `scratch`); the error text is shown at the FROM line.
    /// Resolve a FROM or `COPY --from` image name for a platform (the stage's: the build's,
    /// or the one `FROM --platform` names).
    pub resolve_image: &'a mut dyn FnMut(&str, &Platform) -> Result<ResolvedImage, String>,
    /// Collect the container images the final rootfs needs into a `registry/` layer
    /// (`None`: `--build-mode lite`, or `--print-llb` callers that do not want it).
    pub collect: Option<CollectOp>,
}

/// The result of lowering.
#[derive(Debug, Clone)]
pub struct Lowered {
    pub definition: Definition,
    pub image: ImageSpec,
    /// Non-fatal findings (an unused `--build-arg`).
    pub warnings: Vec<String>,
}

/// Lower a Kubefile that passed [`crate::parse_checked`]. `source` is the text it was parsed
/// from (for step descriptions). Errors point at the instruction or word at fault.
pub fn lower(
    kubefile: &Kubefile,
    source: &[u8],
    options: LowerOptions<'_>,
) -> Result<Lowered, Vec<Diagnostic>> {
    let mut lowering = Lowering::new(kubefile, source, options);
    for instruction in &kubefile.instructions {
        if let Err(diagnostic) = lowering.instruction(instruction) {
            return Err(vec![diagnostic]);
        }
    }
    lowering.finish()
}

struct Lowering<'k, 'o> {
    kubefile: &'k Kubefile,
    source: &'k [u8],
    options: LowerOptions<'o>,
    builder: seal_llb::DefinitionBuilder,
    /// ARGs declared before the first FROM: name -> value.
    global_args: BTreeMap<String, Option<String>>,
    /// ARGs in scope in the current stage.
    stage_args: BTreeMap<String, Option<String>>,
    env: Vec<(String, String)>,
    consumed_args: BTreeSet<String>,
    base: Option<usize>,
    layers: Vec<usize>,
    /// Per layer: it may change what image collection reads (see `collect_rootfs`).
    layer_collects: Vec<bool>,
    image: ImageSpec,
    step: usize,
    steps_total: usize,
    /// Stages finished so far (multi-stage builds).
    stages: Vec<stages::Stage>,
    stage_name: String,
    stage_named: bool,
    /// More than one FROM: step labels carry the stage name (`[builder 2/3]`).
    multi_stage: bool,
    /// Non-fatal findings of instructions (an ADD of a URL without `--checksum`).
    warnings: Vec<String>,
    /// The variables the current instruction's expansions looked up (for
    /// [`OpMetadata::vars`]); emptied at each instruction.
    seen: RefCell<BTreeMap<String, SeenVar>>,
    /// The current stage's platform when `FROM --platform` names another than the build's.
    stage_platform: Option<Platform>,
}

impl<'k, 'o> Lowering<'k, 'o> {
    fn new(kubefile: &'k Kubefile, source: &'k [u8], options: LowerOptions<'o>) -> Self {
        let steps_total = kubefile
            .instructions
            .iter()
            .filter(|i| {
                matches!(
                    i.keyword,
                    Keyword::From
                        | Keyword::Copy
                        | Keyword::Add
                        | Keyword::Run
                        | Keyword::App
                        | Keyword::Cni
                        | Keyword::Csi
                )
            })
            .count();
        let image = ImageSpec {
            platform: options.platform.clone(),
            source_date_epoch: options.format.source_date_epoch,
            exec_mode: options.exec_mode.name().into(),
            ..ImageSpec::default()
        };
        Lowering {
            kubefile,
            source,
            options,
            builder: Definition::builder(),
            global_args: BTreeMap::new(),
            stage_args: BTreeMap::new(),
            env: Vec::new(),
            consumed_args: BTreeSet::new(),
            base: None,
            layers: Vec::new(),
            layer_collects: Vec::new(),
            image,
            step: 0,
            steps_total,
            stages: Vec::new(),
            stage_name: "stage-0".into(),
            stage_named: false,
            stage_platform: None,
            multi_stage: kubefile
                .instructions
                .iter()
                .filter(|i| i.keyword == Keyword::From)
                .count()
                > 1,
            warnings: Vec::new(),
            seen: RefCell::new(BTreeMap::new()),
        }
    }

    fn finish(mut self) -> Result<Lowered, Vec<Diagnostic>> {
        if self.base.is_none() {
            return Err(vec![Diagnostic::new(
                "no FROM instruction",
                Span::new(0, 0),
            )]);
        }
        self.end_stage();
        let target = self.target_stage().map_err(|d| vec![d])?.clone();
        let warnings = self
            .options
            .build_args
            .keys()
            .filter(|k| !self.consumed_args.contains(*k))
            .map(|k| format!("build-arg `{k}` was not consumed by any ARG"))
            .chain(std::mem::take(&mut self.warnings))
            .collect();
        let output = match self.options.collect.clone() {
            Some(collect) => {
                let collect_rootfs = self.builder.add(
                    Op::Merge(MergeOp {}),
                    &target.collect_inputs,
                    OpMetadata::default(),
                );
                self.collect_images(collect, collect_rootfs, target.rootfs)
            }
            None => target.rootfs,
        };
        Ok(Lowered {
            definition: self.builder.build(output),
            image: target.image,
            warnings,
        })
    }

    /// Image collection: resolve what `collect_rootfs` (the rootfs up to the last step that may
    /// change what collection reads) needs, write it as a `registry/` layer, and stack that
    /// layer on top of `rootfs`. Steps after that last one run while collection pulls.
    fn collect_images(
        &mut self,
        collect: CollectOp,
        collect_rootfs: usize,
        rootfs: usize,
    ) -> usize {
        let quiet = |description: &str| OpMetadata {
            description: Some(description.into()),
            quiet: true,
            ..OpMetadata::default()
        };
        let format = LayerFormat {
            // Image layers are compressed already: compressing them again costs CPU and
            // saves nothing.
            compression: Compression::None,
            source_date_epoch: self.options.format.source_date_epoch,
        };
        let collected = self.builder.add(
            Op::Collect(collect),
            &[collect_rootfs],
            quiet("COLLECT container images"),
        );
        let layer = self.builder.add(
            Op::RegistryLayer(RegistryLayerOp { format }),
            &[collected],
            quiet("PULL collected images into registry/"),
        );
        self.builder.add(
            Op::Merge(MergeOp {}),
            &[rootfs, layer],
            OpMetadata::default(),
        )
    }

    fn instruction(&mut self, ins: &Instruction) -> Result<(), Diagnostic> {
        if self.base.is_none() && !matches!(ins.keyword, Keyword::Arg | Keyword::From) {
            return Err(Diagnostic::new(
                format!("`{}` before the first FROM", ins.keyword),
                ins.keyword_span,
            )
            .with_help("only ARG may come before FROM"));
        }
        match ins.keyword {
            Keyword::From => self.from(ins),
            Keyword::Arg => self.arg(ins),
            Keyword::Env => self.env_instruction(ins),
            Keyword::Label => self.label(ins),
            Keyword::Maintainer => {
                let text = self.shell_text(ins);
                self.image.maintainer = Some(text.trim().to_string());
                self.history(ins, true);
                Ok(())
            }
            Keyword::Copy => self.copy(ins),
            Keyword::Cmd => {
                let cmds = self.command_list(ins);
                self.image.cmds.extend(cmds);
                self.history(ins, true);
                Ok(())
            }
            Keyword::Cmds => {
                let cmds = self.command_list(ins);
                self.image.launch_cmds = cmds;
                self.history(ins, true);
                Ok(())
            }
            Keyword::Run => self.run(ins),
            Keyword::App
            | Keyword::AppCmds
            | Keyword::AppEnv
            | Keyword::Launch
            | Keyword::Cni
            | Keyword::Csi
            | Keyword::KubeVersion => self.app_instruction(ins),
            Keyword::Add => self.add(ins),
        }
    }

    fn arg(&mut self, ins: &Instruction) -> Result<(), Diagnostic> {
        let text = self.shell_text(ins);
        let in_stage = self.base.is_some();
        let scope = if in_stage {
            Scope::Stage
        } else {
            Scope::Global
        };
        let declarations = {
            let lookup = self.lookup(&scope);
            expand::parse_arg_declarations(&text, self.kubefile.escape, &lookup)
                .map_err(|e| self.expand_error(ins, e))?
        };
        for (name, default) in declarations {
            let value = match self.options.build_args.get(&name) {
                Some(v) => {
                    self.consumed_args.insert(name.clone());
                    Some(v.clone())
                }
                None if default.is_none() && in_stage => self
                    .global_args
                    .get(&name)
                    .cloned()
                    .flatten()
                    .or_else(|| self.automatic_arg(&name)),
                None => default.or_else(|| self.automatic_arg(&name)),
            };
            if in_stage {
                self.stage_args.insert(name, value);
            } else {
                self.global_args.insert(name, value);
            }
        }
        if in_stage {
            self.history(ins, true);
        }
        Ok(())
    }

    fn env_instruction(&mut self, ins: &Instruction) -> Result<(), Diagnostic> {
        let text = self.shell_text(ins);
        let pairs = {
            let lookup = self.lookup(&Scope::Stage);
            expand::parse_env(&text, self.kubefile.escape, &lookup)
                .map_err(|e| self.expand_error(ins, e))?
        };
        for (k, v) in pairs {
            self.env.retain(|(name, _)| *name != k);
            self.env.push((k, v));
        }
        self.history(ins, true);
        Ok(())
    }

    fn label(&mut self, ins: &Instruction) -> Result<(), Diagnostic> {
        let text = self.shell_text(ins);
        let pairs = {
            let lookup = self.lookup(&Scope::Stage);
            expand::parse_key_values(&text, self.kubefile.escape, &lookup)
                .map_err(|e| self.expand_error(ins, e))?
        };
        self.image.labels.extend(pairs);
        self.history(ins, true);
        Ok(())
    }

    fn copy(&mut self, ins: &Instruction) -> Result<(), Diagnostic> {
        let mut chmod = None;
        let mut chown = None;
        let mut from = None;
        let mut link = false;
        for flag in &ins.flags {
            match flag.name.as_str() {
                "from" => {
                    let value = self.flag_value(flag);
                    from = Some(self.copy_from_node(&value, flag.span)?);
                }
                "chmod" => chmod = Some(parse_chmod(flag)?),
                "chown" => chown = Some(self.parse_chown(flag)?),
                "link" => link = true,
                // `check` admits only the flags above.
                _ => {}
            }
        }
        let (words, dest) = self.sources_and_dest(ins)?;
        self.warn_file_like_destination(ins, &words);
        let mut sources = Vec::new();
        let mut source_spans = Vec::new();
        let mut actions = Vec::new();
        let mut heredocs = ins.heredocs.iter();
        for (word, span) in &words {
            if lexer::heredoc_marker(word, self.kubefile.escape).is_some() || word.starts_with("<<")
            {
                let Some(doc) = heredocs.next() else {
                    return Err(Diagnostic::new("heredoc without a body", *span));
                };
                actions.push(self.heredoc_file(doc, &dest, chmod.as_ref(), *span)?);
                continue;
            }
            // In another stage's rootfs, absolute paths are the normal spelling.
            sources.push(context_source(ins.keyword, word, *span, from.is_some())?);
            source_spans.push((span.start, span.end));
        }
        let description = format!(
            "[{}/{}] COPY {}",
            self.next_step(),
            self.steps_total,
            self.instruction_text(ins)
        );
        let mut inputs = Vec::new();
        if let Some(from) = from {
            if !actions.is_empty() {
                return Err(not_supported(
                    ins,
                    "COPY --from with a heredoc is not supported yet",
                ));
            }
            inputs.push(from);
            actions.push(FileAction::Copy(CopyAction {
                sources,
                dest,
                chmod,
                chown,
            }));
        } else if !sources.is_empty() {
            let local = self.local_source(ins, &sources);
            inputs.push(local);
            actions.insert(
                0,
                FileAction::Copy(CopyAction {
                    sources,
                    dest,
                    chmod,
                    chown,
                }),
            );
        }
        inputs.push(self.rootfs_below(link));
        let op = Op::File(FileOp {
            actions,
            format: self.options.format,
        });
        let mut metadata = self.metadata(ins, description);
        metadata.source_spans = source_spans;
        let node = self.builder.add(op, &inputs, metadata);
        self.push_layer(node);
        self.history(ins, false);
        Ok(())
    }

    /// A FileOp's last input: the rootfs below, of which it reads only where its destination
    /// resolves (KUBEFILE.md "COPY semantics"). With `--link` (BuildKit's meaning: the layer
    /// must not depend on the layers below, so symlinks on the destination are not followed and
    /// its directories are created anew) it is the empty rootfs.
    fn rootfs_below(&mut self, link: bool) -> usize {
        if link {
            self.builder
                .add(Op::Source(SourceOp::Scratch), &[], OpMetadata::default())
        } else {
            self.rootfs()
        }
    }

    /// Issue 12 point 10: the seed's rule makes every destination a directory, so
    /// `COPY config.yaml /etc/app/app.yaml` creates `etc/app/app.yaml/config.yaml`. A Docker
    /// user means a file there; say so at the line when the destination's last element looks
    /// like a file name for the one source (same extension, another name). A destination
    /// written with a trailing `/` is plainly a directory and is not warned about.
    fn warn_file_like_destination(&mut self, ins: &Instruction, words: &[(String, Span)]) {
        let Ok(all) = self.words(ins, &Scope::Stage) else {
            return;
        };
        let (Some((raw_dest, _)), [(source, _)]) = (all.last(), words) else {
            return;
        };
        if raw_dest.ends_with('/') || source.starts_with("<<") || paths::is_glob(source) {
            return;
        }
        let dest = paths::clean(raw_dest);
        let source_name = paths::basename(&paths::clean(source)).to_string();
        let dest_name = paths::basename(&dest);
        let extension = |name: &str| {
            name.rsplit_once('.')
                .filter(|(stem, ext)| !stem.is_empty() && !ext.is_empty())
                .map(|(_, ext)| ext.to_string())
        };
        let (Some(src_ext), Some(dest_ext)) = (extension(&source_name), extension(dest_name))
        else {
            return;
        };
        if src_ext != dest_ext || source_name == dest_name {
            return;
        }
        let line = self.source[..ins.span.start.min(self.source.len())]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1;
        let created = paths::join(&dest, &source_name);
        let parent = dest.rsplit_once('/').map_or("", |(p, _)| p);
        let parent = if parent.is_empty() { "." } else { parent };
        self.warnings.push(format!(
            "{keyword} {source} {raw_dest} (line {line}) creates {created}: the destination is always a directory in a Kubefile; to create the file {dest}, name the source {dest_name} and write `{keyword} {dest_name} {parent}`, or write `{raw_dest}/` to keep the directory and silence this warning",
            keyword = ins.keyword,
        ));
    }

    /// A step's layer joins the stage's rootfs.
    fn push_layer(&mut self, node: usize) {
        let collects = seal_llb::collected::may_change(&self.builder.node(node).op);
        self.layers.push(node);
        self.layer_collects.push(collects);
    }

    /// The base and the layers up to the last one that may change what image collection
    /// reads.
    pub(super) fn collect_inputs(&self) -> Vec<usize> {
        let last = self
            .layer_collects
            .iter()
            .rposition(|&c| c)
            .map_or(0, |i| i + 1);
        let mut inputs: Vec<usize> = self.base.into_iter().collect();
        inputs.extend(self.layers[..last].iter().copied());
        inputs
    }

    /// A flag's value with the stage's variables expanded.
    fn flag_value(&self, flag: &Flag) -> String {
        let raw = flag.value.clone().unwrap_or_default();
        let lookup = self.lookup(&Scope::Stage);
        expand::expand_word(&raw, self.kubefile.escape, &lookup).unwrap_or(raw)
    }

    /// COPY/ADD's expanded source words and its destination, cleaned (`a`, `/a`, `a/` and
    /// `./a` name one directory, so they must give one digest).
    fn sources_and_dest(
        &self,
        ins: &Instruction,
    ) -> Result<(Vec<(String, Span)>, String), Diagnostic> {
        let keyword = ins.keyword;
        let mut words = self.words(ins, &Scope::Stage)?;
        let Some((dest, _)) = words.pop() else {
            return Err(Diagnostic::new(
                format!("{keyword} needs a source and a destination"),
                ins.keyword_span,
            ));
        };
        if words.is_empty() {
            return Err(Diagnostic::new(
                format!("{keyword} needs a source and a destination"),
                ins.args.span(),
            )
            .with_help(format!("write `{keyword} <src>... <dest>`")));
        }
        Ok((words, paths::clean(&dest)))
    }

    /// `COPY <<NAME dest` / `ADD <<NAME dest`: the heredoc as the file `dest/NAME`, or `dest`
    /// itself when dest already ends in NAME (the seed's destination rule).
    fn heredoc_file(
        &self,
        doc: &Heredoc,
        dest: &str,
        chmod: Option<&Chmod>,
        span: Span,
    ) -> Result<FileAction, Diagnostic> {
        let data = if doc.expand {
            let lookup = self.lookup(&Scope::Stage);
            expand::expand_word(&doc.content, self.kubefile.escape, &lookup)
                .map_err(|e| Diagnostic::new(format!("in heredoc `{}`: {e}", doc.name), span))?
        } else {
            doc.content.clone()
        };
        let path = if paths::basename(dest) == doc.name {
            dest.to_string()
        } else {
            paths::join(dest, &doc.name)
        };
        Ok(FileAction::Mkfile {
            path,
            mode: chmod.map_or(0o644, |c| c.apply(0o644, false)),
            data: data.into_bytes(),
        })
    }

    /// The Local source op selecting `sources` (minus the ignore file's paths) for `ins`.
    fn local_source(&mut self, ins: &Instruction, sources: &[CopySource]) -> usize {
        let include = sources.iter().map(|s| s.pattern.clone()).collect();
        self.builder.add(
            Op::Source(SourceOp::Local {
                include,
                exclude: self.options.ignore_patterns.clone(),
            }),
            &[],
            OpMetadata {
                description: None,
                span: Some((ins.span.start, ins.span.end)),
                ..OpMetadata::default()
            },
        )
    }

    fn parse_chown(&self, flag: &Flag) -> Result<(u32, u32), Diagnostic> {
        let raw = flag.value.clone().unwrap_or_default();
        let lookup = self.lookup(&Scope::Stage);
        let value = expand::expand_word(&raw, self.kubefile.escape, &lookup).unwrap_or(raw);
        let (user, group) = value.split_once(':').unwrap_or((&value, &value));
        match (user.parse::<u32>(), group.parse::<u32>()) {
            (Ok(u), Ok(g)) => Ok((u, g)),
            _ => Err(Diagnostic::new(format!("--chown={value}: expected numeric `uid[:gid]`"), flag.span)
                .with_help("user and group names need the image's /etc/passwd; use numbers such as --chown=1000:1000")),
        }
    }

    /// Command strings of CMD/CMDS: each JSON item is one command; shell form is one command.
    fn command_list(&self, ins: &Instruction) -> Vec<String> {
        match &ins.args {
            Args::Json { items, .. } => items.iter().map(|w| w.text.clone()).collect(),
            Args::Shell { text, .. } => vec![text.trim().to_string()],
        }
    }

    /// Expanded argument words with their spans.
    fn words(&self, ins: &Instruction, scope: &Scope) -> Result<Vec<(String, Span)>, Diagnostic> {
        let lookup = self.lookup(scope);
        match &ins.args {
            Args::Json { items, .. } => items
                .iter()
                .map(|w| {
                    expand::expand_word(&w.text, self.kubefile.escape, &lookup)
                        .map(|t| (t, w.span))
                        .map_err(|e| Diagnostic::new(e.to_string(), w.span))
                })
                .collect(),
            Args::Shell { .. } => ins
                .words
                .iter()
                .map(|w| {
                    if w.text.starts_with("<<") {
                        return Ok((w.text.clone(), w.span));
                    }
                    expand::expand_word(&w.text, self.kubefile.escape, &lookup)
                        .map(|t| (t, w.span))
                        .map_err(|e| Diagnostic::new(e.to_string(), w.span))
                })
                .collect(),
        }
    }

    fn lookup<'s>(&'s self, scope: &Scope) -> impl Fn(&str) -> Option<String> + use<'s, 'k, 'o> {
        let global = matches!(scope, Scope::Global);
        move |name: &str| {
            let (kind, value) = self.resolve_var(global, name);
            self.seen.borrow_mut().insert(
                name.to_string(),
                SeenVar {
                    kind,
                    name: name.to_string(),
                    value: value.clone(),
                },
            );
            value
        }
    }

    /// A variable's value in a scope, and whether ENV or ARG gave it.
    fn resolve_var(&self, global: bool, name: &str) -> (VarKind, Option<String>) {
        if !global {
            if let Some((_, v)) = self.env.iter().rev().find(|(k, _)| k == name) {
                return (VarKind::Env, Some(v.clone()));
            }
        }
        let args = if global {
            &self.global_args
        } else {
            &self.stage_args
        };
        // A declared ARG without a value still sees the automatic platform args below.
        if let Some(Some(v)) = args.get(name) {
            return (VarKind::Arg, Some(v.clone()));
        }
        (VarKind::Arg, self.automatic_arg(name))
    }

    /// An automatic platform arg's value (`platform_args.rs`) for the platform being built.
    fn automatic_arg(&self, name: &str) -> Option<String> {
        platform_args::value(name, &self.options.platform)
    }

    fn shell_text(&self, ins: &Instruction) -> String {
        match &ins.args {
            Args::Shell { text, .. } => text.clone(),
            Args::Json { items, .. } => items
                .iter()
                .map(|w| w.text.clone())
                .collect::<Vec<_>>()
                .join(" "),
        }
    }

    /// The instruction as written after its keyword, whitespace collapsed (for progress).
    fn instruction_text(&self, ins: &Instruction) -> String {
        let end = ins.span.end.min(self.source.len());
        let start = ins.keyword_span.end.min(end);
        let text = String::from_utf8_lossy(&self.source[start..end]);
        let escape = self.kubefile.escape;
        // Comment lines inside a continuation are not part of the instruction (the parser
        // drops them too): kept, they would glue `# ...` into a shell command line.
        text.lines()
            .enumerate()
            .filter(|(i, line)| *i == 0 || !line.trim_start().starts_with('#'))
            .flat_map(|(_, line)| line.split_whitespace())
            .filter(|w| *w != escape.to_string())
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn history(&mut self, ins: &Instruction, empty_layer: bool) {
        let created_by = format!("{} {}", ins.keyword, self.instruction_text(ins));
        self.image.history.push(HistoryStep {
            created_by,
            empty_layer,
        });
    }

    /// A step's metadata: its label, where it is, its text, and the variables its expansions
    /// looked up so far.
    fn metadata(&self, ins: &Instruction, description: String) -> OpMetadata {
        OpMetadata {
            description: Some(description),
            span: Some((ins.span.start, ins.span.end)),
            step: Some(self.step),
            stage: Some(self.stage_name.clone()),
            text: Some(format!("{} {}", ins.keyword, self.instruction_text(ins))),
            vars: self.seen.borrow().values().cloned().collect(),
            platform: self.stage_platform.clone(),
            ..OpMetadata::default()
        }
    }

    /// The platform the current stage is built for.
    fn current_platform(&self) -> &Platform {
        self.stage_platform
            .as_ref()
            .unwrap_or(&self.options.platform)
    }

    /// Advance to the next step and return its label: `2`, or `builder 2` in multi-stage files.
    fn next_step(&mut self) -> String {
        self.step += 1;
        if self.multi_stage {
            format!("{} {}", self.stage_name, self.step)
        } else {
            self.step.to_string()
        }
    }

    fn expand_error(&self, ins: &Instruction, e: ExpandError) -> Diagnostic {
        let span = ins.args.span();
        let at = clamp_span(span, e.offset(), e.offset() + 1);
        Diagnostic::new(e.to_string(), at)
    }
}

enum Scope {
    Global,
    Stage,
}

fn not_supported(ins: &Instruction, message: &str) -> Diagnostic {
    Diagnostic::new(message.to_string(), ins.keyword_span)
        .with_label("not supported yet")
        .with_help("this instruction parses, but seal cannot build it yet; see the README's status section")
}

/// A COPY/ADD source word as a [`CopySource`]: `dir/.` means the directory's contents; an
/// absolute path (unless the source is another stage's rootfs) or a `..` that leaves the
/// context is an error at the word.
fn context_source(
    keyword: Keyword,
    word: &str,
    span: Span,
    in_rootfs: bool,
) -> Result<CopySource, Diagnostic> {
    let pattern = paths::clean(word);
    if word.starts_with('/') && !in_rootfs {
        return Err(Diagnostic::new(
            format!("{keyword} source `{word}` is an absolute path"),
            span,
        )
        .with_label("outside the build context")
        .with_help("sources are relative to the build context"));
    }
    if paths::escapes(&pattern) {
        return Err(Diagnostic::new(
            format!("{keyword} source `{word}` is outside the build context"),
            span,
        )
        .with_label("leaves the build context")
        .with_help("sources are relative to the build context and may not use `..` to leave it"));
    }
    Ok(CopySource {
        pattern,
        contents_only: word.ends_with("/.") || word == ".",
    })
}

/// `--chmod=0644` or BuildKit's symbolic `--chmod=u=rwX,go=rX`.
fn parse_chmod(flag: &Flag) -> Result<Chmod, Diagnostic> {
    let value = flag.value.clone().unwrap_or_default();
    Chmod::parse(&value).map_err(|reason| {
        Diagnostic::new(format!("--chmod={value}: {reason}"), flag.span).with_help(
            "an octal mode (0644) applies to directories too; u=rwX,go=rX keeps directories and executables traversable",
        )
    })
}

fn clamp_span(outer: Span, start: usize, end: usize) -> Span {
    let s = (outer.start + start).min(outer.end);
    let e = (outer.start + end).min(outer.end).max(s);
    Span::new(s, e)
}

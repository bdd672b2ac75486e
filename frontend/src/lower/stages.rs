//! Multi-stage builds: `FROM x AS name`, `FROM <stage>`, `COPY --from=<stage|index|image>`,
//! and choosing the target stage.
//!
//! Each FROM starts a stage; when the next FROM (or the end) comes, the stage is recorded with
//! its rootfs (a Merge of its base and layers) and its image config. The Definition's output is
//! the target stage's rootfs, so the solver builds only the stages the target reaches, and
//! independent stages run in parallel.

use seal_llb::{ImageSpec, Platform};
use seal_llb::{MergeOp, Op, OpMetadata, SourceOp};

use super::{Lowering, ResolvedImage, Scope};
use crate::ast::{Instruction, Keyword, Span};
use crate::diagnostic::Diagnostic;

/// A finished stage.
#[derive(Debug, Clone)]
pub(super) struct Stage {
    /// The `AS` name (lower-case), or `stage-<index>`.
    pub name: String,
    pub named: bool,
    /// The node of its rootfs (Merge of base and layers).
    pub rootfs: usize,
    /// The base and the layers up to its last layer that may change what image collection
    /// reads (merged only for the target stage).
    pub collect_inputs: Vec<usize>,
    pub env: Vec<(String, String)>,
    pub image: ImageSpec,
}

impl Lowering<'_, '_> {
    pub(super) fn from(&mut self, ins: &Instruction) -> Result<(), Diagnostic> {
        if self.base.is_some() {
            self.end_stage();
        }
        let flag_platform = self.platform_flag(ins)?;
        let words = self.words(ins, &Scope::Global)?;
        let Some((name, span)) = words.first().cloned() else {
            return Err(Diagnostic::new(
                "FROM needs an image name",
                ins.keyword_span,
            ));
        };
        let alias = match words.as_slice() {
            [_, (as_word, _), (alias, _)] if as_word.eq_ignore_ascii_case("as") => {
                Some(alias.to_ascii_lowercase())
            }
            _ => None,
        };
        let index = self.stages.len();
        self.stage_name = alias.clone().unwrap_or_else(|| format!("stage-{index}"));
        self.stage_named = alias.is_some();
        self.step = 0;
        self.steps_total = self.count_steps(ins);
        self.layers.clear();
        self.layer_collects.clear();
        // Stage scope starts empty: a global ARG must be re-declared to be seen (Docker).
        self.stage_args.clear();
        self.stage_platform = flag_platform.filter(|p| p != &self.options.platform);
        self.image = self.fresh_image();
        let description = format!("[{}/{}] FROM {}", self.next_step(), self.steps_total, name);
        let metadata = self.metadata(ins, description);
        if let Some(stage) = self.find_stage(&name).cloned() {
            // FROM an earlier stage: its rootfs, its config and its platform carry on.
            self.env = stage.env.clone();
            self.image = stage.image.clone();
            self.stage_platform =
                Some(stage.image.platform.clone()).filter(|p| p != &self.options.platform);
            let node = self
                .builder
                .add(Op::Merge(MergeOp {}), &[stage.rootfs], metadata);
            self.base = Some(node);
            return Ok(());
        }
        self.env.clear();
        let op = if name == "scratch" {
            Op::Source(SourceOp::Scratch)
        } else {
            let platform = self.current_platform().clone();
            let resolved = (self.options.resolve_image)(&name, &platform).map_err(|message| {
                Diagnostic::new(message, span).with_help(
                    "FROM takes an image in the store (`seal build`, `seal load`) or one a \
                         registry serves (`seal pull`; `seal login` for a private one)",
                )
            })?;
            self.check_image_platform(&resolved, span)?;
            self.env = resolved.env.clone();
            Op::Source(SourceOp::Image {
                reference: resolved.reference,
                manifest: resolved.manifest,
            })
        };
        let node = self.builder.add(op, &[], metadata);
        self.base = Some(node);
        Ok(())
    }

    /// `FROM --platform=OS/ARCH[/VARIANT]` (expanded: `$BUILDPLATFORM`, `$TARGETPLATFORM`),
    /// the platform of the stage it starts (BuildKit's meaning); a malformed value is an
    /// error at the flag.
    fn platform_flag(&self, ins: &Instruction) -> Result<Option<Platform>, Diagnostic> {
        let Some(flag) = ins.flags.iter().find(|f| f.name == "platform") else {
            return Ok(None);
        };
        let raw = flag.value.clone().unwrap_or_default();
        let value = {
            let lookup = self.lookup(&Scope::Global);
            crate::expand::expand_word(&raw, self.kubefile.escape, &lookup).unwrap_or(raw)
        };
        Platform::parse(&value).map(Some).map_err(|_| {
            Diagnostic::new(
                format!("--platform={value}: expected OS/ARCH[/VARIANT] such as linux/amd64"),
                flag.span,
            )
        })
    }

    /// Record the current stage.
    pub(super) fn end_stage(&mut self) {
        let rootfs = self.rootfs();
        let collect_inputs = self.collect_inputs();
        let mut image = self.image.clone();
        image.env = self.env.clone();
        self.stages.push(Stage {
            name: self.stage_name.clone(),
            named: self.stage_named,
            rootfs,
            collect_inputs,
            env: self.env.clone(),
            image,
        });
    }

    /// The stage `name` refers to: an `AS` name (case-insensitive) or an index.
    pub(super) fn find_stage(&self, name: &str) -> Option<&Stage> {
        let lower = name.to_ascii_lowercase();
        if let Some(stage) = self.stages.iter().find(|s| s.named && s.name == lower) {
            return Some(stage);
        }
        name.parse::<usize>().ok().and_then(|i| self.stages.get(i))
    }

    /// The node `COPY --from=<value>` copies from: a stage's rootfs or an image.
    pub(super) fn copy_from_node(&mut self, value: &str, span: Span) -> Result<usize, Diagnostic> {
        if let Some(stage) = self.find_stage(value) {
            return Ok(stage.rootfs);
        }
        if value.eq_ignore_ascii_case(&self.stage_name) && self.stage_named {
            return Err(Diagnostic::new(
                format!("COPY --from={value} names the stage it is in"),
                span,
            )
            .with_help("copy from an earlier stage"));
        }
        let platform = self.current_platform().clone();
        let resolved = (self.options.resolve_image)(value, &platform).map_err(|message| {
            let stages: Vec<String> = self
                .stages
                .iter()
                .filter(|s| s.named)
                .map(|s| s.name.clone())
                .collect();
            let help = if stages.is_empty() {
                "name an earlier stage (`FROM x AS name`) or an image in the local store"
                    .to_string()
            } else {
                format!("earlier stages: {}", stages.join(", "))
            };
            Diagnostic::new(
                format!("COPY --from={value}: no earlier stage has that name, and {message}"),
                span,
            )
            .with_help(help)
        })?;
        self.check_image_platform(&resolved, span)?;
        let op = Op::Source(SourceOp::Image {
            reference: resolved.reference,
            manifest: resolved.manifest,
        });
        Ok(self.builder.add(op, &[], OpMetadata::default()))
    }

    /// An image of another platform than the stage's is an error naming both: its files would
    /// not run there, and the image would be mislabelled.
    fn check_image_platform(&self, resolved: &ResolvedImage, span: Span) -> Result<(), Diagnostic> {
        let build = self.current_platform();
        let Some(image) = &resolved.platform else {
            return Ok(());
        };
        if image.os == build.os && image.architecture == build.architecture {
            return Ok(());
        }
        Err(Diagnostic::new(
            format!(
                "image {} is for {}/{}, but this build is for {build}",
                resolved.reference, image.os, image.architecture
            ),
            span,
        )
        .with_label("another platform")
        .with_help(format!(
            "use an image of {build}, or a multi-platform image (an index) that has it"
        )))
    }

    /// The stage a build produces: `--target` or the last one.
    pub(super) fn target_stage(&self) -> Result<&Stage, Diagnostic> {
        match &self.options.target {
            None => self
                .stages
                .last()
                .ok_or_else(|| Diagnostic::new("no FROM instruction", Span::new(0, 0))),
            Some(target) => self
                .stages
                .iter()
                .find(|s| s.named && s.name.eq_ignore_ascii_case(target))
                .ok_or_else(|| {
                    let names: Vec<&str> = self
                        .stages
                        .iter()
                        .filter(|s| s.named)
                        .map(|s| s.name.as_str())
                        .collect();
                    Diagnostic::new(
                        format!("--target {target}: no stage has that name"),
                        Span::new(0, 0),
                    )
                    .with_help(if names.is_empty() {
                        "name stages with `FROM image AS name`".to_string()
                    } else {
                        format!("stages: {}", names.join(", "))
                    })
                }),
        }
    }

    /// Steps (FROM and layer-producing instructions) from this FROM to the next.
    fn count_steps(&self, from: &Instruction) -> usize {
        self.kubefile
            .instructions
            .iter()
            .skip_while(|i| i.span != from.span)
            .enumerate()
            .take_while(|(n, i)| *n == 0 || i.keyword != Keyword::From)
            .filter(|(_, i)| {
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
            .count()
    }

    fn fresh_image(&self) -> ImageSpec {
        ImageSpec {
            platform: self.current_platform().clone(),
            source_date_epoch: self.options.format.source_date_epoch,
            exec_mode: self.options.exec_mode.name().into(),
            ..ImageSpec::default()
        }
    }
}

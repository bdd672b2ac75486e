//! Lowering RUN: an ExecOp on the rootfs built so far, whose changes become the next layer.

use seal_engine::llb::{ExecOp, MergeOp, Op, OpMetadata};

use super::{not_supported, Lowering};
use crate::ast::{Args, Instruction};
use crate::diagnostic::Diagnostic;
use crate::lexer;

impl Lowering<'_, '_> {
    pub(super) fn run(&mut self, ins: &Instruction) -> Result<(), Diagnostic> {
        let mut host_network = false;
        for flag in &ins.flags {
            match (flag.name.as_str(), flag.value.as_deref()) {
                ("network", Some("host")) => host_network = true,
                ("network", Some("none" | "default")) => host_network = false,
                ("network", other) => {
                    return Err(Diagnostic::new(
                        format!(
                            "--network={}: expected `none`, `default` or `host`",
                            other.unwrap_or("")
                        ),
                        flag.span,
                    ))
                }
                (name, _) => {
                    return Err(
                        not_supported(ins, &format!("RUN --{name} is not supported yet"))
                            .with_label("not supported yet"),
                    )
                }
            }
        }
        let args = match &ins.args {
            Args::Json { items, .. } => items.iter().map(|w| w.text.clone()).collect(),
            Args::Shell { text, .. } => {
                let script = match ins.heredocs.as_slice() {
                    [] => text.clone(),
                    // `RUN <<EOF` alone: the heredoc is the script.
                    [doc] if lexer::heredoc_marker(text.trim(), self.kubefile.escape).is_some() => {
                        doc.content.clone()
                    }
                    _ => return Err(not_supported(
                        ins,
                        "RUN with a heredoc other than `RUN <<EOF ... EOF` is not supported yet",
                    )),
                };
                vec!["/bin/sh".to_string(), "-c".to_string(), script]
            }
        };
        let rootfs = self.rootfs();
        let description = format!(
            "[{}/{}] RUN {}",
            self.next_step(),
            self.steps_total,
            self.instruction_text(ins)
        );
        let op = Op::Exec(ExecOp {
            args,
            env: self.visible_env(),
            cwd: "/".into(),
            host_network,
            mode: self.options.exec_mode,
            format: self.options.format,
        });
        let metadata = self.metadata(ins, description);
        let node = self.builder.add(op, &[rootfs], metadata);
        self.push_layer(node);
        self.history(ins, false);
        Ok(())
    }

    /// The rootfs built so far: the base and every layer, merged.
    pub(super) fn rootfs(&mut self) -> usize {
        let mut inputs: Vec<usize> = self.base.into_iter().collect();
        inputs.extend(self.layers.iter().copied());
        self.builder
            .add(Op::Merge(MergeOp {}), &inputs, OpMetadata::default())
    }

    /// `NAME=VALUE` of every variable a RUN can see: the stage's ARGs with a value, then ENV
    /// (which wins over an ARG of the same name).
    fn visible_env(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .stage_args
            .iter()
            .filter(|(name, _)| !self.env.iter().any(|(k, _)| k == *name))
            .filter_map(|(name, value)| value.as_ref().map(|v| format!("{name}={v}")))
            .collect();
        out.extend(self.env.iter().map(|(k, v)| format!("{k}={v}")));
        out
    }
}

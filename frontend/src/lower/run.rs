//! Lowering RUN: an ExecOp on the rootfs built so far, whose changes become the next layer.
//!
//! Heredocs follow BuildKit: `RUN <<EOF` alone runs the body as a script file (its shebang
//! picks the interpreter; without one, `/bin/sh` runs it); any other heredoc form hands the
//! whole line and the bodies to `/bin/sh -c`, so `RUN <<EOF cat > f`, `RUN python3 <<EOF` and
//! several heredocs on one line feed each body to its command's stdin.

use seal_llb::{
    ExecFile, ExecOp, MergeOp, NetworkMode, Op, OpMetadata, SecurityMode, SeenVar, VarKind,
};

use super::Lowering;
use crate::ast::{Args, Instruction};
use crate::diagnostic::Diagnostic;
use crate::lexer;

/// What the command line allows that a Kubefile alone may not (BuildKit's entitlements).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Entitlements {
    /// `--allow network.host`: `RUN --network=host`.
    pub network_host: bool,
    /// `--allow security.insecure`: `RUN --security=insecure`.
    pub security_insecure: bool,
}

impl Lowering<'_, '_> {
    pub(super) fn run(&mut self, ins: &Instruction) -> Result<(), Diagnostic> {
        let mut network = NetworkMode::Default;
        let mut security = SecurityMode::Sandbox;
        let allowed = self.options.entitlements;
        for flag in &ins.flags {
            match (flag.name.as_str(), flag.value.as_deref()) {
                ("network", Some("default")) => network = NetworkMode::Default,
                ("network", Some("none")) => network = NetworkMode::None,
                ("network", Some("host")) if allowed.network_host => network = NetworkMode::Host,
                ("network", Some("host")) => {
                    return Err(Diagnostic::new(
                        "RUN --network=host needs the `network.host` entitlement",
                        flag.span,
                    )
                    .with_label("not allowed by the command line")
                    .with_help("build with `--allow network.host` to grant it"))
                }
                ("network", other) => {
                    return Err(Diagnostic::new(
                        format!(
                            "--network={}: expected `default`, `none` or `host`",
                            other.unwrap_or("")
                        ),
                        flag.span,
                    ))
                }
                ("security", Some("sandbox")) => security = SecurityMode::Sandbox,
                ("security", Some("insecure")) if allowed.security_insecure => {
                    security = SecurityMode::Insecure
                }
                ("security", Some("insecure")) => {
                    return Err(Diagnostic::new(
                        "RUN --security=insecure needs the `security.insecure` entitlement",
                        flag.span,
                    )
                    .with_label("not allowed by the command line")
                    .with_help(
                        "build with `--allow security.insecure` to run this step with every \
                         capability",
                    ))
                }
                ("security", other) => {
                    return Err(Diagnostic::new(
                        format!(
                            "--security={}: expected `sandbox` or `insecure`",
                            other.unwrap_or("")
                        ),
                        flag.span,
                    ))
                }
                (name, _) => {
                    return Err(super::not_supported(
                        ins,
                        &format!("RUN --{name} is not supported yet"),
                    ))
                }
            }
        }
        let mut files = Vec::new();
        let args = match &ins.args {
            Args::Json { items, .. } => items.iter().map(|w| w.text.clone()).collect(),
            Args::Shell { text, .. } => {
                let script = match ins.heredocs.as_slice() {
                    [] => text.clone(),
                    // `RUN <<EOF` alone: the body is a script file, run by its shebang.
                    [doc] if is_only_a_marker(text, self.kubefile.escape) => {
                        files.push(ExecFile {
                            name: doc.name.clone(),
                            data: doc.content.clone(),
                            mode: 0o755,
                        });
                        format!("{}/{}", ExecOp::FILES_DIR, doc.name)
                    }
                    // Anything else: the shell reads the heredocs itself, as BuildKit does.
                    docs => {
                        let mut script = text.clone();
                        for doc in docs {
                            script.push('\n');
                            script.push_str(&doc.content);
                            script.push_str(&doc.name);
                        }
                        script
                    }
                };
                vec!["/bin/sh".to_string(), "-c".to_string(), script]
            }
        };
        let rootfs = self.rootfs();
        let description = format!(
            "[{}/{}] RUN {}",
            self.next_step(),
            self.steps_total,
            title(&self.instruction_text(ins))
        );
        let op = Op::Exec(ExecOp {
            args,
            env: self.visible_env(),
            cwd: "/".into(),
            network,
            security,
            files,
            mode: self.options.exec_mode,
            format: self.options.format,
        });
        let mut metadata = self.metadata(ins, description);
        metadata.vars = self.visible_vars();
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

    /// Every variable a RUN sees, as its step's [`OpMetadata::vars`]: the same set as
    /// [`Self::visible_env`], sorted by name.
    fn visible_vars(&self) -> Vec<SeenVar> {
        let mut vars: Vec<SeenVar> = self
            .stage_args
            .iter()
            .filter(|(name, _)| !self.env.iter().any(|(k, _)| k == *name))
            .filter_map(|(name, value)| {
                value.as_ref().map(|v| SeenVar {
                    kind: VarKind::Arg,
                    name: name.clone(),
                    value: Some(v.clone()),
                })
            })
            .chain(self.env.iter().map(|(k, v)| SeenVar {
                kind: VarKind::Env,
                name: k.clone(),
                value: Some(v.clone()),
            }))
            .collect();
        vars.sort_by(|a, b| a.name.cmp(&b.name));
        vars
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

/// `RUN <<EOF` with nothing else on the line: the heredoc is the script.
fn is_only_a_marker(text: &str, escape: char) -> bool {
    let text = text.trim();
    !text.contains(char::is_whitespace) && lexer::heredoc_marker(text, escape).is_some()
}

/// Longest RUN text shown as a step's title; the full text stays in the image history.
const TITLE_MAX: usize = 200;

/// A step title for a RUN text: one line, at most [`TITLE_MAX`] characters.
fn title(text: &str) -> String {
    let line = text.lines().next().unwrap_or("");
    if line.len() == text.len() && text.chars().count() <= TITLE_MAX {
        return text.to_string();
    }
    let cut: String = line.chars().take(TITLE_MAX).collect();
    format!("{cut} …")
}

#[cfg(test)]
mod tests {
    use super::{is_only_a_marker, title};

    #[test]
    fn only_a_lone_marker_makes_a_script() {
        assert!(is_only_a_marker("<<EOF", '\\'));
        assert!(is_only_a_marker(" <<-'EOT' ", '\\'));
        assert!(!is_only_a_marker("<<EOT cat > out.txt", '\\'));
        assert!(!is_only_a_marker("sh <<EOT", '\\'));
    }

    #[test]
    fn long_and_multi_line_titles_are_cut() {
        assert_eq!(title("echo hi"), "echo hi");
        assert_eq!(title("cat <<EOF\nbody"), "cat <<EOF …");
        let long = "x".repeat(3_000_000);
        let t = title(&long);
        assert_eq!(t.chars().count(), super::TITLE_MAX + 2);
        assert!(t.ends_with(" …"));
    }
}

//! The LLB vocabulary: ops, their digests, and the `Definition` a frontend produces.
//!
//! An op's digest is blake3 over a canonical binary encoding of the op ([`encode`]) followed by
//! its inputs' digests, so equal subgraphs have equal digests and collapse. Display names and
//! source spans live in [`OpMetadata`], outside every digest. No IO happens here.

mod chmod;
pub mod collected;
pub mod encode;
pub mod image_spec;
mod op;
pub mod paths;
pub mod url;

pub use op::{
    AddAction, ChartValues, Chmod, CollectOp, Compression, CopyAction, CopySource, ExecFile,
    ExecMode, ExecOp, FileAction, FileOp, LayerFormat, MergeOp, NetworkMode, Op, RegistryLayerOp,
    SecurityMode, SourceOp, UrlSource,
};

use serde::Serialize;

pub use image_spec::{app_dir, AppSpec, AppType, HistoryStep, ImageSpec, Platform};
pub use seal_solver::Id as OpDigest;

/// Where an op came from and how to show it; never part of a digest.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OpMetadata {
    /// Shown in progress, e.g. `[2/5] COPY dir2 data`; `None` for internal ops.
    pub description: Option<String>,
    /// Byte range of the instruction in the Kubefile.
    pub span: Option<(usize, usize)>,
    /// For a COPY: the byte range of each source word, in the order of its sources.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub source_spans: Vec<(usize, usize)>,
    /// The step number shown as `[step/total]` (for `--no-cache-filter`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<usize>,
    /// The stage the op belongs to (its `AS` name, or `stage-<index>`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    /// Not a Kubefile step (image collection): shown only when it logs or fails, never
    /// counted in "N steps cached, M executed".
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub quiet: bool,
    /// The instruction as written (`COPY a.txt /etc`, continuations joined), for telling a
    /// changed line from an unchanged one (`seal build --explain`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The ARG and ENV values the step's definition depends on: the variables its words
    /// expand, and for a RUN every variable in its environment.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub vars: Vec<SeenVar>,
    /// The platform of the op's stage when `FROM --platform` made it another than the one the
    /// build is for (a RUN there runs for it). Never part of a digest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

/// A variable a step saw, and its value then (`None`: unset).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct SeenVar {
    pub kind: VarKind,
    pub name: String,
    pub value: Option<String>,
}

/// Where a variable's value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum VarKind {
    /// `ARG` (with `--build-arg`), or a predefined platform variable.
    Arg,
    /// `ENV`, or the base image's environment.
    Env,
}

impl VarKind {
    /// The Kubefile keyword: `ARG` or `ENV`.
    pub fn keyword(self) -> &'static str {
        match self {
            VarKind::Arg => "ARG",
            VarKind::Env => "ENV",
        }
    }
}

/// One op with its inputs (indices of earlier nodes) and digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Node {
    #[serde(serialize_with = "serialize_digest")]
    pub digest: OpDigest,
    pub op: Op,
    pub inputs: Vec<usize>,
    pub metadata: OpMetadata,
}

/// A build graph: ops in topological order and the node whose result is the image.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Definition {
    pub nodes: Vec<Node>,
    pub output: usize,
}

impl Definition {
    /// Start an empty definition.
    pub fn builder() -> DefinitionBuilder {
        DefinitionBuilder {
            def: Definition::default(),
        }
    }

    /// Pretty JSON for `seal build --print-llb`.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

/// Adds ops in dependency order; an op identical to an earlier one (same digest) is reused.
#[derive(Debug)]
pub struct DefinitionBuilder {
    def: Definition,
}

impl DefinitionBuilder {
    /// Add `op` reading `inputs`; returns the node index (an existing one for a duplicate).
    pub fn add(&mut self, op: Op, inputs: &[usize], metadata: OpMetadata) -> usize {
        let input_digests: Vec<OpDigest> =
            inputs.iter().map(|&i| self.def.nodes[i].digest).collect();
        let digest = op_digest(&op, &input_digests);
        if let Some(i) = self.def.nodes.iter().position(|n| n.digest == digest) {
            if self.def.nodes[i].metadata.description.is_none() {
                self.def.nodes[i].metadata = metadata;
            }
            return i;
        }
        self.def.nodes.push(Node {
            digest,
            op,
            inputs: inputs.to_vec(),
            metadata,
        });
        self.def.nodes.len() - 1
    }

    /// The node at `index`.
    pub fn node(&self, index: usize) -> &Node {
        &self.def.nodes[index]
    }

    /// Finish with `output` as the result node.
    pub fn build(mut self, output: usize) -> Definition {
        self.def.output = output;
        self.def
    }
}

/// `blake3("seal.llb.v2" || encode(op) || input digests)`.
///
/// The version names what the ops' outputs hold, not only how they are encoded: bump it when
/// an op starts producing different layers for the same definition, so caches of the old
/// output miss. v2: layers keep xattrs, hardlinks and device nodes (issue 11); a cached RUN or
/// `COPY --from` of v1 dropped them.
pub fn op_digest(op: &Op, inputs: &[OpDigest]) -> OpDigest {
    let mut enc = encode::Encoder::new("seal.llb.v2");
    op.encode(&mut enc);
    enc.u64(inputs.len() as u64);
    for d in inputs {
        enc.bytes(d.as_bytes());
    }
    enc.finish()
}

fn serialize_digest<S: serde::Serializer>(d: &OpDigest, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("blake3:{}", d.to_hex()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn copy(dest: &str) -> Op {
        Op::File(FileOp {
            actions: vec![FileAction::Copy(CopyAction {
                sources: vec![CopySource {
                    pattern: "a".into(),
                    contents_only: false,
                }],
                dest: dest.into(),
                chmod: None,
                chown: None,
            })],
            format: LayerFormat {
                compression: Compression::Zstd,
                source_date_epoch: 0,
            },
        })
    }

    #[test]
    fn metadata_is_not_part_of_the_digest_and_duplicates_collapse() {
        let mut b = Definition::builder();
        let ctx = b.add(
            Op::Source(SourceOp::Local {
                include: vec!["a".into()],
                exclude: vec![],
            }),
            &[],
            OpMetadata::default(),
        );
        let one = b.add(
            copy("x"),
            &[ctx],
            OpMetadata {
                description: Some("[1/2] COPY a x".into()),
                span: Some((0, 8)),
                ..Default::default()
            },
        );
        let two = b.add(
            copy("x"),
            &[ctx],
            OpMetadata {
                description: Some("[2/2] COPY a x".into()),
                span: Some((9, 17)),
                ..Default::default()
            },
        );
        assert_eq!(one, two);
        let three = b.add(copy("y"), &[ctx], OpMetadata::default());
        assert_ne!(one, three);
        let def = b.build(three);
        assert_eq!(def.nodes.len(), 3);
    }

    #[test]
    fn inputs_are_part_of_the_digest() {
        let op = copy("x");
        assert_ne!(
            op_digest(&op, &[OpDigest::from([1; 32])]),
            op_digest(&op, &[OpDigest::from([2; 32])])
        );
    }
}

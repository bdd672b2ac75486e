//! The op types: Source, File, Exec, Merge, and how each encodes into its digest.

use serde::{Deserialize, Serialize};

pub use crate::chmod::Chmod;
use crate::encode::Encoder;

/// One LLB operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    Source(SourceOp),
    File(FileOp),
    Exec(ExecOp),
    Merge(MergeOp),
    Collect(CollectOp),
    RegistryLayer(RegistryLayerOp),
}

/// Where content enters the graph.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceOp {
    /// The empty rootfs.
    Scratch,
    /// An image from the local store, pinned by manifest digest at lowering time.
    Image { reference: String, manifest: String },
    /// The build context: the paths matching `include` (COPY sources, relative to the context)
    /// minus those matching `exclude` (the ignore file's patterns).
    Local {
        include: Vec<String>,
        exclude: Vec<String>,
    },
}

/// Filesystem actions producing one layer. Input 0 is the source of copies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileOp {
    pub actions: Vec<FileAction>,
    pub format: LayerFormat,
}

/// One action of a [`FileOp`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FileAction {
    Copy(CopyAction),
    Mkdir {
        path: String,
        mode: u32,
    },
    Mkfile {
        path: String,
        mode: u32,
        data: Vec<u8>,
    },
    Rm {
        path: String,
    },
    /// ADD: COPY plus archive unpacking and downloads (`crate::add`).
    Add(AddAction),
}

/// COPY with the seed's destination semantics (KUBEFILE.md "COPY semantics").
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CopyAction {
    pub sources: Vec<CopySource>,
    /// The destination directory, relative to the rootfs (`""` is the root).
    pub dest: String,
    pub chmod: Option<Chmod>,
    pub chown: Option<(u32, u32)>,
}

/// One COPY source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CopySource {
    /// A path or glob relative to the context, cleaned (no `.`/`..`, no leading `/`).
    pub pattern: String,
    /// Written with a trailing `/.`: copy the directory's contents, not the directory.
    pub contents_only: bool,
}

/// ADD (KUBEFILE.md): local sources follow COPY's rules, except that a matched regular file
/// whose name ends in `.tar`, `.tar.gz`, `.tgz`, `.tar.zst` or `.tar.zstd` is unpacked into
/// `dest`; each URL is downloaded to `<dest>/<basename of the URL path>` (never unpacked).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AddAction {
    /// Local sources, one per include pattern of input 0 (a Local source), in order.
    pub sources: Vec<CopySource>,
    /// Downloads, written after the local sources.
    pub urls: Vec<UrlSource>,
    /// The destination directory, relative to the rootfs (`""` is the root).
    pub dest: String,
    pub chmod: Option<Chmod>,
    pub chown: Option<(u32, u32)>,
}

/// One `http(s)://` source of an ADD.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UrlSource {
    pub url: String,
    /// `sha256:<hex>`: the download is verified and the step is cached by (URL, checksum).
    /// Without one the step runs on every build.
    pub checksum: Option<String>,
}

impl FileOp {
    /// True when the op downloads a URL without a checksum: its result may change at any time,
    /// so it is never looked up in or stored to the cache.
    pub fn always_runs(&self) -> bool {
        self.actions.iter().any(|a| match a {
            FileAction::Add(add) => add.urls.iter().any(|u| u.checksum.is_none()),
            _ => false,
        })
    }
}

/// How a layer is encoded; part of the digest because it changes the blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerFormat {
    pub compression: Compression,
    /// Every mtime in the layer (SOURCE_DATE_EPOCH).
    pub source_date_epoch: i64,
}

/// Layer compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

/// Run a command on the rootfs of input 0; its filesystem changes become one layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecOp {
    pub args: Vec<String>,
    /// `NAME=VALUE`, every variable the step can see.
    pub env: Vec<String>,
    pub cwd: String,
    /// `RUN --network`.
    pub network: NetworkMode,
    /// `RUN --security`.
    pub security: SecurityMode,
    /// Files the command can read under [`ExecOp::FILES_DIR`] (a heredoc run as a script),
    /// never part of the layer.
    pub files: Vec<ExecFile>,
    pub mode: ExecMode,
    pub format: LayerFormat,
}

impl ExecOp {
    /// Where [`ExecOp::files`] appear inside a container (BuildKit's path for heredoc scripts).
    pub const FILES_DIR: &'static str = "/dev/pipes";
}

/// A read-only file handed to a RUN step (BuildKit mounts `RUN <<EOF` scripts the same way).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecFile {
    /// A plain file name (no `/`).
    pub name: String,
    pub data: String,
    pub mode: u32,
}

/// `RUN --network`, as BuildKit defines it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NetworkMode {
    /// Only a loopback interface.
    None = 0,
    /// The host's network; needs the `network.host` entitlement.
    Host = 1,
    /// The build's default network: the host's (BuildKit's OCI worker without CNI).
    Default = 2,
}

/// `RUN --security`, as BuildKit defines it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecurityMode {
    /// Docker's default capabilities, masked and read-only kernel paths.
    Sandbox = 0,
    /// Every capability, nothing masked; needs the `security.insecure` entitlement.
    Insecure = 1,
}

/// Who executes a RUN step (`--mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExecMode {
    Lite,
    Container,
    /// A Remote Execution API action (`--remote-executor`); the rootfs is `/`, as in container
    /// mode. Which server runs it is not part of the step's definition.
    Remote,
    /// `--mode cloud`: runc on another machine reached over SSH, with the runtime config
    /// container mode uses. Which host runs it is not part of the step's definition.
    Cloud,
}

impl ExecMode {
    /// The `--mode` value.
    pub fn name(self) -> &'static str {
        match self {
            ExecMode::Lite => "lite",
            ExecMode::Container => "container",
            ExecMode::Remote => "remote",
            ExecMode::Cloud => "cloud",
        }
    }
}

/// Find the container images the rootfs of input 0 needs and resolve each for `platform`
/// (KUBEFILE.md "Image collection"). Runs on every build, because tags move; what it resolved
/// is the content id by which the [`RegistryLayerOp`] reading it is cached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CollectOp {
    /// `OS/ARCH[/VARIANT]` to pick from image indexes.
    pub platform: String,
    /// `--image-list`: normalised references added to what the rootfs names.
    pub added: Vec<String>,
    /// `--ignored-image-list`: normalised references removed.
    pub ignored: Vec<String>,
    /// `--chart-values CHART_DIR=FILE`, in order.
    pub chart_values: Vec<ChartValues>,
}

/// Values for one chart of the rootfs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChartValues {
    /// The chart's directory, relative to the rootfs (`charts/app`).
    pub chart: String,
    /// The values file as given, for messages (not part of the digest).
    pub file: String,
    /// Its YAML text.
    pub yaml: String,
}

/// Write the images input 0 (a [`CollectOp`]) resolved as one layer: `registry/` in the
/// on-disk layout of the CNCF distribution registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RegistryLayerOp {
    pub format: LayerFormat,
}

/// Stack the inputs' layers in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MergeOp {}

impl Op {
    /// Feed the op's canonical encoding into `e`.
    pub fn encode(&self, e: &mut Encoder) {
        match self {
            Op::Source(s) => {
                e.tag(1);
                match s {
                    SourceOp::Scratch => {
                        e.tag(1);
                    }
                    SourceOp::Image {
                        reference,
                        manifest,
                    } => {
                        e.tag(2).str(reference).str(manifest);
                    }
                    SourceOp::Local { include, exclude } => {
                        e.tag(3).strs(include).strs(exclude);
                    }
                }
            }
            Op::File(f) => {
                e.tag(2);
                e.u64(f.actions.len() as u64);
                for a in &f.actions {
                    a.encode(e);
                }
                e.tag(f.format.compression as u8)
                    .i64(f.format.source_date_epoch);
            }
            Op::Exec(x) => {
                e.tag(3)
                    .strs(&x.args)
                    .strs(&x.env)
                    .str(&x.cwd)
                    .tag(x.network as u8)
                    .tag(x.security as u8);
                e.u64(x.files.len() as u64);
                for f in &x.files {
                    e.str(&f.name).str(&f.data).u64(u64::from(f.mode));
                }
                e.tag(x.mode as u8);
                e.tag(x.format.compression as u8)
                    .i64(x.format.source_date_epoch);
            }
            Op::Merge(_) => {
                e.tag(4);
            }
            Op::Collect(c) => {
                e.tag(5).str(&c.platform).strs(&c.added).strs(&c.ignored);
                e.u64(c.chart_values.len() as u64);
                for v in &c.chart_values {
                    e.str(&v.chart).str(&v.yaml);
                }
            }
            Op::RegistryLayer(r) => {
                e.tag(6)
                    .tag(r.format.compression as u8)
                    .i64(r.format.source_date_epoch);
            }
        }
    }
}

impl FileAction {
    /// The directory the action writes into, cleaned (`""` is the root): COPY's and ADD's
    /// destination, a single path's parent. Its resolution in the rootfs below is all the
    /// action reads of that rootfs (KUBEFILE.md "COPY semantics").
    pub fn destination_dir(&self) -> String {
        let parent = |path: &str| {
            let path = crate::paths::clean(path);
            path.rsplit_once('/')
                .map(|(p, _)| p.to_string())
                .unwrap_or_default()
        };
        match self {
            FileAction::Copy(c) => crate::paths::clean(&c.dest),
            FileAction::Add(a) => crate::paths::clean(&a.dest),
            FileAction::Mkdir { path, .. }
            | FileAction::Mkfile { path, .. }
            | FileAction::Rm { path } => parent(path),
        }
    }

    fn encode(&self, e: &mut Encoder) {
        match self {
            FileAction::Copy(c) => {
                e.tag(1).u64(c.sources.len() as u64);
                for s in &c.sources {
                    e.str(&s.pattern).tag(s.contents_only as u8);
                }
                e.str(&c.dest);
                e.opt(c.chmod.as_ref(), |e, m| m.encode(e));
                e.opt(c.chown, |e, (u, g)| {
                    e.u64(u as u64).u64(g as u64);
                });
            }
            FileAction::Mkdir { path, mode } => {
                e.tag(2).str(path).u64(*mode as u64);
            }
            FileAction::Mkfile { path, mode, data } => {
                e.tag(3).str(path).u64(*mode as u64).bytes(data);
            }
            FileAction::Rm { path } => {
                e.tag(4).str(path);
            }
            FileAction::Add(a) => {
                e.tag(5).u64(a.sources.len() as u64);
                for s in &a.sources {
                    e.str(&s.pattern).tag(s.contents_only as u8);
                }
                e.u64(a.urls.len() as u64);
                for u in &a.urls {
                    e.str(&u.url);
                    e.opt(u.checksum.as_deref(), |e, c| {
                        e.str(c);
                    });
                }
                e.str(&a.dest);
                e.opt(a.chmod.as_ref(), |e, m| m.encode(e));
                e.opt(a.chown, |e, (u, g)| {
                    e.u64(u as u64).u64(g as u64);
                });
            }
        }
    }
}

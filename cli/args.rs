//! Command-line flags (clap derive). The only place argv is defined.

pub mod bench;
pub mod cache;
pub mod meta;
pub mod observe;
pub mod units;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

pub use meta::{CompletionArgs, HistoryArgs, ManArgs};

/// seal: a content-addressed build engine for Kubernetes cluster images.
///
/// `seal build` turns a Kubefile into an OCI cluster image, caching every step by the hash of its
/// content: a rebuild with nothing changed executes nothing, and a rebuild after one edit redoes
/// only what the edit reaches.
#[derive(Debug, Parser)]
#[command(name = "seal", version, propagate_version = true, max_term_width = 100)]
pub struct Cli {
    /// Store directory [default: $SEAL_ROOT, else /var/lib/seal for root, else $XDG_DATA_HOME/seal]
    #[arg(long, global = true, value_name = "DIR")]
    pub root: Option<PathBuf>,

    /// Registry (`host[:port]`) to reach over plain HTTP instead of HTTPS; repeat or separate
    /// with commas
    #[arg(
        long = "insecure-registry",
        global = true,
        value_name = "HOST[:PORT]",
        value_delimiter = ',',
        env = "SEAL_INSECURE_REGISTRIES"
    )]
    pub insecure_registries: Vec<String>,

    /// Trust the CA certificates in FILE (PEM) for the registry HOST[:PORT], besides the
    /// system's CA store and /etc/docker/certs.d/HOST[:PORT]/*.crt and
    /// /etc/containers/certs.d/HOST[:PORT]/*.crt (where a client certificate goes too, as
    /// client.cert and client.key); repeat for more
    #[arg(long, global = true, value_name = "HOST[:PORT]=FILE", value_parser = parse_registry_ca)]
    pub registry_ca: Vec<(String, PathBuf)>,

    /// Blob transfers at once per registry (pull, push, FROM pulls)
    #[arg(
        long,
        global = true,
        value_name = "N",
        default_value_t = 3,
        value_parser = clap::value_parser!(u16).range(1..),
        env = "SEAL_MAX_CONCURRENT_TRANSFERS"
    )]
    pub max_concurrent_transfers: u16,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build a cluster image from a Kubefile and a build context
    #[command(after_long_help = KUBEFILE_COPY_FLAGS)]
    Build(Box<BuildArgs>),
    /// List the images in the store
    Images(ImagesArgs),
    /// Hosts earlier cloud builds created and left (`ls`), and deleting them (`gc`)
    Cloud(CloudArgs),
    /// Show an image's manifest digest, config, layers and history as JSON
    Inspect(InspectArgs),
    /// Show an image's layers: size, the Kubefile line that made each, when it was built
    History(HistoryArgs),
    /// Print a shell completion script (`seal completion bash > /etc/bash_completion.d/seal`)
    Completion(CompletionArgs),
    /// Print a manual page as roff (`seal man | man -l -`, `seal man build`)
    Man(ManArgs),
    /// Write an image to an OCI archive, an OCI layout directory or a docker archive
    Save(SaveArgs),
    /// Import images from an OCI archive or layout directory or a docker archive
    Load(LoadArgs),
    /// Remove image names (their blobs stay until `seal prune`)
    Rmi(RmiArgs),
    /// Delete blobs, snapshots and temp files nothing needs; optionally drop cache records
    Prune(PruneArgs),
    /// Show the store's disk usage by kind
    Du(DuArgs),
    /// Check every record and blob of the store; `--repair` drops what is broken
    Fsck(FsckArgs),
    /// Pull a cluster image from a registry into the store
    Pull(PullArgs),
    /// Push a stored image to its registry
    Push(PushArgs),
    /// Give a stored image more names
    Tag(TagArgs),
    /// Check and save credentials for a registry
    Login(LoginArgs),
    /// Remove saved credentials for a registry
    Logout(LogoutArgs),
    /// List the container images a context, rootfs, Helm chart or manifest directory needs
    Scan(ScanArgs),
    /// Time cold, no-op, touch and change rebuilds of a Kubefile in a scratch store and a
    /// scratch copy of its context (never the real ones): medians, peak memory, what ran
    Bench(bench::BenchArgs),
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The Kubefile [default: PATH/Kubefile]
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<PathBuf>,

    /// Name of the image, e.g. `kubernetes:v1.19.8` (stored as docker.io/sealerio/kubernetes:v1.19.8);
    /// repeat to give it several names
    #[arg(short = 't', long = "tag", value_name = "NAME", required = true)]
    pub tags: Vec<String>,

    /// Set a build-time variable declared with ARG; `NAME` alone takes the value from the environment
    #[arg(long = "build-arg", value_name = "NAME=VALUE")]
    pub build_args: Vec<String>,

    /// Do not use cached results: re-run every step (results are still stored for later builds)
    #[arg(long)]
    pub no_cache: bool,

    /// Re-run only these steps, keep using the cache for the rest: a step number as shown in
    /// `[2/5]`, a stage name (all its steps), or `STAGE:N`; repeat or separate with commas
    #[arg(long, value_name = "STEP|STAGE", value_delimiter = ',')]
    pub no_cache_filter: Vec<String>,

    /// Say why each step that runs is not cached: first build, --no-cache, which source files
    /// changed, which ARG/ENV value, the base or an earlier step, the Kubefile line
    #[arg(long)]
    pub explain: bool,

    /// Build this stage (`FROM image AS NAME`) instead of the last one
    #[arg(long, value_name = "NAME")]
    pub target: Option<String>,

    /// Build for these platforms, `OS/ARCH[/VARIANT]`, comma-separated or repeated [default:
    /// the host's]; two or more make the name an image index with one image per platform
    #[arg(long, value_name = "PLATFORM", value_delimiter = ',')]
    pub platform: Vec<String>,

    /// Progress output: a live view on terminals, plain lines, or one JSON event per line
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto)]
    pub progress: ProgressMode,

    /// Run at most N steps at once [default: number of CPU cores]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub max_parallelism: Option<u16>,

    /// Print the LLB Definition the Kubefile lowers to, as JSON, and exit without building
    #[arg(long)]
    pub print_llb: bool,

    /// Layer compression
    #[arg(long, value_enum, default_value_t = CompressionArg::Zstd)]
    pub compression: CompressionArg,

    /// WHO RUNS `RUN` steps (not to be confused with --build-mode, which is about image
    /// collection): host tools (lite), an isolated container, or remote hosts (cloud). lite: the rootfs is the working directory (at /run/seal/rootfs) in a private mount
    /// namespace where the host's `/` is read-only and /tmp and $HOME are private; container:
    /// runc with Docker's default capabilities, the rootfs as `/`. Either way the rootfs is an
    /// overlay of one snapshot per layer: an EROFS image file where Linux (6.12+) can mount
    /// one, else a directory tree (SEAL_SNAPSHOT_FORMAT=auto|image|directory picks)
    #[arg(short = 'm', long, value_enum, default_value_t = ModeArg::Lite)]
    pub mode: ModeArg,

    /// Run every RUN step as an action of this Remote Execution API v2 server
    /// (`grpc://HOST:PORT`, or `grpcs://HOST:PORT` for TLS): Buildbarn, BuildGrid, BuildBuddy,
    /// NativeLink, buildbox-casd. The rootfs is the action's input root and `/` of the command,
    /// as in container mode; COPY, ADD and image collection stay on this machine. Replaces --mode
    #[arg(long, value_name = "URL")]
    pub remote_executor: Option<String>,

    /// The server's instance name (--remote-executor)
    #[arg(long, value_name = "NAME", requires = "remote_executor")]
    pub remote_instance_name: Option<String>,

    /// A header sent with every call to the remote executor, e.g. `authorization=Bearer TOKEN`;
    /// repeatable
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse_key_value, requires = "remote_executor")]
    pub remote_header: Vec<(String, String)>,

    /// How long one call to the remote executor may take, the action's execution included
    /// (units s, m, h, d)
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = units::parse_duration)]
    pub remote_timeout: u64,

    /// A platform property of every remote action (a worker pool, an architecture), e.g.
    /// `OSFamily=linux`; repeatable
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse_key_value, requires = "remote_executor")]
    pub remote_platform: Vec<(String, String)>,

    /// Remote RUN steps in flight at once, besides --max-parallelism local steps
    #[arg(long, value_name = "N", default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..))]
    pub remote_jobs: u16,

    /// --mode cloud: run RUN steps on this host over SSH (`ssh://USER@HOST[:PORT]`), in runc
    /// with container mode's runtime config. The system `ssh` connects (your ~/.ssh/config,
    /// agent, ProxyJump and known_hosts apply); seal copies itself to the host when it lacks
    /// this version. COPY, ADD and image collection stay on this machine
    #[arg(long, value_name = "URL")]
    pub cloud_host: Option<String>,

    /// The ssh_config file for --cloud-host (`ssh -F FILE`) instead of ~/.ssh/config; with
    /// --cloud-provider it is included first in the config seal writes (its HostName, Port
    /// or ProxyJump for the instance's id win)
    #[arg(long, value_name = "FILE")]
    pub cloud_ssh_config: Option<PathBuf>,

    /// Trust a cloud host whose key known_hosts lacks, and add it (a changed key is still
    /// refused)
    #[arg(long, requires = "cloud_host")]
    pub cloud_accept_new_host_key: bool,

    /// The seal binary the cloud host runs, for a host of another architecture (default:
    /// this one)
    #[arg(long, value_name = "PATH")]
    pub cloud_seal_binary: Option<PathBuf>,

    #[command(flatten)]
    pub cloud_api: CloudApiArgs,

    /// --cloud-provider: the instance type of the host seal creates (default: t3.medium on
    /// aws, ecs.g7.large on alicloud)
    #[arg(long, requires = "cloud_provider", value_name = "TYPE")]
    pub cloud_instance_type: Option<String>,

    /// --cloud-provider: the image (AMI id, or ECS image id) of the host; it must run
    /// cloud-init (default: the newest Ubuntu 24.04 LTS amd64 image, from Canonical on aws,
    /// Alibaba's system image on alicloud)
    #[arg(long, requires = "cloud_provider", value_name = "ID")]
    pub cloud_image: Option<String>,

    /// --cloud-provider: the addresses the host's security group admits to port 22 (default:
    /// this machine's public address, from checkip.amazonaws.com)
    #[arg(long, requires = "cloud_provider", value_name = "CIDR")]
    pub cloud_allow_from: Option<String>,

    /// --cloud-provider: how long after creation `seal cloud gc` may delete the host if this
    /// build cannot (killed): 30m, 6h, 2d
    #[arg(
        long,
        requires = "cloud_provider",
        value_name = "DURATION",
        default_value = "6h"
    )]
    pub cloud_ttl: String,

    /// --cloud-provider: how long to wait for the instance and its SSH
    #[arg(
        long,
        requires = "cloud_provider",
        value_name = "DURATION",
        default_value = "10m"
    )]
    pub cloud_wait: String,

    /// Grant an entitlement to RUN steps that ask for it, as BuildKit does: `network.host`
    /// (`RUN --network=host`), `security.insecure` (`RUN --security=insecure`: every
    /// capability, no masked paths). Repeatable
    #[arg(long, value_enum, value_name = "ENTITLEMENT")]
    pub allow: Vec<Entitlement>,

    /// When to pull FROM images from their registry: when the store lacks them, every time, or
    /// never. Collected images: `never` asks no registry and uses what this store resolved
    /// before; otherwise each tag is checked with one manifest request per build
    #[arg(long, value_enum, default_value_t = PullPolicy::Missing)]
    pub pull: PullPolicy,

    /// WHETHER IMAGES ARE COLLECTED (Sealer's flag; unrelated to --mode, which picks who runs
    /// RUN): `full` pulls every container image the cluster needs (from manifests/,
    /// application/apps/ and charts/ of the result) into its registry/ directory; `lite` skips
    /// collection
    #[arg(long, value_enum, default_value_t = BuildMode::Full)]
    pub build_mode: BuildMode,

    /// Also collect the references listed in FILE (one per line; blank and `#` lines ignored)
    #[arg(long, value_name = "FILE")]
    pub image_list: Vec<PathBuf>,

    /// Do not collect the references listed in FILE (same format as --image-list)
    #[arg(long, value_name = "FILE")]
    pub ignored_image_list: Vec<PathBuf>,

    /// Also collect the images of FILE, Sealer's imageListWithAuth.yaml: a YAML list of
    /// `{registry, username, password, images}` (`registry` is the domain of short names);
    /// each entry's credentials are used for its own images only and stored nowhere.
    /// `imageListWithAuth.yaml` at the root of the context is read without this flag
    #[arg(long, value_name = "FILE")]
    pub image_list_with_auth: Vec<PathBuf>,

    /// Render the chart at CHART_DIR (its directory in the image, e.g. `charts/app`) with the
    /// values in FILE, as `helm template -f FILE` does; repeat for more files or charts
    #[arg(long, value_name = "CHART_DIR=FILE")]
    pub chart_values: Vec<String>,

    #[command(flatten)]
    pub observe: observe::ObserveArgs,

    /// Export this build's cache records, in BuildKit's syntax:
    /// `type=registry,ref=REG/REPO:TAG`, `type=local,dest=DIR` or
    /// `type=s3,bucket=B,region=R[,endpoint_url=URL][,prefix=P][,name=N]`, plus `mode=min|max`
    /// (max: intermediate stages too) and `ignore-error=true`. Whoever can write the cache can
    /// poison it: import only caches you trust (see the README)
    #[arg(long, value_name = "SPEC", value_parser = cache::parse_cache_to)]
    pub cache_to: Vec<seal_engine::remote_cache::CacheExport>,

    /// Use cache records exported by another build: `type=registry,ref=REG/REPO:TAG` (or
    /// just the ref), `type=local,src=DIR` or `type=s3,...`; repeatable, consulted after the local store
    /// in the order given. One that cannot be read is a warning
    #[arg(long, value_name = "SPEC", value_parser = cache::parse_cache_from)]
    pub cache_from: Vec<seal_engine::remote_cache::CacheLocation>,

    /// The build context: the directory COPY sources are relative to
    #[arg(value_name = "PATH")]
    pub context: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProgressMode {
    /// tty when stderr is a terminal, plain otherwise
    Auto,
    /// a live view that redraws in place
    Tty,
    /// one line per event: `#N [2/5] COPY dir2 data`, `#N CACHED`, `#N DONE 0.12s`
    Plain,
    /// one JSON object per event and line
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BuildMode {
    /// Collect container images into registry/
    Full,
    /// Skip image collection
    Lite,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PullPolicy {
    Missing,
    Always,
    Never,
}

#[derive(Debug, Args)]
pub struct PullArgs {
    /// Platforms to pick from a multi-platform image, comma-separated or repeated [default:
    /// the host's]; two or more store an index of those platforms under the name
    #[arg(long, value_name = "OS/ARCH[/VARIANT]", value_delimiter = ',')]
    pub platform: Vec<String>,
    /// Progress output: live bars on terminals, plain lines, or one JSON event per line
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto)]
    pub progress: ProgressMode,
    /// Write the blob transfers as a Chrome trace-event timeline to FILE (as `build --trace`)
    #[arg(long, value_name = "FILE")]
    pub trace: Option<PathBuf>,
    /// Image name (Sealer's defaults: `kubernetes:v1.19.8` is docker.io/sealerio/kubernetes)
    pub name: String,
}

#[derive(Debug, Args)]
pub struct PushArgs {
    /// Progress output: live bars on terminals, plain lines, or one JSON event per line
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto)]
    pub progress: ProgressMode,
    /// Write the blob transfers (uploads, mounts, blobs already there) as a Chrome
    /// trace-event timeline to FILE (as `build --trace`)
    #[arg(long, value_name = "FILE")]
    pub trace: Option<PathBuf>,
    /// Image name; its registry is where it goes
    pub name: String,
}

#[derive(Debug, Args)]
pub struct TagArgs {
    /// A stored image
    pub source: String,
    /// New names
    #[arg(value_name = "TARGET", required = true)]
    pub targets: Vec<String>,
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// User name
    #[arg(short = 'u', long)]
    pub username: String,
    /// Password (prefer --password-stdin: arguments are visible to other users)
    #[arg(short = 'p', long, conflicts_with = "password_stdin")]
    pub password: Option<String>,
    /// Read the password from stdin
    #[arg(long)]
    pub password_stdin: bool,
    /// Registry `host[:port]`
    pub registry: String,
}

#[derive(Debug, Args)]
pub struct LogoutArgs {
    /// Registry `host[:port]`
    pub registry: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompressionArg {
    Gzip,
    Zstd,
    None,
}

/// `--allow` entitlements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Entitlement {
    #[value(name = "network.host")]
    NetworkHost,
    #[value(name = "security.insecure")]
    SecurityInsecure,
}

/// `KEY=VALUE` with a non-empty key.
fn parse_key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(format!("`{s}` is not KEY=VALUE")),
    }
}

/// Which cloud API seal creates hosts through, and where.
#[derive(Debug, Args)]
pub struct CloudApiArgs {
    /// --mode cloud on a host seal creates for the build and deletes afterwards (instead of
    /// --cloud-host). aws: credentials as the AWS tools find them (AWS_ACCESS_KEY_ID...,
    /// AWS_PROFILE, ~/.aws/config and credentials, SSO, web identity, instance metadata);
    /// alicloud: ALIBABA_CLOUD_ACCESS_KEY_ID/_SECRET (or ALICLOUD_ACCESS_KEY/ALICLOUD_SECRET_KEY),
    /// else the aliyun CLI's ~/.aliyun/config.json
    #[arg(long, value_enum, value_name = "PROVIDER")]
    pub cloud_provider: Option<CloudProviderArg>,

    /// The region (default: aws: AWS_REGION, AWS_DEFAULT_REGION, the profile's region, else
    /// us-east-1; alicloud: ALIBABA_CLOUD_REGION_ID, ALICLOUD_REGION, else cn-hangzhou)
    #[arg(long, value_name = "REGION")]
    pub cloud_region: Option<String>,

    /// The API endpoint (default: aws: AWS_ENDPOINT_URL_EC2, AWS_ENDPOINT_URL, else the
    /// region's; alicloud: https://ecs.REGION.aliyuncs.com and https://vpc.REGION.aliyuncs.com,
    /// both replaced by this URL)
    #[arg(long, value_name = "URL")]
    pub cloud_endpoint: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CloudProviderArg {
    Aws,
    /// Alibaba Cloud ECS
    Alicloud,
}

/// `seal cloud`: what earlier builds left on a provider.
#[derive(Debug, Args)]
pub struct CloudArgs {
    #[command(subcommand)]
    pub command: CloudCommand,
}

#[derive(Debug, Subcommand)]
pub enum CloudCommand {
    /// List the resources tagged seal-build (instances and security groups; on alicloud also
    /// vSwitches and VPCs; terminated instances are gone)
    Ls(CloudApiArgs),
    /// Delete those past their seal-expires time
    Gc(CloudApiArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    Lite,
    Container,
    Cloud,
}

#[derive(Debug, Args)]
pub struct ImagesArgs {
    /// Output format
    #[arg(long, value_enum, default_value_t = FormatArg::Table)]
    pub format: FormatArg,
    /// Print only the names, one per line (for `seal rmi $(seal images -q NAME)`)
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Only images of this repository (`kubernetes`: every tag) or with this name
    /// (`kubernetes:v1.19.8`, `kubernetes@sha256:...`)
    #[arg(value_name = "NAME")]
    pub name: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    Table,
    Json,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Image name (`NAME[:TAG]`, `NAME@sha256:...`), or a manifest digest or a prefix of one
    /// (`sha256:3f9a2c`, `3f9a2c`) as `seal images` shows it
    pub name: String,
}

#[derive(Debug, Args)]
pub struct SaveArgs {
    /// Output file (a directory for oci-dir: it must not exist, or be empty); `-` for stdout,
    /// which is also the default when stdout is not a terminal
    #[arg(short = 'o', long = "output", value_name = "PATH")]
    pub output: Option<PathBuf>,
    /// Output format: an OCI archive (tar), an OCI image layout directory, or a `docker save`
    /// archive (uncompressed layers, for `docker load`/`podman load`)
    #[arg(long, value_enum, default_value_t = SaveFormat::OciArchive)]
    pub format: SaveFormat,
    /// Of a multi-platform image, save only these platforms, comma-separated or repeated
    /// [default: all it has; one platform saves a plain image]
    #[arg(long, value_name = "OS/ARCH[/VARIANT]", value_delimiter = ',')]
    pub platform: Vec<String>,
    /// Image name
    pub name: String,
}

#[derive(Debug, Args)]
pub struct RmiArgs {
    /// Do not fail on names that are not in the store
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Image names
    #[arg(value_name = "NAME", required = true)]
    pub names: Vec<String>,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Also drop every cache record: keep only what image names reach
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Drop least-recently-used cache records until blobs and snapshots take at most SIZE
    /// (`10GiB`, `500MB`; units B, KB/MB/GB/TB, KiB/MiB/GiB/TiB)
    #[arg(long, value_name = "SIZE", value_parser = units::parse_size)]
    pub keep_storage: Option<u64>,
    /// Drop cache records not used within DUR (`24h`, `7d`, `1h30m`; units s, m, h, d)
    #[arg(long, value_name = "DUR", value_parser = units::parse_duration)]
    pub keep_duration: Option<u64>,
    /// Print what would be freed, delete nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Output format
    #[arg(long, value_enum, default_value_t = FormatArg::Table)]
    pub format: FormatArg,
}

#[derive(Debug, Args)]
pub struct DuArgs {
    /// Output format
    #[arg(long, value_enum, default_value_t = FormatArg::Table)]
    pub format: FormatArg,
}

#[derive(Debug, Args)]
pub struct FsckArgs {
    /// Drop what is broken: names and cache records naming missing or corrupt blobs, corrupt
    /// blobs, leftovers of interrupted writes (unreferenced blobs are left to `seal prune`)
    #[arg(long)]
    pub repair: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SaveFormat {
    OciArchive,
    OciDir,
    DockerArchive,
}

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// The archive (OCI or docker, may be gzip/zstd compressed; `-` for stdin) or OCI layout
    /// directory
    #[arg(short = 'i', long = "input", value_name = "PATH")]
    pub input: PathBuf,
    /// Name the archive's one image NAME (instead of the names the archive gives)
    #[arg(short = 't', long = "tag", value_name = "NAME")]
    pub tag: Option<String>,
}

#[derive(Debug, Args)]
pub struct ScanArgs {
    /// Output: one reference per line, or a JSON array of {reference, file, document, field}
    #[arg(long, value_enum, default_value_t = ScanFormat::Text)]
    pub format: ScanFormat,
    /// Values file for the charts found, as `helm template -f` (repeat; later files win)
    #[arg(short = 'f', long = "values", value_name = "FILE")]
    pub values: Vec<PathBuf>,
    /// A build context or rootfs (manifests/, application/apps/, charts/), a chart directory, a
    /// manifest directory, or one file (YAML manifest or imageList)
    #[arg(value_name = "PATH")]
    pub path: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScanFormat {
    Text,
    Json,
}

/// `seal build --help`: what the Kubefile's COPY/ADD/FROM flags do (issue 12: no flag is
/// silently dropped).
const KUBEFILE_COPY_FLAGS: &str = "\
Kubefile flags of COPY and ADD:
  --chmod=MODE    octal (0644, also applied to directories) or symbolic (u=rwX,go=rX)
  --chown=UID:GID numeric owner of the copied files
  --from=STAGE    copy from another stage or a stored image (COPY only)
  --link          the layer ignores the layers below: symlinks of the image below on the
                  destination are not followed (as in BuildKit); without it a COPY follows
                  them inside the rootfs and keeps existing directories' mode and owner
  --checksum=sha256:HEX  verify and cache an ADD download
  --keep-git-dir  refused: git sources are not supported
FROM --platform=P builds that stage for P (e.g. $BUILDPLATFORM: a tool stage that runs on this\nmachine once for every target); its base image is resolved for P.";

/// `HOST[:PORT]=FILE` of `--registry-ca`; the file must exist.
fn parse_registry_ca(s: &str) -> Result<(String, PathBuf), String> {
    let Some((host, file)) = s.split_once('=') else {
        return Err(
            "expected HOST[:PORT]=FILE, e.g. harbor.example.com=/etc/pki/harbor-ca.pem".into(),
        );
    };
    if host.is_empty() || host.contains('/') {
        return Err(format!(
            "`{host}` is not a registry host: write HOST or HOST:PORT, without a scheme or path"
        ));
    }
    let file = PathBuf::from(file);
    if !file.is_file() {
        return Err(format!("{}: no such file", file.display()));
    }
    Ok((host.to_string(), file))
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn flags_are_consistent() {
        super::Cli::command().debug_assert();
    }
}

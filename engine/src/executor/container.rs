//! `--mode container`: the step runs inside an isolated container through runc.
//!
//! The merged overlay is the container's `/`; the container gets new PID, mount, UTS, IPC and
//! network namespaces (network none — only `lo` — unless host networking is asked for), with
//! `/proc`, `/dev` and a tmpfs `/tmp`. The runtime config is generated with oci-spec's runtime
//! types. runc is Debian's package (crun fails on these hosts' hybrid cgroups).

use std::path::Path;

use oci_spec::runtime::{LinuxNamespaceType, MountBuilder, ProcessBuilder, RootBuilder, Spec};
use seal_solver::ExecContext;

use crate::executor::lite::DEFAULT_PATH;
use crate::executor::process::run_in_overlay;
use crate::executor::{ExecRequest, Executor};
use crate::EngineError;

/// Where Debian installs runc.
pub const RUNC: &str = "/usr/sbin/runc";

/// Runs steps in runc containers.
pub struct ContainerExecutor;

impl Executor for ContainerExecutor {
    fn run(&self, request: &ExecRequest, cx: &ExecContext) -> Result<(), EngineError> {
        if !Path::new(RUNC).exists() {
            return Err(EngineError::Spawn {
                what: "runc".into(),
                reason: format!("{RUNC} is missing; install it with `apt-get install runc`"),
            });
        }
        let bundle = request.run_dir.join("bundle");
        std::fs::create_dir_all(&bundle).map_err(|e| EngineError::io("creating", &bundle, e))?;
        let spec = runtime_spec(request)?;
        let config = serde_json::to_vec_pretty(&spec)
            .map_err(|e| EngineError::Internal(format!("encoding config.json: {e}")))?;
        std::fs::write(bundle.join("config.json"), config)
            .map_err(|e| EngineError::io("writing", &bundle.join("config.json"), e))?;
        let id = format!(
            "seal-{}",
            request
                .run_dir
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("step")
                .trim_start_matches('.')
        );
        let state_root = request.run_dir.join("runc-state");
        let command: Vec<String> = vec![
            RUNC.into(),
            "--root".into(),
            state_root.display().to_string(),
            "run".into(),
            "--bundle".into(),
            bundle.display().to_string(),
            id.clone(),
        ];
        let env = vec![("PATH".to_string(), DEFAULT_PATH.to_string())];
        let result = run_in_overlay(
            request,
            &command,
            &request.run_dir.display().to_string(),
            &env,
            cx,
        );
        // A cancelled or crashed runc can leave its container behind: remove it by force.
        if result.is_err() {
            let _ = std::process::Command::new(RUNC)
                .args([
                    "--root",
                    &state_root.display().to_string(),
                    "delete",
                    "--force",
                    &id,
                ])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status();
        }
        result
    }
}

/// The OCI runtime config for one step.
fn runtime_spec(request: &ExecRequest) -> Result<Spec, EngineError> {
    let err = |e: oci_spec::OciSpecError| {
        EngineError::Internal(format!("building the runtime config: {e}"))
    };
    let mut spec = Spec::default();
    let mut env: Vec<String> = request
        .env
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    if !request.env.iter().any(|(k, _)| k == "PATH") {
        env.push(format!("PATH={DEFAULT_PATH}"));
    }
    if !request.env.iter().any(|(k, _)| k == "HOME") {
        env.push("HOME=/root".into());
    }
    let process = ProcessBuilder::default()
        .terminal(false)
        .args(request.args.clone())
        .env(env)
        .cwd(if request.cwd.is_empty() {
            "/".to_string()
        } else {
            request.cwd.clone()
        })
        .no_new_privileges(true)
        .build()
        .map_err(err)?;
    spec.set_process(Some(process));
    spec.set_root(Some(
        RootBuilder::default()
            .path(request.merged())
            .readonly(false)
            .build()
            .map_err(err)?,
    ));
    spec.set_hostname(Some("seal".into()));
    let mut mounts = spec.mounts().clone().unwrap_or_default();
    mounts.retain(|m| m.destination() != Path::new("/tmp"));
    mounts.push(
        MountBuilder::default()
            .destination("/tmp")
            .typ("tmpfs")
            .source("tmpfs")
            .options(vec!["nosuid".into(), "nodev".into(), "mode=1777".into()])
            .build()
            .map_err(err)?,
    );
    spec.set_mounts(Some(mounts));
    if let Some(linux) = spec.linux_mut() {
        let mut namespaces = linux.namespaces().clone().unwrap_or_default();
        if request.host_network {
            namespaces.retain(|n| n.typ() != LinuxNamespaceType::Network);
        }
        linux.set_namespaces(Some(namespaces));
    }
    Ok(spec)
}

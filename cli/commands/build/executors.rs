//! Who runs RUN steps other than this machine, as the flags name them: a Remote Execution
//! API server (`--remote-executor`) or a cloud host (`--cloud-host`, or one provisioned).

use std::sync::Arc;

use seal_engine::executor::cloud::provision::Provisioned;
use seal_engine::executor::cloud::ssh::{CloudHost, SshOptions};
use seal_engine::executor::cloud::{CloudExecutor, CloudOptions};
use seal_engine::executor::remote::RemoteExecutor;

use crate::args::BuildArgs;
use crate::failure::Failure;

/// The remote executor `--remote-executor` and its `--remote-*` flags name (it connects at
/// the first remote RUN).
pub(super) fn remote_executor(args: &BuildArgs) -> Result<Option<Arc<RemoteExecutor>>, Failure> {
    let Some(url) = &args.remote_executor else {
        return Ok(None);
    };
    let endpoint = seal_remote::Endpoint::parse(url)
        .map_err(|e| Failure::Usage(format!("--remote-executor: {e}")))?;
    let mut options = seal_remote::RemoteOptions::new(endpoint);
    options.instance_name = args.remote_instance_name.clone().unwrap_or_default();
    options.headers = args.remote_header.clone();
    options.timeout = std::time::Duration::from_secs(args.remote_timeout.max(1));
    options.platform = args.remote_platform.clone();
    options.jobs = usize::from(args.remote_jobs);
    Ok(Some(Arc::new(RemoteExecutor::new(options))))
}

/// The files `--cloud-ssh-config` and `--cloud-seal-binary` name must exist: checked before a
/// host is provisioned or reached, for `--cloud-host` and `--cloud-provider` alike.
pub(super) fn check_cloud_files(args: &BuildArgs) -> Result<(), Failure> {
    let files = [
        ("--cloud-ssh-config", &args.cloud_ssh_config),
        ("--cloud-seal-binary", &args.cloud_seal_binary),
    ];
    for (flag, file) in files {
        if let Some(file) = file.as_ref().filter(|f| !f.is_file()) {
            return Err(Failure::Usage(format!(
                "{flag} {}: no such file",
                file.display()
            )));
        }
    }
    Ok(())
}

/// The cloud host `--cloud-host` and its `--cloud-*` flags name (it connects at the first
/// cloud RUN).
pub(super) fn cloud_executor(
    args: &BuildArgs,
    provisioned: Option<&Provisioned>,
) -> Result<Option<Arc<CloudExecutor>>, Failure> {
    if let Some(host) = provisioned {
        return Ok(Some(Arc::new(CloudExecutor::new(CloudOptions {
            ssh: SshOptions {
                host: CloudHost::parse(&format!("ssh://root@{}", host.ssh_host))
                    .map_err(|e| Failure::Error(anyhow::anyhow!("provisioned host: {e}")))?,
                config: Some(host.ssh_config.clone()),
                accept_new_host_key: false,
                extra_options: host.ssh_options(),
            },
            seal_binary: args.cloud_seal_binary.clone(),
        }))));
    }
    let Some(url) = &args.cloud_host else {
        if args.cloud_ssh_config.is_some()
            || args.cloud_accept_new_host_key
            || args.cloud_seal_binary.is_some()
        {
            return Err(Failure::Usage(
                "--cloud-ssh-config, --cloud-accept-new-host-key and --cloud-seal-binary go with --cloud-host or --cloud-provider".into(),
            ));
        }
        return Ok(None);
    };
    let host = CloudHost::parse(url).map_err(|e| Failure::Usage(format!("--cloud-host {e}")))?;
    Ok(Some(Arc::new(CloudExecutor::new(CloudOptions {
        ssh: SshOptions {
            host,
            config: args.cloud_ssh_config.clone(),
            accept_new_host_key: args.cloud_accept_new_host_key,
            extra_options: Vec::new(),
        },
        seal_binary: args.cloud_seal_binary.clone(),
    }))))
}

//! `seal cloud ls|gc` (what earlier builds left on a provider, by tag) and the provisioned
//! host of `seal build --cloud-provider`.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::Context as _;

use seal_engine::executor::cloud::aws::{self, ec2, AwsOptions, Provisioned};

use crate::args::{BuildArgs, CloudApiArgs, CloudArgs, CloudCommand, CloudProviderArg};
use crate::failure::Failure;
use crate::output::{errln, outln};

/// The provider's API (`--cloud-provider` defaults to aws, the only one so far).
fn client(api: &CloudApiArgs) -> Result<ec2::Ec2, Failure> {
    ec2::Ec2::new(api.cloud_region.as_deref(), api.cloud_endpoint.as_deref()).map_err(|e| match e {
        ec2::Ec2Error::Endpoint(_) => Failure::Usage(e.to_string()),
        e => Failure::Error(e.into()),
    })
}

/// Run `seal cloud ls|gc`.
pub fn run(args: CloudArgs) -> Result<(), Failure> {
    match args.command {
        CloudCommand::Ls(api) => {
            let ec2 = client(&api)?;
            let found = aws::list(&ec2).map_err(|e| Failure::Error(e.into()))?;
            outln!(
                "{:<14}  {:<15}  {:<22}  {:<13}  {:<20}  EXPIRED",
                "BUILD",
                "KIND",
                "ID",
                "STATE",
                "EXPIRES"
            )?;
            for l in found {
                outln!(
                    "{:<14}  {:<15}  {:<22}  {:<13}  {:<20}  {}",
                    l.build_id,
                    l.kind,
                    l.id,
                    l.state,
                    l.expires,
                    if l.expired { "yes" } else { "no" }
                )?;
            }
            Ok(())
        }
        CloudCommand::Gc(api) => {
            let ec2 = client(&api)?;
            let deleted = aws::gc(&ec2, &|m| {
                errln!("{m}");
            })
            .map_err(|e| Failure::Error(e.into()))?;
            errln!("deleted {} expired resources", deleted.len());
            Ok(())
        }
    }
}

/// `--cloud-provider`'s host for a build: created now, deleted when dropped.
pub fn provision(
    args: &BuildArgs,
    interrupted: Arc<AtomicBool>,
) -> Result<Option<Provisioned>, Failure> {
    let Some(CloudProviderArg::Aws) = args.cloud_api.cloud_provider else {
        return Ok(None);
    };
    if args.cloud_host.is_some() {
        return Err(Failure::Usage(
            "--cloud-host and --cloud-provider both say where RUN steps run; pick one".into(),
        ));
    }
    if args.cloud_accept_new_host_key {
        return Err(Failure::Usage(
            "--cloud-accept-new-host-key: a --cloud-provider host's key is seal's own, always checked"
                .into(),
        ));
    }
    let duration = |flag: &str, text: &str| {
        aws::parse_duration(text).map_err(|e| Failure::Usage(format!("{flag} {e}")))
    };
    if let Some(config) = &args.cloud_ssh_config {
        if !config.is_file() {
            return Err(Failure::Usage(format!(
                "--cloud-ssh-config {}: no such file",
                config.display()
            )));
        }
    }
    let options = AwsOptions {
        region: args.cloud_api.cloud_region.clone(),
        instance_type: args.cloud_instance_type.clone(),
        image: args.cloud_image.clone(),
        endpoint: args.cloud_api.cloud_endpoint.clone(),
        allow_from: args.cloud_allow_from.clone(),
        ttl: duration("--cloud-ttl", &args.cloud_ttl)?,
        ssh_config: args.cloud_ssh_config.clone(),
        wait: duration("--cloud-wait", &args.cloud_wait)?,
    };
    match aws::provision(&options, &interrupted, &|m| {
        errln!("{m}");
    }) {
        Ok(host) => Ok(Some(host)),
        Err(aws::AwsError::Interrupted(_)) => Err(Failure::Interrupted),
        Err(e) => Err(Failure::Error(
            anyhow::Error::new(e).context("--cloud-provider aws"),
        )),
    }
}

/// Set `flag` at SIGINT from now on (a thread of its own: provisioning runs before the
/// build's runtime), instead of the process dying with resources left on the provider.
pub fn watch_interrupts(flag: Arc<std::sync::atomic::AtomicBool>) -> Result<(), Failure> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the signal watcher")?;
    let mut signal = {
        let _inside = runtime.enter();
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
            .context("watching for Ctrl-C")?
    };
    std::thread::spawn(move || {
        runtime.block_on(async {
            while signal.recv().await.is_some() {
                flag.store(true, std::sync::atomic::Ordering::SeqCst);
            }
        })
    });
    Ok(())
}

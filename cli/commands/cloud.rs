//! `seal cloud ls|gc` (what earlier builds left on a provider, by tag) and the provisioned
//! host of `seal build --cloud-provider aws|alicloud`.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use anyhow::Context as _;

use seal_engine::executor::cloud::alicloud;
use seal_engine::executor::cloud::aws::{self, ec2};
use seal_engine::executor::cloud::provision::{parse_duration, HostOptions, Leftover, Provisioned};
use seal_engine::executor::cloud::ssh::{CloudHost, SshOptions};
use seal_engine::executor::cloud::HostProvider;
use seal_engine::EngineError;

use crate::args::{BuildArgs, CloudApiArgs, CloudArgs, CloudCommand, CloudProviderArg};
use crate::failure::Failure;
use crate::output::{errln, outln};

/// The provider `seal cloud ls|gc` looks at.
fn named_provider(api: &CloudApiArgs) -> Result<CloudProviderArg, Failure> {
    api.cloud_provider.ok_or_else(|| {
        Failure::Usage("name the provider to look at: --cloud-provider aws|alicloud".into())
    })
}

fn aws_client(api: &CloudApiArgs) -> Result<ec2::Ec2, Failure> {
    ec2::Ec2::new(api.cloud_region.as_deref(), api.cloud_endpoint.as_deref()).map_err(|e| match e {
        ec2::Ec2Error::Endpoint(_) => Failure::Usage(e.to_string()),
        e => Failure::Error(e.into()),
    })
}

fn alicloud_client(api: &CloudApiArgs) -> Result<alicloud::api::Client, Failure> {
    alicloud::client(
        &alicloud::region_or_default(api.cloud_region.as_deref()),
        api.cloud_endpoint.as_deref(),
    )
    .map_err(|e| match e {
        alicloud::AlicloudError::Api(e @ alicloud::api::ApiError::Endpoint(_)) => {
            Failure::Usage(format!("--cloud-endpoint: {e}"))
        }
        e => Failure::Error(e.into()),
    })
}

/// What earlier builds left on the provider.
fn leftovers(api: &CloudApiArgs) -> Result<Vec<Leftover>, Failure> {
    match named_provider(api)? {
        CloudProviderArg::Aws => aws::list(&aws_client(api)?).map_err(|e| Failure::Error(e.into())),
        CloudProviderArg::Alicloud => {
            alicloud::list(&alicloud_client(api)?).map_err(|e| Failure::Error(e.into()))
        }
    }
}

/// Run `seal cloud ls|gc`.
pub fn run(args: CloudArgs) -> Result<(), Failure> {
    let say = |m: &str| {
        errln!("{m}");
    };
    match args.command {
        CloudCommand::Ls(api) => {
            let found = leftovers(&api)?;
            outln!(
                "{:<14}  {:<15}  {:<26}  {:<13}  {:<20}  EXPIRED",
                "BUILD",
                "KIND",
                "ID",
                "STATE",
                "EXPIRES"
            )?;
            for l in found {
                outln!(
                    "{:<14}  {:<15}  {:<26}  {:<13}  {:<20}  {}",
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
            let deleted = match named_provider(&api)? {
                CloudProviderArg::Aws => {
                    aws::gc(&aws_client(&api)?, &say).map_err(|e| Failure::Error(e.into()))?
                }
                CloudProviderArg::Alicloud => alicloud::gc(&alicloud_client(&api)?, &say)
                    .map_err(|e| Failure::Error(e.into()))?,
            };
            errln!("deleted {} expired resources", deleted.len());
            Ok(())
        }
    }
}

/// `--cloud-provider`'s host for a build: created at the build's first cloud RUN (a build
/// whose RUN steps are all cached creates nothing), deleted after the build, whatever its
/// outcome.
pub fn on_demand_host(args: &BuildArgs) -> Result<Option<Arc<OnDemandHost>>, Failure> {
    let Some(provider) = args.cloud_api.cloud_provider else {
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
        parse_duration(text).map_err(|e| Failure::Usage(format!("{flag} {e}")))
    };
    if let Some(config) = &args.cloud_ssh_config {
        if !config.is_file() {
            return Err(Failure::Usage(format!(
                "--cloud-ssh-config {}: no such file",
                config.display()
            )));
        }
    }
    let ttl = duration("--cloud-ttl", &args.cloud_ttl)?;
    let wait = duration("--cloud-wait", &args.cloud_wait)?;
    let options = HostOptions {
        region: args.cloud_api.cloud_region.clone(),
        instance_type: args.cloud_instance_type.clone(),
        image: args.cloud_image.clone(),
        endpoint: args.cloud_api.cloud_endpoint.clone(),
        allow_from: args.cloud_allow_from.clone(),
        ttl,
        ssh_config: args.cloud_ssh_config.clone(),
        wait,
    };
    let request = match provider {
        CloudProviderArg::Aws => HostRequest::Aws(options),
        CloudProviderArg::Alicloud => HostRequest::Alicloud(options),
    };
    Ok(Some(Arc::new(OnDemandHost {
        request,
        state: Mutex::new(HostState::NotYet),
    })))
}

/// What `--cloud-provider` and its flags ask for.
#[derive(Debug)]
enum HostRequest {
    Aws(HostOptions),
    Alicloud(HostOptions),
}

impl HostRequest {
    fn provider(&self) -> &'static str {
        match self {
            HostRequest::Aws(_) => "aws",
            HostRequest::Alicloud(_) => "alicloud",
        }
    }

    fn region(&self) -> String {
        match self {
            HostRequest::Aws(o) => o
                .region
                .clone()
                .unwrap_or_else(|| "its configured region".into()),
            HostRequest::Alicloud(o) => alicloud::region_or_default(o.region.as_deref()),
        }
    }

    /// Create the host; `Err(None)` when interrupted.
    fn provision(
        &self,
        cancelled: &AtomicBool,
        say: &dyn Fn(&str),
    ) -> Result<Provisioned, Option<String>> {
        match self {
            HostRequest::Aws(options) => match aws::provision(options, cancelled, say) {
                Ok(host) => Ok(host),
                Err(aws::AwsError::Interrupted(_)) => Err(None),
                Err(e) => Err(Some(format!("{e:#}"))),
            },
            HostRequest::Alicloud(options) => match alicloud::provision(options, cancelled, say) {
                Ok(host) => Ok(host),
                Err(e) if e.is_interrupted() => Err(None),
                Err(e) => Err(Some(format!("{e:#}"))),
            },
        }
    }
}

/// A `--cloud-provider` host that exists from the first cloud RUN on.
#[derive(Debug)]
pub struct OnDemandHost {
    request: HostRequest,
    state: Mutex<HostState>,
}

#[derive(Debug)]
enum HostState {
    NotYet,
    /// Deleted when dropped.
    Ready(Box<Provisioned>),
    /// Creating it failed: the build's other RUN steps fail the same way, nothing is retried.
    Failed(String),
}

impl OnDemandHost {
    /// Delete the host if it was created, telling the user (on stderr, not through the
    /// build's renderer, which has finished by now).
    pub fn delete(&self) {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let gone = HostState::Failed("the build's host is deleted".into());
        if let HostState::Ready(mut host) = std::mem::replace(&mut *state, gone) {
            if let Err(e) = host.delete(&|m| {
                errln!("{m}");
            }) {
                errln!(
                    "error: deleting build {}'s resources on {} failed: {e}; `seal cloud gc` deletes them after they expire",
                    host.build_id,
                    self.request.provider()
                );
            }
        }
    }

    fn error(&self, reason: String) -> EngineError {
        EngineError::Cloud {
            host: self.describe(),
            reason,
        }
    }
}

impl HostProvider for OnDemandHost {
    fn ssh_options(
        &self,
        cancelled: &AtomicBool,
        say: &dyn Fn(&str),
    ) -> Result<SshOptions, EngineError> {
        let mut state = self
            .state
            .lock()
            .map_err(|_| EngineError::Internal("cloud provider lock poisoned".into()))?;
        if let HostState::NotYet = *state {
            *state = match self.request.provision(cancelled, say) {
                Ok(host) => HostState::Ready(Box::new(host)),
                Err(None) => return Err(EngineError::Cancelled),
                Err(Some(reason)) => HostState::Failed(reason),
            };
        }
        match &*state {
            HostState::Ready(host) => Ok(SshOptions {
                host: CloudHost::parse(&format!("ssh://root@{}", host.ssh_host))
                    .map_err(|e| self.error(format!("its address: {e}")))?,
                config: Some(host.ssh_config.clone()),
                accept_new_host_key: false,
                extra_options: host.ssh_options(),
            }),
            HostState::Failed(reason) => Err(self.error(reason.clone())),
            HostState::NotYet => Err(EngineError::Internal("cloud host not created".into())),
        }
    }

    fn describe(&self) -> String {
        format!(
            "created by --cloud-provider {} in {}",
            self.request.provider(),
            self.request.region()
        )
    }
}

/// Set `flag` at SIGINT from now on, until the process ends (a thread of its own, outside
/// any build's runtime): a Ctrl-C between two platforms' builds, or while the host is deleted
/// after the build, is seen instead of the process dying with resources left on the provider.
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

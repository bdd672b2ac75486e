//! `--cloud-provider alicloud`: a host seal creates on Alibaba Cloud ECS for one build and
//! always deletes, through the documented RPC API ([`api`], signed by [`signature`]).
//!
//! [`provision`] makes a VPC and a vSwitch (in a zone that sells the instance type), a
//! security group admitting port 22 from the caller's address only, and one pay-as-you-go
//! instance with a public address whose cloud-config carries seal's host key and client key
//! (provision/userdata.rs); everything is tagged `seal-build=<id>` and `seal-expires=<time>`,
//! and the instance also gets `AutoReleaseTime`, so Alibaba releases it even if seal and
//! `seal cloud gc` never run. Deletion goes instance → security group → vSwitch → VPC,
//! retrying the "dependency" errors Alibaba answers while an instance is being released.
//! [`list`] and [`gc`] find what a killed build left, by tag.

pub mod api;
pub mod credentials;
pub mod ecs;
pub mod signature;

use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use api::{ApiError, Client};

use super::provision::{
    self, access::Access, build_tags, check, iso8601, nap, now, random_id, HostOptions, Leftover,
    ProvisionError, Provisioned, Resources, BUILD_TAG,
};

/// The default instance type: 2 vCPU, 8 GiB, general purpose.
pub const DEFAULT_INSTANCE_TYPE: &str = "ecs.g7.large";
/// The default region.
pub const DEFAULT_REGION: &str = "cn-hangzhou";
/// The system images `--cloud-image` defaults to, newest first.
const UBUNTU: &str = "ubuntu_24_04_x64";

/// What went wrong provisioning or deleting a host.
#[derive(Debug, thiserror::Error)]
pub enum AlicloudError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Credentials(#[from] credentials::CredentialsError),
    #[error(transparent)]
    Provision(#[from] ProvisionError),
}

impl AlicloudError {
    pub fn is_interrupted(&self) -> bool {
        matches!(
            self,
            AlicloudError::Provision(ProvisionError::Interrupted(_))
        )
    }
}

/// `--cloud-region`, else `ALIBABA_CLOUD_REGION_ID` or `ALICLOUD_REGION`, else cn-hangzhou.
pub fn region_or_default(region: Option<&str>) -> String {
    let env = ["ALIBABA_CLOUD_REGION_ID", "ALICLOUD_REGION"]
        .iter()
        .find_map(|n| std::env::var(n).ok().filter(|r| !r.is_empty()));
    region
        .filter(|r| !r.is_empty())
        .map(str::to_string)
        .or(env)
        .unwrap_or_else(|| DEFAULT_REGION.into())
}

/// The region's API with the credentials Alibaba's tools would use.
pub fn client(region: &str, endpoint: Option<&str>) -> Result<Client, AlicloudError> {
    Ok(Client::new(region, endpoint, credentials::load()?)?)
}

/// What one build created, in creation order.
struct AlicloudResources {
    client: Client,
    vpc: Option<String>,
    vswitch: Option<String>,
    group: Option<String>,
    instance: Option<String>,
}

impl Resources for AlicloudResources {
    fn provider(&self) -> &'static str {
        "alicloud"
    }

    fn pending(&self) -> bool {
        self.vpc.is_some()
            || self.vswitch.is_some()
            || self.group.is_some()
            || self.instance.is_some()
    }

    fn delete(&mut self, say: &dyn Fn(&str)) -> Result<(), String> {
        let c = &self.client;
        if let Some(id) = &self.instance {
            delete_instance(c, id, say).map_err(|e| e.to_string())?;
            self.instance = None;
        }
        if let Some(id) = &self.group {
            retry_delete(c, "security group", id, ecs::delete_security_group, say)
                .map_err(|e| e.to_string())?;
            self.group = None;
        }
        if let Some(id) = &self.vswitch {
            retry_delete(c, "vSwitch", id, ecs::delete_vswitch, say).map_err(|e| e.to_string())?;
            self.vswitch = None;
        }
        if let Some(id) = &self.vpc {
            retry_delete(c, "VPC", id, ecs::delete_vpc, say).map_err(|e| e.to_string())?;
            self.vpc = None;
        }
        Ok(())
    }
}

/// How long deletion waits for Alibaba to release what depends on a resource.
const RELEASE_WAIT: Duration = Duration::from_secs(600);
/// Between two attempts.
const RETRY_EVERY: Duration = Duration::from_secs(2);

/// An error that says the resource is already gone (not that the caller's key is unknown).
fn gone(e: &ApiError) -> bool {
    e.code().is_some_and(|c| {
        matches!(
            c,
            "InvalidInstanceId.NotFound"
                | "InvalidSecurityGroupId.NotFound"
                | "InvalidVSwitchId.NotFound"
                | "InvalidVpcId.NotFound"
        )
    })
}

/// An error that goes away by itself: something still depends on the resource (an instance
/// being released), or it is busy.
fn transient(e: &ApiError) -> bool {
    e.code().is_some_and(|c| {
        c.starts_with("DependencyViolation")
            || (c.starts_with("Incorrect") && c.contains("Status"))
            || c.starts_with("IncorrectStatus")
            || c == "OperationConflict"
            || c == "LastTokenProcessing"
            || c.starts_with("Throttling")
            || c == "ServiceUnavailable"
    })
}

/// Release the instance and wait until DescribeInstances no longer shows it.
fn delete_instance(c: &Client, id: &str, say: &dyn Fn(&str)) -> Result<(), ApiError> {
    let deadline = Instant::now() + RELEASE_WAIT;
    loop {
        match ecs::delete_instance(c, id) {
            Ok(()) => break,
            Err(e) if gone(&e) => return Ok(()),
            Err(e) if transient(&e) && Instant::now() < deadline => std::thread::sleep(RETRY_EVERY),
            Err(e) => return Err(e),
        }
    }
    say(&format!("alicloud: releasing {id}"));
    while Instant::now() < deadline {
        if ecs::describe_instances(c, &[id.to_string()])?.is_empty() {
            say(&format!("alicloud: released {id}"));
            return Ok(());
        }
        std::thread::sleep(RETRY_EVERY);
    }
    // The security group's deletion below retries what still depends on it.
    Ok(())
}

fn retry_delete(
    c: &Client,
    what: &str,
    id: &str,
    delete: fn(&Client, &str) -> Result<(), ApiError>,
    say: &dyn Fn(&str),
) -> Result<(), ApiError> {
    let deadline = Instant::now() + RELEASE_WAIT;
    loop {
        match delete(c, id) {
            Ok(()) => break,
            Err(e) if gone(&e) => break,
            Err(e) if transient(&e) && Instant::now() < deadline => std::thread::sleep(RETRY_EVERY),
            Err(e) => return Err(e),
        }
    }
    say(&format!("alicloud: deleted {what} {id}"));
    Ok(())
}

/// Create the host, wait until SSH answers with the key seal made, and return it. Whatever
/// was created is deleted again when this fails.
pub fn provision(
    options: &HostOptions,
    interrupted: &AtomicBool,
    say: &dyn Fn(&str),
) -> Result<Provisioned, AlicloudError> {
    let client = client(
        &region_or_default(options.region.as_deref()),
        options.endpoint.as_deref(),
    )?;
    let build_id = random_id()?;
    let mut access = Access::create(&build_id)?;
    let mut resources = AlicloudResources {
        client,
        vpc: None,
        vswitch: None,
        group: None,
        instance: None,
    };
    if let Err(e) = create(
        &mut resources,
        &mut access,
        &build_id,
        options,
        interrupted,
        say,
    ) {
        return Err(match resources.delete(say) {
            Ok(()) => e,
            Err(c) => ProvisionError::Setup(format!("{e}; and deleting: {c}")).into(),
        });
    }
    Ok(Provisioned::new(build_id, Box::new(resources), access))
}

/// Wait until `status` says `Available`.
fn wait_available(
    what: &str,
    id: &str,
    deadline: Instant,
    interrupted: &AtomicBool,
    status: impl Fn() -> Result<Option<String>, ApiError>,
) -> Result<(), AlicloudError> {
    loop {
        check(interrupted, &format!("waiting for the {what}"))?;
        let now = status()?;
        if now.as_deref() == Some("Available") {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(ProvisionError::Setup(format!(
                "{what} {id} is not Available (status {now:?})"
            ))
            .into());
        }
        nap(RETRY_EVERY, interrupted);
    }
}

fn create(
    host: &mut AlicloudResources,
    access: &mut Access,
    id: &str,
    options: &HostOptions,
    interrupted: &AtomicBool,
    say: &dyn Fn(&str),
) -> Result<(), AlicloudError> {
    let setup = |s: String| AlicloudError::from(ProvisionError::Setup(s));
    let region = region_or_default(options.region.as_deref());
    let instance_type = options
        .instance_type
        .as_deref()
        .unwrap_or(DEFAULT_INSTANCE_TYPE);
    let cidr = match &options.allow_from {
        Some(c) => c.clone(),
        None => provision::caller_cidr()?,
    };
    let image = match &options.image {
        Some(i) => i.clone(),
        None => ecs::newest_system_image(&host.client, UBUNTU)?.ok_or_else(|| {
            setup(format!(
                "no Ubuntu 24.04 system image ({UBUNTU}*) in {region}; give one with --cloud-image"
            ))
        })?,
    };
    let zone = ecs::zone_for(&host.client, instance_type)?.ok_or_else(|| {
        setup(format!(
            "no zone of {region} sells {} pay-as-you-go; choose another --cloud-instance-type or --cloud-region",
            instance_type
        ))
    })?;
    let tags = build_tags(id, options.ttl);
    let name = format!("seal-{id}");
    let deadline = Instant::now() + options.wait;
    check(interrupted, "creating the VPC")?;
    let vpc = ecs::create_vpc(&host.client, &name, &tags)?;
    host.vpc = Some(vpc.clone());
    wait_available("VPC", &vpc, deadline, interrupted, || {
        ecs::vpc_status(&host.client, &vpc)
    })?;
    let vswitch = ecs::create_vswitch(&host.client, &vpc, &zone, &name, &tags)?;
    host.vswitch = Some(vswitch.clone());
    wait_available("vSwitch", &vswitch, deadline, interrupted, || {
        ecs::vswitch_status(&host.client, &vswitch)
    })?;
    check(interrupted, "creating the security group")?;
    let group = ecs::create_security_group(&host.client, &vpc, &name, &tags)?;
    host.group = Some(group.clone());
    ecs::authorize_ssh(&host.client, &group, &cidr)?;
    check(interrupted, "starting the instance")?;
    use base64::Engine as _;
    let user_data = base64::engine::general_purpose::STANDARD.encode(&access.user_data);
    // Alibaba wants the release at least 30 minutes ahead.
    let release = iso8601(now() + options.ttl.as_secs().max(31 * 60));
    let instance = ecs::run_instance(
        &host.client,
        &ecs::Launch {
            image: &image,
            instance_type,
            group: &group,
            vswitch: &vswitch,
            name: &name,
            user_data: &user_data,
            auto_release: &release,
            tags: &tags,
        },
    )?;
    host.instance = Some(instance.clone());
    say(&format!(
        "alicloud: started {instance} ({instance_type}, {image}) in {zone}, SSH from {cidr}"
    ));
    let address = loop {
        check(interrupted, "waiting for the instance")?;
        let found = ecs::describe_instances(&host.client, std::slice::from_ref(&instance))?;
        let status = found.first().map(|i| i.status.clone()).unwrap_or_default();
        if let Some(ip) = found.first().and_then(|i| i.public_ip.clone()) {
            if status == "Running" {
                break ip;
            }
        }
        if matches!(status.as_str(), "Stopping" | "Stopped") {
            return Err(ProvisionError::Instance {
                id: instance,
                what: format!("is {status} before it ran"),
            }
            .into());
        }
        if Instant::now() > deadline {
            return Err(ProvisionError::Instance {
                id: instance,
                what: format!(
                    "has no public address after {}s (status {status:?})",
                    options.wait.as_secs()
                ),
            }
            .into());
        }
        nap(RETRY_EVERY, interrupted);
    };
    access.route(&instance, &address, options.ssh_config.as_deref())?;
    say(&format!(
        "alicloud: {instance} is running at {address}; waiting for SSH"
    ));
    access.wait_for_ssh(deadline, interrupted)?;
    Ok(())
}

/// Everything tagged `seal-build` that still exists.
pub fn list(client: &Client) -> Result<Vec<Leftover>, AlicloudError> {
    let mut found = Vec::new();
    for i in ecs::instances_tagged(client, BUILD_TAG)? {
        found.push(Leftover::from_tags("instance", i.id, i.status, &i.tags));
    }
    let kinds = [
        ("security-group", &ecs::SECURITY_GROUPS),
        ("vswitch", &ecs::VSWITCHES),
        ("vpc", &ecs::VPCS),
    ];
    for (kind, listing) in kinds {
        for t in ecs::tagged_with(client, listing, BUILD_TAG)? {
            found.push(Leftover::from_tags(kind, t.id, t.status, &t.tags));
        }
    }
    Ok(found)
}

/// Delete every expired leftover, in dependency order; what was deleted.
pub fn gc(client: &Client, say: &dyn Fn(&str)) -> Result<Vec<Leftover>, AlicloudError> {
    let expired: Vec<Leftover> = list(client)?.into_iter().filter(|l| l.expired).collect();
    let of = |kind: &'static str| expired.iter().filter(move |l| l.kind == kind);
    for l in of("instance") {
        delete_instance(client, &l.id, say)?;
    }
    for l in of("security-group") {
        retry_delete(
            client,
            "security group",
            &l.id,
            ecs::delete_security_group,
            say,
        )?;
    }
    for l in of("vswitch") {
        retry_delete(client, "vSwitch", &l.id, ecs::delete_vswitch, say)?;
    }
    for l in of("vpc") {
        retry_delete(client, "VPC", &l.id, ecs::delete_vpc, say)?;
    }
    Ok(expired)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(code: &str) -> ApiError {
        ApiError::Api {
            service: "ECS",
            action: "DeleteSecurityGroup".into(),
            code: code.into(),
            message: String::new(),
            request_id: "r".into(),
        }
    }

    #[test]
    fn dependency_errors_are_retried_and_not_found_is_done() {
        for code in [
            "DependencyViolation",
            "DependencyViolation.SecurityGroup",
            "IncorrectInstanceStatus",
            "IncorrectVpcStatus",
            "IncorrectStatus.VSwitch",
            "OperationConflict",
            "Throttling.User",
        ] {
            assert!(transient(&api(code)), "{code}");
        }
        for code in [
            "InvalidAccessKeyId.NotFound",
            "SignatureDoesNotMatch",
            "Forbidden.RAM",
        ] {
            assert!(!transient(&api(code)), "{code}");
        }
        assert!(gone(&api("InvalidSecurityGroupId.NotFound")));
        assert!(!gone(&api("DependencyViolation")));
        assert!(!gone(&api("InvalidAccessKeyId.NotFound")));
    }
}

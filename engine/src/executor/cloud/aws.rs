//! `--cloud-provider aws`: a host seal creates on EC2 for one build and always deletes.
//!
//! [`provision`] makes a key pair and a host key (ssh-keygen), a security group admitting
//! port 22 from the caller's address only, and one instance whose cloud-config carries both
//! keys; everything is tagged `seal-build=<id>` and `seal-expires=<time>`. seal then pins
//! the host key it made in a known_hosts file of its own, so the first connection is
//! checked. [`Provisioned`] deletes what it made when dropped (success, failure, Ctrl-C);
//! [`list`] and [`gc`] find what a killed build left, by tag.

pub mod ec2;

use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use super::provision::{
    self, access::Access, build_tags, check, nap, random_id, HostOptions, Leftover, ProvisionError,
    Provisioned, Resources, BUILD_TAG,
};
use ec2::{Ec2, Ec2Error};

/// What went wrong provisioning or deleting a host.
#[derive(Debug, thiserror::Error)]
pub enum AwsError {
    #[error(transparent)]
    Ec2(#[from] Ec2Error),
    #[error("{0}")]
    Setup(String),
    #[error("interrupted while {0}")]
    Interrupted(String),
    #[error("instance {id} {what}")]
    Instance { id: String, what: String },
}

impl From<ProvisionError> for AwsError {
    fn from(e: ProvisionError) -> AwsError {
        match e {
            ProvisionError::Setup(s) => AwsError::Setup(s),
            ProvisionError::Interrupted(s) => AwsError::Interrupted(s),
            ProvisionError::Instance { id, what } => AwsError::Instance { id, what },
        }
    }
}

/// The instance type when `--cloud-instance-type` is not given.
pub const DEFAULT_INSTANCE_TYPE: &str = "t3.medium";

/// What one build created on EC2.
struct AwsResources {
    ec2: Ec2,
    instance_id: Option<String>,
    group_id: Option<String>,
}

impl Resources for AwsResources {
    fn provider(&self) -> &'static str {
        "aws"
    }

    fn pending(&self) -> bool {
        self.instance_id.is_some() || self.group_id.is_some()
    }

    /// Terminate the instance, wait until it is gone, delete the security group.
    fn delete(&mut self, say: &dyn Fn(&str)) -> Result<(), String> {
        delete_resources(
            &self.ec2,
            self.instance_id.as_deref(),
            self.group_id.as_deref(),
            say,
        )
        .map_err(|e| e.to_string())?;
        self.instance_id = None;
        self.group_id = None;
        Ok(())
    }
}

/// Create the host, wait until SSH answers with the key seal made, and return it. Whatever
/// was created is deleted again when this fails (the error says what was created).
pub fn provision(
    options: &HostOptions,
    interrupted: &AtomicBool,
    say: &dyn Fn(&str),
) -> Result<Provisioned, AwsError> {
    let ec2 = Ec2::new(options.region.as_deref(), options.endpoint.as_deref())?;
    let build_id = random_id()?;
    let mut access = Access::create(&build_id)?;
    let mut resources = AwsResources {
        ec2,
        instance_id: None,
        group_id: None,
    };
    let created = create(
        &mut resources,
        &mut access,
        &build_id,
        options,
        interrupted,
        say,
    );
    if let Err(e) = created {
        return Err(match resources.delete(say) {
            Ok(()) => e,
            Err(c) => AwsError::Setup(format!("{e}; and deleting: {c}")),
        });
    }
    Ok(Provisioned::new(build_id, Box::new(resources), access))
}

fn create(
    host: &mut AwsResources,
    access: &mut Access,
    id: &str,
    options: &HostOptions,
    interrupted: &AtomicBool,
    say: &dyn Fn(&str),
) -> Result<(), AwsError> {
    let cidr = match &options.allow_from {
        Some(c) => c.clone(),
        None => provision::caller_cidr()?,
    };
    let image = match &options.image {
        Some(i) => i.clone(),
        None => host
            .ec2
            .newest_image(
                "099720109477",
                "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-*",
            )?
            .ok_or_else(|| {
                AwsError::Setup(format!(
                    "no Ubuntu 24.04 image from Canonical in {}; give one with --cloud-image",
                    host.ec2.region()
                ))
            })?,
    };
    let instance_type = options
        .instance_type
        .as_deref()
        .unwrap_or(DEFAULT_INSTANCE_TYPE);
    let tags = build_tags(id, options.ttl);
    check(interrupted, "creating the security group")?;
    let group = host.ec2.create_security_group(
        &format!("seal-{id}"),
        "seal build host: SSH from the builder only",
        &tags,
    )?;
    host.group_id = Some(group.clone());
    host.ec2.authorize_ssh(&group, &cidr)?;
    check(interrupted, "starting the instance")?;
    use base64::Engine as _;
    let user_data = base64::engine::general_purpose::STANDARD.encode(&access.user_data);
    let instance = host
        .ec2
        .run_instance(&image, instance_type, &group, &user_data, &tags)?;
    host.instance_id = Some(instance.clone());
    say(&format!(
        "aws: started {instance} ({}, {image}) in {}, SSH from {cidr}",
        instance_type,
        host.ec2.region()
    ));
    // Wait for an address.
    let deadline = Instant::now() + options.wait;
    let address = loop {
        check(interrupted, "waiting for the instance")?;
        let found = host.ec2.describe_instances(&[("instance-id", &instance)])?;
        let state = found.first().map(|i| i.state.clone()).unwrap_or_default();
        if let Some(ip) = found.first().and_then(|i| i.public_ip.clone()) {
            if state == "running" {
                break ip;
            }
        }
        if matches!(state.as_str(), "shutting-down" | "terminated" | "stopped") {
            return Err(AwsError::Instance {
                id: instance,
                what: format!("is {state} before it ran"),
            });
        }
        if Instant::now() > deadline {
            return Err(AwsError::Instance {
                id: instance,
                what: format!(
                    "has no public address after {}s (state {state:?})",
                    options.wait.as_secs()
                ),
            });
        }
        nap(Duration::from_secs(2), interrupted);
    };
    access.route(&instance, &address, options.ssh_config.as_deref())?;
    say(&format!(
        "aws: {instance} is running at {address}; waiting for SSH"
    ));
    access.wait_for_ssh(deadline, interrupted)?;
    Ok(())
}

fn delete_resources(
    ec2: &Ec2,
    instance: Option<&str>,
    group: Option<&str>,
    say: &dyn Fn(&str),
) -> Result<(), AwsError> {
    if let Some(id) = instance {
        ec2.terminate_instances(&[id.to_string()])?;
        say(&format!("aws: terminated {id}"));
    }
    if let Some(group) = group {
        // The group stays in use until its instance is terminated.
        let deadline = Instant::now() + Duration::from_secs(600);
        loop {
            match ec2.delete_security_group(group) {
                Ok(()) => break,
                Err(Ec2Error::Api { code, .. }) if code == "InvalidGroup.NotFound" => break,
                Err(Ec2Error::Api { code, .. })
                    if code == "DependencyViolation" && Instant::now() < deadline =>
                {
                    std::thread::sleep(Duration::from_secs(5))
                }
                Err(e) => return Err(e.into()),
            }
        }
        say(&format!("aws: deleted security group {group}"));
    }
    Ok(())
}

/// Everything tagged `seal-build` that still exists (terminated instances are gone).
pub fn list(ec2: &Ec2) -> Result<Vec<Leftover>, AwsError> {
    let mut found = Vec::new();
    for i in ec2.describe_instances(&[("tag-key", BUILD_TAG)])? {
        if i.state == "terminated" {
            continue;
        }
        found.push(Leftover::from_tags("instance", i.id, i.state, &i.tags));
    }
    for g in ec2.describe_security_groups(&[("tag-key", BUILD_TAG)])? {
        found.push(Leftover::from_tags(
            "security-group",
            g.id,
            "-".into(),
            &g.tags,
        ));
    }
    Ok(found)
}

/// Delete every expired leftover (instances first, then their groups); what was deleted.
pub fn gc(ec2: &Ec2, say: &dyn Fn(&str)) -> Result<Vec<Leftover>, AwsError> {
    let expired: Vec<Leftover> = list(ec2)?.into_iter().filter(|l| l.expired).collect();
    for l in expired.iter().filter(|l| l.kind == "instance") {
        delete_resources(ec2, Some(&l.id), None, say)?;
    }
    for l in expired.iter().filter(|l| l.kind == "security-group") {
        delete_resources(ec2, None, Some(&l.id), say)?;
    }
    Ok(expired)
}

//! The EC2 calls `--cloud-provider aws` makes, through the AWS SDK (`aws-sdk-ec2`):
//! credentials and region from `aws-config`'s default chain, rustls with ring, the SDK's
//! standard retry. The SDK is async; [`Ec2`] runs each call to its end on a small runtime of
//! its own, so its callers stay synchronous.

use std::future::Future;
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_ec2::config::timeout::TimeoutConfig;
use aws_sdk_ec2::config::Region;
use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ec2::primitives::{DateTime, DateTimeFormat};
use aws_sdk_ec2::types::{
    Filter, InstanceType, IpPermission, IpRange, ResourceType, ShutdownBehavior, Tag,
    TagSpecification,
};
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};

/// The region when neither `--cloud-region` nor the AWS configuration names one.
const DEFAULT_REGION: &str = "us-east-1";

/// Where the default chain looks for credentials (for the error that says none were found).
const WHERE_CREDENTIALS: &str = "looked in AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, the \
     profile AWS_PROFILE (else `default`) of ~/.aws/config and ~/.aws/credentials \
     (AWS_CONFIG_FILE, AWS_SHARED_CREDENTIALS_FILE; SSO, assume-role and credential_process \
     profiles included), web identity (AWS_WEB_IDENTITY_TOKEN_FILE), the ECS container \
     endpoint and EC2 instance metadata (unless AWS_EC2_METADATA_DISABLED=true)";

/// An EC2 call that failed.
#[derive(Debug, thiserror::Error)]
pub enum Ec2Error {
    #[error("EC2 {action} at {endpoint}: {reason}")]
    Transport {
        action: String,
        endpoint: String,
        reason: String,
    },
    #[error("EC2 {action}: {code}: {message}")]
    Api {
        action: String,
        code: String,
        message: String,
    },
    #[error("EC2 {action}: unreadable answer: {reason}")]
    Answer { action: String, reason: String },
    #[error("AWS credentials: {0}")]
    Credentials(String),
    #[error("bad EC2 endpoint {0}")]
    Endpoint(String),
    #[error("starting the AWS client's runtime: {0}")]
    Runtime(String),
}

/// An instance as DescribeInstances shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Instance {
    pub id: String,
    pub state: String,
    pub public_ip: Option<String>,
    pub private_ip: Option<String>,
    pub groups: Vec<String>,
    pub tags: Vec<(String, String)>,
}

/// A security group as DescribeSecurityGroups shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct SecurityGroup {
    pub id: String,
    pub name: String,
    pub tags: Vec<(String, String)>,
}

/// A tag lookup over `(key, value)` pairs.
pub fn tag<'a>(tags: &'a [(String, String)], key: &str) -> Option<&'a str> {
    tags.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// `YYYY-MM-DDTHH:MM:SSZ` (ISO 8601, UTC) for seconds since the epoch: the expiry tags.
pub fn iso8601(unix: u64) -> String {
    let secs = i64::try_from(unix).unwrap_or(i64::MAX);
    DateTime::from_secs(secs)
        .fmt(DateTimeFormat::DateTime)
        .unwrap_or_else(|_| "9999-12-31T23:59:59Z".into())
}

/// Seconds since the epoch of an ISO 8601 time such as [`iso8601`] writes.
pub fn parse_iso8601(text: &str) -> Option<u64> {
    let t = DateTime::from_str(text, DateTimeFormat::DateTime).ok()?;
    u64::try_from(t.secs()).ok()
}

/// One region's EC2 client.
pub struct Ec2 {
    client: aws_sdk_ec2::Client,
    region: String,
    /// What errors name as the endpoint.
    endpoint: String,
    /// Always `Some` until dropped (see `Drop`).
    runtime: Option<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for Ec2 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ec2")
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

/// `endpoint` when it is `http(s)://HOST[:PORT][/]`.
fn check_endpoint(endpoint: &str) -> Result<(), Ec2Error> {
    let trimmed = endpoint.trim_end_matches('/');
    trimmed
        .strip_prefix("https://")
        .or_else(|| trimmed.strip_prefix("http://"))
        .filter(|h| !h.is_empty() && !h.contains('/'))
        .map(|_| ())
        .ok_or_else(|| Ec2Error::Endpoint(format!("{endpoint}: want http(s)://HOST[:PORT]")))
}

impl Ec2 {
    /// A client for `region` (`--cloud-region`; else the AWS configuration's: AWS_REGION,
    /// the profile's `region`, ...; else us-east-1) at `endpoint` (`--cloud-endpoint`; else
    /// AWS_ENDPOINT_URL_EC2 / AWS_ENDPOINT_URL, else the region's). Fails when the default
    /// chain finds no credentials, before any EC2 call.
    pub fn new(region: Option<&str>, endpoint: Option<&str>) -> Result<Ec2, Ec2Error> {
        if let Some(e) = endpoint {
            check_endpoint(e)?;
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Ec2Error::Runtime(e.to_string()))?;
        let region = region.filter(|r| !r.is_empty()).map(str::to_string);
        let endpoint = endpoint.map(|e| e.trim_end_matches('/').to_string());
        let (client, region, endpoint) = block_on(&runtime, async move {
            let http = aws_smithy_http_client::Builder::new()
                .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
                .build_https();
            let mut loader = aws_config::defaults(BehaviorVersion::latest())
                .http_client(http)
                .timeout_config(
                    TimeoutConfig::builder()
                        .connect_timeout(Duration::from_secs(30))
                        .operation_attempt_timeout(Duration::from_secs(120))
                        .build(),
                );
            if let Some(r) = region {
                loader = loader.region(Region::new(r));
            }
            if let Some(e) = &endpoint {
                loader = loader.endpoint_url(e.clone());
            }
            let shared = loader.load().await;
            let provider = shared.credentials_provider().ok_or_else(|| {
                Ec2Error::Credentials(format!("no credentials provider; {WHERE_CREDENTIALS}"))
            })?;
            use aws_sdk_ec2::config::ProvideCredentials as _;
            if let Err(e) = provider.provide_credentials().await {
                // The chain's errors name providers and files, never a secret.
                let what = match e {
                    CredentialsError::CredentialsNotLoaded(_) => "none found",
                    _ => "not loaded",
                };
                return Err(Ec2Error::Credentials(format!(
                    "{what}; {WHERE_CREDENTIALS}:\n{}",
                    error_chain(&e)
                )));
            }
            let region = shared
                .region()
                .map(|r| r.to_string())
                .unwrap_or_else(|| DEFAULT_REGION.to_string());
            let config = aws_sdk_ec2::config::Builder::from(&shared)
                .region(Region::new(region.clone()))
                .build();
            let endpoint = shared
                .endpoint_url()
                .map(str::to_string)
                .unwrap_or_else(|| format!("https://ec2.{region}.amazonaws.com"));
            Ok((aws_sdk_ec2::Client::from_conf(config), region, endpoint))
        })??;
        Ok(Ec2 {
            client,
            region,
            endpoint,
            runtime: Some(runtime),
        })
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    /// Run `future` (one SDK call) to its end on this client's runtime.
    fn run<T: Send>(&self, future: impl Future<Output = T> + Send) -> Result<T, Ec2Error> {
        match &self.runtime {
            Some(runtime) => block_on(runtime, future),
            None => Err(Ec2Error::Runtime("the client was dropped".into())),
        }
    }

    /// The SDK's error as ours: the API's code and message when EC2 answered with one.
    fn fail<E>(&self, action: &str, error: SdkError<E>) -> Ec2Error
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        if let Some(code) = error.code() {
            return Ec2Error::Api {
                action: action.to_string(),
                code: code.to_string(),
                message: error.message().unwrap_or_default().to_string(),
            };
        }
        let reason = error_chain(&error);
        match error {
            SdkError::ServiceError(_) | SdkError::ResponseError(_) => Ec2Error::Answer {
                action: action.to_string(),
                reason,
            },
            _ => Ec2Error::Transport {
                action: action.to_string(),
                endpoint: self.endpoint.clone(),
                reason,
            },
        }
    }

    /// A security group in the default VPC, tagged.
    pub fn create_security_group(
        &self,
        name: &str,
        description: &str,
        tags: &[(String, String)],
    ) -> Result<String, Ec2Error> {
        const ACTION: &str = "CreateSecurityGroup";
        let call = self
            .client
            .create_security_group()
            .group_name(name)
            .description(description)
            .tag_specifications(tag_spec(ResourceType::SecurityGroup, tags))
            .send();
        let out = self.run(call)?.map_err(|e| self.fail(ACTION, e))?;
        out.group_id()
            .map(str::to_string)
            .ok_or_else(|| missing(ACTION, "groupId"))
    }

    /// Admit TCP port 22 from `cidr` only.
    pub fn authorize_ssh(&self, group: &str, cidr: &str) -> Result<(), Ec2Error> {
        let call = self
            .client
            .authorize_security_group_ingress()
            .group_id(group)
            .ip_permissions(
                IpPermission::builder()
                    .ip_protocol("tcp")
                    .from_port(22)
                    .to_port(22)
                    .ip_ranges(IpRange::builder().cidr_ip(cidr).build())
                    .build(),
            )
            .send();
        self.run(call)?
            .map_err(|e| self.fail("AuthorizeSecurityGroupIngress", e))?;
        Ok(())
    }

    /// One instance, tagged, in `group`, with `user_data` (base64 here).
    pub fn run_instance(
        &self,
        image: &str,
        instance_type: &str,
        group: &str,
        user_data: &str,
        tags: &[(String, String)],
    ) -> Result<String, Ec2Error> {
        const ACTION: &str = "RunInstances";
        let call = self
            .client
            .run_instances()
            .image_id(image)
            .instance_type(InstanceType::from(instance_type))
            .min_count(1)
            .max_count(1)
            .security_group_ids(group)
            .user_data(user_data)
            .instance_initiated_shutdown_behavior(ShutdownBehavior::Terminate)
            .tag_specifications(tag_spec(ResourceType::Instance, tags))
            .send();
        let out = self.run(call)?.map_err(|e| self.fail(ACTION, e))?;
        out.instances()
            .first()
            .and_then(|i| i.instance_id())
            .map(str::to_string)
            .ok_or_else(|| missing(ACTION, "instanceId"))
    }

    /// Instances matching `filters` (`(name, value)`), all pages (the SDK's paginator).
    pub fn describe_instances(&self, filters: &[(&str, &str)]) -> Result<Vec<Instance>, Ec2Error> {
        let stream = self
            .client
            .describe_instances()
            .set_filters(Some(filter_list(filters)))
            .into_paginator()
            .items()
            .send();
        let mut found = Vec::new();
        for reservation in self.run(stream.collect::<Vec<_>>())? {
            let reservation = reservation.map_err(|e| self.fail("DescribeInstances", e))?;
            found.extend(reservation.instances().iter().map(|i| {
                Instance {
                    id: i.instance_id().unwrap_or_default().to_string(),
                    state: i
                        .state()
                        .and_then(|s| s.name())
                        .map(|n| n.as_str().to_string())
                        .unwrap_or_default(),
                    public_ip: i.public_ip_address().map(str::to_string),
                    private_ip: i.private_ip_address().map(str::to_string),
                    groups: i
                        .security_groups()
                        .iter()
                        .filter_map(|g| g.group_id().map(str::to_string))
                        .collect(),
                    tags: tags_of(i.tags()),
                }
            }));
        }
        Ok(found)
    }

    /// Security groups matching `filters`, all pages (the SDK's paginator).
    pub fn describe_security_groups(
        &self,
        filters: &[(&str, &str)],
    ) -> Result<Vec<SecurityGroup>, Ec2Error> {
        let stream = self
            .client
            .describe_security_groups()
            .set_filters(Some(filter_list(filters)))
            .into_paginator()
            .items()
            .send();
        self.run(stream.collect::<Vec<_>>())?
            .into_iter()
            .map(|g| {
                let g = g.map_err(|e| self.fail("DescribeSecurityGroups", e))?;
                Ok(SecurityGroup {
                    id: g.group_id().unwrap_or_default().to_string(),
                    name: g.group_name().unwrap_or_default().to_string(),
                    tags: tags_of(g.tags()),
                })
            })
            .collect()
    }

    pub fn terminate_instances(&self, ids: &[String]) -> Result<(), Ec2Error> {
        let call = self
            .client
            .terminate_instances()
            .set_instance_ids(Some(ids.to_vec()))
            .send();
        self.run(call)?
            .map_err(|e| self.fail("TerminateInstances", e))?;
        Ok(())
    }

    pub fn delete_security_group(&self, id: &str) -> Result<(), Ec2Error> {
        let call = self.client.delete_security_group().group_id(id).send();
        self.run(call)?
            .map_err(|e| self.fail("DeleteSecurityGroup", e))?;
        Ok(())
    }

    /// The newest image of `owner` whose name matches `pattern` (EC2's `*` wildcards).
    pub fn newest_image(&self, owner: &str, pattern: &str) -> Result<Option<String>, Ec2Error> {
        let call = self
            .client
            .describe_images()
            .owners(owner)
            .set_filters(Some(filter_list(&[
                ("name", pattern),
                ("state", "available"),
            ])))
            .send();
        let out = self
            .run(call)?
            .map_err(|e| self.fail("DescribeImages", e))?;
        let mut images: Vec<(String, String)> = out
            .images()
            .iter()
            .filter_map(|i| {
                Some((
                    i.creation_date().unwrap_or_default().to_string(),
                    i.image_id()?.to_string(),
                ))
            })
            .collect();
        images.sort();
        Ok(images.pop().map(|(_, id)| id))
    }
}

impl Drop for Ec2 {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which panics inside another runtime's task;
        // shutdown_background does not (the client's calls have all ended by now).
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Run `future` on `runtime`; from inside another runtime (where `block_on` would panic),
/// on a thread of its own.
fn block_on<T: Send>(
    runtime: &tokio::runtime::Runtime,
    future: impl Future<Output = T> + Send,
) -> Result<T, Ec2Error> {
    if tokio::runtime::Handle::try_current().is_err() {
        return Ok(runtime.block_on(future));
    }
    std::thread::scope(|s| {
        s.spawn(|| runtime.block_on(future))
            .join()
            .map_err(|_| Ec2Error::Runtime("an AWS call panicked".into()))
    })
}

/// `error` and its sources, one `: ` apart (the SDK's own Display says only the outermost),
/// without the credential chain's "not enabled" boilerplate.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut parts = Vec::new();
    let mut next = Some(error);
    while let Some(e) = next {
        let text = e.to_string();
        if text != "the credential provider was not enabled" {
            parts.push(text.replace("the credential provider was not enabled: ", ""));
        }
        next = e.source();
    }
    parts.join(": ")
}

fn missing(action: &str, name: &str) -> Ec2Error {
    Ec2Error::Answer {
        action: action.to_string(),
        reason: format!("no {name}"),
    }
}

fn filter_list(filters: &[(&str, &str)]) -> Vec<Filter> {
    filters
        .iter()
        .map(|(name, value)| Filter::builder().name(*name).values(*value).build())
        .collect()
}

fn tag_spec(resource: ResourceType, tags: &[(String, String)]) -> TagSpecification {
    TagSpecification::builder()
        .resource_type(resource)
        .set_tags(Some(
            tags.iter()
                .map(|(k, v)| Tag::builder().key(k).value(v).build())
                .collect(),
        ))
        .build()
}

fn tags_of(tags: &[Tag]) -> Vec<(String, String)> {
    tags.iter()
        .filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_times_round_trip() {
        assert_eq!(iso8601(951782400), "2000-02-29T00:00:00Z");
        assert_eq!(iso8601(1440938160), "2015-08-30T12:36:00Z");
        for t in [0, 951782400, 1440938160, 4102444799] {
            assert_eq!(parse_iso8601(&iso8601(t)), Some(t));
        }
        assert_eq!(parse_iso8601("2015-13-01T00:00:00Z"), None);
        assert_eq!(parse_iso8601("yesterday"), None);
        assert_eq!(parse_iso8601("-"), None);
    }

    #[test]
    fn endpoints_must_be_a_base_url() {
        assert!(check_endpoint("http://127.0.0.1:5000").is_ok());
        assert!(check_endpoint("https://ec2.eu-west-1.amazonaws.com/").is_ok());
        for bad in [
            "127.0.0.1:5000",
            "ftp://host",
            "http://",
            "http://host/path",
        ] {
            assert!(
                matches!(check_endpoint(bad), Err(Ec2Error::Endpoint(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn tags_read_back_as_pairs() {
        let tags = [
            Tag::builder().key("seal-build").value("b1").build(),
            Tag::builder().key("no-value").build(),
        ];
        let pairs = tags_of(&tags);
        assert_eq!(pairs, [("seal-build".to_string(), "b1".to_string())]);
        assert_eq!(tag(&pairs, "seal-build"), Some("b1"));
        assert_eq!(tag(&pairs, "seal-expires"), None);
    }

    #[test]
    fn a_client_works_from_inside_another_runtime() {
        let outer = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let inner = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let got = outer.block_on(async { block_on(&inner, async { 7 }) });
        assert_eq!(got.unwrap(), 7);
    }
}

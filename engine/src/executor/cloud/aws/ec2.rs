//! The EC2 Query API calls `--cloud-provider aws` makes (form-encoded POST, SigV4, XML
//! answers), over the project's ureq.

use std::time::Duration;

use super::sigv4::{amz_date, Request, Signer};
use super::xml::{self, Element};

const VERSION: &str = "2016-11-15";

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
}

/// Credentials, never printed (Debug shows the key id only).
#[derive(Clone)]
pub struct AwsCredentials {
    pub access_key: String,
    pub secret_key: String,
    pub session_token: Option<String>,
}

impl std::fmt::Debug for AwsCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsCredentials")
            .field("access_key", &self.access_key)
            .finish_non_exhaustive()
    }
}

impl AwsCredentials {
    /// What the AWS tools would use: the environment, then `~/.aws/credentials` and
    /// `~/.aws/config` (store/src/s3.rs reads them for S3 too).
    pub fn load() -> Result<AwsCredentials, Ec2Error> {
        let found = seal_store::s3::credentials()
            .map_err(|e| Ec2Error::Credentials(e.to_string()))?
            .ok_or_else(|| {
                Ec2Error::Credentials(
                    "none found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE \
                     with ~/.aws/credentials"
                        .into(),
                )
            })?;
        Ok(AwsCredentials {
            access_key: found.key().to_string(),
            secret_key: found.secret().to_string(),
            session_token: found.token().map(str::to_string),
        })
    }
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

/// One region's EC2 endpoint.
pub struct Ec2 {
    agent: ureq::Agent,
    endpoint: String,
    host: String,
    region: String,
    credentials: AwsCredentials,
}

impl Ec2 {
    /// `endpoint`: `--cloud-endpoint`, else `AWS_ENDPOINT_URL_EC2` / `AWS_ENDPOINT_URL`, else
    /// `https://ec2.REGION.amazonaws.com`.
    pub fn new(
        region: &str,
        endpoint: Option<&str>,
        credentials: AwsCredentials,
    ) -> Result<Ec2, Ec2Error> {
        let endpoint = endpoint
            .map(str::to_string)
            .or_else(|| std::env::var("AWS_ENDPOINT_URL_EC2").ok())
            .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok())
            .unwrap_or_else(|| format!("https://ec2.{region}.amazonaws.com"));
        let endpoint = endpoint.trim_end_matches('/').to_string();
        let host = endpoint
            .strip_prefix("https://")
            .or_else(|| endpoint.strip_prefix("http://"))
            .filter(|h| !h.is_empty() && !h.contains('/'))
            .ok_or_else(|| Ec2Error::Endpoint(format!("{endpoint}: want http(s)://HOST[:PORT]")))?
            .to_string();
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(30)))
            .timeout_global(Some(Duration::from_secs(120)))
            .user_agent(format!("seal/{}", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Ok(Ec2 {
            agent,
            endpoint,
            host,
            region: region.to_string(),
            credentials,
        })
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    /// One Query API call: its answer's root element, or the API's error.
    pub fn call(&self, action: &str, params: &[(String, String)]) -> Result<Element, Ec2Error> {
        let mut body = format!("Action={}&Version={VERSION}", encode(action));
        for (k, v) in params {
            body.push('&');
            body.push_str(&encode(k));
            body.push('=');
            body.push_str(&encode(v));
        }
        let content_type = "application/x-www-form-urlencoded; charset=utf-8";
        let signer = Signer {
            access_key: &self.credentials.access_key,
            secret_key: &self.credentials.secret_key,
            session_token: self.credentials.session_token.as_deref(),
            region: &self.region,
            service: "ec2",
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let headers = signer.headers(
            &Request {
                method: "POST",
                host: &self.host,
                path: "/",
                query: "",
                content_type,
                body: body.as_bytes(),
            },
            &amz_date(now),
        );
        let mut request = self
            .agent
            .post(format!("{}/", self.endpoint))
            .header("content-type", content_type);
        for (k, v) in &headers {
            request = request.header(k, v);
        }
        let transport = |reason: String| Ec2Error::Transport {
            action: action.to_string(),
            endpoint: self.endpoint.clone(),
            reason,
        };
        let mut response = request
            .send(body.as_bytes())
            .map_err(|e| transport(e.to_string()))?;
        let status = response.status();
        let text = response
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_string()
            .map_err(|e| transport(e.to_string()))?;
        let answer = |reason: String| Ec2Error::Answer {
            action: action.to_string(),
            reason,
        };
        let root = xml::parse(&text).map_err(|e| answer(format!("{status}: {e}")))?;
        if let Some(error) = root.find("Error") {
            return Err(Ec2Error::Api {
                action: action.to_string(),
                code: error.text_at("Code").unwrap_or("?").to_string(),
                message: error.text_at("Message").unwrap_or("").to_string(),
            });
        }
        if !status.is_success() {
            return Err(answer(format!("HTTP {status}")));
        }
        Ok(root)
    }

    /// A security group in the default VPC, tagged.
    pub fn create_security_group(
        &self,
        name: &str,
        description: &str,
        tags: &[(String, String)],
    ) -> Result<String, Ec2Error> {
        let mut params = vec![
            ("GroupName".to_string(), name.to_string()),
            ("GroupDescription".to_string(), description.to_string()),
        ];
        params.extend(tag_spec("security-group", tags));
        let root = self.call("CreateSecurityGroup", &params)?;
        id(&root, "CreateSecurityGroup", "groupId")
    }

    /// Admit TCP port 22 from `cidr` only.
    pub fn authorize_ssh(&self, group: &str, cidr: &str) -> Result<(), Ec2Error> {
        let params = [
            ("GroupId", group),
            ("IpPermissions.1.IpProtocol", "tcp"),
            ("IpPermissions.1.FromPort", "22"),
            ("IpPermissions.1.ToPort", "22"),
            ("IpPermissions.1.IpRanges.1.CidrIp", cidr),
        ];
        self.call("AuthorizeSecurityGroupIngress", &owned(&params))?;
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
        let mut params = owned(&[
            ("ImageId", image),
            ("InstanceType", instance_type),
            ("MinCount", "1"),
            ("MaxCount", "1"),
            ("SecurityGroupId.1", group),
            ("UserData", user_data),
            ("InstanceInitiatedShutdownBehavior", "terminate"),
        ]);
        params.extend(tag_spec("instance", tags));
        let root = self.call("RunInstances", &params)?;
        root.items("instancesSet")
            .first()
            .and_then(|i| i.text_at("instanceId"))
            .map(str::to_string)
            .ok_or_else(|| Ec2Error::Answer {
                action: "RunInstances".into(),
                reason: "no instanceId".into(),
            })
    }

    /// Instances matching `filters` (`(name, value)`), all pages.
    pub fn describe_instances(&self, filters: &[(&str, &str)]) -> Result<Vec<Instance>, Ec2Error> {
        let mut found = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut params = filter_params(filters);
            if let Some(t) = &token {
                params.push(("NextToken".into(), t.clone()));
            }
            let root = self.call("DescribeInstances", &params)?;
            for reservation in root.items("reservationSet") {
                for i in reservation.items("instancesSet") {
                    found.push(Instance {
                        id: i.text_at("instanceId").unwrap_or_default().to_string(),
                        state: i
                            .text_at("instanceState/name")
                            .unwrap_or_default()
                            .to_string(),
                        public_ip: i.text_at("ipAddress").map(str::to_string),
                        private_ip: i.text_at("privateIpAddress").map(str::to_string),
                        groups: i
                            .items("groupSet")
                            .iter()
                            .filter_map(|g| g.text_at("groupId").map(str::to_string))
                            .collect(),
                        tags: tags_of(i),
                    });
                }
            }
            token = root
                .text_at("nextToken")
                .filter(|t| !t.is_empty())
                .map(str::to_string);
            if token.is_none() {
                return Ok(found);
            }
        }
    }

    /// Security groups matching `filters`.
    pub fn describe_security_groups(
        &self,
        filters: &[(&str, &str)],
    ) -> Result<Vec<SecurityGroup>, Ec2Error> {
        let root = self.call("DescribeSecurityGroups", &filter_params(filters))?;
        Ok(root
            .items("securityGroupInfo")
            .iter()
            .map(|g| SecurityGroup {
                id: g.text_at("groupId").unwrap_or_default().to_string(),
                name: g.text_at("groupName").unwrap_or_default().to_string(),
                tags: tags_of(g),
            })
            .collect())
    }

    pub fn terminate_instances(&self, ids: &[String]) -> Result<(), Ec2Error> {
        let params: Vec<(String, String)> = ids
            .iter()
            .enumerate()
            .map(|(n, id)| (format!("InstanceId.{}", n + 1), id.clone()))
            .collect();
        self.call("TerminateInstances", &params)?;
        Ok(())
    }

    pub fn delete_security_group(&self, id: &str) -> Result<(), Ec2Error> {
        self.call("DeleteSecurityGroup", &owned(&[("GroupId", id)]))?;
        Ok(())
    }

    /// The newest image of `owner` whose name matches `pattern` (EC2's `*` wildcards).
    pub fn newest_image(&self, owner: &str, pattern: &str) -> Result<Option<String>, Ec2Error> {
        let mut params = owned(&[("Owner.1", owner)]);
        params.extend(filter_params(&[("name", pattern), ("state", "available")]));
        let root = self.call("DescribeImages", &params)?;
        let mut images: Vec<(String, String)> = root
            .items("imagesSet")
            .iter()
            .filter_map(|i| {
                Some((
                    i.text_at("creationDate").unwrap_or_default().to_string(),
                    i.text_at("imageId")?.to_string(),
                ))
            })
            .collect();
        images.sort();
        Ok(images.pop().map(|(_, id)| id))
    }
}

fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn filter_params(filters: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut params = Vec::new();
    for (n, (name, value)) in filters.iter().enumerate() {
        params.push((format!("Filter.{}.Name", n + 1), name.to_string()));
        params.push((format!("Filter.{}.Value.1", n + 1), value.to_string()));
    }
    params
}

fn tag_spec(resource: &str, tags: &[(String, String)]) -> Vec<(String, String)> {
    let mut params = vec![(
        "TagSpecification.1.ResourceType".to_string(),
        resource.to_string(),
    )];
    for (n, (k, v)) in tags.iter().enumerate() {
        params.push((format!("TagSpecification.1.Tag.{}.Key", n + 1), k.clone()));
        params.push((format!("TagSpecification.1.Tag.{}.Value", n + 1), v.clone()));
    }
    params
}

fn tags_of(element: &Element) -> Vec<(String, String)> {
    element
        .items("tagSet")
        .iter()
        .filter_map(|t| {
            Some((
                t.text_at("key")?.to_string(),
                t.text_at("value")?.to_string(),
            ))
        })
        .collect()
}

fn id(root: &Element, action: &str, name: &str) -> Result<String, Ec2Error> {
    root.text_at(name)
        .map(str::to_string)
        .ok_or_else(|| Ec2Error::Answer {
            action: action.to_string(),
            reason: format!("no {name}"),
        })
}

/// RFC 3986 percent-encoding of everything but the unreserved characters (what SigV4 and
/// the Query API expect).
pub fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_keeps_only_unreserved_characters() {
        assert_eq!(encode("a-b_c.d~e"), "a-b_c.d~e");
        assert_eq!(encode("a b/c+=é"), "a%20b%2Fc%2B%3D%C3%A9");
    }

    #[test]
    fn instances_parse_from_a_describe_answer() {
        let root = xml::parse(
            "<DescribeInstancesResponse><reservationSet><item><instancesSet><item>\
             <instanceId>i-1</instanceId><instanceState><code>16</code><name>running</name></instanceState>\
             <ipAddress>54.1.2.3</ipAddress><groupSet><item><groupId>sg-1</groupId></item></groupSet>\
             <tagSet><item><key>seal-build</key><value>b1</value></item></tagSet>\
             </item></instancesSet></item></reservationSet></DescribeInstancesResponse>",
        )
        .unwrap();
        let i = &root.items("reservationSet")[0].items("instancesSet")[0];
        assert_eq!(i.text_at("instanceState/name"), Some("running"));
        assert_eq!(tag(&tags_of(i), "seal-build"), Some("b1"));
    }

    #[test]
    fn credentials_are_not_printed() {
        let c = AwsCredentials {
            access_key: "AKID".into(),
            secret_key: "very-secret".into(),
            session_token: Some("token-secret".into()),
        };
        let shown = format!("{c:?}");
        assert!(!shown.contains("secret"), "{shown}");
    }
}

//! The RPC calls `--cloud-provider alicloud` makes: form-encoded POSTs to the ECS API
//! (`ecs.REGION.aliyuncs.com`, Version 2014-05-26) and the VPC API (`vpc.REGION.aliyuncs.com`,
//! Version 2016-04-28), signed with [`signature`](super::signature), answered in JSON; an
//! error answer (`Code`, `Message`, `RequestId`) becomes [`ApiError::Api`] naming the call.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::Value;

use super::credentials::Credentials;
use super::signature;
use crate::executor::cloud::provision::{iso8601, now};

/// Which of Alibaba's APIs a call goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Ecs,
    Vpc,
}

impl Service {
    fn version(self) -> &'static str {
        match self {
            Service::Ecs => "2014-05-26",
            Service::Vpc => "2016-04-28",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Service::Ecs => "ECS",
            Service::Vpc => "VPC",
        }
    }
}

/// A call that failed. Messages carry no credential.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("Alibaba Cloud {service} {action} at {endpoint}: {reason}")]
    Transport {
        service: &'static str,
        action: String,
        endpoint: String,
        reason: String,
    },
    #[error("Alibaba Cloud {service} {action}: {code}: {message} (RequestId {request_id})")]
    Api {
        service: &'static str,
        action: String,
        code: String,
        message: String,
        request_id: String,
    },
    #[error("Alibaba Cloud {service} {action}: unreadable answer: {reason}")]
    Answer {
        service: &'static str,
        action: String,
        reason: String,
    },
    #[error("bad Alibaba Cloud endpoint {0}: want http(s)://HOST[:PORT]")]
    Endpoint(String),
}

impl ApiError {
    /// The API's error code, for an error the API answered.
    pub fn code(&self) -> Option<&str> {
        match self {
            ApiError::Api { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// One region's ECS and VPC endpoints, and the credentials that sign for them.
pub struct Client {
    agent: ureq::Agent,
    ecs: String,
    vpc: String,
    region: String,
    credentials: Credentials,
    nonce: AtomicU64,
    nonce_base: String,
}

fn check_endpoint(endpoint: &str) -> Result<String, ApiError> {
    let trimmed = endpoint.trim_end_matches('/');
    let host = trimmed
        .strip_prefix("https://")
        .or_else(|| trimmed.strip_prefix("http://"));
    match host {
        Some(h) if !h.is_empty() && !h.contains('/') => Ok(trimmed.to_string()),
        _ => Err(ApiError::Endpoint(endpoint.to_string())),
    }
}

impl Client {
    /// `endpoint`: `--cloud-endpoint` (both APIs), else the region's own.
    pub fn new(
        region: &str,
        endpoint: Option<&str>,
        credentials: Credentials,
    ) -> Result<Client, ApiError> {
        let (ecs, vpc) = match endpoint {
            Some(e) => (check_endpoint(e)?, check_endpoint(e)?),
            None => (
                format!("https://ecs.{region}.aliyuncs.com"),
                format!("https://vpc.{region}.aliyuncs.com"),
            ),
        };
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(30)))
            .timeout_global(Some(Duration::from_secs(120)))
            .user_agent(format!("seal/{}", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        let mut seed = [0u8; 8];
        use std::io::Read;
        let _ = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut seed));
        Ok(Client {
            agent,
            ecs,
            vpc,
            region: region.to_string(),
            credentials,
            nonce: AtomicU64::new(0),
            nonce_base: format!("{}-{}", hex::encode(seed), std::process::id()),
        })
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    /// The parameters of a call, common ones included, and its signature.
    pub fn signed(&self, service: Service, action: &str, params: &[(&str, String)]) -> String {
        let n = self.nonce.fetch_add(1, Ordering::Relaxed);
        let mut all: Vec<(String, String)> = vec![
            ("Action".into(), action.into()),
            ("Version".into(), service.version().into()),
            ("Format".into(), "JSON".into()),
            ("AccessKeyId".into(), self.credentials.access_key_id.clone()),
            ("SignatureMethod".into(), "HMAC-SHA1".into()),
            ("SignatureVersion".into(), "1.0".into()),
            ("SignatureNonce".into(), format!("{}-{n}", self.nonce_base)),
            ("Timestamp".into(), iso8601(now())),
        ];
        if let Some(token) = &self.credentials.security_token {
            all.push(("SecurityToken".into(), token.clone()));
        }
        all.extend(params.iter().map(|(k, v)| (k.to_string(), v.clone())));
        let signature = signature::sign("POST", &all, &self.credentials.access_key_secret);
        all.push(("Signature".into(), signature));
        signature::canonical_query(&all)
    }

    /// One call: its JSON answer, or the API's error.
    pub fn call(
        &self,
        service: Service,
        action: &str,
        params: &[(&str, String)],
    ) -> Result<Value, ApiError> {
        let endpoint = match service {
            Service::Ecs => &self.ecs,
            Service::Vpc => &self.vpc,
        };
        let body = self.signed(service, action, params);
        let transport = |reason: String| ApiError::Transport {
            service: service.name(),
            action: action.to_string(),
            endpoint: endpoint.clone(),
            reason,
        };
        let mut response = self
            .agent
            .post(format!("{endpoint}/"))
            .header("content-type", "application/x-www-form-urlencoded")
            .send(body.as_bytes())
            .map_err(|e| transport(e.to_string()))?;
        let status = response.status();
        let text = response
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_string()
            .map_err(|e| transport(e.to_string()))?;
        let answer = |reason: String| ApiError::Answer {
            service: service.name(),
            action: action.to_string(),
            reason,
        };
        let value: Value = serde_json::from_str(&text).map_err(|e| {
            let start: String = text.chars().take(200).collect();
            answer(format!("HTTP {status}: {e}: {start:?}"))
        })?;
        if let Some(code) = value["Code"].as_str().filter(|_| !status.is_success()) {
            return Err(ApiError::Api {
                service: service.name(),
                action: action.to_string(),
                code: code.to_string(),
                message: value["Message"].as_str().unwrap_or("").to_string(),
                request_id: value["RequestId"].as_str().unwrap_or("-").to_string(),
            });
        }
        if !status.is_success() {
            return Err(answer(format!("HTTP {status}")));
        }
        Ok(value)
    }

    /// `call`, then the string at `path` (`/`-separated) of the answer.
    pub fn call_for(
        &self,
        service: Service,
        action: &str,
        params: &[(&str, String)],
        path: &str,
    ) -> Result<String, ApiError> {
        let value = self.call(service, action, params)?;
        text_at(&value, path)
            .map(str::to_string)
            .ok_or_else(|| ApiError::Answer {
                service: service.name(),
                action: action.to_string(),
                reason: format!("no {path}"),
            })
    }

    /// Every item of a paged Describe call: `list` is the path of the items' array.
    pub fn describe_all(
        &self,
        service: Service,
        action: &str,
        params: &[(&str, String)],
        list: &str,
    ) -> Result<Vec<Value>, ApiError> {
        let mut found = Vec::new();
        for page in 1..=1000u32 {
            let mut p = params.to_vec();
            p.push(("PageSize", "50".into()));
            p.push(("PageNumber", page.to_string()));
            let value = self.call(service, action, &p)?;
            let items = at(&value, list)
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let total = value["TotalCount"].as_u64().unwrap_or(0);
            let empty = items.is_empty();
            found.extend(items);
            if empty || found.len() as u64 >= total {
                break;
            }
        }
        Ok(found)
    }
}

/// The value at a `/`-separated path.
pub fn at<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('/')
        .try_fold(value, |v, k| match k.parse::<usize>() {
            Ok(n) if v.is_array() => v.get(n),
            _ => v.get(k),
        })
}

/// The string at a `/`-separated path.
pub fn text_at<'a>(value: &'a Value, path: &str) -> Option<&'a str> {
    at(value, path).and_then(Value::as_str)
}

/// A resource's tags: ECS writes `TagKey`/`TagValue`, VPC `Key`/`Value`.
pub fn tags_of(item: &Value) -> Vec<(String, String)> {
    at(item, "Tags/Tag")
        .and_then(Value::as_array)
        .map(|tags| {
            tags.iter()
                .filter_map(|t| {
                    let k = t["TagKey"].as_str().or(t["Key"].as_str())?;
                    let v = t["TagValue"].as_str().or(t["Value"].as_str())?;
                    Some((k.to_string(), v.to_string()))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `Tag.N.Key`/`Tag.N.Value` parameters.
pub fn tag_params(tags: &[(String, String)]) -> Vec<(String, String)> {
    let mut params = Vec::new();
    for (n, (k, v)) in tags.iter().enumerate() {
        params.push((format!("Tag.{}.Key", n + 1), k.clone()));
        params.push((format!("Tag.{}.Value", n + 1), v.clone()));
    }
    params
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(text: &str) -> String {
        let b = text.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'%' {
                out.push(u8::from_str_radix(&text[i + 1..i + 3], 16).unwrap());
                i += 3;
            } else {
                out.push(b[i]);
                i += 1;
            }
        }
        String::from_utf8(out).unwrap()
    }

    fn client() -> Client {
        Client::new(
            "cn-hangzhou",
            Some("http://127.0.0.1:1/"),
            Credentials {
                access_key_id: "id".into(),
                access_key_secret: "secret".into(),
                security_token: Some("tok".into()),
            },
        )
        .unwrap()
    }

    #[test]
    fn a_request_carries_the_common_parameters_and_verifies() {
        let c = client();
        let body = c.signed(
            Service::Vpc,
            "CreateVpc",
            &[("RegionId", "cn-hangzhou".into())],
        );
        let mut pairs: Vec<(String, String)> = body
            .split('&')
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap();
                (k.to_string(), decode(v))
            })
            .collect();
        let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        assert_eq!(get("Version").as_deref(), Some("2016-04-28"));
        assert_eq!(get("Format").as_deref(), Some("JSON"));
        assert_eq!(get("SecurityToken").as_deref(), Some("tok"));
        assert_eq!(get("SignatureMethod").as_deref(), Some("HMAC-SHA1"));
        let sig = get("Signature").unwrap();
        pairs.retain(|(k, _)| k != "Signature");
        assert_eq!(signature::sign("POST", &pairs, "secret"), sig);
        assert!(!body.contains("secret"));
        let again = c.signed(Service::Vpc, "CreateVpc", &[]);
        assert_ne!(
            again
                .split("SignatureNonce=")
                .nth(1)
                .map(|s| s.split('&').next()),
            body.split("SignatureNonce=")
                .nth(1)
                .map(|s| s.split('&').next()),
            "a nonce is used once"
        );
    }

    #[test]
    fn tags_read_in_both_spellings() {
        let ecs: Value =
            serde_json::from_str(r#"{"Tags":{"Tag":[{"TagKey":"seal-build","TagValue":"b1"}]}}"#)
                .unwrap();
        let vpc: Value =
            serde_json::from_str(r#"{"Tags":{"Tag":[{"Key":"seal-build","Value":"b2"}]}}"#)
                .unwrap();
        assert_eq!(
            tags_of(&ecs),
            [("seal-build".to_string(), "b1".to_string())]
        );
        assert_eq!(tags_of(&vpc)[0].1, "b2");
        assert_eq!(
            tag_params(&[("k".into(), "v".into())])[1],
            ("Tag.1.Value".to_string(), "v".to_string())
        );
    }

    #[test]
    fn endpoints_must_be_urls() {
        let creds = Credentials {
            access_key_id: "a".into(),
            access_key_secret: "b".into(),
            security_token: None,
        };
        assert!(Client::new("r", Some("ecs.example.com"), creds.clone()).is_err());
        assert!(Client::new("r", Some("https://h/x"), creds.clone()).is_err());
        let c = Client::new("cn-beijing", None, creds).unwrap();
        assert_eq!(c.ecs, "https://ecs.cn-beijing.aliyuncs.com");
        assert_eq!(c.vpc, "https://vpc.cn-beijing.aliyuncs.com");
    }
}

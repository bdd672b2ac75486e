//! Alibaba Cloud credentials where its tools keep them: the environment
//! (`ALIBABA_CLOUD_ACCESS_KEY_ID`/`_SECRET`/`ALIBABA_CLOUD_SECURITY_TOKEN`, or the older
//! `ALICLOUD_ACCESS_KEY`/`ALICLOUD_SECRET_KEY`/`ALICLOUD_SECURITY_TOKEN` of terraform and
//! Sealer), then the aliyun CLI's `~/.aliyun/config.json` (its current profile, or
//! `ALIBABA_CLOUD_PROFILE`; modes `AK` and `StsToken`). Never printed.

use std::path::{Path, PathBuf};

/// An AccessKey pair and, for STS credentials, its token. `Debug` shows the key id only.
#[derive(Clone, PartialEq)]
pub struct Credentials {
    pub access_key_id: String,
    pub access_key_secret: String,
    pub security_token: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// Why no credentials could be read.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error(
        "Alibaba Cloud credentials: none found; set ALIBABA_CLOUD_ACCESS_KEY_ID and \
         ALIBABA_CLOUD_ACCESS_KEY_SECRET (or ALICLOUD_ACCESS_KEY and ALICLOUD_SECRET_KEY), or \
         configure the aliyun CLI (~/.aliyun/config.json, mode AK or StsToken)"
    )]
    None,
    #[error("Alibaba Cloud credentials: {path}: {reason}")]
    Config { path: PathBuf, reason: String },
}

/// The environment's credentials, else the aliyun CLI's.
pub fn load() -> Result<Credentials, CredentialsError> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    if let Some(found) = from_env(&env) {
        return Ok(found);
    }
    let Some(home) = env("HOME") else {
        return Err(CredentialsError::None);
    };
    let path = Path::new(&home).join(".aliyun/config.json");
    match std::fs::read_to_string(&path) {
        Ok(text) => from_config(&text, env("ALIBABA_CLOUD_PROFILE").as_deref()).map_err(|reason| {
            CredentialsError::Config {
                path: path.clone(),
                reason,
            }
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(CredentialsError::None),
        Err(e) => Err(CredentialsError::Config {
            path,
            reason: e.to_string(),
        }),
    }
}

fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Option<Credentials> {
    let pairs = [
        (
            "ALIBABA_CLOUD_ACCESS_KEY_ID",
            "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
            "ALIBABA_CLOUD_SECURITY_TOKEN",
        ),
        (
            "ALICLOUD_ACCESS_KEY",
            "ALICLOUD_SECRET_KEY",
            "ALICLOUD_SECURITY_TOKEN",
        ),
    ];
    pairs.iter().find_map(|(id, secret, token)| {
        Some(Credentials {
            access_key_id: env(id)?,
            access_key_secret: env(secret)?,
            security_token: env(token),
        })
    })
}

/// The profile `name` (else `current`) of an aliyun CLI config.
fn from_config(text: &str, name: Option<&str>) -> Result<Credentials, String> {
    let config: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let name = name
        .map(str::to_string)
        .or_else(|| config["current"].as_str().map(str::to_string))
        .unwrap_or_else(|| "default".into());
    let profile = config["profiles"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"].as_str() == Some(&name)))
        .ok_or_else(|| format!("no profile `{name}`"))?;
    let field = |key: &str| {
        profile[key]
            .as_str()
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    let mode = field("mode").unwrap_or_else(|| "AK".into());
    if mode != "AK" && mode != "StsToken" {
        return Err(format!(
            "profile `{name}` has mode {mode}; seal reads modes AK and StsToken"
        ));
    }
    let (Some(id), Some(secret)) = (field("access_key_id"), field("access_key_secret")) else {
        return Err(format!(
            "profile `{name}` has no access_key_id/access_key_secret"
        ));
    };
    Ok(Credentials {
        access_key_id: id,
        access_key_secret: secret,
        security_token: if mode == "StsToken" {
            field("sts_token")
        } else {
            None
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_new_names_win_over_the_old_ones() {
        let vars = [
            ("ALIBABA_CLOUD_ACCESS_KEY_ID", "new"),
            ("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "s1"),
            ("ALICLOUD_ACCESS_KEY", "old"),
            ("ALICLOUD_SECRET_KEY", "s2"),
            ("ALICLOUD_SECURITY_TOKEN", "t2"),
        ];
        let env = |k: &str| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        };
        let c = from_env(&env).unwrap();
        assert_eq!((c.access_key_id.as_str(), c.security_token), ("new", None));
        let old = |k: &str| env(k).filter(|_| k.starts_with("ALICLOUD"));
        let c = from_env(&old).unwrap();
        assert_eq!(
            (c.access_key_id.as_str(), c.security_token.as_deref()),
            ("old", Some("t2"))
        );
        assert!(from_env(&|_| None).is_none());
    }

    #[test]
    fn the_cli_config_gives_its_current_profile() {
        let text = r#"{"current":"sts","profiles":[
            {"name":"default","mode":"AK","access_key_id":"A1","access_key_secret":"S1"},
            {"name":"sts","mode":"StsToken","access_key_id":"A2","access_key_secret":"S2","sts_token":"T2"},
            {"name":"ram","mode":"RamRoleArn","access_key_id":"A3","access_key_secret":"S3"}]}"#;
        let c = from_config(text, None).unwrap();
        assert_eq!(
            (c.access_key_id.as_str(), c.security_token.as_deref()),
            ("A2", Some("T2"))
        );
        assert_eq!(
            from_config(text, Some("default")).unwrap().access_key_id,
            "A1"
        );
        assert!(from_config(text, Some("ram"))
            .unwrap_err()
            .contains("RamRoleArn"));
        assert!(from_config(text, Some("x"))
            .unwrap_err()
            .contains("no profile"));
    }

    #[test]
    fn credentials_are_not_printed() {
        let c = Credentials {
            access_key_id: "LTAI".into(),
            access_key_secret: "very-secret".into(),
            security_token: Some("token-secret".into()),
        };
        assert!(!format!("{c:?}").contains("secret"));
    }
}

//! Authenticated requests: one round of Basic or Bearer authentication when a registry answers
//! 401 (the header cached per registry and repository), and checking a login.

use ureq::http::{Response, StatusCode};
use ureq::Body;

use super::transport::{status_error, transport, Payload};
use super::{auth, lock, Client, Credentials, RegistryError};

impl Client {
    /// Use `credentials` for `repository` of `registry` (and nothing else), before the auth
    /// files: Sealer's `imageListWithAuth.yaml`.
    pub fn set_repository_credentials(
        &self,
        registry: &str,
        repository: &str,
        credentials: Credentials,
    ) {
        lock(&self.scoped).insert(format!("{registry}/{repository}"), credentials);
    }

    fn creds(
        &self,
        registry: &str,
        repository: &str,
    ) -> Result<Option<Credentials>, RegistryError> {
        if let Some(c) = lock(&self.scoped).get(&format!("{registry}/{repository}")) {
            return Ok(Some(c.clone()));
        }
        if let Some(c) = lock(&self.credentials).clone() {
            return Ok(Some(c));
        }
        Ok(auth::lookup(registry)?)
    }

    /// Check `credentials` against `registry`'s `/v2/` endpoint (and its token service).
    /// They are used for every later request of this client.
    pub fn check_login(
        &self,
        registry: &str,
        credentials: Credentials,
    ) -> Result<(), RegistryError> {
        *lock(&self.credentials) = Some(credentials);
        let url = format!("{}/v2/", self.base(registry));
        let response = self.send(registry, "", "GET", &url, &[], Payload::Empty, true)?;
        match response.status() {
            s if s.is_success() => Ok(()),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(RegistryError::Auth {
                registry: registry.into(),
                reason: "wrong user name or password".into(),
            }),
            s => Err(status_error(format!("checking {url}"), s, response)),
        }
    }

    /// Send one request, with retries (5xx, dropped connections) and one round of
    /// authentication when the registry answers 401. A 401 after that round is an error
    /// telling to log in (or that the credentials were refused), except for `login` checks,
    /// which get the response.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn send(
        &self,
        registry: &str,
        repository: &str,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        payload: Payload<'_>,
        login: bool,
    ) -> Result<Response<Body>, RegistryError> {
        let key = format!("{registry}/{repository}");
        let mut used_credentials = None;
        loop {
            let authorization = lock(&self.tokens).get(&key).cloned();
            let response = self.send_retrying(
                registry,
                method,
                url,
                headers,
                &payload,
                authorization.as_deref(),
            )?;
            if response.status() != StatusCode::UNAUTHORIZED {
                return Ok(response);
            }
            if let Some(had) = used_credentials {
                if login {
                    return Ok(response);
                }
                let scoped = lock(&self.scoped).contains_key(&format!("{registry}/{repository}"));
                return Err(if had && scoped {
                    RegistryError::Auth {
                        registry: registry.into(),
                        reason: format!(
                            "{method} {url} was refused with the credentials given for {repository} (imageListWithAuth): wrong user name or password, or no access"
                        ),
                    }
                } else if had {
                    RegistryError::Auth {
                        registry: registry.into(),
                        reason: format!(
                            "{method} {url} was refused with the saved credentials (no access, or `seal login {registry}` again)"
                        ),
                    }
                } else {
                    needs_login(registry)
                });
            }
            let challenge = response
                .headers()
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok())
                .and_then(auth::parse_challenge);
            let Some(challenge) = challenge else {
                return Ok(response);
            };
            let creds = self.creds(registry, repository)?;
            used_credentials = Some(creds.is_some());
            let header = match challenge.scheme.as_str() {
                "basic" => match creds {
                    Some(c) => c.basic_header(),
                    None if login => return Ok(response),
                    None => return Err(needs_login(registry)),
                },
                "bearer" => self.token(registry, repository, &challenge, creds.as_ref(), login)?,
                other => {
                    return Err(RegistryError::Auth {
                        registry: registry.into(),
                        reason: format!("unsupported authentication scheme `{other}`"),
                    })
                }
            };
            lock(&self.tokens).insert(key.clone(), header);
        }
    }

    /// Get a Bearer token from the challenge's realm. An identity token (from a credential
    /// helper) is sent like a password, as the Basic credentials of this request.
    fn token(
        &self,
        registry: &str,
        repository: &str,
        challenge: &auth::Challenge,
        creds: Option<&Credentials>,
        login: bool,
    ) -> Result<String, RegistryError> {
        let realm = challenge
            .param("realm")
            .ok_or_else(|| RegistryError::Auth {
                registry: registry.into(),
                reason: "the Bearer challenge names no realm".into(),
            })?;
        let mut request = self.agent.get(realm);
        if let Some(service) = challenge.param("service") {
            request = request.query("service", service);
        }
        let scope = challenge.param("scope").map(str::to_string).or_else(|| {
            (!repository.is_empty()).then(|| format!("repository:{repository}:pull,push"))
        });
        // A challenge may ask for several scopes (a mount: this repository and the source);
        // token servers take them as repeated `scope` parameters.
        for scope in scope.iter().flat_map(|s| s.split_whitespace()) {
            request = request.query("scope", scope);
        }
        if let Some(c) = creds {
            if c.is_identity_token() {
                tracing::debug!("{registry}: sending an identity token to {realm}");
            } else {
                request = request.query("account", &c.username);
            }
            request = request.header("Authorization", c.basic_header());
        }
        if realm.starts_with("https://") {
            // The token service is trusted as its registry is (an internal CA signs both).
            let tls = self.tls(registry)?;
            request = request.config().tls_config(tls.config.clone()).build();
        }
        let mut response = request.call().map_err(|e| {
            if super::tls::is_certificate_error(&e) {
                self.request_error(registry, realm, &e)
            } else {
                transport(realm, &e, false)
            }
        })?;
        if !response.status().is_success() {
            if creds.is_none() && !login {
                return Err(needs_login(registry));
            }
            return Err(RegistryError::Auth {
                registry: registry.into(),
                reason: format!(
                    "the token service answered {} (wrong user name or password?)",
                    response.status().as_u16()
                ),
            });
        }
        let body: serde_json::Value = response
            .body_mut()
            .with_config()
            .limit(1 << 20)
            .read_to_vec()
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
            .map_err(|e| RegistryError::Auth {
                registry: registry.into(),
                reason: format!("unreadable token response: {e}"),
            })?;
        let token = body["token"]
            .as_str()
            .or_else(|| body["access_token"].as_str())
            .ok_or_else(|| RegistryError::Auth {
                registry: registry.into(),
                reason: "the token response has no token".into(),
            })?;
        Ok(format!("Bearer {token}"))
    }
}

fn needs_login(registry: &str) -> RegistryError {
    RegistryError::Auth {
        registry: registry.into(),
        reason: format!("the registry requires credentials: run `seal login {registry}`"),
    }
}

//! OAuth grants, the warm-container token cache and the logins: everything about tokens. The
//! client asks `Auth` for a token and reports a 401 to it; nothing else signs in.
//!
//! Three grants (Salesforce Help, "OAuth Authorization Flows"): `password` (the reference's), `client_credentials` and
//! `jwt_bearer`. The token is cached for as long as the Lambda container stays warm: Salesforce
//! sends no `expires_in`, so a token is used until a data call answers 401, then refreshed once.
//! Refresh is single-flight: concurrent callers wait for one token request, and a 401 only
//! invalidates the token if it is still the one that failed (generation check). A token belongs
//! to the client, user and login URL that obtained it ([`Fingerprint::identity`]): when the
//! credentials name others (a rotated secret), the cached token is dropped at once. When the
//! token endpoint refuses the credentials, they are read again once (a rotation); if they are
//! refused too, no login is attempted for the cool-down unless they change (refused logins lock
//! the Salesforce user out).
//!
//! [`Fingerprint`]s tell credentials apart without keeping or showing them: HMAC-SHA-256 under a
//! key drawn at random for each process, over the values where they lie.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};

use aws_lc_rs::hmac;
use secrecy::zeroize::Zeroize as _;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::client::SalesforceSettings;
use super::endpoint::{HostPolicy, InstanceUrl, LoginUrl};
use super::error::{Error, request_timeout, transport_error};
use super::wire;
use crate::retry::{Deadline, RetryPolicy};

/// Connected-app and user credentials. `Debug` never shows a secret.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Credentials {
    /// Connected app consumer key.
    pub client_id: String,
    /// Connected app consumer secret (password and client_credentials grants).
    #[serde(default)]
    pub client_secret: Option<SecretString>,
    /// Integration user (password and jwt_bearer grants).
    #[serde(default)]
    pub username: Option<String>,
    /// Password followed by the security token (password grant).
    #[serde(default)]
    pub password: Option<SecretString>,
    /// PEM RSA private key (jwt_bearer grant).
    #[serde(default)]
    pub private_key: Option<SecretString>,
    /// Overrides the configured login URL when set (e.g. in the secret).
    #[serde(default)]
    pub login_url: Option<String>,
}

/// A keyed digest of credentials, to tell whether they changed without keeping them.
///
/// HMAC-SHA-256 under a random key that never leaves the process, fed the values where they
/// lie (no copy of a secret is made). `Debug` shows nothing, and there is no `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Fingerprint([u8; 32]);

impl std::fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Fingerprint([REDACTED])")
    }
}

impl Fingerprint {
    /// Every value of `credentials`: any change (a rotated password, secret or key) changes it.
    pub fn credentials(credentials: &Credentials) -> Self {
        fn secret(s: &Option<SecretString>) -> Option<&[u8]> {
            s.as_ref().map(|s| s.expose_secret().as_bytes())
        }
        Fingerprint::of(
            b"credentials",
            &[
                Some(credentials.client_id.as_bytes()),
                secret(&credentials.client_secret),
                credentials.username.as_deref().map(str::as_bytes),
                secret(&credentials.password),
                secret(&credentials.private_key),
                credentials.login_url.as_deref().map(str::as_bytes),
            ],
        )
    }

    /// Who signs in where: the client id, the user and the login URL of `credentials`. A token
    /// is only used while the current credentials have the identity that obtained it.
    pub fn identity(credentials: &Credentials) -> Self {
        Fingerprint::of(
            b"identity",
            &[
                Some(credentials.client_id.as_bytes()),
                credentials.username.as_deref().map(str::as_bytes),
                credentials.login_url.as_deref().map(str::as_bytes),
            ],
        )
    }

    /// The HMAC of `label` and `values`, each value with its presence and length so that no
    /// two different lists give the same input.
    fn of(label: &[u8], values: &[Option<&[u8]>]) -> Self {
        let mut context = hmac::Context::with_key(fingerprint_key());
        context.update(label);
        for value in values {
            match value {
                None => context.update(&[0]),
                Some(bytes) => {
                    context.update(&[1]);
                    context.update(&(bytes.len() as u64).to_be_bytes());
                    context.update(bytes);
                }
            }
        }
        let mut out = [0; 32];
        out.copy_from_slice(context.sign().as_ref());
        Fingerprint(out)
    }
}

/// The process's fingerprint key: random, drawn once, never stored anywhere else. A process-wide
/// value rather than state: fingerprints are only ever compared within one process.
fn fingerprint_key() -> &'static hmac::Key {
    static KEY: OnceLock<hmac::Key> = OnceLock::new();
    KEY.get_or_init(|| {
        let mut seed = [0u8; 32];
        if aws_lc_rs::rand::fill(&mut seed).is_err() {
            // Never seen in practice; std's per-process random SipHash keys still make the
            // key unknown outside this process.
            use std::hash::BuildHasher as _;
            let state = std::collections::hash_map::RandomState::new();
            for (i, chunk) in seed.chunks_mut(8).enumerate() {
                chunk.copy_from_slice(&state.hash_one(i).to_le_bytes());
            }
        }
        let key = hmac::Key::new(hmac::HMAC_SHA256, &seed);
        seed.zeroize();
        key
    })
}

/// A boxed future, for the object-safe [`CredentialProvider`].
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where the client gets its credentials: fixed values, or a store that can change them
/// (`secrets` implements it for Secrets Manager). Errors are messages that say what to fix.
pub trait CredentialProvider: Send + Sync + std::fmt::Debug {
    /// The current credentials.
    fn current(&self) -> BoxFuture<'_, Result<Credentials, String>>;
    /// Reads the credentials again after the token endpoint rejected them (they may have been
    /// rotated). `None` when they cannot change.
    fn reload(&self) -> BoxFuture<'_, Result<Option<Credentials>, String>>;
}

/// Fixed credentials (from the environment, or a test).
#[derive(Debug, Clone)]
pub struct StaticCredentials(pub Credentials);

impl CredentialProvider for StaticCredentials {
    fn current(&self) -> BoxFuture<'_, Result<Credentials, String>> {
        let credentials = self.0.clone();
        Box::pin(async move { Ok(credentials) })
    }

    fn reload(&self) -> BoxFuture<'_, Result<Option<Credentials>, String>> {
        Box::pin(async { Ok(None) })
    }
}

/// The OAuth grant used to get a token (configured by `SALESFORCE_AUTH_FLOW`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    /// `grant_type=password`: username + password and security token.
    Password,
    /// `grant_type=client_credentials`: the connected app's Run As user (My Domain URL only).
    ClientCredentials,
    /// `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`: an RS256 JWT signed with the
    /// connected app's certificate key.
    JwtBearer,
}

impl Grant {
    /// Parses `password`, `client_credentials` or `jwt_bearer`.
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "password" => Some(Grant::Password),
            "client_credentials" => Some(Grant::ClientCredentials),
            "jwt_bearer" | "jwt-bearer" | "jwt" => Some(Grant::JwtBearer),
            _ => None,
        }
    }

    /// The grant the credentials imply: a private key → JWT bearer; a username and password →
    /// password; a client id and secret only → client credentials. `None` when they are not
    /// enough for any grant.
    pub fn infer(credentials: &Credentials) -> Option<Self> {
        let has =
            |s: &Option<SecretString>| s.as_ref().is_some_and(|s| !s.expose_secret().is_empty());
        let user = credentials
            .username
            .as_deref()
            .is_some_and(|u| !u.is_empty());
        if credentials.client_id.is_empty() {
            None
        } else if has(&credentials.private_key) && user {
            Some(Grant::JwtBearer)
        } else if user && has(&credentials.password) && has(&credentials.client_secret) {
            Some(Grant::Password)
        } else if has(&credentials.client_secret) {
            Some(Grant::ClientCredentials)
        } else {
            None
        }
    }

    /// The name used in configuration.
    pub fn name(self) -> &'static str {
        match self {
            Grant::Password => "password",
            Grant::ClientCredentials => "client_credentials",
            Grant::JwtBearer => "jwt_bearer",
        }
    }
}

/// The JWT bearer grant's assertion lifetime (Salesforce accepts at most 3 minutes).
pub const JWT_LIFETIME_SECS: i64 = 170;

#[derive(Serialize)]
struct JwtClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    exp: i64,
}

/// A form body for the token endpoint. `Debug` redacts every value.
pub struct GrantForm(pub Vec<(&'static str, SecretString)>);

impl std::fmt::Debug for GrantForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(k, _)| format!("{k}=[REDACTED]")))
            .finish()
    }
}

impl GrantForm {
    /// The pairs with their values exposed, for the HTTP client's form encoder only.
    pub fn exposed(&self) -> Vec<(&'static str, &str)> {
        self.0
            .iter()
            .map(|(k, v)| (*k, v.expose_secret()))
            .collect()
    }
}

fn missing(grant: Grant, field: &str) -> Error {
    Error::Credentials(format!(
        "the {} grant needs `{field}` in the Salesforce credentials (secret key `{field}` or \
         variable SALESFORCE_{})",
        grant.name(),
        field.to_ascii_uppercase()
    ))
}

/// Builds the token request's form fields for `grant`. `now_epoch_secs` dates the JWT.
///
/// # Errors
/// [`Error::Credentials`] when a field the grant needs is missing or the private key is not a
/// PEM RSA key.
pub fn grant_form(
    grant: Grant,
    credentials: &Credentials,
    audience: &str,
    now_epoch_secs: i64,
) -> Result<GrantForm, Error> {
    let secret = |s: &str| SecretString::from(s.to_owned());
    let client_id = secret(&credentials.client_id);
    let client_secret = || {
        credentials
            .client_secret
            .clone()
            .ok_or_else(|| missing(grant, "client_secret"))
    };
    let username = || {
        credentials
            .username
            .as_deref()
            .filter(|u| !u.is_empty())
            .ok_or_else(|| missing(grant, "username"))
    };
    let pairs = match grant {
        Grant::Password => vec![
            ("grant_type", secret("password")),
            ("client_id", client_id),
            ("client_secret", client_secret()?),
            ("username", secret(username()?)),
            (
                "password",
                credentials
                    .password
                    .clone()
                    .ok_or_else(|| missing(grant, "password"))?,
            ),
        ],
        Grant::ClientCredentials => vec![
            ("grant_type", secret("client_credentials")),
            ("client_id", client_id),
            ("client_secret", client_secret()?),
        ],
        Grant::JwtBearer => {
            let key_pem = credentials
                .private_key
                .as_ref()
                .ok_or_else(|| missing(grant, "private_key"))?;
            let key = jsonwebtoken::EncodingKey::from_rsa_pem(key_pem.expose_secret().as_bytes())
                .map_err(|_| {
                Error::Credentials(
                    "private_key is not a PEM RSA private key (-----BEGIN PRIVATE KEY----- or \
                         -----BEGIN RSA PRIVATE KEY-----)"
                        .into(),
                )
            })?;
            let claims = JwtClaims {
                iss: &credentials.client_id,
                sub: username()?,
                aud: audience,
                exp: now_epoch_secs + JWT_LIFETIME_SECS,
            };
            let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
            let assertion = jsonwebtoken::encode(&header, &claims, &key)
                .map_err(|e| Error::Credentials(format!("could not sign the JWT ({e:?})")))?;
            vec![
                (
                    "grant_type",
                    secret("urn:ietf:params:oauth:grant-type:jwt-bearer"),
                ),
                ("assertion", SecretString::from(assertion)),
            ]
        }
    };
    Ok(GrantForm(pairs))
}

/// What the token endpoint granted, for [`TokenCache::get_or_fetch`].
pub struct IssuedToken {
    /// The bearer token.
    pub access_token: SecretString,
    /// Where data calls go.
    pub instance_url: String,
    /// [`Fingerprint::identity`] of the credentials that obtained it.
    pub identity: Fingerprint,
    /// The grant that obtained it.
    pub grant: Grant,
    /// The signed-in user's Id, from the token answer's identity URL.
    pub user_id: Option<String>,
}

/// Who a token signs in as, for people (`ctr-cases check`): no secret in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login {
    /// The OAuth grant used.
    pub grant: Grant,
    /// The integration user's Id (`005…`), when the token answer named it.
    pub user_id: Option<String>,
    /// Where data calls go.
    pub instance_url: String,
}

/// An access token with the instance it is for. `Debug` redacts the token.
pub struct Token {
    /// The bearer token.
    pub access_token: SecretString,
    /// Where data calls go.
    pub instance_url: String,
    /// Increases with every token the cache stores.
    pub generation: u64,
    /// Who obtained it ([`Fingerprint::identity`]).
    identity: Fingerprint,
    /// The grant that obtained it.
    pub grant: Grant,
    /// The signed-in user's Id, when the token answer named it.
    pub user_id: Option<String>,
}

impl Token {
    /// Who this token signs in as.
    pub fn login(&self) -> Login {
        Login {
            grant: self.grant,
            user_id: self.user_id.clone(),
            instance_url: self.instance_url.clone(),
        }
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("access_token", &"[REDACTED]")
            .field("instance_url", &self.instance_url)
            .field("generation", &self.generation)
            .finish()
    }
}

/// The cached token, shared by all requests of a warm container.
#[derive(Debug, Default)]
pub struct TokenCache {
    // std RwLock for the fast path: never held across an await.
    current: RwLock<Option<Arc<Token>>>,
    // tokio Mutex held across the token request: only one refresh at a time.
    refresh_gate: tokio::sync::Mutex<u64>,
}

impl TokenCache {
    /// The cached token, if any.
    pub fn cached(&self) -> Option<Arc<Token>> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Returns the cached token if the credentials in use still have its `identity`, or runs
    /// `fetch` (once, even with concurrent callers) to get one. A cached token of another
    /// identity (the secret now names another client, user or login URL) is dropped first.
    ///
    /// # Errors
    /// Whatever `fetch` returns.
    pub async fn get_or_fetch<F, Fut>(
        &self,
        identity: &Fingerprint,
        fetch: F,
    ) -> Result<Arc<Token>, Error>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<IssuedToken, Error>>,
    {
        if let Some(token) = self.cached_for(identity) {
            return Ok(token);
        }
        let mut generation = self.refresh_gate.lock().await;
        // Someone else may have refreshed while we waited for the gate.
        if let Some(token) = self.cached_for(identity) {
            return Ok(token);
        }
        let issued = fetch().await?;
        *generation += 1;
        let token = Arc::new(Token {
            access_token: issued.access_token,
            instance_url: issued.instance_url,
            generation: *generation,
            identity: issued.identity,
            grant: issued.grant,
            user_id: issued.user_id,
        });
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Some(token.clone());
        Ok(token)
    }

    /// The cached token if it was obtained with `identity`; a token of another identity is
    /// forgotten.
    fn cached_for(&self, identity: &Fingerprint) -> Option<Arc<Token>> {
        let token = self.cached()?;
        if token.identity == *identity {
            return Some(token);
        }
        tracing::info!(
            generation = token.generation,
            "the Salesforce credentials now name another client, user or login URL; dropping the cached token"
        );
        self.invalidate(token.generation);
        None
    }

    /// Forgets the token of `generation` after a 401. A no-op when a newer token is already
    /// cached, so N concurrent 401s for one token cause one refresh.
    pub fn invalidate(&self, generation: u64) {
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        if current.as_ref().is_some_and(|t| t.generation == generation) {
            *current = None;
        }
    }
}

/// The tokens of one client: the cache, one login at a time for concurrent writers (single
/// flight, through [`TokenCache`]), and the cool-down after the token endpoint refused the
/// credentials. Data calls ask it for a token ([`Auth::token`]) and report a 401 to it
/// ([`Auth::expired`]); nothing else signs in.
#[derive(Debug)]
pub(super) struct Auth {
    http: reqwest::Client,
    /// The configured login URL (the secret's `login_url` wins when set).
    login_url: String,
    allowed_hosts: HostPolicy,
    jwt_audience: Option<String>,
    /// `None`: the grant the credentials imply ([`Grant::infer`]).
    grant: Option<Grant>,
    login_cooldown: Duration,
    retry: RetryPolicy,
    credentials: Box<dyn CredentialProvider>,
    cache: TokenCache,
    /// Set after the token endpoint refused the credentials.
    block: Mutex<Option<LoginBlock>>,
}

/// No login until `until`, unless the credentials' fingerprint changes.
#[derive(Debug, Clone)]
struct LoginBlock {
    until: Instant,
    fingerprint: Fingerprint,
    cause: String,
}

/// What one successful token request gave.
struct Signed {
    access_token: SecretString,
    instance_url: String,
    grant: Grant,
    user_id: Option<String>,
}

impl Signed {
    /// This token with the identity of the `credentials` that obtained it.
    fn issued(self, credentials: &Credentials) -> IssuedToken {
        IssuedToken {
            access_token: self.access_token,
            instance_url: self.instance_url,
            identity: Fingerprint::identity(credentials),
            grant: self.grant,
            user_id: self.user_id,
        }
    }
}

impl Auth {
    /// Signs in as `settings` say (login URL, allowed hosts, grant, cool-down, timeouts) with
    /// `credentials`, over `http`.
    pub(super) fn new(
        http: reqwest::Client,
        settings: &SalesforceSettings,
        credentials: Box<dyn CredentialProvider>,
    ) -> Self {
        Auth {
            http,
            login_url: settings.login_url.clone(),
            allowed_hosts: settings.allowed_hosts.clone(),
            jwt_audience: settings.jwt_audience.clone(),
            grant: settings.grant,
            login_cooldown: settings.login_cooldown,
            retry: settings.retry,
            credentials,
            cache: TokenCache::default(),
            block: Mutex::new(None),
        }
    }

    /// The cached token while the current credentials still name the client, user and login
    /// URL that obtained it; otherwise a new one (a rotated secret may point elsewhere), one
    /// login at a time. Each token request made is counted in `token_requests`.
    ///
    /// # Errors
    /// The credentials' or the token request's [`Error`], or [`Error::LoginCoolingDown`].
    pub(super) async fn token(
        &self,
        deadline: Deadline,
        token_requests: &AtomicU32,
    ) -> Result<Arc<Token>, Error> {
        let identity = Fingerprint::identity(
            &self
                .credentials
                .current()
                .await
                .map_err(Error::Credentials)?,
        );
        self.cache
            .get_or_fetch(&identity, || self.fetch(deadline, token_requests))
            .await
    }

    /// A data call with `token` was answered 401 (the session expired or was revoked): the
    /// token is forgotten, so the next [`Auth::token`] signs in again, once however many calls
    /// report the same token.
    pub(super) fn expired(&self, token: &Token) {
        tracing::info!(
            generation = token.generation,
            "Salesforce session expired; refreshing the token once"
        );
        self.cache.invalidate(token.generation);
    }

    /// Gets a token. When the grant is refused, reads the credentials again once and signs in
    /// with them only if they changed (a rotation); if they are refused too (or did not
    /// change), no login is attempted for the cool-down unless the credentials change: each
    /// refused login counts towards Salesforce locking the user out.
    async fn fetch(
        &self,
        deadline: Deadline,
        token_requests: &AtomicU32,
    ) -> Result<IssuedToken, Error> {
        let blocked = self
            .block
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .filter(|b| b.until > Instant::now());
        let credentials = match blocked {
            None => self
                .credentials
                .current()
                .await
                .map_err(Error::Credentials)?,
            Some(block) => {
                // The secret may have been fixed: a new version is picked up at once.
                let fresh = match self
                    .credentials
                    .reload()
                    .await
                    .map_err(Error::Credentials)?
                {
                    Some(fresh) => fresh,
                    None => self
                        .credentials
                        .current()
                        .await
                        .map_err(Error::Credentials)?,
                };
                if Fingerprint::credentials(&fresh) == block.fingerprint {
                    return Err(Error::LoginCoolingDown {
                        remaining_secs: block
                            .until
                            .saturating_duration_since(Instant::now())
                            .as_secs(),
                        cause: block.cause,
                    });
                }
                fresh
            }
        };
        let rejected = match self.sign_in(&credentials, deadline, token_requests).await {
            Err(e @ Error::AuthRejected { .. }) => e,
            other => return self.unblocked(other.map(|t| t.issued(&credentials))),
        };
        let tried = Fingerprint::credentials(&credentials);
        let fresh = self
            .credentials
            .reload()
            .await
            .map_err(Error::Credentials)?;
        let (last_tried, result) = match fresh {
            Some(fresh) if Fingerprint::credentials(&fresh) != tried => {
                tracing::warn!(
                    error_code = rejected.code(),
                    "Salesforce refused the grant; the secret changed, signing in once more"
                );
                let fp = Fingerprint::credentials(&fresh);
                let result = self.sign_in(&fresh, deadline, token_requests).await;
                (fp, result.map(|t| t.issued(&fresh)))
            }
            _ => (tried, Err(rejected)),
        };
        match result {
            Err(e @ Error::AuthRejected { .. }) => {
                let cooldown = self.login_cooldown;
                tracing::error!(
                    error = %e,
                    cooldown_secs = cooldown.as_secs(),
                    "Salesforce refused the credentials; no new login until they change or the cool-down ends"
                );
                *self.block.lock().unwrap_or_else(|e| e.into_inner()) = Some(LoginBlock {
                    until: Instant::now() + cooldown,
                    fingerprint: last_tried,
                    cause: e.code().to_owned(),
                });
                Err(e)
            }
            other => self.unblocked(other),
        }
    }

    /// Lifts the login cool-down after a successful grant.
    fn unblocked<T>(&self, result: Result<T, Error>) -> Result<T, Error> {
        if result.is_ok() {
            *self.block.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
        result
    }

    /// One token request with `credentials`: the login URL checked against the allowed hosts
    /// first, the `instance_url` of the answer after.
    async fn sign_in(
        &self,
        credentials: &Credentials,
        deadline: Deadline,
        token_requests: &AtomicU32,
    ) -> Result<Signed, Error> {
        let login = match credentials.login_url.as_deref() {
            Some(text) => LoginUrl::parse(text, &self.allowed_hosts).map_err(|e| {
                Error::Credentials(format!(
                    "login_url in the Salesforce secret is refused: {e}; fix the secret's \
                     login_url key (or remove it to use SALESFORCE_LOGIN_URL)"
                ))
            })?,
            None => LoginUrl::parse(&self.login_url, &self.allowed_hosts)
                .map_err(|e| Error::Credentials(format!("SALESFORCE_LOGIN_URL is refused: {e}")))?,
        };
        let audience = self
            .jwt_audience
            .clone()
            .unwrap_or_else(|| login.jwt_audience());
        let grant = match self.grant {
            Some(grant) => grant,
            None => Grant::infer(credentials).ok_or_else(|| {
                Error::Credentials(
                    "the Salesforce credentials fit no OAuth grant: give private_key and \
                     username (jwt_bearer), client_id and client_secret (client_credentials), \
                     or client_id, client_secret, username and password (password)"
                        .into(),
                )
            })?,
        };
        let now = chrono::Utc::now().timestamp();
        let form = grant_form(grant, credentials, &audience, now)?;
        let timeout = request_timeout(&self.retry, deadline)?;
        token_requests.fetch_add(1, Ordering::Relaxed);
        let response = self
            .http
            .post(login.token_url())
            .header(reqwest::header::ACCEPT, "application/json")
            .form(&form.exposed())
            .timeout(timeout)
            .send()
            .await
            .map_err(transport_error)?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(transport_error)?;
        let token = wire::parse_token_response(status, &bytes)?;
        // The bearer token and the Case data go only where this allows: never trust the
        // instance_url blindly (a token endpoint could name any host).
        let instance = InstanceUrl::parse(&token.instance_url, &login, &self.allowed_hosts)
            .map_err(Error::InstanceUrlRefused)?;
        tracing::info!(grant = grant.name(), "signed in to Salesforce");
        let user_id = token.user_id().map(str::to_owned);
        Ok(Signed {
            access_token: SecretString::from(token.access_token),
            instance_url: instance.as_str().to_owned(),
            grant,
            user_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn creds() -> Credentials {
        Credentials {
            client_id: "cid".into(),
            client_secret: Some("csecret".to_owned().into()),
            username: Some("u@example.com".into()),
            password: Some("pwTOKEN".to_owned().into()),
            private_key: None,
            login_url: None,
        }
    }

    #[test]
    fn password_form_has_documented_fields() {
        let form =
            grant_form(Grant::Password, &creds(), "https://login.salesforce.com", 0).unwrap();
        assert_eq!(
            form.exposed(),
            vec![
                ("grant_type", "password"),
                ("client_id", "cid"),
                ("client_secret", "csecret"),
                ("username", "u@example.com"),
                ("password", "pwTOKEN"),
            ]
        );
        assert!(!format!("{form:?}").contains("pwTOKEN"));
    }

    #[test]
    fn client_credentials_form_has_no_user() {
        let form = grant_form(Grant::ClientCredentials, &creds(), "", 0).unwrap();
        let keys: Vec<_> = form.exposed().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["grant_type", "client_id", "client_secret"]);
    }

    #[test]
    fn missing_fields_name_the_key() {
        let mut c = creds();
        c.password = None;
        let err = grant_form(Grant::Password, &c, "", 0).unwrap_err();
        assert!(err.to_string().contains("`password`"), "{err}");
        let err = grant_form(Grant::JwtBearer, &creds(), "", 0).unwrap_err();
        assert!(err.to_string().contains("`private_key`"), "{err}");
        let mut c = creds();
        c.private_key = Some("not a key".to_owned().into());
        let err = grant_form(Grant::JwtBearer, &c, "", 0).unwrap_err();
        assert!(err.to_string().contains("PEM"), "{err}");
    }

    #[test]
    fn grant_follows_the_credentials() {
        let mut c = creds();
        assert_eq!(Grant::infer(&c), Some(Grant::Password));
        c.private_key = Some("pem".to_owned().into());
        assert_eq!(Grant::infer(&c), Some(Grant::JwtBearer));
        let mut c = creds();
        c.username = None;
        c.password = None;
        assert_eq!(Grant::infer(&c), Some(Grant::ClientCredentials));
        c.client_secret = None;
        assert_eq!(Grant::infer(&c), None);
    }

    #[test]
    fn grant_names_parse() {
        assert_eq!(Grant::parse("JWT_BEARER"), Some(Grant::JwtBearer));
        assert_eq!(Grant::parse("password"), Some(Grant::Password));
        assert_eq!(Grant::parse("oauth"), None);
    }

    fn issued(token: &str, credentials: &Credentials) -> IssuedToken {
        IssuedToken {
            access_token: token.to_owned().into(),
            instance_url: "https://i".to_owned(),
            identity: Fingerprint::identity(credentials),
            grant: Grant::Password,
            user_id: None,
        }
    }

    #[test]
    fn fingerprints_follow_the_values_and_debug_shows_none() {
        let base = creds();
        let fp = Fingerprint::credentials(&base);
        assert_eq!(fp, Fingerprint::credentials(&base.clone()));
        let mut rotated = creds();
        rotated.password = Some("pwTOKEN2".to_owned().into());
        assert_ne!(Fingerprint::credentials(&rotated), fp);
        assert_eq!(
            Fingerprint::identity(&rotated),
            Fingerprint::identity(&base),
            "a new password keeps the identity"
        );
        // Moving a value between fields changes the fingerprint too.
        let mut moved = creds();
        moved.username = None;
        moved.login_url = Some("u@example.com".into());
        assert_ne!(Fingerprint::identity(&moved), Fingerprint::identity(&base));
        for change in [
            |c: &mut Credentials| c.client_id = "other".into(),
            |c: &mut Credentials| c.login_url = Some("https://test.salesforce.com".into()),
            |c: &mut Credentials| c.username = Some("v@example.com".into()),
        ] {
            let mut changed = creds();
            change(&mut changed);
            assert_ne!(
                Fingerprint::identity(&changed),
                Fingerprint::identity(&base)
            );
        }
        let shown = format!("{fp:?}");
        assert_eq!(shown, "Fingerprint([REDACTED])");
    }

    // See: issue "A contact writes only its own Case", item 8.
    #[tokio::test]
    async fn a_token_of_another_identity_is_dropped() {
        let cache = TokenCache::default();
        let old = creds();
        let first = cache
            .get_or_fetch(&Fingerprint::identity(&old), || async {
                Ok(issued("t1", &old))
            })
            .await
            .unwrap();
        let mut moved = creds();
        moved.login_url = Some("https://acme.my.salesforce.com".into());
        let second = cache
            .get_or_fetch(&Fingerprint::identity(&moved), || async {
                Ok(issued("t2", &moved))
            })
            .await
            .unwrap();
        assert_eq!((first.generation, second.generation), (1, 2));
        assert_eq!(second.access_token.expose_secret(), "t2");
        // The same identity keeps the token.
        let again = cache
            .get_or_fetch(&Fingerprint::identity(&moved), || async {
                Ok(issued("t3", &moved))
            })
            .await
            .unwrap();
        assert_eq!(again.generation, 2);
    }

    #[tokio::test]
    async fn concurrent_callers_share_one_fetch() {
        let cache = Arc::new(TokenCache::default());
        let fetches = Arc::new(AtomicU32::new(0));
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let cache = cache.clone();
            let fetches = fetches.clone();
            tasks.push(tokio::spawn(async move {
                let c = creds();
                cache
                    .get_or_fetch(&Fingerprint::identity(&c), || async {
                        fetches.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                        Ok(issued("tok", &c))
                    })
                    .await
                    .unwrap()
                    .generation
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap(), 1);
        }
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn second_401_for_same_token_does_not_refresh_again() {
        let cache = TokenCache::default();
        let c = creds();
        let identity = Fingerprint::identity(&c);
        let fetch = || async { Ok(issued("t", &c)) };
        let first = cache.get_or_fetch(&identity, fetch).await.unwrap();
        cache.invalidate(first.generation);
        let second = cache.get_or_fetch(&identity, fetch).await.unwrap();
        assert_eq!(second.generation, 2);
        // A late 401 for the first token must not throw away the second.
        cache.invalidate(first.generation);
        assert_eq!(cache.cached().unwrap().generation, 2);
    }
}

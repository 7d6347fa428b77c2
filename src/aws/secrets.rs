//! Salesforce credentials: where they come from and how they are kept.
//!
//! Credentials come from the environment (`SALESFORCE_*`) or from a Secrets Manager secret
//! (`SALESFORCE_SECRET_ARN`), read at cold start, again when the token endpoint rejects them
//! (the secret may have been rotated), and again when they are older than [`SECRET_MAX_AGE`]:
//! a rotation that points them at another org, connected app or user is picked up even while
//! the old token still works (the Salesforce client then drops that token). Secret values are
//! `SecretString`s: their `Debug` prints `[REDACTED]` and they are zeroized on drop.
//! [`CredentialSource`] is the Salesforce client's [`CredentialProvider`].

use std::time::{Duration, Instant};

use tokio::sync::Mutex;

pub use crate::salesforce::Credentials;
use crate::salesforce::auth::{BoxFuture, CredentialProvider};

/// Why credentials could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    /// Secrets Manager could not be called or refused.
    #[error(
        "could not read the secret named by SALESFORCE_SECRET_ARN ({code}): check the ARN, the \
         function's secretsmanager:GetSecretValue permission and the secret's KMS key"
    )]
    Fetch {
        /// The service's error code, or a short description.
        code: String,
    },
    /// The secret has no string value.
    #[error(
        "the secret named by SALESFORCE_SECRET_ARN has no SecretString: store the credentials as JSON text"
    )]
    NotText,
    /// The secret is not the expected JSON.
    #[error(
        "the secret named by SALESFORCE_SECRET_ARN is not valid credentials JSON ({0}): expected \
         {{\"client_id\":…,\"client_secret\":…,\"username\":…,\"password\":…,\"private_key\":…}}"
    )]
    BadJson(String),
}

/// How long credentials read from Secrets Manager are used before the secret is read again.
pub const SECRET_MAX_AGE: Duration = Duration::from_secs(300);

/// Where credentials come from.
pub enum CredentialSource {
    /// Fixed credentials (from the environment, or a test).
    Static(Credentials),
    /// A Secrets Manager secret, cached for `max_age` after each read.
    SecretsManager {
        /// The SDK client.
        client: aws_sdk_secretsmanager::Client,
        /// The secret's ARN or name.
        secret_id: String,
        /// The last credentials read, and when.
        cached: Mutex<Option<(Credentials, Instant)>>,
        /// How long the cached credentials are used before the secret is read again.
        max_age: Duration,
    },
}

impl std::fmt::Debug for CredentialSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CredentialSource::Static(_) => f.write_str("CredentialSource::Static"),
            CredentialSource::SecretsManager { secret_id, .. } => f
                .debug_struct("CredentialSource::SecretsManager")
                .field("secret_id", secret_id)
                .finish(),
        }
    }
}

impl CredentialSource {
    /// A source reading `secret_id` with `client`, again every [`SECRET_MAX_AGE`].
    pub fn secrets_manager(client: aws_sdk_secretsmanager::Client, secret_id: String) -> Self {
        CredentialSource::SecretsManager {
            client,
            secret_id,
            cached: Mutex::new(None),
            max_age: SECRET_MAX_AGE,
        }
    }

    /// Reads the secret again once the cached credentials are `max_age` old (a Secrets Manager
    /// source only; tests use a short age).
    pub fn with_max_age(mut self, age: Duration) -> Self {
        if let CredentialSource::SecretsManager { max_age, .. } = &mut self {
            *max_age = age;
        }
        self
    }

    /// The current credentials: read from the secret the first time and once the cached ones
    /// are older than the source's maximum age. When that re-read fails, the cached
    /// credentials stay in use (a Secrets Manager hiccup must not stop working credentials).
    ///
    /// # Errors
    /// [`SecretsError`] when the secret cannot be read or parsed and nothing is cached.
    pub async fn current(&self) -> Result<Credentials, SecretsError> {
        match self {
            CredentialSource::Static(c) => Ok(c.clone()),
            CredentialSource::SecretsManager {
                client,
                secret_id,
                cached,
                max_age,
            } => {
                let mut guard = cached.lock().await;
                if let Some((c, read)) = guard.as_ref()
                    && read.elapsed() < *max_age
                {
                    return Ok(c.clone());
                }
                match fetch(client, secret_id).await {
                    Ok(fresh) => {
                        *guard = Some((fresh.clone(), Instant::now()));
                        Ok(fresh)
                    }
                    Err(e) => match guard.as_mut() {
                        Some((c, read)) => {
                            tracing::warn!(
                                error = %e,
                                "could not read the Salesforce secret again; using the credentials read before"
                            );
                            // Try again after another max_age, not on every call.
                            *read = Instant::now();
                            Ok(c.clone())
                        }
                        None => Err(e),
                    },
                }
            }
        }
    }

    /// Reads the credentials again (after the token endpoint rejected them). Returns `None` for
    /// a static source, which cannot change.
    ///
    /// # Errors
    /// [`SecretsError`] when the secret cannot be read or parsed.
    pub async fn reload(&self) -> Result<Option<Credentials>, SecretsError> {
        match self {
            CredentialSource::Static(_) => Ok(None),
            CredentialSource::SecretsManager {
                client,
                secret_id,
                cached,
                ..
            } => {
                let mut guard = cached.lock().await;
                let fresh = fetch(client, secret_id).await?;
                *guard = Some((fresh.clone(), Instant::now()));
                Ok(Some(fresh))
            }
        }
    }
}

impl CredentialProvider for CredentialSource {
    fn current(&self) -> BoxFuture<'_, Result<Credentials, String>> {
        Box::pin(async move {
            CredentialSource::current(self)
                .await
                .map_err(|e| e.to_string())
        })
    }

    fn reload(&self) -> BoxFuture<'_, Result<Option<Credentials>, String>> {
        Box::pin(async move {
            CredentialSource::reload(self)
                .await
                .map_err(|e| e.to_string())
        })
    }
}

async fn fetch(
    client: &aws_sdk_secretsmanager::Client,
    secret_id: &str,
) -> Result<Credentials, SecretsError> {
    let out = client
        .get_secret_value()
        .secret_id(secret_id)
        .send()
        .await
        .map_err(|e| SecretsError::Fetch {
            code: aws_sdk_secretsmanager::error::ProvideErrorMetadata::code(&e)
                .unwrap_or("no answer from Secrets Manager")
                .to_owned(),
        })?;
    let text = out.secret_string().ok_or(SecretsError::NotText)?;
    parse_secret(text)
}

/// Parses the secret's JSON text.
///
/// # Errors
/// [`SecretsError::BadJson`]; the message names the problem, never a value.
pub fn parse_secret(text: &str) -> Result<Credentials, SecretsError> {
    let credentials: Credentials = serde_json::from_str(text).map_err(|e| {
        // serde_json quotes bad values in its message; keep only the position.
        SecretsError::BadJson(format!(
            "{:?} error at line {} column {}",
            e.classify(),
            e.line(),
            e.column()
        ))
    })?;
    if credentials.client_id.trim().is_empty() {
        return Err(SecretsError::BadJson("client_id is empty".into()));
    }
    Ok(credentials)
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn secret_json_parses_and_debug_redacts() {
        let c = parse_secret(
            r#"{"client_id":"cid","client_secret":"s3cr3t","username":"u@x","password":"pw+tok"}"#,
        )
        .unwrap();
        assert_eq!(c.password.as_ref().unwrap().expose_secret(), "pw+tok");
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("s3cr3t") && !shown.contains("pw+tok"),
            "{shown}"
        );
    }

    #[test]
    fn bad_secret_json_names_no_value() {
        let err = parse_secret(r#"{"client_id":"cid","password":12345678}"#).unwrap_err();
        assert!(!err.to_string().contains("12345678"), "{err}");
        assert!(matches!(
            parse_secret(r#"{"client_id":" "}"#),
            Err(SecretsError::BadJson(_))
        ));
    }
}

//! App states for handler tests whose credentials or dead letters live in moto_server (Secrets
//! Manager, SQS), built the way `AppState::from_config` builds them but with clients that point
//! only at moto. [`super::fixtures::app_state`] covers inline credentials and in-memory letters.
#![allow(dead_code)]

use std::collections::HashMap;

use ctr_cases::app::AppState;
use ctr_cases::aws::queue::DeadLetterSink;
use ctr_cases::aws::secrets::CredentialSource;
use ctr_cases::config::CredentialsConfig;

use super::fixtures;
use super::moto::Moto;

/// App state from `env` (see [`super::fixtures::fake_env`]): credentials inline, or from the
/// secret named by `SALESFORCE_SECRET_ARN` in `moto`; dead letters to `dead_letter_queue` on
/// `moto` (in memory when `None`); metrics off.
///
/// # Panics
/// When `env` is not a valid configuration.
pub async fn app_state_on_moto(
    env: &HashMap<String, String>,
    moto: &Moto,
    dead_letter_queue: Option<&str>,
) -> AppState {
    let config = fixtures::test_config(env);
    let credentials = match &config.credentials {
        CredentialsConfig::Inline(c) => CredentialSource::Static(c.clone()),
        CredentialsConfig::SecretArn(arn) => {
            CredentialSource::secrets_manager(moto.secretsmanager().await, arn.clone())
        }
    };
    let dead_letters = match dead_letter_queue {
        Some(queue_url) => DeadLetterSink::Sqs {
            client: moto.sqs().await,
            queue_url: queue_url.to_owned(),
        },
        None => DeadLetterSink::memory(),
    };
    fixtures::app_state_from(config, credentials, dead_letters)
}

//! App states for handler tests whose credentials or dead letters live in moto_server (Secrets
//! Manager, SQS), built the way `AppState::from_config` builds them but with clients that point
//! only at moto. [`super::fixtures::app_state`] covers inline credentials and in-memory letters.
#![allow(dead_code)]

use std::collections::HashMap;
use std::time::Duration;

use ctr_cases::app::{AppState, MetricsTarget};
use ctr_cases::config::{Config, CredentialsConfig};
use ctr_cases::queue::DeadLetterSink;
use ctr_cases::salesforce::SalesforceClient;
use ctr_cases::secrets::CredentialSource;

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
    let config = Config::from_lookup(|k| env.get(k).cloned())
        .unwrap_or_else(|e| panic!("test config is invalid: {e}"));
    let credentials = match config.credentials {
        CredentialsConfig::Inline(c) => CredentialSource::Static(c),
        CredentialsConfig::SecretArn(arn) => {
            CredentialSource::secrets_manager(moto.secretsmanager().await, arn)
        }
    };
    let dead_letters = match dead_letter_queue {
        Some(queue_url) => DeadLetterSink::Sqs {
            client: moto.sqs().await,
            queue_url: queue_url.to_owned(),
        },
        None => DeadLetterSink::memory(),
    };
    AppState {
        settings: config.pipeline,
        salesforce: SalesforceClient::new(config.salesforce, credentials)
            .expect("the HTTP client builds"),
        dead_letters,
        recent_dead_letters: Default::default(),
        metrics: MetricsTarget {
            namespace: "CtrCasesTest".into(),
            function_name: "test".into(),
            enabled: false,
        },
        deadline_margin: Duration::from_millis(500),
        outage_hold: config.outage_hold,
        flow_timeout: config.flow_timeout,
    }
}

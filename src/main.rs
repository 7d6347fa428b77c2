//! The Lambda bootstrap: read the configuration, build the shared state once per cold start,
//! and serve Kinesis batches until the container is frozen for good.

#![recursion_limit = "256"]
use ctr_cases::config::Config;
use ctr_cases::handler::{self, AppState};
use lambda_runtime::{Error, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    ctr_cases::logging::init_from_env();
    let config = Config::from_env().inspect_err(|e| tracing::error!(error = %e, "cannot start"))?;
    let state = AppState::from_config(config)
        .await
        .inspect_err(|e| tracing::error!(error = %e, "cannot start"))?;
    let state = &state;
    lambda_runtime::run(service_fn(move |event| handler::handle(state, event))).await
}

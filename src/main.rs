//! The stream Lambda bootstrap: read the configuration, build the shared state once per cold
//! start, and serve Kinesis batches until the container is frozen for good.

#![recursion_limit = "256"]

use std::process::ExitCode;

use ctr_cases::app::AppState;
use ctr_cases::config::Config;
use ctr_cases::retry::Deadline;
use ctr_cases::stream;
use lambda_runtime::service_fn;

/// How long the init phase may spend signing in and checking the org (Lambda allows 10 s).
const INIT_CHECK_BUDGET: std::time::Duration = std::time::Duration::from_secs(6);

#[tokio::main]
async fn main() -> ExitCode {
    ctr_cases::logging::init_from_env();
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Lambda reports the exit as an init error; this line says why.
            tracing::error!(error = %e, "cannot start");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), lambda_runtime::Error> {
    let config = Config::from_env()?;
    let state = AppState::from_config(config).await?;
    // In the init phase (up to 10 s, not billed against an invocation): sign in and check the
    // org, so the first invocation makes only its own calls.
    state.salesforce.check_org_now(Deadline::after(INIT_CHECK_BUDGET)).await;
    let state = &state;
    lambda_runtime::run(service_fn(move |event| stream::handle(state, event))).await
}

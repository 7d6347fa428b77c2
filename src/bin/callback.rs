//! The callback Lambda bootstrap: read the configuration, build the state once per cold start,
//! and start Amazon Connect callback tasks for the requests on the callback queue.

use std::process::ExitCode;

use ctr_cases::app;
use ctr_cases::callback_function;
use ctr_cases::config::Config;
use lambda_runtime::service_fn;

#[tokio::main]
async fn main() -> ExitCode {
    ctr_cases::logging::init_from_env();
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "cannot start");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), lambda_runtime::Error> {
    let config = Config::from_env()?;
    let state = app::callback_state(config).await?;
    let state = &state;
    lambda_runtime::run(service_fn(move |event| {
        callback_function::handle(state, event)
    }))
    .await
}

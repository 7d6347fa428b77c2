//! The callback Lambda bootstrap: build the state once per cold start, and start Amazon Connect
//! callback tasks for the requests on the callback queue.

use std::process::ExitCode;

use ctr_cases::app;
use ctr_cases::callback_function;
use ctr_cases::config::Config;
use lambda_runtime::service_fn;

#[tokio::main]
async fn main() -> ExitCode {
    app::run_lambda(async {
        let state = &app::callback_state(Config::from_env()?).await?;
        lambda_runtime::run(service_fn(move |event| {
            callback_function::handle(state, event)
        }))
        .await
    })
    .await
}

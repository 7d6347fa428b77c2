//! The contact-flow Lambda bootstrap: build the shared state once per cold start (the org
//! checked in the init phase), and answer Amazon Connect's "Invoke AWS Lambda function" blocks.

use std::process::ExitCode;

use ctr_cases::app::{self, AppState};
use ctr_cases::flow;
use lambda_runtime::service_fn;

#[tokio::main]
async fn main() -> ExitCode {
    app::run_lambda(async {
        let state = &AppState::start().await?;
        lambda_runtime::run(service_fn(move |event| flow::handle(state, event))).await
    })
    .await
}

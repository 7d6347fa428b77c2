//! The stream Lambda bootstrap: build the shared state once per cold start (the org checked in
//! the init phase), and serve Kinesis batches until the container is frozen for good.

#![recursion_limit = "256"]

use std::process::ExitCode;

use ctr_cases::app::{self, AppState};
use ctr_cases::stream;
use lambda_runtime::service_fn;

#[tokio::main]
async fn main() -> ExitCode {
    app::run_lambda(async {
        let state = &AppState::start().await?;
        lambda_runtime::run(service_fn(move |event| stream::handle(state, event))).await
    })
    .await
}

//! Test support: fake Salesforce org, fake Lambda Runtime API, moto_server, fixtures.

pub mod fake_connect;
pub mod fake_salesforce;
pub mod fixtures;
pub mod foreign;
pub mod moto;
pub mod process;
pub mod runtime_api;
pub mod shard;
pub mod state;

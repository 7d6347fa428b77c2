//! Test support: fake Salesforce org, fake Lambda Runtime API, moto_server, fixtures.

pub mod fake_salesforce;
pub mod fixtures;
pub mod moto;
pub mod runtime_api;

//! Salesforce REST: OAuth grants, the token cache and logins ([`auth`]), batched idempotent Case
//! upserts reported as [`crate::effect::WriteReport`] ([`client`]), wire formats ([`wire`],
//! pure) and typed errors ([`error`]).
//!
//! Nothing in this module knows about Kinesis or CTRs beyond [`crate::case::CaseRecord`], so a
//! contact-flow Lambda can reuse it for hand-off Cases. It reads no configuration and no AWS
//! service: settings arrive as [`SalesforceSettings`], credentials through a
//! [`CredentialProvider`].

pub mod assignment;
pub mod auth;
pub mod client;
pub mod endpoint;
pub mod error;
pub mod wire;

pub mod callbacks;
pub mod handoff;
pub mod lookup;
pub mod preflight;
pub mod recorder;

pub use assignment::AssignmentRules;
pub use auth::{
    CredentialProvider, Credentials, Fingerprint, Grant, IssuedToken, Login, StaticCredentials,
    TokenCache,
};
pub use client::{SalesforceClient, SalesforceSettings};
pub use error::{Error, ErrorClass, TransportKind};
pub use recorder::{RecordedRequest, RequestRecorder};

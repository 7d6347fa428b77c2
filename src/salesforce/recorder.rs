//! A Case sink that sends nothing: it records the requests the real client would send, so a dry
//! run shares plan and report with a real run and can show its request bodies.

use std::sync::Mutex;

use super::lookup::MAX_SEARCHES_PER_CALL;
use super::wire::{self, MAX_COLLECTION_RECORDS};
use crate::case::CaseRecord;
use crate::effect::{CaseSink, Lookups, WriteOutcome, WriteReport};
use crate::linking;
use crate::retry::Deadline;

/// One request the client would have sent.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRequest {
    /// HTTP method.
    pub method: &'static str,
    /// Path below the instance URL.
    pub path: String,
    /// JSON body, as sent.
    pub body: String,
}

/// Records the data requests for Case writes instead of sending them, chunked as the client
/// chunks them (`batch_size` Cases per collections request). It answers as a fresh org would:
/// every Case is new, so each chunk is one collections create.
#[derive(Debug)]
pub struct RequestRecorder {
    api_version: String,
    external_id_field: String,
    version_field: String,
    batch_size: usize,
    requests: Mutex<Vec<RecordedRequest>>,
}

impl RequestRecorder {
    /// A recorder for requests to API `api_version` keyed by `external_id_field` (versions in
    /// `version_field`), with `batch_size` Cases per request (1–200).
    pub fn new(
        api_version: &str,
        external_id_field: &str,
        version_field: &str,
        batch_size: usize,
    ) -> Self {
        RequestRecorder {
            api_version: api_version.to_owned(),
            external_id_field: external_id_field.to_owned(),
            version_field: version_field.to_owned(),
            batch_size: batch_size.clamp(1, MAX_COLLECTION_RECORDS),
            requests: Mutex::new(Vec::new()),
        }
    }

    /// Takes the requests recorded so far.
    pub fn take(&self) -> Vec<RecordedRequest> {
        std::mem::take(&mut *self.requests.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl CaseSink for RequestRecorder {
    async fn find_customers(&self, numbers: &[&str], _deadline: Deadline) -> Lookups {
        let mut distinct: Vec<&str> = numbers.to_vec();
        distinct.sort_unstable();
        distinct.dedup();
        let searches: Vec<String> = distinct
            .iter()
            .filter_map(|n| linking::search_terms(n).map(|t| linking::phone_search(&t)))
            .collect();
        let mut recorded = Vec::new();
        for chunk in searches.chunks(MAX_SEARCHES_PER_CALL) {
            recorded.push(RecordedRequest {
                method: "POST",
                path: wire::composite_path(&self.api_version),
                body: wire::customer_searches_body(&self.api_version, chunk).to_string(),
            });
        }
        let api_calls = recorded.len() as u32;
        self.requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(recorded);
        // A dry run cannot know who matches: every Case stays unlinked.
        Lookups {
            links: vec![None; numbers.len()],
            api_calls,
            ..Lookups::default()
        }
    }

    async fn write_cases(&self, cases: &[&CaseRecord], _deadline: Deadline) -> WriteReport {
        let mut recorded = Vec::new();
        for chunk in cases.chunks(self.batch_size) {
            recorded.push(RecordedRequest {
                method: "POST",
                path: wire::collections_path(&self.api_version),
                body: serde_json::to_string(&wire::collections_create_body(
                    chunk,
                    &self.external_id_field,
                    &self.version_field,
                ))
                .expect("request bodies always serialize"),
            });
        }
        let api_calls = recorded.len() as u32;
        self.requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(recorded);
        WriteReport {
            outcomes: vec![WriteOutcome::Recorded; cases.len()],
            api_calls,
            // A cold container signs in once before its first data call.
            token_requests: u32::from(api_calls > 0),
            ..WriteReport::default()
        }
    }
}

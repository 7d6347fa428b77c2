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
    /// JSON body, as sent (empty from a recorder built with `keeping_bodies(false)`).
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
    keep_bodies: bool,
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
            keep_bodies: true,
            requests: Mutex::new(Vec::new()),
        }
    }

    /// Whether recorded requests keep their bodies (the default). Without, only each request's
    /// method and path are recorded and no body is built: for a dry run that shows no requests
    /// (the calls are counted and chunked as the client would all the same).
    pub fn keeping_bodies(mut self, keep: bool) -> Self {
        self.keep_bodies = keep;
        self
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
            let body = if self.keep_bodies {
                let body = wire::collections_create_body(
                    chunk,
                    &self.external_id_field,
                    &self.version_field,
                );
                serde_json::to_string(&body).expect("request bodies always serialize")
            } else {
                String::new()
            };
            recorded.push(RecordedRequest {
                method: "POST",
                path: wire::collections_path(&self.api_version),
                body,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ctr::ContactId;

    fn case(n: u8) -> CaseRecord {
        CaseRecord {
            external_id: ContactId::parse(&format!("5ca32fbd-8f92-46af-92a5-6b0f970f0e{n:02x}"))
                .unwrap(),
            fields: [("Subject".to_owned(), format!("Case {n}").into())]
                .into_iter()
                .collect(),
            kept_current: Vec::new().into(),
            version: None,
            case_id: None,
            earlier_legs: Vec::new(),
            create: true,
            lookup_number: None,
        }
    }

    async fn record(recorder: &RequestRecorder) -> (WriteReport, Vec<RecordedRequest>) {
        let cases = [case(1), case(2), case(3)];
        let refs: Vec<&CaseRecord> = cases.iter().collect();
        let report = recorder.write_cases(&refs, Deadline::unbounded()).await;
        (report, recorder.take())
    }

    #[tokio::test]
    async fn chunks_as_the_client_and_keeps_bodies_only_when_asked() {
        let new = || RequestRecorder::new("v62.0", "Ext__c", "Version__c", 2);
        let (kept_report, kept) = record(&new()).await;
        assert_eq!(kept_report.api_calls, 2);
        assert_eq!(kept_report.outcomes.len(), 3);
        let sizes: Vec<usize> = kept
            .iter()
            .map(|r| {
                let body: serde_json::Value = serde_json::from_str(&r.body).unwrap();
                body["records"].as_array().unwrap().len()
            })
            .collect();
        assert_eq!(sizes, [2, 1]);

        let (bare_report, bare) = record(&new().keeping_bodies(false)).await;
        assert_eq!(bare_report.api_calls, kept_report.api_calls);
        assert_eq!(bare_report.token_requests, kept_report.token_requests);
        assert_eq!(bare.len(), kept.len());
        for (bare, kept) in bare.iter().zip(&kept) {
            assert_eq!((bare.method, &bare.path), (kept.method, &kept.path));
            assert!(bare.body.is_empty());
        }
    }
}

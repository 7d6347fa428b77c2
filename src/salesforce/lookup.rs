//! Finding the caller's Salesforce Contact: phone searches batched in Composite requests, one
//! API call per 25 distinct numbers (see [`crate::linking`] for the matching rule).

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use super::client::{CallCounts, SalesforceClient};
use super::error::Error;
use super::wire;
use crate::effect::Lookups;
use crate::linking::{self, Link};
use crate::retry::Deadline;

/// Most subrequests in one Composite request (a Salesforce limit).
pub const MAX_SEARCHES_PER_CALL: usize = 25;

impl SalesforceClient {
    /// Looks up the Contact of each caller number (E.164), each distinct number once, in
    /// Composite requests of up to 25 searches. A failed search leaves its number unlinked:
    /// linking never holds up a Case.
    pub async fn find_customers(&self, numbers: &[&str], deadline: Deadline) -> Lookups {
        let counts = CallCounts::default();
        let mut distinct: Vec<&str> = numbers.to_vec();
        distinct.sort_unstable();
        distinct.dedup();
        let searchable: Vec<(&str, String)> = distinct
            .into_iter()
            .filter_map(|n| linking::search_terms(n).map(|t| (n, linking::phone_search(&t))))
            .collect();
        let mut found: HashMap<&str, Link> = HashMap::new();
        let mut failure: Option<Error> = None;
        let version = &self.settings().api_version;
        for chunk in searchable.chunks(MAX_SEARCHES_PER_CALL) {
            let searches: Vec<String> = chunk.iter().map(|(_, s)| s.clone()).collect();
            let body = wire::customer_searches_body(version, &searches);
            let path = wire::composite_path(version);
            let answer = self
                .call(reqwest::Method::POST, &path, &body, None, deadline, &counts)
                .await
                .and_then(|(status, bytes)| {
                    wire::parse_customer_searches(status, &bytes, chunk.len())
                });
            match answer {
                Ok(results) => {
                    for ((number, _), result) in chunk.iter().zip(results) {
                        match result {
                            Ok(body) => {
                                if let Some(link) = linking::link_from_search(&body) {
                                    found.insert(number, link);
                                }
                            }
                            Err(e) => {
                                failure.get_or_insert(e);
                            }
                        }
                    }
                }
                Err(e) => {
                    let stop = e.class().stops_the_batch();
                    failure.get_or_insert(e);
                    if stop {
                        break;
                    }
                }
            }
        }
        Lookups {
            links: numbers.iter().map(|n| found.get(n).cloned()).collect(),
            api_calls: counts.api_calls.load(Ordering::Relaxed),
            token_requests: counts.token_requests.load(Ordering::Relaxed),
            failure: failure.as_ref().map(Error::to_failure),
        }
    }
}

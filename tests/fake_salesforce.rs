//! The fake Salesforce org itself, driven over HTTP with reqwest: its wire formats, uniqueness,
//! per-field updates, SOQL/SOSL subsets, composite references, accounting and faults; and the
//! org behaviour of the "Real orgs" issue: a runtime schema with describe, assignment rules and
//! the `Sforce-Auto-Assign` header, sharing, and requests in flight.

#[path = "support/fake_salesforce.rs"]
mod fake;

use std::collections::BTreeMap;

use base64::Engine as _;
use fake::{EXTERNAL_ID_FIELD as EXT, FakeSalesforce, Fault, FaultKind, LAST_UPDATE_FIELD};
use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

/// A fake org, an HTTP client and a valid token.
struct Org {
    fake: FakeSalesforce,
    http: reqwest::Client,
    token: String,
}

/// What came back: status, headers and the body as JSON (`Null` when empty or not JSON).
struct Answer {
    status: u16,
    headers: HeaderMap,
    body: Value,
}

async fn org() -> Org {
    let fake = fake::start().await;
    let http = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let token = fake.org.issue_token();
    Org { fake, http, token }
}

fn enc(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

impl Org {
    /// `method {data_url(v62.0)}/{path}` with the token and an optional JSON body.
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        self.call_as(method, "v62.0", path, body, &self.token.clone())
            .await
    }

    async fn call_as(
        &self,
        method: Method,
        version: &str,
        path: &str,
        body: Option<Value>,
        token: &str,
    ) -> Answer {
        self.send(method, version, path, body, token, &[]).await
    }

    /// `method {data_url(v62.0)}/{path}` with the token, extra `headers` and an optional body.
    async fn call_with(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Answer {
        self.send(method, "v62.0", path, body, &self.token, headers)
            .await
    }

    /// `method {data_url(version)}/{path}` with `token`, `headers` and an optional JSON body.
    async fn send(
        &self,
        method: Method,
        version: &str,
        path: &str,
        body: Option<Value>,
        token: &str,
        headers: &[(&str, &str)],
    ) -> Answer {
        let url = format!("{}/{path}", self.fake.data_url(version));
        let mut request = self.http.request(method, url).bearer_auth(token);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the fake answers");
        let (status, headers) = (response.status().as_u16(), response.headers().clone());
        let bytes = response.bytes().await.unwrap();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Answer {
            status,
            headers,
            body,
        }
    }

    async fn get(&self, path: &str) -> Answer {
        self.call(Method::GET, path, None).await
    }

    async fn query(&self, soql: &str) -> Answer {
        self.get(&format!("query?q={}", enc(soql))).await
    }

    async fn search(&self, sosl: &str) -> Answer {
        self.get(&format!("search?q={}", enc(sosl))).await
    }

    /// `POST sobjects/Case`, returning the new id.
    async fn create(&self, fields: Value) -> String {
        let answer = self.call(Method::POST, "sobjects/Case", Some(fields)).await;
        assert_eq!(answer.status, 201, "{}", answer.body);
        answer.body["id"].as_str().unwrap().to_owned()
    }

    async fn composite(&self, all_or_none: bool, requests: Value) -> Vec<Value> {
        let body = json!({"allOrNone": all_or_none, "compositeRequest": requests});
        let answer = self.call(Method::POST, "composite", Some(body)).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        answer.body["compositeResponse"].as_array().unwrap().clone()
    }
}

fn error_code(body: &Value) -> &str {
    body[0]["errorCode"].as_str().unwrap_or_default()
}

fn statuses(responses: &[Value]) -> Vec<u64> {
    responses
        .iter()
        .map(|r| r["httpStatusCode"].as_u64().unwrap())
        .collect()
}

#[tokio::test]
async fn token_grant_answers_the_documented_fields_and_refuses_credentials_in_the_url() {
    let org = org().await;
    let form = [
        ("grant_type", "password"),
        ("client_id", fake::CLIENT_ID),
        ("client_secret", fake::CLIENT_SECRET),
        ("username", fake::USERNAME),
        ("password", fake::PASSWORD),
    ];
    let answer = org
        .http
        .post(org.fake.token_url())
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.headers()["cache-control"], "no-store");
    let body: Value = answer.json().await.unwrap();
    let mut keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "access_token",
            "id",
            "instance_url",
            "issued_at",
            "signature",
            "token_type"
        ]
    );
    assert!(
        body["access_token"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{}!AQ", fake::ORG_ID))
    );
    assert_eq!(body["instance_url"], org.fake.base_url.as_str());
    assert_eq!(body["token_type"], "Bearer");
    assert!(body["issued_at"].as_str().unwrap().parse::<u64>().is_ok());
    let signature =
        base64::engine::general_purpose::STANDARD.decode(body["signature"].as_str().unwrap());
    assert_eq!(signature.unwrap().len(), 32);

    let in_url = format!(
        "{}?client_secret={}",
        org.fake.token_url(),
        fake::CLIENT_SECRET
    );
    let answer = org.http.post(in_url).form(&form).send().await.unwrap();
    assert_eq!(answer.status(), 400);
    assert_eq!(
        answer.json::<Value>().await.unwrap()["error"],
        "invalid_request"
    );
    let mut wrong = form;
    wrong[2].1 = "not-the-secret";
    let answer = org
        .http
        .post(org.fake.token_url())
        .form(&wrong)
        .send()
        .await
        .unwrap();
    assert_eq!(
        answer.json::<Value>().await.unwrap()["error"],
        "invalid_client"
    );
    assert_eq!(
        (org.fake.org.token_requests(), org.fake.org.token_grants()),
        (3, 1)
    );

    let token = body["access_token"].as_str().unwrap();
    let answer = org
        .call_as(
            Method::GET,
            "v62.0",
            "query?q=SELECT+Id+FROM+Case",
            None,
            token,
        )
        .await;
    assert_eq!(answer.status, 200);
}

#[tokio::test]
async fn second_insert_of_an_external_id_fails_with_duplicate_value() {
    let org = org().await;
    let answer = org
        .call(
            Method::POST,
            "sobjects/Case",
            Some(json!({EXT: "a-1", "Subject": "first"})),
        )
        .await;
    assert_eq!(answer.status, 201);
    let id = answer.body["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("500") && id.len() == 18, "{id}");
    assert_eq!(
        answer.headers["location"],
        format!("/services/data/v62.0/sobjects/Case/{id}")
    );

    // The unique index is case-insensitive.
    let again = org
        .call(Method::POST, "sobjects/Case", Some(json!({EXT: "A-1"})))
        .await;
    assert_eq!(again.status, 400);
    let expected = format!(
        "duplicate value found: {EXT} duplicates value on record with id: {}",
        &id[..15]
    );
    assert_eq!(
        again.body,
        json!([{"message": expected, "errorCode": "DUPLICATE_VALUE", "fields": []}])
    );

    let records = json!([
        {"attributes": {"type": "Case"}, EXT: "b-1"},
        {"attributes": {"type": "Case"}, EXT: "b-1"},
        {"attributes": {"type": "Case"}, EXT: "a-1"},
    ]);
    let answer = org
        .call(
            Method::POST,
            "composite/sobjects",
            Some(json!({"records": records})),
        )
        .await;
    let results = answer.body.as_array().unwrap();
    assert_eq!(results[0]["success"], true);
    assert!(
        results[0].get("created").is_none(),
        "no `created` on a create: {}",
        results[0]
    );
    assert_eq!(
        results[1]["errors"][0]["message"],
        "duplicate value found: <unknown> duplicates value on record with id: <unknown>"
    );
    assert_eq!(results[2]["errors"][0]["statusCode"], "DUPLICATE_VALUE");
    assert!(results[2].get("id").is_none());

    let upsert =
        json!({"records": [{"attributes": {"type": "Case"}, EXT: "a-1", "Subject": "second"}]});
    let answer = org
        .call(
            Method::PATCH,
            &format!("composite/sobjects/Case/{EXT}"),
            Some(upsert),
        )
        .await;
    assert_eq!(
        answer.body,
        json!([{"id": id, "success": true, "errors": [], "created": false}])
    );
    assert_eq!(org.fake.org.case_count(), 2);
    assert!(
        org.fake
            .org
            .creates_per_external_id()
            .values()
            .all(|n| *n == 1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creates_of_one_external_id_leave_exactly_one_case() {
    let org = std::sync::Arc::new(org().await);
    let tasks: Vec<_> = (0..8)
        .map(|n| {
            let org = org.clone();
            tokio::spawn(async move {
                let records = json!([{"attributes": {"type": "Case"}, EXT: "race-1", "Subject": format!("writer {n}")}]);
                let answer = org.call(Method::POST, "composite/sobjects", Some(json!({"records": records}))).await;
                answer.body[0]["success"] == json!(true)
            })
        })
        .collect();
    let mut winners = 0;
    for task in tasks {
        winners += u32::from(task.await.unwrap());
    }
    assert_eq!(winners, 1);
    assert_eq!(org.fake.org.case_count(), 1);
}

#[tokio::test]
async fn updates_change_only_the_fields_sent() {
    let org = org().await;
    let path = format!("sobjects/Case/{EXT}/c-1");
    let answer = org
        .call(
            Method::PATCH,
            &path,
            Some(json!({"Subject": "first", "Description": "d1"})),
        )
        .await;
    assert_eq!(
        (answer.status, answer.body["created"].clone()),
        (201, json!(true))
    );
    let id = answer.body["id"].as_str().unwrap().to_owned();
    org.fake
        .org
        .edit_case("c-1", json!({"Status": "Working", "Priority": "High"}));

    let answer = org
        .call(
            Method::PATCH,
            &format!("sobjects/Case/{id}"),
            Some(json!({"Subject": "second"})),
        )
        .await;
    assert_eq!(answer.status, 204);
    let records = json!([
        {"attributes": {"type": "Case"}, "id": id, "Description": "d2"},
        {"attributes": {"type": "Case"}, "id": "500000000000999AAA", "Subject": "x"},
        {"attributes": {"type": "Case"}, "id": "abc", "Subject": "x"},
        {"attributes": {"type": "Case"}, "Subject": "x"},
    ]);
    let answer = org
        .call(
            Method::PATCH,
            "composite/sobjects",
            Some(json!({"records": records})),
        )
        .await;
    let codes: Vec<&Value> = answer
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["errors"][0]["statusCode"])
        .collect();
    assert_eq!(
        answer.body[0],
        json!({"id": id, "success": true, "errors": []})
    );
    assert_eq!(
        codes[1..],
        [
            &json!("INVALID_CROSS_REFERENCE_KEY"),
            &json!("MALFORMED_ID"),
            &json!("MISSING_ARGUMENT")
        ]
    );

    let answer = org
        .call(Method::PATCH, &path, Some(json!({"Subject": "third"})))
        .await;
    assert_eq!(
        (answer.status, answer.body.clone()),
        (
            200,
            json!({"id": id, "success": true, "errors": [], "created": false})
        )
    );
    let old = org
        .call_as(
            Method::PATCH,
            "v45.0",
            &path,
            Some(json!({"Subject": "third"})),
            &org.token,
        )
        .await;
    assert_eq!(
        old.status, 204,
        "before API 46.0 an upsert that updates answers 204"
    );
    let in_body = org
        .call(Method::PATCH, &path, Some(json!({EXT: "c-1"})))
        .await;
    assert_eq!(error_code(&in_body.body), "INVALID_FIELD");

    org.fake.org.edit_case(&id, json!({EXT: "c-2"}));
    assert!(
        org.fake.org.case("c-1").is_none(),
        "the unique index follows the edit"
    );
    let case = org.fake.org.case("C-2").unwrap();
    assert_eq!(org.fake.org.case_by_id(&id[..15]), Some(case.clone()));
    let kept = (
        &case["Subject"],
        &case["Description"],
        &case["Status"],
        &case["Priority"],
    );
    assert_eq!(
        kept,
        (
            &json!("third"),
            &json!("d2"),
            &json!("Working"),
            &json!("High")
        )
    );
}

#[tokio::test]
async fn case_numbers_are_read_only_and_datetimes_follow_the_documented_formats() {
    let org = org().await;
    let first = org
        .create(json!({EXT: "n-1", LAST_UPDATE_FIELD: "2024-02-25T08:36:30Z"}))
        .await;
    let second = org
        .create(json!({EXT: "n-2", LAST_UPDATE_FIELD: "2024-02-25T10:36:30.123+02:00"}))
        .await;
    let stored = |id: &str| org.fake.org.case_by_id(id).unwrap();
    assert_eq!(stored(&first)["CaseNumber"], "00001001");
    assert_eq!(stored(&second)["CaseNumber"], "00001002");
    assert_eq!(
        stored(&first)[LAST_UPDATE_FIELD],
        "2024-02-25T08:36:30.000+0000"
    );
    assert_eq!(
        stored(&second)[LAST_UPDATE_FIELD],
        "2024-02-25T08:36:30.123+0000"
    );
    assert_eq!(stored(&first)["Status"], "New");

    let answer = org
        .call(
            Method::POST,
            "sobjects/Case",
            Some(json!({"CaseNumber": "00009999"})),
        )
        .await;
    assert_eq!(
        (answer.status, error_code(&answer.body)),
        (400, "INVALID_FIELD_FOR_INSERT_UPDATE")
    );
    assert_eq!(answer.body[0]["fields"], json!(["CaseNumber"]));
    for bad in [
        "2024-02-25 08:36:30Z",
        "2024-02-25T08:36:30",
        "2024-02-25T08:36:30.1Z",
        "yesterday",
    ] {
        let answer = org
            .call(
                Method::POST,
                "sobjects/Case",
                Some(json!({LAST_UPDATE_FIELD: bad})),
            )
            .await;
        assert_eq!(
            (answer.status, error_code(&answer.body)),
            (400, "JSON_PARSER_ERROR"),
            "{bad}"
        );
    }
    let answer = org
        .call(
            Method::POST,
            "sobjects/Case",
            Some(json!({"Origin": "Fax", "Subject": "x".repeat(256)})),
        )
        .await;
    let codes: Vec<&str> = answer
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["errorCode"].as_str().unwrap())
        .collect();
    assert_eq!(
        codes,
        ["INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", "STRING_TOO_LONG"]
    );
    assert_eq!(org.fake.org.case_count(), 2);
}

#[tokio::test]
async fn query_answers_records_with_attributes_nulls_and_salesforce_datetimes() {
    let org = org().await;
    let one = org
        .create(json!({EXT: "q-1", "Subject": "one", LAST_UPDATE_FIELD: "2024-02-25T08:36:30Z"}))
        .await;
    org.create(json!({EXT: "q-2"})).await;
    let three = org.create(json!({EXT: "q-3"})).await;
    org.create(json!({EXT: "q-4"})).await;

    let soql = format!(
        "SELECT Id, CaseNumber, amazon_connect_last_update__c, Subject FROM Case WHERE {EXT} IN ('q-1', 'Q-2') OR Id IN ('{}')",
        &three[..15]
    );
    let answer = org.query(&soql).await;
    assert_eq!(
        (
            answer.status,
            &answer.body["totalSize"],
            &answer.body["done"]
        ),
        (200, &json!(3), &json!(true))
    );
    let first = &answer.body["records"][0];
    // JSON keys come sorted (serde_json without `preserve_order`); clients must not rely on order.
    let keys: Vec<&str> = first
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            LAST_UPDATE_FIELD,
            "CaseNumber",
            "Id",
            "Subject",
            "attributes"
        ]
    );
    assert_eq!(
        first["attributes"],
        json!({"type": "Case", "url": format!("/services/data/v62.0/sobjects/Case/{one}")})
    );
    assert_eq!(first[LAST_UPDATE_FIELD], "2024-02-25T08:36:30.000+0000");
    assert_eq!(answer.body["records"][1][LAST_UPDATE_FIELD], Value::Null);
    assert_eq!(
        org.query(&format!("SELECT Id FROM Case WHERE {EXT} = 'q-4'"))
            .await
            .body["totalSize"],
        1
    );

    let contact = org.fake.org.add_contact(
        json!({"LastName": "Doe", "Phone": "+15555550147", "AccountId": "001000000000001AAA"}),
    );
    let answer = org
        .query("select Id, AccountId from Contact where Phone = '+15555550147'")
        .await;
    assert_eq!(answer.body["records"][0]["Id"], contact.as_str());
    for (soql, code) in [
        ("SELECT Nope FROM Case", "INVALID_FIELD"),
        ("SELECT Id FROM Case WHERE", "MALFORMED_QUERY"),
        (
            "SELECT Id FROM Case WHERE Id IN ('x')",
            "INVALID_QUERY_FILTER_OPERATOR",
        ),
        (
            "SELECT Id FROM Case WHERE Subject = 'a' AND Status = 'New' OR Origin = 'Web'",
            "MALFORMED_QUERY",
        ),
        ("SELECT Id FROM Lead", "INVALID_TYPE"),
    ] {
        let answer = org.query(soql).await;
        assert_eq!(
            (answer.status, error_code(&answer.body)),
            (400, code),
            "{soql}"
        );
    }

    let answer = org
        .get(&format!("sobjects/Case/{one}?fields=Subject"))
        .await;
    assert_eq!(
        answer.body,
        json!({"attributes": first["attributes"], "Id": one, "Subject": "one"})
    );
    assert_eq!(
        org.get(&format!("sobjects/Case/{EXT}/Q-1")).await.body["Id"],
        one.as_str()
    );
    assert_eq!(
        org.get(&format!("sobjects/Case/{EXT}/q-9")).await.status,
        404
    );

    let before = org.fake.org.api_calls();
    let long = format!(
        "SELECT Id FROM Case WHERE Subject = '{}'",
        "x".repeat(17_000)
    );
    assert_eq!(org.query(&long).await.status, 414, "URI over 16,384 bytes");
    assert_eq!(org.fake.org.api_calls(), before);
}

#[tokio::test]
async fn phone_search_matches_the_digits_people_type() {
    let org = org().await;
    let contact = |phone: &str| json!({"LastName": "Caller", "Phone": phone, "AccountId": "001000000000001AAA"});
    let international = org.fake.org.add_contact(contact("+1 (555) 555-0147"));
    let dashed = org.fake.org.add_contact(contact("555-555-0147"));
    let bracketed = org.fake.org.add_contact(contact("(555) 555-0147"));
    let mobile = org
        .fake
        .org
        .add_contact(json!({"LastName": "Mobile", "MobilePhone": "555.555.0147"}));
    org.fake.org.add_contact(contact("+1 555 555 0148"));

    let ids = |answer: &Answer| -> Vec<String> {
        let records = answer.body["searchRecords"]
            .as_array()
            .expect("searchRecords");
        records
            .iter()
            .map(|r| r["Id"].as_str().unwrap().to_owned())
            .collect()
    };
    let answer = org
        .search(r"FIND {\+15555550147} IN PHONE FIELDS RETURNING Contact(Id, AccountId)")
        .await;
    assert_eq!(ids(&answer), [international]);
    let record = &answer.body["searchRecords"][0];
    assert_eq!(record["attributes"]["type"], "Contact");
    assert_eq!(record["AccountId"], "001000000000001AAA");
    let national = org
        .search("FIND {5555550147} IN PHONE FIELDS RETURNING Contact(Id)")
        .await;
    assert_eq!(ids(&national), [dashed, bracketed, mobile]);
    let escaped = org
        .search(r"find {\(555\) 555\-0147} in phone fields returning Contact")
        .await;
    assert_eq!(ids(&escaped), ids(&national));

    let unescaped = org
        .search("FIND {+15555550147} IN PHONE FIELDS RETURNING Contact(Id)")
        .await;
    assert_eq!(
        (unescaped.status, error_code(&unescaped.body)),
        (400, "MALFORMED_SEARCH")
    );
    let path = format!(
        "search?q={}",
        enc("FIND {5555550147} IN PHONE FIELDS RETURNING Contact")
    );
    let old = org
        .call_as(Method::GET, "v35.0", &path, None, &org.token)
        .await;
    assert_eq!(
        old.body.as_array().map(Vec::len),
        Some(3),
        "before API 36.0 a bare array"
    );
}

#[tokio::test]
async fn composite_resolves_references_and_halts_what_depends_on_a_failure() {
    let org = org().await;
    let responses = org
        .composite(
            false,
            json!([
                {"method": "POST", "url": "/services/data/v62.0/sobjects/Case", "referenceId": "NewCase", "body": {EXT: "comp-1"}},
                {"method": "GET", "url": "/services/data/v62.0/sobjects/Case/@{NewCase.id}?fields=CaseNumber", "referenceId": "Fetched"},
                {"method": "PATCH", "url": "/services/data/v62.0/sobjects/Case/@{Fetched.Id}", "referenceId": "Named",
                 "body": {"Subject": "Case @{Fetched.CaseNumber}"}},
                {"method": "POST", "url": "/services/data/v62.0/sobjects/Case", "referenceId": "Bad", "body": {"Origin": "Fax"}},
                {"method": "PATCH", "url": "/services/data/v62.0/sobjects/Case/@{Bad.id}", "referenceId": "Dependent", "body": {"Subject": "x"}},
                {"method": "GET", "url": format!("/services/data/v62.0/query?q=SELECT Id FROM Case WHERE {EXT} = 'comp-1'"), "referenceId": "Found"},
            ]),
        )
        .await;
    assert_eq!(statuses(&responses), [201, 200, 204, 400, 400, 200]);
    let id = responses[0]["body"]["id"].as_str().unwrap();
    assert_eq!(
        responses[0]["httpHeaders"]["Location"],
        format!("/services/data/v62.0/sobjects/Case/{id}")
    );
    assert_eq!(
        responses[3]["body"][0]["errorCode"],
        "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    );
    assert_eq!(responses[4]["body"][0]["errorCode"], "PROCESSING_HALTED");
    assert_eq!(responses[5]["body"]["records"][0]["Id"], id);
    assert_eq!(
        org.fake.org.case("comp-1").unwrap()["Subject"],
        "Case 00001001"
    );
    assert_eq!(
        (
            org.fake.org.api_calls(),
            org.fake.org.calls_by_kind()["composite"]
        ),
        (1, 1)
    );

    let records = json!({"records": [{"attributes": {"type": "Case"}, EXT: "comp-3"}, {"attributes": {"type": "Case"}, EXT: "comp-1"}]});
    let responses = org
        .composite(
            true,
            json!([
                {"method": "POST", "url": "/services/data/v62.0/sobjects/Case", "referenceId": "A", "body": {EXT: "comp-2"}},
                {"method": "POST", "url": "/services/data/v62.0/composite/sobjects", "referenceId": "B", "body": records},
                {"method": "POST", "url": "/services/data/v62.0/sobjects/Case", "referenceId": "C", "body": {EXT: "comp-4"}},
            ]),
        )
        .await;
    assert_eq!(statuses(&responses), [400, 200, 400]);
    let rolled_back =
        "The transaction was rolled back since another operation in the same transaction failed.";
    assert_eq!(
        responses[0]["body"],
        json!([{"errorCode": "PROCESSING_HALTED", "message": rolled_back}])
    );
    assert_eq!(
        responses[1]["body"][0]["errors"][0]["statusCode"],
        "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    );
    assert_eq!(
        responses[1]["body"][1]["errors"][0]["statusCode"],
        "DUPLICATE_VALUE"
    );
    assert_eq!(org.fake.org.case_count(), 1, "everything rolled back");

    let too_many: Vec<Value> = (0..26)
        .map(|n| json!({"method": "GET", "url": "/services/data/v62.0/sobjects/Case/x", "referenceId": format!("r{n}")}))
        .collect();
    let answer = org
        .call(
            Method::POST,
            "composite",
            Some(json!({"compositeRequest": too_many})),
        )
        .await;
    assert_eq!(answer.status, 400);
}

#[tokio::test]
async fn each_kind_of_call_counts_once_and_reports_its_usage() {
    let org = org().await;
    let id = org.create(json!({EXT: "k-1"})).await;
    org.get(&format!("sobjects/Case/{id}")).await;
    org.call(
        Method::PATCH,
        &format!("sobjects/Case/{id}"),
        Some(json!({"Subject": "s"})),
    )
    .await;
    org.call(
        Method::PATCH,
        &format!("sobjects/Case/{EXT}/k-2"),
        Some(json!({})),
    )
    .await;
    let records = json!({"records": [{"attributes": {"type": "Case"}, EXT: "k-3"}]});
    org.call(Method::POST, "composite/sobjects", Some(records.clone()))
        .await;
    let update = json!({"records": [{"attributes": {"type": "Case"}, "id": id}]});
    org.call(Method::PATCH, "composite/sobjects", Some(update))
        .await;
    org.call(
        Method::PATCH,
        &format!("composite/sobjects/Case/{EXT}"),
        Some(records),
    )
    .await;
    org.query("SELECT Id FROM Case").await;
    org.search("FIND {5555550147} IN PHONE FIELDS RETURNING Contact")
        .await;
    org.composite(false, json!([{"method": "GET", "url": "/services/data/v62.0/query?q=SELECT Id FROM Case", "referenceId": "q"}])).await;
    org.get("limits").await;
    let unauthorized = org
        .call_as(
            Method::GET,
            "v62.0",
            "query?q=SELECT+Id+FROM+Case",
            None,
            "not-a-token",
        )
        .await;
    assert_eq!(
        (unauthorized.status, error_code(&unauthorized.body)),
        (401, "INVALID_SESSION_ID")
    );

    let kinds = [
        "create",
        "retrieve",
        "update",
        "upsert",
        "collections_create",
        "collections_update",
        "collections_upsert",
        "query",
        "search",
        "composite",
        "other",
    ];
    let expected: BTreeMap<String, u64> = kinds.iter().map(|k| ((*k).to_owned(), 1)).collect();
    assert_eq!(org.fake.org.calls_by_kind(), expected);
    assert_eq!(org.fake.org.api_calls(), 11, "the 401 is not counted");
    assert_eq!(
        unauthorized.headers["sforce-limit-info"],
        "api-usage=11/15000"
    );

    org.fake.org.set_daily_limit(11);
    let refused = org.query("SELECT Id FROM Case").await;
    assert_eq!(
        (refused.status, refused.body[0]["message"].clone()),
        (403, json!("TotalRequests Limit exceeded."))
    );
    assert_eq!(org.fake.org.api_calls(), 11);
}

#[tokio::test]
async fn scripted_faults_answer_as_documented_in_order() {
    let org = org().await;
    let faults = [
        Fault::Status500,
        Fault::Status503,
        Fault::RequestError {
            status: 403,
            error_code: "API_DISABLED_FOR_ORG".into(),
            message: "API is not enabled for this Organization or Partner".into(),
        },
        Fault::NonJson {
            status: 502,
            content_type: "text/html".into(),
            body: "<html>Bad Gateway</html>".into(),
        },
        Fault::Redirect {
            status: 302,
            location: "https://login.example/maintenance".into(),
        },
    ];
    faults.into_iter().for_each(|f| org.fake.org.push_fault(f));
    let mut seen = Vec::new();
    for _ in 0..5 {
        let answer = org.query("SELECT Id FROM Case").await;
        let usage = answer.headers.get("sforce-limit-info").is_some();
        seen.push((answer.status, error_code(&answer.body).to_owned(), usage));
    }
    let expected = [
        (500, "UNKNOWN_EXCEPTION", true),
        (503, "SERVER_UNAVAILABLE", true),
        (403, "API_DISABLED_FOR_ORG", true),
        (502, "", false),
        (302, "", false),
    ];
    assert_eq!(seen, expected.map(|(s, c, u)| (s, c.to_owned(), u)));
    assert_eq!(org.fake.org.api_calls(), 3, "proxy answers are not counted");

    org.fake.org.push_fault(Fault::DropConnection);
    let dropped = org
        .http
        .get(format!(
            "{}/query?q=SELECT+Id+FROM+Case",
            org.fake.data_url("v62.0")
        ))
        .bearer_auth(&org.token)
        .send()
        .await;
    assert!(dropped.is_err(), "no answer at all");
    org.fake.org.push_fault(Fault::AppliedThen503);
    let answer = org
        .call(Method::POST, "sobjects/Case", Some(json!({EXT: "f-1"})))
        .await;
    assert_eq!(answer.status, 503);
    assert!(org.fake.org.case("f-1").is_some(), "applied, then 503");

    let error = Fault::RecordError {
        external_id: "f-3".into(),
        status_code: "FIELD_CUSTOM_VALIDATION_EXCEPTION".into(),
        message: "no".into(),
        fields: vec![],
    };
    org.fake.org.push_fault(error);
    let records = json!({"records": [{"attributes": {"type": "Case"}, EXT: "f-2"}, {"attributes": {"type": "Case"}, EXT: "f-3"}]});
    let answer = org
        .call(Method::POST, "composite/sobjects", Some(records))
        .await;
    assert_eq!(
        (
            &answer.body[0]["success"],
            &answer.body[1]["errors"][0]["statusCode"]
        ),
        (&json!(true), &json!("FIELD_CUSTOM_VALIDATION_EXCEPTION"))
    );

    org.fake.org.push_fault(Fault::InvalidSession);
    let calls = org.fake.org.api_calls();
    assert_eq!(org.query("SELECT Id FROM Case").await.status, 401);
    assert_eq!(
        org.query("SELECT Id FROM Case").await.status,
        401,
        "the token stays revoked"
    );
    assert_eq!(
        (org.fake.org.api_calls(), org.fake.org.pending_faults()),
        (calls, 0)
    );
}

#[tokio::test]
async fn random_faults_repeat_for_a_seed() {
    async fn run(seed: u64) -> (Vec<u16>, u64) {
        let org = org().await;
        org.fake
            .org
            .set_random_faults(0.5, vec![FaultKind::Status503, FaultKind::Status500], seed);
        let mut seen = Vec::new();
        for _ in 0..24 {
            seen.push(org.query("SELECT Id FROM Case").await.status);
        }
        (seen, org.fake.org.random_faults_injected().values().sum())
    }
    let (first, injected) = run(7).await;
    assert_eq!(run(7).await, (first.clone(), injected));
    assert_eq!(injected, first.iter().filter(|s| **s != 200).count() as u64);
    assert!(
        first.contains(&503) && first.contains(&500) && first.contains(&200),
        "{first:?}"
    );
    assert_ne!(run(8).await.0, first, "another seed, another sequence");
}

// ---------------------------------------------------------------------------------------------
// Real orgs: schema and describe, assignment, sharing, requests in flight
// ---------------------------------------------------------------------------------------------

const QUEUE: &str = "00GFAKE00000001AAA";
const RULE: &str = "01QFAKE00000001AAA";
const AGENT: &str = "005000000000042AAA";

/// An `If-Modified-Since` value for `at`, as the sObject Describe reference formats it.
fn http_date(at: std::time::SystemTime) -> String {
    let at: chrono::DateTime<chrono::Utc> = at.into();
    at.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

fn field<'a>(describe: &'a Value, name: &str) -> Option<&'a Value> {
    let fields = describe["fields"].as_array().unwrap();
    fields.iter().find(|f| f["name"] == name)
}

fn records(answer: &Answer) -> Vec<Value> {
    answer.body["records"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

impl Org {
    async fn describe(&self) -> Answer {
        self.get("sobjects/Case/describe").await
    }

    /// `POST sobjects/Case` with these headers: `(status, body)`.
    async fn create_with(&self, fields: Value, headers: &[(&str, &str)]) -> (u16, Value) {
        let answer = self
            .call_with(Method::POST, "sobjects/Case", Some(fields), headers)
            .await;
        (answer.status, answer.body)
    }

    /// `POST composite/sobjects` of Cases: the per-record results.
    async fn collection_create(&self, records: Vec<Value>, headers: &[(&str, &str)]) -> Answer {
        let records: Vec<Value> = records
            .into_iter()
            .map(|mut r| {
                r["attributes"] = json!({"type": "Case"});
                r
            })
            .collect();
        let body = json!({"allOrNone": false, "records": records});
        self.call_with(Method::POST, "composite/sobjects", Some(body), headers)
            .await
    }

    /// `PATCH sobjects/Case/{id}` of the Subject, with `Sforce-Auto-Assign: FALSE`.
    async fn update_subject(&self, id: &str) -> Answer {
        let path = format!("sobjects/Case/{id}");
        let off = [("Sforce-Auto-Assign", "FALSE")];
        self.call_with(Method::PATCH, &path, Some(json!({"Subject": "u"})), &off)
            .await
    }

    fn owner(&self, id: &str) -> Value {
        self.fake.org.case_by_id(id).unwrap()["OwnerId"].clone()
    }
}

#[tokio::test]
async fn describe_reflects_the_runtime_schema_and_answers_304_when_unchanged() {
    let org = org().await;
    let answer = org.describe().await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let describe = answer.body;
    assert_eq!(describe["name"], "Case");
    let subject = field(&describe, "Subject").unwrap();
    assert_eq!(
        (
            &subject["type"],
            &subject["length"],
            &subject["createable"],
            &subject["nillable"]
        ),
        (&json!("string"), &json!(255), &json!(true), &json!(true))
    );
    let description = field(&describe, "Description").unwrap();
    assert_eq!(
        (&description["type"], &description["length"]),
        (&json!("textarea"), &json!(32_000))
    );
    for name in ["Id", "CaseNumber", "CreatedDate"] {
        let f = field(&describe, name).unwrap();
        assert_eq!(
            (&f["createable"], &f["updateable"]),
            (&json!(false), &json!(false)),
            "{f}"
        );
    }
    assert_eq!(field(&describe, "Id").unwrap()["type"], "id");
    assert_eq!(field(&describe, "CaseNumber").unwrap()["autoNumber"], true);
    assert_eq!(field(&describe, "CreatedDate").unwrap()["type"], "datetime");
    for name in ["OwnerId", "Status"] {
        let f = field(&describe, name).unwrap();
        assert_eq!(
            (&f["defaultedOnCreate"], &f["nillable"]),
            (&json!(true), &json!(false)),
            "{f}"
        );
    }
    let owner = field(&describe, "OwnerId").unwrap();
    assert_eq!(
        (&owner["type"], &owner["referenceTo"]),
        (&json!("reference"), &json!(["User", "Group"]))
    );
    let status = field(&describe, "Status").unwrap();
    assert_eq!(status["type"], "picklist");
    assert_eq!(status["restrictedPicklist"], true);
    assert_eq!(
        status["picklistValues"][0],
        json!({"value": "New", "label": "New", "active": true, "defaultValue": true})
    );
    let ext = field(&describe, EXT).unwrap();
    assert_eq!(
        (
            &ext["unique"],
            &ext["externalId"],
            &ext["caseSensitive"],
            &ext["length"]
        ),
        (&json!(true), &json!(true), &json!(false), &json!(36))
    );
    let infos = describe["recordTypeInfos"].as_array().unwrap();
    assert_eq!(infos.len(), 1);
    assert_eq!(
        (&infos[0]["master"], &infos[0]["available"]),
        (&json!(true), &json!(true))
    );
    assert!(
        field(&describe, "RecordTypeId").is_none(),
        "no record types, no field"
    );
    assert_eq!(org.fake.org.calls_by_kind()["describe"], 1);

    let changed = org.fake.org.schema_changed_at();
    let since = |at| [("If-Modified-Since", http_date(at))];
    let at_change = since(changed);
    let header = [(at_change[0].0, at_change[0].1.as_str())];
    let unchanged = org
        .call_with(Method::GET, "sobjects/Case/describe", None, &header)
        .await;
    assert_eq!((unchanged.status, unchanged.body), (304, Value::Null));
    assert_eq!(
        org.fake.org.calls_by_kind()["describe"],
        2,
        "a 304 is a call too"
    );
    let earlier = since(changed - std::time::Duration::from_secs(1));
    let earlier = [(earlier[0].0, earlier[0].1.as_str())];
    let modified = org
        .call_with(Method::GET, "sobjects/Case/describe", None, &earlier)
        .await;
    assert_eq!(modified.status, 200);

    // Field-level security: a hidden field is absent, a read-only one says so.
    std::thread::sleep(std::time::Duration::from_millis(1_100));
    org.fake.org.remove_case_field(fake::OUTCOME_FIELD);
    org.fake.org.set_case_field_access("Subject", false, false);
    org.fake
        .org
        .add_record_type("012FAKE00000001AAA", "Support", true);
    org.fake
        .org
        .add_record_type("012FAKE00000002AAA", "Billing", false);
    let after = org
        .call_with(Method::GET, "sobjects/Case/describe", None, &header)
        .await;
    assert_eq!(after.status, 200, "the schema changed since");
    assert!(field(&after.body, fake::OUTCOME_FIELD).is_none());
    let subject = field(&after.body, "Subject").unwrap();
    assert_eq!(
        (&subject["createable"], &subject["updateable"]),
        (&json!(false), &json!(false))
    );
    assert_eq!(
        field(&after.body, "RecordTypeId").unwrap()["type"],
        "reference"
    );
    let infos = after.body["recordTypeInfos"].as_array().unwrap();
    let summary: Vec<(Value, Value, Value)> = infos
        .iter()
        .map(|i| {
            (
                i["name"].clone(),
                i["available"].clone(),
                i["defaultRecordTypeMapping"].clone(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (json!("Master"), json!(false), json!(false)),
            (json!("Support"), json!(true), json!(true)),
            (json!("Billing"), json!(false), json!(false)),
        ]
    );

    org.fake.org.reset_case_schema();
    let reset = org.describe().await.body;
    assert!(field(&reset, fake::OUTCOME_FIELD).is_some());
    assert_eq!(field(&reset, "Subject").unwrap()["createable"], true);
    assert_eq!(reset["recordTypeInfos"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn schema_changes_fail_writes_as_a_real_org_does_until_reset() {
    let org = org().await;
    let code_of = |(status, body): &(u16, Value)| (*status, body[0]["errorCode"].clone());

    // Not deployed or hidden: INVALID_FIELD, for a collections request as a whole.
    org.fake.org.remove_case_field(fake::OUTCOME_FIELD);
    let with_outcome = json!({EXT: "s-1", fake::OUTCOME_FIELD: "dropped"});
    let answer = org.create_with(with_outcome.clone(), &[]).await;
    assert_eq!(code_of(&answer), (400, json!("INVALID_FIELD")));
    let answer = org
        .collection_create(vec![json!({EXT: "s-2"}), with_outcome.clone()], &[])
        .await;
    assert_eq!(
        (answer.status, error_code(&answer.body)),
        (400, "INVALID_FIELD"),
        "{}",
        answer.body
    );
    assert_eq!(org.fake.org.case_count(), 0, "nothing written");
    let query = org
        .query(&format!("SELECT {} FROM Case", fake::OUTCOME_FIELD))
        .await;
    assert_eq!(error_code(&query.body), "INVALID_FIELD");
    let upsert = org
        .call(
            Method::PATCH,
            &format!("sobjects/Case/{EXT}/s-3"),
            Some(json!({})),
        )
        .await;
    assert_eq!(upsert.status, 201, "other fields still work");
    let id = upsert.body["id"].as_str().unwrap().to_owned();

    // Read-only for the user: per record.
    org.fake.org.set_case_field_access("Subject", false, false);
    let answer = org.create_with(json!({"Subject": "x"}), &[]).await;
    assert_eq!(
        answer.1[0]["message"],
        "Unable to create/update fields: Subject. Please check the security settings of this field and verify that it is read/write for your profile or permission set."
    );
    assert_eq!(
        code_of(&answer),
        (400, json!("INVALID_FIELD_FOR_INSERT_UPDATE"))
    );
    let answer = org
        .collection_create(
            vec![json!({EXT: "s-4"}), json!({EXT: "s-5", "Subject": "x"})],
            &[],
        )
        .await;
    assert_eq!(answer.body[0]["success"], true);
    assert_eq!(
        answer.body[1]["errors"][0]["statusCode"],
        "INVALID_FIELD_FOR_INSERT_UPDATE"
    );
    assert_eq!(answer.body[1]["errors"][0]["fields"], json!(["Subject"]));
    org.fake.org.set_case_field_access("Subject", true, false);
    assert_eq!(org.create_with(json!({"Subject": "x"}), &[]).await.0, 201);
    let update = org
        .call(
            Method::PATCH,
            &format!("sobjects/Case/{id}"),
            Some(json!({"Subject": "y"})),
        )
        .await;
    assert_eq!(error_code(&update.body), "INVALID_FIELD_FOR_INSERT_UPDATE");

    // A Status picklist without "New": the default moves, "New" is refused.
    org.fake
        .org
        .set_picklist("Status", &["Working", "Closed"], true);
    let answer = org.create_with(json!({"Status": "New"}), &[]).await;
    assert_eq!(
        code_of(&answer),
        (400, json!("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"))
    );
    assert_eq!(
        answer.1[0]["message"],
        "Status: bad value for restricted picklist field: New"
    );
    let (_, created) = org.create_with(json!({}), &[]).await;
    let created = org
        .fake
        .org
        .case_by_id(created["id"].as_str().unwrap())
        .unwrap();
    assert_eq!(created["Status"], "Working");
    org.fake.org.set_picklist("Origin", &["Phone"], false);
    assert_eq!(
        org.create_with(json!({"Origin": "Fax"}), &[]).await.0,
        201,
        "unrestricted"
    );

    org.fake.org.set_field_length("SuppliedName", 5);
    let answer = org
        .create_with(json!({"SuppliedName": "Six ch"}), &[])
        .await;
    assert_eq!(code_of(&answer), (400, json!("STRING_TOO_LONG")));
    assert_eq!(
        org.create_with(json!({"SuppliedName": "Five."}), &[])
            .await
            .0,
        201
    );

    // A required custom field: creates need it, upserts that create too, updates do not.
    org.fake
        .org
        .add_case_field("Region__c", fake::FieldType::Text(20), true);
    let describe = org.describe().await.body;
    let region = field(&describe, "Region__c").unwrap();
    assert_eq!(
        (
            &region["createable"],
            &region["nillable"],
            &region["defaultedOnCreate"],
            &region["custom"]
        ),
        (&json!(true), &json!(false), &json!(false), &json!(true))
    );
    let answer = org.create_with(json!({}), &[]).await;
    assert_eq!(
        answer.1,
        json!([{"message": "Required fields are missing: [Region__c]", "errorCode": "REQUIRED_FIELD_MISSING", "fields": ["Region__c"]}])
    );
    assert_eq!(
        org.create_with(json!({"Region__c": "EU"}), &[]).await.0,
        201
    );
    let upsert = json!({"allOrNone": false, "records": [
        {"attributes": {"type": "Case"}, EXT: "s-3", "Description": "update"},
        {"attributes": {"type": "Case"}, EXT: "s-6", "Description": "create"},
    ]});
    let answer = org
        .call(
            Method::PATCH,
            &format!("composite/sobjects/Case/{EXT}"),
            Some(upsert),
        )
        .await;
    assert_eq!(answer.body[0]["success"], true, "{}", answer.body);
    assert_eq!(
        answer.body[1]["errors"][0]["statusCode"],
        "REQUIRED_FIELD_MISSING"
    );

    // A formula is calculated, so read-only.
    org.fake
        .org
        .add_case_field("Score__c", fake::FieldType::Formula, false);
    let score = field(&org.describe().await.body, "Score__c")
        .cloned()
        .unwrap();
    assert_eq!(
        (&score["calculated"], &score["createable"], &score["type"]),
        (&json!(true), &json!(false), &json!("string"))
    );
    let answer = org
        .create_with(json!({"Region__c": "EU", "Score__c": "9"}), &[])
        .await;
    assert_eq!(
        code_of(&answer),
        (400, json!("INVALID_FIELD_FOR_INSERT_UPDATE"))
    );

    // Record types: the available one is the default; an unavailable one is refused.
    org.fake
        .org
        .add_record_type("012FAKE00000001AAA", "Support", true);
    org.fake
        .org
        .add_record_type("012FAKE00000002AAA", "Billing", false);
    let (_, created) = org.create_with(json!({"Region__c": "EU"}), &[]).await;
    let created = org
        .fake
        .org
        .case_by_id(created["id"].as_str().unwrap())
        .unwrap();
    assert_eq!(created["RecordTypeId"], "012FAKE00000001AAA");
    let answer = org
        .create_with(
            json!({"Region__c": "EU", "RecordTypeId": "012FAKE00000002AAA"}),
            &[],
        )
        .await;
    assert_eq!(
        code_of(&answer),
        (400, json!("INVALID_CROSS_REFERENCE_KEY"))
    );

    // The admin fixes the org: everything above works again.
    org.fake.org.reset_case_schema();
    let fixed = json!({EXT: "s-7", fake::OUTCOME_FIELD: "dropped", "Subject": "x", "Status": "New", "SuppliedName": "Long enough"});
    assert_eq!(org.create_with(fixed, &[]).await.0, 201);
    let answer = org.create_with(json!({"Region__c": "EU"}), &[]).await;
    assert_eq!(
        code_of(&answer),
        (400, json!("INVALID_FIELD")),
        "the custom field is gone"
    );
}

#[tokio::test]
async fn assign_header_decides_the_owner_on_create_and_update() {
    let org = org().await;
    let off = [("Sforce-Auto-Assign", "FALSE")];

    // No active rule: absent or TRUE gives the Case to the Default Case Owner (Help 000395506).
    let (_, absent) = org.create_with(json!({"OwnerId": AGENT}), &[]).await;
    let absent = absent["id"].as_str().unwrap().to_owned();
    assert_eq!(org.owner(&absent), fake::DEFAULT_CASE_OWNER);
    let (_, kept) = org.create_with(json!({"OwnerId": AGENT}), &off).await;
    let kept = kept["id"].as_str().unwrap().to_owned();
    assert_eq!(org.owner(&kept), AGENT);
    let (_, mine) = org
        .create_with(json!({}), &[("sforce-auto-assign", "false")])
        .await;
    let mine = mine["id"].as_str().unwrap().to_owned();
    assert_eq!(org.owner(&mine), fake::USER_ID_18);

    // An update without the header reassigns too; with FALSE the owner stays.
    let patch = |id: &str| format!("sobjects/Case/{id}");
    let body = Some(json!({"Subject": "s"}));
    org.call_with(Method::PATCH, &patch(&kept), body.clone(), &off)
        .await;
    assert_eq!(org.owner(&kept), AGENT);
    org.fake.org.set_default_case_owner("00GFAKE0000000DAAA");
    org.call_with(
        Method::PATCH,
        &patch(&kept),
        body.clone(),
        &[("Sforce-Auto-Assign", "TRUE")],
    )
    .await;
    assert_eq!(org.owner(&kept), "00GFAKE0000000DAAA");

    // An active rule runs on create and update; a rule id only on create.
    org.fake
        .org
        .set_assignment_rule(Some((RULE, "Contact centre", QUEUE)));
    let (_, routed) = org.create_with(json!({}), &[]).await;
    let routed = routed["id"].as_str().unwrap().to_owned();
    assert_eq!(org.owner(&routed), QUEUE);
    org.fake.org.assign_case(&routed, AGENT);
    org.call_with(Method::PATCH, &patch(&routed), body.clone(), &off)
        .await;
    assert_eq!(org.owner(&routed), AGENT, "FALSE keeps the agent");
    org.call_with(Method::PATCH, &patch(&routed), body.clone(), &[])
        .await;
    assert_eq!(
        org.owner(&routed),
        QUEUE,
        "absent takes it back to the queue"
    );
    org.fake.org.assign_case(&routed, AGENT);
    org.call_with(
        Method::PATCH,
        &patch(&routed),
        body.clone(),
        &[("Sforce-Auto-Assign", RULE)],
    )
    .await;
    assert_eq!(org.owner(&routed), AGENT);
    org.fake.org.set_assignment_rule(None);
    let (_, by_id) = org
        .create_with(json!({}), &[("Sforce-Auto-Assign", &RULE[..15])])
        .await;
    assert_eq!(
        org.owner(by_id["id"].as_str().unwrap()),
        QUEUE,
        "an inactive rule runs by id"
    );

    for (value, code) in [
        ("01QFAKE00000009AAA", "INVALID_CROSS_REFERENCE_KEY"),
        ("yes", "MALFORMED_ID"),
    ] {
        let (status, body) = org
            .create_with(json!({}), &[("Sforce-Auto-Assign", value)])
            .await;
        assert_eq!(
            (status, body[0]["errorCode"].clone()),
            (400, json!(code)),
            "{value}"
        );
    }

    // Collections and upserts follow the same header.
    let answer = org
        .collection_create(
            vec![json!({EXT: "h-1"}), json!({EXT: "h-2", "OwnerId": AGENT})],
            &off,
        )
        .await;
    assert_eq!(answer.body[1]["success"], true);
    assert_eq!(
        org.fake.org.case("h-1").unwrap()["OwnerId"],
        fake::USER_ID_18
    );
    assert_eq!(org.fake.org.case("h-2").unwrap()["OwnerId"], AGENT);
    let upsert =
        json!({"records": [{"attributes": {"type": "Case"}, EXT: "h-2", "Subject": "again"}]});
    org.call_with(
        Method::PATCH,
        &format!("composite/sobjects/Case/{EXT}"),
        Some(upsert),
        &[],
    )
    .await;
    assert_eq!(
        org.fake.org.case("h-2").unwrap()["OwnerId"],
        "00GFAKE0000000DAAA"
    );

    let headers: Vec<(String, Option<String>)> = org
        .fake
        .org
        .assign_headers()
        .into_iter()
        .map(|h| (h.call, h.value))
        .collect();
    let some = |v: &str| Some(v.to_owned());
    assert_eq!(
        headers,
        [
            ("create".into(), None),
            ("create".into(), some("FALSE")),
            ("create".into(), some("false")),
            ("update".into(), some("FALSE")),
            ("update".into(), some("TRUE")),
            ("create".into(), None),
            ("update".into(), some("FALSE")),
            ("update".into(), None),
            ("update".into(), some(RULE)),
            ("create".into(), some(&RULE[..15])),
            ("create".into(), some("01QFAKE00000009AAA")),
            ("create".into(), some("yes")),
            ("collections_create".into(), some("FALSE")),
            ("collections_upsert".into(), None),
        ]
    );
}

#[tokio::test]
async fn composite_subrequests_inherit_the_assign_header_unless_they_set_their_own() {
    let org = org().await;
    org.fake
        .org
        .set_assignment_rule(Some((RULE, "Contact centre", QUEUE)));
    let create = |ext: &str| format!("/services/data/v62.0/sobjects/Case/{EXT}/{ext}");
    let requests = json!([
        {"method": "PATCH", "url": create("c-1"), "referenceId": "inherits", "body": {"OwnerId": AGENT}},
        {"method": "PATCH", "url": create("c-2"), "referenceId": "own", "body": {"OwnerId": AGENT},
         "httpHeaders": {"Sforce-Auto-Assign": "TRUE"}},
        {"method": "POST", "url": "/services/data/v62.0/composite/sobjects", "referenceId": "many",
         "body": {"records": [{"attributes": {"type": "Case"}, EXT: "c-3", "OwnerId": AGENT}]}},
        {"method": "GET", "url": "/services/data/v62.0/query?q=SELECT Id FROM Case", "referenceId": "q"},
    ]);
    let body = json!({"allOrNone": false, "compositeRequest": requests});
    let answer = org
        .call_with(
            Method::POST,
            "composite",
            Some(body),
            &[("Sforce-Auto-Assign", "FALSE")],
        )
        .await;
    let responses = answer.body["compositeResponse"].as_array().unwrap();
    assert_eq!(statuses(responses), [201, 201, 200, 200]);
    let owner = |ext: &str| org.fake.org.case(ext).unwrap()["OwnerId"].clone();
    assert_eq!(
        (owner("c-1"), owner("c-2"), owner("c-3")),
        (json!(AGENT), json!(QUEUE), json!(AGENT))
    );

    // No top-level header: absent (TRUE) unless a subrequest says FALSE.
    let requests = json!([
        {"method": "PATCH", "url": create("c-1"), "referenceId": "absent", "body": {"Subject": "x"}},
        {"method": "PATCH", "url": create("c-3"), "referenceId": "off", "body": {"Subject": "x"},
         "httpHeaders": {"sforce-auto-assign": "FALSE"}},
    ]);
    org.composite(false, requests).await;
    assert_eq!((owner("c-1"), owner("c-3")), (json!(QUEUE), json!(AGENT)));

    let seen: Vec<(String, bool, Option<String>)> = org
        .fake
        .org
        .assign_headers()
        .into_iter()
        .map(|h| (h.call, h.in_composite, h.value))
        .collect();
    let off = Some("FALSE".to_owned());
    assert_eq!(
        seen,
        [
            ("upsert".into(), true, off.clone()),
            ("upsert".into(), true, Some("TRUE".into())),
            ("collections_create".into(), true, off.clone()),
            ("upsert".into(), true, None),
            ("upsert".into(), true, off),
        ]
    );
}

#[tokio::test]
async fn assignment_rules_and_permissions_are_queryable_with_view_setup() {
    let org = org().await;
    org.fake
        .org
        .set_assignment_rule(Some((RULE, "Contact centre", QUEUE)));
    let rules = org
        .query("SELECT Id, Name FROM AssignmentRule WHERE SobjectType = 'Case' AND Active = true")
        .await;
    assert_eq!(rules.status, 200, "{}", rules.body);
    let found: Vec<(Value, Value)> = records(&rules)
        .iter()
        .map(|r| (r["Id"].clone(), r["Name"].clone()))
        .collect();
    assert_eq!(found, [(json!(RULE), json!("Contact centre"))]);
    assert_eq!(records(&rules)[0]["attributes"]["type"], "AssignmentRule");
    org.fake.org.set_assignment_rule(None);
    let none = org
        .query("SELECT Id, Name FROM AssignmentRule WHERE SobjectType = 'Case' AND Active = true")
        .await;
    assert_eq!(none.body["totalSize"], 0);
    let bad = org
        .query("SELECT Id FROM AssignmentRule WHERE Active = 'true'")
        .await;
    assert_eq!(error_code(&bad.body), "INVALID_QUERY_FILTER_OPERATOR");

    let access = org
        .query("SELECT DefaultCaseAccess FROM Organization")
        .await;
    assert_eq!(records(&access)[0]["DefaultCaseAccess"], "ReadEditTransfer");
    org.fake.org.set_case_sharing(fake::CaseAccess::Private);
    let access = org
        .query("SELECT DefaultCaseAccess FROM Organization")
        .await;
    assert_eq!(records(&access)[0]["DefaultCaseAccess"], "None");

    let permissions = format!(
        "SELECT PermissionsViewAllRecords, PermissionsModifyAllRecords FROM ObjectPermissions WHERE SobjectType = 'Case' AND ParentId IN (SELECT PermissionSetId FROM PermissionSetAssignment WHERE AssigneeId = '{}')",
        fake::USER_ID
    );
    let flags = |answer: &Answer| {
        let r = &records(answer)[0];
        (
            r["PermissionsViewAllRecords"].clone(),
            r["PermissionsModifyAllRecords"].clone(),
        )
    };
    let answer = org.query(&permissions).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(flags(&answer), (json!(false), json!(false)));
    org.fake.org.set_case_object_permissions(true, true);
    assert_eq!(
        flags(&org.query(&permissions).await),
        (json!(true), json!(true))
    );
    let someone_else = permissions.replace(fake::USER_ID, "005000000000042");
    assert_eq!(org.query(&someone_else).await.body["totalSize"], 0);

    org.fake.org.set_view_setup(false);
    for soql in ["SELECT Id, Name FROM AssignmentRule", &permissions] {
        let refused = org.query(soql).await;
        assert_eq!(
            (refused.status, error_code(&refused.body)),
            (400, "INVALID_TYPE"),
            "{soql}"
        );
    }
    let access = org
        .query("SELECT DefaultCaseAccess FROM Organization")
        .await;
    assert_eq!(access.status, 200, "Organization is no setup object");
}

/// The sharing rule's public group and its members (GroupMember: a record per direct member
/// of a Regular group; Group needs View Setup and Configuration, Spring '20 and later).
#[tokio::test]
async fn the_sharing_rules_group_lists_the_user_while_the_rule_applies() {
    let org = org().await;
    let member = format!(
        "SELECT Id FROM GroupMember WHERE UserOrGroupId = '{}' AND GroupId IN (SELECT Id FROM Group WHERE DeveloperName = '{}')",
        fake::USER_ID_18,
        fake::SHARING_GROUP_NAME
    );
    let answer = org.query(&member).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body["totalSize"], 0);
    org.fake
        .org
        .set_case_sharing_rule(Some(fake::ShareAccess::Edit));
    let answer = org.query(&member).await;
    assert_eq!(records(&answer)[0]["attributes"]["type"], "GroupMember");
    let group = org
        .query("SELECT Id, Type FROM Group WHERE DeveloperName = 'Ctr_Cases_Integration'")
        .await;
    assert_eq!(
        (
            records(&group)[0]["Id"].clone(),
            records(&group)[0]["Type"].clone()
        ),
        (json!(fake::SHARING_GROUP_ID), json!("Regular"))
    );
    org.fake.org.set_view_setup(false);
    let refused = org.query(&member).await;
    assert_eq!(
        (refused.status, error_code(&refused.body)),
        (400, "INVALID_TYPE")
    );
}

#[tokio::test]
async fn private_sharing_hides_and_protects_cases_the_user_does_not_own() {
    let org = org().await;
    let off = [("Sforce-Auto-Assign", "FALSE")];
    let (_, own) = org.create_with(json!({EXT: "p-1"}), &off).await;
    let own = own["id"].as_str().unwrap().to_owned();
    let (_, other) = org
        .create_with(json!({EXT: "p-2", "OwnerId": AGENT}), &off)
        .await;
    let other = other["id"].as_str().unwrap().to_owned();
    let (_, no_ext) = org.create_with(json!({"OwnerId": AGENT}), &off).await;
    let no_ext = no_ext["id"].as_str().unwrap().to_owned();
    let seen = |answer: &Answer| {
        let mut ids: Vec<String> = records(answer)
            .iter()
            .map(|r| r["Id"].as_str().unwrap().to_owned())
            .collect();
        ids.sort();
        ids
    };
    let all = org.query("SELECT Id FROM Case").await;
    assert_eq!(seen(&all).len(), 3);

    org.fake.org.set_case_sharing(fake::CaseAccess::Private);
    assert_eq!(
        seen(&org.query("SELECT Id FROM Case").await),
        [own.as_str()]
    );
    assert_eq!(org.get(&format!("sobjects/Case/{other}")).await.status, 404);
    assert_eq!(
        org.get(&format!("sobjects/Case/{EXT}/p-2")).await.status,
        404
    );
    assert_eq!(org.get(&format!("sobjects/Case/{own}")).await.status, 200);
    let refused = org.update_subject(&other).await;
    assert_eq!(
        (refused.status, refused.body.clone()),
        (
            400,
            json!([{"message": "insufficient access rights on object id", "errorCode": "INSUFFICIENT_ACCESS_OR_READONLY", "fields": []}])
        )
    );
    assert_eq!(org.update_subject(&own).await.status, 204);
    let both = json!({"records": [
        {"attributes": {"type": "Case"}, "id": own},
        {"attributes": {"type": "Case"}, "id": other},
    ]});
    let answer = org
        .call_with(Method::PATCH, "composite/sobjects", Some(both), &off)
        .await;
    assert_eq!(answer.body[0]["success"], true);
    assert_eq!(
        answer.body[1]["errors"][0]["statusCode"],
        "INSUFFICIENT_ACCESS_OR_READONLY"
    );
    // Uniqueness spans records the user cannot see.
    let (status, body) = org.create_with(json!({EXT: "P-2"}), &off).await;
    assert_eq!(
        (status, body[0]["errorCode"].clone()),
        (400, json!("DUPLICATE_VALUE"))
    );
    let upsert = org
        .call_with(
            Method::PATCH,
            &format!("sobjects/Case/{EXT}/p-2"),
            Some(json!({})),
            &off,
        )
        .await;
    assert_eq!(error_code(&upsert.body), "DUPLICATE_VALUE");
    // An agent is not bound by the integration user's sharing.
    org.fake.org.edit_case(&other, json!({"Subject": "agent"}));
    assert_eq!(org.fake.org.case("p-2").unwrap()["Subject"], "agent");

    // Read only: visible, not editable (an upsert finds it and is refused).
    org.fake.org.set_case_sharing(fake::CaseAccess::Read);
    assert_eq!(seen(&org.query("SELECT Id FROM Case").await).len(), 3);
    assert_eq!(org.update_subject(&other).await.status, 400);
    let upsert = org
        .call_with(
            Method::PATCH,
            &format!("sobjects/Case/{EXT}/p-2"),
            Some(json!({})),
            &off,
        )
        .await;
    assert_eq!(error_code(&upsert.body), "INSUFFICIENT_ACCESS_OR_READONLY");

    // Object permissions.
    org.fake.org.set_case_sharing(fake::CaseAccess::Private);
    org.fake.org.set_case_object_permissions(true, false);
    assert_eq!(seen(&org.query("SELECT Id FROM Case").await).len(), 3);
    assert_eq!(org.update_subject(&other).await.status, 400);
    org.fake.org.set_case_object_permissions(false, true);
    assert_eq!(org.update_subject(&other).await.status, 204);
    org.fake.org.set_case_object_permissions(false, false);

    // The sharing rule covers Cases with an external id.
    org.fake
        .org
        .set_case_sharing_rule(Some(fake::ShareAccess::Read));
    let mut expected = vec![own.clone(), other.clone()];
    expected.sort();
    assert_eq!(seen(&org.query("SELECT Id FROM Case").await), expected);
    assert_eq!(
        org.get(&format!("sobjects/Case/{no_ext}")).await.status,
        404
    );
    assert_eq!(org.update_subject(&other).await.status, 400);
    org.fake
        .org
        .set_case_sharing_rule(Some(fake::ShareAccess::Edit));
    assert_eq!(org.update_subject(&other).await.status, 204);
    assert_eq!(org.update_subject(&no_ext).await.status, 400);

    // A Case the assignment step gives away leaves the user's sight under Private.
    org.fake.org.set_case_sharing_rule(None);
    let (_, given) = org.create_with(json!({}), &[]).await;
    let given = given["id"].as_str().unwrap().to_owned();
    assert_eq!(org.get(&format!("sobjects/Case/{given}")).await.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn max_in_flight_counts_concurrent_data_requests() {
    let org = std::sync::Arc::new(org().await);
    assert_eq!(org.fake.org.max_in_flight(), 0);
    org.query("SELECT Id FROM Case").await;
    assert_eq!(org.fake.org.max_in_flight(), 1);
    org.fake
        .org
        .set_latency(Some(std::time::Duration::from_millis(300)));
    let tasks: Vec<_> = (0..5)
        .map(|_| {
            let org = org.clone();
            tokio::spawn(async move { org.query("SELECT Id FROM Case").await.status })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), 200);
    }
    assert_eq!(org.fake.org.max_in_flight(), 5);
    org.fake.org.reset_max_in_flight();
    assert_eq!(org.fake.org.max_in_flight(), 0);
    org.fake.org.set_latency(None);
    org.query("SELECT Id FROM Case").await;
    assert_eq!(org.fake.org.max_in_flight(), 1);
}

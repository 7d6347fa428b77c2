//! The fake Salesforce org itself, driven over HTTP with reqwest: its wire formats, uniqueness,
//! per-field updates, SOQL/SOSL subsets, composite references, accounting and faults.

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
        let url = format!("{}/{path}", self.fake.data_url(version));
        let mut request = self.http.request(method, url).bearer_auth(token);
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
            "SELECT Id FROM Case WHERE Subject = 'a' AND Status = 'New'",
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

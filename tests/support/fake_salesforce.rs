//! A stateful fake Salesforce org for integration tests: an axum server on `127.0.0.1:0` speaking
//! the REST wire format that Salesforce's REST API Developer Guide documents, with in-memory
//! Cases and Contacts, a Case schema tests change at run time, assignment rules,
//! sharing, counters, and scripted or random faults. It follows the documentation, never a
//! client; where the documentation is silent the choice is noted on the item and kept strict (a
//! fake that accepts more than Salesforce hides client bugs).
//!
//! # Endpoints
//! `POST /services/oauth2/token` (password, client credentials and JWT bearer grants, form body)
//! and, under `/services/data/vNN.0/` with `Authorization: Bearer`, each answer carrying
//! `Sforce-Limit-Info: api-usage=USED/MAX`: `sobjects/{Case|Contact}` (POST),
//! `sobjects/{T}/describe` (GET; `If-Modified-Since` → 304), `sobjects/{T}/{Id}` (GET
//! `?fields=`, PATCH → 204), `sobjects/Case/{ext}/{value}` (GET, PATCH upsert),
//! `composite/sobjects` (POST create, PATCH update by id; ≤ 200 records),
//! `composite/sobjects/Case/{ext}` (PATCH upsert), `query?q=` (`SELECT f, … FROM T [WHERE c
//! (AND c …|OR c …)]`, `c` one of `f = 'x'`, `f = true`, `f [NOT] IN ('a', …)`, `f IN (SELECT g FROM
//! U …)`; T one of Case, Contact, Organization, AssignmentRule, ObjectPermissions,
//! PermissionSetAssignment, Group, GroupMember), `search?q=` (`FIND {…} IN PHONE FIELDS RETURNING Contact(…)`) and
//! `composite` (≤ 25 subrequests, `@{ref.path}` references, per-subrequest `httpHeaders`). A URI
//! over 16,384 bytes answers 414; URI plus headers over that, 431.
//!
//! # Accounting
//! A data call counts once ([`FakeOrg::api_calls`], by kind in [`FakeOrg::calls_by_kind`]) when it
//! is authenticated and admitted. Not counted: 401 (no, unknown or expired token, an injected
//! 401), `403 TotalRequests` (the limit or [`Fault::TotalRequestsLimit`]), [`Fault::NonJson`] and
//! [`Fault::Redirect`] (a proxy answers, not the API), 414 and 431. All else counts, injected 5xx,
//! dropped connections and describe's 304 included; a collections or composite request counts
//! once. [`FakeOrg::max_in_flight`] is the most data requests served at once.
//!
//! # Schema
//! Case (as [`FakeOrg::case_schema`] and describe show it at start): Id, CaseNumber (auto-number
//! `00001001`, …), CreatedDate, LastModifiedDate (read-only); Subject (255), Description
//! (textarea, 32,000), SuppliedPhone (40), SuppliedName (80), SuppliedEmail (email, 80);
//! restricted picklists Origin ∈ {Phone, Email, Web} and Status ∈ {New, Working, Escalated,
//! Closed} (default New); unrestricted picklists Priority, Type, Reason; references ContactId,
//! AccountId, OwnerId (user or queue; defaulted on create); the custom fields of the org metadata
//! in salesforce/force-app: [`EXTERNAL_ID_FIELD`] (Text(36), Unique case-insensitive, External
//! ID), [`LAST_UPDATE_FIELD`] (DateTime), [`OUTCOME_FIELD`] (Text(40)). Any other field is
//! `INVALID_FIELD`, as in a real org: for a whole request, collections included (a
//! deserialization error, before any record). Tests change the schema with the setters of
//! [`FakeOrg`] (field-level security, picklists, lengths, required custom fields, record types)
//! and undo it with [`FakeOrg::reset_case_schema`]. Contact: Id, FirstName (40), LastName (80,
//! required), Phone and MobilePhone (40), AccountId. Names are case-insensitive, stored
//! canonically; an update changes only the fields sent; every write is atomic under the org's
//! mutex.
//!
//! # Assignment
//! Every request (or composite subrequest) that creates or updates Cases has an effective
//! `Sforce-Auto-Assign` (a subrequest's `httpHeaders` override the request's), recorded in
//! [`FakeOrg::assign_headers`]. Absent or `TRUE`: the active rule ([`FakeOrg::set_assignment_rule`])
//! gives the Case to its queue, or, with no active rule, to the Default Case Owner (Salesforce
//! Help 000395506), on create and update alike. `FALSE`: the owner is the body's, else (create)
//! the integration user [`USER_ID_18`]. A rule id runs that rule on create.
//!
//! # Sharing
//! Every data call acts as the integration user [`USER_ID`]. With [`CaseAccess::Private`] it sees
//! and edits only the Cases it owns, unless View All / Modify All or the sharing rule grant more;
//! [`CaseAccess::Read`] makes every Case readable. Queries and retrieves leave out what it cannot
//! see; writes to a Case it cannot edit fail that record with `INSUFFICIENT_ACCESS_OR_READONLY`;
//! the unique index spans every Case. Test helpers ([`FakeOrg::edit_case`],
//! [`FakeOrg::assign_case`], [`FakeOrg::cases`], …) act as an agent or admin and ignore sharing.
//!
//! # Faults
//! Scripted faults ([`FakeOrg::push_fault`]) are consumed FIFO, one per admitted data call (token
//! calls and 401s consume none), whether or not the call can be affected: a
//! [`Fault::RecordError`] whose external id is not in the call is used up with no effect. Without
//! a scripted fault, random ones ([`FakeOrg::set_random_faults`]) may fire. A dropped connection
//! is closed before any byte of the answer; the server keeps serving other connections.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::connect_info::{ConnectInfo, Connected};
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use axum::serve::{IncomingStream, Listener};
use base64::Engine as _;
use rand::rngs::StdRng;
use rand::{RngExt as _, SeedableRng as _};
use serde_json::{Map, Value, json};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// The connected app's consumer key accepted by the token endpoint.
pub const CLIENT_ID: &str = "fake-client-id";
/// The connected app's consumer secret accepted by the token endpoint.
pub const CLIENT_SECRET: &str = "fake-client-secret";
/// The integration user's username (also the JWT `sub`).
pub const USERNAME: &str = "integration@example.com";
/// The integration user's password followed by its security token, as the password grant wants.
pub const PASSWORD: &str = "pw-and-security-token";
/// The Case external id field: Text(36) (a ContactId), Unique (case-insensitive), External ID.
pub const EXTERNAL_ID_FIELD: &str = "Amazon_Connect_Contact_Id__c";
/// The Case DateTime field holding the CTR `LastUpdateTimestamp` a Case reflects.
pub const LAST_UPDATE_FIELD: &str = "Amazon_Connect_Last_Update__c";
/// The outcome field (Text(40)) of the org metadata.
pub const OUTCOME_FIELD: &str = "Amazon_Connect_Outcome__c";
/// The integration user's id as an `OwnerId` holds it (18 characters): the owner of a Case it
/// creates without OwnerId when no assignment runs.
pub const USER_ID_18: &str = "005FAKE00000001AAA";
/// The org's Default Case Owner (Support Settings) at start, a user other than the integration
/// user: the owner a Case gets when assignment runs and no rule is active.
pub const DEFAULT_CASE_OWNER: &str = "005FAKE00000002AAA";
/// The permission set (owned by the integration user's profile) holding its Case permissions.
pub const PERMISSION_SET_ID: &str = "0PSFAKE00000001AAA";
/// The public group the shipped sharing rule shares Cases with (`Group`, Type `Regular`).
pub const SHARING_GROUP_ID: &str = "00GFAKE00000099AAA";
/// That group's API name (`Group.DeveloperName`), as salesforce/force-app/.../groups defines it.
pub const SHARING_GROUP_NAME: &str = "Ctr_Cases_Integration";
/// The fake org's 15-character organisation id (appears in tokens and identity URLs).
pub const ORG_ID: &str = "00DFAKE00000001";
/// The integration user's 15-character user id (appears in identity URLs).
pub const USER_ID: &str = "005FAKE00000001";
/// Default daily API request limit (Developer Edition).
pub const DEFAULT_DAILY_LIMIT: u64 = 15_000;
/// Maximum number of records in one sObject Collections request.
pub const MAX_COLLECTION_RECORDS: usize = 200;
/// Maximum number of subrequests in one Composite request (at most 5 collections or queries).
pub const MAX_COMPOSITE_SUBREQUESTS: usize = 25;
/// URI (and URI plus headers) limit, from Salesforce Help article 000386264: "the maximum length
/// for the combined URI and headers is 16,384 bytes" (431), "If the URI itself exceeds…" (414).
pub const MAX_URI_BYTES: usize = 16_384;

const LOGIN_URLS: [&str; 2] = [
    "https://login.salesforce.com",
    "https://test.salesforce.com",
];
/// Salesforce wants a JWT `exp` at most 3 minutes ahead; 10 s more cover clock skew.
const MAX_JWT_LIFETIME_SECS: u64 = 190;
const ORIGINS: &[&str] = &["Phone", "Email", "Web"];
const STATUSES: &[&str] = &["New", "Working", "Escalated", "Closed"];
const ROLLED_BACK: &str =
    "The transaction was rolled back since another operation in the same transaction failed.";

/// A running fake org. Dropping it leaves the server task running until the test's runtime ends.
#[derive(Clone)]
pub struct FakeSalesforce {
    /// `http://127.0.0.1:PORT`: the login URL, and (unless overridden) the `instance_url`.
    pub base_url: String,
    /// The org's state, shared with the server.
    pub org: Arc<FakeOrg>,
}

impl FakeSalesforce {
    /// `{base_url}/services/oauth2/token`.
    pub fn token_url(&self) -> String {
        format!("{}/services/oauth2/token", self.base_url)
    }

    /// `{base_url}/services/data/{version}` with `version` like `v62.0`.
    pub fn data_url(&self, version: &str) -> String {
        format!("{}/services/data/{version}", self.base_url)
    }
}

/// Options for [`start_with`]; `Default` gives the same org as [`start`].
#[derive(Clone, Debug, Default)]
pub struct FakeOptions {
    /// Daily API request limit; default [`DEFAULT_DAILY_LIMIT`].
    pub daily_limit: Option<u64>,
    /// Delay added to every data API call (not to token calls), before it is processed.
    pub latency: Option<Duration>,
    /// PEM RSA public key; when set, JWT assertions must carry a valid RS256 signature.
    pub jwt_public_key_pem: Option<String>,
    /// `instance_url` returned by the token endpoint; default the base URL.
    pub instance_url: Option<String>,
}

/// Start a fake org with the default options.
///
/// # Panics
/// If no loopback port can be bound.
pub async fn start() -> FakeSalesforce {
    start_with(FakeOptions::default()).await
}

/// Start a fake org with `options`.
///
/// # Panics
/// If no loopback port can be bound, or `jwt_public_key_pem` is not an RSA public key.
pub async fn start_with(options: FakeOptions) -> FakeSalesforce {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let base_url = format!("http://{}", listener.local_addr().expect("local_addr"));
    let jwt_key = options.jwt_public_key_pem.as_deref().map(|pem| {
        jsonwebtoken::DecodingKey::from_rsa_pem(pem.as_bytes()).expect("an RSA public key")
    });
    let state = OrgState {
        daily_limit: options.daily_limit.unwrap_or(DEFAULT_DAILY_LIMIT),
        latency: options.latency,
        accepted_password: PASSWORD.to_owned(),
        case_schema: Schema::case(),
        contact_schema: Schema::contact(),
        schema_changed: chrono::Utc::now(),
        default_case_owner: DEFAULT_CASE_OWNER.to_owned(),
        view_setup: true,
        ..OrgState::default()
    };
    let org = Arc::new(FakeOrg {
        instance_url: options.instance_url.unwrap_or_else(|| base_url.clone()),
        base_url: base_url.clone(),
        jwt_key,
        state: Mutex::new(state),
        in_flight: AtomicUsize::new(0),
        max_in_flight: AtomicUsize::new(0),
    });
    let app = Router::new()
        .route("/services/oauth2/token", post(token_endpoint))
        .route("/services/data/{*rest}", any(data_api))
        .fallback(unknown_path)
        .with_state(org.clone());
    tokio::spawn(async move {
        let service = app.into_make_service_with_connect_info::<Kill>();
        if let Err(error) = axum::serve(KillableListener(listener), service).await {
            eprintln!("fake salesforce stopped: {error}");
        }
    });
    FakeSalesforce { base_url, org }
}

/// A scripted fault, consumed by the next admitted data call (FIFO).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// `503 SERVER_UNAVAILABLE`; nothing applied.
    Status503,
    /// `500 UNKNOWN_EXCEPTION`; nothing applied.
    Status500,
    /// The connection is closed before any byte of the answer; nothing applied.
    DropConnection,
    /// The request is processed (writes applied), then answered `503`.
    AppliedThen503,
    /// The request is processed (writes applied), then the connection is closed.
    AppliedThenDrop,
    /// `401 INVALID_SESSION_ID`; the token used is revoked for good. Not counted.
    InvalidSession,
    /// `403 REQUEST_LIMIT_EXCEEDED` "TotalRequests Limit exceeded."; not counted.
    TotalRequestsLimit,
    /// `403 REQUEST_LIMIT_EXCEEDED` "ConcurrentPerOrgLongTxn Limit exceeded"; nothing applied.
    ConcurrentLongTxn,
    /// The record about this external id fails with this error: alone in a collections request
    /// (the others are applied unless `allOrNone`), as a `400` in a single-record write. Also
    /// hits an update by id of the Case holding that external id.
    RecordError {
        /// External id value of the record that fails.
        external_id: String,
        /// Salesforce `statusCode`, e.g. `FIELD_CUSTOM_VALIDATION_EXCEPTION`.
        status_code: String,
        /// Error message.
        message: String,
        /// Fields named by the error.
        fields: Vec<String>,
    },
    /// A request-level error array, e.g. `403 API_DISABLED_FOR_ORG`; nothing applied; counted
    /// unless `status` is 401.
    RequestError {
        /// HTTP status.
        status: u16,
        /// Salesforce `errorCode`.
        error_code: String,
        /// Error message.
        message: String,
    },
    /// A proxy's non-JSON page (e.g. HTML 403 or 502), no `Sforce-Limit-Info`; not counted.
    NonJson {
        /// HTTP status.
        status: u16,
        /// `Content-Type`, e.g. `text/html`.
        content_type: String,
        /// Body text.
        body: String,
    },
    /// A 3xx with a `Location` header and no body, no `Sforce-Limit-Info`; not counted.
    Redirect {
        /// HTTP status, e.g. 302.
        status: u16,
        /// `Location` header value.
        location: String,
    },
}

/// Kinds of random fault for [`FakeOrg::set_random_faults`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// As [`Fault::Status503`].
    Status503,
    /// As [`Fault::Status500`].
    Status500,
    /// As [`Fault::DropConnection`].
    DropConnection,
    /// As [`Fault::AppliedThen503`].
    AppliedThen503,
    /// As [`Fault::AppliedThenDrop`].
    AppliedThenDrop,
    /// `UNABLE_TO_LOCK_ROW` on one random record of the call's first write (the others are
    /// applied unless `allOrNone`); a single-record write answers `400`. No effect on reads.
    UnableToLockRow,
    /// As [`Fault::ConcurrentLongTxn`].
    ConcurrentLongTxn,
}

/// Salesforce's org-wide default for Cases, `Organization.DefaultCaseAccess`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CaseAccess {
    /// `None`: Private; the integration user sees and edits only the Cases it owns (plus what
    /// View All, Modify All or the sharing rule grant).
    Private,
    /// `Read`: Public Read Only.
    Read,
    /// `Edit`: Public Read/Write.
    Edit,
    /// `ReadEditTransfer`: Public Read/Write/Transfer, the fake's default.
    #[default]
    ReadEditTransfer,
}

impl CaseAccess {
    /// The value `SELECT DefaultCaseAccess FROM Organization` answers.
    pub fn api_value(self) -> &'static str {
        match self {
            CaseAccess::Private => "None",
            CaseAccess::Read => "Read",
            CaseAccess::Edit => "Edit",
            CaseAccess::ReadEditTransfer => "ReadEditTransfer",
        }
    }
}

/// The access a sharing rule grants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShareAccess {
    /// Read Only.
    Read,
    /// Read/Write.
    Edit,
}

/// The effective `Sforce-Auto-Assign` header of one request (or composite subrequest) that
/// writes Cases, in arrival order ([`FakeOrg::assign_headers`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AssignHeader {
    /// The write's kind, as in [`FakeOrg::calls_by_kind`]: `create`, `update`, `upsert`,
    /// `collections_create`, `collections_update` or `collections_upsert`.
    pub call: String,
    /// Whether it was a composite subrequest.
    pub in_composite: bool,
    /// The header's value as it applied (`None`: absent, which means `TRUE`).
    pub value: Option<String>,
}

/// One HTTP request as the fake received it (token, data and unknown paths alike).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedRequest {
    /// Method, e.g. `PATCH`.
    pub method: String,
    /// Raw (still percent-encoded) path.
    pub path: String,
    /// Raw query string, without `?`.
    pub query: Option<String>,
    /// Headers in arrival order, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// Body as text (lossy UTF-8).
    pub body: String,
}

impl RecordedRequest {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body parsed as `application/x-www-form-urlencoded` pairs (decoded).
    pub fn form(&self) -> Vec<(String, String)> {
        form_urlencoded::parse(self.body.as_bytes())
            .into_owned()
            .collect()
    }

    /// The body parsed as JSON, if it is JSON.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_str(&self.body).ok()
    }

    /// Whether this went to the OAuth token endpoint.
    pub fn is_token_request(&self) -> bool {
        self.path == "/services/oauth2/token"
    }
}

/// The org's state and the knobs tests turn. Shared by the server and the test.
pub struct FakeOrg {
    base_url: String,
    instance_url: String,
    jwt_key: Option<jsonwebtoken::DecodingKey>,
    state: Mutex<OrgState>,
    /// Data requests being served now, and the most seen at once.
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

impl FakeOrg {
    /// Queue a fault for the next admitted data call (FIFO, one fault per call).
    pub fn push_fault(&self, fault: Fault) {
        self.lock().faults.push_back(fault);
    }

    /// When no scripted fault is queued, each data call fails with probability `rate`, the kind
    /// drawn uniformly from `mix` by a `StdRng` seeded with `seed` (same seed and calls, same
    /// faults). `rate <= 0` or an empty `mix` disables random faults.
    pub fn set_random_faults(&self, rate: f64, mix: Vec<FaultKind>, seed: u64) {
        let rng = StdRng::seed_from_u64(seed);
        self.lock().random = (rate > 0.0 && !mix.is_empty()).then_some((rate, mix, rng));
    }

    /// Drop every queued fault and stop random faults.
    pub fn clear_faults(&self) {
        let mut state = self.lock();
        state.faults.clear();
        state.random = None;
    }

    /// Every token issued so far now answers `401 INVALID_SESSION_ID`; new grants work.
    pub fn expire_all_tokens(&self) {
        self.lock()
            .tokens
            .values_mut()
            .for_each(|valid| *valid = false);
    }

    /// Once `api_calls() >= n`, data calls answer `403 TotalRequests`.
    pub fn set_daily_limit(&self, n: u64) {
        self.lock().daily_limit = n;
    }

    /// The current daily limit.
    pub fn daily_limit(&self) -> u64 {
        self.lock().daily_limit
    }

    /// Change the latency added to every data call.
    pub fn set_latency(&self, latency: Option<Duration>) {
        self.lock().latency = latency;
    }

    /// While `yes`, every grant answers `400 invalid_grant` "authentication failure".
    pub fn reject_credentials(&self, yes: bool) {
        self.lock().reject_credentials = yes;
    }

    /// From now on the password grant accepts only `pw`; tokens already issued stay valid.
    pub fn set_accepted_password(&self, pw: &str) {
        self.lock().accepted_password = pw.to_owned();
    }

    /// Issue a valid access token directly, as if a grant had happened (not counted).
    pub fn issue_token(&self) -> String {
        self.lock().new_token()
    }

    /// Every stored Case, in creation order, with `Id`, `CaseNumber` and its fields.
    pub fn cases(&self) -> Vec<Value> {
        self.lock()
            .db
            .cases
            .iter()
            .map(|c| Value::Object(c.clone()))
            .collect()
    }

    /// The Case with this external id (case-insensitive, as the unique index).
    pub fn case(&self, external_id: &str) -> Option<Value> {
        let state = self.lock();
        let index = state.db.by_ext(external_id)?;
        Some(Value::Object(state.db.cases[index].clone()))
    }

    /// The Case with this 15- or 18-character id.
    pub fn case_by_id(&self, id: &str) -> Option<Value> {
        let state = self.lock();
        let index = state.db.by_id(Obj::Case, id)?;
        Some(Value::Object(state.db.cases[index].clone()))
    }

    /// Number of stored Cases.
    pub fn case_count(&self) -> usize {
        self.lock().db.cases.len()
    }

    /// Store a Contact, as an admin would (not an API call), and return its id.
    ///
    /// # Panics
    /// If `fields` is not a valid Contact (unknown field, no LastName, …).
    pub fn add_contact(&self, fields: Value) -> String {
        let Value::Object(raw) = fields else {
            panic!("add_contact wants an object")
        };
        let mut state = self.lock();
        let fields = validate(&state.contact_schema, Obj::Contact, raw, Mode::Insert)
            .unwrap_or_else(|e| panic!("{e:?}"));
        let id = state.db.insert(Obj::Contact, fields);
        id.expect("a Contact has no unique field")
    }

    /// Apply an agent's edit to the Case with this id or external id: only these fields change.
    /// Not an API call. The agent is not the integration user: sharing, field-level access and
    /// assignment do not apply (fields must still exist and hold valid values).
    ///
    /// # Panics
    /// If there is no such Case or the fields are invalid.
    pub fn edit_case(&self, id_or_external_id: &str, fields: Value) {
        let Value::Object(raw) = fields else {
            panic!("edit_case wants an object")
        };
        let mut state = self.lock();
        let fields = validate(&state.case_schema, Obj::Case, raw, Mode::Agent)
            .unwrap_or_else(|e| panic!("{e:?}"));
        let db = &mut state.db;
        let found = db
            .by_id(Obj::Case, id_or_external_id)
            .or_else(|| db.by_ext(id_or_external_id));
        let index = found.unwrap_or_else(|| panic!("no Case {id_or_external_id}"));
        db.update(Obj::Case, index, fields)
            .unwrap_or_else(|e| panic!("{e:?}"));
    }

    /// An agent (or a supervisor) gives the Case with this id or external id to `owner`, a user
    /// (`005…`) or queue (`00G…`). Not an API call; sharing does not apply.
    ///
    /// # Panics
    /// If there is no such Case or `owner` is no user or queue id.
    pub fn assign_case(&self, id_or_external_id: &str, owner: &str) {
        self.edit_case(id_or_external_id, json!({ "OwnerId": owner }));
    }

    // -- Schema ----------------------------------------------------------------------------

    fn change_schema(&self, change: impl FnOnce(&mut Schema)) {
        let mut state = self.lock();
        change(&mut state.case_schema);
        state.schema_changed = chrono::Utc::now();
    }

    /// The Case fields as the integration user sees them (what describe lists).
    pub fn case_schema(&self) -> Vec<Field> {
        self.lock().case_schema.fields.clone()
    }

    /// Add `field` to the Case schema, or replace the field of that name.
    pub fn set_case_field(&self, field: Field) {
        self.change_schema(|schema| {
            match schema
                .fields
                .iter_mut()
                .find(|f| f.name.eq_ignore_ascii_case(&field.name))
            {
                Some(old) => *old = field,
                None => schema.fields.push(field),
            }
        });
    }

    /// Field `name` is gone for the integration user (not deployed, or hidden by field-level
    /// security): absent from describe, `INVALID_FIELD` in writes and queries. Stored values
    /// stay (and the external id's unique index keeps working, as a real index does).
    ///
    /// # Panics
    /// If the Case schema has no such field.
    pub fn remove_case_field(&self, name: &str) {
        self.change_schema(|schema| {
            schema.field_mut(name);
            schema.fields.retain(|f| !f.name.eq_ignore_ascii_case(name));
        });
    }

    /// Field-level security lets the integration user see field `name` but create or update it
    /// only as given: describe shows these flags; a write setting it otherwise fails the record
    /// with `INVALID_FIELD_FOR_INSERT_UPDATE` "Unable to create/update fields: F. Please check
    /// the security settings of this field…".
    ///
    /// # Panics
    /// If the Case schema has no such field.
    pub fn set_case_field_access(&self, name: &str, createable: bool, updateable: bool) {
        self.change_schema(|schema| {
            let field = schema.field_mut(name);
            (field.createable, field.updateable) = (createable, updateable);
        });
    }

    /// Picklist `name` now has exactly `values` (e.g. Status without `New`); `restricted`
    /// refuses any other value with `INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST`. The default value
    /// stays if still listed, else the first value becomes the default (a Status picklist always
    /// has one); other picklists without a default keep none.
    ///
    /// # Panics
    /// If the Case schema has no such field or it is not a picklist.
    pub fn set_picklist(&self, name: &str, values: &[&str], restricted: bool) {
        self.change_schema(|schema| {
            let field = schema.field_mut(name);
            let old = match &field.ty {
                FieldType::Picklist { default, .. } => default.clone(),
                other => panic!("{name} is a {other:?}, not a picklist"),
            };
            let kept = old.filter(|d| values.contains(&d.as_str()));
            let first = values.first().map(|v| v.to_string());
            let default = if field.defaulted_on_create {
                kept.or(first)
            } else {
                kept
            };
            field.ty = FieldType::picklist(values, restricted, default.as_deref());
        });
    }

    /// Text field `name` now holds at most `n` characters (`STRING_TOO_LONG` beyond).
    ///
    /// # Panics
    /// If the Case schema has no such field or it is not a text field.
    pub fn set_field_length(&self, name: &str, n: usize) {
        self.change_schema(|schema| {
            let field = schema.field_mut(name);
            match &mut field.ty {
                FieldType::Text(max) | FieldType::TextArea(max) | FieldType::Email(max) => *max = n,
                other => panic!("{name} is a {other:?}, not text"),
            }
        });
    }

    /// Deploy a custom Case field `name` of type `ty` (as [`Field::new`] makes it). `required`:
    /// not nillable (and, being createable and not defaulted, a create without it fails with
    /// `REQUIRED_FIELD_MISSING`).
    pub fn add_case_field(&self, name: &str, ty: FieldType, required: bool) {
        let field = Field {
            nillable: !required,
            ..Field::new(name, ty)
        };
        self.set_case_field(field);
    }

    /// Add a Case record type (`012…`, 18 characters). The Case then has a `RecordTypeId` field;
    /// a create without it gets the first available record type; a write naming an unavailable
    /// (or unknown) one fails the record with `INVALID_CROSS_REFERENCE_KEY`.
    pub fn add_record_type(&self, id: &str, name: &str, available: bool) {
        self.change_schema(|schema| {
            schema.record_types.push(RecordType {
                id: id.to_owned(),
                name: name.to_owned(),
                available,
            });
            if schema.field("RecordTypeId").is_none() {
                let field = Field::new("RecordTypeId", FieldType::reference(&["012"]));
                schema.fields.push(field.defaulted());
            }
        });
    }

    /// Undo every schema change: the Case of a fresh org, no record types.
    pub fn reset_case_schema(&self) {
        self.change_schema(|schema| *schema = Schema::case());
    }

    /// When the Case schema last changed (start, or the last setter): describe answers `304`
    /// to an `If-Modified-Since` at or after this second.
    pub fn schema_changed_at(&self) -> SystemTime {
        self.lock().schema_changed.into()
    }

    // -- Assignment ------------------------------------------------------------------------

    /// `Some((rule_id, name, queue_id))`: the org's only active Case assignment rule is this one
    /// (`01Q…`), which gives every Case it runs on to the queue (`00G…`); other rules become
    /// inactive (an id header can still run them). `None`: no rule is active (assignment then
    /// gives Cases to the Default Case Owner).
    pub fn set_assignment_rule(&self, rule: Option<(&str, &str, &str)>) {
        let mut state = self.lock();
        state.rules.iter_mut().for_each(|r| r.active = false);
        if let Some((id, name, queue)) = rule {
            state.rules.retain(|r| r.id != id);
            state.rules.push(Rule {
                id: id.to_owned(),
                name: name.to_owned(),
                queue: queue.to_owned(),
                active: true,
            });
        }
    }

    /// Support Settings' Default Case Owner (a user or queue id); [`DEFAULT_CASE_OWNER`] at
    /// start.
    pub fn set_default_case_owner(&self, owner: &str) {
        self.lock().default_case_owner = owner.to_owned();
    }

    /// The effective `Sforce-Auto-Assign` of every request and composite subrequest that wrote
    /// (or tried to write) Cases, in order.
    pub fn assign_headers(&self) -> Vec<AssignHeader> {
        self.lock().assign_log.clone()
    }

    // -- Sharing ---------------------------------------------------------------------------

    /// The org-wide default for Cases ([`CaseAccess::ReadEditTransfer`] at start).
    pub fn set_case_sharing(&self, access: CaseAccess) {
        self.lock().case_access = access;
    }

    /// The integration user's Case object permissions View All and Modify All (both false at
    /// start). Modify All implies read.
    pub fn set_case_object_permissions(&self, view_all: bool, modify_all: bool) {
        let mut state = self.lock();
        (state.view_all, state.modify_all) = (view_all, modify_all);
    }

    /// `Some(access)`: a criteria-based sharing rule shares every Case whose external id field
    /// is not blank with a public group the integration user belongs to. `None`: no rule.
    /// The group is [`SHARING_GROUP_ID`]; a `GroupMember` record names the user in it only
    /// while the rule is set.
    pub fn set_case_sharing_rule(&self, access: Option<ShareAccess>) {
        self.lock().sharing_rule = access;
    }

    /// Whether the integration user has "View Setup and Configuration" (true at start); without
    /// it, queries of AssignmentRule, ObjectPermissions and PermissionSetAssignment fail.
    pub fn set_view_setup(&self, yes: bool) {
        self.lock().view_setup = yes;
    }

    // -- Concurrency -----------------------------------------------------------------------

    /// The most data requests (any `/services/data/` path, counted or not) served at once since
    /// start or [`FakeOrg::reset_max_in_flight`]. A request is in flight from its arrival to its
    /// answer, latency included.
    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight.load(Ordering::SeqCst)
    }

    /// Start measuring [`FakeOrg::max_in_flight`] afresh (from those in flight now).
    pub fn reset_max_in_flight(&self) {
        let now = self.in_flight.load(Ordering::SeqCst);
        self.max_in_flight.store(now, Ordering::SeqCst);
    }

    /// For each external id, how many Cases were *created* with it (at most 1: it is unique).
    pub fn creates_per_external_id(&self) -> HashMap<String, u32> {
        self.lock().db.creates.clone()
    }

    /// Every call to the token endpoint, successful or not.
    pub fn token_requests(&self) -> u64 {
        self.lock().token_requests
    }

    /// Successful token grants.
    pub fn token_grants(&self) -> u64 {
        self.lock().token_grants
    }

    /// Data API calls counted against the daily limit (see the module doc, "Accounting").
    pub fn api_calls(&self) -> u64 {
        self.lock().api_calls
    }

    /// Counted data calls by kind: `create`, `retrieve`, `describe`, `update`, `upsert`,
    /// `collections_create`, `collections_update`, `collections_upsert`, `query`, `search`,
    /// `composite`, `other`. The values add up to [`FakeOrg::api_calls`].
    pub fn calls_by_kind(&self) -> BTreeMap<String, u64> {
        self.lock().calls.clone()
    }

    /// Every request received, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.lock().requests.clone()
    }

    /// Forget the recorded requests (counters and records are kept).
    pub fn clear_requests(&self) {
        self.lock().requests.clear();
    }

    /// Scripted faults not yet consumed.
    pub fn pending_faults(&self) -> usize {
        self.lock().faults.len()
    }

    /// Random faults injected so far, by kind (the [`FaultKind`]'s `Debug` name).
    pub fn random_faults_injected(&self) -> BTreeMap<String, u64> {
        self.lock().injected.clone()
    }

    fn lock(&self) -> MutexGuard<'_, OrgState> {
        // A panicking test thread must not wedge the server for the others.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

// ---------------------------------------------------------------------------------------------
// State, schema and records
// ---------------------------------------------------------------------------------------------

type Record = Map<String, Value>;

#[derive(Default)]
struct OrgState {
    db: Db,
    /// Issued tokens; `false` once expired or revoked.
    tokens: HashMap<String, bool>,
    token_requests: u64,
    token_grants: u64,
    api_calls: u64,
    calls: BTreeMap<String, u64>,
    daily_limit: u64,
    latency: Option<Duration>,
    faults: VecDeque<Fault>,
    random: Option<(f64, Vec<FaultKind>, StdRng)>,
    injected: BTreeMap<String, u64>,
    reject_credentials: bool,
    accepted_password: String,
    requests: Vec<RecordedRequest>,
    /// Set while a composite request with `allOrNone: true` runs: it overrides its collections'.
    composite_all_or_none: bool,
    /// Token suffixes and signatures: a stream of their own, so grants never shift the faults.
    token_rng: TokenRng,
    /// The Case schema as the integration user sees it (tests change it at run time).
    case_schema: Schema,
    contact_schema: Schema,
    /// When a schema setter last ran (describe's `If-Modified-Since`).
    schema_changed: chrono::DateTime<chrono::Utc>,
    /// Case assignment rules; at most one active.
    rules: Vec<Rule>,
    /// Support Settings' Default Case Owner.
    default_case_owner: String,
    /// The effective `Sforce-Auto-Assign` of the (sub)request being processed.
    assign_header: Option<String>,
    /// Set while a composite request's subrequests run.
    in_composite: bool,
    assign_log: Vec<AssignHeader>,
    case_access: CaseAccess,
    view_all: bool,
    modify_all: bool,
    sharing_rule: Option<ShareAccess>,
    view_setup: bool,
}

struct TokenRng(StdRng);

impl Default for TokenRng {
    fn default() -> Self {
        TokenRng(StdRng::seed_from_u64(0x5EED_F00D))
    }
}

/// The records; cloned to roll back an `allOrNone` request.
#[derive(Clone, Default)]
struct Db {
    cases: Vec<Record>,
    contacts: Vec<Record>,
    creates: HashMap<String, u32>,
    /// The unique index: lower-cased external id → position in `cases`.
    by_ext: HashMap<String, usize>,
    serial: u64,
    case_numbers: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Obj {
    Case,
    Contact,
}

/// A field's data type, as describe names it (`FieldType::describe_name`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FieldType {
    /// `id`: the record id; read-only.
    Id,
    /// `string` of at most this many characters (`STRING_TOO_LONG` beyond).
    Text(usize),
    /// `textarea` of at most this many characters.
    TextArea(usize),
    /// `email` of at most this many characters.
    Email(usize),
    /// `picklist`: `values` in order; a `restricted` one refuses any other value with
    /// `INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST`; `default` is set on create when absent.
    Picklist {
        /// The active values.
        values: Vec<String>,
        /// Whether values outside `values` are refused.
        restricted: bool,
        /// The value a create without the field gets.
        default: Option<String>,
    },
    /// `reference` to records whose ids start with one of these key prefixes (`MALFORMED_ID`
    /// otherwise), e.g. `["005", "00G"]` for an owner (user or queue).
    Reference(Vec<String>),
    /// `datetime`.
    DateTime,
    /// `string` with `autoNumber`: read-only, numbered by the org.
    AutoNumber,
    /// `string` with `calculated` (a formula): read-only.
    Formula,
}

impl FieldType {
    /// The name describe gives the type.
    pub fn describe_name(&self) -> &'static str {
        match self {
            FieldType::Id => "id",
            FieldType::Text(_) | FieldType::AutoNumber | FieldType::Formula => "string",
            FieldType::TextArea(_) => "textarea",
            FieldType::Email(_) => "email",
            FieldType::Picklist { .. } => "picklist",
            FieldType::Reference(_) => "reference",
            FieldType::DateTime => "datetime",
        }
    }

    /// A picklist of these values.
    pub fn picklist(values: &[&str], restricted: bool, default: Option<&str>) -> FieldType {
        FieldType::Picklist {
            values: values.iter().map(|v| v.to_string()).collect(),
            restricted,
            default: default.map(str::to_owned),
        }
    }

    /// A reference to records with these key prefixes.
    pub fn reference(prefixes: &[&str]) -> FieldType {
        FieldType::Reference(prefixes.iter().map(|p| p.to_string()).collect())
    }
}

/// One field of an object's schema, with the properties describe reports. Field-level
/// security is folded in: a field the integration user cannot see is not in the schema, one it
/// cannot edit has `createable`/`updateable` false.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    /// API name, e.g. `Subject`.
    pub name: String,
    /// Data type.
    pub ty: FieldType,
    /// Whether a create may set it (`INVALID_FIELD_FOR_INSERT_UPDATE` otherwise).
    pub createable: bool,
    /// Whether an update may set it (`INVALID_FIELD_FOR_INSERT_UPDATE` otherwise).
    pub updateable: bool,
    /// Whether it may be null.
    pub nillable: bool,
    /// Whether the org fills it on create when absent (OwnerId, Status, …).
    pub defaulted_on_create: bool,
    /// Unique (shown by describe; the org's unique index is the external id field's).
    pub unique: bool,
    /// External ID (usable in upsert URLs).
    pub external_id: bool,
    /// Case-sensitive uniqueness (shown by describe).
    pub case_sensitive: bool,
}

impl Field {
    /// A createable, updateable, nillable field of type `ty`; an id, auto-number or formula
    /// field is read-only instead (auto-numbers are also defaulted on create).
    pub fn new(name: &str, ty: FieldType) -> Field {
        let read_only = matches!(
            ty,
            FieldType::Id | FieldType::AutoNumber | FieldType::Formula
        );
        let numbered = matches!(ty, FieldType::Id | FieldType::AutoNumber);
        Field {
            name: name.to_owned(),
            ty,
            createable: !read_only,
            updateable: !read_only,
            nillable: true,
            defaulted_on_create: numbered,
            unique: false,
            external_id: false,
            case_sensitive: false,
        }
    }

    /// A field the org maintains: read-only, never null, set on create.
    fn system(name: &str, ty: FieldType) -> Field {
        Field {
            createable: false,
            updateable: false,
            nillable: false,
            defaulted_on_create: true,
            ..Field::new(name, ty)
        }
    }

    /// Not nillable, set by the org on create when absent.
    fn defaulted(self) -> Field {
        Field {
            nillable: false,
            defaulted_on_create: true,
            ..self
        }
    }

    /// Whether describe calls it `calculated`.
    pub fn calculated(&self) -> bool {
        self.ty == FieldType::Formula
    }

    /// Whether describe calls it `autoNumber`.
    pub fn auto_number(&self) -> bool {
        self.ty == FieldType::AutoNumber
    }

    /// Whether a create must set it: createable and neither nillable, defaulted on create,
    /// calculated nor auto-number (the wire doc's rule for reading describe).
    pub fn required_on_create(&self) -> bool {
        let org_filled = self.defaulted_on_create || self.calculated() || self.auto_number();
        self.createable && !self.nillable && !org_filled
    }

    /// Fields nobody edits, not even an agent in the UI.
    fn system_managed(&self) -> bool {
        let stamps = ["CreatedDate", "LastModifiedDate"];
        matches!(
            self.ty,
            FieldType::Id | FieldType::AutoNumber | FieldType::Formula
        ) || stamps.contains(&self.name.as_str())
    }

    /// Describe's `length`: the text limit; 18 for ids; 255 for picklists; else 0.
    fn length(&self) -> usize {
        match &self.ty {
            FieldType::Text(n) | FieldType::TextArea(n) | FieldType::Email(n) => *n,
            FieldType::Id | FieldType::Reference(_) => 18,
            FieldType::Picklist { .. } | FieldType::Formula => 255,
            FieldType::AutoNumber => 30,
            FieldType::DateTime => 0,
        }
    }

    /// The label of a reference field in Salesforce's messages: `OwnerId` → `Owner ID`.
    fn id_label(&self) -> String {
        let name = self.name.as_str();
        match name.strip_suffix("Id") {
            Some(base) if !base.is_empty() => format!("{base} ID"),
            _ => name.to_owned(),
        }
    }

    /// One entry of describe's `fields`.
    fn describe(&self) -> Value {
        let (values, restricted) = match &self.ty {
            FieldType::Picklist {
                values,
                restricted,
                default,
            } => {
                let entry = |v: &String| {
                    let is_default = default.as_ref() == Some(v);
                    json!({"value": v, "label": v, "active": true, "defaultValue": is_default})
                };
                (values.iter().map(entry).collect(), *restricted)
            }
            _ => (Vec::new(), false),
        };
        let reference_to: Vec<&str> = match &self.ty {
            FieldType::Reference(prefixes) => {
                prefixes.iter().filter_map(|p| object_of(p)).collect()
            }
            _ => Vec::new(),
        };
        json!({
            "name": self.name,
            "label": self.name,
            "type": self.ty.describe_name(),
            "length": self.length(),
            "createable": self.createable,
            "updateable": self.updateable,
            "nillable": self.nillable,
            "defaultedOnCreate": self.defaulted_on_create,
            "calculated": self.calculated(),
            "autoNumber": self.auto_number(),
            "unique": self.unique,
            "externalId": self.external_id,
            "caseSensitive": self.case_sensitive,
            "custom": self.name.ends_with("__c"),
            "picklistValues": values,
            "restrictedPicklist": restricted,
            "referenceTo": reference_to,
        })
    }
}

/// The object a key prefix belongs to, for describe's `referenceTo`.
fn object_of(prefix: &str) -> Option<&'static str> {
    let known = [
        ("001", "Account"),
        ("003", "Contact"),
        ("005", "User"),
        ("00G", "Group"),
        ("012", "RecordType"),
    ];
    known.iter().find(|(p, _)| *p == prefix).map(|(_, o)| *o)
}

/// A Case record type, for describe's `recordTypeInfos` and `RecordTypeId` checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordType {
    /// Its id (`012…`, 18 characters).
    pub id: String,
    /// Its name.
    pub name: String,
    /// Whether the integration user's profile may use it.
    pub available: bool,
}

/// The master record type every object has.
pub const MASTER_RECORD_TYPE_ID: &str = "012000000000000AAA";

/// An object's fields and record types as the integration user sees them.
#[derive(Clone, Debug, Default)]
struct Schema {
    fields: Vec<Field>,
    record_types: Vec<RecordType>,
}

impl Schema {
    /// The Case of a fresh org with the metadata in salesforce/force-app deployed.
    fn case() -> Schema {
        let text = |name: &str, n| Field::new(name, FieldType::Text(n));
        let restricted = |name: &str, values: &[&str], default| {
            Field::new(name, FieldType::picklist(values, true, default))
        };
        let open = |name: &str, values: &[&str]| {
            Field::new(name, FieldType::picklist(values, false, None))
        };
        let reference =
            |name: &str, prefixes: &[&str]| Field::new(name, FieldType::reference(prefixes));
        let fields = vec![
            Field::system("Id", FieldType::Id),
            Field::system("CaseNumber", FieldType::AutoNumber),
            Field::system("CreatedDate", FieldType::DateTime),
            Field::system("LastModifiedDate", FieldType::DateTime),
            text("Subject", 255),
            Field::new("Description", FieldType::TextArea(32_000)),
            restricted("Origin", ORIGINS, None),
            restricted("Status", STATUSES, Some("New")).defaulted(),
            open("Priority", &["High", "Medium", "Low"]),
            text("SuppliedPhone", 40),
            text("SuppliedName", 80),
            Field::new("SuppliedEmail", FieldType::Email(80)),
            open(
                "Type",
                &[
                    "Mechanical",
                    "Electrical",
                    "Electronic",
                    "Structural",
                    "Other",
                ],
            ),
            open(
                "Reason",
                &[
                    "Installation",
                    "Equipment Complexity",
                    "Performance",
                    "Breakdown",
                    "Equipment Design",
                    "Feedback",
                    "Other",
                ],
            ),
            reference("ContactId", &["003"]),
            reference("AccountId", &["001"]),
            reference("OwnerId", &["005", "00G"]).defaulted(),
            // The fields of the org metadata in salesforce/force-app (deployed in this org).
            Field {
                unique: true,
                external_id: true,
                ..text(EXTERNAL_ID_FIELD, 36)
            },
            Field::new(LAST_UPDATE_FIELD, FieldType::DateTime),
            text(OUTCOME_FIELD, 40),
        ];
        Schema {
            fields,
            record_types: Vec::new(),
        }
    }

    fn contact() -> Schema {
        let text = |name: &str, n| Field::new(name, FieldType::Text(n));
        let fields = vec![
            Field::system("Id", FieldType::Id),
            Field::system("CreatedDate", FieldType::DateTime),
            Field::system("LastModifiedDate", FieldType::DateTime),
            text("FirstName", 40),
            Field {
                nillable: false,
                ..text("LastName", 80)
            },
            text("Phone", 40),
            text("MobilePhone", 40),
            Field::new("AccountId", FieldType::reference(&["001"])),
        ];
        Schema {
            fields,
            record_types: Vec::new(),
        }
    }

    /// Field `key` (case-insensitive). Custom fields exist only as the org defines them: any
    /// other `…__c` is unknown, as in a real org.
    fn field(&self, key: &str) -> Option<&Field> {
        self.fields
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(key))
    }

    fn field_mut(&mut self, key: &str) -> &mut Field {
        let found = self
            .fields
            .iter_mut()
            .find(|f| f.name.eq_ignore_ascii_case(key));
        found.unwrap_or_else(|| panic!("the Case schema has no field {key}"))
    }

    /// The record type a create gets: the first available one, else the master.
    fn default_record_type(&self) -> &str {
        let available = self.record_types.iter().find(|r| r.available);
        available.map_or(MASTER_RECORD_TYPE_ID, |r| r.id.as_str())
    }

    /// Whether the user may give a record this record type.
    fn record_type_ok(&self, id: &str) -> bool {
        let custom = self
            .record_types
            .iter()
            .any(|r| r.available && same_id(&r.id, id));
        let master =
            same_id(MASTER_RECORD_TYPE_ID, id) && !self.record_types.iter().any(|r| r.available);
        custom || master
    }

    /// describe's `recordTypeInfos`: the master, then the others.
    fn record_type_infos(&self) -> Vec<Value> {
        let default = self.default_record_type();
        let info = |id: &str, name: &str, available: bool, master: bool| {
            json!({
                "recordTypeId": id,
                "name": name,
                "developerName": name.replace(' ', "_"),
                "available": available,
                "active": true,
                "master": master,
                "defaultRecordTypeMapping": same_id(default, id),
            })
        };
        let others = !self.record_types.iter().any(|r| r.available);
        let mut infos = vec![info(MASTER_RECORD_TYPE_ID, "Master", others, true)];
        infos.extend(
            self.record_types
                .iter()
                .map(|r| info(&r.id, &r.name, r.available, false)),
        );
        infos
    }
}

impl Obj {
    fn parse(name: &str) -> Option<Obj> {
        let all = [Obj::Case, Obj::Contact];
        all.into_iter()
            .find(|o| o.name().eq_ignore_ascii_case(name))
    }

    fn name(self) -> &'static str {
        ["Case", "Contact"][self as usize]
    }

    fn prefix(self) -> &'static str {
        ["500", "003"][self as usize]
    }
}

/// A 15- or 18-character alphanumeric id with this key prefix (`""`: any).
fn is_id(id: &str, prefix: &str) -> bool {
    let alphanumeric = id.bytes().all(|b| b.is_ascii_alphanumeric());
    matches!(id.len(), 15 | 18) && id.starts_with(prefix) && alphanumeric
}

/// Whether the stored 18-character `id` is `given` (15 characters: case-sensitive; 18: not).
fn same_id(id: &str, given: &str) -> bool {
    match given.len() {
        15 => id.get(..15) == Some(given),
        _ => id.eq_ignore_ascii_case(given),
    }
}

fn get_ci<'a>(record: &'a Record, name: &str) -> Option<&'a Value> {
    let mut fields = record.iter();
    fields
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

fn text_of<'a>(record: &'a Record, name: &str) -> Option<&'a str> {
    record.get(name).and_then(Value::as_str)
}

/// Salesforce's DateTime output, e.g. `2013-05-03T15:57:00.000+0000` (REST docs' examples).
fn sf_time(at: chrono::DateTime<chrono::Utc>) -> Value {
    json!(at.format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string())
}

/// A DateTime as REST "Valid Date and DateTime Formats" documents it,
/// `yyyy-MM-ddTHH:mm:ss[.SSS](Z|±HH:mm)`, in Salesforce's output format; else `None`.
fn parse_time(text: &str) -> Option<Value> {
    let digit = |c: char| if c.is_ascii_digit() { 'd' } else { c };
    let shape: String = text.chars().map(digit).collect();
    let zone = shape.strip_prefix("dddd-dd-ddTdd:dd:dd")?;
    let zone = zone.strip_prefix(".ddd").unwrap_or(zone);
    ["Z", "+dd:dd", "-dd:dd"].contains(&zone).then_some(())?;
    let at = chrono::DateTime::parse_from_rfc3339(text).ok()?;
    Some(sf_time(at.to_utc()))
}

/// One per-record error: `(statusCode, message, fields)`.
#[derive(Clone, Debug)]
struct RecErr(String, String, Vec<String>);

impl RecErr {
    fn new(code: &str, message: impl Into<String>, fields: &[&str]) -> Self {
        let fields = fields.iter().map(|f| f.to_string()).collect();
        RecErr(code.into(), message.into(), fields)
    }

    fn to_json(&self) -> Value {
        json!({"statusCode": self.0, "message": self.1, "fields": self.2})
    }

    fn lock_row() -> Self {
        let message = "unable to obtain exclusive access to this record or 1 records";
        Self::new("UNABLE_TO_LOCK_ROW", message, &[])
    }

    /// A unique-field clash, worded as Salesforce does: 15-character id, no fields.
    fn duplicate(id: &str) -> Self {
        let id = id.get(..15).unwrap_or(id);
        let field = EXTERNAL_ID_FIELD;
        let message =
            format!("duplicate value found: {field} duplicates value on record with id: {id}");
        Self::new("DUPLICATE_VALUE", message, &[])
    }
}

/// A request-level problem (answered as is) or per-record problems.
#[derive(Debug)]
enum Invalid {
    Request(Answer),
    Record(Vec<RecErr>),
}

const READ_ONLY: &str = "Please check the security settings of this field and verify that it is read/write for your profile or permission set.";

/// Who writes: the integration user creating or updating through the API, or an agent in the
/// UI (test helpers), whom the integration user's field-level security does not bind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Insert,
    Update,
    Agent,
}

fn required_missing(names: &[&str]) -> RecErr {
    let message = format!("Required fields are missing: [{}]", names.join(", "));
    RecErr::new("REQUIRED_FIELD_MISSING", message, names)
}

/// The error, if any, of `text` in `field`.
fn field_error(field: &Field, text: Option<&str>, mode: Mode) -> Option<RecErr> {
    let name = field.name.as_str();
    let error = |code, message: String| Some(RecErr::new(code, message, &[name]));
    let shown = text.unwrap_or("null");
    let allowed = match mode {
        Mode::Insert => field.createable,
        Mode::Update => field.updateable,
        Mode::Agent => !field.system_managed(),
    };
    if field.ty == FieldType::Id && mode == Mode::Insert {
        let message = "cannot specify Id in an insert call".to_owned();
        return error("INVALID_FIELD_FOR_INSERT_UPDATE", message);
    }
    if !allowed {
        let message = format!("Unable to create/update fields: {name}. {READ_ONLY}");
        return error("INVALID_FIELD_FOR_INSERT_UPDATE", message);
    }
    let too_long = |max: usize| text.is_some_and(|t| max > 0 && t.chars().count() > max);
    match &field.ty {
        FieldType::Picklist {
            values,
            restricted: true,
            ..
        } if text.map_or(!field.nillable, |t| !values.iter().any(|v| v == t)) => {
            let message = format!("{name}: bad value for restricted picklist field: {shown}");
            error("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", message)
        }
        _ if text.is_none() && !field.nillable => Some(required_missing(&[name])),
        FieldType::Text(max) | FieldType::TextArea(max) | FieldType::Email(max)
            if too_long(*max) =>
        {
            let preview: String = shown.chars().take(20).collect();
            let message = format!("{name}: data value too large: {preview}... (max length={max})");
            error("STRING_TOO_LONG", message)
        }
        FieldType::Picklist { .. } if too_long(255) => {
            let preview: String = shown.chars().take(20).collect();
            let message = format!("{name}: data value too large: {preview}... (max length=255)");
            error("STRING_TOO_LONG", message)
        }
        FieldType::Reference(prefixes)
            if text.is_some_and(|t| !prefixes.iter().any(|p| is_id(t, p))) =>
        {
            let message = format!("{}: id value of incorrect type: {shown}", field.id_label());
            error("MALFORMED_ID", message)
        }
        _ => None,
    }
}

/// Check one record's fields like an org with this schema; canonical names on success, with
/// the org's defaults filled in on create (picklist defaults, record type). An unknown field
/// (not deployed, or hidden by field-level security) fails the whole request: it is a
/// deserialization error, before any record is looked at (wire doc: `INVALID_FIELD`, "whole
/// request"; the sObject Collections pages: a request that "isn't well formed" answers 400,
/// per-record errors come only with a 200).
fn validate(
    schema: &Schema,
    obj: Obj,
    raw: Map<String, Value>,
    mode: Mode,
) -> Result<Record, Invalid> {
    let parser = |m: String| Err(Invalid::Request(parser_error(&m)));
    let mut errors = Vec::new();
    let mut fields = Record::new();
    for (key, mut value) in raw {
        let Some(field) = schema.field(&key) else {
            let message = format!("No such column '{key}' on sobject of type {}", obj.name());
            return Err(Invalid::Request(bad("INVALID_FIELD", &message)));
        };
        if field.ty == FieldType::DateTime && !value.is_null() {
            let Some(time) = value.as_str().and_then(parse_time) else {
                return parser(format!(
                    "Cannot deserialize instance of datetime from {value}"
                ));
            };
            value = time;
        } else if !(value.is_string() || value.is_null()) {
            return parser(format!(
                "Cannot deserialize instance of string from {value}"
            ));
        }
        let mut error = field_error(field, value.as_str(), mode);
        let record_type = field.name == "RecordTypeId";
        let given = value.as_str().filter(|_| record_type && error.is_none());
        if let Some(id) = given.filter(|id| !schema.record_type_ok(id)) {
            let message = format!("Record Type ID: this ID value isn't valid for the user: {id}");
            error = Some(RecErr::new(
                "INVALID_CROSS_REFERENCE_KEY",
                message,
                &["RecordTypeId"],
            ));
        }
        errors.extend(error);
        fields.insert(field.name.clone(), value);
    }
    let blank = |f: &&Field| match fields.get(&f.name) {
        None => mode == Mode::Insert,
        Some(Value::String(s)) => s.is_empty(),
        Some(_) => false,
    };
    let missing: Vec<&str> = schema
        .fields
        .iter()
        .filter(|f| f.required_on_create())
        .filter(blank)
        .map(|f| f.name.as_str())
        .collect();
    if !missing.is_empty() {
        errors.push(required_missing(&missing));
    }
    if !errors.is_empty() {
        return Err(Invalid::Record(errors));
    }
    if mode == Mode::Insert {
        for field in &schema.fields {
            if let FieldType::Picklist {
                default: Some(default),
                ..
            } = &field.ty
            {
                fields.entry(field.name.clone()).or_insert(json!(default));
            }
        }
        if schema.field("RecordTypeId").is_some() {
            let default = schema.default_record_type();
            fields.entry("RecordTypeId").or_insert(json!(default));
        }
    }
    Ok(fields)
}

/// A checked write waiting to be applied: object, target and fields.
struct Staged(Obj, Target, Record);

enum Target {
    Insert,
    Id(String),
    Ext(String),
}

impl Db {
    fn table(&mut self, obj: Obj) -> &mut Vec<Record> {
        [&mut self.cases, &mut self.contacts]
            .into_iter()
            .nth(obj as usize)
            .unwrap()
    }

    fn by_id(&self, obj: Obj, id: &str) -> Option<usize> {
        let table = [&self.cases, &self.contacts][obj as usize];
        table
            .iter()
            .position(|r| text_of(r, "Id").is_some_and(|s| same_id(s, id)))
    }

    fn by_ext(&self, value: &str) -> Option<usize> {
        self.by_ext.get(&value.to_ascii_lowercase()).copied()
    }

    /// A unique-index clash of `fields` with a Case other than `except`.
    fn clash(&self, fields: &Record, except: Option<usize>) -> Result<(), RecErr> {
        let ext = text_of(fields, EXTERNAL_ID_FIELD);
        let other = ext
            .and_then(|e| self.by_ext(e))
            .filter(|i| Some(*i) != except);
        match other {
            Some(i) => Err(RecErr::duplicate(
                text_of(&self.cases[i], "Id").unwrap_or_default(),
            )),
            None => Ok(()),
        }
    }

    /// Store a new record. Its id ends in `AAA`, the case-safe suffix of a 15-character id
    /// without upper-case letters.
    fn insert(&mut self, obj: Obj, mut fields: Record) -> Result<String, RecErr> {
        self.clash(&fields, None)?;
        self.serial += 1;
        let id = format!("{}{:012}AAA", obj.prefix(), self.serial);
        if obj == Obj::Case {
            self.case_numbers += 1;
            let number = format!("{:08}", 1000 + self.case_numbers);
            fields.insert("CaseNumber".into(), json!(number));
        }
        if let Some(ext) = text_of(&fields, EXTERNAL_ID_FIELD) {
            *self.creates.entry(ext.to_owned()).or_default() += 1;
            self.by_ext
                .insert(ext.to_ascii_lowercase(), self.cases.len());
        }
        fields.insert("CreatedDate".into(), sf_time(chrono::Utc::now()));
        fields.insert("LastModifiedDate".into(), sf_time(chrono::Utc::now()));
        fields.insert("Id".into(), json!(id));
        self.table(obj).push(fields);
        Ok(id)
    }

    /// Change only the given fields of record `index`.
    fn update(&mut self, obj: Obj, index: usize, fields: Record) -> Result<String, RecErr> {
        self.clash(&fields, Some(index))?;
        if obj == Obj::Case && fields.contains_key(EXTERNAL_ID_FIELD) {
            if let Some(old) = text_of(&self.cases[index], EXTERNAL_ID_FIELD) {
                self.by_ext.remove(&old.to_ascii_lowercase());
            }
            if let Some(new) = text_of(&fields, EXTERNAL_ID_FIELD) {
                self.by_ext.insert(new.to_ascii_lowercase(), index);
            }
        }
        let record = &mut self.table(obj)[index];
        for (key, value) in fields {
            record.retain(|k, _| *k == key || !k.eq_ignore_ascii_case(&key));
            record.insert(key, value);
        }
        record.insert("LastModifiedDate".into(), sf_time(chrono::Utc::now()));
        Ok(text_of(record, "Id").unwrap_or_default().to_owned())
    }

    /// The external id a staged Case write is about: its own, or the targeted Case's.
    fn ext_of(&self, Staged(obj, target, fields): &Staged) -> Option<String> {
        let targeted = || match target {
            Target::Ext(value) => Some(value.as_str()),
            Target::Id(id) => text_of(&self.cases[self.by_id(Obj::Case, id)?], EXTERNAL_ID_FIELD),
            Target::Insert => None,
        };
        let ext = text_of(fields, EXTERNAL_ID_FIELD).or_else(targeted);
        ext.filter(|_| *obj == Obj::Case).map(str::to_owned)
    }
}

/// An effective `Sforce-Auto-Assign` header, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Assign {
    /// Absent or `TRUE`: the active rule, or the Default Case Owner when none is active.
    Active,
    /// `FALSE`: no assignment.
    Off,
    /// An AssignmentRule id of this org: that rule, on create.
    Rule(String),
}

/// A Case assignment rule: it always matches and gives the Case to `queue`.
#[derive(Clone, Debug)]
struct Rule {
    id: String,
    name: String,
    queue: String,
    active: bool,
}

impl OrgState {
    /// What the integration user may do with this Case: `(read, edit)`. It owns it, or the
    /// org-wide default, View All / Modify All or the sharing rule grants it.
    fn access(&self, case: &Record) -> (bool, bool) {
        let owns = text_of(case, "OwnerId").is_some_and(|o| same_id(o, USER_ID));
        let (mut read, mut edit) = match self.case_access {
            CaseAccess::Private => (false, false),
            CaseAccess::Read => (true, false),
            CaseAccess::Edit | CaseAccess::ReadEditTransfer => (true, true),
        };
        read |= owns || self.view_all || self.modify_all;
        edit |= owns || self.modify_all;
        let shared = text_of(case, EXTERNAL_ID_FIELD).is_some_and(|e| !e.trim().is_empty());
        match self.sharing_rule {
            Some(access) if shared => {
                read = true;
                edit |= access == ShareAccess::Edit;
            }
            _ => {}
        }
        (read, edit)
    }

    fn readable(&self, obj: Obj, index: usize) -> bool {
        obj != Obj::Case || self.access(&self.db.cases[index]).0
    }

    /// Record and parse the effective `Sforce-Auto-Assign` of a request that writes Cases.
    /// `TRUE`/`FALSE` in any case; an id must be an AssignmentRule of the org (active or not, as
    /// the SOAP AssignmentRuleHeader documents). A value that is no id at all fails the request
    /// with `MALFORMED_ID` (documented for the SOAP header and Apex's DMLOptions); an id that
    /// names no rule, with `INVALID_CROSS_REFERENCE_KEY` (undocumented: the strict choice).
    fn case_write_header(&mut self, call: &str) -> Result<Assign, Answer> {
        let value = self.assign_header.clone();
        self.assign_log.push(AssignHeader {
            call: call.to_owned(),
            in_composite: self.in_composite,
            value: value.clone(),
        });
        let Some(value) = value.as_deref().map(str::trim) else {
            return Ok(Assign::Active);
        };
        if value.eq_ignore_ascii_case("TRUE") {
            return Ok(Assign::Active);
        }
        if value.eq_ignore_ascii_case("FALSE") {
            return Ok(Assign::Off);
        }
        if !is_id(value, "") {
            let message = format!("Sforce-Auto-Assign: invalid ID: {value}");
            return Err(bad("MALFORMED_ID", &message));
        }
        match self.rules.iter().find(|r| same_id(&r.id, value)) {
            Some(rule) => Ok(Assign::Rule(rule.id.clone())),
            None => {
                let message = format!("Sforce-Auto-Assign: no assignment rule with id {value}");
                Err(bad("INVALID_CROSS_REFERENCE_KEY", &message))
            }
        }
    }

    /// The owner the assignment step gives a Case being written, if it changes it. An id
    /// header runs its rule on create only: the header reference lists ids for "created"
    /// records alone.
    fn assigned_owner(&self, assign: &Assign, create: bool) -> Option<String> {
        let queue = |r: &Rule| r.queue.clone();
        match assign {
            Assign::Off => None,
            Assign::Active => {
                let active = self.rules.iter().find(|r| r.active);
                Some(active.map_or_else(|| self.default_case_owner.clone(), queue))
            }
            Assign::Rule(id) if create => self.rules.iter().find(|r| r.id == *id).map(queue),
            Assign::Rule(_) => None,
        }
    }

    fn schema(&self, obj: Obj) -> &Schema {
        [&self.case_schema, &self.contact_schema][obj as usize]
    }

    /// How a write to `target` is checked: an upsert by external id is a create unless it
    /// matches a Case the user can see.
    fn mode(&self, target: &Target) -> Mode {
        match target {
            Target::Insert => Mode::Insert,
            Target::Id(_) => Mode::Update,
            Target::Ext(value) => match self.db.by_ext(value) {
                Some(i) if self.readable(Obj::Case, i) => Mode::Update,
                _ => Mode::Insert,
            },
        }
    }

    /// Apply a staged write as the integration user: `(id, created)` or the record's error.
    /// Sharing limits the existing Cases it may change (an upsert matches only Cases it can see;
    /// an invisible match becomes an insert, which the unique index refuses); `assign` may
    /// change a Case's owner; a new Case without OwnerId belongs to the integration user.
    fn write(&mut self, staged: Staged, assign: &Assign) -> Result<(String, bool), RecErr> {
        let Staged(obj, target, mut fields) = staged;
        let index = match target {
            Target::Insert => None,
            Target::Id(id) if !is_id(&id, obj.prefix()) => {
                let message = format!("{} ID: id value of incorrect type: {id}", obj.name());
                return Err(RecErr::new("MALFORMED_ID", message, &["Id"]));
            }
            Target::Id(id) => {
                let message = "invalid cross reference id";
                let missing = || RecErr::new("INVALID_CROSS_REFERENCE_KEY", message, &[]);
                Some(self.db.by_id(obj, &id).ok_or_else(missing)?)
            }
            Target::Ext(value) => {
                fields.entry(EXTERNAL_ID_FIELD).or_insert(json!(value));
                let found = self.db.by_ext(&value);
                found.filter(|i| self.readable(Obj::Case, *i))
            }
        };
        if obj == Obj::Case {
            if index.is_some_and(|i| !self.access(&self.db.cases[i]).1) {
                let message = "insufficient access rights on object id";
                return Err(RecErr::new("INSUFFICIENT_ACCESS_OR_READONLY", message, &[]));
            }
            if index.is_none() {
                fields.entry("OwnerId").or_insert(json!(USER_ID_18));
            }
            if let Some(owner) = self.assigned_owner(assign, index.is_none()) {
                fields.insert("OwnerId".into(), json!(owner));
            }
        }
        match index {
            Some(index) => Ok((self.db.update(obj, index, fields)?, false)),
            None => Ok((self.db.insert(obj, fields)?, true)),
        }
    }
}

/// The fault acting on one call's records; a lock-row fault is used up by the first write.
enum Injected {
    None,
    Record(String, RecErr),
    LockRow(u64),
}

impl OrgState {
    fn new_token(&mut self) -> String {
        let (a, b): (u64, u64) = (self.token_rng.0.random(), self.token_rng.0.random());
        let token = format!("{ORG_ID}!AQ{:04}{a:016x}{b:016x}", self.tokens.len() + 1);
        self.tokens.insert(token.clone(), true);
        token
    }

    /// The fault for this data call: the next scripted one, else perhaps a random one
    /// (`Err(n)`: lock row `n`).
    fn next_fault(&mut self) -> Option<Result<Fault, u64>> {
        if let Some(fault) = self.faults.pop_front() {
            return Some(Ok(fault));
        }
        let (rate, mix, rng) = self.random.as_mut()?;
        if rng.random::<f64>() >= *rate {
            return None;
        }
        let kind = mix[rng.random_range(0..mix.len())];
        *self.injected.entry(format!("{kind:?}")).or_default() += 1;
        Some(Ok(match kind {
            FaultKind::Status503 => Fault::Status503,
            FaultKind::Status500 => Fault::Status500,
            FaultKind::DropConnection => Fault::DropConnection,
            FaultKind::AppliedThen503 => Fault::AppliedThen503,
            FaultKind::AppliedThenDrop => Fault::AppliedThenDrop,
            FaultKind::UnableToLockRow => return Some(Err(rng.random())),
            FaultKind::ConcurrentLongTxn => Fault::ConcurrentLongTxn,
        }))
    }
}

impl Fault {
    /// The answer this fault gives instead of processing the call, and whether it is counted.
    fn answer(&self) -> Option<(Answer, bool)> {
        let unknown = "An unexpected error occurred. Please include this ErrorId if you contact support: 0000000-0000 (-0000000)";
        let long_txn = "ConcurrentPerOrgLongTxn Limit exceeded";
        Some(match self {
            Fault::Status503 => (unavailable(), true),
            Fault::Status500 => (err(500, "UNKNOWN_EXCEPTION", unknown), true),
            Fault::DropConnection => (Answer::Drop, true),
            Fault::ConcurrentLongTxn => (err(403, "REQUEST_LIMIT_EXCEEDED", long_txn), true),
            Fault::InvalidSession => (invalid_session(), false),
            Fault::TotalRequestsLimit => (total_requests(), false),
            Fault::RequestError {
                status,
                error_code: code,
                message: text,
            } => (err(*status, code, text), *status != 401),
            Fault::NonJson {
                status,
                content_type: kind,
                body,
            } => (Answer::Raw(*status, kind.clone(), body.clone()), false),
            Fault::Redirect { status, location } => {
                (Answer::Redirect(*status, location.clone()), false)
            }
            _ => return None,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Connections that a handler can kill
// ---------------------------------------------------------------------------------------------

/// Wraps the TCP listener so that every connection can be killed by its handler.
struct KillableListener(TcpListener);

impl Listener for KillableListener {
    type Io = KillableStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.0.accept().await {
                Ok((inner, addr)) => return (KillableStream(inner, Kill::default()), addr),
                // Transient (e.g. EMFILE): back off briefly like axum's own listener does.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

/// A TCP stream whose writes fail once killed: hyper then drops the socket, so the client sees
/// the connection close with no byte of the answer.
struct KillableStream(TcpStream, Kill);

/// A connection's kill switch, handed to handlers as `ConnectInfo`.
#[derive(Clone, Default)]
struct Kill(Arc<AtomicBool>);

impl KillableStream {
    fn check(&self) -> io::Result<()> {
        match self.1.0.load(Ordering::SeqCst) {
            true => Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "fault: dropped",
            )),
            false => Ok(()),
        }
    }
}

type Io<T> = Poll<io::Result<T>>;

impl AsyncRead for KillableStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Io<()> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl AsyncWrite for KillableStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Io<usize> {
        self.check()?;
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Io<()> {
        self.check()?;
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Io<()> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}

impl Connected<IncomingStream<'_, KillableListener>> for Kill {
    fn connect_info(stream: IncomingStream<'_, KillableListener>) -> Self {
        stream.io().1.clone()
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP handlers, answers and the token endpoint
// ---------------------------------------------------------------------------------------------

/// What the fake sends back for one request or composite subrequest (status first).
#[derive(Debug)]
enum Answer {
    Json(u16, Value, Option<String>),
    Empty(u16),
    Drop,
    Raw(u16, String, String),
    Redirect(u16, String),
}

fn reply(status: u16, body: Value) -> Answer {
    Answer::Json(status, body, None)
}

/// A data API error: `[{"message","errorCode"}]`.
fn err(status: u16, code: &str, message: &str) -> Answer {
    reply(status, json!([{"message": message, "errorCode": code}]))
}

fn bad(code: &str, message: &str) -> Answer {
    err(400, code, message)
}

fn not_found() -> Answer {
    err(404, "NOT_FOUND", "The requested resource does not exist")
}

fn parser_error(message: &str) -> Answer {
    bad("JSON_PARSER_ERROR", message)
}

fn invalid_session() -> Answer {
    err(401, "INVALID_SESSION_ID", "Session expired or invalid")
}

fn total_requests() -> Answer {
    let message = "TotalRequests Limit exceeded.";
    err(403, "REQUEST_LIMIT_EXCEEDED", message)
}

fn unavailable() -> Answer {
    let message = "Server temporarily unavailable. Please try again later.";
    err(503, "SERVER_UNAVAILABLE", message)
}

/// A single-record call's errors: `[{"message","errorCode","fields"}]`.
fn record_errors(errors: &[RecErr]) -> Answer {
    let json = |e: &RecErr| json!({"message": e.1, "errorCode": e.0, "fields": e.2});
    reply(400, errors.iter().map(json).collect())
}

async fn read_and_record(org: &FakeOrg, request: Request) -> (Parts, Bytes) {
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let headers = parts.headers.iter();
    org.lock().requests.push(RecordedRequest {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers: headers
            .map(|(n, v)| (n.to_string(), text(v.as_bytes())))
            .collect(),
        body: text(&bytes),
    });
    (parts, bytes)
}

async fn unknown_path(State(org): State<Arc<FakeOrg>>, request: Request) -> Response {
    read_and_record(&org, request).await;
    into_response(not_found())
}

fn into_response(answer: Answer) -> Response {
    let status = |code| StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_GATEWAY);
    match answer {
        Answer::Json(code, body, location) => {
            let location = location.map(|l| [(header::LOCATION, l)]);
            (status(code), location, axum::Json(body)).into_response()
        }
        Answer::Empty(code) => status(code).into_response(),
        Answer::Drop => StatusCode::OK.into_response(),
        Answer::Raw(code, kind, body) => {
            (status(code), [(header::CONTENT_TYPE, kind)], body).into_response()
        }
        Answer::Redirect(code, to) => (status(code), [(header::LOCATION, to)]).into_response(),
    }
}

async fn data_api(
    State(org): State<Arc<FakeOrg>>,
    ConnectInfo(kill): ConnectInfo<Kill>,
    request: Request,
) -> Response {
    let _in_flight = InFlight::enter(&org);
    let (parts, body) = read_and_record(&org, request).await;
    let latency = org.lock().latency;
    if let Some(latency) = latency {
        tokio::time::sleep(latency).await;
    }
    let (answer, usage) = org.data_call(&parts, &body);
    // A dropped connection fails before hyper writes anything: this answer is never sent.
    kill.0
        .store(matches!(answer, Answer::Drop), Ordering::SeqCst);
    let mut response = into_response(answer);
    if let Some((used, max)) = usage {
        let value = HeaderValue::from_str(&format!("api-usage={used}/{max}"));
        response
            .headers_mut()
            .insert("sforce-limit-info", value.expect("ascii"));
    }
    response
}

/// One data request in flight: counted on arrival, uncounted when its handler ends (answered,
/// or dropped by the client).
struct InFlight<'a>(&'a FakeOrg);

impl<'a> InFlight<'a> {
    fn enter(org: &'a FakeOrg) -> Self {
        let now = org.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        org.max_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlight(org)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

fn content_type_is(headers: &HeaderMap, expected: &str) -> bool {
    let value = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let media_type = value.and_then(|v| v.split(';').next()).map(str::trim);
    media_type.is_some_and(|v| v.eq_ignore_ascii_case(expected))
}

fn now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

async fn token_endpoint(State(org): State<Arc<FakeOrg>>, request: Request) -> Response {
    let (parts, body) = read_and_record(&org, request).await;
    let (status, body) = match org.grant(&parts, &body) {
        Ok(body) => (StatusCode::OK, body),
        Err((error, text)) => {
            let body = json!({"error": error, "error_description": text});
            (StatusCode::BAD_REQUEST, body)
        }
    };
    let no_store = [(header::CACHE_CONTROL, "no-store")];
    (no_store, (status, axum::Json(body))).into_response()
}

type OAuthError = (&'static str, &'static str);

const SECRETS: [&str; 6] = [
    "grant_type",
    "client_id",
    "client_secret",
    "username",
    "password",
    "assertion",
];
const JWT_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const AUTH_FAILURE: OAuthError = ("invalid_grant", "authentication failure");

impl FakeOrg {
    fn grant(&self, parts: &Parts, body: &[u8]) -> Result<Value, OAuthError> {
        let mut state = self.lock();
        state.token_requests += 1;
        // Credentials in the URL end up in logs and proxies; Salesforce documents the body.
        let query = parts.uri.query().unwrap_or_default().as_bytes();
        if form_urlencoded::parse(query).any(|(k, _)| SECRETS.contains(&k.as_ref())) {
            return Err((
                "invalid_request",
                "credentials belong in the body, not the URL",
            ));
        }
        if !content_type_is(&parts.headers, "application/x-www-form-urlencoded") {
            return Err(("invalid_request", "the body must be form-encoded"));
        }
        let form: HashMap<String, String> = form_urlencoded::parse(body).into_owned().collect();
        let field = |name: &str| form.get(name).map(String::as_str);
        let client = match (field("client_id"), field("client_secret")) {
            (Some(CLIENT_ID), Some(CLIENT_SECRET)) => Ok(()),
            (Some(CLIENT_ID), _) => Err(("invalid_client", "invalid client credentials")),
            _ => Err(("invalid_client_id", "client identifier invalid")),
        };
        let user = field("username") == Some(USERNAME);
        let password = field("password") == Some(&state.accepted_password);
        match field("grant_type") {
            Some("password") => client.and(if user && password {
                Ok(())
            } else {
                Err(AUTH_FAILURE)
            })?,
            Some("client_credentials") => client?,
            Some(JWT_GRANT) => self.check_assertion(field("assertion").unwrap_or_default())?,
            _ => return Err(("unsupported_grant_type", "grant type not supported")),
        }
        if state.reject_credentials {
            return Err(AUTH_FAILURE);
        }
        state.token_grants += 1;
        let access_token = state.new_token();
        // The real signature is an HMAC of id + issued_at; clients only pass it on.
        let signature: [u8; 32] = state.token_rng.0.random();
        let signature = base64::engine::general_purpose::STANDARD.encode(signature);
        Ok(json!({
            "access_token": access_token,
            "instance_url": self.instance_url,
            "id": format!("{}/id/{ORG_ID}AAA/{USER_ID}AAA", self.base_url),
            "token_type": "Bearer",
            "issued_at": now().as_millis().to_string(),
            "signature": signature,
        }))
    }

    /// Check a JWT bearer assertion as the wire doc describes it.
    fn check_assertion(&self, assertion: &str) -> Result<(), OAuthError> {
        use jsonwebtoken::{Algorithm, Validation, dangerous::insecure_decode};
        let invalid = ("invalid_grant", "invalid assertion");
        let token = insecure_decode::<Value>(assertion).map_err(|_| invalid)?;
        if token.header.alg != Algorithm::RS256 {
            return Err(invalid);
        }
        if let Some(key) = &self.jwt_key {
            let mut checks = Validation::new(Algorithm::RS256);
            checks.required_spec_claims.clear();
            (
                checks.validate_exp,
                checks.validate_nbf,
                checks.validate_aud,
            ) = (false, false, false);
            jsonwebtoken::decode::<Value>(assertion, key, &checks).map_err(|_| invalid)?;
        }
        let claim = |name: &str| token.claims.get(name);
        if claim("iss").and_then(Value::as_str) != Some(CLIENT_ID) {
            return Err(("invalid_client_id", "client identifier invalid"));
        }
        // Exact match, as documented: no trailing slash, no path.
        let ours = |a: &str| a == self.base_url || LOGIN_URLS.contains(&a);
        let audience = |aud: &Value| aud.as_str().is_some_and(ours);
        let aud = claim("aud").cloned().unwrap_or_default();
        if !aud
            .as_array()
            .map_or(audience(&aud), |all| all.iter().any(audience))
        {
            return Err(("invalid_grant", "audience is invalid"));
        }
        let now = now().as_secs();
        match claim("exp").and_then(Value::as_u64) {
            Some(exp) if exp > now && exp <= now + MAX_JWT_LIFETIME_SECS => {}
            Some(exp) if exp <= now => return Err(("invalid_grant", "expired authorization code")),
            _ => return Err(invalid),
        }
        match claim("sub").and_then(Value::as_str) {
            Some(USERNAME) => Ok(()),
            _ => Err(AUTH_FAILURE),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Data API: admission, accounting, faults and routes
// ---------------------------------------------------------------------------------------------

/// `/services/data/vNN.0/a/b` → `(NN, ["a", "b"])`, segments percent-decoded, a trailing `/`
/// ignored.
fn parse_data_path(path: &str) -> Option<(u32, Vec<String>)> {
    let decode = |s| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    let rest = path.strip_prefix("/services/data/")?;
    let mut segments: Vec<String> = rest.split('/').map(decode).collect();
    if segments.len() > 1 && segments.last().is_some_and(String::is_empty) {
        segments.pop();
    }
    let major = segments.remove(0);
    let major = major.strip_prefix('v')?.strip_suffix(".0")?;
    major.bytes().all(|b| b.is_ascii_digit()).then_some(())?;
    Some((major.parse().ok()?, segments))
}

fn call_kind(method: &Method, path: &str) -> &'static str {
    let segments = parse_data_path(path).map(|(_, s)| s).unwrap_or_default();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    match (method.as_str(), segments.as_slice()) {
        ("POST", ["sobjects", _]) => "create",
        ("GET", ["sobjects", _, "describe"]) => "describe",
        ("GET", ["sobjects", _, _] | ["sobjects", _, _, _]) => "retrieve",
        ("PATCH", ["sobjects", _, _]) => "update",
        ("PATCH", ["sobjects", _, _, _]) => "upsert",
        ("POST", ["composite", "sobjects"]) => "collections_create",
        ("PATCH", ["composite", "sobjects"]) => "collections_update",
        ("PATCH", ["composite", "sobjects", _, _]) => "collections_upsert",
        ("POST", ["composite"]) => "composite",
        ("GET", ["query"]) => "query",
        ("GET", ["search"]) => "search",
        _ => "other",
    }
}

impl FakeOrg {
    /// Admit, account, pick a fault and process one data call under the lock: the answer and,
    /// when the API answers, the `(used, max)` usage to report.
    fn data_call(&self, parts: &Parts, body: &[u8]) -> (Answer, Option<(u64, u64)>) {
        let mut guard = self.lock();
        let state = &mut *guard;
        let uri = parts.uri.path_and_query().map_or(0, |p| p.as_str().len());
        let sizes = parts
            .headers
            .iter()
            .map(|(n, v)| n.as_str().len() + v.len() + 4);
        if uri + sizes.sum::<usize>() > MAX_URI_BYTES {
            return (
                Answer::Empty(if uri > MAX_URI_BYTES { 414 } else { 431 }),
                None,
            );
        }
        let usage = |s: &OrgState| Some((s.api_calls, s.daily_limit));
        let auth = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let token = auth.and_then(|v| v.strip_prefix("Bearer ")).map(str::trim);
        let Some(token) = token.filter(|t| state.tokens.get(*t) == Some(&true)) else {
            return (invalid_session(), usage(state));
        };
        if state.api_calls >= state.daily_limit {
            return (total_requests(), usage(state));
        }
        let fault = state.next_fault();
        let plain = fault.as_ref().and_then(|f| f.as_ref().ok());
        if let Some(Fault::InvalidSession) = plain {
            state.tokens.insert(token.to_owned(), false);
        }
        let early = plain.and_then(Fault::answer);
        if let Some((answer, false)) = early {
            let proxy = matches!(plain, Some(Fault::NonJson { .. } | Fault::Redirect { .. }));
            return (answer, usage(state).filter(|_| !proxy));
        }
        state.api_calls += 1;
        let kind = call_kind(&parts.method, parts.uri.path());
        *state.calls.entry(kind.to_owned()).or_default() += 1;
        let mut injected = match (&fault, plain) {
            (Some(Err(n)), _) => Injected::LockRow(*n),
            (
                _,
                Some(Fault::RecordError {
                    external_id,
                    status_code,
                    message,
                    fields,
                }),
            ) => {
                let fields: Vec<&str> = fields.iter().map(String::as_str).collect();
                let error = RecErr::new(status_code, message.clone(), &fields);
                Injected::Record(external_id.clone(), error)
            }
            _ => Injected::None,
        };
        let answer = match early {
            Some((answer, _)) => answer,
            None => state.handle(parts, body, &mut injected),
        };
        let answer = match plain {
            Some(Fault::AppliedThen503) => unavailable(),
            Some(Fault::AppliedThenDrop) => Answer::Drop,
            _ => answer,
        };
        (answer, usage(state))
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Create,
    Update,
    Upsert,
}

/// One (sub)request to route.
struct Call<'a> {
    method: &'a Method,
    version: u32,
    segments: Vec<String>,
    query: Vec<(String, String)>,
    body: Option<Value>,
    /// The `If-Modified-Since` header (describe).
    since: Option<String>,
}

impl Call<'_> {
    fn param(&self, name: &str) -> Option<&str> {
        let mut pairs = self.query.iter();
        pairs.find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

fn parse_query(query: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect()
}

fn no_ext_field(field: &str) -> Answer {
    let message =
        format!("Provided external ID field does not exist or is not accessible: {field}");
    err(404, "NOT_FOUND", &message)
}

impl OrgState {
    fn handle(&mut self, parts: &Parts, body: &[u8], injected: &mut Injected) -> Answer {
        let Some((version, segments)) = parse_data_path(parts.uri.path()) else {
            return not_found();
        };
        let query = parse_query(parts.uri.query().unwrap_or_default());
        let method = &parts.method;
        let header = |name: &str| {
            let value = parts.headers.get(name)?.to_str().ok()?;
            Some(value.to_owned())
        };
        self.assign_header = header("sforce-auto-assign");
        let mut call = Call {
            method,
            version,
            segments,
            query,
            body: None,
            since: header("if-modified-since"),
        };
        if matches!(*method, Method::POST | Method::PATCH | Method::PUT) {
            if !content_type_is(&parts.headers, "application/json") {
                let message = "Content-Type header specified in HTTP request is not supported";
                return err(415, "UNSUPPORTED_MEDIA_TYPE", message);
            }
            match serde_json::from_slice(body) {
                Ok(value) => call.body = Some(value),
                Err(error) => return parser_error(&format!("Unexpected JSON: {error}")),
            }
        }
        self.route(call, injected, false)
    }

    fn route(&mut self, mut call: Call<'_>, injected: &mut Injected, nested: bool) -> Answer {
        let body = call.body.take();
        let force = nested && self.composite_all_or_none;
        let segments: Vec<&str> = call.segments.iter().map(String::as_str).collect();
        let method = call.method.as_str();
        // The org's one external id field, while the integration user can see it.
        let ext_field = self.case_schema.field(EXTERNAL_ID_FIELD);
        let ext_visible = ext_field.is_some_and(|f| f.external_id);
        let ext_ok = |t: &str, field: &str| {
            let named = field.eq_ignore_ascii_case(EXTERNAL_ID_FIELD);
            Obj::parse(t) == Some(Obj::Case) && named && ext_visible
        };
        let fields = call.param("fields");
        let q = call.param("q").unwrap_or_default();
        let found = |t: &str, at: Option<usize>| Some((Obj::parse(t)?, at?));
        let version = call.version;
        match (method, segments.as_slice()) {
            ("POST", ["sobjects", t]) => match Obj::parse(t) {
                Some(obj) => self.write_one(obj, Target::Insert, body, injected, version),
                None => not_found(),
            },
            ("GET", ["sobjects", t, "describe"]) => match Obj::parse(t) {
                Some(obj) => self.describe(obj, call.since.as_deref()),
                None => not_found(),
            },
            ("GET" | "PATCH", ["sobjects", t, id]) => {
                match found(t, Obj::parse(t).and_then(|o| self.db.by_id(o, id))) {
                    // A record the user cannot see does not exist for it.
                    Some((obj, at)) if method == "GET" && !self.readable(obj, at) => not_found(),
                    Some((obj, at)) if method == "GET" => self.retrieve(obj, at, fields, version),
                    Some((obj, _)) => {
                        let target = Target::Id(id.to_string());
                        self.write_one(obj, target, body, injected, version)
                    }
                    None => not_found(),
                }
            }
            ("PATCH", ["sobjects", t, field, value]) if ext_ok(t, field) => {
                let target = Target::Ext(value.to_string());
                self.write_one(Obj::Case, target, body, injected, version)
            }
            ("GET", ["sobjects", t, field, value]) if ext_ok(t, field) => {
                match self
                    .db
                    .by_ext(value)
                    .filter(|at| self.readable(Obj::Case, *at))
                {
                    Some(at) => self.retrieve(Obj::Case, at, fields, version),
                    None => not_found(),
                }
            }
            ("POST", ["composite", "sobjects"]) => {
                self.collection(body, Op::Create, injected, force)
            }
            ("PATCH", ["composite", "sobjects"]) => {
                self.collection(body, Op::Update, injected, force)
            }
            ("PATCH", ["composite", "sobjects", t, field]) if ext_ok(t, field) => {
                self.collection(body, Op::Upsert, injected, force)
            }
            ("GET" | "PATCH", ["sobjects", t, field, _] | ["composite", "sobjects", t, field])
                if Obj::parse(t).is_some() =>
            {
                no_ext_field(field)
            }
            ("POST", ["composite"]) if !nested => self.composite(body, injected),
            ("GET", ["query"]) => self.query(q, version).unwrap_or_else(|e| e),
            ("GET", ["search"]) => self.search(q, version).unwrap_or_else(|e| e),
            (_, ["sobjects", _] | ["composite" | "query" | "search", ..]) if !nested => {
                let message = format!("HTTP Method '{method}' not allowed here");
                err(405, "METHOD_NOT_ALLOWED", &message)
            }
            _ => not_found(),
        }
    }

    /// `GET sobjects/{T}/describe`: the object as the integration user sees it (field-level
    /// security folded in). `If-Modified-Since` (`EEE, dd MMM yyyy HH:mm:ss z`, as the sObject
    /// Describe reference gives it) at or after the last schema change, to the second, answers
    /// `304` with no body; an unparsable date is ignored, as HTTP wants (RFC 9110 §13.1.3).
    fn describe(&self, obj: Obj, since: Option<&str>) -> Answer {
        let since = since.and_then(|s| chrono::DateTime::parse_from_rfc2822(s.trim()).ok());
        let changed = self.schema_changed.timestamp();
        if since.is_some_and(|s| s.timestamp() >= changed) {
            return Answer::Empty(304);
        }
        let schema = self.schema(obj);
        let fields: Vec<Value> = schema.fields.iter().map(Field::describe).collect();
        let body = json!({
            "name": obj.name(),
            "label": obj.name(),
            "custom": false,
            "createable": true,
            "updateable": true,
            "queryable": true,
            "fields": fields,
            "recordTypeInfos": schema.record_type_infos(),
        });
        reply(200, body)
    }

    /// `GET sobjects/{T}/{Id}` or `…/{ext}/{value}`: the record with `fields` (all when absent).
    fn retrieve(&self, obj: Obj, index: usize, fields: Option<&str>, version: u32) -> Answer {
        let record = &[&self.db.cases, &self.db.contacts][obj as usize][index];
        let schema = self.schema(obj);
        let names = match fields {
            // Every field the user can see (field-level security hides the others).
            None => Ok(record
                .keys()
                .filter(|k| schema.field(k).is_some())
                .cloned()
                .collect()),
            Some(list) => {
                let list: Vec<String> = list.split(',').map(|n| n.trim().to_owned()).collect();
                resolve(schema, obj.name(), &list)
                    .map(|names| [vec!["Id".to_owned()], names].concat())
            }
        };
        match names {
            Ok(names) => reply(200, record_json(obj.name(), record, &names, version)),
            Err(answer) => answer,
        }
    }

    /// A single-record create, update by id (→ 204) or upsert by external id.
    fn write_one(
        &mut self,
        obj: Obj,
        target: Target,
        body: Option<Value>,
        injected: &mut Injected,
        version: u32,
    ) -> Answer {
        let Some(Value::Object(mut raw)) = body else {
            return parser_error("Cannot deserialize instance of an sObject from a non-object");
        };
        raw.remove("attributes");
        // Documented for upsert: "Do not specify Id or an external ID field in the request body".
        let forbidden =
            |k: &&String| k.eq_ignore_ascii_case(EXTERNAL_ID_FIELD) || k.eq_ignore_ascii_case("Id");
        if let (Target::Ext(_), Some(key)) = (&target, raw.keys().find(forbidden)) {
            let message = format!("{key}: not allowed in the body of an upsert by external id");
            return record_errors(&[RecErr::new("INVALID_FIELD", message, &[key.as_str()])]);
        }
        if let Target::Ext(value) = &target {
            raw.insert(EXTERNAL_ID_FIELD.into(), json!(value));
        }
        let upsert = matches!(target, Target::Ext(_));
        let by_id = matches!(target, Target::Id(_));
        let assign = match obj {
            Obj::Case => {
                let call =
                    ["create", "update", "upsert"][usize::from(by_id) + 2 * usize::from(upsert)];
                match self.case_write_header(call) {
                    Ok(assign) => assign,
                    Err(answer) => return answer,
                }
            }
            Obj::Contact => Assign::Off,
        };
        let mode = self.mode(&target);
        let staged = match validate(self.schema(obj), obj, raw, mode) {
            Ok(fields) => Staged(obj, target, fields),
            Err(Invalid::Request(answer)) => return answer,
            Err(Invalid::Record(errors)) => return record_errors(&errors),
        };
        let forced = match std::mem::replace(injected, Injected::None) {
            Injected::Record(ext, error) => {
                let hit = self.db.ext_of(&staged).as_ref() == Some(&ext);
                *injected = Injected::Record(ext, error.clone());
                hit.then_some(error)
            }
            Injected::LockRow(_) => Some(RecErr::lock_row()),
            Injected::None => None,
        };
        if let Some(error) = forced {
            return record_errors(&[error]);
        }
        match self.write(staged, &assign) {
            Err(error) => record_errors(&[error]),
            Ok(_) if by_id => Answer::Empty(204),
            // `created` is in the upsert answer from API 46.0; before, an update answered 204.
            Ok((_, false)) if version < 46 => Answer::Empty(204),
            Ok((id, created)) => {
                let mut body = json!({"id": id, "success": true, "errors": []});
                if upsert && version >= 46 {
                    body["created"] = json!(created);
                }
                let location = format!("/services/data/v{version}.0/sobjects/{}/{id}", obj.name());
                Answer::Json(if created { 201 } else { 200 }, body, Some(location))
            }
        }
    }

    /// Check one collections record.
    fn stage(&self, mut raw: Map<String, Value>, op: Op) -> Result<Staged, Invalid> {
        let invalid =
            |code, message: String| Err(Invalid::Record(vec![RecErr::new(code, message, &[])]));
        let attributes = raw.remove("attributes").unwrap_or_default();
        let type_name = attributes["type"].as_str().unwrap_or_default();
        let upsert_ok = |o: &Obj| op != Op::Upsert || *o == Obj::Case;
        let Some(obj) = Obj::parse(type_name).filter(upsert_ok) else {
            let message = match type_name {
                "" => "Each record needs an attributes map with a type".to_owned(),
                name => format!("sObject type '{name}' is not supported."),
            };
            return invalid("INVALID_TYPE", message);
        };
        let id_key = raw.keys().find(|k| k.eq_ignore_ascii_case("id")).cloned();
        let id = id_key.as_ref().and_then(|k| raw.remove(k));
        let ext = get_ci(&raw, EXTERNAL_ID_FIELD).and_then(Value::as_str);
        let ext = ext.filter(|e| !e.is_empty()).map(str::to_owned);
        let target = match (op, id, ext) {
            (Op::Create, None, _) => Target::Insert,
            (Op::Create, Some(_), _) => {
                let message = "cannot specify Id in an insert call".to_owned();
                return invalid("INVALID_FIELD_FOR_INSERT_UPDATE", message);
            }
            (Op::Update, Some(Value::String(id)), _) => Target::Id(id),
            (Op::Update, ..) => {
                let message = "Id not specified in an update call".to_owned();
                return invalid("MISSING_ARGUMENT", message);
            }
            (Op::Upsert, Some(_), _) => {
                let message = "Id: don't set the Id field when upserting by external id".to_owned();
                return invalid("INVALID_FIELD_FOR_INSERT_UPDATE", message);
            }
            (Op::Upsert, None, Some(ext)) => Target::Ext(ext),
            (Op::Upsert, None, None) => {
                let message = format!("{EXTERNAL_ID_FIELD} not specified");
                return invalid("MISSING_ARGUMENT", message);
            }
        };
        let fields = validate(self.schema(obj), obj, raw, self.mode(&target))?;
        Ok(Staged(obj, target, fields))
    }

    /// sObject Collections create, update by id, or upsert by external id. `force`: a composite
    /// request's `allOrNone: true` overrides the collection's, as documented.
    fn collection(
        &mut self,
        body: Option<Value>,
        op: Op,
        injected: &mut Injected,
        force: bool,
    ) -> Answer {
        let Some(Value::Object(mut body)) = body else {
            return parser_error("expected an object with records");
        };
        if let Some(key) = body.keys().find(|k| *k != "allOrNone" && *k != "records") {
            return parser_error(&format!("Unrecognized field \"{key}\""));
        }
        let all_or_none = match body.remove("allOrNone").unwrap_or_default() {
            Value::Null => force,
            Value::Bool(b) => b || force,
            _ => return parser_error("allOrNone: Cannot deserialize value of type boolean"),
        };
        let Some(Value::Array(records)) = body.remove("records") else {
            return parser_error("records: required field is missing or not an array");
        };
        if records.len() > MAX_COLLECTION_RECORDS {
            let message =
                "record limit reached. cannot submit more than 200 records into this call";
            return bad("EXCEEDED_ID_LIMIT", message);
        }
        let is_case = |r: &Value| {
            let type_name = r["attributes"]["type"].as_str().unwrap_or_default();
            Obj::parse(type_name) == Some(Obj::Case)
        };
        let assign = match op == Op::Upsert || records.iter().any(is_case) {
            true => {
                let call = match op {
                    Op::Create => "collections_create",
                    Op::Update => "collections_update",
                    Op::Upsert => "collections_upsert",
                };
                match self.case_write_header(call) {
                    Ok(assign) => assign,
                    Err(answer) => return answer,
                }
            }
            false => Assign::Off,
        };
        let mut staged = Vec::with_capacity(records.len());
        for record in records {
            let Value::Object(record) = record else {
                return parser_error("records: not an SObject");
            };
            match self.stage(record, op) {
                Ok(s) => staged.push(Ok(s)),
                Err(Invalid::Record(errors)) => staged.push(Err(errors)),
                Err(Invalid::Request(answer)) => return answer,
            }
        }
        let ext = |s: &Result<Staged, _>| s.as_ref().ok().and_then(|s| self.db.ext_of(s));
        let exts: Vec<Option<String>> = staged
            .iter()
            .map(|s| ext(s).map(|e| e.to_ascii_lowercase()))
            .collect();
        let forced = match &*injected {
            Injected::Record(ext, error) => Some((Some(ext.to_ascii_lowercase()), error.clone())),
            _ => None,
        };
        for (entry, ext) in staged.iter_mut().zip(&exts) {
            let twice = exts.iter().filter(|e| *e == ext).count() > 1;
            if op == Op::Upsert && ext.is_some() && twice {
                // The same external id twice in one upsert request fails both records.
                let shown = ext.as_deref().unwrap_or_default();
                let message = format!("Duplicate external id specified: {shown}");
                *entry = Err(vec![RecErr::new(
                    "DUPLICATE_VALUE",
                    message,
                    &[EXTERNAL_ID_FIELD],
                )]);
            } else if let Some((_, error)) = forced.as_ref().filter(|(e, _)| e == ext) {
                *entry = Err(vec![error.clone()]);
            }
        }
        if let (Injected::LockRow(n), false) = (&*injected, staged.is_empty()) {
            let index = (*n % staged.len() as u64) as usize;
            staged[index] = Err(vec![RecErr::lock_row()]);
            *injected = Injected::None;
        }
        let saved = all_or_none.then(|| self.db.clone());
        let mut created = HashSet::new();
        let mut results = Vec::with_capacity(staged.len());
        for (entry, ext) in staged.into_iter().zip(exts) {
            let result = entry.and_then(|s| {
                if op == Op::Create && ext.as_ref().is_some_and(|e| created.contains(e)) {
                    // A clash inside one request: the other record has no id yet.
                    let message = "duplicate value found: <unknown> duplicates value on record with id: <unknown>";
                    return Err(vec![RecErr::new("DUPLICATE_VALUE", message, &[])]);
                }
                let (id, new) = self.write(s, &assign).map_err(|e| vec![e])?;
                created.extend(ext.filter(|_| new));
                Ok((id, new))
            });
            results.push(result);
        }
        if let Some(saved) = saved.filter(|_| results.iter().any(Result::is_err)) {
            self.db = saved;
            let message = "Record rolled back because not all records were valid and the request was using AllOrNone header";
            let rolled_back = vec![RecErr::new(
                "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                message,
                &[],
            )];
            results = results
                .into_iter()
                .map(|r| r.and(Err(rolled_back.clone())))
                .collect();
        }
        let entry = |result: Result<(String, bool), Vec<RecErr>>| match result {
            Ok((id, _)) if op != Op::Upsert => json!({"id": id, "success": true, "errors": []}),
            Ok((id, new)) => json!({"id": id, "success": true, "errors": [], "created": new}),
            // Salesforce leaves `id` out of a failed entry.
            Err(errors) => {
                let errors: Vec<Value> = errors.iter().map(RecErr::to_json).collect();
                json!({"success": false, "errors": errors})
            }
        };
        reply(200, results.into_iter().map(entry).collect())
    }
}

/// `{"attributes":{"type","url"}, field: value|null, …}`.
fn record_json(object: &str, record: &Record, names: &[String], version: u32) -> Value {
    let id = text_of(record, "Id").unwrap_or_default();
    let url = format!("/services/data/v{version}.0/sobjects/{object}/{id}");
    let mut out = Map::new();
    out.insert("attributes".into(), json!({"type": object, "url": url}));
    for name in names {
        out.insert(
            name.clone(),
            get_ci(record, name).cloned().unwrap_or_default(),
        );
    }
    Value::Object(out)
}

fn invalid_field(name: &str, object: &str) -> Answer {
    let message = format!("No such column '{name}' on entity '{object}'.");
    bad("INVALID_FIELD", &message)
}

// ---------------------------------------------------------------------------------------------
// SOQL and SOSL subsets
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Word(String),
    Str(String),
    Sym(char),
}

/// Tokens of a SOQL statement or SOSL tail; `.1` is the error code for malformed text.
struct Tokens(VecDeque<Tok>, &'static str);

impl Tokens {
    fn lex(text: &str, code: &'static str) -> Result<Tokens, Answer> {
        let mut out = VecDeque::new();
        let mut chars = text.chars().peekable();
        let word_char = |c: &char| c.is_ascii_alphanumeric() || *c == '_' || *c == '.';
        while let Some(c) = chars.next() {
            match c {
                ',' | '(' | ')' | '=' => out.push_back(Tok::Sym(c)),
                '\'' => {
                    let mut literal = String::new();
                    loop {
                        match (chars.next(), chars.peek()) {
                            (Some('\''), _) => break,
                            (Some('\\'), Some('\'' | '\\')) => literal.extend(chars.next()),
                            (Some('\\'), _) | (None, _) => return Err(bad(code, "bad literal")),
                            (Some(c), _) => literal.push(c),
                        }
                    }
                    out.push_back(Tok::Str(literal));
                }
                c if word_char(&c) => {
                    let mut word = c.to_string();
                    word.extend(std::iter::from_fn(|| chars.next_if(word_char)));
                    out.push_back(Tok::Word(word));
                }
                c if c.is_whitespace() => {}
                other => return Err(bad(code, &format!("unexpected token: '{other}'"))),
            }
        }
        Ok(Tokens(out, code))
    }

    fn fail<T>(&self, found: Option<Tok>) -> Result<T, Answer> {
        Err(bad(self.1, &format!("unexpected token: {found:?}")))
    }

    fn word(&mut self) -> Result<String, Answer> {
        match self.0.pop_front() {
            Some(Tok::Word(w)) => Ok(w),
            other => self.fail(other),
        }
    }

    fn literal(&mut self) -> Result<String, Answer> {
        match self.0.pop_front() {
            Some(Tok::Str(s)) => Ok(s),
            other => self.fail(other),
        }
    }

    /// A literal: `'text'`, or `true`/`false`.
    fn value(&mut self) -> Result<Value, Answer> {
        match self.0.pop_front() {
            Some(Tok::Str(s)) => Ok(Value::String(s)),
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("true") => Ok(json!(true)),
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("false") => Ok(json!(false)),
            other => self.fail(other),
        }
    }

    fn peek_keyword(&self, keyword: &str) -> bool {
        matches!(self.0.front(), Some(Tok::Word(w)) if w.eq_ignore_ascii_case(keyword))
    }

    fn keyword(&mut self, keyword: &str) -> Result<(), Answer> {
        match self.0.pop_front() {
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case(keyword) => Ok(()),
            other => self.fail(other),
        }
    }

    fn eat(&mut self, c: char) -> bool {
        let found = self.0.front() == Some(&Tok::Sym(c));
        found && self.0.pop_front().is_some()
    }

    fn expect(&mut self, c: char) -> Result<(), Answer> {
        if self.eat(c) {
            Ok(())
        } else {
            self.fail(self.0.front().cloned())
        }
    }

    /// `a, b, …`, one `item` each.
    fn list<T>(&mut self, item: fn(&mut Self) -> Result<T, Answer>) -> Result<Vec<T>, Answer> {
        let mut out = vec![item(self)?];
        while self.eat(',') {
            out.push(item(self)?);
        }
        Ok(out)
    }

    fn end(&mut self) -> Result<(), Answer> {
        match self.0.pop_front() {
            None => Ok(()),
            other => self.fail(other),
        }
    }
}

/// Field names resolved against `schema` (of object `object`), canonically spelled.
fn resolve(schema: &Schema, object: &str, names: &[String]) -> Result<Vec<String>, Answer> {
    let one = |n: &String| {
        let field = schema.field(n).map(|f| f.name.clone());
        field.ok_or_else(|| invalid_field(n, object))
    };
    names.iter().map(one).collect()
}

/// How a queried field compares: text case-insensitively, ids by 15 or 18 characters, booleans
/// against `true`/`false`; DateTime filters are not in the subset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Text,
    Id,
    Bool,
    DateTime,
}

/// A queryable object: name, fields and the records the integration user can see.
struct Table {
    name: &'static str,
    fields: Vec<(String, Kind)>,
    records: Vec<Record>,
}

impl Table {
    fn field(&self, key: &str) -> Result<(String, Kind), Answer> {
        let found = self
            .fields
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(key));
        found.cloned().ok_or_else(|| invalid_field(key, self.name))
    }
}

/// One condition: the field, its kind, the values, and whether it is `NOT IN` (matches when
/// the field equals none of them).
type Cond = (String, Kind, Vec<Value>, bool);

/// The setup objects the subset knows; querying them needs "View Setup and Configuration"
/// (Group: the object reference's "Special Access Rules", Spring '20 and later; GroupMember has
/// no such rule).
const SETUP_OBJECTS: [&str; 4] = [
    "AssignmentRule",
    "ObjectPermissions",
    "PermissionSetAssignment",
    "Group",
];

impl OrgState {
    /// The object named in a FROM clause.
    ///
    /// Without "View Setup and Configuration" a setup object answers as a type the user cannot
    /// access does: `INVALID_TYPE` "sObject type 'X' is not supported." (the answer Salesforce
    /// gives for objects outside a user's permissions; no page documents the setup objects'
    /// case specifically).
    fn table(&self, name: &str) -> Result<Table, Answer> {
        let named = |n: &str| n.eq_ignore_ascii_case(name);
        let unsupported = || {
            let message = format!(
                "sObject type '{name}' is not supported. If you are attempting to use a custom object, be sure to append the '__c' after the entity name. Please reference your WSDL or the describe call for the appropriate names."
            );
            Err(bad("INVALID_TYPE", &message))
        };
        if SETUP_OBJECTS.iter().any(|o| named(o)) && !self.view_setup {
            return unsupported();
        }
        let cols = |list: &[(&str, Kind)]| -> Vec<(String, Kind)> {
            list.iter().map(|(n, k)| (n.to_string(), *k)).collect()
        };
        let record = |pairs: Vec<(&str, Value)>| -> Record {
            pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
        };
        if let Some(obj) = Obj::parse(name) {
            let kind = |f: &Field| match f.ty {
                FieldType::Id | FieldType::Reference(_) => Kind::Id,
                FieldType::DateTime => Kind::DateTime,
                _ => Kind::Text,
            };
            let schema = self.schema(obj);
            let fields = schema
                .fields
                .iter()
                .map(|f| (f.name.clone(), kind(f)))
                .collect();
            let all = [&self.db.cases, &self.db.contacts][obj as usize];
            let visible = (0..all.len()).filter(|i| self.readable(obj, *i));
            let records = visible.map(|i| all[i].clone()).collect();
            return Ok(Table {
                name: obj.name(),
                fields,
                records,
            });
        }
        let yes = |b: bool| json!(b);
        let (table, fields, records) = if named("Organization") {
            let fields = cols(&[
                ("Id", Kind::Id),
                ("Name", Kind::Text),
                ("DefaultCaseAccess", Kind::Text),
            ]);
            let org = record(vec![
                ("Id", json!(format!("{ORG_ID}AAA"))),
                ("Name", json!("Fake Org")),
                ("DefaultCaseAccess", json!(self.case_access.api_value())),
            ]);
            ("Organization", fields, vec![org])
        } else if named("AssignmentRule") {
            let fields = cols(&[
                ("Id", Kind::Id),
                ("Name", Kind::Text),
                ("SobjectType", Kind::Text),
                ("Active", Kind::Bool),
            ]);
            let rule = |r: &Rule| {
                record(vec![
                    ("Id", json!(r.id)),
                    ("Name", json!(r.name)),
                    ("SobjectType", json!("Case")),
                    ("Active", yes(r.active)),
                ])
            };
            (
                "AssignmentRule",
                fields,
                self.rules.iter().map(rule).collect(),
            )
        } else if named("PermissionSetAssignment") {
            let fields = cols(&[
                ("Id", Kind::Id),
                ("PermissionSetId", Kind::Id),
                ("AssigneeId", Kind::Id),
            ]);
            let assignment = record(vec![
                ("Id", json!("0PaFAKE00000001AAA")),
                ("PermissionSetId", json!(PERMISSION_SET_ID)),
                ("AssigneeId", json!(USER_ID_18)),
            ]);
            ("PermissionSetAssignment", fields, vec![assignment])
        } else if named("Group") {
            let fields = cols(&[
                ("Id", Kind::Id),
                ("Name", Kind::Text),
                ("DeveloperName", Kind::Text),
                ("Type", Kind::Text),
            ]);
            let group = record(vec![
                ("Id", json!(SHARING_GROUP_ID)),
                ("Name", json!("ctr-cases integration")),
                ("DeveloperName", json!(SHARING_GROUP_NAME)),
                ("Type", json!("Regular")),
            ]);
            ("Group", fields, vec![group])
        } else if named("GroupMember") {
            let fields = cols(&[
                ("Id", Kind::Id),
                ("GroupId", Kind::Id),
                ("UserOrGroupId", Kind::Id),
            ]);
            let member = record(vec![
                ("Id", json!("011FAKE00000001AAA")),
                ("GroupId", json!(SHARING_GROUP_ID)),
                ("UserOrGroupId", json!(USER_ID_18)),
            ]);
            let members = self.sharing_rule.map(|_| member).into_iter().collect();
            ("GroupMember", fields, members)
        } else if named("ObjectPermissions") {
            let flags = [
                "PermissionsRead",
                "PermissionsCreate",
                "PermissionsEdit",
                "PermissionsDelete",
                "PermissionsViewAllRecords",
                "PermissionsModifyAllRecords",
            ];
            let mut fields = cols(&[
                ("Id", Kind::Id),
                ("ParentId", Kind::Id),
                ("SobjectType", Kind::Text),
            ]);
            fields.extend(flags.iter().map(|f| (f.to_string(), Kind::Bool)));
            let values = [true, true, true, false, self.view_all, self.modify_all];
            let mut case = record(vec![
                ("Id", json!("110FAKE00000001AAA")),
                ("ParentId", json!(PERMISSION_SET_ID)),
                ("SobjectType", json!("Case")),
            ]);
            case.extend(
                flags
                    .iter()
                    .zip(values)
                    .map(|(f, v)| (f.to_string(), yes(v))),
            );
            ("ObjectPermissions", fields, vec![case])
        } else {
            return unsupported();
        };
        Ok(Table {
            name: table,
            fields,
            records,
        })
    }

    /// `GET query?q=SELECT f, … FROM T [WHERE c (AND c … | OR c …)]` with `c` one of
    /// `f = 'x'`, `f = true|false`, `f [NOT] IN ('a', …)` or `f IN (SELECT g FROM U [WHERE …])`.
    /// T is Case, Contact, Organization, AssignmentRule, ObjectPermissions,
    /// PermissionSetAssignment, Group or GroupMember; Cases the user cannot see are left out
    /// silently. AND and OR
    /// do not mix without parentheses (SOQL refuses that too). Results never page (`done` is
    /// always true).
    fn query(&self, q: &str, version: u32) -> Result<Answer, Answer> {
        let mut t = Tokens::lex(q, "MALFORMED_QUERY")?;
        let (table, names, hits) = self.select(&mut t)?;
        t.end()?;
        let records: Vec<Value> = hits
            .iter()
            .map(|r| record_json(table.name, r, &names, version))
            .collect();
        let total = records.len();
        Ok(reply(
            200,
            json!({"totalSize": total, "done": true, "records": records}),
        ))
    }

    /// One `SELECT … FROM … [WHERE …]`: the table, the selected names and the matching records.
    fn select(&self, t: &mut Tokens) -> Result<(Table, Vec<String>, Vec<Record>), Answer> {
        t.keyword("SELECT")?;
        let select = t.list(Tokens::word)?;
        t.keyword("FROM")?;
        let table = self.table(&t.word()?)?;
        let names = select
            .iter()
            .map(|n| table.field(n).map(|f| f.0))
            .collect::<Result<Vec<_>, _>>()?;
        let mut conditions: Vec<Cond> = Vec::new();
        let mut joiner: Option<&str> = None;
        if t.peek_keyword("WHERE") {
            t.keyword("WHERE")?;
            loop {
                conditions.push(self.condition(t, &table)?);
                let next = ["AND", "OR"].into_iter().find(|k| t.peek_keyword(k));
                let Some(next) = next else { break };
                if joiner.is_some_and(|j| j != next) {
                    let message = "unexpected token: mixing AND and OR needs parentheses";
                    return Err(bad("MALFORMED_QUERY", message));
                }
                t.keyword(next)?;
                joiner = Some(next);
            }
        }
        let matches = |r: &Record, (field, kind, values, negated): &Cond| {
            let stored = get_ci(r, field).cloned().unwrap_or_default();
            let listed = values.iter().any(|v| match (kind, &stored, v) {
                (Kind::Id, Value::String(s), Value::String(v)) => same_id(s, v),
                (Kind::Text, Value::String(s), Value::String(v)) => s.eq_ignore_ascii_case(v),
                (_, Value::Null, Value::String(v)) => v.is_empty(),
                (_, s, v) => s == v,
            });
            // SOQL's NOT IN, like its `!=`, keeps records whose field is null.
            listed != *negated
        };
        let all = joiner == Some("AND");
        let hit = |r: &Record| match all {
            true => conditions.iter().all(|c| matches(r, c)),
            false => conditions.is_empty() || conditions.iter().any(|c| matches(r, c)),
        };
        let hits = table.records.iter().filter(|r| hit(r)).cloned().collect();
        Ok((table, names, hits))
    }

    /// `f = v`, `f IN (v, …)`, `f NOT IN (v, …)` or `f IN (SELECT g FROM …)`.
    fn condition(&self, t: &mut Tokens, table: &Table) -> Result<Cond, Answer> {
        let name = t.word()?;
        let (field, kind) = table.field(&name)?;
        let mut negated = false;
        let values = if t.eat('=') {
            vec![t.value()?]
        } else {
            if t.peek_keyword("NOT") {
                t.keyword("NOT")?;
                negated = true;
            }
            t.keyword("IN")?;
            t.expect('(')?;
            let values = if t.peek_keyword("SELECT") {
                // A semi-join: the values of the inner query's one field.
                let (_, inner, hits) = self.select(t)?;
                let [column] = inner.as_slice() else {
                    return Err(bad("MALFORMED_QUERY", "a semi-join selects one field"));
                };
                hits.iter().map(|r| r[column].clone()).collect()
            } else {
                t.list(Tokens::value)?
            };
            t.expect(')')?;
            values
        };
        let wrong = |message: String| Err(bad("INVALID_QUERY_FILTER_OPERATOR", &message));
        match kind {
            Kind::DateTime => {
                return wrong(format!(
                    "value of filter criterion for field '{field}' must be of type dateTime and should not be enclosed in quotes"
                ));
            }
            Kind::Bool if !values.iter().all(Value::is_boolean) => {
                return wrong(format!(
                    "value of filter criterion for field '{field}' must be of type boolean and should not be enclosed in quotes"
                ));
            }
            Kind::Text | Kind::Id if !values.iter().all(Value::is_string) => {
                return wrong(format!(
                    "value of filter criterion for field '{field}' must be of type string and should be enclosed in quotes"
                ));
            }
            _ => {}
        }
        let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
        if let Some(v) = values
            .iter()
            .map(text)
            .find(|v| kind == Kind::Id && !is_id(v, ""))
        {
            return wrong(format!("invalid ID field: {v}"));
        }
        Ok((field, kind, values, negated))
    }

    /// `GET search?q=FIND {term} IN PHONE FIELDS RETURNING Contact[(f, …)]`.
    ///
    /// Reserved characters (`& | ! ( ) { } [ ] ^ " ~ * ? : \ ' + -`) must be escaped with `\`, as
    /// the SOSL "FIND {SearchQuery}" reference says; unescaped ones are refused, not guessed at.
    /// A phone field matches when its digits equal the term's: the SOSL reference splits text on
    /// spaces and punctuation, and the SOAP API's example `find {4159017000} in phone fields`
    /// looks up formatted numbers. No documented rule folds country codes, so none is folded:
    /// `+15555550147` does not find `(555) 555-0147`, and `5555550147` does.
    fn search(&self, q: &str, version: u32) -> Result<Answer, Answer> {
        const RESERVED: &str = "&|!(){}[]^\"~*?:\\'+-";
        let malformed = |m: &str| bad("MALFORMED_SEARCH", m);
        let q = q.trim_start();
        let find = q.get(..5).filter(|f| f.eq_ignore_ascii_case("FIND "));
        let rest = find.and_then(|_| q[5..].trim_start().strip_prefix('{'));
        let Some(rest) = rest else {
            return Err(malformed(
                "No search term found. The search term must be enclosed in braces.",
            ));
        };
        let (mut term, mut chars, mut end) = (String::new(), rest.char_indices(), None);
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, e)) if RESERVED.contains(e) => term.push(e),
                    _ => return Err(malformed("Invalid escape sequence in the search term")),
                },
                '}' => {
                    end = Some(i);
                    break;
                }
                c if RESERVED.contains(c) => {
                    return Err(malformed(&format!("unescaped reserved character '{c}'")));
                }
                c => term.push(c),
            }
        }
        let end = end.ok_or_else(|| malformed("the search term has no closing brace"))?;
        let mut t = Tokens::lex(&rest[end + 1..], "MALFORMED_SEARCH")?;
        for keyword in ["IN", "PHONE", "FIELDS", "RETURNING", "Contact"] {
            t.keyword(keyword)?;
        }
        let mut names = vec!["Id".to_owned()];
        if t.eat('(') {
            names = resolve(&self.contact_schema, "Contact", &t.list(Tokens::word)?)?;
            t.expect(')')?;
        }
        t.end()?;
        let digits = |s: &str| s.chars().filter(char::is_ascii_digit).collect::<String>();
        // `a OR b`: any of the terms (SOSL's logical operator; AND and NOT are not supported).
        let mut wanted = Vec::new();
        for part in term
            .split_whitespace()
            .collect::<Vec<_>>()
            .split(|w| *w == "OR")
        {
            let term = digits(&part.join(" "));
            if term.len() < 2 {
                return Err(malformed("search term must be longer than one character"));
            }
            wanted.push(term);
        }
        let phone =
            |c: &Record, f: &str| text_of(c, f).is_some_and(|p| wanted.contains(&digits(p)));
        let hit = |c: &&Record| phone(c, "Phone") || phone(c, "MobilePhone");
        let found = self.db.contacts.iter().filter(hit);
        let found: Vec<Value> = found
            .map(|c| record_json("Contact", c, &names, version))
            .collect();
        // From API 36.0 the answer is `{"searchRecords": […]}`; before, a bare array.
        let body = if version >= 36 {
            json!({"searchRecords": found})
        } else {
            json!(found)
        };
        Ok(reply(200, body))
    }
}

// ---------------------------------------------------------------------------------------------
// Composite
// ---------------------------------------------------------------------------------------------

/// A subrequest's `(httpStatusCode, body, httpHeaders)`.
type SubResult = (u16, Value, Value);

fn halted(message: &str) -> SubResult {
    let body = json!([{"errorCode": "PROCESSING_HALTED", "message": message}]);
    (400, body, json!({}))
}

/// The value at `path` (`.field`, `[index]`, repeated) in `value`.
fn walk<'a>(mut value: &'a Value, mut path: &str) -> Option<&'a Value> {
    while !path.is_empty() {
        if let Some(rest) = path.strip_prefix('.') {
            let end = rest.find(['.', '[']).unwrap_or(rest.len());
            (value, path) = (value.get(&rest[..end])?, &rest[end..]);
        } else {
            let (index, rest) = path.strip_prefix('[')?.split_once(']')?;
            (value, path) = (value.get(index.parse::<usize>().ok()?)?, rest);
        }
    }
    Some(value)
}

/// Replace every `@{refId.path}` in `text` by the value's text; when `text` is one reference
/// alone, the JSON value comes back too. `Err`: the PROCESSING_HALTED message, worded like the
/// Composite reference's "Invalid reference specified" examples.
fn substitute(
    text: &str,
    done: &HashMap<String, SubResult>,
) -> Result<(String, Option<Value>), String> {
    let (mut out, mut rest) = (String::new(), text);
    while let Some(start) = rest.find("@{") {
        let Some(len) = rest[start..].find('}') else {
            break;
        };
        let reference = &rest[start + 2..start + len];
        let ref_id = reference.split(['.', '[']).next().unwrap_or_default();
        // "Dependent subrequests aren't executed": a failed one cannot be referenced.
        let parent = done.get(ref_id).filter(|r| r.0 < 400);
        let value = parent.and_then(|p| walk(&p.1, &reference[ref_id.len()..]));
        let Some(value) = value else {
            return Err(format!(
                "Invalid reference specified. No value for {reference} found in {ref_id}."
            ));
        };
        let text = match value {
            Value::String(s) => s.clone(),
            Value::Null => String::new(),
            other => other.to_string(),
        };
        if start == 0 && len + 1 == rest.len() && out.is_empty() {
            return Ok((text, Some(value.clone())));
        }
        out.push_str(&rest[..start]);
        out.push_str(&text);
        rest = &rest[start + len + 1..];
    }
    out.push_str(rest);
    Ok((out, None))
}

fn substitute_json(value: Value, done: &HashMap<String, SubResult>) -> Result<Value, String> {
    let each = |v| substitute_json(v, done);
    Ok(match value {
        Value::String(s) => match substitute(&s, done)? {
            (_, Some(whole)) => whole,
            (text, None) => Value::String(text),
        },
        Value::Array(items) => Value::Array(items.into_iter().map(each).collect::<Result<_, _>>()?),
        Value::Object(map) => {
            let pairs = map.into_iter().map(|(k, v)| Ok((k, each(v)?)));
            Value::Object(pairs.collect::<Result<_, String>>()?)
        }
        other => other,
    })
}

/// A subrequest as sent: method, url, referenceId, body and `httpHeaders` (names lower-cased).
type Sub = (Method, String, String, Option<Value>, Vec<(String, String)>);

fn headers_of(sub: &Value) -> impl Iterator<Item = (&String, &Value)> {
    sub.get("httpHeaders")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
}

/// Check one subrequest of a composite request; `Err` fails the whole request (400).
fn parse_sub(sub: &Value) -> Result<Sub, Answer> {
    let text = |k: &str| sub.get(k).and_then(Value::as_str);
    let (Some(method), Some(url), Some(ref_id)) =
        (text("method"), text("url"), text("referenceId"))
    else {
        return Err(parser_error(
            "a subrequest needs method, url and referenceId",
        ));
    };
    let first_ok = ref_id.starts_with(|c: char| c.is_ascii_alphanumeric());
    if !first_ok
        || !ref_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        // From API 52.0 an illegal reference id fails the whole request (documented).
        let message = format!(
            "Provided referenceId ('{ref_id}') must start with a letter or a number, and it can contain only letters, numbers and underscores ('_')."
        );
        return Err(bad("JSON_PARSER_ERROR", &message));
    }
    // Subrequests inherit these three headers; setting one fails the request (documented).
    let inherited = ["accept", "authorization", "content-type"];
    let headers = headers_of(sub);
    if headers
        .map(|(k, _)| k.to_ascii_lowercase())
        .any(|k| inherited.contains(&k.as_str()))
    {
        return Err(bad(
            "INVALID_INPUT",
            "Subrequests can't set Accept, Authorization or Content-Type",
        ));
    }
    let method = Method::from_bytes(method.as_bytes()).map_err(|_| parser_error("bad method"))?;
    let mut http_headers = Vec::new();
    for (name, value) in headers_of(sub) {
        let Some(value) = value.as_str() else {
            return Err(parser_error(&format!(
                "httpHeaders.{name}: expected a string"
            )));
        };
        http_headers.push((name.to_ascii_lowercase(), value.to_owned()));
    }
    Ok((
        method,
        url.to_owned(),
        ref_id.to_owned(),
        sub.get("body").cloned(),
        http_headers,
    ))
}

impl OrgState {
    /// `POST composite`: up to 25 subrequests (at most 5 collections or queries) run in order,
    /// with `@{ref…}` references into earlier answers. With `allOrNone: true` one failure (a
    /// 4xx/5xx, or a failed collections record) rolls every write back and the others answer
    /// `400 PROCESSING_HALTED`; otherwise only subrequests referencing a failed one halt.
    fn composite(&mut self, body: Option<Value>, injected: &mut Injected) -> Answer {
        let Some(Value::Object(body)) = body else {
            return parser_error("expected a composite request");
        };
        let known = ["allOrNone", "collateSubrequests", "compositeRequest"];
        if let Some(key) = body.keys().find(|k| !known.contains(&k.as_str())) {
            return parser_error(&format!("Unrecognized field \"{key}\""));
        }
        let all_or_none = body.get("allOrNone") == Some(&json!(true));
        let Some(Value::Array(subs)) = body.get("compositeRequest") else {
            return parser_error("compositeRequest: required field is missing");
        };
        let url = |s: &Value| s["url"].as_str().unwrap_or_default().to_owned();
        let heavy = subs
            .iter()
            .map(url)
            .filter(|u| u.contains("/composite/sobjects") || u.contains("/query"));
        if subs.len() > MAX_COMPOSITE_SUBREQUESTS || heavy.count() > 5 {
            // The documented limits; Salesforce's error code for them is not documented.
            let message = "A composite request has at most 25 subrequests, at most 5 of them collections or queries";
            return bad("LIMIT_EXCEEDED", message);
        }
        let subs = match subs.iter().map(parse_sub).collect::<Result<Vec<_>, _>>() {
            Ok(subs) => subs,
            Err(answer) => return answer,
        };
        let saved = all_or_none.then(|| self.db.clone());
        self.composite_all_or_none = all_or_none;
        self.in_composite = true;
        // The request's own Sforce-Auto-Assign reaches every subrequest; a subrequest's
        // `httpHeaders` override it (Composite reference, "httpHeaders").
        let top = self.assign_header.clone();
        let (mut done, mut order, mut failed) = (HashMap::new(), Vec::new(), None);
        for (method, url, ref_id, body, headers) in subs {
            let header = |name: &str| {
                headers
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.clone())
            };
            self.assign_header = header("sforce-auto-assign").or_else(|| top.clone());
            let since = header("if-modified-since");
            let result = match failed {
                Some(_) => halted(ROLLED_BACK),
                None => self.subrequest(&method, &url, body, since, &done, injected),
            };
            let entries = result.1.as_array();
            let record_failed = entries.is_some_and(|a| a.iter().any(|r| r["success"] == false));
            if all_or_none && failed.is_none() && (result.0 >= 400 || record_failed) {
                failed = Some(order.len());
            }
            order.push(ref_id.clone());
            done.insert(ref_id, result);
        }
        self.composite_all_or_none = false;
        self.in_composite = false;
        self.assign_header = top;
        if let (Some(index), Some(saved)) = (failed, saved) {
            self.db = saved;
            for ref_id in &order[..index] {
                done.insert(ref_id.clone(), halted(ROLLED_BACK));
            }
        }
        let response = |ref_id: String| {
            let (code, body, headers) = done.remove(&ref_id).unwrap_or_else(|| halted(ROLLED_BACK));
            json!({"body": body, "httpHeaders": headers, "httpStatusCode": code, "referenceId": ref_id})
        };
        let responses: Vec<Value> = order.into_iter().map(response).collect();
        reply(200, json!({"compositeResponse": responses}))
    }

    fn subrequest(
        &mut self,
        method: &Method,
        url: &str,
        body: Option<Value>,
        since: Option<String>,
        done: &HashMap<String, SubResult>,
        injected: &mut Injected,
    ) -> SubResult {
        let body = body.map(|b| substitute_json(b, done)).transpose();
        let resolved = substitute(url, done).and_then(|(url, _)| Ok((url, body?)));
        let (url, body) = match resolved {
            Ok(resolved) => resolved,
            Err(message) => return halted(&message),
        };
        let (path, query) = url.split_once('?').unwrap_or((&url, ""));
        let answer = match parse_data_path(path) {
            Some((version, segments)) => {
                let query = parse_query(query);
                let call = Call {
                    method,
                    version,
                    segments,
                    query,
                    body,
                    since,
                };
                self.route(call, injected, true)
            }
            None => not_found(),
        };
        match answer {
            Answer::Json(code, body, location) => {
                let headers = location.map_or(json!({}), |l| json!({"Location": l}));
                (code, body, headers)
            }
            Answer::Empty(code) => (code, Value::Null, json!({})),
            other => (
                500,
                json!([{"errorCode": "UNKNOWN_EXCEPTION", "message": format!("{other:?}")}]),
                json!({}),
            ),
        }
    }
}

//! A stateful fake Salesforce org for integration tests.
//!
//! Owns: an axum server on `127.0.0.1:0` that speaks the Salesforce REST wire format described in
//! `shared/salesforce-wire.md` (the OAuth token endpoint and the Case data API), an in-memory
//! store of Case records keyed by the external id field, counters (token grants, API calls) and
//! scripted or random faults. Tests drive the client under test against
//! [`FakeSalesforce::base_url`] and then assert on [`FakeOrg`]'s state.
//!
//! Must not: depend on, or bend towards, any particular client. Every behaviour here follows the
//! documented Salesforce behaviour; where the documentation is silent the choice is noted on the
//! item and kept strict (a fake that accepts more than Salesforce hides client bugs).
//!
//! # Endpoints
//! * `POST /services/oauth2/token`: `password`, `client_credentials` and JWT bearer grants,
//!   form-encoded body only. Every successful grant issues a new, distinct access token.
//! * `/services/data/vNN.0/...` (any `vNN.0`), with `Authorization: Bearer <token>`:
//!   * `POST sobjects/Case`: create one Case;
//!   * `PATCH sobjects/Case/{EXTERNAL_ID_FIELD}/{value}`: upsert one Case by external id;
//!   * `POST composite/sobjects`: sObject Collections create (≤ 200 records);
//!   * `PATCH composite/sobjects/Case/{EXTERNAL_ID_FIELD}`: sObject Collections upsert.
//!
//! Every data response carries `Sforce-Limit-Info: api-usage=USED/MAX`.
//!
//! # Accounting
//! A data call counts against the daily limit ([`FakeOrg::api_calls`]) once it is authenticated
//! and admitted: calls answered `401 INVALID_SESSION_ID` (no, unknown or expired token, or the
//! [`Fault::InvalidSession`] fault) and calls answered `403 TotalRequests` (the limit itself, or
//! [`Fault::TotalRequestsLimit`]) are not counted; every other authenticated call is, including
//! ones answered with an injected 500/503, a dropped connection or a validation error. A
//! collections request is one call whatever its record count.
//!
//! # The Case object
//! Fields accepted: Subject, Description, Origin, Status, Priority, SuppliedPhone, SuppliedName,
//! SuppliedEmail, Type, Reason, ContactId, AccountId and any custom field (`…__c`). Field names are
//! case-insensitive, as in Salesforce, and are stored under their canonical spelling. Limits:
//! Subject 255, Description 32,000, SuppliedPhone 40, SuppliedName 80 characters (and 255 for the
//! external id, a Text field); Origin ∈ {Phone, Email, Web} and Status ∈ {New, Working, Escalated,
//! Closed} are restricted picklists; a new Case without Status gets the default `New`.
//!
//! The external id field is indexed but *not unique* (the documented default): a plain create may
//! produce a second record with the same external id, and upserting such a value then answers
//! `300 Multiple Choices` (single) or `DUPLICATE_EXTERNAL_ID` (collections), as documented. That is
//! what lets [`FakeOrg::creates_per_external_id`] expose a client that is not idempotent.
//!
//! # Faults
//! Scripted faults ([`FakeOrg::push_fault`]) are consumed in FIFO order, one per data call
//! (token calls never consume one), whether or not the call can be affected by it: a
//! [`Fault::RecordError`] whose external id is not in the next data call is used up with no
//! effect. When no scripted fault is queued, random faults ([`FakeOrg::set_random_faults`]) may
//! fire. A dropped connection closes the socket before any byte of the response is written, so
//! the client sees a transport error; the server keeps serving other connections.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::connect_info::{ConnectInfo, Connected};
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use axum::serve::{IncomingStream, Listener};
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
/// The Case external id field (Text(255), External ID, not unique).
pub const EXTERNAL_ID_FIELD: &str = "Amazon_Connect_Contact_Id__c";

/// The fake org's 15-character organisation id (appears in tokens and identity URLs).
pub const ORG_ID: &str = "00DFAKE00000001";
/// The integration user's 15-character user id (appears in identity URLs).
pub const USER_ID: &str = "005FAKE00000001";
/// Default daily API request limit (Developer Edition).
pub const DEFAULT_DAILY_LIMIT: u64 = 15_000;
/// Maximum number of records in one sObject Collections request.
pub const MAX_COLLECTION_RECORDS: usize = 200;

/// Audiences accepted in a JWT bearer assertion besides the fake's own base URL.
const PUBLIC_LOGIN_URLS: [&str; 2] = [
    "https://login.salesforce.com",
    "https://test.salesforce.com",
];
/// How far ahead a JWT `exp` may be: Salesforce wants at most 3 minutes; 10 s covers clock skew.
const MAX_JWT_LIFETIME_SECS: u64 = 180 + 10;
/// Largest request body read; 200 records with a full Description fit comfortably.
const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

const TEXT_FIELDS: [&str; 12] = [
    "Subject",
    "Description",
    "Origin",
    "Status",
    "Priority",
    "SuppliedPhone",
    "SuppliedName",
    "SuppliedEmail",
    "Type",
    "Reason",
    "ContactId",
    "AccountId",
];
const ORIGIN_VALUES: [&str; 3] = ["Phone", "Email", "Web"];
const STATUS_VALUES: [&str; 4] = ["New", "Working", "Escalated", "Closed"];

// ---------------------------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------------------------

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
    /// PEM RSA public key (SPKI or PKCS#1). When set, JWT bearer assertions must carry a valid
    /// RS256 signature made with the matching private key; when unset the signature is not checked.
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
    let addr = listener.local_addr().expect("local_addr");
    let base_url = format!("http://{addr}");
    let jwt_key = options.jwt_public_key_pem.as_deref().map(|pem| {
        jsonwebtoken::DecodingKey::from_rsa_pem(pem.as_bytes())
            .expect("jwt_public_key_pem must be a PEM RSA public key")
    });
    let org = Arc::new(FakeOrg {
        base_url: base_url.clone(),
        instance_url: options
            .instance_url
            .clone()
            .unwrap_or_else(|| base_url.clone()),
        jwt_key,
        state: Mutex::new(OrgState::new(&options)),
    });
    let app = Router::new()
        .route("/services/oauth2/token", post(token_endpoint))
        .route("/services/data/{*rest}", any(data_api))
        .fallback(not_found)
        .with_state(org.clone());
    let listener = DroppableListener(listener);
    tokio::spawn(async move {
        let service = app.into_make_service_with_connect_info::<ConnectionHandle>();
        if let Err(error) = axum::serve(listener, service).await {
            eprintln!("fake salesforce stopped: {error}");
        }
    });
    FakeSalesforce { base_url, org }
}

/// A scripted fault, consumed by the next data call (FIFO).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// `503` with a `SERVER_UNAVAILABLE` error array; nothing applied.
    Status503,
    /// `500` with an `UNKNOWN_EXCEPTION` error array; nothing applied.
    Status500,
    /// The connection is closed before any response; nothing applied.
    DropConnection,
    /// The request is processed (writes applied to the org), then answered `503`.
    AppliedThen503,
    /// The request is processed (writes applied to the org), then the connection is closed.
    AppliedThenDrop,
    /// `401 INVALID_SESSION_ID`; the token used is revoked for good (as when a session expires),
    /// so only a new grant helps. Not counted as an API call.
    InvalidSession,
    /// `403 REQUEST_LIMIT_EXCEEDED` "TotalRequests Limit exceeded."; not counted.
    TotalRequestsLimit,
    /// `403 REQUEST_LIMIT_EXCEEDED` "ConcurrentPerOrgLongTxn Limit exceeded"; nothing applied.
    ConcurrentLongTxn,
    /// A per-record error for the record with this external id: in a collections request that
    /// record alone fails (the others are applied unless `allOrNone`); in a single-record call
    /// about that external id the call answers `400` with this error. No effect otherwise.
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
    /// `UNABLE_TO_LOCK_ROW` on one randomly chosen record of a collections request (the others
    /// are applied unless `allOrNone`); a single-record write answers `400 UNABLE_TO_LOCK_ROW`.
    UnableToLockRow,
    /// As [`Fault::ConcurrentLongTxn`].
    ConcurrentLongTxn,
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
        parse_form(&self.body)
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
}

impl FakeOrg {
    /// Queue a fault for the next data call (FIFO, one fault per call).
    pub fn push_fault(&self, fault: Fault) {
        self.lock().faults.push_back(fault);
    }

    /// When no scripted fault is queued, each data call independently fails with probability
    /// `rate`, the kind chosen uniformly from `mix`. Deterministic for a given `seed` and call
    /// sequence. `rate <= 0` or an empty `mix` disables random faults.
    pub fn set_random_faults(&self, rate: f64, mix: Vec<FaultKind>, seed: u64) {
        self.lock().random = (rate > 0.0 && !mix.is_empty()).then_some(RandomFaults {
            rate,
            mix,
            rng: SplitMix64(seed),
        });
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

    /// Set the daily API limit. Once `api_calls() >= n`, every data call answers
    /// `403 REQUEST_LIMIT_EXCEEDED` "TotalRequests Limit exceeded.".
    pub fn set_daily_limit(&self, n: u64) {
        self.lock().daily_limit = n;
    }

    /// Change the latency added to every data call.
    pub fn set_latency(&self, latency: Option<Duration>) {
        self.lock().latency = latency;
    }

    /// While `yes`, the token endpoint answers `400 invalid_grant` "authentication failure" to
    /// every grant, valid or not.
    pub fn reject_credentials(&self, yes: bool) {
        self.lock().reject_credentials = yes;
    }

    /// Rotate the user's password (+ security token): from now on only `pw` is accepted by the
    /// password grant. Tokens already issued stay valid.
    pub fn set_accepted_password(&self, pw: &str) {
        self.lock().accepted_password = pw.to_owned();
    }

    /// Issue a valid access token directly, as if a grant had happened (not counted in
    /// [`token_requests`](Self::token_requests) or [`token_grants`](Self::token_grants)).
    pub fn issue_token(&self) -> String {
        self.lock().new_token()
    }

    /// Every stored Case, in creation order, each with `Id` and its fields.
    pub fn cases(&self) -> Vec<Value> {
        self.lock()
            .cases
            .iter()
            .map(|c| Value::Object(c.clone()))
            .collect()
    }

    /// The (first-created) Case whose external id is `external_id` (exact match).
    pub fn case(&self, external_id: &str) -> Option<Value> {
        let state = self.lock();
        let index = state.matching(external_id).into_iter().next()?;
        Some(Value::Object(state.cases[index].clone()))
    }

    /// Number of stored Cases.
    pub fn case_count(&self) -> usize {
        self.lock().cases.len()
    }

    /// For each external id, how many records were *created* with it (by create or upsert).
    /// An idempotent client keeps every value at 1, whatever the faults.
    pub fn creates_per_external_id(&self) -> HashMap<String, u32> {
        self.lock().creates.clone()
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

    /// The current daily limit.
    pub fn daily_limit(&self) -> u64 {
        self.lock().daily_limit
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

    /// Random faults injected so far ([`FakeOrg::set_random_faults`]), by kind.
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
// State
// ---------------------------------------------------------------------------------------------

type Record = Map<String, Value>;

struct OrgState {
    cases: Vec<Record>,
    creates: HashMap<String, u32>,
    /// Issued tokens; `false` once expired or revoked.
    tokens: HashMap<String, bool>,
    token_requests: u64,
    token_grants: u64,
    api_calls: u64,
    daily_limit: u64,
    latency: Option<Duration>,
    faults: VecDeque<Fault>,
    random: Option<RandomFaults>,
    /// Random faults injected so far, by kind.
    injected: BTreeMap<String, u64>,
    reject_credentials: bool,
    accepted_password: String,
    requests: Vec<RecordedRequest>,
    next_record: u64,
    /// Source of token suffixes and signatures (not the fault stream, so that grants do not
    /// shift the seeded fault sequence).
    token_rng: SplitMix64,
}

struct RandomFaults {
    rate: f64,
    mix: Vec<FaultKind>,
    rng: SplitMix64,
}

impl OrgState {
    fn new(options: &FakeOptions) -> Self {
        Self {
            cases: Vec::new(),
            creates: HashMap::new(),
            tokens: HashMap::new(),
            token_requests: 0,
            token_grants: 0,
            api_calls: 0,
            daily_limit: options.daily_limit.unwrap_or(DEFAULT_DAILY_LIMIT),
            latency: options.latency,
            faults: VecDeque::new(),
            random: None,
            injected: BTreeMap::new(),
            reject_credentials: false,
            accepted_password: PASSWORD.to_owned(),
            requests: Vec::new(),
            next_record: 0,
            token_rng: SplitMix64(0x5EED_F00D),
        }
    }

    fn new_token(&mut self) -> String {
        let token = format!(
            "{ORG_ID}!AQ{:04}{:016x}{:016x}",
            self.tokens.len() + 1,
            self.token_rng.next_u64(),
            self.token_rng.next_u64()
        );
        self.tokens.insert(token.clone(), true);
        token
    }

    /// Indices of the Cases whose external id is `value`.
    fn matching(&self, value: &str) -> Vec<usize> {
        self.cases
            .iter()
            .enumerate()
            .filter(|(_, c)| c.get(EXTERNAL_ID_FIELD).and_then(Value::as_str) == Some(value))
            .map(|(i, _)| i)
            .collect()
    }

    /// Store a new Case and return its 18-character id (`500` key prefix).
    fn create(&mut self, mut fields: Record) -> String {
        self.next_record += 1;
        let id = format!("500FAKE{:08}AAA", self.next_record);
        fields.entry("Status").or_insert_with(|| json!("New"));
        if let Some(ext) = fields.get(EXTERNAL_ID_FIELD).and_then(Value::as_str) {
            *self.creates.entry(ext.to_owned()).or_insert(0) += 1;
        }
        fields.insert("Id".into(), json!(id));
        self.cases.push(fields);
        id
    }

    /// Apply `fields` to the Case at `index`; returns its id.
    fn update(&mut self, index: usize, fields: Record) -> String {
        let case = &mut self.cases[index];
        case.extend(fields);
        case["Id"].as_str().unwrap_or_default().to_owned()
    }

    /// The fault for this data call: the next scripted one, else possibly a random one.
    fn next_fault(&mut self) -> Option<ActiveFault> {
        if let Some(fault) = self.faults.pop_front() {
            return Some(ActiveFault::from(fault));
        }
        let random = self.random.as_mut()?;
        if random.rng.next_f64() >= random.rate {
            return None;
        }
        let kind = random.mix[random.rng.below(random.mix.len())];
        *self.injected.entry(format!("{kind:?}")).or_default() += 1;
        Some(match kind {
            FaultKind::Status503 => ActiveFault::Status503,
            FaultKind::Status500 => ActiveFault::Status500,
            FaultKind::DropConnection => ActiveFault::Drop,
            FaultKind::AppliedThen503 => ActiveFault::AppliedThen503,
            FaultKind::AppliedThenDrop => ActiveFault::AppliedThenDrop,
            FaultKind::UnableToLockRow => ActiveFault::LockRow(random.rng.next_u64()),
            FaultKind::ConcurrentLongTxn => ActiveFault::ConcurrentLongTxn,
        })
    }
}

/// A fault chosen for one data call.
enum ActiveFault {
    Status503,
    Status500,
    Drop,
    AppliedThen503,
    AppliedThenDrop,
    InvalidSession,
    TotalRequests,
    ConcurrentLongTxn,
    Record(RecordError),
    /// `UNABLE_TO_LOCK_ROW` on record `n % len` of the request.
    LockRow(u64),
}

impl From<Fault> for ActiveFault {
    fn from(fault: Fault) -> Self {
        match fault {
            Fault::Status503 => Self::Status503,
            Fault::Status500 => Self::Status500,
            Fault::DropConnection => Self::Drop,
            Fault::AppliedThen503 => Self::AppliedThen503,
            Fault::AppliedThenDrop => Self::AppliedThenDrop,
            Fault::InvalidSession => Self::InvalidSession,
            Fault::TotalRequestsLimit => Self::TotalRequests,
            Fault::ConcurrentLongTxn => Self::ConcurrentLongTxn,
            Fault::RecordError {
                external_id,
                status_code,
                message,
                fields,
            } => Self::Record(RecordError {
                external_id,
                error: RecErr {
                    status_code,
                    message,
                    fields,
                },
            }),
        }
    }
}

struct RecordError {
    external_id: String,
    error: RecErr,
}

/// SplitMix64: tiny, seedable, good enough for test fault injection.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

// ---------------------------------------------------------------------------------------------
// Connections that a handler can drop
// ---------------------------------------------------------------------------------------------

/// Wraps the TCP listener so that every connection can be killed by its handler.
struct DroppableListener(TcpListener);

impl Listener for DroppableListener {
    type Io = DroppableStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.0.accept().await {
                Ok((stream, addr)) => {
                    let killed = Arc::new(AtomicBool::new(false));
                    return (
                        DroppableStream {
                            inner: stream,
                            killed,
                        },
                        addr,
                    );
                }
                // Transient (e.g. EMFILE): back off briefly like axum's own listener does.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

/// A TCP stream that fails every read and write once killed. hyper then abandons the
/// connection and drops the socket, so the client sees the connection close with no response.
struct DroppableStream {
    inner: TcpStream,
    killed: Arc<AtomicBool>,
}

impl DroppableStream {
    fn check(&self) -> io::Result<()> {
        if self.killed.load(Ordering::SeqCst) {
            Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "fault: connection dropped",
            ))
        } else {
            Ok(())
        }
    }
}

impl AsyncRead for DroppableStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.check()?;
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for DroppableStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.check()?;
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.check()?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.check()?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

/// Per-connection handle given to handlers (as `ConnectInfo`) to drop their connection.
#[derive(Clone)]
struct ConnectionHandle(Arc<AtomicBool>);

impl ConnectionHandle {
    fn kill(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

impl Connected<IncomingStream<'_, DroppableListener>> for ConnectionHandle {
    fn connect_info(stream: IncomingStream<'_, DroppableListener>) -> Self {
        Self(stream.io().killed.clone())
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP handlers
// ---------------------------------------------------------------------------------------------

async fn read_and_record(org: &FakeOrg, request: Request) -> (Parts, Bytes) {
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .unwrap_or_default();
    let recorded = RecordedRequest {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts
            .headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_ascii_lowercase(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: String::from_utf8_lossy(&bytes).into_owned(),
    };
    org.lock().requests.push(recorded);
    (parts, bytes)
}

async fn not_found(State(org): State<Arc<FakeOrg>>, request: Request) -> Response {
    read_and_record(&org, request).await;
    (
        StatusCode::NOT_FOUND,
        axum::Json(error_array(
            "NOT_FOUND",
            "The requested resource does not exist",
            &[],
        )),
    )
        .into_response()
}

async fn token_endpoint(State(org): State<Arc<FakeOrg>>, request: Request) -> Response {
    let (parts, body) = read_and_record(&org, request).await;
    let (status, body) = org.grant(&parts, &body);
    let mut response = (status, axum::Json(body)).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn data_api(
    State(org): State<Arc<FakeOrg>>,
    ConnectInfo(connection): ConnectInfo<ConnectionHandle>,
    request: Request,
) -> Response {
    let (parts, body) = read_and_record(&org, request).await;
    let latency = org.lock().latency;
    if let Some(latency) = latency {
        tokio::time::sleep(latency).await;
    }
    let (reply, usage) = org.data_call(&parts, &body);
    let mut response = match reply {
        Reply::Json(status, body) => (status, axum::Json(body)).into_response(),
        Reply::Drop => {
            // Fail the connection before hyper writes anything; the response below is never sent.
            connection.kill();
            Response::new(Body::empty())
        }
    };
    let limit_info = format!("api-usage={}/{}", usage.0, usage.1);
    response.headers_mut().insert(
        "sforce-limit-info",
        HeaderValue::from_str(&limit_info).expect("ascii header"),
    );
    response
}

enum Reply {
    Json(StatusCode, Value),
    Drop,
}

fn reply(status: StatusCode, body: Value) -> Reply {
    Reply::Json(status, body)
}

fn error_reply(status: StatusCode, code: &str, message: &str) -> Reply {
    Reply::Json(status, error_array(code, message, &[]))
}

/// A data API error body: `[{"message":..,"errorCode":..,"fields":[..]}]` (`fields` only when
/// there are some, as Salesforce does for request-level errors).
fn error_array(code: &str, message: &str, fields: &[String]) -> Value {
    let mut error = json!({"message": message, "errorCode": code});
    if !fields.is_empty() {
        error["fields"] = json!(fields);
    }
    json!([error])
}

fn oauth_error(error: &str, description: &str) -> (StatusCode, Value) {
    (
        StatusCode::BAD_REQUEST,
        json!({"error": error, "error_description": description}),
    )
}

fn now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

fn content_type_is(headers: &HeaderMap, expected: &str) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(expected))
}

// ---------------------------------------------------------------------------------------------
// OAuth token endpoint
// ---------------------------------------------------------------------------------------------

impl FakeOrg {
    fn grant(&self, parts: &Parts, body: &[u8]) -> (StatusCode, Value) {
        let mut state = self.lock();
        state.token_requests += 1;

        // Credentials in the URL end up in logs and proxies; Salesforce documents the body.
        const SECRET_KEYS: [&str; 6] = [
            "grant_type",
            "client_id",
            "client_secret",
            "username",
            "password",
            "assertion",
        ];
        let query = parse_form(parts.uri.query().unwrap_or_default());
        if query.iter().any(|(k, _)| SECRET_KEYS.contains(&k.as_str())) {
            return oauth_error(
                "invalid_request",
                "credentials must be sent in the request body, not the URL",
            );
        }
        if !content_type_is(&parts.headers, "application/x-www-form-urlencoded") {
            return oauth_error(
                "invalid_request",
                "the body must be application/x-www-form-urlencoded",
            );
        }
        let form: HashMap<String, String> = parse_form(&String::from_utf8_lossy(body))
            .into_iter()
            .rev()
            .collect();
        let field = |name: &str| form.get(name).map(String::as_str);

        let check_client = || -> Result<(), (StatusCode, Value)> {
            if field("client_id") != Some(CLIENT_ID) {
                return Err(oauth_error(
                    "invalid_client_id",
                    "client identifier invalid",
                ));
            }
            if field("client_secret") != Some(CLIENT_SECRET) {
                return Err(oauth_error("invalid_client", "invalid client credentials"));
            }
            Ok(())
        };
        let outcome = match field("grant_type") {
            Some("password") => check_client().and_then(|()| {
                if state.reject_credentials
                    || field("username") != Some(USERNAME)
                    || field("password") != Some(state.accepted_password.as_str())
                {
                    Err(oauth_error("invalid_grant", "authentication failure"))
                } else {
                    Ok(())
                }
            }),
            Some("client_credentials") => check_client().and_then(|()| {
                if state.reject_credentials {
                    Err(oauth_error("invalid_grant", "authentication failure"))
                } else {
                    Ok(())
                }
            }),
            Some("urn:ietf:params:oauth:grant-type:jwt-bearer") => self
                .check_assertion(field("assertion").unwrap_or_default())
                .and_then(|()| {
                    if state.reject_credentials {
                        Err(oauth_error("invalid_grant", "authentication failure"))
                    } else {
                        Ok(())
                    }
                }),
            _ => Err(oauth_error(
                "unsupported_grant_type",
                "grant type not supported",
            )),
        };
        if let Err(error) = outcome {
            return error;
        }

        state.token_grants += 1;
        let access_token = state.new_token();
        let signature = base64(&state.token_rng.next_u64().to_be_bytes().repeat(4));
        let body = json!({
            "access_token": access_token,
            "instance_url": self.instance_url,
            "id": format!("{}/id/{ORG_ID}AAA/{USER_ID}AAA", self.base_url),
            "token_type": "Bearer",
            "issued_at": now().as_millis().to_string(),
            "signature": signature,
        });
        (StatusCode::OK, body)
    }

    /// Validate a JWT bearer assertion the way the wire doc describes it.
    fn check_assertion(&self, assertion: &str) -> Result<(), (StatusCode, Value)> {
        let invalid = || oauth_error("invalid_grant", "invalid assertion");
        let token =
            jsonwebtoken::dangerous::insecure_decode::<Value>(assertion).map_err(|_| invalid())?;
        if token.header.alg != jsonwebtoken::Algorithm::RS256 {
            return Err(invalid());
        }
        if let Some(key) = &self.jwt_key {
            let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
            validation.required_spec_claims.clear();
            validation.validate_exp = false;
            validation.validate_nbf = false;
            validation.validate_aud = false;
            jsonwebtoken::decode::<Value>(assertion, key, &validation).map_err(|_| invalid())?;
        }
        let claims = token.claims;
        if claims.get("iss").and_then(Value::as_str) != Some(CLIENT_ID) {
            return Err(oauth_error(
                "invalid_client_id",
                "client identifier invalid",
            ));
        }
        // Exact match, as documented: no trailing slash, no path.
        let audience_ok = |aud: &str| aud == self.base_url || PUBLIC_LOGIN_URLS.contains(&aud);
        let aud_ok = match claims.get("aud") {
            Some(Value::String(aud)) => audience_ok(aud),
            Some(Value::Array(auds)) => auds.iter().filter_map(Value::as_str).any(audience_ok),
            _ => false,
        };
        if !aud_ok {
            return Err(oauth_error("invalid_grant", "audience is invalid"));
        }
        let now = now().as_secs();
        match claims.get("exp").and_then(Value::as_u64) {
            Some(exp) if exp > now && exp <= now + MAX_JWT_LIFETIME_SECS => {}
            Some(exp) if exp <= now => {
                return Err(oauth_error("invalid_grant", "expired authorization code"));
            }
            _ => return Err(invalid()),
        }
        if claims.get("sub").and_then(Value::as_str) != Some(USERNAME) {
            return Err(oauth_error("invalid_grant", "authentication failure"));
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Data API
// ---------------------------------------------------------------------------------------------

/// What a data path names.
enum Route {
    CreateOne,
    UpsertOne(String),
    CollectionCreate,
    CollectionUpsert,
}

impl FakeOrg {
    /// Authenticate, account, pick a fault and process one data call under the lock.
    /// Returns the reply and the `(used, max)` API usage to report.
    fn data_call(&self, parts: &Parts, body: &[u8]) -> (Reply, (u64, u64)) {
        let mut state = self.lock();
        let state = &mut *state;
        let usage = |s: &OrgState| (s.api_calls, s.daily_limit);

        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("Bearer"))
            .map(|(_, token)| token.trim().to_owned());
        let token = match token {
            Some(token) if state.tokens.get(&token) == Some(&true) => token,
            _ => return (invalid_session(), usage(state)),
        };
        if state.api_calls >= state.daily_limit {
            return (total_requests(), usage(state));
        }
        let fault = state.next_fault();
        match fault {
            Some(ActiveFault::InvalidSession) => {
                state.tokens.insert(token, false);
                return (invalid_session(), usage(state));
            }
            Some(ActiveFault::TotalRequests) => return (total_requests(), usage(state)),
            _ => {}
        }
        state.api_calls += 1;
        let early = match fault {
            Some(ActiveFault::Status503) => Some(server_unavailable()),
            Some(ActiveFault::Status500) => Some(error_reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                "UNKNOWN_EXCEPTION",
                "An unexpected error occurred. Please include this ErrorId if you contact support: 0000000-0000 (-0000000)",
            )),
            Some(ActiveFault::Drop) => Some(Reply::Drop),
            Some(ActiveFault::ConcurrentLongTxn) => Some(error_reply(
                StatusCode::FORBIDDEN,
                "REQUEST_LIMIT_EXCEEDED",
                "ConcurrentPerOrgLongTxn Limit exceeded",
            )),
            _ => None,
        };
        if let Some(reply) = early {
            return (reply, usage(state));
        }
        let injected = match &fault {
            Some(ActiveFault::Record(e)) => Injected::Record(e),
            Some(ActiveFault::LockRow(n)) => Injected::LockRow(*n),
            _ => Injected::None,
        };
        let reply = state.route(parts, body, injected);
        let reply = match fault {
            Some(ActiveFault::AppliedThen503) => server_unavailable(),
            Some(ActiveFault::AppliedThenDrop) => Reply::Drop,
            _ => reply,
        };
        (reply, usage(state))
    }
}

fn invalid_session() -> Reply {
    error_reply(
        StatusCode::UNAUTHORIZED,
        "INVALID_SESSION_ID",
        "Session expired or invalid",
    )
}

fn total_requests() -> Reply {
    error_reply(
        StatusCode::FORBIDDEN,
        "REQUEST_LIMIT_EXCEEDED",
        "TotalRequests Limit exceeded.",
    )
}

fn server_unavailable() -> Reply {
    error_reply(
        StatusCode::SERVICE_UNAVAILABLE,
        "SERVER_UNAVAILABLE",
        "Server temporarily unavailable. Please try again later.",
    )
}

fn not_found_reply() -> Reply {
    error_reply(
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
        "The requested resource does not exist",
    )
}

fn method_not_allowed(method: &Method, allowed: &str) -> Reply {
    error_reply(
        StatusCode::METHOD_NOT_ALLOWED,
        "METHOD_NOT_ALLOWED",
        &format!("HTTP Method '{method}' not allowed. Allowed are {allowed}"),
    )
}

fn json_parser_error(message: &str) -> Reply {
    error_reply(StatusCode::BAD_REQUEST, "JSON_PARSER_ERROR", message)
}

/// Faults that act on individual records.
#[derive(Clone, Copy)]
enum Injected<'a> {
    None,
    Record(&'a RecordError),
    LockRow(u64),
}

/// One per-record error, `{"statusCode","message","fields"}` in collections responses.
#[derive(Clone, Debug)]
struct RecErr {
    status_code: String,
    message: String,
    fields: Vec<String>,
}

impl RecErr {
    fn new(code: &str, message: impl Into<String>, fields: &[&str]) -> Self {
        Self {
            status_code: code.to_owned(),
            message: message.into(),
            fields: fields.iter().map(|f| (*f).to_owned()).collect(),
        }
    }

    fn to_json(&self) -> Value {
        json!({"statusCode": self.status_code, "message": self.message, "fields": self.fields})
    }

    /// As a top-level error (single-record calls): `{"message","errorCode","fields"}`.
    fn to_top_level(&self) -> Value {
        json!({"message": self.message, "errorCode": self.status_code, "fields": self.fields})
    }

    fn lock_row() -> Self {
        Self::new(
            "UNABLE_TO_LOCK_ROW",
            "unable to obtain exclusive access to this record or 1 records",
            &[],
        )
    }
}

fn record_errors_reply(errors: &[RecErr]) -> Reply {
    reply(
        StatusCode::BAD_REQUEST,
        Value::Array(errors.iter().map(RecErr::to_top_level).collect()),
    )
}

/// Request-level problem (answered `400` with one error) vs per-record problems.
enum Invalid {
    Request(Reply),
    Record(Vec<RecErr>),
}

impl OrgState {
    fn route(&mut self, parts: &Parts, body: &[u8], injected: Injected<'_>) -> Reply {
        let Some(rest) = parts.uri.path().strip_prefix("/services/data/") else {
            return not_found_reply();
        };
        let segments: Vec<String> = rest.split('/').map(percent_decode).collect();
        let Some((version, segments)) = segments.split_first() else {
            return not_found_reply();
        };
        if !is_api_version(version) {
            return not_found_reply();
        }
        let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
        let method = &parts.method;
        let route = match segments.as_slice() {
            ["sobjects", "Case"] if method == Method::POST => Route::CreateOne,
            ["sobjects", "Case"] => return method_not_allowed(method, "GET,HEAD,POST"),
            ["sobjects", "Case", field, value] if !value.is_empty() => {
                if !field.eq_ignore_ascii_case(EXTERNAL_ID_FIELD) {
                    return error_reply(
                        StatusCode::NOT_FOUND,
                        "NOT_FOUND",
                        &format!(
                            "Provided external ID field does not exist or is not accessible: {field}"
                        ),
                    );
                }
                if method != Method::PATCH {
                    return method_not_allowed(method, "GET,HEAD,PATCH,DELETE");
                }
                Route::UpsertOne((*value).to_owned())
            }
            ["composite", "sobjects"] if method == Method::POST => Route::CollectionCreate,
            ["composite", "sobjects"] => {
                return method_not_allowed(method, "GET,POST,PATCH,DELETE");
            }
            ["composite", "sobjects", "Case", field] => {
                if !field.eq_ignore_ascii_case(EXTERNAL_ID_FIELD) {
                    return error_reply(
                        StatusCode::NOT_FOUND,
                        "NOT_FOUND",
                        &format!(
                            "Provided external ID field does not exist or is not accessible: {field}"
                        ),
                    );
                }
                if method != Method::PATCH {
                    return method_not_allowed(method, "PATCH");
                }
                Route::CollectionUpsert
            }
            _ => return not_found_reply(),
        };

        if !content_type_is(&parts.headers, "application/json") {
            let got = parts
                .headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("(none)");
            return error_reply(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UNSUPPORTED_MEDIA_TYPE",
                &format!("Content-Type header specified in HTTP request is not supported: {got}"),
            );
        }
        let body: Value = match serde_json::from_slice(body) {
            Ok(body) => body,
            Err(error) => return json_parser_error(&format!("Unexpected JSON: {error}")),
        };
        match route {
            Route::CreateOne => self.create_one(body, injected),
            Route::UpsertOne(value) => self.upsert_one(version, &value, body, injected),
            Route::CollectionCreate => self.collection(body, false, injected),
            Route::CollectionUpsert => self.collection(body, true, injected),
        }
    }

    fn create_one(&mut self, body: Value, injected: Injected<'_>) -> Reply {
        let Value::Object(record) = body else {
            return json_parser_error(
                "Cannot deserialize instance of Case from a non-object value",
            );
        };
        let fields = match validate(record, RecordMode::Single) {
            Ok(fields) => fields,
            Err(Invalid::Request(reply)) => return reply,
            Err(Invalid::Record(errors)) => return record_errors_reply(&errors),
        };
        let ext = fields.get(EXTERNAL_ID_FIELD).and_then(Value::as_str);
        if let Some(error) = injected_for_single(injected, ext) {
            return record_errors_reply(&[error]);
        }
        let id = self.create(fields);
        reply(
            StatusCode::CREATED,
            json!({"id": id, "success": true, "errors": []}),
        )
    }

    fn upsert_one(
        &mut self,
        version: &str,
        value: &str,
        body: Value,
        injected: Injected<'_>,
    ) -> Reply {
        let Value::Object(record) = body else {
            return json_parser_error(
                "Cannot deserialize instance of Case from a non-object value",
            );
        };
        // Documented: "Do not specify Id or an external ID field in the request body".
        for key in record.keys() {
            if key.eq_ignore_ascii_case(EXTERNAL_ID_FIELD) || key.eq_ignore_ascii_case("Id") {
                return reply(
                    StatusCode::BAD_REQUEST,
                    json!([RecErr::new(
                        "INVALID_FIELD",
                        format!("{key}: the field used for upsert or the record Id cannot be specified in the request body"),
                        &[key.as_str()],
                    )
                    .to_top_level()]),
                );
            }
        }
        let mut fields = match validate(record, RecordMode::Single) {
            Ok(fields) => fields,
            Err(Invalid::Request(reply)) => return reply,
            Err(Invalid::Record(errors)) => return record_errors_reply(&errors),
        };
        if value.chars().count() > 255 {
            return record_errors_reply(&[too_long(EXTERNAL_ID_FIELD, value, 255)]);
        }
        if let Some(error) = injected_for_single(injected, Some(value)) {
            return record_errors_reply(&[error]);
        }
        let matches = self.matching(value);
        match matches.as_slice() {
            [] => {
                fields.insert(EXTERNAL_ID_FIELD.into(), json!(value));
                let id = self.create(fields);
                reply(
                    StatusCode::CREATED,
                    json!({"id": id, "success": true, "errors": [], "created": true}),
                )
            }
            [index] => {
                let id = self.update(*index, fields);
                reply(
                    StatusCode::OK,
                    json!({"id": id, "success": true, "errors": [], "created": false}),
                )
            }
            several => {
                let urls: Vec<String> = several
                    .iter()
                    .map(|&i| {
                        format!(
                            "/services/data/{version}/sobjects/Case/{}",
                            self.cases[i]["Id"].as_str().unwrap_or_default()
                        )
                    })
                    .collect();
                reply(StatusCode::MULTIPLE_CHOICES, json!(urls))
            }
        }
    }

    /// sObject Collections create (`upsert == false`) or upsert by the external id field.
    fn collection(&mut self, body: Value, upsert: bool, injected: Injected<'_>) -> Reply {
        let Value::Object(mut body) = body else {
            return json_parser_error(
                "Cannot deserialize request body: expected an object with records",
            );
        };
        if let Some(key) = body.keys().find(|k| *k != "allOrNone" && *k != "records") {
            return json_parser_error(&format!("Unrecognized field \"{key}\""));
        }
        let all_or_none = match body.remove("allOrNone") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => b,
            Some(_) => {
                return json_parser_error("allOrNone: Cannot deserialize value of type boolean");
            }
        };
        let records = match body.remove("records") {
            Some(Value::Array(records)) => records,
            None | Some(Value::Null) => {
                return json_parser_error("records: required field is missing");
            }
            Some(_) => return json_parser_error("records: Cannot deserialize value of type array"),
        };
        if records.len() > MAX_COLLECTION_RECORDS {
            return error_reply(
                StatusCode::BAD_REQUEST,
                "EXCEEDED_ID_LIMIT",
                "record limit reached. cannot submit more than 200 records into this call",
            );
        }

        // First pass: validate every record, so that allOrNone can decide before applying.
        let mut staged: Vec<Result<Record, Vec<RecErr>>> = Vec::with_capacity(records.len());
        for record in records {
            let Value::Object(record) = record else {
                return json_parser_error(
                    "records: Cannot deserialize instance of SObject from a non-object value",
                );
            };
            let mode = if upsert {
                RecordMode::CollectionUpsert
            } else {
                RecordMode::CollectionCreate
            };
            staged.push(match validate(record, mode) {
                Ok(fields) => Ok(fields),
                Err(Invalid::Request(reply)) => return reply,
                Err(Invalid::Record(errors)) => Err(errors),
            });
        }
        let ext_of = |fields: &Record| {
            fields
                .get(EXTERNAL_ID_FIELD)
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        if upsert {
            // The same external id twice in one upsert request fails both records.
            let mut seen: HashMap<String, usize> = HashMap::new();
            for fields in staged.iter().flatten() {
                if let Some(ext) = ext_of(fields) {
                    *seen.entry(ext).or_default() += 1;
                }
            }
            for entry in &mut staged {
                if let Ok(fields) = entry
                    && let Some(ext) = ext_of(fields)
                    && seen[&ext] > 1
                {
                    *entry = Err(vec![RecErr::new(
                        "DUPLICATE_VALUE",
                        format!("Duplicate external id specified: {ext}"),
                        &[EXTERNAL_ID_FIELD],
                    )]);
                }
            }
            for entry in &mut staged {
                if let Ok(fields) = entry
                    && let Some(ext) = ext_of(fields)
                {
                    let matches = self.matching(&ext);
                    if matches.len() > 1 {
                        let ids: Vec<&str> = matches
                            .iter()
                            .map(|&i| self.cases[i]["Id"].as_str().unwrap_or_default())
                            .collect();
                        *entry = Err(vec![RecErr::new(
                            "DUPLICATE_EXTERNAL_ID",
                            format!(
                                "{EXTERNAL_ID_FIELD}: more than one record found for external id field: [{}]",
                                ids.join(", ")
                            ),
                            &[EXTERNAL_ID_FIELD],
                        )]);
                    }
                }
            }
        }
        // Injected per-record faults.
        match injected {
            Injected::None => {}
            Injected::Record(fault) => {
                for entry in &mut staged {
                    if entry.as_ref().ok().and_then(ext_of).as_deref()
                        == Some(fault.external_id.as_str())
                    {
                        *entry = Err(vec![fault.error.clone()]);
                    }
                }
            }
            Injected::LockRow(n) => {
                if !staged.is_empty() {
                    let index = (n % staged.len() as u64) as usize;
                    staged[index] = Err(vec![RecErr::lock_row()]);
                }
            }
        }

        if all_or_none && staged.iter().any(Result::is_err) {
            let rolled_back = RecErr::new(
                "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                "Record rolled back because not all records were valid and the request was using AllOrNone header",
                &[],
            );
            let results: Vec<Value> = staged
                .iter()
                .map(|entry| {
                    let errors = entry
                        .as_ref()
                        .err()
                        .cloned()
                        .unwrap_or_else(|| vec![rolled_back.clone()]);
                    failure_json(&errors)
                })
                .collect();
            return reply(StatusCode::OK, Value::Array(results));
        }

        let mut results = Vec::with_capacity(staged.len());
        for entry in staged {
            let fields = match entry {
                Ok(fields) => fields,
                Err(errors) => {
                    results.push(failure_json(&errors));
                    continue;
                }
            };
            if !upsert {
                let id = self.create(fields);
                results.push(json!({"id": id, "success": true, "errors": []}));
                continue;
            }
            let ext = ext_of(&fields).unwrap_or_default();
            match self.matching(&ext).first() {
                Some(&index) => {
                    let id = self.update(index, fields);
                    results
                        .push(json!({"id": id, "success": true, "errors": [], "created": false}));
                }
                None => {
                    let id = self.create(fields);
                    results.push(json!({"id": id, "success": true, "errors": [], "created": true}));
                }
            }
        }
        reply(StatusCode::OK, Value::Array(results))
    }
}

/// A failed collections entry. Salesforce omits `id` (it is null) on failure.
fn failure_json(errors: &[RecErr]) -> Value {
    json!({"success": false, "errors": errors.iter().map(RecErr::to_json).collect::<Vec<_>>()})
}

/// The per-record error an injected fault causes for a single-record write about `ext`.
fn injected_for_single(injected: Injected<'_>, ext: Option<&str>) -> Option<RecErr> {
    match injected {
        Injected::None => None,
        Injected::LockRow(_) => Some(RecErr::lock_row()),
        Injected::Record(fault) => {
            (ext == Some(fault.external_id.as_str())).then(|| fault.error.clone())
        }
    }
}

fn is_api_version(version: &str) -> bool {
    version
        .strip_prefix('v')
        .and_then(|v| v.strip_suffix(".0"))
        .is_some_and(|major| !major.is_empty() && major.chars().all(|c| c.is_ascii_digit()))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum RecordMode {
    /// `POST sobjects/Case` or `PATCH sobjects/Case/{field}/{value}` (no `attributes` needed).
    Single,
    CollectionCreate,
    CollectionUpsert,
}

/// Check one record like an org with a standard Case would, returning its fields under their
/// canonical names (without `attributes`).
fn validate(mut record: Record, mode: RecordMode) -> Result<Record, Invalid> {
    let mut errors = Vec::new();
    let attributes = record.remove("attributes");
    let sobject_type = match &attributes {
        Some(Value::Object(a)) => a.get("type").and_then(Value::as_str),
        Some(Value::Null) | None => None,
        Some(_) => {
            return Err(Invalid::Request(json_parser_error(
                "attributes: Cannot deserialize value of type map",
            )));
        }
    };
    match (mode, sobject_type) {
        (_, Some("Case")) | (RecordMode::Single, None) => {}
        (_, Some(other)) => {
            errors.push(RecErr::new(
                "INVALID_TYPE",
                format!("sObject type '{other}' is not supported."),
                &[],
            ));
            return Err(Invalid::Record(errors));
        }
        (_, None) => {
            errors.push(RecErr::new(
                "INVALID_TYPE",
                "Each record in an sObject Collections request must have an attributes map with a type",
                &[],
            ));
            return Err(Invalid::Record(errors));
        }
    }

    let mut fields = Record::new();
    for (key, value) in record {
        if matches!(value, Value::Object(_) | Value::Array(_)) {
            return Err(Invalid::Request(json_parser_error(&format!(
                "Cannot deserialize instance of {key} from a JSON object or array"
            ))));
        }
        if key.eq_ignore_ascii_case("Id") {
            let message = if mode == RecordMode::CollectionUpsert {
                "Id: don't set the Id field when upserting by external id"
            } else {
                "cannot specify Id in an insert call"
            };
            errors.push(RecErr::new(
                "INVALID_FIELD_FOR_INSERT_UPDATE",
                message,
                &["Id"],
            ));
            continue;
        }
        let canonical = if key.eq_ignore_ascii_case(EXTERNAL_ID_FIELD) {
            EXTERNAL_ID_FIELD.to_owned()
        } else if let Some(known) = TEXT_FIELDS.iter().find(|f| f.eq_ignore_ascii_case(&key)) {
            (*known).to_owned()
        } else if key.len() > 3 && key[key.len() - 3..].eq_ignore_ascii_case("__c") {
            key
        } else {
            errors.push(RecErr::new(
                "INVALID_FIELD",
                format!("No such column '{key}' on sobject of type Case"),
                &[key.as_str()],
            ));
            continue;
        };
        let is_text = canonical == EXTERNAL_ID_FIELD || TEXT_FIELDS.contains(&canonical.as_str());
        if is_text && !(value.is_string() || value.is_null()) {
            return Err(Invalid::Request(json_parser_error(&format!(
                "Cannot deserialize instance of string from {value} value for field {canonical}"
            ))));
        }
        fields.insert(canonical, value);
    }

    for (field, max) in [
        ("Subject", 255),
        ("Description", 32_000),
        ("SuppliedPhone", 40),
        ("SuppliedName", 80),
        (EXTERNAL_ID_FIELD, 255),
    ] {
        if let Some(text) = fields.get(field).and_then(Value::as_str)
            && text.chars().count() > max
        {
            errors.push(too_long(field, text, max));
        }
    }
    for (field, allowed, nullable) in [
        ("Origin", &ORIGIN_VALUES[..], true),
        ("Status", &STATUS_VALUES[..], false),
    ] {
        match fields.get(field) {
            Some(Value::String(v)) if allowed.contains(&v.as_str()) => {}
            Some(Value::Null) if nullable => {}
            None => {}
            Some(v) => errors.push(RecErr::new(
                "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                format!(
                    "{field}: bad value for restricted picklist field: {}",
                    v.as_str().unwrap_or("null")
                ),
                &[field],
            )),
        }
    }
    for (field, prefix, label) in [
        ("ContactId", "003", "Contact ID"),
        ("AccountId", "001", "Account ID"),
    ] {
        if let Some(id) = fields.get(field).and_then(Value::as_str)
            && !is_record_id(id, prefix)
        {
            errors.push(RecErr::new(
                "MALFORMED_ID",
                format!("{label}: id value of incorrect type: {id}"),
                &[field],
            ));
        }
    }
    if mode == RecordMode::CollectionUpsert {
        match fields.get(EXTERNAL_ID_FIELD).and_then(Value::as_str) {
            Some(ext) if !ext.is_empty() => {}
            _ => errors.push(RecErr::new(
                "MISSING_ARGUMENT",
                format!("{EXTERNAL_ID_FIELD} not specified"),
                &[EXTERNAL_ID_FIELD],
            )),
        }
    }
    if errors.is_empty() {
        Ok(fields)
    } else {
        Err(Invalid::Record(errors))
    }
}

fn too_long(field: &str, text: &str, max: usize) -> RecErr {
    let preview: String = text.chars().take(20).collect();
    RecErr::new(
        "STRING_TOO_LONG",
        format!("{field}: data value too large: {preview}... (max length={max})"),
        &[field],
    )
}

/// A 15- or 18-character alphanumeric Salesforce id with the given key prefix.
fn is_record_id(id: &str, prefix: &str) -> bool {
    matches!(id.len(), 15 | 18)
        && id.starts_with(prefix)
        && id.chars().all(|c| c.is_ascii_alphanumeric())
}

// ---------------------------------------------------------------------------------------------
// Small codecs (kept here so the module needs no extra crates)
// ---------------------------------------------------------------------------------------------

/// Percent-decode a path segment (`+` stays `+`).
fn percent_decode(s: &str) -> String {
    decode(s, false)
}

/// Parse `a=b&c=d` with `+` as space, as `application/x-www-form-urlencoded` specifies.
fn parse_form(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k, true), decode(v, true))
        })
        .collect()
}

fn decode(s: &str, plus_is_space: bool) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Standard base64 with padding (for the token response's `signature`).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

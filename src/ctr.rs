//! Contact trace record (CTR) types and decoding.
//!
//! Pure: no I/O, no clock, no environment. Decoding is lenient the way real CTRs demand:
//! explicit nulls, missing keys, unknown keys, numbers or booleans where strings are expected and
//! non-E.164 phone numbers all decode. Only the fields that classification and Case mapping use
//! are typed; the whole record stays reachable through [`Ctr::path`], so a Case mapping can name
//! any field, including ones Amazon Connect adds next year.
//!
//! A record is rejected (a [`DecodeError`]) only when it cannot be a CTR at all: not UTF-8, not
//! a JSON object, or no valid `ContactId`. Errors never quote the record's content, because a
//! CTR carries customer phone numbers.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};

/// Why a record's data is not a usable CTR. Such a record is poison: it is dead-lettered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The Kinesis `data` field was a string but not valid base64.
    #[error("record data is not valid base64")]
    Base64,
    /// The Kinesis record has no `data` at all, or it is empty.
    #[error("record data is empty")]
    Empty,
    /// The decoded bytes are not UTF-8.
    #[error("record data is not UTF-8 (first invalid byte at offset {offset})")]
    Utf8 {
        /// Byte offset of the first invalid sequence.
        offset: usize,
    },
    /// The bytes are not a JSON object. Only the position is kept, never the offending text.
    #[error("record data is not a JSON object ({kind} at line {line}, column {column})")]
    Json {
        /// What kind of JSON problem: `syntax`, `data` (wrong shape) or `eof` (truncated).
        kind: &'static str,
        /// 1-based line of the problem.
        line: usize,
        /// 1-based column of the problem.
        column: usize,
    },
    /// The CTR has no `ContactId` (absent, null or empty).
    #[error("CTR has no ContactId")]
    MissingContactId,
    /// The `ContactId` is not a UUID, so it must not reach a URL or an external id.
    #[error("CTR ContactId is not a UUID")]
    InvalidContactId,
}

impl DecodeError {
    /// A stable, machine-readable name for logs, metrics and dead-letter messages.
    pub fn code(&self) -> &'static str {
        match self {
            DecodeError::Base64 => "invalid_base64",
            DecodeError::Empty => "empty_data",
            DecodeError::Utf8 { .. } => "invalid_utf8",
            DecodeError::Json { .. } => "invalid_json",
            DecodeError::MissingContactId => "missing_contact_id",
            DecodeError::InvalidContactId => "invalid_contact_id",
        }
    }

    fn from_json(err: &serde_json::Error) -> Self {
        let kind = match err.classify() {
            serde_json::error::Category::Io => "io",
            serde_json::error::Category::Syntax => "syntax",
            serde_json::error::Category::Data => "data",
            serde_json::error::Category::Eof => "eof",
        };
        DecodeError::Json {
            kind,
            line: err.line(),
            column: err.column(),
        }
    }
}

/// A `ContactId` that has been checked to be a UUID, kept as Connect wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContactId(String);

impl ContactId {
    /// Validates `raw` as a UUID (hyphenated, simple, braced or URN form are all rejected
    /// except the hyphenated 36-character form Connect uses).
    ///
    /// # Errors
    /// [`DecodeError::InvalidContactId`] when `raw` is not a hyphenated UUID.
    ///
    /// ```
    /// use ctr_cases::ctr::ContactId;
    /// assert!(ContactId::parse("5ca32fbd-8f92-46af-92a5-6b0f970f0efe").is_ok());
    /// assert!(ContactId::parse("../../sobjects/User").is_err());
    /// ```
    pub fn parse(raw: &str) -> Result<Self, DecodeError> {
        if raw.len() == 36 && uuid::Uuid::try_parse(raw).is_ok() {
            Ok(ContactId(raw.to_owned()))
        } else {
            Err(DecodeError::InvalidContactId)
        }
    }

    /// The id as text: only hex digits and hyphens, safe in a URL path or a JSON body.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ContactId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An endpoint (`CustomerEndpoint`, `SystemEndpoint`, `TransferredToEndpoint`).
///
/// `Address` is kept as sent: it is not always E.164.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Endpoint {
    /// Phone number or other address. Customer data: never log it.
    pub address: Option<String>,
    /// `TELEPHONE_NUMBER`, `EMAIL_ADDRESS`, …
    pub kind: Option<String>,
}

/// The queue part of a CTR. Present when the contact was put in a queue.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Queue {
    /// Queue name.
    pub name: Option<String>,
    /// Queue ARN.
    pub arn: Option<String>,
    /// When the contact entered the queue.
    pub enqueue_timestamp: Option<DateTime<Utc>>,
    /// When the contact left the queue.
    pub dequeue_timestamp: Option<DateTime<Utc>>,
}

/// The top-level CTR keys whose whole JSON value a decode keeps (besides the typed fields), so
/// that a Case mapping can reach any path under them without parsing the record again.
///
/// Built once from the mapping's placeholders ([`Capture::of_paths`]); an empty capture keeps
/// nothing extra.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capture {
    keys: Vec<String>,
}

impl Capture {
    /// Keeps nothing beyond the typed fields.
    pub fn none() -> Self {
        Capture::default()
    }

    /// Keeps the top-level key of every dotted path (`Agent.Username` keeps `Agent`).
    pub fn of_paths<'a>(paths: impl IntoIterator<Item = &'a str>) -> Self {
        let mut keys: Vec<String> = paths
            .into_iter()
            .filter_map(|p| p.split('.').next())
            .filter(|k| !k.is_empty())
            .map(str::to_owned)
            .collect();
        keys.sort();
        keys.dedup();
        Capture { keys }
    }

    fn wants(&self, key: &str) -> bool {
        self.keys.binary_search_by(|k| k.as_str().cmp(key)).is_ok()
    }
}

/// The typed fields of a CTR that ctr-cases uses, read in one pass over the JSON.
#[derive(Debug, Default)]
struct CtrFields {
    contact_id: Option<String>,
    channel: Option<String>,
    initiation_method: Option<String>,
    agent: bool,
    queue: Option<Queue>,
    attributes: BTreeMap<String, String>,
    customer_endpoint: Option<Endpoint>,
    system_endpoint: Option<Endpoint>,
    disconnect_reason: Option<String>,
    initiation_timestamp: Option<DateTime<Utc>>,
    connected_to_system_timestamp: Option<DateTime<Utc>>,
    disconnect_timestamp: Option<DateTime<Utc>>,
    last_update_timestamp: Option<DateTime<Utc>>,
    previous_contact_id: Option<String>,
    next_contact_id: Option<String>,
    initial_contact_id: Option<String>,
    captured: Vec<(String, serde_json::Value)>,
}

/// A decoded contact trace record.
#[derive(Debug, Clone)]
pub struct Ctr {
    /// The contact's id (validated UUID).
    pub contact_id: ContactId,
    /// `VOICE`, `CHAT`, `TASK`, `EMAIL`; absent in some hand-made records.
    pub channel: Option<String>,
    /// `INBOUND`, `OUTBOUND`, `TRANSFER`, …
    pub initiation_method: Option<String>,
    /// Whether the CTR has a (non-null) `Agent`: an agent was connected. The agent's details
    /// stay reachable through [`Ctr::path`].
    pub has_agent: bool,
    /// Set when the contact was queued.
    pub queue: Option<Queue>,
    /// Contact attributes set by the flow. Non-string values are rendered as JSON text.
    pub attributes: BTreeMap<String, String>,
    /// The caller. Customer data: never log it.
    pub customer_endpoint: Option<Endpoint>,
    /// The number the caller dialled.
    pub system_endpoint: Option<Endpoint>,
    /// `CUSTOMER_DISCONNECT`, `CONTACT_FLOW_DISCONNECT`, `TELECOM_PROBLEM`, …
    pub disconnect_reason: Option<String>,
    /// When the contact started.
    pub initiation_timestamp: Option<DateTime<Utc>>,
    /// When the contact reached the contact flow.
    pub connected_to_system_timestamp: Option<DateTime<Utc>>,
    /// When the contact ended.
    pub disconnect_timestamp: Option<DateTime<Utc>>,
    /// When Connect last updated this CTR; the newest version of a contact wins.
    pub last_update_timestamp: Option<DateTime<Utc>>,
    /// The leg this contact was transferred from.
    pub previous_contact_id: Option<String>,
    /// The leg this contact was transferred to.
    pub next_contact_id: Option<String>,
    /// The first leg of a chain of transfers.
    pub initial_contact_id: Option<String>,
    /// The whole values of the top-level keys a [`Capture`] asked for.
    captured: Vec<(String, serde_json::Value)>,
    raw: String,
}

impl Ctr {
    /// A contact with only its id set, for contacts described by something other than a CTR
    /// (a contact-flow event); the caller fills in what it knows.
    pub fn new(contact_id: ContactId) -> Self {
        Ctr {
            contact_id,
            channel: None,
            initiation_method: None,
            has_agent: false,
            queue: None,
            attributes: BTreeMap::new(),
            customer_endpoint: None,
            system_endpoint: None,
            disconnect_reason: None,
            initiation_timestamp: None,
            connected_to_system_timestamp: None,
            disconnect_timestamp: None,
            last_update_timestamp: None,
            previous_contact_id: None,
            next_contact_id: None,
            initial_contact_id: None,
            captured: Vec::new(),
            raw: String::new(),
        }
    }

    /// Decodes a CTR from its JSON bytes (the decoded Kinesis `data`), keeping nothing beyond
    /// the typed fields; see [`Ctr::decode`].
    ///
    /// # Errors
    /// [`DecodeError`] when the bytes are not UTF-8, not a JSON object, or the `ContactId` is
    /// missing or not a UUID.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, DecodeError> {
        Self::decode(bytes, &Capture::none())
    }

    /// Decodes a CTR from its JSON bytes in one pass, also keeping the whole values of the
    /// top-level keys `capture` names (for Case mapping).
    ///
    /// # Errors
    /// As [`Ctr::from_bytes`].
    pub fn decode(bytes: Vec<u8>, capture: &Capture) -> Result<Self, DecodeError> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(DecodeError::Empty);
        }
        let raw = String::from_utf8(bytes).map_err(|e| DecodeError::Utf8 {
            offset: e.utf8_error().valid_up_to(),
        })?;
        Self::decode_json(raw, capture)
    }

    /// Decodes a CTR from JSON text; see [`Ctr::from_bytes`].
    ///
    /// # Errors
    /// As [`Ctr::from_bytes`].
    pub fn from_json(raw: String) -> Result<Self, DecodeError> {
        Self::decode_json(raw, &Capture::none())
    }

    fn decode_json(raw: String, capture: &Capture) -> Result<Self, DecodeError> {
        if !raw.trim_start().starts_with('{') {
            return Err(DecodeError::Json {
                kind: "data",
                line: 1,
                column: 1,
            });
        }
        let mut de = serde_json::Deserializer::from_str(&raw);
        let fields = de::DeserializeSeed::deserialize(CtrSeed(capture), &mut de)
            .and_then(|f| de.end().map(|()| f))
            .map_err(|e| DecodeError::from_json(&e))?;
        let contact_id = match fields.contact_id.as_deref() {
            None | Some("") => return Err(DecodeError::MissingContactId),
            Some(id) => ContactId::parse(id)?,
        };
        Ok(Ctr {
            contact_id,
            channel: fields.channel,
            initiation_method: fields.initiation_method,
            has_agent: fields.agent,
            queue: fields.queue,
            attributes: fields.attributes,
            customer_endpoint: fields.customer_endpoint,
            system_endpoint: fields.system_endpoint,
            disconnect_reason: fields.disconnect_reason,
            initiation_timestamp: fields.initiation_timestamp,
            connected_to_system_timestamp: fields.connected_to_system_timestamp,
            disconnect_timestamp: fields.disconnect_timestamp,
            last_update_timestamp: fields.last_update_timestamp,
            previous_contact_id: fields.previous_contact_id,
            next_contact_id: fields.next_contact_id,
            initial_contact_id: fields.initial_contact_id,
            captured: fields.captured,
            raw,
        })
    }

    /// The record's JSON text exactly as received (empty for a contact built in code, such as
    /// one from a contact-flow event).
    pub fn raw_json(&self) -> &str {
        &self.raw
    }

    /// The caller's address (`CustomerEndpoint.Address`), if any. Customer data: never log it.
    pub fn customer_address(&self) -> Option<&str> {
        self.customer_endpoint.as_ref()?.address.as_deref()
    }

    /// The value of a path that is one of the typed text fields (`CustomerEndpoint.Address`,
    /// `Queue.Name`, `Channel`, …; see [`is_typed_path`]): `Some(None)` when that field is
    /// absent, `None` when the path is not a typed one. Rendered as [`Ctr::path`] would (text
    /// values as they are), without capturing or parsing anything.
    pub fn typed_path(&self, path: &str) -> Option<Option<&str>> {
        fn endpoint(e: &Option<Endpoint>, address: bool) -> Option<&str> {
            let e = e.as_ref()?;
            if address {
                e.address.as_deref()
            } else {
                e.kind.as_deref()
            }
        }
        Some(match path {
            "ContactId" => Some(self.contact_id.as_str()),
            "Channel" => self.channel.as_deref(),
            "InitiationMethod" => self.initiation_method.as_deref(),
            "DisconnectReason" => self.disconnect_reason.as_deref(),
            "PreviousContactId" => self.previous_contact_id.as_deref(),
            "NextContactId" => self.next_contact_id.as_deref(),
            "InitialContactId" => self.initial_contact_id.as_deref(),
            "CustomerEndpoint.Address" => endpoint(&self.customer_endpoint, true),
            "CustomerEndpoint.Type" => endpoint(&self.customer_endpoint, false),
            "SystemEndpoint.Address" => endpoint(&self.system_endpoint, true),
            "SystemEndpoint.Type" => endpoint(&self.system_endpoint, false),
            "Queue.Name" => self.queue.as_ref().and_then(|q| q.name.as_deref()),
            "Queue.ARN" => self.queue.as_ref().and_then(|q| q.arn.as_deref()),
            _ => return None,
        })
    }

    /// Looks up a dotted path in the values kept by the decode's [`Capture`], without parsing
    /// anything. `None` when the path is absent, null, or its top-level key was not captured.
    pub fn captured_path(&self, path: &str) -> Option<String> {
        let (key, rest) = path.split_once('.').unwrap_or((path, ""));
        let (_, value) = self.captured.iter().find(|(k, _)| k == key)?;
        if rest.is_empty() {
            value_text(value)
        } else {
            lookup_path(value, rest)
        }
    }

    /// Looks up any field of the record by a dotted path such as `Agent.Username`,
    /// `Attributes.intent` or `Recordings.0.Location`, rendered as text (strings as they are,
    /// other values as compact JSON). `None` when the path is absent or null.
    ///
    /// Uses the captured values when the decode kept the path's top-level key; otherwise it
    /// parses the raw record, so on the hot path capture what the mapping needs instead.
    ///
    /// ```
    /// use ctr_cases::ctr::Ctr;
    /// let ctr = Ctr::from_json(r#"{"ContactId":"5ca32fbd-8f92-46af-92a5-6b0f970f0efe",
    ///     "Agent":{"Username":"jo"},"Attributes":{"tries":3}}"#.to_owned()).unwrap();
    /// assert_eq!(ctr.path("Agent.Username").as_deref(), Some("jo"));
    /// assert_eq!(ctr.path("Attributes.tries").as_deref(), Some("3"));
    /// assert!(ctr.has_agent);
    /// ```
    pub fn path(&self, path: &str) -> Option<String> {
        let key = path.split('.').next().unwrap_or(path);
        if self.captured.iter().any(|(k, _)| k == key) {
            return self.captured_path(path);
        }
        let root: serde_json::Value = serde_json::from_str(&self.raw).ok()?;
        lookup_path(&root, path)
    }
}

/// Whether [`Ctr::typed_path`] answers `path` from the typed fields (no capture needed).
pub fn is_typed_path(path: &str) -> bool {
    const TYPED: [&str; 13] = [
        "ContactId",
        "Channel",
        "InitiationMethod",
        "DisconnectReason",
        "PreviousContactId",
        "NextContactId",
        "InitialContactId",
        "CustomerEndpoint.Address",
        "CustomerEndpoint.Type",
        "SystemEndpoint.Address",
        "SystemEndpoint.Type",
        "Queue.Name",
        "Queue.ARN",
    ];
    TYPED.contains(&path)
}

/// Looks up a dotted path (`Agent.Username`, `Recordings.0.Location`) in a parsed CTR and
/// renders it as text; see [`Ctr::path`].
pub fn lookup_path(root: &serde_json::Value, path: &str) -> Option<String> {
    let mut node = root;
    for segment in path.split('.') {
        node = match node {
            serde_json::Value::Object(map) => map.get(segment)?,
            serde_json::Value::Array(items) => items.get(segment.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    value_text(node)
}

/// Renders a JSON value as text: strings unquoted, null as `None`, the rest as compact JSON.
fn value_text(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

// ---------------------------------------------------------------------------------------------
// One-pass lenient decoding
// ---------------------------------------------------------------------------------------------

/// Decodes the top-level CTR object: typed fields leniently, captured keys as whole values,
/// everything else skipped without being built.
struct CtrSeed<'c>(&'c Capture);

impl<'de> de::DeserializeSeed<'de> for CtrSeed<'_> {
    type Value = CtrFields;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<CtrFields, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for CtrSeed<'_> {
    type Value = CtrFields;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a CTR object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<CtrFields, A::Error> {
        let mut fields = CtrFields::default();
        while let Some(Key(key)) = map.next_key()? {
            if self.0.wants(&key) {
                let value: serde_json::Value = map.next_value()?;
                // Lenient readers never fail, so this cannot lose the record.
                de::DeserializeSeed::deserialize(Assign(&mut fields, &key), &value)
                    .map_err(de::Error::custom)?;
                fields.captured.push((key.into_owned(), value));
            } else {
                map.next_value_seed(Assign(&mut fields, &key))?;
            }
        }
        Ok(fields)
    }
}

/// Deserializes the value of one top-level key into its typed field (or skips it).
struct Assign<'f, 'k>(&'f mut CtrFields, &'k str);

impl<'de> de::DeserializeSeed<'de> for Assign<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        let Assign(f, key) = self;
        let text = |d: D| Lenient::<String>::deserialize(d).map(|l| l.0);
        let time = |d: D| Lenient::<Timestamp>::deserialize(d).map(|l| l.0.map(|t| t.0));
        match key {
            "ContactId" => f.contact_id = text(d)?,
            "Channel" => f.channel = text(d)?,
            "InitiationMethod" => f.initiation_method = text(d)?,
            "Agent" => f.agent = Option::<IgnoredAny>::deserialize(d)?.is_some(),
            "Queue" => f.queue = Lenient::<Queue>::deserialize(d)?.0,
            "Attributes" => f.attributes = Attributes::deserialize(d)?.0,
            "CustomerEndpoint" => f.customer_endpoint = Lenient::<Endpoint>::deserialize(d)?.0,
            "SystemEndpoint" => f.system_endpoint = Lenient::<Endpoint>::deserialize(d)?.0,
            "DisconnectReason" => f.disconnect_reason = text(d)?,
            "InitiationTimestamp" => f.initiation_timestamp = time(d)?,
            "ConnectedToSystemTimestamp" => f.connected_to_system_timestamp = time(d)?,
            "DisconnectTimestamp" => f.disconnect_timestamp = time(d)?,
            "LastUpdateTimestamp" => f.last_update_timestamp = time(d)?,
            "PreviousContactId" => f.previous_contact_id = text(d)?,
            "NextContactId" => f.next_contact_id = text(d)?,
            "InitialContactId" => f.initial_contact_id = text(d)?,
            _ => {
                IgnoredAny::deserialize(d)?;
            }
        }
        Ok(())
    }
}

/// A map key that borrows from the input when it can (it always can for CTR keys, which need
/// no escapes), so reading a record allocates no key strings.
struct Key<'de>(std::borrow::Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(std::borrow::Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(std::borrow::Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(std::borrow::Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// A field read leniently: never fails on a wrong shape. `T` says what to make of each shape.
struct Lenient<T>(Option<T>);

/// How a value of each JSON shape becomes `T` (the default: ignore it).
trait FromShapes: Sized {
    fn from_text(_text: &str) -> Option<Self> {
        None
    }
    fn from_scalar(_text: String) -> Option<Self> {
        None
    }
    fn from_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<Option<Self>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(None)
    }
    /// A value of another shape (an array, or a string/number for an object field).
    fn other() -> Option<Self> {
        None
    }
}

impl FromShapes for String {
    fn from_text(text: &str) -> Option<Self> {
        Some(text.to_owned())
    }
    fn from_scalar(text: String) -> Option<Self> {
        Some(text)
    }
}

/// A timestamp: RFC 3339 text; anything else is `None`.
struct Timestamp(DateTime<Utc>);

impl FromShapes for Timestamp {
    fn from_text(text: &str) -> Option<Self> {
        DateTime::parse_from_rfc3339(text)
            .ok()
            .map(|t| Timestamp(t.with_timezone(&Utc)))
    }
    fn from_scalar(_text: String) -> Option<Self> {
        None
    }
}

impl FromShapes for Endpoint {
    fn from_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<Option<Self>, A::Error> {
        let mut endpoint = Endpoint::default();
        while let Some(Key(key)) = map.next_key()? {
            match key.as_ref() {
                "Address" => endpoint.address = map.next_value::<Lenient<String>>()?.0,
                "Type" => endpoint.kind = map.next_value::<Lenient<String>>()?.0,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Some(endpoint))
    }
    // Its presence is what matters: an endpoint of an unexpected shape is an empty one.
    fn from_text(_text: &str) -> Option<Self> {
        Some(Endpoint::default())
    }
    fn from_scalar(_text: String) -> Option<Self> {
        Some(Endpoint::default())
    }
    fn other() -> Option<Self> {
        Some(Endpoint::default())
    }
}

impl FromShapes for Queue {
    fn from_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<Option<Self>, A::Error> {
        let mut queue = Queue::default();
        while let Some(Key(key)) = map.next_key()? {
            match key.as_ref() {
                "Name" => queue.name = map.next_value::<Lenient<String>>()?.0,
                "ARN" => queue.arn = map.next_value::<Lenient<String>>()?.0,
                "EnqueueTimestamp" => {
                    queue.enqueue_timestamp = map.next_value::<Lenient<Timestamp>>()?.0.map(|t| t.0)
                }
                "DequeueTimestamp" => {
                    queue.dequeue_timestamp = map.next_value::<Lenient<Timestamp>>()?.0.map(|t| t.0)
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Some(queue))
    }
    // A queue of an unexpected shape still means the contact was queued.
    fn from_text(_text: &str) -> Option<Self> {
        Some(Queue::default())
    }
    fn from_scalar(_text: String) -> Option<Self> {
        Some(Queue::default())
    }
    fn other() -> Option<Self> {
        Some(Queue::default())
    }
}

impl<'de, T: FromShapes> Deserialize<'de> for Lenient<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: FromShapes> Visitor<'de> for V<T> {
            type Value = Lenient<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Lenient(T::from_text(v)))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(Lenient(T::from_scalar(v.to_string())))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Lenient(T::from_scalar(v.to_string())))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Lenient(T::from_scalar(v.to_string())))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(Lenient(T::from_scalar(v.to_string())))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Lenient(None))
            }
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Lenient(None))
            }
            fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Self::Value, D2::Error> {
                d.deserialize_any(self)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                Ok(Lenient(T::from_map(map)?))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Lenient(T::other()))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// `Attributes`: a map whose values are usually strings; numbers, booleans, objects and arrays
/// are kept as JSON text and null as an empty string. A non-object is an empty map.
struct Attributes(BTreeMap<String, String>);

impl<'de> Deserialize<'de> for Attributes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Attributes;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an attribute map")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Attributes, A::Error> {
                let mut out = BTreeMap::new();
                while let Some(key) = map.next_key::<String>()? {
                    let AttributeText(text) = map.next_value()?;
                    out.insert(key, text);
                }
                Ok(Attributes(out))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Attributes, E> {
                Ok(Attributes(BTreeMap::new()))
            }
            fn visit_none<E: de::Error>(self) -> Result<Attributes, E> {
                Ok(Attributes(BTreeMap::new()))
            }
            fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Attributes, D2::Error> {
                d.deserialize_any(self)
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Attributes, E> {
                Ok(Attributes(BTreeMap::new()))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Attributes, E> {
                Ok(Attributes(BTreeMap::new()))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Attributes, E> {
                Ok(Attributes(BTreeMap::new()))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Attributes, E> {
                Ok(Attributes(BTreeMap::new()))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Attributes, E> {
                Ok(Attributes(BTreeMap::new()))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Attributes, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Attributes(BTreeMap::new()))
            }
        }
        d.deserialize_any(V)
    }
}

/// One attribute value as text: strings as they are, null as empty, other values as JSON text.
struct AttributeText(String);

impl<'de> Deserialize<'de> for AttributeText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = AttributeText;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an attribute value")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<AttributeText, E> {
                Ok(AttributeText(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<AttributeText, E> {
                Ok(AttributeText(v))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<AttributeText, E> {
                Ok(AttributeText(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<AttributeText, E> {
                Ok(AttributeText(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<AttributeText, E> {
                Ok(AttributeText(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<AttributeText, E> {
                Ok(AttributeText(serde_json::Value::from(v).to_string()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<AttributeText, E> {
                Ok(AttributeText(String::new()))
            }
            fn visit_none<E: de::Error>(self) -> Result<AttributeText, E> {
                Ok(AttributeText(String::new()))
            }
            fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<AttributeText, D2::Error> {
                d.deserialize_any(self)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<AttributeText, A::Error> {
                let value =
                    serde_json::Value::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(AttributeText(value.to_string()))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<AttributeText, A::Error> {
                let value =
                    serde_json::Value::deserialize(de::value::SeqAccessDeserializer::new(seq))?;
                Ok(AttributeText(value.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "6fe40d2a-1a89-4d73-bfcf-5d9c33894f47";

    fn decode(json: &str) -> Result<Ctr, DecodeError> {
        Ctr::from_bytes(json.as_bytes().to_vec())
    }

    /// A decode keeps the whole value of exactly the top-level keys the capture names.
    #[test]
    fn a_capture_keeps_only_the_top_level_keys_of_its_paths() {
        let json = format!(
            r#"{{"ContactId":"{ID}","Agent":{{"Username":"jo"}},"Recordings":[{{"Location":"s3://r"}}],"Tags":{{"team":"a"}}}}"#
        );
        let capture = Capture::of_paths(["Agent.Username", "Recordings.0.Location", "", ".x"]);
        let ctr = Ctr::decode(json.clone().into_bytes(), &capture).unwrap();
        assert_eq!(ctr.captured_path("Agent.Username").as_deref(), Some("jo"));
        assert_eq!(
            ctr.captured_path("Recordings.0.Location").as_deref(),
            Some("s3://r")
        );
        assert_eq!(ctr.captured_path("Tags.team"), None, "not asked for");
        assert_eq!(
            ctr.path("Tags.team").as_deref(),
            Some("a"),
            "parsed instead"
        );
        let plain = Ctr::decode(json.into_bytes(), &Capture::none()).unwrap();
        assert_eq!(plain.captured_path("Agent.Username"), None);
        assert_eq!(plain.path("Agent.Username").as_deref(), Some("jo"));
    }

    /// A contact built in code (a contact-flow event's) has no JSON to parse: its typed fields
    /// answer their paths.
    #[test]
    fn typed_paths_answer_from_the_fields_of_a_contact_built_in_code() {
        let mut ctr = Ctr::new(ContactId::parse(ID).unwrap());
        let text = |s: &str| Some(s.to_owned());
        ctr.channel = text("VOICE");
        ctr.initiation_method = text("INBOUND");
        ctr.disconnect_reason = text("CUSTOMER_DISCONNECT");
        ctr.previous_contact_id = text("p");
        ctr.next_contact_id = text("n");
        ctr.initial_contact_id = text("i");
        ctr.customer_endpoint = Some(Endpoint {
            address: text("+15555550147"),
            kind: text("TELEPHONE_NUMBER"),
        });
        ctr.system_endpoint = Some(Endpoint {
            address: text("+18005550100"),
            kind: None,
        });
        ctr.queue = Some(Queue {
            name: text("Billing"),
            arn: text("arn:q"),
            ..Queue::default()
        });
        let expected = [
            ("ContactId", Some(ID)),
            ("Channel", Some("VOICE")),
            ("InitiationMethod", Some("INBOUND")),
            ("DisconnectReason", Some("CUSTOMER_DISCONNECT")),
            ("PreviousContactId", Some("p")),
            ("NextContactId", Some("n")),
            ("InitialContactId", Some("i")),
            ("CustomerEndpoint.Address", Some("+15555550147")),
            ("CustomerEndpoint.Type", Some("TELEPHONE_NUMBER")),
            ("SystemEndpoint.Address", Some("+18005550100")),
            ("SystemEndpoint.Type", None),
            ("Queue.Name", Some("Billing")),
            ("Queue.ARN", Some("arn:q")),
        ];
        for (path, value) in expected {
            assert!(is_typed_path(path), "{path}");
            assert_eq!(ctr.typed_path(path), Some(value), "{path}");
        }
        assert_eq!(ctr.typed_path("Agent.Username"), None);
        assert!(!is_typed_path("Agent.Username"));
    }

    /// An endpoint or queue of an unexpected shape still counts as present (a queued
    /// contact stays queued); a text field holding an object is absent; every known key of
    /// an object is read.
    #[test]
    fn odd_shapes_of_endpoints_queues_and_text_fields_decode_leniently() {
        for odd in [r#""x""#, "5", "true", "[1]"] {
            let ctr = decode(&format!(
                r#"{{"ContactId":"{ID}","CustomerEndpoint":{odd},"Queue":{odd}}}"#
            ))
            .unwrap();
            assert_eq!(ctr.customer_endpoint, Some(Endpoint::default()), "{odd}");
            assert_eq!(ctr.queue, Some(Queue::default()), "{odd}");
        }
        let ctr = decode(&format!(
            r#"{{"ContactId":"{ID}","Channel":{{"odd":[1,{{"deep":2}}]}},
                "CustomerEndpoint":{{"Address":"+15555550147","Type":"TELEPHONE_NUMBER","x":1}},
                "Queue":{{"Name":"Q","ARN":"arn:q","EnqueueTimestamp":"2024-02-25T08:30:00Z",
                          "DequeueTimestamp":"2024-02-25T08:31:00Z","x":{{}}}}}}"#
        ))
        .unwrap();
        assert_eq!(ctr.channel, None);
        let endpoint = ctr.customer_endpoint.unwrap();
        assert_eq!(endpoint.address.as_deref(), Some("+15555550147"));
        assert_eq!(endpoint.kind.as_deref(), Some("TELEPHONE_NUMBER"));
        let queue = ctr.queue.unwrap();
        assert_eq!(queue.name.as_deref(), Some("Q"));
        assert_eq!(queue.arn.as_deref(), Some("arn:q"));
        let at = |t: &str| Some(t.parse::<DateTime<Utc>>().unwrap());
        assert_eq!(queue.enqueue_timestamp, at("2024-02-25T08:30:00Z"));
        assert_eq!(queue.dequeue_timestamp, at("2024-02-25T08:31:00Z"));
    }

    #[test]
    fn the_raw_json_is_the_record_as_received() {
        let json = format!(r#"{{ "ContactId" : "{ID}", "Odd": [1, 2] }}"#);
        assert_eq!(decode(&json).unwrap().raw_json(), json);
    }

    #[test]
    fn minimal_record_decodes() {
        let ctr = decode(&format!(r#"{{"ContactId":"{ID}"}}"#)).unwrap();
        assert_eq!(ctr.contact_id.as_str(), ID);
        assert!(!ctr.has_agent && ctr.queue.is_none() && ctr.channel.is_none());
    }

    #[test]
    fn explicit_nulls_decode_as_absent() {
        let json = format!(
            r#"{{"ContactId":"{ID}","Agent":null,"Queue":null,"Channel":null,"Attributes":null,
               "CustomerEndpoint":null,"DisconnectTimestamp":null,"NextContactId":null}}"#
        );
        let ctr = decode(&json).unwrap();
        assert!(!ctr.has_agent && ctr.queue.is_none() && ctr.customer_endpoint.is_none());
        assert!(ctr.attributes.is_empty() && ctr.next_contact_id.is_none());
    }

    #[test]
    fn non_string_attributes_render_as_text() {
        let json = format!(
            r#"{{"ContactId":"{ID}","Attributes":{{"n":10,"b":true,"s":"x","z":null,"o":{{"a":1}}}}}}"#
        );
        let ctr = decode(&json).unwrap();
        assert_eq!(ctr.attributes["n"], "10");
        assert_eq!(ctr.attributes["b"], "true");
        assert_eq!(ctr.attributes["s"], "x");
        assert_eq!(ctr.attributes["z"], "");
        assert_eq!(ctr.attributes["o"], r#"{"a":1}"#);
    }

    #[test]
    fn wrong_types_do_not_fail_the_record() {
        let json = format!(
            r#"{{"ContactId":"{ID}","Channel":7,"InitiationTimestamp":"yesterday",
               "CustomerEndpoint":"+1555","Agent":"someone","Attributes":[1,2],"Queue":{{"Name":5}}}}"#
        );
        let ctr = decode(&json).unwrap();
        assert_eq!(ctr.channel.as_deref(), Some("7"));
        assert!(ctr.initiation_timestamp.is_none());
        assert!(ctr.has_agent, "a non-null Agent means an agent was there");
        assert_eq!(ctr.customer_endpoint, Some(Endpoint::default()));
        assert!(ctr.attributes.is_empty());
        assert_eq!(ctr.queue.unwrap().name.as_deref(), Some("5"));
    }

    #[test]
    fn escaped_strings_decode() {
        let json = format!(r#"{{"ContactId":"{ID}","Attributes":{{"name":"Jos\u00e9 \"J\""}}}}"#);
        assert_eq!(decode(&json).unwrap().attributes["name"], "José \"J\"");
    }

    #[test]
    fn missing_or_bad_contact_id_is_an_error() {
        assert_eq!(decode("{}").unwrap_err(), DecodeError::MissingContactId);
        assert_eq!(
            decode(r#"{"ContactId":""}"#).unwrap_err(),
            DecodeError::MissingContactId
        );
        assert_eq!(
            decode(r#"{"ContactId":"../../sobjects/User"}"#).unwrap_err(),
            DecodeError::InvalidContactId
        );
        assert_eq!(
            decode(r#"{"ContactId":"6fe40d2a1a894d73bfcf5d9c33894f47"}"#).unwrap_err(),
            DecodeError::InvalidContactId
        );
    }

    #[test]
    fn non_json_is_an_error_without_content() {
        let err = decode("+15551234567 hung up").unwrap_err();
        assert!(matches!(err, DecodeError::Json { .. }));
        assert!(!err.to_string().contains("555"));
        assert!(matches!(
            decode("[1,2]").unwrap_err(),
            DecodeError::Json { .. }
        ));
        assert!(matches!(
            decode(r#"{"ContactId":"#).unwrap_err(),
            DecodeError::Json { kind: "eof", .. }
        ));
        assert_eq!(decode("  ").unwrap_err(), DecodeError::Empty);
        assert!(matches!(
            Ctr::from_bytes(vec![b'{', 0xff, b'}']).unwrap_err(),
            DecodeError::Utf8 { offset: 1 }
        ));
    }

    #[test]
    fn path_reaches_untyped_fields() {
        let json = format!(
            r#"{{"ContactId":"{ID}","Agent":{{"Username":"a.b"}},"Recordings":[{{"Location":"s3://x"}}],
               "Attributes":{{"n":10}},"Tags":{{"aws:connect:instanceId":"i-1"}}}}"#
        );
        let ctr = decode(&json).unwrap();
        assert_eq!(ctr.path("Agent.Username").as_deref(), Some("a.b"));
        assert_eq!(ctr.path("Recordings.0.Location").as_deref(), Some("s3://x"));
        assert_eq!(ctr.path("Attributes.n").as_deref(), Some("10"));
        assert_eq!(
            ctr.path("Tags.aws:connect:instanceId").as_deref(),
            Some("i-1")
        );
        assert_eq!(ctr.path("Agent.Nope"), None);
    }

    #[test]
    fn timestamps_parse_as_utc() {
        let json =
            format!(r#"{{"ContactId":"{ID}","LastUpdateTimestamp":"2022-01-05T17:48:35Z"}}"#);
        let ctr = decode(&json).unwrap();
        assert_eq!(
            ctr.last_update_timestamp.unwrap().to_rfc3339(),
            "2022-01-05T17:48:35+00:00"
        );
    }
}

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
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase", default)]
pub struct Endpoint {
    /// Phone number or other address. Customer data: never log it.
    #[serde(deserialize_with = "lenient_string")]
    pub address: Option<String>,
    /// `TELEPHONE_NUMBER`, `EMAIL_ADDRESS`, …
    #[serde(rename = "Type", deserialize_with = "lenient_string")]
    pub kind: Option<String>,
}

/// The queue part of a CTR. Present when the contact was put in a queue.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase", default)]
pub struct Queue {
    /// Queue name.
    #[serde(deserialize_with = "lenient_string")]
    pub name: Option<String>,
    /// Queue ARN.
    #[serde(rename = "ARN", deserialize_with = "lenient_string")]
    pub arn: Option<String>,
    /// When the contact entered the queue.
    #[serde(deserialize_with = "lenient_timestamp")]
    pub enqueue_timestamp: Option<DateTime<Utc>>,
    /// When the contact left the queue.
    #[serde(deserialize_with = "lenient_timestamp")]
    pub dequeue_timestamp: Option<DateTime<Utc>>,
}

/// The typed fields of a CTR that ctr-cases uses. Everything else stays in [`Ctr::raw`].
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct CtrFields {
    #[serde(deserialize_with = "lenient_string")]
    contact_id: Option<String>,
    #[serde(deserialize_with = "lenient_string")]
    channel: Option<String>,
    #[serde(deserialize_with = "lenient_string")]
    initiation_method: Option<String>,
    #[serde(deserialize_with = "presence")]
    agent: bool,
    #[serde(deserialize_with = "lenient_object")]
    queue: Option<Queue>,
    #[serde(deserialize_with = "lenient_attributes")]
    attributes: BTreeMap<String, String>,
    #[serde(deserialize_with = "lenient_object")]
    customer_endpoint: Option<Endpoint>,
    #[serde(deserialize_with = "lenient_object")]
    system_endpoint: Option<Endpoint>,
    #[serde(deserialize_with = "lenient_string")]
    disconnect_reason: Option<String>,
    #[serde(deserialize_with = "lenient_timestamp")]
    initiation_timestamp: Option<DateTime<Utc>>,
    #[serde(deserialize_with = "lenient_timestamp")]
    connected_to_system_timestamp: Option<DateTime<Utc>>,
    #[serde(deserialize_with = "lenient_timestamp")]
    disconnect_timestamp: Option<DateTime<Utc>>,
    #[serde(deserialize_with = "lenient_timestamp")]
    last_update_timestamp: Option<DateTime<Utc>>,
    #[serde(deserialize_with = "lenient_string")]
    previous_contact_id: Option<String>,
    #[serde(deserialize_with = "lenient_string")]
    next_contact_id: Option<String>,
    #[serde(deserialize_with = "lenient_string")]
    initial_contact_id: Option<String>,
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
    raw: String,
}

impl Ctr {
    /// Decodes a CTR from its JSON bytes (the decoded Kinesis `data`).
    ///
    /// # Errors
    /// [`DecodeError`] when the bytes are not UTF-8, not a JSON object, or the `ContactId` is
    /// missing or not a UUID.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, DecodeError> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(DecodeError::Empty);
        }
        let raw = String::from_utf8(bytes).map_err(|e| DecodeError::Utf8 {
            offset: e.utf8_error().valid_up_to(),
        })?;
        Self::from_json(raw)
    }

    /// Decodes a CTR from JSON text; see [`Ctr::from_bytes`].
    ///
    /// # Errors
    /// As [`Ctr::from_bytes`].
    pub fn from_json(raw: String) -> Result<Self, DecodeError> {
        if !raw.trim_start().starts_with('{') {
            return Err(DecodeError::Json {
                kind: "data",
                line: 1,
                column: 1,
            });
        }
        let fields: CtrFields =
            serde_json::from_str(&raw).map_err(|e| DecodeError::from_json(&e))?;
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
            raw,
        })
    }

    /// The record's JSON text exactly as received.
    pub fn raw_json(&self) -> &str {
        &self.raw
    }

    /// The caller's address (`CustomerEndpoint.Address`), if any. Customer data: never log it.
    pub fn customer_address(&self) -> Option<&str> {
        self.customer_endpoint.as_ref()?.address.as_deref()
    }

    /// Looks up any field of the record by a dotted path such as `Agent.Username`,
    /// `Attributes.intent` or `Recordings.0.Location`, rendered as text (strings as they are,
    /// other values as compact JSON). `None` when the path is absent or null.
    ///
    /// This parses the raw record, so it is meant for Case mapping (once per Case), not for the
    /// hot decode path.
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
        let root: serde_json::Value = serde_json::from_str(&self.raw).ok()?;
        lookup_path(&root, path)
    }
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

/// Reads a string field that may be null, absent, a number or a boolean (rendered as text), or
/// some other shape (ignored). Never fails.
fn lenient_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Option<String>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a string, or any JSON value")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(v.to_owned()))
        }
        fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
            Ok(Some(v))
        }
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Self::Value, D2::Error> {
            d.deserialize_any(V)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            Ok(None)
        }
        fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(None)
        }
    }
    d.deserialize_any(V)
}

/// Reads an RFC 3339 timestamp; anything else (null, absent, another format) becomes `None`.
fn lenient_timestamp<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    Ok(lenient_string(d)?
        .and_then(|s| DateTime::parse_from_rfc3339(&s).ok())
        .map(|t| t.with_timezone(&Utc)))
}

/// Whether a field is present and not null, skipping its content without building it.
fn presence<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(Option::<IgnoredAny>::deserialize(d)?.is_some())
}

/// Reads a nested object. `null` is `None`; an object of an unexpected shape is `Some(default)`
/// for the parts that do not fit, because its presence is what classification looks at.
fn lenient_object<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: serde::de::DeserializeOwned + Default,
{
    let value = serde_json::Value::deserialize(d)?;
    Ok(match value {
        serde_json::Value::Null => None,
        other => Some(T::deserialize(other).unwrap_or_default()),
    })
}

/// Reads `Attributes`: a map whose values are usually strings; numbers, booleans, objects and
/// arrays are kept as JSON text and null as an empty string. A non-object is an empty map.
fn lenient_attributes<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, String>, D::Error> {
    let value = serde_json::Value::deserialize(d)?;
    let serde_json::Value::Object(map) = value else {
        return Ok(BTreeMap::new());
    };
    Ok(map
        .into_iter()
        .map(|(k, v)| {
            let text = value_text(&v).unwrap_or_default();
            (k, text)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "6fe40d2a-1a89-4d73-bfcf-5d9c33894f47";

    fn decode(json: &str) -> Result<Ctr, DecodeError> {
        Ctr::from_bytes(json.as_bytes().to_vec())
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

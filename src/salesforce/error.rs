//! Salesforce errors, kept as Salesforce sent them, grouped by what the caller must do.

pub use crate::effect::ErrorClass;

use std::time::Duration;

use crate::effect::Failure;
use crate::retry::{Deadline, RetryPolicy};

/// How a request failed to get an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportKind {
    /// The request timed out.
    Timeout,
    /// The connection could not be made.
    Connect,
    /// The connection broke (reset, closed before the answer).
    Broken,
}

/// A Salesforce failure. Messages are shown without record values: Salesforce error messages
/// can quote field values (phone numbers), so `Display` prints codes and field names only and
/// the full message is kept in the struct for the dead-letter queue.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The data API answered with an error (`[{"message","errorCode","fields"}]`) or a record in
    /// a collections response failed (`{"statusCode","message","fields"}`).
    #[error("Salesforce answered {status} {error_code}{}", fields_suffix(.fields))]
    Api {
        /// HTTP status (200 for a per-record error in a collections response).
        status: u16,
        /// `errorCode` / `statusCode`, e.g. `REQUIRED_FIELD_MISSING`.
        error_code: String,
        /// Salesforce's message (may quote record values: not for logs).
        message: String,
        /// Fields the error is about.
        fields: Vec<String>,
    },
    /// The OAuth token endpoint refused the grant.
    #[error("Salesforce refused the OAuth grant ({error}): {}", auth_hint(.error, .description))]
    AuthRejected {
        /// HTTP status.
        status: u16,
        /// OAuth `error`, e.g. `invalid_grant`.
        error: String,
        /// OAuth `error_description`.
        description: String,
    },
    /// No answer: timeout, refused or broken connection.
    #[error("could not reach Salesforce ({kind:?}): {detail}")]
    Transport {
        /// What went wrong on the wire.
        kind: TransportKind,
        /// The HTTP client's description (no credentials; URL paths carry no customer data).
        detail: String,
    },
    /// A request-level answer that is not Salesforce's (an HTML page from a proxy or gateway,
    /// a redirect): Salesforce cannot be reached as such.
    #[error(
        "the answer (HTTP {status}) did not come from Salesforce's API (a proxy or gateway page, \
         or a redirect): check the network path to the instance and the org's status"
    )]
    NotSalesforce {
        /// HTTP status.
        status: u16,
        /// `HTTP_<status>`.
        code: String,
    },
    /// An answer that does not match the documented format.
    #[error("unexpected answer from Salesforce (HTTP {status}): {detail}")]
    InvalidResponse {
        /// HTTP status.
        status: u16,
        /// What did not match.
        detail: String,
    },
    /// The credentials could not be loaded.
    #[error("Salesforce credentials unavailable: {0}")]
    Credentials(String),
    /// Not enough time left in the invocation to make the call: the invocation's deadline, not
    /// Salesforce, stopped it.
    #[error(
        "the invocation's deadline left no time to call Salesforce (not a Salesforce failure): \
         raise the function's timeout or lower the batch size"
    )]
    DeadlineReached,
    /// The token endpoint refused these credentials recently; no login is attempted until they
    /// change or the cool-down ends (refused logins lock the Salesforce user out).
    #[error(
        "Salesforce refused these credentials ({cause}); not signing in again for {remaining_secs} s \
         unless the secret changes: fix the credentials (SALESFORCE_SECRET_ARN / SALESFORCE_*)"
    )]
    LoginCoolingDown {
        /// Seconds left.
        remaining_secs: u64,
        /// The OAuth error that started the cool-down.
        cause: String,
    },
    /// The token endpoint named an `instance_url` that may not receive the token: nothing was
    /// sent to it.
    #[error(
        "Salesforce's token answer named an instance_url that is refused ({0}); no request was \
         sent to it: check SALESFORCE_LOGIN_URL and the org's My Domain, or add its domain to \
         SALESFORCE_ALLOWED_HOSTS"
    )]
    InstanceUrlRefused(super::endpoint::EndpointError),
    /// The Case the contact flow named (by Id, in a contact attribute) does not exist.
    #[error(
        "the Case {id} named by the contact's case id attribute does not exist (deleted?); \
         the contact's outcome was not recorded"
    )]
    CaseNotFound {
        /// The Case Id from the attribute.
        id: String,
    },
    /// The org does not take what the configuration writes (the org check found problems):
    /// nothing can be written until the org or the mapping is fixed.
    #[error(
        "the Salesforce org does not fit the configuration: {}; run `ctr-cases check` after \
         fixing it (no redeploy needed: the org is checked again while this lasts)",
        .problems.join("; ")
    )]
    ConfigurationInvalid {
        /// One sentence per problem: the field, what is wrong, the valid values.
        problems: Vec<String>,
    },
    /// The contact's Case exists but the integration user may not read or edit it (Private
    /// Case sharing after an assignment rule or an agent took it).
    #[error(
        "the contact's Case exists but the integration user may not {access} it: share Cases \
         that carry a ContactId with the user (docs/deploy.md, \"Sharing\"), then redrive"
    )]
    CaseNotAccessible {
        /// `read` or `edit`.
        access: &'static str,
    },
}

fn fields_suffix(fields: &[String]) -> String {
    if fields.is_empty() {
        String::new()
    } else {
        format!(" (fields: {})", fields.join(", "))
    }
}

/// The admin action for a token-endpoint error, from the OAuth `error` and its (generic,
/// customer-data-free) `error_description`. See README "Troubleshooting".
fn auth_hint(error: &str, description: &str) -> &'static str {
    let says = |text: &str| description.to_ascii_lowercase().contains(text);
    match error {
        "invalid_grant" if says("hasn't approved") || says("not approved") => {
            "jwt_bearer: the integration user is not pre-authorized for the connected app; in \
             the app's policies set Permitted Users to admin-approved and add the user's profile \
             or a permission set"
        }
        "invalid_grant" if says("audience") => {
            "jwt_bearer: the JWT audience is wrong; use https://login.salesforce.com (production \
             and My Domain) or https://test.salesforce.com (sandboxes), or set \
             SALESFORCE_JWT_AUDIENCE"
        }
        "invalid_grant" if says("assertion") || says("expired") || says("signature") => {
            "jwt_bearer: the assertion was refused; check that the certificate uploaded to the \
             connected app matches private_key in the secret and that the clock is right"
        }
        "invalid_grant" if says("client credentials user") || says("run as") => {
            "client_credentials: no Run As user is set; turn on Enable Client Credentials Flow on \
             the connected app and choose its Run As user"
        }
        "invalid_grant" if says("not supported on this domain") => {
            "client_credentials: use the org's My Domain URL as the login URL \
             (https://<domain>.my.salesforce.com), not login.salesforce.com"
        }
        "invalid_grant" if says("ip restricted") || says("login hours") => {
            "the connected app's IP relaxation or the user's login hours refuse this login: relax \
             IP restrictions for the app or allow the Lambda's egress addresses"
        }
        "invalid_grant" => {
            "check the credentials for the grant in use: password grant: the username and the \
             password + security token (the user may be locked out after repeated failures); \
             jwt_bearer: username, certificate and pre-authorization; client_credentials: the \
             Run As user"
        }
        "invalid_client_id" => {
            "check client_id (the connected app's consumer key) in the Salesforce secret"
        }
        "invalid_client" => {
            "check client_secret (the connected app's consumer secret) in the Salesforce secret"
        }
        "unsupported_grant_type" => {
            "this org does not allow the selected OAuth grant (new orgs block Salesforce's \
             Username-Password Flow): set SALESFORCE_AUTH_FLOW=jwt_bearer or client_credentials"
        }
        "invalid_app_access" => {
            "the user may not use this connected app: add the user's profile or a permission set \
             to the app (Manage Connected Apps > Profiles / Permission Sets)"
        }
        "inactive_user" => "the integration user is inactive: reactivate it in Setup > Users",
        "inactive_org" => "the org is locked, deleted or suspended: contact its admin",
        "rate_limit_exceeded" => {
            "too many logins for this user: wait, and check that the credentials are right so \
             logins stop failing"
        }
        _ => "check the connected app and the credentials in the Salesforce secret",
    }
}

impl Error {
    /// What to do about this error, per the REST API Developer Guide ("Status Codes and Error Responses") and docs/deploy.md, "Troubleshooting".
    pub fn class(&self) -> ErrorClass {
        match self {
            Error::Api {
                status,
                error_code,
                message,
                ..
            } => classify_api(*status, error_code, message),
            Error::NotSalesforce { .. } => ErrorClass::Unavailable,
            Error::AuthRejected { .. } | Error::Credentials(_) | Error::LoginCoolingDown { .. } => {
                ErrorClass::AuthRejected
            }
            Error::Transport { .. } => ErrorClass::Transient,
            Error::DeadlineReached => ErrorClass::OutOfTime,
            Error::CaseNotFound { .. } => ErrorClass::Permanent,
            Error::ConfigurationInvalid { .. } => ErrorClass::Configuration,
            Error::CaseNotAccessible { .. } => ErrorClass::NoAccess,
            Error::InstanceUrlRefused(_) => ErrorClass::Unavailable,
            Error::InvalidResponse { status, .. } if *status >= 500 => ErrorClass::Transient,
            // A 2xx/4xx body we cannot read: treat as transient, since a write may have been
            // applied and only idempotent upserts make the retry safe.
            Error::InvalidResponse { .. } => ErrorClass::Transient,
        }
    }

    /// The Salesforce error code, OAuth error, or a short kind for other errors.
    pub fn code(&self) -> &str {
        match self {
            Error::Api { error_code, .. } => error_code,
            Error::AuthRejected { error, .. } => error,
            Error::Transport {
                kind: TransportKind::Timeout,
                ..
            } => "timeout",
            Error::Transport {
                kind: TransportKind::Connect,
                ..
            } => "connect_failed",
            Error::Transport { .. } => "connection_broken",
            Error::InvalidResponse { .. } => "invalid_response",
            Error::NotSalesforce { code, .. } => code,
            Error::Credentials(_) => "credentials_unavailable",
            Error::DeadlineReached => "deadline_reached",
            Error::CaseNotFound { .. } => "CASE_NOT_FOUND",
            Error::ConfigurationInvalid { .. } => "configuration_invalid",
            Error::CaseNotAccessible { .. } => "CASE_NOT_ACCESSIBLE",
            Error::InstanceUrlRefused(_) => "instance_url_refused",
            Error::LoginCoolingDown { .. } => "login_cooling_down",
        }
    }

    /// This error as data for the pipeline: class, code, Salesforce's message (for the
    /// dead-letter queue only), a loggable summary, status and fields.
    pub fn to_failure(&self) -> Failure {
        let (message, fields) = match self {
            Error::Api {
                message, fields, ..
            } => (message.clone(), fields.clone()),
            other => (other.to_string(), Vec::new()),
        };
        Failure {
            class: self.class(),
            code: self.code().to_owned(),
            message,
            summary: self.to_string(),
            status: self.status(),
            fields,
        }
    }

    /// The HTTP status, when there was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. }
            | Error::NotSalesforce { status, .. }
            | Error::AuthRejected { status, .. }
            | Error::InvalidResponse { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// The HTTP client's failure as an [`Error::Transport`].
pub(super) fn transport_error(err: reqwest::Error) -> Error {
    let kind = if err.is_timeout() {
        TransportKind::Timeout
    } else if err.is_connect() {
        TransportKind::Connect
    } else {
        TransportKind::Broken
    };
    // Without the URL: it is not secret, but the error text should stay short and stable.
    Error::Transport {
        kind,
        detail: err.without_url().to_string(),
    }
}

/// The timeout for one request under `policy` before `deadline`.
///
/// # Errors
/// [`Error::DeadlineReached`] when too little time is left to start the request.
pub(super) fn request_timeout(policy: &RetryPolicy, deadline: Deadline) -> Result<Duration, Error> {
    deadline
        .request_timeout(policy.request_timeout, policy.min_request_time)
        .ok_or(Error::DeadlineReached)
}

/// Error codes that say a request (or a record) is wrong: fixing it needs a change to the
/// record or the configuration, so retrying cannot help.
const PERMANENT_CODES: [&str; 17] = [
    "INVALID_FIELD",
    "INVALID_FIELD_FOR_INSERT_UPDATE",
    "REQUIRED_FIELD_MISSING",
    "FIELD_CUSTOM_VALIDATION_EXCEPTION",
    "FIELD_INTEGRITY_EXCEPTION",
    "STRING_TOO_LONG",
    "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
    "JSON_PARSER_ERROR",
    "MALFORMED_ID",
    "MALFORMED_QUERY",
    "INVALID_TYPE",
    "INVALID_CROSS_REFERENCE_KEY",
    "ENTITY_IS_DELETED",
    "DUPLICATE_VALUE",
    "NOT_FOUND",
    "EXCEEDED_ID_LIMIT",
    "METHOD_NOT_ALLOWED",
];

/// Salesforce's documented error codes, by class. `status` 200 means a per-record error inside
/// a collections answer; any other status, an error for the whole request.
fn classify_api(status: u16, code: &str, message: &str) -> ErrorClass {
    match (status, code) {
        (401, _) | (_, "INVALID_SESSION_ID") => ErrorClass::AuthExpired,
        (_, "REQUEST_LIMIT_EXCEEDED") if message.contains("TotalRequests") => {
            ErrorClass::QuotaExhausted
        }
        (_, "REQUEST_LIMIT_EXCEEDED") => ErrorClass::Throttled,
        (_, "UNABLE_TO_LOCK_ROW" | "SERVER_UNAVAILABLE" | "UNKNOWN_EXCEPTION") => {
            ErrorClass::Transient
        }
        (s, _) if s >= 500 => ErrorClass::Transient,
        (429, _) => ErrorClass::Throttled,
        // The API itself refused the integration: no record can be written until an admin acts.
        (s, "API_DISABLED_FOR_ORG" | "API_CURRENTLY_DISABLED" | "INSUFFICIENT_ACCESS")
            if s != 200 =>
        {
            ErrorClass::Unavailable
        }
        // A record the integration user may not edit (sharing): that record's own problem.
        (200, "INSUFFICIENT_ACCESS_OR_READONLY") => ErrorClass::NoAccess,
        (_, "INSUFFICIENT_ACCESS_OR_READONLY") => ErrorClass::Configuration,
        (_, code) if PERMANENT_CODES.contains(&code) => ErrorClass::Permanent,
        // An unknown code on one record is that record's problem; on the whole request, the
        // request could not be served at all.
        (200, _) => ErrorClass::Permanent,
        _ => ErrorClass::Unavailable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16, code: &str, message: &str) -> Error {
        Error::Api {
            status,
            error_code: code.into(),
            message: message.into(),
            fields: vec![],
        }
    }

    #[test]
    fn documented_codes_have_documented_classes() {
        use ErrorClass::*;
        let table = [
            (
                401,
                "INVALID_SESSION_ID",
                "Session expired or invalid",
                AuthExpired,
            ),
            (
                403,
                "REQUEST_LIMIT_EXCEEDED",
                "TotalRequests Limit exceeded.",
                QuotaExhausted,
            ),
            (
                403,
                "REQUEST_LIMIT_EXCEEDED",
                "ConcurrentPerOrgLongTxn Limit exceeded",
                Throttled,
            ),
            (
                400,
                "UNABLE_TO_LOCK_ROW",
                "unable to obtain exclusive access",
                Transient,
            ),
            (
                200,
                "UNABLE_TO_LOCK_ROW",
                "unable to obtain exclusive access",
                Transient,
            ),
            (400, "INVALID_FIELD", "No such column", Permanent),
            (
                400,
                "REQUIRED_FIELD_MISSING",
                "Required fields are missing",
                Permanent,
            ),
            (400, "FIELD_CUSTOM_VALIDATION_EXCEPTION", "rule", Permanent),
            (400, "STRING_TOO_LONG", "data value too large", Permanent),
            (
                400,
                "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                "bad value",
                Permanent,
            ),
            (400, "JSON_PARSER_ERROR", "Unexpected character", Permanent),
            (400, "MALFORMED_ID", "bad id", Permanent),
            (400, "DUPLICATE_VALUE", "duplicate value found", Permanent),
            (
                404,
                "NOT_FOUND",
                "The requested resource does not exist",
                Permanent,
            ),
            (
                500,
                "UNKNOWN_EXCEPTION",
                "An unexpected error occurred",
                Transient,
            ),
            (503, "SERVER_UNAVAILABLE", "Server unavailable", Transient),
            (502, "", "", Transient),
            (
                403,
                "API_DISABLED_FOR_ORG",
                "API is not enabled",
                Unavailable,
            ),
            (403, "API_CURRENTLY_DISABLED", "disabled", Unavailable),
            (
                403,
                "INSUFFICIENT_ACCESS",
                "insufficient access",
                Unavailable,
            ),
            (200, "INSUFFICIENT_ACCESS", "one record", Permanent),
            (400, "SOMETHING_NEW", "an unknown code", Unavailable),
            (200, "SOMETHING_NEW", "an unknown code", Permanent),
        ];
        for (status, code, message, class) in table {
            assert_eq!(api(status, code, message).class(), class, "{status} {code}");
        }
    }

    #[test]
    fn display_never_shows_the_message() {
        let err = Error::Api {
            status: 400,
            error_code: "STRING_TOO_LONG".into(),
            message: "Subject: data value too large: Dropped call from +15551234567".into(),
            fields: vec!["Subject".into()],
        };
        let shown = err.to_string();
        assert_eq!(
            shown,
            "Salesforce answered 400 STRING_TOO_LONG (fields: Subject)"
        );
    }

    #[test]
    fn token_errors_name_the_admin_action_per_grant() {
        let hint = |error: &str, description: &str| {
            Error::AuthRejected {
                status: 400,
                error: error.into(),
                description: description.into(),
            }
            .to_string()
        };
        assert!(
            hint("invalid_grant", "user hasn't approved this consumer").contains("pre-authorized")
        );
        assert!(hint("invalid_grant", "audience is invalid").contains("SALESFORCE_JWT_AUDIENCE"));
        assert!(hint("invalid_grant", "no client credentials user enabled").contains("Run As"));
        assert!(
            hint("invalid_grant", "request not supported on this domain").contains("My Domain")
        );
        assert!(hint("invalid_grant", "authentication failure").contains("security token"));
        assert!(
            hint("invalid_app_access", "user is not admin approved").contains("permission set")
        );
        assert!(hint("inactive_user", "").contains("reactivate"));
        assert!(hint("invalid_client_id", "").contains("consumer key"));
    }

    #[test]
    fn auth_errors_say_what_to_fix() {
        let err = Error::AuthRejected {
            status: 400,
            error: "unsupported_grant_type".into(),
            description: "grant type not supported".into(),
        };
        assert!(err.to_string().contains("SALESFORCE_AUTH_FLOW=jwt_bearer"));
        assert_eq!(err.class(), ErrorClass::AuthRejected);
        assert!(!ErrorClass::AuthRejected.is_retryable());
        assert!(ErrorClass::Throttled.is_retryable());
    }
}

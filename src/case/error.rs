//! Every way a Case mapping definition can be wrong, each message naming what to fix.

/// What went wrong in a Case mapping definition.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    /// A field name is not a Salesforce API name.
    #[error(
        "`{0}` is not a Salesforce field API name (letters, digits and underscores, starting with a letter)"
    )]
    InvalidFieldName(String),
    /// A template has an unclosed or stray brace.
    #[error(
        "the template for `{field}` has an unbalanced brace at character {position}; write {{{{ or }}}} for a literal brace"
    )]
    UnbalancedBrace {
        /// The field whose template is wrong.
        field: String,
        /// Character position of the problem.
        position: usize,
    },
    /// The mapping tries to set the external id or version field, which ctr-cases always sets
    /// itself (to the ContactId and the CTR's LastUpdateTimestamp).
    #[error(
        "`{0}` is the external id or version field; ctr-cases always sets it (to the ContactId / the CTR's LastUpdateTimestamp) and it cannot be mapped"
    )]
    ExternalIdMapped(String),
    /// A write mode is neither `on_create` nor `kept_current`.
    #[error(
        "the mode `{mode}` for `{field}` is not a write mode: use \"on_create\" (written when the Case is created) or \"kept_current\" (also written by newer versions of the contact)"
    )]
    InvalidMode {
        /// The field.
        field: String,
        /// What was given.
        mode: String,
    },
    /// A per-outcome template definition is wrong.
    #[error("{0}")]
    InvalidTemplate(String),
    /// The mapping JSON is not an object of strings (or nulls to remove a default).
    #[error(
        "the Case mapping must be a JSON object of field name → template string (or null to drop a default field): {0}"
    )]
    NotAnObject(String),
}

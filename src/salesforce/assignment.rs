//! Case assignment rules, decided by us (`CASE_ASSIGNMENT_RULES`): Salesforce REST runs the
//! org's active Case assignment rule on every create *and update* unless the request says
//! otherwise with the `Sforce-Auto-Assign` header (absent = TRUE). ctr-cases lets a rule route
//! each new Case at most, and never runs one on a Case that exists: an agent's Case is never
//! reassigned.

use std::fmt;

/// The request header that decides whether assignment rules run (REST API Developer Guide,
/// "Assignment Rule Header").
pub const HEADER: &str = "Sforce-Auto-Assign";

/// The header value on every write to an existing Case, on every path: no rule runs.
pub const ON_UPDATE: &str = "FALSE";

/// Which assignment rule runs when a Case is created.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum AssignmentRules {
    /// The org's active Case assignment rule routes each new Case (`on_create`, the default).
    #[default]
    OnCreate,
    /// No rule runs, ever (`never`): the Owner is the mapping's OwnerId or the integration
    /// user.
    Never,
    /// This AssignmentRule (`01Q…`) routes each new Case.
    Rule(String),
}

/// `CASE_ASSIGNMENT_RULES` is not one of the accepted values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "\"{0}\" is not an assignment rule setting: use on_create (the org's active rule routes \
     new Cases), never, or an AssignmentRule Id (15 or 18 characters starting 01Q)"
)]
pub struct AssignmentRulesError(String);

impl AssignmentRules {
    /// Parses `on_create`, `never` or an AssignmentRule Id.
    ///
    /// # Errors
    /// [`AssignmentRulesError`] for anything else.
    pub fn parse(text: &str) -> Result<Self, AssignmentRulesError> {
        let text = text.trim();
        match text.to_ascii_lowercase().as_str() {
            "on_create" => Ok(AssignmentRules::OnCreate),
            "never" => Ok(AssignmentRules::Never),
            _ if matches!(text.len(), 15 | 18)
                && text.starts_with("01Q")
                && text.bytes().all(|b| b.is_ascii_alphanumeric()) =>
            {
                Ok(AssignmentRules::Rule(text.to_owned()))
            }
            _ => Err(AssignmentRulesError(text.to_owned())),
        }
    }

    /// The header value on a request that creates Cases.
    pub fn on_create(&self) -> &str {
        match self {
            AssignmentRules::OnCreate => "TRUE",
            AssignmentRules::Never => "FALSE",
            AssignmentRules::Rule(id) => id,
        }
    }
}

impl fmt::Display for AssignmentRules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AssignmentRules::OnCreate => f.write_str("on_create"),
            AssignmentRules::Never => f.write_str("never"),
            AssignmentRules::Rule(id) => f.write_str(id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_parse_and_give_the_create_header() {
        let rule = AssignmentRules::parse(" 01Q5e000000XyZaEAK ").unwrap();
        assert_eq!(rule.on_create(), "01Q5e000000XyZaEAK");
        assert_eq!(AssignmentRules::parse("ON_CREATE").unwrap().on_create(), "TRUE");
        assert_eq!(AssignmentRules::parse("never").unwrap().on_create(), "FALSE");
        assert_eq!(AssignmentRules::default(), AssignmentRules::OnCreate);
        for bad in ["", "always", "01Q123", "00G5e000000XyZaEAK", "01Q5e000000XyZ-EAK"] {
            let e = AssignmentRules::parse(bad).unwrap_err();
            assert!(e.to_string().contains("on_create"), "{bad}");
        }
        assert_eq!(rule.to_string(), "01Q5e000000XyZaEAK");
        assert_eq!(ON_UPDATE, "FALSE");
    }
}

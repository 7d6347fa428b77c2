//! The template language parsed: literal text with `{path|fallback}` placeholders, and the
//! per-outcome, per-channel templates of Subject, Status, Priority and Origin.
//!
//! Rendering a template for a contact is [`super::render`]'s job; this module only parses and
//! picks templates.

use serde_json::Value;

use super::channel::{CHANNELS, origin_for};
use super::error::MappingError;
use crate::classify::TEMPLATE_KEYS;

/// One piece of a parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Piece {
    /// Text written as it is (`{{` and `}}` already unescaped).
    Literal(String),
    /// `{path|fallback}`: the fallback is written when the path renders nothing.
    Placeholder {
        /// The CTR path or special placeholder, trimmed.
        path: String,
        /// What to write when `path` renders nothing (empty when none is given).
        fallback: String,
    },
}

/// A parsed field template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Template(pub(super) Vec<Piece>);

impl Template {
    /// Parses a template for `field`.
    ///
    /// # Errors
    /// [`MappingError::UnbalancedBrace`] for a lone `{` or `}`.
    pub(super) fn parse(field: &str, text: &str) -> Result<Self, MappingError> {
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut chars = text.chars().enumerate().peekable();
        let unbalanced = |position| MappingError::UnbalancedBrace {
            field: field.to_owned(),
            position,
        };
        while let Some((pos, c)) = chars.next() {
            match c {
                '{' if chars.peek().map(|(_, c)| *c) == Some('{') => {
                    chars.next();
                    literal.push('{');
                }
                '}' if chars.peek().map(|(_, c)| *c) == Some('}') => {
                    chars.next();
                    literal.push('}');
                }
                '}' => return Err(unbalanced(pos)),
                '{' => {
                    let mut inner = String::new();
                    loop {
                        match chars.next() {
                            Some((_, '}')) => break,
                            Some((p, '{')) => return Err(unbalanced(p)),
                            Some((_, c)) => inner.push(c),
                            None => return Err(unbalanced(pos)),
                        }
                    }
                    if !literal.is_empty() {
                        pieces.push(Piece::Literal(std::mem::take(&mut literal)));
                    }
                    let (path, fallback) = inner.split_once('|').unwrap_or((&inner, ""));
                    pieces.push(Piece::Placeholder {
                        path: path.trim().to_owned(),
                        fallback: fallback.to_owned(),
                    });
                }
                c => literal.push(c),
            }
        }
        if !literal.is_empty() {
            pieces.push(Piece::Literal(literal));
        }
        Ok(Template(pieces))
    }

    /// The text this template renders to on `channel` when it needs nothing from the contact
    /// (literals and `{origin}` only); `None` otherwise.
    pub(super) fn fixed_text(&self, channel: &str) -> Option<String> {
        let mut text = String::new();
        for piece in &self.0 {
            match piece {
                Piece::Literal(s) => text.push_str(s),
                Piece::Placeholder { path, .. } if path == "origin" => {
                    text.push_str(origin_for(channel));
                }
                Piece::Placeholder { .. } => return None,
            }
        }
        Some(text.trim().to_owned())
    }
}

/// The Case fields whose default comes from the outcome's template ([`CaseTemplates`]).
pub const CASE_TEMPLATE_FIELDS: [&str; 4] = ["Subject", "Status", "Priority", "Origin"];

/// Per-outcome and per-channel templates for Subject, Status, Priority and Origin.
///
/// Keys are an outcome's template key (`dropped`, `queued_abandoned`, `live_agent`,
/// `virtual_agent_resolved`, `virtual_agent_handoff`, `handoff`, `transferred_out`) or `*`,
/// optionally followed by `.CHANNEL` (`dropped.CHAT`, `*.EMAIL`). For an outcome and channel the
/// first of `key.CHANNEL`, `*.CHANNEL`, `key`, `*` that sets the field wins, then the default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseTemplates {
    /// (key, field, template), in the order given.
    entries: Vec<(String, &'static str, Template)>,
    priority: Template,
    /// The template of each field for every (outcome key, channel), resolved once.
    resolved: Vec<(&'static str, &'static str, [Template; 4])>,
}

impl CaseTemplates {
    /// No templates yet: every field has its default, Priority `priority`.
    pub(super) fn new(priority: &str) -> Self {
        let mut templates = CaseTemplates {
            entries: Vec::new(),
            priority: Template(vec![Piece::Literal(priority.to_owned())]),
            resolved: Vec::new(),
        };
        templates.resolve();
        templates
    }

    /// The template for `field` of outcome `key` on `channel` (see the type's doc).
    pub(super) fn get(&self, key: &str, channel: &str, field: &str) -> &Template {
        let index = CASE_TEMPLATE_FIELDS
            .iter()
            .position(|f| *f == field)
            .expect("only template fields are per outcome");
        self.resolved
            .iter()
            .find(|(k, c, _)| *k == key && *c == channel)
            .or_else(|| {
                self.resolved
                    .iter()
                    .find(|(k, c, _)| *k == "dropped" && *c == channel)
            })
            .map(|(_, _, t)| &t[index])
            .expect("every key and channel is resolved")
    }

    /// Adds the templates of a `CASE_TEMPLATES` JSON object (see the type's doc), then
    /// resolves them again.
    ///
    /// # Errors
    /// [`MappingError::InvalidTemplate`] naming the bad key or field, or a template error.
    pub(super) fn add_json(&mut self, json: &str) -> Result<(), MappingError> {
        let invalid = |what: String| MappingError::InvalidTemplate(what);
        let value: Value = serde_json::from_str(json).map_err(|e| invalid(e.to_string()))?;
        let Value::Object(map) = value else {
            return Err(invalid("expected a JSON object of outcome → fields".into()));
        };
        for (key, fields) in map {
            let (outcome, channel) = key.split_once('.').unwrap_or((&key, ""));
            let known_outcome = outcome == "*" || TEMPLATE_KEYS.contains(&outcome);
            let known_channel = channel.is_empty() || CHANNELS.contains(&channel);
            if !known_outcome || !known_channel {
                return Err(invalid(format!(
                    "`{key}` is not an outcome key ({} or *), optionally followed by \
                     .VOICE, .CHAT, .TASK or .EMAIL",
                    TEMPLATE_KEYS.join(", ")
                )));
            }
            let Value::Object(fields) = fields else {
                return Err(invalid(format!("the value for `{key}` is not an object")));
            };
            for (field, text) in fields {
                let Some(&name) = CASE_TEMPLATE_FIELDS.iter().find(|f| **f == field) else {
                    return Err(invalid(format!(
                        "`{key}.{field}`: templates set only Subject, Status, Priority and Origin"
                    )));
                };
                let Value::String(text) = text else {
                    return Err(invalid(format!("`{key}.{field}` is not a string")));
                };
                let template = Template::parse(name, &text)?;
                self.entries.push((key.clone(), name, template));
            }
        }
        self.resolve();
        Ok(())
    }

    /// Every resolved template, for every outcome key and channel.
    pub(super) fn all(&self) -> impl Iterator<Item = &Template> {
        self.resolved.iter().flat_map(|(_, _, t)| t)
    }

    fn resolve(&mut self) {
        let mut resolved = Vec::new();
        for key in TEMPLATE_KEYS {
            for channel in CHANNELS {
                let candidates = [
                    format!("{key}.{channel}"),
                    format!("*.{channel}"),
                    key.to_owned(),
                    "*".to_owned(),
                ];
                let field = |field: &str| -> Template {
                    candidates
                        .iter()
                        .find_map(|candidate| {
                            self.entries
                                .iter()
                                .find(|(k, f, _)| k == candidate && *f == field)
                                .map(|(_, _, t)| t.clone())
                        })
                        .unwrap_or_else(|| match field {
                            "Priority" => self.priority.clone(),
                            _ => Template::parse(field, default_template_value(key, field))
                                .expect("built-in templates parse"),
                        })
                };
                resolved.push((key, channel, CASE_TEMPLATE_FIELDS.map(field)));
            }
        }
        self.resolved = resolved;
    }
}

/// The built-in value of a per-outcome field (when no template sets it).
fn default_template_value(key: &str, field: &str) -> &'static str {
    match field {
        "Subject" => "{outcome} from {customer}",
        "Origin" => "{origin}",
        "Status" if key == "virtual_agent_resolved" => "Closed",
        _ => "New",
    }
}

/// Whether `path` names one contact attribute (`Attributes.intent`), which the typed
/// attribute map answers; a deeper path (`Attributes.obj.x`) needs the captured value.
pub(super) fn is_attribute_path(path: &str) -> bool {
    path.strip_prefix("Attributes.")
        .is_some_and(|name| !name.is_empty() && !name.contains('.'))
}

/// Placeholders that are not CTR paths.
pub(super) const SPECIAL: [&str; 6] = [
    "outcome",
    "outcome_code",
    "contact_id",
    "context",
    "customer",
    "origin",
];

/// The placeholder for every contact attribute at once.
pub(super) const ATTRIBUTES: &str = "Attributes";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::case::build;
    use crate::case::fixtures::default_mapping;
    use crate::classify::{ClassifyConfig, classify};
    use crate::ctr::Ctr;

    #[test]
    fn templates_follow_outcome_and_channel() {
        let outcome_of = |extra: &str| {
            let ctr = Ctr::from_json(format!(
                r#"{{"ContactId":"5ca32fbd-8f92-46af-92a5-6b0f970f0efe","InitiationMethod":"INBOUND"{extra}}}"#
            ))
            .unwrap();
            let config = ClassifyConfig {
                channels: vec!["VOICE".into(), "CHAT".into(), "EMAIL".into(), "TASK".into()],
                ..ClassifyConfig::default()
            };
            let outcome = classify(&ctr, &config);
            (ctr, outcome)
        };
        let mapping = default_mapping()
            .with_templates(
                r#"{"dropped":{"Priority":"High"},"*.CHAT":{"Status":"Working"},
                    "live_agent.CHAT":{"Status":"Escalated"}}"#,
            )
            .unwrap();
        let case = |extra: &str| {
            let (ctr, outcome) = outcome_of(extra);
            build(&ctr, &outcome, &mapping).fields
        };
        let voice = case(r#","Channel":"VOICE","CustomerEndpoint":{"Address":"+15550100"}"#);
        assert_eq!(voice["Subject"], "Dropped call from +15550100");
        assert_eq!(voice["Priority"], "High");
        assert_eq!(
            (voice["Status"].as_str(), voice["Origin"].as_str()),
            (Some("New"), Some("Phone"))
        );
        let chat = case(r#","Channel":"CHAT""#);
        assert_eq!(chat["Subject"], "Dropped chat from unknown customer");
        assert_eq!(
            (chat["Status"].as_str(), chat["Origin"].as_str()),
            (Some("Working"), Some("Web"))
        );
        assert!(!chat["Description"].as_str().unwrap().contains("Caller"));
        let chat_agent = case(r#","Channel":"CHAT","Agent":{}"#);
        assert_eq!(chat_agent["Status"], "Escalated");
        assert_eq!(
            chat_agent["Subject"],
            "Chat handled by an agent from unknown customer"
        );
        let email = case(r#","Channel":"EMAIL","Queue":{"Name":"q"}"#);
        assert_eq!(
            email["Subject"],
            "Email abandoned in queue from unknown customer"
        );
        assert_eq!(email["Origin"], "Email");
        let resolved = case(r#","Channel":"VOICE","Attributes":{"VirtualAgentStatus":"resolved"}"#);
        assert_eq!(resolved["Status"], "Closed");
        assert_eq!(
            resolved["Subject"],
            "Call resolved by the virtual agent from unknown caller"
        );
        for bad in [
            r#"{"nope":{"Status":"New"}}"#,
            r#"{"dropped.FAX":{"Status":"New"}}"#,
            r#"{"dropped":{"Description":"x"}}"#,
            r#"{"dropped":{"Status":5}}"#,
        ] {
            assert!(
                matches!(
                    default_mapping().with_templates(bad),
                    Err(MappingError::InvalidTemplate(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn an_unknown_outcome_key_gets_the_dropped_templates_of_its_channel() {
        let mut templates = CaseTemplates::new("Low");
        templates
            .add_json(r#"{"dropped.CHAT":{"Status":"Chat"}}"#)
            .unwrap();
        let status = |channel: &str| templates.get("not_a_key", channel, "Status");
        assert_eq!(status("CHAT"), &Template::parse("Status", "Chat").unwrap());
        assert_eq!(status("VOICE"), &Template::parse("Status", "New").unwrap());
        assert_eq!(
            templates.get("live_agent", "VOICE", "Priority"),
            &Template::parse("Priority", "Low").unwrap()
        );
    }
}

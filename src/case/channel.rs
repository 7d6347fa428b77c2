//! The contact channels a mapping knows, the Case Origin each gets by default and what a
//! contact on each is called in a Subject.

use crate::ctr::Ctr;

/// The channels a template can name.
pub(super) const CHANNELS: [&str; 4] = ["VOICE", "CHAT", "TASK", "EMAIL"];

/// The contact's channel, upper case; a CTR without one counts as VOICE.
pub(super) fn channel_of(ctr: &Ctr) -> &str {
    match ctr.channel.as_deref() {
        Some(c) if c.eq_ignore_ascii_case("CHAT") => "CHAT",
        Some(c) if c.eq_ignore_ascii_case("TASK") => "TASK",
        Some(c) if c.eq_ignore_ascii_case("EMAIL") => "EMAIL",
        _ => "VOICE",
    }
}

/// The Case Origin for a channel, among the picklist values every org has (Phone, Email,
/// Web): chats and tasks come from the web or an app. Orgs with a `Chat` origin set it with
/// `CASE_TEMPLATES` (`{"*.CHAT": {"Origin": "Chat"}}`).
pub(super) fn origin_for(channel: &str) -> &'static str {
    match channel {
        "EMAIL" => "Email",
        "CHAT" | "TASK" => "Web",
        _ => "Phone",
    }
}

/// What a contact on `channel` is called in a Subject.
pub(super) fn noun(channel: &str) -> (&'static str, &'static str) {
    match channel {
        "CHAT" => ("chat", "Chat"),
        "TASK" => ("task", "Task"),
        "EMAIL" => ("email", "Email"),
        _ => ("call", "Call"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_are_read_without_regard_to_case_and_default_to_voice() {
        let channel = |json: &str| {
            let ctr = Ctr::from_json(format!(
                r#"{{"ContactId":"5ca32fbd-8f92-46af-92a5-6b0f970f0efe"{json}}}"#
            ))
            .unwrap();
            channel_of(&ctr).to_owned()
        };
        assert_eq!(channel(r#","Channel":"chat""#), "CHAT");
        assert_eq!(channel(r#","Channel":"Task""#), "TASK");
        assert_eq!(channel(r#","Channel":"EMAIL""#), "EMAIL");
        assert_eq!(channel(r#","Channel":"VOICE""#), "VOICE");
        assert_eq!(channel(r#","Channel":"FAX""#), "VOICE");
        assert_eq!(channel(""), "VOICE");
    }

    #[test]
    fn each_channel_has_its_origin_and_noun() {
        let of = |c: &str| (origin_for(c), noun(c));
        assert_eq!(of("VOICE"), ("Phone", ("call", "Call")));
        assert_eq!(of("CHAT"), ("Web", ("chat", "Chat")));
        assert_eq!(of("TASK"), ("Web", ("task", "Task")));
        assert_eq!(of("EMAIL"), ("Email", ("email", "Email")));
    }
}

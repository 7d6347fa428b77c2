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

//! The call context block (the default Description) and the outcome in words (`{outcome}`,
//! Subjects).

use std::fmt::Write as _;

use chrono::{DateTime, Utc};

use super::channel::{channel_of, noun};
use crate::classify::{HappyPath, Outcome};
use crate::ctr::Ctr;
use crate::privacy::AttributeFilter;

/// What happened to a contact on a channel, in words, for Subjects ("Dropped call", "Chat
/// abandoned in queue"), written without an intermediate string.
pub(super) struct Title<'a>(pub(super) &'a Outcome, pub(super) &'a str);

impl std::fmt::Display for Title<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (noun, capital) = noun(self.1);
        match self.0 {
            Outcome::Dropped { .. } => write!(f, "Dropped {noun}"),
            Outcome::QueuedAbandoned => write!(f, "{capital} abandoned in queue"),
            Outcome::HappyPath(HappyPath::LiveAgent) => write!(f, "{capital} handled by an agent"),
            Outcome::HappyPath(HappyPath::VirtualAgentResolved) => {
                write!(f, "{capital} resolved by the virtual agent")
            }
            Outcome::HappyPath(HappyPath::VirtualAgentHandoff) => {
                write!(f, "{capital} handed off by the virtual agent")
            }
            Outcome::Handoff => write!(f, "Virtual agent hand-off ({noun})"),
            Outcome::TransferredOut => write!(f, "Transferred {noun}"),
            Outcome::SkippedChannel(_) | Outcome::SkippedInitiation(_) | Outcome::CallbackTask => {
                f.write_str("Contact")
            }
        }
    }
}

/// A time as `2024-02-25T08:35:09Z`, or `unknown`, written without an intermediate string.
struct Time(Option<DateTime<Utc>>);

impl std::fmt::Display for Time {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use chrono::{Datelike as _, Timelike as _};
        let Some(t) = self.0 else {
            return f.write_str("unknown");
        };
        // Written digit by digit: the formatting machinery costs more than the rest of a
        // context block (four times per Case).
        let mut buf = *b"0000-00-00T00:00:00Z";
        let mut put = |at: usize, width: usize, mut n: u32| {
            for i in (at..at + width).rev() {
                buf[i] = b'0' + (n % 10) as u8;
                n /= 10;
            }
        };
        let year = t.year();
        if !(0..=9999).contains(&year) {
            return write!(f, "{}", t.format("%Y-%m-%dT%H:%M:%SZ"));
        }
        put(0, 4, year as u32);
        put(5, 2, t.month());
        put(8, 2, t.day());
        put(11, 2, t.hour());
        put(14, 2, t.minute());
        put(17, 2, t.second());
        f.write_str(std::str::from_utf8(&buf).expect("ASCII digits"))
    }
}

fn time(t: Option<DateTime<Utc>>) -> Time {
    Time(t)
}

/// Appends the call context a Case carries to `out`: contact id, times, disconnect reason,
/// queue/flow context and the contact attributes the flow (or virtual agent) collected that
/// `filter` allows, with payment card numbers masked.
pub(super) fn write_context(
    out: &mut String,
    ctr: &Ctr,
    outcome: &Outcome,
    filter: &AttributeFilter,
) {
    let channel = channel_of(ctr);
    let _ = writeln!(out, "Amazon Connect contact {}", ctr.contact_id);
    let _ = write!(out, "Outcome: {}", Title(outcome, channel));
    if let Outcome::Dropped {
        disconnect_reason: Some(reason),
    } = outcome
    {
        let _ = write!(out, " (disconnect reason: {reason})");
    } else if let Some(reason) = &ctr.disconnect_reason {
        let _ = write!(out, " (disconnect reason: {reason})");
    }
    out.push('\n');
    fn or_unknown(v: Option<&str>) -> &str {
        v.unwrap_or("unknown")
    }
    let _ = writeln!(
        out,
        "Channel: {}, initiation: {}",
        or_unknown(ctr.channel.as_deref()),
        or_unknown(ctr.initiation_method.as_deref())
    );
    let who = if channel == "VOICE" {
        "Caller"
    } else {
        "Customer"
    };
    let _ = writeln!(out, "{who}: {}", or_unknown(ctr.customer_address()));
    if let Some(dialled) = ctr
        .system_endpoint
        .as_ref()
        .and_then(|e| e.address.as_deref())
    {
        let _ = writeln!(out, "Dialled: {dialled}");
    }
    let _ = writeln!(out, "Started: {}", time(ctr.initiation_timestamp));
    let _ = writeln!(
        out,
        "Reached contact flow: {}",
        time(ctr.connected_to_system_timestamp)
    );
    let _ = writeln!(out, "Disconnected: {}", time(ctr.disconnect_timestamp));
    if let (Some(start), Some(end)) = (ctr.initiation_timestamp, ctr.disconnect_timestamp) {
        let _ = writeln!(out, "Duration: {} s", (end - start).num_seconds());
    }
    if let Some(queue) = &ctr.queue {
        let _ = writeln!(
            out,
            "Queue: {} (entered {}, left {})",
            or_unknown(queue.name.as_deref()),
            time(queue.enqueue_timestamp),
            time(queue.dequeue_timestamp)
        );
    } else {
        let _ = writeln!(out, "Queue: none (the contact never left the contact flow)");
    }
    for (label, id) in [
        ("Previous contact", &ctr.previous_contact_id),
        ("Next contact", &ctr.next_contact_id),
        ("Initial contact", &ctr.initial_contact_id),
    ] {
        if let Some(id) = id.as_deref().filter(|id| !id.is_empty()) {
            let _ = writeln!(out, "{label}: {id}");
        }
    }
    let mut allowed = ctr
        .attributes
        .iter()
        .filter(|(key, _)| filter.allows(key))
        .peekable();
    if allowed.peek().is_none() {
        out.push_str("Contact attributes: none\n");
    } else {
        out.push_str("Contact attributes:\n");
        for (key, value) in allowed {
            let _ = writeln!(out, "  {key}: {}", filter.redact_value(value));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_written_as_rfc3339_seconds() {
        let t = DateTime::parse_from_rfc3339("2024-02-05T08:03:09.999Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(Time(Some(t)).to_string(), "2024-02-05T08:03:09Z");
        assert_eq!(Time(None).to_string(), "unknown");
        let far = DateTime::parse_from_rfc3339("0099-12-31T23:59:59Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(Time(Some(far)).to_string(), "0099-12-31T23:59:59Z");
        // Past year 9999 the digits do not fit: chrono writes the year with its sign.
        let later = chrono::TimeZone::with_ymd_and_hms(&Utc, 10_000, 1, 2, 3, 4, 5).unwrap();
        assert_eq!(Time(Some(later)).to_string(), "+10000-01-02T03:04:05Z");
    }

    fn context(json: &str, outcome: &Outcome) -> String {
        let ctr = Ctr::from_json(json.into()).unwrap();
        let mut out = String::new();
        write_context(&mut out, &ctr, outcome, &AttributeFilter::default());
        out
    }

    #[test]
    fn context_block_lists_every_fact_of_a_queued_chat() {
        let json = r#"{"ContactId":"5ca32fbd-8f92-46af-92a5-6b0f970f0efe","Channel":"chat",
            "InitiationMethod":"API","DisconnectReason":"CUSTOMER_DISCONNECT",
            "CustomerEndpoint":{"Address":"jo@example.com"},"SystemEndpoint":{"Address":"support"},
            "InitiationTimestamp":"2024-02-25T08:35:09Z",
            "ConnectedToSystemTimestamp":"2024-02-25T08:35:10Z",
            "DisconnectTimestamp":"2024-02-25T08:37:09Z",
            "Queue":{"Name":"Billing","EnqueueTimestamp":"2024-02-25T08:35:30Z"},
            "PreviousContactId":"0e5a3c2b-1111-4222-8333-444455556666","NextContactId":"",
            "InitialContactId":"7d3c2b1a-0000-4000-8000-000000000001",
            "Attributes":{"intent":"billing","cvv":"123","note":"4111111111111111"}}"#;
        assert_eq!(
            context(json, &Outcome::QueuedAbandoned),
            "Amazon Connect contact 5ca32fbd-8f92-46af-92a5-6b0f970f0efe\n\
             Outcome: Chat abandoned in queue (disconnect reason: CUSTOMER_DISCONNECT)\n\
             Channel: chat, initiation: API\n\
             Customer: jo@example.com\n\
             Dialled: support\n\
             Started: 2024-02-25T08:35:09Z\n\
             Reached contact flow: 2024-02-25T08:35:10Z\n\
             Disconnected: 2024-02-25T08:37:09Z\n\
             Duration: 120 s\n\
             Queue: Billing (entered 2024-02-25T08:35:30Z, left unknown)\n\
             Previous contact: 0e5a3c2b-1111-4222-8333-444455556666\n\
             Initial contact: 7d3c2b1a-0000-4000-8000-000000000001\n\
             Contact attributes:\n  intent: billing\n  note: ************1111\n"
        );
    }

    #[test]
    fn context_block_of_a_bare_call_says_unknown_and_none() {
        let json = r#"{"ContactId":"5ca32fbd-8f92-46af-92a5-6b0f970f0efe",
            "NextContactId":"0e5a3c2b-1111-4222-8333-444455556666","Attributes":{"cvv":"123"}}"#;
        let dropped = Outcome::Dropped {
            disconnect_reason: Some("TELECOM_PROBLEM".into()),
        };
        assert_eq!(
            context(json, &dropped),
            "Amazon Connect contact 5ca32fbd-8f92-46af-92a5-6b0f970f0efe\n\
             Outcome: Dropped call (disconnect reason: TELECOM_PROBLEM)\n\
             Channel: unknown, initiation: unknown\n\
             Caller: unknown\n\
             Started: unknown\n\
             Reached contact flow: unknown\n\
             Disconnected: unknown\n\
             Queue: none (the contact never left the contact flow)\n\
             Next contact: 0e5a3c2b-1111-4222-8333-444455556666\n\
             Contact attributes: none\n"
        );
        let no_reason = context(
            json,
            &Outcome::Dropped {
                disconnect_reason: None,
            },
        );
        assert!(no_reason.contains("Outcome: Dropped call\n"), "{no_reason}");
    }

    #[test]
    fn titles_name_the_outcome_and_the_channel() {
        let title = |outcome: Outcome, channel: &str| Title(&outcome, channel).to_string();
        let dropped = || Outcome::Dropped {
            disconnect_reason: None,
        };
        assert_eq!(title(dropped(), "VOICE"), "Dropped call");
        assert_eq!(title(dropped(), "TASK"), "Dropped task");
        assert_eq!(
            title(Outcome::QueuedAbandoned, "EMAIL"),
            "Email abandoned in queue"
        );
        assert_eq!(
            title(Outcome::HappyPath(HappyPath::LiveAgent), "CHAT"),
            "Chat handled by an agent"
        );
        assert_eq!(
            title(Outcome::HappyPath(HappyPath::VirtualAgentResolved), "VOICE"),
            "Call resolved by the virtual agent"
        );
        assert_eq!(
            title(Outcome::HappyPath(HappyPath::VirtualAgentHandoff), "TASK"),
            "Task handed off by the virtual agent"
        );
        assert_eq!(
            title(Outcome::Handoff, "CHAT"),
            "Virtual agent hand-off (chat)"
        );
        assert_eq!(title(Outcome::TransferredOut, "EMAIL"), "Transferred email");
        for skipped in [
            Outcome::SkippedChannel("CHAT".into()),
            Outcome::SkippedInitiation("OUTBOUND".into()),
            Outcome::CallbackTask,
        ] {
            assert_eq!(title(skipped, "VOICE"), "Contact");
        }
    }
}

"""Naive Python pass over a Kinesis event file: the baseline for `ctr-cases replay` (dry run).

`python3 bench/naive_pass.py EVENT.json [--serialize]` reads the file into memory, then times the
processing only: json.loads the Kinesis event; for each record base64-decode and json.loads its
`data` (an inline JSON object is taken as it is); apply the reference Lambda's test (a call with
neither `Agent` nor `Queue` set is a dropped call, see reference_lambda.py); and build one Case
dict per dropped call, as ctr-cases' default mapping does (Subject, Description with the call
context and the contact attributes, Origin, Status, Priority, SuppliedPhone, and the external id
Amazon_Connect_Contact_Id__c). With --serialize each Case is also turned into its JSON request
body. A record that does not decode is counted as undecodable and skipped, as ctr-cases
dead-letters it instead of stopping.

It prints one JSON line:
{"records": n, "dropped": n, "undecodable": n, "seconds": processing time,
 "wall_seconds": process start to just before printing, "wall_from": "spawn_env" | "proc_stat"}.
Standard library only. See bench/README.md.
"""

import base64
import binascii
import json
import os
import sys
import time
from datetime import datetime

EXTERNAL_ID_FIELD = "Amazon_Connect_Contact_Id__c"
PRIORITY = "Medium"
# Salesforce Case field sizes (salesforce-wire.md, "Limits").
SUBJECT_LIMIT = 255
DESCRIPTION_LIMIT = 32000
PHONE_LIMIT = 40


def decode(record):
    """The CTR dict of one Kinesis record, or None when it is not a JSON object."""
    data = record.get("kinesis", {}).get("data")
    if isinstance(data, dict):
        return data
    try:
        ctr = json.loads(base64.b64decode(data, validate=True))
    except (TypeError, ValueError, binascii.Error):
        return None
    return ctr if isinstance(ctr, dict) else None


def is_dropped(ctr):
    """The reference Lambda's test: neither a queue nor an agent was reached."""
    return ctr.get("Agent") is None and ctr.get("Queue") is None


def parse_time(value):
    """A CTR timestamp (`2024-02-25T08:35:09Z`) as a datetime, or None."""
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def context(ctr, caller):
    """The Description: contact id, times, disconnect reason, flow context, attributes."""
    started = parse_time(ctr.get("InitiationTimestamp"))
    ended = parse_time(ctr.get("DisconnectTimestamp"))
    lines = [
        "Amazon Connect contact %s" % ctr.get("ContactId"),
        "Outcome: Dropped call (disconnect reason: %s)" % (ctr.get("DisconnectReason") or "unknown"),
        "Channel: %s, initiation: %s"
        % (ctr.get("Channel") or "unknown", ctr.get("InitiationMethod") or "unknown"),
        "Caller: %s" % (caller or "unknown"),
        "Started: %s" % (ctr.get("InitiationTimestamp") or "unknown"),
        "Reached contact flow: %s" % (ctr.get("ConnectedToSystemTimestamp") or "unknown"),
        "Disconnected: %s" % (ctr.get("DisconnectTimestamp") or "unknown"),
    ]
    if started and ended:
        lines.append("Duration: %d s" % (ended - started).total_seconds())
    lines.append("Queue: none (the caller never left the contact flow)")
    for label, key in (
        ("Previous contact", "PreviousContactId"),
        ("Next contact", "NextContactId"),
        ("Initial contact", "InitialContactId"),
    ):
        if ctr.get(key):
            lines.append("%s: %s" % (label, ctr[key]))
    attributes = ctr.get("Attributes") or {}
    if attributes:
        lines.append("Contact attributes:")
        lines.extend("  %s: %s" % (key, value) for key, value in attributes.items())
    else:
        lines.append("Contact attributes: none")
    return "\n".join(lines)


def build_case(ctr):
    """The Case dict for one dropped call."""
    caller = (ctr.get("CustomerEndpoint") or {}).get("Address")
    case = {
        "Subject": ("Dropped call from %s" % (caller or "unknown caller"))[:SUBJECT_LIMIT],
        "Description": context(ctr, caller)[:DESCRIPTION_LIMIT],
        "Origin": "Phone",
        "Status": "New",
        "Priority": PRIORITY,
        EXTERNAL_ID_FIELD: ctr.get("ContactId"),
    }
    if caller:
        case["SuppliedPhone"] = caller[:PHONE_LIMIT]
    return case


def process(raw, serialize):
    """Everything that is timed: envelope → decisions → Cases. Returns the counts."""
    event = json.loads(raw)
    records = event.get("Records", [])
    dropped = undecodable = 0
    cases = []
    for record in records:
        ctr = decode(record)
        if ctr is None:
            undecodable += 1
            continue
        if is_dropped(ctr):
            dropped += 1
            case = build_case(ctr)
            cases.append(json.dumps(case) if serialize else case)
    return len(records), dropped, undecodable


def process_age_seconds():
    """Seconds since this process started, and how that was measured.

    With BENCH_SPAWN_UNIX_NS (the harness's CLOCK_REALTIME in ns just before the spawn) it is
    exact; otherwise the start time comes from /proc/self/stat in clock ticks (10 ms at 100 Hz).
    """
    spawned = os.environ.get("BENCH_SPAWN_UNIX_NS")
    if spawned:
        return (time.time_ns() - int(spawned)) / 1e9, "spawn_env"
    now_ns = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
    with open("/proc/self/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    started_ns = int(fields[19]) * 1_000_000_000 // os.sysconf("SC_CLK_TCK")
    return (now_ns - started_ns) / 1e9, "proc_stat"


def main(argv):
    args = [a for a in argv if not a.startswith("--")]
    flags = [a for a in argv if a.startswith("--")]
    if len(args) != 1 or any(f != "--serialize" for f in flags):
        sys.exit("usage: python3 bench/naive_pass.py EVENT.json [--serialize]")
    with open(args[0], "rb") as f:
        raw = f.read()
    started = time.perf_counter()
    records, dropped, undecodable = process(raw, "--serialize" in flags)
    seconds = time.perf_counter() - started
    wall_seconds, wall_from = process_age_seconds()
    print(
        json.dumps(
            {
                "records": records,
                "dropped": dropped,
                "undecodable": undecodable,
                "seconds": round(seconds, 6),
                "wall_seconds": round(wall_seconds, 6),
                "wall_from": wall_from,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main(sys.argv[1:])

#!/usr/bin/env python3
"""Builds the sample Kinesis events in events/ from the recorded CTRs in tests/fixtures/ctr.

Run from the repository root: python3 events/build_events.py
Each event wraps CTRs the way Kinesis delivers them: base64 text in Records[].kinesis.data.
Where no recorded CTR shows a case (queued abandon, a transferred-out leg), a recorded CTR is
copied and the changed keys are listed in events/README.md.
"""
import base64
import copy
import json
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIX = ROOT / "tests" / "fixtures" / "ctr"
OUT = ROOT / "events"
STREAM = "arn:aws:kinesis:us-east-1:123456789012:stream/connect-ctr"
SHARD = "shardId-000000000000"


def load(name):
    return json.loads((FIX / name).read_text())


def record(data: bytes, seq: int, partition_key: str):
    seq_text = f"49650000000000000000000000000000000000000000000000{seq:06d}"
    return {
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": partition_key,
            "sequenceNumber": seq_text,
            "data": base64.b64encode(data).decode(),
            "approximateArrivalTimestamp": 1732612800.0 + seq,
        },
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": f"{SHARD}:{seq_text}",
        "eventName": "aws:kinesis:record",
        "invokeIdentityArn": "arn:aws:iam::123456789012:role/ctr-cases",
        "awsRegion": "us-east-1",
        "eventSourceARN": STREAM,
    }


def ctr_record(ctr, seq):
    return record(json.dumps(ctr, separators=(",", ":")).encode(), seq, ctr["ContactId"])


def write(name, records):
    (OUT / name).write_text(json.dumps({"Records": records}, indent=2) + "\n")


dropped = load("kinesis-event-inline-object-voice-ivr-only-contact-flow-disconnect-2024.json")["Records"][0]["kinesis"]["data"]
handled = load("voice-agent-handled-external-transfer-endpoint-2022.json")
redeliveries = load("array-voice-agent-handled-duplicate-redeliveries-2022.json")
transfer_leg2 = load("partial-handwritten-voice-transfer-telecom-problem-numeric-attribute.json")
minimal_2018 = load("voice-agent-handled-2018-minimal-embedded-in-voicebase-response.json")

# Queued abandon: the 2018 CTR with the agent removed and the queue left without a dequeue.
abandoned = copy.deepcopy(minimal_2018)
abandoned["Agent"] = None
abandoned["AgentConnectionAttempts"] = 0
abandoned["Recording"] = None
abandoned["DisconnectReason"] = "CUSTOMER_DISCONNECT"
abandoned["Queue"]["DequeueTimestamp"] = None

# Transfer: the IVR leg (the 2024 dropped CTR) handed on to the hand-written TRANSFER leg.
transfer_leg1 = copy.deepcopy(dropped)
transfer_leg1["ContactId"] = transfer_leg2["PreviousContactId"]
transfer_leg1["NextContactId"] = transfer_leg2["ContactId"]
transfer_leg1["DisconnectReason"] = "CONTACT_FLOW_DISCONNECT"

write("dropped-ivr-call.json", [ctr_record(dropped, 1)])
write("agent-handled-call.json", [ctr_record(handled, 1)])
write("queued-abandon.json", [ctr_record(abandoned, 1)])
write("transfer.json", [ctr_record(transfer_leg1, 1), ctr_record(transfer_leg2, 2)])

mixed = [ctr_record(c, i + 1) for i, c in enumerate(redeliveries)]
mixed.append(ctr_record(dropped, 7))
mixed.append(record(b"this is not a contact trace record", 8, "garbage"))
bad = ctr_record(dropped, 9)
bad["kinesis"]["data"] = "%%% not base64 %%%"
mixed.append(bad)
mixed.append(ctr_record(dropped, 10))  # redelivery of the dropped call in the same batch
write("mixed-batch.json", mixed)
print("wrote", sorted(p.name for p in OUT.glob("*.json")))

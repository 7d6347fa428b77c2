"""Reference Lambda: dropped-call Cases the way the public AWS/PwC write-up does it.

Source: "Intelligent Case Management Using Amazon Connect and Amazon Kinesis Data Streams",
AWS Partner Network (APN) Blog, by Nasir Mahmood, Bharthvajan G. and Mohit Patil (PwC),
https://aws.amazon.com/blogs/apn/intelligent-case-management-using-amazon-connect-and-amazon-kinesis-data-streams/
(copies: awsfeed.com/whats-new/apn/..., dustinward.cloud/...). The stored copies this was
written from hold the post's opening ("integrate an Amazon Connect instance with Salesforce
Service Cloud to automatically create a case in Salesforce using REST APIs and Amazon Kinesis
Data Streams ... proactively handles call drops"), not its code listing; no public repository
with the code was found. So the flow below is the one the post describes and this project's
notes record (README "Deviations from the reference Lambda", DESIGN.md, salesforce-wire.md):

  for every Kinesis record, in order:
    base64-decode the CTR;
    skip it if `Agent` or `Queue` is set (the contact reached a queue or an agent);
    otherwise (a dropped call): request a new OAuth token with the username-password grant,
    then POST one Case to /services/data/vNN.0/sobjects/Case;
  log the whole event; any error fails the whole batch (Lambda retries all of it).

Where the post's code is unknown, the choices are the plain ones: the Case carries Subject,
Description, Origin, Status, Priority and SuppliedPhone and no external id (a blind create);
a CTR without an `Agent` or `Queue` key counts as null there; requests have a 30 s timeout.
It uses only the Python standard library (the post's code is Python; `requests` is swapped for
urllib.request, which, like `requests.post` without a session, opens a connection per request).

Configuration (environment, read at import as a Lambda module would):
SALESFORCE_LOGIN_URL, SALESFORCE_CLIENT_ID, SALESFORCE_CLIENT_SECRET, SALESFORCE_USERNAME,
SALESFORCE_PASSWORD (password + security token), SALESFORCE_API_VERSION (default v62.0).

Bench runner: `python3 bench/reference_lambda.py EVENT.json [--repeat N] [--log]` invokes the
handler N times (default 1) on the event and prints one JSON line:
{"cold_start_ms", "batch_ms": [...], "peak_rss_kib", "peak_rss_from", "dropped", "token_requests",
"case_posts"}
(counts are totals over all invocations). See bench/README.md.
"""

import base64
import json
import logging
import os
import time
import urllib.parse
import urllib.request

LOGIN_URL = os.environ["SALESFORCE_LOGIN_URL"].rstrip("/")
CLIENT_ID = os.environ["SALESFORCE_CLIENT_ID"]
CLIENT_SECRET = os.environ["SALESFORCE_CLIENT_SECRET"]
USERNAME = os.environ["SALESFORCE_USERNAME"]
PASSWORD = os.environ["SALESFORCE_PASSWORD"]
API_VERSION = os.environ.get("SALESFORCE_API_VERSION", "v62.0")
if not API_VERSION.startswith("v"):
    API_VERSION = "v" + API_VERSION

TIMEOUT_SECONDS = 30

logger = logging.getLogger()
logger.setLevel(logging.INFO)

# No proxy: in Lambda the function talks to Salesforce directly, and in the bench the fake org
# is on 127.0.0.1, which an http_proxy variable must not redirect.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

# What this process has sent, for the bench runner.
counters = {"dropped": 0, "token_requests": 0, "case_posts": 0}


def get_token():
    """One username-password grant; returns (access_token, instance_url).

    The form goes in the body, never the URL (salesforce-wire.md, "OAuth token endpoint").
    Raises urllib.error.HTTPError on a non-2xx answer, which fails the batch.
    """
    form = urllib.parse.urlencode(
        {
            "grant_type": "password",
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "username": USERNAME,
            "password": PASSWORD,
        }
    ).encode()
    request = urllib.request.Request(
        LOGIN_URL + "/services/oauth2/token",
        data=form,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        method="POST",
    )
    counters["token_requests"] += 1
    with _opener.open(request, timeout=TIMEOUT_SECONDS) as response:
        body = json.load(response)
    return body["access_token"], body["instance_url"].rstrip("/")


def build_case(ctr):
    """The Case for one dropped call."""
    endpoint = ctr.get("CustomerEndpoint") or {}
    phone = endpoint.get("Address")
    attributes = ctr.get("Attributes") or {}
    lines = [
        "Amazon Connect contact " + str(ctr.get("ContactId")),
        "Channel: " + str(ctr.get("Channel")),
        "Started: " + str(ctr.get("InitiationTimestamp")),
        "Disconnected: " + str(ctr.get("DisconnectTimestamp")),
        "Disconnect reason: " + str(ctr.get("DisconnectReason")),
    ]
    lines += ["%s: %s" % (key, value) for key, value in attributes.items()]
    case = {
        "Subject": "Dropped call from " + (phone or "unknown caller"),
        "Description": "\n".join(lines),
        "Origin": "Phone",
        "Status": "New",
        "Priority": "Medium",
    }
    if phone:
        case["SuppliedPhone"] = phone
    return case


def create_case(access_token, instance_url, case):
    """POST one Case; returns its id. Salesforce answers 201 {"id","success","errors"}."""
    request = urllib.request.Request(
        "%s/services/data/%s/sobjects/Case" % (instance_url, API_VERSION),
        data=json.dumps(case).encode(),
        headers={
            "Authorization": "Bearer " + access_token,
            "Content-Type": "application/json",
        },
        method="POST",
    )
    counters["case_posts"] += 1
    with _opener.open(request, timeout=TIMEOUT_SECONDS) as response:
        body = json.load(response)
    if not body.get("success"):
        raise RuntimeError("Salesforce did not create the Case: %s" % body.get("errors"))
    return body["id"]


def lambda_handler(event, context):
    """Kinesis event in; one new token and one new Case per dropped call, sequentially."""
    logger.info("Received event: %s", json.dumps(event))
    created = 0
    for record in event["Records"]:
        ctr = json.loads(base64.b64decode(record["kinesis"]["data"]))
        if ctr.get("Agent") is not None or ctr.get("Queue") is not None:
            continue
        counters["dropped"] += 1
        access_token, instance_url = get_token()
        case_id = create_case(access_token, instance_url, build_case(ctr))
        logger.info("Created Case %s for contact %s", case_id, ctr.get("ContactId"))
        created += 1
    return {"statusCode": 200, "body": json.dumps({"casesCreated": created})}


# Handler ready: imports and configuration done, the point a Lambda cold start ends.
_READY_REALTIME_NS = time.time_ns()
_READY_BOOTTIME_NS = time.clock_gettime_ns(time.CLOCK_BOOTTIME)


def _cold_start_ms():
    """Milliseconds from process start to handler ready, and how it was measured.

    With BENCH_SPAWN_UNIX_NS (the harness's CLOCK_REALTIME in ns just before it spawned this
    process) it is exact; otherwise it comes from the start time in /proc/self/stat, which the
    kernel keeps in clock ticks (10 ms at the usual 100 Hz).
    """
    spawned = os.environ.get("BENCH_SPAWN_UNIX_NS")
    if spawned:
        return (_READY_REALTIME_NS - int(spawned)) / 1e6, "spawn_env"
    with open("/proc/self/stat") as stat:
        # Field 22 (starttime); the command name (field 2) may hold spaces, so split after it.
        fields = stat.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    started_ns = int(fields[19]) * 1_000_000_000 // ticks
    return (_READY_BOOTTIME_NS - started_ns) / 1e6, "proc_stat"


def _peak_rss_kib():
    """This process's peak resident set size in KiB: VmHWM from /proc/self/status.

    Not getrusage's ru_maxrss: on Linux that also keeps the peak of the memory image exec
    replaced, which for a spawned child (fork or posix_spawn alike) is its parent's, so under
    the bench binary it reported the bench's peak (~196 MiB) instead of this script's
    (~24 MiB). ru_maxrss is the fallback where /proc is missing.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]), "VmHWM"
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "ru_maxrss"


def _main(argv):
    import argparse
    import sys

    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("event", help="Kinesis event JSON file")
    parser.add_argument("--repeat", type=int, default=1, help="invocations (default 1)")
    parser.add_argument(
        "--log",
        action="store_true",
        help="send the handler's log to stderr (default: formatted, then discarded, so the "
        "logging cost stays in the timing but no event content leaves the process)",
    )
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")

    cold_start_ms, cold_start_from = _cold_start_ms()
    log_stream = sys.stderr if args.log else open(os.devnull, "w")
    handler = logging.StreamHandler(log_stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger.addHandler(handler)

    with open(args.event, "rb") as f:
        raw = f.read()
    batch_ms = []
    for _ in range(args.repeat):
        # Each invocation gets the event as Lambda hands it over: freshly parsed JSON.
        event = json.loads(raw)
        started = time.perf_counter()
        lambda_handler(event, None)
        batch_ms.append(round((time.perf_counter() - started) * 1000, 3))
    peak_rss_kib, peak_rss_from = _peak_rss_kib()
    line = {
        "cold_start_ms": round(cold_start_ms, 3),
        "cold_start_from": cold_start_from,
        "batch_ms": batch_ms,
        "peak_rss_kib": peak_rss_kib,
        "peak_rss_from": peak_rss_from,
        **counters,
    }
    print(json.dumps(line), flush=True)


if __name__ == "__main__":
    import sys

    _main(sys.argv[1:])

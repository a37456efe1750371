"""The Lambda Invoke API face (the emulator), against the real binary.

Part 1 drives it with raw HTTP (http.client) and checks status, headers and bodies for every
behaviour of issue 4: FunctionName forms, ?Qualifier=, the invocation and log types, client
context, function errors, service errors and their shapes, body limits, throttling, the legacy
invoke-async, and the optional inbound SigV4 check.

Part 2 runs the same scenarios through three real AWS clients, each pointed at the gateway with
an endpoint URL, dummy credentials from the environment and retries off: the AWS CLI
(/usr/bin/aws, Debian's awscli), boto3 (Debian's python3-boto3) and the AWS SDK for JavaScript
v3 (tests/clients/js, installed by scripts/js-clients.sh from its package-lock.json).
"""
import base64
import concurrent.futures
import datetime
import json
import os
import signal
import socket
import subprocess
import tempfile
import threading
import time
import types
import urllib.parse

import pytest

from conftest import PLUGIN_DIR, ROOT, Gateway

PLUGIN = os.path.join(PLUGIN_DIR, "libtestplugin.so")
SYNC_MAX = 6291456
ASYNC_MAX = 1048576
REGION = "us-east-1"
ACCOUNT = "000000000000"
KEY_ID = "AKIDLGWTEST0001"
SECRET = "lgw-test-secret/K7MDENG+bPxRfiCYEXAMPLE"
AWS_CLI = "/usr/bin/aws"  # Debian's awscli, not whatever `aws` comes first on PATH
JS_DIR = os.path.join(ROOT, "tests", "clients", "js")
INVOKE = "/2015-03-31/functions/%s/invocations"

CONFIG = {
    "functions": {
        # a generous timeout: echoing megabytes under the sanitizers on a busy machine is slow
        "echo": {"aliases": ["live"], "timeout": 60},
        "slow": {"handler": "sleep", "timeout": 0.3},
        "one": {"handler": "sleep", "concurrency": 1},
    }
}
SIGNED_CONFIG = dict(CONFIG, access_keys={KEY_ID: SECRET, "AKIDLGWOTHER": "another-secret"})


@pytest.fixture(scope="module")
def api():
    g = Gateway(config=CONFIG)
    yield g
    g.check_clean_exit()


@pytest.fixture(scope="module")
def signed():
    g = Gateway(config=SIGNED_CONFIG)
    yield g
    g.check_clean_exit()


def path_of(name, qualifier=None):
    """The request path an SDK builds: the FunctionName label encoded, ':' as %3A."""
    p = INVOKE % urllib.parse.quote(name, safe="")
    if qualifier is not None:
        p += "?Qualifier=" + urllib.parse.quote(qualifier, safe="")
    return p


def invoke(gw, name, body=b"{}", headers=None, qualifier=None, timeout=30):
    status, hdrs, data = gw.post(path_of(name, qualifier), body, headers, timeout)
    check_common(hdrs)
    return status, hdrs, data


def check_common(hdrs):
    """What every Invoke API answer carries."""
    assert hdrs["content-type"] == "application/json"
    assert len(hdrs["x-amzn-requestid"]) == 36
    assert hdrs["x-amzn-requestid"].count("-") == 4
    assert hdrs["x-amz-executed-version"] == "$LATEST"


def service_error(status, hdrs, data, want_status, want_type):
    """Checks a service error's status and x-amzn-ErrorType; returns its JSON body."""
    assert status == want_status, data
    assert hdrs["x-amzn-errortype"] == want_type
    assert "x-amz-function-error" not in hdrs
    return json.loads(data)


def decoded_log(hdrs):
    return base64.b64decode(hdrs["x-amz-log-result"]).decode()


def check_log(log, request_id):
    lines = log.splitlines()
    assert lines[0] == "START RequestId: %s Version: $LATEST" % request_id
    assert "END RequestId: %s" % request_id in lines
    assert lines[-1].startswith("REPORT RequestId: %s\tDuration: " % request_id)
    assert "\tBilled Duration: " in lines[-1] and "\tMemory Size: 128 MB" in lines[-1]


# ==== part 1: the wire, with raw HTTP ====

# ---- RequestResponse ----

def test_sync_invoke_returns_the_payload(api):
    status, hdrs, data = invoke(api, "echo", b'{"a":1,"b":[0.1,"x"]}')
    assert status == 200
    assert data == b'{"a":1,"b":[0.1,"x"]}'
    assert "x-amz-function-error" not in hdrs
    assert "x-amz-log-result" not in hdrs


def test_explicit_request_response_and_empty_body(api):
    status, _, data = invoke(api, "echo", b"", {"X-Amz-Invocation-Type": "RequestResponse"})
    assert (status, data) == (200, b"{}")


def test_request_ids_differ(api):
    ids = {invoke(api, "echo")[1]["x-amzn-requestid"] for _ in range(5)}
    assert len(ids) == 5


# ---- Event and DryRun ----

def test_event_is_202_with_empty_body(api):
    status, hdrs, data = invoke(api, "echo", b'{"a":1}', {"X-Amz-Invocation-Type": "Event"})
    assert (status, data) == (202, b"")
    assert "x-amz-log-result" not in hdrs


def test_event_runs_in_the_background(api):
    # "one" admits one call at a time: while the Event sleeps, a sync call is throttled
    status, _, _ = invoke(api, "one", b'{"ms":600}', {"X-Amz-Invocation-Type": "Event"})
    assert status == 202
    deadline = time.time() + 5
    while time.time() < deadline:
        status, _, _ = invoke(api, "one", b'{"ms":0}')
        if status == 429:
            break
        time.sleep(0.02)
    assert status == 429
    deadline = time.time() + 5
    while invoke(api, "one", b'{"ms":0}')[0] != 200:
        assert time.time() < deadline
        time.sleep(0.05)


def test_event_with_tail_gives_no_log(api):
    status, hdrs, _ = invoke(api, "echo", b"{}",
                             {"X-Amz-Invocation-Type": "Event", "X-Amz-Log-Type": "Tail"})
    assert status == 202 and "x-amz-log-result" not in hdrs


def test_dry_run_is_204_when_the_function_exists(api):
    status, hdrs, data = invoke(api, "echo", b"{}", {"X-Amz-Invocation-Type": "DryRun"})
    assert (status, data) == (204, b"")
    status, hdrs, data = invoke(api, "echo:live", b"{}", {"X-Amz-Invocation-Type": "DryRun"})
    assert status == 204


def test_dry_run_of_unknown_function_is_404(api):
    status, hdrs, data = invoke(api, "nope", b"{}", {"X-Amz-Invocation-Type": "DryRun"})
    body = service_error(status, hdrs, data, 404, "ResourceNotFoundException")
    assert body["Message"] == "Function not found: arn:aws:lambda:%s:%s:function:nope" % (
        REGION, ACCOUNT)


@pytest.mark.parametrize("value", ["event", "Async", "RequestResponse,Event", ""])
def test_bad_invocation_type_is_validation_exception(api, value):
    status, hdrs, data = invoke(api, "echo", b"{}", {"X-Amz-Invocation-Type": value})
    if value == "":
        # an empty header is no value at all: the default, RequestResponse
        assert (status, data) == (200, b"{}")
        return
    body = service_error(status, hdrs, data, 400, "ValidationException")
    assert body == {"message": "1 validation error detected: Value '%s' at 'invocationType' "
                               "failed to satisfy constraint: Member must satisfy enum value "
                               "set: [DryRun, RequestResponse, Event]" % value}


def test_bad_log_type_is_validation_exception(api):
    status, hdrs, data = invoke(api, "echo", b"{}", {"X-Amz-Log-Type": "All"})
    body = service_error(status, hdrs, data, 400, "ValidationException")
    assert "Value 'All' at 'logType'" in body["message"]
    assert "[None, Tail]" in body["message"]


# ---- Tail logs ----

def test_tail_returns_the_invocation_log(api):
    status, hdrs, data = invoke(api, "echo", b'{"a":1}', {"X-Amz-Log-Type": "Tail"})
    assert (status, data) == (200, b'{"a":1}')
    check_log(decoded_log(hdrs), hdrs["x-amzn-requestid"])


def test_log_type_none_gives_no_log(api):
    status, hdrs, _ = invoke(api, "echo", b"{}", {"X-Amz-Log-Type": "None"})
    assert status == 200 and "x-amz-log-result" not in hdrs


def test_tail_of_a_function_error(api):
    status, hdrs, data = invoke(api, "fail", b'{"message":"nope"}', {"X-Amz-Log-Type": "Tail"})
    assert status == 200 and hdrs["x-amz-function-error"] == "Unhandled"
    log = decoded_log(hdrs)
    check_log(log, hdrs["x-amzn-requestid"])
    assert "Invoke Error" in log and "nope" in log


def test_tail_of_a_plugin_that_logs(start_gateway):
    g = start_gateway(args=["--handlers", PLUGIN])
    status, hdrs, data = invoke(g, "shout", b'{"text":"hi"}', {"X-Amz-Log-Type": "Tail"})
    assert (status, json.loads(data)) == (200, {"text": "HI"})
    log = decoded_log(hdrs)
    check_log(log, hdrs["x-amzn-requestid"])
    line = [ln for ln in log.splitlines() if "shouting" in ln][0]
    # the managed runtimes' shape: time, request id, level, message
    when, rid, level, text = line.split("\t")
    assert rid == hdrs["x-amzn-requestid"] and level == "INFO"
    assert text == "shouting 2 characters"
    assert when.endswith("Z") and len(when) == 24


# ---- client context ----

def b64json(obj):
    return base64.b64encode(json.dumps(obj).encode()).decode()


def test_client_context_reaches_the_handler(start_gateway):
    g = start_gateway(args=["--handlers", PLUGIN],
                      config={"functions": {"who": {"handler": "whoami"}}})
    ctx = {"client": {"app_title": "t"}, "custom": {"k": "v"}, "env": {"locale": "en"}}
    status, _, data = invoke(g, "who", b"{}", {"X-Amz-Client-Context": b64json(ctx)})
    assert status == 200
    assert json.loads(data)["clientContext"] == ctx
    # none sent: none seen
    assert json.loads(invoke(g, "who")[2])["clientContext"] is None
    # Lambda passes it to synchronous calls only; an Event still validates it
    status, _, _ = invoke(g, "who", b"{}", {"X-Amz-Client-Context": b64json(ctx),
                                            "X-Amz-Invocation-Type": "Event"})
    assert status == 202


@pytest.mark.parametrize("value", [
    "not base64!",
    base64.b64encode(b"not json").decode(),
    base64.b64encode(b"[1,2]").decode(),
    base64.b64encode(b'{"a":').decode(),
])
def test_bad_client_context_is_invalid_request_content(api, value):
    status, hdrs, data = invoke(api, "echo", b"{}", {"X-Amz-Client-Context": value})
    body = service_error(status, hdrs, data, 400, "InvalidRequestContentException")
    assert body == {"Type": "User",
                    "message": "Client context must be a valid Base64-encoded JSON object."}


def test_client_context_limit(api):
    ok = b64json({"custom": {"pad": "x" * 2600}})
    assert len(ok) <= 3583
    assert invoke(api, "echo", b"{}", {"X-Amz-Client-Context": ok})[0] == 200
    big = b64json({"custom": {"pad": "x" * 2700}})
    assert len(big) > 3583
    status, hdrs, data = invoke(api, "echo", b"{}", {"X-Amz-Client-Context": big})
    body = service_error(status, hdrs, data, 400, "InvalidRequestContentException")
    assert "3583" in body["message"]


# ---- function errors are answers: 200 + X-Amz-Function-Error ----

def test_function_error_is_200_with_the_error_payload(api):
    status, hdrs, data = invoke(api, "fail", b'{"type":"KeyError","message":"no such key"}')
    assert status == 200
    assert hdrs["x-amz-function-error"] == "Unhandled"
    assert "x-amzn-errortype" not in hdrs
    payload = json.loads(data)
    assert payload["errorType"] == "KeyError"
    assert payload["errorMessage"] == "no such key"
    assert payload["stackTrace"] == []


def test_timeout_is_sandbox_timedout_payload(api):
    status, hdrs, data = invoke(api, "slow", b'{"ms":3000}', {"X-Amz-Log-Type": "Tail"})
    assert status == 200 and hdrs["x-amz-function-error"] == "Unhandled"
    rid = hdrs["x-amzn-requestid"]
    assert json.loads(data) == {
        "errorType": "Sandbox.Timedout",
        "errorMessage": "RequestId: %s Error: Task timed out after 0.30 seconds" % rid}
    assert "Task timed out after 0.30 seconds" in decoded_log(hdrs)


def test_response_too_large_is_a_function_error(api):
    # 1e9 comes back as 1000000000.0: the echo's answer outgrows the 6291556-byte limit
    n = 1_400_000
    body = b"[" + b",".join([b"1e9"] * n) + b"]"
    assert len(body) <= SYNC_MAX
    status, hdrs, data = invoke(api, "echo", body, timeout=60)
    assert status == 200 and hdrs["x-amz-function-error"] == "Unhandled"
    payload = json.loads(data)
    assert payload["errorType"] == "Function.ResponseSizeTooLarge"
    assert "6291556" in payload["errorMessage"]


# ---- service errors ----

def test_unknown_function_is_404_with_aws_message(api):
    status, hdrs, data = invoke(api, "nope")
    body = service_error(status, hdrs, data, 404, "ResourceNotFoundException")
    assert body == {"Type": "User",
                    "Message": "Function not found: arn:aws:lambda:us-east-1:000000000000:"
                               "function:nope"}


def test_unknown_qualifier_is_404(api):
    status, hdrs, data = invoke(api, "echo", qualifier="prod")
    body = service_error(status, hdrs, data, 404, "ResourceNotFoundException")
    assert body["Message"] == ("Function not found: arn:aws:lambda:us-east-1:000000000000:"
                               "function:echo:prod")


def test_region_and_account_come_from_the_config(start_gateway):
    g = start_gateway(config={"region": "eu-central-1", "account_id": "123456789012"})
    status, hdrs, data = invoke(g, "nope")
    body = service_error(status, hdrs, data, 404, "ResourceNotFoundException")
    assert body["Message"] == ("Function not found: arn:aws:lambda:eu-central-1:123456789012:"
                               "function:nope")
    arn = "arn:aws:lambda:eu-central-1:123456789012:function:echo"
    assert invoke(g, arn, b'{"x":1}')[:3:2] == (200, b'{"x":1}')
    # an ARN of the default region does not reach this gateway's functions
    status, hdrs, data = invoke(g, "arn:aws:lambda:us-east-1:123456789012:function:echo")
    body = service_error(status, hdrs, data, 404, "ResourceNotFoundException")
    assert body["Message"] == ("Functions from 'us-east-1' are not reachable in this region "
                               "('eu-central-1')")


def test_invalid_json_is_invalid_request_content(api):
    status, hdrs, data = invoke(api, "echo", b'{"a":')
    body = service_error(status, hdrs, data, 400, "InvalidRequestContentException")
    assert body["Type"] == "User"
    assert body["message"].startswith("Could not parse request body into json: ")


def throttled_call(call, slow, fast):
    """Runs slow() in a thread and calls fast() while it holds the function's only slot;
    returns (fast's result, slow's result). Retried if the slow call lost the race."""
    for _ in range(5):
        box = {}
        t = threading.Thread(target=lambda: box.setdefault("slow", slow()))
        t.start()
        time.sleep(0.2)
        try:
            got = fast()
        finally:
            t.join()
        if box["slow"] == 200 and call(got):
            return got, box["slow"]
    raise AssertionError("no throttled call in 5 tries: %r" % (got,))


def test_throttle_is_429_with_retry_after_and_reason(api):
    (status, hdrs, data), slow = throttled_call(
        lambda got: got[0] == 429,
        lambda: invoke(api, "one", b'{"ms":800}')[0],
        lambda: invoke(api, "one", b'{"ms":0}'))
    body = service_error(status, hdrs, data, 429, "TooManyRequestsException")
    assert hdrs["retry-after"] == "1"
    assert body == {"Type": "User", "message": "Rate Exceeded.",
                    "Reason": "ReservedFunctionConcurrentInvocationLimitExceeded"}


def test_server_errors_say_type_service(start_gateway):
    # while draining after SIGTERM, a call on a connection opened before is refused with a 5xx
    g = start_gateway(config={"functions": {"slow": {"handler": "sleep"}}})
    c = g.conn()
    c.request("POST", INVOKE % "echo", body=b"{}")
    r = c.getresponse()
    assert r.status == 200
    r.read()
    done = {}

    def long_call():
        done["status"] = invoke(g, "slow", b'{"ms":1500}')[0]

    t = threading.Thread(target=long_call)
    t.start()
    time.sleep(0.3)
    g.proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    c.request("POST", INVOKE % "echo", body=b"{}")
    r = c.getresponse()
    hdrs = {k.lower(): v for k, v in r.getheaders()}
    data = r.read()
    c.close()
    t.join()
    assert done["status"] == 200
    check_common(hdrs)
    body = service_error(r.status, hdrs, data, 503, "ServiceException")
    assert body["Type"] == "Service" and body["Message"]
    g.proc.wait(timeout=10)  # it exits by itself once drained (the fixture checks the status)


# ---- function names and qualifiers ----

@pytest.mark.parametrize("name,qualifier", [
    ("echo", None),
    ("echo:live", None),
    ("echo:$LATEST", None),
    ("echo", "live"),
    ("echo", "$LATEST"),
    ("echo:live", "live"),
    ("arn:aws:lambda:us-east-1:000000000000:function:echo", None),
    ("arn:aws:lambda:us-east-1:000000000000:function:echo:live", None),
    ("arn:aws:lambda:us-east-1:000000000000:function:echo", "live"),
    ("000000000000:function:echo", None),
    ("000000000000:function:echo:live", None),
])
def test_function_name_forms(api, name, qualifier):
    status, _, data = invoke(api, name, b'{"n":1}', qualifier=qualifier)
    assert (status, data) == (200, b'{"n":1}')


def test_unencoded_colons_in_the_path_work_too(api):
    status, hdrs, data = api.post(INVOKE % "arn:aws:lambda:us-east-1:000000000000:function:echo",
                                  b'{"n":2}')
    assert (status, data) == (200, b'{"n":2}')


def test_qualifier_conflict_is_invalid_parameter_value(api):
    status, hdrs, data = invoke(api, "echo:live", qualifier="prod")
    body = service_error(status, hdrs, data, 400, "InvalidParameterValueException")
    assert body == {"Type": "User", "message": "The derived qualifier from the function name "
                                               "does not match the specified qualifier."}


@pytest.mark.parametrize("name", [
    "bad name", "a" * 65, "arn:aws:lambda:us-east-1:0:function:echo", "x:y:z",
    "arn:aws:s3:us-east-1:000000000000:function:echo",
])
def test_bad_function_name_is_validation_exception(api, name):
    status, hdrs, data = invoke(api, name)
    body = service_error(status, hdrs, data, 400, "ValidationException")
    assert "at 'functionName' failed to satisfy constraint" in body["message"]
    assert set(body) == {"message"}


@pytest.mark.parametrize("qualifier", ["a b", "x" * 129, ""])
def test_bad_qualifier_is_validation_exception(api, qualifier):
    status, hdrs, data = invoke(api, "echo", qualifier=qualifier)
    body = service_error(status, hdrs, data, 400, "ValidationException")
    assert "at 'qualifier' failed to satisfy constraint" in body["message"]


# ---- body limits ----

def announce_length(gw, path, length, headers=b""):
    """Sends only the headers of a request announcing length body bytes; returns the reply."""
    s = socket.create_connection((gw.host, gw.port))
    s.sendall(b"POST %s HTTP/1.1\r\nHost: x\r\n%sContent-Length: %d\r\n\r\n"
              % (path.encode(), headers, length))
    s.settimeout(10)
    reply = b""
    while b"\r\n\r\n" not in reply or not reply.rstrip().endswith(b"}"):
        chunk = s.recv(65536)
        if not chunk:
            break
        reply += chunk
    s.close()
    head, _, body = reply.decode().partition("\r\n\r\n")
    return head, body


def test_sync_body_limit(api):
    body = b'"' + b"a" * (SYNC_MAX - 2) + b'"'
    status, _, data = invoke(api, "echo", body, timeout=60)
    assert status == 200 and len(data) == SYNC_MAX
    head, body = announce_length(api, INVOKE % "echo", SYNC_MAX + 1)
    assert head.startswith("HTTP/1.1 413")
    assert "x-amzn-ErrorType: RequestEntityTooLargeException" in head
    assert "x-amzn-RequestId: " in head and "X-Amz-Executed-Version: $LATEST" in head
    assert json.loads(body) == {
        "Type": "User",
        "message": "Request must be smaller than 6291456 bytes for the InvokeFunction operation"}


def test_event_body_limit(api):
    body = b'"' + b"a" * (ASYNC_MAX - 2) + b'"'
    assert invoke(api, "echo", body, {"X-Amz-Invocation-Type": "Event"})[0] == 202
    head, body = announce_length(api, INVOKE % "echo", ASYNC_MAX + 1,
                                 b"X-Amz-Invocation-Type: Event\r\n")
    assert head.startswith("HTTP/1.1 413")
    assert "x-amzn-ErrorType: RequestEntityTooLargeException" in head
    assert json.loads(body)["message"] == ("1048577 byte payload is too large for the Event "
                                           "invocation type (limit 1048576 bytes)")
    # over the sync limit, the front door's message
    head, body = announce_length(api, INVOKE % "echo", SYNC_MAX + 1,
                                 b"X-Amz-Invocation-Type: Event\r\n")
    assert json.loads(body)["message"].startswith("Request must be smaller than 6291456 bytes")


def test_chunked_body_over_the_limit(api):
    status, hdrs, data = api.post_chunked(INVOKE % "echo", ASYNC_MAX,
                                          {"X-Amz-Invocation-Type": "Event"})
    assert status == 413
    assert dict((k.lower(), v) for k, v in hdrs)["x-amzn-errortype"] == \
        "RequestEntityTooLargeException"
    assert "1048576" in json.loads(data)["message"]


# ---- the legacy InvokeAsync ----

@pytest.mark.parametrize("path", ["/2014-11-13/functions/echo/invoke-async/",
                                  "/2014-11-13/functions/echo/invoke-async"])
def test_legacy_invoke_async(api, path):
    status, hdrs, data = api.post(path, b'{"a":1}')
    check_common(hdrs)
    assert (status, json.loads(data)) == (202, {"Status": 202})


def test_legacy_invoke_async_errors(api):
    status, hdrs, data = api.post("/2014-11-13/functions/nope/invoke-async/", b"{}")
    check_common(hdrs)
    service_error(status, hdrs, data, 404, "ResourceNotFoundException")
    status, hdrs, data = api.post("/2014-11-13/functions/echo/invoke-async/", b"{")
    service_error(status, hdrs, data, 400, "InvalidRequestContentException")


def test_wrong_method_is_405(api):
    status, hdrs, _ = api.request("GET", INVOKE % "echo")
    assert status == 405 and hdrs["allow"] == "POST"


def test_metrics_count_the_invoke_api_face(api):
    invoke(api, "echo")
    _, _, data = api.request("GET", "/metrics")
    line = [ln for ln in data.decode().splitlines()
            if ln.startswith('lgw_http_requests_total{face="invoke_api",code="2xx"}')][0]
    assert int(line.split()[-1]) >= 1


# ---- the inbound SigV4 check ----

def sign(gw, path, body, headers=None, key=KEY_ID, secret=SECRET, region=REGION, when=None,
         monkeypatch=None):
    """Headers for a request signed by botocore's own SigV4 signer."""
    import botocore.auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    req = AWSRequest(method="POST", url="http://%s:%d%s" % (gw.host, gw.port, path), data=body,
                     headers=dict(headers or {}))
    auth = botocore.auth.SigV4Auth(Credentials(key, secret), "lambda", region)
    if when is not None:
        fake = types.SimpleNamespace(datetime=types.SimpleNamespace(utcnow=lambda: when))
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(botocore.auth, "datetime", fake)
            auth.add_auth(req)
    else:
        auth.add_auth(req)
    return dict(req.headers.items())


def signed_invoke(gw, name, body=b'{"s":1}', extra=None, qualifier=None, **kw):
    path = path_of(name, qualifier)
    hdrs = sign(gw, path, body, extra, **kw)
    return invoke(gw, name, body, hdrs, qualifier=qualifier)


def test_unsigned_request_is_refused(signed):
    status, hdrs, data = invoke(signed, "echo")
    body = service_error(status, hdrs, data, 403, "MissingAuthenticationTokenException")
    assert body == {"message": "Missing Authentication Token"}


def test_signed_request_is_accepted(signed):
    status, _, data = signed_invoke(signed, "echo", extra={"X-Amz-Log-Type": "Tail"})
    assert (status, data) == (200, b'{"s":1}')
    # an ARN in the path signs as arn%253Aaws... (botocore double-encodes), with a query
    status, _, data = signed_invoke(signed, "arn:aws:lambda:us-east-1:000000000000:function:echo",
                                    qualifier="live")
    assert (status, data) == (200, b'{"s":1}')
    # the second configured key works as well
    status, _, _ = signed_invoke(signed, "echo", key="AKIDLGWOTHER", secret="another-secret")
    assert status == 200


@pytest.mark.parametrize("wire_name", [
    "arn:aws:lambda:us-east-1:000000000000:function:echo",  # ':' sent raw, as curl may
    "echo%3alive",  # a lower-case escape: signed as sent, not as an SDK would re-encode it
])
def test_signature_covers_the_path_as_sent(signed, wire_name):
    path = INVOKE % wire_name
    hdrs = sign(signed, path, b'{"w":1}')
    status, rh, data = signed.post(path, b'{"w":1}', hdrs)
    check_common(rh)
    assert (status, data) == (200, b'{"w":1}')


def test_wrong_secret_is_invalid_signature(signed):
    status, hdrs, data = signed_invoke(signed, "echo", secret="not-the-secret")
    body = service_error(status, hdrs, data, 403, "InvalidSignatureException")
    assert body == {"message": "The request signature we calculated does not match the signature "
                               "you provided. Check your AWS Secret Access Key and signing "
                               "method. Consult the service documentation for details."}


def test_unknown_key_is_unrecognized_client(signed):
    status, hdrs, data = signed_invoke(signed, "echo", key="AKIDNOBODY")
    body = service_error(status, hdrs, data, 403, "UnrecognizedClientException")
    assert body == {"message": "The security token included in the request is invalid."}


def test_tampered_body_is_invalid_signature(signed):
    hdrs = sign(signed, INVOKE % "echo", b'{"amount":1}')
    status, rh, data = invoke(signed, "echo", b'{"amount":1000}', hdrs)
    service_error(status, rh, data, 403, "InvalidSignatureException")


def test_signed_header_changed_is_invalid_signature(signed):
    hdrs = sign(signed, INVOKE % "echo", b"{}", {"X-Amz-Invocation-Type": "RequestResponse"})
    hdrs["X-Amz-Invocation-Type"] = "Event"
    status, rh, data = invoke(signed, "echo", b"{}", hdrs)
    service_error(status, rh, data, 403, "InvalidSignatureException")


def test_old_signature_is_expired(signed):
    then = datetime.datetime.utcnow() - datetime.timedelta(minutes=6)
    status, hdrs, data = signed_invoke(signed, "echo", when=then)
    body = service_error(status, hdrs, data, 403, "InvalidSignatureException")
    assert body["message"].startswith("Signature expired: %s is now earlier than "
                                      % then.strftime("%Y%m%dT%H%M%SZ"))
    assert body["message"].endswith(" - 5 min.)")
    # four minutes off is within the skew AWS allows
    then = datetime.datetime.utcnow() - datetime.timedelta(minutes=4)
    assert signed_invoke(signed, "echo", when=then)[0] == 200


def test_future_signature_is_not_yet_current(signed):
    then = datetime.datetime.utcnow() + datetime.timedelta(minutes=6)
    status, hdrs, data = signed_invoke(signed, "echo", when=then)
    body = service_error(status, hdrs, data, 403, "InvalidSignatureException")
    assert body["message"].startswith("Signature not yet current: ")


def test_other_region_scope_is_invalid_signature(signed):
    status, hdrs, data = signed_invoke(signed, "echo", region="eu-west-1")
    body = service_error(status, hdrs, data, 403, "InvalidSignatureException")
    assert body["message"].startswith("Credential should be scoped to a valid region.")


def test_malformed_authorization_is_incomplete_signature(signed):
    status, hdrs, data = invoke(signed, "echo", b"{}", {"Authorization": "Basic dXNlcjpwYXNz"})
    service_error(status, hdrs, data, 400, "IncompleteSignatureException")


def test_other_faces_need_no_signature(signed):
    status, _, data = signed.post("/invoke/echo", b'{"g":1}')
    assert (status, data) == (200, b'{"g":1}')


# ==== part 2: real clients ====

@pytest.fixture(scope="module")
def client_env():
    """An environment for client processes: dummy credentials, the test region, retries off, and
    no user configuration files."""
    tmp = tempfile.mkdtemp(prefix="lgw-clients-")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ACCESS_KEY_ID=KEY_ID,
        AWS_SECRET_ACCESS_KEY=SECRET,
        AWS_REGION=REGION,
        AWS_DEFAULT_REGION=REGION,
        AWS_MAX_ATTEMPTS="1",
        AWS_RETRY_MODE="standard",
        AWS_CONFIG_FILE=os.path.join(tmp, "config"),
        AWS_SHARED_CREDENTIALS_FILE=os.path.join(tmp, "credentials"),
        AWS_EC2_METADATA_DISABLED="true",
        AWS_PAGER="",
    )
    env["tmp"] = tmp
    return env


def endpoint(gw):
    return "http://%s:%d" % (gw.host, gw.port)


# The scenarios every client runs: (id, gateway, FunctionName, extra parameters, secret).
# The unsigned gateway ignores credentials; the signed one checks them.
SCENARIOS = [
    ("sync", "api", "echo", {}, SECRET),
    ("event", "api", "echo", {"InvocationType": "Event"}, SECRET),
    ("dryrun", "api", "echo", {"InvocationType": "DryRun"}, SECRET),
    ("tail", "api", "echo", {"LogType": "Tail"}, SECRET),
    ("error", "api", "fail", {}, SECRET),
    ("unknown", "api", "nope", {}, SECRET),
    ("qualified", "api", "echo:live", {}, SECRET),
    ("qualifier", "api", "echo", {"Qualifier": "live"}, SECRET),
    ("arn", "api", "arn:aws:lambda:us-east-1:000000000000:function:echo", {}, SECRET),
    ("arn_qualified", "api", "arn:aws:lambda:us-east-1:000000000000:function:echo:live", {},
     SECRET),
    ("signed", "signed", "echo", {"LogType": "Tail"}, SECRET),
    ("wrong_secret", "signed", "echo", {}, "not-the-secret"),
]
PAYLOAD = '{"client":"test","n":[1,2.5,"x"]}'
# The CLI runs a qualified name and a qualified ARN; boto3 and the JS SDK also the
# ?Qualifier= parameter and the unqualified ARN.
CLI_SKIPS = {"qualifier", "arn"}


def check_results(r, log_of):
    """The same expectations for every client. r maps scenario id to a normalized result:
    {"ok", "status", "function_error", "version", "log", "payload", "code", "message"}."""
    assert r["sync"]["ok"] and r["sync"]["status"] == 200
    assert json.loads(r["sync"]["payload"]) == json.loads(PAYLOAD)
    assert r["sync"]["version"] == "$LATEST" and not r["sync"]["function_error"]
    assert r["event"]["ok"] and r["event"]["status"] == 202 and not r["event"]["payload"]
    assert r["dryrun"]["ok"] and r["dryrun"]["status"] == 204 and not r["dryrun"]["payload"]
    assert r["tail"]["ok"] and r["tail"]["status"] == 200
    log = log_of(r["tail"])
    assert log.startswith("START RequestId: ") and "\nEND RequestId: " in log
    assert "\nREPORT RequestId: " in log
    assert r["error"]["ok"] and r["error"]["status"] == 200
    assert r["error"]["function_error"] == "Unhandled"
    err = json.loads(r["error"]["payload"])
    assert err["errorType"] == "ValueError" and err["errorMessage"] == "fail was asked to fail"
    assert not r["unknown"]["ok"] and r["unknown"]["code"] == "ResourceNotFoundException"
    assert "Function not found: arn:aws:lambda:us-east-1:000000000000:function:nope" in \
        r["unknown"]["message"]
    for k in ("qualified", "qualifier", "arn", "arn_qualified"):
        if k not in r:
            continue  # the CLI skips the variants (each run costs a Python start-up)
        assert r[k]["ok"] and r[k]["status"] == 200, (k, r[k])
        assert json.loads(r[k]["payload"]) == json.loads(PAYLOAD)
    assert r["signed"]["ok"] and r["signed"]["status"] == 200
    assert "START RequestId: " in log_of(r["signed"])
    assert not r["wrong_secret"]["ok"]
    assert r["wrong_secret"]["code"] == "InvalidSignatureException"
    assert "signature we calculated does not match" in r["wrong_secret"]["message"]


def b64_log(result):
    return base64.b64decode(result["log"]).decode()


# ---- the AWS CLI ----

def run_cli(gw, env, tmp, sid, name, params, secret):
    out = os.path.join(tmp, sid + ".out")
    argv = [AWS_CLI, "lambda", "invoke", "--endpoint-url", endpoint(gw), "--region", REGION,
            "--function-name", name, "--cli-binary-format", "raw-in-base64-out",
            "--payload", PAYLOAD, "--output", "json"]
    flags = {"InvocationType": "--invocation-type", "LogType": "--log-type",
             "Qualifier": "--qualifier"}
    for k, v in params.items():
        argv += [flags[k], v]
    argv.append(out)
    p = subprocess.run(argv, env=dict(env, AWS_SECRET_ACCESS_KEY=secret), capture_output=True,
                       text=True, timeout=60)
    if p.returncode == 0:
        meta = json.loads(p.stdout)
        with open(out) as f:
            payload = f.read()
        return {"ok": True, "status": meta["StatusCode"], "version": meta.get("ExecutedVersion"),
                "function_error": meta.get("FunctionError"), "log": meta.get("LogResult"),
                "payload": payload}
    # "An error occurred (Code) when calling the Invoke operation: message"
    err = p.stderr.strip()
    code = err.split("(", 1)[1].split(")", 1)[0] if "An error occurred (" in err else None
    return {"ok": False, "code": code, "message": err, "rc": p.returncode}


@pytest.fixture(scope="module")
def cli_results(api, signed, client_env):
    assert os.access(AWS_CLI, os.X_OK), "Debian's awscli is not installed (scripts/deps.sh)"
    gws = {"api": api, "signed": signed}
    env = {k: v for k, v in client_env.items() if k != "tmp"}
    # each CLI run is a Python start-up: a few at a time, not one per CPU-starved process
    with concurrent.futures.ThreadPoolExecutor(4) as ex:
        futs = {sid: ex.submit(run_cli, gws[g], env, client_env["tmp"], sid, name, params, sec)
                for sid, g, name, params, sec in SCENARIOS if sid not in CLI_SKIPS}
        return {sid: f.result() for sid, f in futs.items()}


def test_aws_cli(cli_results):
    assert set(cli_results) == {s[0] for s in SCENARIOS} - CLI_SKIPS
    check_results(cli_results, b64_log)
    # a service error is the CLI's exit status 254
    assert cli_results["unknown"]["rc"] == 254


# ---- boto3 ----

@pytest.fixture(scope="module")
def boto3_results(api, signed, client_env):
    import boto3
    from botocore.config import Config

    gws = {"api": api, "signed": signed}
    results = {}
    with pytest.MonkeyPatch.context() as mp:
        for k, v in client_env.items():
            if k.startswith("AWS_"):
                mp.setenv(k, v)
        for k in list(os.environ):
            if k.startswith("AWS_") and k not in client_env:
                mp.delenv(k)
        cfg = Config(retries={"total_max_attempts": 1, "mode": "standard"},
                     connect_timeout=5, read_timeout=30)
        for sid, g, name, params, secret in SCENARIOS:
            client = boto3.session.Session(
                aws_access_key_id=KEY_ID, aws_secret_access_key=secret,
                region_name=REGION).client("lambda", endpoint_url=endpoint(gws[g]), config=cfg)
            try:
                out = client.invoke(FunctionName=name, Payload=PAYLOAD.encode(), **params)
                results[sid] = {
                    "ok": True, "status": out["StatusCode"], "version": out.get("ExecutedVersion"),
                    "function_error": out.get("FunctionError"), "log": out.get("LogResult"),
                    "payload": out["Payload"].read().decode()}
            except client.exceptions.ResourceNotFoundException as e:
                # the typed exception, with the modeled fields
                results[sid] = {"ok": False, "code": e.response["Error"]["Code"],
                                "message": str(e), "typed": True,
                                "type_field": e.response.get("Type")}
            except client.exceptions.ClientError as e:
                results[sid] = {"ok": False, "code": e.response["Error"]["Code"],
                                "message": str(e), "typed": False,
                                "http": e.response["ResponseMetadata"]["HTTPStatusCode"]}
    return results


def test_boto3(boto3_results):
    check_results(boto3_results, b64_log)
    assert boto3_results["unknown"]["typed"]
    assert boto3_results["wrong_secret"]["http"] == 403


def test_boto3_client_context_and_service_errors(start_gateway, client_env):
    import boto3
    from botocore.config import Config

    g = start_gateway(args=["--handlers", PLUGIN],
                      config={"functions": {"who": {"handler": "whoami"},
                                            "one": {"handler": "sleep", "concurrency": 1}}})
    client = boto3.session.Session(aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET,
                                   region_name=REGION).client(
        "lambda", endpoint_url=endpoint(g),
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}))
    ctx = {"custom": {"k": "v"}}
    out = client.invoke(FunctionName="who", ClientContext=b64json(ctx))
    assert json.loads(out["Payload"].read())["clientContext"] == ctx
    with pytest.raises(client.exceptions.InvalidRequestContentException):
        client.invoke(FunctionName="who", Payload=b"{not json")
    with pytest.raises(client.exceptions.InvalidRequestContentException) as ei:
        client.invoke(FunctionName="who", ClientContext="!!")
    assert "Client context must be a valid Base64-encoded JSON object." in str(ei.value)
    # throttled: botocore's typed TooManyRequestsException, with Reason and Retry-After parsed
    def fast():
        try:
            client.invoke(FunctionName="one", Payload=b'{"ms":0}')
        except client.exceptions.TooManyRequestsException as e:
            return e
        return None

    err, _ = throttled_call(lambda got: got is not None,
                            lambda: client.invoke(FunctionName="one",
                                                  Payload=b'{"ms":800}')["StatusCode"],
                            fast)
    assert err.response["Reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded"
    assert err.response["retryAfterSeconds"] == "1"


# ---- the AWS SDK for JavaScript v3 ----

@pytest.fixture(scope="module")
def js_ready():
    subprocess.run([os.path.join(ROOT, "scripts", "js-clients.sh")], check=True, timeout=600)
    return JS_DIR


def run_js(gw, env, calls, secret):
    p = subprocess.run(["node", os.path.join(JS_DIR, "invoke.mjs"), endpoint(gw),
                        json.dumps(calls)],
                       env=dict(env, AWS_SECRET_ACCESS_KEY=secret), capture_output=True,
                       text=True, timeout=60, cwd=JS_DIR)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


@pytest.fixture(scope="module")
def js_results(js_ready, api, signed, client_env):
    gws = {"api": api, "signed": signed}
    env = {k: v for k, v in client_env.items() if k != "tmp"}
    groups = {}
    for sid, g, name, params, secret in SCENARIOS:
        call = {"id": sid, "input": dict(FunctionName=name, Payload=PAYLOAD, **params)}
        groups.setdefault((g, secret), []).append(call)
    raw = {}
    with concurrent.futures.ThreadPoolExecutor(len(groups)) as ex:
        futs = [ex.submit(run_js, gws[g], env, calls, secret)
                for (g, secret), calls in groups.items()]
        for f in futs:
            raw.update(f.result())
    results = {}
    for sid, r in raw.items():
        if r["ok"]:
            results[sid] = {"ok": True, "status": r["StatusCode"], "version": r["ExecutedVersion"],
                            "function_error": r["FunctionError"], "log": r["LogResult"],
                            "payload": r["Payload"]}
        else:
            results[sid] = {"ok": False, "code": r["name"], "message": r["message"],
                            "http": r["status"], "typed": r["isResourceNotFound"],
                            "type_field": r["Type"]}
    return results


def test_js_sdk_v3(js_results):
    check_results(js_results, b64_log)
    assert js_results["unknown"]["typed"]  # instanceof ResourceNotFoundException
    assert js_results["unknown"]["http"] == 404 and js_results["unknown"]["type_field"] == "User"
    assert js_results["wrong_secret"]["http"] == 403

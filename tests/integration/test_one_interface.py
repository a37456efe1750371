"""One interface: the same gateway-face tests, the same requests and the same expected statuses
and bodies, against local mode and against lambda mode (DESIGN.md: "a caller must not be able to
tell local mode from lambda mode except by what the functions compute").

Lambda mode is pointed at a Lambda-compatible upstream that serves the same example functions:
a second lambda-gateway in local mode, reached through its Invoke API face
(/2015-03-31/functions/NAME/invocations) with AWS_ENDPOINT_URL_LAMBDA, with its inbound SigV4
check on, so every call the lambda dispatcher makes must carry a valid signature for the
upstream's access key. Both gateways share the function settings below, so a function error,
a Sandbox.Timedout or a throttle is produced by the upstream and has to travel back through the
lambda dispatcher into the very answer local mode gives.

Request ids differ from call to call, so bodies are compared with every id replaced by "<id>",
after checking that the ids agree with each other (X-Request-Id, the error's requestId, the
function's error payload and the timeout message all name the id the function ran under).
Where the modes must differ, the test says why.

"lambda-tls" is lambda mode again, but reaching the upstream over TLS (https://localhost:PORT,
tests/fake/tls_front.py in front of it with a certificate made for the test, trusted through
AWS_CA_BUNDLE): every shared test then also runs over the gateway's own TLS client.
"""
import concurrent.futures
import json
import os
import re
import signal
import socket
import subprocess
import tempfile
import threading
import time

import pytest

from conftest import BIN, Gateway, wait_until

REGION = "us-east-1"
ACCOUNT = "000000000000"
KEY_ID = "AKIDONEINTERFACE"
SECRET = "one-interface-secret/K7MDENG+bPxRfiCY"
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
SYNC_MAX = 6291456
ASYNC_MAX = 1048576
HOLD_MS = 6000  # how long the throttle test keeps the only concurrency slot of "single"

# The functions both modes serve (local: these settings; lambda: the upstream's settings).
FUNCTIONS = {
    "sleep": {"timeout": 1},
    "single": {"handler": "sleep", "timeout": 10, "concurrency": 1},
}


FAKE_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fake")


def make_cert(directory, names="IP:127.0.0.1,DNS:localhost"):
    """A self-signed certificate for the given subjectAltNames: (cert path, key path)."""
    cert, key = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "2", "-subj", "/CN=lgw-test", "-addext",
                    f"subjectAltName={names}"], check=True, capture_output=True, timeout=30)
    return cert, key


class Helper:
    """tests/fake/tls_front.py running; gone when its stdin closes."""

    def __init__(self, *args):
        self.proc = subprocess.Popen(["/usr/bin/python3", os.path.join(FAKE_DIR, "tls_front.py"),
                                      *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        line = self.proc.stdout.readline().decode()
        assert line.startswith("PORT "), line
        self.port = int(line.split()[1])

    def stop(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=10)


class Mode:
    """The gateway a test talks to, plus what else runs for it."""

    def __init__(self, name):
        self.name = name
        self.upstream = None
        self.front = None
        self.tmp = tempfile.TemporaryDirectory(prefix="lgw-one-")
        if name == "local":
            self.gw = Gateway(config={"functions": FUNCTIONS})
            return
        self.upstream = Gateway(config={"functions": FUNCTIONS, "access_keys": {KEY_ID: SECRET}})
        try:
            self._start_front()
        except BaseException:
            self.upstream.stop()
            if self.front:
                self.front.stop()
            raise

    def _start_front(self):
        endpoint, extra = f"http://127.0.0.1:{self.upstream.port}", {}
        if self.name == "lambda-tls":
            cert, key = make_cert(self.tmp.name)
            self.front = Helper("--upstream", str(self.upstream.port), "--cert", cert,
                                "--key", key)
            endpoint, extra = f"https://localhost:{self.front.port}", {"AWS_CA_BUNDLE": cert}
        env = {
            "AWS_ACCESS_KEY_ID": KEY_ID,
            "AWS_SECRET_ACCESS_KEY": SECRET,
            "AWS_REGION": REGION,
            "AWS_ENDPOINT_URL_LAMBDA": endpoint,
            "AWS_EC2_METADATA_DISABLED": "true",
            "HOME": self.tmp.name,  # no ~/.aws of the machine's
            **extra,
        }
        config = {
            "mode": "lambda",
            # Every function the tests call, so that "unknown" is the upstream's 404 and not
            # the gateway's own 403 (that one has its own test below).
            "allow": ["echo", "hello", "fail", "sleep", "single", "nope"],
            # The gateway's call timeout is the function's plus a margin: it must not cut the
            # upstream's own Sandbox.Timedout answer short.
            "functions": {"sleep": {"timeout": 1}, "single": {"timeout": 10}},
        }
        self.gw = Gateway(config=config, env=env)
        if "(lambda mode)" not in self.gw.banner:
            self.gw.stop()
            raise AssertionError(f"not in lambda mode: {self.gw.banner}")

    def stop(self):
        try:
            self.gw.check_clean_exit()
            if self.upstream:
                # What lambda mode answered came through the upstream's Invoke API face.
                assert '"path":"/2015-03-31/functions/' in self.upstream.stderr()
        finally:
            if self.upstream:
                self.upstream.check_clean_exit()
            if self.front:
                self.front.stop()
            self.tmp.cleanup()


@pytest.fixture(scope="module", params=["local", "lambda", "lambda-tls"])
def mode(request):
    m = Mode(request.param)
    yield m
    m.stop()


def call(m, path, body=b"", headers=None, timeout=30):
    status, hdrs, data = m.gw.post(path, body, headers, timeout)
    return status, hdrs, data


def normalized(status, hdrs, data):
    """(status, body) with ids replaced; checks the ids agree with X-Request-Id first."""
    rid = hdrs.get("x-request-id")
    assert rid and re.fullmatch(UUID, rid), hdrs
    text = data.decode()
    for found in re.findall(UUID, text):
        assert found == rid, f"an id in the body is not the request's: {text}"
    return status, json.loads(re.sub(UUID, "<id>", text)) if text else None


def error_body(etype, message, function, **extra):
    err = {"type": etype, "message": message, "function": function, "requestId": "<id>"}
    err.update(extra)
    return {"error": err}


# ---- the shared tests: one set of expectations for both modes ----


def test_echo_returns_the_event(mode):
    sent = b'{"orderId": 7, "items": [1, 2.5, "x", {"deep": [null, true]}], "t": "\\u00e9"}'
    want = '{"orderId":7,"items":[1,2.5,"x",{"deep":[null,true]}],"t":"é"}'.encode()
    status, hdrs, data = call(mode, "/invoke/echo", sent)
    assert (status, data) == (200, want)
    assert hdrs["content-type"] == "application/json"
    # The envelope form says the same.
    envelope = b'{"function": "echo", "event": ' + sent + b"}"
    assert call(mode, "/invoke", envelope)[::2] == (200, want)
    # An empty body is the event {}, as Lambda treats an empty payload.
    assert call(mode, "/invoke/echo", b"")[::2] == (200, b"{}")
    # Numbers keep their shortest form both ways (0.1 stays 0.1).
    assert call(mode, "/invoke/echo", b"[0.1, 1e300, -0.0]")[::2] == (200, b"[0.1,1e+300,-0.0]")


def test_qualifiers(mode):
    assert call(mode, "/invoke/echo:$LATEST", b'{"q":1}')[::2] == (200, b'{"q":1}')
    got = normalized(*call(mode, "/invoke", b'{"function": "echo", "qualifier": "nope"}'))
    assert got == (404, error_body(
        "LambdaClientError",
        f"Function not found: arn:aws:lambda:{REGION}:{ACCOUNT}:function:echo:nope",
        "echo", awsErrorType="ResourceNotFoundException"))


def test_hello(mode):
    status, _, data = call(mode, "/invoke/hello", b'{"name": "Ada"}')
    assert status == 200
    assert json.loads(data) == {"statusCode": 200, "headers": {"content-type": "application/json"},
                                "body": '{"message":"Hello, Ada!"}'}


def test_fail_is_502_with_the_payload(mode):
    got = normalized(*call(mode, "/invoke/fail", b'{"type": "KeyError", "message": "no such order"}'))
    assert got == (502, error_body(
        "LambdaExecuteError", "KeyError: no such order", "fail",
        payload={"errorMessage": "no such order", "errorType": "KeyError", "requestId": "<id>",
                 "stackTrace": []}))


def test_unknown_function_is_404(mode):
    got = normalized(*call(mode, "/invoke/nope", b"{}"))
    assert got == (404, error_body(
        "LambdaClientError",
        f"Function not found: arn:aws:lambda:{REGION}:{ACCOUNT}:function:nope", "nope",
        awsErrorType="ResourceNotFoundException"))


def test_sleep_past_its_timeout_is_504(mode):
    t0 = time.monotonic()
    answer = call(mode, "/invoke/sleep", b'{"ms": 3000}')
    got = normalized(*answer)
    assert time.monotonic() - t0 < 2.5
    msg = "RequestId: <id> Error: Task timed out after 1.00 seconds"
    assert got == (504, error_body(
        "LambdaExecuteError", msg, "sleep", awsErrorType="Sandbox.Timedout",
        payload={"errorType": "Sandbox.Timedout", "errorMessage": msg}))


def test_async_is_202(mode):
    got = normalized(*call(mode, "/invoke-async/echo", b'{"later": true}'))
    assert got == (202, {"status": 202, "requestId": "<id>"})
    got = normalized(*call(mode, "/invoke-async", b'{"function": "sleep", "event": {"ms": 1}}'))
    assert got == (202, {"status": 202, "requestId": "<id>"})


def test_bad_json_is_400(mode):
    got = normalized(*call(mode, "/invoke/echo", b'{"a": '))
    assert got == (400, error_body("BadRequest", "Could not parse request body into json: "
                                   "unexpected token near end of file (line 1, column 6)", None))
    got = normalized(*call(mode, "/invoke", b'{"event": {}}'))
    assert got == (400, error_body("BadRequest", "missing 'function' in the envelope", None))


def announce_length(m, path, length):
    """Sends only the headers of a request announcing length body bytes (the gateway answers
    413 without reading the body); returns (status, headers, body) of the reply."""
    s = socket.create_connection((m.gw.host, m.gw.port))
    s.sendall(b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
              % (path.encode(), length))
    s.settimeout(10)
    reply = b""
    while b"\r\n\r\n" not in reply or len(reply.split(b"\r\n\r\n", 1)[1]) < int(
            re.search(rb"(?i)content-length: *(\d+)", reply).group(1)):
        chunk = s.recv(65536)
        if not chunk:
            break
        reply += chunk
    s.close()
    head, body = reply.split(b"\r\n\r\n", 1)
    lines = head.decode().split("\r\n")
    hdrs = {k.lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:])}
    return int(lines[0].split()[1]), hdrs, body


def test_too_large_is_413(mode):
    got = normalized(*announce_length(mode, "/invoke/echo", SYNC_MAX + 1))
    assert got == (413, error_body(
        "RequestTooLarge",
        "Request must be smaller than 6291456 bytes for the InvokeFunction operation", None))
    got = normalized(*announce_length(mode, "/invoke-async/echo", ASYNC_MAX + 1))
    assert got[0] == 413 and got[1]["error"]["type"] == "RequestTooLarge"
    assert "1048576" in got[1]["error"]["message"]
    # Just under the sync limit goes through, in both modes, all the way to the function.
    body = b"[" + b" " * (SYNC_MAX - 2) + b"]"
    assert call(mode, "/invoke/echo", body)[::2] == (200, b"[]")


def test_throttled_is_429(mode):
    holder = {}

    def hold():
        holder["answer"] = call(mode, "/invoke/single", json.dumps({"ms": HOLD_MS}).encode())

    t = threading.Thread(target=hold)
    t.start()
    # Wait until the holder runs and has the only slot of "single" (its log line says so).
    runner = mode.upstream or mode.gw
    assert wait_until(lambda: f"sleeping {HOLD_MS} ms" in runner.stderr(), timeout=10)
    t0 = time.monotonic()
    status, hdrs, data = call(mode, "/invoke/single", b'{"ms": 1}')
    waited = time.monotonic() - t0
    got = normalized(status, hdrs, data)
    assert got == (429, error_body(
        "LambdaClientError", "Rate Exceeded.", "single",
        awsErrorType="TooManyRequestsException",
        reason="ReservedFunctionConcurrentInvocationLimitExceeded"))
    assert hdrs["retry-after"] == "1"
    if mode.name == "local":
        assert waited < 1.0
    else:
        # Where the modes differ: the lambda dispatcher retries AWS's throttles (as the AWS SDKs
        # do), waiting the Retry-After (1 s) between attempts, and gives up after 4 attempts;
        # only then does the caller get the same 429. Local mode has nothing to retry against.
        assert 3.0 <= waited < HOLD_MS / 1000 - 0.5
    t.join()
    assert holder["answer"][::2] == (200, json.dumps({"slept": HOLD_MS}, separators=(",", ":")).encode())


# ---- where the modes differ on purpose ----


@pytest.mark.parametrize("name", ["local", "lambda"])
def test_sigterm_finishes_the_calls_in_flight(name):
    # In lambda mode the calls in flight are requests to Lambda that the HTTP threads' own
    # loops are waiting on: those loops must keep running through the drain until every
    # answer has come back and been passed on.
    m = Mode(name)
    try:
        with concurrent.futures.ThreadPoolExecutor(4) as ex:
            calls = [ex.submit(call, m, "/invoke/sleep", b'{"ms": 600}') for _ in range(4)]
            time.sleep(0.25)
            m.gw.send_signal(signal.SIGTERM)
            got = [c.result(timeout=10)[::2] for c in calls]
        assert got == [(200, b'{"slept":600}')] * 4
        assert m.gw.stop(timeout=10) == 0
        assert '"event":"shutdown"' in m.gw.stderr()
    finally:
        m.stop()


def test_lambda_mode_allow_list(mode):
    if mode.name == "local":
        # Local mode has no allow-list: it serves every loaded handler (config is one).
        status, _, data = call(mode, "/invoke/config", b'{"key": "x"}')
        assert (status, json.loads(data)) == (200, {"key": "x"})
        return
    # Lambda mode holds real credentials: a function outside the allow-list is refused with
    # 403 AccessDeniedException and never reaches AWS (here: the upstream never sees it).
    got = normalized(*call(mode, "/invoke/config", b'{"key": "x"}'))
    assert got == (403, error_body(
        "LambdaClientError", "function 'config' is not in the gateway's allow-list", "config",
        awsErrorType="AccessDeniedException"))
    assert "/functions/config/" not in mode.upstream.stderr()


# ---- lambda mode over TLS: what only TLS has ----


def tls_gateway(start_gateway, tmp, upstream_port, endpoint_host, ca, extra_env=None):
    env = {"AWS_ACCESS_KEY_ID": KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_REGION": REGION,
           "AWS_EC2_METADATA_DISABLED": "true", "HOME": tmp,
           "AWS_ENDPOINT_URL_LAMBDA": f"https://{endpoint_host}:{upstream_port}"}
    if ca:
        env["AWS_CA_BUNDLE"] = ca
    env.update(extra_env or {})
    return start_gateway(config={"mode": "lambda", "allow": ["echo"]}, env=env)


@pytest.fixture
def tls_upstream(tmp_path):
    upstream = Gateway(config={"access_keys": {KEY_ID: SECRET}})
    cert, key = make_cert(str(tmp_path))
    front = Helper("--upstream", str(upstream.port), "--cert", cert, "--key", key)
    yield upstream, front, cert
    front.stop()
    upstream.stop()


def test_tls_certificate_not_trusted_or_not_naming_the_host(start_gateway, tls_upstream,
                                                            tmp_path):
    upstream, front, cert = tls_upstream
    # Not in the trusted set (the system's store, no AWS_CA_BUNDLE): refused, not retried, and
    # the request never reaches the upstream.
    gw = tls_gateway(start_gateway, str(tmp_path), front.port, "localhost", None)
    status, _, data = gw.post("/invoke/echo", b'{"a":1}')
    err = json.loads(data)["error"]
    assert status == 502 and err["type"] == "LambdaClientError", data
    assert "certificate of localhost was not accepted" in err["message"], err
    # Trusted, but made for other names than the one connected to.
    other = tmp_path / "other"
    other.mkdir()
    ocert, okey = make_cert(str(other), "DNS:elsewhere.example")
    ofront = Helper("--upstream", str(upstream.port), "--cert", ocert, "--key", okey)
    try:
        gw2 = tls_gateway(start_gateway, str(tmp_path), ofront.port, "localhost", ocert)
        status, _, data = gw2.post("/invoke/echo", b'{"a":1}')
        err = json.loads(data)["error"]
        assert status == 502 and "was not accepted" in err["message"], data
        assert "hostname mismatch" in err["message"], err
    finally:
        ofront.stop()
    assert "/functions/echo/" not in upstream.stderr()
    # A CA bundle that is not there: the gateway refuses to start, naming it.
    err = start_fails({"mode": "lambda", "allow": ["echo"]},
                      {"AWS_ACCESS_KEY_ID": KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET,
                       "AWS_REGION": REGION, "AWS_CA_BUNDLE": "/nonexistent/ca.pem",
                       "AWS_ENDPOINT_URL_LAMBDA": "https://localhost:1"})
    assert "/nonexistent/ca.pem" in err and "AWS_CA_BUNDLE" in err, err


def test_tls_through_an_https_proxy_and_kept_alive(start_gateway, tls_upstream, tmp_path):
    upstream, front, cert = tls_upstream
    log = tmp_path / "proxy.log"
    proxy = Helper("--connect-proxy", "--log", str(log))
    try:
        gw = tls_gateway(start_gateway, str(tmp_path), front.port, "localhost", cert,
                         {"https_proxy": f"http://127.0.0.1:{proxy.port}",
                          "http_proxy": "http://127.0.0.1:1",  # not the one for https
                          "LGW_HTTP_THREADS": "1"})  # one thread: one pool of connections
        for i in range(5):
            status, _, data = gw.post("/invoke/echo", json.dumps({"i": i}).encode())
            assert (status, json.loads(data)) == (200, {"i": i})
        # One tunnel to the endpoint's host and port carried all five calls (kept alive).
        assert log.read_text().splitlines() == [f"CONNECT localhost:{front.port}"]
        assert upstream.stderr().count('"path":"/2015-03-31/functions/echo/') == 5
    finally:
        proxy.stop()


def test_plain_http_endpoint_through_http_proxy(start_gateway, tmp_path):
    # An http:// endpoint goes through the proxy http_proxy names, as a CONNECT tunnel (the
    # gateway writes its own requests through it), and NO_PROXY can exempt it.
    upstream = Gateway(config={"access_keys": {KEY_ID: SECRET}})
    log = tmp_path / "proxy.log"
    proxy = Helper("--connect-proxy", "--log", str(log))
    try:
        env = {"AWS_ACCESS_KEY_ID": KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET,
               "AWS_REGION": REGION, "AWS_EC2_METADATA_DISABLED": "true", "HOME": str(tmp_path),
               "AWS_ENDPOINT_URL_LAMBDA": f"http://127.0.0.1:{upstream.port}",
               "http_proxy": f"http://127.0.0.1:{proxy.port}",
               "https_proxy": "http://127.0.0.1:1",  # not the one for http
               "LGW_HTTP_THREADS": "1"}
        gw = start_gateway(config={"mode": "lambda", "allow": ["echo"]}, env=env)
        for i in range(3):
            status, _, data = gw.post("/invoke/echo", json.dumps({"i": i}).encode())
            assert (status, json.loads(data)) == (200, {"i": i})
        assert log.read_text().splitlines() == [f"CONNECT 127.0.0.1:{upstream.port}"]
        gw2 = start_gateway(config={"mode": "lambda", "allow": ["echo"]},
                            env=dict(env, NO_PROXY="127.0.0.1"))
        status, _, data = gw2.post("/invoke/echo", b'{"direct":true}')
        assert (status, json.loads(data)) == (200, {"direct": True})
        assert len(log.read_text().splitlines()) == 1  # not through the proxy
    finally:
        proxy.stop()
        upstream.stop()


# ---- lambda mode start-up: no local counterpart ----


def start_fails(config, env, args=()):
    """Runs the gateway expecting it to refuse to start; returns its stderr."""
    with tempfile.TemporaryDirectory(prefix="lgw-one-") as tmp:
        path = os.path.join(tmp, "config.json")
        with open(path, "w") as f:
            json.dump(config, f)
        full_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": tmp,
                    "AWS_EC2_METADATA_DISABLED": "true"}
        full_env.update(env)
        p = subprocess.run([BIN, "--listen", "127.0.0.1:0", "--config", path, *args],
                           env=full_env, capture_output=True, timeout=30)
        assert p.returncode != 0 and p.stdout == b""
        return p.stderr.decode()


def test_lambda_mode_refuses_to_start_without_what_it_needs():
    creds = {"AWS_ACCESS_KEY_ID": KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET}
    # No allow-list and no --allow-any-function: it would be an open proxy into the account.
    err = start_fails({"mode": "lambda"}, dict(creds, AWS_REGION=REGION))
    assert "no allow-list" in err and "--allow-any-function" in err
    err = start_fails({"mode": "lambda", "allow": ["echo"]}, creds)
    assert "no AWS region" in err
    err = start_fails({"mode": "lambda", "allow": ["echo"]}, {"AWS_REGION": REGION})
    assert "no AWS credentials found" in err
    bad = {"mode": "lambda", "allow": ["orders"],
           "functions": {"orders": {"target": "arn:aws:lambda:us-east-1:12:function:x"}}}
    err = start_fails(bad, dict(creds, AWS_REGION=REGION))
    assert "function 'orders': target" in err
    # Nothing secret is echoed back.
    assert SECRET not in err


def test_lambda_mode_allow_any_and_region_precedence(start_gateway):
    upstream = start_gateway(config={"access_keys": {KEY_ID: SECRET}})
    env = {"AWS_ACCESS_KEY_ID": KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_REGION": REGION,
           "AWS_ENDPOINT_URL_LAMBDA": f"http://127.0.0.1:{upstream.port}",
           "AWS_EC2_METADATA_DISABLED": "true", "HOME": upstream.tmp.name}
    g = start_gateway(args=("--allow-any-function",), config={"mode": "lambda"}, env=env)
    assert '"--allow-any-function: callers may invoke every function' in g.stderr()
    assert g.post("/invoke/hello", b'{"name": "any"}')[0] == 200
    assert g.post("/invoke/config", b'{"key": "k"}')[::2] == (200, b'{"key":"k"}')
    # The gateway's own region setting (config file or LGW_REGION) wins over AWS_REGION: the
    # calls are then signed for eu-west-1, which the upstream (us-east-1) refuses.
    g2 = start_gateway(args=("--allow-any-function",), config={"mode": "lambda"},
                       env=dict(env, LGW_REGION="eu-west-1"))
    status, _, data = g2.post("/invoke/hello", b"{}")
    err = json.loads(data)["error"]
    assert (status, err["type"], err["awsErrorType"]) == (
        502, "LambdaClientError", "InvalidSignatureException")
    assert SECRET not in data.decode()

#!/usr/bin/python3
"""fake_lambda.py - a scripted AWS Lambda Invoke API on 127.0.0.1 for the lambda dispatcher's
unit tests (tests/unit/test_lambda.c starts it).

Every Invoke request's SigV4 signature is checked with botocore's own signer (SigV4Auth, from
Debian's python3-botocore), independently of the gateway's C signer: the canonical request is
rebuilt from what arrived on the wire (raw path, query, the headers named in SignedHeaders, the
body) and signed again with the secret the test shares with us. A request that does not check
out gets AWS's 403 InvalidSignatureException and is counted in bad_signatures.

The function name picks the scripted answer (see SCENARIOS below). The h1-* scenarios write their
answers on the socket themselves (chunked, close-delimited, byte by byte, after a 100 Continue, cut
short, not at all) or close the connection behind a kept-alive answer, for the dispatcher's own
HTTP/1.1 client; two of them read the request body their own way (BODY_READERS).
Control endpoints, not signed:
  GET /_stats   {"total": n, "bad_signatures": n, "connections": n (that carried Invoke
                 calls), "requests": {name: n},
                 "last": {name: {what the last request to it carried}}, "bad": [reasons]}
  POST /_reset  zeroes everything.

Usage: fake_lambda.py --access-key AK --secret SK [--token T] [--region us-east-1]
Prints "PORT <n>" on stdout once listening; exits on SIGTERM or when stdin closes.
"""
import argparse
import base64
import hmac
import io
import json
import os
import re
import select
import signal
import socket
import struct
import threading
import time
import uuid
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, unquote, urlsplit

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

AUTH_RE = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([a-z0-9-]+)/([a-z0-9]+)/aws4_request, "
    r"SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})$")
PATH_RE = re.compile(r"^/2015-03-31/functions/([^/?]+)/invocations$")
ARN_RE = re.compile(r"^(?:arn:aws[a-z-]*:lambda:([a-z0-9-]+):)?(\d{12}):function:"
                    r"([A-Za-z0-9_-]+)(?::([A-Za-z0-9_$-]+))?$")

ARGS = None
LOCK = threading.Lock()
STATE = {}


def reset():
    with LOCK:
        STATE.clear()
        STATE.update(total=0, bad_signatures=0, connections=0, requests={}, last={}, bad=[])


class OnlySigned(SigV4Auth):
    """botocore's signer, restricted to the headers the request says it signed."""

    def __init__(self, creds, region, names):
        super().__init__(creds, "lambda", region)
        self.names = names

    def headers_to_sign(self, request):
        hm = super().headers_to_sign(request)
        for name in list(hm.keys()):
            if name not in self.names:
                del hm[name]
        return hm


def verify(handler, body, region):
    """Returns None when the signature checks out, else the reason."""
    h = handler.headers
    auth = h.get("Authorization", "")
    m = AUTH_RE.match(auth)
    if not m:
        return "no or malformed Authorization header"
    akid, date, scope_region, service, signed, sig = m.groups()
    names = signed.split(";")
    if akid != ARGS.access_key:
        return "unknown access key"
    if service != "lambda" or scope_region != region:
        return f"scope {scope_region}/{service}, expected {region}/lambda"
    amz_date = h.get("X-Amz-Date", "")
    if not amz_date.startswith(date):
        return "X-Amz-Date does not match the credential scope date"
    when = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
    if abs((datetime.now(timezone.utc) - when).total_seconds()) > 300:
        return "X-Amz-Date too far from now"
    if "host" not in names:
        return "host is not signed"
    for required in ("content-type", "x-amz-date", "x-amz-invocation-type"):
        if required not in names:
            return f"{required} is not signed"
    if ARGS.token:
        if h.get("X-Amz-Security-Token") != ARGS.token:
            return "wrong or missing X-Amz-Security-Token"
        if "x-amz-security-token" not in names:
            return "the session token is not signed"
    for optional in ("x-amz-log-type", "x-amz-client-context"):
        if optional in {k.lower() for k in h.keys()} and optional not in names:
            return f"{optional} is sent but not signed"
    headers = {}
    for name in names:
        values = h.get_all(name)
        if not values:
            return f"signed header {name} is missing"
        headers[name] = ",".join(v.strip() for v in values)
    req = AWSRequest(method=handler.command, url="http://" + h["Host"] + handler.path,
                     data=body, headers=headers)
    req.context["timestamp"] = amz_date
    signer = OnlySigned(Credentials(akid, ARGS.secret, ARGS.token or None), region, names)
    canonical = signer.canonical_request(req)
    expected = signer.signature(signer.string_to_sign(req, canonical), req)
    if not hmac.compare_digest(expected, sig):
        return "signature mismatch; botocore's canonical request:\n" + canonical
    return None


def error(handler, status, etype, message, extra=None, headers=None, type_suffix=True):
    body = {"Type": "User", "message": message}
    body.update(extra or {})
    hdrs = {"x-amzn-ErrorType": etype + (
        ":http://internal.amazon.com/coral/com.amazonaws.awslambda/" if type_suffix else "")}
    hdrs.update(headers or {})
    handler.answer(status, json.dumps(body).encode(), hdrs)


def arn(region, name):
    return f"arn:aws:lambda:{region}:123456789012:function:{name}"


def nth(name):
    """1-based count of requests to name, this one included."""
    with LOCK:
        return STATE["requests"].get(name, 0)


# name -> function(handler, ctx) where ctx has name, qualifier, itype, body, rid, region
def sc_echo(hd, ctx):
    hd.success(ctx, ctx["body"])


def sc_inspect(hd, ctx):
    h = hd.headers
    cc = h.get("X-Amz-Client-Context")
    info = {
        "invocationType": h.get("X-Amz-Invocation-Type"),
        "logType": h.get("X-Amz-Log-Type"),
        "clientContext": json.loads(base64.b64decode(cc)) if cc else None,
        "qualifier": ctx["qualifier"],
        "rawPath": hd.path,
        "contentType": h.get("Content-Type"),
        "body": ctx["body"].decode(),
        "region": ctx["region"],
        "token": h.get("X-Amz-Security-Token") is not None,
        "expect": h.get("Expect"),
    }
    hd.success(ctx, json.dumps(info).encode())


def sc_missing(hd, ctx):
    error(hd, 404, "ResourceNotFoundException",
          "Function not found: " + arn(ctx["region"], ctx["name"]))


def sc_throttle_once(hd, ctx):
    if nth(ctx["name"]) == 1:
        error(hd, 429, "TooManyRequestsException", "Rate Exceeded.",
              {"Reason": "ReservedFunctionConcurrentInvocationLimitExceeded"},
              {"Retry-After": "1"})
    else:
        hd.success(ctx, ctx["body"])


def sc_throttle_long(hd, ctx):
    error(hd, 429, "TooManyRequestsException", "Rate Exceeded.",
          {"Reason": "CallerRateLimitExceeded"}, {"Retry-After": "60"})


def sc_throttle_always(hd, ctx):
    error(hd, 429, "TooManyRequestsException", "Rate Exceeded.",
          {"Reason": "ConcurrentInvocationLimitExceeded"})


def sc_flaky500(hd, ctx):
    if nth(ctx["name"]) == 1:
        error(hd, 500, "ServiceException", "Internal error, please retry")
    else:
        hd.success(ctx, ctx["body"])


def sc_down500(hd, ctx):
    error(hd, 500, "ServiceException", "Internal error, please retry")


def sc_ran502(hd, ctx):
    # A 5xx that says the function ran (an executed version): must not be retried.
    error(hd, 502, "ServiceException", "the runtime failed after the function ran",
          headers={"X-Amz-Executed-Version": "$LATEST"})


def sc_fnerror(hd, ctx):
    payload = {"errorMessage": "boom", "errorType": "ValueError", "requestId": ctx["rid"],
               "stackTrace": []}
    hd.answer(200, json.dumps(payload).encode(),
              {"X-Amz-Function-Error": "Unhandled", "X-Amz-Executed-Version": "$LATEST"},
              ctx["rid"])


def sc_fntimeout(hd, ctx):
    payload = {"errorType": "Sandbox.Timedout",
               "errorMessage": f"RequestId: {ctx['rid']} Error: Task timed out after 1.00 seconds"}
    hd.answer(200, json.dumps(payload).encode(),
              {"X-Amz-Function-Error": "Unhandled", "X-Amz-Executed-Version": "$LATEST"},
              ctx["rid"])


def sc_slow(hd, ctx):
    time.sleep(2.0)
    hd.success(ctx, ctx["body"])


def sc_sleepy(hd, ctx):
    time.sleep(0.3)
    hd.success(ctx, ctx["body"])


def sc_badjson_error(hd, ctx):
    hd.answer(200, b"this is not json", {"X-Amz-Function-Error": "Unhandled"}, ctx["rid"])


def sc_garbage(hd, ctx):
    hd.wfile.write(b"GARBAGE GARBAGE\r\n\r\n")
    hd.wfile.flush()
    hd.close_connection = True


def sc_wrongstatus(hd, ctx):
    hd.answer(202, b"", {}, ctx["rid"])


def sc_badheader(hd, ctx):
    hd.answer(200, b"{}", {"X-Amz-Executed-Version": "not a version!"}, ctx["rid"])


def sc_longversion(hd, ctx):
    hd.answer(200, b"{}", {"X-Amz-Executed-Version": "1" * 200}, ctx["rid"])


def sc_huge(hd, ctx):
    # One byte over what the dispatcher reads (LGW_RESPONSE_MAX + 65536).
    hd.answer(200, b"[" + b"0" * (6291556 + 65536 - 1) + b"]", {}, ctx["rid"])


def sc_denied(hd, ctx):
    error(hd, 403, "AccessDeniedException", "User is not authorized to perform "
          "lambda:InvokeFunction on resource " + arn(ctx["region"], ctx["name"]))


def sc_badcontent(hd, ctx):
    error(hd, 400, "InvalidRequestContentException",
          "Could not parse request body into json: Unexpected character")


def sc_toolarge(hd, ctx):
    error(hd, 413, "RequestTooLargeException",
          "Request must be smaller than 6291456 bytes for the InvokeFunction operation")


def sc_conflict(hd, ctx):
    error(hd, 409, "ResourceConflictException", "The operation cannot be performed at this time.")


def sc_typeinbody(hd, ctx):
    body = {"__type": "com.amazonaws.lambda#ResourceNotFoundException", "Message": "no such"}
    hd.answer(404, json.dumps(body).encode(), {}, ctx["rid"])


# ---- h1-*: answers written on the socket as they are, for the dispatcher's HTTP/1.1 client ----

def head(ctx, status="200 OK", length=None, chunked=False):
    """A final answer's status line and headers: Content-Length when length is given,
    Transfer-Encoding: chunked when chunked, else neither (the body runs to the close)."""
    lines = [f"HTTP/1.1 {status}", "Content-Type: application/json",
             f"x-amzn-RequestId: {ctx['rid']}", "X-Amz-Executed-Version: $LATEST"]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    if chunked:
        lines.append("Transfer-Encoding: chunked")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def cut(data, sizes):
    """data in consecutive pieces whose sizes cycle through sizes."""
    out, i, k = [], 0, 0
    while i < len(data):
        out.append(data[i:i + sizes[k % len(sizes)]])
        i += sizes[k % len(sizes)]
        k += 1
    return out


def send_pieces(hd, pieces, pause):
    """Each piece in a send of its own (no Nagle: each leaves as its own segment), with a pause
    between them, so the client reads the answer in those pieces."""
    hd.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for i, piece in enumerate(pieces):
        if i and pause:
            time.sleep(pause)
        hd.wfile.write(piece)
        hd.wfile.flush()


def sc_h1_chunked(hd, ctx):
    # The echo, chunked: chunks of 1 byte to over 32 KiB, sizes in lower and upper case hex,
    # one with an extension, each size line, data and CRLF sent apart, then a trailer.
    pieces = [head(ctx, chunked=True)]
    for j, c in enumerate(cut(ctx["body"], [1, 7, 100, 4096, 32768 + 3, 999, 0xABC])):
        size = f"{len(c):x}" if j % 2 else f"{len(c):X}"
        pieces += [(size + (';note="x"' if j == 3 else "") + "\r\n").encode(), c, b"\r\n"]
    pieces += [b"0\r\n", b"X-Trailer: done\r\n", b"\r\n"]
    send_pieces(hd, pieces, 0.002)


def sc_h1_eof(hd, ctx):
    # HTTP/1.1 with neither Content-Length nor chunked: the body ends with the connection.
    body = ctx["body"]
    send_pieces(hd, [head(ctx), body[:len(body) // 2], body[len(body) // 2:]], 0.01)
    hd.close_connection = True


def sc_h1_trickle(hd, ctx):
    # The echo, status line, headers and body alike, one byte per send.
    data = head(ctx, length=len(ctx["body"])) + ctx["body"]
    send_pieces(hd, cut(data, [1]), 0.0005)


def sc_h1_trickle_chunked(hd, ctx):
    # The echo, chunked, in sends of 1, 2 and 3 bytes (so size lines and CRLFs are split too).
    data = head(ctx, chunked=True) + b"".join(
        f"{len(c):x}\r\n".encode() + c + b"\r\n" for c in cut(ctx["body"], [5, 1, 17])) + \
        b"0\r\n\r\n"
    send_pieces(hd, cut(data, [1, 2, 3]), 0.0005)


def sc_h1_continue(hd, ctx):
    # Two interim answers, with headers that must not count (a function error, a version),
    # then the echo.
    send_pieces(hd, [b"HTTP/1.1 100 Continue\r\nX-Amz-Function-Error: Unhandled\r\n"
                     b"X-Amz-Executed-Version: 99\r\n\r\n",
                     b"HTTP/1.1 103 Early Hints\r\nLink: </x>; rel=preload\r\n\r\n",
                     head(ctx, length=len(ctx["body"])) + ctx["body"]], 0.02)


def wait_for_next_request(hd):
    """Until the client sends something more on this connection (2 s at most)."""
    select.select([hd.connection], [], [], 2.0)


def sc_h1_stale_close(hd, ctx):
    # A normal answer that keeps the connection (no Connection: close), then the close.
    hd.success(ctx, ctx["body"])
    hd.close_connection = True


def sc_h1_stale_fin(hd, ctx):
    # A normal answer that keeps the connection; when the next request arrives, it is read and
    # dropped and the connection closed (a FIN), as by a server closing it as idle just then.
    hd.success(ctx, ctx["body"])
    wait_for_next_request(hd)
    hd.connection.setblocking(False)
    try:
        while hd.connection.recv(65536):
            pass
    except OSError:
        pass
    hd.connection.shutdown(socket.SHUT_RDWR)
    hd.close_connection = True


def sc_h1_stale_rst(hd, ctx):
    # The same, but the connection is reset (the next request unread, SO_LINGER 0).
    hd.success(ctx, ctx["body"])
    wait_for_next_request(hd)
    hd.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    hd.connection.close()  # takes effect once the handler lets go of rfile and wfile
    hd.close_connection = True


def sc_h1_hangup(hd, ctx):
    # The request is read, nothing is answered, the connection is closed.
    hd.close_connection = True


def sc_h1_short(hd, ctx):
    # Content-Length: 100, 10 bytes of body, the close.
    send_pieces(hd, [head(ctx, length=100) + b'{"cut": 12'], 0)
    hd.close_connection = True


def sc_h1_short_chunked(hd, ctx):
    # A chunk of 0x64 bytes, 10 of them, the close.
    send_pieces(hd, [head(ctx, chunked=True) + b'64\r\n{"cut": 12'], 0)
    hd.close_connection = True


def sc_h1_short_head(hd, ctx):
    # The close in the middle of the headers.
    send_pieces(hd, [b"HTTP/1.1 200 OK\r\nContent-Type: appli"], 0)
    hd.close_connection = True


def sc_h1_early(hd, ctx):
    pass  # answered by read_after_answering, before the body was read


def read_body(hd, n):
    return hd.rfile.read(n) if n else b""


def read_slowly(hd, n):
    """The body in 16 KiB reads with pauses: a large one then fills the sender's socket
    buffer over and over, so it must wait for room many times."""
    parts, got = [], 0
    while got < n:
        b = hd.rfile.read(min(16384, n - got))
        if not b:
            break
        parts.append(b)
        got += len(b)
        time.sleep(0.001)
    return b"".join(parts)


def read_after_answering(hd, n):
    """413 at once, before the body was read (as a front end may answer), keeping the
    connection; the body is read after a pause, and the connection then carries the next
    request as usual."""
    error(hd, 413, "RequestTooLargeException",
          "Request must be smaller than 6291456 bytes for the InvokeFunction operation")
    time.sleep(0.3)
    return read_body(hd, n)


def answer_then_reset(hd, n):
    """413 with Connection: close at once, before the body was read, then the connection reset
    (SO_LINGER 0, the body unread): the client's next write fails, while the answer waits in
    its socket to be read."""
    # No Nagle: the body must leave before the reset (which drops what was not sent yet).
    hd.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    error(hd, 413, "RequestTooLargeException",
          "Request must be smaller than 6291456 bytes for the InvokeFunction operation",
          headers={"Connection": "close"})
    hd.wfile.flush()
    hd.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    hd.rfile.close()
    hd.wfile.close()
    hd.connection.close()  # the last reference: the reset goes now
    hd.rfile, hd.wfile = io.BytesIO(), io.BytesIO()  # for what the handler does afterwards
    return b""


BODY_READERS = {"h1-slowread": read_slowly, "h1-early": read_after_answering,
                "h1-early-rst": answer_then_reset}


SCENARIOS = {
    "echo": sc_echo, "inspect": sc_inspect, "missing": sc_missing,
    "throttle-once": sc_throttle_once, "throttle-long": sc_throttle_long,
    "throttle-always": sc_throttle_always, "flaky500": sc_flaky500, "down500": sc_down500,
    "ran502": sc_ran502, "fnerror": sc_fnerror, "fntimeout": sc_fntimeout, "slow": sc_slow,
    "sleepy": sc_sleepy, "badjson-error": sc_badjson_error, "garbage": sc_garbage,
    "wrongstatus": sc_wrongstatus, "badheader": sc_badheader, "huge": sc_huge,
    "longversion": sc_longversion,
    "denied": sc_denied, "badcontent": sc_badcontent, "toolarge": sc_toolarge,
    "conflict": sc_conflict, "typeinbody": sc_typeinbody,
    "h1-chunked": sc_h1_chunked, "h1-eof": sc_h1_eof, "h1-trickle": sc_h1_trickle,
    "h1-trickle-chunked": sc_h1_trickle_chunked, "h1-continue": sc_h1_continue,
    "h1-stale-close": sc_h1_stale_close, "h1-stale-fin": sc_h1_stale_fin,
    "h1-stale-rst": sc_h1_stale_rst, "h1-hangup": sc_h1_hangup, "h1-short": sc_h1_short,
    "h1-short-chunked": sc_h1_short_chunked, "h1-short-head": sc_h1_short_head,
    "h1-slowread": sc_echo, "h1-early": sc_h1_early, "h1-early-rst": sc_h1_early,
}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def setup(self):
        super().setup()
        self.counted = False

    def answer(self, status, body, headers=None, rid=None):
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-amzn-RequestId", rid or str(uuid.uuid4()))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def success(self, ctx, payload):
        itype = ctx["itype"]
        if itype == "Event":
            self.answer(202, b"", {}, ctx["rid"])
        elif itype == "DryRun":
            self.answer(204, b"", {}, ctx["rid"])
        else:
            hdrs = {"X-Amz-Executed-Version": ctx["qualifier"] or "$LATEST"}
            if self.headers.get("X-Amz-Log-Type") == "Tail":
                log = f"START RequestId: {ctx['rid']}\nEND RequestId: {ctx['rid']}\n"
                hdrs["X-Amz-Log-Result"] = base64.b64encode(log.encode()).decode()
            self.answer(200, payload, hdrs, ctx["rid"])

    def do_GET(self):
        if self.path == "/_stats":
            with LOCK:
                body = json.dumps(STATE).encode()
            self.answer(200, body)
        else:
            self.answer(404, b"{}")

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        parts = urlsplit(self.path)
        m = PATH_RE.match(parts.path)
        if self.path == "/_reset" or not m:
            read_body(self, n)
            if self.path == "/_reset":
                reset()
                self.answer(200, b"{}")
            else:
                self.answer(404, b'{"message":"unknown path"}')
            return
        fname = unquote(m.group(1))
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        qualifier = query.get("Qualifier")
        region = ARGS.region
        am = ARN_RE.match(fname)
        if am:
            arn_region, _, name, q = am.groups()
            region = arn_region or region
            qualifier = qualifier or q
        else:
            name = fname
        rid = str(uuid.uuid4())
        # Counted before the body is read: a request whose body never arrives whole counts too.
        with LOCK:
            if not self.counted:  # connections that carried Invoke calls (not /_stats)
                self.counted = True
                STATE["connections"] += 1
            STATE["total"] += 1
            STATE["requests"][name] = STATE["requests"].get(name, 0) + 1
            last = STATE["last"][name] = {
                "invocationType": self.headers.get("X-Amz-Invocation-Type"),
                "qualifier": qualifier, "rawPath": self.path, "region": region,
                "bodyLength": 0, "requestId": rid,
            }
        try:
            body = BODY_READERS.get(name, read_body)(self, n)
        except OSError:
            body = b""
        with LOCK:
            last["bodyLength"] = len(body)
        if len(body) < n:  # the client closed the connection in the middle of the body
            self.close_connection = True
            return
        why = verify(self, body, region)
        if why:
            with LOCK:
                STATE["bad_signatures"] += 1
                STATE["bad"].append(why)
            error(self, 403, "InvalidSignatureException",
                  "The request signature we calculated does not match the signature you "
                  "provided.")
            return
        ctx = {"name": name, "qualifier": qualifier, "itype":
               self.headers.get("X-Amz-Invocation-Type", "RequestResponse"), "body": body,
               "rid": rid, "region": region}
        SCENARIOS.get(name, sc_missing)(self, ctx)


def main():
    global ARGS
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--access-key", required=True)
    p.add_argument("--secret", required=True)
    p.add_argument("--token", default="")
    p.add_argument("--region", default="us-east-1")
    ARGS = p.parse_args()
    reset()
    ThreadingHTTPServer.request_queue_size = 128  # tests open dozens of connections at once
    srv = ThreadingHTTPServer(("127.0.0.1", ARGS.port), Handler)
    srv.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=srv.shutdown).start())

    def watch_stdin():
        # The test holds our stdin open; when it exits (even by crashing) we go too.
        while os.read(0, 4096):
            pass
        srv.shutdown()

    threading.Thread(target=watch_stdin, daemon=True).start()
    print(f"PORT {srv.server_address[1]}", flush=True)
    srv.serve_forever(poll_interval=0.1)


if __name__ == "__main__":
    main()

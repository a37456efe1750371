"""The gateway face in local mode, driven over HTTP against the real binary: every endpoint, every
error row of DESIGN.md that local mode can produce, concurrency, drain on SIGTERM, plugins,
configuration errors, and bad input of every kind."""
import concurrent.futures
import json
import os
import signal
import socket
import subprocess
import time

import pytest

from conftest import BIN, PLUGIN_DIR, Gateway, wait_until

PLUGIN = os.path.join(PLUGIN_DIR, "libtestplugin.so")
SYNC_MAX = 6291456
ASYNC_MAX = 1048576


def error_of(gw, status, data, hdrs):
    body = json.loads(data)
    assert set(body) == {"error"}
    err = body["error"]
    assert err["requestId"] == hdrs["x-request-id"]
    assert hdrs["content-type"] == "application/json"
    return err


# ---- success paths ----

def test_invoke_by_path_returns_the_result(gw):
    status, hdrs, data = gw.post("/invoke/echo", b'{"a":1,"b":[0.1,"x"]}')
    assert status == 200
    assert data == b'{"a":1,"b":[0.1,"x"]}'
    assert hdrs["content-type"] == "application/json"
    assert len(hdrs["x-request-id"]) == 36


def test_invoke_envelope(gw):
    status, _, body = gw.post_json("/invoke", {"function": "hello", "event": {"name": "Ann"}})
    assert status == 200
    assert body["statusCode"] == 200
    assert json.loads(body["body"]) == {"message": "Hello, Ann!"}


def test_envelope_without_event_sends_empty_object(gw):
    status, _, body = gw.post_json("/invoke", {"function": "echo"})
    assert (status, body) == (200, {})


def test_empty_body_is_empty_object(gw):
    status, _, data = gw.post("/invoke/echo", b"")
    assert (status, data) == (200, b"{}")


def test_any_json_value_is_an_event(gw):
    assert gw.post("/invoke/echo", b'"just a string"')[2] == b'"just a string"'
    assert gw.post("/invoke/echo", b"42")[2] == b"42"
    assert gw.post("/invoke/echo", b"null")[2] == b"null"


def test_config_handler_reads_process_environment(start_gateway):
    g = start_gateway(env={"LGW_TEST_GREETING": "hi there"})
    status, _, body = g.post_json("/invoke/config", {"key": "LGW_TEST_GREETING"})
    assert (status, body) == (200, {"key": "LGW_TEST_GREETING", "value": "hi there"})


def test_function_environment_beats_process_environment(start_gateway):
    g = start_gateway(config={"functions": {"config": {"environment": {"COLOR": "blue"}}}},
                      env={"COLOR": "red"})
    assert g.post_json("/invoke/config", {"key": "COLOR"})[2]["value"] == "blue"


def test_qualified_names_and_arns(start_gateway):
    g = start_gateway(config={"functions": {"orders": {"handler": "echo", "aliases": ["live"]}}})
    assert g.post("/invoke/orders:live", b"{}")[0] == 200
    assert g.post("/invoke/orders:$LATEST", b"{}")[0] == 200
    arn = "arn:aws:lambda:us-east-1:000000000000:function:orders:live"
    assert g.post("/invoke/" + arn, b'{"x":1}')[2] == b'{"x":1}'
    assert g.post_json("/invoke", {"function": "orders", "qualifier": "live"})[0] == 200
    status, hdrs, data = g.post("/invoke/orders:dev", b"{}")
    err = error_of(g, status, data, hdrs)
    assert status == 404
    assert err["message"] == ("Function not found: "
                              "arn:aws:lambda:us-east-1:000000000000:function:orders:dev")


def test_async_accepted_and_runs(start_gateway, tmp_path):
    g = start_gateway(args=["--handlers", PLUGIN])
    out = tmp_path / "ran.txt"
    status, hdrs, body = g.post_json("/invoke-async/record", {"file": str(out), "text": "one"})
    assert status == 202
    assert body == {"status": 202, "requestId": hdrs["x-request-id"]}
    status, _, body = g.post_json("/invoke-async", {"function": "record",
                                                    "event": {"file": str(out), "text": "two"}})
    assert status == 202
    assert wait_until(lambda: out.exists() and sorted(out.read_text().split()) == ["one", "two"])


def test_healthz_and_metrics(gw):
    status, _, body = gw.post_json("/invoke/echo", {})
    status, _, body = gw.request("GET", "/healthz")
    health = json.loads(body)
    assert status == 200
    assert health["status"] == "ok" and health["mode"] == "local"
    assert {"echo", "hello", "fail", "sleep", "config"} <= set(health["functions"])
    status, hdrs, body = gw.request("GET", "/metrics")
    assert status == 200
    assert hdrs["content-type"].startswith("text/plain")
    text = body.decode()
    assert "# TYPE lgw_http_requests_total counter" in text
    line = [l for l in text.splitlines()
            if l.startswith('lgw_http_requests_total{face="gateway",code="2xx"}')][0]
    assert int(line.split()[-1]) >= 1
    assert gw.request("HEAD", "/healthz")[0] == 200


def test_banner_lists_functions(gw):
    assert "(local mode)" in gw.banner
    for f in ("echo", "hello", "fail", "sleep", "config"):
        assert f in gw.banner


def test_access_log_line_per_request(start_gateway):
    g = start_gateway()
    g.post("/invoke/echo", b"{}")
    g.request("GET", "/nowhere")
    g.stop()
    lines = [json.loads(l) for l in g.stderr().splitlines() if l.startswith('{"time"')]
    echo = [l for l in lines if l["path"] == "/invoke/echo"][0]
    assert echo["method"] == "POST" and echo["function"] == "echo" and echo["status"] == 200
    assert len(echo["requestId"]) == 36 and echo["durationMs"] >= 0
    assert [l for l in lines if l["path"] == "/nowhere"][0]["status"] == 404


# ---- every error row local mode can produce ----

@pytest.mark.parametrize("body,needle", [
    (b"{bad", "Could not parse request body into json"),
    (b'{"a":1', "Could not parse request body into json"),
    (b"\xff\xfe", "Could not parse request body into json"),
])
def test_malformed_json_is_400(gw, body, needle):
    status, hdrs, data = gw.post("/invoke/echo", body)
    err = error_of(gw, status, data, hdrs)
    assert status == 400 and err["type"] == "BadRequest" and needle in err["message"]


@pytest.mark.parametrize("envelope,needle", [
    ([1, 2], "must be a JSON object"),
    (b'"echo"', "must be a JSON object"),
    ({"event": {}}, "missing 'function'"),
    ({"function": 7}, "'function' must be a string"),
    ({"function": "has space"}, "functionName"),
    ({"function": "a" * 65}, "functionName"),
    ({"function": "x" * 300}, "256"),
    ({"function": "echo", "extra": 1}, "unknown key 'extra'"),
    ({"function": "echo", "qualifier": "a.b"}, "qualifier"),
])
def test_bad_envelope_is_400(gw, envelope, needle):
    status, hdrs, data = gw.post("/invoke", envelope)
    err = error_of(gw, status, data, hdrs)
    assert status == 400, data
    assert err["type"] == "BadRequest"
    assert needle in err["message"], err["message"]


@pytest.mark.parametrize("name", ["bad.name", "a%20b", "x" * 65, "y" * 257, "echo:bad.q"])
def test_bad_name_in_path_is_400(gw, name):
    status, hdrs, data = gw.post("/invoke/" + name, b"{}")
    assert status == 400
    assert error_of(gw, status, data, hdrs)["type"] == "BadRequest"


def test_unknown_function_is_404(gw):
    status, hdrs, data = gw.post("/invoke/nope", b"{}")
    err = error_of(gw, status, data, hdrs)
    assert status == 404
    assert err == {"type": "LambdaClientError", "awsErrorType": "ResourceNotFoundException",
                   "function": "nope", "requestId": hdrs["x-request-id"],
                   "message": "Function not found: "
                              "arn:aws:lambda:us-east-1:000000000000:function:nope"}
    assert gw.post("/invoke-async/nope", b"{}")[0] == 404


def test_unknown_route_and_wrong_method(gw):
    status, hdrs, data = gw.request("GET", "/nowhere")
    assert status == 404 and error_of(gw, status, data, hdrs)["type"] == "NotFound"
    status, hdrs, data = gw.request("GET", "/invoke/echo")
    assert status == 405 and hdrs["allow"] == "POST"
    assert error_of(gw, status, data, hdrs)["type"] == "MethodNotAllowed"
    status, hdrs, _ = gw.request("DELETE", "/healthz")
    assert status == 405 and hdrs["allow"] == "GET, HEAD"


def test_function_error_is_502_with_payload(gw):
    status, hdrs, data = gw.post("/invoke/fail", {"message": "bad order"})
    err = error_of(gw, status, data, hdrs)
    assert status == 502
    assert err["type"] == "LambdaExecuteError" and err["function"] == "fail"
    assert err["payload"]["errorType"] == "ValueError"
    assert err["payload"]["errorMessage"] == "bad order"
    assert err["payload"]["requestId"] == hdrs["x-request-id"]
    assert err["payload"]["stackTrace"] == []


def test_timeout_is_504(start_gateway):
    g = start_gateway(config={"functions": {"slow": {"handler": "sleep", "timeout": 0.3}}})
    t0 = time.time()
    status, hdrs, data = g.post("/invoke/slow", {"ms": 3000})
    elapsed = time.time() - t0
    err = error_of(g, status, data, hdrs)
    assert status == 504
    assert elapsed < 2.5  # answered at the deadline
    assert err["type"] == "LambdaExecuteError" and err["awsErrorType"] == "Sandbox.Timedout"
    assert err["payload"]["errorType"] == "Sandbox.Timedout"
    assert "Task timed out after 0.30 seconds" in err["payload"]["errorMessage"]


def test_default_timeout_is_three_seconds(gw):
    status, hdrs, data = gw.post("/invoke/sleep", {"ms": 5000})
    assert status == 504
    assert "after 3.00 seconds" in json.loads(data)["error"]["message"]


def test_concurrency_limit_is_429_with_retry_after(start_gateway):
    g = start_gateway(config={"functions": {"one": {"handler": "sleep", "concurrency": 1}}})
    with concurrent.futures.ThreadPoolExecutor(2) as ex:
        slow = ex.submit(g.post, "/invoke/one", {"ms": 800})
        time.sleep(0.3)
        status, hdrs, data = g.post("/invoke/one", {"ms": 1})
        assert slow.result()[0] == 200
    err = error_of(g, status, data, hdrs)
    assert status == 429
    assert hdrs["retry-after"] == "1"
    assert err["awsErrorType"] == "TooManyRequestsException"
    assert err["reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded"


def test_async_queue_full_is_429(start_gateway):
    g = start_gateway(config={"limits": {"max_workers": 1, "async_queue": 2}})
    statuses = [g.post("/invoke-async/sleep", {"ms": 400})[0] for _ in range(6)]
    assert statuses.count(202) >= 2 and statuses.count(429) >= 1
    assert statuses[:2] == [202, 202]


def announce_length(gw, path, length):
    """Sends only the headers of a request announcing length body bytes; returns the reply."""
    s = socket.create_connection((gw.host, gw.port))
    s.sendall(b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
              % (path.encode(), length))
    s.settimeout(10)
    reply = s.recv(65536).decode()
    s.close()
    return reply


def test_content_length_over_limit_is_413_without_reading(gw):
    reply = announce_length(gw, "/invoke/echo", SYNC_MAX + 1)
    assert reply.startswith("HTTP/1.1 413")
    assert "RequestTooLarge" in reply
    assert "Request must be smaller than 6291456 bytes" in reply


def test_body_over_limit_while_reading_is_413(gw):
    status, _, data = gw.post_chunked("/invoke/echo", SYNC_MAX)
    assert status == 413
    assert json.loads(data)["error"]["type"] == "RequestTooLarge"


def test_limits_exact_boundaries(gw):
    # a JSON string event of exactly the limit passes; one byte more is refused
    body = b'"' + b"a" * (SYNC_MAX - 2) + b'"'
    status, _, data = gw.post("/invoke/echo", body, timeout=60)
    assert status == 200 and len(data) == SYNC_MAX
    assert announce_length(gw, "/invoke/echo", SYNC_MAX + 1).startswith("HTTP/1.1 413")
    body = b'"' + b"a" * (ASYNC_MAX - 2) + b'"'
    assert gw.post("/invoke-async/echo", body)[0] == 202
    reply = announce_length(gw, "/invoke-async/echo", ASYNC_MAX + 1)
    assert reply.startswith("HTTP/1.1 413") and "1048576" in reply


# ---- concurrency ----

def test_many_clients_at_once(gw):
    def one(i):
        status, _, data = gw.post("/invoke/echo", {"i": i})
        return status, json.loads(data)["i"]

    with concurrent.futures.ThreadPoolExecutor(32) as ex:
        results = list(ex.map(one, range(400)))
    assert results == [(200, i) for i in range(400)]


def test_slow_calls_run_concurrently(gw):
    t0 = time.time()
    with concurrent.futures.ThreadPoolExecutor(20) as ex:
        statuses = list(ex.map(lambda _: gw.post("/invoke/sleep", {"ms": 500})[0], range(20)))
    assert statuses == [200] * 20
    assert time.time() - t0 < 4  # serially it would take 10 s


def test_slow_function_does_not_delay_fast_one(gw):
    with concurrent.futures.ThreadPoolExecutor(2) as ex:
        slow = ex.submit(gw.post, "/invoke/sleep", {"ms": 1500})
        time.sleep(0.2)
        t0 = time.time()
        assert gw.post("/invoke/echo", b"{}")[0] == 200
        assert time.time() - t0 < 0.5
        assert slow.result()[0] == 200


def test_client_disconnect_mid_call(gw):
    for _ in range(5):
        s = socket.create_connection((gw.host, gw.port))
        body = b'{"ms":300}'
        s.sendall(b"POST /invoke/sleep HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s"
                  % (len(body), body))
        s.close()
    time.sleep(0.6)
    assert gw.post("/invoke/echo", b"{}")[0] == 200


def test_garbage_requests_do_not_hurt(gw):
    for junk in (b"\x00\x01\x02\r\n\r\n", b"GET\r\n\r\n", b"POST /invoke/echo HTTP/1.1\r\n"
                 b"Content-Length: -5\r\n\r\n", b"POST /invoke/echo HTTP/9.9\r\n\r\n"):
        s = socket.create_connection((gw.host, gw.port))
        s.sendall(junk)
        s.settimeout(2)
        try:
            s.recv(4096)
        except (socket.timeout, ConnectionResetError):
            pass
        s.close()
    assert gw.post("/invoke/echo", b"{}")[0] == 200


# ---- shutdown ----

def test_sigterm_drains_async_and_in_flight(start_gateway, tmp_path):
    g = start_gateway(args=["--handlers", PLUGIN],
                      config={"limits": {"max_workers": 2}})
    out = tmp_path / "drained.txt"
    for i in range(12):
        status, _, _ = g.post("/invoke-async/record",
                              {"file": str(out), "text": str(i), "ms": 100})
        assert status == 202
    with concurrent.futures.ThreadPoolExecutor(1) as ex:
        inflight = ex.submit(g.post, "/invoke/sleep", {"ms": 600})
        time.sleep(0.2)
        g.send_signal(signal.SIGTERM)
        status, _, data = inflight.result()
    assert status == 200 and data == b'{"slept":600}'
    assert g.stop() == 0
    # every accepted invocation ran before the process exited
    assert sorted(int(x) for x in out.read_text().split()) == list(range(12))
    assert '"event":"shutdown"' in g.stderr()


def test_sigint_also_stops_cleanly(start_gateway):
    g = start_gateway()
    g.send_signal(signal.SIGINT)
    assert g.stop() == 0


# ---- plugins and start-up ----

def test_plugin_handlers(start_gateway):
    g = start_gateway(args=["--handlers", PLUGIN],
                      config={"functions": {"who": {"handler": "whoami", "memory": 256,
                                                    "environment": {"GREETING": "hey"}}}})
    assert "shout" in g.banner and "who" in g.banner
    assert g.post_json("/invoke/shout", {"text": "abc"})[2] == {"text": "ABC"}
    status, hdrs, body = g.post_json("/invoke/who", {})
    assert body["requestId"] == hdrs["x-request-id"]
    assert body["functionName"] == "who" and body["functionVersion"] == "$LATEST"
    assert body["invokedArn"] == "arn:aws:lambda:us-east-1:000000000000:function:who"
    assert body["memoryMb"] == 256 and body["hasTime"] is True
    assert body["greeting"] == "hey"
    # the plugin's echo replaces the built-in one
    assert g.post_json("/invoke/echo", {"a": 1})[2] == {"from": "plugin", "event": {"a": 1}}
    status, _, data = g.post("/invoke/shout", {"text": 5})
    assert status == 502 and json.loads(data)["error"]["payload"]["errorType"] == "TypeError"


def run_to_exit(args, env=None, timeout=10):
    full = {k: v for k, v in os.environ.items() if not k.startswith("LGW_")}
    full.update(env or {})
    p = subprocess.run([BIN] + args, capture_output=True, timeout=timeout, env=full)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


@pytest.mark.parametrize("lib,needle", [
    ("libbadabi.so", "ABI"),
    ("libnullfn.so", "not callable"),
    ("libnotable.so", "exports no 'lgw_handlers'"),
    ("libmissing.so", "cannot load"),
])
def test_bad_plugin_refused_at_start(lib, needle):
    rc, out, err = run_to_exit(["--listen", "127.0.0.1:0", "--handlers",
                                os.path.join(PLUGIN_DIR, lib)])
    assert rc != 0 and out == ""
    assert "InvalidFunctionTypeError" in err and needle in err
    assert len(err.strip().splitlines()) == 1


def test_missing_handler_for_configured_function(tmp_path):
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"functions": {"orders": {"handler": "orders_v2"}}}))
    rc, _, err = run_to_exit(["--listen", "127.0.0.1:0", "--config", str(cfg)])
    assert rc != 0
    assert "InvalidFunctionTypeError" in err and "orders_v2" in err


@pytest.mark.parametrize("config,needle", [
    ({"functions": {"f": {"timout": 3}}}, "unknown key 'timout'"),
    ({"limits": {"max_workers": -1}}, "limits.max_workers"),
    ({"listen": "nowhere"}, "listen"),
])
def test_bad_config_refused_at_start(tmp_path, config, needle):
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps(config))
    rc, out, err = run_to_exit(["--config", str(cfg)])
    assert rc != 0 and out == "" and needle in err


def test_bad_flags_and_env_refused():
    rc, _, err = run_to_exit(["--bogus"])
    assert rc != 0 and "unknown option '--bogus'" in err
    rc, _, err = run_to_exit([], env={"LGW_MAX_WORKERS": "many"})
    assert rc != 0 and "LGW_MAX_WORKERS=many" in err


def test_port_in_use_is_a_clear_error(gw):
    rc, _, err = run_to_exit(["--listen", "127.0.0.1:%d" % gw.port])
    assert rc != 0 and "cannot listen" in err


def test_help_and_version():
    rc, out, _ = run_to_exit(["--help"])
    assert rc == 0 and "--listen HOST:PORT" in out and "LGW_MAX_WORKERS" in out
    rc, out, _ = run_to_exit(["--version"])
    assert rc == 0 and out.startswith("lambda-gateway ")


def test_env_and_flag_precedence(tmp_path):
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"listen": "127.0.0.1:1"}))
    # the flag wins over LGW_LISTEN, which wins over the file
    g = Gateway(args=["--config", str(cfg)], env={"LGW_LISTEN": "127.0.0.1:2"})
    g.check_clean_exit()


def test_connection_limit_serves_in_turn(start_gateway):
    # max_connections is shared out over the HTTP threads (one each here); a connection over the
    # limit waits in the listen backlog and is served as soon as one closes, on whichever thread
    g = start_gateway(env={"LGW_MAX_CONNECTIONS": "2", "LGW_HTTP_THREADS": "2"})
    held = [g.conn(timeout=5) for _ in range(2)]
    for i, c in enumerate(held):
        c.request("POST", "/invoke/echo", body=json.dumps({"held": i}))
        r = c.getresponse()
        assert (r.status, json.loads(r.read())) == (200, {"held": i})
    with concurrent.futures.ThreadPoolExecutor(1) as ex:
        waiting = ex.submit(g.post, "/invoke/echo", {"third": True}, None, 10)
        time.sleep(0.5)
        assert not waiting.done()  # over the limit: not served while both are held
        t0 = time.time()
        held[0].close()
        status, _, data = waiting.result(timeout=5)
        assert (status, json.loads(data)) == (200, {"third": True})
        assert time.time() - t0 < 2
    held[1].close()
    # one new connection after another (each closed by the client) is served at once every time
    t0 = time.time()
    for i in range(30):
        status, _, data = g.post("/invoke/echo", {"n": i}, timeout=5)
        assert (status, json.loads(data)) == (200, {"n": i})
    assert time.time() - t0 < 10


def test_second_signal_exits_at_once():
    g = Gateway()
    with concurrent.futures.ThreadPoolExecutor(1) as ex:
        slow = ex.submit(g.post, "/invoke/sleep", {"ms": 2500})
        time.sleep(0.3)
        g.send_signal(signal.SIGTERM)
        time.sleep(0.2)
        t0 = time.time()
        g.proc.send_signal(signal.SIGTERM)
        rc = g.stop(timeout=5)
        assert time.time() - t0 < 1.5  # did not wait for the call (it ends 2 s after t0)
        assert rc == 128 + signal.SIGTERM
        try:
            slow.result()
        except Exception:  # the connection was cut: that is what "now" means
            pass


def test_header_limit_is_explicit(start_gateway):
    # the default per-connection memory holds about 5 KB of request headers (a large
    # X-Amz-Security-Token fits); more is refused with 431, and the limit can be raised
    g = start_gateway()
    token = {"X-Amz-Security-Token": "a" * 4500}
    assert g.post("/invoke/echo", b"{}", headers=token)[0] == 200
    # libmicrohttpd answers this one itself (an HTML body) and closes: read it off a raw socket
    s = socket.create_connection((g.host, g.port))
    s.sendall(b"POST /invoke/echo HTTP/1.1\r\nHost: x\r\nX-Big: %s\r\nContent-Length: 0\r\n\r\n"
              % (b"a" * 8000))
    s.settimeout(10)
    assert s.recv(4096).startswith(b"HTTP/1.1 431")
    s.close()
    g2 = start_gateway(config={"limits": {"connection_memory": 32768}})
    assert g2.post("/invoke/echo", b"", headers={"X-Big": "a" * 8000})[0] == 200

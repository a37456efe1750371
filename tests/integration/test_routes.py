"""Handler routes (API Gateway style) against the real binary: the proxy events a function sees
(payload 2.0 through the built-in `echo`; 1.0, which needs a statusCode, through the plugin's
`echo_proxy`), route matching and precedence, 404/405, the
default /hello route, and the answer mapping (statusCode, headers, multiValueHeaders, cookies,
base64 bodies, inferred 2.0 answers, failures) through tests/plugins/routes_plugin.c."""
import base64
import concurrent.futures
import json
import os
import re
import subprocess
import time

import pytest

from conftest import BIN, PLUGIN_DIR, README, ROOT, Gateway, readme_block

PLUGIN = os.path.join(PLUGIN_DIR, "libroutes_plugin.so")
SYNC_MAX = 6291456

ROUTES = [
    {"method": "GET", "path": "/hello/{name}", "function": "hello"},
    {"method": "ANY", "path": "/echo/{proxy+}", "function": "echo"},
    {"method": "GET", "path": "/echo/{name}", "function": "hello"},
    {"method": "ANY", "path": "/v1/{proxy+}", "function": "echo_proxy", "payload": "1.0"},
    {"method": "GET", "path": "/v1plain", "function": "echo_proxy", "payload": "1.0"},
    {"method": "GET", "path": "/items/{id}", "function": "echo"},
    {"method": "GET", "path": "/items/special", "function": "hello"},
    {"method": "ANY", "path": "/items/{name}", "function": "hello"},
    {"method": "GET", "path": "/users/{user}/orders/{order}", "function": "echo"},
    {"method": "POST", "path": "/plain", "function": "echo"},
    {"method": "GET", "path": "/", "function": "echo"},
    {"method": "POST", "path": "/answer", "function": "answer"},
    {"method": "POST", "path": "/answer1", "function": "answer", "payload": "1.0"},
    {"method": "POST", "path": "/binary", "function": "binary"},
    {"method": "POST", "path": "/sink", "function": "hello"},
    {"method": "GET", "path": "/fail", "function": "fail"},
    {"method": "GET", "path": "/fail1", "function": "fail", "payload": "1.0"},
    {"method": "GET", "path": "/missing", "function": "nosuchfunction"},
    {"method": "GET", "path": "/slow", "function": "slow"},
    {"method": "GET", "path": "/single", "function": "single"},
    {"method": "PUT", "path": "/doc/{id}", "function": "echo"},
    {"method": "DELETE", "path": "/doc/{id}", "function": "echo"},
]
CONFIG = {
    "handlers": [PLUGIN],
    "routes": ROUTES,
    "functions": {
        "slow": {"handler": "nap", "timeout": 0.3},
        "single": {"handler": "nap", "concurrency": 1},
    },
}


@pytest.fixture(scope="module")
def rgw():
    g = Gateway(config=CONFIG)
    yield g
    g.check_clean_exit()


def raw_request(g, method, path, body=None, headers=()):
    """Sends headers as a list of (name, value) pairs (repeats allowed); returns
    (status, [(name, value)], body)."""
    c = g.conn()
    try:
        c.putrequest(method, path, skip_accept_encoding=True)
        for k, v in headers:
            c.putheader(k, v)
        if body is not None:
            c.putheader("Content-Length", str(len(body)))
        c.endheaders(body)
        r = c.getresponse()
        return r.status, r.getheaders(), r.read()
    finally:
        c.close()


def header_values(pairs, name):
    return [v for k, v in pairs if k.lower() == name.lower()]


def echo_event(g, method, path, body=None, headers=()):
    status, hdrs, data = raw_request(g, method, path, body, headers)
    assert status == 200, data
    ev = json.loads(data)
    assert header_values(hdrs, "content-type") == ["application/json"]
    return ev, hdrs


def assert_apigw_ids(hdrs):
    rid = header_values(hdrs, "x-request-id")
    assert len(rid) == 1 and len(rid[0]) == 36
    assert header_values(hdrs, "apigw-requestid") == rid
    return rid[0]


def message_of(status, hdrs, data, expect_status, message):
    assert status == expect_status, data
    assert json.loads(data) == {"message": message}
    assert_apigw_ids(hdrs)


# ---- the default route ----

def test_default_hello_route_in_local_mode(start_gateway):
    g = start_gateway()
    status, hdrs, data = g.request("GET", "/hello/Ann")
    assert status == 200
    assert json.loads(data) == {"message": "Hello, Ann!"}
    assert hdrs["content-type"] == "application/json"
    assert hdrs["apigw-requestid"] == hdrs["x-request-id"]
    status, _, data = g.request("GET", "/hello/Ann%20Lee?x=1")
    assert json.loads(data) == {"message": "Hello, Ann Lee!"}
    status, hdrs, _ = g.request("POST", "/hello/Ann")
    assert status == 405 and hdrs["allow"] == "GET"


def test_a_routes_key_replaces_the_default_route(start_gateway):
    g = start_gateway(config={"routes": []})
    assert g.request("GET", "/hello/Ann")[0] == 404
    g2 = start_gateway(config={"routes": [{"method": "GET", "path": "/hi/{name}",
                                           "function": "hello"}]})
    assert g2.request("GET", "/hello/Ann")[0] == 404
    status, _, data = g2.request("GET", "/hi/Bo")
    assert status == 200 and json.loads(data) == {"message": "Hello, Bo!"}


# ---- payload 2.0 ----

def test_v2_event_as_echo_sees_it(rgw):
    before = int(time.time() * 1000)
    ev, hdrs = echo_event(rgw, "GET", "/echo/a/b%20c?x=1&x=2&y=%26z&e=&flag", headers=[
        ("X-Multi", "one"), ("X-Multi", "two"), ("User-Agent", "route-test/1"),
        ("Cookie", "a=1; b=2"), ("Cookie", "c=3")])
    after = int(time.time() * 1000)
    rid = assert_apigw_ids(hdrs)
    assert ev["version"] == "2.0"
    assert ev["routeKey"] == "ANY /echo/{proxy+}"
    assert ev["rawPath"] == "/echo/a/b c"
    assert ev["rawQueryString"] == "x=1&x=2&y=%26z&e=&flag"
    assert ev["queryStringParameters"] == {"x": "1,2", "y": "&z", "e": "", "flag": ""}
    assert ev["pathParameters"] == {"proxy": "a/b c"}
    assert ev["cookies"] == ["a=1", "b=2", "c=3"]
    assert "cookie" not in ev["headers"]
    assert ev["headers"]["x-multi"] == "one,two"
    assert ev["headers"]["user-agent"] == "route-test/1"
    assert ev["headers"]["host"] == f"127.0.0.1:{rgw.port}"
    assert all(k == k.lower() for k in ev["headers"])
    assert "stageVariables" not in ev
    assert "body" not in ev
    assert ev["isBase64Encoded"] is False
    rc = ev["requestContext"]
    assert rc["accountId"] == "000000000000"
    assert rc["apiId"] == "local"
    assert rc["domainName"] == f"127.0.0.1:{rgw.port}"
    assert rc["domainPrefix"] == "127"
    assert rc["http"] == {"method": "GET", "path": "/echo/a/b c", "protocol": "HTTP/1.1",
                          "sourceIp": "127.0.0.1", "userAgent": "route-test/1"}
    assert rc["requestId"] == rid
    assert rc["routeKey"] == "ANY /echo/{proxy+}"
    assert rc["stage"] == "$default"
    assert re.fullmatch(r"\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d \+0000", rc["time"])
    assert before <= rc["timeEpoch"] <= after
    assert time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(rc["timeEpoch"] / 1000)) == \
        rc["time"]


def test_v2_no_query_no_cookies_no_params(rgw):
    ev, _ = echo_event(rgw, "GET", "/")
    assert ev["rawPath"] == "/" and ev["rawQueryString"] == ""
    for key in ("queryStringParameters", "cookies", "pathParameters", "body"):
        assert key not in ev
    assert ev["routeKey"] == "GET /"


def test_query_strings_with_encoded_characters(rgw):
    ev, _ = echo_event(rgw, "GET", "/echo/q/x?q=a+b&r=%E2%9C%93&s=%ZZ&t=%3D%3D&%C3%A9=1&u=a%2Cb")
    assert ev["rawQueryString"] == "q=a+b&r=%E2%9C%93&s=%ZZ&t=%3D%3D&%C3%A9=1&u=a%2Cb"
    assert ev["queryStringParameters"] == {"q": "a b", "r": "\u2713", "s": "%ZZ", "t": "==",
                                           "\u00e9": "1", "u": "a,b"}


def test_v2_text_body(rgw):
    body = json.dumps({"k": "v\u00e9"}).encode()
    ev, _ = echo_event(rgw, "POST", "/echo/x", body, [("Content-Type", "application/json")])
    assert ev["body"] == body.decode() and ev["isBase64Encoded"] is False
    ev, _ = echo_event(rgw, "POST", "/plain", b"plain words",
                       [("Content-Type", "text/plain; charset=utf-8")])
    assert ev["body"] == "plain words" and ev["isBase64Encoded"] is False
    assert ev["requestContext"]["http"]["method"] == "POST"


@pytest.mark.parametrize("ctype,body", [
    ("application/octet-stream", bytes(range(256))),
    ("image/png", b"\x89PNG\r\n\x1a\n\x00\x00"),
    ("text/plain", b"caf\xe9 is latin-1, not UTF-8"),
    ("application/x-www-form-urlencoded", b"a=1&b=2"),
])
def test_binary_request_bodies_are_base64(rgw, ctype, body):
    ev, _ = echo_event(rgw, "POST", "/echo/bin", body, [("Content-Type", ctype)])
    assert ev["isBase64Encoded"] is True
    assert base64.b64decode(ev["body"]) == body


def test_header_value_that_is_not_utf8_is_kept(rgw):
    ev, _ = echo_event(rgw, "GET", "/echo/h/x", headers=[("X-Latin", "caf\xe9")])
    assert ev["headers"]["x-latin"] == "caf\u00e9"


# ---- payload 1.0 ----

def test_v1_event_as_echo_sees_it(rgw):
    ev, hdrs = echo_event(rgw, "POST", "/v1/p/q%2Fr%20s?k=1&k=2&m=%41", b'{"a":1}', [
        ("X-Multi", "one"), ("X-Multi", "two"), ("User-Agent", "route-test/1"),
        ("Cookie", "a=1; b=2"), ("Content-Type", "application/json")])
    rid = assert_apigw_ids(hdrs)
    assert ev["version"] == "1.0"
    assert ev["resource"] == "/v1/{proxy+}"
    assert ev["path"] == "/v1/p/q%2Fr%20s"  # REST keeps the path as sent
    assert ev["httpMethod"] == "POST"
    assert ev["headers"]["X-Multi"] == "two"
    assert ev["multiValueHeaders"]["X-Multi"] == ["one", "two"]
    assert ev["headers"]["Cookie"] == "a=1; b=2"
    assert ev["headers"]["User-Agent"] == "route-test/1"
    assert ev["queryStringParameters"] == {"k": "2", "m": "A"}
    assert ev["multiValueQueryStringParameters"] == {"k": ["1", "2"], "m": ["A"]}
    assert ev["pathParameters"] == {"proxy": "p/q/r s"}
    assert ev["stageVariables"] is None
    assert ev["body"] == '{"a":1}' and ev["isBase64Encoded"] is False
    rc = ev["requestContext"]
    assert rc["accountId"] == "000000000000" and rc["apiId"] == "local"
    assert rc["httpMethod"] == "POST"
    assert rc["path"] == "/v1/p/q%2Fr%20s"
    assert rc["resourcePath"] == "/v1/{proxy+}"
    assert rc["protocol"] == "HTTP/1.1"
    assert rc["requestId"] == rid and rc["extendedRequestId"] == rid
    assert rc["stage"] == "$default"
    assert rc["identity"]["sourceIp"] == "127.0.0.1"
    assert rc["identity"]["userAgent"] == "route-test/1"
    assert rc["identity"]["user"] is None
    assert re.fullmatch(r"\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d \+0000", rc["requestTime"])
    assert abs(rc["requestTimeEpoch"] - time.time() * 1000) < 60000
    assert "routeKey" not in ev and "rawPath" not in ev


def test_v1_missing_parts_are_null(rgw):
    ev, _ = echo_event(rgw, "GET", "/v1plain")
    for key in ("queryStringParameters", "multiValueQueryStringParameters", "pathParameters",
                "stageVariables", "body"):
        assert ev[key] is None, key
    assert ev["isBase64Encoded"] is False


def test_v1_binary_body(rgw):
    body = os.urandom(300)
    ev, _ = echo_event(rgw, "PUT", "/v1/bin", body, [("Content-Type", "application/pdf")])
    assert ev["isBase64Encoded"] is True and base64.b64decode(ev["body"]) == body


# ---- matching ----

def test_literal_beats_param_beats_greedy(rgw):
    status, _, data = rgw.request("GET", "/items/special")
    assert status == 200 and json.loads(data) == {"message": "Hello, world!"}
    ev, _ = echo_event(rgw, "GET", "/items/42")
    assert ev["routeKey"] == "GET /items/{id}" and ev["pathParameters"] == {"id": "42"}
    # /echo/{name} (hello) beats /echo/{proxy+} (echo) for one segment, not for two.
    status, _, data = rgw.request("GET", "/echo/bob")
    assert status == 200 and json.loads(data) == {"message": "Hello, bob!"}
    ev, _ = echo_event(rgw, "GET", "/echo/bob/x")
    assert ev["pathParameters"] == {"proxy": "bob/x"}
    # POST /echo/bob: the GET route is out, the greedy ANY route takes it.
    ev, _ = echo_event(rgw, "POST", "/echo/bob", b"")
    assert ev["routeKey"] == "ANY /echo/{proxy+}"


def test_own_method_beats_any(rgw):
    ev, _ = echo_event(rgw, "GET", "/items/7")
    assert ev["routeKey"] == "GET /items/{id}"
    status, _, data = rgw.request("PATCH", "/items/7", b"")
    assert status == 200 and json.loads(data) == {"message": "Hello, 7!"}


def test_several_parameters(rgw):
    ev, _ = echo_event(rgw, "GET", "/users/u%201/orders/o-7")
    assert ev["pathParameters"] == {"user": "u 1", "order": "o-7"}
    assert ev["routeKey"] == "GET /users/{user}/orders/{order}"


def test_wrong_method_is_405_with_allow(rgw):
    status, hdrs, _ = rgw.request("GET", "/doc/1")
    assert status == 405 and hdrs["allow"] == "PUT, DELETE"
    status, hdrs, _ = rgw.request("POST", "/hello/x")
    assert status == 405 and hdrs["allow"] == "GET"


@pytest.mark.parametrize("path", ["/nothing", "/hello/a/b", "/hello/", "/echo", "/echo/",
                                  "/items", "/users/u/orders", "/users/u/orders/"])
def test_no_route_is_404(rgw, path):
    status, _, _ = rgw.request("GET", path)
    assert status == 404


def test_fixed_endpoints_come_before_routes(start_gateway):
    g = start_gateway(config={"routes": [{"method": "ANY", "path": "/{proxy+}",
                                          "function": "echo"}]})
    status, _, data = g.request("GET", "/healthz")
    assert status == 200 and "routeKey" not in json.loads(data)
    status, _, data = g.post("/invoke/echo", b'{"x":1}')
    assert status == 200 and json.loads(data) == {"x": 1}
    ev, _ = echo_event(g, "DELETE", "/anything/else")
    assert ev["pathParameters"] == {"proxy": "anything/else"}
    assert g.request("GET", "/")[0] == 404  # {proxy+} needs at least one segment


# ---- answers ----

def answer(g, doc, path="/answer", method="POST"):
    return raw_request(g, method, path, json.dumps(doc).encode(),
                       [("Content-Type", "application/json")])


def test_v2_answer_status_headers_cookies_body(rgw):
    status, hdrs, data = answer(rgw, {
        "statusCode": 201, "headers": {"X-A": "1", "content-type": "text/plain", "X-N": 5},
        "cookies": ["s=1; Path=/; HttpOnly", "t=2"], "body": "created"})
    assert status == 201 and data == b"created"
    assert header_values(hdrs, "content-type") == ["text/plain"]
    assert header_values(hdrs, "x-a") == ["1"] and header_values(hdrs, "x-n") == ["5"]
    assert header_values(hdrs, "set-cookie") == ["s=1; Path=/; HttpOnly", "t=2"]
    assert_apigw_ids(hdrs)


def test_v2_answer_defaults(rgw):
    status, hdrs, data = answer(rgw, {"statusCode": 404})
    assert status == 404 and data == b""
    assert header_values(hdrs, "content-type") == ["application/json"]
    status, _, data = answer(rgw, {"statusCode": 204.0, "body": None})
    assert status == 204 and data == b""


@pytest.mark.parametrize("result,body", [
    ({"message": "no statusCode"}, b'{"message":"no statusCode"}'),
    ("Hello from Lambda!", b"Hello from Lambda!"),
    ([1, "two"], b'[1,"two"]'),
    (42, b"42"),
    (None, b"null"),
])
def test_v2_result_without_status_code_is_200_json(rgw, result, body):
    status, hdrs, data = answer(rgw, result)
    assert status == 200 and data == body
    assert header_values(hdrs, "content-type") == ["application/json"]
    assert_apigw_ids(hdrs)


def test_v1_answer_multi_value_headers(rgw):
    status, hdrs, data = answer(rgw, {
        "statusCode": 202, "headers": {"X-M": "ignored", "X-S": "s", "Content-Type": "text/csv"},
        "multiValueHeaders": {"x-m": ["a", "b"], "Set-Cookie": ["c=1", "d=2"]},
        "cookies": ["not-in-1.0=1"], "body": "a,b"}, path="/answer1")
    assert status == 202 and data == b"a,b"
    assert header_values(hdrs, "x-m") == ["a", "b"]
    assert header_values(hdrs, "x-s") == ["s"]
    assert header_values(hdrs, "set-cookie") == ["c=1", "d=2"]
    assert header_values(hdrs, "content-type") == ["text/csv"]
    assert_apigw_ids(hdrs)


def test_v1_answer_needs_status_code(rgw):
    status, hdrs, data = answer(rgw, {"message": "no statusCode"}, path="/answer1")
    message_of(status, hdrs, data, 502, "Internal Server Error")


def test_base64_answer_is_decoded(rgw):
    raw = os.urandom(1000)
    status, hdrs, data = answer(rgw, {"statusCode": 200, "isBase64Encoded": True,
                                      "headers": {"Content-Type": "image/png"},
                                      "body": base64.b64encode(raw).decode()})
    assert status == 200 and data == raw
    assert header_values(hdrs, "content-type") == ["image/png"]


@pytest.mark.parametrize("size", [0, 1, 2, 3, 1000, 65537, 1 << 20])
def test_binary_round_trip(rgw, size):
    raw = os.urandom(size)
    status, hdrs, data = raw_request(rgw, "POST", "/binary", raw,
                                     [("Content-Type", "application/octet-stream")])
    assert status == 200
    assert data == raw
    assert header_values(hdrs, "content-type") == ["application/octet-stream"]


def test_text_body_round_trip_through_binary_answer(rgw):
    status, _, data = raw_request(rgw, "POST", "/binary", "d\u00e9j\u00e0 vu".encode(),
                                  [("Content-Type", "text/plain")])
    assert status == 200 and data == "d\u00e9j\u00e0 vu".encode()


@pytest.mark.parametrize("doc", [
    {"statusCode": "200"},
    {"statusCode": 99},
    {"statusCode": 600},
    {"statusCode": 200, "body": {"not": "a string"}},
    {"statusCode": 200, "isBase64Encoded": True, "body": "not base64!"},
    {"statusCode": 200, "headers": {"X-Bad": "a\r\nInjected: 1"}},
    {"statusCode": 200, "headers": {"Bad Name": "x"}},
    {"statusCode": 200, "headers": {"X-Obj": {"a": 1}}},
    {"statusCode": 200, "headers": ["x"]},
    {"statusCode": 200, "cookies": [1]},
])
def test_malformed_answer_is_502(rgw, doc):
    status, hdrs, data = answer(rgw, doc)
    message_of(status, hdrs, data, 502, "Internal Server Error")
    assert not header_values(hdrs, "injected")
    assert "malformed Lambda proxy response" in rgw.stderr()


def test_failing_handler_is_502(rgw):
    for path in ("/fail", "/fail1"):
        status, hdrs, data = raw_request(rgw, "GET", path)
        message_of(status, hdrs, data, 502, "Internal Server Error")


def test_timeout_is_502(rgw):
    status, hdrs, data = raw_request(rgw, "GET", "/slow?ms=3000")
    message_of(status, hdrs, data, 502, "Internal Server Error")
    status, _, data = raw_request(rgw, "GET", "/slow?ms=0")
    assert status == 200 and data == b"rested"


def test_unknown_function_is_500(rgw):
    status, hdrs, data = raw_request(rgw, "GET", "/missing")
    message_of(status, hdrs, data, 500, "Internal Server Error")
    assert "nosuchfunction" in rgw.stderr()


def test_throttled_is_429(rgw):
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        futs = [pool.submit(raw_request, rgw, "GET", "/single?ms=800") for _ in range(4)]
        results = [f.result() for f in futs]
    statuses = sorted(r[0] for r in results)
    assert statuses.count(200) >= 1 and 429 in statuses, statuses
    for status, hdrs, data in results:
        if status == 429:
            message_of(status, hdrs, data, 429, "Too Many Requests")


def test_body_limit_is_6_mib(rgw):
    # announced: refused before the body is read
    status, hdrs, data = rgw.post_chunked("/sink", SYNC_MAX)
    message_of(status, hdrs, data, 413, "Request Entity Too Large")
    # exactly the limit passes
    status, _, data = raw_request(rgw, "POST", "/sink", b"x" * SYNC_MAX,
                                  [("Content-Type", "text/plain")])
    assert status == 200 and json.loads(data) == {"message": "Hello, world!"}


# ---- start-up errors ----

@pytest.mark.parametrize("routes,needle", [
    ([{"method": "GET", "path": "/a/{b", "function": "echo"}], "whole segment"),
    ([{"method": "GET", "path": "/a{b}", "function": "echo"}], "whole segment"),
    ([{"method": "GET", "path": "/a/{p+}/c", "function": "echo"}], "last segment"),
    ([{"method": "GET", "path": "/a//b", "function": "echo"}], "empty path segment"),
    ([{"method": "GET", "path": "/a/", "function": "echo"}], "empty path segment"),
    ([{"method": "GET", "path": "/a/{x}/{x}", "function": "echo"}], "appears twice"),
    ([{"method": "GET", "path": "/a/{}", "function": "echo"}], "parameter name"),
    ([{"method": "GET", "path": "/a/{b c}", "function": "echo"}], "names are"),
    ([{"method": "GET", "path": "/a/{x}", "function": "echo"},
      {"method": "GET", "path": "/a/{y}", "function": "hello"}], "catches the same requests"),
    ([{"method": "ANY", "path": "/p/{proxy+}", "function": "echo"},
      {"method": "ANY", "path": "/p/{rest+}", "function": "echo"}], "catches the same requests"),
    ([{"method": "GET", "path": "/healthz", "function": "echo"}], "gateway's own endpoints"),
    ([{"method": "ANY", "path": "/invoke", "function": "echo"}], "gateway's own endpoints"),
])
def test_bad_routes_stop_start_up(tmp_path, routes, needle):
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"routes": routes}))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LGW_", "AWS_"))}
    p = subprocess.run([BIN, "--listen", "127.0.0.1:0", "--config", str(cfg)],
                       capture_output=True, timeout=30, env=env)
    assert p.returncode != 0
    lines = p.stderr.decode().strip().splitlines()
    assert len(lines) == 1, lines
    assert needle in lines[0] and "routes[" in lines[0], lines[0]
    assert "ERROR: " not in p.stderr.decode()


def test_same_path_with_other_methods_is_fine(start_gateway):
    g = start_gateway(config={"routes": [
        {"method": "GET", "path": "/a/{x}", "function": "echo"},
        {"method": "POST", "path": "/a/{y}", "function": "echo"},
        {"method": "ANY", "path": "/a/{name}", "function": "hello"}]})
    ev, _ = echo_event(g, "POST", "/a/1", b"")
    assert ev["pathParameters"] == {"y": "1"}
    status, _, data = g.request("PUT", "/a/2", b"")
    assert status == 200 and json.loads(data) == {"message": "Hello, 2!"}


# ---- the README's handler-routes section, checked ----

DOC = README
doc_block = readme_block


def test_doc_configuration_example(start_gateway):
    assert "$ curl -s localhost:8080/hello/Ann\n{\"message\":\"Hello, Ann!\"}" in DOC
    g = start_gateway(config=json.loads(doc_block("### Configuring routes", "json")))
    assert g.request("GET", "/hello/Ann")[2] == b'{"message":"Hello, Ann!"}'
    status, _, data = g.request("GET", "/v1/hello/Ann")
    assert status == 200 and json.loads(data) == {"message": "Hello, Ann!"}
    ev, _ = echo_event(g, "GET", "/echo/a/b?x=1&x=2&q=a%26b", headers=[("Cookie", "s=1; t=2")])
    shown = json.loads(doc_block("### The event, payload 2.0", "json"))
    for key in ("version", "routeKey", "rawPath", "rawQueryString", "cookies",
                "queryStringParameters", "pathParameters", "isBase64Encoded"):
        assert ev[key] == shown[key], key
    assert set(ev) == set(shown)
    assert set(ev["requestContext"]) == set(shown["requestContext"])
    assert set(ev["requestContext"]["http"]) == set(shown["requestContext"]["http"])


def test_doc_complete_example_builds_and_round_trips(start_gateway, tmp_path):
    heading = "### A complete example"
    (tmp_path / "files.c").write_text(doc_block(heading, "c"))
    build = doc_block(heading, "sh").splitlines()[0]
    assert build.startswith("cc ")
    subprocess.run(build.replace("-Ihandlers", "-I" + os.path.join(ROOT, "handlers")),
                   shell=True, cwd=tmp_path, check=True)
    cfg = json.loads(doc_block(heading, "json"))
    cfg["handlers"] = [str(tmp_path / "libfiles.so")]
    g = start_gateway(config=cfg)
    status, _, data = g.request("GET", "/files")
    assert status == 200 and data == b'{"files":["a.bin"]}'
    raw = os.urandom(1000)
    status, hdrs, data = raw_request(g, "POST", "/files/in.bin", raw,
                                     [("Content-Type", "application/octet-stream")])
    assert status == 201 and data == raw
    assert header_values(hdrs, "x-file-name") == ["in.bin"]
    status, hdrs, data = raw_request(g, "POST", "/files/x", b"text",
                                     [("Content-Type", "text/plain")])
    message_of(status, hdrs, data, 502, "Internal Server Error")

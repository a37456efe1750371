"""The OpenAPI document (openapi/openapi.yaml) and what is built from it.

- The gateway serves the document as written (GET /openapi.yaml) and as JSON (GET /openapi.json),
  and the API reference page (GET /docs) with its files, all from memory, with ETags.
- The document and the server agree: every fixed endpoint of server/router.c is documented and
  every documented path is served; every named example is an answer the gateway really gives
  (replayed here); the document lints clean (redocly).
- The page works in headless Chromium (tests/contract/docs_browser.mjs), and a typed client
  generated from the served document calls /invoke and /invoke-async (tests/contract/client.ts).
- The contract checker that `make integration` runs on every recorded response
  (tests/contract/check_responses.py) rejects what it must reject.

The node tools come from tests/contract/package-lock.json (scripts/node-tools.sh installs them).
"""
import base64
import copy
import json
import os
import re
import subprocess

import pytest
import yaml

from conftest import BIN, ROOT

SOURCE = os.path.join(ROOT, "openapi", "openapi.yaml")
CONTRACT = os.path.join(ROOT, "tests", "contract")
NODE_BIN = os.path.join(CONTRACT, "node_modules", ".bin")
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


@pytest.fixture(scope="module")
def doc():
    with open(SOURCE) as f:
        return yaml.safe_load(f)


@pytest.fixture(scope="module")
def node_tools():
    """The npm packages of tests/contract, installed if missing (a no-op when they are)."""
    subprocess.run([os.path.join(ROOT, "scripts", "node-tools.sh"), "tests/contract"], cwd=ROOT,
                   check=True, timeout=600)
    return NODE_BIN


def deref(doc, obj):
    while isinstance(obj, dict) and "$ref" in obj:
        node = doc
        for part in obj["$ref"].lstrip("#/").split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        obj = node
    return obj


# ---- serving ----

def test_yaml_is_served_as_written(gw):
    status, hdrs, body = gw.request("GET", "/openapi.yaml")
    assert status == 200
    assert hdrs["content-type"] == "application/yaml; charset=utf-8"
    with open(SOURCE, "rb") as f:
        assert body == f.read()


def test_json_is_the_yaml_converted(gw, doc):
    status, hdrs, body = gw.request("GET", "/openapi.json")
    assert status == 200
    assert hdrs["content-type"] == "application/json"
    assert hdrs["access-control-allow-origin"] == "*"
    assert json.loads(body) == doc
    # Keys keep the source's order (the page lists operations in that order).
    assert list(json.loads(body)["paths"]) == list(doc["paths"])


def test_document_version_is_the_release(doc):
    with open(os.path.join(ROOT, "VERSION")) as f:
        assert doc["info"]["version"] == f.read().strip(), "update info.version in openapi.yaml"
    assert doc["openapi"].startswith("3.1.")


def test_etag_revalidation_and_head(gw):
    for path in ("/openapi.json", "/openapi.yaml", "/docs", "/docs/swagger-ui-bundle.js"):
        status, hdrs, body = gw.request("GET", path)
        assert status == 200 and body
        etag = hdrs["etag"]
        assert re.fullmatch(r'"[0-9a-f]{20}"', etag)
        assert hdrs["cache-control"] == "no-cache"
        assert hdrs["x-content-type-options"] == "nosniff"
        assert int(hdrs["content-length"]) == len(body)
        status, hdrs2, body2 = gw.request("GET", path, headers={"If-None-Match": etag})
        assert (status, body2, hdrs2["etag"]) == (304, b"", etag)
        status, _, _ = gw.request("GET", path, headers={"If-None-Match": 'W/"x", ' + etag})
        assert status == 304
        status, _, body3 = gw.request("GET", path, headers={"If-None-Match": '"other"'})
        assert (status, body3) == (200, body)
        status, hdrs4, body4 = gw.request("HEAD", path)
        assert (status, body4, hdrs4["etag"]) == (200, b"", etag)


def test_docs_page_and_its_files(gw):
    status, hdrs, page = gw.request("GET", "/docs")
    assert status == 200
    assert hdrs["content-type"] == "text/html; charset=utf-8"
    csp = hdrs["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp
    refs = re.findall(rb'(?:src|href)="(/docs/[^"]+)"', page)
    assert sorted(refs) == [b"/docs/init.js", b"/docs/swagger-ui-bundle.js",
                            b"/docs/swagger-ui.css"]
    types = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
    for ref in refs:
        status, hdrs, body = gw.request("GET", ref.decode())
        assert status == 200, ref
        assert hdrs["content-type"] == types[os.path.splitext(ref.decode())[1]]
        assert hdrs["content-security-policy"] == csp
        assert b"sourceMappingURL" not in body[-300:], "the page ships no source maps"
    assert b"validatorUrl: null" in gw.request("GET", "/docs/init.js")[2]
    for name in ("LICENSE", "NOTICE"):
        status, hdrs, body = gw.request("GET", "/docs/" + name)
        assert status == 200 and hdrs["content-type"] == "text/plain; charset=utf-8" and body


def test_docs_unknown_file_and_wrong_methods(gw):
    status, hdrs, body = gw.request("GET", "/docs/nope.js")
    assert status == 404
    assert json.loads(body)["error"]["type"] == "NotFound"
    for path in ("/openapi.json", "/openapi.yaml", "/docs", "/docs/init.js"):
        status, hdrs, body = gw.request("POST", path, body=b"{}")
        assert status == 405 and hdrs["allow"] == "GET, HEAD", path
    assert gw.request("GET", "/docs/")[0] == 404
    assert gw.request("GET", "/openapi")[0] == 404


def test_metrics_count_the_ops_face(gw):
    def ops_2xx():
        text = gw.request("GET", "/metrics")[2].decode()
        return int(re.search(r'face="ops",code="2xx"\} (\d+)', text).group(1))

    before = ops_2xx()
    gw.request("GET", "/openapi.json")
    assert ops_2xx() == before + 2  # the document, and the first /metrics


# ---- the document and the server agree ----

def router_table():
    with open(os.path.join(ROOT, "server", "router.c")) as f:
        text = f.read()
    table = text[text.index("routes[] = {"):]
    table = table[:table.index("};")]
    return re.findall(r'\{"([A-Z]+)", "([^"]+)", (LGW_ROUTE_[A-Z_]+)\}', table)


def test_every_fixed_endpoint_is_documented(doc):
    routes = router_table()
    assert len(routes) >= 13
    templates = {re.sub(r"\{[^}]+\}", "*", p): (p, item) for p, item in doc["paths"].items()}
    for method, pattern, kind in routes:
        assert pattern in templates, "%s %s (%s) is not in openapi.yaml" % (method, pattern, kind)
        _, item = templates[pattern]
        assert method.lower() in item, "%s %s is not documented" % (method, pattern)


def test_every_documented_path_is_served(doc):
    served = {(m, p) for m, p, _ in router_table()}
    for path, item in doc["paths"].items():
        for method in METHODS:
            if method not in item:
                continue
            if "x-lgw-handler-route" in item[method]:
                continue  # served by the default route table (routes.c), replayed below
            key = (method.upper(), re.sub(r"\{[^}]+\}", "*", path))
            assert key in served, "%s %s is documented but not routed" % key


def test_every_operation_documents_its_errors_and_request_id(doc):
    for path, item in doc["paths"].items():
        for method in METHODS:
            op = item.get(method)
            if not op:
                continue
            assert op.get("operationId") and op.get("tags"), (method, path)
            for status, resp in op["responses"].items():
                resp = deref(doc, resp)
                assert "X-Request-Id" in (resp.get("headers") or {}), (method, path, status)
                if status.startswith(("4", "5")):
                    assert resp.get("content"), "%s %s %s has no body schema" % (method, path,
                                                                                 status)
            if path.startswith(("/invoke", "/2015-03-31", "/2014-11-13")):
                codes = set(op["responses"])
                assert {"400", "404", "413", "429"} <= codes, (method, path, codes)
                throttled = deref(doc, op["responses"]["429"])
                assert "Retry-After" in throttled["headers"], (method, path)


def normalize(value):
    """Request ids and uptimes differ from run to run."""
    if isinstance(value, dict):
        return {k: (None if k == "uptimeSeconds" else normalize(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [normalize(v) for v in value]
    if isinstance(value, str):
        return UUID.sub("<uuid>", value)
    return value


def request_examples(doc, item, op, name):
    """(path params, query, headers, body or None, linked) for example `name` of op."""
    params = [deref(doc, p) for p in item.get("parameters", []) + op.get("parameters", [])]
    values = {"path": {}, "query": {}, "header": {}}
    linked = False
    for p in params:
        examples = p.get("examples") or {}
        if name in examples:
            values[p["in"]][p["name"]] = deref(doc, examples[name])["value"]
            linked = True
        elif p["in"] == "path":
            values["path"][p["name"]] = (deref(doc, next(iter(examples.values())))["value"]
                                         if examples else p.get("example"))
    body = None
    content = (deref(doc, op.get("requestBody", {})).get("content") or {})
    examples = (content.get("application/json") or {}).get("examples") or {}
    if name in examples:
        body = json.dumps(deref(doc, examples[name])["value"]).encode()
        linked = True
    return values, body, linked


def replays(doc):
    """Every named example of every operation: (label, method, path, headers, body, status,
    expected body or None)."""
    out = []
    for template, item in doc["paths"].items():
        for method in METHODS:
            op = item.get(method)
            if not op:
                continue
            for status, resp in op["responses"].items():
                resp = deref(doc, resp)
                named = {n: None for n in resp.get("x-lgw-examples", [])}
                for media in (resp.get("content") or {}).values():
                    for n, ex in (media.get("examples") or {}).items():
                        named[n] = deref(doc, ex)
                for n, ex in named.items():
                    values, body, linked = request_examples(doc, item, op, n)
                    headers = {}
                    if ex and "x-lgw-request-body" in ex:
                        body, linked = ex["x-lgw-request-body"].encode(), True
                    if ex and "x-lgw-request-headers" in ex:
                        headers.update(ex["x-lgw-request-headers"])
                        linked = True
                    if not linked:
                        continue  # a shared response's example that belongs to another operation
                    headers.update({k: str(v) for k, v in values["header"].items()})
                    path = template
                    for k, v in values["path"].items():
                        path = path.replace("{%s}" % k, v)
                    out.append(("%s %s %s %s" % (method.upper(), template, status, n),
                                method.upper(), path, headers, body, int(status),
                                ex["value"] if ex else None))
    return out


def test_examples_are_real_answers(gw, doc):
    cases = replays(doc)
    assert len(cases) >= 25
    for label, method, path, headers, body, status, expected in cases:
        got_status, hdrs, data = gw.request(method, path, body=body, headers=headers)
        assert got_status == status, "%s: answered %d %r" % (label, got_status, data[:300])
        if expected is None:
            assert data == b"", label
            continue
        assert normalize(json.loads(data)) == normalize(expected), label


def test_every_request_body_example_is_replayed(doc):
    replayed = {(c[1], c[0].split()[1], c[0].split()[-1]) for c in replays(doc)}
    for template, item in doc["paths"].items():
        for method in METHODS:
            op = item.get(method)
            content = op and (deref(doc, op.get("requestBody", {})).get("content") or {})
            for name in ((content or {}).get("application/json") or {}).get("examples") or {}:
                assert (method.upper(), template, name) in replayed, \
                    "request example %r of %s %s has no answer to check" % (name, method, template)


def test_document_lints_clean(node_tools):
    r = subprocess.run([os.path.join(node_tools, "redocly"), "lint", "--config", "redocly.yaml",
                        "--format", "stylish", "../../openapi/openapi.yaml"],
                       cwd=CONTRACT, capture_output=True, text=True, timeout=300)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    problems = re.findall(r"^\s*\d+:\d+\s+(?:warning|error)\s.*$", out, re.M)
    assert problems == [], out
    assert "Your API description is valid" in out, out


# ---- in a real browser, and from another language ----

def test_docs_page_in_headless_chromium(gw, node_tools):
    shot = os.path.join(os.path.dirname(BIN), "docs-page.png")
    r = subprocess.run(["node", os.path.join(CONTRACT, "docs_browser.mjs"),
                        "http://%s:%d" % (gw.host, gw.port), shot],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    seen = json.loads(r.stdout.strip().splitlines()[-1])
    assert seen["operations"] >= 14 and seen["missing"] == 0
    assert seen["tryIt"] == {"status": "200", "body": {"from": "the docs page", "n": 42}}
    with open(shot, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_typed_client_calls_invoke_and_invoke_async(gw, node_tools):
    base = "http://%s:%d" % (gw.host, gw.port)
    gen = os.path.join(CONTRACT, "generated")
    r = subprocess.run([os.path.join(node_tools, "openapi-typescript"), base + "/openapi.json",
                        "-o", os.path.join(gen, "schema.d.ts")],
                       cwd=CONTRACT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    r = subprocess.run([os.path.join(node_tools, "tsc"), "-p", "tsconfig.json"],
                       cwd=CONTRACT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, "tsc:\n" + r.stdout + r.stderr
    r = subprocess.run(["node", os.path.join(gen, "js", "client.js"), base],
                       cwd=CONTRACT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    seen = json.loads(r.stdout.strip().splitlines()[-1])
    assert seen["invoke"] == {"orderId": 7, "from": "typed client"}
    assert seen["invokeAsync"]["status"] == 202


# ---- the contract checker itself ----

def run_checker(tmp_path, records):
    log = tmp_path / "responses.jsonl"
    with open(log, "w") as f:
        for rec in records:
            f.write(json.dumps(rec) + "\n")
    # Debian's python3, with python3-jsonschema (the make target runs it the same way).
    return subprocess.run(["/usr/bin/python3", os.path.join(CONTRACT, "check_responses.py"),
                           SOURCE, str(log)],
                          capture_output=True, text=True, timeout=120)


def response(method, url, status, body, headers=None, rid="f317790d-832b-42a3-b2b7-c94760042657"):
    hdrs = [["Content-Type", "application/json"], ["X-Request-Id", rid]]
    hdrs += [[k, v] for k, v in (headers or {}).items()]
    if isinstance(body, (dict, list)):
        body = json.dumps(body)
    return {"port": 1, "test": "synthetic", "method": method, "url": url, "status": status,
            "headers": hdrs, "body": base64.b64encode(body.encode()).decode()}


GATEWAY = {"gateway": 1, "mode": "local",
           "routes": [{"method": "GET", "path": "/hello/{name}", "function": "hello"},
                      {"method": "ANY", "path": "/api/{proxy+}", "function": "echo"}]}
NOT_FOUND = {"error": {"type": "LambdaClientError", "message": "Function not found: x",
                       "function": "nope", "requestId": "f317790d-832b-42a3-b2b7-c94760042657",
                       "awsErrorType": "ResourceNotFoundException"}}


def test_checker_accepts_good_answers(tmp_path):
    good = [
        GATEWAY,
        response("POST", "/invoke/echo", 200, {"a": 1}),
        response("POST", "/invoke/nope", 404, NOT_FOUND),
        response("GET", "/nothing", 404, {"error": {
            "type": "NotFound", "message": "no endpoint GET /nothing",
            "requestId": "f317790d-832b-42a3-b2b7-c94760042657"}}),
        response("GET", "/invoke/echo", 405, {"error": {
            "type": "MethodNotAllowed", "message": "m",
            "requestId": "f317790d-832b-42a3-b2b7-c94760042657"}}, {"Allow": "POST"}),
        response("PUT", "/api/a/b", 418, "teapot", {"apigw-requestid":
                                                     "f317790d-832b-42a3-b2b7-c94760042657"}),
    ]
    r = run_checker(tmp_path, good)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "5 passed, 0 failed" in r.stdout


BAD = [
    ("unknown path answered 200", response("GET", "/secret", 200, {"a": 1})),
    ("undocumented status", response("POST", "/invoke/echo", 418, {"a": 1})),
    ("missing X-Request-Id", dict(response("POST", "/invoke/echo", 200, {}),
                                  headers=[["Content-Type", "application/json"]])),
    ("error body of another shape", response("POST", "/invoke/nope", 404, {"message": "x"})),
    ("wrong error type for the status",
     response("POST", "/invoke/nope", 404, dict(NOT_FOUND, error=dict(
         NOT_FOUND["error"], type="BadRequest")))),
    ("not JSON", response("POST", "/invoke/echo", 200, "{oops")),
    ("429 without Retry-After", response("POST", "/invoke/echo", 429, {"error": {
        "type": "LambdaClientError", "message": "Rate Exceeded.", "function": "echo",
        "requestId": "f317790d-832b-42a3-b2b7-c94760042657",
        "awsErrorType": "TooManyRequestsException"}})),
    ("405 without Allow", response("GET", "/invoke/echo", 405, {"error": {
        "type": "MethodNotAllowed", "message": "m",
        "requestId": "f317790d-832b-42a3-b2b7-c94760042657"}})),
    ("a request id that is no UUID", response("POST", "/invoke/echo", 200, {}, rid="abc")),
    ("Invoke API error without x-amzn-ErrorType",
     response("POST", "/2015-03-31/functions/nope/invocations", 404, {"Type": "User",
                                                                      "Message": "x"},
              {"x-amzn-RequestId": "f317790d-832b-42a3-b2b7-c94760042657",
               "X-Amz-Executed-Version": "$LATEST"})),
    ("a body on the Event answer", response(
        "POST", "/2015-03-31/functions/echo/invocations", 202, {"a": 1},
        {"x-amzn-RequestId": "f317790d-832b-42a3-b2b7-c94760042657",
         "X-Amz-Executed-Version": "$LATEST"})),
    ("an async answer without requestId", response("POST", "/invoke-async/echo", 202,
                                                   {"status": 202})),
    ("a path no route of this gateway matches", response("GET", "/api2/x", 200, "x")),
]


@pytest.mark.parametrize("why,record", BAD, ids=[b[0] for b in BAD])
def test_checker_rejects_what_the_document_does_not_allow(tmp_path, why, record):
    r = run_checker(tmp_path, [GATEWAY, copy.deepcopy(record)])
    assert r.returncode == 1, "%s passed:\n%s%s" % (why, r.stdout, r.stderr)
    assert "0 passed, 1 failed" in r.stdout, r.stdout
    assert "FAIL" in r.stderr


def test_checker_fails_when_nothing_was_recorded(tmp_path):
    r = run_checker(tmp_path, [GATEWAY])
    assert r.returncode == 1

#!/usr/bin/python3
"""The contract check: every response the integration tests received from a gateway (recorded by
tests/integration/conftest.py in a JSON-lines file) must be one that openapi/openapi.yaml
describes: its status listed for that operation, the documented headers present and valid, the
body of the documented media type and valid against its schema.

    check_responses.py openapi/openapi.yaml build/contract/responses.jsonl

How a request finds its description, as the gateway routes it: the document's fixed paths
first; then the handler routes that gateway was configured with (the default GET /hello/{name}
is described in the document, any other route by components/pathItems/HandlerRoute); a path
nothing serves must have answered the document's x-lgw-unmatched 404, a served path asked with
another method its 405. HEAD is GET without a body. Exit status 1 on any mismatch, or when
nothing was recorded (a check that saw nothing proves nothing).

Uses Debian's python3-yaml and python3-jsonschema (JSON Schema 2020-12, as OpenAPI 3.1).
"""
import base64
import collections
import json
import re
import sys
import urllib.parse

import jsonschema
import yaml

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


class Doc:
    def __init__(self, path):
        with open(path) as f:
            self.doc = yaml.safe_load(f)
        self.resolver = jsonschema.RefResolver.from_schema(self.doc)
        self.format_checker = jsonschema.FormatChecker()
        self.fixed = []  # (regex, template, path item), literal paths first
        self.route_ops = {}  # (METHOD, path) -> (template, operation) for documented routes
        for template, item in self.doc["paths"].items():
            route = None
            for m in METHODS:
                if m in item and "x-lgw-handler-route" in item[m]:
                    route = item[m]["x-lgw-handler-route"]
                    self.route_ops[(route["method"], route["path"])] = (template, item[m])
            if route is None:
                self.fixed.append((template_regex(template), template, item))
        self.fixed.sort(key=lambda t: "{" in t[1])
        self.unmatched = self.doc["x-lgw-unmatched"]

    def deref(self, obj):
        while isinstance(obj, dict) and "$ref" in obj:
            obj = self.resolver.resolve(obj["$ref"])[1]
        return obj

    def validate(self, value, schema):
        """A list of error messages (empty when value is valid)."""
        v = jsonschema.Draft202012Validator(schema, resolver=self.resolver,
                                            format_checker=self.format_checker)
        return ["%s at %s" % (e.message, "/".join(map(str, e.absolute_path)) or "(root)")
                for e in v.iter_errors(value)]


def template_regex(template):
    """An OpenAPI path template as a regex: a {param} is one non-empty segment."""
    out = ""
    for part in re.split(r"(\{[^}/]+\})", template):
        out += "[^/]+" if part.startswith("{") else re.escape(part)
    return re.compile("^" + out + "$")


def route_regex(path):
    """A handler route's path (API Gateway syntax): {p} one segment, a last {p+} the rest."""
    out = ""
    for seg in path.strip("/").split("/") if path != "/" else []:
        if seg.startswith("{") and seg.endswith("+}"):
            out += "/.+"
        elif seg.startswith("{"):
            out += "/[^/]+"
        else:
            out += "/" + re.escape(seg)
    return re.compile("^" + (out or "/") + "$")


def find(rec, routes, doc):
    """(kind, label, operation or response) for the record: kind "op" or "response"."""
    method = rec["method"].upper()
    path = urllib.parse.unquote(urllib.parse.urlsplit(rec["url"]).path)
    lookup = "get" if method == "HEAD" else method.lower()
    for rx, template, item in doc.fixed:
        if rx.match(path):
            if lookup in item:
                return "op", "%s %s" % (method, template), item[lookup]
            return "response", "%s %s (405: another method)" % (method, template), \
                doc.unmatched["method"]
    allowed = False
    for r in routes:
        if not route_regex(r["path"]).match(path):
            continue
        if r["method"] in (method, "ANY") or (r["method"] == "GET" and method == "HEAD"):
            key = (r["method"], r["path"])
            if key in doc.route_ops and r.get("function") == "hello":
                template, op = doc.route_ops[key]
                return "op", "%s %s (default route)" % (method, template), op
            hr = doc.deref(doc.unmatched["handlerRoute"])
            return "op", "%s %s (handler route)" % (method, r["path"]), hr["get"]
        allowed = True
    if allowed:
        return "response", "%s %s (405: route with another method)" % (method, path), \
            doc.unmatched["method"]
    return "response", "%s %s (404: no endpoint)" % (method, path), doc.unmatched["path"]


def pick_response(op, status):
    responses = op.get("responses", {})
    for key in (str(status), "%dXX" % (status // 100), "default"):
        if key in responses:
            return key, responses[key]
    return None, None


def media_match(content, ctype):
    if not ctype:
        return None
    base = ctype.split(";")[0].strip().lower()
    for key in (base, base.split("/")[0] + "/*", "*/*"):
        if key in content:
            return key
    return None


def header_value(schema, value):
    types = schema.get("type")
    if types == "integer" or (isinstance(types, list) and "integer" in types):
        try:
            return int(value)
        except ValueError:
            return value
    return value


def check(rec, routes, doc):
    """Returns (label, list of problems)."""
    kind, label, target = find(rec, routes, doc)
    status = rec["status"]
    if kind == "op":
        key, resp = pick_response(target, status)
        if resp is None:
            return label, ["status %d is not documented (documented: %s)"
                           % (status, ", ".join(target.get("responses", {})))]
        label += " -> " + key
    else:
        resp = target
        want = 404 if "404" in label else 405
        if status != want:
            return label, ["answered %d; an unknown path must answer 404 NotFound and a wrong "
                           "method 405 MethodNotAllowed" % status]
        label += " -> %d" % want
    resp = doc.deref(resp)
    problems = []
    headers = {}
    for k, v in rec["headers"]:
        headers.setdefault(k.lower(), v)
    for name, h in (resp.get("headers") or {}).items():
        h = doc.deref(h)
        value = headers.get(name.lower())
        if value is None:
            if h.get("required"):
                problems.append("header %s is missing" % name)
            continue
        schema = doc.deref(h.get("schema", {}))
        for e in doc.validate(header_value(schema, value), h.get("schema", {})):
            problems.append("header %s: %r: %s" % (name, value, e))
    body = base64.b64decode(rec["body"])
    content = resp.get("content")
    if rec["method"].upper() == "HEAD":
        return label, problems
    if not content:
        if body:
            problems.append("a body where none is documented: %r" % body[:200])
        return label, problems
    ctype = headers.get("content-type")
    media = media_match(content, ctype)
    if media is None:
        problems.append("Content-Type %r is not one of the documented %s"
                        % (ctype, ", ".join(content)))
        return label, problems
    if "*" in media:
        return label, problems  # any media type, any bytes (a handler route's own answer)
    schema = (content[media] or {}).get("schema", {})
    base = (ctype or "").split(";")[0].strip().lower()
    if base == "application/json" or base.endswith("+json"):
        try:
            value = json.loads(body)
        except ValueError as e:
            problems.append("the body is not JSON (%s): %r" % (e, body[:200]))
            return label, problems
    elif base.startswith("text/") or base in ("application/yaml", "application/javascript"):
        try:
            value = body.decode()
        except UnicodeDecodeError:
            problems.append("the %s body is not UTF-8" % base)
            return label, problems
    else:
        return label, problems  # binary: only the media type can be checked
    for e in doc.validate(value, schema):
        problems.append("body: %s (body: %s)" % (e, body[:300].decode(errors="replace")))
    return label, problems


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    doc = Doc(sys.argv[1])
    routes_of = {}
    seen = collections.Counter()
    failures = []
    checked = 0
    with open(sys.argv[2]) as f:
        for line in f:
            rec = json.loads(line)
            if "gateway" in rec:
                routes_of[rec["gateway"]] = rec["routes"]
                continue
            checked += 1
            label, problems = check(rec, routes_of.get(rec["port"], []), doc)
            seen[label] += 1
            if problems:
                failures.append((rec, label, problems))
    for rec, label, problems in failures[:50]:
        print("FAIL %s %s -> %d: %s\n     in %s" % (rec["method"], rec["url"][:200], rec["status"],
                                                    label, rec["test"] or "?"), file=sys.stderr)
        for p in problems[:5]:
            print("     - " + p[:600], file=sys.stderr)
    if len(failures) > 50:
        print("... and %d more" % (len(failures) - 50), file=sys.stderr)
    print("contract: %d responses checked against %s, %d operation/status pairs seen"
          % (checked, sys.argv[1], len(seen)))
    print("contract: %d passed, %d failed" % (checked - len(failures), len(failures)))
    if checked == 0:
        print("contract: nothing was recorded (is LGW_CONTRACT_LOG set for the tests?)",
              file=sys.stderr)
        return 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/python3
"""Builds what the gateway serves from openapi/: the document as JSON (from the one YAML
source) and a C file embedding every file of GET /openapi.json, /openapi.yaml, /docs and
/docs/{asset} (server/assets.h declares the table).

    gen.py --yaml openapi/openapi.yaml --ui openapi/ui \
           --json build/gen/openapi.json --c build/gen/lgw_assets.c

Runs under Debian's /usr/bin/python3 with python3-yaml. Fails (exit 1, one line) on a document
that is not plain JSON data: a YAML date, a non-string key, a NaN, or a duplicate key.
"""
import argparse
import hashlib
import json
import math
import os
import re
import sys

import yaml


class StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys (PyYAML silently keeps the last one)."""


def _mapping(loader, node, deep=False):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, "duplicate key %r" % (key,), key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def check_json_data(v, where="#"):
    """Raises ValueError unless v is made of JSON types only."""
    if isinstance(v, dict):
        for k, x in v.items():
            if not isinstance(k, str):
                raise ValueError("%s: key %r is not a string (quote it)" % (where, k))
            check_json_data(x, where + "/" + k.replace("~", "~0").replace("/", "~1"))
    elif isinstance(v, list):
        for i, x in enumerate(v):
            check_json_data(x, "%s/%d" % (where, i))
    elif isinstance(v, float):
        if math.isnan(v) or math.isinf(v):
            raise ValueError("%s: %r is not a JSON number" % (where, v))
    elif not (v is None or isinstance(v, (str, bool, int))):
        raise ValueError("%s: %r (%s) is not JSON data (quote it)" % (where, v, type(v).__name__))


SOURCE_MAP = re.compile(rb"\n?(//# sourceMappingURL=[^\n]*|/\*# sourceMappingURL=[^\n]*\*/)\s*$")


def strip_source_map(data):
    """The page ships no source maps: drop the comment that would make a browser ask for one."""
    return SOURCE_MAP.sub(b"\n", data)


def c_string(data):
    """data as C string literal lines: printable ASCII as is, the rest (and ?, for trigraphs)
    as three-digit octal escapes; a line break after each newline."""
    out = []
    line = ['"']
    n = 0
    for b in data:
        if b == 0x0A:
            line.append('\\n"')
            out.append("".join(line))
            line = ['"']
            n = 0
            continue
        if b in (0x22, 0x5C):
            line.append("\\" + chr(b))
        elif 0x20 <= b < 0x7F and b != 0x3F:
            line.append(chr(b))
        else:
            line.append("\\%03o" % b)
        n += 1
        if n >= 120:
            line.append('"')
            out.append("".join(line))
            line = ['"']
            n = 0
    line.append('"')
    out.append("".join(line))
    return "\n    ".join(out)


def write_atomic(path, data):
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--yaml", required=True)
    ap.add_argument("--ui", required=True, help="openapi/ui: index.html, init.js, node_modules")
    ap.add_argument("--json", required=True)
    ap.add_argument("--c", required=True)
    a = ap.parse_args()

    with open(a.yaml, "rb") as f:
        yaml_bytes = f.read()
    try:
        doc = yaml.load(yaml_bytes, Loader=StrictLoader)
        check_json_data(doc)
    except (yaml.YAMLError, ValueError) as e:
        print("gen.py: %s: %s" % (a.yaml, str(e).replace("\n", " ")), file=sys.stderr)
        return 1
    json_bytes = json.dumps(doc, ensure_ascii=False, separators=(",", ":"),
                            allow_nan=False).encode() + b"\n"

    dist = os.path.join(a.ui, "node_modules", "swagger-ui-dist")

    def read(path, strip=False):
        with open(path, "rb") as f:
            data = f.read()
        return strip_source_map(data) if strip else data

    text = "; charset=utf-8"
    assets = [
        ("/openapi.json", "application/json", json_bytes),
        ("/openapi.yaml", "application/yaml" + text, yaml_bytes),
        ("/docs", "text/html" + text, read(os.path.join(a.ui, "index.html"))),
        ("/docs/init.js", "text/javascript" + text, read(os.path.join(a.ui, "init.js"))),
        ("/docs/swagger-ui.css", "text/css" + text,
         read(os.path.join(dist, "swagger-ui.css"), True)),
        ("/docs/swagger-ui-bundle.js", "text/javascript" + text,
         read(os.path.join(dist, "swagger-ui-bundle.js"), True)),
        ("/docs/LICENSE", "text/plain" + text, read(os.path.join(dist, "LICENSE"))),
        ("/docs/NOTICE", "text/plain" + text, read(os.path.join(dist, "NOTICE"))),
    ]

    parts = [
        "/* Generated by openapi/gen.py from openapi/ and swagger-ui-dist: do not edit. */\n",
        "#include \"assets.h\"\n\n",
    ]
    for i, (_, _, data) in enumerate(assets):
        parts.append("static const unsigned char asset%d[] =\n    %s;\n\n" % (i, c_string(data)))
    parts.append("const struct lgw_asset lgw_assets[] = {\n")
    for i, (path, ctype, data) in enumerate(assets):
        etag = '\\"%s\\"' % hashlib.sha256(data).hexdigest()[:20]
        parts.append('    {"%s", "%s", asset%d, %d, "%s"},\n' % (path, ctype, i, len(data), etag))
    parts.append("};\n\nconst size_t lgw_asset_count = sizeof(lgw_assets) / sizeof(lgw_assets[0]);\n")

    write_atomic(a.json, json_bytes)
    write_atomic(a.c, "".join(parts).encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())

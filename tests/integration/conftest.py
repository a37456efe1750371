"""Shared fixtures: start the real gateway binary on a free loopback port and talk HTTP to it.

LGW_BIN names the binary (build/lambda-gateway by default; the sanitizer run passes
build/san/lambda-gateway). Every gateway a test starts is stopped with SIGTERM at the end, and the
test fails if it did not exit 0 or if a sanitizer reported anything on its stderr.

With LGW_CONTRACT_LOG set (the Makefile's integration target sets it), every HTTP response that a
test reads from a gateway through http.client (and so through boto3) is recorded there, one JSON
line each; tests/contract/check_responses.py then validates them all against openapi/openapi.yaml.
"""
import base64
import http.client
import io
import json
import os
import re
import signal
import subprocess
import tempfile
import threading
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.join(ROOT, os.environ.get("LGW_BIN", "build/lambda-gateway"))
PLUGIN_DIR = os.path.join(ROOT, os.environ.get("LGW_PLUGIN_DIR", "build/plugins"))
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                   "WARNING: ThreadSanitizer")


class Gateway:
    """One running lambda-gateway process."""

    def __init__(self, args=(), config=None, env=None, start_timeout=10):
        self.tmp = tempfile.TemporaryDirectory(prefix="lgw-test-")
        argv = [BIN, "--listen", "127.0.0.1:0"]
        if config is not None:
            path = os.path.join(self.tmp.name, "config.json")
            with open(path, "w") as f:
                json.dump(config, f)
            argv += ["--config", path]
        argv += list(args)
        full_env = {k: v for k, v in os.environ.items() if not k.startswith(("LGW_", "AWS_"))}
        full_env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        full_env.update(env or {})
        self.stderr_path = os.path.join(self.tmp.name, "stderr")
        self._stderr = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=self._stderr,
                                     env=full_env)
        self.banner = self._read_banner(start_timeout)
        m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", self.banner)
        assert m, f"no listening line: {self.banner!r}\n{self.stderr()}"
        self.port = int(m.group(1))
        self.host = "127.0.0.1"
        self.returncode = None
        contract_gateway(self.port, args, config, env)

    def _read_banner(self, timeout):
        result = {}

        def read():
            result["line"] = self.proc.stdout.readline().decode()

        t = threading.Thread(target=read, daemon=True)
        t.start()
        t.join(timeout)
        if "line" not in result or not result["line"]:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"gateway did not start: {self.stderr()}")
        return result["line"]

    def stderr(self):
        if not self._stderr.closed:
            self._stderr.flush()
        with open(self.stderr_path, "rb") as f:
            return f.read().decode(errors="replace")

    def conn(self, timeout=30):
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def request(self, method, path, body=None, headers=None, timeout=30):
        """Returns (status, headers dict with lower-case names, body bytes)."""
        c = self.conn(timeout)
        try:
            if isinstance(body, (dict, list)):
                body = json.dumps(body).encode()
            elif isinstance(body, str):
                body = body.encode()
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            data = r.read()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, data
        finally:
            c.close()

    def post_chunked(self, path, total, headers=None, chunk=65536):
        """POSTs about total bytes with chunked encoding (no Content-Length), so a limit can only
        be enforced while the body arrives; stops sending if the server hangs up. Returns
        (status, headers as a list of pairs, body bytes)."""
        c = self.conn()
        c.putrequest("POST", path)
        c.putheader("Transfer-Encoding", "chunked")
        for name, value in (headers or {}).items():
            c.putheader(name, value)
        c.endheaders()
        piece = b"x" * chunk
        try:
            for _ in range(total // chunk + 2):
                c.send(b"%x\r\n%s\r\n" % (len(piece), piece))
            c.send(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        r = c.getresponse()
        result = r.status, r.getheaders(), r.read()
        c.close()
        return result

    def post(self, path, body=None, headers=None, timeout=30):
        return self.request("POST", path, body if body is not None else b"", headers, timeout)

    def post_json(self, path, body=None, headers=None, timeout=30):
        status, hdrs, data = self.post(path, body, headers, timeout)
        return status, hdrs, json.loads(data) if data else None

    def send_signal(self, sig=signal.SIGTERM):
        """Sends sig once; stop() then waits instead of signalling again (a second signal
        means "exit now" to the gateway)."""
        self.signalled = True
        self.proc.send_signal(sig)

    def stop(self, sig=signal.SIGTERM, timeout=30):
        contract_gateway_stopped(self.port)
        if self.returncode is not None:
            return self.returncode
        if self.proc.poll() is None and not getattr(self, "signalled", False):
            self.proc.send_signal(sig)
        try:
            self.returncode = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("gateway did not stop within %ss" % timeout)
        self.proc.stdout.close()
        self._stderr.close()
        return self.returncode

    def check_clean_exit(self):
        rc = self.stop()
        err = self.stderr()
        for mark in SANITIZER_MARKS:
            assert mark not in err, f"sanitizer report:\n{err[-6000:]}"
        assert rc == 0, f"exit status {rc}:\n{err[-3000:]}"


@pytest.fixture
def start_gateway():
    """Factory: start_gateway(args=(), config=None, env=None) -> Gateway; stopped and checked
    after the test."""
    started = []

    def start(*args, **kwargs):
        g = Gateway(*args, **kwargs)
        started.append(g)
        return g

    yield start
    for g in started:
        g.check_clean_exit()


@pytest.fixture(scope="module")
def gw():
    """A default local-mode gateway shared by a module's tests."""
    g = Gateway()
    yield g
    g.check_clean_exit()


README = open(os.path.join(ROOT, "README.md")).read()


def readme_block(after_heading, lang):
    """The first ```lang code block of the README after the text after_heading."""
    section = README.split(after_heading, 1)[1]
    return re.search(r"```%s\n(.*?)```" % lang, section, re.S).group(1)


def wait_until(pred, timeout=10, interval=0.02):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(interval)
    return pred()


# ---- the contract recording: what each gateway answered, for tests/contract ----

CONTRACT_LOG = os.path.abspath(os.environ["LGW_CONTRACT_LOG"]) if os.environ.get(
    "LGW_CONTRACT_LOG") else None
_contract_lock = threading.Lock()
_contract_ports = set()
DEFAULT_ROUTES = [{"method": "GET", "path": "/hello/{name}", "function": "hello"}]


def _contract_write(record):
    line = json.dumps(record) + "\n"
    with _contract_lock:
        with open(CONTRACT_LOG, "a") as f:
            f.write(line)


def _option(args, flag):
    args = list(args)
    for i, a in enumerate(args):
        if a == flag and i + 1 < len(args):
            return args[i + 1]
        if a.startswith(flag + "="):
            return a[len(flag) + 1:]
    return None


def contract_gateway(port, args, config, env):
    """Notes a started gateway and its handler routes (the checker needs them to tell a route's
    answer from an unknown path's): from config=, --config or LGW_CONFIG; local mode with no
    "routes" key serves the default GET /hello/{name}."""
    if not CONTRACT_LOG:
        return
    env = env or {}
    cfg = config
    path = _option(args, "--config") or env.get("LGW_CONFIG")
    if cfg is None and path:
        try:
            with open(path) as f:
                cfg = json.load(f)
        except (OSError, ValueError):
            cfg = None
    cfg = cfg if isinstance(cfg, dict) else {}
    mode = _option(args, "--mode") or env.get("LGW_MODE") or cfg.get("mode") or "local"
    if "routes" in cfg:
        routes = cfg["routes"] if isinstance(cfg["routes"], list) else []
    else:
        routes = DEFAULT_ROUTES if mode == "local" else []
    with _contract_lock:
        _contract_ports.add(port)
    _contract_write({"gateway": port, "mode": mode, "routes": routes})


def contract_gateway_stopped(port):
    """Stops recording port: another server may get it next."""
    with _contract_lock:
        _contract_ports.discard(port)


def _contract_capture(conn, resp):
    """Reads resp's body, records it, and puts it back so the caller reads it as if untouched."""
    method, url = conn._lgw_request
    data = resp.read()
    if resp.chunked:
        # http.client (and urllib3) decode chunks from fp: hand them the body as one chunk.
        raw = (b"%x\r\n%s\r\n" % (len(data), data) if data else b"") + b"0\r\n\r\n"
        resp.chunk_left = None
        resp.length = None
    else:
        raw = data
        resp.length = len(data)
    resp.fp = io.BufferedReader(io.BytesIO(raw))
    _contract_write({
        "port": conn.port, "test": os.environ.get("PYTEST_CURRENT_TEST", ""),
        "method": method, "url": url, "status": resp.status,
        "headers": [[k, v] for k, v in resp.getheaders()],
        "body": base64.b64encode(data).decode(),
    })


_http_putrequest = http.client.HTTPConnection.putrequest
_http_getresponse = http.client.HTTPConnection.getresponse


def _recording_putrequest(self, method, url, *args, **kwargs):
    self._lgw_request = (method, url)
    return _http_putrequest(self, method, url, *args, **kwargs)


def _recording_getresponse(self, *args, **kwargs):
    resp = _http_getresponse(self, *args, **kwargs)
    if (getattr(self, "_lgw_request", None) and self.host in ("127.0.0.1", "localhost", "::1")
            and self.port in _contract_ports):
        _contract_capture(self, resp)
    return resp


if CONTRACT_LOG:
    http.client.HTTPConnection.putrequest = _recording_putrequest
    http.client.HTTPConnection.getresponse = _recording_getresponse


def pytest_sessionstart(session):
    if CONTRACT_LOG:
        os.makedirs(os.path.dirname(os.path.abspath(CONTRACT_LOG)), exist_ok=True)
        with open(CONTRACT_LOG, "w"):
            pass

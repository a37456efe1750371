"""The README's claims, checked: its handler example compiles with the command it shows, loads,
and answers as shown; its quick-start curl answers as shown."""
import json
import os
import subprocess

from conftest import README, ROOT
from conftest import readme_block as code_block


def test_quick_start_echo(gw):
    assert "curl -s localhost:8080/invoke/echo -d '{\"a\":1}'\n{\"a\":1}" in README
    assert gw.post("/invoke/echo", b'{"a":1}')[2] == b'{"a":1}'


def test_handler_example_builds_loads_and_answers(start_gateway, tmp_path):
    src = code_block("## Writing a handler in C", "c")
    (tmp_path / "orders.c").write_text(src)
    build = code_block("## Writing a handler in C", "sh").splitlines()[0]
    assert build.startswith("cc ")
    cmd = build.replace("-Ihandlers", "-I" + os.path.join(ROOT, "handlers"))
    subprocess.run(cmd, shell=True, cwd=tmp_path, check=True)
    g = start_gateway(args=["--handlers", str(tmp_path / "liborders.so")])
    status, hdrs, body = g.post_json("/invoke/orders", {"orderId": 7})
    assert status == 200
    assert body == {"orderId": 7, "table": "orders", "requestId": hdrs["x-request-id"]}
    status, _, body = g.post_json("/invoke/orders", {"orderId": "x"})
    assert status == 502
    assert body["error"]["type"] == "LambdaExecuteError"
    assert body["error"]["payload"]["errorType"] == "ValueError"
    assert body["error"]["payload"]["errorMessage"] == "orderId must be an integer"


def test_config_example_is_valid(start_gateway, tmp_path):
    cfg = json.loads(code_block("Functions are configured by name:", "json"))
    src = code_block("## Writing a handler in C", "c")
    (tmp_path / "orders.c").write_text(src)
    subprocess.run(["cc", "-std=c11", "-shared", "-fPIC", "-I" + os.path.join(ROOT, "handlers"),
                    "-o", "liborders.so", "orders.c"], cwd=tmp_path, check=True)
    cfg["handlers"] = [str(tmp_path / "liborders.so")]
    del cfg["listen"]
    g = start_gateway(config=cfg)
    status, _, body = g.post_json("/invoke/orders:live", {"orderId": 1})
    assert status == 200 and body["table"] == "orders-dev"

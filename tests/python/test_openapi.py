"""The server's OpenAPI document, read by a third-party validator: what a
code generator or API explorer would load from GET /api/openapi.json
(no token). VIDSYNC_SERVER_BIN names the server binary (the Makefile sets it).
Which routes it lists is checked against the router in server/tests/openapi.rs."""

import json
import os
import subprocess
import tempfile
import urllib.request

from openapi_spec_validator import validate
from openapi_spec_validator.validation import OpenAPIV31SpecValidator

BIN = os.environ.get("VIDSYNC_SERVER_BIN")


def test_the_served_document_is_valid_openapi_3_1():
    assert BIN, "set VIDSYNC_SERVER_BIN"
    with tempfile.TemporaryDirectory(prefix="vidsync-openapi-") as data:
        proc = subprocess.Popen(
            [BIN, "serve", "--listen", "127.0.0.1:0", "--data-dir", data],
            stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
            env={**os.environ, "RUST_LOG": "warn"},
        )
        try:
            line = proc.stdout.readline().strip()
            prefix = "vidsync-server listening on "
            assert line.startswith(prefix), f"unexpected first line {line!r}"
            with urllib.request.urlopen(line[len(prefix):] + "/api/openapi.json", timeout=20) as r:
                assert r.status == 200
                doc = json.load(r)
        finally:
            proc.kill()
            proc.wait()
    assert doc["openapi"].startswith("3.1")
    validate(doc, cls=OpenAPIV31SpecValidator)
    assert "/api/projects/{project_id}/files/update" in doc["paths"]

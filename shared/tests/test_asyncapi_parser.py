"""The checked-in AsyncAPI document passes the official parser (@asyncapi/parser, npm) without
errors or warnings: an outside team's tooling (generators, validators) reads it as it is."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from puskesos_shared.contracts.schema_registry import SchemaLayout
from puskesos_shared.localstack.binaries import ASYNCAPI_PARSER_VERSION, StackError, ensure_asyncapi_parser

REPO_ROOT = Path(__file__).resolve().parents[2]

# Parses the file (relative $refs resolve against it) and prints the parser's diagnostics as JSON.
PARSE_SCRIPT = """
const { Parser, fromFile } = require(process.argv[2]);
(async () => {
  const { document, diagnostics } = await fromFile(new Parser(), process.argv[3]).parse();
  process.stdout.write(JSON.stringify({
    parsed: document !== undefined,
    channels: document ? document.channels().length : 0,
    operations: document ? document.operations().length : 0,
    diagnostics: diagnostics.map(d => ({ code: d.code, severity: d.severity, message: d.message, path: d.path })),
  }));
})().catch(err => { console.error(err); process.exit(2); });
"""


@pytest.fixture(scope="module")
def parser_package() -> Path:
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.fail("Node.js and npm are needed to validate asyncapi.json with @asyncapi/parser "
                    "(install Node 20 or later with npm)")
    try:
        return ensure_asyncapi_parser()
    except StackError as exc:
        pytest.fail(str(exc))


def _parse(parser_package: Path, document: Path, tmp_path: Path) -> dict[str, Any]:
    script = tmp_path / "parse.cjs"
    script.write_text(PARSE_SCRIPT, encoding="utf-8")
    node = shutil.which("node")
    assert node is not None
    result = subprocess.run([node, str(script), str(parser_package), str(document)], capture_output=True,
                            text=True, check=False, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    out: dict[str, Any] = json.loads(result.stdout)
    return out


def test_parser_is_the_pinned_version(parser_package: Path) -> None:
    manifest = json.loads((parser_package / "package.json").read_text(encoding="utf-8"))
    assert manifest["version"] == ASYNCAPI_PARSER_VERSION


def test_asyncapi_document_has_no_errors_or_warnings(parser_package: Path, tmp_path: Path) -> None:
    path = SchemaLayout(REPO_ROOT).asyncapi
    out = _parse(parser_package, path, tmp_path)
    serious = [d for d in out["diagnostics"] if d["severity"] in (0, 1)]  # 0 error, 1 warning
    assert serious == [], json.dumps(serious, indent=1)
    assert out["parsed"]
    document = json.loads(path.read_text(encoding="utf-8"))
    assert out["channels"] == len(document["channels"])
    assert out["operations"] == len(document["operations"])


def test_the_parser_would_catch_a_broken_document(parser_package: Path, tmp_path: Path) -> None:
    copy = tmp_path / "schemas"  # a copy, so that relative $refs resolve and the checked-in files stay as they are
    shutil.copytree(SchemaLayout(REPO_ROOT).base, copy)
    document = json.loads((copy / "asyncapi.json").read_text(encoding="utf-8"))
    document["channels"]["deadLetters"]["messages"]["DeadLetter"]["$ref"] = "#/components/messages/Missing"
    (copy / "asyncapi.json").write_text(json.dumps(document), encoding="utf-8")
    out = _parse(parser_package, copy / "asyncapi.json", tmp_path)
    assert any(d["severity"] == 0 for d in out["diagnostics"])

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from puskesos_shared.localstack import ensure_mongo_server_jar


@pytest.fixture
def stack_home(tmp_path: Path) -> Iterator[dict[str, str]]:
    """Environment of a ``puskesos`` CLI working in a home of its own (never the developer's stack); whatever
    it left running (the local stack, the demo's) is stopped afterwards."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PUSKESOS_")}
    env.update(PUSKESOS_HOME=str(tmp_path), PUSKESOS_MONGO_SERVER_JAR=str(ensure_mongo_server_jar()),
               PUSKESOS_MONGO_HEAP="512m", COLUMNS="200")
    yield env
    for stack_dir in (tmp_path / ".local" / "stack", tmp_path / ".local" / "demo" / "stack"):
        for what in ("services", "stack"):
            subprocess.run([sys.executable, "-m", "puskesos_cli.main", "--stack-dir", str(stack_dir), what, "down"],
                           env=env, cwd=tmp_path, capture_output=True, check=False, timeout=90)

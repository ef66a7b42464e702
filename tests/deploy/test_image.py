"""The Dockerfile's build stage, replayed without Docker: its COPY steps into a scratch folder, its
``uv sync`` steps as written, then the resulting environment is checked the way the runtime stage
uses it. Proves the lock installs with ``--locked --no-dev``, that the files the build copies are
enough, and that no service needs a development-only package at run time.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.support import GATEWAY_MODULE, ROOT, SERVICES

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

DEV_ONLY = ("pytest", "mypy", "ruff", "hypothesis", "testcontainers")


def build_stage() -> list[str]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    start = next(i for i, line in enumerate(lines) if re.match(r"FROM \S+ AS build$", line))
    end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("FROM "))
    return lines[start + 1:end]


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    uv = shutil.which("uv")
    assert uv, "uv is needed to replay the image build"
    work = tmp_path_factory.mktemp("image")
    src, venv = work / "src", work / "venv"
    env = {**os.environ, "UV_PROJECT_ENVIRONMENT": str(venv), "UV_PYTHON": sys.executable,
           "UV_PYTHON_DOWNLOADS": "never"}
    env.pop("VIRTUAL_ENV", None)
    steps = build_stage()
    assert any("uv sync" in s for s in steps)
    for step in steps:
        instruction, _, rest = step.partition(" ")
        if instruction == "COPY" and not rest.startswith("--from"):
            *sources, dest = shlex.split(rest)
            for source in sources:
                target = src / (dest if dest not in ("./", ".") else source)
                origin = ROOT / source
                assert origin.exists(), f"the Dockerfile copies {source}, which does not exist"
                if origin.is_dir():
                    shutil.copytree(origin, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
                else:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(origin, target)
        elif instruction == "RUN":
            command = re.sub(r"--mount=\S+\s*", "", rest).strip()
            assert command.startswith("uv sync"), f"unexpected build step: {command}"
            proc = subprocess.run([uv, *shlex.split(command)[1:]], cwd=src, env=env, capture_output=True,
                                  text=True, timeout=540, check=False)
            assert proc.returncode == 0, f"{command} failed:\n{proc.stderr[-3000:]}"
    assert (venv / "bin" / "python").exists()
    return venv


def run(venv: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(venv / "bin" / "python"), *args], capture_output=True, text=True, timeout=120,
                          cwd=venv.parent, env={"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "COLUMNS": "200"},
                          check=False)


def test_no_development_package_in_the_image(venv: Path) -> None:
    proc = run(venv, "-c", "import importlib.util, sys; "
                           f"print([m for m in {DEV_ONLY!r} if importlib.util.find_spec(m)])")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_workspace_packages_are_installed_not_linked(venv: Path) -> None:
    proc = run(venv, "-c", "import puskesos_shared, puskesos_intake; print(puskesos_shared.__file__)")
    assert proc.returncode == 0, proc.stderr
    assert str(venv) in proc.stdout, "the image must not depend on /src (editable install)"


@pytest.mark.parametrize("name", [*SERVICES, "console"])
def test_every_service_imports_in_the_image(venv: Path, name: str) -> None:
    proc = run(venv, "-c", f"import puskesos_{name}.__main__, puskesos_{name}.app")
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_operator_tools_and_gateway_run_in_the_image(venv: Path) -> None:
    for module in ("puskesos_distribution.cli", GATEWAY_MODULE):
        proc = run(venv, "-m", module, "--help")
        assert proc.returncode == 0, f"{module}: {proc.stderr[-2000:]}"


def test_the_console_ships_its_templates_assets_and_catalogs(venv: Path) -> None:
    """The console's pages need its non-Python files inside the installed package (a wheel, not /src)."""
    proc = run(venv, "-c", "import puskesos_console, pathlib; root = pathlib.Path(puskesos_console.__file__).parent; "
                           "print(*sorted(p.relative_to(root).parts[0] for p in root.rglob('*.*') "
                           "if p.suffix in ('.html', '.css', '.js', '.json', '.svg')))")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert {"templates", "static", "i18n"} <= set(proc.stdout.split())

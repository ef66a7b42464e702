"""Compose's variable interpolation, done here (no Docker engine on CI) to check the final config."""

from __future__ import annotations

import re
from typing import Any

import yaml

from tests.deploy.support import COMPOSE_FILE

_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


class MissingVariable(KeyError):
    pass


def interpolate(text: str, env: dict[str, str]) -> str:
    """``${VAR}``, ``${VAR:-default}``, ``${VAR-default}``, ``${VAR:?message}``, ``$$`` as compose does."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.group(1), match.group(2), match.group(3) or ""
        value = env.get(name)
        unset_or_empty = value is None or (value == "" and op is not None and op.startswith(":"))
        if op in (":-", "-") and unset_or_empty:
            return arg
        if op in (":?", "?") and unset_or_empty:
            raise MissingVariable(f"{name}: {arg or 'required'}")
        return value or ""

    return _VAR.sub(replace, text)


def _walk(value: Any, env: dict[str, str]) -> Any:
    if isinstance(value, str):
        return interpolate(value, env)
    if isinstance(value, list):
        return [_walk(v, env) for v in value]
    if isinstance(value, dict):
        return {k: _walk(v, env) for k, v in value.items()}
    return value


def resolved_compose(env: dict[str, str]) -> dict[str, Any]:
    """The file as compose sees it: YAML (anchors and merge keys resolved), then values interpolated."""
    data = _walk(yaml.safe_load(COMPOSE_FILE.read_text()), env)
    assert isinstance(data, dict)
    return data


def strings(value: Any) -> list[str]:
    """Every string value in a parsed YAML document (compose interpolates values, not comments)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [s for v in value for s in strings(v)]
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings(v)]
    return []


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}

"""Validates KEDA objects against the models generated from KEDA's CRDs (``cloudcoil-models-keda``).

Run in an isolated environment, so that package (and the pytest plugin its base package brings)
never enters the workspace: ``uv run --isolated --no-project --with cloudcoil-models-keda==2.16.1.0
--with pyyaml python tests/deploy/keda_crd_check.py FILE...``. Prints a JSON list of problems
(empty when every ScaledObject is valid) and exits 0; a crash exits non-zero.
"""

from __future__ import annotations

import json
import sys
import typing
from pathlib import Path
from typing import Any

import pydantic
import yaml
from cloudcoil.models.keda.v1alpha1 import ScaledObject

MODELS: dict[str, type[pydantic.BaseModel]] = {"ScaledObject": ScaledObject}


def _model_types(annotation: Any) -> list[type[pydantic.BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
        return [annotation]
    if typing.get_origin(annotation) is dict:
        return []  # free-form maps (labels, trigger metadata)
    found: list[type[pydantic.BaseModel]] = []
    for arg in typing.get_args(annotation):
        found += _model_types(arg)
    return found


def unknown_fields(model: type[pydantic.BaseModel], data: Any, path: str = "") -> list[str]:
    """Keys the CRD does not define (the API server would silently prune them)."""
    if not isinstance(data, dict):
        return []
    fields = {(f.alias or name): f for name, f in model.model_fields.items()}
    out = []
    for key, value in data.items():
        field = fields.get(key)
        if field is None:
            out.append(f"{path}.{key}")
            continue
        for sub in _model_types(field.annotation)[:1]:
            items = value if isinstance(value, list) else [value]
            for i, item in enumerate(items):
                suffix = f"[{i}]" if isinstance(value, list) else ""
                out += unknown_fields(sub, item, f"{path}.{key}{suffix}")
    return out


def problems(doc: dict[str, Any]) -> list[str]:
    model = MODELS[doc["kind"]]
    label = f"{doc['kind']}/{doc['metadata']['name']}"
    out = [f"{label}: unknown field {f}" for f in unknown_fields(model, doc)]
    try:
        model.model_validate(doc)
    except pydantic.ValidationError as exc:
        out += [f"{label}: {'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
    for i, trigger in enumerate(doc.get("spec", {}).get("triggers", [])):
        for key, value in (trigger.get("metadata") or {}).items():
            if not isinstance(value, str):  # the CRD's metadata is map[string]string
                out.append(f"{label}: triggers[{i}].metadata.{key} must be a string, not {type(value).__name__}")
    return out


def main(paths: list[str]) -> int:
    found: list[str] = []
    for path in paths:
        for doc in yaml.safe_load_all(Path(path).read_text()):
            if doc and doc.get("kind") in MODELS:
                found += problems(doc)
    print(json.dumps(found))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

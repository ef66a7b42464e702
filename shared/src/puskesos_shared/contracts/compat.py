"""Is a new JSON Schema of an event version compatible with the published one?

The rule: every message valid under the published schema stays valid under the current
one, and the current one asks for nothing new. Consumers and the audit replay read old
events through current models, so a published ``vN`` may only widen: adding an optional
property, adding an enum value or an ``anyOf`` branch, relaxing a bound. Anything else is
a breaking change and needs ``vN+1`` (a new model and a new subject).

Reported, each with the JSON path of the property (``data.household.members[].nik``):

* a property removed;
* a type changed (including an ``anyOf`` branch removed, enum values removed, a const
  changed, a format or pattern added or changed, a bound tightened);
* a property that became required (a new required property, or an optional one turned
  required);
* additional properties forbidden where they were allowed.

Local ``$ref`` s (``#/$defs/...``) are resolved on both sides, so nested models, arrays,
dictionaries and ``$defs`` are compared where they are used. Annotations (title,
description, default, examples) never matter.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

Schema = dict[str, Any]
Branch = tuple[tuple[str, ...], Schema]  # the $refs followed to reach it, the merged schema

_NOTHING: Schema = {"not": {}}
_ANNOTATIONS = frozenset({"title", "description", "default", "examples", "$comment", "deprecated"})
_LOWER_BOUNDS = ("minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties")
_UPPER_BOUNDS = ("maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties")


def incompatibilities(published: Schema, current: Schema) -> list[str]:
    """Incompatible changes from ``published`` to ``current`` (two schemas of one event version)."""
    return _Comparison(published, current).compare(published, current, "")


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _where(path: str) -> str:
    return path or "(root)"


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _kind(schema: Schema) -> str:
    """The JSON type a (single-branch) schema accepts: ``any`` when unconstrained."""
    declared = schema.get("type")
    if isinstance(declared, str):
        return declared
    if "const" in schema:
        return _json_type(schema["const"])
    if "enum" in schema:
        kinds = {_json_type(v) for v in schema["enum"]}
        return kinds.pop() if len(kinds) == 1 else "any"
    if schema.get("not") == {}:
        return "nothing"
    if "properties" in schema or "additionalProperties" in schema:
        return "object"
    if "items" in schema or "prefixItems" in schema:
        return "array"
    return "any"


def _accepts_kind(published: str, current: str) -> bool:
    return (
        published == current
        or current == "any"
        or published == "nothing"
        or (published, current) == ("integer", "number")
    )


def _values(schema: Schema) -> list[Any] | None:
    if "const" in schema:
        return [schema["const"]]
    if "enum" in schema:
        return list(schema["enum"])
    return None


def _as_schema(value: Any) -> Schema:
    if value is True:
        return {}
    if value is False:
        return dict(_NOTHING)
    if not isinstance(value, dict):
        raise ValueError(f"not a JSON Schema: {value!r}")
    return value


def _pointer(root: Schema, ref: str) -> Schema:
    if not ref.startswith("#"):
        raise ValueError(f"only local $ref is supported, got {ref!r}")
    node: Any = root
    for token in [t for t in ref[1:].split("/") if t]:
        key = token.replace("~1", "/").replace("~0", "~")
        try:
            node = node[int(key)] if isinstance(node, list) else node[key]
        except (KeyError, IndexError, ValueError):
            raise ValueError(f"unresolvable $ref {ref!r}") from None
    return _as_schema(node)


def _merge_all_of(base: Schema, parts: list[Schema]) -> Schema:
    merged = dict(base)
    for part in parts:
        for key, value in part.items():
            if key == "properties":
                merged["properties"] = {**merged.get("properties", {}), **value}
            elif key == "required":
                merged["required"] = [*merged.get("required", []),
                                      *[r for r in value if r not in merged.get("required", [])]]
            else:
                merged.setdefault(key, value)
    return merged


class _Comparison:
    def __init__(self, published_root: Schema, current_root: Schema) -> None:
        self.roots = (published_root, current_root)
        self.active: set[tuple[tuple[str, ...], tuple[str, ...]]] = set()

    # resolution -----------------------------------------------------------------------

    def _resolve(self, schema: Any, side: int, refs: tuple[str, ...] = ()) -> tuple[tuple[str, ...], Schema]:
        """Follows ``$ref`` (merging sibling keywords) and ``allOf``; drops annotations."""
        schema = _as_schema(schema)
        while "$ref" in schema:
            ref = schema["$ref"]
            if ref in refs:  # a reference cycle with nothing in between
                break
            refs = (*refs, ref)
            siblings = {k: v for k, v in schema.items() if k != "$ref"}
            schema = {**_pointer(self.roots[side], ref), **siblings}
        if "allOf" in schema:
            parts = [self._resolve(part, side, refs) for part in schema["allOf"]]
            refs = tuple(dict.fromkeys(r for part_refs, _ in parts for r in part_refs)) or refs
            base = {k: v for k, v in schema.items() if k != "allOf"}
            schema = _merge_all_of(base, [part for _, part in parts])
        return refs, {k: v for k, v in schema.items() if k not in _ANNOTATIONS}

    def _branches(self, schema: Any, side: int) -> list[Branch]:
        """A schema as the alternatives it accepts (``anyOf``/``oneOf``/a list of types)."""
        refs, resolved = self._resolve(schema, side)
        alternatives = [*resolved.get("anyOf", []), *resolved.get("oneOf", [])]
        if alternatives:
            base = {k: v for k, v in resolved.items() if k not in ("anyOf", "oneOf", "discriminator")}
            out: list[Branch] = []
            for alternative in alternatives:
                sub_refs, sub = self._resolve(alternative, side, refs)
                out.extend(self._branches_of_types(sub_refs, {**base, **sub}))
            return out
        return self._branches_of_types(refs, resolved)

    @staticmethod
    def _branches_of_types(refs: tuple[str, ...], schema: Schema) -> list[Branch]:
        declared = schema.get("type")
        if isinstance(declared, list):
            return [(refs, {**schema, "type": t}) for t in declared]
        return [(refs, schema)]

    # comparison -----------------------------------------------------------------------

    def compare(self, published: Any, current: Any, path: str) -> list[str]:
        old, new = self._branches(published, 0), self._branches(current, 1)
        if len(old) == 1 and len(new) == 1:
            return self._compare_branch(old[0], new[0], path)
        problems: list[str] = []
        for branch in old:
            kind = _kind(branch[1])
            candidates = [b for b in new if _accepts_kind(kind, _kind(b[1]))]
            if not candidates:
                if len(old) == 1:
                    now = " | ".join(_kind(b[1]) for b in new)
                    problems.append(f"{_where(path)}: type changed {kind} -> {now}")
                else:
                    problems.append(f"{_where(path)}: anyOf branch removed ({kind})")
                continue
            attempts = [self._compare_branch(branch, candidate, path) for candidate in candidates]
            best: list[str] = min(attempts, key=len)
            problems.extend(best)
        return problems

    def _compare_branch(self, published: Branch, current: Branch, path: str) -> list[str]:
        key = (published[0], current[0])
        if (published[0] or current[0]) and key in self.active:
            return []  # recursive model: this pair is being compared further up
        self.active.add(key)
        try:
            return self._compare_single(published[1], current[1], path)
        finally:
            self.active.discard(key)

    def _compare_single(self, old: Schema, new: Schema, path: str) -> list[str]:
        where = _where(path)
        old_kind, new_kind = _kind(old), _kind(new)
        if not _accepts_kind(old_kind, new_kind):
            return [f"{where}: type changed {old_kind} -> {new_kind}"]
        if old_kind == "nothing" or (new_kind == "any" and _values(new) is None):
            return []
        problems = list(self._compare_values(old, new, where))
        problems.extend(self._compare_keywords(old, new, where))
        if new_kind == "object":
            problems.extend(self._compare_object(old, new, path))
        elif new_kind == "array":
            problems.extend(self._compare_array(old, new, path))
        return problems

    @staticmethod
    def _compare_values(old: Schema, new: Schema, where: str) -> Iterator[str]:
        old_values, new_values = _values(old), _values(new)
        if new_values is None:
            return
        if old_values is None:
            yield f"{where}: restricted to {new_values!r} (was any {_kind(old)})"
            return
        removed = [v for v in old_values if v not in new_values]
        if not removed:
            return
        if "const" in old and "const" in new:
            yield f"{where}: const changed {old['const']!r} -> {new['const']!r}"
        else:
            yield f"{where}: enum values removed: {removed!r}"

    @staticmethod
    def _compare_keywords(old: Schema, new: Schema, where: str) -> Iterator[str]:
        for keyword in ("format", "pattern", "multipleOf"):
            if keyword in new and old.get(keyword) != new[keyword]:
                if keyword in old:
                    yield f"{where}: {keyword} changed {old[keyword]!r} -> {new[keyword]!r}"
                else:
                    yield f"{where}: {keyword} {new[keyword]!r} added"
        for keyword in _LOWER_BOUNDS:
            if keyword in new and new[keyword] > old.get(keyword, -math.inf):
                yield f"{where}: {keyword} tightened {old.get(keyword, 'none')} -> {new[keyword]}"
        for keyword in _UPPER_BOUNDS:
            if keyword in new and new[keyword] < old.get(keyword, math.inf):
                yield f"{where}: {keyword} tightened {old.get(keyword, 'none')} -> {new[keyword]}"
        if new.get("uniqueItems") and not old.get("uniqueItems"):
            yield f"{where}: uniqueItems added"

    def _compare_object(self, old: Schema, new: Schema, path: str) -> list[str]:
        problems: list[str] = []
        old_props: dict[str, Any] = old.get("properties", {})
        new_props: dict[str, Any] = new.get("properties", {})
        for name, old_prop in old_props.items():
            sub = _join(path, name)
            if name not in new_props:
                problems.append(f"{sub}: property removed")
            else:
                problems.extend(self.compare(old_prop, new_props[name], sub))
        old_required = set(old.get("required", []))
        for name in new.get("required", []):
            if name in old_required:
                continue
            if name in old_props:
                problems.append(f"{_join(path, name)}: optional property became required")
            else:
                problems.append(f"{_join(path, name)}: new required property")
        old_extra, new_extra = old.get("additionalProperties", True), new.get("additionalProperties", True)
        if new_extra is False and old_extra is not False:
            problems.append(f"{_where(path)}: additional properties no longer allowed")
        elif old_extra is not False and new_extra is not True:
            problems.extend(self.compare(old_extra, new_extra, _join(path, "*")))
        if "propertyNames" in new:
            keys = _join(path, "(keys)")
            problems.extend(self.compare(old.get("propertyNames", {}), new["propertyNames"], keys))
        return problems

    def _compare_array(self, old: Schema, new: Schema, path: str) -> list[str]:
        problems: list[str] = []
        old_prefix: list[Any] = old.get("prefixItems", [])
        new_prefix: list[Any] = new.get("prefixItems", [])
        old_items, new_items = old.get("items", True), new.get("items", True)
        for i, new_item in enumerate(new_prefix):
            old_item = old_prefix[i] if i < len(old_prefix) else old_items
            problems.extend(self.compare(old_item, new_item, f"{path}[{i}]"))
        for i in range(len(new_prefix), len(old_prefix)):
            problems.extend(self.compare(old_prefix[i], new_items, f"{path}[{i}]"))
        if new_items is not True:
            problems.extend(self.compare(old_items, new_items, f"{path}[]"))
        return problems

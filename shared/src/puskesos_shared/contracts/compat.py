"""Is a new JSON Schema of an event version compatible with the published one?

Published schemas are *writer* schemas: what a producer of the version sends
(``additionalProperties: false``, every enum value listed). A reader is tolerant
(``Contract.read``): it ignores properties it does not know, and accepts any string where an
enum is marked open (``x-open-enum``); ``reader_view`` turns a writer schema into what its
readers accept. Producers and consumers are deployed independently, so a change must work in
both directions:

* backward: a reader of the current release reads every message a producer of the published
  schema sent (audit replay reads old events through current models);
* forward: a reader still on the published release reads every message a current producer
  sends, without dead-lettering it.

So within ``vN`` only these change: an optional property added, a value added to (or no longer
sent from) an open enum, annotations (title, description, default, examples). Anything else is
breaking and needs ``vN+1`` (a new model and a new subject). Reported, each with the JSON path
of the property (``data.household.members[].nik``):

* backward: a property removed; a type changed (including an ``anyOf`` branch removed, enum
  values removed from a closed enum, a const changed, a format or pattern added or changed, a
  bound tightened); a property that became required (new, or an optional one turned required);
* forward (``... ; older readers reject it``): what older readers refuse, such as a value added to
  a closed enum, an ``anyOf`` branch added (a property made nullable), a type widened, a format
  or pattern removed, a bound relaxed, a property older readers require made optional.

Local ``$ref`` s (``#/$defs/...``) are resolved on both sides, so nested models, arrays,
dictionaries and ``$defs`` are compared where they are used.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

from .envelope import OPEN_ENUM_KEYWORD

Schema = dict[str, Any]
Branch = tuple[tuple[str, ...], Schema]  # the $refs followed to reach it, the merged schema

_NOTHING: Schema = {"not": {}}
_ANNOTATIONS = frozenset({"title", "description", "default", "examples", "$comment", "deprecated"})
_LOWER_BOUNDS = ("minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties")
_UPPER_BOUNDS = ("maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties")


FORWARD_SUFFIX = "; older readers reject it"


def incompatibilities(published: Schema, current: Schema) -> list[str]:
    """Incompatible changes from ``published`` to ``current`` (two writer schemas of one event version)."""
    current_reader, published_reader = reader_view(current), reader_view(published)
    backward = _Comparison(published, current_reader, forward=False).compare(published, current_reader, "")
    forward = _Comparison(current, published_reader, forward=True).compare(current, published_reader, "")
    # a change both sides refuse (a retyped property, a changed pattern) reads the same both ways
    return [*backward, *(f"{problem}{FORWARD_SUFFIX}" for problem in forward if problem not in backward)]


def reader_view(schema: Schema) -> Schema:
    """What a tolerant reader accepts: a model's unknown properties are ignored, an open enum takes any string."""

    def widen(node: Any) -> Any:
        if isinstance(node, list):
            return [widen(item) for item in node]
        if not isinstance(node, dict):
            return node
        out = {key: widen(value) for key, value in node.items()}
        if "properties" in out and out.get("additionalProperties") is False:
            del out["additionalProperties"]
        if out.get(OPEN_ENUM_KEYWORD) is True:
            out.pop("enum", None)
        return out

    widened: Schema = widen(schema)
    return widened


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
    """Does ``new`` accept every message ``old`` does? Backward: old = published writer, new = current
    reader. Forward: old = current writer, new = published reader; messages still name the change
    from published to current."""

    def __init__(self, old_root: Schema, new_root: Schema, *, forward: bool) -> None:
        self.roots = (old_root, new_root)
        self.forward = forward
        self.active: set[tuple[tuple[str, ...], tuple[str, ...]]] = set()

    def _change(self, old: Any, new: Any) -> str:
        """``published -> current``, whichever side each is on."""
        return f"{new} -> {old}" if self.forward else f"{old} -> {new}"

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
                    problems.append(f"{_where(path)}: type changed {self._change(kind, now)}")
                else:
                    verb = "added" if self.forward else "removed"
                    problems.append(f"{_where(path)}: anyOf branch {verb} ({kind})")
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
            return [f"{where}: type changed {self._change(old_kind, new_kind)}"]
        if old_kind == "nothing" or (new_kind == "any" and _values(new) is None):
            return []
        problems = list(self._compare_values(old, new, where))
        problems.extend(self._compare_keywords(old, new, where))
        if new_kind == "object":
            problems.extend(self._compare_object(old, new, path))
        elif new_kind == "array":
            problems.extend(self._compare_array(old, new, path))
        return problems

    def _compare_values(self, old: Schema, new: Schema, where: str) -> Iterator[str]:
        old_values, new_values = _values(old), _values(new)
        if new_values is None:
            return
        if old_values is None:
            if self.forward:
                yield f"{where}: no longer restricted to {new_values!r}"
            else:
                yield f"{where}: restricted to {new_values!r} (was any {_kind(old)})"
            return
        removed = [v for v in old_values if v not in new_values]
        if not removed:
            return
        if "const" in old and "const" in new:
            yield f"{where}: const changed {self._change(repr(old['const']), repr(new['const']))}"
        else:
            yield f"{where}: enum values {'added' if self.forward else 'removed'}: {removed!r}"

    def _compare_keywords(self, old: Schema, new: Schema, where: str) -> Iterator[str]:
        added, tightened = ("removed", "relaxed") if self.forward else ("added", "tightened")
        for keyword in ("format", "pattern", "multipleOf"):
            if keyword in new and old.get(keyword) != new[keyword]:
                if keyword in old:
                    yield f"{where}: {keyword} changed {self._change(repr(old[keyword]), repr(new[keyword]))}"
                else:
                    yield f"{where}: {keyword} {new[keyword]!r} {added}"
        for keyword in _LOWER_BOUNDS:
            if keyword in new and new[keyword] > old.get(keyword, -math.inf):
                yield f"{where}: {keyword} {tightened} {self._change(old.get(keyword, 'none'), new[keyword])}"
        for keyword in _UPPER_BOUNDS:
            if keyword in new and new[keyword] < old.get(keyword, math.inf):
                yield f"{where}: {keyword} {tightened} {self._change(old.get(keyword, 'none'), new[keyword])}"
        if new.get("uniqueItems") and not old.get("uniqueItems"):
            yield f"{where}: uniqueItems {added}"

    def _compare_object(self, old: Schema, new: Schema, path: str) -> list[str]:
        problems: list[str] = []
        old_props: dict[str, Any] = old.get("properties", {})
        new_props: dict[str, Any] = new.get("properties", {})
        for name, old_prop in old_props.items():
            sub = _join(path, name)
            if name in new_props:
                problems.extend(self.compare(old_prop, new_props[name], sub))
            elif not self.forward:  # forward: older readers ignore a property they do not know
                problems.append(f"{sub}: property removed")
        old_required = set(old.get("required", []))
        for name in new.get("required", []):
            if name in old_required:
                continue
            if self.forward:
                what = "required property became optional" if name in old_props else "required property removed"
            else:
                what = "optional property became required" if name in old_props else "new required property"
            problems.append(f"{_join(path, name)}: {what}")
        old_extra, new_extra = old.get("additionalProperties", True), new.get("additionalProperties", True)
        if new_extra is False and old_extra is not False:
            problems.append(f"{_where(path)}: additional properties {'now' if self.forward else 'no longer'} allowed")
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

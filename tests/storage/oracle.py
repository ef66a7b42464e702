"""What MongoDB returns for the filters and sorts the services send, computed in Python.

Covers the operators the services use (equality with array membership and missing-as-null,
``$in``, ``$ne``, ``$lt/$lte/$gt/$gte`` with type bracketing, ``$exists``, ``$regex``, ``$or``,
dotted paths into subdocuments and array positions) and sorts over scalars (BSON type order:
missing/null < numbers < strings < dates). The suite compares the engine with it.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any

Document = dict[str, Any]
MISSING = object()


def _walk(value: Any, parts: Sequence[str]) -> Iterator[Any]:
    if not parts:
        yield value
        return
    head, rest = parts[0], parts[1:]
    if isinstance(value, dict):
        yield from _walk(value[head], rest) if head in value else iter([MISSING])
    elif isinstance(value, list):
        found = False
        if head.isdigit() and int(head) < len(value):
            found = True
            yield from _walk(value[int(head)], rest)
        for element in value:
            if isinstance(element, dict) and head in element:
                found = True
                yield from _walk(element[head], rest)
        if not found:
            yield MISSING
    else:
        yield MISSING


def values_at(doc: Document, path: str) -> list[Any]:
    return list(_walk(doc, path.split(".")))


def _bracket(value: Any) -> int:
    """MongoDB's comparison classes (type bracketing: $lt on a number never matches a string)."""
    if value is None or value is MISSING:
        return 0
    if isinstance(value, bool):
        return 5
    if isinstance(value, int | float):
        return 1
    if isinstance(value, str):
        return 2
    if isinstance(value, dict):
        return 3
    if isinstance(value, list):
        return 4
    if isinstance(value, dt.datetime):
        return 6
    raise TypeError(f"no BSON order for {value!r}")


def _norm(value: Any) -> Any:
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(dt.UTC).replace(tzinfo=None)
    return value


def _equal(a: Any, b: Any) -> bool:
    if a is MISSING:
        a = None
    if _bracket(a) != _bracket(b):
        return False
    return bool(_norm(a) == _norm(b))


def _eq(candidates: list[Any], x: Any) -> bool:
    for value in candidates:
        if _equal(value, x):
            return True
        if isinstance(value, list) and any(_equal(v, x) for v in value):
            return True
    return False


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "$lt": lambda a, b: bool(a < b), "$lte": lambda a, b: bool(a <= b),
    "$gt": lambda a, b: bool(a > b), "$gte": lambda a, b: bool(a >= b)}


def _compare(candidates: list[Any], op: str, x: Any) -> bool:
    test = _COMPARE[op]
    for value in candidates:
        for v in value if isinstance(value, list) else [value]:
            if v is MISSING or _bracket(v) != _bracket(x) or v is None:
                continue
            if test(_norm(v), _norm(x)):
                return True
    return False


def _field_matches(doc: Document, path: str, condition: Any) -> bool:
    candidates = values_at(doc, path)
    if not (isinstance(condition, dict) and condition and all(k.startswith("$") for k in condition)):
        return _eq(candidates, condition)
    for op, arg in condition.items():
        if op == "$eq":
            ok = _eq(candidates, arg)
        elif op == "$ne":
            ok = not _eq(candidates, arg)
        elif op == "$in":
            ok = any(_eq(candidates, a) for a in arg)
        elif op == "$nin":
            ok = not any(_eq(candidates, a) for a in arg)
        elif op in _COMPARE:
            ok = _compare(candidates, op, arg)
        elif op == "$exists":
            ok = any(v is not MISSING for v in candidates) == bool(arg)
        elif op == "$regex":
            pattern = re.compile(arg)
            ok = any(isinstance(v, str) and pattern.search(v) for v in candidates)
        else:
            raise NotImplementedError(op)
        if not ok:
            return False
    return True


def matches(doc: Document, query: Document) -> bool:
    for key, condition in query.items():
        if key == "$or":
            if not any(matches(doc, branch) for branch in condition):
                return False
        elif key == "$and":
            if not all(matches(doc, branch) for branch in condition):
                return False
        elif not _field_matches(doc, key, condition):
            return False
    return True


def _sort_value(doc: Document, path: str) -> Any:
    found = values_at(doc, path)
    value = found[0] if found else MISSING
    return None if value is MISSING else value


def _cmp(a: Any, b: Any) -> int:
    ra, rb = _bracket(a), _bracket(b)
    if ra != rb:
        return -1 if ra < rb else 1
    a, b = _norm(a), _norm(b)
    return 0 if a == b or ra == 0 else (-1 if a < b else 1)


def sort(docs: list[Document], keys: Sequence[tuple[str, int]]) -> list[Document]:
    def compare(x: Document, y: Document) -> int:
        for path, direction in keys:
            c = _cmp(_sort_value(x, path), _sort_value(y, path))
            if c:
                return c * direction
        return 0

    return sorted(docs, key=functools.cmp_to_key(compare))


def find(docs: list[Document], query: Document, sort_keys: Sequence[tuple[str, int]] = (), skip: int = 0,
         limit: int = 0) -> list[Document]:
    found = [d for d in docs if matches(d, query)]
    if sort_keys:
        found = sort(found, sort_keys)
    found = found[skip:]
    return found[:limit] if limit else found

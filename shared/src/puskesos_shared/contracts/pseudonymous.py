"""Copies of events for external subscribers, with only as much personal data as their account allows.

UU No. 27/2022 (Pelindungan Data Pribadi): a subscriber (a hospital, the Dinas Sosial, a bank, the
Ministry's reporting) reads relayed copies of events, made safe for its account's ``pii`` level:

* ``full``: the stored bytes, unchanged;
* ``pseudonymous``: every identifier (NIK, KK number, phone number, and the few other values
  marked ``x-pii: identifier``) is replaced by a keyed pseudonym; personal data (names, addresses,
  birth dates, free text written by people: ``x-pii: personal``) is removed;
* ``none``: identifiers and personal data are removed.

What is personal lives in the models and so in the published schemas (``x-pii``, see
``primitives.PII_KEYWORD``). ``Pseudonymiser.transform`` walks the paths the event version's JSON Schema
marks (computed once per event class and level, then cached) over the parsed JSON: no pydantic
validation on the hot path. Properties the schema does not list (a newer producer's additions)
are dropped, since this release cannot know whether they are personal; an event whose shape does not
match its schema, or whose type or version this release does not know, cannot be made safe and
``transform`` returns ``None`` (the caller dead-letters it).

Then a safety net scrubs every string that is left, wherever it is (``correlation_id`` is
``household:<KK number>`` for household events): any run of 16 or more digits (NIK/KK shaped) and
any Indonesian phone number (``+62``, ``62`` or ``08`` followed by 8-13 digits) is replaced by its
pseudonym (``pseudonymous``) or by ``[disamarkan]`` (``none``). Values that fully match a UUID or a
SHA-256 digest where the schema declares one are left alone (their digits are not personal).

The net costs one regular-expression search per string, so ``transform`` first walks the plan without
it and searches the serialised copy once with the net's own pattern: when nothing in the copy matches
(and it holds no ``\\u`` escape, which could hide a digit), no string could have been scrubbed and the
copy is the result. Otherwise (a digit run somewhere: rare) the event is walked again with the net on
every string, as described above. Both give the same bytes: a string's match is a match in the copy,
since the JSON writer escapes no digit and every other escape ends in a non-digit.

Pseudonyms: ``ps-`` followed by the lowercase, unpadded base32 of the first 15 bytes of
HMAC-SHA256(subscriber key, ``"<kind>:<value>"``), 27 characters matching ``^ps-[a-z2-7]{24}$``.
Stable for one key (events about one household can be joined), different for another key (two
subscribers cannot join their copies), kind-tagged (a NIK and a KK number with the same digits
differ), never NIK-shaped. Kinds are the ``x-pii-kind`` of the field (``nik``, ``kk``, ``phone``,
``recipient``, ``payout_reference``, ``provider_message``); the safety net uses ``digits16`` for a
digit run and ``phone`` for a phone number. Phone numbers are normalised to ``+62...`` first, so a
phone number found by the net gets the same pseudonym as the same number in a phone field.

``derived_schema`` is the JSON Schema of the relayed copy at a level (``shared/schemas/feeds/``).
"""

from __future__ import annotations

import copy
import functools
import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final, NoReturn, Protocol

from pydantic_core import from_json, to_json

from .envelope import Event
from .primitives import PII_KEYWORD, PII_KIND_KEYWORD, PiiMark
from .registry import UnknownEventVersion, event_key, model_for


class PiiLevel(StrEnum):
    """How much personal data a subscriber may receive (its account's ``--pii``)."""

    NONE = "none"
    PSEUDONYMOUS = "pseudonymous"
    FULL = "full"


#: Every pseudonym starts with this, so none is ever digits only.
PSEUDONYM_PREFIX: Final = "ps-"
PSEUDONYM_PATTERN: Final = r"^ps-[a-z2-7]{24}$"
#: What the safety net writes in place of a NIK-shaped run or a phone number for a ``none`` subscriber.
REDACTED: Final = "[disamarkan]"
#: The pseudonym kind of a 16+ digit run found by the safety net (it cannot tell a NIK from a KK number).
DIGITS_KIND: Final = "digits16"
PHONE_KIND: Final = "phone"
#: The smallest pseudonym key accepted (HMAC-SHA256 keys should have at least 128 bits).
MIN_KEY_BYTES: Final = 16
FEED_LEVELS: Final = (PiiLevel.PSEUDONYMOUS, PiiLevel.NONE)

_PSEUDONYM_BYTES = 15  # 120 bits, 24 base32 characters without padding
_SHA256_BLOCK = 64
_BASE32_PAIRS = tuple(a + b for a in "abcdefghijklmnopqrstuvwxyz234567" for b in "abcdefghijklmnopqrstuvwxyz234567")


def _base32(digest: bytes) -> str:
    """Lowercase RFC 4648 base32 of 15 bytes (no padding): ``base64.b32encode(digest).decode().lower()``."""
    n = int.from_bytes(digest, "big")
    pairs = _BASE32_PAIRS
    return "".join([pairs[(n >> shift) & 0x3FF] for shift in range(110, -1, -10)])
_CACHE_LIMIT = 100_000
_NET = re.compile(r"(?<![0-9])(?:(?P<digits>[0-9]{16,})|(?P<phone>(?:\+62|62|08)[0-9]{8,13}))(?![0-9])")
#: Every ASCII digit to ``0``, every other byte to ``.``: a run of digits is found with ``bytes.find``.
_DIGIT_MASK = bytes(0x30 if 0x30 <= i <= 0x39 else 0x2E for i in range(256))
_PHONE_STARTS = (b"62", b"08")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_SHA256_PATTERN = "^[0-9a-f]{64}$"


def normalise_phone(value: str) -> str:
    """``08...`` and ``62...`` to ``+62...`` (anything else unchanged)."""
    if value.startswith("08"):
        return "+62" + value[1:]
    if value.startswith("62"):
        return "+" + value
    return value


def _net_may_match(copy: bytes) -> bool:
    """Whether a string of the serialised ``copy`` could hold what the net replaces.

    A match of the net is a whole run of ASCII digits (the pattern refuses a digit on either side): 16
    or more digits, or 10 to 15 starting with ``62`` or ``08``. A string's run is a run of the copy
    too, since the JSON writer escapes no digit and every other escape ends in a non-digit, except
    ``\\uXXXX``: a copy holding one is always walked with the net."""
    if b"\\u" in copy:
        return True
    mask = copy.translate(_DIGIT_MASK)
    start = mask.find(b"0000000000")
    while start >= 0:  # ``start`` begins a run (the search starts outside one)
        end = mask.find(b".", start)
        if end < 0:
            end = len(mask)
        if end - start >= 16 or copy[start:start + 2] in _PHONE_STARTS:
            return True
        start = mask.find(b"0000000000", end)
    return False


class _Unsafe(Exception):
    """The message does not have the shape its schema describes: it cannot be made safe."""


def _unsafe() -> NoReturn:
    raise _Unsafe


# the plan: what to do with each part of an event, per level -----------------------------------


class _Context(Protocol):
    """What a plan needs of the pseudonymiser: pseudonyms, and the net (when ``netting``)."""

    @property
    def netting(self) -> bool: ...

    def pseudonym(self, kind: str, value: str) -> str: ...

    def scrub(self, text: str) -> str: ...


class _WithoutNet:
    """The pseudonymiser seen by the first walk: identifiers and drops only, strings left as they are."""

    __slots__ = ("pseudonym", "scrub")
    netting: Final = False

    def __init__(self, of: Pseudonymiser) -> None:
        self.pseudonym = of.pseudonym
        self.scrub = of.scrub


class _Node:
    """One part of an event's plan; ``apply`` returns the value to relay (mutating dicts in place)."""

    __slots__ = ()

    def apply(self, value: Any, ctx: _Context) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError


class _Drop(_Node):
    """Removed from the copy (personal data; an identifier for ``none``)."""

    __slots__ = ()


_DROP: Final = _Drop()


_NIK_SIZED = 10**15  # an integer this large has 16 digits: it could be a NIK or a KK number


class _Keep(_Node):
    """A number or boolean (an integer of 16 or more digits is refused: NIK-shaped)."""

    __slots__ = ()

    def apply(self, value: Any, ctx: _Context) -> Any:
        kind = type(value)
        if kind is int:
            if -_NIK_SIZED < value < _NIK_SIZED:
                return value
            _unsafe()
        if kind is not float and kind is not bool:
            _unsafe()
        return value


class _String(_Node):
    """A string: the safety net applies, except to a value of the declared exempt form (UUID, digest)."""

    __slots__ = ("exempt",)

    def __init__(self, exempt: re.Pattern[str] | None) -> None:
        self.exempt = exempt

    def apply(self, value: Any, ctx: _Context) -> Any:
        if type(value) is not str:
            _unsafe()
        if not ctx.netting or _NET.search(value) is None or (self.exempt is not None and self.exempt.fullmatch(value)):
            return value
        return ctx.scrub(value)


class _Identifier(_Node):
    """An identifier, replaced by its pseudonym (``pseudonymous`` only: ``none`` drops it)."""

    __slots__ = ("kind",)

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def apply(self, value: Any, ctx: _Context) -> Any:
        if type(value) is not str:
            _unsafe()
        return ctx.pseudonym(self.kind, value)


class _Array(_Node):
    __slots__ = ("items",)

    def __init__(self, items: _Node) -> None:
        self.items = items

    def apply(self, value: Any, ctx: _Context) -> Any:
        if type(value) is not list:
            _unsafe()
        node = self.items
        for i, item in enumerate(value):
            if item is not None:
                new = node.apply(item, ctx)
                if new is not item:
                    value[i] = new
        return value


class _Object(_Node):
    """A JSON object: known properties by their plan; others by ``extra`` (a map's values, keys netted),
    or dropped when the schema lists every property (``additionalProperties: false``)."""

    __slots__ = ("extra", "props")

    def __init__(self) -> None:
        self.props: dict[str, _Node] = {}
        self.extra: _Node | None = None

    def apply(self, value: Any, ctx: _Context) -> Any:
        if type(value) is not dict:
            _unsafe()
        props, extra = self.props, self.extra
        netting = ctx.netting
        gone: list[str] | None = None
        renamed = False
        for key, item in value.items():
            node = props.get(key)
            if node is None:
                if extra is None:
                    node = _DROP
                elif netting and _NET.search(key) is not None:
                    renamed = True
                    continue
                else:
                    node = extra
            if node is _DROP:
                if gone is None:
                    gone = []
                gone.append(key)
            elif item is not None:
                if not netting and type(node) is _String:  # _String.apply without the net, inlined
                    if type(item) is not str:
                        _unsafe()
                    continue
                new = node.apply(item, ctx)
                if new is not item:
                    value[key] = new
        if gone is not None:
            for key in gone:
                del value[key]
        if renamed:  # rare: a map key that looks like a NIK or a phone number; rebuilt to keep the order
            return self._renamed(value, ctx)
        return value

    def _renamed(self, value: dict[str, Any], ctx: _Context) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, item in value.items():
            if key in self.props or _NET.search(key) is None:
                out[key] = item
            elif self.extra is not None and self.extra is not _DROP:
                out[ctx.scrub(key)] = None if item is None else self.extra.apply(item, ctx)
        return out


class _Any(_Node):
    """A value the schema does not constrain (no marks inside): every string and key is netted."""

    __slots__ = ()

    def apply(self, value: Any, ctx: _Context) -> Any:
        if type(value) is str:
            return ctx.scrub(value) if ctx.netting and _NET.search(value) is not None else value
        if type(value) is list:
            return [self.apply(item, ctx) for item in value]
        if type(value) is dict:
            if not ctx.netting:
                return {k: self.apply(v, ctx) for k, v in value.items()}
            return {(ctx.scrub(k) if _NET.search(k) is not None else k): self.apply(v, ctx) for k, v in value.items()}
        return _KEEP.apply(value, ctx)


_ANY: Final = _Any()
_KEEP: Final = _Keep()


# reading the schemas ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PiiPath:
    """A marked place in an event: ``data.household.members[].nik`` (``[]`` an array item, ``*`` a map value)."""

    path: str
    mark: PiiMark
    kind: str | None = None


def _pointer(root: dict[str, Any], ref: str) -> dict[str, Any]:
    if not ref.startswith("#/"):
        raise ValueError(f"only local $ref is supported, got {ref!r}")
    node: Any = root
    for token in ref[2:].split("/"):
        node = node[token.replace("~1", "/").replace("~0", "~")]
    if not isinstance(node, dict):
        raise ValueError(f"$ref {ref!r} is not a schema")
    return node


def _resolve(root: dict[str, Any], schema: Any, refs: tuple[str, ...] = ()) -> tuple[dict[str, Any], tuple[str, ...]]:
    """Follows ``$ref`` (siblings win) and merges ``allOf``; returns the schema and the refs followed."""
    if schema is True or schema is None:
        return {}, refs
    if schema is False:
        return {"not": {}}, refs
    if not isinstance(schema, dict):
        raise ValueError(f"not a JSON Schema: {schema!r}")
    while "$ref" in schema:
        ref = schema["$ref"]
        if ref in refs:
            raise ValueError(f"recursive schema at {ref}: not supported by the pseudonymiser")
        refs = (*refs, ref)
        siblings = {k: v for k, v in schema.items() if k != "$ref"}
        schema = {**_pointer(root, ref), **siblings}
    if "allOf" in schema:
        merged = {k: v for k, v in schema.items() if k != "allOf"}
        for part in schema["allOf"]:
            resolved, refs = _resolve(root, part, refs)
            for key, value in resolved.items():
                if key == "properties":
                    merged["properties"] = {**merged.get("properties", {}), **value}
                elif key == "required":
                    merged["required"] = [*merged.get("required", []), *value]
                else:
                    merged.setdefault(key, value)
        schema = merged
    return schema, refs


def _is_null(schema: Any) -> bool:
    return isinstance(schema, dict) and schema.get("type") == "null" and len(schema) == 1


def _alternatives(schema: dict[str, Any]) -> list[Any]:
    return [*schema.get("anyOf", []), *schema.get("oneOf", [])]


def _mark(root: dict[str, Any], schema: Any, refs: tuple[str, ...] = ()) -> tuple[PiiMark, str | None] | None:
    """The mark of a value: on the schema, its ``$ref`` target or a non-null ``anyOf`` branch."""
    resolved, refs = _resolve(root, schema, refs)
    if PII_KEYWORD in resolved:
        return PiiMark(resolved[PII_KEYWORD]), resolved.get(PII_KIND_KEYWORD)
    for branch in _alternatives(resolved):
        if not _is_null(branch):
            found = _mark(root, branch, refs)
            if found is not None:
                return found
    return None


def _has_marks(node: Any) -> bool:
    if isinstance(node, dict):
        return PII_KEYWORD in node or any(_has_marks(v) for v in node.values())
    if isinstance(node, list):
        return any(_has_marks(v) for v in node)
    return False


class _Compiler:
    """Turns an event version's JSON Schema into a plan for one level, noting every marked path."""

    def __init__(self, root: dict[str, Any], level: PiiLevel) -> None:
        self.root = root
        self.level = level
        self.paths: list[PiiPath] = []

    def _marked(self, mark: PiiMark, kind: str | None, path: str) -> _Node:
        self.paths.append(PiiPath(path, mark, kind))
        if mark is PiiMark.IDENTIFIER and self.level is PiiLevel.PSEUDONYMOUS:
            return _Identifier(kind or "identifier")
        if mark is PiiMark.PSEUDONYM:
            return _String(None)
        return _DROP

    def node(self, schema: Any, path: str, refs: tuple[str, ...] = ()) -> _Node:
        found = _mark(self.root, schema, refs)
        if found is not None:
            return self._marked(found[0], found[1], path)
        resolved, refs = _resolve(self.root, schema, refs)
        branches = [b for b in _alternatives(resolved) if not _is_null(b)]
        if branches:
            if len(branches) == 1:
                return self.node(branches[0], path, refs)
            if _has_marks([_resolve(self.root, b, refs)[0] for b in branches]):
                raise ValueError(f"{path}: personal data inside a union of several types is not supported")
            return _ANY
        declared = resolved.get("type")
        if isinstance(declared, list):
            declared = [t for t in declared if t != "null"]
            declared = declared[0] if len(declared) == 1 else None
        if declared == "object" or "properties" in resolved:
            return self._object(resolved, path, refs)
        if declared == "array":
            if "prefixItems" in resolved:
                if _has_marks(resolved["prefixItems"]):
                    raise ValueError(f"{path}: personal data inside a fixed-length array is not supported")
                return _ANY
            items = self.node(resolved.get("items", True), f"{path}[]", refs)
            return _DROP if items is _DROP else _Array(items)
        if declared == "string":
            exempt = None
            if resolved.get("format") == "uuid":
                exempt = _UUID
            elif resolved.get("pattern") == _SHA256_PATTERN:
                exempt = _HEX64
            return _String(exempt)
        if declared in ("integer", "number", "boolean"):
            return _KEEP
        if declared == "null":
            return _KEEP  # only null passes (it is skipped before a node is applied)
        return _ANY

    def _object(self, schema: dict[str, Any], path: str, refs: tuple[str, ...]) -> _Node:
        node = _Object()
        for name, prop in schema.get("properties", {}).items():
            node.props[name] = self.node(prop, f"{path}.{name}" if path else name, refs)
        extra = schema.get("additionalProperties", True)
        if extra is not False:
            if extra is True or extra == {}:
                node.extra = _ANY
            else:
                value = self.node(extra, f"{path}.*" if path else "*", refs)
                if value is _DROP:
                    return _DROP
                node.extra = value
        return node


def _writer_schema(event_cls: type[Event]) -> dict[str, Any]:
    from .schema_registry import event_schema  # the registry imports this module

    return event_schema(event_cls)


@functools.cache
def _compiled(event_cls: type[Event], level: PiiLevel) -> tuple[_Node, tuple[PiiPath, ...]]:
    compiler = _Compiler(_writer_schema(event_cls), level)
    plan = compiler.node(compiler.root, "")
    return plan, tuple(compiler.paths)


def pii_paths(event_cls: type[Event]) -> tuple[PiiPath, ...]:
    """Every place of the event class's schema marked ``x-pii``, in schema order (cached)."""
    return _compiled(event_cls, PiiLevel.NONE)[1]


def _plan(event_type: str, schema_version: int, level: PiiLevel) -> _Node | None:
    try:
        event_cls = model_for(event_type, schema_version)
    except UnknownEventVersion:
        return None
    try:
        return _compiled(event_cls, level)[0]
    except ValueError:  # pragma: no cover - a contract the plan cannot describe (tests cover every event)
        return None


# the pseudonymiser ----------------------------------------------------------------------------------


class Pseudonymiser:
    """Makes stored events safe for one subscriber: ``transform(body)`` gives the bytes to relay, or ``None``.

    ``key`` is the subscriber's own pseudonym key (at least 16 bytes for ``pseudonymous``; unused
    otherwise). ``full`` returns the body unchanged without reading it.
    """

    def __init__(self, key: bytes, level: PiiLevel) -> None:
        self.level = PiiLevel(level)
        if self.level is PiiLevel.PSEUDONYMOUS and len(key) < MIN_KEY_BYTES:
            raise ValueError(f"a pseudonym key has at least {MIN_KEY_BYTES} bytes")
        self._key = bytes(key)
        # HMAC-SHA256 by its definition (RFC 2104), its two padded keys hashed once: a pseudonym then costs
        # two hash copies instead of a new HMAC (``hmac.digest(key, message)`` gives the same bytes)
        block = hashlib.sha256(self._key).digest() if len(self._key) > _SHA256_BLOCK else self._key
        block = block.ljust(_SHA256_BLOCK, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in block))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in block))
        self._cache: dict[str, str] = {}
        self._plans: dict[tuple[str, int], _Node] = {}
        self._without_net = _WithoutNet(self)

    #: The plan's strings go through the net (``_WithoutNet`` is the same pseudonymiser without it).
    netting: Final = True

    def __repr__(self) -> str:  # never the key
        return f"Pseudonymiser(level={self.level.value!r})"

    def pseudonym(self, kind: str, value: str) -> str:
        """``ps-`` + lowercase unpadded base32 of HMAC-SHA256(key, ``kind:value``)[:15]: 27 characters."""
        if kind == PHONE_KIND:
            value = normalise_phone(value)
        message = f"{kind}:{value}"
        cached = self._cache.get(message)
        if cached is not None:
            return cached
        inner = self._inner.copy()
        inner.update(message.encode())
        outer = self._outer.copy()
        outer.update(inner.digest())
        out = PSEUDONYM_PREFIX + _base32(outer.digest()[:_PSEUDONYM_BYTES])
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[message] = out
        return out

    def _replacement(self, match: re.Match[str]) -> str:
        if self.level is not PiiLevel.PSEUDONYMOUS:
            return REDACTED
        digits = match.group("digits")
        if digits is not None:
            return self.pseudonym(DIGITS_KIND, digits)
        return self.pseudonym(PHONE_KIND, match.group("phone"))

    def scrub(self, text: str) -> str:
        """The safety net on one string: NIK-shaped runs and phone numbers replaced."""
        return _NET.sub(self._replacement, text)

    def transform(self, body: bytes) -> bytes | None:
        """The copy of a stored event to relay, or ``None`` when it cannot be made safe (dead-letter it)."""
        if self.level is PiiLevel.FULL:
            return body
        try:  # pydantic-core's parser: twice as fast as json.loads; no NaN, no Infinity
            raw = from_json(body, allow_inf_nan=False, cache_strings=False)
        except ValueError:
            return None
        if type(raw) is not dict:
            return None
        event_type, version = raw.get("event_type"), raw.get("schema_version")
        if type(event_type) is not str or type(version) is not int:
            return None
        plan = self._plans.get((event_type, version))
        if plan is None:
            plan = _plan(event_type, version, self.level)
            if plan is None:
                return None
            self._plans[(event_type, version)] = plan  # only known versions: the dict stays small
        try:
            plan.apply(raw, self._without_net)
        except (_Unsafe, RecursionError):
            return None
        out = to_json(raw)  # compact, UTF-8, as model_dump_json writes it
        if not _net_may_match(out):
            return out  # no string the net would change (see the module's docstring)
        raw = from_json(body, allow_inf_nan=False, cache_strings=False)
        try:
            plan.apply(raw, self)
        except (_Unsafe, RecursionError):  # pragma: no cover - the first walk raised it already
            return None
        return to_json(raw)


# the schema of the relayed copy -------------------------------------------------------------------------


_KIND_WORDS = {
    "nik": "NIK",
    "kk": "KK number",
    "phone": "phone number",
    "recipient": "recipient id",
    "payout_reference": "payout reference (an account number)",
    "provider_message": "provider's message id",
}


def _pseudonym_schema(kind: str | None, original: dict[str, Any]) -> dict[str, Any]:
    what = _KIND_WORDS.get(kind or "", kind or "identifier")
    out: dict[str, Any] = {
        "type": "string",
        "pattern": PSEUDONYM_PATTERN,
        PII_KEYWORD: PiiMark.PSEUDONYM.value,
        "description": (
            f"Keyed pseudonym of the {what}: ps- and 24 lowercase base32 characters, the same for the same "
            f"{what} in every event this subscriber receives, different for every other subscriber."
        ),
    }
    if kind is not None:
        out[PII_KIND_KEYWORD] = kind
    if "title" in original:
        out["title"] = original["title"]
    return out


def _pseudonymised(root: dict[str, Any], schema: Any, kind: str | None) -> dict[str, Any]:
    """The schema of a pseudonymised identifier value, keeping null, arrays and maps around it."""
    resolved, _ = _resolve(root, schema)
    if PII_KEYWORD in resolved:
        return _pseudonym_schema(kind, resolved)
    keep = {k: v for k, v in resolved.items() if k in ("title", "default")}
    alternatives = _alternatives(resolved)
    if alternatives:
        return {**keep, "anyOf": [b if _is_null(b) else _pseudonymised(root, b, kind) for b in alternatives]}
    if resolved.get("type") == "array":
        bounds = {k: v for k, v in resolved.items() if k in ("minItems", "maxItems", "description")}
        return {**keep, **bounds, "type": "array", "items": _pseudonymised(root, resolved.get("items", {}), kind)}
    if resolved.get("type") == "object":  # a map whose values are identifiers
        return {**keep, "type": "object",
                "additionalProperties": _pseudonymised(root, resolved.get("additionalProperties", {}), kind)}
    return _pseudonym_schema(kind, resolved)  # pragma: no cover - a mark is always found above


def _value_mark(root: dict[str, Any], schema: Any) -> tuple[PiiMark, str | None] | None:
    """The mark of a property, looking through null, arrays and maps (as the plan does)."""
    found = _mark(root, schema)
    if found is not None:
        return found
    resolved, _ = _resolve(root, schema)
    for candidate in [b for b in _alternatives(resolved) if not _is_null(b)] or [resolved]:
        inner, _ = _resolve(root, candidate)
        if inner.get("type") == "array" and "items" in inner:
            found = _value_mark(root, inner["items"])
        elif inner.get("type") == "object" and isinstance(inner.get("additionalProperties"), dict) \
                and "properties" not in inner:
            found = _value_mark(root, inner["additionalProperties"])
        if found is not None:
            return found
    return None


def _rewrite(root: dict[str, Any], node: Any, level: PiiLevel) -> None:
    """Replaces or removes the marked properties of every object schema inside ``node`` (in place)."""
    if isinstance(node, list):
        for item in node:
            _rewrite(root, item, level)
        return
    if not isinstance(node, dict):
        return
    properties = node.get("properties")
    if isinstance(properties, dict):
        for name, prop in list(properties.items()):
            found = _value_mark(root, prop)
            if found is None or found[0] is PiiMark.PSEUDONYM:
                continue
            if found[0] is PiiMark.IDENTIFIER and level is PiiLevel.PSEUDONYMOUS:
                properties[name] = _pseudonymised(root, prop, found[1])
            else:
                del properties[name]
                if name in node.get("required", []):
                    node["required"] = [r for r in node["required"] if r != name]
    for key, value in node.items():
        if key != "$defs":
            _rewrite(root, value, level)


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def _prune_defs(schema: dict[str, Any]) -> None:
    """Drops ``$defs`` no longer referenced (only the removed properties used them)."""
    defs: dict[str, Any] = schema.get("$defs", {})
    used: set[str] = set()
    todo = [r for r in _refs({k: v for k, v in schema.items() if k != "$defs"})]
    while todo:
        name = todo.pop().removeprefix("#/$defs/")
        if name in used or name not in defs:
            continue
        used.add(name)
        todo.extend(_refs(defs[name]))
    for name in [n for n in defs if n not in used]:
        del defs[name]
    if "$defs" in schema and not defs:
        del schema["$defs"]


def feed_schema_id(event_cls: type[Event], level: PiiLevel) -> str:
    """The ``$id`` of a feed schema (also the CloudEvents ``dataschema`` of a webhook delivery)."""
    event_type, version = event_key(event_cls)
    return f"urn:puskesos:schema:feeds:{PiiLevel(level).value}:{event_type}.v{version}"


_LEVEL_WORDS = {
    PiiLevel.PSEUDONYMOUS: ("Pseudonymous", "every identifier (NIK, KK number, phone number, and the other values "
                            "marked x-pii identifier) is replaced by a keyed pseudonym (x-pii pseudonym); names, "
                            "addresses, birth dates and free text (x-pii personal) are removed"),
    PiiLevel.NONE: ("WithoutPersonalData", "identifiers (x-pii identifier) and personal data (names, addresses, "
                    "birth dates, free text: x-pii personal) are removed"),
}


@functools.cache
def _derived(event_cls: type[Event], level: PiiLevel) -> dict[str, Any]:
    schema = copy.deepcopy(_writer_schema(event_cls))
    if level is PiiLevel.FULL:
        return schema
    _compiled(event_cls, level)  # fails here, as in transform, on a schema the plan cannot describe
    root = copy.deepcopy(schema)  # marks are looked up in the unchanged copy
    _rewrite(root, schema, level)
    for definition in schema.get("$defs", {}).values():
        _rewrite(root, definition, level)
    _prune_defs(schema)
    event_type, version = event_key(event_cls)
    suffix, what = _LEVEL_WORDS[level]
    schema["$id"] = feed_schema_id(event_cls, level)
    schema["title"] = f"{schema.get('title', event_type)}{suffix}"
    schema["description"] = (
        f"{event_type} v{version} as relayed to an external subscriber whose account says --pii {level.value} "
        f"(UU No. 27/2022): {what}. Properties this release does not know are dropped. A safety net then "
        "replaces any run of 16 or more digits and any Indonesian phone number (+62, 62 or 08 followed by "
        "8-13 digits) left in any string "
        + ("by its pseudonym" if level is PiiLevel.PSEUDONYMOUS else f"by {REDACTED!r}")
        + ". Everything else is as the producer sent it (see the event's own schema). Generated from the "
        "pydantic model; do not edit."
    )
    return schema


def derived_schema(event_cls: type[Event], level: PiiLevel) -> dict[str, Any]:
    """The JSON Schema of the copy relayed at ``level`` (``full``: the event's own schema)."""
    return copy.deepcopy(_derived(event_cls, PiiLevel(level)))

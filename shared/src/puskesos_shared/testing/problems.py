"""Checks that an HTTP error answer is problem details as ``puskesos_shared.problems`` builds them."""

from __future__ import annotations

from typing import Any

import httpx

from ..problems import MEDIA_TYPE, PROBLEMS, TYPE_PREFIX

KEYS = {"type", "title", "status", "detail", "code", "errors"}


def check_problem(response: httpx.Response, status: int | None = None, code: str | None = None) -> dict[str, Any]:
    """The body, after asserting the shape (and ``status``/``code`` when given)."""
    where = f"{response.request.method} {response.request.url.path} -> {response.status_code}: {response.text[:300]!r}"
    assert response.headers.get("content-type") == MEDIA_TYPE, f"not problem+json: {where}"
    body = response.json()
    assert isinstance(body, dict) and set(body) == KEYS, f"not the problem keys: {where}"
    assert body["code"] in PROBLEMS, f"a code the registry does not list: {where}"
    assert body["type"] == TYPE_PREFIX + body["code"], where
    assert body["title"] == PROBLEMS[body["code"]].title, where
    assert body["status"] == response.status_code, where
    assert isinstance(body["detail"], str) and body["detail"], where
    assert isinstance(body["errors"], list), where
    for error in body["errors"]:
        assert isinstance(error, dict) and set(error) == {"loc", "msg", "type"}, where
        assert isinstance(error["loc"], list), where
        assert all(isinstance(p, str | int) and not isinstance(p, bool) for p in error["loc"]), where
        assert isinstance(error["msg"], str) and isinstance(error["type"], str), where
    if response.status_code == 401:
        assert response.headers.get("www-authenticate", "").startswith("Bearer"), where
    if status is not None:
        assert response.status_code == status, where
    if code is not None:
        assert body["code"] == code, where
    return body

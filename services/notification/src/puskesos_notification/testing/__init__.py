"""Test helpers: a provider stand-in that honours idempotency keys, and event factories."""

from .sink import ProviderSink

__all__ = ["ProviderSink"]

"""Puskesos shared kernel: event contracts, messaging kit, settings, logging, storage helpers.

Services import this package and third-party libraries only, never each other.
"""

__version__ = "0.1.0"

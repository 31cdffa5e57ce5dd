"""Test helpers for GSP plugin authors. Opt-in: ``import gspauth`` never imports this package,
and it is not a pytest plugin entry point.

* :class:`ProviderConformance` — subclass it in your plugin's tests (see ``docs/writing-a-plugin.md``).
"""

from __future__ import annotations

from gspauth.testing.conformance import ProviderConformance

__all__ = ["ProviderConformance"]

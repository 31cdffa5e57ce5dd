"""Test helpers for GSP plugin authors. Opt-in: ``import gspauth`` never imports this package,
and it is not a pytest plugin entry point.

* :class:`ProviderConformance` — subclass it in your plugin's tests (see ``docs/writing-a-plugin.md``).
* :func:`hooks_for` — a :class:`~gspauth.plugins.Hooks` facade over just your plugin, for
  exact-value tests that should not depend on what else is installed.
"""

from __future__ import annotations

from typing import Any

from gspauth.plugins import Hooks, get_plugin_manager
from gspauth.testing.conformance import ProviderConformance

__all__ = ["ProviderConformance", "hooks_for"]


def hooks_for(*plugins: object, hosts: Any = None) -> Hooks:
    """:class:`~gspauth.plugins.Hooks` over gspauth's built-ins plus ``plugins`` only.

    No entry points and no config file are read, so installed plugins and a user's
    ``config.toml`` cannot change the result. Each plugin (a module or an object with
    ``@hookimpl`` methods) is registered under its ``GSP`` attribute when it has one,
    which is also what your entry point is named.

    :param hosts: host overrides, as for :class:`~gspauth.plugins.Hooks`.
    """
    pm = get_plugin_manager(autoload=False)
    for plugin in plugins:
        name = getattr(plugin, "GSP", None)
        pm.register(plugin, name=name if isinstance(name, str) else None)
    return Hooks(pm, hosts=hosts, config=False)

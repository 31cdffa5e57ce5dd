"""``gspauth plugins`` (what is installed) and ``gspauth plugin new NAME`` (start a plugin)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add ``gspauth plugins`` and ``gspauth plugin new`` to the ``gspauth`` sub-command parsers."""
    p = subparsers.add_parser(
        "plugins", help="list installed GSP plugins", description="List installed GSP plugins: versions, "
        "GSP ids, environments (with hosts) and the hooks each implements.")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--all", action="store_true", help="include gspauth's built-in plugins")
    p.add_argument("--hook", metavar="NAME", help="only plugins implementing this hook")
    p.set_defaults(func=_plugins)

    new = subparsers.add_parser("plugin", help="work on a GSP plugin", description="Tools for plugin authors.")
    sub = new.add_subparsers(dest="plugin_command", metavar="COMMAND")
    gen = sub.add_parser("new", help="generate a plugin distribution that passes the conformance kit",
                         description="Generate gspauth-NAME/: pyproject, src, README and tests using "
                         "gspauth.testing.ProviderConformance. Then: cd gspauth-NAME && pip install -e . && pytest")
    gen.add_argument("name", help="the GSP id, e.g. acme (lowercase letters, digits, '-')")
    gen.add_argument("--dir", default=".", help="parent directory (default: current directory)")
    gen.set_defaults(func=_new)
    new.set_defaults(func=lambda args: (new.print_help(), 2)[1])


def _plugins(args: argparse.Namespace) -> int:
    from gspauth.plugins import list_plugins

    plugins = [p for p in list_plugins() if args.all or not p.builtin]
    if args.hook:
        plugins = [p for p in plugins if args.hook in p.hooks]
    if args.json:
        json.dump([p.to_dict() for p in plugins], sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    if not plugins:
        print("no GSP plugins installed (pip install gspauth-cleartax gspauth-vayana); "
              "--all shows gspauth's built-ins")
        return 0
    rows = [("PLUGIN", "VERSION", "GSP", "ENVIRONMENT", "HOST")]
    for p in plugins:
        label = f"{p.name} ({p.distribution})" if p.distribution and p.distribution != p.name else p.name
        if not p.gsps:
            rows.append((label, p.version or "-", "-", "-", "-"))
        for g in p.gsps:
            for i, (env, host) in enumerate(g.environments.items()):
                rows.append((label if i == 0 else "", (p.version or "-") if i == 0 else "", g.id if i == 0 else "",
                             env, host))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[4])
    print()
    for p in plugins:
        print(f"{p.name} hooks: {', '.join(h.removeprefix('gspauth_') for h in p.hooks)}")
    return 0


def _new(args: argparse.Namespace) -> int:
    from gspauth.templates import names_for, render_plugin

    root = render_plugin(args.name, args.dir)
    names = names_for(args.name)
    print(f"created {root}/ ({names['dist']}, module {names['module']}, entry point gspauth → {names['gsp']})")
    print(f"next: cd {root} && pip install -e . && pytest")
    return 0

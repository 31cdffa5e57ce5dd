"""The conformance kit fails a broken plugin readably, and a generated plugin passes it out of the box."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from gspauth.templates import _PLUGIN_FILES, names_for, render_plugin

# The kit runs in a separate pytest process (runpytest_subprocess): an in-process run
# restores sys.modules afterwards, and modules it imported lazily (httpcore's transports)
# would be imported twice, so their exception classes stop matching httpx's mapping.
pytest_plugins = ["pytester"]

HERE = Path(__file__).parent

BROKEN_TEST = '''
import pytest
from gspauth.testing import ProviderConformance
from gspauth.types import Credentials

class TestBroken(ProviderConformance):
    gsp = "broken"

    @pytest.fixture
    def credentials(self):
        return Credentials(client_id="broken-client", client_secret="broken-secret-0042")
'''

MISSING_FIXTURE_TEST = '''
from gspauth.testing import ProviderConformance

class TestLazy(ProviderConformance):
    gsp = "broken"
'''


@pytest.fixture
def broken_site(pytester: pytest.Pytester, write_dist: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> Path:
    site = pytester.path / "site"
    site.mkdir()
    write_dist(site, "gspauth-broken", {"broken": "gspauth_broken"},
               {"gspauth_broken": (HERE / "broken" / "gspauth_broken.py").read_text()})
    _on_pythonpath(monkeypatch, site)
    return site


def _install_broken(pytester: pytest.Pytester, write_dist: Callable[..., Path], monkeypatch: pytest.MonkeyPatch,
                    name: str) -> None:
    site = pytester.path / "site"
    write_dist(site, f"gspauth-{name}", {name: f"gspauth_{name}"},
               {f"gspauth_{name}": (HERE / "broken" / f"gspauth_{name}.py").read_text()})
    _on_pythonpath(monkeypatch, site)


def _on_pythonpath(monkeypatch: pytest.MonkeyPatch, path: Path) -> None:
    """Stand-in for ``pip install``: ``path`` is on the subprocess's import path."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(path), os.environ.get("PYTHONPATH", "")])))


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q", "-rA", *args, timeout=240)


def test_broken_plugin_fails_the_kit_with_readable_messages(pytester: pytest.Pytester, broken_site: Path) -> None:
    pytester.makepyfile(test_broken=BROKEN_TEST)
    result = _run(pytester)
    result.assert_outcomes(passed=4, failed=7)
    passed = {line.rsplit("::", 1)[1].strip() for line in result.outlines if line.startswith("PASSED ")}
    assert passed == {
        "test_discovered_under_entry_name", "test_gsp_info_is_well_formed", "test_endpoint_urls_are_well_formed",
        "test_credentials_are_declared_and_accepted"}
    result.stdout.fnmatch_lines_random([
        "*these URLs ignore the override (use the `host` argument of gspauth_endpoint_url)*",
        "*gspauth_endpoint_url returned str for GSP id 'not-broken'; it must return None for ids you did not register*",
        "*signing OTPREQUEST twice with the same request, context.now, context.txn and context.nonce gave "
        "different headers ?'X-Broken-Nonce'?*",
        "*secrets leaked into reprs, errors or log lines*",
        "*gspauth_map_error turned a GSTN reply (HTTP 200*into GSPLayerError; return None so the core maps GSTN codes*",
        "*round trip through http://127.0.0.1:*/generic failed at OTPREQUEST: could not reach https://sandbox.broken.example*do your URLs start with the `host` argument?*",
        "*the sync httpx client did not send the plugin's headers*",
    ])
    assert "broken-secret-0042" not in result.stdout.str().split("secrets leaked")[1].split("\n")[1]


def test_misspelt_hook_argument_is_explained(pytester: pytest.Pytester, write_dist: Callable[..., Path],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    _install_broken(pytester, write_dist, monkeypatch, "misspelt")
    pytester.makepyfile(test_misspelt=BROKEN_TEST.replace('"broken"', '"misspelt"'))
    result = _run(pytester, "-k", "discovered")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*plugin 'misspelt' does not match gspauth's hooks:*credential*"
                                 "misspelt hook or argument name?*docs/hooks.md*"])


def test_credentials_the_plugin_refuses_and_an_unanswered_gsp_login_are_explained(
    pytester: pytest.Pytester, write_dist: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    _install_broken(pytester, write_dist, monkeypatch, "needy")
    with_token = BROKEN_TEST.replace("TestBroken", "TestWithToken").replace(
        'Credentials(client_id="broken-client", client_secret="broken-secret-0042")', 'Credentials(gsp_token="tok-0001")')
    pytester.makepyfile(test_needy=(BROKEN_TEST + with_token).replace('"broken"', '"needy"'))
    result = _run(pytester, "-k", "pure or sync_and_async")
    result.assert_outcomes(passed=1, failed=3)
    result.stdout.fnmatch_lines_random([
        "*gspauth_sign_headers refused the `credentials` fixture for OTPREQUEST: Needy needs "
        "Credentials(gsp_token=...). Return Credentials with every field your plugin needs*",
        "*signing through GSPAuth failed: PluginContractError: GSP 'needy': the login reply (HTTP 200) could not "
        "be parsed (KeyError)*Your GSP has its own login: override gsp_layer() in your test class to answer it.",
    ])


def test_missing_credentials_fixture_is_explained(pytester: pytest.Pytester, broken_site: Path) -> None:
    pytester.makepyfile(test_lazy=MISSING_FIXTURE_TEST)
    result = _run(pytester, "-k", "pure")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*NotImplementedError: override in your test class*"])


def test_uninstalled_plugin_is_explained(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_missing=BROKEN_TEST.replace('"broken"', '"nowhere"'))
    result = _run(pytester, "-k", "discovered")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*no entry point named 'nowhere' in group 'gspauth'*pip install -e .*"])


def test_template_generates_exactly_the_documented_files(tmp_path: Path) -> None:
    root = render_plugin("acme-gsp", tmp_path)
    module = names_for("acme-gsp")["module"]
    got = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    assert got == sorted(f.format(module=module) for f in _PLUGIN_FILES)
    assert 'acme-gsp = "gspauth_acme_gsp"' in (root / "pyproject.toml").read_text()
    assert "{{" not in "".join(p.read_text() for p in root.rglob("*") if p.is_file())


def test_template_refuses_bad_names_and_non_empty_targets(tmp_path: Path) -> None:
    from gspauth.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="lowercase"):
        render_plugin("Acme GSP", tmp_path)
    render_plugin("acme", tmp_path)
    with pytest.raises(ConfigurationError, match="not empty"):
        render_plugin("acme", tmp_path)


def test_generated_plugin_passes_its_own_tests(
    pytester: pytest.Pytester, write_dist: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = render_plugin("acme-gsp", pytester.path)
    names = names_for("acme-gsp")
    # Stand-in for `pip install -e .`: the src dir on sys.path plus the entry-point metadata.
    write_dist(root / "src", names["dist"], {names["gsp"]: names["module"]})
    _on_pythonpath(monkeypatch, root / "src")
    result = _run(pytester, str(root / "tests"))
    result.assert_outcomes(passed=13)

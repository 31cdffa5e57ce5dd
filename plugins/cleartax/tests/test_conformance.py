"""The gspauth conformance kit, run against the ClearTax plugin."""

from __future__ import annotations

import pytest

from gspauth.emulator import defaults
from gspauth.testing import ProviderConformance
from gspauth.types import Credentials


class TestClearTax(ProviderConformance):
    gsp = "cleartax"
    emulator_mount = "cleartax"

    @pytest.fixture
    def credentials(self) -> Credentials:
        return Credentials(gsp_token="ct-test-token-value-0001")

    @pytest.fixture
    def emulator_credentials(self) -> Credentials:
        return Credentials(gsp_token=defaults.CLEARTAX_AUTH_TOKEN)


class TestClearTaxLegacyHosts(TestClearTax):
    """The legacy host profile (``/api`` prefix) against the emulator's legacy mount."""

    emulator_mount = "cleartax-legacy"
    emulator_environment = "legacy-sandbox"
    emulator_config = {"cleartax_require_appkey_header": True}

"""The gspauth conformance kit, run against the Vayana plugin (cust-id and client-id, SHA-256 and SHA-1)."""

from __future__ import annotations

import pytest

from gspauth.emulator import defaults
from gspauth.testing import ProviderConformance
from gspauth.types import Credentials


class TestVayana(ProviderConformance):
    gsp = "vayana"
    emulator_mount = "vayana"

    @pytest.fixture
    def credentials(self, demo_key_pem: bytes) -> Credentials:
        return Credentials(client_id=defaults.VAYANA_ASP_CLIENTID, client_secret=defaults.VAYANA_ASP_CLIENT_SECRET,
                           asp_cust_id=defaults.VAYANA_ASP_CUST_ID, private_key_pem=demo_key_pem)


class TestVayanaClientIdSha1(TestVayana):
    """The other identity (client id) and the SHA-1 signature variant."""

    emulator_config = {"vayana_signature_hashes": ("sha1",)}

    @pytest.fixture
    def credentials(self, demo_key_pem: bytes) -> Credentials:
        return Credentials(client_id=defaults.VAYANA_ASP_CLIENTID, client_secret=defaults.VAYANA_ASP_CLIENT_SECRET,
                           asp_client_id=defaults.VAYANA_ASP_CLIENT_ID, private_key_pem=demo_key_pem,
                           signature_hash="sha1")

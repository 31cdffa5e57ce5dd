from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization

from gspauth.emulator import defaults


@pytest.fixture(scope="session")
def demo_key_pem() -> bytes:
    """The emulator's public demo ASP key (deterministic; never use it outside tests)."""
    return defaults.vayana_demo_private_key().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )

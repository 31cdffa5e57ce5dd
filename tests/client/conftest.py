"""Fixtures for tests/client (defined in client_support.py, which the tests also import)."""

from tests.client.client_support import all_logs, emulator_config, env, gsp  # noqa: F401

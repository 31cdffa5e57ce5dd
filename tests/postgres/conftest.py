"""The PostgreSQL tests reuse the client tests' emulator fixtures (a real server on loopback)."""

from tests.client.client_support import emulator_config, env  # noqa: F401

"""gspauth: talk to India's GST system (GSTN) through GST Suvidha Providers."""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]

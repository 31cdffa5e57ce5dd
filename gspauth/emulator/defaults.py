"""Documented default credentials and sample taxpayers of the emulator.

Everything here is **fake** and known to everyone: it exists so that tests, GSP
plugins and the demo can talk to a fresh emulator without configuration. None of
these values is accepted by GSTN or by any real GSP.

Layers and what they check (see :mod:`gspauth.emulator` for the URL layout):

* ``{root}/gstn/...``: ``clientid`` / ``client-secret`` must be a GSTN-registered GSP
  client (:data:`GSTN_CLIENT_ID` / :data:`GSTN_CLIENT_SECRET` by default).
* ``{root}/cleartax/...``: ``X-CT-Auth-Token`` must be one of :data:`CLEARTAX_AUTH_TOKENS`;
  ClearTax then adds its own GSTN client credentials (:data:`CLEARTAX_GSTN_CLIENT_ID`).
* ``{root}/vayana/gus/...``: ``clientid`` / ``client-secret`` of the ASP
  (:data:`VAYANA_ASP_CLIENTID` / :data:`VAYANA_ASP_CLIENT_SECRET`), an ``X-Asp-Auth-Token``
  naming :data:`VAYANA_ASP_CUST_ID` or :data:`VAYANA_ASP_CLIENT_ID`, signed with the ASP's
  RSA key; the emulator registers the public half of :func:`vayana_demo_private_key`
  unless told not to.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from gspauth.gstin import check_character

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import rsa

__all__ = [
    "CLEARTAX_APPLICATION",
    "CLEARTAX_AUTH_TOKEN",
    "CLEARTAX_AUTH_TOKENS",
    "CLEARTAX_GSTN_CLIENT_ID",
    "CLEARTAX_GSTN_CLIENT_SECRET",
    "GSTN_CLIENT_ID",
    "GSTN_CLIENT_SECRET",
    "SAMPLE_TAXPAYERS",
    "SANDBOX_OTP",
    "VAYANA_APPLICATION",
    "VAYANA_ASP_CLIENTID",
    "VAYANA_ASP_CLIENT_ID",
    "VAYANA_ASP_CLIENT_SECRET",
    "VAYANA_ASP_CUST_ID",
    "VAYANA_GSTN_CLIENT_ID",
    "VAYANA_GSTN_CLIENT_SECRET",
    "SampleTaxpayer",
    "make_gstin",
    "sample_taxpayer",
    "vayana_demo_private_key",
]

#: A GSP's GSTN-level credentials, for callers of ``{root}/gstn/...`` (36-char id, 32 hex secret).
GSTN_CLIENT_ID = "l7xxemu0gspauth0000000000000000000001"[:36]
GSTN_CLIENT_SECRET = "0123456789abcdef0123456789abcdef"

#: ClearTax's own GSTN credentials (the ClearTax layer adds them; clients never send them).
CLEARTAX_GSTN_CLIENT_ID = "l7xxemu0cleartax0000000000000000000002"[:36]
#: The secret that goes with :data:`CLEARTAX_GSTN_CLIENT_ID`.
CLEARTAX_GSTN_CLIENT_SECRET = "cleartaxcleartaxcleartaxcleartax"
#: The static ``X-CT-Auth-Token`` ClearTax would issue to an ASP.
CLEARTAX_AUTH_TOKEN = "ct-emulator-token-0001"
#: Name of the application that token belongs to (shown in consent notifications).
CLEARTAX_APPLICATION = "gspauth-demo (ClearTax)"
#: token → application name; :attr:`EmulatorConfig.cleartax_tokens` starts from this.
CLEARTAX_AUTH_TOKENS: dict[str, str] = {CLEARTAX_AUTH_TOKEN: CLEARTAX_APPLICATION}

#: Vayana's own GSTN credentials (the Vayana layer adds them).
VAYANA_GSTN_CLIENT_ID = "l7xxemu0vayana00000000000000000000003"[:36]
#: The secret that goes with :data:`VAYANA_GSTN_CLIENT_ID`.
VAYANA_GSTN_CLIENT_SECRET = "vayanavayanavayanavayanavayana00"
#: The ASP's ``clientid`` / ``client-secret`` issued by Vayana.
VAYANA_ASP_CLIENTID = "vayana-asp-emulator-0001"
VAYANA_ASP_CLIENT_SECRET = "fedcba9876543210fedcba9876543210"
#: The ASP's two identities for ``X-Asp-Auth-Token`` (fill exactly one of them per token).
VAYANA_ASP_CUST_ID = "CUSTEMU0001"
VAYANA_ASP_CLIENT_ID = "CLIENTEMU0001"
#: Name of the demo ASP's application (shown in consent notifications).
VAYANA_APPLICATION = "gspauth-demo (Vayana)"

#: The OTP every OTPREQUEST delivers in explicit sandbox mode (``sandbox_otp=True``).
SANDBOX_OTP = "575757"


def make_gstin(state_code: str, pan: str, entity: str = "1") -> str:
    """A GSTIN with the correct check character: ``state_code + pan + entity + 'Z' + check``."""
    first14 = f"{state_code}{pan}{entity}Z"
    return first14 + check_character(first14)


@dataclass(frozen=True)
class SampleTaxpayer:
    """One of the ready-made taxpayers (:data:`SAMPLE_TAXPAYERS`): GSTIN, portal username and contacts."""

    gstin: str
    username: str
    mobile: str
    email: str

    @property
    def state_code(self) -> str:
        return self.gstin[:2]


#: Ready-made taxpayers (valid GSTINs); a fresh emulator registers them unless told not to.
SAMPLE_TAXPAYERS: tuple[SampleTaxpayer, ...] = (
    SampleTaxpayer(make_gstin("27", "AAAPZ1234C"), "emu.maharashtra", "+919800000027", "mh@example.invalid"),
    SampleTaxpayer(make_gstin("29", "AABCE1234F"), "emu.karnataka", "+919800000029", "ka@example.invalid"),
    SampleTaxpayer(make_gstin("07", "AACCD5678G"), "emu.delhi", "+919800000007", "dl@example.invalid"),
    SampleTaxpayer(make_gstin("33", "AADFT9012H"), "emu.tamilnadu", "+919800000033", "tn@example.invalid"),
)


def sample_taxpayer(index: int = 0) -> SampleTaxpayer:
    """One of :data:`SAMPLE_TAXPAYERS` (0 = Maharashtra)."""
    return SAMPLE_TAXPAYERS[index]


def vayana_demo_private_key() -> rsa.RSAPrivateKey:
    """The deterministic demo ASP signing key whose public half a default emulator trusts.

    Derived from a fixed seed, so it is public knowledge: use it only against the emulator.
    """
    from gspauth.emulator.keys import deterministic_rsa_key

    return deterministic_rsa_key(0x5A5A_0001, 0)

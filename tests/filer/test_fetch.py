"""``gspauth fetch``: GSTR-1 back out (FILEDET, SHA-256 checked) and a recipient's GSTR-2A built
from what its suppliers filed."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from gspauth.client import AsyncClient
from gspauth.emulator import defaults
from gspauth.errors import IntegrityError
from gspauth.fetch import Fetcher
from gspauth.otp import EmulatorOtp
from gspauth.types import Credentials
from tests.filer.support import PERIOD, World, expected, world  # noqa: F401


def fetch(world: World, gstin: str, form: str, out: Path, **kw: Any) -> list[Any]:
    async def go() -> list[Any]:
        async with httpx.AsyncClient(timeout=20) as http:
            client = AsyncClient("cleartax", "sandbox", Credentials(gsp_token=defaults.CLEARTAX_AUTH_TOKEN),
                                 gstin=gstin, username=world.usernames[gstin], certificate=world.emu.certificate_pem,
                                 hosts={"sandbox": world.url + "/cleartax"}, store=world.store(),
                                 otp_provider=EmulatorOtp(world.url), http_client=http)
            fetcher = Fetcher(client, out, http=http, **kw)
            if form == "gstr1":
                return await fetcher.gstr1(PERIOD, ("b2b",))
            if form == "gstr2a":
                return await fetcher.gstr2a(PERIOD)
            return await fetcher.gstr2b(PERIOD)

    return asyncio.run(go())


def test_gstr1_comes_back_through_filedet_and_files_again_unchanged(world: World) -> None:
    (a,) = world.taxpayers(1)
    path, lines = world.write_jsonl("in.jsonl", {a: 700})  # above the emulator's 500: token + FILEDET
    assert world.file([path]).outcome == "complete"
    seen: list[int] = []
    (result,) = fetch(world, a, "gstr1", world.tmp / "out", progress=lambda what, n: seen.append(n))
    assert result.files == 7 and result.records == 700 and sum(seen) == result.bytes_downloaded > 0
    back = [json.loads(line) for line in Path(result.path).read_text().splitlines()]
    as_lines = [(json.dumps(r) + "\n").encode() for r in back]
    assert expected(as_lines) == expected(lines)  # the same invoices, canonical numbers, every field
    # the fetched file is valid filer input: filing it again finds nothing to send
    again = world.file([Path(result.path)])
    assert again.outcome == "complete" and again.unchanged == 700


def test_a_recipient_fetches_gstr2a_built_from_its_suppliers_filings(world: World) -> None:
    supplier, other, recipient = world.taxpayers(3)
    path1, lines1 = world.write_jsonl("s1.jsonl", {supplier: 300}, seed=1)
    path2, lines2 = world.write_jsonl("s2.jsonl", {other: 300}, seed=2)
    retarget = []
    for line in lines1 + lines2:
        inv = json.loads(line)
        inv["ctin"] = recipient
        retarget.append((json.dumps(inv) + "\n").encode())
    path1.write_bytes(b"".join(retarget[:300]))
    path2.write_bytes(b"".join(retarget[300:]))
    assert world.file([path1, path2]).outcome == "complete"
    b2b, cdn = fetch(world, recipient, "gstr2a", world.tmp / "2a")
    rows = [json.loads(line) for line in Path(b2b.path).read_text().splitlines()]
    assert b2b.records == 600 and b2b.files > 0  # 600 documents: through FILEDET too
    assert {r["ctin"] for r in rows} == {supplier, other} and all(r["gstin"] == recipient for r in rows)
    assert {r["inum"] for r in rows} == {json.loads(line)["inum"] for line in retarget}
    assert cdn.empty and cdn.records == 0  # no notes: GSTN's "no documents" is an empty result


def test_gstr2b_before_generation_is_a_typed_error(world: World) -> None:
    from gspauth.errors import GSPError

    (a,) = world.taxpayers(1)
    with pytest.raises(GSPError) as info:
        fetch(world, a, "gstr2b", world.tmp / "2b")
    assert info.value.error_code == "RET2B1023" and info.value.hint


def test_a_tampered_filedet_part_is_refused(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    (a,) = world.taxpayers(1)
    path, _ = world.write_jsonl("in.jsonl", {a: 600})
    assert world.file([path]).outcome == "complete"
    real = httpx.AsyncClient.stream

    def tampering(self: Any, method: str, url: Any, **kw: Any) -> Any:
        ctx = real(self, method, url, **kw)

        class Flip:
            async def __aenter__(self) -> Any:
                response = await ctx.__aenter__()
                original = response.aiter_bytes

                async def flipped(size: int | None = None) -> Any:
                    async for piece in original(size):
                        yield piece[:-1] + bytes([piece[-1] ^ 1])

                response.aiter_bytes = flipped
                return response

            async def __aexit__(self, *exc: Any) -> Any:
                return await ctx.__aexit__(*exc)

        return Flip()

    monkeypatch.setattr(httpx.AsyncClient, "stream", tampering)
    with pytest.raises(IntegrityError, match="SHA-256"):
        fetch(world, a, "gstr1", world.tmp / "out")
    assert not list((world.tmp / "out").glob("*.jsonl"))  # nothing half-written under the final name

"""Downloading returns to JSONL: GSTR-1 sections (a taxpayer's sales, as GSTN holds them) and
GSTR-2A / GSTR-2B (its purchases, as its suppliers filed them).

Small results come in the reply. Large ones come the way GSTN sends them: GSTR-1 and 2A answer
with a token; FILEDET then lists encrypted ``.tar.gz`` parts with their SHA-256 and the key
``ek``. Each part is streamed to disk while it is hashed, refused if the hash differs, and
unpacked and decrypted (in the Rust core when it is built) one part at a time, so memory stays
bounded by one part, not by the return. GSTR-2B is paged by ``file_num`` instead.

Records are written one per line in the filer's own JSONL shape (``gstin``, ``fp``, ``section``,
the counterparty key and the document), so a fetched GSTR-1 can be filed again unchanged;
2A/2B records carry the supplier as ``ctin`` and the recipient as ``gstin``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from gspauth import crypto
from gspauth.errors import GSPAuthError, GSPError, IntegrityError
from gspauth.types import Api

if TYPE_CHECKING:
    from gspauth.client import AsyncClient

__all__ = ["GSTR1_SECTIONS", "FetchResult", "Fetcher"]

#: GSTR-1 sections as download actions (the section name upper-cased).
GSTR1_SECTIONS = ("b2b", "b2cl", "b2cs", "cdnr", "hsn")
# The group key of grouped sections, as the filer's JSONL carries it.
_GROUP_KEYS = {"b2b": ("ctin", "inv"), "cdnr": ("ctin", "nt"), "b2cl": ("pos", "inv"), "cdn": ("ctin", "nt")}
_CHUNK = 1 << 20


@dataclass
class FetchResult:
    """What one download wrote."""

    form: str
    section: str
    path: str
    records: int = 0
    files: int = 0
    bytes_downloaded: int = 0
    empty: bool = False

    def to_dict(self) -> dict[str, object]:
        return {"form": self.form, "section": self.section, "path": self.path, "records": self.records,
                "files": self.files, "bytes_downloaded": self.bytes_downloaded, "empty": self.empty}


@dataclass
class _Sink:
    path: Path
    result: FetchResult
    out: Any = field(default=None, repr=False)

    def write(self, record: dict[str, Any]) -> None:
        self.out.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")
        self.result.records += 1


def _records(section: str, gstin: str, fp: str, value: Any) -> Iterator[dict[str, Any]]:
    """A section's wire value as flat records (the filer's JSONL shape)."""
    head = {"gstin": gstin, "fp": fp, "section": section}
    if section in _GROUP_KEYS and isinstance(value, list):
        _, list_key = _GROUP_KEYS[section]
        for group in value:
            if not isinstance(group, dict):
                continue
            extra = {k: v for k, v in group.items() if k != list_key}
            for doc in group.get(list_key) or []:
                yield {**head, **extra, **doc}
    elif section == "hsn" and isinstance(value, dict):
        for row in value.get("data") or []:
            yield {**head, **row}
    elif isinstance(value, list):
        for row in value:
            yield {**head, **row}


class Fetcher:
    """Download one taxpayer's returns through its client into ``out_dir``.

    :param client: the taxpayer's :class:`~gspauth.client.AsyncClient` (its session is used).
    :param out_dir: where the JSONL files go (created 0700).
    :param http: client for FILEDET file downloads (default: a new one).
    :param progress: called with ``(what, bytes)`` as parts download (for a display).
    """

    def __init__(self, client: AsyncClient, out_dir: str | os.PathLike[str], *, http: httpx.AsyncClient | None = None,
                 progress: Callable[[str, int], None] | None = None) -> None:
        from gspauth.config import ensure_private_dir

        self.client = client
        self.out_dir = ensure_private_dir(Path(out_dir).expanduser())
        self._http = http
        self._progress = progress or (lambda what, n: None)

    def _sink(self, form: str, section: str, fp: str) -> _Sink:
        path = self.out_dir / f"{self.client.gstin}_{fp}_{form}_{section}.jsonl"
        return _Sink(path, FetchResult(form, section, str(path)))

    async def gstr1(self, fp: str, sections: tuple[str, ...] = GSTR1_SECTIONS) -> list[FetchResult]:
        """GSTR-1 ``sections`` of ``fp`` as this taxpayer saved/filed them."""
        return [await self._section("gstr1", section, section.upper(), fp, section) for section in sections]

    async def gstr2a(self, fp: str, actions: tuple[str, ...] = ("B2B", "CDN")) -> list[FetchResult]:
        """GSTR-2A (``B2B`` invoices, ``CDN`` notes) of ``fp``: what suppliers saved naming this GSTIN."""
        return [await self._section("gstr2a", action.lower(), action, fp, action.lower()) for action in actions]

    async def _section(self, form: str, section: str, action: str, fp: str, reply_key: str) -> FetchResult:
        sink = self._sink(form, section, fp)
        tmp = sink.path.with_name(f".{sink.path.name}.part")
        with open(tmp, "w", encoding="utf-8") as sink.out:
            try:
                reply = await self.client.get(Api.RETURNS, form, action=action, ret_period=fp)
            except GSPError as exc:
                if exc.error_code in ("RET11416", "RET2B1016"):  # GSTN's "no documents": an empty result
                    sink.result.empty = True
                    reply = {}
                else:
                    raise
            if isinstance(reply, dict) and "token" in reply:
                await self._filedet(reply["token"], fp, sink, reply_key, section)
            elif isinstance(reply, dict):
                for record in _records(section, self.client.gstin, fp, reply.get(reply_key)):
                    sink.write(record)
        os.replace(tmp, sink.path)
        return sink.result

    async def gstr2b(self, fp: str) -> list[FetchResult]:
        """GSTR-2B of ``fp`` (paged by ``file_num`` when large): its ``b2b`` and ``cdnr`` documents."""
        sinks = {s: self._sink("gstr2b", s, fp) for s in ("b2b", "cdnr")}
        tmps = {s: sink.path.with_name(f".{sink.path.name}.part") for s, sink in sinks.items()}
        for s, sink in sinks.items():
            sink.out = open(tmps[s], "w", encoding="utf-8")
        try:
            try:
                first = await self.client.get(Api.RETURNS, "gstr2b", action="GET2B", ret_period=fp,
                                              params={"rtnprd": fp})
            except GSPError as exc:
                if exc.error_code != "RET2B1016":
                    raise
                first = {}
                for sink in sinks.values():
                    sink.result.empty = True
            data = first.get("data", {}) if isinstance(first, dict) else {}
            pages = [data] if "docdata" in data else []
            count = int(data.get("fc") or 0) if not pages else 0
            for n in range(1, count + 1):
                page = await self.client.get(Api.RETURNS, "gstr2b", action="GET2B", ret_period=fp,
                                             params={"rtnprd": fp, "file_num": n})
                pages.append(page.get("data", {}) if isinstance(page, dict) else {})
            for page in pages:
                for section, docs in (page.get("docdata") or {}).items():
                    if section in sinks:
                        for record in _records(section if section != "cdnr" else "cdn", self.client.gstin, fp, docs):
                            sinks[section].write({**record, "section": section})
                        sinks[section].result.files += 1
        finally:
            for sink in sinks.values():
                sink.out.close()
        for s, sink in sinks.items():
            os.replace(tmps[s], sink.path)
        return list(s.result for s in sinks.values())

    # -- FILEDET ------------------------------------------------------------------------------------

    async def _filedet(self, token: str, fp: str, sink: _Sink, reply_key: str, section: str) -> None:
        det = await self.client.get(Api.RETURNS, "", action="FILEDET", ret_period=fp, params={"token": token})
        key = base64.b64decode(det["ek"])
        base = self.client.hooks.endpoint_url(self.client.gsp, Api.FILES, self.client.environment)
        http = self._http or httpx.AsyncClient(timeout=120.0)
        try:
            for part in det.get("urls") or []:
                url = part["ul"] if str(part["ul"]).startswith(("http://", "https://")) else base + part["ul"]
                with tempfile.TemporaryFile() as blob:
                    await self._download(http, url, part["hash"], blob, sink.result)
                    blob.seek(0)
                    for record in self._unpack(blob, key, section, fp, reply_key):
                        sink.write(record)
                sink.result.files += 1
        finally:
            if self._http is None:
                await http.aclose()

    async def _download(self, http: httpx.AsyncClient, url: str, expected: str, blob: Any, result: FetchResult) -> None:
        digest = hashlib.sha256()
        async with http.stream("GET", url) as response:
            if response.status_code != 200:
                raise GSPError(f"FILEDET part answered HTTP {response.status_code}", status_code=response.status_code,
                               hint="the download URL lives a short while: fetch again (a new token is made)")
            async for piece in response.aiter_bytes(_CHUNK):
                digest.update(piece)
                blob.write(piece)
                result.bytes_downloaded += len(piece)
                self._progress("download", len(piece))
        if digest.hexdigest() != str(expected).lower():
            raise IntegrityError("a FILEDET part failed its SHA-256 check (damaged or altered in transit); fetch again",
                                 field="file")

    def _unpack(self, blob: Any, key: bytes, section: str, fp: str, reply_key: str) -> Iterator[dict[str, Any]]:
        try:
            with tarfile.open(fileobj=blob, mode="r|gz") as tar:
                for member in tar:
                    if not (member.isfile() and member.name.endswith(".json")):
                        continue
                    fh = tar.extractfile(member)
                    if fh is None:
                        continue
                    text = fh.read().decode("ascii").strip()
                    part = json.loads(base64.b64decode(crypto.decrypt_field(key, text, field="file")))
                    yield from _records(section, self.client.gstin, fp, part.get(reply_key))
        except (tarfile.TarError, UnicodeDecodeError, ValueError) as exc:
            if isinstance(exc, GSPAuthError):
                raise
            raise IntegrityError(f"a FILEDET part is not the archive GSTN describes ({type(exc).__name__})",
                                 field="file") from None

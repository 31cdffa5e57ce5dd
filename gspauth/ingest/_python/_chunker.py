"""Grouping records into RETSAVE chunks under a byte limit (Rust twin: ``ingest/chunker.rs``).

A group is one (gstin, fp, section). Its open chunk takes records in arrival
order; b2b/cdnr records sit under their ``ctin`` and b2cl under their ``pos``,
those sub-groups in order of first appearance in the chunk. The payload size is
known exactly as records are added; a record that would push it past
``max_chunk_bytes`` closes the chunk first. The records held across all groups
are counted; when they exceed ``max_buffer_bytes`` the group holding the most
(the earliest opened on a tie) is emitted early. Groups keep their place in
opening order, and :meth:`Chunker.flush` emits the non-empty ones in that order.
"""

from __future__ import annotations

import hashlib
from json.encoder import encode_basestring
from typing import TYPE_CHECKING

from gspauth.errors import InvalidParameter
from gspauth.ingest._python._schema import COUNTERPARTY, LIST_FIELD

if TYPE_CHECKING:
    from gspauth.ingest._python._parser import Batch, _Rec

__all__ = ["Chunk", "Chunker"]

ErrorTuple = tuple[str, int, str, str]


class Chunk:
    """One RETSAVE payload: canonical JSON ``{"<section>": …, "fp": …, "gstin": …}``."""

    __slots__ = ("_records", "count", "fp", "gstin", "payload", "section", "sha256")

    def __init__(self, gstin: str, fp: str, section: str, payload: bytes, records: list[tuple[str, str]]) -> None:
        self.gstin, self.fp, self.section, self.payload = gstin, fp, section, payload
        self.sha256 = hashlib.sha256(payload).hexdigest()
        self.count = len(records)
        self._records = records

    @property
    def records(self) -> list[tuple[str, str]]:
        """``(ident, sha256hex)`` of each record in the chunk, in arrival order."""
        return list(self._records)

    def body(self, sek: bytes, action: str, /) -> bytes:
        """The request body ``{"action","data","hmac"}``: :func:`gspauth.protocol.wrap_payload_content`."""
        from gspauth import protocol

        if not isinstance(action, str):
            raise TypeError("action must be str")
        return protocol.wrap_payload_content(sek, action, self.payload)

    def __repr__(self) -> str:
        return f"<Chunk {self.gstin} {self.fp} {self.section}: {self.count} records, {len(self.payload)} bytes>"


class _Group:
    __slots__ = ("buffered", "fp", "gstin", "head", "order", "records", "section", "size", "subs", "tail")

    def __init__(self, gstin: str, fp: str, section: str) -> None:
        self.gstin, self.fp, self.section = gstin, fp, section
        key_fields = f'"fp":{encode_basestring(fp)},"gstin":{encode_basestring(gstin)}'
        if section == "hsn":
            self.head, self.tail = f'{{{key_fields},"hsn":{{"data":['.encode(), b"]}}"
        else:
            self.head, self.tail = f'{{"{section}":['.encode(), f"],{key_fields}}}".encode()
        self.subs: dict[str, list[bytes]] = {}  # counterparty → canonical records
        self.order: list[bytes] = []  # b2cs / hsn records
        self.records: list[tuple[str, str]] = []
        self.size = 0  # the payload size of what is held
        self.buffered = 0  # canonical bytes held
        self.reset()

    def reset(self) -> None:
        self.subs, self.order, self.records = {}, [], []
        self.size = len(self.head) + len(self.tail)
        self.buffered = 0

    def wrapper(self, key: str) -> int:
        """Bytes a new sub-group adds besides its records (and a separating comma)."""
        if self.section in COUNTERPARTY:
            return len(_sub(self.section, key, b"")) + (1 if self.subs else 0)
        return 0

    def cost(self, rec: _Rec) -> int:
        if self.section not in COUNTERPARTY:
            return len(rec.canon) + (1 if self.order else 0)
        if rec.key in self.subs:
            return len(rec.canon) + 1
        return self.wrapper(rec.key) + len(rec.canon)

    def add(self, rec: _Rec, cost: int) -> None:
        if self.section in COUNTERPARTY:
            self.subs.setdefault(rec.key, []).append(rec.canon)
        else:
            self.order.append(rec.canon)
        self.records.append((rec.ident, rec.sha))
        self.size += cost
        self.buffered += len(rec.canon)

    def take(self) -> Chunk:
        if self.section in COUNTERPARTY:
            body = b",".join(_sub(self.section, k, b",".join(v)) for k, v in self.subs.items())
        else:
            body = b",".join(self.order)
        payload = self.head + body + self.tail
        assert len(payload) == self.size
        chunk = Chunk(self.gstin, self.fp, self.section, payload, self.records)
        self.reset()
        return chunk


def _sub(section: str, key: str, records: bytes) -> bytes:
    k = encode_basestring(key).encode("utf-8")
    name = LIST_FIELD[section].encode()
    if section == "b2cl":  # keys in code-point order: "inv" < "pos"
        return b'{"inv":[' + records + b'],"pos":' + k + b"}"
    return b'{"ctin":' + k + b',"' + name + b'":[' + records + b"]}"


class Chunker:
    """Groups the records of batches into chunks; see the module docstring."""

    def __init__(self, max_chunk_bytes: int, max_buffer_bytes: int, /) -> None:
        for name, value in (("max_chunk_bytes", max_chunk_bytes), ("max_buffer_bytes", max_buffer_bytes)):
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"{name} must be int")
            if value < 1:
                raise InvalidParameter(f"{name} must be at least 1", name)
        self.max_chunk_bytes, self.max_buffer_bytes = max_chunk_bytes, max_buffer_bytes
        self._groups: dict[tuple[str, str, str], _Group] = {}
        self._buffered = 0
        self._peak = 0
        self._errors: list[ErrorTuple] = []

    @property
    def buffered_bytes(self) -> int:
        """Canonical record bytes held in open chunks now."""
        return self._buffered

    @property
    def peak_buffered_bytes(self) -> int:
        """The most :attr:`buffered_bytes` has been after placing a record (never above ``max_buffer_bytes``)."""
        return self._peak

    def errors(self) -> list[ErrorTuple]:
        """Records refused since the last call (``too-large``: larger than a chunk alone); clears the list."""
        out, self._errors = self._errors, []
        return out

    def add(self, batch: Batch, skip: bytes | None, /) -> list[Chunk]:
        """Add the records of ``batch`` except where ``skip[i]`` is non-zero; returns the chunks completed."""
        from gspauth.ingest._python._parser import Batch

        if not isinstance(batch, Batch):
            raise TypeError("batch must be a Batch of this backend")
        recs = batch._recs  # noqa: SLF001 - the parser fills a batch's lists, the chunker reads them (one backend)
        if skip is not None:
            if not isinstance(skip, bytes):
                raise TypeError("skip must be bytes or None")
            if len(skip) != len(recs):
                raise InvalidParameter(f"skip has {len(skip)} bytes; the batch has {len(recs)} records", "skip")
        out: list[Chunk] = []
        for i, rec in enumerate(recs):
            if skip is not None and skip[i]:
                continue
            group_key = (rec.gstin, rec.fp, rec.section)
            group = self._groups.get(group_key)
            if group is None:
                group = self._groups[group_key] = _Group(rec.gstin, rec.fp, rec.section)
            cost = group.cost(rec)
            if group.size + cost > self.max_chunk_bytes and group.records:
                self._buffered -= group.buffered
                out.append(group.take())
                cost = group.cost(rec)
            if group.size + cost > self.max_chunk_bytes:
                self._errors.append((batch.source, rec.line, "too-large",
                                     f"the record needs a chunk of {group.size + cost} bytes; max_chunk_bytes is "
                                     f"{self.max_chunk_bytes}"))
                continue
            group.add(rec, cost)
            self._buffered += len(rec.canon)
            while self._buffered > self.max_buffer_bytes:
                largest = max(self._groups.values(), key=lambda g: g.buffered)  # first of the largest
                self._buffered -= largest.buffered
                out.append(largest.take())
            self._peak = max(self._peak, self._buffered)
        return out

    def flush(self) -> list[Chunk]:
        """Emit every open chunk, in the order their groups were opened."""
        out = [g.take() for g in self._groups.values() if g.records]
        self._buffered = 0
        return out

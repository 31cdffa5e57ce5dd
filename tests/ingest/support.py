"""Helpers for the ingest tests: valid records per section, runs of a backend, file writers."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from gspauth.gstin import check_character

SUPPLIER = "27AAPCD0007K1ZO"  # Maharashtra
FP = "072017"


def gstin(state: str = "29", body: str = "AAACB1234A1Z") -> str:
    first14 = state + body
    return first14 + check_character(first14)


CTIN = gstin("29")  # Karnataka: inter-state from the supplier
CTIN_LOCAL = gstin("27", "AABCL5678B1Z")  # Maharashtra: intra-state
ETIN = gstin("07", "AAACE0001C1Z")


def item(num: int, rt: Any, txval: Any, *, igst: bool, cess: Any = 0) -> dict[str, Any]:
    """An item whose taxes are right (amounts as exact decimals in text form when str)."""
    from decimal import ROUND_HALF_UP, Decimal

    t, r = Decimal(str(txval)), Decimal(str(rt))
    det: dict[str, Any] = {"txval": txval, "rt": rt, "csamt": cess}
    if igst:
        det["iamt"] = float((t * r / 100).quantize(Decimal("0.01"), ROUND_HALF_UP))
    else:
        half = float((t * r / 200).quantize(Decimal("0.01"), ROUND_HALF_UP))
        det["camt"] = det["samt"] = half
    return {"num": num, "itm_det": det}


def b2b(**over: Any) -> dict[str, Any]:
    """A valid b2b invoice of SUPPLIER to CTIN (inter-state), without gstin/fp/section/ctin."""
    rec = {"inum": "INV/1", "idt": "05-07-2017", "val": 2360, "pos": "29", "rchrg": "N", "inv_typ": "R",
           "itms": [item(1, 18, 1000, igst=True), item(2, 18, 1000, igst=True)]}
    rec.update(over)
    return rec


def cdnr(**over: Any) -> dict[str, Any]:
    rec = {"ntty": "C", "nt_num": "CN-7", "nt_dt": "10-07-2017", "val": 590, "pos": "27", "rchrg": "N",
           "inv_typ": "R", "itms": [item(1, 18, 500, igst=False)]}
    rec.update(over)
    return rec


def b2cl(**over: Any) -> dict[str, Any]:
    rec = {"inum": "L-1", "idt": "15-07-2017", "val": 354000, "itms": [item(1, 18, 300000, igst=True)]}
    for it in rec["itms"]:
        del it["itm_det"]["csamt"]
    rec.update(over)
    return rec


def b2cs(**over: Any) -> dict[str, Any]:
    rec = {"sply_ty": "INTRA", "pos": "27", "typ": "OE", "rt": 5, "txval": 1000, "camt": 25, "samt": 25, "csamt": 0}
    rec.update(over)
    return rec


def hsn(**over: Any) -> dict[str, Any]:
    rec = {"num": 1, "hsn_sc": "1001", "desc": "Wheat", "uqc": "KGS", "qty": 100, "val": 1050, "rt": 5,
           "txval": 1000, "iamt": 50, "camt": 0, "samt": 0, "csamt": 0}
    rec.update(over)
    return rec


MAKERS = {"b2b": b2b, "cdnr": cdnr, "b2cl": b2cl, "b2cs": b2cs, "hsn": hsn}
COUNTERPARTY = {"b2b": ("ctin", CTIN), "cdnr": ("ctin", CTIN_LOCAL), "b2cl": ("pos", "29")}


def line(section: str, rec: dict[str, Any] | None = None, **meta: Any) -> bytes:
    """One JSONL line (with LF) for ``rec`` (default: the section's valid record)."""
    d: dict[str, Any] = {"gstin": SUPPLIER, "fp": FP, "section": section}
    if section in COUNTERPARTY:
        k, v = COUNTERPARTY[section]
        d[k] = v
    d.update(meta)
    d.update(MAKERS[section]() if rec is None else rec)
    return json.dumps(d, ensure_ascii=False).encode() + b"\n"


@dataclass
class Outcome:
    """Everything a backend produced for one input, comparable across backends."""

    records: list[tuple[Any, ...]] = field(default_factory=list)
    errors: list[tuple[Any, ...]] = field(default_factory=list)
    chunks: list[tuple[Any, ...]] = field(default_factory=list)
    chunk_errors: list[tuple[Any, ...]] = field(default_factory=list)
    failed: bool = False
    batches: list[tuple[int, int]] = field(default_factory=list)  # (records, errors) per call

    @property
    def codes(self) -> list[str]:
        return [e[2] for e in self.errors]

    @property
    def payloads(self) -> list[bytes]:
        return [c[3] for c in self.chunks]


def chunk_view(c: Any) -> tuple[Any, ...]:
    return (c.gstin, c.fp, c.section, c.payload, c.sha256, c.count, c.records)


def run(backend: SimpleNamespace, fmt: str, data: bytes | list[bytes], section: str | None = None,
        gstin_: str | None = None, fp: str | None = None, *, max_chunk: int = 1 << 20,
        max_buffer: int = 1 << 24, skip: Any = None, source: str = "input") -> Outcome:
    """Feed ``data`` (one piece or a list of pieces) to a Parser and a Chunker of ``backend``."""
    pieces = [data] if isinstance(data, bytes) else data
    parser = backend.Parser(fmt, source, section, gstin_, fp)
    chunker = backend.Chunker(max_chunk, max_buffer)
    out = Outcome()
    batches = [parser.feed(p) for p in pieces] + [parser.finish()]
    for b in batches:
        recs = b.records()
        out.records += recs
        out.errors += b.errors()
        out.batches.append((len(b), len(b.errors())))
        mask = None if skip is None else bytes(1 if skip(r) else 0 for r in recs)
        out.chunks += [chunk_view(c) for c in chunker.add(b, mask)]
        out.chunk_errors += chunker.errors()
    out.chunks += [chunk_view(c) for c in chunker.flush()]
    out.failed = parser.failed
    return out


def splits(data: bytes, rng: random.Random, n: int) -> list[bytes]:
    """``data`` cut at ``n`` random places (pieces may be empty)."""
    cuts = sorted(rng.randrange(len(data) + 1) for _ in range(n))
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)])]


def gstr1(sections: dict[str, Any], *, gstin_: str = SUPPLIER, fp: str = FP, first: bool = True,
          extra: dict[str, Any] | None = None, indent: int | None = None) -> bytes:
    """A GSTR-1 JSON file; ``first``: gstin/fp before the sections (else after them)."""
    head = {"gstin": gstin_, "fp": fp}
    body = {**(extra or {}), **sections}
    doc = {**head, **body} if first else {**body, **head}
    return json.dumps(doc, indent=indent, ensure_ascii=False).encode()

"""Write ``ingest_vectors.json``: inputs and the pure-Python reference's exact outputs.

Usage: ``python tests/ingest/vectors/generate_vectors.py`` (from the repository root).

Each case is an input file (text, or Base64 when it is not UTF-8) with the parser
arguments, and what the reference (``gspauth.ingest._python``) gives for it: records,
errors, whether the file failed, the chunks (payload, hash, record count) and, for the
first chunk, the request body under a fixed key. Read by ``tests/ingest/test_vectors.py``
(both backends) and by ``rust/gspauth-core/src/ingest/vectors.rs`` (the Rust core on
its own). Regenerate when the reference changes on purpose; the test fails otherwise.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))

from gspauth.ingest import _python
from tests.ingest import support as s

OUT = Path(__file__).with_name("ingest_vectors.json")
SEK = bytes(range(32))
MAX_CHUNK = 1500  # small, so that records cross chunk boundaries


def cases() -> list[dict[str, object]]:
    out: list[dict[str, object]] = []

    def add(comment: str, fmt: str, data: bytes, section: str | None = None, gstin: str | None = None,
            fp: str | None = None) -> None:
        out.append({"comment": comment, "format": fmt, "section": section, "gstin": gstin, "fp": fp, "data": data})

    samples = ROOT / "docs" / "samples"
    for section in ("b2b", "b2cl", "b2cs", "cdnr", "hsn"):
        add(f"docs/samples/{section}.csv", "csv", (samples / f"{section}.csv").read_bytes(), section, s.SUPPLIER, s.FP)
        add(f"docs/samples/{section}.jsonl", "jsonl", (samples / f"{section}.jsonl").read_bytes())
        add(f"docs/samples/{section}.json", "gstr1-json", (samples / f"{section}.json").read_bytes())
    bad_lines = [b"\xff{}", b'{"a":1', b"[1]", b'{"section":"b2b","section":"b2b"}', b'{"section":"exp"}',
                 b"[" * 33 + b"]" * 33, s.line("b2b").replace(b'"INV/1"', b'"\\ud800"').rstrip(),
                 s.line("b2b", s.b2b(val=1.005)).rstrip(), s.line("b2b", s.b2b(val=-1)).rstrip(),
                 s.line("b2b", {**s.b2b(), "Inum": "x"}).rstrip(), s.line("b2b", s.b2b(idt="31-06-2017")).rstrip(),
                 s.line("b2b", s.b2b(pos="27")).rstrip(), s.line("b2cl", s.b2cl(val=250000)).rstrip(),
                 s.line("b2cs", s.b2cs(typ="E")).rstrip(), s.line("hsn", s.hsn(uqc="KG")).rstrip(),
                 b'{"section":"b2cs","fp":"072017","gstin":"27AAPCD0007K1ZO","typ":"OE","pos":"27","sply_ty":"INTRA",'
                 b'"rt":5.00,"txval":1.0E3,"camt":25.0,"samt":0.025e3,"csamt":-0,"etin":"\\u00e9\\/"}']
    add("JSONL: one line per kind of error, then a valid line", "jsonl",
        b"\n".join(bad_lines) + b"\n" + s.line("b2cs"))
    add("JSONL: lines checked against the section the file is read with", "jsonl",
        s.line("b2b") + s.line("b2cs"), "b2b")
    g = s.gstr1({"b2b": [{"ctin": s.CTIN, "inv": [s.b2b(), s.b2b(inum="INV/2")]}], "b2cs": [s.b2cs()]})
    add("GSTR-1 JSON: gstin/fp after the sections, with hints", "gstr1-json",
        json.dumps({"b2cs": [s.b2cs()], "fp": s.FP, "gstin": s.SUPPLIER}).encode(), None, s.SUPPLIER, s.FP)
    add("GSTR-1 JSON: gstin/fp after the sections, no hints", "gstr1-json",
        json.dumps({"b2cs": [s.b2cs()], "fp": s.FP, "gstin": s.SUPPLIER}).encode())
    add("GSTR-1 JSON: records before their pos; a group without ctin; unknown and unsupported parts", "gstr1-json",
        s.gstr1({"b2cl": [{"inv": [s.b2cl()], "pos": "29"}], "b2b": [{"inv": [s.b2b()], "cfs": "Y"}],
                 "exp": [{"x": "]"}], "hsn": {"hsn_b2b": [], "data": [s.hsn()]}}, indent=1))
    add("GSTR-1 JSON: a broken record, then a fatal fault", "gstr1-json",
        g.replace(b'"b2cs": [', b'"b2cs": [{"typ": OE}, 12, ')[:-1] + b', "x": ]')
    add("GSTR-1 JSON: truncated", "gstr1-json", g[:-40])
    csv = (samples / "b2b.csv").read_bytes().split(b"\n")
    add("CSV: a header that does not match", "csv", b"GSTIN,Invoice\n" + csv[1], "b2b", s.SUPPLIER, s.FP)
    add("CSV: row errors, an inconsistent invoice, an unreadable row inside an invoice", "csv",
        b"\r\n".join([csv[0], csv[1], csv[2].replace(b"2890.00", b"2891.00"), csv[3], csv[3].replace(b"N,", b'N"', 1),
                      csv[3], csv[4].replace(b"18.00", b"17.00"), csv[5].replace(b"28-Jul", b"31-Feb"), b'"open']),
        "b2b", s.SUPPLIER, s.FP)
    return out


def expected(case: dict[str, object]) -> dict[str, object]:
    data = case["data"]
    assert isinstance(data, bytes)
    parser = _python.Parser(case["format"], "input", case["section"], case["gstin"], case["fp"])  # type: ignore[arg-type]
    chunker = _python.Chunker(MAX_CHUNK, 4000)
    records, errors, chunks = [], [], []
    for batch in (parser.feed(data), parser.finish()):
        records += batch.records()
        errors += batch.errors()
        chunks += chunker.add(batch, None)
        errors += chunker.errors()
    chunks += chunker.flush()
    result: dict[str, object] = {
        "records": [list(r) for r in records],
        "errors": [list(e) for e in errors],
        "failed": parser.failed,
        "chunks": [{"gstin": c.gstin, "fp": c.fp, "section": c.section, "payload": c.payload.decode(),
                    "sha256": c.sha256, "count": c.count, "records": [list(r) for r in c.records]} for c in chunks],
    }
    if chunks:
        result["body"] = chunks[0].body(SEK, "RETSAVE").decode()
    return result


def build() -> dict[str, object]:
    tests = []
    for i, case in enumerate(cases(), 1):
        data = case["data"]
        assert isinstance(data, bytes)
        try:
            text: dict[str, str] = {"text": data.decode("utf-8")}
        except UnicodeDecodeError:
            text = {"base64": base64.b64encode(data).decode()}
        tests.append({"tcId": i, "comment": case["comment"], "format": case["format"], "section": case["section"],
                      "gstin": case["gstin"], "fp": case["fp"], "input": text, **expected(case)})
    return {"generator": "tests/ingest/vectors/generate_vectors.py (the pure-Python reference)",
            "maxChunkBytes": MAX_CHUNK, "maxBufferBytes": 4000, "sek": SEK.hex(), "action": "RETSAVE",
            "tests": tests}


if __name__ == "__main__":
    text = json.dumps(build(), indent=1, ensure_ascii=False) + "\n"
    OUT.write_text(text, encoding="utf-8")
    print(f"{OUT.name}: {len(json.loads(text)['tests'])} cases, sha256 {hashlib.sha256(text.encode()).hexdigest()}")

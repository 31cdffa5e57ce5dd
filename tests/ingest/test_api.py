"""The public API of gspauth.ingest: read_chunks, the backend switch, signatures, documented codes."""

from __future__ import annotations

import inspect
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from gspauth import ingest, synthetic
from gspauth.errors import InvalidParameter

from . import support as s

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "docs" / "samples"


def test_read_chunks_over_several_files_and_formats(tmp_path: Path) -> None:
    bad = tmp_path / "b2cs_broken.csv"
    bad.write_bytes((SAMPLES / "b2cs.csv").read_bytes().replace(b"5.00,10000.00", b"5.00,ten"))
    paths = [SAMPLES / "b2b.csv", SAMPLES / "b2cl.json", SAMPLES / "cdnr.jsonl", bad]
    items = list(ingest.read_chunks(paths, gstin=s.SUPPLIER, fp=s.FP, block_size=7))
    errors = [i for i in items if isinstance(i, ingest.RecordError)]
    chunks = [i for i in items if not isinstance(i, ingest.RecordError)]
    assert errors == [ingest.RecordError(str(bad), 2, "number",
                                         "Taxable Value is not a number (write digits with an optional '.' and up to "
                                         "2 decimals)")]
    assert [(c.section, c.count) for c in chunks] == [("b2b", 4), ("b2cl", 2), ("cdnr", 2), ("b2cs", 2)]


def test_read_chunks_skip_and_limits(tmp_path: Path) -> None:
    path = tmp_path / "many.jsonl"
    path.write_bytes(b"".join(synthetic.b2b_jsonl(60, seed=3)))
    seen: list[tuple[str, str, str, str, str, int]] = []

    def skip(record: tuple[str, str, str, str, str, int]) -> bool:
        seen.append(record)
        return record[5] % 2 == 0

    chunks = list(ingest.read_chunks([path], skip=skip, max_chunk_bytes=20_000, block_size=4096))
    assert len(seen) == 60
    assert sum(c.count for c in chunks) == 30  # type: ignore[union-attr]
    assert all(len(c.payload) <= 20_000 for c in chunks)  # type: ignore[union-attr]


def test_format_and_section_from_the_file_name() -> None:
    assert [ingest.detect_format(p) for p in ("a.jsonl", "a.NDJSON", "x/y.json", "b2b.CSV")] == \
        ["jsonl", "jsonl", "gstr1-json", "csv"]
    with pytest.raises(InvalidParameter, match="pass format="):
        ingest.detect_format("invoices.xlsx")
    assert [ingest.section_from_name(p) for p in ("b2b.csv", "B2CS_072017.csv", "b2cl-july.csv", "cdnr.csv",
                                                  "hsn.csv", "b2ba.csv", "sales.csv")] == \
        ["b2b", "b2cs", "b2cl", "cdnr", "hsn", None, None]
    with pytest.raises(InvalidParameter, match="pass section="):
        list(ingest.read_chunks([Path("sales.csv")], gstin=s.SUPPLIER, fp=s.FP))


@pytest.mark.native
def test_both_backends_have_the_same_signatures_and_methods(nat: SimpleNamespace, ref: SimpleNamespace) -> None:
    def shape(fn: object) -> list[tuple[str, object]]:
        return [(p.name, p.kind) for p in inspect.signature(fn).parameters.values()]  # type: ignore[arg-type]

    assert shape(nat.Parser) == shape(ref.Parser)
    assert shape(nat.Chunker) == shape(ref.Chunker)
    for cls, names in (("Parser", ("feed", "finish")), ("Chunker", ("add", "flush", "errors")),
                       ("Batch", ("records", "errors")), ("Chunk", ("body",))):
        for name in names:
            n, r = getattr(getattr(nat, cls), name), getattr(getattr(ref, cls), name)
            assert shape(n)[1:] == shape(r)[1:], (cls, name)
            assert n.__doc__, (cls, name)
    for cls, attrs in (("Parser", ("failed",)), ("Chunker", ("buffered_bytes", "peak_buffered_bytes")),
                       ("Batch", ("source",)), ("Chunk", ("gstin", "fp", "section", "payload", "sha256", "count",
                                                          "records"))):
        for a in attrs:
            assert hasattr(getattr(nat, cls), a) and hasattr(getattr(ref, cls), a), (cls, a)


def test_the_backend_follows_gspauth_backend() -> None:
    code = "import gspauth.ingest as i, gspauth.crypto as c; print(i.BACKEND, c.BACKEND, i.Parser.__module__)"
    env = dict(os.environ, GSPAUTH_BACKEND="python")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.split() == ["python", "python", "gspauth.ingest._python._parser"]


def test_every_error_code_is_documented_and_every_emitted_code_is_listed() -> None:
    doc = (ROOT / "docs" / "ingest.md").read_text()
    for code in ingest.ERROR_CODES:
        assert f"`{code}`" in doc, code
    emitted: set[str] = set()
    for path in (ROOT / "gspauth" / "ingest" / "_python").glob("*.py"):
        emitted |= set(re.findall(r'(?:Reject|_Fatal|_RowError)\((?:[\w.]+, )?"([a-z0-9-]+)"', path.read_text()))
        emitted |= set(re.findall(r'error\([\w.]+, "([a-z0-9-]+)"', path.read_text()))
    assert emitted and emitted <= set(ingest.ERROR_CODES), emitted - set(ingest.ERROR_CODES)

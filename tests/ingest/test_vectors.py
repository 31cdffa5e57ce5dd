"""The ingest vectors (``vectors/ingest_vectors.json``): current with the reference, met by both backends.

The same file is read by ``rust/gspauth-core/src/ingest/vectors.rs`` under ``cargo test``.
"""

from __future__ import annotations

import base64
import importlib.util
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent / "vectors"
DATA = json.loads((HERE / "ingest_vectors.json").read_text(encoding="utf-8"))


def _generator() -> Any:
    spec = importlib.util.spec_from_file_location("generate_vectors", HERE / "generate_vectors.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_file_is_what_the_reference_gives_today() -> None:
    assert _generator().build() == DATA, "regenerate: python tests/ingest/vectors/generate_vectors.py"


@pytest.mark.parametrize("case", DATA["tests"], ids=lambda c: f"{c['tcId']}-{c['format']}")
def test_case(ingest: SimpleNamespace, case: dict[str, Any]) -> None:
    inp = case["input"]
    data = inp["text"].encode() if "text" in inp else base64.b64decode(inp["base64"])
    parser = ingest.Parser(case["format"], "input", case["section"], case["gstin"], case["fp"])
    chunker = ingest.Chunker(DATA["maxChunkBytes"], DATA["maxBufferBytes"])
    records, errors, chunks = [], [], []
    for batch in (parser.feed(data), parser.finish()):
        records += [list(r) for r in batch.records()]
        errors += [list(e) for e in batch.errors()]
        chunks += chunker.add(batch, None)
        errors += [list(e) for e in chunker.errors()]
    chunks += chunker.flush()
    assert (records, errors, parser.failed) == (case["records"], case["errors"], case["failed"])
    assert [{"gstin": c.gstin, "fp": c.fp, "section": c.section, "payload": c.payload.decode(), "sha256": c.sha256,
             "count": c.count, "records": [list(r) for r in c.records]} for c in chunks] == case["chunks"]
    if chunks:
        assert chunks[0].body(bytes.fromhex(DATA["sek"]), DATA["action"]).decode() == case["body"]


def test_the_readme_records_the_file_s_sha256() -> None:
    import hashlib

    digest = hashlib.sha256((HERE / "ingest_vectors.json").read_bytes()).hexdigest()
    assert digest in (HERE / "README.md").read_text()

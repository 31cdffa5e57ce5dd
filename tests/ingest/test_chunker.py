"""Grouping into RETSAVE chunks, the byte limit, the buffer budget, skip, and request bodies."""

from __future__ import annotations

import json
import random
from types import SimpleNamespace

import pytest

from gspauth import protocol
from gspauth.errors import InvalidKey, InvalidParameter

from . import support as s
from .support import run

SEK = bytes(range(32))


def _lines(n: int, section: str = "b2b", ctins: tuple[str, ...] = (s.CTIN,)) -> bytes:
    out = []
    for i in range(n):
        ctin = ctins[i % len(ctins)]
        rec = s.b2b(inum=f"I-{i}", pos=ctin[:2])
        if ctin[:2] == "27":
            rec["itms"] = [s.item(1, 18, 1000, igst=False), s.item(2, 18, 1000, igst=False)]
        out.append(s.line(section, rec, ctin=ctin))
    return b"".join(out)


def test_payload_layout_per_section(ingest: SimpleNamespace) -> None:
    data = _lines(3, ctins=(s.CTIN, s.CTIN_LOCAL)) + s.line("b2cl") + s.line("b2cs") + s.line("cdnr") + s.line("hsn")
    out = run(ingest, "jsonl", data)
    heads = [p[:30] for p in out.payloads]
    assert heads == [b'{"b2b":[{"ctin":"29AAACB1234A1', b'{"b2cl":[{"inv":[{"idt":"15-07', b'{"b2cs":[{"camt":25,"csamt":0,',
                     b'{"cdnr":[{"ctin":"27AABCL5678B', b'{"fp":"072017","gstin":"27AAPC']
    b2b = json.loads(out.payloads[0])
    assert [g["ctin"] for g in b2b["b2b"]] == [s.CTIN, s.CTIN_LOCAL]  # first-appearance order
    assert [inv["inum"] for inv in b2b["b2b"][0]["inv"]] == ["I-0", "I-2"]
    assert json.loads(out.payloads[1])["b2cl"] == [{"inv": [json.loads(json.dumps(s.b2cl()))], "pos": "29"}]
    assert list(json.loads(out.payloads[4])) == ["fp", "gstin", "hsn"]
    for chunk in out.chunks:
        payload = chunk[3]
        assert payload == json.dumps(json.loads(payload), sort_keys=True, separators=(",", ":"),
                                     ensure_ascii=False).encode()


def test_chunks_stay_under_the_limit_and_are_cut_between_records(ingest: SimpleNamespace) -> None:
    data = _lines(40, ctins=(s.CTIN, s.CTIN_LOCAL))
    whole = run(ingest, "jsonl", data, max_chunk=1 << 20)
    [one] = whole.payloads
    for limit in (700, 2000, 5000):
        out = run(ingest, "jsonl", data, max_chunk=limit)
        assert all(len(p) <= limit for p in out.payloads)
        assert sum(c[5] for c in out.chunks) == 40
        invs = [inv for p in out.payloads for g in json.loads(p)["b2b"] for inv in g["inv"]]
        assert sorted(i["inum"] for i in invs) == sorted(f"I-{i}" for i in range(40))
        again = run(ingest, "jsonl", data, max_chunk=limit)
        assert again.chunks == out.chunks  # deterministic
    assert len(one) > 5000


def test_a_record_larger_than_a_chunk_is_refused_by_the_chunker(ingest: SimpleNamespace) -> None:
    out = run(ingest, "jsonl", s.line("b2cs") + _lines(1), max_chunk=300)
    assert len(out.chunks) == 1
    [(source, line, code, message)] = out.chunk_errors
    assert (source, line, code) == ("input", 2, "too-large")
    assert message.startswith("the record needs a chunk of ") and message.endswith("max_chunk_bytes is 300")


def test_chunk_records_count_and_hash(ingest: SimpleNamespace) -> None:
    import hashlib

    out = run(ingest, "jsonl", _lines(3))
    [(gstin, fp, section, payload, sha, count, records)] = out.chunks
    assert (gstin, fp, section, count) == (s.SUPPLIER, s.FP, "b2b", 3)
    assert sha == hashlib.sha256(payload).hexdigest()
    assert records == [(r[3], r[4]) for r in out.records]


def test_the_buffer_budget_emits_the_largest_group_early(ingest: SimpleNamespace) -> None:
    # Two suppliers' worth of groups; a budget of ~3 records keeps at most that much held.
    other = "24AAFFM9876Q1ZA"
    data = b"".join(s.line("b2cs") if i % 3 == 0 else s.line("hsn", gstin=[s.SUPPLIER, other][i % 2])
                    for i in range(40))
    one = len(run(ingest, "jsonl", s.line("hsn")).payloads[0])
    p = ingest.Parser("jsonl", "f", None, None, None)
    c = ingest.Chunker(1 << 20, 3 * one)
    chunks = c.add(p.feed(data), None) + c.add(p.finish(), None)
    assert c.peak_buffered_bytes <= 3 * one
    chunks += c.flush()
    assert c.buffered_bytes == 0
    assert sum(ch.count for ch in chunks) == 40
    assert len(chunks) > 4  # emitted early, not one chunk per group


def test_skip_leaves_records_out(ingest: SimpleNamespace) -> None:
    out = run(ingest, "jsonl", _lines(5), skip=lambda r: r[3].endswith(("I-1", "I-3")))
    [inv_numbers] = [[i["inum"] for i in json.loads(p)["b2b"][0]["inv"]] for p in out.payloads]
    assert inv_numbers == ["I-0", "I-2", "I-4"]
    p = ingest.Parser("jsonl", "f", None, None, None)
    c = ingest.Chunker(1 << 20, 1 << 20)
    batch = p.feed(_lines(2))
    with pytest.raises(InvalidParameter, match="skip has 1 bytes; the batch has 2 records"):
        c.add(batch, b"\x00")
    with pytest.raises(TypeError, match="skip must be bytes or None"):
        c.add(batch, [0, 0])
    with pytest.raises(TypeError, match="batch must be a Batch of this backend"):
        c.add(object(), None)


def test_chunker_arguments(ingest: SimpleNamespace) -> None:
    with pytest.raises(InvalidParameter, match="max_chunk_bytes must be at least 1"):
        ingest.Chunker(0, 1)
    with pytest.raises(TypeError, match="max_buffer_bytes must be int"):
        ingest.Chunker(1, 1.5)
    with pytest.raises(TypeError, match="max_chunk_bytes must be int"):
        ingest.Chunker(True, 1)
    ingest.Chunker(10**30, 10**30)  # no limit is too large


@pytest.mark.parametrize("action", ["RETSAVE", "RÉT\"SAVE\n"])
def test_body_is_exactly_wrap_payload_content(ingest: SimpleNamespace, action: str) -> None:
    data = _lines(30, ctins=(s.CTIN, s.CTIN_LOCAL))
    p = ingest.Parser("jsonl", "f", None, None, None)
    c = ingest.Chunker(4000, 1 << 20)
    chunks = c.add(p.feed(data), None) + c.flush()
    for ch in chunks:
        assert ch.body(SEK, action) == protocol.wrap_payload_content(SEK, action, ch.payload)


def test_a_large_body_too(ingest: SimpleNamespace) -> None:
    rng = random.Random(1)
    ctins = tuple(s.gstin("29", f"AAACB{rng.randrange(10000):04d}A1Z") for _ in range(50))
    p = ingest.Parser("jsonl", "f", None, None, None)
    c = ingest.Chunker(1 << 20, 1 << 24)
    [ch] = c.add(p.feed(_lines(400, ctins=ctins)), None) + c.flush()
    assert len(ch.payload) > 64 * 1024
    assert ch.body(SEK, "RETSAVE") == protocol.wrap_payload_content(SEK, "RETSAVE", ch.payload)


def test_body_arguments_fail_as_the_crypto_does(ingest: SimpleNamespace) -> None:
    p = ingest.Parser("jsonl", "f", None, None, None)
    c = ingest.Chunker(1 << 20, 1 << 20)
    [ch] = c.add(p.feed(s.line("hsn")), None) + c.flush()
    with pytest.raises(InvalidKey, match="key must be 32 bytes, got 31"):
        ch.body(SEK[:31], "RETSAVE")
    with pytest.raises(TypeError, match="key must be bytes"):
        ch.body("k" * 32, "RETSAVE")
    with pytest.raises(TypeError, match="action must be str"):
        ch.body(SEK, b"RETSAVE")
    with pytest.raises(UnicodeEncodeError):
        ch.body(SEK, "RET\ud800")

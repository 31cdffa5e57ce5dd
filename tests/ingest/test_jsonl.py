"""JSONL input, canonical record bytes and record-level errors, on both backends."""

from __future__ import annotations

import hashlib
import json
from types import SimpleNamespace

import pytest

from . import support as s
from .support import run


def _one(ingest: SimpleNamespace, data: bytes, **kw: object) -> s.Outcome:
    return run(ingest, "jsonl", data, **kw)  # type: ignore[arg-type]


def test_a_valid_line_gives_one_record_with_identity_hash_and_line(ingest: SimpleNamespace) -> None:
    out = _one(ingest, b"\n" + s.line("b2b"))
    assert out.errors == []
    [(gstin, fp, section, ident, sha, line)] = out.records
    assert (gstin, fp, section, ident, line) == (s.SUPPLIER, s.FP, "b2b", f"{s.CTIN}|INV/1", 2)
    [chunk] = out.chunks
    payload = chunk[3]
    inv = json.loads(payload)["b2b"][0]["inv"][0]
    canon = json.dumps(inv, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    assert sha == hashlib.sha256(canon).hexdigest()
    assert canon in payload


def test_canonical_form_sorts_keys_normalises_numbers_and_escapes_one_way(ingest: SimpleNamespace) -> None:
    text = (b'{"section":"b2cs","fp":"072017","gstin":"27AAPCD0007K1ZO","typ":"OE","pos":"27","sply_ty":"INTRA",'
            b'"rt":5.00,"txval":1.0E3,"camt":25.0,"samt":0.025e3,"csamt":-0}\n')
    out = _one(ingest, text)
    assert out.errors == []
    assert out.payloads == [b'{"b2cs":[{"camt":25,"csamt":0,"pos":"27","rt":5,"samt":25,"sply_ty":"INTRA",'
                            b'"txval":1000,"typ":"OE"}],"fp":"072017","gstin":"27AAPCD0007K1ZO"}']


def test_strings_are_written_with_the_canonical_escapes(ingest: SimpleNamespace) -> None:
    # \u00e9 and \/ in the input become raw é and /; a TAB, a control and a quote are escaped one way.
    raw = s.line("hsn", s.hsn(desc="X")).replace(b'"X"', b'"\\u00e9\\/\\t\\u0001\\"\x7f"')
    out = _one(ingest, raw)
    assert out.errors == []
    assert b'"desc":"\xc3\xa9/\\t\\u0001\\"\x7f"' in out.payloads[0]


def test_blank_lines_crlf_and_a_bom_are_tolerated_and_lines_are_counted(ingest: SimpleNamespace) -> None:
    data = b"\xef\xbb\xbf" + s.line("b2cs").replace(b"\n", b"\r\n") + b"  \r\n\n" + s.line("hsn")
    out = _one(ingest, [data[:1], data[1:2], data[2:]])
    assert out.errors == []
    assert [r[5] for r in out.records] == [1, 4]


@pytest.mark.parametrize(("raw", "code"), [
    (b"\xff\xfe{}", "utf8"),
    (b'{"a":1', "json"),
    (b"[1]", "type"),
    (b'{"section":"b2b","section":"b2b"}', "duplicate-key"),
    (b'{"gstin":"27AAPCD0007K1ZO"}', "missing-field"),
    (b'{"section":"exp"}', "section"),
    (b'{"section":7}', "type"),
    (b"[" * 33 + b"]" * 33, "json"),
    (b'{"section":"hsn","x":NaN}', "json"),
])
def test_unreadable_lines(ingest: SimpleNamespace, raw: bytes, code: str) -> None:
    out = _one(ingest, raw + b"\n" + s.line("b2cs"))
    assert out.codes == [code]
    assert out.errors[0][:2] == ("input", 1)
    assert len(out.records) == 1 and out.records[0][5] == 2  # the next line is unaffected


def test_shape_errors_name_the_field(ingest: SimpleNamespace) -> None:
    cases = [
        (s.line("b2b", {**s.b2b(), "Inum": "x"}), "unknown-field", 'the invoice has an unknown field "Inum"'),
        (s.line("b2b", {k: v for k, v in s.b2b().items() if k != "idt"}), "missing-field", "the invoice has no idt"),
        (s.line("b2b", s.b2b(val="2360")), "type", "val must be a number"),
        (s.line("b2b", s.b2b(itms=[1])), "type", "itms[1] must be an object"),
        (s.line("b2b", s.b2b(val=1.005)), "decimals", "val has more than 2 decimal places"),
        (s.line("b2b", s.b2b(val=-1)), "range", "val must not be negative"),
        (s.line("b2b", s.b2b(val=1e16)), "range", "val is out of range (more than 15 digits before the point)"),
        (s.line("b2b").replace(b'"INV/1"', b'"\\ud800"'), "surrogate", "inum contains a lone surrogate"),
    ]
    for raw, code, message in cases:
        out = _one(ingest, raw)
        assert out.codes == [code], raw
        assert out.errors[0][3].startswith(message), out.errors[0][3]


def test_an_item_number_must_be_whole(ingest: SimpleNamespace) -> None:
    rec = s.b2b()
    rec["itms"][0]["num"] = 1.5
    out = _one(ingest, s.line("b2b", rec))
    assert out.errors[0][2:] == ("decimals", "itms[1].num must be a whole number")


def test_lines_must_match_the_section_gstin_and_fp_the_file_is_read_with(ingest: SimpleNamespace) -> None:
    data = s.line("b2b") + s.line("b2cs")
    out = run(ingest, "jsonl", data, "b2b", None, None)
    assert [r[2] for r in out.records] == ["b2b"]
    assert out.errors == [("input", 2, "mismatch", 'section "b2cs" differs from the section b2b this file is read with')]
    out = run(ingest, "jsonl", data, None, s.SUPPLIER, "082017")
    assert out.codes == ["mismatch", "mismatch"] and out.records == []


def test_a_line_over_the_record_limit_is_skipped_without_being_kept(ingest: SimpleNamespace) -> None:
    big = b'{"section":"b2b","pad":"' + b"x" * (1 << 20) + b'"}\n'
    data = s.line("b2cs") + big + s.line("hsn")
    pieces = [data[i : i + 65536] for i in range(0, len(data), 65536)]
    for feed in (data, pieces):
        out = _one(ingest, feed)
        assert out.errors == [("input", 2, "too-large", f"the line is longer than {1 << 20} bytes")]
        assert [r[5] for r in out.records] == [1, 3]


def test_the_last_line_needs_no_newline_and_feed_after_finish_is_refused(ingest: SimpleNamespace) -> None:
    from gspauth.errors import InvalidParameter

    p = ingest.Parser("jsonl", "f", None, None, None)
    assert len(p.feed(s.line("b2cs").rstrip(b"\n"))) == 0
    assert len(p.finish()) == 1
    with pytest.raises(InvalidParameter, match="after finish"):
        p.feed(b"")
    with pytest.raises(InvalidParameter, match="called twice"):
        p.finish()

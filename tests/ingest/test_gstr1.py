"""GSTR-1 JSON as the offline tool writes it: walked incrementally, on both backends."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from . import support as s
from .support import run

SECTIONS = {
    "b2b": [{"ctin": s.CTIN, "inv": [s.b2b(), s.b2b(inum="INV/2")]}],
    "b2cl": [{"pos": "29", "inv": [s.b2cl()]}],
    "b2cs": [s.b2cs()],
    "cdnr": [{"ctin": s.CTIN_LOCAL, "nt": [s.cdnr()]}],
    "hsn": {"data": [s.hsn()]},
}
JSONL = b"".join([s.line("b2b"), s.line("b2b", s.b2b(inum="INV/2")), s.line("b2cl"), s.line("b2cs"), s.line("cdnr"),
                  s.line("hsn")])


def _gstr1(ingest: SimpleNamespace, data: bytes | list[bytes], gstin: str | None = None, fp: str | None = None) -> s.Outcome:
    return run(ingest, "gstr1-json", data, None, gstin, fp)


def test_an_offline_tool_file_gives_the_records_of_the_equivalent_jsonl(ingest: SimpleNamespace) -> None:
    data = s.gstr1(SECTIONS, extra={"gt": 3782969.01, "cur_gt": 3782969.01, "version": "GST3.0.4", "hash": "hash"},
                   indent=1)
    out = _gstr1(ingest, data)
    want = run(ingest, "jsonl", JSONL)
    assert out.errors == [] and not out.failed
    assert [r[:5] for r in out.records] == [r[:5] for r in want.records]
    assert out.chunks == want.chunks


def test_the_record_line_is_where_its_object_starts(ingest: SimpleNamespace) -> None:
    data = b'{"gstin":"27AAPCD0007K1ZO",\n"fp":"072017",\n"b2cs":[\n\n' + json.dumps(s.b2cs()).encode() + b",\n" + \
        json.dumps(s.b2cs(pos="29", sply_ty="INTER")).encode() + b"]}"
    out = _gstr1(ingest, data)
    assert [r[5] for r in out.records] == [5]
    assert out.errors[0][1:3] == (6, "tax")  # CGST/SGST on an inter-state entry


def test_a_sorted_keys_dump_needs_gstin_and_fp_hints_which_are_then_checked(ingest: SimpleNamespace) -> None:
    data = json.dumps({"gstin": s.SUPPLIER, "fp": s.FP, **SECTIONS}, sort_keys=True).encode()
    out = _gstr1(ingest, data)
    assert out.failed and out.records == []
    assert out.errors == [("input", 1, "hint", "the file's records come before its gstin and fp: pass gstin and fp "
                                               "(they are checked against the file's own values)")]
    out = _gstr1(ingest, data, s.SUPPLIER, s.FP)
    assert not out.failed and out.errors == [] and len(out.records) == 6
    # Records are read with the hints until the file's own value shows they were wrong: the
    # file then fails, and its records so far must be discarded by the caller.
    out = _gstr1(ingest, data, s.SUPPLIER, "082017")
    assert out.failed and out.codes[-1] == "hint" and set(out.codes[:-1]) == {"date"}
    assert out.errors[-1][3] == "the file's fp 072017 differs from the fp 082017 it is read with"


def test_records_before_their_group_key_wait_for_it(ingest: SimpleNamespace) -> None:
    # sort_keys puts b2cl's "inv" before "pos" (and a group may be written that way by hand).
    data = s.gstr1({"b2cl": [{"inv": [s.b2cl(), s.b2cl(inum="L-2")], "pos": "29"}],
                    "b2b": [{"inv": [s.b2b()]}]})
    out = _gstr1(ingest, data)
    assert [r[3] for r in out.records] == ["29|L-1", "29|L-2"]
    assert out.errors == [("input", 1, "missing-field", "its b2b group has no ctin")]


def test_faults_inside_one_record_are_that_record_s_error(ingest: SimpleNamespace) -> None:
    data = s.gstr1({"b2cs": [s.b2cs()]}).replace(b'"b2cs": [', b'"b2cs": [{"typ": OE}, 12, ')
    out = _gstr1(ingest, data)
    assert out.codes == ["json", "type"] and len(out.records) == 1
    assert out.errors[1][3] == "the entry must be a JSON object"


def test_unknown_and_unsupported_parts_are_reported_and_read_past(ingest: SimpleNamespace) -> None:
    data = s.gstr1({"exp": [{"exp_typ": "WPAY", "inv": [{"x": "]}"}]}], "b2b": [{"ctin": s.CTIN, "cfs": "Y",
                                                                                 "inv": [s.b2b()]}],
                    "hsn": {"hsn_b2b": [], "data": [s.hsn()]}})
    out = _gstr1(ingest, data)
    assert [e[2:] for e in out.errors] == [
        ("section", 'top-level field "exp" is not a supported section (b2b, b2cl, b2cs, cdnr, hsn); skipped'),
        ("unknown-field", 'a b2b group has an unknown field "cfs"; skipped'),
        ("unknown-field", 'hsn has an unknown field "hsn_b2b"; skipped'),
    ]
    assert len(out.records) == 2


@pytest.mark.parametrize(("data", "code", "message"), [
    (b'[{"gstin":1}]', "syntax", "expected '{' to open the GSTR-1 object"),
    (b'{"gstin":"27AAPCD0007K1ZO","fp":"072017","b2cs":{}}', "syntax", "b2cs must be an array"),
    (b'{"gstin":"27AAPCD0007K1ZO","gstin":"27AAPCD0007K1ZO"}', "duplicate-key",
     'the file has the field "gstin" more than once'),
    (b'{"gstin":"27AAPCD0007K1ZX"}', "gstin", "the file's gstin \"27AAPCD0007K1ZX\" has a wrong check character (a typo?)"),
    (b'{"fp":"2017"}', "period", "the file's fp \"2017\" is not a return period MMYYYY from 072017 on"),
    (b'{"gstin":"27AAPCD0007K1ZO","fp":"072017","b2cs":[', "truncated", "the file ends inside the GSTR-1 object"),
    (b'{"gstin":"27AAPCD0007K1ZO","fp":"072017","b2cs":[{"a":"', "truncated", "the file ends inside a value"),
    (b'{"gstin":"27AAPCD0007K1ZO"', "truncated", "the file ends inside the GSTR-1 object"),
    (b'{"gstin":"27AAPCD0007K1ZO"} {}', "syntax", "data after the end of the GSTR-1 object"),
    (b'{"gstin" "x"}', "syntax", "expected ':'"),
    (b'{"b\xffb":1}', "utf8", "a name or value in the file structure is not valid UTF-8"),
    (b'{"b\\x":1}', "syntax", "a name or value in the file structure is not a valid JSON string"),
    (b'{"' + b"k" * 5000 + b'":1}', "syntax", "a name or value in the file structure is longer than 4096 bytes"),
])
def test_faults_in_the_file_structure_are_fatal(ingest: SimpleNamespace, data: bytes, code: str, message: str) -> None:
    for feed in (data, [data[i : i + 3] for i in range(0, len(data), 3)]):
        out = _gstr1(ingest, feed)
        assert out.failed
        assert out.errors[-1][2:] == (code, message)


def test_records_before_a_fatal_fault_stand(ingest: SimpleNamespace) -> None:
    data = s.gstr1({"b2cs": [s.b2cs(), s.b2cs(rt=12, camt=60, samt=60)]})[:-1] + b', "x": ]'
    out = _gstr1(ingest, data)
    assert len(out.records) == 2 and out.failed and out.codes == ["syntax"]


def test_a_record_over_the_limit_is_skipped_and_not_kept(ingest: SimpleNamespace) -> None:
    big = json.dumps(s.b2cs(pad="x" * (1 << 20))).encode()
    data = b'{"gstin":"27AAPCD0007K1ZO","fp":"072017","b2cs":[' + big + b"," + json.dumps(s.b2cs()).encode() + b"]}"
    for feed in (data, [data[i : i + 100_000] for i in range(0, len(data), 100_000)]):
        out = _gstr1(ingest, feed)
        assert out.errors == [("input", 1, "too-large", f"the record is longer than {1 << 20} bytes")]
        assert len(out.records) == 1

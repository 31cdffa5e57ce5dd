"""The GST offline tool's CSV templates, on both backends."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from gspauth.errors import InvalidParameter

from . import support as s
from .support import run

SAMPLES = Path(__file__).resolve().parents[2] / "docs" / "samples"
B2B_HEADER = ("GSTIN/UIN of Recipient,Receiver Name,Invoice Number,Invoice date,Invoice Value,Place Of Supply,"
              "Reverse Charge,Applicable % of Tax Rate,Invoice Type,E-Commerce GSTIN,Rate,Taxable Value,Cess Amount")


def _csv(ingest: SimpleNamespace, text: str | bytes, section: str = "b2b", **kw: object) -> s.Outcome:
    data = text.encode() if isinstance(text, str) else text
    return run(ingest, "csv", data, section, s.SUPPLIER, s.FP, **kw)  # type: ignore[arg-type]


def _row(inum: str = "I-1", rate: str = "18", txval: str = "1000.00", *, ctin: str = s.CTIN, pos: str = "29-Karnataka",
         val: str = "1180.00", date: str = "05-Jul-2017", kind: str = "Regular B2B", diff: str = "", etin: str = "",
         cess: str = "0.00") -> str:
    return f"{ctin},Name,{inum},{date},{val},{pos},N,{diff},{kind},{etin},{rate},{txval},{cess}"


def _invoice(out: s.Outcome, i: int = 0) -> dict[str, object]:
    chunk = json.loads(out.payloads[0])
    invs = [inv for group in chunk["b2b"] for inv in group["inv"]]
    return invs[i]


@pytest.mark.parametrize("section", ["b2b", "b2cl", "b2cs", "cdnr", "hsn"])
def test_each_sample_gives_the_chunks_of_its_jsonl_and_gstr1_json(ingest: SimpleNamespace, section: str) -> None:
    csv = run(ingest, "csv", (SAMPLES / f"{section}.csv").read_bytes(), section, s.SUPPLIER, s.FP)
    jsonl = run(ingest, "jsonl", (SAMPLES / f"{section}.jsonl").read_bytes())
    gstr1 = run(ingest, "gstr1-json", (SAMPLES / f"{section}.json").read_bytes())
    assert csv.errors == jsonl.errors == gstr1.errors == []
    assert csv.records and [r[:5] for r in csv.records] == [r[:5] for r in jsonl.records] == \
        [r[:5] for r in gstr1.records]
    assert csv.chunks == jsonl.chunks == gstr1.chunks


def test_rows_of_one_invoice_fold_into_items_numbered_in_row_order(ingest: SimpleNamespace) -> None:
    text = "\n".join([B2B_HEADER, _row(rate="18", txval="1000.00", val="2360.00"),
                      _row(rate="18", txval="1000.00", val="2360.00"), _row("I-2"), _row()])
    out = _csv(ingest, text)
    assert [r[3] for r in out.records] == [f"{s.CTIN}|I-1", f"{s.CTIN}|I-2", f"{s.CTIN}|I-1"]
    inv = _invoice(out)
    assert [it["num"] for it in inv["itms"]] == [1, 2]  # type: ignore[index]
    assert inv["idt"] == "05-07-2017" and inv["pos"] == "29" and inv["inv_typ"] == "R"


def test_taxes_are_computed_half_up_to_the_paisa(ingest: SimpleNamespace) -> None:
    # 10.05 × 5 % = 0.5025 → 0.50; 10.10 × 5 % = 0.505 → 0.51; intra-state halves: 0.2525 → 0.25 each.
    text = "\n".join([B2B_HEADER, _row("A", "5", "10.05", val="10.55"), _row("B", "5", "10.10", val="10.61"),
                      _row("C", "5", "10.10", ctin=s.CTIN_LOCAL, pos="27-Maharashtra", val="10.60")])
    out = _csv(ingest, text)
    assert out.errors == []
    chunk = json.loads(out.payloads[0])
    dets = [inv["itms"][0]["itm_det"] for g in chunk["b2b"] for inv in g["inv"]]
    assert dets[0]["iamt"] == 0.5 and dets[1]["iamt"] == 0.51
    assert dets[2]["camt"] == dets[2]["samt"] == 0.25 and "iamt" not in dets[2]


def test_applicable_percent_sez_and_intra_state_igst(ingest: SimpleNamespace) -> None:
    text = "\n".join([B2B_HEADER, _row("A", "5", "10000.00", diff="65", val="10325.00"),
                      _row("B", kind="SEZ supplies without payment", val="1000.00"),
                      _row("C", ctin=s.CTIN_LOCAL, pos="27-Maharashtra", kind="Intra-State supplies attracting IGST")])
    out = _csv(ingest, text)
    assert out.errors == []
    a, b, c = (_invoice(out, i) for i in range(3))
    assert a["diff_percent"] == 0.65 and a["itms"][0]["itm_det"]["iamt"] == 325  # type: ignore[index]
    assert b["inv_typ"] == "SEWOP" and b["itms"][0]["itm_det"]["iamt"] == 0  # type: ignore[index]
    assert c["inv_typ"] == "CBW" and c["itms"][0]["itm_det"]["iamt"] == 180  # type: ignore[index]


def test_bom_crlf_quotes_and_trailing_empty_rows_are_tolerated(ingest: SimpleNamespace) -> None:
    rows = [B2B_HEADER, _row().replace(",Name,", ',"Name, ""Quoted""\r\nCo",'), ",,,,,,,,,,,,", "", "  "]
    out = _csv(ingest, "\ufeff" + "\r\n".join(rows) + "\r\n")
    assert out.errors == [] and len(out.records) == 1
    out2 = _csv(ingest, "\ufeff" + "\r\n".join(rows))
    assert out2.records == out.records


def test_rows_across_block_boundaries_read_as_in_one_block(ingest: SimpleNamespace) -> None:
    # The Rust reader completes a row begun in an earlier block up to the next line break,
    # or with the whole block when that break is inside quotes; other rows are read in place.
    multi = _row("I-2").replace(",Name,", ',"Line 1\nLine 2\r\nLine ""3""",')
    rows = [B2B_HEADER, _row(), _row(rate="5"), multi, multi.replace(",18,", ",5,"), _row("I-3").replace("N,", "Q,"),
            _row("I-4"), _row("I-4", val="9.99"), _row("I-5")]
    data = ("\r\n".join(rows) + "\r\n").encode()
    whole = _csv(ingest, data)
    assert [r[3] for r in whole.records] == [f"{s.CTIN}|I-{n}" for n in (1, 2, 5)]
    assert [e[1:3] for e in whole.errors] == [(10, "value"), (12, "inconsistent")]  # lines of a quoted break count
    for size in (1, 2, 3, 5, 7, 16, 61, 64, 100, 127, 500):
        pieces = [data[i:i + size] for i in range(0, len(data), size)]
        out = _csv(ingest, pieces)  # type: ignore[arg-type]
        assert (out.records, out.errors, out.chunks) == (whole.records, whole.errors, whole.chunks), size


@pytest.mark.parametrize("header", [
    B2B_HEADER.upper(),
    B2B_HEADER.replace(",", " ,  ").replace("Invoice date", "Invoice   Date"),
    B2B_HEADER + ",,,",
])
def test_header_matching_ignores_case_spacing_and_trailing_empty_columns(ingest: SimpleNamespace, header: str) -> None:
    out = _csv(ingest, header + "\n" + _row())
    assert out.errors == [] and len(out.records) == 1


def test_the_older_b2b_layout_is_accepted(ingest: SimpleNamespace) -> None:
    header = ("GSTIN/UIN of Recipient,Invoice Number,Invoice date,Invoice Value,Place Of Supply,Reverse Charge,"
              "Invoice Type,E-Commerce GSTIN,Rate,Taxable Value,Cess Amount")
    row = f"{s.CTIN},I-1,05-Jul-2017,1180.00,29-Karnataka,N,Regular,,18,1000.00,"
    out = _csv(ingest, header + "\n" + row)
    assert out.errors == []
    assert out.chunks == _csv(ingest, B2B_HEADER + "\n" + _row()).chunks


def test_a_header_that_does_not_match_is_a_clear_file_error(ingest: SimpleNamespace) -> None:
    out = _csv(ingest, "GSTIN,Invoice,Date\n" + _row())
    assert out.failed and out.records == []
    assert out.errors == [("input", 1, "header", "the header does not match the b2b template of the GST offline "
                                                 f"tool; expected the columns: {B2B_HEADER.replace(',', ', ')}")]


@pytest.mark.parametrize(("row", "code", "message"), [
    (_row().replace(",Name,", ',Na"me,'), "csv", "a quote inside an unquoted field (quote the whole field)"),
    (_row().replace(",Name,", ',"Name"x,'), "csv", "text after the closing quote of a field"),
    (_row().replace(",Name,", ",Na\rme,"), "csv", "a carriage return that does not end a line"),
    (_row() + ",extra", "csv", "the row has 14 fields; the header has 13"),
    (",".join(_row().split(",")[:12]), "csv", "the row has 12 fields; the header has 13"),
    (_row().replace("Name", "N\udcffme").encode("utf-8", "surrogateescape").decode("latin-1"), "utf8", None),
    (_row(date="5-Jul-2017"), "date", 'Invoice date "5-Jul-2017" is not a date dd-mmm-yyyy (e.g. 05-Jul-2017)'),
    (_row(date="31-Jun-2017"), "date", "idt 31-06-2017 is not a calendar date"),
    (_row(pos="Karnataka"), "pos", 'Place Of Supply "Karnataka" must be a state code and name such as 27-Maharashtra'),
    (_row(rate="18%"), "number", "Rate is not a number (write digits with an optional '.' and up to 2 decimals)"),
    (_row(txval='"1,000.00"'), "number", "Taxable Value is not a number (write digits with an optional '.' and up to 2 decimals)"),
    (_row(txval="1000.001"), "decimals", "Taxable Value has more than 2 decimal places"),
    (_row(diff="50"), "value", "Applicable % of Tax Rate must be empty or 65"),
    (_row(kind="Regular B2C"), "value", None),
    (_row(rate="17"), "rate", None),
])
def test_row_errors(ingest: SimpleNamespace, row: str, code: str, message: str | None) -> None:
    data = (B2B_HEADER + "\n" + row + "\n" + _row("I-9")).encode("latin-1" if code == "utf8" else "utf-8")
    out = _csv(ingest, data)
    assert out.codes == [code]
    assert out.errors[0][1] == 2
    if message is not None:
        assert out.errors[0][3] == message
    assert [r[3] for r in out.records] == [f"{s.CTIN}|I-9"]  # the next row is unaffected


def test_rows_of_one_invoice_must_agree_and_an_unreadable_row_inside_drops_it(ingest: SimpleNamespace) -> None:
    text = "\n".join([B2B_HEADER, _row(), _row(val="1.00"), _row("I-2"), _row("I-2").replace("Name", 'N"'),
                      _row("I-2"), _row("I-3")])
    out = _csv(ingest, text)
    assert out.errors == [
        ("input", 3, "inconsistent", "Invoice Value differs from the invoice's first row (line 2)"),
        ("input", 5, "csv", "a quote inside an unquoted field (quote the whole field)"),
        ("input", 6, "csv", "an unreadable row (line 5) interrupts this invoice"),
    ]
    assert [r[3] for r in out.records] == [f"{s.CTIN}|I-3"]


def test_rows_that_repeat_the_first_rows_invoice_cells_byte_for_byte(ingest: SimpleNamespace) -> None:
    # The Rust reader skips re-splitting and comparing the key and invoice-level cells of a
    # row that starts with the same bytes as its invoice's first row; these rows sit at the
    # edges of that shortcut (one more cell, a trimmed cell, quoted and escaped cells).
    e = "07AAACE1234F1Z5"
    rows = [
        _row("I-1"), _row("I-1", etin=e),                                  # etin added in the 2nd row
        _row("I-2", etin=" "), _row("I-2", etin=" ", rate="5"),            # a trimmed cell ends the prefix
        _row("I-3").replace("Name", '"N ""x"""'), _row("I-3").replace("Name", '"N ""x"""'),  # escaped quote
        _row("I-4").replace("Name", '"N, x"'), _row("I-4", rate='"5"'),    # the name differs; quoted item
        _row("I-4", rate="12").replace("Name", '"N, x"'),                  # the first row's quoted name again
        _row("I-5").replace("Name", '"N, x"'), _row("I-5").replace("Name", '"N, x"').replace(",N,", ',"N",'),
        _row("I-6", etin=e), _row("I-6", etin=e + "1"), _row("I-6", etin=e),
    ]
    text = "\n".join([B2B_HEADER, *rows]) + "\n"
    out = _csv(ingest, text)
    assert out.errors == [
        ("input", 3, "inconsistent", "E-Commerce GSTIN differs from the invoice's first row (line 2)"),
        ("input", 14, "inconsistent", "E-Commerce GSTIN differs from the invoice's first row (line 13)"),
    ]
    assert [r[3] for r in out.records] == [f"{s.CTIN}|I-{n}" for n in (2, 3, 4, 5)]
    assert [len(_invoice(out, i)["itms"]) for i in range(4)] == [2, 2, 3, 2]  # type: ignore[arg-type]
    pieces = [text.encode()[i:i + 7] for i in range(0, len(text), 7)]
    assert run(ingest, "csv", pieces, "b2b", s.SUPPLIER, s.FP).records == out.records


def test_an_unterminated_quote_at_the_end(ingest: SimpleNamespace) -> None:
    out = _csv(ingest, B2B_HEADER + "\n" + _row() + '\n"unterminated,')
    assert out.errors == [("input", 3, "truncated", "the file ends inside a quoted field")]
    assert len(out.records) == 1


def test_hsn_rows_are_numbered_and_uqc_is_its_code(ingest: SimpleNamespace) -> None:
    out = run(ingest, "csv", (SAMPLES / "hsn.csv").read_bytes(), "hsn", s.SUPPLIER, s.FP)
    data = json.loads(out.payloads[0])["hsn"]["data"]
    assert [(d["num"], d["uqc"]) for d in data] == [(1, "KGS"), (2, "NA")]


def test_a_csv_parser_needs_section_gstin_and_fp(ingest: SimpleNamespace) -> None:
    with pytest.raises(InvalidParameter, match="a CSV file needs section, gstin and fp"):
        ingest.Parser("csv", "f", "b2b", None, s.FP)
    with pytest.raises(InvalidParameter, match='section "b2ba" is not one of'):
        ingest.Parser("csv", "f", "b2ba", s.SUPPLIER, s.FP)
    with pytest.raises(InvalidParameter, match="has a wrong check character"):
        ingest.Parser("csv", "f", "b2b", "27AAPCD0007K1ZP", s.FP)
    with pytest.raises(InvalidParameter, match='format "xml" is not one of'):
        ingest.Parser("xml", "f", None, None, None)
    with pytest.raises(TypeError, match="source must be str"):
        ingest.Parser("csv", b"f", "b2b", s.SUPPLIER, s.FP)

"""Deterministic synthetic GSTR-1 B2B data, for load tests, benchmarks and demos.

Everything here is generated from a seed with :class:`random.Random`, so the same
arguments give the same bytes on every machine and Python version (only
``random()`` is drawn from, whose stream CPython keeps stable for int and str
seeds).

The shape is GSTN's GSTR-1 ``b2b`` section (RETSAVE payload)::

    {"gstin": "27…", "fp": "072017",
     "b2b": [{"ctin": "29…",
              "inv": [{"inum": "KX/170000001", "idt": "05-07-2017", "val": 12345.67,
                       "pos": "29", "rchrg": "N", "inv_typ": "R",
                       "itms": [{"num": 1, "itm_det": {"txval": 10000.0, "rt": 18,
                                                       "iamt": 1800.0, "csamt": 0}}]}]}]}

Rules the data follows (and ``tests/test_synthetic.py`` checks):

* every GSTIN has a valid state code and mod-36 check character;
* ``pos`` ≠ supplier state (or an SEZ invoice, ``inv_typ`` ``SEWP``) → IGST
  (``iamt``); otherwise CGST + SGST (``camt`` = ``samt``), never both;
* ``rt`` ∈ {0, 5, 12, 18, 28}; ``iamt = round(txval × rt / 100, 2)``,
  ``camt = samt = round(txval × rt / 200, 2)`` (half-up, computed in paise);
* ``val`` = Σ (``txval`` + taxes + ``csamt``) over the items;
* invoice numbers are unique within one call (≤ 16 characters, GSTN's limit);
  ``idt`` falls inside the return period ``fp`` (``MMYYYY``);
* an invoice averages about 2 KiB of compact JSON (15–35 line items, as large
  traders' invoices have), so byte throughput numbers are representative.
  Line items are drawn from a seeded per-stream catalogue of 4096 lines per tax
  kind (the supplier's product list); that keeps 100k payloads to ~2 s.

Amounts are JSON numbers with at most two decimals; they are produced from
integer paise, so ``Decimal(repr(x))`` is exact.
"""

from __future__ import annotations

import calendar
import json
import random
from collections.abc import Iterator
from typing import Any, NamedTuple

from gspauth.gstin import STATE_CODES, check_character, is_valid_gstin

__all__ = [
    "DEFAULT_RET_PERIOD",
    "b2b_csv",
    "b2b_gstr1_json",
    "b2b_invoices",
    "b2b_jsonl",
    "gstr1_chunks",
    "invoice_payloads",
    "random_gstin",
    "supplier_gstin_for",
]

#: GST rates (percent) the generator uses.
_RATES: tuple[int, ...] = (0, 5, 12, 18, 28)
#: Return period used when none is given: July 2017, GST's first month.
DEFAULT_RET_PERIOD = "072017"

# Rate mix weighted towards 18 % (the most common slab), as on real invoices.
_RATE_TABLE: tuple[int, ...] = (0,) * 1 + (5,) * 2 + (12,) * 2 + (18,) * 4 + (28,) * 1
_CESS_RATES: tuple[int, ...] = (1, 3, 12, 15, 22)
# State codes regular taxpayers are registered in (97/99 are special jurisdictions).
_STATES: tuple[str, ...] = tuple(sorted(c for c in STATE_CODES if c not in ("97", "99")))
_UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
# 4th PAN letter: holder type (Company, Person, Firm, HUF, Trust, AOP, …).
_PAN_HOLDER = "CCCCPPFFHTAB"
# Line items per invoice: 15–35 (mean 25) → about 2 KiB of compact JSON per invoice.
_ITEMS_MIN, _ITEMS_SPAN = 15, 21
_RECIPIENT_POOL = 256
# Each stream draws its line items from a seeded catalogue of this many distinct lines
# per tax kind (IGST, CGST+SGST): a supplier's product list, and the reason the
# generator is fast enough for 100k-invoice load tests.
_CATALOGUE = 4096
_SEPARATORS = (",", ":")


def _below(rng: random.Random, n: int) -> int:
    """Uniform integer in ``[0, n)`` (``random()``-based: fast and stream-stable)."""
    return int(rng.random() * n)


def random_gstin(rng: random.Random, state: str | None = None) -> str:
    """A syntactically valid GSTIN (state code + PAN + entity + ``Z`` + check character).

    :param rng: the generator to draw from (determinism is the caller's seed).
    :param state: 2-digit state code; a random regular state when ``None``.
    """
    if state is None:
        state = _STATES[_below(rng, len(_STATES))]
    elif state not in STATE_CODES:
        raise ValueError(f"state {state!r} is not a GST state code")
    letters = [_UPPER[_below(rng, 26)] for _ in range(4)]
    pan = (
        letters[0]
        + letters[1]
        + letters[2]
        + _PAN_HOLDER[_below(rng, len(_PAN_HOLDER))]
        + letters[3]
        + f"{_below(rng, 10000):04d}"
        + _UPPER[_below(rng, 26)]
    )
    entity = "1" if rng.random() < 0.8 else str(2 + _below(rng, 8))
    first14 = state + pan + entity + "Z"
    return first14 + check_character(first14)


def supplier_gstin_for(seed: int) -> str:
    """The default supplier GSTIN for a seed (a Maharashtra registration)."""
    return random_gstin(random.Random(f"supplier:{seed}"), "27")


def _parse_period(ret_period: str) -> tuple[int, int]:
    if not (isinstance(ret_period, str) and len(ret_period) == 6 and ret_period.isdigit()):
        raise ValueError(f"ret_period must be MMYYYY, e.g. '072017', not {ret_period!r}")
    month, year = int(ret_period[:2]), int(ret_period[2:])
    if not 1 <= month <= 12:
        raise ValueError(f"ret_period {ret_period!r} has month {month}; expected 01-12")
    return month, year


def _money(paise: int) -> float | int:
    """Paise → a JSON number with at most two decimals (``0`` stays an int)."""
    return paise / 100 if paise else 0


def _tax(paise: int, rate_times_100: int) -> int:
    """Round-half-up of ``paise × rate_times_100 / 10_000`` in integer arithmetic."""
    return (paise * rate_times_100 + 5_000) // 10_000


class _Line(NamedTuple):
    """One catalogue line: its ``itm_det`` dict, that dict as compact JSON, its total in paise."""

    det: dict[str, Any]
    text: str
    total: int


class _Invoice(NamedTuple):
    ctin: str
    inum: str
    idt: str
    val: float | int
    pos: str
    rchrg: str
    inv_typ: str
    igst: bool
    lines: list[int]  # indices into the IGST or the CGST+SGST catalogue


def _catalogue(rng: random.Random, igst: bool) -> list[_Line]:
    """``_CATALOGUE`` distinct line items with consistent tax amounts."""
    encode = json.JSONEncoder(separators=_SEPARATORS).encode
    lines = []
    for _ in range(_CATALOGUE):
        rt = _RATE_TABLE[_below(rng, len(_RATE_TABLE))]
        # Taxable value: log-uniform, ₹10 … ₹5,00,000, in paise.
        txval = int(1_000 * 50_000 ** rng.random())
        det: dict[str, Any] = {"txval": _money(txval), "rt": rt}
        if igst:
            tax = _tax(txval, rt * 100)
            det["iamt"] = _money(tax)
        else:
            half = _tax(txval, rt * 50)
            det["camt"] = _money(half)
            det["samt"] = _money(half)
            tax = 2 * half
        has_cess = rt == 28 and rng.random() < 0.25
        cess = _tax(txval, _CESS_RATES[_below(rng, len(_CESS_RATES))] * 100) if has_cess else 0
        det["csamt"] = _money(cess)
        lines.append(_Line(det, encode(det), txval + tax + cess))
    return lines


class _Generator:
    """The state behind one seeded stream of invoices for one supplier and period."""

    def __init__(self, seed: int, supplier_gstin: str | None, ret_period: str) -> None:
        month, year = _parse_period(ret_period)
        self.supplier = supplier_gstin if supplier_gstin is not None else supplier_gstin_for(seed)
        if not is_valid_gstin(self.supplier):
            raise ValueError(f"supplier_gstin {self.supplier!r} is not a valid GSTIN")
        self.ret_period = ret_period
        self.rng = rng = random.Random(seed)
        self.days = calendar.monthrange(year, month)[1]
        self.mm_yyyy = f"-{month:02d}-{year:04d}"
        state = self.supplier[:2]
        # Recurring customers: ~40 % in the supplier's own state (intra-state supplies).
        self.recipients = [
            random_gstin(rng, state if rng.random() < 0.4 else None) for _ in range(_RECIPIENT_POOL)
        ]
        self.series = _UPPER[_below(rng, 26)] + _UPPER[_below(rng, 26)] + "/" + f"{year % 100:02d}"
        self.catalogues = {True: _catalogue(rng, True), False: _catalogue(rng, False)}

    def invoices(self, count: int) -> list[_Invoice]:
        rand = self.rng.random
        recipients, n_states, states = self.recipients, len(_STATES), _STATES
        supplier_state, series, days, mm_yyyy = self.supplier[:2], self.series, self.days, self.mm_yyyy
        out = []
        for serial in range(1, count + 1):
            ctin = recipients[int(rand() * _RECIPIENT_POOL)]
            u = rand()
            inv_typ = "R" if u < 0.94 else ("SEWP" if u < 0.97 else "DE")
            # Place of supply is normally the recipient's state; 5 % ship elsewhere.
            pos = ctin[:2] if rand() < 0.95 else states[int(rand() * n_states)]
            igst = pos != supplier_state or inv_typ == "SEWP"
            catalogue = self.catalogues[igst]
            lines = [int(rand() * _CATALOGUE) for _ in range(_ITEMS_MIN + int(rand() * _ITEMS_SPAN))]
            total = sum([catalogue[i].total for i in lines])
            out.append(
                _Invoice(
                    ctin,
                    f"{series}{serial:07d}",
                    f"{1 + int(rand() * days):02d}{mm_yyyy}",
                    _money(total),
                    pos,
                    "Y" if rand() < 0.03 else "N",
                    inv_typ,
                    igst,
                    lines,
                )
            )
        return out

    def as_dict(self, inv: _Invoice) -> dict[str, Any]:
        catalogue = self.catalogues[inv.igst]
        return {
            "inum": inv.inum,
            "idt": inv.idt,
            "val": inv.val,
            "pos": inv.pos,
            "rchrg": inv.rchrg,
            "inv_typ": inv.inv_typ,
            "itms": [{"num": n, "itm_det": dict(catalogue[i].det)} for n, i in enumerate(inv.lines, 1)],
        }

    def as_json(self, inv: _Invoice) -> str:
        """Exactly ``json.dumps(self.as_dict(inv), separators=(",", ":"))``, built faster."""
        catalogue = self.catalogues[inv.igst]
        items = ",".join([f'{{"num":{n},"itm_det":{catalogue[i].text}}}' for n, i in enumerate(inv.lines, 1)])
        return (
            f'{{"inum":"{inv.inum}","idt":"{inv.idt}","val":{inv.val!r},"pos":"{inv.pos}",'
            f'"rchrg":"{inv.rchrg}","inv_typ":"{inv.inv_typ}","itms":[{items}]}}'
        )


def _check_count(count: int) -> None:
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        raise ValueError(f"count must be a non-negative int, not {count!r}")


def b2b_invoices(
    count: int,
    *,
    seed: int,
    supplier_gstin: str | None = None,
    ret_period: str = DEFAULT_RET_PERIOD,
) -> list[dict[str, Any]]:
    """``count`` GSTR-1 ``b2b`` entries, one invoice each: ``[{"ctin", "inv": [invoice]}, …]``.

    :param seed: same seed (and other arguments) → same invoices.
    :param supplier_gstin: the filer; defaults to :func:`supplier_gstin_for` ``(seed)``.
    :param ret_period: ``MMYYYY``; every ``idt`` lies in that month.
    """
    _check_count(count)
    gen = _Generator(seed, supplier_gstin, ret_period)
    return [{"ctin": inv.ctin, "inv": [gen.as_dict(inv)]} for inv in gen.invoices(count)]


def gstr1_chunks(
    count: int,
    *,
    seed: int,
    supplier_gstin: str | None = None,
    ret_period: str = DEFAULT_RET_PERIOD,
    invoices_per_chunk: int = 500,
) -> list[dict[str, Any]]:
    """``count`` invoices grouped into RETSAVE payloads ``{"gstin", "fp", "b2b"}``.

    Each chunk holds at most ``invoices_per_chunk`` invoices (large returns are
    saved in parts); inside a chunk invoices are grouped by ``ctin`` in
    first-seen order. The invoices are those of :func:`b2b_invoices` with the
    same arguments, in the same order across chunks.
    """
    _check_count(count)
    if invoices_per_chunk < 1:
        raise ValueError("invoices_per_chunk must be at least 1")
    gen = _Generator(seed, supplier_gstin, ret_period)
    invoices = gen.invoices(count)
    chunks: list[dict[str, Any]] = []
    for start in range(0, len(invoices), invoices_per_chunk):
        by_ctin: dict[str, list[dict[str, Any]]] = {}
        for inv in invoices[start : start + invoices_per_chunk]:
            by_ctin.setdefault(inv.ctin, []).append(gen.as_dict(inv))
        b2b = [{"ctin": ctin, "inv": invs} for ctin, invs in by_ctin.items()]
        chunks.append({"gstin": gen.supplier, "fp": ret_period, "b2b": b2b})
    return chunks


def invoice_payloads(
    count: int,
    seed: int,
    *,
    supplier_gstin: str | None = None,
    ret_period: str = DEFAULT_RET_PERIOD,
) -> list[bytes]:
    """``count`` compact-JSON RETSAVE payloads with one invoice each (~2 KiB on average).

    Payload ``i`` is the UTF-8 (here ASCII) of
    ``json.dumps({"gstin": supplier, "fp": ret_period, "b2b": [b2b_invoices(...)[i]]},
    separators=(",", ":"))`` with the same arguments. About 100k payloads per
    second: the JSON is assembled from pre-serialised line items.
    """
    _check_count(count)
    gen = _Generator(seed, supplier_gstin, ret_period)
    head = f'{{"gstin":"{gen.supplier}","fp":"{ret_period}","b2b":[{{"ctin":"'
    as_json = gen.as_json
    return [f'{head}{inv.ctin}","inv":[{as_json(inv)}]}}]}}'.encode("ascii") for inv in gen.invoices(count)]


# --------------------------------------------------------------------------- input files
# The same invoices as the functions above, written as the files filers have: JSONL
# (one invoice per line), GSTR-1 JSON as the offline tool writes it, and the offline
# tool's b2b CSV template (one row per invoice line). Used by the ingest tests and
# benchmarks; see docs/ingest.md for the formats.

#: Header of the GST offline tool's b2b CSV template (the current one).
_B2B_CSV_HEADER = (
    "GSTIN/UIN of Recipient,Receiver Name,Invoice Number,Invoice date,Invoice Value,Place Of Supply,"
    "Reverse Charge,Applicable % of Tax Rate,Invoice Type,E-Commerce GSTIN,Rate,Taxable Value,Cess Amount"
)
_INV_TYPE_LABEL = {"R": "Regular B2B", "SEWP": "SEZ supplies with payment", "DE": "Deemed Exp"}
_MONTH_ABBR = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _stream(count: int, seed: int, supplier_gstin: str | None, ret_period: str,
            block: int = 10_000) -> tuple[_Generator, Any]:
    """The generator and an iterator over ``count`` invoices, drawn ``block`` at a time.

    The invoices equal those of :func:`b2b_invoices` for ``count <= block``; larger
    counts continue the same seeded stream with consecutive invoice numbers, so memory
    stays flat however many are asked for.
    """
    _check_count(count)
    gen = _Generator(seed, supplier_gstin, ret_period)

    def invoices() -> Any:
        done = 0
        while done < count:
            n = min(block, count - done)
            for i, inv in enumerate(gen.invoices(n), done + 1):
                yield inv._replace(inum=f"{gen.series}{i:07d}")
            done += n

    return gen, invoices()


def b2b_jsonl(
    count: int,
    *,
    seed: int,
    supplier_gstin: str | None = None,
    ret_period: str = DEFAULT_RET_PERIOD,
) -> Iterator[bytes]:
    """``count`` JSONL lines (with their LF): each invoice of :func:`b2b_invoices` plus
    ``gstin``, ``fp``, ``section`` and ``ctin``; about 2 KiB each."""
    gen, invoices = _stream(count, seed, supplier_gstin, ret_period)
    head = f'{{"gstin":"{gen.supplier}","fp":"{ret_period}","section":"b2b","ctin":"'
    for inv in invoices:
        yield f'{head}{inv.ctin}",{gen.as_json(inv)[1:]}\n'.encode("ascii")


def b2b_gstr1_json(
    count: int,
    *,
    seed: int,
    supplier_gstin: str | None = None,
    ret_period: str = DEFAULT_RET_PERIOD,
) -> Iterator[bytes]:
    """The same invoices as one GSTR-1 JSON file (offline-tool shape, pretty-printed with one
    invoice per line), yielded in pieces: ``{"gstin","fp","gt","cur_gt","b2b":[{"ctin","inv":[…]}]}``.

    Consecutive invoices to the same recipient share a ``ctin`` group, as the tool writes them.
    """
    gen, invoices = _stream(count, seed, supplier_gstin, ret_period)
    yield f'{{\n "gstin": "{gen.supplier}",\n "fp": "{ret_period}",\n "gt": 0,\n "cur_gt": 0,\n "b2b": ['.encode()
    ctin = None
    for inv in invoices:
        if inv.ctin != ctin:
            sep = "" if ctin is None else "\n  ]},"
            ctin = inv.ctin
            yield f'{sep}\n  {{"ctin": "{ctin}", "inv": [\n   {gen.as_json(inv)}'.encode("ascii")
        else:
            yield f",\n   {gen.as_json(inv)}".encode("ascii")
    yield b"\n  ]}\n ]\n}\n" if ctin is not None else b"]\n}\n"


def _money_text(paise: int) -> str:
    return f"{paise // 100}.{paise % 100:02d}"


def b2b_csv(
    count: int,
    *,
    seed: int,
    supplier_gstin: str | None = None,
    ret_period: str = DEFAULT_RET_PERIOD,
) -> Iterator[bytes]:
    """The same invoices as the offline tool's b2b CSV: the header line, then one row per
    invoice line (CRLF line ends, dates ``dd-Mmm-yyyy``, places of supply ``29-Karnataka``).

    Reading it with section ``b2b``, the generator's supplier GSTIN and ``ret_period`` gives
    the same canonical invoices as :func:`b2b_jsonl` (taxes are computed half-up to the paisa
    from rate and taxable value, as the generator computes them).
    """
    gen, invoices = _stream(count, seed, supplier_gstin, ret_period)
    yield (_B2B_CSV_HEADER + "\r\n").encode("ascii")
    for inv in invoices:
        day, month, year = inv.idt.split("-")
        head = (f"{inv.ctin},Customer {inv.ctin[2:7]},{inv.inum},{day}-{_MONTH_ABBR[int(month) - 1]}-{year},"
                f"{_money_text(round(inv.val * 100))},{inv.pos}-{STATE_CODES[inv.pos]},{inv.rchrg},,"
                f"{_INV_TYPE_LABEL[inv.inv_typ]},,")
        rows = []
        for i in inv.lines:
            det = gen.catalogues[inv.igst][i].det
            rows.append(f"{head}{det['rt']},{_money_text(round(det['txval'] * 100))},"
                        f"{_money_text(round(det['csamt'] * 100))}\r\n")
        yield "".join(rows).encode("utf-8")

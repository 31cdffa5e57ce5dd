"""GSTR-2A and GSTR-2B: a taxpayer's purchases, built from what *other* taxpayers saved or
filed in GSTR-1 naming it as counterparty (``b2b`` invoices, ``cdnr`` notes).

GSTR-2A, ``GET …/returns/gstr2a?action=B2B|CDN&gstin&ret_period[&ctin]`` (decrypted):
``{"b2b": [{"ctin": <supplier>, "cfs": "Y"|"N", "cfs3b": "N", "fldtr1", "flprdr1",
"inv": [<invoice as the supplier saved it> + "chksum"]}]}``; ``CDN`` answers ``{"cdn": [{…,
"nt": [...]}]}``. 2A is live: it shows invoices of the period ``ret_period`` as soon as the
supplier saved them, with ``cfs`` (counterparty filing status) ``"Y"`` and the filing date
(``fldtr1``) and period (``flprdr1``) once the supplier filed GSTR-1 (INFERRED: the real 2A
also shows saved, unfiled invoices). ``ctin`` filters one supplier. A result larger than
``large_download_threshold`` documents answers ``{"est", "token"}`` and goes through FILEDET
as GSTR-1 does (parts shaped like the direct reply).

GSTR-2B, ``GET …/returns/gstr2b?action=GET2B&gstin&rtnprd[&file_num]`` (decrypted):
``{"chksum", "data": {"gstin", "rtnprd", "version", "gendt", "docdata": {"b2b": [{"ctin",
"trdnm", "supprd", "supfildt", "inv": [{"inum", "typ", "dt", "val", "pos", "rev", "itcavl",
"rsn", "diffprcnt", "items": [{"num", "rt", "txval", "igst", "cgst", "sgst", "cess"}]}]}],
"cdnr": [{…, "nt": [{"ntnum", "typ", "suptyp", "dt", …}]}]}}}``. 2B is a statement: only
documents of GSTR-1 returns *filed* for ``rtnprd``. With ``gstr2b_generation="admin"`` (the
default) it exists once generated (``POST /_emulator/gstr2b/generate``; GET2B before that:
RET2B1023) and is then frozen, as GSTN's monthly statement is; ``"live"`` builds it at each
GET2B. A statement with more than ``large_download_threshold`` documents is paged as GSTN
pages 2B: without ``file_num`` the reply's ``data`` carries ``fc`` (the file count) and no
``docdata``; ``file_num=1..fc`` return the parts (each with ``fc``). This follows GSTN and
india-compliance's client (file_num), not the GSTR-1 token path.

Empty results answer GSTN's "no document" errors (RET11416 for 2A, RET2B1016 for 2B) unless
``gstr2_empty_is_error`` is off. ``itcavl`` is always ``"Y"`` (the emulator applies no ITC rules).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
from typing import Any

from gspauth.emulator._http import Response, gstn_error
from gspauth.emulator.model import Call
from gspauth.emulator.returns import ReturnActions, trade_name

__all__ = ["InwardActions"]

#: GSTR-2A action → (GSTR-1 section it is built from, reply key, document list key).
_GSTR2A_ACTIONS: dict[str, tuple[str, str, str]] = {"B2B": ("b2b", "b2b", "inv"), "CDN": ("cdnr", "cdn", "nt")}
_IST = _dt.timezone(_dt.timedelta(hours=5, minutes=30))
_dumps = json.JSONEncoder(separators=(",", ":"), sort_keys=True).encode


def _gstn_date(ts: float) -> str:
    """A timestamp as GSTN writes dates (``dd-mm-yyyy``, Indian time)."""
    return _dt.datetime.fromtimestamp(ts, _IST).strftime("%d-%m-%Y")


def _checksum(doc: dict[str, Any]) -> str:
    return hashlib.sha256(_dumps(doc).encode()).hexdigest()


def _items_2b(itms: Any) -> list[dict[str, Any]]:
    out = []
    for n, line in enumerate(itms if isinstance(itms, list) else []):
        det = line.get("itm_det", {}) if isinstance(line, dict) else {}
        out.append({"num": line.get("num", n + 1) if isinstance(line, dict) else n + 1, "rt": det.get("rt", 0),
                    "txval": det.get("txval", 0), "igst": det.get("iamt", 0), "cgst": det.get("camt", 0),
                    "sgst": det.get("samt", 0), "cess": det.get("csamt", 0)})
    return out


def _doc_2b(section: str, doc: dict[str, Any]) -> dict[str, Any]:
    common = {"val": doc.get("val"), "pos": doc.get("pos"), "rev": doc.get("rchrg", "N"), "itcavl": "Y", "rsn": "",
              "diffprcnt": doc.get("diff_percent", 1), "items": _items_2b(doc.get("itms"))}
    if section == "b2b":
        return {"inum": doc["inum"], "typ": doc.get("inv_typ", "R"), "dt": doc.get("idt"), **common}
    return {"ntnum": doc["nt_num"], "typ": doc.get("ntty"), "suptyp": doc.get("inv_typ", "R"), "dt": doc.get("nt_dt"),
            **common}


class InwardActions(ReturnActions):
    """GSTR-2A / GSTR-2B for the session's GSTIN (the recipient)."""

    def _returns(self, call: Call, form: str | None) -> Response:
        if form in ("gstr2a", "gstr2b"):
            return self._inward(call, form)
        return super()._returns(call, form)

    def _inward(self, call: Call, form: str) -> Response:
        if call.method != "GET":
            raise gstn_error("GEN5007", f"{call.method} is not available on /returns/{form} (downloads only)",
                             status=405)
        s, gstin, period = self._data_session(call, returns=True)
        assert period is not None
        action = (call.query.get("action") or "").upper()
        if form == "gstr2a":
            return self._gstr2a(call, s, gstin, period, action)
        return self._gstr2b(call, s, gstin, period, action)

    # ----------------------------------------------------------------- GSTR-2A --
    def _gstr2a(self, call: Call, s: Any, gstin: str, period: str, action: str) -> Response:
        if action not in _GSTR2A_ACTIONS:
            raise gstn_error("GEN5007", f"unsupported GSTR-2A action {action!r} (the emulator serves B2B and CDN)")
        section, key, list_key = _GSTR2A_ACTIONS[action]
        supplier_filter = call.query.get("ctin")
        docs = []  # (supplier, document), flat so that large results split by document
        for supplier, _, data in self._store.inward(gstin, period, [section]):
            if supplier_filter and supplier != supplier_filter:
                continue
            doc = {k: v for k, v in json.loads(data)[list_key].items() if k != "flag"}
            docs.append((supplier, {**doc, "chksum": _checksum(doc)}))
        if not docs and self.config.gstr2_empty_is_error:
            raise gstn_error("RET11416", f"no GSTR-2A {action} documents for {gstin} in {period}")
        filed = {sup: self._store.filed_at(sup, period) for sup in {sup for sup, _ in docs}}

        def wire(part: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
            grouped: dict[str, list[dict[str, Any]]] = {}
            for sup, doc in part:
                grouped.setdefault(sup, []).append(doc)
            out = []
            for sup, ds in grouped.items():
                when = filed[sup]
                entry: dict[str, Any] = {"ctin": sup, "cfs": "Y" if when is not None else "N", "cfs3b": "N"}
                if when is not None:
                    entry |= {"fldtr1": _gstn_date(when), "flprdr1": period}
                out.append({**entry, list_key: ds})
            return {key: out}

        if len(docs) > self.config.large_download_threshold:
            return self._large_download(s, call, gstin, period, f"2A_{key}", docs, wire)
        return self._envelope(s.ek, wire(docs))

    # ----------------------------------------------------------------- GSTR-2B --
    def gstr2b_statement(self, gstin: str, period: str) -> dict[str, Any]:
        """GSTR-2B ``data`` of ``gstin`` for ``period`` as of now: documents of GSTR-1 returns filed
        for the period naming it (``gendt`` today)."""
        docdata: dict[str, list[dict[str, Any]]] = {}
        for section, list_key in (("b2b", "inv"), ("cdnr", "nt")):
            by_supplier: dict[str, list[dict[str, Any]]] = {}
            for supplier, _, data in self._store.inward(gstin, period, [section]):
                by_supplier.setdefault(supplier, []).append(_doc_2b(section, json.loads(data)[list_key]))
            entries = []
            for supplier, ds in by_supplier.items():
                filed = self._store.filed_at(supplier, period)
                if filed is None:
                    continue
                entries.append({"ctin": supplier, "trdnm": trade_name(supplier), "supprd": period,
                                "supfildt": _gstn_date(filed), list_key: ds})
            if entries:
                docdata[section] = entries
        return {"gstin": gstin, "rtnprd": period, "version": "1.0", "gendt": _gstn_date(self.clock.timestamp()),
                "docdata": docdata}

    def generate_gstr2b(self, gstin: str, period: str) -> dict[str, Any]:
        """Generate (or regenerate) and keep the GSTR-2B statement of ``gstin`` for ``period``.

        :returns: ``{"gstin", "period", "gendt", "b2b": <invoices>, "cdnr": <notes>}``.
        :raises ValueError: a GSTIN that is not valid, or a period that is not ``MMYYYY``.
        """
        from gspauth.gstin import is_valid_gstin

        if not isinstance(gstin, str) or not is_valid_gstin(gstin):
            raise ValueError(f"{gstin!r} is not a valid GSTIN")
        if not (isinstance(period, str) and len(period) == 6 and period.isdigit() and 1 <= int(period[:2]) <= 12):
            raise ValueError("period must be MMYYYY, e.g. 072017")
        statement = self.gstr2b_statement(gstin, period)
        self._store.put_gstr2b(gstin, period, self.clock.timestamp(), statement)
        counts = {sec: sum(len(e[lk]) for e in statement["docdata"].get(sec, [])) for sec, lk in
                  (("b2b", "inv"), ("cdnr", "nt"))}  # fmt: skip
        return {"gstin": gstin, "period": period, "gendt": statement["gendt"], **counts}

    def _gstr2b(self, call: Call, s: Any, gstin: str, period: str, action: str) -> Response:
        if action != "GET2B":
            raise gstn_error("GEN5007", f"unsupported GSTR-2B action {action!r} (the emulator serves GET2B)")
        rtnprd = call.query.get("rtnprd")
        if not rtnprd:
            raise gstn_error("GEN5001", "GET2B needs rtnprd (MMYYYY)")
        if rtnprd != period:
            raise gstn_error("GEN5007", "rtnprd differs from the ret_period header")
        if self.config.gstr2b_generation == "live":
            statement = self.gstr2b_statement(gstin, period)
        else:
            kept = self._store.gstr2b(gstin, period)
            if kept is None:
                raise gstn_error("RET2B1023", f"GSTR-2B of {gstin} for {period} has not been generated yet")
            statement = kept[1]
        docs = [(sec, entry, doc) for sec, lk in (("b2b", "inv"), ("cdnr", "nt"))
                for entry in statement["docdata"].get(sec, []) for doc in entry[lk]]  # fmt: skip
        if not docs and self.config.gstr2_empty_is_error:
            raise gstn_error("RET2B1016", f"no GSTR-2B documents for {gstin} in {period}")
        per = max(1, self.config.large_download_threshold)
        head = {k: v for k, v in statement.items() if k != "docdata"}
        if len(docs) <= per:
            data = statement
        else:
            files = -(-len(docs) // per)
            raw = call.query.get("file_num")
            if raw is None:
                data = {**head, "fc": files}
            else:
                if not raw.isdigit() or not 1 <= int(raw) <= files:
                    raise gstn_error("GEN5007", f"file_num must be 1..{files}")
                data = {**head, "fc": files, "docdata": _regroup(docs[(int(raw) - 1) * per:int(raw) * per])}
        return self._envelope(s.ek, {"chksum": _checksum(data), "data": data})


def _regroup(docs: list[tuple[str, dict[str, Any], dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    """Documents of a 2B page back under their supplier entries (supplier fields kept)."""
    out: dict[str, list[dict[str, Any]]] = {}
    last: dict[str, Any] | None = None
    for section, entry, doc in docs:
        list_key = "inv" if section == "b2b" else "nt"
        if last is None or last["ctin"] != entry["ctin"] or last["_section"] != section:
            last = {**{k: v for k, v in entry.items() if k != list_key}, list_key: [], "_section": section}
            out.setdefault(section, []).append(last)
        last[list_key].append(doc)
    for entries in out.values():
        for e in entries:
            e.pop("_section")
    return out

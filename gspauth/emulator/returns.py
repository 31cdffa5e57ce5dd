"""Data APIs (spec §5): GSTR-1 RETSAVE / RETSUBMIT / RETFILE, RETSTATUS, section GETs,
FILEDET large downloads and their files, and the public search.

Data calls check the ``auth-token`` + ``username`` + ``gstin`` binding (AUTH4033 / AUTH158)
and expiry (AUTH4038), then decrypt ``data`` under EK (TEC4002), check the HMAC over the
exact decrypted Base64 text (AUTH4039) and answer under a fresh REK (spec §12).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from typing import Any

from gspauth import crypto
from gspauth.emulator._http import (
    Response,
    consteq,
    gstn_error,
    json_response,
    plain_response,
)
from gspauth.emulator.base import EmulatorBase
from gspauth.emulator.gstr1 import (
    GROUPED_SECTIONS,
    KNOWN_SECTIONS,
    Record,
    financial_year,
    group,
    parse_save,
    targz,
)
from gspauth.emulator.model import AppSession, Call
from gspauth.emulator.rules import Checks, Rejection, check_records, error_report, structural_report
from gspauth.emulator.store import Row
from gspauth.gstin import STATE_CODES, is_valid_gstin

__all__ = ["ReturnActions", "trade_name"]


def trade_name(gstin: str) -> str:
    """The legal / trade name the emulator gives every GSTIN (search, GSTR-2B ``trdnm``)."""
    return f"EMULATED TAXPAYER {gstin[2:12]}"


def _duplicate_detail(rec: Record, period: str, other: str) -> str:
    where = "another record of this period" if other == period else f"the return for {other}"
    return f"{rec.docnum} is already used in {where} (financial year {financial_year(period)})"


class ReturnActions(EmulatorBase):
    """The data APIs: GSTR-1 save, submit, file, status and sections, large files (FILEDET) and search (spec §5)."""

    def _returns(self, call: Call, form: str | None) -> Response:
        """GSTR-1 (and the forms' shared actions); GSTR-2A / 2B are added by
        :class:`~gspauth.emulator.inward.InwardActions`, which overrides this."""
        if call.method == "GET":
            action = (call.query.get("action") or "").upper()
            if action == "RETSTATUS":
                return self._retstatus(call)
            if action == "FILEDET":
                return self._filedet(call)
            if form is None:
                raise gstn_error("GEN5007", f"unsupported action {action!r} on /returns")
            return self._get_section(call, action.lower())
        if form is None:
            raise gstn_error("GEN5007", "writes go to /returns/gstr1", status=404)
        s, gstin, period = self._data_session(call, returns=True)
        assert period is not None
        body = self._json_body(call)
        write = body.get("action")
        if call.method == "PUT" and write == "RETSAVE":
            return self._retsave(s, gstin, period, body, call.headers["txn"])
        if call.method == "POST" and write == "RETSUBMIT":
            return self._retsubmit(s, gstin, period, body)
        if call.method == "POST" and write == "RETFILE":
            return self._retfile(s, gstin, period, body)
        raise gstn_error("AUTH4040", f"action {write!r} is not available with {call.method}")

    def _retsave(self, s: AppSession, gstin: str, period: str, body: dict[str, Any], txn: str) -> Response:
        j64 = self._open_envelope(s.ek, body)
        payload = self._decode_json(j64)
        if not isinstance(payload, dict):
            raise gstn_error("AUTH4039", "the decrypted payload must be a JSON object")
        if self.config.validate_payload_identity:
            if payload.get("gstin") != gstin:
                raise gstn_error("AUTH4039", "payload gstin differs from the gstin header")
            if payload.get("fp") != period:
                raise gstn_error("AUTH4039", "payload fp differs from the ret_period header")
        sha = hashlib.sha256(j64).hexdigest()
        ref = self._new_reference()
        existing = self._process_save(gstin, period, payload, txn, sha, ref)
        if isinstance(existing, str):  # "FILED"
            raise gstn_error("AUTH4039", "GSTR-1 for this period is already filed")
        if existing is not None:
            first_ref, first_sha = existing
            if first_sha != sha and self.config.txn_conflict_policy == "reject":
                raise gstn_error("AUTH4039", "this txn was already used for a different RETSAVE payload of this GSTIN")
            ref = first_ref
            self._stats.bump(self._stats.events, "retsave_replayed")
        else:
            self._stats.bump(self._stats.events, "retsave_stored")
        return self._envelope(s.ek, {"reference_id": ref})

    def _process_save(self, gstin: str, period: str, payload: dict[str, Any], txn: str, sha: str,
                      ref: str) -> tuple[str, str] | str | None:  # fmt: skip
        """Process a RETSAVE payload as GSTN does after accepting it (see :mod:`.rules`): a
        structural error refuses it whole (ER); records breaking a rule are rejected and
        reported (PE/ER) and the rest stored. Returns what :meth:`Store.save_records` does."""
        now = self.clock.timestamp()
        parsed = parse_save(payload)
        if parsed.structural is not None:
            report = json.dumps(structural_report(parsed.structural))
            return self._store.save_receipt(ref, gstin, period, txn, sha, now, "ER", report)
        cfg = self.config
        checks = Checks(cfg.check_counterparty_gstins, cfg.reject_dates_after_period, cfg.check_tax_rates)
        accepted, rejected = check_records(parsed.records, gstin=gstin, period=period, checks=checks,
                                           status_of=self.gstin_status)
        order = {id(r): n for n, r in enumerate(parsed.records)}

        def finish(dups: list[tuple[int, str]]) -> tuple[str, str | None]:
            every = rejected + [Rejection(accepted[i], "RET191133", _duplicate_detail(accepted[i], period, p))
                                for i, p in dups]
            every.sort(key=lambda rj: order[id(rj.record)])  # the payload's order
            if every:
                self._stats.count(self._stats.events, "records_rejected", len(every))
            stored = len(accepted) - len(dups) + len(parsed.deletes)
            status = "PE" if every and stored else ("ER" if every else "P")
            return status, json.dumps(error_report(every)) if every else None

        rows = [Row(r.section, r.rkey, r.data, r.kind, r.docnum, r.ctin) for r in accepted]
        return self._store.save_records(ref, gstin, period, financial_year(period), txn, sha, now, rows,
                                        parsed.deletes, finish, unique_numbers=cfg.unique_document_numbers)

    def _retsubmit(self, s: AppSession, gstin: str, period: str, body: dict[str, Any]) -> Response:
        j64 = self._open_envelope(s.ek, body)
        payload = self._decode_json(j64)
        if not isinstance(payload, dict) or payload.get("gstin") != gstin or payload.get("ret_period") != period:
            raise gstn_error("AUTH4039", "RETSUBMIT data must be {\"gstin\": ..., \"ret_period\": ...} of this return")
        ref = self._new_reference()
        self._store.set_return_state(ref, gstin, period, "RETSUBMIT", "SUBMITTED", hashlib.sha256(j64).hexdigest(),
                                     self.clock.timestamp())
        return self._envelope(s.ek, {"reference_id": ref})

    def _retfile(self, s: AppSession, gstin: str, period: str, body: dict[str, Any]) -> Response:
        st, sid, sign, data = body.get("st"), body.get("sid"), body.get("sign"), body.get("data")
        if st != "EVC" or not all(isinstance(v, str) and v for v in (sid, sign, data)):
            raise gstn_error("AUTH4040", "RETFILE needs st='EVC', sid='<PAN>|<OTP>', sign and data")
        assert isinstance(sid, str)
        j64 = self._open_envelope(s.ek, body, mac_field="sign", mac_key=sid.encode("utf-8"))
        pan, _, otp = sid.partition("|")
        now = self.clock.timestamp()
        with self._lock:
            pending = self._evc_otps.get((gstin, pan))
            if pending is None or now > pending.expires_at or not consteq(pending.otp, otp):
                if pending is not None:  # a wrong or late OTP uses up an attempt
                    pending.attempts_left -= 1
                    if pending.attempts_left <= 0 or now > pending.expires_at:
                        del self._evc_otps[(gstin, pan)]
                raise gstn_error("RET13506", "EVC OTP is wrong or expired, or no EVCOTP was requested for this PAN")
            del self._evc_otps[(gstin, pan)]
        ref = self._new_reference()
        self._store.set_return_state(ref, gstin, period, "RETFILE", "FILED", hashlib.sha256(j64).hexdigest(), now)
        return self._envelope(s.ek, {"ack_num": "AA" + ref[4:], "reference_id": ref})

    def _retstatus(self, call: Call) -> Response:
        s, gstin, period = self._data_session(call, returns=True)
        q = call.query
        ref = q.get("ref_id") or q.get("trans_id") or q.get("reference_id")
        if not ref:
            raise gstn_error("GEN5001", "RETSTATUS needs ref_id (the reference_id of the save)")
        receipt = self._store.receipt(ref)
        if receipt is None or receipt["gstin"] != gstin or receipt["period"] != period:
            raise gstn_error("AUTH4040", "no such reference_id for this GSTIN and return period")
        done = self.clock.timestamp() >= receipt["created_at"] + self.config.retstatus_delay_seconds
        out: dict[str, Any] = {"status_cd": receipt["status"] if done else "IP", "form_typ": "R1",
                               "action": receipt["action"].replace("RET", "")}
        if done and receipt["error_report"]:
            out["error_report"] = receipt["error_report"]
        return self._envelope(s.ek, out)

    def _get_section(self, call: Call, section: str) -> Response:
        s, gstin, period = self._data_session(call, returns=True)
        assert period is not None
        if section not in KNOWN_SECTIONS:
            raise gstn_error("GEN5007", f"unknown GSTR-1 section action {section.upper()!r}")
        records = [json.loads(d) for _, d in self._store.records(gstin, period, section)]
        ctin = call.query.get("ctin")
        if ctin and section in GROUPED_SECTIONS:
            records = [r for r in records if r.get(GROUPED_SECTIONS[section][0]) == ctin]
        if len(records) > self.config.large_download_threshold:
            return self._large_download(s, call, gstin, period, f"{section}", records,
                                        lambda part: {section: group(section, part)})
        return self._envelope(s.ek, {section: group(section, records)})

    def _large_download(self, s: AppSession, call: Call, gstin: str, period: str, name: str, records: list[Any],
                        wire: Callable[[list[Any]], dict[str, Any]]) -> Response:  # fmt: skip
        """Answer ``{"est", "token"}``; FILEDET then serves ``records`` in parts, each shaped by ``wire``."""
        token = self._hex()
        with self._lock:
            self._downloads[token] = {"gstin": gstin, "period": period, "name": name, "records": records,
                                      "wire": wire, "clientid": call.headers["clientid"],
                                      "created": self.clock.timestamp()}
        return self._envelope(s.ek, {"est": 1, "token": token})

    def _filedet(self, call: Call) -> Response:
        s, gstin, period = self._data_session(call, returns=True)
        token = call.query.get("token")
        if not token:
            raise gstn_error("GEN5001", "FILEDET needs token")
        self._purge_downloads()
        with self._lock:
            dl = self._downloads.get(token)
        if dl is None or dl["gstin"] != gstin or dl["period"] != period or dl["clientid"] != call.headers["clientid"]:
            raise gstn_error("AUTH4040", "unknown or expired FILEDET token for this GSTIN and period")
        file_key = self._randbytes(32)
        per = max(1, self.config.filedet_records_per_file)
        records, wire = dl["records"], dl["wire"]
        urls = []
        expires = self.clock.timestamp() + self.config.filedet_url_life_seconds
        for i in range(0, max(len(records), 1), per):
            part = wire(records[i:i + per])
            name = f"{gstin}_{period}_{dl['name']}_{i // per + 1}"
            member = crypto.encrypt_field(file_key, base64.b64encode(json.dumps(part).encode())).encode("ascii")
            blob = targz(f"{name}.json", member)
            fid = self._hex()
            with self._lock:
                self._files[fid] = (expires, f"{name}.tar.gz", blob)
            ul = f"{call.files_base}/files/{fid}/{name}.tar.gz"
            urls.append({"ul": ul, "ic": len(records[i:i + per]), "hash": hashlib.sha256(blob).hexdigest()})
        return self._envelope(s.ek, {"ek": base64.b64encode(file_key).decode(), "fc": len(urls), "urls": urls})

    def _purge_downloads(self) -> None:
        now = self.clock.timestamp()
        life = self.config.filedet_url_life_seconds
        with self._lock:
            for fid in [f for f, (exp, _, _) in self._files.items() if exp < now]:
                del self._files[fid]
            for tok in [t for t, d in self._downloads.items() if d["created"] + life < now]:
                del self._downloads[tok]

    def _download_file(self, fid: str, name: str) -> Response:
        with self._lock:
            entry = self._files.get(fid)
        if entry is None or entry[1] != name or self.clock.timestamp() > entry[0]:
            return plain_response(404, b"not found", "text/plain")
        return plain_response(200, entry[2], "application/gzip")

    def _search(self, call: Call) -> Response:
        self._require(call, ("txn",))
        q = call.query
        if q.get("action") != "TP":
            raise gstn_error("GEN5007", "search supports action=TP")
        gstin = q.get("gstin") or ""
        if not is_valid_gstin(gstin):
            raise gstn_error("GEN5007", "gstin is not a valid GSTIN")
        status = self.gstin_status(gstin)
        if status == "unregistered":  # INFERRED: GSTN's reply for an unknown GSTIN is not public
            raise gstn_error("GEN5007", f"no taxpayer is registered with GSTIN {gstin}")
        with self._lock:
            tp = self._taxpayers.get(gstin)
        info = {"gstin": gstin, "lgnm": trade_name(gstin), "sts": status.capitalize(), "dty": "Regular",
                "stj": STATE_CODES[gstin[:2]], "rgdt": "01/07/2017", "registered_with_emulator": tp is not None}
        return json_response(200, {"status_cd": "1", "data": base64.b64encode(json.dumps(info).encode()).decode()})

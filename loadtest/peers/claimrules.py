"""BENCHMARK PEER — not production code.

The claim-filter rules of claimgate (../shared/spec/rules.md, records.md) re-written in plain Python for
the quixstreams benchmark peer (`quix_filter.py`). It mirrors, check for check, the Rust code in
`src/decide.rs`, `src/record/claim.rs`, `src/record/code.rs`, `src/record/time.rs`,
`src/record/money.rs`, `src/record/status.rs` and `src/table/institution.rs`, so that the peer decides
every well-formed line exactly as claimgate does. `check_same_decisions.py` verifies that on data.

Where it is knowingly looser than claimgate's scanner (documented in README.md):
- a duplicate known field is looked for only when the line has more `":` than orjson found members
  (orjson keeps the last of duplicates); a duplicate hidden by nesting or by `":` inside a string
  that compensates exactly is not noticed;
- numbers outside 64-bit range anywhere in the line make orjson refuse the line (claimgate keeps them).
None of these occur in what `claimgate gen` writes.

Run as a script, it decides a claims file against table files without Kafka (used to check the rules
and to measure the Python decision rate alone):

    python claimrules.py --claims claims.jsonl --practitioners p.jsonl --institutions i.jsonl \
        [--profile national-2024] --out decisions.jsonl --dead-letters dlq.jsonl
"""

from __future__ import annotations

import base64
import json
import os
import re
import sys
import time
import tomllib
from typing import Any, Optional

import orjson

# ----------------------------------------------------------------------------------------------
# Reasons, in rules.md check order.

OK = "OK"
EMERGENCY_OVERRIDE = "EMERGENCY_OVERRIDE"
INSTITUTION_TERMINATED = "INSTITUTION_TERMINATED"
INSTITUTION_SUSPENDED = "INSTITUTION_SUSPENDED"
DEPARTMENT_SUSPENDED = "DEPARTMENT_SUSPENDED"
PRACTITIONER_UNREGISTERED = "PRACTITIONER_UNREGISTERED"
PRACTITIONER_NOT_REGISTERED_HERE = "PRACTITIONER_NOT_REGISTERED_HERE"
PRACTITIONER_TERMINATED = "PRACTITIONER_TERMINATED"
PRACTITIONER_SUSPENDED = "PRACTITIONER_SUSPENDED"

CHECKS = (
    INSTITUTION_TERMINATED,
    INSTITUTION_SUSPENDED,
    DEPARTMENT_SUSPENDED,
    PRACTITIONER_UNREGISTERED,
    PRACTITIONER_NOT_REGISTERED_HERE,
    PRACTITIONER_TERMINATED,
    PRACTITIONER_SUSPENDED,
)
ALL_REASONS = (OK, EMERGENCY_OVERRIDE) + CHECKS

SHIPPED_PROFILES = ("national-2024", "huaian-2020", "lanzhou-2014")
HERE = os.path.dirname(os.path.abspath(__file__))
PROFILE_DIR = os.path.normpath(os.path.join(HERE, "..", "..", "profiles"))

# A time later than any valid one ("until" null = open-ended). Times are kept as normalised
# `yyyy-MM-dd HH:mm:ss` text: fixed width with years 1900-2199, so text order is time order.
OPEN_END = "9999-99-99 99:99:99"


class Malformed(Exception):
    """A claim line that cannot be decided (check 0): the field at fault, if any, and why."""

    def __init__(self, field: Optional[str], message: str):
        super().__init__(message)
        self.field = field
        self.message = message


# ----------------------------------------------------------------------------------------------
# Profiles (src/profile.rs)


class Profile:
    def __init__(self, path_or_name: str):
        path = path_or_name
        if path_or_name in SHIPPED_PROFILES:
            path = os.path.join(PROFILE_DIR, path_or_name + ".toml")
        with open(path, "rb") as f:
            data = tomllib.load(f)
        self.name: str = data["name"]
        self.emergency_med_types = frozenset(parse_med_type(m.strip()) for m in data["emergency_med_types"])
        if None in self.emergency_med_types:
            raise ValueError(f"{path}: emergency_med_types holds a value that is not a medical-type code")
        overrides = data["emergency_overrides"]
        for r in overrides:
            if r not in CHECKS:
                raise ValueError(f"{path}: emergency_overrides: `{r}` is not a failed check")
        self.overridable = frozenset(overrides)
        legacy = data["legacy_codes"]
        if legacy not in ("lookup", "unregistered"):
            raise ValueError(f"{path}: legacy_codes must be lookup or unregistered")
        self.legacy_unregistered = legacy == "unregistered"
        self.rules: dict[str, str] = dict(data["rules"])
        self.override_rules: dict[str, str] = dict(data.get("override_rules", {}))
        for r in ALL_REASONS:
            if r != EMERGENCY_OVERRIDE and not self.rules.get(r, "").strip():
                raise ValueError(f"{path}: rules.{r} missing")
        for r in self.overridable:
            if not self.override_rules.get(r, "").strip():
                raise ValueError(f"{path}: override_rules.{r} missing")


# ----------------------------------------------------------------------------------------------
# Field validation (src/record/claim.rs, code.rs, time.rs, money.rs)

_PAD = " \t\r\n"
_RE_PRINTABLE_CODE = re.compile(r"[\x20-\x7e]{1,30}")
_RE_INSTITUTION = re.compile(r"[HP][0-9]{11}")
_RE_NATIONAL = re.compile(r"(?:D|N|HY|HJ)[0-9]{12}")
_RE_MED_TYPE = re.compile(r"([0-9]{1,9})(?:\.0+)?")
_RE_TIME = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})(?: ([0-9]{2}):([0-9]{2}):([0-9]{2}))?")
_RE_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_RE_AMOUNT = re.compile(r"([+-]?)([0-9]+)(?:\.([0-9]{1,2}))?")
_RE_AMOUNT_PRECISION = re.compile(r"[+-]?[0-9]+\.[0-9]{3,}")
MAX_ID_LEN = 64

_DAYS = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


class NumText(str):
    """The literal text of a JSON number (slow path), told apart from a JSON string."""


def _leap(y: int) -> bool:
    return y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)


_time_cache: dict[str, Any] = {}


def parse_time(text: str) -> str:
    """BjTime::parse: `yyyy-MM-dd HH:mm:ss` or `yyyy-MM-dd`; returns the normalised 19-char text.

    Raises ValueError("format"|"range")."""
    m = _RE_TIME.fullmatch(text)
    if m is None:
        raise ValueError("expected `yyyy-MM-dd HH:mm:ss` or `yyyy-MM-dd`")
    date = text[:10]
    ok = _time_cache.get(date)
    if ok is None:
        y, mo, d = int(m.group(1)), int(m.group(2)), int(m.group(3))
        ok = 1900 <= y <= 2199 and 1 <= mo <= 12 and 1 <= d <= (29 if mo == 2 and _leap(y) else _DAYS[mo - 1])
        if len(_time_cache) < 100_000:
            _time_cache[date] = ok
    if not ok:
        raise ValueError("no such date or time of day")
    if m.group(4) is None:
        return date + " 00:00:00"
    if int(m.group(4)) > 23 or int(m.group(5)) > 59 or int(m.group(6)) > 59:
        raise ValueError("no such date or time of day")
    return text


def parse_med_type(text: str) -> Optional[int]:
    """MedType::parse: digits, optionally with a zero fraction (`14.0`)."""
    m = _RE_MED_TYPE.fullmatch(text)
    return int(m.group(1)) if m else None


def format_med_type(m: int) -> str:
    return "%02d" % m


def check_code(text: str) -> Optional[str]:
    """code.rs check_code: 1 to 30 printable ASCII characters. Returns an error text or None."""
    if _RE_PRINTABLE_CODE.fullmatch(text):
        return None
    if not text:
        return "empty"
    if len(text.encode("utf-8")) > 30:
        return "longer than 30 characters"
    return "characters outside printable ASCII"


def parse_amount(text: str) -> str:
    """Amount::parse then Display: two decimals, exact. Raises ValueError."""
    m = _RE_AMOUNT.fullmatch(text)
    if m is None:
        if _RE_AMOUNT_PRECISION.fullmatch(text):
            raise ValueError("more than 2 decimals")
        raise ValueError("not a decimal number")
    sign, whole, frac = m.group(1), m.group(2), m.group(3) or ""
    whole = whole.lstrip("0") or "0"
    if len(whole) > 15:
        raise ValueError("too large")
    fen = int(whole) * 100 + int((frac + "00")[:2])
    if sign == "-" and fen != 0:
        return "-%d.%02d" % divmod(fen, 100)
    return "%d.%02d" % divmod(fen, 100)


def _scalar(v: Any, field: str) -> Optional[str]:
    """claim.rs scalar(): text of a JSON string (trimmed) or number (literal); null is absent."""
    t = type(v)
    if t is str:
        return v.strip(_PAD)
    if v is None:
        return None
    if t is NumText:
        return str.__str__(v)
    raise Malformed(field, f"field `{field}`: expected a string or a number")


def _required(v: Any, field: str) -> str:
    s = _scalar(v, field)
    if s is None:
        raise Malformed(field, f"missing field `{field}`")
    if not s:
        raise Malformed(field, f"field `{field}` is empty")
    return s


def _id(v: Any, field: str) -> str:
    s = _required(v, field)
    if len(s) > MAX_ID_LEN:
        raise Malformed(field, f"field `{field}` is longer than {MAX_ID_LEN} characters")
    if _RE_CONTROL.search(s):
        raise Malformed(field, f"field `{field}` has control characters")
    return s


KNOWN_FIELDS = (
    "feedetl_sn",
    "fixmedins_code",
    "mdtrt_id",
    "psn_no",
    "med_type",
    "fee_ocur_time",
    "bilg_dr_codg",
    "bilg_dept_codg",
    "det_item_fee_sumamt",
    "er_flag",
    "adm_way",
)
_KNOWN_SET = frozenset(KNOWN_FIELDS)


def _slow_read(raw: bytes) -> dict:
    """Reads a line keeping number literals as text and refusing duplicate known fields."""
    pairs = json.loads(raw.decode("utf-8"), parse_float=NumText, parse_int=NumText, object_pairs_hook=list)
    if type(pairs) is not list or (pairs and type(pairs[0]) is not tuple):
        raise Malformed(None, "expected an object")
    obj: dict = {}
    for k, v in pairs:
        if k in _KNOWN_SET and k in obj:
            raise Malformed(k, f"duplicate field `{k}`")
        obj[k] = v
    return obj


class Claim:
    __slots__ = (
        "feedetl_sn",
        "fixmedins_code",
        "mdtrt_id",
        "bilg_dr_codg",
        "national",
        "bilg_dept_codg",
        "fee_ocur_time",
        "med_type",
        "amount",
        "er_flag",
        "adm_way",
    )


class _NeedSlow(Exception):
    """A known field holds a JSON number: re-read the line keeping the number's literal text."""


_RE_TIME19 = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2} (?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]")
_RE_AMOUNT_CANONICAL = re.compile(r"-?(?:0|[1-9][0-9]{0,14})\.[0-9]{2}")
_CACHE_MAX = 200_000
_inst_ok: dict[str, bool] = {}
_dr_national: dict[str, bool] = {}
_med_cache: dict[str, Optional[int]] = {}
_dept_ok: set[str] = set()


_HMS = frozenset("%02d:%02d:%02d" % (h, m, x) for h in range(24) for m in range(60) for x in range(60))
_valid_dates: set[str] = set()


def _fast_time(s: str) -> str:
    """parse_time for the common `yyyy-MM-dd HH:mm:ss` form; falls back to the general one."""
    if len(s) == 19 and s[10] == " " and s[11:] in _HMS:
        d = s[:10]
        if d in _valid_dates:
            return s
        parse_time(d)  # raises for a bad date
        if len(_valid_dates) < _CACHE_MAX:
            _valid_dates.add(d)
        return s
    return parse_time(s)


def _text(v: Any, field: str) -> Optional[str]:
    """_scalar on the fast path: a JSON number sends the line to the slow path."""
    t = type(v)
    if t is str:
        return v.strip(_PAD)
    if v is None:
        return None
    if t is int or t is float:
        raise _NeedSlow
    return _scalar(v, field)


def _req(v: Any, field: str) -> str:
    s = _text(v, field)
    if not s:
        if s is None:
            raise Malformed(field, f"missing field `{field}`")
        raise Malformed(field, f"field `{field}` is empty")
    return s


def _ident(v: Any, field: str) -> str:
    s = _req(v, field)
    if len(s) > MAX_ID_LEN or not s.isprintable():
        return _id(s, field)
    return s


def _clean_id(v: Any) -> bool:
    """A JSON string that needs no trimming and passes _id as it is (the common case, checked inline)."""
    return type(v) is str and 0 < len(v) <= MAX_ID_LEN and v.isprintable() and v[0] not in _PAD and v[-1] not in _PAD


def _from_obj(obj: dict) -> Claim:
    # Every field has an inline fast path for the common, already-clean value (cached where the
    # values repeat: codes, medical types, dates); anything else takes the general path, which
    # trims, validates and names the field at fault exactly as claim.rs does.
    get = obj.get
    c = Claim()
    v = get("feedetl_sn")
    c.feedetl_sn = v if _clean_id(v) else _ident(v, "feedetl_sn")

    v = get("fixmedins_code")
    if type(v) is str and v in _inst_ok:
        c.fixmedins_code = v
    else:
        inst = _req(v, "fixmedins_code")
        if not _RE_INSTITUTION.fullmatch(inst):
            err = check_code(inst) or "not an institution code (`H` or `P`, then 11 digits)"
            raise Malformed("fixmedins_code", f"field `fixmedins_code`: {err}")
        if len(_inst_ok) < _CACHE_MAX:
            _inst_ok[inst] = True
        c.fixmedins_code = inst

    v = get("mdtrt_id")
    c.mdtrt_id = v if _clean_id(v) else _ident(v, "mdtrt_id")
    v = get("psn_no")
    if not _clean_id(v):
        _ident(v, "psn_no")

    v = get("med_type")
    med = _med_cache.get(v) if type(v) is str else None
    if med is None:
        med_text = _req(v, "med_type")
        med = parse_med_type(med_text)
        if med is None:
            raise Malformed("med_type", "field `med_type`: not a medical-type code (digits)")
        if len(_med_cache) < 10_000:
            _med_cache[med_text] = med
    c.med_type = med

    v = get("fee_ocur_time")
    if type(v) is str and len(v) == 19 and v[10] == " " and v[11:] in _HMS and v[:10] in _valid_dates:
        c.fee_ocur_time = v
    else:
        try:
            c.fee_ocur_time = _fast_time(_req(v, "fee_ocur_time"))
        except ValueError as e:
            raise Malformed("fee_ocur_time", f"field `fee_ocur_time`: {e}") from None

    v = get("bilg_dr_codg")
    national = _dr_national.get(v) if type(v) is str else None
    if national is None:
        v = _req(v, "bilg_dr_codg")
        err = check_code(v)
        if err:
            raise Malformed("bilg_dr_codg", f"field `bilg_dr_codg`: {err}")
        national = _RE_NATIONAL.fullmatch(v) is not None
        if len(_dr_national) < _CACHE_MAX:
            _dr_national[v] = national
    c.bilg_dr_codg = v
    c.national = national

    v = get("bilg_dept_codg")
    if v is None:
        c.bilg_dept_codg = None
    elif type(v) is str and v in _dept_ok:
        c.bilg_dept_codg = v
    else:
        dept = _text(v, "bilg_dept_codg")
        if dept:
            if not _RE_PRINTABLE_CODE.fullmatch(dept):
                raise Malformed("bilg_dept_codg", f"field `bilg_dept_codg`: {check_code(dept)}")
            if len(_dept_ok) < _CACHE_MAX:
                _dept_ok.add(dept)
            c.bilg_dept_codg = dept
        else:
            c.bilg_dept_codg = None

    v = get("det_item_fee_sumamt")
    if type(v) is str and _RE_AMOUNT_CANONICAL.fullmatch(v) and v != "-0.00":
        c.amount = v
    else:
        try:
            c.amount = parse_amount(_req(v, "det_item_fee_sumamt"))
        except ValueError as e:
            raise Malformed("det_item_fee_sumamt", f"field `det_item_fee_sumamt`: {e}") from None

    v = get("er_flag")
    c.er_flag = False if v is None else (v == "1" or (v != "0" and _is_one(_text(v, "er_flag"))))
    v = get("adm_way")
    c.adm_way = False if v is None else (v == "1" or (v != "0" and _is_one(_text(v, "adm_way"))))
    return c


def _is_one(s: Optional[str]) -> bool:
    """claim.rs flag(): set when the value reads as the medical-type number 1 (`1`, `"1"`, `"1.0"`)."""
    if s == "1":
        return True
    if s is None or s == "0":
        return False
    return parse_med_type(s) == 1


def parse_claim(raw: bytes) -> Claim:
    """Claim::parse: validates one claim line or raises Malformed."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise Malformed(None, f"not valid JSON: {e}") from None
    if type(obj) is not dict:
        raise Malformed(None, "not valid JSON: expected an object")
    # Fewer members than `":` in the bytes: perhaps a name given twice (orjson keeps the last) —
    # or only nesting or such text inside strings; the slow path tells them apart.
    if raw.count(b'":') == len(obj):
        try:
            return _from_obj(obj)
        except _NeedSlow:
            pass
    try:
        obj = _slow_read(raw)
    except (ValueError, RecursionError) as e:  # json.JSONDecodeError is a ValueError
        raise Malformed(None, f"not valid JSON: {e}") from None
    return _from_obj(obj)


# ----------------------------------------------------------------------------------------------
# Status tables (src/record/status.rs, src/table/*)
#
# practitioners: code -> (version, registrations, periods)
#   registrations: tuple of (institution, from, until); periods: tuple of (terminated?, from, until)
# institutions:  code -> (version, periods)
#   periods: tuple of (terminated?, from, until, departments: frozenset | None)


class RecordError(ValueError):
    pass


def _interval(p: dict, at: str) -> tuple[str, str]:
    try:
        frm = parse_time(str(p["from"]).strip(_PAD))
        until = p.get("until")
        until = OPEN_END if until is None else parse_time(str(until).strip(_PAD))
    except (KeyError, TypeError, ValueError) as e:
        raise RecordError(f"{at}: {e}") from None
    if until <= frm:
        raise RecordError(f"{at}: `until` must be after `from`")
    return frm, until


def _version(rec: dict) -> int:
    v = rec.get("version")
    if type(v) is not int or v < 0 or v >= 1 << 64:
        raise RecordError("version: expected an unsigned integer")
    return v


def _status(p: dict, at: str) -> bool:
    s = p.get("status")
    if s == "terminated":
        return True
    if s == "suspended":
        return False
    raise RecordError(f"{at}.status: expected suspended or terminated")


def parse_practitioner(value: bytes) -> tuple[str, tuple]:
    """PractitionerText::from_json + validate -> (code, row)."""
    try:
        rec = orjson.loads(value)
    except orjson.JSONDecodeError as e:
        raise RecordError(str(e)) from None
    if type(rec) is not dict or type(rec.get("code")) is not str:
        raise RecordError("not a practitioner record")
    code = rec["code"].strip(_PAD)
    if check_code(code):
        raise RecordError(f"code: {check_code(code)}")
    version = _version(rec)
    regs = []
    for i, r in enumerate(rec.get("registrations") or ()):
        inst = str(r.get("institution", "")).strip(_PAD)
        if not _RE_INSTITUTION.fullmatch(inst):
            raise RecordError(f"registrations[{i}].institution: not an institution code")
        regs.append((inst,) + _interval(r, f"registrations[{i}]"))
    periods = []
    for i, p in enumerate(rec.get("periods") or ()):
        periods.append((_status(p, f"periods[{i}]"),) + _interval(p, f"periods[{i}]"))
    return code, (version, tuple(regs), tuple(periods))


def parse_institution(value: bytes) -> tuple[str, tuple]:
    """InstitutionText::from_json + validate -> (code, row)."""
    try:
        rec = orjson.loads(value)
    except orjson.JSONDecodeError as e:
        raise RecordError(str(e)) from None
    if type(rec) is not dict or type(rec.get("code")) is not str:
        raise RecordError("not an institution record")
    code = rec["code"].strip(_PAD)
    if not _RE_INSTITUTION.fullmatch(code):
        raise RecordError("code: not an institution code")
    version = _version(rec)
    periods = []
    for i, p in enumerate(rec.get("periods") or ()):
        at = f"periods[{i}]"
        depts = p.get("departments")
        if depts is not None:
            ds = []
            for j, d in enumerate(depts):
                d = str(d).strip(_PAD)
                if check_code(d):
                    raise RecordError(f"{at}.departments[{j}]: {check_code(d)}")
                ds.append(d)
            depts = frozenset(ds)
        periods.append((_status(p, at),) + _interval(p, at) + (depts,))
    return code, (version, tuple(periods))


class Tables:
    """The two status tables. Version wins (a lower or equal version is stale); a tombstone deletes.

    Each upsert replaces one dict entry, which is atomic under the GIL; a batch of changes is not
    published as one unit (claimgate's is) — see README.md."""

    def __init__(self):
        self.practitioners: dict[str, tuple] = {}
        self.institutions: dict[str, tuple] = {}
        self.stale = 0
        self.invalid = 0

    def _upsert(self, table: dict, code: str, row: tuple) -> None:
        old = table.get(code)
        if old is not None and row[0] <= old[0]:
            self.stale += 1
            return
        table[code] = row

    def apply_practitioner(self, key: Optional[bytes], value: Optional[bytes]) -> None:
        if value is None:
            if key is not None:
                self.practitioners.pop(key.decode("utf-8", "replace").strip(_PAD), None)
            return
        try:
            code, row = parse_practitioner(value)
        except (RecordError, AttributeError, TypeError) as e:
            self.invalid += 1
            if self.invalid <= 5:
                print(f"claimrules: practitioner record ignored: {e}", file=sys.stderr)
            return
        self._upsert(self.practitioners, code, row)

    def apply_institution(self, key: Optional[bytes], value: Optional[bytes]) -> None:
        if value is None:
            if key is not None:
                self.institutions.pop(key.decode("utf-8", "replace").strip(_PAD), None)
            return
        try:
            code, row = parse_institution(value)
        except (RecordError, AttributeError, TypeError) as e:
            self.invalid += 1
            if self.invalid <= 5:
                print(f"claimrules: institution record ignored: {e}", file=sys.stderr)
            return
        self._upsert(self.institutions, code, row)


# ----------------------------------------------------------------------------------------------
# The decision (src/decide.rs)


def decide(c: Claim, tables: Tables, profile: Profile) -> tuple:
    """Returns (verdict, reason, overridden, rule, practitioner_version, institution_version)."""
    t = c.fee_ocur_time
    emergency = c.er_flag or c.adm_way or c.med_type in profile.emergency_med_types
    overridable = profile.overridable
    overridden = None

    inst = tables.institutions.get(c.fixmedins_code)
    iv = None
    legacy = not c.national
    person = None if (legacy and profile.legacy_unregistered) else tables.practitioners.get(c.bilg_dr_codg)
    pv = person[0] if person is not None else None

    if inst is not None:
        iv = inst[0]
        whole = None  # None, False (suspended), True (terminated)
        dept_susp = False
        dept = c.bilg_dept_codg
        for term, frm, until, depts in inst[1]:
            if frm <= t < until:
                if depts is None:
                    if whole is not True:
                        whole = term
                elif dept is not None and dept in depts:
                    dept_susp = True
        for reason, failed in (
            (INSTITUTION_TERMINATED, whole is True),
            (INSTITUTION_SUSPENDED, whole is False),
            (DEPARTMENT_SUSPENDED, dept_susp),
        ):
            if failed:
                if emergency and reason in overridable:
                    if overridden is None:
                        overridden = reason
                else:
                    return ("reject", reason, None, profile.rules[reason], pv, iv)

    if person is not None:
        here = c.fixmedins_code
        anywhere = False
        registered_here = False
        for i, frm, until in person[1]:
            if frm <= t < until:
                anywhere = True
                if i == here:
                    registered_here = True
                    break
        status = None
        for term, frm, until in person[2]:
            if frm <= t < until:
                if term:
                    status = True
                    break
                status = False
        failures = (
            (PRACTITIONER_UNREGISTERED, not anywhere),
            (PRACTITIONER_NOT_REGISTERED_HERE, not registered_here),
            (PRACTITIONER_TERMINATED, status is True),
            (PRACTITIONER_SUSPENDED, status is False),
        )
    else:
        failures = ((PRACTITIONER_UNREGISTERED, True), (PRACTITIONER_NOT_REGISTERED_HERE, True))
    for reason, failed in failures:
        if failed:
            if emergency and reason in overridable:
                if overridden is None:
                    overridden = reason
            else:
                return ("reject", reason, None, profile.rules[reason], pv, iv)

    if overridden is None:
        return ("accept", OK, None, profile.rules[OK], pv, iv)
    return ("accept", EMERGENCY_OVERRIDE, overridden, profile.override_rules[overridden], pv, iv)


# ----------------------------------------------------------------------------------------------
# Output records (src/record/decision.rs)

_now_cache = [0, ""]


def now_text() -> str:
    """Now as `yyyy-MM-dd HH:mm:ss.SSS`, Beijing time (UTC+8)."""
    ms = int(time.time() * 1000) + 8 * 3600 * 1000
    sec = ms // 1000
    if sec != _now_cache[0]:
        _now_cache[0] = sec
        _now_cache[1] = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(sec))
    return "%s.%03d" % (_now_cache[1], ms % 1000)


def decision_json(c: Claim, outcome: tuple, profile_name: str, table_epoch: int, decided_at: str) -> bytes:
    """The decision record, fields in records.md's order (as write_decision writes them)."""
    verdict, reason, overridden, rule, pv, iv = outcome
    return orjson.dumps(
        {
            "feedetl_sn": c.feedetl_sn,
            "fixmedins_code": c.fixmedins_code,
            "mdtrt_id": c.mdtrt_id,
            "bilg_dr_codg": c.bilg_dr_codg,
            "fee_ocur_time": c.fee_ocur_time,
            "det_item_fee_sumamt": c.amount,
            "med_type": format_med_type(c.med_type),
            "verdict": verdict,
            "reason": reason,
            "overridden": overridden,
            "rule": rule,
            "profile": profile_name,
            "practitioner_version": pv,
            "institution_version": iv,
            "table_epoch": table_epoch,
            "decided_at": decided_at,
        }
    )


def dead_letter_json(m: Malformed, source: str, raw: bytes, received_at: str) -> bytes:
    try:
        text, b64 = raw.decode("utf-8"), None
    except UnicodeDecodeError:
        text, b64 = None, base64.b64encode(raw).decode("ascii")
    return orjson.dumps(
        {
            "error": m.message,
            "field": m.field,
            "source": source,
            "raw": text,
            "raw_base64": b64,
            "received_at": received_at,
        }
    )


# ----------------------------------------------------------------------------------------------
# File mode: decide a claims file without Kafka.


def _main(argv: list[str]) -> int:
    import argparse

    ap = argparse.ArgumentParser(description="Decide a claims file with the peer's Python rules (no Kafka).")
    ap.add_argument("--claims", required=True)
    ap.add_argument("--practitioners", required=True)
    ap.add_argument("--institutions")
    ap.add_argument("--profile", default="national-2024")
    ap.add_argument("--out", required=True)
    ap.add_argument("--dead-letters", required=True)
    a = ap.parse_args(argv)

    profile = Profile(a.profile)
    tables = Tables()
    with open(a.practitioners, "rb") as f:
        for line in f:
            if line.strip():
                tables.apply_practitioner(None, line)
    if a.institutions:
        with open(a.institutions, "rb") as f:
            for line in f:
                if line.strip():
                    tables.apply_institution(None, line)
    n = dl = 0
    t0 = time.perf_counter()
    with open(a.claims, "rb") as f, open(a.out, "wb") as out, open(a.dead_letters, "wb") as dead:
        for lineno, line in enumerate(f, 1):
            line = line.rstrip(b"\r\n")
            if not line:
                continue
            now = now_text()
            try:
                c = parse_claim(line)
            except Malformed as m:
                dead.write(dead_letter_json(m, f"{a.claims}:{lineno}", line, now) + b"\n")
                dl += 1
                continue
            out.write(decision_json(c, decide(c, tables, profile), profile.name, 0, now) + b"\n")
            n += 1
    dt = time.perf_counter() - t0
    print(
        f"decided {n} lines, {dl} dead letters in {dt:.2f}s ({(n + dl) / dt:,.0f} lines/s); "
        f"{len(tables.practitioners)} practitioners, {len(tables.institutions)} institutions, "
        f"{tables.stale} stale, {tables.invalid} invalid",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))

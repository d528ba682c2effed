"""A FHIR document printed as a Vietnamese A4 PDF, and its PAdES signature made through `Signer`."""

from __future__ import annotations

import asyncio
import io
import unicodedata
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from functools import cache
from html.parser import HTMLParser
from itertools import groupby
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from asn1crypto import algos
from asn1crypto import x509 as asn1_x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.utils import CryptographyDeprecationWarning
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.misc import PdfError as PyHankoPdfError
from reportlab.lib import colors
from reportlab.lib.enums import TA_CENTER, TA_LEFT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import Flowable, KeepTogether, Paragraph, SimpleDocTemplate, Spacer, Table

from benhan.fhir import systems as sy
from benhan.fhir.definitions import Resource
from benhan.fhir.primitives import VIETNAM, now, split_ref
from benhan.signing.signers import Signer

__all__ = ["PdfError", "ProtocolSigner", "register_fonts", "render_pdf", "sign_pdf"]

# pyHanko imports cryptography's DSA key class, which warns on import; the project treats
# warnings as errors in tests, and benhan never signs with DSA.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "DSA is deprecated", CryptographyDeprecationWarning)
    from pyhanko.sign import signers as hanko
    from pyhanko.sign.fields import SigSeedSubFilter, enumerate_sig_fields
    from pyhanko.sign.signers.pdf_signer import PdfSigningSession

# ---------------------------------------------------------------- fonts

FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
FONT = "DejaVuSans"
_FACES = {
    FONT: "DejaVuSans.ttf",
    f"{FONT}-Bold": "DejaVuSans-Bold.ttf",
    f"{FONT}-Oblique": "DejaVuSans-Oblique.ttf",
    f"{FONT}-BoldOblique": "DejaVuSans-BoldOblique.ttf",
}


class PdfError(ValueError):
    """A bundle that cannot be printed, or bytes that cannot be signed as a PDF."""


def register_fonts(directory: Path = FONT_DIR) -> None:
    """DejaVu Sans (it has every Vietnamese letter) as a family, so <b> and <i> work."""
    missing = [name for name in _FACES.values() if not (directory / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"không tìm thấy phông DejaVu Sans ({directory}/{missing[0]}): hãy cài gói "
            f"fonts-dejavu-core / DejaVu Sans font missing: install the Debian package "
            f"fonts-dejavu-core"
        )
    _register(directory)


@cache
def _register(directory: Path) -> None:
    for face, file in _FACES.items():
        pdfmetrics.registerFont(TTFont(face, str(directory / file)))
    pdfmetrics.registerFontFamily(
        FONT,
        normal=FONT,
        bold=f"{FONT}-Bold",
        italic=f"{FONT}-Oblique",
        boldItalic=f"{FONT}-BoldOblique",
    )


# ---------------------------------------------------------------- reading the document


@dataclass(frozen=True)
class Document:
    """A FHIR document Bundle with its references resolved inside it (R4 §3.3.1 and
    http://hl7.org/fhir/R4/bundle.html#references)."""

    bundle: Resource
    composition: Resource
    by_key: dict[str, Resource]

    @classmethod
    def read(cls, bundle: Any) -> Document:
        if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
            raise PdfError("không phải một Bundle FHIR / not a FHIR Bundle")
        if bundle.get("type") != "document":
            raise PdfError("Bundle không phải loại document / Bundle.type must be 'document'")
        entries = [e for e in bundle.get("entry") or [] if isinstance(e, dict)]
        first = entries[0].get("resource") if entries else None
        if not isinstance(first, dict) or first.get("resourceType") != "Composition":
            raise PdfError(
                "mục đầu tiên của tài liệu phải là Composition / "
                "the first entry of a document must be a Composition"
            )
        doc = cls(bundle, first, _index(entries))
        doc.check_references()
        return doc

    def resolve(self, reference: Any) -> Resource | None:
        literal = reference.get("reference") if isinstance(reference, dict) else None
        if not isinstance(literal, str):
            return None
        found = self.by_key.get(literal)
        parts = split_ref(literal)
        if found is None and parts:
            found = self.by_key.get("/".join(parts))
        return found

    def check_references(self) -> None:
        """Every literal reference the print needs must be inside the Bundle: a document is
        read offline, years later, by someone with nothing else."""
        c = self.composition
        refs = [c.get("subject"), c.get("custodian"), *(c.get("author") or [])]
        refs += [a.get("party") for a in c.get("attester") or [] if isinstance(a, dict)]
        refs += [e for s in _sections(c.get("section")) for e in s.get("entry") or []]
        missing = [
            str(r["reference"])
            for r in refs
            if isinstance(r, dict) and r.get("reference") and self.resolve(r) is None
        ]
        if missing:
            raise PdfError(
                f"tài liệu thiếu tài nguyên được tham chiếu: {', '.join(missing)} / "
                "referenced resources are missing from the Bundle"
            )


def _index(entries: list[dict[str, Any]]) -> dict[str, Resource]:
    """Each resource under its fullUrl and under "Type/id"."""
    index: dict[str, Resource] = {}
    for entry in entries:
        res = entry.get("resource")
        if not isinstance(res, dict):
            continue
        if isinstance(entry.get("fullUrl"), str):
            index[entry["fullUrl"]] = res
        if res.get("id"):
            index.setdefault(f"{res.get('resourceType')}/{res['id']}", res)
    return index


def _sections(sections: Any) -> Iterator[dict[str, Any]]:
    """Every section, nested ones too, in reading order."""
    for s in sections or []:
        if isinstance(s, dict):
            yield s
            yield from _sections(s.get("section"))


# ---------------------------------------------------------------- FHIR values as text


def _clean(text: Any) -> str:
    """NFC, so that letters such as "ễ" use DejaVu's precomposed glyphs (reportlab does no
    mark positioning)."""
    return unicodedata.normalize("NFC", str(text)) if text is not None else ""


def concept_text(concept: Any) -> str:
    if not isinstance(concept, dict):
        return ""
    if concept.get("text"):
        return _clean(concept["text"])
    codings = concept.get("coding") or []
    return next((_clean(c["display"]) for c in codings if c.get("display")), "")


def _coding(concept: Any, *systems: str) -> dict[str, Any]:
    codings = (concept.get("coding") or []) if isinstance(concept, dict) else []
    return next((c for c in codings if c.get("system") in systems), {})


def _number(value: Any) -> str:
    """A measured value as people write it: no trailing zeros, no exponent."""
    try:
        return format(Decimal(str(value)).normalize(), "f")
    except InvalidOperation:
        return _clean(value)


def _quantity(q: Any) -> str:
    if not isinstance(q, dict) or q.get("value") is None:
        return ""
    return f"{_number(q['value'])} {_clean(q.get('unit') or q.get('code') or '')}".strip()


def day_text(value: Any) -> str:
    """A FHIR date or dateTime as Vietnamese forms write a day: 05/03/1980, 03/1980, 1980."""
    text = str(value or "")
    if "T" in text:
        return _moment(text).strftime("%d/%m/%Y")
    return "/".join(reversed(text.split("-"))) if text else ""


def moment_text(value: Any) -> str:
    """A dateTime as "08:30 ngày 12/11/2026" in Vietnam time; a bare date as its day."""
    text = str(value or "")
    if "T" not in text:
        return day_text(text)
    return _moment(text).strftime("%H:%M ngày %d/%m/%Y")


def _moment(text: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as e:
        raise PdfError(f"thời điểm không hợp lệ: {text} / invalid dateTime") from e
    return parsed.astimezone(VIETNAM) if parsed.tzinfo else parsed.replace(tzinfo=VIETNAM)


def person_name(resource: Resource | None, fallback: Any = None) -> str:
    """Vietnamese order: family, middle, given (FHIR keeps "Văn An" in `given`)."""
    names = (resource or {}).get("name") or []
    if names and isinstance(names[0], dict):
        n = names[0]
        if isinstance(n.get("text"), str) and n["text"]:
            return _clean(n["text"])
        return _clean(" ".join([n.get("family", ""), *n.get("given", [])]).strip())
    if resource and isinstance(resource.get("name"), str):  # Organization, Location
        return _clean(resource["name"])
    return _clean(fallback.get("display", "")) if isinstance(fallback, dict) else ""


def address_text(resource: Resource) -> str:
    addresses = resource.get("address") or []
    a = addresses[0] if addresses and isinstance(addresses[0], dict) else {}
    if a.get("text"):
        return _clean(a["text"])
    parts = [*a.get("line", []), a.get("district"), a.get("city"), a.get("state")]
    return _clean(", ".join(p for p in parts if p))


def narrative(div: Any) -> list[str]:
    """The lines of an XHTML narrative, as plain text: it is printed, never interpreted."""
    parser = _TextOnly()
    parser.feed(str(div or ""))
    parser.close()
    lines = ("".join(parser.parts)).splitlines()
    cells = ([" ".join(cell.split()) for cell in line.split("\t")] for line in lines)
    joined = (" | ".join(c for c in row if c) for row in cells)  # a table row on one line
    return [_clean(line) for line in joined if line]


class _TextOnly(HTMLParser):
    _BLOCKS = frozenset({"br", "p", "div", "li", "tr", "h1", "h2", "h3", "h4", "table", "ul"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._BLOCKS:
            self.parts.append("\n")
        elif tag in ("td", "th"):
            self.parts.append("\t")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


# ---------------------------------------------------------------- layout

LEFT, RIGHT, TOP, BOTTOM = 25 * mm, 15 * mm, 15 * mm, 15 * mm  # wide left margin for binding
WIDTH = A4[0] - LEFT - RIGHT
DEPARTMENT = "SỞ Y TẾ BẮC NINH"
PLACE = "Bắc Ninh"
SEXES = {"male": "Nam", "female": "Nữ", "other": "Khác", "unknown": "Không rõ"}
FLAGS = {
    "H": "Cao",
    "HH": "Rất cao",
    "HU": "Rất cao",
    "L": "Thấp",
    "LL": "Rất thấp",
    "LU": "Rất thấp",
    "A": "Bất thường",
    "AA": "Rất bất thường",
    "N": "",
    "POS": "Dương tính",
    "NEG": "Âm tính",
}


@cache
def _styles() -> dict[str, ParagraphStyle]:
    body = ParagraphStyle("body", fontName=FONT, fontSize=10.5, leading=14, alignment=TA_LEFT)
    return {
        "body": body,
        "center": ParagraphStyle("center", body, alignment=TA_CENTER),
        "title": ParagraphStyle(
            "title",
            body,
            fontName=f"{FONT}-Bold",
            fontSize=15,
            leading=20,
            alignment=TA_CENTER,
            spaceBefore=12,
            spaceAfter=10,
        ),
        "heading": ParagraphStyle(
            "heading", body, fontName=f"{FONT}-Bold", spaceBefore=8, spaceAfter=3
        ),
        "cell": ParagraphStyle("cell", body, fontSize=9.5, leading=12),
        "item": ParagraphStyle("item", body, leftIndent=12),
        "detail": ParagraphStyle("detail", body, leftIndent=24),
    }


def _p(markup: str, style: str = "body") -> Paragraph:
    return Paragraph(markup, _styles()[style])


def _text(text: str) -> str:
    """Plain text made safe for reportlab's paragraph markup."""
    return escape(_clean(text))


def _header(doc: Document) -> Flowable:
    facility = doc.resolve(doc.composition.get("custodian")) or {}
    parent = doc.resolve(facility.get("partOf")) or {}
    department = person_name(parent).upper() or DEPARTMENT
    name = person_name(facility, doc.composition.get("custodian")).upper()
    left = [_p(_text(department), "center"), _p(f"<b>{_text(name)}</b>", "center")]
    code = _identifier(facility, sy.MA_CSKCB)
    if code:
        left.append(_p(f"Mã cơ sở: {_text(code)}", "center"))
    right = [
        _p("<b>CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM</b>", "center"),
        _p("<b><u>Độc lập - Tự do - Hạnh phúc</u></b>", "center"),
    ]
    return _table([[left, right]], [0.42, 0.58], ("LEFTPADDING", (0, 0), (-1, -1), 0))


def _table(rows: list[list[Any]], widths: list[float], *style: tuple[Any, ...]) -> Table:
    """A table whose columns share the page width by `widths`; its own font is DejaVu too,
    or reportlab names Helvetica (no Vietnamese) on every page that has a table."""
    table = Table(rows, colWidths=[w * WIDTH for w in widths], repeatRows=1 if len(rows) > 1 else 0)
    base = [("FONTNAME", (0, 0), (-1, -1), FONT), ("VALIGN", (0, 0), (-1, -1), "TOP")]
    table.setStyle([*base, *style])
    return table


def _identifier(resource: Resource, system: str) -> str:
    found = (i for i in resource.get("identifier") or [] if i.get("system") == system)
    return _clean(next((i.get("value") for i in found), ""))


def _title(doc: Document, title_vi: str | None) -> Paragraph:
    c = doc.composition
    title = title_vi or c.get("title") or concept_text(c.get("type")) or "TÀI LIỆU Y TẾ"
    return _p(_text(_clean(title).upper()), "title")


def _patient(doc: Document) -> list[Flowable]:
    patient = doc.resolve(doc.composition.get("subject"))
    if patient is None:
        shown = person_name(None, doc.composition.get("subject"))
        return [_p(f"Họ và tên: <b>{_text(shown.upper())}</b>")] if shown else []
    sex = SEXES.get(str(patient.get("gender")), "–")
    rows = [
        f"Họ và tên: <b>{_text(person_name(patient).upper())}</b>",
        f"Ngày sinh: {_text(day_text(patient.get('birthDate')) or '–')}"
        f"&nbsp;&nbsp;&nbsp;&nbsp;Giới tính: {sex}",
        f"Địa chỉ: {_text(address_text(patient) or '–')}",
        f"Số thẻ BHYT: {_text(_insurance_card(doc, patient) or '–')}",
    ]
    return [_p(row) for row in rows]


def _insurance_card(doc: Document, patient: Resource) -> str:
    card = _identifier(patient, sy.BHYT)
    coverages = (r for r in doc.by_key.values() if r.get("resourceType") == "Coverage")
    numbers = (_identifier(c, sy.BHYT) or _clean(c.get("subscriberId")) for c in coverages)
    return card or next((n for n in numbers if n), "")


# ---------------------------------------------------------------- sections and entries


def _section(doc: Document, section: dict[str, Any], number: str) -> list[Flowable]:
    heading = _clean(section.get("title") or concept_text(section.get("code")))
    out: list[Flowable] = [_p(f"{number}. {_text(heading)}", "heading")]
    entries = [r for r in map(doc.resolve, section.get("entry") or []) if r is not None]
    for rtype, group in groupby(entries, key=lambda r: str(r.get("resourceType"))):
        out += RENDERERS.get(rtype, _others)(doc, list(group))
    subsections = [s for s in section.get("section") or [] if isinstance(s, dict)]
    if not entries:
        lines = narrative((section.get("text") or {}).get("div"))
        out += [_p(_text(line)) for line in lines] or ([] if subsections else [_p("Không có.")])
    for i, sub in enumerate(subsections):
        out += _section(doc, sub, f"{number}.{i + 1}")
    return out


def _conditions(doc: Document, found: list[Resource]) -> list[Flowable]:
    """Diagnoses as "(J18.9) Viêm phổi", as the printed visit record writes a diagnosis."""
    out: list[Flowable] = []
    for c in found:
        coding = _coding(c.get("code"), sy.ICD10_VN, sy.ICD10_WHO)
        name = concept_text(c.get("code")) or _clean(coding.get("display"))
        code = f"({_clean(coding['code'])}) " if coding.get("code") else ""
        out.append(_p(_text(f"{code}{name}"), "item"))
    return out


def _observations(doc: Document, found: list[Resource]) -> list[Flowable]:
    head = ["Chỉ số", "Kết quả", "Đơn vị", "Khoảng tham chiếu", "Đánh giá"]
    rows = [[_p(f"<b>{h}</b>", "cell") for h in head]]
    rows += [[_p(_text(v), "cell") for v in _observation_row(o)] for o in found]
    table = _table(
        rows,
        [0.34, 0.2, 0.12, 0.2, 0.14],
        ("GRID", (0, 0), (-1, -1), 0.4, colors.grey),
        ("BACKGROUND", (0, 0), (-1, 0), colors.whitesmoke),
    )
    return [table, Spacer(1, 4)]


def _observation_row(o: Resource) -> tuple[str, str, str, str, str]:
    q = o.get("valueQuantity")
    if isinstance(q, dict) and q.get("value") is not None:
        value, unit = _number(q["value"]), _clean(q.get("unit") or q.get("code") or "")
    else:
        value, unit = _value(o), ""
    if not value and o.get("component"):
        value = "; ".join(f"{concept_text(c.get('code'))}: {_value(c)}" for c in o["component"])
    return concept_text(o.get("code")), value, unit, _range(o), _flag(o)


def _value(element: dict[str, Any]) -> str:
    """The value[x] of an Observation or of one of its components."""
    if "valueQuantity" in element:
        return _quantity(element["valueQuantity"])
    if "valueCodeableConcept" in element:
        return concept_text(element["valueCodeableConcept"])
    if "valueBoolean" in element:
        return "Có" if element["valueBoolean"] else "Không"
    if "valueRange" in element:
        low, high = element["valueRange"].get("low"), element["valueRange"].get("high")
        return f"{_quantity(low)} – {_quantity(high)}"
    for key in ("valueString", "valueInteger", "valueDateTime", "valueTime"):
        if key in element:
            return _clean(element[key])
    return ""


def _range(o: Resource) -> str:
    ranges = o.get("referenceRange") or [{}]
    r = ranges[0]
    if r.get("text"):
        return _clean(r["text"])
    low, high = (r.get("low") or {}).get("value"), (r.get("high") or {}).get("value")
    if low is not None and high is not None:
        return f"{_number(low)} – {_number(high)}"
    if high is not None:
        return f"≤ {_number(high)}"
    return f"≥ {_number(low)}" if low is not None else ""


def _flag(o: Resource) -> str:
    """The interpretation the result carries, else what its reference range says."""
    for concept in o.get("interpretation") or []:
        code = str(_coding(concept, *_INTERPRETATION).get("code") or "")
        if code:
            return FLAGS.get(code, code)
    value = (o.get("valueQuantity") or {}).get("value")
    r = (o.get("referenceRange") or [{}])[0]
    low, high = (r.get("low") or {}).get("value"), (r.get("high") or {}).get("value")
    if not isinstance(value, int | float):
        return ""
    if isinstance(high, int | float) and value > high:
        return FLAGS["H"]
    return FLAGS["L"] if isinstance(low, int | float) and value < low else ""


_INTERPRETATION = ("http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation",)


def _medications(doc: Document, found: list[Resource]) -> list[Flowable]:
    """Numbered like a Vietnamese prescription: drug and quantity, then how to take it."""
    out: list[Flowable] = []
    for i, m in enumerate(found, start=1):
        drug = concept_text(m.get("medicationCodeableConcept"))
        drug = drug or person_name(doc.resolve(m.get("medicationReference")))
        drug = drug or _clean((m.get("medicationReference") or {}).get("display"))
        quantity = _quantity((m.get("dispenseRequest") or {}).get("quantity")) or "–"
        out.append(_p(f"{i}. <b>{_text(drug)}</b> — SL: {_text(quantity)}", "item"))
        for dosage in m.get("dosageInstruction") or []:
            out.append(_p(_text(_dosage_text(dosage)), "detail"))
    return out


def _dosage_text(d: dict[str, Any]) -> str:
    """The dosage as the printed prescription says it: "Ngày 3 lần, mỗi lần 1 Viên"."""
    repeat = (d.get("timing") or {}).get("repeat") or {}
    dose = next((_quantity(r.get("doseQuantity")) for r in d.get("doseAndRate") or []), "")
    parts = []
    if repeat.get("frequency") and repeat.get("periodUnit") == "d" and dose:
        per_day = int(repeat["frequency"]) // max(int(repeat.get("period") or 1), 1)
        parts.append(f"Ngày {per_day} lần, mỗi lần {dose}")
        days = (repeat.get("boundsDuration") or {}).get("value")
        if days:
            parts.append(f"dùng {_number(days)} ngày")
    notes = [concept_text(d.get("route")), _clean(d.get("patientInstruction"))]
    notes = [n for n in notes if n]
    if not parts:
        parts.append(_clean(d.get("text")))
    return ", ".join(parts) + (f" ({'; '.join(notes)})" if notes else "")


def _reports(doc: Document, found: list[Resource]) -> list[Flowable]:
    out: list[Flowable] = []
    for report in found:
        name = concept_text(report.get("code"))
        when = moment_text(report.get("effectiveDateTime") or report.get("issued"))
        out.append(_p(f"<b>{_text(name)}</b>" + (f" ({_text(when)})" if when else "")))
        results = [r for r in map(doc.resolve, report.get("result") or []) if r is not None]
        if results:
            out += _observations(doc, results)
        conclusion = _clean(report.get("conclusion")) or "; ".join(
            concept_text(c) for c in report.get("conclusionCode") or []
        )
        out.append(_p(f"Kết luận: {_text(conclusion or '–')}", "detail"))
    return out


def _encounters(doc: Document, found: list[Resource]) -> list[Flowable]:
    out: list[Flowable] = []
    for e in found:
        period = e.get("period") or {}
        start, end = moment_text(period.get("start")), moment_text(period.get("end"))
        until = f" đến {_text(end)}" if end else ""
        out.append(_p(f"Thời gian: từ {_text(start or '–')}{until}"))
        places = [_department(doc, loc) for loc in e.get("location") or []]
        places = [p for p in [*places, concept_text(e.get("serviceType"))] if p]
        if places:
            out.append(_p(f"Khoa/phòng: {_text(', '.join(places))}"))
        kind = _clean((e.get("class") or {}).get("display")) or concept_text(
            next(iter(e.get("type") or []), None)
        )
        if kind:
            out.append(_p(f"Hình thức: {_text(kind)}"))
    return out


def _department(doc: Document, location: dict[str, Any]) -> str:
    ref = location.get("location")
    return person_name(doc.resolve(ref), ref)


def _others(doc: Document, found: list[Resource]) -> list[Flowable]:
    """Any other resource: its own narrative, else what it is about."""
    out: list[Flowable] = []
    for r in found:
        lines = narrative((r.get("text") or {}).get("div"))
        lines = lines or [concept_text(r.get("code")) or f"{r.get('resourceType')}/{r.get('id')}"]
        out += [_p(_text(line), "item") for line in lines]
    return out


Renderer = Callable[[Document, list[Resource]], list[Flowable]]
RENDERERS: dict[str, Renderer] = {
    "Condition": _conditions,
    "Observation": _observations,
    "MedicationRequest": _medications,
    "DiagnosticReport": _reports,
    "Encounter": _encounters,
}

# ---------------------------------------------------------------- signature block


def _signature_block(doc: Document) -> Flowable:
    c = doc.composition
    signed = (doc.bundle.get("signature") or {}).get("when")
    attesters = [a for a in c.get("attester") or [] if isinstance(a, dict)]
    legal = next((a for a in attesters if a.get("mode") == "legal"), None)
    attester = legal or next(iter(attesters), None)
    when = signed or (attester or {}).get("time") or c.get("date") or now().isoformat()
    party = (attester or {}).get("party") or next(iter(c.get("author") or []), None)
    role, name = _signer(doc, party)
    lines = [
        _p(f"<i>{_text(_place_and_date(str(when)))}</i>", "center"),
        _p(f"<b>{_text(role.upper())}</b>", "center"),
        _p("<i>(Đã ký số)</i>" if signed else "<i>(Ký, ghi rõ họ tên)</i>", "center"),
        Spacer(1, 16 * mm),
        _p(f"<b>{_text(name)}</b>", "center"),
    ]
    return KeepTogether([Spacer(1, 6 * mm), _table([[Spacer(1, 1), lines]], [0.45, 0.55])])


def _place_and_date(value: str) -> str:
    """The line above the signature, "Bắc Ninh, ngày 20 tháng 11 năm 2026"; a partial date
    leaves its unknown parts as "…"."""
    if "T" in value:
        value = _moment(value).date().isoformat()
    parts = value.split("-")
    if not 1 <= len(parts) <= 3 or not all(p.isdigit() for p in parts):
        raise PdfError(f"ngày ký không hợp lệ: {value} / invalid signing date")
    year, month, day = [*parts, "…", "…"][:3]
    return f"{PLACE}, ngày {day} tháng {month} năm {year}"


def _signer(doc: Document, party: Any) -> tuple[str, str]:
    """The signer's role and name: a PractitionerRole names both (its code, its
    practitioner); a Practitioner gives a name and, at best, a qualification."""
    who = doc.resolve(party)
    role = ""
    if who is not None and who.get("resourceType") == "PractitionerRole":
        role = concept_text(next(iter(who.get("code") or []), None))
        who = doc.resolve(who.get("practitioner")) or who
    if who is not None and not role:
        qualification: dict[str, Any] = next(iter(who.get("qualification") or []), {})
        role = concept_text(qualification.get("code"))
    return role or "Người ký", person_name(who, party)


# ---------------------------------------------------------------- render


def render_pdf(bundle: dict[str, Any], *, title_vi: str | None = None) -> bytes:
    """The document as an A4 PDF in Vietnamese, laid out as a hospital prints it."""
    register_fonts()
    doc = Document.read(bundle)
    story: list[Flowable] = [_header(doc), _title(doc, title_vi), *_patient(doc)]
    for i, section in enumerate(s for s in doc.composition.get("section") or [] if s):
        story += _section(doc, section, _roman(i + 1))
    story.append(_signature_block(doc))
    out = io.BytesIO()
    template = SimpleDocTemplate(
        out,
        pagesize=A4,
        title=_clean(title_vi or doc.composition.get("title") or ""),
        author=_signer(doc, next(iter(doc.composition.get("author") or []), None))[1],
        creator="benhan",
        initialFontName=FONT,
        lang="vi-VN",
        invariant=True,
        leftMargin=LEFT,
        rightMargin=RIGHT,
        topMargin=TOP,
        bottomMargin=BOTTOM,
    )
    template.build(story, onFirstPage=_page_number, onLaterPages=_page_number)
    return out.getvalue()


def _page_number(canvas: Canvas, template: Any) -> None:
    canvas.saveState()
    canvas.setFont(FONT, 8)
    canvas.drawRightString(A4[0] - RIGHT, 8 * mm, f"Trang {canvas.getPageNumber()}")
    canvas.restoreState()


def _roman(n: int) -> str:
    numerals = [(10, "X"), (9, "IX"), (5, "V"), (4, "IV"), (1, "I")]
    out = ""
    for value, letters in numerals:
        while n >= value:
            out, n = out + letters, n - value
    return out


# ---------------------------------------------------------------- PAdES signature


class ProtocolSigner(hanko.Signer):
    """pyHanko's CMS signer whose one private-key operation goes through our `Signer`, so a
    PKCS#11 token or a remote-signing service signs PDFs the same way as a key in memory."""

    def __init__(self, signer: Signer) -> None:
        chain = _asn1_chain(signer)
        mechanism = "sha256_ecdsa" if signer.algorithm == "ES256" else "sha256_rsa"
        super().__init__(
            signing_cert=chain[0],
            signature_mechanism=algos.SignedDigestAlgorithm({"algorithm": mechanism}),
            embed_roots=True,  # the whole chain travels with the PDF, as in Bundle.signature
        )
        self.cert_registry.register_multiple(chain[1:])  # the signing certificate goes in anyway
        self.ours = signer

    async def async_sign_raw(
        self, data: bytes, digest_algorithm: str, dry_run: bool = False
    ) -> bytes:
        if digest_algorithm != "sha256":
            raise PdfError(f"chỉ ký với SHA-256, không phải {digest_algorithm} / SHA-256 only")
        if dry_run:  # pyHanko sizes the CMS first: do not spend a token operation on that
            return bytes(_max_signature_size(self.ours))
        raw = self.ours.sign(data)
        signature = _der_ecdsa(raw) if self.ours.algorithm == "ES256" else raw
        _check_against_certificate(self.ours, data, signature)
        return signature


def _asn1_chain(signer: Signer) -> list[asn1_x509.Certificate]:
    chain = signer.chain
    if not chain:
        raise PdfError("người ký không có chứng thư / the signer has no certificate chain")
    key = chain[0].public_key()
    expected = ec.EllipticCurvePublicKey if signer.algorithm == "ES256" else rsa.RSAPublicKey
    if not isinstance(key, expected):
        raise PdfError(
            f"khóa trong chứng thư không dùng được với {signer.algorithm} / the certificate's "
            f"key does not match the signer's algorithm {signer.algorithm}"
        )
    return [asn1_x509.Certificate.load(c.public_bytes(serialization.Encoding.DER)) for c in chain]


def _max_signature_size(signer: Signer) -> int:
    if signer.algorithm == "ES256":
        return 72  # DER SEQUENCE of two INTEGERs of at most 33 bytes each
    key = signer.chain[0].public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    return (key.key_size + 7) // 8


def _der_ecdsa(raw: bytes) -> bytes:
    """JOSE gives ES256 as r‖s (RFC 7518 §3.4); CMS wants the DER Ecdsa-Sig-Value (RFC 5753)."""
    if len(raw) != 64:
        raise PdfError(
            f"chữ ký ES256 phải dài 64 byte, nhận {len(raw)} / an ES256 signature is 64 bytes"
        )
    return encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))


def _check_against_certificate(signer: Signer, data: bytes, signature: bytes) -> None:
    """A token or remote signer holding another key than its certificate's would produce a PDF
    that every reader rejects: catch it here, with a message that says why."""
    key = signer.chain[0].public_key()
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature as e:
        raise PdfError(
            "chữ ký không khớp với chứng thư của người ký / "
            "the signature does not match the signer's certificate"
        ) from e


class _SignerAt(hanko.PdfSigner):
    """pyHanko's PdfSigner with the signing time chosen by the caller. PAdES baseline (ETSI EN
    319 142-1) puts it in the signature dictionary's /M, never in a CMS signing-time
    attribute; pyHanko (0.38) takes /M from the session's system_time."""

    def __init__(self, meta: hanko.PdfSignatureMetadata, signer: hanko.Signer, when: datetime):
        super().__init__(meta, signer)
        self.when = when

    def init_signing_session(
        self, pdf_out: Any, existing_fields_only: bool = False
    ) -> PdfSigningSession:
        session = super().init_signing_session(pdf_out, existing_fields_only)
        session.system_time = self.when
        return session


def sign_pdf(
    pdf: bytes,
    signer: Signer,
    *,
    reason: str,
    location: str,
    name: str,
    when: datetime | None = None,
) -> bytes:
    """The PDF with a PAdES B-B signature by `signer` added as an incremental update.

    B-T would add an RFC 3161 timestamp from a time-stamping authority, and B-LT/LTA the CRLs
    and archive timestamps; benhan has no TSA (it runs offline), so the signing time in /M is
    only the signer's claim, and a validator judges the certificates at the time it validates.
    pyHanko runs its own event loop: async code calls this from a worker thread."""
    if when is not None and when.tzinfo is None:
        raise PdfError("thời điểm ký phải có múi giờ / `when` must be timezone-aware")
    writer = _writer(pdf)
    meta = hanko.PdfSignatureMetadata(
        field_name=_new_field_name(writer),
        md_algorithm="sha256",
        subfilter=SigSeedSubFilter.PADES,
        reason=reason,
        location=location,
        name=name,
    )
    pdf_signer = _SignerAt(meta, ProtocolSigner(signer), (when or now()).astimezone(VIETNAM))
    out = io.BytesIO()
    asyncio.run(pdf_signer.async_sign_pdf(writer, output=out))
    return out.getvalue()


def _writer(pdf: bytes) -> IncrementalPdfFileWriter:
    if not pdf.startswith(b"%PDF-"):
        raise PdfError("tệp không phải PDF / not a PDF file")
    try:
        return IncrementalPdfFileWriter(io.BytesIO(pdf))
    except (PyHankoPdfError, ValueError, KeyError) as e:
        raise PdfError(f"không đọc được tệp PDF ({e}) / unreadable PDF") from e


def _new_field_name(writer: IncrementalPdfFileWriter) -> str:
    """A signature field name not yet taken: a countersignature adds a field, never reuses one."""
    taken = {name for name, *_ in _fields(writer)}
    return next(f"ChuKy{i}" for i in range(1, len(taken) + 2) if f"ChuKy{i}" not in taken)


def _fields(writer: IncrementalPdfFileWriter) -> Iterable[tuple[str, Any, Any]]:
    fields: Iterable[tuple[str, Any, Any]] = enumerate_sig_fields(writer.prev, filled_status=None)
    return fields

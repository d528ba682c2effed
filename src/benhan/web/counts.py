"""The home page's view of the repository: current resources by type, and a bar chart of them."""

from __future__ import annotations

from dataclasses import dataclass

from benhan.web.i18n import N_

CHART_TOP = 10
# SVG user units; the chart scales to its box through viewBox, so these are proportions.
CHART_WIDTH = 520
LABEL_WIDTH = 150  # fits "AllergyIntolerance" at the stylesheet's 13px
BAR_MAX = 290  # leaves room for "123.456.789" after the longest bar
ROW_HEIGHT = 30
BAR_HEIGHT = 20

# What each resource type holds, in the words of a Vietnamese clinic (DESIGN.md's list).
LABELS: dict[str, str] = {
    "Patient": N_("Người bệnh"),
    "Encounter": N_("Lượt khám, điều trị"),
    "Condition": N_("Chẩn đoán, bệnh"),
    "Observation": N_("Kết quả xét nghiệm, dấu hiệu sinh tồn"),
    "DiagnosticReport": N_("Phiếu kết quả cận lâm sàng"),
    "ServiceRequest": N_("Chỉ định dịch vụ"),
    "MedicationRequest": N_("Đơn thuốc"),
    "Procedure": N_("Thủ thuật, phẫu thuật"),
    "AllergyIntolerance": N_("Dị ứng"),
    "Immunization": N_("Tiêm chủng"),
    "Composition": N_("Văn bản bệnh án"),
    "DocumentReference": N_("Tài liệu đính kèm"),
    "Provenance": N_("Nguồn gốc dữ liệu"),
    "AuditEvent": N_("Nhật ký truy cập"),
    "Organization": N_("Cơ sở y tế"),
    "Location": N_("Địa điểm"),
    "Practitioner": N_("Nhân viên y tế"),
    "PractitionerRole": N_("Vai trò nhân viên y tế"),
    "Coverage": N_("Thẻ bảo hiểm y tế"),
    "Claim": N_("Hồ sơ đề nghị thanh toán BHYT"),
}


@dataclass(frozen=True, slots=True)
class TypeCount:
    rtype: str
    count: int
    label: str | None  # a Vietnamese msgid, translated by the template


@dataclass(frozen=True, slots=True)
class Bar:
    rtype: str
    count: int
    y: int  # top of the row
    width: int  # at least 1, so that a type with few resources still shows

    @property
    def middle(self) -> int:
        return self.y + ROW_HEIGHT // 2

    @property
    def value_x(self) -> int:
        return LABEL_WIDTH + self.width + 6


@dataclass(frozen=True, slots=True)
class Summary:
    total: int
    rows: list[TypeCount]  # most resources first
    bars: list[Bar]  # the first CHART_TOP rows
    chart_height: int
    chart_width: int = CHART_WIDTH
    label_x: int = LABEL_WIDTH - 10
    bar_x: int = LABEL_WIDTH
    bar_height: int = BAR_HEIGHT
    bar_offset: int = (ROW_HEIGHT - BAR_HEIGHT) // 2


def summarize(counts: dict[str, int]) -> Summary:
    rows = [TypeCount(t, n, LABELS.get(t)) for t, n in counts.items() if n > 0]
    rows.sort(key=lambda r: (-r.count, r.rtype))
    top = rows[:CHART_TOP]
    most = top[0].count if top else 1
    bars = [
        Bar(r.rtype, r.count, i * ROW_HEIGHT, max(1, round(BAR_MAX * r.count / most)))
        for i, r in enumerate(top)
    ]
    return Summary(sum(r.count for r in rows), rows, bars, len(bars) * ROW_HEIGHT)

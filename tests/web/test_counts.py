"""The home page's summary: order, totals and the bar chart's geometry."""

from __future__ import annotations

from benhan.web.counts import BAR_MAX, CHART_TOP, LABELS, ROW_HEIGHT, summarize


def test_most_resources_first_then_by_name() -> None:
    s = summarize({"Observation": 5, "Encounter": 7, "Condition": 5, "Patient": 2})
    assert [(r.rtype, r.count) for r in s.rows] == [
        ("Encounter", 7),
        ("Condition", 5),
        ("Observation", 5),
        ("Patient", 2),
    ]
    assert s.total == 19


def test_labels_are_attached_where_known() -> None:
    s = summarize({"Patient": 1, "Basic": 1})
    assert {r.rtype: r.label for r in s.rows} == {"Basic": None, "Patient": LABELS["Patient"]}


def test_chart_shows_the_top_types_only() -> None:
    counts = {f"Type{i:02}": 100 - i for i in range(15)}
    s = summarize(counts)
    assert len(s.rows) == 15
    assert [b.rtype for b in s.bars] == [f"Type{i:02}" for i in range(CHART_TOP)]
    assert s.chart_height == CHART_TOP * ROW_HEIGHT
    assert [b.y for b in s.bars] == [i * ROW_HEIGHT for i in range(CHART_TOP)]


def test_bars_are_proportional_and_never_vanish() -> None:
    s = summarize({"Observation": 100_000, "Patient": 50_000, "Organization": 1})
    widths = {b.rtype: b.width for b in s.bars}
    assert widths == {"Observation": BAR_MAX, "Patient": BAR_MAX // 2, "Organization": 1}


def test_empty_and_zero_counts() -> None:
    s = summarize({"Patient": 0})
    assert (s.total, s.rows, s.bars, s.chart_height) == (0, [], [], 0)

"""Seat numbers, labels and prices of a layout, and where the worker's seat map places a
group: pure logic, no services."""

from __future__ import annotations

import pytest

from consumer.seat_map import SeatMap
from shared.seating import FREE, SOLD, Layout, SectionSpec, runs


def stadium() -> Layout:
    return Layout.from_specs(
        [
            SectionSpec("FLOOR", rows=2, seats_per_row=10, price_cents=20_000),
            SectionSpec("B", rows=3, seats_per_row=6, price_cents=5_000),
        ]
    )


def test_labels_and_seat_numbers_agree_both_ways() -> None:
    layout = stadium()
    assert layout.capacity == 38
    labels = [label for _, label in layout.labelled()]
    assert labels[:2] == ["FLOOR-1-1", "FLOOR-1-2"] and labels[20] == "B-1-1"
    assert labels[-1] == "B-3-6"
    for seat_no, label in layout.labelled():
        assert layout.label(seat_no) == label
        assert layout.seat_no(label) == seat_no


@pytest.mark.parametrize(
    "label", ["B-4-1", "B-1-7", "C-1-1", "FLOOR-0-1", "B-1-01", "b-1-1", "R1-1", "", "B--1-1"]
)
def test_a_label_the_event_does_not_have_is_no_seat(label: str) -> None:
    assert stadium().seat_no(label) is None


def test_general_admission_keeps_its_short_last_row() -> None:
    layout = Layout.general_admission(30)
    assert (layout.general, layout.label(1), layout.label(26), layout.label(30)) == (
        True,
        "R1-1",
        "R2-1",
        "R2-5",
    )
    assert layout.seat_no("R2-5") == 30 and layout.seat_no("R2-6") is None
    assert layout.price_of([1, 2]) is None  # general admission has no price


def test_a_price_is_the_sum_of_the_seats_sections() -> None:
    layout = stadium()
    assert layout.price_of(layout.seat_nos(["FLOOR-1-1", "B-2-2", "B-2-3"])) == 30_000


def test_runs_are_sorted_consecutive_stretches() -> None:
    assert runs([5, 1, 2, 3, 9, 8, 2]) == [(1, 3), (5, 5), (8, 9)]
    assert runs([]) == []


def map_with(layout: Layout, taken: list[str]) -> SeatMap:
    seat_map = SeatMap(1, layout, version=0)
    seat_map.mark(layout.seat_nos(taken), SOLD)
    return seat_map


def test_together_prefers_a_place_that_strands_no_single_seat() -> None:
    layout = stadium()
    section = layout.by_name["FLOOR"]
    seat_map = map_with(layout, ["FLOOR-1-6"])  # row 1: free runs of 5 and 4
    assert layout.labels(seat_map.together(section, 4) or []) == [
        f"FLOOR-1-{n}" for n in (7, 8, 9, 10)
    ]
    seat_map.mark(seat_map.together(section, 4) or [], SOLD)
    # Row 1's run of 5 would strand a seat: row 2 is further back but leaves none.
    assert layout.labels(seat_map.together(section, 4) or []) == [
        f"FLOOR-2-{n}" for n in (1, 2, 3, 4)
    ]
    seat_map.mark(layout.seat_nos([f"FLOOR-2-{n}" for n in range(1, 11)]), SOLD)
    # Nothing else left: stranding one seat is better than refusing the group.
    assert layout.labels(seat_map.together(section, 4) or []) == [
        f"FLOOR-1-{n}" for n in (1, 2, 3, 4)
    ]


def test_together_stays_in_its_section_and_says_when_nothing_fits() -> None:
    layout = stadium()
    seat_map = map_with(layout, [f"FLOOR-{r}-5" for r in (1, 2)])
    assert seat_map.together(layout.by_name["FLOOR"], 6) is None  # runs of 4 and 5 only
    assert layout.labels(seat_map.together(layout.by_name["B"], 6) or []) == [
        f"B-1-{n}" for n in range(1, 7)
    ]


def test_a_seat_given_back_is_found_again_by_together() -> None:
    layout = stadium()
    section = layout.by_name["B"]
    seat_map = map_with(layout, [f"B-{r}-{n}" for r in (1, 2, 3) for n in range(1, 7)])
    assert seat_map.together(section, 2) is None  # and remembers that no row fits
    seat_map.mark(layout.seat_nos(["B-1-3", "B-1-4"]), FREE)
    assert layout.labels(seat_map.together(section, 2) or []) == ["B-1-3", "B-1-4"]


def test_lowest_free_skips_taken_seats_and_stops_at_the_end() -> None:
    layout = Layout.general_admission(5)
    seat_map = map_with(layout, ["R1-2"])
    assert seat_map.lowest_free(3) == [1, 3, 4]
    seat_map.mark([1, 3, 4], SOLD)
    assert seat_map.lowest_free(1) == [5]
    assert seat_map.lowest_free(2) is None
    seat_map.mark([3], FREE)
    assert seat_map.lowest_free(2) == [3, 5]

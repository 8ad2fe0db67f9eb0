"""The dashboard's queries have one source: compose's rules file is its output."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.dashboard import BY_NAME, QUERIES, rules_file

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


def test_compose_rules_file_is_generated_from_the_named_queries() -> None:
    committed = (ROOT / "ops" / "prometheus-rules.yml").read_text()
    assert committed == rules_file(), (
        "run: python -m shared.dashboard rules > ops/prometheus-rules.yml"
    )


def test_every_query_has_a_name_and_a_record_of_its_own() -> None:
    assert len(BY_NAME) == len(QUERIES)
    assert len({q.record for q in QUERIES}) == len(QUERIES)
    assert all(q.record.startswith("tickets:") for q in QUERIES)

from __future__ import annotations

import json
import logging

import pytest

from shared import logs
from shared.config import Settings

pytestmark = pytest.mark.unit


def test_json_lines_carry_booking_and_event_ids(capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure(Settings.from_env({"TICKETS_LOG_JSON": "true"}))
    try:
        logging.getLogger("consumer.test").warning(
            "slow batch for event %s", 7, extra={"event_id": 7, "booking_id": "b-1"}
        )
        line = capsys.readouterr().err.strip().splitlines()[-1]
    finally:
        logs.configure(Settings.from_env({}))
    record = json.loads(line)
    assert record["msg"] == "slow batch for event 7"
    assert (record["level"], record["event_id"], record["booking_id"]) == ("WARNING", "7", "b-1")

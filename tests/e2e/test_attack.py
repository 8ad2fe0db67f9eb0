"""attack.sh end to end: 500 buyers for 100 seats against a real API and worker."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from scripts.pipeline import ROOT, Pipeline

pytestmark = pytest.mark.e2e

ATTACK = str(ROOT / "attack.sh")


def _env(url: str, token: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKETS_")}
    env.update(TICKETS_API_URL=url, TICKETS_ADMIN_TOKEN=token, PYTHON=sys.executable)
    return env


async def test_attack_500_buyers_for_100_seats(pipeline: Pipeline, tmp_path: Path) -> None:
    result_file = tmp_path / "attack.json"
    proc = await asyncio.create_subprocess_exec(
        ATTACK,
        "500",
        "--timeout",
        "60",
        "--json",
        str(result_file),
        env=_env(pipeline.url, pipeline.settings.admin_token),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        raw, _ = await asyncio.wait_for(proc.communicate(), timeout=120)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    output = raw.decode()

    assert proc.returncode == 0, output
    assert "verdict: CLEAN" in output and "result: PASS" in output, output
    result = json.loads(result_file.read_text())
    assert result["fresh_event"] and result["capacity"] == 100
    assert result["sent"] == 500 and result["errors"] == {}, output
    assert result["accepted"] + result["sold_out"] == 500, output
    assert result["confirmed"] == 100, output
    assert result["rejected"] == (
        {"SOLD_OUT": result["accepted"] - 100} if result["accepted"] > 100 else {}
    )
    assert result["pending"] == result["missing"] == 0
    assert result["verdict"] == "CLEAN"
    assert (result["audit"]["sold"], result["audit"]["double_assigned_seats"]) == (100, 0)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["0"], "N must be a positive integer"),
        (["abc"], "N must be a positive integer"),
        (["5", "--capacity", "x"], "--capacity must be a positive integer"),
        (["5", "--bogus"], "unknown option"),
    ],
)
def test_attack_rejects_bad_arguments(args: list[str], message: str) -> None:
    done = subprocess.run(
        [ATTACK, *args],
        env=_env("http://127.0.0.1:9", "unused"),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2, done
    assert message in done.stderr and "usage:" in done.stderr, done.stderr

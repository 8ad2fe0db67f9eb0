"""attack.sh end to end: 500 buyers for 100 seats against a real API and worker, in both
buyer modes (`open`: the body names the buyer; `token`: each buyer sends a signed token)."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from scripts.pipeline import ROOT, Pipeline
from shared.config import Settings

pytestmark = pytest.mark.e2e

ATTACK = str(ROOT / "attack.sh")


def _env(url: str, token: str, **more: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKETS_")}
    env.update(TICKETS_API_URL=url, TICKETS_ADMIN_TOKEN=token, PYTHON=sys.executable, **more)
    return env


def _buyer_env(settings: Settings) -> dict[str, str]:
    """What a user of the stack has in the environment: the API's buyer mode and secret."""
    return {"TICKETS_BUYER_AUTH": settings.buyer_auth, "TICKETS_JWT_SECRET": settings.jwt_secret}


@pytest.fixture(params=["open", "token"])
def settings(settings: Settings, request: pytest.FixtureRequest) -> Settings:
    """The API of each test here runs in one buyer mode, with a secret of its own."""
    return msgspec.structs.replace(
        settings, buyer_auth=request.param, jwt_secret=secrets.token_hex(32), jwt_public_key=""
    )


async def _attack(pipeline: Pipeline, *args: str, **env: str) -> tuple[int, str]:
    """Run attack.sh against the pipeline; its exit status and output."""
    proc = await asyncio.create_subprocess_exec(
        ATTACK,
        *args,
        env=_env(pipeline.url, pipeline.settings.admin_token, **env),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        raw, _ = await asyncio.wait_for(proc.communicate(), timeout=120)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, raw.decode()


async def test_attack_500_buyers_for_100_seats(pipeline: Pipeline, tmp_path: Path) -> None:
    result_file = tmp_path / "attack.json"
    code, output = await _attack(
        pipeline,
        "500",
        "--timeout",
        "60",
        "--json",
        str(result_file),
        **_buyer_env(pipeline.settings),
    )

    assert code == 0, output
    assert "verdict: CLEAN" in output and "result: PASS" in output, output
    result = json.loads(result_file.read_text())
    assert result["buyer_auth"] == pipeline.settings.buyer_auth
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


@pytest.mark.parametrize("settings", ["token"], indirect=True)
async def test_attack_in_the_wrong_mode_fails_and_says_why(pipeline: Pipeline) -> None:
    """Buyers named only in the body, at an API that wants their tokens: nothing is sold, the
    attack fails and points at the mode."""
    code, output = await _attack(pipeline, "20", "--buyer-auth", "open")

    assert code == 1, output
    assert "result: FAIL: 20 requests refused with 401/403" in output, output
    assert "run with TICKETS_BUYER_AUTH=token" in output, output


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

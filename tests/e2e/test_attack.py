"""attack.sh end to end against a real API and worker, in both buyer modes (`open`: the body
names the buyer; `token`: each buyer sends a signed token): 500 buyers for 100 seats; holds
that are paid or run out; buyers naming seats or asking for seats together."""

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


async def test_attack_with_holds_half_the_holders_pay(pipeline: Pipeline, tmp_path: Path) -> None:
    result_file = tmp_path / "attack.json"
    code, output = await _attack(
        pipeline,
        "300",
        "--hold-seconds",
        "3",
        "--pay-ratio",
        "0.5",
        "--json",
        str(result_file),
        **_buyer_env(pipeline.settings),
    )

    assert code == 0, output
    result = json.loads(result_file.read_text())
    assert result["hold_seconds"] == 3
    holds = result["holds"]
    assert (holds["held"], holds["paid"], holds["late"]) == (100, 50, 0), output
    assert (holds["confirmed"], holds["expired"]) == (50, 50), output
    audit = result["audit"]
    assert (audit["sold"], audit["held_quantity"], audit["expired_bookings"]) == (50, 0, 50)
    assert (audit["verdict"], audit["refunds_due"]) == ("CLEAN", [])
    assert "holds                    100 HELD (3 s): 50 paid" in output, output


async def test_attack_naming_seats(pipeline: Pipeline, tmp_path: Path) -> None:
    """300 buyers each name 2 of the 20 front-row seats: each seat sold once, every buyer
    got exactly the seats named or SEAT_TAKEN."""
    result_file = tmp_path / "attack.json"
    code, output = await _attack(
        pipeline, "300", "--seats", "specific", "--json", str(result_file),
        **_buyer_env(pipeline.settings),
    )  # fmt: skip

    assert code == 0, output
    result = json.loads(result_file.read_text())
    assert result["accepted"] == 300 and result["seat_mode"] == "specific", output
    confirmed = result["confirmed"]
    assert 0 < confirmed <= 10
    assert result["seats"] == {
        "got_what_asked": confirmed,
        "refused": {"SEAT_TAKEN": 300 - confirmed},
    }
    audit = result["audit"]
    assert (audit["sold"], audit["seats_assigned"], audit["double_assigned_seats"]) == (
        2 * confirmed,
        2 * confirmed,
        0,
    )
    assert audit["verdict"] == "CLEAN"


async def test_attack_groups_together(pipeline: Pipeline, tmp_path: Path) -> None:
    """60 groups of 4 for 200 seats in rows of 20: 50 groups seated side by side, the rest
    sold out."""
    result_file = tmp_path / "attack.json"
    code, output = await _attack(
        pipeline, "60", "--capacity", "200", "--seats", "together", "--json", str(result_file),
        **_buyer_env(pipeline.settings),
    )  # fmt: skip

    assert code == 0, output
    result = json.loads(result_file.read_text())
    assert result["confirmed"] == result["seats"]["got_what_asked"] == 50, output
    assert result["sold_out"] + result["rejected"].get("SOLD_OUT", 0) == 10, output
    assert (result["audit"]["sold"], result["audit"]["verdict"]) == (200, "CLEAN")


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
        (["5", "--pay-ratio", "0.5"], "--pay-ratio needs holds"),
        (["5", "--hold-seconds", "3", "--pay-ratio", "1.5"], "--pay-ratio must be a number"),
        (["5", "--hold-seconds", "4000"], "--hold-seconds must be at most 3600"),
        (["5", "--seats", "best"], "--seats must be specific or together"),
        (["5", "--seats", "together", "--capacity", "30"], "a multiple of 20"),
        (["5", "--event", "1", "--hold-seconds", "3"], "--hold-seconds only applies"),
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


async def test_attack_through_the_queue(pipeline: Pipeline, tmp_path: Path) -> None:
    result_file = tmp_path / "attack.json"
    code, output = await _attack(
        pipeline,
        "600",
        "--queue",
        "--admit-rate",
        "300",
        "--json",
        str(result_file),
        **_buyer_env(pipeline.settings),
    )

    assert code == 0, output
    assert "told SOLD_OUT" in output, output
    result = json.loads(result_file.read_text())
    queue = result["queue"]
    assert queue["joined"] == 600 and set(queue["joins"]) == {"201"}
    ends = queue["ends"]
    assert ends["ADMITTED"] >= 100 and ends["ADMITTED"] + ends.get("SOLD_OUT", 0) == 600
    assert result["sent"] == ends["ADMITTED"]  # every admitted buyer booked, with its token
    assert result["confirmed"] == 100 and result["verdict"] == "CLEAN", output

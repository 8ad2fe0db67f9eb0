"""The OpenAPI document the API serves at /schema/openapi.json describes what
POST /api/bookings really answers (the in-process API of tests/integration/conftest.py)."""

from __future__ import annotations

from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def document(api: AsyncTestClient[Litestar]) -> dict[str, Any]:
    response = await api.get("/schema/openapi.json")
    assert response.status_code == 200, response.text
    served: dict[str, Any] = response.json()
    return served


def test_booking_post_documents_its_answers(document: dict[str, Any]) -> None:
    post = document["paths"]["/api/bookings"]["post"]
    responses = post["responses"]
    assert sorted(responses) == [
        "202", "400", "401", "403", "404", "409", "413", "422", "429", "503"
    ]  # fmt: skip
    accepted = responses["202"]["content"]["application/json"]["schema"]["$ref"]
    assert accepted == "#/components/schemas/Accepted"
    assert set(document["components"]["schemas"]["Accepted"]["properties"]) == {
        "booking_id",
        "status",
        "status_url",
    }
    sold_out = responses["409"]["content"]["application/json"]["schema"]["$ref"]
    assert set(document["components"]["schemas"][sold_out.rsplit("/", 1)[1]]["properties"]) == {
        "status",
        "reason",
        "detail",
    }
    for status in ("400", "401", "403", "404", "413", "422", "429", "503"):
        assert "application/problem+json" in responses[status]["content"], status
    assert [p["name"] for p in post["parameters"]] == ["Idempotency-Key", "eventId", "userId"]


def test_the_account_routes_are_documented(document: dict[str, Any]) -> None:
    paths = document["paths"]
    for path, method in [
        ("/api/auth/register", "post"),
        ("/api/auth/login", "post"),
        ("/api/auth/logout", "post"),
        ("/api/me", "get"),
        ("/api/me", "delete"),
        ("/api/me/bookings", "get"),
    ]:
        assert method in paths[path], (path, method)


def test_booking_read_documents_not_found(document: dict[str, Any]) -> None:
    responses = document["paths"]["/api/bookings/{booking_id}"]["get"]["responses"]
    assert "application/problem+json" in responses["404"]["content"]

"""The OpenAPI document at /schema describes what POST /api/bookings really answers."""

from __future__ import annotations

from typing import Any

import pytest

from api.app import create_app
from shared.config import Settings

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    # Building the document needs no services: the app's lifespan is not run.
    return create_app(Settings(admin_token="t", jwt_secret="s" * 32)).openapi_schema.to_schema()


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

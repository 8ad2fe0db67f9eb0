"""The console's charts when TICKETS_PROMETHEUS_URL does not lead to a working Prometheus:
503 problem+json either way (never 500), and the detail never shows the URL's password."""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Iterator

import msgspec
import pytest
import redis.asyncio as aioredis
from litestar.testing import AsyncTestClient

from api.app import create_app
from shared.config import Settings

pytestmark = pytest.mark.integration

PAGE = b"<html><body>502 Bad Gateway</body></html>"


class ErrorPage(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/html")
        self.send_header("content-length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def not_prometheus() -> Iterator[int]:
    """A real HTTP server answering an HTML page to everything, as a proxy's error page
    would: its port."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), ErrorPage)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("where", ["html", "closed"])
async def test_charts_without_a_working_prometheus_are_503_without_the_password(
    topics: Settings, redis_client: aioredis.Redis, not_prometheus: int, where: str
) -> None:
    port = not_prometheus if where == "html" else closed_port()
    settings = msgspec.structs.replace(
        topics, prometheus_url=f"http://watcher:s3cret-pass@127.0.0.1:{port}"
    )
    async with AsyncTestClient(create_app(settings)) as api:
        answer = await api.get(
            "/api/console/charts", headers={"Authorization": f"Bearer {settings.admin_token}"}
        )
    assert answer.status_code == 503, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert "s3cret-pass" not in answer.text and "watcher" not in answer.text
    says = "without its JSON" if where == "html" else "did not answer (ConnectError)"
    assert says in answer.json()["detail"], answer.text

"""The pages the API serves itself: Jinja templates and static files, no build step. Every
page carries a Content-Security-Policy that allows scripts only from this origin's files
(no inline script, no inline event handler), so injected markup cannot run code."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from litestar import Router, get
from litestar.datastructures import CacheControlHeader
from litestar.di import Provide
from litestar.params import QueryParameter
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.response import Template
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig

from api.context import InjectedServices
from api.events import services
from shared.db import fetch_all, queries

HERE = Path(__file__).parent
PAGES = frozenset({"/", "/console"})  # the paths that hand out the CSRF cookie (session.py)
EVENTS_LISTED = 50

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",  # the page names the events on sale now
}


@get("/", include_in_schema=False, dependencies={"svc": Provide(services, sync_to_thread=False)})
async def sale_page(
    svc: InjectedServices,
    event: Annotated[int | None, QueryParameter(ge=1, le=2**62)] = None,
) -> Template:
    """The sale page: the newest events to pick from; the script does the rest through the
    JSON API."""
    events = await fetch_all(svc.pool, queries.recent_events, {"limit": EVENTS_LISTED})
    if event is None and events:
        event = events[0]["id"]
    return Template(
        "sale.html",
        context={"events": events, "event_id": event, "buyer_auth": svc.settings.buyer_auth},
        headers=PAGE_HEADERS,
    )


@get("/console", include_in_schema=False)
async def console_page() -> Template:
    """The operator console: a shell whose script signs the admin in and reads
    /api/console (admin_only decides who sees data, not the page)."""
    return Template("console.html", headers=PAGE_HEADERS)


def template_config() -> TemplateConfig[JinjaTemplateEngine]:
    return TemplateConfig(directory=HERE / "templates", engine=JinjaTemplateEngine)


def router() -> Router:
    """The pages and their static files."""
    static = create_static_files_router(
        path="/static",
        directories=[HERE / "static"],
        # Revalidated on every load (cheap: a 304), so a new release is seen at once.
        cache_control=CacheControlHeader(no_cache=True),
        include_in_schema=False,
    )
    return Router(path="/", route_handlers=[sale_page, console_page, static])

"""The numbers operators watch: /metrics of the API and of a worker, before and after a sale,
and the Grafana dashboard that charts them."""

from __future__ import annotations

import asyncio
import json
import re
from collections import Counter

import httpx
import msgspec
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from scripts.pipeline import ROOT, Pipeline
from scripts.waiting import eventually, poll_until
from tests.sale import SaleClient

pytestmark = pytest.mark.e2e

DASHBOARD = ROOT / "ops" / "grafana" / "dashboards" / "tickets.json"
DATASOURCES = ROOT / "ops" / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
DASHBOARD_PROVIDERS = ROOT / "ops" / "grafana" / "provisioning" / "dashboards" / "dashboards.yml"
PROMETHEUS = ROOT / "ops" / "prometheus.yml"
COMPOSE = ROOT / "compose.yaml"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(client: httpx.AsyncClient, url: str) -> Samples:
    """Every sample of a /metrics page, by name and labels."""
    response = await client.get(url)
    assert response.status_code == 200, response.text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


async def scrape_when_up(client: httpx.AsyncClient, url: str, timeout_s: float = 30) -> Samples:
    """The first scrape that succeeds: a worker serves /metrics a moment after it starts."""

    async def answered() -> Samples | None:
        try:
            return await scrape(client, url)
        except httpx.TransportError:
            return None

    return await eventually(answered, f"{url} answers", timeout_s, interval_s=0.05)


def by_label(samples: Samples, name: str, *labels: str) -> dict[tuple[str, ...], float]:
    values: dict[tuple[str, ...], float] = {}
    for (sample, label_set), value in samples.items():
        if sample == name:
            found = dict(label_set)
            key = tuple(found.get(label, "") for label in labels)
            values[key] = values.get(key, 0.0) + value
    return values


def moved(before: Samples, after: Samples, name: str, *labels: str) -> dict[tuple[str, ...], float]:
    """How far each labelled series of a counter moved; series that did not move are left out."""
    old = by_label(before, name, *labels)
    deltas = {
        key: value - old.get(key, 0.0) for key, value in by_label(after, name, *labels).items()
    }
    return {key: delta for key, delta in deltas.items() if delta}


def lag(samples: Samples) -> float | None:
    """Total consumer lag of the worker, or None if it reports no partition yet."""
    values = by_label(samples, "tickets_consumer_lag", "partition")
    return sum(values.values()) if values else None


async def test_counters_move_by_exactly_the_sale(sale: SaleClient, pipeline: Pipeline) -> None:
    worker_url = pipeline.worker_metrics_urls[-1]
    worker_before = await scrape_when_up(sale.http, worker_url)
    api_before = await scrape(sale.http, "/metrics")

    capacity = 40
    event = await sale.create_event(capacity=capacity, per_user_limit=2)
    first = await sale.book(event, "careful-buyer", key="retry-1")
    replay = await sale.book(event, "careful-buyer", key="retry-1")
    assert first.status_code == replay.status_code == 202, (first.text, replay.text)
    assert first.json()["booking_id"] == replay.json()["booking_id"]
    greedy = [await sale.book(event, f"greedy-{i}", quantity=3) for i in range(3)]
    assert [r.status_code for r in greedy] == [422] * 3
    lost = [await sale.book(10**12, f"lost-{i}") for i in range(2)]
    assert [r.status_code for r in lost] == [404] * 2
    garbled = await sale.http.post(
        "/api/bookings", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert garbled.status_code == 400, garbled.text
    flood = await asyncio.gather(*(sale.book(event, f"user-{i}") for i in range(200)))
    codes = Counter(r.status_code for r in flood)
    assert set(codes) <= {202, 409}, codes
    accepted = [first.json()["booking_id"]]
    accepted += [r.json()["booking_id"] for r in flood if r.status_code == 202]

    decided = await sale.wait_decided(accepted)
    outcomes = Counter((b["status"], b["reason"] or "none") for b in decided.values())
    assert outcomes[("CONFIRMED", "none")] == capacity
    assert outcomes[("REJECTED", "SOLD_OUT")] == len(accepted) - capacity

    api_after = await scrape(sale.http, "/metrics")
    assert moved(api_before, api_after, "tickets_booking_requests_total", "outcome") == {
        ("accepted",): len(accepted),
        ("replayed",): 1,
        ("over_limit",): 3,
        ("not_found",): 2,
        ("invalid",): 1,
        **({("sold_out",): codes[409]} if codes[409] else {}),
    }

    # The worker counts a decision right after caching it, and reports lag after each batch:
    # wait for both to catch up with what the buyers already see, then compare exactly.
    def decisions(samples: Samples) -> dict[tuple[str, ...], float]:
        return moved(worker_before, samples, "tickets_decisions_total", "status", "reason")

    async def caught_up() -> Samples | None:
        samples = await scrape(sale.http, worker_url)
        done = sum(decisions(samples).values()) >= len(accepted) and lag(samples) == 0
        return samples if done else None

    # Not caught up in time: the exact comparisons below say how far off it is.
    worker_after = await poll_until(caught_up, 30) or await scrape(sale.http, worker_url)
    assert decisions(worker_after) == {key: float(n) for key, n in outcomes.items()}
    assert lag(worker_after) == 0, by_label(worker_after, "tickets_consumer_lag", "partition")
    assert moved(worker_before, worker_after, "tickets_decision_latency_seconds_count") == {
        (): len(accepted)
    }
    assert not moved(worker_before, worker_after, "tickets_dead_letters_total")


async def test_lag_shows_the_backlog_then_returns_to_zero(
    sale: SaleClient, pipeline: Pipeline
) -> None:
    event = await sale.create_event(capacity=1000, per_user_limit=1)
    # Take the worker away so that a backlog builds up in Kafka.
    await asyncio.to_thread(Pipeline.terminate, pipeline.workers[0])
    responses = await asyncio.gather(*(sale.book(event, f"user-{i}") for i in range(300)))
    assert {r.status_code for r in responses} == {202}

    # Small batches: the backlog drains over many batches, each reporting the lag left.
    pipeline.start_worker(settings=msgspec.structs.replace(pipeline.settings, batch_max=5))
    url = pipeline.worker_metrics_urls[-1]
    seen: list[float] = []  # every lag the worker reported, in order

    def confirmed(samples: Samples) -> float | None:
        return by_label(samples, "tickets_decisions_total", "status").get(("CONFIRMED",))

    async def drained() -> Samples | None:
        samples = await scrape_when_up(sale.http, url)
        current = lag(samples)
        if current is not None:
            seen.append(current)
        return samples if confirmed(samples) == 300 and current == 0 else None

    last = await poll_until(drained, 60, interval_s=0.02) or await scrape(sale.http, url)
    assert confirmed(last) == 300
    assert seen and seen[-1] == 0, seen[-5:]
    assert max(seen) > 0, "the lag never showed the 300-message backlog"


# --------------------------------------------------------------------------- the dashboard

# Series Prometheus makes itself rather than scraping them.
PROMETHEUS_SERIES = {"up"}
# Words of PromQL that look like names but are not metrics.
GROUPING = {"by", "without", "on", "ignoring", "group_left", "group_right"}
KEYWORDS = GROUPING | {"bool", "and", "or", "unless", "offset", "atan2"}
NAME = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
TOKEN = re.compile(
    r'"(?:\\.|[^"\\])*"'  # string
    r"|\{[^}]*\}"  # label matchers
    r"|\[[^\]]*\]"  # range
    r"|\$\w+"  # Grafana variable
    r"|[A-Za-z_:][A-Za-z0-9_:]*"  # name, function or keyword
    r"|\d+(?:\.\d+)?(?:e[+-]?\d+)?"  # number
    r"|\S"
)


def promql_metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (not its functions, keywords or labels)."""
    tokens = TOKEN.findall(expr)
    names: set[str] = set()
    i = 0
    while i < len(tokens):
        token = tokens[i]
        following = tokens[i + 1] if i + 1 < len(tokens) else ""
        if token in GROUPING and following == "(":
            i = tokens.index(")", i)  # skip the label list
        elif (
            NAME.fullmatch(token)
            and token not in KEYWORDS
            # followed by "(" or by a grouping clause, it is a function or an aggregation
            and following != "("
            and following not in GROUPING
        ):
            names.add(token)
        i += 1
    return names


def test_promql_metric_names() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (le) (rate(a_bucket{job="worker"}[$__rate_interval])))'
        " / sum without (x) (b_total) + on (le) group_left c or vector(0)"
    )
    assert promql_metric_names(expr) == {"a_bucket", "b_total", "c"}


def exposed_names(text: str) -> set[str]:
    """Every series name a /metrics page exposes or declares (a labelled counter that has not
    counted anything yet is declared with its TYPE but has no sample)."""
    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_count", "_sum", "_created"),
        "summary": ("", "_count", "_sum", "_created"),
    }
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        names.update(sample.name for sample in family.samples)
        names.update(family.name + suffix for suffix in suffixes.get(family.type, ("",)))
    return names


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL) of every query of the dashboard."""
    dashboard = json.loads(DASHBOARD.read_text())
    return [
        (panel["title"], target["expr"])
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
    ]


async def test_dashboard_charts_only_metrics_the_processes_expose(
    sale: SaleClient, pipeline: Pipeline
) -> None:
    event = await sale.create_event(capacity=2, per_user_limit=1)
    responses = await asyncio.gather(*(sale.book(event, f"user-{i}") for i in range(6)))
    accepted = [r.json()["booking_id"] for r in responses if r.status_code == 202]
    await sale.wait_decided(accepted)
    await scrape_when_up(sale.http, pipeline.worker_metrics_urls[-1])
    pages = [
        (await sale.http.get(url)).text for url in ("/metrics", pipeline.worker_metrics_urls[-1])
    ]
    exposed = set().union(*(exposed_names(page) for page in pages)) | PROMETHEUS_SERIES

    charted = {name for _, expr in dashboard_queries() for name in promql_metric_names(expr)}
    unknown = {
        title: sorted(promql_metric_names(expr) - exposed)
        for title, expr in dashboard_queries()
        if promql_metric_names(expr) - exposed
    }
    assert not unknown, f"dashboard panels chart metrics nobody exposes: {unknown}"
    # What operators came for: intake, outcomes, lag and decision latency percentiles.
    assert {
        "tickets_booking_requests_total",
        "tickets_decisions_total",
        "tickets_consumer_lag",
        "tickets_decision_latency_seconds_bucket",
    } <= charted
    assert any(
        "histogram_quantile" in expr and "tickets_decision_latency_seconds_bucket" in expr
        for _, expr in dashboard_queries()
    )


def test_dashboard_is_provisioned_against_the_compose_prometheus() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    panels = dashboard["panels"]
    assert len({panel["id"] for panel in panels}) == len(panels), "panel ids must be unique"
    (datasource,) = yaml.safe_load(DATASOURCES.read_text())["datasources"]
    for panel in panels:
        for ref in [panel.get("datasource"), *(t["datasource"] for t in panel.get("targets", []))]:
            if ref is not None:
                assert ref == {"type": "prometheus", "uid": datasource["uid"]}, panel["title"]

    compose = yaml.safe_load(COMPOSE.read_text())["services"]
    grafana_mounts = {v.split(":")[1]: v.split(":")[0] for v in compose["grafana"]["volumes"]}
    (provider,) = yaml.safe_load(DASHBOARD_PROVIDERS.read_text())["providers"]
    dashboards_dir = grafana_mounts[provider["options"]["path"]]
    assert (ROOT / dashboards_dir / DASHBOARD.name).resolve() == DASHBOARD.resolve()
    assert grafana_mounts["/etc/grafana/provisioning"] == "./ops/grafana/provisioning"
    assert datasource["url"] == "http://prometheus:9090"
    assert "127.0.0.1:9090:9090" in compose["prometheus"]["ports"]

    # Prometheus scrapes the API's port and the port the consumer serves its metrics on.
    scraped = {
        job["job_name"]: (job["dns_sd_configs"][0]["names"][0], job["dns_sd_configs"][0]["port"])
        for job in yaml.safe_load(PROMETHEUS.read_text())["scrape_configs"]
    }
    assert scraped["api"] == ("api", 8000) and "8000" in compose["api"]["command"]
    worker_port = int(compose["consumer"]["environment"]["TICKETS_WORKER_METRICS_PORT"])
    assert scraped["worker"] == ("consumer", worker_port)

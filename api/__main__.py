"""`python -m api [--host H] [--port P]`: the API under uvicorn, as TICKETS_API_WORKERS
processes sharing one port. With more than one, the metrics go through Prometheus'
multiprocess mode (each process writes its own files in PROMETHEUS_MULTIPROC_DIR, /metrics
adds them up), and the rate limits hold across the processes because they live in Redis."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

import uvicorn

from shared.config import load_or_exit

MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"


def _metrics_dir(workers: int) -> None:
    """Before any process imports prometheus_client: a fresh directory of metric files."""
    if workers == 1:
        os.environ.pop(MULTIPROC_DIR, None)
        return
    where = os.environ.get(MULTIPROC_DIR) or tempfile.mkdtemp(prefix="tickets-metrics-")
    path = Path(where)
    shutil.rmtree(path, ignore_errors=True)  # files of processes that are gone
    path.mkdir(parents=True)
    os.environ[MULTIPROC_DIR] = str(path)


SHUTDOWN_GRACE_S = 5


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m api", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    settings = load_or_exit(api=True)
    _metrics_dir(settings.api_workers)
    uvicorn.run(
        "api.app:app",
        host=args.host,
        port=args.port,
        workers=settings.api_workers,
        loop="uvloop",
        http="httptools",
        access_log=False,
        # The proxies whose X-Forwarded-For the rate limits believe are also believed about
        # X-Forwarded-Proto: the session cookies are Secure when the client used HTTPS.
        forwarded_allow_ips=[str(n) for n in settings.proxies] or None,
        # Open Server-Sent Events streams never end by themselves: cut them at shutdown.
        timeout_graceful_shutdown=SHUTDOWN_GRACE_S,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

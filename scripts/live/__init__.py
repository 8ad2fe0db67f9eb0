"""Watch a flash sale live in a terminal: intake, outcomes, worker lag, decision latency and
the lie detector's verdict for one event.

    python -m scripts.live --event ID [--interval S] [--api URL] [--worker-metrics URL ...]
                           [--once | --duration S]

Reads the API's /metrics, each worker's /metrics (default: 127.0.0.1 on
TICKETS_WORKER_METRICS_PORT) and the event's audit (admin token from TICKETS_ADMIN_TOKEN, else
.stack/admin-token). On a terminal the view redraws in place until Ctrl-C; when stdout is
not a terminal it prints one line per refresh. `--once` prints a single snapshot.

The counters cover everything the processes handled since they started (every event); the
EVENT block is the chosen event's audit. Rates are the change between two refreshes.

Exit status: 0 done, 2 bad usage, 3 `--once` could not reach the API.

Layout: sources.py reads, summary.py computes, render.py draws, __main__.py is the command line.
"""

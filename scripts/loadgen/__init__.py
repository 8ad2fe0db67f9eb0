"""Flash-sale load generator: fire N concurrent bookings at one event, wait until every
accepted booking is decided, and check the outcome against the audit.

    python -m scripts.loadgen --requests 500 [--event ID | --capacity 100] [--json out.json]
        [--buyer-auth token|open] [--hold-seconds S --pay-ratio P] [--seats specific|together]

`attack.sh` is a thin bash driver around it; the benchmark and the demo reuse its parts
(`await attack(AttackConfig(...))` returns a `Result`). It is stdlib-only (uvloop is used when
installed; token mode needs PyJWT): `client.py` is its own small HTTP/1.1 keep-alive client
(why: its docstring), `api.py` the setup and audit calls, `attack.py` the attack and its
verdict, `holds.py` paying for holds and judging where they ended, `seat_modes.py` seat
choices and their checks, `summary.py` the printed report, `tokens.py` the buyers' tokens,
`progress.py` the status line, `__main__.py` the command line.

Buyers, as the API's TICKETS_BUYER_AUTH says (`--buyer-auth`, default that variable, else
open): `open`, the body's user_id names each buyer; `token`, each buyer also sends a JWT of
their own, minted before firing with TICKETS_JWT_SECRET. Bookings are read back with the
admin token, which may read any of them.

Load only ever goes to this machine: any host other than 127.0.0.1, localhost or ::1 is
refused.

Exit codes: 0 all checks passed, 1 a check failed (audit verdict, undecided bookings, seats
sold), 2 bad usage or configuration, 3 the API could not be used (unreachable, refused).
"""

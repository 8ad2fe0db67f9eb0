#!/usr/bin/env bash
# Flash-sale attack: N buyers try to book seats at the same moment, then the ledger is
# audited. A thin driver around scripts/loadgen/ (python -m scripts.loadgen).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PROG="$(basename "$0")"

usage() {
  cat <<EOF
usage: $PROG [N] [--event ID] [--capacity C] [--concurrency K] [--timeout S] [--json FILE]
          [--buyer-auth token|open] [--hold-seconds S] [--pay-ratio P]
          [--seats specific|together] [--queue [--admit-rate R]]

Fires N concurrent booking requests (default 500, one seat each, distinct users) at an
event, waits until every accepted (202) booking is decided, prints a summary and the
event's audit, and exits non-zero unless the audit verdict is CLEAN, nothing is left
PENDING and (for a new event with N >= C, no holds, no seat choice) exactly C seats were
sold.

  N                 number of booking requests, a positive integer (default 500)
  --event ID        attack an existing event instead of creating a demo event
  --capacity C      seats of the demo event created when --event is not given (default 100)
  --concurrency K   keep-alive connections used (default 64)
  --timeout S       seconds to wait for decisions after the last request (default 120)
  --json FILE       also write the full result as JSON to FILE
  --hold-seconds S  the demo event holds each booking S seconds (1-3600) until it is paid
  --pay-ratio P     with holds: the fraction P (0-1) of the buyers holding seats pay (the
                    dev provider, as their buyer), the rest let the hold run out; the
                    attack waits until every hold is CONFIRMED or EXPIRED, and fails unless
                    exactly the paid ones are CONFIRMED
  --seats MODE      the demo event has one section A of rows of 20 seats (C must be a
                    multiple of 20); with --event, the event's first section:
                    specific  each buyer names 2 random seats of the front row: each must
                              get exactly those, or be refused SEAT_TAKEN (or SOLD_OUT)
                    together  each buyer asks for 4 seats side by side in the section:
                              each group must get 4 adjacent seats in one row
                    No seat may be held or sold twice.
  --queue           the demo event sells through its on-sale queue: every buyer joins
                    before the opening, the admin opens it, each buyer polls its entry until
                    admitted (then books with its admission token) or told SOLD_OUT; the
                    summary counts joins, admissions and SOLD_OUT answers
  --admit-rate R    with --queue: admissions per second (default 200)
  --buyer-auth M    how buyers identify themselves, as the API's TICKETS_BUYER_AUTH says
                    (default: TICKETS_BUYER_AUTH, else open):
                    open   the request body's user_id names the buyer
                    token  each buyer also sends Authorization: Bearer <JWT>, a token of
                           their own minted here before firing (sub = the user_id, HS256
                           with TICKETS_JWT_SECRET, else .stack/jwt-secret): no login round
                           trip. Bookings are read back with the admin token.

Environment: TICKETS_API_URL (default http://127.0.0.1:8000; only 127.0.0.1 or localhost
is accepted), TICKETS_ADMIN_TOKEN (else read from .stack/admin-token when present),
TICKETS_BUYER_AUTH and TICKETS_JWT_SECRET (see --buyer-auth). One request per buyer stays
under the per-buyer rate limit; the per-address limit would count every local client as
one, so the stack turns it off (TICKETS_RATE_LIMIT_ADDRESS_PER_S=0).
Exit status: 0 pass, 1 a check failed, 2 bad usage, 3 the API could not be used.
EOF
}

die_usage() {
  printf '%s: error: %s\n\n' "$PROG" "$1" >&2
  usage >&2
  exit 2
}

# Dies unless $2 (the value of $1) is a positive integer.
check_positive_int() {
  [[ "$2" =~ ^[0-9]+$ && "$2" =~ [1-9] ]] || die_usage "$1 must be a positive integer, got '$2'"
  [ "${#2}" -le 12 ] || die_usage "$1 is too large: $2"
}

requests=""
event=""
capacity=""
concurrency=""
timeout=""
json=""
buyer_auth=""
hold_seconds=""
pay_ratio=""
seats=""
queue=""
admit_rate=""

while [ $# -gt 0 ]; do
  arg="$1"
  shift
  value=""
  case "$arg" in
    --*=*) value="${arg#*=}"; arg="${arg%%=*}" ;;
    --event | --capacity | --concurrency | --timeout | --json | --buyer-auth | --hold-seconds | \
      --pay-ratio | --seats | --admit-rate)
      [ $# -gt 0 ] || die_usage "$arg needs a value"
      value="$1"
      shift
      ;;
  esac
  case "$arg" in
    -h | --help) usage; exit 0 ;;
    --event) check_positive_int --event "$value"; event="$((10#$value))" ;;
    --capacity) check_positive_int --capacity "$value"; capacity="$((10#$value))" ;;
    --concurrency) check_positive_int --concurrency "$value"; concurrency="$((10#$value))" ;;
    --timeout)
      [[ "$value" =~ ^[0-9]+([.][0-9]+)?$ && "$value" =~ [1-9] ]] ||
        die_usage "--timeout must be a positive number of seconds, got '$value'"
      timeout="$value"
      ;;
    --json)
      [ -n "$value" ] || die_usage "--json needs a file name"
      json="$value"
      [[ "$json" == /* || "$json" == - ]] || json="$PWD/$json" # the loadgen runs from the root
      ;;
    --buyer-auth)
      [[ "$value" == token || "$value" == open ]] ||
        die_usage "--buyer-auth must be token or open, got '$value'"
      buyer_auth="$value"
      ;;
    --hold-seconds)
      check_positive_int --hold-seconds "$value"
      hold_seconds="$((10#$value))"
      [ "$hold_seconds" -le 3600 ] || die_usage "--hold-seconds must be at most 3600, got $value"
      ;;
    --pay-ratio)
      [[ "$value" =~ ^(0([.][0-9]+)?|1([.]0+)?|[.][0-9]+)$ ]] ||
        die_usage "--pay-ratio must be a number from 0 to 1, got '$value'"
      pay_ratio="$value"
      ;;
    --seats)
      [[ "$value" == specific || "$value" == together ]] ||
        die_usage "--seats must be specific or together, got '$value'"
      seats="$value"
      ;;
    --queue) queue=1 ;;
    --admit-rate)
      [[ "$value" =~ ^[0-9]+([.][0-9]+)?$ && "$value" =~ [1-9] ]] ||
        die_usage "--admit-rate must be a positive number, got '$value'"
      admit_rate="$value"
      ;;
    -[0-9]*) die_usage "N must be a positive integer, got '$arg'" ;;
    -*) die_usage "unknown option '$arg'" ;;
    *)
      [ -z "$requests" ] || die_usage "unexpected argument '$arg' (N was already given as $requests)"
      check_positive_int N "$arg"
      requests="$((10#$arg))"
      ;;
  esac
done

if [ -n "$event" ] && [ -n "$capacity" ]; then
  die_usage "--capacity only applies to the demo event created when --event is not given"
fi
if [ -n "$event" ] && [ -n "$hold_seconds" ]; then
  die_usage "--hold-seconds only applies to the demo event (an existing event keeps its own)"
fi
if [ -z "$event" ] && [ -n "$pay_ratio" ] && [ -z "$hold_seconds" ]; then
  die_usage "--pay-ratio needs holds: give --hold-seconds"
fi
if [ -n "$queue" ] && { [ -n "$event" ] || [ -n "$seats" ] || [ -n "$hold_seconds" ]; }; then
  die_usage "--queue runs on a new demo event of its own, without --event, --seats or --hold-seconds"
fi
if [ -n "$admit_rate" ] && [ -z "$queue" ]; then
  die_usage "--admit-rate needs --queue"
fi
if [ -z "$event" ] && [ -n "$seats" ] && [ $(( ${capacity:-100} % 20 )) -ne 0 ]; then
  die_usage "--capacity must be a multiple of 20 with --seats (rows of 20 seats)"
fi

export TICKETS_API_URL="${TICKETS_API_URL:-http://127.0.0.1:8000}"
if [ -z "${TICKETS_ADMIN_TOKEN:-}" ] && [ -s "$ROOT/.stack/admin-token" ]; then
  TICKETS_ADMIN_TOKEN="$(<"$ROOT/.stack/admin-token")"
  export TICKETS_ADMIN_TOKEN
fi
if [ -z "${TICKETS_ADMIN_TOKEN:-}" ]; then
  printf '%s: error: no admin token: set TICKETS_ADMIN_TOKEN (or start the stack, which writes .stack/admin-token)\n' "$PROG" >&2
  exit 2
fi

args=(--requests "${requests:-500}")
if [ -n "$event" ]; then args+=(--event "$event"); else args+=(--capacity "${capacity:-100}"); fi
if [ -n "$concurrency" ]; then args+=(--concurrency "$concurrency"); fi
if [ -n "$timeout" ]; then args+=(--timeout "$timeout"); fi
if [ -n "$json" ]; then args+=(--json "$json"); fi
if [ -n "$buyer_auth" ]; then args+=(--buyer-auth "$buyer_auth"); fi
if [ -n "$hold_seconds" ]; then args+=(--hold-seconds "$hold_seconds"); fi
if [ -n "$pay_ratio" ]; then args+=(--pay-ratio "$pay_ratio"); fi
if [ -n "$seats" ]; then args+=(--seats "$seats"); fi
if [ -n "$queue" ]; then args+=(--queue); fi
if [ -n "$admit_rate" ]; then args+=(--admit-rate "$admit_rate"); fi

cd "$ROOT"
python="${PYTHON:-python3}"
if [ -z "${PYTHON:-}" ] && [ -x "$ROOT/.venv/bin/python" ]; then python="$ROOT/.venv/bin/python"; fi
exec "$python" -m scripts.loadgen --url "$TICKETS_API_URL" "${args[@]}"

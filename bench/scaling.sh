#!/usr/bin/env bash
# The figures of docs/scaling.md, measured on this machine with the project's own load
# generator: CPU per menu hop and per send journey (gateway, Redis, PostgreSQL),
# PostgreSQL's cost per send journey (transactions, WAL bytes), the commit ceiling and
# the ledger function's ceiling with pgbench, Redis memory per live session at
# SESSIONS live sessions (10^6 by default), menu hop latency at 10^3 live sessions
# against SESSIONS, interleaved, and send journeys and the ledger function on a fresh
# ledger against one of LEDGER_ENTRIES entries (10^7 by default).
#
# Needs PostgreSQL (127.0.0.1:5432, user postgres), pgbench and redis-server; starts a
# Redis of its own on 127.0.0.1:16399 (the shared one is never filled). Knobs:
# SESSIONS (1000000), LEDGER_ENTRIES (10000000), BENCH_SECONDS (10),
# BENCH_CONCURRENCY (64). JSON goes to $OUT. About 15 minutes here.
set -euo pipefail
cd "$(dirname "$0")/.."

SESSIONS=${SESSIONS:-1000000}
ENTRIES=${LEDGER_ENTRIES:-10000000}
SECS=${BENCH_SECONDS:-10}
CONC=${BENCH_CONCURRENCY:-64}
SUBS=1000
PG=postgres://postgres@127.0.0.1:5432
DB=ussd_scale
RPORT=16399
GW=127.0.0.1:18281
OUT=${OUT:-$(mktemp -d)}
BIN=./target/release/ussd-gateway

step() { printf '\n==> %s\n' "$*" >&2; }
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
command -v pgbench >/dev/null || { echo "pgbench is missing: apt-get install postgresql-client" >&2; exit 1; }

# CPU seconds used so far by process $1, or by every process named $1 (utime + stime).
cpu() {
  python3 - "$1" <<'PY'
import os, sys
which, ticks, total = sys.argv[1], os.sysconf("SC_CLK_TCK"), 0
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        stat = open(f"/proc/{pid}/stat").read()
    except OSError:
        continue
    comm, rest = stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2:].split()
    if pid == which or comm == which:
        total += int(rest[11]) + int(rest[12])
print(total / ticks)
PY
}
rcli() { redis-cli -h 127.0.0.1 -p "$RPORT" "$@"; }
used_memory() { rcli INFO memory | awk -F: '/^used_memory:/{print $2}' | tr -d '\r'; }
wal() { psql "$PG/postgres" -Atc "SELECT pg_current_wal_lsn() - '0/0'::pg_lsn"; }
commits() { psql "$PG/postgres" -Atc "SELECT xact_commit FROM pg_stat_database WHERE datname = '$DB'"; }
queued() { psql "$PG/$DB" -Atc "SELECT count(*) FROM outbox WHERE status = 'queued'"; }

step "building the gateway (release)"
cargo build --release --quiet --bin ussd-gateway

step "a Redis of its own on $RPORT, a fresh database $DB, the gateway on $GW"
redis-server --port "$RPORT" --bind 127.0.0.1 --save "" --appendonly no --daemonize no \
  --logfile "$OUT/redis.log" &
redis_pid=$!; pids+=("$redis_pid")
for _ in $(seq 1 50); do rcli PING >/dev/null 2>&1 && break; sleep 0.1; done
psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)"
DATABASE_URL=$PG/$DB REDIS_URL=redis://127.0.0.1:$RPORT REDIS_KEY_PREFIX=scale: \
  DEMO_SUBSCRIBERS=$SUBS RATE_PER_MSISDN_PER_MINUTE=100000000 LOG_FORMAT=json RUST_LOG=warn \
  "$BIN" serve --demo --listen "$GW" > "$OUT/gateway.log" 2>&1 &
gw_pid=$!; pids+=("$gw_pid")
for _ in $(seq 1 240); do curl -sf "http://$GW/healthz" >/dev/null 2>&1 && break; sleep 0.5; done
curl -sf "http://$GW/healthz" >/dev/null || { echo "the gateway did not come up; see $OUT" >&2; exit 1; }

load() { # load NAME MIX [extra args…] → JSON in $OUT/NAME.json
  local name=$1 mix=$2; shift 2
  "$BIN" loadtest --url "http://$GW" --mix "$mix" --subscribers $SUBS --concurrency "$CONC" \
    --duration "${DUR:-$SECS}" --json "$@" > "$OUT/$name.json"
}
# Runs a load with no warm-up and writes the CPU seconds each part spent on it.
costed() { # costed NAME MIX
  local name=$1 mix=$2 g r p
  g=$(cpu "$gw_pid"); r=$(cpu "$redis_pid"); p=$(cpu postgres)
  load "$name" "$mix" --warmup 0
  echo "$(cpu "$gw_pid") - $g" | bc > "$OUT/$name.cpu-gateway"
  echo "$(cpu "$redis_pid") - $r" | bc > "$OUT/$name.cpu-redis"
  echo "$(cpu postgres) - $p" | bc > "$OUT/$name.cpu-postgres"
}
drain() { for _ in $(seq 1 600); do [ "$(queued)" -eq 0 ] && return; sleep 1; done; }

step "warm-up, then CPU per menu hop"
DUR=5 load warm browse --warmup 2
costed browse browse

step "CPU, transactions and WAL per send journey"
drain; sleep 2
w0=$(wal); c0=$(commits)
costed send send
drain; sleep 2
echo "$(( $(wal) - w0 )) $(( $(commits) - c0 ))" > "$OUT/send.pg"

step "commit ceiling (pgbench, one-row UPDATE a transaction) and the ledger function (pgbench)"
psql "$PG/$DB" -qc "DROP TABLE IF EXISTS ceiling" \
  -c "CREATE TABLE ceiling (id int PRIMARY KEY, n bigint NOT NULL DEFAULT 0)" \
  -c "INSERT INTO ceiling (id) SELECT generate_series(1, 100000)" -c "VACUUM ANALYZE ceiling"
printf '\\set id random(1, 100000)\nUPDATE ceiling SET n = n + 1 WHERE id = :id;\n' > "$OUT/ceiling.pgbench"
pgbench -n -c 32 -j 2 -T "$SECS" -f "$OUT/ceiling.pgbench" "$PG/$DB" 2>>"$OUT/pgbench.log" | awk '/^tps = /{print $3; exit}' > "$OUT/ceiling.tps"
pgbench -n -c 16 -j 2 -T "$SECS" -f bench/ledger.pgbench "$PG/$DB" 2>>"$OUT/pgbench.log" | awk '/^tps = /{print $3; exit}' > "$OUT/ledger.tps"
drain

step "menu hops at about 10^3 live sessions, at $SESSIONS, and at 10^3 again"
rcli FLUSHALL >/dev/null
load few-1 browse --warmup 2
key=$(rcli --scan --pattern 'scale:s:*' | head -n 1 || true)
[ -n "$key" ] || { echo "no session was written by the browse run; see $OUT" >&2; exit 1; }
rcli HGET "$key" d > "$OUT/session.d"
before=$(used_memory); live_before=$(rcli DBSIZE)
python3 - "$SESSIONS" "$OUT/session.d" <<'PY' | rcli --pipe > "$OUT/prefill.log"
import sys
n, value = int(sys.argv[1]), open(sys.argv[2], "rb").read().rstrip(b"\n")
out = sys.stdout.buffer
def cmd(*parts):
    out.write(b"*%d\r\n" % len(parts))
    for p in parts:
        out.write(b"$%d\r\n%s\r\n" % (len(p), p))
for i in range(n):
    key = b"scale:s:africastalking:+2547%08d:prefill-%d" % (i % 100_000_000, i)
    cmd(b"HSET", key, b"v", b"3", b"d", value)
    cmd(b"PEXPIRE", key, b"3600000")
PY
after=$(used_memory); live_after=$(rcli DBSIZE)
echo "$before $after $live_before $live_after $(wc -c < "$OUT/session.d")" > "$OUT/sessions.mem"
load many browse --warmup 2
rcli --scan --pattern 'scale:s:*prefill-*' | xargs -n 1000 redis-cli -h 127.0.0.1 -p "$RPORT" UNLINK > /dev/null
load few-2 browse --warmup 2

step "send journeys and the ledger function at this ledger's size, then at about $ENTRIES entries"
entries() { psql "$PG/$DB" -Atc "SELECT count(*) FROM entries"; }
echo "$(entries)" > "$OUT/entries-small"
load send-small send --warmup 2
drain
pgbench -n -c 16 -j 2 -T "$SECS" -f bench/ledger.pgbench "$PG/$DB" 2>>"$OUT/pgbench.log" | awk '/^tps = /{print $3; exit}' > "$OUT/ledger-small.tps"
drain
# A year of history between the demo wallets, written in bulk: each transfer moves one
# cent, so balances stay as they were give or take; triggers (the event log) are off
# for the load, as a restore would have them.
psql "$PG/$DB" -q -v ON_ERROR_STOP=1 -v n="$((ENTRIES / 2))" <<'SQL'
SET session_replication_role = replica;
CREATE TEMP TABLE w AS SELECT row_number() OVER (ORDER BY id) - 1 AS i, id FROM accounts WHERE kind = 'wallet';
INSERT INTO transfers (idempotency_key, request_hash, kind, status, debit_account_id, credit_account_id, amount, created_at)
SELECT 'history:' || g, '\x00', 'p2p', 'posted', a.id, b.id, 1, now() - (g % 525600) * interval '1 minute'
  FROM generate_series(1, :n) g
  JOIN w a ON a.i = g % (SELECT count(*) FROM w)
  JOIN w b ON b.i = (g * 7 + 1) % (SELECT count(*) FROM w)
 WHERE a.id <> b.id;
INSERT INTO entries (transfer_id, account_id, amount, created_at)
SELECT t.id, x.account, x.amount, t.created_at FROM transfers t
 CROSS JOIN LATERAL (VALUES (t.debit_account_id, -1::bigint), (t.credit_account_id, 1::bigint)) x (account, amount)
 WHERE t.idempotency_key LIKE 'history:%';
UPDATE accounts a SET balance = a.balance + d.net
  FROM (SELECT e.account_id, sum(e.amount) AS net FROM entries e JOIN transfers t ON t.id = e.transfer_id
         WHERE t.idempotency_key LIKE 'history:%' GROUP BY e.account_id) d
 WHERE a.id = d.account_id;
SQL
psql "$PG/$DB" -qc "VACUUM ANALYZE" -c "CHECKPOINT"
echo "$(entries)" > "$OUT/entries-large"
load send-large send --warmup 2
drain
pgbench -n -c 16 -j 2 -T "$SECS" -f bench/ledger.pgbench "$PG/$DB" 2>>"$OUT/pgbench.log" | awk '/^tps = /{print $3; exit}' > "$OUT/ledger-large.tps"

for t in ceiling ledger ledger-small ledger-large; do
  [ -s "$OUT/$t.tps" ] || { echo "pgbench gave no rate for $t; see $OUT/pgbench.log" >&2; exit 1; }
done

step "results (raw runs in $OUT)"
python3 - "$OUT" "$SESSIONS" <<'PY'
import json, sys
out, sessions = sys.argv[1], int(sys.argv[2])
j = lambda n: json.load(open(f"{out}/{n}.json"))
f = lambda n: float(open(f"{out}/{n}").read().split()[0])
browse, send = j("browse"), j("send")
hops = browse["all_hops"]["count"]
journeys = round(send["journeys_per_second"] * send["seconds"])
wal, commits = map(int, open(f"{out}/send.pg").read().split())
before, after, live0, live1, size = map(int, open(f"{out}/sessions.mem").read().split())
per_session = (after - before) / (live1 - live0)
rows = [
    ("menu hops/s (browse, 64 clients)", f'{browse["hops_per_second"]:,.0f}'),
    ("CPU per menu hop: gateway / Redis / PostgreSQL", " / ".join(f'{1e6 * f(f"browse.cpu-{p}") / hops:.0f} µs' for p in ("gateway", "redis", "postgres"))),
    ("send journeys/s (5 hops, one transfer each)", f'{send["journeys_per_second"]:,.0f}'),
    ("CPU per send journey: gateway / Redis / PostgreSQL", " / ".join(f'{1e3 * f(f"send.cpu-{p}") / journeys:.2f} ms' for p in ("gateway", "redis", "postgres"))),
    ("PostgreSQL transactions per send journey (receipts and events included)", f"{commits / journeys:.1f}"),
    ("WAL bytes per send journey", f"{wal / journeys:,.0f}"),
    ("commit ceiling: one-row UPDATE transactions/s (pgbench, 32 clients)", f'{f("ceiling.tps"):,.0f}'),
    ("ledger function transfers/s (pgbench, 16 clients)", f'{f("ledger.tps"):,.0f}'),
    (f"Redis memory per live session ({live1 - live0:,} loaded, record {size} bytes)", f"{per_session:,.0f} bytes"),
    (f"  extrapolated to 10^7 live sessions", f"{per_session * 1e7 / 2**30:,.1f} GiB"),
]
for name, live in (("few-1", "10^3"), ("many", f"{sessions:,}"), ("few-2", "10^3, again")):
    r = j(name)
    rows.append((f"menu hops at {live} live sessions: hops/s, p50, p99", f'{r["hops_per_second"]:,.0f}, {r["all_hops"]["p50_ms"]} ms, {r["all_hops"]["p99_ms"]} ms'))
for size in ("small", "large"):
    r, n = j(f"send-{size}"), int(f(f"entries-{size}"))
    pin = r["steps"].get("send.pin", r["all_hops"])
    rows.append((f"send journeys at {n:,} ledger entries: journeys/s, transfer hop p50, p99", f'{r["journeys_per_second"]:,.0f}, {pin["p50_ms"]} ms, {pin["p99_ms"]} ms'))
    rows.append((f"  ledger function at {n:,} entries (pgbench, 16 clients)", f'{f(f"ledger-{size}.tps"):,.0f}/s'))
w = max(len(n) for n, _ in rows)
for n, v in rows:
    print(f"{n:<{w}}  {v}")
PY

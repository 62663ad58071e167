#!/usr/bin/env bash
# Measures the gateway against references run in the same window on this machine,
# interleaved, median of ROUNDS, and prints each gateway figure with its ratio:
#   menu hops        vs a bare hyper server doing one Redis GET and SET per request
#   send journeys    vs pgbench calling our ledger function, and vs pgbench's TPC-B,
#                    with sends posted in groups (the default) and posted alone
# plus p99 latencies at 70% of the measured peak (the bare server's at 70% of its own, the
# ledger function's at the gateway's transfer rate), resident memory and session size.
#
# Needs PostgreSQL (127.0.0.1:5432, user postgres) and Redis (127.0.0.1:6379), and
# pgbench. Knobs: ROUNDS (3), BENCH_SECONDS (10), BENCH_WARMUP (3),
# BENCH_CONCURRENCY (64), PGBENCH_CLIENTS (16). JSON of every run goes to $OUT.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
SECS=${BENCH_SECONDS:-10}
WARMUP=${BENCH_WARMUP:-3}
CONC=${BENCH_CONCURRENCY:-64}
PGCLIENTS=${PGBENCH_CLIENTS:-16}
SUBS=1000
PG=postgres://postgres@127.0.0.1:5432
GW=127.0.0.1:18181
ALONE=127.0.0.1:18182
REF=127.0.0.1:18190
OUT=${OUT:-$(mktemp -d)}
mkdir -p "$OUT"; : > "$OUT/memory"
BIN=./target/release/ussd-gateway

step() { printf '\n==> %s\n' "$*" >&2; }
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

mem() { # mem PHASE → the gateway's resident memory now and its peak so far, in $OUT/memory
  awk -v phase="$1" '/VmRSS/{rss=$2} /VmHWM/{hwm=$2} END{printf "%s %d %d\n", phase, rss, hwm}' \
    "/proc/$gw_pid/status" >> "$OUT/memory"
}

command -v pgbench >/dev/null || { echo "pgbench is missing: apt-get install postgresql-client" >&2; exit 1; }

step "building the gateway and the reference server (release)"
cargo build --release --quiet --bin ussd-gateway --example reference_server

step "fresh databases: ussd_bench (gateway, $SUBS demo subscribers) and ussd_tpcb (pgbench -i -s 10)"
psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS ussd_bench WITH (FORCE)" -c "DROP DATABASE IF EXISTS ussd_tpcb WITH (FORCE)" -c "CREATE DATABASE ussd_tpcb"
pgbench -i -s 10 -q "$PG/ussd_tpcb" 2>/dev/null
redis-cli -h 127.0.0.1 --scan --pattern 'bench:*' | xargs -r redis-cli -h 127.0.0.1 DEL >/dev/null

step "starting the gateway on $GW and the reference server on $REF"
# The generator reuses $SUBS subscribers far faster than people could dial: the
# per-number rate limit is lifted so that it measures hops, not refusals.
DATABASE_URL=$PG/ussd_bench REDIS_URL=redis://127.0.0.1:6379 REDIS_KEY_PREFIX=bench: \
  DEMO_SUBSCRIBERS=$SUBS RATE_PER_MSISDN_PER_MINUTE=100000000 LOG_FORMAT=json RUST_LOG=warn \
  "$BIN" serve --demo --listen "$GW" > "$OUT/gateway.log" 2>&1 &
gw_pid=$!; pids+=("$gw_pid")
./target/release/examples/reference_server "$REF" redis://127.0.0.1:6379 2> "$OUT/reference.log" &
ref_pid=$!; pids+=("$ref_pid")
for url in "$GW/healthz" "$REF/"; do
  for _ in $(seq 1 120); do curl -sf "http://$url" >/dev/null 2>&1 && break; sleep 0.5; done
  curl -sf "http://$url" >/dev/null || { echo "$url did not come up; see $OUT" >&2; exit 1; }
done
mem started

# The same gateway with every send posted alone (GROUP_POSTING=false), on the same
# database, up only for its own runs.
alone_up() {
  ADMIN_LISTEN=127.0.0.1:19182 DATABASE_URL=$PG/ussd_bench REDIS_URL=redis://127.0.0.1:6379 REDIS_KEY_PREFIX=bench-alone: \
    DEMO_SUBSCRIBERS=$SUBS RATE_PER_MSISDN_PER_MINUTE=100000000 LOG_FORMAT=json RUST_LOG=warn GROUP_POSTING=false \
    "$BIN" serve --demo --listen "$ALONE" >> "$OUT/alone.log" 2>&1 &
  alone_pid=$!; pids+=("$alone_pid")
  for _ in $(seq 1 120); do curl -sf "http://$ALONE/healthz" >/dev/null 2>&1 && return; sleep 0.5; done
  echo "the gateway posting alone did not come up; see $OUT/alone.log" >&2; exit 1
}
alone_down() { kill "$alone_pid"; wait "$alone_pid" 2>/dev/null || true; }

load() { # load NAME URL MIX CONCURRENCY [extra args…] → JSON in $OUT/NAME.json
  local name=$1 url=$2 mix=$3 conc=$4; shift 4
  "$BIN" loadtest --url "http://$url" --mix "$mix" --subscribers $SUBS --concurrency "$conc" \
    --duration "$SECS" --warmup "$WARMUP" --json "$@" > "$OUT/$name.json"
}
cpu_load() { # cpu_load NAME PID URL MIX CONCURRENCY [args…] → load, and PID's CPU ticks over the measured window in $OUT/NAME.cpu
  local name=$1 pid=$2; shift 2
  (sleep "$WARMUP"; awk '{print $14 + $15}' "/proc/$pid/stat" > "$OUT/$name.cpu") &
  local reader=$!
  load "$name" "$@"
  wait "$reader"
  awk '{print $14 + $15}' "/proc/$pid/stat" >> "$OUT/$name.cpu"
}
pgb() { # pgb NAME DB [args…] → tps in $OUT/NAME.tps
  local name=$1 db=$2; shift 2
  pgbench -n -c "$PGCLIENTS" -j 2 -T "$SECS" "$@" "$PG/$db" 2>/dev/null \
    | awk '/^tps = /{print $3; exit}' > "$OUT/$name.tps"
}

drain() { # drain NAME → waits until the receipts of the send run went out; "backlog seconds" in $OUT/NAME.drain
  local name=$1 backlog start left
  backlog=$(psql "$PG/ussd_bench" -Atc "SELECT count(*) FROM outbox WHERE status = 'queued'")
  start=$(date +%s.%N)
  for _ in $(seq 1 600); do
    left=$(psql "$PG/ussd_bench" -Atc "SELECT count(*) FROM outbox WHERE status = 'queued'")
    [ "$left" -eq 0 ] && break
    printf '   %s receipts still queued\r' "$left" >&2
    sleep 1
  done
  [ "$left" -eq 0 ] || { echo "the outbox did not drain in 10 minutes; see $OUT/gateway.log" >&2; exit 1; }
  echo "$backlog $(echo "$(date +%s.%N) - $start" | bc)" > "$OUT/$name.drain"
  settle
}

settle() { # what autovacuum and the checkpointer would do between runs, done now
  # (this machine's PostgreSQL runs with autovacuum off), for both databases alike,
  # so that no run pays for the dead rows and dirty pages of the one before
  for db in ussd_bench ussd_tpcb; do psql "$PG/$db" -qc "VACUUM ANALYZE"; done
  psql "$PG/postgres" -qc "CHECKPOINT"
}

for r in $(seq 1 "$ROUNDS"); do
  step "round $r of $ROUNDS: reference hops, gateway menu hops, pgbench ledger, gateway send (in groups, alone), TPC-B"
  cpu_load "ref-$r" "$ref_pid" "$REF" browse "$CONC" --no-check
  cpu_load "menu-$r" "$gw_pid" "$GW" browse "$CONC"; mem "menu-$r"
  pgb "ledger-$r" ussd_bench -f bench/ledger.pgbench
  # pgbench's transfers queue receipts too; the gateway's send run should not send them.
  drain "ledger-$r"
  load "send-$r" "$GW" send "$CONC"
  # The worker sends receipts while transfers run; what is left is drained here so
  # that no measurement after this one competes with a backlog it did not cause.
  mem "send-$r"
  drain "send-$r"
  alone_up
  load "alone-$r" "$ALONE" send "$CONC"
  alone_down
  drain "alone-$r"; mem "drained-$r"
  pgb "tpcb-$r" ussd_tpcb
done

step "latency at 70% of the measured peak (open loop), and the references' beside it"
settle
rate() { # rate KIND → 70% of the median journeys/s of the closed-loop rounds of KIND
  python3 - "$OUT" "$ROUNDS" "$1" <<'PY'
import json, statistics, sys
out, rounds, kind = sys.argv[1], int(sys.argv[2]), sys.argv[3]
runs = [json.load(open(f"{out}/{kind}-{r}.json")) for r in range(1, rounds + 1)]
print(round(0.7 * statistics.median(r["journeys_per_second"] for r in runs), 1))
PY
}
menu70=$(rate menu)
send70=$(rate send)
load menu-70 "$GW" browse 4096 --rate "$menu70"; mem menu-70
# The bare server at 70% of its own peak: the tail this machine gives two Redis
# commands behind HTTP at that load, with the same generator.
load ref-70 "$REF" browse 4096 --rate "$(rate ref)" --no-check
load send-70 "$GW" send 4096 --rate "$send70"; mem send-70
# The ledger function alone at the gateway's transfer rate, its latency counted from
# each transaction's scheduled start as the generator counts from each hop's.
# Its first WARMUP seconds are not counted: each new backend compiles the function first.
pgbench -n -c "$PGCLIENTS" -j 2 -T "$((SECS + WARMUP))" -R "$send70" -l --log-prefix="$OUT/ledger-70" \
  -f bench/ledger.pgbench "$PG/ussd_bench" > /dev/null 2>&1
rss_kb=$(awk '/VmHWM/{print $2}' "/proc/$gw_pid/status")
key=$(redis-cli -h 127.0.0.1 --scan --pattern 'bench:s:*' 2>/dev/null | head -n 200 | tail -n 1 || true)
session_bytes=$(redis-cli -h 127.0.0.1 HSTRLEN "$key" d)

step "results (median of $ROUNDS; raw runs in $OUT)"
python3 - "$OUT" "$ROUNDS" "$rss_kb" "$session_bytes" "$CONC" "$PGCLIENTS" "$WARMUP" "$SECS" "$(getconf CLK_TCK)" <<'PY'
import json, statistics, sys, platform, os
out, rounds, rss_kb, session, conc, pgclients = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], sys.argv[6]
warmup, secs, tick = float(sys.argv[7]), float(sys.argv[8]), int(sys.argv[9])
def runs(kind): return [json.load(open(f"{out}/{kind}-{r}.json")) for r in range(1, rounds + 1)]
def tps(kind): return statistics.median(float(open(f"{out}/{kind}-{r}.tps").read() or 0) for r in range(1, rounds + 1))
med = lambda xs: statistics.median(xs)
ref = med(r["hops_per_second"] for r in runs("ref"))
menu = med(r["hops_per_second"] for r in runs("menu"))
send = med(r["transfers_per_second"] for r in runs("send"))
alone = med(r["transfers_per_second"] for r in runs("alone"))
ledger, tpcb = tps("ledger"), tps("tpcb")
m70, s70 = json.load(open(f"{out}/menu-70.json")), json.load(open(f"{out}/send-70.json"))
r70 = json.load(open(f"{out}/ref-70.json"))
menu_p99 = m70["steps"]["browse.menu"]["p99_ms"]
ref_p99 = r70["steps"]["browse.menu"]["p99_ms"]
send_p99 = s70["steps"]["send.pin"]["p99_ms"]
# pgbench's log: client, transaction, time (µs), script, epoch s, µs[, schedule lag µs]
import glob
rows = [f for path in glob.glob(f"{out}/ledger-70.*") for f in (l.split() for l in open(path)) if len(f) >= 6]
start = min((int(f[4]) + int(f[5]) / 1e6 for f in rows), default=0)
lat = sorted(int(f[2]) + (int(f[6]) if len(f) > 6 else 0)
             for f in rows if int(f[4]) + int(f[5]) / 1e6 >= start + warmup)
ledger_p99 = lat[min(len(lat) - 1, int(0.99 * len(lat)))] / 1000 if lat else float("nan")
cpu = med(r["loadgen_cpu_cores"] for r in runs("menu") + runs("send"))
rows = [
  ("menu hops/s", f"{menu:,.0f}", f"{ref:,.0f} hyper+Redis", menu / ref, "≥ 0.6"),
  ("send journeys/s", f"{send:,.0f}", f"{ledger:,.0f} pgbench ledger fn", send / ledger if ledger else 0, "≥ 0.5"),
  ("send journeys/s", f"{send:,.0f}", f"{tpcb:,.0f} pgbench TPC-B", send / tpcb if tpcb else 0, "≥ 1.0"),
  ("  posted alone", f"{alone:,.0f}", f"{ledger:,.0f} pgbench ledger fn", alone / ledger if ledger else 0, "≥ 0.5"),
]
print(f"\nmachine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}; load {conc} closed-loop clients, pgbench {pgclients} clients")
print(f"{'figure':<18} {'gateway':>10}  {'reference':<28} {'ratio':>6}  goal")
for name, g, refname, ratio, goal in rows:
    print(f"{name:<18} {g:>10}  {refname:<28} {ratio:>6.2f}  {goal}")
ledgers = [float(open(f"{out}/ledger-{r}.tps").read() or 0) for r in range(1, rounds + 1)]
tpcbs = [float(open(f"{out}/tpcb-{r}.tps").read() or 0) for r in range(1, rounds + 1)]
by_round = lambda kind, refs: " ".join(f"{r['transfers_per_second'] / x:.2f}" if x else "-" for r, x in zip(runs(kind), refs))
menu_rounds = " ".join(f"{m['hops_per_second'] / x['hops_per_second']:.2f}" for m, x in zip(runs("menu"), runs("ref")))
print(f"{'  each round':<18} menu / hyper+Redis {menu_rounds}; in groups / TPC-B {by_round('send', tpcbs)}; alone / ledger fn {by_round('alone', ledgers)}")
def cpu_per_hop(kind, r):  # the server's CPU µs per hop answered in round r's measured window
    t0, t1 = (int(x) for x in open(f"{out}/{kind}-{r}.cpu").read().split())
    hops = json.load(open(f"{out}/{kind}-{r}.json"))["hops_per_second"] * secs
    return (t1 - t0) / tick * 1e6 / hops if hops else float("nan")
cpu_ratios = [cpu_per_hop("menu", r) / cpu_per_hop("ref", r) for r in range(1, rounds + 1)]
print(f"{'CPU per menu hop':<18} {med(cpu_per_hop('menu', r) for r in range(1, rounds + 1)):>8.1f} µs; hyper+Redis {med(cpu_per_hop('ref', r) for r in range(1, rounds + 1)):.1f} µs, ratio {med(cpu_ratios):.2f} (rounds {' '.join(f'{x:.2f}' for x in cpu_ratios)})   goal ≤ 2")
print(f"{'menu hop p99':<18} {menu_p99:>8.2f} ms at 70% of peak ({m70['journeys_per_second']:.0f} journeys/s); hyper+Redis at 70% of its peak {ref_p99:.2f} ms, ratio {menu_p99 / ref_p99:.2f}   goal ≤ 1.5")
print(f"{'transfer hop p99':<18} {send_p99:>8.2f} ms at 70% of peak ({s70['journeys_per_second']:.0f} journeys/s); ledger fn at that rate {ledger_p99:.2f} ms   goal ≤ 50 ms")
phases = [l.split() for l in open(f"{out}/memory")]
reached = next((p for p, _, hwm in phases if int(hwm) >= rss_kb), "the end")
print(f"{'resident memory':<18} {rss_kb/1024:>8.1f} MB peak, reached by {reached}          goal ≤ 100 MB")
print(f"{'  after each run':<18} " + " ".join(f"{p} {int(rss)/1024:.0f}" for p, rss, _ in phases) + " (MB)")
print(f"{'session record':<18} {session:>8} bytes                                  goal ≤ 1024")
print(f"{'load generator':<18} {cpu:>8.2f} cores (median while driving the gateway)")
errors = sum(s["errors"] for r in runs("menu") + runs("send") + runs("alone") for s in r["steps"].values())
print(f"{'errors':<18} {errors:>8} in the gateway runs")
drains = [open(f"{out}/send-{r}.drain").read().split() for r in range(1, rounds + 1)]
left = med(int(b) for b, _ in drains)
print(f"{'receipt backlog':<18} {left:>8} receipts queued when a send run ended, drained in {med(float(t) for _, t in drains):.1f} s")
PY

#!/usr/bin/env bash
# Group posting against posting alone, side by side: two gateways on one database (one
# with GROUP_POSTING=true, one with false), driven in turn by the same send journeys at
# several concurrencies, beside pgbench calling the ledger's transfer function and
# pgbench's TPC-B with as many clients. Prints transfers/s and the PIN hop's p99 for
# each, every round, and the median.
#
# Needs what bench/run.sh needs. Knobs: ROUNDS (2), BENCH_SECONDS (8), BENCH_WARMUP (2),
# CONCURRENCIES ("16 64 256"), GROUP_POSTING_WINDOW_MS (1), GROUP_POSTING_CONCURRENCY (2).
# JSON of every run in $OUT.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-2}
SECS=${BENCH_SECONDS:-8}
WARMUP=${BENCH_WARMUP:-2}
CONCURRENCIES=${CONCURRENCIES:-16 64 256}
WINDOW=${GROUP_POSTING_WINDOW_MS:-1}
GROUPS_AT_ONCE=${GROUP_POSTING_CONCURRENCY:-2}
SUBS=1000
PG=postgres://postgres@127.0.0.1:5432
GROUPED=127.0.0.1:18183
ALONE=127.0.0.1:18184
OUT=${OUT:-$(mktemp -d)}
mkdir -p "$OUT"
BIN=./target/release/ussd-gateway

step() { printf '\n==> %s\n' "$*" >&2; }
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

command -v pgbench >/dev/null || { echo "pgbench is missing: apt-get install postgresql-client" >&2; exit 1; }

step "building the gateway (release)"
cargo build --release --quiet --bin ussd-gateway

step "fresh databases: ussd_groups ($SUBS demo subscribers) and ussd_tpcb (pgbench -i -s 10)"
psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS ussd_groups WITH (FORCE)" -c "DROP DATABASE IF EXISTS ussd_tpcb WITH (FORCE)" -c "CREATE DATABASE ussd_tpcb"
pgbench -i -s 10 -q "$PG/ussd_tpcb" 2>/dev/null

start() { # start ADDR GROUP_POSTING LOG ADMIN_ADDR
  ADMIN_LISTEN=$4 DATABASE_URL=$PG/ussd_groups REDIS_URL=redis://127.0.0.1:6379 REDIS_KEY_PREFIX="bench-groups:$1:" \
    DEMO_SUBSCRIBERS=$SUBS RATE_PER_MSISDN_PER_MINUTE=100000000 LOG_FORMAT=json RUST_LOG=warn \
    GROUP_POSTING=$2 GROUP_POSTING_WINDOW_MS=$WINDOW GROUP_POSTING_CONCURRENCY=$GROUPS_AT_ONCE "$BIN" serve --demo --listen "$1" > "$OUT/$3.log" 2>&1 &
  pids+=("$!")
  for _ in $(seq 1 120); do curl -sf "http://$1/healthz" >/dev/null 2>&1 && return; sleep 0.5; done
  echo "the gateway on $1 did not come up; see $OUT/$3.log" >&2; exit 1
}
step "starting the gateways: grouped on $GROUPED, alone on $ALONE"
# One after the other: the first seeds the database, the second finds it seeded.
start "$GROUPED" true grouped 127.0.0.1:19183
start "$ALONE" false alone 127.0.0.1:19184

send() { # send NAME ADDR CONCURRENCY
  "$BIN" loadtest --url "http://$2" --mix send --subscribers $SUBS --concurrency "$3" \
    --duration "$SECS" --warmup "$WARMUP" --json > "$OUT/$1.json"
  settle
}
pgb() { # pgb NAME DB CLIENTS [args…]
  local name=$1 db=$2 clients=$3; shift 3
  pgbench -n -c "$clients" -j 2 -T "$SECS" "$@" "$PG/$db" 2>/dev/null | awk '/^tps = /{print $3; exit}' > "$OUT/$name.tps"
  settle
}
settle() { # receipts out, dead rows vacuumed, dirty pages written, as between bench/run.sh runs
  for _ in $(seq 1 600); do
    [ "$(psql "$PG/ussd_groups" -Atc "SELECT count(*) FROM outbox WHERE status = 'queued'")" -eq 0 ] && break
    sleep 1
  done
  for db in ussd_groups ussd_tpcb; do psql "$PG/$db" -qc "VACUUM ANALYZE"; done
  psql "$PG/postgres" -qc "CHECKPOINT"
}
settle

for c in $CONCURRENCIES; do
  clients=$(( c < 32 ? c : 32 ))
  for r in $(seq 1 "$ROUNDS"); do
    step "concurrency $c, round $r of $ROUNDS"
    # Which path goes first alternates, so that neither always runs on a warmer machine.
    if (( r % 2 )); then
      send "grouped-$c-$r" "$GROUPED" "$c"; send "alone-$c-$r" "$ALONE" "$c"
    else
      send "alone-$c-$r" "$ALONE" "$c"; send "grouped-$c-$r" "$GROUPED" "$c"
    fi
    pgb "ledger-$c-$r" ussd_groups "$clients" -f bench/ledger.pgbench
    pgb "tpcb-$c-$r" ussd_tpcb "$clients"
  done
done

curl -sf "http://127.0.0.1:19183/metrics" | grep -E '^ussd_send_group' > "$OUT/groups.metrics" || true

step "results (raw runs in $OUT)"
python3 - "$OUT" "$ROUNDS" "$CONCURRENCIES" "$WINDOW" "$GROUPS_AT_ONCE" <<'PY'
import json, statistics, sys
out, rounds, concs, window, at_once = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(), sys.argv[4], sys.argv[5]
def run(kind, c, r): return json.load(open(f"{out}/{kind}-{c}-{r}.json"))
def tps(kind, c, r): return float(open(f"{out}/{kind}-{c}-{r}.tps").read() or 0)
metrics = dict(l.rsplit(" ", 1) for l in open(f"{out}/groups.metrics").read().splitlines())
groups = sum(float(v) for k, v in metrics.items() if k.startswith("ussd_send_groups_total"))
sends = float(metrics.get("ussd_send_group_sends_total", 0))
failed = float(metrics.get('ussd_send_groups_total{result="failed"}', 0))
print(f"group window {window} ms, {at_once} groups at once; {sends:,.0f} sends in {groups:,.0f} groups (mean {sends / groups if groups else 0:.1f}), {failed:.0f} failed and posted send by send")
print("transfers/s (PIN hop p99 ms), each round")
print(f"{'clients':>7}  {'grouped':<30} {'alone':<30} {'ledger fn':<18} {'TPC-B':<18} grouped/TPC-B  alone/ledger")
for c in concs:
    rs = range(1, rounds + 1)
    g = [run("grouped", c, r) for r in rs]; a = [run("alone", c, r) for r in rs]
    gt = [x["transfers_per_second"] for x in g]; at = [x["transfers_per_second"] for x in a]
    gp = [x["steps"]["send.pin"]["p99_ms"] for x in g]; ap = [x["steps"]["send.pin"]["p99_ms"] for x in a]
    lt = [tps("ledger", c, r) for r in rs]; tt = [tps("tpcb", c, r) for r in rs]
    errors = sum(s["errors"] for x in g + a for s in x["steps"].values())
    fmt = lambda ts, ps: " ".join(f"{t:,.0f}({p:.0f})" for t, p in zip(ts, ps))
    med = statistics.median
    print(f"{c:>7}  {fmt(gt, gp):<30} {fmt(at, ap):<30} {' '.join(f'{x:,.0f}' for x in lt):<18} {' '.join(f'{x:,.0f}' for x in tt):<18}"
          f" {med(gt) / med(tt):>6.2f}        {med(at) / med(lt):>5.2f}   errors {errors}")
PY

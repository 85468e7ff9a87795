#!/usr/bin/env bash
# Issue 13, item 2's goal, measured: "at 12 million codes and a month of lines, a retro change for one
# practitioner is reviewed in seconds, not by re-reading the month" — `review --retro` with and without
# the claim index by code (docs/recovery-report.md, "The claim index").
#
#   1. a broker of its own (scripts/broker.sh, retention off: the lines are stamped in the past);
#   2. `gen`: CODES practitioner codes and DAYS × PER_DAY lines, cut into the DAYS days before today
#      (Beijing time), each sent to the claims topic stamped with its service time (`send
#      --stamp-service-time`);
#   3. each day's inline decisions (decided from the day's file) sent to the decision topic stamped with
#      their lines' service times, then the nightly review of the day from the topic with `--index-dir`
#      and `--previous-topic`: it writes the claim index and one decision index per decision topic
#      (PREVIOUS=0 leaves the decision topics empty and unindexed);
#   4. one practitioner of the month suspended from BACK days ago: the table changed and the
#      `status.retro` record the stream would write, written directly;
#   5. `review --retro` timed without and with the indexes (RUNS each), each run's reads printed (claim
#      offsets and decision records), and the two reports compared (they must be identical but for the
#      line that says how the lines and decisions were read).
#
#   scripts/bench-retro-index.sh                                    full size: 12M codes, 30 days of 500k lines
#   CODES=20000 DAYS=3 PER_DAY=10000 scripts/bench-retro-index.sh   a small run (about a minute)
#
# Work files in .tools/bench-retro-index (W=…), about 1 GB at full size plus the broker's log
# (about 10 GB: DAYS × PER_DAY lines and as many decisions); PORT (default 19492) for the broker.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
CODES="${CODES:-12000000}"
DAYS="${DAYS:-30}"
PER_DAY="${PER_DAY:-500000}"
BACK="${BACK:-$(( DAYS < 10 ? DAYS - 1 : 10 ))}"
PARTITIONS="${PARTITIONS:-4}"
PREVIOUS="${PREVIOUS:-1}"
RUNS="${RUNS:-2}"
PORT="${PORT:-19492}"
W="${W:-$ROOT/.tools/bench-retro-index}"
C="$ROOT/target/release/claimgate"
B="127.0.0.1:$PORT"
export TZ=Asia/Shanghai   # days are Beijing days, as service times are

cargo build --release --quiet --bin claimgate
mkdir -p "$W"
BROKER_DIR="$W/broker-$PORT"
KAFKA_OVERRIDES="log.retention.ms=-1 ${KAFKA_OVERRIDES:-}" scripts/broker.sh start --port "$PORT" --dir "$BROKER_DIR" >"$W/broker.out"
trap 'scripts/broker.sh stop --port "$PORT" --dir "$BROKER_DIR" >/dev/null 2>&1 || true' EXIT

measure() {   # command… → prints "wall_s peak_rss_kb"
    /usr/bin/time -f '%e %M' -o "$W/time.log" "$@" >"$W/last.out" 2>"$W/last.err" || { cat "$W/last.err" >&2; exit 1; }
    cat "$W/time.log"
}

# The month: the DAYS days before today.
DATES=()
for ((k = DAYS; k >= 1; k--)); do DATES+=("$(date -d "today - $k days" +%F)"); done
TODAY="$(date +%F)"
DATA="$W/data-$CODES-$DAYS-$PER_DAY-${DATES[0]}"
if [[ ! -f "$DATA/done" ]]; then
    rm -rf "$DATA"
    mkdir -p "$DATA/days"
    "$C" gen --out-dir "$DATA" --practitioners "$CODES" --claims $(( DAYS * PER_DAY )) --day "${DATES[0]}" \
        --malformed-rate 0 --quiet
    # Cut into days: line n goes to day n / PER_DAY, its service date moved there (its time of day kept).
    awk -v n="$PER_DAY" -v dates="${DATES[*]}" -v out="$DATA/days" '
        BEGIN { split(dates, d, " ") }
        { k = int((NR - 1) / n) + 1; line = $0
          sub(/"fee_ocur_time":"[0-9]+-[0-9]+-[0-9]+/, "\"fee_ocur_time\":\"" d[k], line)
          print line > (out "/day-" k ".jsonl") }' "$DATA/claims.jsonl"
    rm "$DATA/claims.jsonl"
    "$C" tables build --practitioners "$DATA/practitioners.jsonl" --institutions "$DATA/institutions.jsonl" \
        --out "$DATA/before.snap" --quiet
    touch "$DATA/done"
fi

PFX="bench$(date +%s)."
CLAIMS="${PFX}claims"
"$C" topics create --brokers "$B" --prefix "$PFX" --partitions "$PARTITIONS" >/dev/null
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem:/{print $2}') GiB; $(date -u +%FT%TZ)"
echo "codes: $CODES; days: $DAYS (${DATES[0]} to ${DATES[-1]}) of $PER_DAY lines; $PARTITIONS partitions; topic prefix $PFX"

INDEX="$W/index-$PFX"
rm -rf "$INDEX"
sent=0; nightly=0
for ((k = 1; k <= DAYS; k++)); do
    day="${DATES[k-1]}"
    next="$(date -d "$day + 1 day" +%F)"
    t=$(measure "$C" send --brokers "$B" --topic "$CLAIMS" --stamp-service-time "$DATA/days/day-$k.jsonl")
    sent=$(echo "$sent + ${t% *}" | bc)
    PREV_ARGS=()
    if [[ "$PREVIOUS" == 1 ]]; then
        # The inline decisions of the day (decided from the file, as the stream would have), stamped
        # with their lines' service times (`send` reads the time of a line that parses as a claim: a
        # psn_no is added for it; the review ignores it) so that the day's nightly reads and indexes them.
        "$C" review --claims "$DATA/days/day-$k.jsonl" --snapshot "$DATA/before.snap" --out "$W/inline.jsonl" --quiet
        sed 's/^{/{"psn_no":"bench",/' "$W/inline.jsonl" >"$W/inline-stamped.jsonl"
        "$C" send --brokers "$B" --topic "${PFX}claims.accepted" --stamp-service-time "$W/inline-stamped.jsonl" 2>/dev/null
        PREV_ARGS=(--previous-topic "${PFX}claims.accepted" --previous-topic "${PFX}claims.rejected")
    fi
    t=$(measure "$C" review --brokers "$B" --claims-topic "$CLAIMS" --from "$day" --until "$next" \
        --snapshot "$DATA/before.snap" --index-dir "$INDEX" --out "$W/decisions.jsonl" "${PREV_ARGS[@]}")
    nightly=$(echo "$nightly + ${t% *}" | bc)
    grep -h -e '^claim index:' -e '^decision index:' "$W/last.err" | sed "s|^|  day $k: |"
done
lines=$(( DAYS * PER_DAY ))
bytes=$(cat "$INDEX/$CLAIMS"@*.cgidx | wc -c)
echo "sent $lines lines in ${sent} s; nightly reviews with --index-dir: ${nightly} s in all"
echo "claim index: $(ls "$INDEX/$CLAIMS"@*.cgidx | wc -l) files, $bytes bytes, $(echo "scale=2; $bytes / $lines" | bc) bytes a line"
if [[ "$PREVIOUS" == 1 ]]; then
    dbytes=$(cat "$INDEX/${PFX}claims.accepted"@*.cgidx "$INDEX/${PFX}claims.rejected"@*.cgidx | wc -c)
    echo "decision indexes: $(ls "$INDEX/${PFX}claims.accepted"@*.cgidx "$INDEX/${PFX}claims.rejected"@*.cgidx | wc -l) files, $dbytes bytes, $(echo "scale=2; $dbytes / $lines" | bc) bytes a decision"
fi

# One practitioner of the month, suspended from BACK days ago, decided now.
pick="$DATA/days/day-$(( DAYS - BACK + 1 )).jsonl"
CODE=$(sed -n "$(( PER_DAY / 2 ))p" "$pick" | grep -o '"bilg_dr_codg":"[^"]*"' | cut -d'"' -f4)
FROM="${DATES[DAYS-BACK]} 00:00:00"
NOW="$(date '+%F %T')"
UNTIL="$(date -d '+60 seconds' '+%F %T')"
python3 - "$DATA/practitioners.jsonl" "$CODE" "$FROM" >"$W/changed.jsonl" <<'EOF'
import json, sys
path, code, start = sys.argv[1:]
needle = '"code":"%s"' % code
with open(path) as f:
    for line in f:
        if needle in line:
            r = json.loads(line)
            r.setdefault("periods", []).append({"status": "suspended", "from": start, "until": "2099-01-01 00:00:00",
                                                "decision_id": "BENCH-1", "basis": "bench"})
            r["version"] = r.get("version", 1) + 1
            print(json.dumps(r, ensure_ascii=False))
            break
EOF
grep -v "\"code\":\"$CODE\"" "$DATA/practitioners.jsonl" >"$W/after.jsonl"
cat "$W/changed.jsonl" >>"$W/after.jsonl"
"$C" tables build --practitioners "$W/after.jsonl" --institutions "$DATA/institutions.jsonl" --out "$W/after.snap" --quiet
rm "$W/after.jsonl"
printf '{"kind":"practitioner","code":"%s","from":"%s","until":"%s","version_before":1,"version_after":2,"changes":[{"change":"added","entry":"period","status":"suspended","from":"%s","until":"2099-01-01 00:00:00","decision_id":"BENCH-1","basis":"bench"}],"recorded_at":"%s","source":"bench"}\n' \
    "$CODE" "$FROM" "$UNTIL" "$FROM" "$NOW" >"$W/retro.jsonl"
"$C" send --brokers "$B" --topic "${PFX}status.retro" "$W/retro.jsonl" 2>/dev/null
echo "suspended: $CODE from $FROM (decided $NOW): $(cat "$DATA"/days/day-*.jsonl | grep -c "$CODE") lines of the month name it"

retro() {   # name, extra args… → prints "wall_s peak_rss_kb"
    local name="$1"; shift
    measure "$C" review --brokers "$B" --retro --retro-topic "${PFX}status.retro" --retro-from "$NOW" \
        --claims-topic "$CLAIMS" --previous-topic "${PFX}claims.accepted" --previous-topic "${PFX}claims.rejected" \
        --snapshot "$W/after.snap" --report "$W/retro-$name.md" --out "$W/retro-$name.jsonl" --quiet "$@"
}
for ((r = 1; r <= RUNS; r++)); do
    echo "review --retro, run $r: without the index $(retro by-time) (s, KB); with --index-dir $(retro indexed --index-dir "$INDEX") (s, KB)"
done
for name in by-time indexed; do
    echo "  $name: $(grep '^| reviewed at' "$W/retro-$name.md" | cut -d'|' -f3 | xargs)"
    echo "  $name, claims: $(grep '^| inputs' "$W/retro-$name.md" | cut -d'|' -f3 | tr ';' '\n' | grep 'offsets read in all\|^ topic .*offsets read' | xargs)"
    echo "  $name, decisions: $(grep '^| inputs' "$W/retro-$name.md" | cut -d'|' -f3 | tr ';' '\n' | grep -o '[0-9]* decisions read[^;]*' | xargs)"
done
body() { sed -n '/^## Totals by verdict/,$p' "$1"; }
if diff <(body "$W/retro-by-time.md") <(body "$W/retro-indexed.md") >/dev/null \
    && diff <(sed 's/"decided_at":"[^"]*"//' "$W/retro-by-time.jsonl") <(sed 's/"decided_at":"[^"]*"//' "$W/retro-indexed.jsonl") >/dev/null; then
    echo "reports and decisions identical ($(wc -l <"$W/retro-indexed.jsonl") lines decided; $(grep -m1 'to recover' "$W/retro-indexed.md" | xargs))"
else
    echo "the reports differ: $W/retro-by-time.md $W/retro-indexed.md" >&2
    exit 1
fi

#!/usr/bin/env bash
# Samples the memory of claimgate's large-table instances (args contain claimgate-state/scale-) every 2 s.
out=/tmp/memprof
while true; do
  for pid in $(pgrep -f "claimgate-state/scale-claimgate" 2>/dev/null); do
    [[ -r /proc/$pid/smaps ]] || continue
    ts=$(date +%H%M%S)
    { echo "# $ts pid $pid"; grep -E "^(Rss|Pss|Anonymous|AnonHugePages|Private_Dirty|Shared_Clean)" /proc/$pid/smaps_rollup 2>/dev/null
      # mappings over 20 MB: address range and their Rss
      awk '/^[0-9a-f]+-[0-9a-f]+ /{range=$1; name=$6} /^Rss:/{ if ($2 > 20000) print range, name, "Rss", $2, "kB"}' /proc/$pid/smaps 2>/dev/null
      grep VmHWM /proc/$pid/status; } >> $out/pid-$pid.txt
  done
  sleep 2
done

#!/usr/bin/env bash
# Reproduces the predictor's evaluation on simulated Social Network data: the
# datasets (seer sim, diurnal load, random injection campaign; training seeds 7
# and 9-17, 2 h each; held-out seeds 8, 1 h, and 18, 2 h), then the models and
# their reports. Each table lands in $OUT/<name>/report.md. Takes about four hours on
# 2 cores (the last section, below, five more). Datasets made now carry the stall rule (a second in which nothing completed
# keeps the verdict of the tick before); the BENCHMARKS.md tables above "Stalls" were
# made without it, so reproduce those at 16e1584~.
# Usage: scripts/predictor-experiments.sh [OUT]   (default out/experiments)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-$root/out/experiments}"
mkdir -p "$out/data" "$out/models"
bash "$root/scripts/setup.sh"
cargo build --release -q -p seer -p seer-predictor
bin="${CARGO_TARGET_DIR:-$root/target}/release"
sim() { # seed hours
    [ -f "$out/data/sn-$1/dataset.parquet" ] && return 0
    "$bin/seer" sim --topology social-network --duration "$2h" --load "diurnal:period=$2h" \
        --rate 800 --inject campaign --seed "$1" --out "$out/data/sn-$1"
}
for s in 7 9 10 11 12 13 14 15 16 17 18; do sim "$s" 2; done
sim 8 1
test="$out/data/sn-8/dataset.parquet"
small="$out/data/sn-7/dataset.parquet"
all=()
for s in 7 9 10 11 12; do all+=("$out/data/sn-$s/dataset.parquet"); done
# The tables before "Validation in blocks" were made validating on each dataset's
# last fifth: a 10 h block is longer than any dataset, which gives that (give or
# take one window).
train() { # name, then train flags (EPOCHS / PATIENCE / VAL_BLOCK override 8 / 2 / 10h)
    local name="$1"; shift
    [ -f "$out/models/$name.seer" ] && return 0
    "$bin/seer-predictor" train --epochs "${EPOCHS:-8}" --patience "${PATIENCE:-2}" --batch 256 \
        --val-block "${VAL_BLOCK:-10h}" --out "$out/models/$name.seer" "$@"
}
evaluate() { # report name, then models
    local name="$1"; shift
    local models=()
    for m in "$@"; do models+=("$out/models/$m.seer"); done
    "$bin/seer-predictor" eval --model "${models[@]}" --data "${test[@]}" --out "$out/$name" "${EXTRA[@]}"
}
# The headline model: hybrid on all 10 h, against the baselines.
train hybrid-10h --data "${all[@]}" --model hybrid
EXTRA=(--baselines "$small"); evaluate headline hybrid-10h
EXTRA=()
# Architectures on the same 2 h.
for a in hybrid cnn lstm; do train "$a-2h" --data "$small" --model "$a"; done
evaluate architectures hybrid-2h cnn-2h lstm-2h
# Signals: queue depth (spans), app-only (held by a worker), network-only
# (waiting for a worker), CPU utilisation.
for c in active wait cpu; do train "hybrid-2h-$c" --data "$small" --model hybrid --channels "$c"; done
evaluate signals hybrid-2h hybrid-2h-active hybrid-2h-wait hybrid-2h-cpu
# Training-set size.
for f in 0.25 0.5; do train "hybrid-2h-f$f" --data "$small" --model hybrid --train-fraction "$f"; done
evaluate training-size hybrid-2h-f0.25 hybrid-2h-f0.5 hybrid-2h hybrid-10h
# Horizon (a horizon below the 100 ms tick is the same as 100 ms).
for hz in 200ms 500ms 1s; do train "hybrid-2h-h$hz" --data "$small" --model hybrid --horizon "$hz"; done
evaluate horizon hybrid-2h hybrid-2h-h200ms hybrid-2h-h500ms hybrid-2h-h1s
# Quiet windows subsampled per epoch (--quiet-fraction), then twice the data.
twenty=("${all[@]}")
for s in 13 14 15 16 17; do twenty+=("$out/data/sn-$s/dataset.parquet"); done
train hybrid-10h-q25 --data "${all[@]}" --model hybrid --quiet-fraction 0.25
train hybrid-10h-q25-o5 --data "${all[@]}" --model hybrid --quiet-fraction 0.25 --onset-weight 5
train hybrid-20h --data "${twenty[@]}" --model hybrid
train hybrid-20h-q25 --data "${twenty[@]}" --model hybrid --quiet-fraction 0.25
EPOCHS=10 PATIENCE=3 train hybrid-20h-q25-lr5e-4 --data "${twenty[@]}" --model hybrid \
    --quiet-fraction 0.25 --lr 5e-4
train hybrid-20h-q25-w50 --data "${twenty[@]}" --model hybrid --quiet-fraction 0.25 --window 50
# Validation in 5-minute blocks, the epoch picked by the loss or by the accuracy.
VAL_BLOCK=5m EPOCHS=30 PATIENCE=4 train hybrid-20h-q25-blocks --data "${twenty[@]}" \
    --model hybrid --quiet-fraction 0.25
VAL_BLOCK=5m EPOCHS=12 PATIENCE=3 train hybrid-20h-q25-blocks-acc --data "${twenty[@]}" \
    --model hybrid --quiet-fraction 0.25 --monitor accuracy
VAL_BLOCK=5m EPOCHS=12 PATIENCE=3 train hybrid-20h-q25-blocks-acc-o3 --data "${twenty[@]}" \
    --model hybrid --quiet-fraction 0.25 --monitor accuracy --onset-weight 3
# Three signals per service: outstanding, held by a worker, waiting for one.
VAL_BLOCK=5m EPOCHS=12 PATIENCE=3 train hybrid-20h-q25-blocks-acc-qaw --data "${twenty[@]}" \
    --model hybrid --quiet-fraction 0.25 --monitor accuracy --channels queue,active,wait
VAL_BLOCK=5m EPOCHS=30 PATIENCE=4 train hybrid-20h-q25-blocks-qaw --data "${twenty[@]}" \
    --model hybrid --quiet-fraction 0.25 --channels queue,active,wait
# Evaluated on both held-out seeds (8 and 18) together.
test=("$out/data/sn-8/dataset.parquet" "$out/data/sn-18/dataset.parquet")
evaluate data-size hybrid-10h hybrid-10h-q25 hybrid-10h-q25-o5 hybrid-20h hybrid-20h-q25 \
    hybrid-20h-q25-lr5e-4 hybrid-20h-q25-w50
EXTRA=(--baselines "$small"); evaluate headline-20h hybrid-20h-q25
for th in 0.3 0.7; do EXTRA=(--threshold "$th"); evaluate "threshold-$th" hybrid-10h hybrid-20h-q25; done
for th in 0.5 0.3 0.2; do
    EXTRA=(--threshold "$th")
    evaluate "blocks-$th" hybrid-20h-q25 hybrid-20h-q25-blocks hybrid-20h-q25-blocks-acc \
        hybrid-20h-q25-blocks-acc-o3 hybrid-20h-q25-blocks-acc-qaw hybrid-20h-q25-blocks-qaw
done
# Alarms from the loss-picked model, culprits from the accuracy-picked one.
for th in 0.5 0.3; do
    EXTRA=(--threshold "$th" --culprit-model "$out/models/hybrid-20h-q25-blocks-acc-qaw.seer")
    evaluate "pair-$th" hybrid-20h-q25-blocks-qaw
done
# The three-signal model against the baselines (the "Stalls" table).
EXTRA=(--baselines "$small"); evaluate baselines-qaw hybrid-20h-q25-blocks-qaw
# Seed variance of the culprit model, and the two seeds' mean as the ranking.
VAL_BLOCK=5m EPOCHS=12 PATIENCE=3 train hybrid-20h-q25-blocks-acc-qaw-s2 --data "${twenty[@]}" \
    --model hybrid --quiet-fraction 0.25 --monitor accuracy --channels queue,active,wait --seed 2
EXTRA=(--threshold 0.3 --culprit-model "$out/models/hybrid-20h-q25-blocks-acc-qaw.seer"
    "$out/models/hybrid-20h-q25-blocks-acc-qaw-s2.seer")
evaluate ensemble-0.3 hybrid-20h-q25-blocks-qaw hybrid-20h-q25-blocks-acc-qaw-s2
EXTRA=()
# The demo with each model as the controller's detector, seeds 1-4.
for seed in 1 2 3 4; do
    "$bin/seer" demo --seed "$seed" >"$out/demo-rule-$seed.txt"
    for m in hybrid-10h hybrid-10h-q25 hybrid-20h hybrid-20h-q25 hybrid-20h-q25-w50 \
        hybrid-20h-q25-blocks hybrid-20h-q25-blocks-acc hybrid-20h-q25-blocks-acc-o3 \
        hybrid-20h-q25-blocks-acc-qaw hybrid-20h-q25-blocks-qaw; do
        "$bin/seer" demo --seed "$seed" --model "$out/models/$m.seer" >"$out/demo-$m-$seed.txt"
    done
    "$bin/seer" demo --seed "$seed" --model "$out/models/hybrid-20h-q25-blocks-qaw.seer" \
        --culprit-model "$out/models/hybrid-20h-q25-blocks-acc-qaw.seer" >"$out/demo-pair-$seed.txt"
done
# Deadlines: the same seeds simulated with a 1 s request deadline (overloads end
# with their cause), the same recipes trained on them ("Deadlines" in BENCHMARKS).
dsim() { # seed hours
    [ -f "$out/data-deadline/sn-$1/dataset.parquet" ] && return 0
    "$bin/seer" sim --topology social-network --duration "$2h" --load "diurnal:period=$2h" \
        --rate 800 --inject campaign --seed "$1" --deadline 1s --out "$out/data-deadline/sn-$1"
}
for s in 7 9 10 11 12 13 14 15 16 17 18; do dsim "$s" 2; done
dsim 8 1
twenty_d=()
for s in 7 9 10 11 12 13 14 15 16 17; do twenty_d+=("$out/data-deadline/sn-$s/dataset.parquet"); done
test=("$out/data-deadline/sn-8/dataset.parquet" "$out/data-deadline/sn-18/dataset.parquet")
VAL_BLOCK=5m EPOCHS=30 PATIENCE=4 train deadline-qaw --data "${twenty_d[@]}" \
    --model hybrid --quiet-fraction 0.25 --channels queue,active,wait
VAL_BLOCK=5m EPOCHS=12 PATIENCE=3 train deadline-acc-qaw --data "${twenty_d[@]}" \
    --model hybrid --quiet-fraction 0.25 --monitor accuracy --channels queue,active,wait
for th in 0.5 0.3; do
    EXTRA=(--threshold "$th" --baselines "$out/data-deadline/sn-7/dataset.parquet")
    evaluate "deadline-$th" deadline-qaw deadline-acc-qaw
done
# Each service's p99 latency (and arrivals) beside its three queue signals
# ("Latency and arrivals" in BENCHMARKS).
VAL_BLOCK=5m EPOCHS=14 PATIENCE=4 train deadline-qawl --data "${twenty_d[@]}" \
    --model hybrid --quiet-fraction 0.25 --channels queue,active,wait,p99_ms
VAL_BLOCK=5m EPOCHS=14 PATIENCE=4 train deadline-qawla --data "${twenty_d[@]}" \
    --model hybrid --quiet-fraction 0.25 --channels queue,active,wait,p99_ms,arrivals
for c in qawl:queue,active,wait,p99_ms qawla:queue,active,wait,p99_ms,arrivals; do
    VAL_BLOCK=5m EPOCHS=14 PATIENCE=4 train "deadline-${c%%:*}-s2" --data "${twenty_d[@]}" \
        --model hybrid --quiet-fraction 0.25 --channels "${c#*:}" --seed 2
done
VAL_BLOCK=5m EPOCHS=12 PATIENCE=3 train deadline-acc-qawl --data "${twenty_d[@]}" \
    --model hybrid --quiet-fraction 0.25 --monitor accuracy --channels queue,active,wait,p99_ms
for th in 0.5 0.3; do
    EXTRA=(--threshold "$th")
    evaluate "deadline-latency-$th" deadline-qaw deadline-qawl deadline-qawla deadline-acc-qawl \
        deadline-qawl-s2 deadline-qawla-s2
    EXTRA=(--threshold "$th" --culprit-model "$out/models/deadline-acc-qawl.seer")
    evaluate "deadline-latency-pair-$th" deadline-qawla
done
# Alarms held as the controller holds a decision ("Incidents" in BENCHMARKS).
for hold in 300ms 500ms 1s; do
    EXTRA=(--hold "$hold")
    evaluate "deadline-hold-$hold" deadline-qaw deadline-acc-qaw
done
# The QoS ratio as an input and as a baseline; every model at equal false alarms
# ("Equal false alarms" in BENCHMARKS).
q=queue,active,wait,p99_ms,arrivals,qos
VAL_BLOCK=5m EPOCHS=14 PATIENCE=4 train deadline-qawlaq --data "${twenty_d[@]}" \
    --model hybrid --quiet-fraction 0.25 --channels "$q"
VAL_BLOCK=5m EPOCHS=12 PATIENCE=3 train deadline-acc-qawlaq --data "${twenty_d[@]}" \
    --model hybrid --quiet-fraction 0.25 --monitor accuracy --channels "$q"
EXTRA=(--at-false-alarms 1,2,3,5 --baselines "$out/data-deadline/sn-7/dataset.parquet")
evaluate deadline-operating-points deadline-qaw deadline-acc-qaw deadline-qawl deadline-qawl-s2 \
    deadline-acc-qawl deadline-qawla deadline-qawla-s2 deadline-qawlaq deadline-acc-qawlaq
EXTRA=()
# A 1 s horizon, and the model detector's alarm in the closed loop, twelve seeds and
# two load shapes ("The alarm: act on the first rise" in BENCHMARKS).
VAL_BLOCK=5m EPOCHS=4 PATIENCE=2 train deadline-qawla-h1s --data "${twenty_d[@]}" \
    --model hybrid --quiet-fraction 0.25 --monitor accuracy --horizon 1s \
    --channels queue,active,wait,p99_ms,arrivals
for seed in $(seq 1 12); do
    "$bin/seer" demo --seed "$seed" --json >"$out/demo-alarm-rule-$seed.json"
    for m in deadline-qawla deadline-qawla-h1s deadline-qaw deadline-acc-qawl deadline-acc-qawlaq; do
        for alarm in 0.5 0.05 0.02 0.01; do
            "$bin/seer" demo --seed "$seed" --model "$out/models/$m.seer" --alarm "$alarm" \
                --json >"$out/demo-alarm-$m-$alarm-$seed.json"
        done
    done
    "$bin/seer" demo --seed "$seed" --model "$out/models/deadline-qawla.seer" \
        --culprit-model "$out/models/deadline-acc-qawl.seer" --json >"$out/demo-alarm-pair-$seed.json"
done
for load in diurnal:period=60s,amplitude=0.3 spikes:every=15s,length=3s,factor=1.5; do
    for seed in 1 2 3 4; do
        "$bin/seer" demo --seed "$seed" --seconds 180 --load "$load" --json \
            >"$out/demo-load-${load%%:*}-rule-$seed.json"
        for alarm in 0.5 0.02 0.01; do
            "$bin/seer" demo --seed "$seed" --seconds 180 --load "$load" --json \
                --model "$out/models/deadline-qawla.seer" --alarm "$alarm" \
                >"$out/demo-load-${load%%:*}-$alarm-$seed.json"
        done
    done
done
# A p99 over enough requests: the same campaign with every API's QoS window holding at
# least 1,000 requests, four more held-out seeds ("A p99 over enough requests").
msim() { # seed hours
    [ -f "$out/data-min/sn-$1/dataset.parquet" ] && return 0
    "$bin/seer" sim --topology social-network --duration "$2h" --load "diurnal:period=$2h" \
        --rate 800 --inject campaign --seed "$1" --deadline 1s --qos-min-requests 1000 \
        --out "$out/data-min/sn-$1"
}
for s in 7 9 10 11 12 13 14 15 16 17 18 19 20 21 22; do msim "$s" 2; done
msim 8 1
twenty_m=()
for s in 7 9 10 11 12 13 14 15 16 17; do twenty_m+=("$out/data-min/sn-$s/dataset.parquet"); done
test=()
for s in 8 18 19 20 21 22; do test+=("$out/data-min/sn-$s/dataset.parquet"); done
VAL_BLOCK=5m EPOCHS=14 PATIENCE=4 train min-qawla --data "${twenty_m[@]}" \
    --model hybrid --quiet-fraction 0.25 --channels queue,active,wait,p99_ms,arrivals
VAL_BLOCK=5m EPOCHS=12 PATIENCE=3 train min-acc-qawl --data "${twenty_m[@]}" \
    --model hybrid --quiet-fraction 0.25 --monitor accuracy --channels queue,active,wait,p99_ms
VAL_BLOCK=5m EPOCHS=14 PATIENCE=4 train min-qawlaq --data "${twenty_m[@]}" \
    --model hybrid --quiet-fraction 0.25 --channels queue,active,wait,p99_ms,arrivals,qos
VAL_BLOCK=5m EPOCHS=10 PATIENCE=3 train min-acc-qawlaq --data "${twenty_m[@]}" \
    --model hybrid --quiet-fraction 0.25 --monitor accuracy --channels queue,active,wait,p99_ms,arrivals,qos
for s in 23 24 25 26; do msim "$s" 2; done
more=("${twenty_m[@]}")
for s in 23 24 25 26; do more+=("$out/data-min/sn-$s/dataset.parquet"); done
VAL_BLOCK=5m EPOCHS=14 PATIENCE=4 train min-qawla-28h --data "${more[@]}" \
    --model hybrid --quiet-fraction 0.25 --channels queue,active,wait,p99_ms,arrivals
EXTRA=(--at-false-alarms 3,5)
evaluate min-more-data min-qawla-28h
EXTRA=(--at-false-alarms 1,2,3,5 --baselines "$out/data-min/sn-7/dataset.parquet")
evaluate min-operating-points min-qawla min-acc-qawl min-qawlaq min-acc-qawlaq deadline-qawla \
    deadline-acc-qawl
EXTRA=(--at-false-alarms 3,5 --culprit-model "$out/models/min-qawla.seer" "$out/models/min-acc-qawl.seer"
    "$out/models/min-qawlaq.seer" "$out/models/deadline-qawla.seer" "$out/models/deadline-acc-qawl.seer")
evaluate min-culprit-mean min-qawlaq
EXTRA=(--threshold 0.3)
evaluate min-threshold-0.3 min-qawla min-qawlaq
EXTRA=()
for seed in $(seq 1 12); do
    "$bin/seer" demo --seed "$seed" --qos-min-requests 1000 --json >"$out/demo-min-rule-$seed.json"
    for m in min-qawla min-qawlaq; do
        "$bin/seer" demo --seed "$seed" --qos-min-requests 1000 --model "$out/models/$m.seer" \
            --json >"$out/demo-min-$m-$seed.json"
    done
done
# One culprit scorer for every service: the shared scorer over the last 10 ticks,
# naming culprits alone (two seeds), beside it without (min-scorer), the same recipe
# retrained on one thread (min-qawla-t1), with the epoch picked by validation culprit
# top-1, with the errors channel, and with qos ("One culprit scorer for every service").
tone() { # name, then train flags (DATA: the training datasets, default the ten min-* seeds)
    local name="$1"; shift
    [ -f "$out/models/$name.seer" ] && return 0
    local data=("${twenty_m[@]}")
    [ -n "${DATA:-}" ] && read -r -a data <<<"$DATA"
    "$bin/seer-predictor" --threads 1 train --epochs 14 --patience 4 --batch 256 --val-block 5m \
        --quiet-fraction 0.25 --data "${data[@]}" --model hybrid --out "$out/models/$name.seer" "$@"
}
qawla=(--channels queue,active,wait,p99_ms,arrivals)
scorer=(--head-ticks 10 --head-hidden 16)
tone min-qawla-t1 "${qawla[@]}"
tone min-scorer "${qawla[@]}" "${scorer[@]}"
tone min-shared "${qawla[@]}" "${scorer[@]}" --shared-culprit
tone min-shared-s2 "${qawla[@]}" "${scorer[@]}" --shared-culprit --seed 2
tone min-shared-c "${qawla[@]}" "${scorer[@]}" --shared-culprit --monitor culprit
tone min-shared-ec --channels queue,active,wait,p99_ms,arrivals,errors "${scorer[@]}" \
    --shared-culprit --monitor culprit
tone min-qawlaq-shared --channels queue,active,wait,p99_ms,arrivals,qos "${scorer[@]}" --shared-culprit
# The same two recipes on the 1 s labels ("Deadlines" data), for the 1 s demo.
DATA="${twenty_d[*]}" tone s1-qawla "${qawla[@]}"
DATA="${twenty_d[*]}" tone s1-shared "${qawla[@]}" "${scorer[@]}" --shared-culprit
test=("$out/data-deadline/sn-8/dataset.parquet" "$out/data-deadline/sn-18/dataset.parquet")
EXTRA=(--at-false-alarms 2,3,5)
evaluate shared-scorer-1s s1-qawla s1-shared
EXTRA=(--at-false-alarms 5 --culprit-model "$out/models/s1-qawla.seer" "$out/models/s1-shared.seer")
evaluate shared-scorer-1s-pair s1-qawla
test=()
for s in 8 18 19 20 21 22; do test+=("$out/data-min/sn-$s/dataset.parquet"); done
EXTRA=(--at-false-alarms 1,2,3,5)
evaluate shared-scorer min-qawla-t1 min-scorer min-shared min-shared-s2 min-shared-c min-shared-ec \
    min-qawlaq-shared
EXTRA=(--at-false-alarms 2,3,5 --culprit-model "$out/models/min-shared.seer" "$out/models/min-shared-s2.seer"
    "$out/models/min-qawla-t1.seer" "$out/models/min-scorer.seer")
evaluate shared-culprit-mean min-qawlaq-shared
EXTRA=(--culprit-model)
for m in min-shared min-shared-s2 min-qawlaq-shared min-shared-c min-shared-ec min-scorer min-qawla-t1; do
    EXTRA+=("$out/models/$m.seer")
done
evaluate shared-culprit-mean7 min-qawlaq-shared
EXTRA=()
for m in s1-qawla s1-shared; do
    for alarm in 0.02 0.005 0.002 0.001 0.0005; do
        for seed in $(seq 1 12); do
            "$bin/seer" demo --seed "$seed" --model "$out/models/$m.seer" --alarm "$alarm" --json \
                >"$out/demo-shared-1s-$m-$alarm-$seed.json"
        done
        for load in diurnal:period=60s,amplitude=0.3 spikes:every=15s,length=3s,factor=1.5; do
            for seed in 1 2 3 4; do
                "$bin/seer" demo --seed "$seed" --seconds 180 --load "$load" \
                    --model "$out/models/$m.seer" --alarm "$alarm" --json \
                    >"$out/demo-shared-1s-load-${load%%:*}-$m-$alarm-$seed.json"
            done
        done
    done
done
for m in min-qawla-t1 min-shared min-shared-s2 min-scorer; do
    for alarm in 0.02 0.005 0.002; do
        for seed in $(seq 1 12); do
            "$bin/seer" demo --seed "$seed" --qos-min-requests 1000 --model "$out/models/$m.seer" \
                --alarm "$alarm" --json >"$out/demo-shared-$m-$alarm-$seed.json"
        done
        for load in diurnal:period=60s,amplitude=0.3 spikes:every=15s,length=3s,factor=1.5; do
            for seed in 1 2 3 4; do
                "$bin/seer" demo --seed "$seed" --seconds 180 --load "$load" --qos-min-requests 1000 \
                    --model "$out/models/$m.seer" --alarm "$alarm" --json \
                    >"$out/demo-shared-load-${load%%:*}-$m-$alarm-$seed.json"
            done
        done
    done
done
# Network time per service: the hop channel ("Network time per service"). Datasets made
# before it have no hop_mean column (the channel reads 0 there): re-simulate them.
hop=(--channels queue,active,wait,p99_ms,arrivals,hop)
hopq=(--channels queue,active,wait,p99_ms,arrivals,hop,qos)
tone h-shared "${hop[@]}" "${scorer[@]}" --shared-culprit
tone h-shared-s2 "${hop[@]}" "${scorer[@]}" --shared-culprit --seed 2
tone h-qawla "${hop[@]}"
tone h-qawlaq-shared "${hopq[@]}" "${scorer[@]}" --shared-culprit
tone h-qawlaq-shared-s2 "${hopq[@]}" "${scorer[@]}" --shared-culprit --seed 2
tone h-qawlaq-shared-s3 "${hopq[@]}" "${scorer[@]}" --shared-culprit --seed 3
tone h-qawlaq-shared-w50 "${hopq[@]}" --window 50 --head-ticks 50 --head-hidden 16 --shared-culprit
EXTRA=(--at-false-alarms 1,2,3,5)
evaluate network-time h-shared h-shared-s2 h-qawla h-qawlaq-shared h-qawlaq-shared-s2 h-qawlaq-shared-s3
evaluate network-time-w50 h-qawlaq-shared-w50
EXTRA=(--at-false-alarms 3 --culprit-model)
for m in h-shared h-shared-s2 h-qawla h-qawlaq-shared; do EXTRA+=("$out/models/$m.seer"); done
evaluate network-time-mean h-qawlaq-shared
EXTRA=()
for m in h-shared h-shared-s2 h-qawla h-qawlaq-shared; do
    for seed in $(seq 1 12); do
        "$bin/seer" demo --seed "$seed" --qos-min-requests 1000 --model "$out/models/$m.seer" \
            --json >"$out/demo-hop-$m-$seed.json"
    done
done
# The 1 s labels ("Deadlines" data, re-simulated with the network time).
DATA="${twenty_d[*]}" tone s1h-qawla "${hop[@]}"
DATA="${twenty_d[*]}" tone s1h-shared "${hop[@]}" "${scorer[@]}" --shared-culprit
test=("$out/data-deadline/sn-8/dataset.parquet" "$out/data-deadline/sn-18/dataset.parquet")
EXTRA=(--at-false-alarms 2,3,5)
evaluate network-time-1s s1-qawla s1-shared s1h-qawla s1h-shared
EXTRA=()
for m in s1h-qawla s1h-shared; do
    for seed in $(seq 1 12); do
        "$bin/seer" demo --seed "$seed" --model "$out/models/$m.seer" --json \
            >"$out/demo-hop-1s-$m-$seed.json"
    done
done
# The same channel on the real traces: leave-faults-out on the Nezha Online Boutique day.
nezha="$root/../shared/data/nezha/2022-08-22"
if [ -d "$nezha" ]; then
    "$bin/seer" ingest --format nezha-csv --interval 100ms "$nezha/trace" \
        --faults "$nezha/fault_list.json" --out "$out/nezha-ob.parquet"
    for ch in queue queue,hop queue,p99_ms,arrivals queue,p99_ms,arrivals,hop; do
        for seed in 1 2 3 4 5; do
            "$bin/seer-predictor" --threads 1 crossval --data "$out/nezha-ob.parquet" --folds 4 \
                --epochs 6 --seed "$seed" --channels "$ch" --out "$out/nezha-cv-$ch-$seed"
        done
    done
fi
echo "reports in $out/*/report.md, demos in $out/demo-*.txt and $out/demo-*.json"

#!/bin/sh
# Runs on every node of every backend: unpack the code, set the LAUNCH_* variables,
# run setup, run the job (through torchrun or paddle's launcher when asked), and record the exit code.
# POSIX sh only: it must work in any training image, with no Python assumed.
#
# Inputs (environment, set by the backend):
#   LAUNCH_BUNDLE       path of the code tar.gz on this node ("" = no code)
#   LAUNCH_BUNDLE_OVERLAY  path of the overlay applied over it ("" = none): what changed
#                       since LAUNCH_BUNDLE was packed (launcher/bundle.py)
#   LAUNCH_WORKDIR      fresh directory to unpack into and run in
#   LAUNCH_SETUP        shell command run once before the job ("" = none)
#   LAUNCH_RUN          the job's shell command line
#   LAUNCH_DISTRIBUTED  how LAUNCH_RUN is started: "torchrun" (wrapped in torchrun), "paddle" (wrapped in
#                       python -m paddle.distributed.launch), "jax" / "tensorflow" (run as is, with JAX's
#                       JAX_* variables / TF_CONFIG derived from the LAUNCH_* ones), "" (run as is)
#   LAUNCH_EXIT_FILE    where to write the exit code
#   LAUNCH_RUN_FILE, LAUNCH_SETUP_FILE  files holding the commands instead, for
#                       providers that cap the length of environment values
#   LAUNCH_TOPOLOGY     a shell snippet file from the backend, sourced first: it sets
#                       LAUNCH_NODE_RANK, LAUNCH_NUM_NODES, LAUNCH_MASTER_ADDR (and may set
#                       LAUNCH_MASTER_PORT, LAUNCH_NODE_ADDRS) from what the provider tells this node.
#                       Backends that know each node's place set those variables directly instead.
#   LAUNCH_NODE_ADDRS   every node's address in rank order, comma-separated (the first is the master);
#                       empty where the provider does not tell a node the others' addresses
#   LAUNCH_MAX_RUNTIME  seconds; past it the job is stopped and exits 124 (where the
#                       provider does not enforce max_runtime itself)
#   LAUNCH_PCI_DEVICES  where this node lists its PCI devices (default /sys/bus/pci/devices): a TPU
#                       among them leaves JAX's discovery alone
#   LAUNCH_ON_EXIT      a script run as `sh FILE CODE` once the exit code is recorded
#                       (machines the launcher rented clean up after themselves)
#   LAUNCH_JOB_ID, LAUNCH_NODE_RANK, LAUNCH_NUM_NODES, LAUNCH_GPUS_PER_NODE,
#   LAUNCH_MASTER_ADDR, LAUNCH_MASTER_PORT, LAUNCH_OUTPUT_DIR, LAUNCH_CHECKPOINT_DIR

say() { printf '[launch] %s\n' "$*" >&2; }

finish() {
    code=$1
    if [ -n "$exit_file" ]; then
        printf '%s\n' "$code" > "$exit_file.tmp" && mv -f "$exit_file.tmp" "$exit_file"
    fi
    if [ -n "$on_exit" ]; then
        sh "$on_exit" "$code" || say "the on-exit hook failed"
    fi
    exit "$code"
}

bundle=${LAUNCH_BUNDLE:-}
overlay=${LAUNCH_BUNDLE_OVERLAY:-}
unset LAUNCH_BUNDLE_OVERLAY
workdir=${LAUNCH_WORKDIR:-$PWD/work}
setup_cmd=${LAUNCH_SETUP:-}
run_cmd=${LAUNCH_RUN:-}
distributed=${LAUNCH_DISTRIBUTED:-}
exit_file=${LAUNCH_EXIT_FILE:-}
log_file=${LAUNCH_LOG_FILE:-}
topology=${LAUNCH_TOPOLOGY:-}
max_runtime=${LAUNCH_MAX_RUNTIME:-}
on_exit=${LAUNCH_ON_EXIT:-}
if [ -n "${LAUNCH_RUN_FILE:-}" ]; then run_cmd=$(cat "$LAUNCH_RUN_FILE") || exit 2; fi
if [ -n "${LAUNCH_SETUP_FILE:-}" ]; then setup_cmd=$(cat "$LAUNCH_SETUP_FILE") || exit 2; fi
unset LAUNCH_BUNDLE LAUNCH_WORKDIR LAUNCH_SETUP LAUNCH_RUN LAUNCH_DISTRIBUTED LAUNCH_EXIT_FILE LAUNCH_LOG_FILE \
    LAUNCH_RUN_FILE LAUNCH_SETUP_FILE LAUNCH_TOPOLOGY LAUNCH_MAX_RUNTIME LAUNCH_ON_EXIT

# The backend's topology snippet: how this node learns its rank, the node count and the master.
# Its status is not judged: a snippet that finds nothing to read leaves the defaults below.
if [ -n "$topology" ]; then
    if [ ! -r "$topology" ]; then
        say "no node topology at $topology (LAUNCH_TOPOLOGY)"
        finish 2
    fi
    . "$topology"
fi

# Relative paths (a backend may give them relative to the login directory) must survive the cd below.
absolute() { case "$1" in ""|/*) printf '%s' "$1" ;; *) printf '%s/%s' "$PWD" "$1" ;; esac; }
bundle=$(absolute "$bundle")
overlay=$(absolute "$overlay")
workdir=$(absolute "$workdir")
exit_file=$(absolute "$exit_file")
on_exit=$(absolute "$on_exit")

: "${LAUNCH_NODE_RANK:=0}"
: "${LAUNCH_NUM_NODES:=1}"
: "${LAUNCH_GPUS_PER_NODE:=0}"
: "${LAUNCH_MASTER_ADDR:=127.0.0.1}"
: "${LAUNCH_MASTER_PORT:=29500}"
: "${LAUNCH_OUTPUT_DIR:=$workdir/outputs}"
: "${LAUNCH_CHECKPOINT_DIR:=$workdir/checkpoints}"
# one node is its own master; more need the backend (or the provider) to name them all
if [ -z "${LAUNCH_NODE_ADDRS:-}" ] && [ "$LAUNCH_NUM_NODES" = 1 ]; then LAUNCH_NODE_ADDRS=$LAUNCH_MASTER_ADDR; fi
LAUNCH_OUTPUT_DIR=$(absolute "$LAUNCH_OUTPUT_DIR")
LAUNCH_CHECKPOINT_DIR=$(absolute "$LAUNCH_CHECKPOINT_DIR")
export LAUNCH_JOB_ID LAUNCH_NODE_RANK LAUNCH_NUM_NODES LAUNCH_GPUS_PER_NODE LAUNCH_NODE_ADDRS \
    LAUNCH_MASTER_ADDR LAUNCH_MASTER_PORT LAUNCH_OUTPUT_DIR LAUNCH_CHECKPOINT_DIR

if [ -z "$run_cmd" ]; then
    say "nothing to run (LAUNCH_RUN is empty)"
    finish 2
fi

# -- the frameworks' own contracts, derived from the LAUNCH_* ones ------------------------------------
# Values a framework parses (TF_CONFIG is JSON, paddle splits host:port) come from the backend or the
# provider; each must be a plain number or address, so none needs escaping and a strange one is refused.
# (characters listed, not ranges: a range can match more letters in some locales)
# a number: digits, no leading zero (shell arithmetic would read it as octal), at most 9 of them
number() { case $1 in ""|*[!0123456789]*|0?*|??????????*) return 1 ;; esac; }
address() {
    case $1 in ""|-*|*[!abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:-]*) return 1 ;; esac
}
refuse() {
    say "distributed: $distributed: $1"
    finish 2
}
# host:port, an IPv6 address in brackets
endpoint() { case $1 in *:*) printf '[%s]:%s' "$1" "$2" ;; *) printf '%s:%s' "$1" "$2" ;; esac; }
# 0,1,...,n-1: the devices a node's one process (JAX) or its workers (paddle) use
device_list() {
    d=0 list=
    while [ "$d" -lt "$1" ]; do list=${list:+$list,}$d; d=$((d + 1)); done
    printf '%s' "$list"
}
# the node addresses, one per line, checked (set -f: no address is a glob)
node_addresses() {
    set -f
    old_ifs=$IFS; IFS=,
    for a in $LAUNCH_NODE_ADDRS; do
        address "$a" || { IFS=$old_ifs; set +f; return 1; }
        printf '%s\n' "$a"
    done
    IFS=$old_ifs; set +f
}
# A TPU VM: JAX finds its peers there itself (its metadata server), so its discovery is left alone.
# The PCI ids JAX itself looks for (vendor 0x1ae0, one of its TPU device ids).
tpu_vm() {
    for dev in "${LAUNCH_PCI_DEVICES:-/sys/bus/pci/devices}"/*; do
        [ "$(cat "$dev/vendor" 2>/dev/null)" = 0x1ae0 ] || continue
        case $(cat "$dev/device" 2>/dev/null) in 0x0027|0x0056|0x005e|0x0062|0x0063|0x006f|0x0076) return 0 ;; esac
    done
    return 1
}

case "$distributed" in
    jax|tensorflow|paddle)
        for value in "$LAUNCH_NODE_RANK" "$LAUNCH_NUM_NODES" "$LAUNCH_MASTER_PORT" "$LAUNCH_GPUS_PER_NODE"; do
            number "$value" || refuse "node rank, node count, master port and GPU count must be numbers; got $(
                printf '%s' "$LAUNCH_NODE_RANK/$LAUNCH_NUM_NODES/$LAUNCH_MASTER_PORT/$LAUNCH_GPUS_PER_NODE" | head -c 200)"
        done
        address "$LAUNCH_MASTER_ADDR" || refuse "the master address is not a host name or IP address: $(
            printf '%s' "$LAUNCH_MASTER_ADDR" | head -c 200)"
        addresses=$(node_addresses) || refuse "the node addresses are not host names or IP addresses: $(
            printf '%s' "$LAUNCH_NODE_ADDRS" | head -c 200)"
        ;;
esac
case "$distributed" in
    jax)
        if tpu_vm; then
            say "distributed: jax on a TPU VM: JAX's own discovery finds the other hosts"
        else
            # JAX's initialize() reads JAX_COORDINATOR_ADDRESS itself; the other two are passed to it
            # (README: Frameworks), as Kubeflow Trainer's JAX runtime names them
            JAX_COORDINATOR_ADDRESS=$(endpoint "$LAUNCH_MASTER_ADDR" "$LAUNCH_MASTER_PORT")
            JAX_NUM_PROCESSES=$LAUNCH_NUM_NODES
            JAX_PROCESS_ID=$LAUNCH_NODE_RANK
            export JAX_COORDINATOR_ADDRESS JAX_NUM_PROCESSES JAX_PROCESS_ID
            # one process per node uses all its GPUs (JAX would otherwise take a scheduler's local rank)
            if [ "$LAUNCH_GPUS_PER_NODE" -gt 0 ] && [ -z "${JAX_LOCAL_DEVICE_IDS:-}" ]; then
                JAX_LOCAL_DEVICE_IDS=$(device_list "$LAUNCH_GPUS_PER_NODE")
                export JAX_LOCAL_DEVICE_IDS
            fi
        fi
        ;;
    tensorflow)
        # MultiWorkerMirroredStrategy reads TF_CONFIG: every worker, this node's index. Worker i listens on
        # the master port + i, so nodes sharing a host (local) do not collide.
        workers= count=0
        for a in $addresses; do
            workers="$workers${workers:+,}\"$(endpoint "$a" $((LAUNCH_MASTER_PORT + count)))\""
            count=$((count + 1))
        done
        if [ "$count" -ne "$LAUNCH_NUM_NODES" ]; then
            refuse "TF_CONFIG lists every worker, but this node was told $count address(es) for $LAUNCH_NUM_NODES \
nodes (LAUNCH_NODE_ADDRS): run it where the backend tells each node the others' addresses"
        fi
        [ "$LAUNCH_NODE_RANK" -lt "$count" ] || refuse "node rank $LAUNCH_NODE_RANK is not below $count"
        TF_CONFIG="{\"cluster\":{\"worker\":[$workers]},\"task\":{\"type\":\"worker\",\"index\":$LAUNCH_NODE_RANK}}"
        export TF_CONFIG
        ;;
esac

mkdir -p "$workdir" "$LAUNCH_OUTPUT_DIR" "$LAUNCH_CHECKPOINT_DIR" || finish 2
# An overlay holds the base's paths to remove first (gone from the tree, or changed), one a line
# with every unusual byte written \0ooo for printf %b, and a tar of the changed files. Removing a
# path also removes the directories it leaves empty: a fresh bundle has no empty directories.
apply_overlay() {
    ov_stage="${workdir%/}.overlay"
    rm -rf "$ov_stage" && mkdir -p "$ov_stage" && tar -xzf "$1" -C "$ov_stage" || return 1
    while IFS= read -r ov_line; do
        ov_path=$(printf '%bx' "$ov_line") && ov_path=${ov_path%x} || return 1
        rm -f -- "$workdir/$ov_path" || return 1
        while case $ov_path in */*) true ;; *) false ;; esac; do
            ov_path=${ov_path%/*}
            rmdir -- "$workdir/$ov_path" 2>/dev/null || break
        done
    done < "$ov_stage/remove" || return 1
    tar -xf "$ov_stage/files.tar" -C "$workdir" && rm -rf "$ov_stage"
}
if [ -n "$bundle" ]; then
    if ! tar -xzf "$bundle" -C "$workdir"; then
        say "could not unpack the code bundle $bundle"
        finish 2
    fi
    if [ -n "$overlay" ] && ! apply_overlay "$overlay"; then
        say "could not apply the code overlay $overlay"
        finish 2
    fi
fi
cd "$workdir" || finish 2

say "job $LAUNCH_JOB_ID node $LAUNCH_NODE_RANK/$LAUNCH_NUM_NODES on $(hostname 2>/dev/null || echo unknown)"

child=
got_signal=
forward() {
    got_signal=1
    [ -n "$child" ] && kill -TERM "$child" 2>/dev/null
}
trap forward TERM INT HUP

# Run one command (argv) in the background so a TERM reaches it while we wait.
run_step() {
    "$@" &
    child=$!
    wait "$child"
    code=$?
    # wait returns early when a trapped signal arrives: wait again for the real code.
    while [ -n "$got_signal" ] && kill -0 "$child" 2>/dev/null; do
        wait "$child"
        code=$?
    done
    child=
    return "$code"
}

# max_runtime: a watchdog TERMs our process group (we forward it to the job) and leaves a flag.
timed_out_flag="$workdir/.launch-timed-out"
watchdog=
if [ -n "$max_runtime" ]; then
    # one-second sleeps: killing the watchdog then leaves no long-lived orphan `sleep` behind
    (n=0; while [ "$n" -lt "$max_runtime" ]; do sleep 1; n=$((n + 1)); done
     : > "$timed_out_flag"; say "max_runtime of ${max_runtime}s exceeded: stopping the job"; kill -TERM 0) &
    watchdog=$!
fi
timed_out() {
    [ -n "$watchdog" ] && kill "$watchdog" 2>/dev/null
    [ -f "$timed_out_flag" ]
}

if [ -n "$setup_cmd" ]; then
    say "setup: $setup_cmd"
    run_step sh -c "$setup_cmd"
    code=$?
    if [ "$code" -ne 0 ]; then
        timed_out && finish 124
        say "setup failed with exit code $code"
        finish "$code"
    fi
fi

if [ "$distributed" = torchrun ] && ! command -v torchrun >/dev/null 2>&1; then
    # checked after setup, which may be what installs torch
    say "distributed: torchrun, but there is no torchrun command on this node (PATH=$PATH)"
    say "hint: install PyTorch where the job runs (in the image, or \`pip install torch\` in setup:);"
    say "      for the local backend, activate the environment that has torch before \`launch run\`"
    timed_out && finish 124
    finish 127
fi
python=python3
[ "$distributed" = paddle ] && ! command -v python3 >/dev/null 2>&1 && python=python
if [ "$distributed" = paddle ] && ! "$python" -c 'import importlib.util, sys
sys.exit(importlib.util.find_spec("paddle") is None)' 2>/dev/null; then
    # checked after setup, which may be what installs paddle
    say "distributed: paddle, but $python on this node cannot import paddle (PATH=$PATH)"
    say "hint: install PaddlePaddle where the job runs (in the image, or \`pip install paddlepaddle\` in setup:)"
    timed_out && finish 124
    finish 127
fi
if [ "$distributed" = torchrun ]; then
    nproc=$LAUNCH_GPUS_PER_NODE
    [ "$nproc" -gt 0 ] 2>/dev/null || nproc=1
    # --no-python: torchrun starts each worker as a shell running the job's command line.
    run_step torchrun --nnodes="$LAUNCH_NUM_NODES" --nproc_per_node="$nproc" \
        --node_rank="$LAUNCH_NODE_RANK" --master_addr="$LAUNCH_MASTER_ADDR" \
        --master_port="$LAUNCH_MASTER_PORT" --no-python sh -c "$run_cmd"
elif [ "$distributed" = paddle ]; then
    # paddle's launcher starts its rendezvous server on the node whose --host is the --master's address, and
    # compares them as text: both get the IPv4 address a name resolves to, this node's where it is known.
    ipv4() { case $1 in *[!0-9.]*) getent ahostsv4 "$1" 2>/dev/null | awk 'NR == 1 { print $1 }' ;; *) echo "$1" ;; esac; }
    master_ip=$(ipv4 "$LAUNCH_MASTER_ADDR")
    own=$(printf '%s\n' "$addresses" | sed -n "$((LAUNCH_NODE_RANK + 1))p")
    [ "$LAUNCH_NODE_RANK" = 0 ] && own=$LAUNCH_MASTER_ADDR
    own_ip=
    [ -n "$own" ] && own_ip=$(ipv4 "$own")
    set -- --nnodes="$LAUNCH_NUM_NODES" --rank="$LAUNCH_NODE_RANK" \
        --master="${master_ip:-$LAUNCH_MASTER_ADDR}:$LAUNCH_MASTER_PORT" --job_id=launch \
        --log_dir="$workdir/.paddle-log"
    [ -n "$own" ] && set -- "$@" --host="${own_ip:-$own}"
    if [ "$LAUNCH_GPUS_PER_NODE" -gt 0 ]; then
        set -- "$@" --devices="$(device_list "$LAUNCH_GPUS_PER_NODE")"
    else
        set -- "$@" --nproc_per_node=1
    fi
    # a script that is not *.py is run as a program: each worker is a shell running the job's command line
    run_step "$python" -m paddle.distributed.launch "$@" sh -c "$run_cmd"
    code=$?
    # paddle's launcher writes its whole environment (the job's secrets too) next to the workers' logs, for
    # the workers to read while they run: gone once they have ended
    rm -f "$workdir/.paddle-log"/backup_env.*.json "$workdir/.paddle-log"/envlog.* "$workdir/.paddle-log"/launch.*.log
    (exit "$code")
else
    run_step sh -c "$run_cmd"
fi
code=$?
timed_out && code=124
# a job whose last output has no newline must not have our line glued onto it
if [ -n "$log_file" ] && [ -s "$log_file" ] && [ -n "$(tail -c 1 "$log_file")" ]; then echo >&2; fi
say "exit code $code"
finish "$code"

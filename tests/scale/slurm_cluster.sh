#!/usr/bin/env bash
# Single-node Slurm cluster (Debian slurm-wlm 22.05 + munge) for integration tests.
#
#   slurm_cluster.sh start DIR   install missing packages, start munged/slurmctld/slurmd
#                                with all state under DIR, wait for the node to be idle,
#                                then print `export SLURM_CONF=...` lines (eval them).
#   slurm_cluster.sh stop DIR    cancel jobs, stop the daemons started from DIR, wait.
#   slurm_cluster.sh status DIR  exit 0 if all three daemons of DIR are alive.
#   slurm_cluster.sh install     only install the missing packages (scripts/install-deps).
#
# Must run as root; needs no systemd. Diagnostics go to stderr, stdout is only the exports.
# Check the exit code before eval: `env=$(slurm_cluster.sh start "$d") && eval "$env"`
# (a bare `eval "$(... start ...)"` hides a failed start).
# Environment knobs:
#   SLURM_CLUSTER_TIMEOUT  seconds to wait for each daemon / the idle node (default 30)
#   SLURM_CLUSTER_CPUS     CPUs to declare for the node (default: nproc; more than nproc
#                          is allowed, SlurmdParameters=config_overrides is set)
#   SLURM_CLUSTER_MEMORY   RealMemory in MB (default 1024)
#   SLURM_CLUSTER_PROCTRACK proctrack plugin (default proctrack/linuxproc; or proctrack/pgid)
#   SLURM_CLUSTER_SCHED_PARAMS SchedulerParameters (default batch_sched_delay=0,bf_interval=1:
#                          starts queued jobs within ~1 s instead of ~3 s)
set -euo pipefail

PROG=$(basename "$0")
TIMEOUT=${SLURM_CLUSTER_TIMEOUT:-30}
PKGS=(slurmctld slurmd slurm-client munge)

log() { echo "$PROG: $*" >&2; }
die() { log "error: $*"; exit 1; }

usage() {
    echo "usage: $PROG start|stop|status DIR" >&2
    exit 2
}

# Print the last lines of a log file to stderr (for error messages).
show_log() {
    local f=$1
    if [[ -s $f ]]; then
        echo "----- last lines of $f -----" >&2
        tail -n 25 "$f" >&2 || true
        echo "-----" >&2
    else
        echo "($f is empty or missing)" >&2
    fi
}

# Install the Debian packages that are missing; apt-get update only if needed.
install_missing() {
    local missing=() p
    for p in "${PKGS[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' \
            || missing+=("$p")
    done
    ((${#missing[@]} == 0)) && return 0
    log "installing ${missing[*]}"
    # Keep package scripts from starting system-wide daemons (no init system here).
    local made_policy=0
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 0755 /usr/sbin/policy-rc.d
        made_policy=1
    fi
    local rc=0
    {
        apt-get update -qq &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
                "${missing[@]}"
    } >"${DIR}/apt.log" 2>&1 || rc=$?
    ((made_policy)) && rm -f /usr/sbin/policy-rc.d
    if ((rc != 0)); then
        show_log "${DIR}/apt.log"
        die "apt-get failed to install ${missing[*]}"
    fi
}

# Print one free TCP port on the loopback/any address.
free_port() {
    local py
    py=$(command -v /usr/bin/python3 || command -v python3 || true)
    if [[ -n $py ]]; then
        "$py" -c 'import socket; s=socket.socket(); s.bind(("", 0)); print(s.getsockname()[1])'
        return
    fi
    # Fallback without python: random port not listed by ss.
    local p
    for _ in $(seq 50); do
        p=$((20000 + RANDOM % 30000))
        ss -Htan "sport = :$p" | grep -q . || { echo "$p"; return; }
    done
    die "no free TCP port found"
}

# pid from a pid file if that process is alive and is the expected program, else empty.
live_pid() {
    local pidfile=$1 comm=$2 pid
    [[ -s $pidfile ]] || return 0
    pid=$(tr -dc '0-9' <"$pidfile")
    [[ -n $pid ]] && alive "$pid" || return 0
    [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$comm" ]] && echo "$pid"
    return 0
}

# True if pid exists and is not a zombie (PID 1 here may never reap orphans).
alive() {
    local st
    st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
    [[ -n $st && $st != Z ]]
}

# Poll function FN every 0.2 s until it succeeds or TIMEOUT expires; fail at once
# if the daemon's pid file names a process that has died.
wait_for() {
    local what=$1 fn=$2 pidfile=$3 comm=$4 deadline=$((SECONDS + TIMEOUT))
    until "$fn"; do
        if [[ -s $pidfile && -z $(live_pid "$pidfile" "$comm") ]]; then
            log "$comm exited while waiting for $what"
            return 1
        fi
        ((SECONDS < deadline)) || { log "timed out after ${TIMEOUT}s waiting for $what"; return 1; }
        sleep 0.2
    done
}

# ---------- start ----------

munge_ok() {
    [[ -S $MUNGE_SOCKET ]] &&
        munge -n --socket="$MUNGE_SOCKET" 2>/dev/null | unmunge --socket="$MUNGE_SOCKET" >/dev/null 2>&1
}
ctld_up() { scontrol ping 2>/dev/null | grep -q 'is UP'; }
node_idle() {
    local st
    st=$(sinfo -h -n "$NODE" -o '%T' 2>/dev/null | head -n1)
    [[ $st == idle ]]
}

# Called when start fails: explain which daemon, show its log, stop what runs.
start_failed() {
    local daemon=$1 logfile=$2
    log "$daemon failed to start (state dir $DIR)"
    show_log "$logfile"
    do_stop >/dev/null 2>&1 || true
    exit 1
}

write_conf() {
    local cpus=$1 mem=$2 ctld_port=$3 slurmd_port=$4 proctrack=$5
    cat >"$SLURM_CONF" <<EOF
# Generated by $PROG for a throw-away single-node test cluster.
ClusterName=tessera
SlurmctldHost=${NODE}(127.0.0.1)
SlurmctldPort=${ctld_port}
SlurmdPort=${slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=${MUNGE_SOCKET}
StateSaveLocation=${DIR}/ctld
SlurmdSpoolDir=${DIR}/spool/slurmd
SlurmctldPidFile=${DIR}/run/slurmctld.pid
SlurmdPidFile=${DIR}/run/slurmd.pid
SlurmctldLogFile=${DIR}/log/slurmctld.log
SlurmdLogFile=${DIR}/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=${proctrack}
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SwitchType=switch/none
MpiDefault=none
MailProg=/bin/true
ReturnToService=2
SchedulerType=sched/backfill
SchedulerParameters=${SLURM_CLUSTER_SCHED_PARAMS:-batch_sched_delay=0,bf_interval=1}
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
SlurmctldTimeout=30
SlurmdTimeout=60
InactiveLimit=0
KillWait=5
MinJobAge=30
NodeName=${NODE} NodeAddr=127.0.0.1 NodeHostname=${NODE} CPUs=${cpus} RealMemory=${mem} State=UNKNOWN
PartitionName=tessera Nodes=${NODE} Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
EOF
}

do_start() {
    [[ $(id -u) -eq 0 ]] || die "must run as root (daemons run as root)"
    install_missing

    if [[ -n $(live_pid "$DIR/run/slurmctld.pid" slurmctld) ||
        -n $(live_pid "$DIR/run/slurmd.pid" slurmd) ||
        -n $(live_pid "$DIR/munge/munged.pid" munged) ]]; then
        die "a cluster is already running from $DIR (run: $PROG stop $DIR)"
    fi

    mkdir -p "$DIR"/{ctld,spool/slurmd,log,run,munge}
    # munged insists that every directory above its socket is executable by all.
    chmod a+x "$DIR"
    chmod 0711 "$DIR/munge"
    local force=() d=$DIR
    while d=$(dirname "$d") && [[ $d != / ]]; do
        if [[ $(($(stat -c '%#a' "$d") & 1)) == 0 ]]; then
            log "warning: $d is not world-executable; starting munged with --force"
            force=(--force)
            break
        fi
    done
    local start=$SECONDS

    # munged: private key, socket, pid, log, seed under DIR/munge.
    local key=$DIR/munge/munge.key
    if [[ ! -s $key ]]; then
        if command -v mungekey >/dev/null; then
            mungekey --create --keyfile="$key" >/dev/null
        else
            dd if=/dev/urandom of="$key" bs=1024 count=1 status=none
        fi
    fi
    chown root:root "$key"
    chmod 0400 "$key"
    rm -f "$MUNGE_SOCKET" "$MUNGE_SOCKET.lock"
    munged "${force[@]}" --socket="$MUNGE_SOCKET" --key-file="$key" \
        --pid-file="$DIR/munge/munged.pid" --log-file="$DIR/log/munged.log" \
        --seed-file="$DIR/munge/munged.seed" >>"$DIR/log/munged.log" 2>&1 ||
        start_failed munged "$DIR/log/munged.log"
    wait_for "munged socket $MUNGE_SOCKET" munge_ok "$DIR/munge/munged.pid" munged || start_failed munged "$DIR/log/munged.log"

    # slurm.conf with fresh free ports.
    local cpus=${SLURM_CLUSTER_CPUS:-$(nproc)}
    local mem=${SLURM_CLUSTER_MEMORY:-1024}
    local p1 p2
    p1=$(free_port)
    p2=$(free_port)
    while [[ $p2 == "$p1" ]]; do p2=$(free_port); done
    write_conf "$cpus" "$mem" "$p1" "$p2" "${SLURM_CLUSTER_PROCTRACK:-proctrack/linuxproc}"

    # slurmctld (daemonizes and writes its pid file).
    slurmctld -f "$SLURM_CONF" >>"$DIR/log/slurmctld.stderr" 2>&1 ||
        { cat "$DIR/log/slurmctld.stderr" >&2; start_failed slurmctld "$DIR/log/slurmctld.log"; }
    wait_for "slurmctld (scontrol ping)" ctld_up "$DIR/run/slurmctld.pid" slurmctld || start_failed slurmctld "$DIR/log/slurmctld.log"

    # slurmd for the one node.
    slurmd -f "$SLURM_CONF" -N "$NODE" >>"$DIR/log/slurmd.stderr" 2>&1 ||
        { cat "$DIR/log/slurmd.stderr" >&2; start_failed slurmd "$DIR/log/slurmd.log"; }
    wait_for "node $NODE to be idle" node_idle "$DIR/run/slurmd.pid" slurmd || {
        sinfo -N -l >&2 || true
        scontrol show node "$NODE" >&2 || true
        start_failed slurmd "$DIR/log/slurmd.log"
    }

    log "cluster up in $((SECONDS - start))s: node $NODE, ${cpus} CPUs, partition tessera, ports $p1/$p2"
    echo "export SLURM_CONF=$SLURM_CONF"
}

# ---------- stop ----------

# Wait until pid exits; after TIMEOUT send SIGKILL.
stop_pid() {
    local name=$1 pid=$2 deadline=$((SECONDS + TIMEOUT))
    [[ -n $pid ]] || return 0
    kill -TERM "$pid" 2>/dev/null || true
    while alive "$pid"; do
        if ((SECONDS >= deadline)); then
            log "$name (pid $pid) did not exit after ${TIMEOUT}s, sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            sleep 0.2
            break
        fi
        sleep 0.1
    done
}

# Pids of slurmstepd processes that belong to this DIR's slurmd (they inherit SLURM_CONF).
stepd_pids() {
    local p
    for p in $(pgrep -x slurmstepd 2>/dev/null || true); do
        alive "$p" || continue
        tr '\0' '\n' 2>/dev/null <"/proc/$p/environ" | grep -qxF "SLURM_CONF=$SLURM_CONF" && echo "$p"
    done
    return 0
}

# All descendant pids of a pid.
descendants() {
    local c
    for c in $(pgrep -P "$1" 2>/dev/null || true); do
        echo "$c"
        descendants "$c"
    done
}

do_stop() {
    local ctld slurmd munged
    ctld=$(live_pid "$DIR/run/slurmctld.pid" slurmctld)
    slurmd=$(live_pid "$DIR/run/slurmd.pid" slurmd)
    munged=$(live_pid "$DIR/munge/munged.pid" munged)

    # Cancel jobs while the controller still answers, so no job processes linger.
    if [[ -n $ctld && -f $SLURM_CONF ]]; then
        local jobs
        jobs=$(squeue -h -o '%i' 2>/dev/null || true)
        if [[ -n $jobs ]]; then
            # shellcheck disable=SC2086
            scancel $jobs 2>/dev/null || true
            local deadline=$((SECONDS + 10))
            while [[ -n $(squeue -h -o '%i' 2>/dev/null || true) ]] &&
                ((SECONDS < deadline)); do
                sleep 0.2
            done
        fi
    fi

    stop_pid slurmd "$slurmd"
    stop_pid slurmctld "$ctld"
    local p
    for p in $(stepd_pids); do
        log "killing leftover slurmstepd $p and its job processes"
        # shellcheck disable=SC2046
        kill -KILL "$p" $(descendants "$p") 2>/dev/null || true
    done
    stop_pid munged "$munged"

    local left=""
    [[ -n $(live_pid "$DIR/run/slurmd.pid" slurmd) ]] && left+=" slurmd"
    [[ -n $(live_pid "$DIR/run/slurmctld.pid" slurmctld) ]] && left+=" slurmctld"
    [[ -n $(live_pid "$DIR/munge/munged.pid" munged) ]] && left+=" munged"
    [[ -z $left ]] || die "still running from $DIR:$left"
    rm -f "$DIR"/run/*.pid "$DIR/munge/munged.pid"
    log "stopped cluster in $DIR"
}

do_status() {
    local ok=0
    [[ -n $(live_pid "$DIR/munge/munged.pid" munged) ]] || { log "munged not running"; ok=1; }
    [[ -n $(live_pid "$DIR/run/slurmctld.pid" slurmctld) ]] || { log "slurmctld not running"; ok=1; }
    [[ -n $(live_pid "$DIR/run/slurmd.pid" slurmd) ]] || { log "slurmd not running"; ok=1; }
    return $ok
}

# ---------- main ----------

if [[ ${1:-} == install && $# == 1 ]]; then
    DIR=$(mktemp -d)  # for apt's log
    install_missing
    rm -rf "$DIR"
    exit 0
fi
(($# == 2)) || usage
CMD=$1
[[ -n $2 ]] || usage
if [[ $CMD == start ]]; then mkdir -p "$2" || die "cannot create directory $2"; fi
if [[ -d $2 ]]; then
    DIR=$(cd "$2" && pwd -P)
elif [[ $CMD == stop ]]; then
    log "no such directory $2 (nothing to stop)"
    exit 0
else
    die "no such directory $2"
fi
NODE=$(hostname -s)
export SLURM_CONF=$DIR/slurm.conf
MUNGE_SOCKET=$DIR/munge/munge.socket

case $CMD in
start) do_start ;;
stop) do_stop ;;
status) do_status ;;
*) usage ;;
esac

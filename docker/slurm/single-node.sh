#!/bin/bash
# A single-node SLURM cluster on this machine, from Debian's packages, to try the job
# array (docker/slurm/sweep-array.sbatch) without a cluster; `make test-slurm` uses it.
#
#   sudo bash docker/slurm/single-node.sh up     # install (apt-get) if needed, configure, start
#   sudo bash docker/slurm/single-node.sh down   # stop the daemons it started
#
# Root only: it installs slurm-wlm and munge, writes /etc/slurm/slurm.conf (the previous
# one is kept as slurm.conf.regsweep-backup) and runs munged, slurmctld and slurmd without
# systemd or cgroups, everything on 127.0.0.1. Not for a machine that already runs SLURM.
set -euo pipefail

CONF=/etc/slurm/slurm.conf
PIDS=(/run/slurmd.pid /run/slurmctld.pid /run/munge/munged.pid)

die() { echo "single-node.sh: $*" >&2; exit 1; }

install_packages() {
    if command -v slurmctld >/dev/null && command -v slurmd >/dev/null \
            && command -v munged >/dev/null; then
        return
    fi
    command -v apt-get >/dev/null || die "slurm-wlm and munge are missing and there is no apt-get"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
}

write_conf() {
    local host cpus memory
    host=$(hostname -s)
    cpus=$(nproc)
    # 90 % of the memory available now, in MB: slurmd refuses a node that claims more.
    memory=$(awk '/MemAvailable/ {printf "%d", $2 / 1024 * 0.9}' /proc/meminfo)
    install -d /etc/slurm
    if [[ -f $CONF && ! -f $CONF.regsweep-backup ]] && ! grep -q "^# regsweep single-node" "$CONF"; then
        cp "$CONF" "$CONF.regsweep-backup"
    fi
    cat >"$CONF" <<EOF
# regsweep single-node cluster (docker/slurm/single-node.sh)
ClusterName=local
SlurmctldHost=${host}(127.0.0.1)
SlurmUser=slurm
AuthType=auth/munge
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmdSpoolDir=/var/lib/slurm/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SchedulerType=sched/backfill
ReturnToService=2
MpiDefault=none
MailProg=/bin/true
# Finished jobs stay visible to scontrol (there is no accounting database here).
MinJobAge=600
NodeName=${host} NodeAddr=127.0.0.1 CPUs=${cpus} RealMemory=${memory} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
}

running() { [[ -f $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

up() {
    [[ $(id -u) == 0 ]] || die "run as root (it installs packages and starts daemons)"
    install_packages
    write_conf
    if [[ ! -f /etc/munge/munge.key ]]; then
        runuser -u munge -- /usr/sbin/mungekey --create
    fi
    install -d -o munge -g munge /run/munge
    running /run/munge/munged.pid || runuser -u munge -- /usr/sbin/munged
    munge -n | unmunge >/dev/null || die "munge does not work"
    install -d -o slurm -g slurm /var/lib/slurm/slurmctld /var/log/slurm
    install -d /var/lib/slurm/slurmd
    running /run/slurmctld.pid || /usr/sbin/slurmctld
    running /run/slurmd.pid || /usr/sbin/slurmd
    for _ in $(seq 1 60); do
        state=$(sinfo -h -o %T 2>/dev/null || true)
        if [[ $state == idle || $state == mixed || $state == allocated ]]; then
            echo "single-node.sh: SLURM up on $(hostname -s) ($(nproc) CPUs)"
            return
        fi
        sleep 0.5
    done
    die "the node did not become idle: see /var/log/slurm/slurmctld.log and slurmd.log"
}

down() {
    local pid_file
    for pid_file in "${PIDS[@]}"; do
        if running "$pid_file"; then
            kill "$(cat "$pid_file")"
        fi
    done
    for pid_file in "${PIDS[@]}"; do
        for _ in $(seq 1 40); do
            running "$pid_file" || break
            sleep 0.25
        done
    done
    echo "single-node.sh: SLURM stopped"
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    *) die "usage: single-node.sh up|down" ;;
esac

#!/usr/bin/env bash
# Start (or stop) a single-node SLURM cluster on this machine, for testing profiles/slurm.
#
#   sudo bash tools/local_slurm.sh start DIR   # writes DIR/slurm.conf, starts munged, slurmctld, slurmd
#   sudo bash tools/local_slurm.sh stop DIR
#   export SLURM_CONF=DIR/slurm.conf             # then sinfo / sbatch / snakemake --executor slurm
#
# Needs root and Debian's slurm-wlm and munge packages (apt-get install slurm-wlm munge).
# It links /etc/slurm/slurm.conf to DIR/slurm.conf (only where no other config is there).
# Accounting is off, so submit with --slurm-no-account (profiles/slurm's test does).
set -euo pipefail
cmd=${1:?start|stop}
dir=$(realpath -m "${2:?state directory}")
conf="$dir/slurm.conf"
export SLURM_CONF="$conf"

stop() {
    for d in slurmd slurmctld; do
        [ -f "$dir/$d.pid" ] && kill "$(cat "$dir/$d.pid")" 2>/dev/null || true
    done
    sleep 1
}

if [ "$cmd" = stop ]; then
    stop
    exit 0
fi

for bin in munged slurmctld slurmd sbatch; do
    command -v "$bin" >/dev/null || { echo "missing $bin: apt-get install slurm-wlm munge" >&2; exit 3; }
done
[ "$(id -u)" = 0 ] || { echo "needs root (slurmd runs jobs as their users)" >&2; exit 3; }

mkdir -p "$dir/state" "$dir/spool" "$dir/log"
# The machine's CPUs, as slurmd counts them: plain nproc honours OMP_NUM_THREADS, and a node
# configured with fewer CPUs than a job asks for leaves that job pending for ever.
cpus=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)
mem_mb=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
cat > "$conf" <<EOF
ClusterName=local
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
# A job that names no memory (rules without mem_mb) would otherwise get the whole node's, and
# run alone; a real cluster has its own default.
DefMemPerCPU=2000
NodeName=localhost CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF

# munge: a key once, then the daemon (its socket is shared by every slurm command).
if [ ! -s /etc/munge/munge.key ]; then
    mkdir -p /etc/munge
    dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
    chown munge:munge /etc/munge/munge.key 2>/dev/null || true
    chmod 400 /etc/munge/munge.key
fi
mkdir -p /run/munge && chown munge:munge /run/munge 2>/dev/null || true
pgrep -x munged >/dev/null || su -s /bin/sh munge -c munged 2>/dev/null || munged --force

link_conf() {
    # Job steps (srun inside a job) look for the config at the default path, not at $SLURM_CONF:
    # link it there unless a real cluster's config is already in place.
    mkdir -p /etc/slurm
    if [ ! -e /etc/slurm/slurm.conf ] || [ -L /etc/slurm/slurm.conf ]; then
        ln -sf "$conf" /etc/slurm/slurm.conf
    else
        echo "/etc/slurm/slurm.conf exists and is not ours: job steps may not find $conf" >&2
    fi
}

stop
slurmctld -f "$conf"
slurmd -f "$conf"
# Up means: our controller answers (its StateSaveLocation is ours: another cluster on the same
# port would answer sinfo too, and our slurmctld would have died on the busy port) and the node
# is idle.
ours() { SLURM_CONF="$conf" scontrol show config 2>/dev/null | grep -qE "^StateSaveLocation += $dir/state\$"; }
for _ in $(seq 60); do
    if ours && SLURM_CONF="$conf" sinfo -h -o "%t" 2>/dev/null | grep -qE "idle|mix"; then
        SLURM_CONF="$conf" sinfo
        link_conf
        exit 0
    fi
    pid=$(cat "$dir/slurmctld.pid" 2>/dev/null || true)
    if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
        echo "slurmctld exited (is another cluster using its port?); logs in $dir/log" >&2
        tail -5 "$dir/log/slurmctld.log" >&2 || true
        exit 1
    fi
    sleep 1
done
echo "the local cluster did not come up; logs in $dir/log" >&2
tail -20 "$dir/log/"*.log >&2 || true
exit 1

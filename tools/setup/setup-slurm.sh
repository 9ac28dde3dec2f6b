#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, for the study's Slurm test (tests/it/slurm.rs):
# Debian's slurmctld, slurmd and munge, configured for localhost (one node with this
# machine's cores and memory, one partition) and started. Run as root (or with sudo);
# does nothing when `sinfo` already answers. Prints the node's state at the end.
set -euo pipefail
if pgrep -x slurmctld >/dev/null && pgrep -x slurmd >/dev/null; then
    case "$(sinfo -h -o %T 2>/dev/null || true)" in idle*|mixed*|allocated*) exit 0 ;; esac
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "setup-slurm: not root and no sudo: cannot install or start Slurm" >&2; exit 1; }
    sudo="sudo"
fi
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
    echo "== installing Slurm (Debian's slurmctld, slurmd, slurm-client, munge)"
    "$(dirname "$0")/apt-install.sh" slurmctld slurmd slurm-client munge
fi
host="$(hostname -s)"
cpus="$(nproc)"
mem_mb=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
$sudo mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/munge
# Processes tracked through /proc and no cgroups: containers (like CI's) often have no
# writable cgroup hierarchy, and a test cluster needs no resource enforcement.
$sudo tee /etc/slurm/slurm.conf >/dev/null <<CONF
ClusterName=srgraph-test
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
NodeName=$host CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=local Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
# slurmd 22.05 loads a cgroup plugin whatever the other settings (CgroupPlugin=disabled
# came in 23.02): the default, autodetect, finds the machine's hierarchy.
$sudo rm -f /etc/slurm/cgroup.conf
# munge: its key comes with the package; the daemon runs as the munge user.
$sudo chown munge:munge /run/munge
if ! pgrep -x munged >/dev/null; then
    if [ -n "$sudo" ]; then sudo -u munge /usr/sbin/munged; else runuser -u munge -- /usr/sbin/munged; fi
fi
pgrep -x slurmctld >/dev/null || $sudo /usr/sbin/slurmctld
pgrep -x slurmd >/dev/null || $sudo /usr/sbin/slurmd
for _ in $(seq 60); do
    state="$(sinfo -h -o %T 2>/dev/null || true)"
    case "$state" in idle*|mixed*|allocated*) echo "setup-slurm: node $host is $state"; exit 0 ;; esac
    sleep 1
done
echo "setup-slurm: the node did not come up (sinfo: '${state:-no answer}'); see /var/log/slurm/" >&2
tail -n 5 /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log >&2 || true
exit 1

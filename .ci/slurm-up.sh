#!/usr/bin/env bash
# A one-node SLURM cluster with job accounting, for trying profiles/slurm on a workstation or
# in CI: Debian's slurmctld + slurmd + slurmdbd + munge + MariaDB, started by hand (no systemd
# needed, none used) and checked with sinfo and an sbatch round trip.
#
#   sudo .ci/slurm-up.sh          # install (first time), configure, start, check; again: fast no-op
#   sudo .ci/slurm-up.sh status   # what runs, sinfo, the accounts
#   sudo .ci/slurm-up.sh down     # stop the daemons this script started (by their PID files)
#
# Root, Debian 12 (SLURM 22.05). Works without cgroups (containers, VMs): proctrack/linuxproc,
# task/none. The cluster has two partitions on the one node, `cpu` (default) and `gpu` (no
# GPUs: run configs with runtime.gpu: false), and two accounts: `general`, every user's default,
# and `microclip`, so a test can tell whether sbatch got -A. State, logs and PID files:
# $MICROCLIP_SLURM_STATE (default /tmp/microclip-slurm). It writes /etc/slurm/slurm.conf and
# slurmdbd.conf only where absent or written by this script before: a real cluster's
# configuration is never touched. MariaDB keeps its data in /var/lib/mysql (the package's).
set -euo pipefail

STATE=${MICROCLIP_SLURM_STATE:-/tmp/microclip-slurm}
CLUSTER=microclip
ACCOUNTS=(general microclip) # the first is every user's default account
MARK="# written by microclip-bench .ci/slurm-up.sh"
PACKAGES=(munge slurm-client slurmctld slurmd slurmdbd mariadb-server)
# Users given associations: root (CI), the user behind sudo (a workstation) and any named in
# MICROCLIP_SLURM_USERS (space-separated).
read -r -a EXTRA_USERS <<<"${MICROCLIP_SLURM_USERS:-}"
USERS=(root ${SUDO_USER:+"$SUDO_USER"} "${EXTRA_USERS[@]}")

log() { printf '[slurm-up %s] %s\n' "$(date +%T)" "$*"; }
die() { printf '[slurm-up] ERROR: %s\n' "$*" >&2; exit 1; }
t0=$SECONDS
lap() { log "$1 ($((SECONDS - t0)) s)"; t0=$SECONDS; }

# -- processes: only the ones whose PID file we wrote are ours to stop --------------------------
# alive PIDFILE NAME: the PID in PIDFILE runs a program called NAME (not a recycled PID).
alive() {
    local pid
    [[ -s $1 ]] || return 1
    pid=$(<"$1")
    [[ -r /proc/$pid/comm && $(</proc/"$pid"/comm) == "$2"* ]]
}

# wait_for SECONDS WHAT COMMAND...: poll COMMAND every 0.5 s.
wait_for() {
    local limit=$1 what=$2
    shift 2
    local deadline=$((SECONDS + limit))
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || die "$what did not come up in ${limit} s (logs: $STATE/log/)"
        sleep 0.5
    done
}

stop_daemon() { # stop_daemon NAME: TERM, wait, KILL; only the PID recorded in $STATE/NAME.pid
    local file=$STATE/$1.pid pid
    if ! alive "$file" "$1"; then
        rm -f "$file"
        return 0
    fi
    pid=$(<"$file")
    kill -TERM "$pid"
    for _ in $(seq 60); do
        [[ -d /proc/$pid ]] || break
        sleep 0.5
    done
    if [[ -d /proc/$pid ]]; then
        log "$1 ($pid) ignored TERM for 30 s: KILL"
        kill -KILL "$pid" || true
    fi
    rm -f "$file"
    log "stopped $1 ($pid)"
}

down() {
    # Reverse order of start: the nodes first, the database last.
    for name in slurmd slurmctld slurmdbd mariadbd munged; do
        stop_daemon "$name"
    done
}

# -- 1. packages --------------------------------------------------------------------------------
install_packages() {
    local missing=() p
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    ((${#missing[@]})) || return 0
    log "installing ${missing[*]}"
    # No init system to start services: keep the packages' maintainer scripts from trying
    # (policy-rc.d exit 101 = "action forbidden"); we start each daemon ourselves below.
    local policy=/usr/sbin/policy-rc.d made_policy=0
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod +x "$policy"
        made_policy=1
    fi
    apt-get update -qq
    lap "apt-get update"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" \
        >"$STATE/log/apt.log" 2>&1 || { tail -20 "$STATE/log/apt.log"; die "apt-get install failed"; }
    ((made_policy)) && rm -f "$policy"
    lap "packages installed"
}

# -- 2. configuration ---------------------------------------------------------------------------
# put FILE OWNER MODE < content: install FILE if it differs; refuse to replace a file this
# script did not write. Sets CHANGED=1 when it wrote something.
CHANGED=0
put() {
    local file=$1 owner=$2 mode=$3 tmp
    tmp=$(mktemp)
    cat >"$tmp"
    if [[ -e $file ]] && ! grep -qF "$MARK" "$file"; then
        rm -f "$tmp"
        die "$file exists and was not written by this script; not touching a real cluster's config"
    fi
    if ! cmp -s "$tmp" "$file"; then
        install -o "$owner" -g "$owner" -m "$mode" "$tmp" "$file"
        CHANGED=1
        log "wrote $file"
    fi
    rm -f "$tmp"
}

db_password() { # one random password, kept in the state folder so a second `up` reuses it
    local file=$STATE/db.password
    [[ -s $file ]] || (umask 077 && head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$file")
    cat "$file"
}

configure() {
    local node
    # The node exactly as slurmd sees it (CPUs, sockets, cores, threads, RealMemory): a
    # hand-written size that disagrees with the hardware drains the node.
    node=$(slurmd -C | head -1)
    [[ $node == NodeName=* ]] || die "slurmd -C printed no node line: $node"
    mkdir -p /etc/slurm
    put /etc/slurm/slurm.conf root 0644 <<EOF
$MARK (state: $STATE)
ClusterName=$CLUSTER
SlurmctldHost=$(hostname -s)(127.0.0.1)
SlurmUser=slurm
AuthType=auth/munge
# No cgroups in containers: track processes by parent PID, no task binding.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
# Cores and memory are the consumable resources (sbatch refuses --mem above RealMemory).
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
# A job asking for more time than its partition allows is refused at submission (sites that
# leave the default NO queue it forever as PartitionTimeLimit).
EnforcePartLimits=ALL
# Finished jobs stay visible to squeue/scontrol for 300 s (>= 3 x the plugin's first status
# check, so --slurm-status-command squeue would also work here).
MinJobAge=300
# Memory use sampled every 2 s (sacct MaxRSS) and enforced as cgroups would: a step above
# its --mem is killed (OUT_OF_MEMORY), so a test run proves the requests are big enough.
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=task=2
JobAcctGatherParams=OverMemoryKill
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStorageEnforce=associations
AccountingStoreFlags=job_comment
JobCompType=jobcomp/none
StateSaveLocation=$STATE/slurmctld
SlurmdSpoolDir=$STATE/slurmd
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
SlurmctldTimeout=30
SlurmdTimeout=60
$node NodeAddr=127.0.0.1 State=UNKNOWN
# One node, two partitions: rules are routed by partition even without a GPU.
PartitionName=cpu Nodes=ALL Default=YES MaxTime=1-00:00:00 State=UP
PartitionName=gpu Nodes=ALL MaxTime=1-00:00:00 State=UP
EOF
    put /etc/slurm/slurmdbd.conf slurm 0600 <<EOF
$MARK
AuthType=auth/munge
DbdHost=localhost
SlurmUser=slurm
PidFile=$STATE/slurmdbd.pid
LogFile=$STATE/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=$(db_password)
StorageLoc=slurm_acct_db
EOF
}

# -- 3. daemons ---------------------------------------------------------------------------------
start_munge() {
    if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
        return 0 # a munged already answers (ours from before, or the machine's own)
    fi
    if [[ ! -s /etc/munge/munge.key ]]; then
        mungekey --create --keyfile /etc/munge/munge.key
        chown munge:munge /etc/munge/munge.key
        chmod 0400 /etc/munge/munge.key
    fi
    install -d -o munge -g munge -m 0755 /run/munge
    runuser -u munge -- /usr/sbin/munged
    wait_for 20 munged bash -c 'munge -n | unmunge'
    # munged (user munge) writes its PID file where it may; keep a copy with the others.
    cp /run/munge/munged.pid "$STATE/munged.pid"
    log "munged up ($(<"$STATE/munged.pid"))"
}

mysql_answers() { mariadb -N -e 'SELECT 1' >/dev/null 2>&1; }

start_mariadb() {
    if ! mysql_answers; then
        [[ -d /var/lib/mysql/mysql ]] || mariadb-install-db --user=mysql --datadir=/var/lib/mysql >"$STATE/log/mariadb-install.log" 2>&1
        install -d -o mysql -g mysql -m 0755 /run/mysqld
        install -d -o mysql -g mysql -m 0755 "$STATE/log/mariadb"
        # Started as root it switches to --user itself, so $! is the server's own PID.
        # Socket only: nothing else needs the database, so it listens on no TCP port.
        /usr/sbin/mariadbd --user=mysql --datadir=/var/lib/mysql --skip-networking \
            --socket=/run/mysqld/mysqld.sock --pid-file=/run/mysqld/mysqld.pid \
            --log-error="$STATE/log/mariadb/error.log" </dev/null >/dev/null 2>&1 &
        echo $! >"$STATE/mariadbd.pid"
        wait_for 60 MariaDB mysql_answers
        log "MariaDB up ($(<"$STATE/mariadbd.pid"))"
    fi
    # The database and its user: IF NOT EXISTS + a password reset keep this idempotent.
    mariadb <<EOF
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'localhost';
ALTER USER 'slurm'@'localhost' IDENTIFIED BY '$(db_password)';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
EOF
}

start_slurm_daemon() { # start_slurm_daemon NAME CHECK...: start NAME unless ours already runs
    local name=$1
    shift
    alive "$STATE/$name.pid" "$name" && return 0
    "/usr/sbin/$name" >>"$STATE/log/$name.out" 2>&1 || die "$name failed to start: $(tail -5 "$STATE/log/$name.log" 2>/dev/null)"
    wait_for 60 "$name" "$@"
    log "$name up ($(<"$STATE/$name.pid"))"
}

accounting() {
    # sacctmgr -i: no prompt. `add` of an existing entity prints "Nothing new added" (exit
    # status 1 on some versions), so each entity is added only where `show` lacks it.
    local a u
    [[ -n $(sacctmgr -n -P show cluster "$CLUSTER" format=cluster) ]] ||
        sacctmgr -i -Q add cluster "$CLUSTER" >/dev/null
    for a in "${ACCOUNTS[@]}"; do
        [[ -n $(sacctmgr -n -P show account "$a" format=account) ]] ||
            sacctmgr -i -Q add account "$a" Cluster="$CLUSTER" Description="microclip-bench test" Organization=microclip >/dev/null
    done
    # Every user gets an association with every account; the first is the default, so a job
    # shows `microclip` only when sbatch was given -A microclip.
    for u in "${USERS[@]}"; do
        for a in "${ACCOUNTS[@]}"; do
            [[ -n $(sacctmgr -n -P show assoc where cluster="$CLUSTER" user="$u" account="$a" format=user) ]] ||
                sacctmgr -i -Q add user "$u" Cluster="$CLUSTER" Account="$a" >/dev/null
        done
        [[ $(sacctmgr -n -P show user "$u" format=defaultaccount) == "${ACCOUNTS[0]}" ]] ||
            sacctmgr -i -Q modify user where name="$u" set DefaultAccount="${ACCOUNTS[0]}" >/dev/null
    done
}

node_ready() { sinfo -h -N -o '%T' | grep -Eq '^(idle|mixed|allocated)'; }

check() {
    wait_for 60 "the node (sinfo)" node_ready
    local out jobid state
    out=$(mktemp "$STATE/roundtrip.XXXXXX")
    # --wait returns when the job ends; its exit status is the job's.
    # shellcheck disable=SC2016  # expanded by the job's shell, on the node
    jobid=$(sbatch --parsable --wait --time=1 --mem=100 -J slurm-up-check -o "$out" \
        --wrap 'echo "round trip on $(hostname) as job $SLURM_JOB_ID"')
    grep -q "as job $jobid" "$out" || die "job $jobid wrote no output to $out"
    rm -f "$out"
    # The job also reaches the accounting database (the profile's status command is sacct).
    for _ in $(seq 40); do
        state=$(sacct -n -P -X -j "$jobid" -o State 2>/dev/null || true)
        [[ $state == COMPLETED ]] && break
        sleep 0.5
    done
    [[ $state == COMPLETED ]] || die "sacct does not show job $jobid as COMPLETED (got '$state')"
    lap "sbatch round trip (job $jobid COMPLETED in sacct)"
}

status() {
    local name
    for name in munged mariadbd slurmdbd slurmctld slurmd; do
        if alive "$STATE/$name.pid" "$name"; then echo "$name: running ($(<"$STATE/$name.pid"))"
        else echo "$name: not started by this script"; fi
    done
    sinfo -s || true
    sacctmgr -n -P show assoc format=cluster,account,user 2>/dev/null || true
}

up() {
    command -v apt-get >/dev/null || die "needs Debian/Ubuntu (apt-get)"
    install -d -m 0755 "$STATE" "$STATE/log"
    install_packages
    configure
    install -d -o slurm -g slurm -m 0755 "$STATE/slurmctld"
    install -d -m 0755 "$STATE/slurmd"
    chown slurm:slurm "$STATE/log"
    if ((CHANGED)); then
        # A changed slurm.conf/slurmdbd.conf needs fresh daemons (the database stays).
        for name in slurmd slurmctld slurmdbd; do stop_daemon "$name"; done
    fi
    start_munge
    start_mariadb
    start_slurm_daemon slurmdbd sacctmgr -n show cluster
    accounting
    lap "munged, MariaDB, slurmdbd, accounts"
    start_slurm_daemon slurmctld scontrol ping
    start_slurm_daemon slurmd node_ready
    lap "slurmctld, slurmd"
    check
    sinfo -s
}

[[ $(id -u) == 0 ]] || die "run as root (sudo $0 ${1:-up})"
case ${1:-up} in
up) up ;;
down) down ;;
status) status ;;
*) die "usage: $0 [up|down|status]" ;;
esac

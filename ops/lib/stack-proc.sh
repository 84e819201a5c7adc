# shellcheck shell=bash
# ops/stack: processes, PID files and signals
# Sourced by ops/stack; uses its globals (RUN_DIR, PID_DIR, ...). Not executable.

# ---------------------------------------------------------------------------
# processes

# proc_field PID N: field N of /proc/PID/stat (3 = state, 22 = start time)
proc_field() {
	local stat rest
	read -r stat 2>/dev/null <"/proc/$1/stat" || return 1
	rest=${stat##*) } # after the command name, which may hold spaces
	local -a f
	read -r -a f <<<"$rest"
	printf '%s\n' "${f[$2 - 3]}"
}

is_alive() {
	local state
	[[ ${1:-} =~ ^[0-9]+$ ]] || return 1
	state=$(proc_field "$1" 3) || return 1
	[ "$state" != Z ] && [ "$state" != X ]
}

read_pid() {
	local pid=
	if [ -f "$1" ]; then
		read -r pid 2>/dev/null <"$1" || true
	fi
	[[ $pid =~ ^[0-9]+$ ]] && printf '%s\n' "$pid"
}

# The supervisor of SVC, if it runs: it is this script with arguments `__supervise SVC`.
sup_pid() {
	local pid cmd
	pid=$(read_pid "$PID_DIR/$1.supervisor.pid") || return 1
	is_alive "$pid" || return 1
	cmd=$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline") || return 1
	[[ $cmd == *" __supervise $1 "* ]] || return 1
	printf '%s\n' "$pid"
}

# The service process of SVC, if it runs. Its start time (recorded next to the PID) must
# match, so a recycled PID is never taken for ours, even after the supervisor died.
svc_pid() {
	local pid start=
	pid=$(read_pid "$PID_DIR/$1.pid") || return 1
	is_alive "$pid" || return 1
	read -r start 2>/dev/null <"$PID_DIR/$1.start" || return 1
	[ "$(proc_field "$pid" 22)" = "$start" ] || return 1
	printf '%s\n' "$pid"
}

# group_alive PGID: a live (not zombie) process is in process group PGID
group_alive() {
	ps -e -o pgid=,stat= | awk -v g="$1" '$1 == g && $2 !~ /^Z/ { f = 1 } END { exit !f }'
}

# Each service process leads its own process group (setsid). When the leader is gone,
# kill what is left in the group: nginx workers of a killed master keep the port.
reap_group() {
	local pgid=$1 n=30
	group_alive "$pgid" || return 0
	kill -TERM -- "-$pgid" 2>/dev/null || true
	while group_alive "$pgid"; do
		if [ "$n" -le 0 ]; then
			kill -KILL -- "-$pgid" 2>/dev/null || true
			break
		fi
		n=$((n - 1))
		sleep 0.1
	done
	return 1 # there was something left
}

held() { [ -e "$HOLD_DIR/$1" ]; }

stop_signal() {
	case $1 in
	postgres) echo INT ;; # fast shutdown
	*) echo TERM ;;
	esac
}

stop_timeout() {
	case $1 in
	postgres) echo 30 ;;
	*) echo 10 ;;
	esac
}

# wait_gone PID SECONDS: 0 once PID has exited
wait_gone() {
	local pid=$1 n=$(($2 * 10))
	while is_alive "$pid"; do
		[ "$n" -gt 0 ] || return 1
		n=$((n - 1))
		sleep 0.1
	done
}


# shellcheck shell=bash
# ops/stack: run dir setup and readiness checks
# Sourced by ops/stack; uses its globals (RUN_DIR, PID_DIR, ...). Not executable.

# ---------------------------------------------------------------------------
# readiness

pg_ready() {
	"$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -t 1 >/dev/null 2>&1
}

redis_ready() {
	[ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ]
}

# https_status URL: the HTTP status nginx answers (000 if none)
https_status() {
	curl -s -o /dev/null -w '%{http_code}' --max-time 3 --cacert "$CERT" "$1" 2>/dev/null || true
}

# wait_https URL DEADLINE SVC: 0 once GET URL answers 200; else the logs of nginx and SVC
wait_https() {
	local url=$1 deadline=$2 svc=$3 code
	while [ "$(https_status "$url")" != 200 ]; do
		if [ "$SECONDS" -ge "$deadline" ]; then
			code=$(https_status "$url")
			warn "GET $url does not answer 200 (got $code) after ${TIMEOUT}s"
			show_log nginx
			show_log "$svc"
			return 1
		fi
		sleep 0.2
	done
}

# svc_ready SVC [OLD_PID]: the service runs (as a new process if OLD_PID) and serves
svc_ready() {
	local pid age
	pid=$(svc_pid "$1") || return 1
	[ -n "${2:-}" ] && [ "$pid" = "$2" ] && return 1
	case $(svc_kind "$1") in
	postgres) pg_ready ;;
	redis) redis_ready ;;
	kafka) [ -s "$BOOTSTRAP" ] ;;
	ingest) [ -S "$(ingest_sock "$1")" ] ;;
	query) [ -S "$QUERY_SOCK" ] ;;
	sendgrid-sim) [ -S "$SIM_SOCK" ] ;;
	sink | sender)
		age=$(ps -o etimes= -p "$pid" 2>/dev/null | tr -d ' ')
		[ "${age:-0}" -ge 1 ]
		;;
	nginx) [ "$(https_status "$URL/healthz")" != 000 ] ;;
	esac
}

show_log() {
	local log=$LOG_DIR/$1.log
	[ -f "$log" ] || return 0
	warn "last lines of '$log':"
	tail -n "${2:-25}" "$log" | sed 's/^/    /' >&2
}

# wait_ready SVC DEADLINE [OLD_PID]: 0 when ready; prints the log tail on failure
wait_ready() {
	local svc=$1 deadline=$2 old=${3:-}
	while ! svc_ready "$svc" "$old"; do
		if ! sup_pid "$svc" >/dev/null; then
			warn "'$svc' is not supervised (its supervisor exited)"
			show_log "$svc"
			return 1
		fi
		if [ "$SECONDS" -ge "$deadline" ]; then
			warn "'$svc' is not ready after ${TIMEOUT}s"
			show_log "$svc"
			return 1
		fi
		sleep 0.1
	done
}

# ---------------------------------------------------------------------------
# setup

# as_user USER CMD...: run CMD as USER (root only)
as_user() {
	local user=$1
	shift
	setpriv --reuid="$user" --regid="$(id -g "$user")" --init-groups -- "$@"
}

make_layout() {
	local d
	[ -e "$RUN_DIR/.mailpipe-run" ] || : >"$RUN_DIR/.mailpipe-run"
	for d in redis kafka tls nginx nginx/tmp logs pids hold; do
		mkdir -p "$RUN_DIR/$d"
	done
	mkdir -p "$RUN_DIR/keys"
	chmod 700 "$RUN_DIR/keys"
	# tls/key.pem is 0600; the directory is not listable either (cert.pem is read by path)
	chmod 711 "$RUN_DIR/tls"
	mkdir -p "$RUN_DIR/sock"
	if [ -n "$AS_ROOT" ]; then
		# see nginx/mailpipe.conf.in: the socket inherits group www-data
		chown root:www-data "$RUN_DIR/sock"
		chmod 2750 "$RUN_DIR/sock"
	else
		chmod 700 "$RUN_DIR/sock"
	fi
	mkdir -p "$PG_DATA"
	if [ -n "$AS_ROOT" ]; then
		id postgres >/dev/null 2>&1 ||
			die "no OS user 'postgres' (PostgreSQL refuses to run as root): run ops/install-deps"
		chown postgres:postgres "$PG_DATA"
	fi
	chmod 700 "$PG_DATA"
	if [ -n "$AS_ROOT" ]; then
		as_user postgres test -w "$PG_DATA" -a -x "$PG_DATA" ||
			die "user 'postgres' cannot reach '$PG_DATA': make '$RUN_DIR' and every parent directory traversable (chmod 755), or choose another MAILPIPE_RUN_DIR"
		as_user www-data test -x "$RUN_DIR/sock" ||
			die "nginx workers (user 'www-data') cannot reach '$RUN_DIR/sock': make '$RUN_DIR' and every parent directory traversable (chmod 755), or choose another MAILPIPE_RUN_DIR"
	fi
	local s
	# unix socket paths are limited to 107 bytes
	for s in "$(ingest_sock "ingest-$INGEST_INSTANCES")" "$QUERY_SOCK" "$SIM_SOCK" "$CONTROL" \
		"$PG_DATA/.s.PGSQL.$PG_PORT"; do
		[ ${#s} -le 107 ] || die "unix socket path '$s' is too long (over 107 bytes): choose a shorter MAILPIPE_RUN_DIR"
	done
}

make_keys() {
	"$REPO/ops/gen-cert" "$RUN_DIR/tls" || die "cannot create the TLS certificate"
	if [ ! -s "$WEBHOOK_KEY" ] || [ ! -s "$WEBHOOK_PUB" ]; then
		(
			umask 077
			openssl ecparam -name prime256v1 -genkey -noout -out "$WEBHOOK_KEY.tmp" &&
				openssl ec -in "$WEBHOOK_KEY.tmp" -pubout -outform DER 2>/dev/null |
				base64 -w0 >"$WEBHOOK_PUB.tmp" &&
				[ -s "$WEBHOOK_PUB.tmp" ] &&
				chmod 600 "$WEBHOOK_KEY.tmp" &&
				mv -f "$WEBHOOK_KEY.tmp" "$WEBHOOK_KEY" &&
				chmod 644 "$WEBHOOK_PUB.tmp" &&
				mv -f "$WEBHOOK_PUB.tmp" "$WEBHOOK_PUB"
		) || die "cannot create the webhook signing key '$WEBHOOK_KEY'"
		say "created webhook signing key $WEBHOOK_KEY"
	fi
}

init_pg() {
	[ -f "$PG_DATA/PG_VERSION" ] && return 0
	# no cluster here (maybe a failed initdb): start from an empty directory
	find "$PG_DATA" -mindepth 1 -delete
	say "initdb $PG_DATA"
	if ! (cd "$RUN_DIR" && "${AS_PG[@]}" "$PG_BIN/initdb" -D "$PG_DATA" -U postgres \
		--auth-local=trust --auth-host=trust --no-locale -E UTF8 --no-instructions \
		>>"$LOG_DIR/postgres.log" 2>&1); then
		show_log postgres
		die "initdb of '$PG_DATA' failed"
	fi
	# dev only: trust on the unix socket and loopback, nothing else
	cat >"$PG_DATA/pg_hba.conf" <<'EOF'
# generated by ops/stack (dev stack: trust on loopback only)
local   all   all                 trust
host    all   all   127.0.0.1/32  trust
host    all   all   ::1/128       trust
EOF
	[ -n "$AS_ROOT" ] && chown postgres:postgres "$PG_DATA/pg_hba.conf"
	chmod 600 "$PG_DATA/pg_hba.conf"
}

create_db() {
	local exists
	exists=$("$PG_BIN/psql" -X -q -t -A -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres \
		-c "SELECT 1 FROM pg_database WHERE datname = 'mailpipe'" 2>&1) ||
		die "cannot query PostgreSQL on port $PG_PORT: $exists"
	[ "$exists" = 1 ] && return 0
	"$PG_BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U postgres mailpipe ||
		die "cannot create database 'mailpipe'"
	say "created database mailpipe"
}

migrate() {
	local log=$LOG_DIR/migrate.log
	printf '%s ops/stack: mailpipectl migrate\n' "$(date '+%Y-%m-%d %H:%M:%S')" >>"$log"
	if ! MAILPIPE_DATABASE_URL=$ADMIN_DB_URL timeout 120 "$BIN_DIR/mailpipectl" migrate \
		</dev/null >>"$log" 2>&1; then
		warn "'mailpipectl migrate' failed"
		show_log migrate
		return 1
	fi
}

# The dev API key: mp_ + 8-character prefix + _ + 43 characters of base64url.
API_KEY_RE='^(mp_[a-z0-9]{8})_[A-Za-z0-9_-]{43}$'

# ensure_api_key: <run>/keys/api_key (0600) holds a key of api_keys that is not revoked;
# else a new key with every scope is created and stored there. Output of mailpipectl goes
# to logs/migrate.log (the key itself only to the file).
ensure_api_key() {
	local log=$LOG_DIR/migrate.log key='' list prefix
	if [ -s "$API_KEY_FILE" ]; then
		read -r key 2>/dev/null <"$API_KEY_FILE" || true
	fi
	if [[ $key =~ $API_KEY_RE ]]; then
		prefix=${BASH_REMATCH[1]}
		printf '%s ops/stack: mailpipectl apikey list\n' "$(date '+%Y-%m-%d %H:%M:%S')" >>"$log"
		if ! list=$(MAILPIPE_DATABASE_URL=$ADMIN_DB_URL timeout 60 \
			"$BIN_DIR/mailpipectl" apikey list </dev/null 2>>"$log"); then
			warn "'mailpipectl apikey list' failed"
			show_log migrate
			return 1
		fi
		# columns: ID NAME PREFIX SCOPES CREATED REVOKED; NAME may hold spaces
		if awk -v p="$prefix" 'NR > 1 && NF >= 6 && $(NF - 3) == p && $NF == "-" { f = 1 }
			END { exit !f }' <<<"$list"; then
			chmod 600 "$API_KEY_FILE"
			return 0
		fi
		say "the dev API key $prefix is not (or no longer) in api_keys: creating a new one"
	elif [ -e "$API_KEY_FILE" ]; then
		say "'$API_KEY_FILE' does not hold an API key: creating a new one"
	fi
	printf '%s ops/stack: mailpipectl apikey create --name dev --scopes all\n' \
		"$(date '+%Y-%m-%d %H:%M:%S')" >>"$log"
	if ! key=$(MAILPIPE_DATABASE_URL=$ADMIN_DB_URL timeout 60 \
		"$BIN_DIR/mailpipectl" apikey create --name dev --scopes all </dev/null 2>>"$log"); then
		warn "'mailpipectl apikey create' failed"
		show_log migrate
		return 1
	fi
	if ! [[ $key =~ $API_KEY_RE ]]; then
		warn "'mailpipectl apikey create' printed no API key"
		return 1
	fi
	prefix=${BASH_REMATCH[1]}
	(
		umask 077
		printf '%s\n' "$key" >"$API_KEY_FILE.tmp" &&
			chmod 600 "$API_KEY_FILE.tmp" &&
			mv -f "$API_KEY_FILE.tmp" "$API_KEY_FILE"
	) || {
		warn "cannot write '$API_KEY_FILE'"
		return 1
	}
	say "created dev API key $prefix (all scopes) in $API_KEY_FILE"
}

write_stack_env() {
	local pub='' key=''
	[ ! -s "$WEBHOOK_PUB" ] || read -r pub <"$WEBHOOK_PUB" || true # no newline at its end
	[ ! -s "$API_KEY_FILE" ] || read -r key <"$API_KEY_FILE" || true
	(
		umask 077
		cat >"$STACK_ENV.tmp.$$" <<EOF
MAILPIPE_URL=$URL
MAILPIPE_CA=$CERT
MAILPIPE_API_KEY=$key
DATABASE_URL=$ADMIN_DB_URL
REDIS_URL=$REDIS_URL
KAFKA_BROKERS=$(brokers)
KAFKA_CONTROL=$CONTROL
WEBHOOK_SIGNING_KEY=$WEBHOOK_KEY
WEBHOOK_PUBLIC_KEY=$pub
SINK_DATABASE_URL=$WRITER_DB_URL
SENDGRID_SIM_URL=$SIM_URL
SENDGRID_SIM_API_KEY=$SIM_API_KEY
MAILPIPE_RUN_DIR=$RUN_DIR
MAILPIPE_BIN_DIR=$BIN_DIR
MAILPIPE_HTTPS_PORT=$HTTPS_PORT
MAILPIPE_PG_PORT=$PG_PORT
MAILPIPE_REDIS_PORT=$REDIS_PORT
MAILPIPE_SIM_PORT=$SIM_PORT
EOF
		chmod 600 "$STACK_ENV.tmp.$$"
		mv -f "$STACK_ENV.tmp.$$" "$STACK_ENV"
	)
}

# port_busy PORT: something already answers on 127.0.0.1:PORT
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

spawn_supervisor() {
	local svc=$1 n=50
	rm -f "$PID_DIR/$svc.supervisor.pid" "$PID_DIR/$svc.pid" "$PID_DIR/$svc.start"
	# own session: survives the invoking shell and its Ctrl-C; fd 9 is our lock
	setsid "$SELF" __supervise "$svc" </dev/null >>"$LOG_DIR/$svc.log" 2>&1 9>&- &
	while ! sup_pid "$svc" >/dev/null; do
		[ "$n" -gt 0 ] || {
			show_log "$svc"
			die "the supervisor of '$svc' did not start"
		}
		n=$((n - 1))
		sleep 0.1
	done
}

lock() {
	exec 9>"$RUN_DIR/.lock"
	flock -w 120 9 || die "another ops/stack command holds '$RUN_DIR/.lock'"
}

unlock() { exec 9>&-; }

any_supervised() {
	local svc
	for svc in "${SERVICES[@]}"; do
		sup_pid "$svc" >/dev/null && return 0
	done
	return 1
}

all_up() {
	local svc
	for svc in "${SERVICES[@]}"; do
		sup_pid "$svc" >/dev/null && svc_pid "$svc" >/dev/null && ! held "$svc" || return 1
	done
}


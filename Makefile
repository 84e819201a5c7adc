# mailpipe: plain Makefile, sources listed by hand.
#   make            build every binary into build/
#   make SAN=1      the same with ASan + UBSan, into build/san/
#   make run        install what is missing, build, run the whole stack in the foreground
#   make test       install what is missing, build, run unit and integration tests
#   make check-format

CC      ?= cc
SAN     ?= 0
BUILD   := build
ifeq ($(SAN),1)
BUILD   := build/san
endif

PKGS    := rdkafka jansson libpq hiredis libcurl openssl zlib
CFLAGS  ?= -O2 -g
CFLAGS  += -std=c11 -D_GNU_SOURCE -pthread -Ilib \
           -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
           -Wformat=2 -Wno-format-nonliteral -Werror=implicit-function-declaration \
           -MMD -MP $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS  += $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lfcgi -lm -pthread
ifeq ($(SAN),1)
CFLAGS  += -O1 -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS += -fsanitize=address,undefined
endif

LIB_SRC := lib/log.c lib/config.c lib/shutdown.c lib/backoff.c lib/b64.c lib/sig.c \
           lib/batch.c lib/jscan.c lib/budget.c lib/event.c lib/kconf.c lib/kpub.c lib/kcons.c lib/dispatch.c \
           lib/idem.c lib/pgconn.c lib/prog.c lib/sgerr.c lib/msgid.c lib/rconn.c lib/idemkey.c \
           lib/mailreq.c lib/mailreq_ctx.c lib/mailreq_parts.c lib/apikey.c \
           lib/msgquery.c lib/qparams.c lib/suppress.c \
           lib/metrics.c lib/metrics_push.c lib/metrics_expo.c lib/retention.c \
           lib/reload.c
INGEST_SRC := fcgi/ingest.c fcgi/webhook.c fcgi/mailsend.c
QUERY_SRC  := fcgi/query.c fcgi/query_stats.c fcgi/query_health.c fcgi/query_messages.c \
              fcgi/query_suppressions.c fcgi/query_minutes.c fcgi/query_metrics.c
SINK_SRC   := workers/sink.c workers/sink_store.c workers/sink_record.c
SENDER_SRC := workers/sender.c workers/sender_http.c workers/sender_job.c workers/sender_rate.c \
              workers/sender_rcpt.c workers/sender_state.c workers/sender_store.c
SIM_SRC    := ops/sendgrid-sim.c ops/sendgrid-sim_events.c ops/sendgrid-sim_faults.c \
              ops/sendgrid-sim_msgs.c ops/sendgrid-sim_post.c ops/sendgrid-sim_queue.c \
              ops/sendgrid-sim_rand.c ops/sendgrid-sim_send.c
CTL_SRC    := ops/mailpipectl.c ops/mailpipectl_db.c ops/mailpipectl_migrate.c \
              ops/mailpipectl_partitions.c ops/mailpipectl_config.c \
              ops/mailpipectl_apikey.c ops/mailpipectl_suppression.c \
              ops/mailpipectl_dlq.c ops/mailpipectl_dlq_replay.c \
              ops/mailpipectl_replay.c workers/sink_store.c workers/sink_record.c \
              ops/mailpipectl_retention.c ops/mailpipectl_restore.c ops/mailpipectl_archive.c \
              ops/mailpipectl_checkconfig.c ops/mailpipectl_table.c
KDEV_SRC   := ops/kafka-dev.c
UNIT_SRC   := $(wildcard tests/unit/test_*.c)

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))

LIB_A   := $(BUILD)/libmailpipe.a
BINS    := $(BUILD)/ingest $(BUILD)/query $(BUILD)/sink $(BUILD)/kafka-dev $(BUILD)/mailpipectl \
           $(BUILD)/sender $(BUILD)/sendgrid-sim
UNITS   := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRC))

.PHONY: all run test unit check-format format clean deps
# Keep the unit tests' objects: they are intermediates of a chained rule.
.SECONDARY:

all: $(BINS) $(UNITS)

# V=1 shows whole command lines.
Q := $(if $(filter 1,$(V)),,@)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CFLAGS) -c -o $@ $<

$(LIB_A): $(call obj,$(LIB_SRC))
	$(Q)$(AR) rcs $@ $^

$(BUILD)/ingest: $(call obj,$(INGEST_SRC)) $(LIB_A)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/query: $(call obj,$(QUERY_SRC)) $(LIB_A)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/sink: $(call obj,$(SINK_SRC)) $(LIB_A)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/sender: $(call obj,$(SENDER_SRC)) $(LIB_A)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/sendgrid-sim: $(call obj,$(SIM_SRC)) $(LIB_A)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/mailpipectl: $(call obj,$(CTL_SRC)) $(LIB_A)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/kafka-dev: $(call obj,$(KDEV_SRC)) $(LIB_A)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: $(BUILD)/obj/tests/unit/%.o $(BUILD)/obj/tests/unit/fixture.o $(LIB_A)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

deps:
	ops/install-deps

run: deps
	$(MAKE) all
	MAILPIPE_BIN_DIR=$(CURDIR)/$(BUILD) ops/stack run

test: deps
	$(MAKE) all
	MAILPIPE_BIN_DIR=$(CURDIR)/$(BUILD) MAILPIPE_SAN=$(SAN) tests/run $(TESTARGS)

unit: all
	@rc=0; for t in $(UNITS); do $$t || rc=1; done; exit $$rc

# make bench: tests/bench/bench.py measures ingest, end-to-end, mail send and read figures
# against same-run references (nginx return 204, tests/bench/fcgi_stub.c, a Kafka
# producer, COPY, redis-benchmark) in a private stack (<= 10 min, loopback only); writes
# tests/bench/results/bench-<date>-<commit>.md.  make bench-smoke: the CI version (each
# stage about 1 s, batches of 100 only, one sink: ~45 s with the stack start-up; asserts
# correctness, not timings).
# BENCHFLAGS passes options, e.g. BENCHFLAGS="--seconds 5 --skip-read".
.PHONY: bench bench-smoke
$(BUILD)/bench/fcgi_stub: tests/bench/fcgi_stub.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CCLD    $@")
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< -lfcgi -pthread

$(BUILD)/bench/ingest_floor: tests/bench/ingest_floor.c $(LIB_A)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CCLD    $@")
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIB_A) $(LDLIBS)

bench: deps
	$(MAKE) all $(BUILD)/bench/fcgi_stub $(BUILD)/bench/ingest_floor
	MAILPIPE_BIN_DIR=$(CURDIR)/$(BUILD) /usr/bin/python3 tests/bench/bench.py $(BENCHFLAGS)

bench-smoke: deps
	$(MAKE) all $(BUILD)/bench/fcgi_stub $(BUILD)/bench/ingest_floor
	MAILPIPE_BIN_DIR=$(CURDIR)/$(BUILD) /usr/bin/python3 tests/bench/bench.py --smoke $(BENCHFLAGS)

# make bench-read: the read API's latency with 1,000,000 stored events in a private stack
# (minutes; not part of `make test`).  Writes tests/bench/results/read-api-<date>.md.
# BENCHARGS passes options, e.g. BENCHARGS="--events 100000 --requests 50".
.PHONY: bench-read
bench-read: deps
	$(MAKE) all
	MAILPIPE_BIN_DIR=$(CURDIR)/$(BUILD) /usr/bin/python3 tests/bench/read_api.py $(BENCHARGS)

# make chaos: tests/chaos/chaos.py breaks a private stack under load (kill -9 of each
# process, Kafka down, produce errors, PostgreSQL SIGSTOP, Redis restart and FLUSHALL,
# nginx reload) and checks nothing accepted is lost or duplicated (< 10 min).  Writes
# tests/chaos/results/chaos-<date>.md.  CHAOS_SHORT=1 or `make chaos-short`: the ~2 min
# version that `make test` also runs (test_chaos_short.py).  CHAOSARGS: e.g. "--only kill-sink".
.PHONY: chaos chaos-short
chaos: deps
	$(MAKE) all
	MAILPIPE_BIN_DIR=$(CURDIR)/$(BUILD) /usr/bin/python3 tests/chaos/chaos.py $(CHAOSARGS)

chaos-short: deps
	$(MAKE) all
	MAILPIPE_BIN_DIR=$(CURDIR)/$(BUILD) /usr/bin/python3 tests/chaos/chaos.py --short $(CHAOSARGS)

# make valgrind: tests/valgrind/run starts a private stack with kafka-dev, ingest, query,
# sink, sendgrid-sim and sender under valgrind memcheck, drives a short workload, stops each
# program with SIGTERM and prints definite / indirect / possible leaks and errors per
# program (tests/valgrind/results.md); fails on a definite leak or an error (~5 min).
.PHONY: valgrind
valgrind: deps
	$(MAKE) all
	tests/valgrind/run

# make fuzz: the libFuzzer targets of tests/fuzz, built with clang into build/fuzz over lib/
# objects compiled with the same sanitizer flags, each run FUZZ_SECONDS by tests/fuzz/run
# (seeds from tests/fixtures, one summary line per target, non-zero exit on a finding).
# make fuzz-smoke: the same, FUZZ_SMOKE_SECONDS each (CI).  FUZZ_TARGETS picks targets.
FUZZ_CC            ?= clang
FUZZ_SECONDS       ?= 60
FUZZ_SMOKE_SECONDS ?= 6
FUZZ_TARGETS       ?= batch sig mailreq msgquery config
FUZZ_BUILD         := build/fuzz
FUZZ_SAN           := -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_CFLAGS         = $(filter-out -O% -fsanitize=%,$(CFLAGS)) -O1 -g -fno-omit-frame-pointer \
                      -fsanitize=fuzzer-no-link $(FUZZ_SAN)
FUZZ_LIB_SRC       := lib/log.c lib/config.c lib/b64.c lib/sig.c lib/batch.c lib/jscan.c lib/event.c \
                      lib/sgerr.c lib/mailreq.c lib/mailreq_ctx.c lib/mailreq_parts.c lib/msgquery.c \
                      lib/qparams.c
FUZZ_LIB_OBJ       := $(patsubst %.c,$(FUZZ_BUILD)/obj/%.o,$(FUZZ_LIB_SRC))
FUZZ_BINS          := $(patsubst %,$(FUZZ_BUILD)/fuzz_%,$(FUZZ_TARGETS))

.PHONY: fuzz fuzz-smoke fuzz-build

$(FUZZ_BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  FUZZCC  $<")
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -c -o $@ $<

$(FUZZ_BUILD)/fuzz_%: $(FUZZ_BUILD)/obj/tests/fuzz/fuzz_%.o $(FUZZ_LIB_OBJ)
	@$(if $(Q),echo "  FUZZLD  $@")
	$(Q)$(FUZZ_CC) -fsanitize=fuzzer $(FUZZ_SAN) -o $@ $^ $(LDLIBS)

fuzz-build: $(FUZZ_BINS)

fuzz: deps
	$(MAKE) fuzz-build
	tests/fuzz/run $(FUZZ_SECONDS) $(FUZZ_TARGETS)

fuzz-smoke: deps
	$(MAKE) fuzz-build
	tests/fuzz/run $(FUZZ_SMOKE_SECONDS) $(FUZZ_TARGETS)

FORMAT_SRC = $(shell git ls-files '*.c' '*.h')
check-format: deps
	@clang-format --dry-run --Werror $(FORMAT_SRC)

format:
	clang-format -i $(FORMAT_SRC)

clean:
	rm -rf build

-include $(shell find build -name '*.d' 2>/dev/null)

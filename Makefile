#  herd - build, test, run. `make run` starts the five-node herd of herd.cfg;
#  `make test` runs every test. Both install missing Debian packages first
#  (scripts/install-deps.sh: make run the run-time set, make test also the
#  test tools); `make deps` installs the run-time set alone.

#  A recipe that fails (or is interrupted) leaves no half-written target
#  behind for the next make to take as up to date
.DELETE_ON_ERROR:

CC      ?= cc
PKGS    := libczmq libzmq libcurl libcjson libmicrohttpd libsodium
CFLAGS  ?= -O2 -g
CFLAGS  += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -pthread \
           $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS  += $(shell pkg-config --libs $(PKGS) 2>/dev/null) -pthread

#  Libraries pkg-config cannot find: building stops before the first
#  compile with a hint, not at the link with pages of undefined references
PKGS_MISSING = $(shell for p in $(PKGS); do pkg-config --exists $$p 2>/dev/null || echo $$p; done)

#  libedit, when installed, gives `herd client` line editing and history.
ifeq ($(shell pkg-config --exists libedit 2>/dev/null && echo yes),yes)
CFLAGS  += -DHERD_HAVE_LIBEDIT
LDLIBS  += $(shell pkg-config --libs libedit)
endif

#  SAN=1 builds with AddressSanitizer + UndefinedBehaviorSanitizer into
#  build/san, so both builds can sit side by side.
ifeq ($(SAN),1)
BUILD   := build/san
CFLAGS  += -O1 -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS += -fsanitize=address,undefined
else
BUILD   := build/release
endif

COMMON  := common/herd_config.c common/herd_config_scan.c common/herd_config_reload.c \
           common/herd_config_test.c \
           common/herd_log.c common/herd_proto.c common/herd_decimal.c common/herd_record.c \
           common/herd_hist.c common/herd_alive.c common/herd_notify.c common/herd_msg.c \
           common/herd_actor.c common/herd_buffer.c common/herd_report.c common/herd_poller.c \
           common/herd_alarm.c
GATEWAY := gateway/herd_gateway.c gateway/herd_conn.c gateway/herd_accept.c gateway/herd_uplink.c \
           gateway/herd_timers.c gateway/herd_turns.c gateway/herd_shed.c \
           gateway/herd_gateway_test.c
BUS     := bus/herd_bus.c bus/herd_bus_test.c bus/herd_catchup.c bus/herd_durable.c \
           bus/herd_journal.c bus/herd_journal_test.c bus/herd_peer.c bus/herd_refusals.c \
           bus/herd_store.c bus/herd_table.c
PLACES  := places/herd_places.c places/herd_placesbody.c places/herd_placesnew.c \
           places/herd_google.c places/herd_placescache.c
MONITOR := monitor/herd_collector.c monitor/herd_monitor.c
LIBSRC  := $(COMMON) $(GATEWAY) $(BUS) $(PLACES) $(MONITOR) cli/herd_node.c cli/herd_client.c cli/herd_watch.c \
           cli/herd_checkup.c
LIBOBJ  := $(LIBSRC:%.c=$(BUILD)/%.o)
#  Test code that only herd_selftest links (it starts tests/places_standin.py)
TESTSRC := places/herd_standin.c places/herd_places_selftest.c
TESTOBJ := $(TESTSRC:%.c=$(BUILD)/%.o)
HEADERS := $(wildcard common/*.h gateway/*.h bus/*.h places/*.h monitor/*.h cli/*.h)

HERD     := $(BUILD)/bin/herd
SELFTEST := $(BUILD)/bin/herd_selftest
PYTHON   := /usr/bin/python3

.PHONY: all deps test-deps check-libs run test unit integration san-test clean tidy format \
        install fuzz fuzz-short fuzz-build soak coverage

#  make install [PREFIX=/usr/local] [DESTDIR=] [SYSCONFDIR=/etc]
PREFIX     ?= /usr/local
SYSCONFDIR ?= /etc
BINDIR      = $(PREFIX)/bin
DOCDIR      = $(PREFIX)/share/doc/herd
UNITDIR     = $(PREFIX)/lib/systemd/system

all: bin/herd

deps:
	@scripts/install-deps.sh run

test-deps:
	@scripts/install-deps.sh test

check-libs:
	@if [ -n "$(strip $(PKGS_MISSING))" ]; then \
	    echo "herd: missing libraries ($(strip $(PKGS_MISSING))): run 'make deps' (as root) first" >&2; \
	    exit 1; \
	fi

#  bin/herd is the release build, the program users run.
bin/herd: $(HERD)
	@mkdir -p bin
	cp $< $@

$(BUILD)/%.o: %.c $(HEADERS) | check-libs
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(HERD): $(LIBOBJ) $(BUILD)/cli/herd.o | check-libs
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ -o $@ $(LDLIBS)

#  The version `herd --version` prints: git describe of this checkout, else
#  common/herd_version.h's. $(BUILD)/version changes only when it does.
GIT_VERSION := $(shell git describe --always --dirty 2>/dev/null)
ifneq ($(GIT_VERSION),)
$(BUILD)/cli/herd.o $(BUILD)/monitor/herd_monitor.o: CFLAGS += -DHERD_VERSION='"$(GIT_VERSION)"'
endif
$(BUILD)/cli/herd.o $(BUILD)/monitor/herd_monitor.o: $(BUILD)/version
$(BUILD)/version: FORCE
	@mkdir -p $(dir $@)
	@echo '$(GIT_VERSION)' | cmp -s - $@ || echo '$(GIT_VERSION)' > $@
.PHONY: FORCE

$(SELFTEST): $(LIBOBJ) $(TESTOBJ) $(BUILD)/tests/unit/selftest.o | check-libs
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ -o $@ $(LDLIBS)

build: $(HERD) $(SELFTEST)

#  Issue 6's benchmark, not part of `make test`: the load generator and the
#  floor server in $(BUILD)/bench, then bench/run.sh (settings: BENCH_SECONDS,
#  BENCH_RUNS, ... at the top of bench/run.sh; figures in BENCHMARKS.md).
BENCH := $(BUILD)/bench/herd_bench $(BUILD)/bench/floor_server $(BUILD)/bench/records_bench
.PHONY: bench

#  herd_bench speaks the control wire (GET on a node's sync socket) with the codec
$(BUILD)/bench/herd_bench: $(BUILD)/bench/herd_bench.o $(BUILD)/common/herd_buffer.o \
                           $(BUILD)/common/herd_msg.o
	$(CC) $(LDFLAGS) $^ -o $@ $(LDLIBS) -lm

$(BUILD)/bench/floor_server: $(BUILD)/bench/floor_server.o $(BUILD)/common/herd_proto.o \
                              $(BUILD)/common/herd_decimal.o $(BUILD)/common/herd_buffer.o
	$(CC) $(LDFLAGS) $^ -o $@

#  What one record costs the bus, without sockets: the store and its parsers
$(BUILD)/bench/records_bench: $(BUILD)/bench/records_bench.o $(BUILD)/bus/herd_store.o \
                              $(BUILD)/bus/herd_table.o $(BUILD)/common/herd_record.o \
                              $(BUILD)/common/herd_proto.o $(BUILD)/common/herd_decimal.o
	$(CC) $(LDFLAGS) $^ -o $@ $(LDLIBS)

bench: bin/herd $(BENCH)
	@bench/run.sh

#  Start the five-node herd of herd.cfg in the foreground (Ctrl-C stops it).
#  Installs the run-time packages only; the test tools come with make test.
run: deps
	@$(MAKE) --no-print-directory bin/herd
	@scripts/run.sh

#  Every test: unit self-tests and integration tests on the release build,
#  then both again under ASan+UBSan. Prints a summary line; non-zero on failure.
test: test-deps
	@scripts/test.sh

unit: $(SELFTEST)
	$(SELFTEST)

integration: $(HERD) $(SELFTEST)
	HERD_BIN=$(abspath $(HERD)) $(PYTHON) -m pytest -q tests/integration

#  The fault soak (tests/soak/soak.py), not part of `make test` (which runs
#  60 s of it): a five-node herd under writes through kill -9, SIGSTOP,
#  link cuts, a partition, disk full, a rogue peer, a hash flood and
#  never-reading clients, then the checker. As root the herd runs in network
#  namespaces with a tmpfs journal. SOAK_SECONDS (600), SOAK_ARGS (--split,
#  --seed N, --keep ...).
SOAK_SECONDS ?= 600
SOAK_ARGS    ?=

soak: $(HERD)
	HERD_BIN=$(abspath $(HERD)) $(PYTHON) tests/soak/soak.py --seconds $(SOAK_SECONDS) $(SOAK_ARGS)

#  Line coverage of each source file by the unit self-tests alone (gcov),
#  from an instrumented build in build/cov. Not part of make test.
coverage:
	@$(MAKE) --no-print-directory -s BUILD=build/cov CC="$(CC) --coverage" build/cov/bin/herd_selftest
	@find build/cov -name '*.gcda' -delete
	@build/cov/bin/herd_selftest > build/cov/selftest.log 2>&1 || \
	    { tail -n 5 build/cov/selftest.log; exit 1; }
	@scripts/coverage.sh build/cov $(filter-out %_test.c,$(LIBSRC))

#  libFuzzer targets (clang, ASan+UBSan) in build/fuzz: `make fuzz` runs each
#  for FUZZ_SECONDS, `make fuzz-short` (part of make test) for 30 s each.
#  tests/fuzz/run.sh reports executions and coverage; crashes land in
#  build/fuzz/crashes/.
FUZZ_CC      := clang
FUZZ_SECONDS ?= 300
FUZZ_CFLAGS  := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -pthread -g -O1 \
                -fno-omit-frame-pointer -fno-sanitize-recover=all \
                $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
FUZZ_SRC     := common/herd_msg.c common/herd_proto.c common/herd_decimal.c common/herd_record.c common/herd_config.c \
                common/herd_config_scan.c places/herd_placesbody.c places/herd_placesnew.c
FUZZ_OBJ     := $(FUZZ_SRC:%.c=build/fuzz/obj/%.o)
FUZZ_BINS    := $(patsubst tests/fuzz/%.c,build/fuzz/%,$(wildcard tests/fuzz/fuzz_*.c))

build/fuzz/obj/%.o: %.c $(HEADERS) | check-libs
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link,address,undefined -c $< -o $@

build/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_OBJ) $(HEADERS)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer,address,undefined $< $(FUZZ_OBJ) -o $@ $(LDLIBS)

fuzz-build: $(FUZZ_BINS)

fuzz: fuzz-build
	tests/fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_BINS)

fuzz-short: fuzz-build
	tests/fuzz/run.sh 30 $(FUZZ_BINS)

tidy:
	clang-tidy $(LIBSRC) $(TESTSRC) cli/herd.c -- $(CFLAGS)

format:
	clang-format -i $(LIBSRC) $(TESTSRC) cli/herd.c $(HEADERS) tests/unit/*.c

#  Installs the program, an example config (kept if one exists), the
#  systemd unit template herd@.service and a logrotate rule. The unit runs
#  nodes in /var/lib/herd; the example config's relative log paths become
#  /var/log/herd/NAME.log, where the unit may write and logrotate looks.
install: bin/herd
	install -D -m 755 bin/herd $(DESTDIR)$(BINDIR)/herd
	install -d $(DESTDIR)$(SYSCONFDIR)/herd $(DESTDIR)$(DOCDIR) $(DESTDIR)$(UNITDIR)
	test -e $(DESTDIR)$(SYSCONFDIR)/herd/herd.cfg || { \
	    sed -E 's|^(    log = )([^/[:space:]][^[:space:]]*/)?([^/[:space:]]+)|\1/var/log/herd/\3|' \
	        herd.cfg > $(DESTDIR)$(SYSCONFDIR)/herd/herd.cfg.new && \
	    chmod 644 $(DESTDIR)$(SYSCONFDIR)/herd/herd.cfg.new && \
	    mv $(DESTDIR)$(SYSCONFDIR)/herd/herd.cfg.new $(DESTDIR)$(SYSCONFDIR)/herd/herd.cfg; }
	install -m 644 README.md PROTOCOL.md $(DESTDIR)$(DOCDIR)/
	sed -e 's|@BINDIR@|$(BINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' \
	    -e 's|@DOCDIR@|$(DOCDIR)|g' dist/herd@.service.in > $(DESTDIR)$(UNITDIR)/herd@.service
	install -D -m 644 dist/herd.logrotate $(DESTDIR)$(SYSCONFDIR)/logrotate.d/herd

clean:
	rm -rf build bin

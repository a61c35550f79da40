#  herd - build, test, run. `make run` starts the five-node herd of herd.cfg;
#  `make test` runs every test. Both install missing Debian packages first.

CC      ?= cc
PKGS    := libczmq libzmq libcurl libcjson
CFLAGS  ?= -O2 -g
CFLAGS  += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -pthread \
           $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS  += $(shell pkg-config --libs $(PKGS) 2>/dev/null) -pthread

#  SAN=1 builds with AddressSanitizer + UndefinedBehaviorSanitizer into
#  build/san, so both builds can sit side by side.
ifeq ($(SAN),1)
BUILD   := build/san
CFLAGS  += -O1 -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS += -fsanitize=address,undefined
else
BUILD   := build/release
endif

COMMON  := common/herd_config.c common/herd_log.c common/herd_proto.c common/herd_record.c
GATEWAY := gateway/herd_gateway.c
BUS     := bus/herd_bus.c
PLACES  := places/herd_places.c places/herd_placesbody.c
LIBSRC  := $(COMMON) $(GATEWAY) $(BUS) $(PLACES) cli/herd_node.c
LIBOBJ  := $(LIBSRC:%.c=$(BUILD)/%.o)
HEADERS := $(wildcard common/*.h gateway/*.h bus/*.h places/*.h cli/*.h)

HERD     := $(BUILD)/bin/herd
SELFTEST := $(BUILD)/bin/herd_selftest
PYTHON   := /usr/bin/python3

.PHONY: all deps run test unit integration san-test clean tidy format

all: bin/herd

deps:
	@scripts/install-deps.sh

#  bin/herd is the release build, the program users run.
bin/herd: $(HERD)
	@mkdir -p bin
	cp $< $@

$(BUILD)/%.o: %.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(HERD): $(LIBOBJ) $(BUILD)/cli/herd.o
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ -o $@ $(LDLIBS)

$(SELFTEST): $(LIBOBJ) $(BUILD)/tests/unit/selftest.o
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ -o $@ $(LDLIBS)

build: $(HERD) $(SELFTEST)

#  Start the five-node herd of herd.cfg in the foreground (Ctrl-C stops it).
run: deps
	@$(MAKE) --no-print-directory bin/herd
	@scripts/run.sh

#  Every test: unit self-tests and integration tests on the release build,
#  then both again under ASan+UBSan. Prints a summary line; non-zero on failure.
test: deps
	@scripts/test.sh

unit: $(SELFTEST)
	$(SELFTEST)

integration: $(HERD) $(SELFTEST)
	HERD_BIN=$(abspath $(HERD)) $(PYTHON) -m pytest -q tests/integration

tidy:
	clang-tidy $(LIBSRC) cli/herd.c -- $(CFLAGS)

format:
	clang-format -i $(LIBSRC) cli/herd.c $(HEADERS) tests/unit/*.c

clean:
	rm -rf build bin

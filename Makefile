# lambda-gateway: one non-recursive Makefile. Every output goes under build/ (build/san/ for the
# sanitizer build). New sources are picked up by folder: dispatch/*.c and handlers/*.c form the
# library, server/*.c the binary, tests/unit/test_*.c one cmocka program each.

SANITIZE ?=
ifeq ($(SANITIZE),)
B := build
SANFLAGS :=
else
B := build/san
SANFLAGS := -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
endif

CC ?= cc
PKGS := libmicrohttpd libcurl openssl jansson
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CMOCKA_CFLAGS := $(shell pkg-config --cflags cmocka 2>/dev/null)
CMOCKA_LIBS := $(shell pkg-config --libs cmocka 2>/dev/null)

WARN := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 \
	-Wvla -fno-common
OPT ?= -O2
CFLAGS ?= $(OPT) -g
ALL_CFLAGS := -std=c11 -D_POSIX_C_SOURCE=200809L $(WARN) $(CFLAGS) $(SANFLAGS) -fPIC -pthread \
	-I. -Idispatch -Ihandlers -Iserver $(PKG_CFLAGS) -MMD -MP
ALL_LDFLAGS := $(LDFLAGS) $(SANFLAGS) -pthread -rdynamic
LIBS := $(PKG_LIBS) -ldl -lm

VERSION := $(shell cat VERSION 2>/dev/null || echo 0.0.0)

LIB_SRCS := $(wildcard dispatch/*.c handlers/*.c)
SRV_SRCS := $(wildcard server/*.c)
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
PLUGIN_SRCS := $(wildcard tests/plugins/*.c)
BENCH_SRCS := $(wildcard bench/*.c)

LIB_OBJS := $(LIB_SRCS:%.c=$(B)/obj/%.o)
SRV_OBJS := $(SRV_SRCS:%.c=$(B)/obj/%.o)
SRV_LIB_OBJS := $(filter-out $(B)/obj/server/main.o,$(SRV_OBJS))
# The OpenAPI document and the /docs page, generated into build/gen (shared by both builds) from
# openapi/ by openapi/gen.py and compiled into the server (server/assets.h).
GEN := build/gen
UI_STAMP := openapi/ui/node_modules/.package-lock.json
SRV_LIB_OBJS += $(B)/obj/$(GEN)/lgw_assets.o
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(B)/tests/%)
PLUGINS := $(PLUGIN_SRCS:tests/plugins/%.c=$(B)/plugins/lib%.so)
BENCH_BINS := $(BENCH_SRCS:bench/%.c=$(B)/bench/%)

LIB := $(B)/liblgw.a
SRVLIB := $(B)/liblgw-server.a
BIN := $(B)/lambda-gateway

.SECONDARY:

.PHONY: all run test check tsan unit integration format format-check clean deps bench

all: $(BIN) $(PLUGINS)

deps:
	@scripts/deps.sh

$(B)/obj/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -DLGW_VERSION='"$(VERSION)"' -c $< -o $@

$(B)/obj/tests/unit/%.o: tests/unit/%.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(CMOCKA_CFLAGS) -Wno-missing-prototypes -c $< -o $@

$(GEN)/lgw_assets.c $(GEN)/openapi.json &: openapi/openapi.yaml openapi/gen.py openapi/ui/index.html \
		openapi/ui/init.js $(UI_STAMP)
	/usr/bin/python3 openapi/gen.py --yaml openapi/openapi.yaml --ui openapi/ui \
		--json $(GEN)/openapi.json --c $(GEN)/lgw_assets.c

# npm ci, when node_modules is missing or older than the lockfile.
%/node_modules/.package-lock.json: %/package-lock.json
	scripts/node-tools.sh $*

$(LIB): $(LIB_OBJS)
	@mkdir -p $(@D)
	rm -f $@ && ar rcs $@ $^

$(SRVLIB): $(SRV_LIB_OBJS)
	@mkdir -p $(@D)
	rm -f $@ && ar rcs $@ $^

$(BIN): $(B)/obj/server/main.o $(SRVLIB) $(LIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

# Unit tests of server/ modules are named test_srv_*.c and link the server objects too.
$(B)/tests/test_srv_%: $(B)/obj/tests/unit/test_srv_%.o $(SRVLIB) $(LIB)
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(CMOCKA_LIBS) $(LIBS)

$(B)/tests/%: $(B)/obj/tests/unit/%.o $(LIB)
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(CMOCKA_LIBS) $(LIBS)

$(B)/plugins/lib%.so: tests/plugins/%.c handlers/lgw_handler.h
	@mkdir -p $(@D)
	$(CC) -std=c11 -D_POSIX_C_SOURCE=200809L $(WARN) $(CFLAGS) $(SANFLAGS) -fPIC -shared \
		-Ihandlers $(PKG_CFLAGS) \
		-o $@ $< $(PKG_LIBS)

$(B)/bench/%: bench/%.c $(LIB)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(LIB) $(ALL_LDFLAGS) $(LIBS)

run: deps $(BIN)
	./$(BIN)

unit: $(UNIT_BINS) $(PLUGINS)
	@scripts/run-unit.sh $(UNIT_BINS)

# Every response the tests read is recorded, then checked against openapi/openapi.yaml.
integration: $(BIN) $(PLUGINS) tests/contract/node_modules/.package-lock.json
	LGW_BIN=$(BIN) LGW_PLUGIN_DIR=$(B)/plugins LGW_CONTRACT_LOG=$(B)/contract/responses.jsonl \
		scripts/run-integration.sh
	/usr/bin/python3 tests/contract/check_responses.py openapi/openapi.yaml \
		$(B)/contract/responses.jsonl

# The whole suite: unit and integration tests, then the same again under ASan+UBSan.
test: all
	$(MAKE) unit integration
	$(MAKE) check

check:
	$(MAKE) SANITIZE=address,undefined unit integration

# The same tests under ThreadSanitizer (not part of make test; tests/tsan.supp says what is
# exempted and why). setarch -R: TSan needs the address layout without randomization here.
tsan:
	TSAN_OPTIONS="suppressions=$(CURDIR)/tests/tsan.supp halt_on_error=1" \
		setarch -R $(MAKE) SANITIZE=thread B=build/tsan unit integration

bench: $(BIN) $(BENCH_BINS)
	bench/run.sh

# The image and the docker-compose stacks, tested with a real Docker engine (README: Docker).
.PHONY: docker-test
docker-test:
	scripts/docker-test.sh

# libFuzzer on the HTTP/1.1 response parser, which reads what comes from the network (not part of
# make test). tests/fuzz/fuzz_http1.c says how an input is read; tests/fuzz/corpus_http1/ holds the
# seeds, build/fuzz/corpus_http1/ what the fuzzer finds, build/fuzz/ a crashing input.
FUZZ_CC ?= clang
FUZZ_SECONDS ?= 60
FUZZ_FLAGS := -std=c11 -D_POSIX_C_SOURCE=200809L $(WARN) -g -O1 -fno-omit-frame-pointer \
	-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -Idispatch

build/fuzz/fuzz_http1: tests/fuzz/fuzz_http1.c dispatch/http1.c dispatch/http1.h
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_FLAGS) -o $@ tests/fuzz/fuzz_http1.c dispatch/http1.c

.PHONY: fuzz
fuzz: build/fuzz/fuzz_http1
	@mkdir -p build/fuzz/corpus_http1
	build/fuzz/fuzz_http1 -max_total_time=$(FUZZ_SECONDS) -max_len=4096 -timeout=10 \
		-print_final_stats=1 -artifact_prefix=build/fuzz/ \
		build/fuzz/corpus_http1 tests/fuzz/corpus_http1

FORMAT_SRCS = $(shell git ls-files '*.c' '*.h' 2>/dev/null)
format:
	clang-format -i $(FORMAT_SRCS)
format-check:
	clang-format --dry-run --Werror $(FORMAT_SRCS)

clean:
	rm -rf build

-include $(shell find build -name '*.d' 2>/dev/null)

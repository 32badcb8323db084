# Makefile: builds, tests, benchmarks and installs sealdrop (server, client, db inspect tool).
# `make test` and `make demo` install missing Debian packages first (scripts/deps.sh).

PREFIX ?= /usr/local
DESTDIR ?=
CC ?= cc
PYTHON ?= /usr/bin/python3
SAN ?=
# Sanitizer builds keep their objects and programs apart (build-san/, bin-san/), so they never
# mix with normal ones and a later plain `make` never keeps a sanitizer binary in bin/.
ifeq ($(SAN),)
BUILD ?= build
BINDIR ?= bin
else
BUILD ?= build-san
BINDIR ?= bin-san
endif

# gnutls: version 4's TLS (protocol/tls.c only); zlib: version 4's upload compression
# (client/commands.c); libpq: the PostgreSQL backend of db/ (db/pg.c).
PKGS := libgcrypt libtasn1 sqlite3 zlib gnutls libpq
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CMOCKA_CFLAGS = $(shell pkg-config --cflags cmocka 2>/dev/null)
CMOCKA_LIBS = $(shell pkg-config --libs cmocka 2>/dev/null)

WARN := -Wall -Wextra -Werror -Wconversion -Wshadow -Wstrict-prototypes -Wformat=2 -Wvla
CFLAGS ?= -O2 -g
CFLAGS += -std=c11 -D_GNU_SOURCE $(WARN) $(PKG_CFLAGS)
LDLIBS += $(PKG_LIBS) -lpthread
ifneq ($(SAN),)
CFLAGS += -fsanitize=$(SAN) -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS += -fsanitize=$(SAN)
endif

VERSION := $(shell cat VERSION 2>/dev/null || echo 0.0.0)
CFLAGS += -DSEALDROP_VERSION='"$(VERSION)"'

# Modules: one folder each; a folder's main.c is its program, the rest is its library.
PROTO_SRC := $(wildcard protocol/*.c)
DB_SRC := $(wildcard db/*.c)
SERVER_SRC := $(filter-out server/main.c,$(wildcard server/*.c))
CLIENT_SRC := $(filter-out client/main.c,$(wildcard client/*.c))
DBTOOL_SRC := $(filter-out tools/sealdrop-db/main.c,$(wildcard tools/sealdrop-db/*.c))
UNIT_SRC := $(wildcard tests/unit/test_*.c)
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
TOOL_SRC := $(wildcard tests/tools/*.c)

obj = $(patsubst %.c,$(BUILD)/%.o,$(1))
PROTO_LIB := $(BUILD)/libsdprotocol.a
DB_LIB := $(BUILD)/libsddb.a
SERVER_LIB := $(BUILD)/libsdserver.a
CLIENT_LIB := $(BUILD)/libsdclient.a
DBTOOL_LIB := $(BUILD)/libsddbtool.a
ALL_LIBS := $(SERVER_LIB) $(CLIENT_LIB) $(DB_LIB) $(PROTO_LIB)

SERVER_BIN := $(BINDIR)/sealdrop-server
CLIENT_BIN := $(BINDIR)/sealdrop-client
DB_BIN := $(BINDIR)/sealdrop-db
BINS := $(if $(wildcard server/main.c),$(SERVER_BIN)) $(if $(wildcard client/main.c),$(CLIENT_BIN)) \
	$(if $(wildcard tools/sealdrop-db/main.c),$(DB_BIN))
UNIT_BINS := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRC))
FUZZ_REPLAY_BINS := $(patsubst tests/fuzz/%.c,$(BUILD)/tests/replay_%,$(FUZZ_SRC))
TOOL_BINS := $(patsubst tests/tools/%.c,$(BUILD)/tests/tools/%,$(TOOL_SRC))

.PHONY: all deps test unit integration demo bench install uninstall clean valgrind fuzz fuzz-replay
all: $(BINS)

deps:
	@sh scripts/deps.sh

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

# db/schema.sql is compiled into the db library as a C string.
$(BUILD)/db/schema.c: db/schema.sql
	@mkdir -p $(dir $@)
	{ echo '/* generated from db/schema.sql */'; echo 'const char db_schema_sql[] ='; \
	  sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/"/' -e 's/$$/\\n"/' $<; echo ';'; } > $@
$(BUILD)/db/schema.o: $(BUILD)/db/schema.c
	$(CC) $(CFLAGS) -c $< -o $@

$(PROTO_LIB): $(call obj,$(PROTO_SRC))
	@rm -f $@; ar rcs $@ $^
$(DB_LIB): $(call obj,$(DB_SRC)) $(if $(wildcard db/schema.sql),$(BUILD)/db/schema.o)
	@rm -f $@; ar rcs $@ $^
$(SERVER_LIB): $(call obj,$(SERVER_SRC))
	@rm -f $@; ar rcs $@ $^
$(CLIENT_LIB): $(call obj,$(CLIENT_SRC))
	@rm -f $@; ar rcs $@ $^
$(DBTOOL_LIB): $(call obj,$(DBTOOL_SRC))
	@rm -f $@; ar rcs $@ $^

$(SERVER_BIN): $(BUILD)/server/main.o $(SERVER_LIB) $(DB_LIB) $(PROTO_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
$(CLIENT_BIN): $(BUILD)/client/main.o $(CLIENT_LIB) $(PROTO_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
$(DB_BIN): $(BUILD)/tools/sealdrop-db/main.o $(DBTOOL_LIB) $(DB_LIB) $(PROTO_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# Unit tests: one cmocka program per tests/unit/test_*.c, linked with every module library.
# Each finds the fixtures beside the source tree by itself ($SEALDROP_FIXTURES overrides), so
# any one runs alone: build/tests/test_frame, or `make test ONLY=test_frame`.
FIXTURES_DEFAULT := $(abspath $(CURDIR)/../shared/fixtures)
$(BUILD)/tests/test_%.o: tests/unit/test_%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(CMOCKA_CFLAGS) -DSEALDROP_FIXTURES_DEFAULT='"$(FIXTURES_DEFAULT)"' \
		-MMD -MP -c $< -o $@
$(BUILD)/tests/test_%: $(BUILD)/tests/test_%.o $(ALL_LIBS)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) $(CMOCKA_LIBS)

# Test tools: small programs that the Python tests drive (e.g. our crypto against Python's).
$(BUILD)/tests/tools/%: tests/tools/%.c $(ALL_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(TOOL_CFLAGS) $(LDFLAGS) -o $@ $< $(ALL_LIBS) $(LDLIBS) $(TOOL_LIBS)
# sdbench measures AES-GCM and SHA-256 as version 4's TLS does them: through GnuTLS.
$(BUILD)/tests/tools/sdbench: TOOL_CFLAGS = $(shell pkg-config --cflags gnutls 2>/dev/null)
$(BUILD)/tests/tools/sdbench: TOOL_LIBS = $(shell pkg-config --libs gnutls 2>/dev/null)

# Fuzz targets: replayed over their saved corpus by `make test` with a plain driver;
# `make fuzz` builds the libFuzzer versions with clang.
$(BUILD)/tests/replay_%: tests/fuzz/%.c tests/fuzz/replay_main.c $(ALL_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< tests/fuzz/replay_main.c $(ALL_LIBS) $(LDLIBS)
FUZZ_BUILD ?= $(BUILD)-fuzz
# Every target links protocol/, server/ and db/ (fuzz_conn drives a whole connection).
fuzz: $(BUILD)/db/schema.c
	@sh scripts/deps.sh fuzz
	@for f in $(FUZZ_SRC); do n=$$(basename $$f .c); mkdir -p $(FUZZ_BUILD); \
	  echo "clang -fsanitize=fuzzer $$f"; \
	  clang -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined $(PKG_CFLAGS) \
	    -o $(FUZZ_BUILD)/$$n $$f $(PROTO_SRC) $(SERVER_SRC) $(DB_SRC) \
	    $(BUILD)/db/schema.c $(LDLIBS) || exit 1; done
	@echo "run e.g.: mkdir -p /tmp/fz && $(FUZZ_BUILD)/fuzz_frame -max_total_time=60 /tmp/fz tests/fuzz/corpus/fuzz_frame"
	@echo "(libFuzzer adds new inputs to the first folder: keep the saved corpus second)"

# ONLY=pattern runs only the test programs whose name contains it (make test ONLY=test_frame).
ONLY ?=
test: deps
	$(MAKE) all $(UNIT_BINS) $(FUZZ_REPLAY_BINS) $(TOOL_BINS)
	@BUILD=$(BUILD) BINDIR=$(BINDIR) PYTHON=$(PYTHON) VALGRIND= SEALDROP_SAN=$(SAN) ONLY='$(ONLY)' \
		sh tests/run.sh

# Unit tests under valgrind, then the client against the server with both under valgrind.
VALGRIND_CMD := valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite
valgrind: deps
	$(MAKE) all $(UNIT_BINS)
	@BUILD=$(BUILD) BINDIR=$(BINDIR) PYTHON=$(PYTHON) VALGRIND=1 sh tests/run.sh unit
	@BUILD=$(BUILD) BINDIR=$(BINDIR) PYTHON=$(PYTHON) SEALDROP_WRAP="$(VALGRIND_CMD)" \
		ONLY=test_client_server sh tests/run.sh integration

demo: deps
	$(MAKE) all
	@PYTHON=$(PYTHON) BINDIR=$(BINDIR) sh scripts/demo.sh

bench:
	@sh scripts/deps.sh bench
	$(MAKE) all
	@PYTHON=$(PYTHON) BINDIR=$(BINDIR) BUILD=$(BUILD) sh bench/run.sh

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1
	install -m 0755 $(BINS) $(DESTDIR)$(PREFIX)/bin/
	for m in docs/*.1; do [ -f "$$m" ] && install -m 0644 "$$m" $(DESTDIR)$(PREFIX)/share/man/man1/; done; true

uninstall:
	rm -f $(addprefix $(DESTDIR)$(PREFIX)/bin/,sealdrop-server sealdrop-client sealdrop-db)
	rm -f $(addprefix $(DESTDIR)$(PREFIX)/share/man/man1/,sealdrop-server.1 sealdrop-client.1 sealdrop-db.1)

clean:
	rm -rf build build-san build-fuzz bin bin-san

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

# Encore: one non-recursive GNU Makefile (see ../shared/STYLE.md section 12).
#   make [all]        build/bin/encore, encore-server, encore-client
#   make test         unit tests, fuzz corpus replay + bounded fuzz run, integration tests
#   make unit | integration | fuzz | format | format-check | install | clean
# Variables: CC=clang, WERROR=1, DEBUG=1, SAN=address,undefined, V=1, PREFIX=/usr/local
SHELL   := /bin/bash
ifeq ($(origin CC),default)
CC      := gcc
endif
PREFIX  ?= /usr/local
PKGS    := fuse3 lmdb libsodium inih json-c
PYTHON  ?= /usr/bin/python3

ifeq ($(V),1)
Q :=
else
Q := @
endif

VARIANT := $(notdir $(CC))
ifneq ($(SAN),)
VARIANT := $(VARIANT)-san
endif
ifeq ($(DEBUG),1)
VARIANT := $(VARIANT)-debug
endif
OBJ := build/$(VARIANT)
# The default variant's binaries land in build/bin (the documented place);
# other variants (clang, sanitizers, debug) keep theirs apart so that switching
# variants never leaves a stale binary in build/bin.
ifeq ($(VARIANT),gcc)
BIN := build/bin
else
BIN := $(OBJ)/bin
endif

WARN := -Wall -Wextra -Wpedantic -Wformat=2 -Wshadow -Wstrict-prototypes \
	-Wmissing-prototypes -Wold-style-definition -Wpointer-arith -Wvla -Wundef \
	-Wwrite-strings -Wimplicit-fallthrough -Wcast-align
ifeq ($(WERROR),1)
WARN += -Werror
endif
ifeq ($(DEBUG),1)
OPT := -O0 -g3 -DENCORE_DEBUG=1
else
OPT := -O2 -g -D_FORTIFY_SOURCE=2
endif
HARDEN := -fstack-protector-strong -fPIE
ifneq ($(SAN),)
SANFLAGS := -fsanitize=$(SAN) -fno-sanitize-recover=all -fno-omit-frame-pointer
endif

CPPFLAGS := -I. -D_GNU_SOURCE -DFUSE_USE_VERSION=314 $(shell pkg-config --cflags $(PKGS))
CFLAGS   := -std=c17 $(OPT) $(WARN) $(HARDEN) $(SANFLAGS) -MMD -MP
LDFLAGS  := -pie -Wl,-z,relro,-z,now $(SANFLAGS)
LDLIBS   := $(shell pkg-config --libs $(PKGS)) -lpthread

COMMON_SRC := $(wildcard common/*.c)
SERVER_SRC := $(filter-out server/main.c,$(wildcard server/*.c))
CLIENT_SRC := $(filter-out client/main.c,$(wildcard client/*.c))
CLI_SRC    := $(filter-out cli/main.c,$(wildcard cli/*.c))

LIBCOMMON := $(OBJ)/libcommon.a
LIBSERVER := $(OBJ)/libserver.a
LIBCLIENT := $(OBJ)/libclient.a
LIBCLI    := $(OBJ)/libcli.a

UNIT_SRC  := $(wildcard tests/unit/test_*.c)
UNIT_BIN  := $(patsubst tests/unit/%.c,$(OBJ)/tests/%,$(UNIT_SRC))
FUZZ_SRC  := $(wildcard tests/fuzz/fuzz_*.c)
TOOL_SRC  := $(wildcard tests/tools/*.c)
TOOL_BIN  := $(patsubst tests/tools/%.c,$(BIN)/%,$(TOOL_SRC))

.PHONY: all run deps test unit integration fuzz fuzz-build format format-check install clean
all: $(BIN)/encore-server $(BIN)/encore-client $(BIN)/encore $(TOOL_BIN)

objs = $(patsubst %.c,$(OBJ)/%.o,$(1))

$(OBJ)/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

$(LIBCOMMON): $(call objs,$(COMMON_SRC))
$(LIBSERVER): $(call objs,$(SERVER_SRC))
$(LIBCLIENT): $(call objs,$(CLIENT_SRC))
$(LIBCLI):    $(call objs,$(CLI_SRC))
$(OBJ)/%.a:
	@mkdir -p $(dir $@)
	$(Q)rm -f $@ && ar rcs $@ $^

$(BIN)/encore-server: $(OBJ)/server/main.o $(LIBSERVER) $(LIBCOMMON)
$(BIN)/encore-client: $(OBJ)/client/main.o $(LIBCLIENT) $(LIBCOMMON)
$(BIN)/encore:        $(OBJ)/cli/main.o $(LIBCLI) $(LIBCOMMON)
$(BIN)/encore-server $(BIN)/encore-client $(BIN)/encore:
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

# Test tools (raw socket clients, load generators): one .c each, linked with libcommon.
$(BIN)/%: $(OBJ)/tests/tools/%.o $(LIBCOMMON)
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

# Unit tests: each tests/unit/test_X.c links against all libraries it may need.
$(OBJ)/tests/test_%: $(OBJ)/tests/unit/test_%.o $(LIBSERVER) $(LIBCLIENT) $(LIBCLI) $(LIBCOMMON)
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(LDFLAGS) $< $(LIBSERVER) $(LIBCLIENT) $(LIBCLI) $(LIBCOMMON) $(LDLIBS) $(shell pkg-config --libs cmocka) -o $@

unit: $(UNIT_BIN)
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; $$t; done

# Fuzz targets: clang libFuzzer with ASan+UBSan, own object directory.
FUZZ_OBJ := build/fuzz
FUZZ_FLAGS := -std=c17 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
FUZZ_LIB_SRC := $(COMMON_SRC) $(SERVER_SRC) $(CLIENT_SRC)
FUZZ_BIN := $(patsubst tests/fuzz/%.c,$(FUZZ_OBJ)/%,$(FUZZ_SRC))
$(FUZZ_OBJ)/lib/%.o: %.c
	@mkdir -p $(dir $@)
	$(Q)clang $(CPPFLAGS) -std=c17 -O1 -g -fsanitize=fuzzer-no-link,address,undefined -c $< -o $@
$(FUZZ_OBJ)/%: tests/fuzz/%.c $(patsubst %.c,$(FUZZ_OBJ)/lib/%.o,$(FUZZ_LIB_SRC))
	@mkdir -p $(dir $@)
	$(Q)clang $(CPPFLAGS) $(FUZZ_FLAGS) $^ $(LDLIBS) -o $@
fuzz-build: $(FUZZ_BIN)
FUZZ_SECONDS ?= 20
fuzz: fuzz-build
	@set -e; for f in $(FUZZ_BIN); do n=$$(basename $$f); \
	  mkdir -p tests/fuzz/corpus/$$n build/fuzz-corpus-$$n; \
	  echo "== $$n: corpus replay + $(FUZZ_SECONDS)s"; \
	  $$f -max_total_time=$(FUZZ_SECONDS) -max_len=70000 -print_final_stats=0 \
	      build/fuzz-corpus-$$n tests/fuzz/corpus/$$n 2>&1 | tail -2 ; \
	  test $${PIPESTATUS[0]} -eq 0; done

integration: all
	ENCORE_BIN=$(abspath $(BIN)) $(PYTHON) -m pytest -q -rfEs tests/integration $(PYTEST_ARGS)

# The README's first command: install what is missing, build, start a local
# realm with a mounted client. The sub-make re-reads pkg-config after install.
deps:
	scripts/install-deps.sh
run:
	scripts/run.sh

test: all unit fuzz integration

format:
	clang-format -i $(wildcard */*.c */*.h tests/*/*.c)
format-check:
	clang-format --dry-run --Werror $(wildcard */*.c */*.h tests/*/*.c)

install: all
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 755 $(BIN)/encore $(BIN)/encore-server $(BIN)/encore-client $(DESTDIR)$(PREFIX)/bin/

clean:
	rm -rf build

-include $(shell find build -name '*.d' 2>/dev/null)

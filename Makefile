# rpctls: RPC-with-TLS (RFC 9289) for unmodified userspace RPC programs.
#
#   make            build bpf objects, skeletons and the rpctls binary
#   make check      install what is missing, build, run every test (host and VM tiers)
#   make demo       the main job end to end, inside the VM
#   make bench      the benchmark, inside the VM
#   make install    PREFIX=/usr/local DESTDIR=
#   make vmlinux    regenerate vmlinux.h from Debian 12's 6.1 kernel BTF
#   V=1             show the commands

BUILD    ?= build
PREFIX   ?= /usr/local
DESTDIR  ?=
CLANG    ?= clang
CC       ?= cc
BPFTOOL  ?= bpftool
ARCH     := $(shell uname -m | sed -e 's/x86_64/x86/' -e 's/aarch64/arm64/')

VERSION  := $(shell cat VERSION 2>/dev/null || echo 0.0.0)
GITREV   := $(shell git describe --always --dirty 2>/dev/null || echo unknown)

ifeq ($(V),1)
Q =
msg =
else
Q = @
msg = @printf '  %-8s %s\n' "$(1)" "$(2)";
endif

INCLUDES  := -Iinclude -I$(BUILD)/skel -I.
CFLAGS    ?= -O2 -g
CFLAGS    += -Wall -Wextra -Wno-unused-parameter -Wshadow -std=gnu11 -D_GNU_SOURCE \
             -fstack-protector-strong -D_FORTIFY_SOURCE=2 \
             -DRPCTLS_VERSION='"$(VERSION)"' -DRPCTLS_GITREV='"$(GITREV)"' $(INCLUDES)
LDLIBS    += -lbpf -lssl -lcrypto -lelf -lz -lpthread
BPF_CFLAGS := -g -O2 -target bpf -D__TARGET_ARCH_$(ARCH) -Wall -Wno-unused-function $(INCLUDES)

HDRS      := $(wildcard include/rpctls/*.h)
BPF_SRCS  := $(wildcard bpf/*.bpf.c)
BPF_OBJS  := $(patsubst bpf/%.bpf.c,$(BUILD)/bpf/%.bpf.o,$(BPF_SRCS))
SKELS     := $(patsubst bpf/%.bpf.c,$(BUILD)/skel/%.skel.h,$(BPF_SRCS))
CTL_SRCS  := $(wildcard ctl/*.c)
CTL_OBJS  := $(patsubst ctl/%.c,$(BUILD)/ctl/%.o,$(CTL_SRCS))
DEPS_STAMP := $(BUILD)/.deps-ok

.PHONY: all deps check check-host check-vm demo bench install uninstall clean vmlinux tests
.DELETE_ON_ERROR:
.SECONDARY:

all: $(BUILD)/rpctls tests

# One idempotent set-up step: the Debian packages build and tests need.
deps: $(DEPS_STAMP)
$(DEPS_STAMP): scripts/deps.sh
	$(call msg,DEPS,installing what is missing)
	$(Q)scripts/deps.sh
	$(Q)mkdir -p $(BUILD) && touch $@

$(BUILD)/bpf $(BUILD)/skel $(BUILD)/ctl $(BUILD)/tests:
	$(Q)mkdir -p $@

$(BUILD)/bpf/%.bpf.o: bpf/%.bpf.c $(HDRS) $(wildcard bpf/*.h) vmlinux.h | $(BUILD)/bpf $(DEPS_STAMP)
	$(call msg,BPF,$@)
	$(Q)$(CLANG) $(BPF_CFLAGS) -c $< -o $@

$(BUILD)/skel/%.skel.h: $(BUILD)/bpf/%.bpf.o | $(BUILD)/skel
	$(call msg,GEN-SKEL,$@)
	$(Q)$(BPFTOOL) gen skeleton $< name $(subst -,_,$*)_bpf > $@

$(BUILD)/ctl/%.o: ctl/%.c $(wildcard ctl/*.h) $(HDRS) $(SKELS) | $(BUILD)/ctl $(DEPS_STAMP)
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/rpctls: $(CTL_OBJS)
	$(call msg,LINK,$@)
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) $^ $(LDLIBS) -o $@

include selftests/Makefile.inc

check: all
	$(Q)selftests/run --build $(BUILD)

check-host: all
	$(Q)selftests/run --build $(BUILD) --host-only

check-vm: all
	$(Q)selftests/run --build $(BUILD) --vm-only

demo: all
	$(Q)selftests/vm/run --timeout 900 -- selftests/demo.sh $(BUILD)

bench: all
	$(Q)selftests/bench/run --build $(BUILD)

install: $(BUILD)/rpctls
	install -D -m 0755 $(BUILD)/rpctls $(DESTDIR)$(PREFIX)/sbin/rpctls
	install -D -m 0644 $(BUILD)/bpf/rpctls.bpf.o $(DESTDIR)$(PREFIX)/lib/rpctls/rpctls.bpf.o
	install -D -m 0644 $(BUILD)/bpf/guard.bpf.o $(DESTDIR)$(PREFIX)/lib/rpctls/guard.bpf.o
	install -D -m 0644 docs/rpctls.8 $(DESTDIR)$(PREFIX)/share/man/man8/rpctls.8
	install -D -m 0644 docs/rpctls.conf.5 $(DESTDIR)$(PREFIX)/share/man/man5/rpctls.conf.5
	install -D -m 0644 docs/rpctls.conf.example $(DESTDIR)$(PREFIX)/share/doc/rpctls/rpctls.conf.example

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/sbin/rpctls $(DESTDIR)$(PREFIX)/lib/rpctls/rpctls.bpf.o \
	      $(DESTDIR)$(PREFIX)/lib/rpctls/guard.bpf.o \
	      $(DESTDIR)$(PREFIX)/share/man/man8/rpctls.8 $(DESTDIR)$(PREFIX)/share/man/man5/rpctls.conf.5 \
	      $(DESTDIR)$(PREFIX)/share/doc/rpctls/rpctls.conf.example

# vmlinux.h is committed; this regenerates it from the 6.1 kernel's BTF.
vmlinux: | $(DEPS_STAMP)
	$(call msg,GEN,vmlinux.h)
	$(Q)scripts/gen-vmlinux-h.sh $(CURDIR)/vmlinux.h $(CURDIR)/$(BUILD)/vmlinux-h

clean:
	rm -rf $(BUILD)/bpf $(BUILD)/skel $(BUILD)/ctl $(BUILD)/tests $(BUILD)/rpctls

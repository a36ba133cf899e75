# shunt: build, demo, test, bench. `make test` is what CI runs.
SHELL := /bin/bash
CARGO ?= cargo
# Debian packages that tests, demo and benchmarks use.
DEB_PACKAGES := iproute2 iputils-ping netcat-openbsd socat tcpdump ethtool procps util-linux python3 gcc make coreutils bc curl redis-server redis-tools iperf3 nginx-light sockperf

.PHONY: all build deps demo test test-unit lint posix conformance bench clean install
# Python packages the conformance suite uses (pip, pinned).
PIP_PACKAGES := scapy==2.8.0

all: build

build:
	$(CARGO) build --release --workspace --all-targets

# Install what is missing, once; safe to run again.
deps:
	@missing=""; for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "make deps: installing$$missing"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	else echo "make deps: all packages present"; fi
	@python3 -c 'import scapy,sys; sys.exit(scapy.VERSION != "2.8.0")' 2>/dev/null || { echo "make deps: pip installing $(PIP_PACKAGES)"; \
	  python3 -m pip install -q --disable-pip-version-check $(PIP_PACKAGES); }

demo: deps build
	bash scripts/demo.sh

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --release --workspace --all-targets -- -D warnings

test-unit: build
	$(CARGO) test --release --workspace

posix: build
	python3 posix-suite/run.py

conformance: deps build
	python3 conformance/run.py

test: deps lint test-unit posix conformance

bench: deps build
	bash scripts/bench.sh

# `shunt` in $(PREFIX)/bin and libshunt.so in $(PREFIX)/lib, where
# `shunt run` looks for it (DESTDIR for staging).
PREFIX ?= /usr/local
install: build
	install -D -m 0755 target/release/shunt $(DESTDIR)$(PREFIX)/bin/shunt
	install -D -m 0755 target/release/libshunt.so $(DESTDIR)$(PREFIX)/lib/libshunt.so

clean:
	$(CARGO) clean
	rm -rf posix-suite/build

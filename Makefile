# Every target bootstraps its own virtual environment from pyproject.toml.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: all test lint fmt demo serve bench bench-quick bench-packages profile clean system-packages

all: test

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Debian packages the tests use, as FILE=PACKAGE: each is installed only when FILE is missing.
# SoftHSM2 is the PKCS#11 token the key-store tests sign through (docs/adr/0038); the
# PostgreSQL server binaries start the tests' throwaway cluster (tests/pg.py).
SYSTEM_PACKAGES := /usr/bin/chromium=chromium /usr/bin/openssl=openssl \
	/usr/lib/softhsm/libsofthsm2.so=softhsm2 /usr/bin/softhsm2-util=softhsm2 \
	/usr/lib/postgresql=postgresql

system-packages:
	scripts/system-packages $(SYSTEM_PACKAGES)

test: $(STAMP) system-packages
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

fmt: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

demo: $(STAMP)
	$(BIN)/gateway demo

serve: $(STAMP)
	$(BIN)/gateway demo --serve

# Debian packages of the bench's baselines, as FILE=PACKAGE: nginx (the nginx pair) and
# wrk (the load generator). Each is optional: the bench and the bench targets try to
# install them (as root or through sudo) and, where that fails, the bench says what it
# left out (the nginx row) or falls back (the Python load generator).
BENCH_PACKAGES := /usr/sbin/nginx=nginx /usr/bin/wrk=wrk

bench-packages:
	scripts/system-packages $(BENCH_PACKAGES)

# The exchange path against its baselines, the sample Melderegister's CPU per lookup and
# the targets of issue 17 (writes bench/results/bench-*.json), then the offline audit
# verifier's entries per second (docs/audit-bundle.md section 6). docs/performance.md.
bench: $(STAMP)
	-scripts/system-packages $(BENCH_PACKAGES)
	$(BIN)/gateway bench --out bench/results
	$(BIN)/gateway audit bench --entries 20000

bench-quick: $(STAMP)
	-scripts/system-packages $(BENCH_PACKAGES)
	$(BIN)/gateway bench --levels 1,64 --repeats 1 --large-bodies 65536 --soak 0 --out bench/results

# Where a node's time goes: py-spy samples both nodes under load (docs/performance.md).
profile: $(STAMP)
	$(BIN)/gateway bench --levels 64 --repeats 1 --large-bodies '' --soak 0 --profile bench/results/profile --out bench/results

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .pytest_cache .ruff_cache

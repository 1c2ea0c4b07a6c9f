# Every target bootstraps its own virtual environment from pyproject.toml.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: all test lint fmt demo serve bench bench-quick bench-packages profile fuzz faults faults-postgres soak clean system-packages

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
	/usr/lib/postgresql=postgresql /usr/bin/faketime=faketime

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
# the performance targets (writes bench/results/bench-*.json), then the offline audit
# verifier's entries per second (docs/audit-bundle.md section 6). docs/performance.md.
bench: $(STAMP)
	-scripts/system-packages $(BENCH_PACKAGES)
	$(BIN)/gateway bench --levels 1,4,16,64 --out bench/results --plot docs/img/performance-concurrency.svg
	$(BIN)/gateway audit bench --entries 20000

bench-quick: $(STAMP)
	-scripts/system-packages $(BENCH_PACKAGES)
	$(BIN)/gateway bench --levels 1,64 --repeats 1 --large-bodies 65536 --soak 0 --out bench/results

# Where a node's time goes: py-spy samples both nodes under load (docs/performance.md).
profile: $(STAMP)
	$(BIN)/gateway bench --levels 64 --repeats 1 --large-bodies '' --soak 0 --profile bench/results/profile --out bench/results

# The fault harness (docs/reliability.md): every fault once under recorded load, then the
# checks of the history against every node's log; report in bench/results/faults/.
# (`make test` runs its short lane, tests/integration/test_fault_harness.py, and the clock
# faults under libfaketime, tests/integration/test_fault_clock.py.)
# `make faults-postgres`: the same with every node's log in a throwaway PostgreSQL
# cluster and `postgres-restart` among the faults; report in bench/results/faults-postgres/.
faults: $(STAMP) system-packages
	$(BIN)/python -m gateway.sandbox.faults --scenario full --out bench/results/faults

faults-postgres: $(STAMP) system-packages
	$(BIN)/python -m gateway.sandbox.faults --scenario full --postgres --out bench/results/faults-postgres

# The soak, not in CI: SOAK_MINUTES (default 30) at half the measured maximum rate with
# 1 MiB bodies and a random fault every 30-60 s; plot and summary in bench/results/soak/.
SOAK_MINUTES ?= 30
soak: $(STAMP)
	$(BIN)/python -m gateway.sandbox.faults --soak-minutes $(SOAK_MINUTES) --out bench/results/soak

# Every parser that takes outside bytes, coverage-guided with atheris for FUZZ_SECONDS
# each (targets in tests/fuzz/targets.py); crashing inputs land in crashes/. Not in CI
# (docs/reliability.md, "Fuzzing"). FUZZ_TARGETS narrows it: make fuzz FUZZ_TARGETS="jws ocsp"
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?=
fuzz: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,fuzz]' || echo "atheris did not install: fuzzing without coverage guidance"
	$(BIN)/python -m tests.fuzz.run --seconds $(FUZZ_SECONDS) $(FUZZ_TARGETS)

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .pytest_cache .ruff_cache .fuzz

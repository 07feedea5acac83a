# The two commands: `make run` and `make test`. Both install missing Debian packages first.
MAKEFLAGS += --no-print-directory
PRESET ?= release
BUILD := build/$(PRESET)

.PHONY: deps build fuzz-build run test fuzz asan soak clean
deps:
	@scripts/install-deps.sh

build: deps
	@cmake --preset $(PRESET) >/dev/null
	@cmake --build --preset $(PRESET)

# The libFuzzer targets (clang-16, ASan/UBSan), a build of their own: build/fuzz.
fuzz-build: deps
	@cmake --preset fuzz >/dev/null
	@cmake --build --preset fuzz

run: build
	$(BUILD)/apps/kaiwa start $(ARGS)

test: build fuzz-build
	ctest --preset $(PRESET) --timeout 600
	ctest --preset fuzz --timeout 120

# Every fuzz target for FUZZ_SECONDS each (default 60): `make fuzz FUZZ_SECONDS=3600`.
FUZZ_SECONDS ?= 60
fuzz: fuzz-build
	scripts/fuzz.sh $(FUZZ_SECONDS)

# The whole suite under ASan/UBSan (build/asan); the fuzz targets already run sanitized in `test`.
asan: deps
	@cmake --preset asan >/dev/null
	@cmake --build --preset asan
	ctest --preset asan --timeout 900

# SOAK_ROUNDS (default 20) rounds of each fault under `kaiwa bench` (tests/integration/fault_test.cpp),
# on loopback (a partitioned leader: in network namespaces, as root); prints p50/p99/max failover
# time per fault kind. `make test` runs one of each.
SOAK_ROUNDS ?= 20
soak: build
	scripts/soak.sh $(SOAK_ROUNDS)

clean:
	rm -rf build

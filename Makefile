# The two commands: `make run` and `make test`. Both install missing Debian packages first.
MAKEFLAGS += --no-print-directory
PRESET ?= release
BUILD := build/$(PRESET)

.PHONY: deps build run test asan clean
deps:
	@scripts/install-deps.sh

build: deps
	@cmake --preset $(PRESET) >/dev/null
	@cmake --build --preset $(PRESET)

run: build
	$(BUILD)/apps/kaiwa start $(ARGS)

test: build
	ctest --preset $(PRESET) --timeout 600

asan:
	@$(MAKE) test PRESET=asan

clean:
	rm -rf build

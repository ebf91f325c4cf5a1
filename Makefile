# pixelfly: the two commands a fresh Debian 12 machine needs.
#   make run   installs what is missing, builds, and runs the main job
#   make test  installs what is missing, builds, and runs every test
# Also: make build, make bench (CPU benchmark table), make clean.

SHELL := /bin/bash
BUILD_DIR ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=
STAMP := $(BUILD_DIR)/.deps-installed

.PHONY: all deps configure build test run bench clean

all: build

$(STAMP): scripts/install_deps.sh
	bash scripts/install_deps.sh
	@mkdir -p $(BUILD_DIR) && touch $@

deps: $(STAMP)

$(BUILD_DIR)/build.ninja: $(STAMP) CMakeLists.txt
	cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS)

configure: $(BUILD_DIR)/build.ninja

build: configure
	cmake --build $(BUILD_DIR) -j $(JOBS)

# One thread per test process: ctest already runs $(JOBS) tests at once.
test: build
	set -o pipefail; cd $(BUILD_DIR) && OMP_NUM_THREADS=1 ctest --output-on-failure -j $(JOBS) 2>&1 | tee ctest.log; \
	status=$$?; bash $(CURDIR)/scripts/ctest_summary.sh ctest.log; exit $$status

run: build
	bash scripts/main_job.sh $(BUILD_DIR)

bench: build
	$(BUILD_DIR)/bench/bench_cpu_block_sparse

clean:
	rm -rf $(BUILD_DIR)

# Thin wrapper for newcomers: every target installs what is missing, then drives CMake.
#   make test       install deps, configure, build, run the whole test suite (ctest)
#   make demo       run the whole system on the emulated bench (scripts/demo.sh)
#   make bench      benchmarks (Release build), each figure beside a same-run baseline
#   make sanitize   the whole suite again under AddressSanitizer + UBSan
#   make tsan       the tests that run threads (label `threads`) under ThreadSanitizer
#   make fuzz       libFuzzer builds of every fuzz target, FUZZ_SECONDS each (clang)
#   make deb        Debian packages in build/deb (dpkg-buildpackage, lintian: docs/packaging.md)
#   make format     clang-format every C source in place
#   make format-check  fail, naming the files, where FORMAT_CHECKED is not clang-formatted
# Variables: BUILD (build dir), JOBS, CTEST_ARGS (e.g. CTEST_ARGS="-L unit").

BUILD        ?= build
JOBS         ?= $(shell nproc 2>/dev/null || echo 2)
CTEST_ARGS   ?=
FUZZ_SECONDS ?= 60

.PHONY: all deps build test demo bench sanitize tsan fuzz format format-check clean deb

all: build

deps:
	@scripts/install-deps.sh

$(BUILD)/CMakeCache.txt: | deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) $(CTEST_ARGS)

# scripts run under the test guard too: nothing they start outlives them (tests/testing.cmake)
demo: build
	@BUILD=$(BUILD) $(BUILD)/tests/citypass-test-guard run --name demo -- \
		sh scripts/demo.sh

bench: deps
	cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release
	cmake --build build-bench -j $(JOBS) --target bench_list bench_card bench_server bench_revoke bench_gate bench_journal bench_engine \
		citypass-admin citypass-server citypass-hil citypass-controller citypass-token \
		citypass-test-guard sync_probe
	cmake --build build-bench --target bench

sanitize: deps
	cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DCITYPASS_SANITIZE=ON
	cmake --build build-asan -j $(JOBS)
	cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
		UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		ctest --output-on-failure -j $(JOBS) $(CTEST_ARGS)

# halt_on_error: a race ends the process that found it, so the test that started it fails
tsan: deps
	cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=Debug -DCITYPASS_TSAN=ON
	cmake --build build-tsan -j $(JOBS)
	cd build-tsan && TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
		ctest --output-on-failure -j $(JOBS) -L threads $(CTEST_ARGS)

fuzz:
	@CITYPASS_DEPS_FUZZ=1 scripts/install-deps.sh
	CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCITYPASS_FUZZ=ON
	cmake --build build-fuzz -j $(JOBS)
	@set -e; for t in build-fuzz/tests/fuzz/fuzz_*; do \
		case $$t in *_seeds) continue;; esac; \
		[ -x $$t ] || continue; \
		corpus=build-fuzz/corpus/$$(basename $$t); mkdir -p $$corpus; \
		$${t}_seeds --write-seeds $$corpus >/dev/null; \
		echo "== $$t ($(FUZZ_SECONDS) s)"; \
		$$t -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 $$corpus; \
	done

deb: deps
	scripts/deb.sh $(BUILD)/deb

format:
	find cardlib controller server office proto link service hil tests bench -name '*.[ch]' -print0 | \
		xargs -0 -r clang-format -i

# The tree CI holds to clang-format: every C source of the project.
FORMAT_CHECKED ?= cardlib proto link service hil controller server office bench tests
FORMAT_SKIPPED ?=

format-check:
	@bad=$$(find $(FORMAT_CHECKED) -name '*.[ch]' | grep -vxF "$$(printf '%s\n' $(FORMAT_SKIPPED))" | \
		while read -r f; do \
			clang-format --dry-run -Werror "$$f" >/dev/null 2>&1 || echo "$$f"; \
		done); \
	if [ -n "$$bad" ]; then \
		echo "not clang-formatted (make format, or clang-format -i FILE):"; \
		echo "$$bad" | sed 's/^/  /'; exit 1; \
	fi; echo "clang-format: $(FORMAT_CHECKED) formatted"

clean:
	rm -rf build build-asan build-tsan build-bench build-fuzz

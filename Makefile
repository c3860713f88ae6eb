# A thin layer over CMake: the two set-up commands of README and a few
# conveniences. CMake stays the build system.
.PHONY: run test test-docker build release asan fuzz fuzz-build certs deps-run deps-test deps-docker deps-fuzz bench clean format

JOBS ?= $(shell nproc)

run: deps-run release certs
	scripts/run-demo.sh

test: deps-test asan
	cd build/asan && ctest --output-on-failure --timeout 900

# The image in real containers (docker/README.md): docker when its engine
# answers, else podman as root; the base image is made locally when missing.
# Then conf/tlsterm.service under a real systemd 252 in a container.
test-docker: deps-docker release
	sh scripts/make-base-image.sh
	/usr/bin/python3 -m pytest -q -p no:cacheprovider tests/docker
	sh scripts/test-systemd.sh

release:
	cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release -DTLSTERM_TESTS=OFF >/dev/null
	cmake --build build/release -j $(JOBS)

asan:
	cmake -S . -B build/asan -DCMAKE_BUILD_TYPE=Debug -DTLSTERM_SANITIZE=ON -DTLSTERM_WERROR=ON -DTLSTERM_ALLOC_FAIL=ON >/dev/null
	cmake --build build/asan -j $(JOBS)

# The libFuzzer targets of fuzz/ (fuzz/README.md), each run FUZZ_SECONDS
# from its seed corpus; a crash, leak or timeout fails with the reproducer
# saved (the directory is printed).
FUZZ_SECONDS ?= 60

fuzz: deps-fuzz fuzz-build
	sh scripts/run-fuzz.sh build/fuzz $(FUZZ_SECONDS)

fuzz-build:
	CC=clang cmake -S . -B build/fuzz -DCMAKE_BUILD_TYPE=Debug -DTLSTERM_FUZZ=ON -DTLSTERM_TESTS=OFF >/dev/null
	cmake --build build/fuzz -j $(JOBS)

build: release

certs:
	sh certs/gen-dev-certs.sh

deps-run:
	sh scripts/install-deps.sh run

deps-test:
	sh scripts/install-deps.sh test

deps-docker:
	sh scripts/install-deps.sh docker

deps-fuzz:
	sh scripts/install-deps.sh fuzz

clean:
	rm -rf build

format:
	clang-format -i proxy/*.c proxy/*.h tests/unit/*.c

# Concord's checks. `make test` installs every tool it needs at pinned versions (into .bin/ and
# clients/typescript/node_modules/), then runs every check. CI runs exactly this.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
BIN := $(CURDIR)/.bin
export PATH := $(BIN):$(PATH)

BUF_VERSION                  := v1.75.0
PROTOC_GEN_GO_VERSION        := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION   := v1.6.2
PROTOC_GEN_CONNECT_GO_VERSION := v2.0.2
GRPCURL_VERSION              := v1.9.4
TORCHWOOD_VERSION            := v0.6.1

TS_DIR := clients/typescript

.PHONY: bench-sdk python-deps grpcurl debian-tools faiss ffmpeg corpus bench-match test tools prometheus alert-rules generate check-generated lint go-test fuzz fuzz-ci ts-deps run bench chaos clean-tools build

## test: every check — formatting, vet, buf lint, generated code freshness, the alert rules' unit
## tests, all Go tests with the race detector (including the TypeScript client, the grpcurl/curl
## calls and a real Prometheus scraping nodes), and a short run of every fuzz target.
test: tools ts-deps python-deps prometheus debian-tools lint check-generated alert-rules go-test fuzz-ci

## tools: the pinned code generators and grpcurl, built from source into .bin/. A stamp per
## version means a version bump rebuilds only that tool.
TOOL_STAMPS := $(BIN)/.buf-$(BUF_VERSION) $(BIN)/.protoc-gen-go-$(PROTOC_GEN_GO_VERSION) \
	$(BIN)/.protoc-gen-go-grpc-$(PROTOC_GEN_GO_GRPC_VERSION) \
	$(BIN)/.protoc-gen-connect-go-$(PROTOC_GEN_CONNECT_GO_VERSION) $(BIN)/.grpcurl-$(GRPCURL_VERSION) \
	$(BIN)/.torchwood-$(TORCHWOOD_VERSION)
tools: $(TOOL_STAMPS)

$(BIN)/.buf-$(BUF_VERSION):
	GOBIN=$(BIN) go install github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION)
	@touch $@
$(BIN)/.protoc-gen-go-$(PROTOC_GEN_GO_VERSION):
	GOBIN=$(BIN) go install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	@touch $@
$(BIN)/.protoc-gen-go-grpc-$(PROTOC_GEN_GO_GRPC_VERSION):
	GOBIN=$(BIN) go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)
	@touch $@
# connect-go v2's generator has the same name as v1's: it lives in .bin/, never picked from PATH.
$(BIN)/.protoc-gen-connect-go-$(PROTOC_GEN_CONNECT_GO_VERSION):
	GOBIN=$(BIN) go install connectrpc.com/connect/v2/cmd/protoc-gen-connect-go@$(PROTOC_GEN_CONNECT_GO_VERSION)
	@touch $@
$(BIN)/.grpcurl-$(GRPCURL_VERSION):
	GOBIN=$(BIN) go install github.com/fullstorydev/grpcurl/cmd/grpcurl@$(GRPCURL_VERSION)
	@touch $@
## grpcurl: only grpcurl, for the calls `concord dev` prints.
grpcurl: $(BIN)/.grpcurl-$(GRPCURL_VERSION)

# A stock C2SP tlog-witness (litewitness, with witnessctl to configure it), which the tests
# have witness a live node's log.
$(BIN)/.torchwood-$(TORCHWOOD_VERSION):
	GOBIN=$(BIN) go install filippo.io/torchwood/cmd/litewitness@$(TORCHWOOD_VERSION) filippo.io/torchwood/cmd/witnessctl@$(TORCHWOOD_VERSION)
	@touch $@

## build: a static, reproducible concord binary in bin/, stamped with its release (git describe)
## and, by the Go toolchain, its commit. Two builds of one commit are byte-identical. On amd64
## it targets x86-64-v2 (POPCNT inline: every CPU since 2009; the match index's scans and
## candidate checks are popcounts); GOAMD64=v1 make build for older ones.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
BUILD_OUT ?= bin/concord
build:
	GOAMD64=$${GOAMD64:-v2} CGO_ENABLED=0 go build -trimpath -buildvcs=true \
		-ldflags '-s -w -buildid= -X concord/internal/version.Release=$(VERSION)' -o $(BUILD_OUT) ./cmd/concord
	@echo "$(BUILD_OUT): $$($(BUILD_OUT) version | head -1)"

## prometheus: Prometheus and promtool (Debian's prometheus package), which the metrics tests run
## and the alert rules are tested with; installed only when promtool is missing.
prometheus:
	@if ! command -v promtool >/dev/null || ! command -v prometheus >/dev/null; then \
		sudo=; if [ "$$(id -u)" != 0 ]; then sudo=sudo; fi; \
		$$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq prometheus; \
	fi
	@promtool --version | head -1

## debian-tools: zsh and fish, whose completion scripts the CLI tests load (bash is there
## already), rsvg-convert (librsvg2-bin), which renders the report's chart in a test, and
## ssh-agent (openssh-client), which holds the stock witness's key: Debian's packages,
## installed only when missing.
debian-tools:
	@if ! command -v zsh >/dev/null || ! command -v fish >/dev/null || ! command -v rsvg-convert >/dev/null || ! command -v ssh-agent >/dev/null; then \
		sudo=; if [ "$$(id -u)" != 0 ]; then sudo=sudo; fi; \
		$$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq zsh fish librsvg2-bin openssh-client; \
	fi

## alert-rules: the shipped alert rules are valid and pass their unit tests.
alert-rules: prometheus
	promtool check rules deploy/prometheus/concord-rules.yml
	cd deploy/prometheus && promtool test rules concord-rules_test.yml

## ts-deps: the TypeScript client's npm packages, exactly as the lockfile pins them.
ts-deps: $(TS_DIR)/node_modules/.package-lock.json
$(TS_DIR)/node_modules/.package-lock.json: $(TS_DIR)/package-lock.json
	cd $(TS_DIR) && npm ci --no-audit --no-fund
	@touch $@

## generate: Go code into gen/, TypeScript into clients/typescript/src/gen/.
## Python into clients/python/ (packages concord.v1 and buf.validate, beside the SDK's
## concord.sdk) with Debian's protoc and gRPC plugin, which 'make python-deps' installs.
PY_DIR := clients/python
PY_GEN := $(PY_DIR)/concord/v1 $(PY_DIR)/buf
generate: tools ts-deps python-deps
	$(BIN)/buf generate
	$(BIN)/buf generate --template buf.gen.ts.yaml
	rm -rf $(PY_GEN)
	protoc -I proto -I third_party/protovalidate --python_out=$(PY_DIR) --grpc_python_out=$(PY_DIR) \
		--plugin=protoc-gen-grpc_python=$$(command -v grpc_python_plugin) \
		$$(cd proto && find concord/v1 -name '*.proto' | sort | sed 's#^#proto/#') third_party/protovalidate/buf/validate/validate.proto

## check-generated: regenerate and fail if the committed code differs.
check-generated: generate
	@if [ -n "$$(git status --porcelain -- gen $(TS_DIR)/src/gen $(PY_GEN))" ]; then \
		echo "generated code is stale: run 'make generate' and commit the result"; \
		git status --porcelain -- gen $(TS_DIR)/src/gen $(PY_GEN); git diff --stat -- gen $(TS_DIR)/src/gen $(PY_GEN); exit 1; fi

## python-deps: Debian's protoc, its gRPC Python plugin and the Python SDK's packages
## (python3-grpcio, python3-protobuf, python3-cryptography), and the packages python-threatexchange
## (shared/third_party/) needs to run the SDK's pytx exchange in its tests (python3-dacite,
## python3-dateutil, python3-requests, python3-pil, python3-numpy, python3-faiss), installed
## only when missing.
python-deps:
	@if ! command -v protoc >/dev/null || ! command -v grpc_python_plugin >/dev/null || \
		! /usr/bin/python3 -c 'import grpc, google.protobuf, cryptography, dacite, dateutil, requests, PIL, numpy, faiss' 2>/dev/null; then \
		sudo=; if [ "$$(id -u)" != 0 ]; then sudo=sudo; fi; \
		$$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq \
			protobuf-compiler protobuf-compiler-grpc python3-grpcio python3-protobuf python3-cryptography \
			python3-dacite python3-dateutil python3-requests python3-pil python3-numpy python3-faiss; \
	fi

## lint: gofmt, go vet, buf lint.
lint: tools
	@out=$$(gofmt -l $$(git ls-files '*.go') 2>&1); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	go vet ./...
	$(BIN)/buf lint

## go-test: all Go tests with the race detector. The output is kept in .bin/go-test.log; when a
## test fails, its failures (and, for a test that hung, the tests that were running when the
## timeout struck) are printed again at the end, where a CI log's tail shows them.
go-test: tools ts-deps prometheus
	@rm -f $(BIN)/go-test.rc; \
	{ go test -race -timeout 20m ./... 2>&1; echo $$? > $(BIN)/go-test.rc; } | tee $(BIN)/go-test.log; \
	status=$$(cat $(BIN)/go-test.rc); \
	if [ "$$status" != 0 ]; then \
		echo "== go-test failed (exit $$status); failures, from $(BIN)/go-test.log:"; \
		grep -E -A12 '^(panic: test timed out|running tests:)' $(BIN)/go-test.log | head -40; \
		awk 'BEGIN { RS = "" } /^goroutine [0-9]+ \[[^]]*[0-9]+ minutes\]/ && /concord\// { print; print "" }' \
			$(BIN)/go-test.log | head -300; \
		grep -E -B2 -A8 '^ *--- FAIL' $(BIN)/go-test.log | head -150; \
		grep -E '^FAIL[[:space:]]' $(BIN)/go-test.log; \
	fi; \
	exit $$status

## fuzz: every fuzz target (each func FuzzXxx of a _test.go file), one after the other, for
## FUZZTIME each with FUZZPARALLEL workers, e.g. `make fuzz FUZZTIME=10m`. Inputs that add
## coverage stay in Go's fuzz cache, so the next run starts from them. A crasher is written to
## the package's testdata/fuzz/FuzzXxx/: commit it with the fix and it is a regression test,
## run by every `go test`. FUZZMINIMIZETIME bounds the minimisation of each new input (a count
## of runs or a duration); Go's default, 60 s, would stall a one-worker run on large inputs.
FUZZTIME         ?= 1m
FUZZPARALLEL     ?= 1
FUZZMINIMIZETIME ?= 1000x
## fuzz-ci: the same for 3 s a target, in `make test`: every target runs, every seed is checked.
FUZZ_CI_TIME     ?= 3s
fuzz:
	@$(call run-fuzz,$(FUZZTIME),$(FUZZMINIMIZETIME),"$$(go env GOCACHE)/fuzz/$$pkg",0)
# CI starts from the seeds alone, in a cache of its own, so that its time does not grow with
# what earlier local runs found; a target that hangs fails after 2 minutes.
fuzz-ci:
	@rm -rf $(FUZZ_BIN)/ci-cache; $(call run-fuzz,$(FUZZ_CI_TIME),100x,$(FUZZ_BIN)/ci-cache/$$pkg,2m)

# run-fuzz(time, minimize time, cache dir, timeout or 0): each package with fuzz targets is
# built once with the fuzzing instrumentation; its binary lists the targets and runs each from
# the package's folder, where its testdata is. Only a failing target's output is shown in full.
# Go 1.26's fuzzing coordinator can fail a target with a bare "context deadline exceeded" when
# -fuzztime ends while a worker is busy (a race fixed in Go 1.27, golang/go#75804): such a
# failure, with no failing input written, runs the target once more; a second failure stands.
FUZZ_BIN := $(BIN)/fuzz
define run-fuzz
status=0; start=$$SECONDS; n=0; mkdir -p $(FUZZ_BIN); \
for dir in $$(grep -rl --include='*_test.go' --exclude-dir=node_modules --exclude-dir=.bin '^func Fuzz' . | xargs -n1 dirname | sort -u); do \
	pkg=$$(go list $$dir); bin=$(FUZZ_BIN)/$$(echo $$pkg | tr / _).test; \
	if ! go test -c -fuzz . -o $$bin $$dir; then status=1; continue; fi; \
	for target in $$($$bin -test.list '^Fuzz'); do \
		n=$$((n+1)); note=; \
		for try in 1 2; do \
			out=$$(cd $$dir && $$bin -test.run '^$$' -test.fuzz "^$$target\$$" -test.fuzztime $(1) -test.fuzzminimizetime $(2) \
				-test.parallel $(FUZZPARALLEL) -test.fuzzcachedir $(3) -test.timeout $(4) 2>&1) && ok=1 || ok=0; \
			[ $$ok = 0 ] && [ $$try = 1 ] && echo "$$out" | grep -qx '    context deadline exceeded' && ! echo "$$out" | grep -q 'Failing input written' || break; \
			note=" (run again: golang/go#75804)"; \
		done; \
		if [ $$ok = 1 ]; then \
			echo "ok   $$pkg $$target: $$(echo "$$out" | grep '^fuzz: elapsed' | tail -n 1 | sed 's/^fuzz: //; s/ ([0-9]*\/sec)//')$$note"; \
		else echo "FAIL $$pkg $$target"; echo "$$out"; status=1; fi; \
	done; \
done; \
echo "fuzzed $$n targets in $$((SECONDS - start)) s"; exit $$status
endef

## bench: the transports side by side (WhoAmI on the gRPC port vs the HTTPS port), an
## acknowledged registry change, the ingest of batched notices, writes and Match on one node
## versus a three-node cluster, writes with the nodes' log check at 5 s, 100 ms and off, a
## damaged follower's repair, a victim's Match latency alone and under another partner's flood, the
## cost of cost-based limiting, Match and write throughput with metrics on and off and with
## tracing off, at 1 % and at 100 %, and a restart after 1 M hashes in big and in small notices (the
## 10 M restarts are commands in BENCHMARKS.md). Not part of `make test`;
## results and the machine they ran on go in BENCHMARKS.md.
bench:
	go test ./server -run '^$$' -bench 'WhoAmI|UpdateRegistry' -benchtime 3s -count 3
	go test ./server -run '^$$' -bench 'Ingest' -benchtime 200x -count 3
	go test ./server -run '^$$' -bench 'ClusterWrites' -benchtime 1000x -count 3
	go test ./server -run '^$$' -bench 'ClusterMatch' -benchtime 5000x -count 3
	go test ./server -run '^$$' -bench 'ClusterLogCheck' -benchtime 10000x -count 3
	go test ./server -run '^$$' -bench 'DamagedFollowerRepair' -benchtime 1x -count 3
	go test ./server -run '^$$' -bench 'Fairness' -benchtime 1x
	go test ./server -run '^$$' -bench 'LimitingOverhead' -benchtime 20000x
	CONCORD_BENCH_ROUNDS=8 go test ./server -run '^$$' -bench 'MetricsOverhead' -benchtime 3000x
	go test ./server -run '^$$' -bench 'TracingOverhead/match' -benchtime 20000x -count 3
	go test ./server -run '^$$' -bench 'TracingOverhead/writes' -benchtime 2000x -count 3
	CONCORD_BENCH_NOTICE_HASHES=10000,10 go test ./server -run '^$$' -bench 'Restart' -benchtime 1x -timeout 30m

## faiss: Debian's python3-faiss (FAISS 1.7) for the match index's side-by-side benchmark;
## installed only when the Debian interpreter cannot import it.
faiss:
	@if ! /usr/bin/python3 -c 'import faiss, numpy' 2>/dev/null; then \
		sudo=; if [ "$$(id -u)" != 0 ]; then sudo=sudo; fi; \
		$$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq python3-faiss; \
	fi
	@/usr/bin/python3 -c 'import faiss; print("faiss", faiss.__version__)'

## ffmpeg: Debian's ffmpeg, which pdqcorpus draws its images and videos with.
ffmpeg:
	@if ! command -v ffmpeg >/dev/null; then \
		sudo=; if [ "$$(id -u)" != 0 ]; then sudo=sudo; fi; \
		$$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq ffmpeg; \
	fi

## corpus: the realistic PDQ corpus (transformed images and video frames, matchindex/cmd/pdqcorpus)
## at CORPUS_N hashes into corpus-$(CORPUS_N).txt, then the match index and FAISS on it. 1 M takes
## ≈10 min on 2 cores, 10 M (CORPUS_N=10000000) ≈1 h 45 min.
CORPUS_N ?= 1000000
corpus: ffmpeg faiss
	go run ./matchindex/cmd/pdqcorpus -n $(CORPUS_N) -images hashing/pdq/testdata/images -o corpus-$(CORPUS_N).txt
	go run ./matchindex/cmd/mihbench -hashes corpus-$(CORPUS_N).txt -exact=false -layout 0 -faiss /usr/bin/python3

## bench-sdk: Match calls a second from the Go, Python and TypeScript SDKs against one node,
## side by side in one run (batches of 1 and of 100 hashes; CONCORD_SDKBENCH_SECONDS each).
bench-sdk: ts-deps python-deps
	go test ./clients/sdkbench -run '^$$' -bench . -benchtime 1x -count 1

## bench-match: the match index on every corpus at 1 M and 10 M (uniform, near-duplicate
## families, mild and harsh skew), against a plain scan and FAISS on the same hashes and
## queries, with each build's peak memory (tens of minutes; results in matchindex/BENCHMARKS.md).
## Add MIHBENCH_FLAGS='-hashes my-hashes.txt' to run a real hash list instead.
MIHBENCH_FLAGS ?= -n 1000000,10000000 -dist uniform,clustered,beta4,beta05
bench-match: faiss
	go run ./matchindex/cmd/mihbench $(MIHBENCH_FLAGS) -faiss /usr/bin/python3

## chaos: the long fault suite (minutes; `make test` runs short versions of the same tests):
## kill -9 loops on a node and on a three-node cluster of `concord serve` processes, a frozen
## (SIGSTOP) leader, and damage to every kind of data file. Tune it with the variables below,
## e.g. `make chaos CONCORD_CHAOS_DURATION=30m CONCORD_CHAOS_KILLS=500`; a failing run prints
## its CONCORD_CHAOS_SEED (CONCORD_FAULT_SEED for damaged files), which replays its choices.
CONCORD_CHAOS_DURATION ?= 5m
CONCORD_CHAOS_KILLS    ?= 100
CONCORD_FAULT_TRIALS   ?= 500
# Both suites run even when the first fails; the target fails if either did.
chaos:
	@status=0; \
	CONCORD_CHAOS_DURATION=$(CONCORD_CHAOS_DURATION) CONCORD_CHAOS_KILLS=$(CONCORD_CHAOS_KILLS) \
		go test -race ./cmd/concord -run '^(TestKill9Loop|TestFrozenLeader)$$' -count 1 -v -timeout 2h || status=1; \
	CONCORD_FAULT_TRIALS=$(CONCORD_FAULT_TRIALS) \
		go test ./server -run '^TestDamagedDataFiles$$' -count 1 -v -timeout 2h || status=1; \
	exit $$status

## run: a development node (same as `go run ./cmd/concord dev`).
run:
	go run ./cmd/concord dev

clean-tools:
	rm -rf $(BIN)

# oncelog build and test entry points. `make test` is what CI runs (.ci/run).
#
#   make build    bin/oncelog
#   make serve    run the broker with embedded defaults (ARGS="--listen ... --data-dir ...")
#   make test     the whole suite, with a summary at the end
#
# The steps of `make test` are targets of their own too: deps, vet, fmt-check,
# unit, race, fuzz, compat, verify.

SHELL     := /bin/bash
GO        ?= go
FUZZTIME  ?= 10s
ARGS      ?=
# Packages whose concurrency matters most; they also run under -race.
RACE_PKGS ?= ./internal/partition/... ./internal/partlog/... ./internal/recordbatch/... \
             ./internal/server/... ./internal/broker/... ./internal/meta/... ./internal/vfs/... \
             ./embed/... ./test

.PHONY: all build serve test deps vet fmt-check unit race fuzz compat verify clean

all: build

build:
	$(GO) build -o bin/oncelog ./cmd/oncelog

serve:
	$(GO) run ./cmd/oncelog serve $(ARGS)

clean:
	rm -rf bin

deps:
	./scripts/install-test-deps.sh

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.git/*')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi; \
	echo "gofmt: clean"

# Everything but the compat and verify tests, which have their own steps.
unit:
	$(GO) test -count=1 -timeout 10m $$($(GO) list ./... | grep -v -e '/test/compat$$' -e '/internal/verify$$')

# oncelog verify's CI-sized runs (copy in both modes, queue) against a
# spawned broker with every fault kind, plus the checker's own tests; -v so
# the reports (faults injected, records checked, violations) are in the log.
verify:
	$(GO) test -count=1 -timeout 10m -v ./internal/verify/ 2>&1 | grep -v '^=== \(RUN\|PAUSE\|CONT\)'; exit $${PIPESTATUS[0]}

race:
	$(GO) test -race -count=1 -timeout 10m $(RACE_PKGS)

# go test -fuzz takes one package and one target per run: discover the
# targets with -list and run each briefly.
fuzz:
	@set -e; n=0; \
	for pkg in $$($(GO) list -f '{{if or .TestGoFiles .XTestGoFiles}}{{.ImportPath}}{{end}}' ./...); do \
		for target in $$($(GO) test -list '^Fuzz' -run '^$$' $$pkg | grep '^Fuzz' || true); do \
			echo "--- fuzz $$pkg $$target ($(FUZZTIME))"; \
			$(GO) test -run '^$$' -fuzz "^$$target\$$" -fuzztime=$(FUZZTIME) $$pkg; \
			n=$$((n+1)); \
		done; \
	done; \
	echo "fuzz: $$n targets"; \
	[ $$n -gt 0 ] || { echo "fuzz: no targets found"; exit 1; }

# Real clients against the real binary: kcat, python3-confluent-kafka and
# franz-go's own kgo integration suite (test/compat/franz-go-allowlist.txt).
compat:
	$(GO) test -count=1 -timeout 20m -v ./test/compat/

# Runs every step even when one fails, then prints a summary; fails if any did.
test:
	@summary=$$(mktemp); failed=0; total_start=$$(date +%s); \
	step() { \
		name=$$1; shift; start=$$(date +%s); \
		echo; echo "=== make test: $$name"; \
		if "$$@"; then r=PASS; else r=FAIL; failed=$$((failed+1)); fi; \
		printf '  %-4s  %-10s %5ss\n' "$$r" "$$name" "$$(( $$(date +%s) - start ))" >> $$summary; \
	}; \
	step deps      $(MAKE) --no-print-directory deps; \
	step vet       $(MAKE) --no-print-directory vet; \
	step fmt-check $(MAKE) --no-print-directory fmt-check; \
	step unit      $(MAKE) --no-print-directory unit; \
	step race      $(MAKE) --no-print-directory race; \
	step fuzz      $(MAKE) --no-print-directory fuzz; \
	step compat    $(MAKE) --no-print-directory compat; \
	step verify    $(MAKE) --no-print-directory verify; \
	steps=$$(wc -l < $$summary); \
	echo; echo "=== make test summary ($$(( $$(date +%s) - total_start ))s)"; cat $$summary; rm -f $$summary; \
	echo "summary: $$((steps - failed)) passed, $$failed failed"; \
	[ $$failed -eq 0 ]

# The README's two commands are `make demo` and `make test`; both run the
# idempotent set-up first, so they work on a fresh machine with Go, gcc, npm, apt.
GO      ?= go
PKGS    ?= ./...
BIN     := bin/inspectd

.PHONY: setup build demo test bench vet fmt clean

setup:
	bash scripts/setup.sh

build: setup
	$(GO) build -o $(BIN) ./cmd/inspectd

demo: build
	bash scripts/demo.sh

test: setup
	$(GO) vet $(PKGS)
	$(GO) test -count=1 -timeout 40m $(PKGS)

bench: setup
	$(GO) test -run '^$$' -bench . -benchtime 10x $(PKGS)

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf bin out

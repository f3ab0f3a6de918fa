# The README's two commands are `make demo` and `make test`; both run the
# idempotent set-up first, so they work on a fresh machine with Go, gcc, npm, apt.
GO      ?= go
PKGS    ?= ./...
BIN     := bin/inspectd
# Installed by scripts/setup.sh at the version pinned there.
STATICCHECK ?= .deps/bin/staticcheck

.PHONY: setup build demo test fuzz bench vet lint fmt clean

setup:
	bash scripts/setup.sh

build: setup
	$(GO) build -o $(BIN) ./cmd/inspectd

demo: build
	bash scripts/demo.sh

# The second run counts live GoCV Mats (gocv's matprofile tag) in the
# long-running paths: capture (with the real cameras' outages), image work,
# inspection, and a daemon soak.
MATPKGS := ./daemon/ ./capture/ ./imageops/ ./pipeline/ ./synth/
test: lint
	$(GO) test -count=1 -timeout 40m $(PKGS)
	INSPECTD_SOAK=$${INSPECTD_SOAK:-2m} $(GO) test -count=1 -timeout 20m -tags matprofile -run 'Soak|Leak|Mat|RealCamera|GigEFake|GigESoftwareTrigger' $(MATPKGS)

# Fuzzing for a bounded time (FUZZTIME each) of every parser of untrusted
# input: model files, backbone files, images, MQTT feedback and commands
# (plain and Sparkplug), source URIs, regions of interest, broker URLs and
# the saved operating state. Inputs that
# fail are written to testdata/fuzz and replayed by every later `go test`.
FUZZTIME ?= 30s
FUZZ := model:FuzzLoad local:FuzzPaDiMLoad engine/onnxproto:FuzzReadSignature \
	imageops:FuzzDecode imageops:FuzzParseROI alerts:FuzzParseFeedback \
	alerts:FuzzParseCommand sparkplug:FuzzParseCommand capture:FuzzParseURI \
	internal/broker:FuzzParse operating:FuzzRestore
fuzz: setup
	@set -e; for t in $(FUZZ); do \
	  echo "fuzz $${t#*:} ./$${t%%:*}/"; \
	  $(GO) test -run '^$$' -fuzz "^$${t#*:}\$$" -fuzztime $(FUZZTIME) ./$${t%%:*}/; \
	done

bench: setup
	$(GO) test -run '^$$' -bench . -benchtime 10x $(PKGS)

# gofmt, go vet and staticcheck (also over the files only the matprofile
# build has).
lint: setup
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed (make fmt): $$unformatted" >&2; exit 1; fi
	$(GO) vet $(PKGS)
	$(STATICCHECK) $(PKGS)
	$(STATICCHECK) -tags matprofile $(MATPKGS)

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf bin out

# --- arm64 (Jetson) build and Debian package: packaging/ ---------------------
# make arm64         cross-build bin/arm64/inspectd against .deps/sysroot-arm64
#                    (Debian bookworm arm64, made once by debootstrap)
# make smoke-arm64   run it under qemu-user: version, and score with a tiny model
# make deb ARCH=...  out/deb/inspectd_<version>_<arch>.deb (amd64 or arm64)
# make test-deb      build the package(s) and install them into a scratch root
ARCH          ?= amd64
SMOKE_TIMEOUT ?= 900

.PHONY: arm64 smoke-arm64 deb test-deb

arm64:
	bash packaging/build-arm64.sh

smoke-arm64: setup arm64
	timeout $(SMOKE_TIMEOUT) bash packaging/smoke-arm64.sh

deb: setup
	bash packaging/deb.sh $(ARCH)

test-deb: setup
	INSPECTD_PACKAGE_TESTS=1 $(GO) test -count=1 -timeout 30m -v ./packaging/

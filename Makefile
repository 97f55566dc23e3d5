# Shoal. `make run` builds, starts a local cluster and shows it; `make test`
# runs every test.
GO      ?= go
BIN     := bin/shoal
VERSION := $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X shoal.dev/shoal/peer.Version=$(VERSION)
# Build tags of every shoal binary: urfave_cli_no_docs leaves out
# urfave/cli's man-page and Markdown generators (and the Markdown parser
# they link, whose package init ran at every command's start); shoal never
# calls them. e2e's and examples' test builds use the same tags
# (e2e.BuildTags); vet and the tests build with them as well, so that
# they check what ships and fetch no module the binary does not link.
TAGS    := urfave_cli_no_docs
NODES   ?= 3
export SHOAL_CLUSTER_DIR ?= $(CURDIR)/.cluster

.PHONY: build test vet race run cluster stop bench clean release

build:
	$(GO) build -tags '$(TAGS)' -ldflags '$(LDFLAGS)' -o $(BIN) .

# vet and gofmt first: they fail in seconds where tests take minutes.
vet:
	$(GO) vet -tags '$(TAGS)' ./...
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change: $$out"; exit 1; fi

test: vet build
	$(GO) test -tags '$(TAGS)' -race -count=1 -timeout 30m ./...
	cd examples && $(GO) vet -tags '$(TAGS)' ./... && $(GO) test -tags '$(TAGS)' -count=1 -timeout 20m ./...

run: build
	NODES=$(NODES) scripts/demo.sh

cluster: build
	scripts/local-cluster.sh start $(NODES)

stop:
	scripts/local-cluster.sh stop

# Micro-benchmarks of every package, then whole operations on a local
# cluster (each moves SHOAL_BENCH_BYTES, 1 GiB by default, once).
bench: build
	$(GO) test -run '^$$' -bench . -benchmem $$($(GO) list ./... | grep -v /e2e)
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 60m ./e2e/

# Static binaries (no cgo) for every platform of PLATFORMS, the version
# stamped in, named shoal-VERSION-OS-ARCH, and their SHA256SUMS, in DIST.
PLATFORMS ?= linux/amd64 linux/arm64 darwin/arm64
DIST      ?= dist
release:
	rm -rf '$(DIST)' && mkdir -p '$(DIST)'
	@set -e; for p in $(PLATFORMS); do \
		os=$${p%/*}; arch=$${p#*/}; out='$(DIST)'/shoal-$(VERSION)-$$os-$$arch; \
		echo "build $$out"; \
		CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch $(GO) build -tags '$(TAGS)' -trimpath -ldflags '$(LDFLAGS) -s -w' -o "$$out" .; \
	done
	cd '$(DIST)' && { sha256sum shoal-* 2>/dev/null || shasum -a 256 shoal-*; } > SHA256SUMS
	@cat '$(DIST)/SHA256SUMS'

clean:
	-scripts/local-cluster.sh clean
	rm -rf bin dist

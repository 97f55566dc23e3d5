# Shoal. `make run` builds, starts a local cluster and shows it; `make test`
# runs every test.
GO      ?= go
BIN     := bin/shoal
VERSION := $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X shoal.dev/shoal/peer.Version=$(VERSION)
NODES   ?= 3
export SHOAL_CLUSTER_DIR ?= $(CURDIR)/.cluster

.PHONY: build test vet race run cluster stop bench clean

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) .

# vet and gofmt first: they fail in seconds where tests take minutes.
vet:
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change: $$out"; exit 1; fi

test: vet build
	$(GO) test -race -count=1 -timeout 30m ./...

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

clean:
	-scripts/local-cluster.sh clean
	rm -rf bin

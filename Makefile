# Station: `make run` starts everything locally, `make test` runs every test.
GO       ?= go
BIN      := bin/station
VERSION  ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -X main.version=$(VERSION)
TOOLS    := $(CURDIR)/bin/tools
BUF      := $(TOOLS)/buf
export PATH := $(TOOLS):$(PATH)

.PHONY: build run test bench bench-smoke reliability proto proto-check lint clean tools

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) .

## run: build and start the whole station on embedded defaults (see README).
run: build
	./$(BIN) dev

## test: every test, with the race detector, against real PostgreSQL, Redis and Chromium.
test:
	$(GO) test -race -count=1 -timeout 20m ./...

## bench: every benchmark; writes BENCHMARKS.md.
bench: build
	$(GO) run ./station/benchreport -out BENCHMARKS.md

## bench-smoke: every benchmark once with small samples (-short -benchtime=1x), for CI:
## checks that they still run; the report goes to a temporary file.
bench-smoke:
	$(GO) run ./station/benchreport -short -out $${TMPDIR:-/tmp}/BENCHMARKS.smoke.md

## reliability: the fault, load and hostile-input suite (station/reliability) with the race
## detector, then each fuzz target for FUZZTIME; writes RELIABILITY.md.
FUZZTIME ?= 10s
reliability:
	$(GO) run ./station/reliability/report -out RELIABILITY.md -fuzztime $(FUZZTIME)

$(BUF):
	GOBIN=$(TOOLS) $(GO) install github.com/bufbuild/buf/cmd/buf@v1.75.0
	GOBIN=$(TOOLS) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
	GOBIN=$(TOOLS) $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2

tools: $(BUF)

## proto: lint the .proto files and regenerate the Go code (committed).
proto: $(BUF)
	cd proto && $(BUF) format -w && $(BUF) lint
	find proto -name '*.pb.go' -delete
	cd proto && $(BUF) generate

## proto-check: regenerating must leave no diff (the committed code is current).
proto-check: proto
	@test -z "$$(git status --porcelain -- proto)" || (git status --short -- proto; echo "proto: generated code is stale; run make proto and commit"; exit 1)

## lint: go vet, the gofmt check and the import direction of the layout (imports_test.go).
lint:
	$(GO) vet ./...
	$(GO) test -count=1 -run '^TestImport' .
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1)

clean:
	rm -rf bin .run

package main

import (
	"fmt"
	"io"
	"os"
)

// File limits of the commands: a flow config and a chute map are a page or
// two; a sorter key is one line.
const (
	maxFlowFile     = 1 << 20 // dag's own limit on a flow config
	maxChuteMapFile = 1 << 20
	maxKeyFile      = 4 << 10
)

// readFileLimited reads a file the operator named, refusing one over limit
// bytes without reading the rest: os.ReadFile would read a wrong path such
// as /dev/zero, a pipe or a disk image until memory ran out.
func readFileLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if int64(len(raw)) > limit {
		return nil, fmt.Errorf("%s is over the %d-byte limit", path, limit)
	}
	return raw, nil
}

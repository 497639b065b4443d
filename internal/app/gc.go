package app

import (
	"runtime/debug"
	"strconv"
)

// GC settings for a Lambda instance, from the memory size the platform gives
// it (AWS_LAMBDA_FUNCTION_MEMORY_SIZE, in MB). At the Go default (GOGC=100)
// the collector runs each time the heap doubles, and with the few MB a
// request keeps live that is every few dozen requests: 7-12 % of a send's
// CPU in the profiles of `make bench` (BENCHMARKS.md), billed at the
// instance's small share of a vCPU. The instance's memory is otherwise idle, so:
//   - gcPercent lets the heap grow to five times what is live before a
//     collection (a request keeps well under 10 MB live, so the heap stays
//     far below even a 128 MB instance);
//   - the memory limit, 80 % of the instance (the rest is the binary, stacks
//     and the runtime), makes the collector run early rather than let the
//     heap reach the instance's size, should something ever keep more live.
const (
	lambdaGCPercent   = 400
	lambdaMemoryShare = 0.8
)

// GCSettings returns the collector settings for the environment: ok is false
// outside Lambda, when the memory size is missing or not a number, and when
// GOGC or GOMEMLIMIT is set (an operator's explicit choice wins).
func GCSettings(getenv func(string) string) (limitBytes int64, gcPercent int, ok bool) {
	if getenv("GOGC") != "" || getenv("GOMEMLIMIT") != "" {
		return 0, 0, false
	}
	mb, err := strconv.Atoi(getenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE"))
	if err != nil || mb < 128 {
		return 0, 0, false
	}
	return int64(float64(mb) * lambdaMemoryShare * (1 << 20)), lambdaGCPercent, true
}

// TuneGC applies GCSettings to this process.
func TuneGC(getenv func(string) string) {
	if limit, percent, ok := GCSettings(getenv); ok {
		debug.SetMemoryLimit(limit)
		debug.SetGCPercent(percent)
	}
}

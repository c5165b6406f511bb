package main

import (
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
)

// debugListenEnv names the environment variable that, when set to a
// HOST:PORT, makes `oncelog serve` serve Go's profiling endpoints
// (/debug/pprof/...) there. It is an environment variable rather than a
// flag so that the benchmark driver (bench/run), which starts the broker
// itself, passes it through unchanged; see docs/BENCHMARKS.md.
//
// NB: the endpoints expose goroutine stacks and can burn CPU on request;
// bind them to loopback only.
const debugListenEnv = "ONCELOG_DEBUG_LISTEN"

// startDebug starts the profiling listener if ONCELOG_DEBUG_LISTEN is set.
// A listener that cannot be opened is logged and otherwise ignored: it
// never stops the broker.
func startDebug(lg *slog.Logger) {
	addr := os.Getenv(debugListenEnv)
	if addr == "" {
		return
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		lg.Warn("profiling listener not started", "env", debugListenEnv, "err", err)
		return
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	lg.Info("profiling endpoints on http://"+ln.Addr().String()+"/debug/pprof/", "env", debugListenEnv)
	go func() { _ = http.Serve(ln, mux) }()
}

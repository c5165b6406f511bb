package verify

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/oncelog/oncelog/internal/faultproxy"
)

// Fault kinds, as --faults names them.
const (
	FaultHard   = "hard"   // SIGKILL the broker, restart it
	FaultClean  = "clean"  // SIGTERM the broker, restart it
	FaultPause  = "pause"  // SIGSTOP the broker, SIGCONT it a moment later
	FaultCopier = "copier" // kill a client process of the workload (copier or queue client)
	FaultProxy  = "proxy"  // a storm of cut connections, delays and dropped responses
)

// AllFaults lists every fault kind.
var AllFaults = []string{FaultHard, FaultClean, FaultPause, FaultCopier, FaultProxy}

// brokerFaults need a broker process that verify started itself.
var brokerFaults = []string{FaultHard, FaultClean, FaultPause}

// ParseFaults parses a comma-separated list ("all" and "none" allowed).
func ParseFaults(s string) ([]string, error) {
	s = strings.TrimSpace(s)
	switch s {
	case "", "none":
		return nil, nil
	case "all":
		return slices.Clone(AllFaults), nil
	}
	var out []string
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		if !slices.Contains(AllFaults, f) {
			return nil, fmt.Errorf("unknown fault %q (want %s)", f, strings.Join(AllFaults, ","))
		}
		if !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out, nil
}

// stormFaults is what the proxy does during a storm: connections live
// about 400ms, frames wait up to 40ms, one response in 20 is dropped.
var stormFaults = faultproxy.Faults{MeanConnLife: 400 * time.Millisecond, MaxDelay: 40 * time.Millisecond, DropProb: 0.05}

// injector injects one fault at a time at random intervals until stopped.
type injector struct {
	kinds    []string
	interval time.Duration
	rnd      *rand.Rand
	broker   *brokerProc // nil unless spawned
	net      *network
	killOne  func() bool // kills a random live client; false if none
	logf     func(format string, args ...any)

	// mu protects counts and errs.
	mu     sync.Mutex
	counts map[string]int
	errs   []string
}

func (in *injector) count(kind string) {
	in.mu.Lock()
	in.counts[kind]++
	in.mu.Unlock()
}

func (in *injector) fail(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	in.logf("fault: %s", msg)
	in.mu.Lock()
	in.errs = append(in.errs, msg)
	in.mu.Unlock()
}

// Counts returns how many faults of each kind were injected.
func (in *injector) Counts() map[string]int {
	in.mu.Lock()
	defer in.mu.Unlock()
	m := make(map[string]int, len(in.counts))
	for k, v := range in.counts {
		m[k] = v
	}
	return m
}

func (in *injector) Errors() []string {
	in.mu.Lock()
	defer in.mu.Unlock()
	return slices.Clone(in.errs)
}

func (in *injector) jitter(d time.Duration) time.Duration {
	return d/2 + time.Duration(in.rnd.Int64N(int64(d)+1))
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// run injects faults until ctx ends, then heals everything: the broker
// runs and is not paused, the proxies forward untouched.
func (in *injector) run(ctx context.Context) {
	defer in.heal()
	if len(in.kinds) == 0 {
		return
	}
	// Go through every kind once first, in a random order, so that a short
	// run still sees each; then pick at random.
	order := slices.Clone(in.kinds)
	in.rnd.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	for i := 0; ; i++ {
		if !sleepCtx(ctx, in.jitter(in.interval)) {
			return
		}
		kind := order[in.rnd.IntN(len(order))]
		if i < len(order) {
			kind = order[i]
		}
		in.inject(ctx, kind)
	}
}

func (in *injector) inject(ctx context.Context, kind string) {
	switch kind {
	case FaultHard:
		in.logf("fault: SIGKILL broker")
		if err := in.broker.kill(); err != nil {
			in.fail("SIGKILL: %v", err)
			return
		}
		in.count(kind)
		sleepCtx(ctx, time.Duration(in.rnd.Int64N(int64(500*time.Millisecond))))
		in.restart()
	case FaultClean:
		in.logf("fault: SIGTERM broker")
		if err := in.broker.term(30 * time.Second); err != nil {
			in.fail("clean bounce: %v", err)
		} else {
			in.count(kind)
		}
		in.restart()
	case FaultPause:
		d := 500*time.Millisecond + time.Duration(in.rnd.Int64N(int64(2500*time.Millisecond)))
		in.logf("fault: SIGSTOP broker for %v", d.Round(time.Millisecond))
		if err := in.broker.pause(); err != nil {
			in.fail("SIGSTOP: %v", err)
			return
		}
		in.count(kind)
		sleepCtx(ctx, d)
		if err := in.broker.resume(); err != nil {
			in.fail("SIGCONT: %v", err)
		}
	case FaultCopier:
		if in.killOne() {
			in.count(kind)
		}
	case FaultProxy:
		d := 2*time.Second + time.Duration(in.rnd.Int64N(int64(3*time.Second)))
		in.logf("fault: proxy storm for %v", d.Round(time.Millisecond))
		in.net.setFaults(stormFaults)
		in.count(kind)
		sleepCtx(ctx, d)
		in.net.setFaults(faultproxy.Faults{})
	}
}

func (in *injector) restart() {
	var err error
	for try := 0; try < 3; try++ {
		if err = in.broker.start(60 * time.Second); err == nil {
			return
		}
	}
	in.fail("broker did not restart: %v", err)
}

func (in *injector) heal() {
	if in.net != nil {
		in.net.setFaults(faultproxy.Faults{})
	}
	if in.broker != nil {
		in.broker.resume()
	}
}

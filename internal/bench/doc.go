// Package bench is the benchmark driver behind bench/run: it starts a broker
// as a child process (oncelog, or franz-go's kfake wrapped by
// bench/kfakeserver), drives it with franz-go from this process, and reports
// throughput, latency and the broker's CPU time per scenario.
//
// Shape of a run:
//
//	for each scenario:
//	    for each repetition r:
//	        for each target, in an order rotated by r:
//	            start a fresh broker process (empty state), wait for "listening on"
//	            create the scenario's topics
//	            run the scenario; it brackets its timed phase with Env.Begin/End,
//	                which sample the clock and the broker's /proc CPU counters
//	            SIGTERM the broker, collect exit and peak RSS
//
// Every target runs every scenario from an empty broker, so preloaded data of
// one scenario never shows up in the next. Ratios (oncelog/kfake) are taken
// between runs of the same repetition, which sit next to each other in time,
// and the median of those ratios is reported: on a shared 2-core machine the
// noise between repetitions is larger than the noise between neighbours.
//
// bench/startup uses the same broker processes differently (startup.go):
// it restarts one broker on a data directory it filled, after SIGTERM and
// after SIGKILL, and times each start; bench/plot draws the reports of both.
//
// What this package does not do: it does not pin CPUs, it does not isolate
// client and broker (they share the machine), and it measures only what the
// client sees plus the broker's own CPU counters.
package bench

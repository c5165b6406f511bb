package verify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/oncelog/oncelog/internal/faultproxy"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Config is one verify run.
type Config struct {
	Workload string // "copy" or "queue"

	// Where: Brokers, or Spawn a broker from OncelogBin (default: this
	// executable) in a temporary directory on a free loopback port.
	Brokers    []string
	Spawn      bool
	OncelogBin string

	Records    int    // copy: records seeded
	Partitions int    // partitions of every topic
	Copiers    int    // copy: copiers in group mode; queue: clients
	Mode       string // copy: "partition" (one transactional id per input partition) or "group" (KIP-447)
	GroupProto string // "classic" or "consumer" (KIP-848)
	TxnSize    int    // records per transaction

	Faults        []string
	FaultInterval time.Duration // mean time between two faults
	Duration      time.Duration // copy: paced to finish in about 3/4 of it (1/2 with --mode group); queue: how long clients run
	Timeout       time.Duration // hard bound on the whole run
	Seed          uint64

	HistoryPath string    // queue: write the history here (JSON lines)
	Progress    io.Writer // progress lines; nil: none
	Log         io.Writer // fault and client events; nil: none
}

func (c *Config) defaults() {
	if c.Records <= 0 {
		c.Records = 100000
	}
	if c.Mode == "" {
		c.Mode = "partition"
	}
	if c.Partitions <= 0 {
		c.Partitions = 4
		if c.Mode == "group" {
			c.Partitions = 6
		}
	}
	if c.Copiers <= 0 {
		c.Copiers = 3
	}
	if c.TxnSize <= 0 {
		c.TxnSize = 100
	}
	if c.FaultInterval <= 0 {
		c.FaultInterval = 4 * time.Second
	}
	if c.Duration <= 0 {
		c.Duration = 2 * time.Minute
	}
	if c.Timeout <= 0 {
		c.Timeout = c.Duration + 3*time.Minute
	}
	if c.Seed == 0 {
		c.Seed = uint64(time.Now().UnixNano())
	}
}

// Report is a run's outcome, written as text and JSON.
type Report struct {
	Workload   string            `json:"workload"`
	Mode       string            `json:"mode,omitempty"`
	Target     string            `json:"target"`
	Spawned    bool              `json:"spawned"`
	Seed       uint64            `json:"seed"`
	Started    time.Time         `json:"started"`
	Elapsed    string            `json:"elapsed"`
	Records    int               `json:"records"` // values checked
	Faults     map[string]int    `json:"faults"`
	FaultTotal int               `json:"faults_total"`
	Proxy      *faultproxy.Stats `json:"proxy,omitempty"`
	Clients    map[string]int    `json:"clients"` // incarnations, kills, restarts
	Checks     []Check           `json:"checks"`
	Stats      map[string]int    `json:"stats"`
	// Errors are failures that are not anomalies of the data: the run did
	// not finish in time, the broker did not restart.
	Errors     []string `json:"errors,omitempty"`
	Violations int      `json:"violations"`
	Verdict    string   `json:"verdict"`            // "pass" or "fail"
	DataDir    string   `json:"data_dir,omitempty"` // kept on failure
}

// Failed reports whether the run found a violation or could not finish.
func (r *Report) Failed() bool { return r.Violations > 0 || len(r.Errors) > 0 }

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteText writes the report for a person.
func (r *Report) WriteText(w io.Writer) {
	fmt.Fprintf(w, "oncelog verify %s", r.Workload)
	if r.Mode != "" {
		fmt.Fprintf(w, " (%s mode)", r.Mode)
	}
	fmt.Fprintf(w, " against %s, seed %d, %s\n", r.Target, r.Seed, r.Elapsed)
	fmt.Fprintf(w, "records checked: %d\n", r.Records)
	fmt.Fprintf(w, "faults injected: %d %s\n", r.FaultTotal, fmtCounts(r.Faults))
	if r.Proxy != nil {
		fmt.Fprintf(w, "proxy: %d connections, %d cut, %d responses dropped, %d frames delayed\n",
			r.Proxy.Conns, r.Proxy.Cuts, r.Proxy.Drops, r.Proxy.Delayed)
	}
	fmt.Fprintf(w, "clients: %s\n", fmtCounts(r.Clients))
	fmt.Fprintf(w, "stats: %s\n", fmtCounts(r.Stats))
	for _, c := range r.Checks {
		status := "ok"
		switch {
		case c.Information:
			status = "info"
		case c.Count > 0:
			status = "FAIL"
		}
		fmt.Fprintf(w, "  %-4s %-22s %d\n", status, c.Name, c.Count)
		for _, ex := range c.Examples {
			fmt.Fprintf(w, "         %s\n", ex)
		}
	}
	for _, e := range r.Errors {
		fmt.Fprintf(w, "  error: %s\n", e)
	}
	if r.DataDir != "" {
		fmt.Fprintf(w, "broker data kept in %s\n", r.DataDir)
	}
	fmt.Fprintf(w, "verdict: %s (%d violations)\n", strings.ToUpper(r.Verdict), r.Violations)
}

func fmtCounts(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	return strings.Join(parts, " ")
}

// env is what a workload runs with.
type env struct {
	cfg   Config
	seeds []string
	net   *network
	rnd   *rand.Rand // for the workload's own choices; not shared
	inj   *injector
	start time.Time

	// mu protects clients, progress and errs.
	mu       sync.Mutex
	clients  map[string]int
	progress func() string
	errs     []string
}

func (e *env) logf(format string, args ...any) {
	if e.cfg.Log != nil {
		e.mu.Lock()
		fmt.Fprintf(e.cfg.Log, "%7.2fs %s\n", time.Since(e.start).Seconds(), fmt.Sprintf(format, args...))
		e.mu.Unlock()
	}
}

func (e *env) countClient(what string) {
	e.mu.Lock()
	e.clients[what]++
	e.mu.Unlock()
}

func (e *env) fail(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	e.logf("error: %s", msg)
	e.mu.Lock()
	e.errs = append(e.errs, msg)
	e.mu.Unlock()
}

// direct returns a client that reaches the brokers without faults: the
// observers' view.
func (e *env) direct(opts ...kgo.Opt) (*kgo.Client, error) {
	return kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(e.seeds...), kgo.ClientID("oncelog-verify-observer")}, opts...)...)
}

// faulty returns options for a client of the system under test, dialing
// through ks.
func (e *env) faulty(ks *killSwitch, opts ...kgo.Opt) []kgo.Opt {
	return append([]kgo.Opt{
		kgo.SeedBrokers(e.seeds...),
		kgo.Dialer(ks.dial),
		kgo.ClientID("oncelog-verify"),
		kgo.RetryTimeout(30 * time.Second),
	}, opts...)
}

// startFaults starts the injector; the returned function stops it and
// waits until everything is healed.
func (e *env) startFaults(ctx context.Context) func() {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.inj.run(ctx)
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			cancel()
			<-done
		})
	}
}

// progressLoop writes a progress line every second (rewritten in place on
// a terminal, one line every 5s otherwise) until ctx ends.
func (e *env) progressLoop(ctx context.Context) {
	w := e.cfg.Progress
	if w == nil {
		return
	}
	tty := false
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			tty = true
		}
	}
	every := 5 * time.Second
	if tty {
		every = time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			if tty {
				fmt.Fprintln(w)
			}
			return
		case <-t.C:
		}
		e.mu.Lock()
		p := e.progress
		e.mu.Unlock()
		line := fmt.Sprintf("[%4.0fs] %s faults %s", time.Since(e.start).Seconds(), p(), fmtCounts(e.inj.Counts()))
		if tty {
			fmt.Fprintf(w, "\r\033[K%s", line)
		} else {
			fmt.Fprintln(w, line)
		}
	}
}

// Run runs one workload with faults and checks it. An error means the run
// could not be set up (bad flags, broker unreachable); a run that found
// anomalies returns a Report with Failed() true.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	cfg.defaults()
	for _, f := range cfg.Faults {
		if slices.Contains(brokerFaults, f) && !cfg.Spawn {
			return nil, fmt.Errorf("fault %q needs a broker process verify started itself (--spawn)", f)
		}
	}
	if cfg.Mode != "partition" && cfg.Mode != "group" {
		return nil, fmt.Errorf("mode %q: want partition or group", cfg.Mode)
	}
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()

	rep := &Report{Workload: cfg.Workload, Seed: cfg.Seed, Started: time.Now(), Spawned: cfg.Spawn}
	if cfg.Workload == "copy" {
		rep.Mode = cfg.Mode
	}
	e := &env{
		cfg:      cfg,
		rnd:      rand.New(rand.NewPCG(cfg.Seed, 1)),
		start:    time.Now(),
		clients:  map[string]int{},
		progress: func() string { return "starting" },
	}
	var broker *brokerProc
	var dir string
	if cfg.Spawn {
		bin := cfg.OncelogBin
		if bin == "" {
			exe, err := os.Executable()
			if err != nil {
				return nil, fmt.Errorf("--spawn: %w", err)
			}
			bin = exe
		}
		var err error
		dir, err = os.MkdirTemp("", "oncelog-verify-")
		if err != nil {
			return nil, err
		}
		broker, err = startBroker(bin, dir)
		if err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("--spawn: %w", err)
		}
		e.seeds = []string{broker.addr}
		rep.Target = "spawned oncelog at " + broker.addr
		defer func() {
			broker.kill()
			if !rep.Failed() {
				os.RemoveAll(dir)
			}
		}()
	} else {
		if len(cfg.Brokers) == 0 {
			return nil, errors.New("no brokers: give --brokers or --spawn")
		}
		e.seeds = cfg.Brokers
		rep.Target = strings.Join(cfg.Brokers, ",")
	}
	useProxy := slices.Contains(cfg.Faults, FaultProxy)
	if useProxy {
		for _, s := range e.seeds {
			if err := loopbackOnly(s); err != nil {
				return nil, fmt.Errorf("proxy fault: %w", err)
			}
		}
	}
	e.net = newNetwork(cfg.Seed, useProxy)
	defer e.net.close()
	e.inj = &injector{
		kinds:    cfg.Faults,
		interval: cfg.FaultInterval,
		rnd:      rand.New(rand.NewPCG(cfg.Seed, 2)),
		broker:   broker,
		net:      e.net,
		killOne:  func() bool { return false },
		logf:     e.logf,
		counts:   map[string]int{},
	}
	// The broker must answer before anything else.
	if err := e.ping(ctx); err != nil {
		return nil, err
	}
	pctx, pcancel := context.WithCancel(ctx)
	pdone := make(chan struct{})
	go func() { defer close(pdone); e.progressLoop(pctx) }()

	var res *Result
	var err error
	switch cfg.Workload {
	case "copy":
		res, err = runCopy(ctx, e)
	case "queue":
		res, err = runQueue(ctx, e)
	default:
		err = fmt.Errorf("unknown workload %q (want copy or queue)", cfg.Workload)
	}
	pcancel()
	<-pdone
	if err != nil {
		return nil, err
	}
	if parent.Err() != nil {
		// Interrupted (SIGINT, SIGTERM): what the checks would say about a
		// half-finished run means nothing.
		return nil, fmt.Errorf("interrupted after %v: %w", time.Since(rep.Started).Round(time.Second), parent.Err())
	}
	rep.Elapsed = time.Since(rep.Started).Round(time.Millisecond).String()
	rep.Checks = res.Checks
	rep.Stats = res.Stats
	rep.Records = res.Stats["records"]
	rep.Faults = e.inj.Counts()
	for _, n := range rep.Faults {
		rep.FaultTotal += n
	}
	if useProxy {
		s := e.net.stats()
		rep.Proxy = &s
	}
	e.mu.Lock()
	rep.Clients = e.clients
	rep.Errors = append(slices.Clone(e.errs), e.inj.Errors()...)
	e.mu.Unlock()
	rep.Violations = res.Violations()
	rep.Verdict = "pass"
	if rep.Failed() {
		rep.Verdict = "fail"
		rep.DataDir = dir
	}
	return rep, nil
}

func loopbackOnly(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%q is not a loopback address; faults are for loopback only", addr)
	}
	return nil
}

func (e *env) ping(ctx context.Context) error {
	cl, err := e.direct()
	if err != nil {
		return err
	}
	defer cl.Close()
	pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := cl.Ping(pctx); err != nil {
		return fmt.Errorf("cannot reach %s: %w", strings.Join(e.seeds, ","), err)
	}
	return nil
}

// runID names this run's topics, groups and transactional ids, so that
// runs against one cluster do not meet.
func (e *env) runID() string {
	return strconv.FormatUint(e.cfg.Seed%1e9, 36) + strconv.FormatInt(e.start.UnixMilli()%1e6, 36)
}

// createTopics creates the topics with the configured partition count.
func (e *env) createTopics(ctx context.Context, topics ...string) error {
	cl, err := e.direct()
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	resp, err := adm.CreateTopics(ctx, int32(e.cfg.Partitions), -1, nil, topics...)
	if err != nil {
		return fmt.Errorf("create topics: %w", err)
	}
	for _, t := range resp.Sorted() {
		if t.Err != nil {
			return fmt.Errorf("create topic %s: %w", t.Topic, t.Err)
		}
	}
	return nil
}

// readAll reads topic from the start with read_committed through a direct
// client until at least want records arrived and nothing more came for
// quiet, or until timeout. It returns the values per partition in order.
func (e *env) readAll(ctx context.Context, topic string, want int, quiet, timeout time.Duration) (map[int32][]int64, error) {
	parts := map[int32]kgo.Offset{}
	for p := range int32(e.cfg.Partitions) {
		parts[p] = kgo.NewOffset().AtStart()
	}
	cl, err := e.direct(
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: parts}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
	)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	out := map[int32][]int64{}
	for p := range int32(e.cfg.Partitions) {
		out[p] = nil
	}
	n := 0
	deadline := time.Now().Add(timeout)
	last := time.Now()
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if n >= want && time.Since(last) >= quiet {
			return out, nil
		}
		pctx, cancel := context.WithTimeout(ctx, 250*time.Millisecond)
		fs := cl.PollFetches(pctx)
		cancel()
		fs.EachRecord(func(r *kgo.Record) {
			v, err := strconv.ParseInt(string(r.Value), 10, 64)
			if err != nil {
				v = -1
			}
			out[r.Partition] = append(out[r.Partition], v)
			n++
			last = time.Now()
		})
	}
	if n < want {
		return out, fmt.Errorf("read %d of %d records of %s within %v", n, want, topic, timeout)
	}
	return out, nil
}

package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Config is one benchmark run.
type Config struct {
	Targets []Target
	// TargetErrs marks targets that cannot run at all (their build
	// failed); each of their runs is reported failed with this error.
	TargetErrs     map[string]error
	Scenarios      []Scenario
	Reps           int
	Duration       time.Duration
	RecordBytes    int
	Partitions     int
	ConsumeRecords int
	Linger         time.Duration
	// TopicConfigs are set on every topic oncelog's scenarios create
	// (e.g. preallocate=true); kfake ignores topic configs.
	TopicConfigs map[string]*string
	TmpDir       string
	// Log receives progress lines and the final report.
	Log io.Writer
}

// maxRunOverhead bounds a scenario run beyond its Duration: preloading,
// flushing, a slow consumer. A run over the limit fails, the benchmark goes on.
const maxRunOverhead = 3 * time.Minute

// Run is one scenario against one target in one repetition.
type Run struct {
	Scenario string `json:"scenario"`
	Target   string `json:"target"`
	Rep      int    `json:"rep"`
	Err      string `json:"error,omitempty"`

	ElapsedSeconds float64 `json:"elapsed_s"`
	Records        int64   `json:"records"`
	Bytes          int64   `json:"bytes"`
	Commits        int64   `json:"commits,omitempty"`
	RecordsPerSec  float64 `json:"records_per_s"`
	MBPerSec       float64 `json:"mb_per_s"`
	CommitsPerSec  float64 `json:"commits_per_s,omitempty"`
	P50Millis      float64 `json:"p50_ms,omitempty"`
	P99Millis      float64 `json:"p99_ms,omitempty"`
	P999Millis     float64 `json:"p999_ms,omitempty"`
	Note           string  `json:"note,omitempty"`

	// CPU seconds spent during the timed phase by the broker process and
	// by this driver process (the client).
	BrokerCPUSeconds float64 `json:"broker_cpu_s"`
	DriverCPUSeconds float64 `json:"driver_cpu_s"`
	// OtherCPUSeconds is the machine's busy CPU time during the timed
	// phase minus the broker's and the driver's: anything else competing
	// (other processes, kernel work not charged to either). Large values
	// mean the figure was taken on a contended machine.
	OtherCPUSeconds float64 `json:"other_cpu_s"`
	// DiskMB is what the machine's disks took during the timed phase
	// and DiskFlushes the flushes (fsyncs reaching the device) they
	// completed, the broker's and everyone else's: kfake, in memory,
	// writes nothing, so its runs show what other work wrote. NB: not
	// the broker's /proc/PID/io write_bytes, which counts a page again
	// each time it is dirtied (1.36 GB in a latency-5000-linger0 run with
	// preallocate, whose whole run wrote 0.18 GB to the disk: every 1 KiB
	// append re-dirties a page already in the cache).
	DiskMB      float64 `json:"disk_mb"`
	DiskFlushes int64   `json:"disk_flushes"`
	// Over the broker's whole life: start, topic creation, preload, run.
	BrokerLifeCPUSeconds float64 `json:"broker_life_cpu_s"`
	BrokerPeakRSSBytes   int64   `json:"broker_peak_rss_bytes"`
	BrokerStopErr        string  `json:"broker_stop_error,omitempty"`
}

func (r Run) ok() bool { return r.Err == "" }

// contendedCores is how much other CPU load (in cores, averaged over the
// timed phase) marks a run as taken on a contended machine. On 2 cores
// shared by broker and client, a quarter of a core elsewhere is already
// enough to move the figures.
const contendedCores = 0.25

// Contended reports whether something other than the broker and the driver
// used more than contendedCores during the timed phase.
func (r Run) Contended() bool {
	return r.ElapsedSeconds > 0 && r.OtherCPUSeconds/r.ElapsedSeconds > contendedCores
}

// metric returns the figure compared between targets, NaN if failed.
func (r Run) metric(name string) float64 {
	if !r.ok() {
		return math.NaN()
	}
	switch name {
	case "records/s":
		return r.RecordsPerSec
	case "mb/s":
		return r.MBPerSec
	case "commits/s":
		return r.CommitsPerSec
	case "p50":
		return r.P50Millis
	case "p99":
		return r.P99Millis
	case "p999":
		return r.P999Millis
	case "broker-cpu":
		return r.BrokerCPUSeconds
	case "driver-cpu":
		return r.DriverCPUSeconds
	case "other-cpu":
		return r.OtherCPUSeconds
	case "disk-mb":
		return r.DiskMB
	case "broker-us-per-record":
		if r.Records == 0 {
			return math.NaN()
		}
		return r.BrokerCPUSeconds * 1e6 / float64(r.Records)
	case "peak-rss-mb":
		return float64(r.BrokerPeakRSSBytes) / 1e6
	}
	panic("bench: unknown metric " + name)
}

// Report is everything a benchmark produced; it is what --json writes.
type Report struct {
	Machine   Machine           `json:"machine"`
	Settings  Settings          `json:"settings"`
	Runs      []Run             `json:"runs"`
	Summaries []ScenarioSummary `json:"summaries"`
}

// Settings echoes the configuration.
type Settings struct {
	Targets        []string `json:"targets"`
	Scenarios      []string `json:"scenarios"`
	Reps           int      `json:"reps"`
	DurationSecs   float64  `json:"duration_s"`
	RecordBytes    int      `json:"record_bytes"`
	Partitions     int      `json:"partitions"`
	ConsumeRecords int      `json:"consume_records"`
	LingerMillis   float64  `json:"linger_ms,omitempty"`
	// TopicConfigs are the --topic-config settings of oncelog's topics.
	TopicConfigs map[string]string `json:"topic_configs,omitempty"`
}

// Machine describes where the benchmark ran.
type Machine struct {
	CPU        string `json:"cpu"`
	NumCPU     int    `json:"num_cpu"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	Kernel     string `json:"kernel"`
	GoVersion  string `json:"go_version"`
	MemTotal   string `json:"mem_total"`
}

// ScenarioSummary holds, per target, the median and range over
// repetitions, and the ratio of the first target to the second computed
// within each repetition.
type ScenarioSummary struct {
	Scenario string                   `json:"scenario"`
	Metric   string                   `json:"metric"`
	Targets  map[string]TargetSummary `json:"targets"`
	// RatioName is e.g. "oncelog/kfake"; Ratio summarises the
	// per-repetition ratios of Metric. Empty with fewer than two targets.
	RatioName string  `json:"ratio_name,omitempty"`
	Ratio     Summary `json:"ratio"`
}

// TargetSummary is one target's figures for one scenario.
type TargetSummary struct {
	OK             int      `json:"ok"`
	Contended      int      `json:"contended"` // successful runs with other load above contendedCores
	Failed         int      `json:"failed"`
	Errors         []string `json:"errors,omitempty"`
	RecordsPerSec  Summary  `json:"records_per_s"`
	MBPerSec       Summary  `json:"mb_per_s"`
	CommitsPerSec  Summary  `json:"commits_per_s"`
	P50Millis      Summary  `json:"p50_ms"`
	P99Millis      Summary  `json:"p99_ms"`
	P999Millis     Summary  `json:"p999_ms"`
	BrokerCPU      Summary  `json:"broker_cpu_s"`
	DriverCPU      Summary  `json:"driver_cpu_s"`
	OtherCPU       Summary  `json:"other_cpu_s"`
	DiskMB         Summary  `json:"disk_mb"`
	BrokerUSPerRec Summary  `json:"broker_cpu_us_per_record"`
	PeakRSSMB      Summary  `json:"broker_peak_rss_mb"`
}

// Execute runs every scenario for every repetition and target and returns
// the report. Failed runs are recorded, never fatal; only a cancelled ctx
// stops it early (with what was measured so far).
func Execute(ctx context.Context, cfg Config) Report {
	rep := Report{Machine: DescribeMachine(), Settings: cfg.settings()}
	for _, sc := range cfg.Scenarios {
		for r := range cfg.Reps {
			// Rotate the order each repetition so neither target
			// always runs first (warm caches, thermal state).
			for i := range cfg.Targets {
				t := cfg.Targets[(i+r)%len(cfg.Targets)]
				if ctx.Err() != nil {
					rep.Summaries = BuildSummaries(rep.Runs, cfg)
					return rep
				}
				run := cfg.runOne(ctx, t, sc, r+1)
				cfg.logRun(run)
				rep.Runs = append(rep.Runs, run)
			}
		}
	}
	rep.Summaries = BuildSummaries(rep.Runs, cfg)
	return rep
}

func (cfg Config) settings() Settings {
	s := Settings{
		Reps:           cfg.Reps,
		DurationSecs:   cfg.Duration.Seconds(),
		RecordBytes:    cfg.RecordBytes,
		Partitions:     cfg.Partitions,
		ConsumeRecords: cfg.ConsumeRecords,
		LingerMillis:   float64(cfg.Linger) / float64(time.Millisecond),
	}
	for k, v := range cfg.TopicConfigs {
		if s.TopicConfigs == nil {
			s.TopicConfigs = map[string]string{}
		}
		s.TopicConfigs[k] = *v
	}
	for _, t := range cfg.Targets {
		s.Targets = append(s.Targets, t.Name)
	}
	for _, sc := range cfg.Scenarios {
		s.Scenarios = append(s.Scenarios, sc.Name)
	}
	return s
}

func (cfg Config) logf(format string, args ...any) {
	if cfg.Log != nil {
		fmt.Fprintf(cfg.Log, format+"\n", args...)
	}
}

func (cfg Config) logRun(r Run) {
	head := fmt.Sprintf("[rep %d] %-24s %-8s", r.Rep, r.Scenario, r.Target)
	if !r.ok() {
		first, _, _ := strings.Cut(r.Err, "\n")
		cfg.logf("%s FAILED: %s", head, first)
		return
	}
	line := fmt.Sprintf("%s %12s rec/s %8.1f MB/s", head, thousands(r.RecordsPerSec), r.MBPerSec)
	if r.Commits > 0 {
		line += fmt.Sprintf(" %8.1f commits/s", r.CommitsPerSec)
	}
	if r.P99Millis > 0 {
		line += fmt.Sprintf(" p50 %.2fms p99 %.2fms p999 %.2fms", r.P50Millis, r.P99Millis, r.P999Millis)
	}
	line += fmt.Sprintf("  CPU s: broker %.2f (%.2f cores) driver %.2f other %.2f", r.BrokerCPUSeconds,
		r.BrokerCPUSeconds/r.ElapsedSeconds, r.DriverCPUSeconds, r.OtherCPUSeconds)
	line += fmt.Sprintf("  disk: %.0f MB, %d flushes", r.DiskMB, r.DiskFlushes)
	if r.Note != "" {
		line += "  " + r.Note
	}
	if r.Contended() {
		line += "  [contended]"
	}
	cfg.logf("%s", line)
}

func (cfg Config) runOne(ctx context.Context, t Target, sc Scenario, rep int) (run Run) {
	run = Run{Scenario: sc.Name, Target: t.Name, Rep: rep}
	if err := cfg.TargetErrs[t.Name]; err != nil {
		run.Err = err.Error()
		return run
	}
	b, err := StartBroker(ctx, t, cfg.TmpDir, cfg.Partitions)
	if err != nil {
		run.Err = err.Error()
		return run
	}
	defer func() {
		st := b.Stop()
		run.BrokerLifeCPUSeconds = st.CPU.Total().Seconds()
		run.BrokerPeakRSSBytes = st.PeakRSS
		if st.Err != nil {
			run.BrokerStopErr = st.Err.Error()
		}
	}()

	ctx, cancel := context.WithTimeout(ctx, cfg.Duration+maxRunOverhead)
	defer cancel()

	env := &Env{
		Addr:           b.Addr,
		Partitions:     cfg.Partitions,
		RecordBytes:    cfg.RecordBytes,
		Duration:       cfg.Duration,
		ConsumeRecords: cfg.ConsumeRecords,
		Linger:         cfg.Linger,
		Logf: func(format string, args ...any) {
			cfg.logf("    %s/%s: "+format, append([]any{sc.Name, t.Name}, args...)...)
		},
	}
	for i := range max(sc.Topics, 1) {
		env.Topics = append(env.Topics, fmt.Sprintf("bench-%s-%d", sc.Name, i))
	}
	if err := createTopics(ctx, b.Addr, env.Topics, cfg.Partitions, cfg.TopicConfigs); err != nil {
		// Not fatal: the clients ask for auto-creation as a fallback.
		env.Logf("create topics: %v (relying on auto-creation)", err)
	}

	var (
		began, ended       bool
		t0, t1             time.Time
		bcpu0, bcpu1       CPUTimes
		dcpu0, dcpu1       CPUTimes
		bcpuErr0, bcpuErr1 error
		selfPID            = os.Getpid()
		readSelf           = func() CPUTimes { c, _ := ReadCPUTimes(selfPID); return c }
		errBeginEnd        error
		mbusy0, mbusy1     time.Duration
		disk0, disk1       DiskCounters
		diskErr0, diskErr1 error
	)
	env.begin = func() {
		if began {
			errBeginEnd = fmt.Errorf("scenario %s called Begin twice", sc.Name)
			return
		}
		began = true
		bcpu0, bcpuErr0 = b.CPU()
		dcpu0 = readSelf()
		mbusy0, _ = ReadMachineBusy()
		disk0, diskErr0 = ReadMachineDisk()
		t0 = time.Now()
	}
	env.end = func() {
		if !began || ended {
			errBeginEnd = fmt.Errorf("scenario %s called End without Begin, or twice", sc.Name)
			return
		}
		ended = true
		t1 = time.Now()
		bcpu1, bcpuErr1 = b.CPU()
		dcpu1 = readSelf()
		mbusy1, _ = ReadMachineBusy()
		disk1, diskErr1 = ReadMachineDisk()
	}

	res, err := sc.Run(ctx, env)
	if err == nil {
		err = errBeginEnd
	}
	if err == nil && !ended {
		err = fmt.Errorf("scenario %s never called End", sc.Name)
	}
	if err == nil && (bcpuErr0 != nil || bcpuErr1 != nil) {
		err = fmt.Errorf("reading broker CPU: %v %v", bcpuErr0, bcpuErr1)
	}
	if aerr := b.Alive(); aerr != nil {
		if err == nil {
			err = aerr
		} else {
			err = fmt.Errorf("%w; %v", err, aerr)
		}
	}
	if err != nil {
		run.Err = err.Error()
	}

	if ended {
		el := t1.Sub(t0)
		run.ElapsedSeconds = el.Seconds()
		run.BrokerCPUSeconds = bcpu1.Sub(bcpu0).Total().Seconds()
		run.DriverCPUSeconds = dcpu1.Sub(dcpu0).Total().Seconds()
		if mbusy0 > 0 && mbusy1 > 0 {
			run.OtherCPUSeconds = max((mbusy1-mbusy0).Seconds()-run.BrokerCPUSeconds-run.DriverCPUSeconds, 0)
		}
		if diskErr0 == nil && diskErr1 == nil {
			d := disk1.Sub(disk0)
			run.DiskMB, run.DiskFlushes = float64(d.WrittenBytes)/1e6, d.Flushes
		}
		if el > 0 {
			run.RecordsPerSec = float64(res.Records) / el.Seconds()
			run.MBPerSec = float64(res.Bytes) / el.Seconds() / 1e6
			run.CommitsPerSec = float64(res.Commits) / el.Seconds()
		}
	}
	run.Records, run.Bytes, run.Commits, run.Note = res.Records, res.Bytes, res.Commits, res.Note
	if len(res.Latencies) > 0 {
		ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
		run.P50Millis = ms(Percentile(res.Latencies, 0.50))
		run.P99Millis = ms(Percentile(res.Latencies, 0.99))
		run.P999Millis = ms(Percentile(res.Latencies, 0.999))
	}
	if run.ok() && res.Records == 0 {
		run.Err = "no records"
	}
	return run
}

// createTopics creates topics with the given partitions, replication factor 1.
func createTopics(ctx context.Context, addr string, topics []string, partitions int, configs map[string]*string) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	// NB: a broker that fsyncs every new partition's files and directory
	// (oncelog) takes milliseconds per partition, so the scale runs with
	// 10,000 partitions need far more than the 20 s a few topics do.
	ctx, cancel := context.WithTimeout(ctx, createTopicsTimeout(len(topics)*partitions))
	defer cancel()
	resps, err := adm.CreateTopics(ctx, int32(partitions), 1, configs, topics...)
	if err != nil {
		return err
	}
	for _, r := range resps.Sorted() {
		if r.Err != nil {
			return fmt.Errorf("%s: %w", r.Topic, r.Err)
		}
	}
	return nil
}

// createTopicsTimeout bounds topic creation: 20 s plus 20 ms per partition.
func createTopicsTimeout(partitions int) time.Duration {
	return 20*time.Second + time.Duration(partitions)*20*time.Millisecond
}

// BuildSummaries builds the per-scenario summaries from the runs.
func BuildSummaries(runs []Run, cfg Config) []ScenarioSummary {
	var out []ScenarioSummary
	for _, sc := range cfg.Scenarios {
		ss := ScenarioSummary{Scenario: sc.Name, Metric: sc.Metric, Targets: map[string]TargetSummary{}}
		// series[target][metric] indexed by repetition-1, NaN if failed.
		series := map[string]map[string][]float64{}
		metrics := []string{"records/s", "mb/s", "commits/s", "p50", "p99", "p999", "broker-cpu", "driver-cpu", "other-cpu", "disk-mb", "broker-us-per-record", "peak-rss-mb"}
		for _, t := range cfg.Targets {
			series[t.Name] = map[string][]float64{}
			for _, m := range metrics {
				s := make([]float64, cfg.Reps)
				for i := range s {
					s[i] = math.NaN()
				}
				series[t.Name][m] = s
			}
			ts := TargetSummary{}
			for _, r := range runs {
				if r.Scenario != sc.Name || r.Target != t.Name || r.Rep < 1 || r.Rep > cfg.Reps {
					continue
				}
				if !r.ok() {
					ts.Failed++
					first, _, _ := strings.Cut(r.Err, "\n")
					ts.Errors = append(ts.Errors, first)
					continue
				}
				ts.OK++
				if r.Contended() {
					ts.Contended++
				}
				for _, m := range metrics {
					series[t.Name][m][r.Rep-1] = r.metric(m)
				}
			}
			s := series[t.Name]
			ts.RecordsPerSec = Summarize(s["records/s"])
			ts.MBPerSec = Summarize(s["mb/s"])
			ts.CommitsPerSec = Summarize(s["commits/s"])
			ts.P50Millis = Summarize(s["p50"])
			ts.P99Millis = Summarize(s["p99"])
			ts.P999Millis = Summarize(s["p999"])
			ts.BrokerCPU = Summarize(s["broker-cpu"])
			ts.DriverCPU = Summarize(s["driver-cpu"])
			ts.OtherCPU = Summarize(s["other-cpu"])
			ts.DiskMB = Summarize(s["disk-mb"])
			ts.BrokerUSPerRec = Summarize(s["broker-us-per-record"])
			ts.PeakRSSMB = Summarize(s["peak-rss-mb"])
			ss.Targets[t.Name] = ts
		}
		if len(cfg.Targets) >= 2 {
			a, b := cfg.Targets[0].Name, cfg.Targets[1].Name
			ss.RatioName = a + "/" + b
			ss.Ratio = Summarize(Ratios(series[a][sc.Metric], series[b][sc.Metric]))
		}
		out = append(out, ss)
	}
	return out
}

// WriteJSON writes the report, indented.
func (rep Report) WriteJSON(path string) error { return writeJSON(path, rep) }

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// DescribeMachine reads what /proc says about this machine.
func DescribeMachine() Machine {
	m := Machine{NumCPU: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0), GoVersion: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				m.MemTotal = strings.TrimSpace(v)
				break
			}
		}
	}
	return m
}

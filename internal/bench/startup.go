package bench

// The start-up measurements behind bench/startup (issue 6): how long
// `oncelog serve` takes to open a data directory an earlier process left,
// and how much memory it holds then, as a function of how much log (log
// mode) or how many partitions (partitions mode) the directory holds.
//
// Shape of a log-mode point (one per size):
//
//	start a broker on a fresh directory          -> start "empty"
//	create one topic, write GiB of log (acks=1, 1 MiB batches), SIGTERM
//	for each repetition:
//	    start                                    -> start "clean" (after SIGTERM)
//	    write 8 MiB more (producer state and the active segments move on), SIGKILL
//	    start                                    -> start "kill" (after SIGKILL)
//	    SIGTERM; with Cold, drop the directory's files from the page cache
//	    start                                    -> start "clean-cold", SIGTERM
//
// A partitions-mode point is the same (the cold start included) with N
// partitions spread over topics of PartitionsPerTopic each, as created:
// no bulk write, and nothing written between the clean start and the kill.
// After the repetitions, one more start (after SIGTERM, reported with the
// load) takes a short produce load (idempotent, acks=all, 1 KiB, every
// topic).
//
// Each start is timed from exec to the "listening on" line (oncelog binds
// its listener only once the data directory is recovered), and to the first
// Metadata answer that names every partition with a leader, sent by a
// franz-go client once the line is seen. The broker's own "startup=" figure
// (from just before opening the directory to just after binding) is kept
// too: the difference is the exec and the Go runtime's start.
//
// NB: "warm" starts read the log from the page cache, which after a write
// or an earlier start holds most of it (the machine has 24 GB). Cold starts
// drop only this directory's pages (fsync, then POSIX_FADV_DONTNEED per
// file), not the whole machine's cache, which others are using.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// StartupConfig is one bench/startup run.
type StartupConfig struct {
	Target Target // oncelog
	TmpDir string // data directories go below it
	Reps   int
	// Wait bounds one start (exec to Metadata answered).
	Wait time.Duration
	// Settle is how long a started broker is left alone before its idle
	// RSS is read.
	Settle time.Duration
	Log    io.Writer

	// Cold adds, to each repetition, a start after the directory's pages
	// were dropped from the page cache.
	Cold bool

	// Log mode: one point per size, GiB of log in one topic of
	// Partitions partitions, records of ValueBytes.
	GiB        []float64
	Partitions int
	ValueBytes int

	// Partitions mode: one point per count.
	PartitionCounts    []int
	PartitionsPerTopic int
	LoadDuration       time.Duration
}

// Start kinds, in report order.
const (
	StartEmpty     = "empty"      // fresh directory
	StartClean     = "clean"      // after SIGTERM
	StartKill      = "kill"       // after SIGKILL
	StartCleanCold = "clean-cold" // after SIGTERM, the directory's pages dropped from the page cache
)

var startKinds = []string{StartEmpty, StartClean, StartKill, StartCleanCold}

// bulkAfterClean is what each repetition writes between the clean start and
// the SIGKILL, so that the killed process leaves producer state and
// segments that moved on since its last clean stop.
const bulkAfterClean = 8 << 20

// StartupReport is what bench/startup writes as JSON.
type StartupReport struct {
	Machine  Machine         `json:"machine"`
	Settings StartupSettings `json:"settings"`
	Points   []StartupPoint  `json:"points"`
}

// StartupSettings echoes the configuration.
type StartupSettings struct {
	Mode               string    `json:"mode"` // "log" or "partitions"
	Commit             string    `json:"commit,omitempty"`
	Reps               int       `json:"reps"`
	GiB                []float64 `json:"gib,omitempty"`
	Partitions         int       `json:"partitions,omitempty"` // log mode
	ValueBytes         int       `json:"value_bytes,omitempty"`
	Cold               bool      `json:"cold,omitempty"`
	PartitionCounts    []int     `json:"partition_counts,omitempty"`
	PartitionsPerTopic int       `json:"partitions_per_topic,omitempty"`
	LoadSeconds        float64   `json:"load_s,omitempty"`
	SettleSeconds      float64   `json:"settle_s"`
}

// StartupPoint is one size or partition count.
type StartupPoint struct {
	GiB        float64 `json:"gib,omitempty"` // log mode: as asked
	Partitions int     `json:"partitions"`
	Topics     int     `json:"topics"`
	// DataBytes is the size of the files in the data directory after the
	// fill (the bulk write, or the topic creation).
	DataBytes int64 `json:"data_bytes"`
	// FillSeconds is how long the bulk write (log mode) or the
	// CreateTopics request (partitions mode) took.
	FillSeconds  float64 `json:"fill_s"`
	FillMBPerSec float64 `json:"fill_mb_per_s,omitempty"`
	// FillRSSBytes is the broker's RSS right after the fill.
	FillRSSBytes int64          `json:"fill_rss_bytes,omitempty"`
	Starts       []StartRun     `json:"starts"`
	Summaries    []StartSummary `json:"summaries"`
	Load         *LoadRun       `json:"load,omitempty"`
	Err          string         `json:"error,omitempty"`
}

// StartRun is one measured start.
type StartRun struct {
	Kind string `json:"kind"`
	Rep  int    `json:"rep"`
	Err  string `json:"error,omitempty"`
	// From exec to the "listening on" line.
	ListenSeconds float64 `json:"listen_s"`
	// From exec to the first Metadata answer naming every partition
	// with a leader.
	MetadataSeconds float64 `json:"metadata_s"`
	// The broker's own startup= figure: opening and recovering the data
	// directory and binding the listener.
	BrokerSeconds float64 `json:"broker_s"`
	// The broker's CPU from exec to the Metadata answer.
	CPUSeconds float64 `json:"cpu_s"`
	// Machine busy time during the start not charged to the broker or
	// this process (as Run.OtherCPUSeconds).
	OtherCPUSeconds float64 `json:"other_cpu_s"`
	// VmHWM once Metadata was answered, VmRSS after Settle.
	PeakRSSBytes int64 `json:"peak_rss_bytes"`
	IdleRSSBytes int64 `json:"idle_rss_bytes"`
}

// StartSummary is one kind of start at one point, over repetitions.
type StartSummary struct {
	Kind            string  `json:"kind"`
	OK              int     `json:"ok"`
	Failed          int     `json:"failed"`
	ListenSeconds   Summary `json:"listen_s"`
	MetadataSeconds Summary `json:"metadata_s"`
	BrokerSeconds   Summary `json:"broker_s"`
	CPUSeconds      Summary `json:"cpu_s"`
	PeakRSSMB       Summary `json:"peak_rss_mb"`
	IdleRSSMB       Summary `json:"idle_rss_mb"`
}

// LoadRun is the partitions mode's short produce load.
type LoadRun struct {
	// Start is the start before the load (after SIGTERM; Rep 0); it is
	// not in the point's summaries.
	Start             StartRun `json:"start"`
	Err               string   `json:"error,omitempty"`
	Seconds           float64  `json:"elapsed_s"`
	Records           int64    `json:"records"`
	RecordsPerSec     float64  `json:"records_per_s"`
	BrokerCPUSeconds  float64  `json:"broker_cpu_s"`
	BrokerUSPerRecord float64  `json:"broker_cpu_us_per_record"`
	OtherCPUSeconds   float64  `json:"other_cpu_s"`
	// VmHWM of the process (its start-up included) and VmRSS at the end
	// of the load.
	PeakRSSBytes int64 `json:"peak_rss_bytes"`
	RSSBytes     int64 `json:"rss_bytes"`
}

// ExecuteStartup runs the log mode (cfg.GiB) or the partitions mode
// (cfg.PartitionCounts). A failed point is recorded and the next one runs;
// only a cancelled ctx stops early.
func ExecuteStartup(ctx context.Context, cfg StartupConfig) StartupReport {
	rep := StartupReport{Machine: DescribeMachine(), Settings: StartupSettings{
		Reps:          cfg.Reps,
		Cold:          cfg.Cold,
		SettleSeconds: cfg.Settle.Seconds(),
	}}
	if len(cfg.GiB) > 0 {
		s := &rep.Settings
		s.Mode, s.GiB, s.Partitions, s.ValueBytes = "log", cfg.GiB, cfg.Partitions, cfg.ValueBytes
		for _, g := range cfg.GiB {
			if ctx.Err() != nil {
				break
			}
			rep.Points = append(rep.Points, cfg.logPoint(ctx, g))
		}
		return rep
	}
	s := &rep.Settings
	s.Mode, s.PartitionCounts, s.PartitionsPerTopic, s.LoadSeconds = "partitions", cfg.PartitionCounts, cfg.PartitionsPerTopic, cfg.LoadDuration.Seconds()
	for _, n := range cfg.PartitionCounts {
		if ctx.Err() != nil {
			break
		}
		rep.Points = append(rep.Points, cfg.partitionsPoint(ctx, n))
	}
	return rep
}

func (cfg StartupConfig) logf(format string, args ...any) {
	if cfg.Log != nil {
		fmt.Fprintf(cfg.Log, format+"\n", args...)
	}
}

// point is the state of one point being measured.
type point struct {
	cfg    StartupConfig
	p      StartupPoint
	dir    string
	topics []string
	// perTopic is the partition count of each topic.
	perTopic int
}

func (cfg StartupConfig) newPoint(gib float64, partitions, perTopic int) (*point, error) {
	pt := &point{cfg: cfg, perTopic: perTopic}
	// Every topic gets perTopic partitions: a count that is not a
	// multiple is rounded up.
	topics := (partitions + perTopic - 1) / perTopic
	for i := range topics {
		pt.topics = append(pt.topics, fmt.Sprintf("startup-%d", i))
	}
	pt.p.GiB, pt.p.Partitions, pt.p.Topics = gib, topics*perTopic, topics
	dir, err := os.MkdirTemp(cfg.TmpDir, "startup-data-")
	if err != nil {
		return nil, err
	}
	pt.dir = dir
	return pt, nil
}

func (cfg StartupConfig) logPoint(ctx context.Context, gib float64) StartupPoint {
	pt, err := cfg.newPoint(gib, cfg.Partitions, cfg.Partitions)
	if err != nil {
		return StartupPoint{GiB: gib, Err: err.Error()}
	}
	defer os.RemoveAll(pt.dir)
	cfg.logf("== %.2f GiB of log in %d partitions (%s)", gib, cfg.Partitions, pt.dir)
	err = pt.fill(ctx, func(b *Broker) error {
		if err := createTopics(ctx, b.Addr, pt.topics, pt.perTopic, nil); err != nil {
			return err
		}
		start := time.Now()
		n := int64(gib * (1 << 30))
		if err := writeBulk(ctx, b.Addr, pt.topics[0], n, cfg.ValueBytes); err != nil {
			return err
		}
		pt.p.FillSeconds = time.Since(start).Seconds()
		pt.p.FillMBPerSec = float64(n) / 1e6 / pt.p.FillSeconds
		cfg.logf("   wrote %d MiB in %.1f s (%.0f MB/s)", n>>20, pt.p.FillSeconds, pt.p.FillMBPerSec)
		return nil
	})
	if err == nil {
		err = pt.restarts(ctx, func(b *Broker, rep int) error {
			return writeBulk(ctx, b.Addr, pt.topics[0], bulkAfterClean, cfg.ValueBytes)
		})
	}
	return pt.finish(err)
}

func (cfg StartupConfig) partitionsPoint(ctx context.Context, n int) StartupPoint {
	pt, err := cfg.newPoint(0, n, min(cfg.PartitionsPerTopic, n))
	if err != nil {
		return StartupPoint{Partitions: n, Err: err.Error()}
	}
	defer os.RemoveAll(pt.dir)
	cfg.logf("== %d partitions in %d topics (%s)", n, len(pt.topics), pt.dir)
	err = pt.fill(ctx, func(b *Broker) error {
		start := time.Now()
		if err := createTopics(ctx, b.Addr, pt.topics, pt.perTopic, nil); err != nil {
			return err
		}
		pt.p.FillSeconds = time.Since(start).Seconds()
		cfg.logf("   created in %.1f s", pt.p.FillSeconds)
		return nil
	})
	if err == nil {
		err = pt.restarts(ctx, func(*Broker, int) error { return nil })
	}
	if err == nil {
		err = pt.loadPoint(ctx)
	}
	return pt.finish(err)
}

// fill starts the broker on the fresh directory (the "empty" start), runs
// fillFn, which creates the topics and fills them, and stops the broker with
// SIGTERM.
func (pt *point) fill(ctx context.Context, fillFn func(*Broker) error) error {
	b, run := pt.start(ctx, StartEmpty, 1)
	pt.record(run)
	if b == nil {
		return errors.New(run.Err)
	}
	if err := fillFn(b); err != nil {
		b.Stop()
		return err
	}
	if n, err := ReadRSS(b.PID()); err == nil {
		pt.p.FillRSSBytes = n
	}
	if st := b.Stop(); st.Err != nil {
		return st.Err
	}
	pt.p.DataBytes = dirBytes(pt.dir)
	pt.cfg.logf("   %d MiB on disk", pt.p.DataBytes>>20)
	return nil
}

// restarts runs the repetitions: clean start, between (a write or the
// load), SIGKILL, start after the kill, SIGTERM, and with Cold a start after
// the directory left the page cache.
func (pt *point) restarts(ctx context.Context, between func(*Broker, int) error) error {
	for rep := 1; rep <= pt.cfg.Reps; rep++ {
		b, run := pt.start(ctx, StartClean, rep)
		pt.record(run)
		if b == nil {
			return errors.New(run.Err)
		}
		if err := between(b, rep); err != nil {
			b.Stop()
			return err
		}
		b.Kill()
		b, run = pt.start(ctx, StartKill, rep)
		pt.record(run)
		if b == nil {
			return errors.New(run.Err)
		}
		if st := b.Stop(); st.Err != nil {
			return st.Err
		}
		if !pt.cfg.Cold {
			continue
		}
		if err := dropPageCache(pt.dir); err != nil {
			return fmt.Errorf("drop page cache: %w", err)
		}
		b, run = pt.start(ctx, StartCleanCold, rep)
		pt.record(run)
		if b == nil {
			return errors.New(run.Err)
		}
		if st := b.Stop(); st.Err != nil {
			return st.Err
		}
	}
	return nil
}

func (pt *point) record(r StartRun) {
	pt.p.Starts = append(pt.p.Starts, r)
	if r.Err != "" {
		pt.cfg.logf("   [rep %d] %-10s FAILED: %s", r.Rep, r.Kind, truncate(r.Err, 300))
		return
	}
	pt.cfg.logf("   [rep %d] %-10s listening %7.3f s  metadata %7.3f s  (broker says %.3f s)  CPU %.2f s  other %.2f s  peak RSS %d MB  idle RSS %d MB",
		r.Rep, r.Kind, r.ListenSeconds, r.MetadataSeconds, r.BrokerSeconds, r.CPUSeconds, r.OtherCPUSeconds, r.PeakRSSBytes/1e6, r.IdleRSSBytes/1e6)
}

func (pt *point) finish(err error) StartupPoint {
	if err != nil {
		pt.p.Err = err.Error()
		pt.cfg.logf("   FAILED: %v", err)
	}
	pt.p.Summaries = SummarizeStarts(pt.p.Starts)
	return pt.p
}

// brokerStartupRE finds the startup= field of oncelog's "listening on" line.
var brokerStartupRE = regexp.MustCompile(`listening on .* startup=([0-9.]+[a-zµ]+)`)

// ParseBrokerStartup returns the startup= duration of the broker's
// "listening on" line in its output, or 0 if there is none.
func ParseBrokerStartup(out string) time.Duration {
	m := brokerStartupRE.FindStringSubmatch(out)
	if m == nil {
		return 0
	}
	d, err := time.ParseDuration(m[1])
	if err != nil {
		return 0
	}
	return d
}

// start starts the broker on the point's directory and measures the start.
// It returns the running broker, or nil and a run whose Err says why.
// The empty start, on a fresh directory, waits for a Metadata answer
// without topics.
func (pt *point) start(ctx context.Context, kind string, rep int) (*Broker, StartRun) {
	run := StartRun{Kind: kind, Rep: rep}
	self := os.Getpid()
	busy0, _ := ReadMachineBusy()
	self0, _ := ReadCPUTimes(self)
	b, err := StartBrokerOn(ctx, pt.cfg.Target, pt.dir, pt.cfg.Wait)
	if err != nil {
		run.Err = err.Error()
		return nil, run
	}
	run.ListenSeconds = b.Ready.Sub(b.Started).Seconds()
	run.BrokerSeconds = ParseBrokerStartup(b.Tail()).Seconds()
	mctx, cancel := context.WithDeadline(ctx, b.Started.Add(pt.cfg.Wait))
	defer cancel()
	topics := pt.topics
	if kind == StartEmpty {
		topics = nil
	}
	if err := waitMetadata(mctx, b.Addr, topics, pt.perTopic); err != nil {
		run.Err = fmt.Sprintf("metadata: %v", err)
		b.Stop()
		return nil, run
	}
	run.MetadataSeconds = time.Since(b.Started).Seconds()
	if c, err := b.CPU(); err == nil {
		run.CPUSeconds = c.Total().Seconds()
	}
	busy1, _ := ReadMachineBusy()
	self1, _ := ReadCPUTimes(self)
	if busy0 > 0 && busy1 > 0 {
		run.OtherCPUSeconds = max((busy1-busy0).Seconds()-run.CPUSeconds-self1.Sub(self0).Total().Seconds(), 0)
	}
	if n, err := ReadPeakRSS(b.PID()); err == nil {
		run.PeakRSSBytes = n
	}
	select {
	case <-time.After(pt.cfg.Settle):
	case <-ctx.Done():
	}
	if n, err := ReadRSS(b.PID()); err == nil {
		run.IdleRSSBytes = n
	}
	return b, run
}

// waitMetadata sends Metadata for topics until an answer names each with
// perTopic partitions, every one with a leader and no error.
func waitMetadata(ctx context.Context, addr string, topics []string, perTopic int) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr),
		kgo.RetryBackoffFn(func(int) time.Duration { return 5 * time.Millisecond }))
	if err != nil {
		return err
	}
	defer cl.Close()
	req := kmsg.NewPtrMetadataRequest()
	// NB: an empty, non-nil list asks for no topics; nil would ask for all.
	req.Topics = []kmsg.MetadataRequestTopic{}
	for _, t := range topics {
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(t)
		req.Topics = append(req.Topics, rt)
	}
	var last error
	for {
		resp, err := req.RequestWith(ctx, cl)
		if err == nil {
			if err = metadataComplete(resp, len(topics), perTopic); err == nil {
				return nil
			}
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", ctx.Err(), last)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func metadataComplete(resp *kmsg.MetadataResponse, topics, perTopic int) error {
	if len(resp.Topics) != topics {
		return fmt.Errorf("%d topics in the answer, want %d", len(resp.Topics), topics)
	}
	for _, t := range resp.Topics {
		if err := kerr.ErrorForCode(t.ErrorCode); err != nil {
			name := ""
			if t.Topic != nil {
				name = *t.Topic
			}
			return fmt.Errorf("topic %s: %w", name, err)
		}
		if len(t.Partitions) != perTopic {
			return fmt.Errorf("%d partitions, want %d", len(t.Partitions), perTopic)
		}
		for _, p := range t.Partitions {
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				return fmt.Errorf("partition %d: %w", p.Partition, err)
			}
			if p.Leader < 0 {
				return fmt.Errorf("partition %d: no leader", p.Partition)
			}
		}
	}
	return nil
}

// writeBulk writes n bytes of values of valueBytes into topic with a
// non-idempotent acks=1 producer and 1 MiB batches: the fastest way to fill
// a log through the wire (acks=1 is answered before the fsync; the broker
// still fsyncs every round and on its clean stop).
func writeBulk(ctx context.Context, addr, topic string, n int64, valueBytes int) error {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(addr),
		kgo.DefaultProduceTopic(topic),
		kgo.DisableIdempotentWrite(),
		kgo.RequiredAcks(kgo.LeaderAck()),
		kgo.ProducerBatchMaxBytes(1<<20),
		kgo.MaxBufferedBytes(64<<20),
		kgo.MaxBufferedRecords(maxBufferedRecords),
		kgo.ProducerLinger(5*time.Millisecond),
		// Stored as sent: the log on disk has the size asked for.
		kgo.ProducerBatchCompression(kgo.NoCompression()),
	)
	if err != nil {
		return err
	}
	defer cl.Close()
	p := &producer{cl: cl}
	val := value(valueBytes)
	per := int64(valueBytes)
	return p.produceUntil(ctx, val, func(sent int64) bool { return sent*per >= n })
}

// loadPoint starts the broker once more (after the SIGTERM of the last
// repetition), runs the load and stops it.
func (pt *point) loadPoint(ctx context.Context) error {
	b, run := pt.start(ctx, StartClean, 0)
	if b == nil {
		return errors.New(run.Err)
	}
	ld := pt.load(ctx, b)
	ld.Start = run
	pt.p.Load = &ld
	pt.cfg.logf("   load: started in %.3f s (idle RSS %d MB); %s records/s, %.2f µs/record, other CPU %.2f s, peak RSS %d MB, RSS %d MB %s",
		run.ListenSeconds, run.IdleRSSBytes/1e6, thousands(ld.RecordsPerSec), ld.BrokerUSPerRecord, ld.OtherCPUSeconds, ld.PeakRSSBytes/1e6, ld.RSSBytes/1e6, ld.Err)
	if st := b.Stop(); st.Err != nil {
		return st.Err
	}
	return nil
}

// load produces idempotent acks=all 1 KiB records into every topic of the
// point for LoadDuration, the records spread over the topics in turn.
func (pt *point) load(ctx context.Context, b *Broker) LoadRun {
	var ld LoadRun
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(b.Addr),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.MaxBufferedBytes(maxBufferedBytes),
		kgo.MaxBufferedRecords(maxBufferedRecords),
		kgo.ProducerBatchCompression(kgo.NoCompression()),
	)
	if err != nil {
		ld.Err = err.Error()
		return ld
	}
	defer cl.Close()
	if err := cl.Ping(ctx); err != nil {
		ld.Err = err.Error()
		return ld
	}
	p := &producer{cl: cl}
	val := value(1024)
	self := os.Getpid()
	bcpu0, _ := b.CPU()
	dcpu0, _ := ReadCPUTimes(self)
	busy0, _ := ReadMachineBusy()
	t0 := time.Now()
	deadline := t0.Add(pt.cfg.LoadDuration)
	var i int
	for time.Now().Before(deadline) && !p.failed.Load() && ctx.Err() == nil {
		cl.Produce(ctx, &kgo.Record{Topic: pt.topics[i%len(pt.topics)], Value: val}, p.promise)
		i++
	}
	if err := cl.Flush(ctx); err != nil {
		ld.Err = err.Error()
	} else if err := p.firstErr(); err != nil {
		ld.Err = err.Error()
	}
	el := time.Since(t0)
	bcpu1, _ := b.CPU()
	dcpu1, _ := ReadCPUTimes(self)
	busy1, _ := ReadMachineBusy()
	ld.Seconds = el.Seconds()
	ld.Records = p.acked.Load()
	ld.RecordsPerSec = float64(ld.Records) / el.Seconds()
	ld.BrokerCPUSeconds = bcpu1.Sub(bcpu0).Total().Seconds()
	if ld.Records > 0 {
		ld.BrokerUSPerRecord = ld.BrokerCPUSeconds * 1e6 / float64(ld.Records)
	}
	if busy0 > 0 && busy1 > 0 {
		ld.OtherCPUSeconds = max((busy1-busy0).Seconds()-ld.BrokerCPUSeconds-dcpu1.Sub(dcpu0).Total().Seconds(), 0)
	}
	ld.PeakRSSBytes, _ = ReadPeakRSS(b.PID())
	ld.RSSBytes, _ = ReadRSS(b.PID())
	return ld
}

// SummarizeStarts groups the successful starts by kind, in startKinds
// order, kinds without any start left out.
func SummarizeStarts(runs []StartRun) []StartSummary {
	var out []StartSummary
	for _, k := range startKinds {
		s := StartSummary{Kind: k}
		var listen, meta, broker, cpu, peak, idle []float64
		for _, r := range runs {
			if r.Kind != k {
				continue
			}
			if r.Err != "" {
				s.Failed++
				continue
			}
			s.OK++
			listen = append(listen, r.ListenSeconds)
			meta = append(meta, r.MetadataSeconds)
			broker = append(broker, r.BrokerSeconds)
			cpu = append(cpu, r.CPUSeconds)
			peak = append(peak, float64(r.PeakRSSBytes)/1e6)
			idle = append(idle, float64(r.IdleRSSBytes)/1e6)
		}
		if s.OK+s.Failed == 0 {
			continue
		}
		s.ListenSeconds, s.MetadataSeconds, s.BrokerSeconds = Summarize(listen), Summarize(meta), Summarize(broker)
		s.CPUSeconds, s.PeakRSSMB, s.IdleRSSMB = Summarize(cpu), Summarize(peak), Summarize(idle)
		out = append(out, s)
	}
	return out
}

// WriteJSON writes the report, indented.
func (rep StartupReport) WriteJSON(path string) error { return writeJSON(path, rep) }

// WriteText prints the summaries for a terminal.
func (rep StartupReport) WriteText(w io.Writer) {
	fmt.Fprintf(w, "\nstart-up (%s mode), %d repetitions; median [min–max] seconds from exec\n", rep.Settings.Mode, rep.Settings.Reps)
	for _, p := range rep.Points {
		head := fmt.Sprintf("%d partitions", p.Partitions)
		if rep.Settings.Mode == "log" {
			head = fmt.Sprintf("%.2f GiB", p.GiB)
		}
		fmt.Fprintf(w, "\n%s (%d MiB on disk, fill %.1f s)\n", head, p.DataBytes>>20, p.FillSeconds)
		if p.Err != "" {
			fmt.Fprintf(w, "  FAILED: %s\n", truncate(p.Err, 300))
		}
		for _, s := range p.Summaries {
			fmt.Fprintf(w, "  %-10s listening %s  metadata %s  broker %s  CPU %s  peak RSS %s MB  idle RSS %s MB (n=%d)\n",
				s.Kind, span(s.ListenSeconds, fixed(3)), span(s.MetadataSeconds, fixed(3)), span(s.BrokerSeconds, fixed(3)),
				span(s.CPUSeconds, fixed(2)), span(s.PeakRSSMB, fixed(0)), span(s.IdleRSSMB, fixed(0)), s.OK)
		}
		if ld := p.Load; ld != nil {
			fmt.Fprintf(w, "  load       %s records/s, %.2f µs/record, peak RSS %d MB, RSS %d MB %s\n",
				thousands(ld.RecordsPerSec), ld.BrokerUSPerRecord, ld.PeakRSSBytes/1e6, ld.RSSBytes/1e6, ld.Err)
		}
	}
}

// dirBytes is the total size of the regular files under dir.
func dirBytes(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}

// posixFadvDontNeed is POSIX_FADV_DONTNEED on Linux.
const posixFadvDontNeed = 4

// dropPageCache evicts the pages of every file under dir from the page
// cache: fsync (only clean pages can be dropped), then
// posix_fadvise(POSIX_FADV_DONTNEED) over the whole file. Other files on the
// machine keep their cached pages.
func dropPageCache(dir string) error {
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := f.Sync(); err != nil {
			return err
		}
		if _, _, e := syscall.Syscall6(syscall.SYS_FADVISE64, f.Fd(), 0, 0, posixFadvDontNeed, 0, 0); e != 0 {
			return fmt.Errorf("fadvise %s: %w", path, e)
		}
		return nil
	})
}

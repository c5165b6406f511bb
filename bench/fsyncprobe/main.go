// Command fsyncprobe measures the disk's floor under the latency-5000
// scenarios: what one durable append costs on this filesystem at a fixed
// rate, with nothing of the broker in the way.
//
// It models a partition's owner: --files files, each with its own goroutine
// that takes every append queued for its file, writes them at the file's end,
// syncs once and completes them (group commit). Appends of --bytes bytes
// arrive at --rate per second in total, spread round-robin over the files.
// It reports the distribution of the sync call alone and of arrival to
// durable (queueing included), p50/p99/p999/max.
//
// With --serial one goroutine takes every append and syncs one file per
// round, the next file the next round: what the broker sees from one
// franz-go producer with linger 0, which keeps one produce request in flight
// and fills one partition per request (the sticky partitioner), so one
// partition's fsync runs at a time.
//
// Modes (--mode):
//
//	grow        each append grows the file, fsync (a segment without preallocate)
//	grow-data   each append grows the file, fdatasync (still a journal commit: the size changed)
//	prezeroed   the file is pre-zeroed and fsynced first, appends overwrite, fdatasync
//	            (a segment with preallocate, between extensions)
//	ahead       appends overwrite zeros, fdatasync; a goroutine per file keeps 2-6 MiB
//	            of zeros ahead of them, written 128 KiB at a time with sync_file_range
//	            and fsynced per 4 MiB (what partlog's extender does)
//
// Usage:
//
//	go run ./bench/fsyncprobe --dir /work/tmp --mode grow --rate 1600 --files 6 --bytes 3072 --duration 10s
//
// NB: the files are written with os.File directly, not internal/vfs: the point
// is the disk, not our code.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	var (
		dir      = flag.String("dir", os.TempDir(), "directory for the probe's files (on the disk to measure)")
		mode     = flag.String("mode", "grow", "grow, grow-data or prezeroed")
		rate     = flag.Int("rate", 5000, "appends per second, in total")
		files    = flag.Int("files", 6, "files (partitions), each with its own syncing goroutine")
		size     = flag.Int("bytes", 1024, "bytes per append")
		duration = flag.Duration("duration", 10*time.Second, "how long to append")
		prezero  = flag.Int64("prezero-bytes", 256<<20, "bytes pre-zeroed per file in mode prezeroed")
		serial   = flag.Bool("serial", false, "one goroutine syncs one file per round, rotating (one request in flight)")
	)
	flag.Parse()
	if *mode != "grow" && *mode != "grow-data" && *mode != "prezeroed" && *mode != "ahead" {
		fmt.Fprintln(os.Stderr, "fsyncprobe: --mode must be grow, grow-data, prezeroed or ahead")
		os.Exit(2)
	}
	tmp, err := os.MkdirTemp(*dir, "fsyncprobe-")
	if err != nil {
		fatal(err)
	}
	defer os.RemoveAll(tmp)

	type owner struct {
		fs    []*os.File
		pos   []int64
		queue chan time.Time
		syncs []time.Duration
		lats  []time.Duration
		// rounds counts syncs; appends/rounds is the group-commit factor.
		rounds, appends int
	}
	buf := make([]byte, *size)
	for i := range buf {
		buf[i] = byte(i*7 + 1)
	}
	owners := make([]*owner, *files)
	for i := range owners {
		f, err := os.OpenFile(filepath.Join(tmp, fmt.Sprintf("%d.log", i)), os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			fatal(err)
		}
		if *mode == "prezeroed" {
			zero := make([]byte, 1<<20)
			for at := int64(0); at < *prezero; at += int64(len(zero)) {
				if _, err := f.WriteAt(zero, at); err != nil {
					fatal(err)
				}
			}
			if err := f.Sync(); err != nil {
				fatal(err)
			}
		}
		owners[i] = &owner{fs: []*os.File{f}, pos: []int64{0}, queue: make(chan time.Time, 1<<16)}
	}
	// ahead: the appends' end per file, and when to stop the extenders.
	ends := make([]atomic.Int64, len(owners))
	quit := make(chan struct{})
	var extenders sync.WaitGroup
	if *mode == "ahead" {
		for i, o := range owners {
			name := o.fs[0].Name()
			extenders.Go(func() { extendAhead(name, &ends[i], quit) })
		}
		time.Sleep(time.Second) // the first extents
	}
	if *serial {
		if *mode == "ahead" {
			fmt.Fprintln(os.Stderr, "fsyncprobe: --serial with --mode ahead is not supported")
			os.Exit(2)
		}
		o := &owner{queue: make(chan time.Time, 1<<16)}
		for _, x := range owners {
			o.fs = append(o.fs, x.fs[0])
			o.pos = append(o.pos, 0)
		}
		owners = []*owner{o}
	}
	if *mode == "prezeroed" {
		// Let the write-back of the zeros settle before measuring.
		time.Sleep(2 * time.Second)
	}

	var wg sync.WaitGroup
	for oi, o := range owners {
		wg.Go(func() {
			var round []time.Time
			next := 0
			for first := range o.queue {
				round = append(round[:0], first)
			drain:
				for {
					select {
					case t, ok := <-o.queue:
						if !ok {
							break drain
						}
						round = append(round, t)
					default:
						break drain
					}
				}
				f := o.fs[next]
				for range round {
					if _, err := f.WriteAt(buf, o.pos[next]); err != nil {
						fatal(err)
					}
					o.pos[next] += int64(len(buf))
				}
				if *mode == "ahead" {
					ends[oi].Store(o.pos[next])
				}
				next = (next + 1) % len(o.fs)
				t0 := time.Now()
				var err error
				if *mode == "grow" {
					err = f.Sync()
				} else {
					err = syscall.Fdatasync(int(f.Fd()))
				}
				if err != nil {
					fatal(err)
				}
				done := time.Now()
				o.syncs = append(o.syncs, done.Sub(t0))
				for _, t := range round {
					o.lats = append(o.lats, done.Sub(t))
				}
				o.rounds++
				o.appends += len(round)
			}
		})
	}

	start := time.Now()
	tick := time.NewTicker(time.Millisecond)
	var sent int64
	for el := time.Duration(0); el < *duration; el = time.Since(start) {
		due := int64(el.Seconds() * float64(*rate))
		for ; sent < due; sent++ {
			owners[sent%int64(len(owners))].queue <- time.Now()
		}
		<-tick.C
	}
	tick.Stop()
	for _, o := range owners {
		close(o.queue)
	}
	wg.Wait()
	close(quit)
	extenders.Wait()

	var syncs, lats []time.Duration
	rounds, appends := 0, 0
	for _, o := range owners {
		syncs = append(syncs, o.syncs...)
		lats = append(lats, o.lats...)
		rounds += o.rounds
		appends += o.appends
		for _, f := range o.fs {
			f.Close()
		}
	}
	slices.Sort(syncs)
	slices.Sort(lats)
	fmt.Printf("serial %v, mode %s, %d files, %d B appends at %d/s for %v: %d appends, %d syncs (%.2f appends/sync)\n",
		*serial, *mode, *files, *size, *rate, *duration, appends, rounds, float64(appends)/float64(max(rounds, 1)))
	fmt.Printf("  sync call      %s\n", dist(syncs))
	fmt.Printf("  arrival→durable %s\n", dist(lats))
}

func dist(d []time.Duration) string {
	if len(d) == 0 {
		return "(none)"
	}
	q := func(p float64) string {
		i := min(int(p*float64(len(d))), len(d)-1)
		return fmt.Sprintf("%.2f", float64(d[i])/1e6)
	}
	return fmt.Sprintf("p50 %s  p90 %s  p99 %s  p999 %s  max %s ms", q(0.5), q(0.9), q(0.99), q(0.999), q(1))
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "fsyncprobe:", err)
	os.Exit(1)
}

// extendAhead keeps the file at name zeroed from 2 to 6 MiB past *end: 4 MiB
// at a time, 128 KiB per write, each written back with sync_file_range
// before the next, one fsync per 4 MiB.
func extendAhead(name string, end *atomic.Int64, quit chan struct{}) {
	f, err := os.OpenFile(name, os.O_WRONLY, 0)
	if err != nil {
		fatal(err)
	}
	defer f.Close()
	zero := make([]byte, 128<<10)
	var zeroEnd int64
	for {
		select {
		case <-quit:
			return
		default:
		}
		if zeroEnd-end.Load() >= 2<<20 {
			time.Sleep(time.Millisecond)
			continue
		}
		for to := zeroEnd + 4<<20; zeroEnd < to; zeroEnd += int64(len(zero)) {
			if _, err := f.WriteAt(zero, zeroEnd); err != nil {
				fatal(err)
			}
			if err := syscall.SyncFileRange(int(f.Fd()), zeroEnd, int64(len(zero)), 1|2|4); err != nil {
				fatal(err)
			}
		}
		if err := f.Sync(); err != nil {
			fatal(err)
		}
	}
}

package bench

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// CPUTimes is a process's accumulated CPU time as the kernel accounts it in
// /proc/PID/stat: user and system time of all its threads (not of its
// children), in clock ticks converted to durations.
type CPUTimes struct {
	User   time.Duration
	System time.Duration
}

// Total is user plus system time.
func (c CPUTimes) Total() time.Duration { return c.User + c.System }

// Sub returns c minus earlier, field by field.
func (c CPUTimes) Sub(earlier CPUTimes) CPUTimes {
	return CPUTimes{User: c.User - earlier.User, System: c.System - earlier.System}
}

// ParseProcStat extracts utime and stime (fields 14 and 15, 1-based, of
// proc(5)) from the contents of /proc/PID/stat and converts them using
// ticksPerSecond.
//
// NB: field 2, the command name, is in parentheses and may itself contain
// spaces and parentheses ("(my (odd) prog)"), so fields are counted from the
// last ')' in the line, never by splitting the whole line.
func ParseProcStat(stat []byte, ticksPerSecond int64) (CPUTimes, error) {
	if ticksPerSecond <= 0 {
		return CPUTimes{}, fmt.Errorf("ticks per second %d is not positive", ticksPerSecond)
	}
	end := bytes.LastIndexByte(stat, ')')
	if end < 0 {
		return CPUTimes{}, fmt.Errorf("proc stat: no ')' closing the command name")
	}
	// After ") " come fields 3 (state) onwards; utime is field 14, the
	// 12th of these, stime the 13th.
	rest := strings.Fields(string(stat[end+1:]))
	const utimeIdx, stimeIdx = 14 - 3, 15 - 3
	if len(rest) <= stimeIdx {
		return CPUTimes{}, fmt.Errorf("proc stat: %d fields after the command name, need at least %d", len(rest), stimeIdx+1)
	}
	ticks := func(s, name string) (time.Duration, error) {
		n, err := strconv.ParseUint(s, 10, 63)
		if err != nil {
			return 0, fmt.Errorf("proc stat: %s %q: %w", name, s, err)
		}
		// Multiply before dividing so that 1/ticksPerSecond is not
		// rounded away; n ticks fit easily: 2^63 ns is 292 years.
		return time.Duration(int64(n) * int64(time.Second) / ticksPerSecond), nil
	}
	u, err := ticks(rest[utimeIdx], "utime")
	if err != nil {
		return CPUTimes{}, err
	}
	s, err := ticks(rest[stimeIdx], "stime")
	if err != nil {
		return CPUTimes{}, err
	}
	return CPUTimes{User: u, System: s}, nil
}

// ReadCPUTimes reads /proc/PID/stat for pid.
func ReadCPUTimes(pid int) (CPUTimes, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return CPUTimes{}, err
	}
	return ParseProcStat(b, ClockTicks())
}

// atClkTck is the auxiliary-vector key whose value is sysconf(_SC_CLK_TCK),
// the unit of the times in /proc/PID/stat (getauxval(3)).
const atClkTck = 17

// ParseAuxvClockTicks finds AT_CLKTCK in the contents of /proc/self/auxv: an
// array of (key, value) pairs of native machine words ending with key 0.
func ParseAuxvClockTicks(auxv []byte, wordBytes int) (int64, bool) {
	pair := 2 * wordBytes
	for off := 0; off+pair <= len(auxv); off += pair {
		var key, val uint64
		switch wordBytes {
		case 8:
			key = binary.NativeEndian.Uint64(auxv[off:])
			val = binary.NativeEndian.Uint64(auxv[off+8:])
		case 4:
			key = uint64(binary.NativeEndian.Uint32(auxv[off:]))
			val = uint64(binary.NativeEndian.Uint32(auxv[off+4:]))
		default:
			return 0, false
		}
		if key == 0 {
			return 0, false
		}
		if key == atClkTck && val > 0 {
			return int64(val), true
		}
	}
	return 0, false
}

var clockTicks = sync.OnceValue(func() int64 {
	if b, err := os.ReadFile("/proc/self/auxv"); err == nil {
		if n, ok := ParseAuxvClockTicks(b, strconv.IntSize/8); ok {
			return n
		}
	}
	return 100 // USER_HZ on every Linux architecture Go supports.
})

// ClockTicks returns the kernel's USER_HZ, the unit of /proc/PID/stat times.
func ClockTicks() int64 { return clockTicks() }

// ParsePeakRSS extracts VmHWM (peak resident set size) from the contents of
// /proc/PID/status, in bytes.
func ParsePeakRSS(status []byte) (int64, error) { return parseStatusKB(status, "VmHWM") }

// ParseRSS extracts VmRSS (resident set size now) from /proc/PID/status, in
// bytes.
func ParseRSS(status []byte) (int64, error) { return parseStatusKB(status, "VmRSS") }

// parseStatusKB extracts the "key: N kB" line of /proc/PID/status, in bytes.
func parseStatusKB(status []byte, key string) (int64, error) {
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		line := sc.Text()
		v, ok := strings.CutPrefix(line, key+":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("proc status: odd %s line %q", key, line)
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("proc status: %s %q: %w", key, f[0], err)
		}
		return kb << 10, nil
	}
	return 0, fmt.Errorf("proc status: no %s line", key)
}

// ReadPeakRSS reads /proc/PID/status for pid.
func ReadPeakRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	return ParsePeakRSS(b)
}

// ReadRSS reads the resident set size of pid now.
func ReadRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	return ParseRSS(b)
}

// ParseMachineBusy returns the CPU time all CPUs spent not idle, from the
// aggregate "cpu" line of /proc/stat: user, nice, system, irq, softirq and
// steal (guest time is already inside user and nice; idle and iowait are
// idle). Subtracting the broker's and the driver's own time from its change
// over a run shows what else competed for the machine.
func ParseMachineBusy(stat []byte, ticksPerSecond int64) (time.Duration, error) {
	if ticksPerSecond <= 0 {
		return 0, fmt.Errorf("ticks per second %d is not positive", ticksPerSecond)
	}
	line, _, _ := bytes.Cut(stat, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 9 || f[0] != "cpu" {
		return 0, fmt.Errorf("proc stat: first line %q is not the aggregate cpu line", line)
	}
	var busy uint64
	// 1 user, 2 nice, 3 system, 4 idle, 5 iowait, 6 irq, 7 softirq, 8 steal.
	for _, i := range []int{1, 2, 3, 6, 7, 8} {
		n, err := strconv.ParseUint(f[i], 10, 63)
		if err != nil {
			return 0, fmt.Errorf("proc stat: cpu field %d %q: %w", i, f[i], err)
		}
		busy += n
	}
	return time.Duration(int64(busy) * int64(time.Second) / ticksPerSecond), nil
}

// ReadMachineBusy reads /proc/stat.
func ReadMachineBusy() (time.Duration, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	return ParseMachineBusy(b, ClockTicks())
}

// DiskCounters are the machine's block-device counters from /proc/diskstats,
// summed over its whole disks.
type DiskCounters struct {
	WrittenBytes int64 // sectors written, in bytes
	Flushes      int64 // flush requests completed (Linux 5.5 and later; else 0)
}

// Sub returns d minus earlier, field by field.
func (d DiskCounters) Sub(earlier DiskCounters) DiskCounters {
	return DiskCounters{WrittenBytes: d.WrittenBytes - earlier.WrittenBytes, Flushes: d.Flushes - earlier.Flushes}
}

// ParseDiskstats sums the write counters of /proc/diskstats over the devices
// for which isDisk says true (the whole disks: a partition's writes are its
// disk's too, so counting both would count them twice). Fields after the
// name (iostats.rst): 4 reads, ..., 7 sectors written (512 bytes each), ...,
// 15 flushes completed, when present.
func ParseDiskstats(b []byte, isDisk func(name string) bool) (DiskCounters, error) {
	var d DiskCounters
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 14 || !isDisk(f[2]) {
			continue
		}
		sectors, err := strconv.ParseInt(f[9], 10, 64)
		if err != nil {
			return DiskCounters{}, fmt.Errorf("diskstats %s: sectors written %q: %w", f[2], f[9], err)
		}
		d.WrittenBytes += sectors * 512
		if len(f) >= 19 {
			flushes, err := strconv.ParseInt(f[18], 10, 64)
			if err != nil {
				return DiskCounters{}, fmt.Errorf("diskstats %s: flushes %q: %w", f[2], f[18], err)
			}
			d.Flushes += flushes
		}
	}
	return d, nil
}

// ReadMachineDisk reads /proc/diskstats for the whole disks in /sys/block,
// leaving out loop, RAM and device-mapper devices (whose writes reach a disk
// counted already, or none).
func ReadMachineDisk() (DiskCounters, error) {
	b, err := os.ReadFile("/proc/diskstats")
	if err != nil {
		return DiskCounters{}, err
	}
	return ParseDiskstats(b, func(name string) bool {
		for _, p := range []string{"loop", "ram", "zram", "dm-", "md"} {
			if strings.HasPrefix(name, p) {
				return false
			}
		}
		_, err := os.Stat("/sys/block/" + name)
		return err == nil
	})
}

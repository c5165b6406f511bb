package bench

import (
	"encoding/binary"
	"os"
	"strings"
	"testing"
	"time"
)

// A real line from a Go process, with the command name changed to contain
// spaces and parentheses, which a naive strings.Fields split miscounts.
const sampleStat = "4242 (kfake (srv) x) S 1 4242 4242 0 -1 4194560 1234 0 0 0 " +
	"2512 371 0 0 20 0 7 0 98765 1234567890 4567 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n"

func TestParseProcStat(t *testing.T) {
	got, err := ParseProcStat([]byte(sampleStat), 100)
	if err != nil {
		t.Fatal(err)
	}
	want := CPUTimes{User: 25120 * time.Millisecond, System: 3710 * time.Millisecond}
	if got != want {
		t.Errorf("ParseProcStat = %+v, want %+v", got, want)
	}
	if got.Total() != 28830*time.Millisecond {
		t.Errorf("Total = %v", got.Total())
	}

	// Another tick rate: 250 ticks of 1/250 s are one second.
	got, err = ParseProcStat([]byte("1 (a) R 0 0 0 0 0 0 0 0 0 0 250 500 0"), 250)
	if err != nil {
		t.Fatal(err)
	}
	if got.User != time.Second || got.System != 2*time.Second {
		t.Errorf("ParseProcStat at 250 Hz = %+v", got)
	}
}

func TestParseProcStatRejectsJunk(t *testing.T) {
	for name, in := range map[string]string{
		"no paren":   "4242 kfake S 1 2 3",
		"short":      "4242 (kfake) S 1 2 3 4 5",
		"bad number": strings.Replace(sampleStat, " 2512 ", " 25x2 ", 1),
		"negative":   strings.Replace(sampleStat, " 371 ", " -371 ", 1),
	} {
		if _, err := ParseProcStat([]byte(in), 100); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if _, err := ParseProcStat([]byte(sampleStat), 0); err == nil {
		t.Errorf("zero tick rate: no error")
	}
}

func TestCPUTimesSub(t *testing.T) {
	a := CPUTimes{User: 5 * time.Second, System: 2 * time.Second}
	b := CPUTimes{User: 3 * time.Second, System: 500 * time.Millisecond}
	if d := a.Sub(b); d.User != 2*time.Second || d.System != 1500*time.Millisecond {
		t.Errorf("Sub = %+v", d)
	}
}

func TestParseAuxvClockTicks(t *testing.T) {
	for _, word := range []int{4, 8} {
		put := func(b []byte, v uint64) {
			if word == 8 {
				binary.NativeEndian.PutUint64(b, v)
			} else {
				binary.NativeEndian.PutUint32(b, uint32(v))
			}
		}
		pairs := [][2]uint64{{33, 0xdead}, {6, 4096}, {atClkTck, 300}, {0, 0}}
		b := make([]byte, len(pairs)*2*word)
		for i, p := range pairs {
			put(b[i*2*word:], p[0])
			put(b[i*2*word+word:], p[1])
		}
		if n, ok := ParseAuxvClockTicks(b, word); !ok || n != 300 {
			t.Errorf("word %d: got %d, %v; want 300, true", word, n, ok)
		}
		// Terminated before AT_CLKTCK: not found.
		if _, ok := ParseAuxvClockTicks(b[:2*word], word); ok {
			t.Errorf("word %d: found AT_CLKTCK in a vector without it", word)
		}
	}
}

func TestParsePeakRSS(t *testing.T) {
	status := "Name:\tkfakeserver\nVmPeak:\t 1000 kB\nVmHWM:\t   20480 kB\nVmRSS:\t 100 kB\n"
	n, err := ParsePeakRSS([]byte(status))
	if err != nil || n != 20480<<10 {
		t.Errorf("ParsePeakRSS = %d, %v", n, err)
	}
	if _, err := ParsePeakRSS([]byte("Name:\tx\n")); err == nil {
		t.Errorf("missing VmHWM: no error")
	}
}

// The live reading must work on this machine: our own process has used some
// CPU by now, and USER_HZ is sane.
func TestReadCPUTimesSelf(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	if hz := ClockTicks(); hz < 10 || hz > 10000 {
		t.Errorf("ClockTicks = %d", hz)
	}
	deadline := time.Now().Add(50 * time.Millisecond)
	for time.Now().Before(deadline) {
	}
	c, err := ReadCPUTimes(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if c.Total() <= 0 {
		t.Errorf("own CPU time %v after a 50ms spin", c.Total())
	}
	if _, err := ReadPeakRSS(os.Getpid()); err != nil {
		t.Error(err)
	}
}

func TestParseMachineBusy(t *testing.T) {
	stat := "cpu  100 20 30 5000 40 5 6 7 0 0\ncpu0 50 10 15 2500 20 2 3 3 0 0\nintr 1 2 3\n"
	got, err := ParseMachineBusy([]byte(stat), 100)
	if err != nil {
		t.Fatal(err)
	}
	// 100+20+30+5+6+7 = 168 ticks; idle and iowait are not busy.
	if want := 1680 * time.Millisecond; got != want {
		t.Errorf("ParseMachineBusy = %v, want %v", got, want)
	}
	if _, err := ParseMachineBusy([]byte("cpu0 1 2 3 4 5 6 7 8\n"), 100); err == nil {
		t.Errorf("per-CPU line accepted as the aggregate")
	}
	if _, err := ParseMachineBusy([]byte("cpu 1 2\n"), 100); err == nil {
		t.Errorf("short line accepted")
	}
}

func TestParseDiskstats(t *testing.T) {
	stats := "   7       0 loop0 10 0 20 0 5 0 80 0 0 0 0 0 0 0 0 0 0\n" +
		" 254       0 vda 612884 86979 97391834 933573 27582199 1714377 846359088 6461330 0 2359204 8422836 1117410 176 697902888 205106 8975322 822826\n" +
		" 254       1 vda1 600000 80000 97000000 900000 27000000 1700000 846000000 6400000 0 2300000 8400000 0 0 0 0 0 0\n" +
		" 253       0 sdb 1 0 2 0 3 0 8 0 0 0 0\n" // old kernel: no discard or flush fields
	whole := map[string]bool{"vda": true, "sdb": true}
	d, err := ParseDiskstats([]byte(stats), func(n string) bool { return whole[n] })
	if err != nil {
		t.Fatal(err)
	}
	if want := (846359088 + 8) * int64(512); d.WrittenBytes != want {
		t.Errorf("written %d, want %d", d.WrittenBytes, want)
	}
	if d.Flushes != 8975322 {
		t.Errorf("flushes %d, want 8975322", d.Flushes)
	}
	if got := d.Sub(DiskCounters{WrittenBytes: 512, Flushes: 2}); got.WrittenBytes != d.WrittenBytes-512 || got.Flushes != d.Flushes-2 {
		t.Errorf("Sub = %+v", got)
	}
	if _, err := ParseDiskstats([]byte(" 254 0 vda 1 2 3 4 5 6 x 8 9 10 11\n"), func(string) bool { return true }); err == nil {
		t.Error("junk sectors accepted")
	}
}

package compat

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/oncelog/oncelog/internal/testbroker"
)

// kcat runs kcat with args and stdin, failing the test on a non-zero exit,
// a time-out, or a librdkafka error line on stderr.
func kcat(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	path, err := exec.LookPath("kcat")
	testbroker.Require(t, "kcat", err)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("kcat %s: timed out after 60s\nstderr:\n%s", strings.Join(args, " "), tail(stderr.String(), 20))
	}
	if err != nil {
		t.Fatalf("kcat %s: %v\nstderr:\n%s", strings.Join(args, " "), err, tail(stderr.String(), 20))
	}
	if bad := librdkafkaErrors(stderr.String()); len(bad) > 0 {
		t.Errorf("kcat %s logged errors:\n%s", strings.Join(args, " "), strings.Join(bad, "\n"))
	}
	return stdout.String()
}

// librdkafkaErrors returns the lines of a librdkafka client's stderr that
// report an error: log lines of level 3 or lower (%3|..., PROTOERR among
// them) and kcat's own "% ERROR" lines.
func librdkafkaErrors(stderr string) []string {
	var bad []string
	for _, line := range strings.Split(stderr, "\n") {
		l := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(l, "%0|"), strings.HasPrefix(l, "%1|"),
			strings.HasPrefix(l, "%2|"), strings.HasPrefix(l, "%3|"),
			strings.Contains(l, "PROTOERR"), strings.HasPrefix(l, "% ERROR"):
			bad = append(bad, l)
		}
	}
	if len(bad) > 10 {
		bad = append(bad[:10], fmt.Sprintf("... and %d more", len(bad)-10))
	}
	return bad
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func TestKcatMetadata(t *testing.T) {
	b := startBroker(t, nil)
	createTopic(t, b.Addr, "kcat-meta-one", 1)
	createTopic(t, b.Addr, "kcat-meta-three", 3)
	out := kcat(t, "", "-b", b.Addr, "-L")
	for _, want := range []string{
		"1 brokers:",
		`topic "kcat-meta-one" with 1 partitions:`,
		`topic "kcat-meta-three" with 3 partitions:`,
		"partition 2, leader 0,",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("kcat -L: missing %q in:\n%s", want, out)
		}
	}
}

// keyedLines returns n "key:value" lines; values contain spaces and the
// delimiter itself, which kcat splits on its first occurrence only.
func keyedLines(n int, prefix string) []string {
	lines := make([]string, n)
	for i := range lines {
		lines[i] = fmt.Sprintf("%s-key-%d:%s value %d: with a colon", prefix, i%13, prefix, i)
	}
	return lines
}

// TestKcatRoundTrip produces keyed lines to one partition and reads them
// back byte for byte, in order.
func TestKcatRoundTrip(t *testing.T) {
	b := startBroker(t, nil)
	createTopic(t, b.Addr, "kcat-rt", 1)
	lines := keyedLines(500, "rt")
	in := strings.Join(lines, "\n") + "\n"
	kcat(t, in, "-b", b.Addr, "-t", "kcat-rt", "-P", "-K:")
	out := kcat(t, "", "-b", b.Addr, "-t", "kcat-rt", "-C", "-e", "-o", "beginning", "-K:")
	if out != in {
		t.Fatalf("round trip differs:\nsent %d bytes, %d lines\ngot  %d bytes, %d lines\nfirst got lines:\n%s",
			len(in), len(lines), len(out), strings.Count(out, "\n"), head(out, 5))
	}
}

// TestKcatIdempotentProduce produces with enable.idempotence=true to three
// partitions and checks that every line comes back once, each key on one
// partition, in the order produced per key.
func TestKcatIdempotentProduce(t *testing.T) {
	b := startBroker(t, nil)
	createTopic(t, b.Addr, "kcat-idem", 3)
	lines := keyedLines(3000, "idem")
	in := strings.Join(lines, "\n") + "\n"
	kcat(t, in, "-b", b.Addr, "-t", "kcat-idem", "-P", "-K:",
		"-X", "enable.idempotence=true", "-X", "acks=all")
	out := kcat(t, "", "-b", b.Addr, "-t", "kcat-idem", "-C", "-e", "-o", "beginning",
		"-f", "%p %k:%s\n")

	var got []string
	partOf := map[string]string{} // key -> partition
	perKey := map[string][]string{}
	for _, l := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		part, rec, ok := strings.Cut(l, " ")
		if !ok {
			t.Fatalf("unexpected kcat line %q", l)
		}
		key, _, _ := strings.Cut(rec, ":")
		if p, seen := partOf[key]; seen && p != part {
			t.Errorf("key %s on partitions %s and %s", key, p, part)
		}
		partOf[key] = part
		perKey[key] = append(perKey[key], rec)
		got = append(got, rec)
	}
	if len(got) != len(lines) {
		t.Fatalf("consumed %d records, produced %d", len(got), len(lines))
	}
	sortedGot, sortedWant := slices.Clone(got), slices.Clone(lines)
	slices.Sort(sortedGot)
	slices.Sort(sortedWant)
	if !slices.Equal(sortedGot, sortedWant) {
		t.Fatalf("consumed records differ from produced ones as a set")
	}
	wantPerKey := map[string][]string{}
	for _, l := range lines {
		key, _, _ := strings.Cut(l, ":")
		wantPerKey[key] = append(wantPerKey[key], l)
	}
	for key, want := range wantPerKey {
		if !slices.Equal(perKey[key], want) {
			t.Errorf("key %s: order differs from production order", key)
		}
	}
	parts := map[string]bool{}
	for _, p := range partOf {
		parts[p] = true
	}
	if len(parts) < 2 {
		t.Errorf("13 keys landed on %d partition(s); want them spread", len(parts))
	}
}

func head(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, "\n")
}

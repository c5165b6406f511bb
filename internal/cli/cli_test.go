package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// The tests talk TCP to a broker at h.brokers. By default each test gets its
// own in-memory kfake cluster; ONCELOG_TEST_BROKERS=host:port points them
// all at a running broker (oncelog's own) instead. Topic names are unique
// per test so that a shared broker works.

// harness runs the commands against one bootstrap address.
type harness struct {
	t       *testing.T
	brokers string
}

// newHarness returns a harness for brokers.
func newHarness(t *testing.T, brokers string) *harness {
	return &harness{t: t, brokers: brokers}
}

// testHarness picks the broker: ONCELOG_TEST_BROKERS, else a fresh kfake.
func testHarness(t *testing.T) *harness {
	t.Helper()
	if b := os.Getenv("ONCELOG_TEST_BROKERS"); b != "" {
		return newHarness(t, b)
	}
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return newHarness(t, strings.Join(c.ListenAddrs(), ","))
}

type result struct {
	code           int
	stdout, stderr string
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// run runs one command with --brokers added, stdin as given.
func (h *harness) run(stdin string, args ...string) result {
	h.t.Helper()
	args = append(slices.Clone(args), "--brokers", h.brokers)
	return runArgs(h.t, stdin, args...)
}

// ok runs a command that must succeed.
func (h *harness) ok(stdin string, args ...string) result {
	h.t.Helper()
	r := h.run(stdin, args...)
	if r.code != ExitOK {
		h.t.Fatalf("oncelog %s: %v", strings.Join(args, " "), r)
	}
	return r
}

func runArgs(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	code := Run(ctx, args, strings.NewReader(stdin), &out, &errb)
	return result{code, out.String(), errb.String()}
}

var topicSeq atomic.Int64

// topicName is unique per test and per call.
func topicName(t *testing.T) string {
	name := regexp.MustCompile(`[^a-zA-Z0-9]+`).ReplaceAllString(t.Name(), "-")
	return fmt.Sprintf("%s-%d-%d", strings.ToLower(name), time.Now().UnixNano()%1e6, topicSeq.Add(1))
}

func lines(s string) []string {
	s = strings.TrimSuffix(s, "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

func TestTopicLifecycle(t *testing.T) {
	h := testHarness(t)
	topic := topicName(t)

	r := h.ok("", "topic", "create", topic, "--partitions", "3", "--replication-factor", "1", "--config", "retention.ms=3600000")
	if !strings.Contains(r.stdout, "3 partitions") {
		t.Fatalf("create: %v", r)
	}
	r = h.run("", "topic", "create", topic)
	if r.code != ExitError || !strings.Contains(r.stderr, fmt.Sprintf("oncelog: topic %q already exists", topic)) {
		t.Fatalf("create twice: %v", r)
	}

	if r = h.ok("", "topic", "list"); !slices.Contains(lines(r.stdout), topic) {
		t.Fatalf("list does not show %s: %v", topic, r)
	}

	h.ok("a\nb\nc\nd\n", "produce", "--topic", topic, "--partition", "1")
	r = h.ok("", "topic", "describe", topic)
	for _, want := range []string{
		"topic: " + topic, "partitions: 3", "replication factor: 1",
		"retention.ms=3600000", "(set on topic)",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Fatalf("describe lacks %q: %v", want, r)
		}
	}
	// Partition 1 holds the four records: start 0, end 4.
	if !regexp.MustCompile(`(?m)^1\s+\d+\s+\d+\s+\S+\s+\S+\s+0\s+4\s*$`).MatchString(r.stdout) {
		t.Fatalf("describe: partition 1 should span offsets 0-4: %v", r)
	}

	h.ok("", "topic", "alter-config", topic, "--set", "retention.ms=7200000", "--set", "cleanup.policy=compact")
	r = h.ok("", "topic", "describe", topic)
	if !strings.Contains(r.stdout, "retention.ms=7200000") || !strings.Contains(r.stdout, "cleanup.policy=compact") {
		t.Fatalf("after --set: %v", r)
	}
	h.ok("", "topic", "alter-config", topic, "--delete", "retention.ms")
	r = h.ok("", "topic", "describe", topic)
	if strings.Contains(r.stdout, "retention.ms=7200000") || !strings.Contains(r.stdout, "cleanup.policy=compact") {
		t.Fatalf("after --delete: %v", r)
	}

	h.ok("", "topic", "delete", topic)
	if r = h.ok("", "topic", "list"); slices.Contains(lines(r.stdout), topic) {
		t.Fatalf("deleted topic still listed: %v", r)
	}
}

func TestMissingTopic(t *testing.T) {
	h := testHarness(t)
	topic := topicName(t)
	want := fmt.Sprintf("oncelog: topic %q does not exist\n", topic)
	for _, args := range [][]string{
		{"topic", "describe", topic},
		{"topic", "delete", topic},
		{"topic", "alter-config", topic, "--set", "retention.ms=1"},
		{"produce", "--topic", topic},
		{"consume", "--topic", topic, "--timeout", "1s"},
	} {
		r := h.run("x\n", args...)
		if r.code != ExitError || r.stderr != want {
			t.Errorf("oncelog %s: want exit 1 and %q, got %v", strings.Join(args, " "), want, r)
		}
	}
}

func TestProduceConsumeKeys(t *testing.T) {
	h := testHarness(t)
	topic := topicName(t)
	h.ok("", "topic", "create", topic, "--partitions", "1")

	var in strings.Builder
	var want []string
	for i := range 50 {
		fmt.Fprintf(&in, "key-%d:value %d: with a colon\n", i, i)
		want = append(want, fmt.Sprintf("key-%d\tvalue %d: with a colon", i, i))
	}
	r := h.ok(in.String(), "produce", "--topic", topic, "--key-separator", ":", "--compression", "zstd")
	if !strings.Contains(r.stderr, "produced 50 records") || !strings.Contains(r.stderr, "0 failed") {
		t.Fatalf("produce summary: %v", r)
	}
	r = h.ok("", "consume", "--topic", topic, "--from-beginning", "--max-messages", "50", "--format", "kv", "--timeout", "20s")
	if got := lines(r.stdout); !slices.Equal(got, want) {
		t.Fatalf("consumed\n%q\nwant\n%q", got, want)
	}
	if !strings.Contains(r.stderr, "consumed 50 records") {
		t.Fatalf("consume summary: %v", r)
	}

	r = h.ok("", "consume", "--topic", topic, "--from-beginning", "--max-messages", "2", "--format", `%t|%p|%o|%k=%v\n`)
	if got := lines(r.stdout); !slices.Equal(got, []string{
		topic + "|0|0|key-0=value 0: with a colon", topic + "|0|1|key-1=value 1: with a colon",
	}) {
		t.Fatalf("template: %q", got)
	}

	r = h.ok("", "consume", "--topic", topic, "--partition", "0", "--offset", "49", "--max-messages", "1", "--format", "json")
	var j jsonRecord
	if err := json.Unmarshal([]byte(r.stdout), &j); err != nil {
		t.Fatalf("json %q: %v", r.stdout, err)
	}
	if j.Offset != 49 || j.Key == nil || *j.Key != "key-49" || j.Value == nil || *j.Value != "value 49: with a colon" || j.Topic != topic {
		t.Fatalf("json record %+v", j)
	}

	// A line without the separator fails alone; the rest go through.
	r = h.run("k:v\nno separator\n", "produce", "--topic", topic, "--key-separator", ":")
	if r.code != ExitError || !strings.Contains(r.stderr, "line 2: no key separator") || !strings.Contains(r.stderr, "produced 1 records") {
		t.Fatalf("missing separator: %v", r)
	}
}

func TestProduceOptions(t *testing.T) {
	h := testHarness(t)
	topic := topicName(t)
	h.ok("", "topic", "create", topic, "--partitions", "2")
	var total int
	for _, args := range [][]string{
		{"--compression", "gzip"},
		{"--compression", "snappy", "--acks", "1"},
		{"--compression", "lz4", "--acks", "0"},
		{"--idempotent=false"},
		{"--partition", "1"},
	} {
		r := h.ok("one\ntwo\nthree", append([]string{"produce", "--topic", topic}, args...)...)
		if !strings.Contains(r.stderr, "produced 3 records") {
			t.Fatalf("%v: %v", args, r)
		}
		total += 3
	}
	r := h.ok("", "consume", "--topic", topic, "--from-beginning", "--max-messages", fmt.Sprint(total), "--timeout", "20s")
	got := lines(r.stdout)
	slices.Sort(got)
	if len(got) != total || got[0] != "one" || got[total-1] != "two" {
		t.Fatalf("consumed %q", got)
	}
	r = h.run("x\n", "produce", "--topic", topic, "--partition", "5")
	if r.code != ExitError || !strings.Contains(r.stderr, "has no partition 5") {
		t.Fatalf("partition out of range: %v", r)
	}
}

func TestConsumeGroup(t *testing.T) {
	h := testHarness(t)
	topic := topicName(t)
	group := topic + "-group"
	h.ok("", "topic", "create", topic, "--partitions", "1")
	h.ok("r0\nr1\nr2\nr3\nr4\n", "produce", "--topic", topic)

	// The first member prints three records and commits exactly those,
	// though it fetched all five.
	args := []string{"consume", "--topic", topic, "--group", group, "--from-beginning", "--timeout", "5s"}
	r := h.ok("", append(args, "--max-messages", "3")...)
	if got := lines(r.stdout); !slices.Equal(got, []string{"r0", "r1", "r2"}) {
		t.Fatalf("first run: %v", r)
	}
	r = h.ok("", append(args, "--max-messages", "2")...)
	if got := lines(r.stdout); !slices.Equal(got, []string{"r3", "r4"}) {
		t.Fatalf("second run resumes at the committed offset: %v", r)
	}
	r = h.ok("", "consume", "--topic", topic, "--group", group, "--from-beginning", "--timeout", "1s")
	if r.stdout != "" {
		t.Fatalf("third run should find nothing new: %v", r)
	}
}

func TestReadCommitted(t *testing.T) {
	h := testHarness(t)
	topic := topicName(t)
	h.ok("", "topic", "create", topic, "--partitions", "1")

	// An aborted transaction, written with kgo directly.
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(h.brokers, ",")...),
		kgo.TransactionalID(topic+"-aborter"), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := context.Background()
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, kgo.StringRecord("aborted-1"), kgo.StringRecord("aborted-2")).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if err := cl.EndTransaction(ctx, kgo.TryAbort); err != nil {
		t.Fatal(err)
	}

	r := h.ok("c1\nc2\nc3\n", "produce", "--topic", topic, "--transactional-id", topic+"-txn")
	if !strings.Contains(r.stderr, "transaction committed") {
		t.Fatalf("transactional produce: %v", r)
	}

	r = h.ok("", "consume", "--topic", topic, "--from-beginning", "--isolation", "read_committed", "--timeout", "2s")
	if got := lines(r.stdout); !slices.Equal(got, []string{"c1", "c2", "c3"}) {
		t.Fatalf("read_committed: %v", r)
	}
	r = h.ok("", "consume", "--topic", topic, "--from-beginning", "--isolation", "read_uncommitted", "--max-messages", "5", "--timeout", "10s")
	if got := lines(r.stdout); !slices.Equal(got, []string{"aborted-1", "aborted-2", "c1", "c2", "c3"}) {
		t.Fatalf("read_uncommitted: %v", r)
	}
}

func TestUnreachableBroker(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	h := newHarness(t, addr)
	for _, args := range [][]string{
		{"topic", "list"},
		{"produce", "--topic", "t"},
		{"consume", "--topic", "t"},
	} {
		start := time.Now()
		r := h.run("x\n", append(args, "--dial-timeout", "300ms")...)
		want := "oncelog: cannot reach broker " + addr + ": "
		if r.code != ExitError || !strings.HasPrefix(r.stderr, want) {
			t.Errorf("%v: want exit 1 and %q..., got %v", args, want, r)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("%v took %v", args, d)
		}
	}
}

func TestUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string // in stderr, or stdout for exit 0
	}{
		{nil, ExitUsage, "usage: oncelog <command>"},
		{[]string{"--help"}, ExitOK, "topic create"},
		{[]string{"bogus"}, ExitUsage, `unknown command "bogus"`},
		{[]string{"topic"}, ExitUsage, "usage: oncelog topic"},
		{[]string{"topic", "frob"}, ExitUsage, `unknown command "topic frob"`},
		{[]string{"topic", "create"}, ExitUsage, "missing argument NAME"},
		{[]string{"topic", "create", "a", "b"}, ExitUsage, `unexpected argument "b"`},
		{[]string{"topic", "create", "a", "--partitions", "0"}, ExitUsage, "--partitions 0"},
		{[]string{"topic", "create", "a", "--partitions", "x"}, ExitUsage, "invalid value"},
		{[]string{"topic", "create", "a", "--config", "novalue"}, ExitUsage, "want key=value"},
		{[]string{"topic", "create", "--help"}, ExitOK, "--replication-factor"},
		{[]string{"topic", "list", "extra"}, ExitUsage, `unexpected argument "extra"`},
		{[]string{"topic", "alter-config", "a"}, ExitUsage, "nothing to do"},
		{[]string{"produce"}, ExitUsage, "--topic is required"},
		{[]string{"produce", "--topic", "t", "--acks", "2"}, ExitUsage, `--acks "2"`},
		{[]string{"produce", "--topic", "t", "--acks", "1", "--idempotent"}, ExitUsage, "--idempotent needs --acks -1"},
		{[]string{"produce", "--topic", "t", "--compression", "brotli"}, ExitUsage, "--compression"},
		{[]string{"produce", "--topic", "t", "--transactional-id", "x", "--acks", "0"}, ExitUsage, "--transactional-id needs"},
		{[]string{"produce", "--frob"}, ExitUsage, "flag provided but not defined: -frob"},
		{[]string{"produce", "--help"}, ExitOK, "--key-separator"},
		{[]string{"consume", "--topic", "t", "--format", "%z"}, ExitUsage, "unknown verb %z"},
		{[]string{"consume", "--topic", "t", "--format", `\q`}, ExitUsage, `unknown escape`},
		{[]string{"consume", "--topic", "t", "--isolation", "serializable"}, ExitUsage, "--isolation"},
		{[]string{"consume", "--topic", "t", "--offset", "3"}, ExitUsage, "--offset needs --partition"},
		{[]string{"consume", "--topic", "t", "--partition", "0", "--group", "g"}, ExitUsage, "cannot be used with --group"},
		{[]string{"consume", "--topic", "t", "--partition", "0", "--offset", "-5"}, ExitUsage, "--offset"},
		{[]string{"consume", "--topic", "t", "--timeout", "soon"}, ExitUsage, "invalid value"},
		{[]string{"consume", "--help"}, ExitOK, "--max-messages"},
	} {
		r := runArgs(t, "", tc.args...)
		out := r.stderr
		if tc.code == ExitOK {
			out = r.stdout
		}
		if r.code != tc.code || !strings.Contains(out, tc.want) {
			t.Errorf("oncelog %s: want exit %d and %q, got %v", strings.Join(tc.args, " "), tc.code, tc.want, r)
		}
	}
}

func TestTemplate(t *testing.T) {
	p, err := parseFormat(`%k=%v %%|%h\t\\\n`)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	w := bufioWriter(&b)
	p(w, &kgo.Record{Key: []byte("k"), Value: []byte("v"), Headers: []kgo.RecordHeader{{Key: "a", Value: []byte("1")}, {Key: "b"}}})
	w.Flush()
	if got, want := b.String(), "k=v %|a=1,b=\t\\\n"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func bufioWriter(b *bytes.Buffer) *bufio.Writer { return bufio.NewWriter(b) }

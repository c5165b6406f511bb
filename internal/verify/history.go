package verify

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"time"
)

// Type is an operation's outcome, as in Jepsen: invoke when it starts, then
// exactly one of ok, fail or info when it ends (or nothing, if the process
// died in between).
type Type string

const (
	Invoke Type = "invoke"
	OK     Type = "ok"   // it happened, with the result given
	Fail   Type = "fail" // it definitely did not happen
	Info   Type = "info" // unknown: it may or may not have happened
)

// Func is what an operation does.
type Func string

const (
	// Send produces one record: invoke carries Key, Value and Txn; ok adds
	// Partition and Offset.
	Send Func = "send"
	// Poll is one record a consumer returned: only ok lines, one per
	// record, in the order the consumer returned them.
	Poll Func = "poll"
	// Assign marks that a consumer's positions were set anew (assign,
	// subscribe, a rebalance, a seek after an abort): the next poll of that
	// process may start anywhere, so order and skips are checked per
	// stretch between two assigns. Partition -1 means all partitions.
	Assign Func = "assign"
	// Begin starts transaction Txn (ok only). Txn ids are unique in the
	// history.
	Begin Func = "begin"
	// Commit and Abort end transaction Txn: invoke before the EndTxn is
	// sent, then ok, fail or info.
	Commit Func = "commit"
	Abort  Func = "abort"
)

// Op is one line of a history. Values are unique in a history: a value
// names the one send that wrote it. Zero values (Txn 0, Value 0) mean "none".
type Op struct {
	Process   int    `json:"process"`
	Type      Type   `json:"type"`
	F         Func   `json:"op"`
	Txn       int64  `json:"txn,omitempty"`
	Key       string `json:"key,omitempty"`
	Value     int64  `json:"value,omitempty"`
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
	Time      int64  `json:"time"` // nanoseconds since the history began
	Error     string `json:"error,omitempty"`
}

func (o Op) String() string {
	s := fmt.Sprintf("p%d %s %s", o.Process, o.Type, o.F)
	if o.Txn != 0 {
		s += fmt.Sprintf(" txn=%d", o.Txn)
	}
	if o.Value != 0 {
		s += fmt.Sprintf(" key=%s value=%d", o.Key, o.Value)
	}
	if o.F == Send && o.Type == OK || o.F == Poll {
		s += fmt.Sprintf(" at %d/%d", o.Partition, o.Offset)
	}
	s += fmt.Sprintf(" t=%s", time.Duration(o.Time).Round(time.Millisecond))
	if o.Error != "" {
		s += " err=" + o.Error
	}
	return s
}

// Recorder collects a history from many goroutines, in memory and, if
// given a writer, as JSON lines as it goes.
type Recorder struct {
	start time.Time

	// mu protects everything below.
	mu  sync.Mutex
	ops []Op
	w   *bufio.Writer
	err error
}

// NewRecorder starts a history now; w may be nil.
func NewRecorder(w io.Writer) *Recorder {
	r := &Recorder{start: time.Now()}
	if w != nil {
		r.w = bufio.NewWriter(w)
	}
	return r
}

// Since is the history's clock.
func (r *Recorder) Since() int64 { return int64(time.Since(r.start)) }

// Add stamps op with the time and appends it.
func (r *Recorder) Add(op Op) {
	r.mu.Lock()
	defer r.mu.Unlock()
	op.Time = r.Since()
	r.appendLocked(op)
}

// AddAll appends ops with one time stamp, in order (the records of one
// poll).
func (r *Recorder) AddAll(ops []Op) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.Since()
	for _, op := range ops {
		op.Time = now
		r.appendLocked(op)
	}
}

func (r *Recorder) appendLocked(op Op) {
	r.ops = append(r.ops, op)
	if r.w != nil && r.err == nil {
		b, _ := json.Marshal(op)
		b = append(b, '\n')
		_, r.err = r.w.Write(b)
	}
}

// Ops returns a copy of the history so far.
func (r *Recorder) Ops() []Op {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Op(nil), r.ops...)
}

// Len is the number of operations so far.
func (r *Recorder) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.ops)
}

// Flush writes what is buffered and returns the first write error.
func (r *Recorder) Flush() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.w != nil && r.err == nil {
		r.err = r.w.Flush()
	}
	return r.err
}

// ReadHistory parses JSON lines written by a Recorder.
func ReadHistory(rd io.Reader) ([]Op, error) {
	var ops []Op
	sc := bufio.NewScanner(rd)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		if len(sc.Bytes()) == 0 {
			continue
		}
		var op Op
		if err := json.Unmarshal(sc.Bytes(), &op); err != nil {
			return nil, fmt.Errorf("history line %d: %w", n, err)
		}
		ops = append(ops, op)
	}
	return ops, sc.Err()
}

package verify

import (
	"fmt"
	"slices"
	"sort"
	"strings"
)

// Check names, as they appear in reports. docs/VERIFY.md says what each
// means, what it proves and what it does not.
const (
	CheckLostWrite           = "lost-write"
	CheckUnseen              = "unseen"
	CheckDuplicate           = "duplicate"
	CheckInconsistentOffsets = "inconsistent-offsets"
	CheckAbortedRead         = "aborted-read"
	CheckOpenTxnRead         = "open-txn-read"
	CheckTornTxn             = "torn-txn"
	CheckPollSkip            = "poll-skip"
	CheckNonmonotonicSend    = "nonmonotonic-send"
	CheckNonmonotonicPoll    = "nonmonotonic-poll"
	CheckG0                  = "g0-write-cycle" // information only

	CheckOutputSet     = "output-set"          // copy: output multiset == input multiset
	CheckOrder         = "order-per-partition" // copy: input order kept per partition
	CheckInputDup      = "input-duplicate"     // copy: the idempotent seeding wrote a value twice
	CheckConcurrentSet = "concurrent-set"      // copy: the concurrent consumer saw exactly the input
	CheckConcurrentDup = "concurrent-duplicate"
	CheckConcurrentOrd = "concurrent-order"
)

// maxExamples bounds the examples kept per check.
const maxExamples = 5

// Check is one check's outcome: how many anomalies it found and a few of
// them, worded for a person.
type Check struct {
	Name     string   `json:"name"`
	Count    int      `json:"count"`
	Examples []string `json:"examples,omitempty"`
	// Information marks a check whose findings are not violations (G0:
	// Kafka's model allows write cycles between transactions).
	Information bool `json:"information,omitempty"`
}

func (c *Check) add(format string, args ...any) {
	c.Count++
	if len(c.Examples) < maxExamples {
		c.Examples = append(c.Examples, fmt.Sprintf(format, args...))
	}
}

// Result is every check's outcome over one history or copy run.
type Result struct {
	Checks []Check        `json:"checks"`
	Stats  map[string]int `json:"stats"`
	byName map[string]int // index into Checks, as built by newResult
}

func newResult(names ...string) *Result {
	r := &Result{Stats: map[string]int{}, byName: map[string]int{}}
	for i, n := range names {
		r.Checks = append(r.Checks, Check{Name: n, Information: n == CheckG0})
		r.byName[n] = i
	}
	return r
}

// check returns the named check; it panics on a name newResult was not
// given, a programmer error.
func (r *Result) check(name string) *Check {
	i, ok := r.byName[name]
	if !ok {
		panic("verify: unknown check " + name)
	}
	return &r.Checks[i]
}

// Get returns the named check, or nil.
func (r *Result) Get(name string) *Check {
	for i := range r.Checks {
		if r.Checks[i].Name == name {
			return &r.Checks[i]
		}
	}
	return nil
}

// Violations is the number of anomalies found by the checks that are not
// information only.
func (r *Result) Violations() int {
	n := 0
	for _, c := range r.Checks {
		if !c.Information {
			n += c.Count
		}
	}
	return n
}

// Merge appends other's checks and adds its stats.
func (r *Result) Merge(other *Result) {
	r.Checks = append(r.Checks, other.Checks...)
	for k, v := range other.Stats {
		r.Stats[k] += v
	}
}

// txnState is what the history says about a transaction's fate.
type txnState int

const (
	txnNever     txnState = iota // no commit was sent, or the commit definitely failed
	txnMaybe                     // a commit was sent; its outcome is unknown
	txnCommitted                 // the commit succeeded
)

type txnInfo struct {
	id          int64
	process     int
	commitAt    int64 // time of the commit invoke; -1 if none
	commitType  Type  // outcome of the commit; "" if none
	aborted     bool  // an abort was invoked
	values      []int64
	state       txnState
	sendsOK     []int64 // values whose send was acknowledged
	firstOffset map[int32]int64
}

type pos struct {
	partition int32
	offset    int64
}

func (p pos) String() string { return fmt.Sprintf("%d/%d", p.partition, p.offset) }

// valueInfo is everything the history says about one value.
type valueInfo struct {
	value  int64
	invoke *Op
	result *Op // the send's completion, nil if none
	reads  []Op
}

// valueState is whether a value must, may or must not be visible.
type valueState int

const (
	valueUnknown   valueState = iota // may or may not be in the log
	valueCommitted                   // acknowledged and committed: must be read
	valueForbidden                   // failed or aborted: must never be read
)

// CheckHistory runs every history check over ops. The history must end with a
// catch-up read (a consumer that polled every partition from the start up
// to its end after all writers stopped), or unseen writes are
// indistinguishable from writes nobody looked for.
func CheckHistory(ops []Op) *Result {
	res := newResult(CheckLostWrite, CheckUnseen, CheckDuplicate, CheckInconsistentOffsets,
		CheckAbortedRead, CheckOpenTxnRead, CheckTornTxn, CheckPollSkip,
		CheckNonmonotonicSend, CheckNonmonotonicPoll, CheckG0)

	values := map[int64]*valueInfo{}
	txns := map[int64]*txnInfo{}
	getTxn := func(id int64, proc int) *txnInfo {
		t := txns[id]
		if t == nil {
			t = &txnInfo{id: id, process: proc, commitAt: -1, firstOffset: map[int32]int64{}}
			txns[id] = t
		}
		return t
	}
	getValue := func(v int64) *valueInfo {
		vi := values[v]
		if vi == nil {
			vi = &valueInfo{value: v}
			values[v] = vi
		}
		return vi
	}
	// Open sends per process: the completion of a send names its value.
	for i := range ops {
		op := &ops[i]
		switch op.F {
		case Send:
			vi := getValue(op.Value)
			if op.Type == Invoke {
				vi.invoke = op
				if op.Txn != 0 {
					t := getTxn(op.Txn, op.Process)
					t.values = append(t.values, op.Value)
				}
			} else {
				vi.result = op
			}
			res.Stats["sends."+string(op.Type)]++
		case Poll:
			if op.Type == OK {
				getValue(op.Value).reads = append(getValue(op.Value).reads, *op)
				res.Stats["polled"]++
			}
		case Begin:
			getTxn(op.Txn, op.Process)
		case Commit:
			t := getTxn(op.Txn, op.Process)
			if op.Type == Invoke {
				t.commitAt = op.Time
			} else {
				t.commitType = op.Type
			}
		case Abort:
			getTxn(op.Txn, op.Process).aborted = true
		}
	}
	for _, t := range txns {
		switch {
		case t.commitAt < 0 || t.commitType == Fail:
			t.state = txnNever
		case t.commitType == OK:
			t.state = txnCommitted
		default:
			t.state = txnMaybe
		}
		res.Stats[[...]string{"txns.aborted", "txns.unknown", "txns.committed"}[t.state]]++
	}
	state := func(vi *valueInfo) valueState {
		if vi.invoke == nil {
			return valueUnknown // read but never sent: the duplicate/offset checks speak for it
		}
		if vi.result != nil && vi.result.Type == Fail {
			return valueForbidden
		}
		if vi.invoke.Txn != 0 {
			switch txns[vi.invoke.Txn].state {
			case txnNever:
				return valueForbidden
			case txnMaybe:
				return valueUnknown
			}
		}
		if vi.result != nil && vi.result.Type == OK {
			return valueCommitted
		}
		return valueUnknown
	}

	// Where each value was seen and what each position holds.
	byPos := map[pos]map[int64]bool{}
	maxRead := map[int32]int64{}
	visible := map[int32][]int64{} // offsets known to hold a visible record
	sortedValues := make([]int64, 0, len(values))
	for v := range values {
		sortedValues = append(sortedValues, v)
	}
	slices.Sort(sortedValues)
	note := func(p pos, v int64) {
		if byPos[p] == nil {
			byPos[p] = map[int64]bool{}
		}
		byPos[p][v] = true
	}
	for _, v := range sortedValues {
		vi := values[v]
		at := map[pos]bool{}
		if vi.result != nil && vi.result.Type == OK {
			p := pos{vi.result.Partition, vi.result.Offset}
			at[p] = true
			note(p, v)
			if state(vi) == valueCommitted {
				visible[p.partition] = append(visible[p.partition], p.offset)
			}
		}
		for _, r := range vi.reads {
			p := pos{r.Partition, r.Offset}
			at[p] = true
			note(p, v)
			if state(vi) != valueForbidden {
				visible[p.partition] = append(visible[p.partition], p.offset)
			}
			if m, ok := maxRead[p.partition]; !ok || p.offset > m {
				maxRead[p.partition] = p.offset
			}
		}
		if len(at) > 1 {
			ps := make([]string, 0, len(at))
			for p := range at {
				ps = append(ps, p.String())
			}
			sort.Strings(ps)
			res.check(CheckDuplicate).add("value %d at %s", v, strings.Join(ps, ", "))
		}
	}
	for p := range visible {
		slices.Sort(visible[p])
		visible[p] = slices.Compact(visible[p])
	}
	positions := make([]pos, 0, len(byPos))
	for p := range byPos {
		positions = append(positions, p)
	}
	sort.Slice(positions, func(i, j int) bool {
		a, b := positions[i], positions[j]
		return a.partition < b.partition || a.partition == b.partition && a.offset < b.offset
	})
	for _, p := range positions {
		if vs := byPos[p]; len(vs) > 1 {
			list := make([]int64, 0, len(vs))
			for v := range vs {
				list = append(list, v)
			}
			slices.Sort(list)
			res.check(CheckInconsistentOffsets).add("offset %s holds values %v", p, list)
		}
	}

	// Reads of values that must not be visible, or not yet.
	for _, v := range sortedValues {
		vi := values[v]
		st := state(vi)
		if len(vi.reads) > 0 && st == valueForbidden {
			why := "its send failed"
			if vi.invoke.Txn != 0 {
				t := txns[vi.invoke.Txn]
				why = fmt.Sprintf("transaction %d was never committed", t.id)
				if t.aborted {
					why = fmt.Sprintf("transaction %d was aborted", t.id)
				}
			}
			r := vi.reads[0]
			res.check(CheckAbortedRead).add("value %d read at %s by p%d, but %s", v, pos{r.Partition, r.Offset}, r.Process, why)
			continue
		}
		if vi.invoke != nil && vi.invoke.Txn != 0 {
			t := txns[vi.invoke.Txn]
			for _, r := range vi.reads {
				if t.commitAt >= 0 && r.Time < t.commitAt {
					res.check(CheckOpenTxnRead).add("value %d of transaction %d read by p%d at t=%dms, before its commit was sent at t=%dms",
						v, t.id, r.Process, r.Time/1e6, t.commitAt/1e6)
					break
				}
			}
		}
		if st == valueCommitted && len(vi.reads) == 0 {
			p := pos{vi.result.Partition, vi.result.Offset}
			if m, ok := maxRead[p.partition]; ok && m > p.offset {
				res.check(CheckLostWrite).add("value %d acknowledged at %s, never read, though offset %d/%d was", v, p, p.partition, m)
			} else {
				res.check(CheckUnseen).add("value %d acknowledged at %s, never read", v, p)
			}
		}
	}

	// Transactions committed in part.
	txnIDs := make([]int64, 0, len(txns))
	for id := range txns {
		txnIDs = append(txnIDs, id)
	}
	slices.Sort(txnIDs)
	for _, id := range txnIDs {
		t := txns[id]
		if t.state == txnNever {
			continue
		}
		var seen, missing []int64
		for _, v := range t.values {
			vi := values[v]
			switch {
			case len(vi.reads) > 0:
				seen = append(seen, v)
			case vi.result != nil && vi.result.Type == OK:
				missing = append(missing, v)
			}
		}
		if len(seen) > 0 && len(missing) > 0 {
			res.check(CheckTornTxn).add("transaction %d of p%d: values %v read, acknowledged values %v never read",
				id, t.process, short(seen), short(missing))
		}
	}

	checkProcesses(ops, values, visible, res)
	checkG0(ops, values, txns, res)
	return res
}

// short lists at most 8 values.
func short(vs []int64) string {
	if len(vs) <= 8 {
		return fmt.Sprint(vs)
	}
	return fmt.Sprintf("%v...(%d)", vs[:8], len(vs))
}

// checkProcesses walks each process's operations in order: sends must land
// at increasing offsets per partition, polls must read increasing offsets
// per partition between two assigns and must not jump over a visible
// offset.
func checkProcesses(ops []Op, values map[int64]*valueInfo, visible map[int32][]int64, res *Result) {
	type procState struct {
		lastPoll map[int32]Op
		sends    map[int32]Op // last acknowledged send, in invoke order
	}
	procs := map[int]*procState{}
	get := func(p int) *procState {
		s := procs[p]
		if s == nil {
			s = &procState{lastPoll: map[int32]Op{}, sends: map[int32]Op{}}
			procs[p] = s
		}
		return s
	}
	for _, op := range ops {
		s := get(op.Process)
		switch {
		case op.F == Assign:
			if op.Partition < 0 {
				clear(s.lastPoll)
			} else {
				delete(s.lastPoll, op.Partition)
			}
		case op.F == Send && op.Type == Invoke:
			vi := values[op.Value]
			if vi.result == nil || vi.result.Type != OK {
				continue
			}
			r := *vi.result
			if prev, ok := s.sends[r.Partition]; ok && r.Offset <= prev.Offset {
				res.check(CheckNonmonotonicSend).add("p%d sent value %d before value %d, but they landed at %s and %s",
					op.Process, prev.Value, r.Value, pos{prev.Partition, prev.Offset}, pos{r.Partition, r.Offset})
			}
			s.sends[r.Partition] = r
		case op.F == Poll && op.Type == OK:
			prev, ok := s.lastPoll[op.Partition]
			s.lastPoll[op.Partition] = op
			if !ok {
				continue
			}
			if op.Offset <= prev.Offset {
				res.check(CheckNonmonotonicPoll).add("p%d read %s (value %d) after %s (value %d)",
					op.Process, pos{op.Partition, op.Offset}, op.Value, pos{prev.Partition, prev.Offset}, prev.Value)
				continue
			}
			vis := visible[op.Partition]
			i, _ := slices.BinarySearch(vis, prev.Offset+1)
			if i < len(vis) && vis[i] < op.Offset {
				res.check(CheckPollSkip).add("p%d read %s then %s, skipping visible offset %d/%d",
					op.Process, pos{prev.Partition, prev.Offset}, pos{op.Partition, op.Offset}, op.Partition, vis[i])
			}
		}
	}
}

// checkG0 looks for write cycles between committed transactions: T1 wrote
// before T2 in one partition and T2 before T1 in another. Kafka does not
// isolate writes between transactions, so this is information only.
func checkG0(ops []Op, values map[int64]*valueInfo, txns map[int64]*txnInfo, res *Result) {
	type w struct {
		offset int64
		txn    int64
	}
	byPart := map[int32][]w{}
	for _, vi := range values {
		if vi.invoke == nil || vi.invoke.Txn == 0 || vi.result == nil || vi.result.Type != OK {
			continue
		}
		if txns[vi.invoke.Txn].state != txnCommitted {
			continue
		}
		byPart[vi.result.Partition] = append(byPart[vi.result.Partition], w{vi.result.Offset, vi.invoke.Txn})
	}
	edges := map[int64]map[int64]bool{}
	for _, ws := range byPart {
		sort.Slice(ws, func(i, j int) bool { return ws[i].offset < ws[j].offset })
		for i := 1; i < len(ws); i++ {
			a, b := ws[i-1].txn, ws[i].txn
			if a == b {
				continue
			}
			if edges[a] == nil {
				edges[a] = map[int64]bool{}
			}
			edges[a][b] = true
		}
	}
	for _, scc := range stronglyConnected(edges) {
		if len(scc) > 1 {
			slices.Sort(scc)
			res.check(CheckG0).add("transactions %s wrote in a cycle", short(scc))
		}
	}
}

// stronglyConnected returns the strongly connected components of a graph
// (Tarjan's algorithm, iterative so that long chains do not overflow the
// stack).
func stronglyConnected(edges map[int64]map[int64]bool) [][]int64 {
	nodes := map[int64]bool{}
	for a, bs := range edges {
		nodes[a] = true
		for b := range bs {
			nodes[b] = true
		}
	}
	order := make([]int64, 0, len(nodes))
	for n := range nodes {
		order = append(order, n)
	}
	slices.Sort(order)
	succ := map[int64][]int64{}
	for a, bs := range edges {
		for b := range bs {
			succ[a] = append(succ[a], b)
		}
		slices.Sort(succ[a])
	}
	index := map[int64]int{}
	low := map[int64]int{}
	onStack := map[int64]bool{}
	var stack []int64
	var out [][]int64
	next := 0
	type frame struct {
		n int64
		i int
	}
	for _, root := range order {
		if _, seen := index[root]; seen {
			continue
		}
		call := []frame{{root, 0}}
		index[root], low[root] = next, next
		next++
		stack = append(stack, root)
		onStack[root] = true
		for len(call) > 0 {
			f := &call[len(call)-1]
			if f.i < len(succ[f.n]) {
				m := succ[f.n][f.i]
				f.i++
				if _, seen := index[m]; !seen {
					index[m], low[m] = next, next
					next++
					stack = append(stack, m)
					onStack[m] = true
					call = append(call, frame{m, 0})
				} else if onStack[m] {
					low[f.n] = min(low[f.n], index[m])
				}
				continue
			}
			n := f.n
			call = call[:len(call)-1]
			if len(call) > 0 {
				p := call[len(call)-1].n
				low[p] = min(low[p], low[n])
			}
			if low[n] == index[n] {
				var comp []int64
				for {
					m := stack[len(stack)-1]
					stack = stack[:len(stack)-1]
					onStack[m] = false
					comp = append(comp, m)
					if m == n {
						break
					}
				}
				out = append(out, comp)
			}
		}
	}
	return out
}

// CopyData is what the copy workload observed: values per partition in
// offset order. The copiers write input partition p to output partition p.
type CopyData struct {
	Input  map[int32][]int64 `json:"-"`
	Output map[int32][]int64 `json:"-"` // final read_committed read of the output
	// Concurrent is what the concurrent read_committed consumer saw; nil
	// if there was none.
	Concurrent map[int32][]int64 `json:"-"`
}

// CheckCopy compares the copy workload's output with its input.
func CheckCopy(d CopyData) *Result {
	names := []string{CheckInputDup, CheckOutputSet, CheckDuplicate, CheckOrder}
	if d.Concurrent != nil {
		names = append(names, CheckConcurrentSet, CheckConcurrentDup, CheckConcurrentOrd)
	}
	res := newResult(names...)
	// Where each input value is.
	where := map[int64]pos{}
	for _, p := range sortedParts(d.Input) {
		for i, v := range d.Input[p] {
			if prev, dup := where[v]; dup {
				res.check(CheckInputDup).add("value %d at input %s and %d/%d", v, prev, p, i)
				continue
			}
			where[v] = pos{p, int64(i)}
		}
	}
	res.Stats["input"] = len(where)
	compare := func(out map[int32][]int64, set, dup, order string, what string) {
		count := map[int64]int{}
		n := 0
		for _, p := range sortedParts(out) {
			last := int64(-1)
			for _, v := range out[p] {
				n++
				count[v]++
				if count[v] == 2 {
					res.check(dup).add("%s: value %d more than once", what, v)
				}
				w, ok := where[v]
				if !ok {
					continue // output-set reports it
				}
				if w.partition != p {
					res.check(order).add("%s: value %d from input partition %d in output partition %d", what, v, w.partition, p)
					continue
				}
				if w.offset <= last {
					res.check(order).add("%s: partition %d has value %d (input position %d) after input position %d", what, p, v, w.offset, last)
				}
				last = max(last, w.offset)
			}
		}
		res.Stats[what] = n
		for _, p := range sortedParts(d.Input) {
			for _, v := range d.Input[p] {
				if count[v] == 0 {
					res.check(set).add("%s: value %d (input %s) missing", what, v, where[v])
				}
			}
		}
		var extra []int64
		for v := range count {
			if _, ok := where[v]; !ok {
				extra = append(extra, v)
			}
		}
		slices.Sort(extra)
		for _, v := range extra {
			res.check(set).add("%s: value %d is not in the input", what, v)
		}
	}
	compare(d.Output, CheckOutputSet, CheckDuplicate, CheckOrder, "output")
	if d.Concurrent != nil {
		compare(d.Concurrent, CheckConcurrentSet, CheckConcurrentDup, CheckConcurrentOrd, "concurrent")
	}
	return res
}

func sortedParts(m map[int32][]int64) []int32 {
	ps := make([]int32, 0, len(m))
	for p := range m {
		ps = append(ps, p)
	}
	slices.Sort(ps)
	return ps
}

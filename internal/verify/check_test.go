package verify

import (
	"bytes"
	"slices"
	"strings"
	"testing"
)

// hist builds hand-made histories; each op is one millisecond after the
// previous one.
type hist struct {
	ops []Op
	t   int64
}

func (h *hist) add(op Op) *hist {
	h.t += 1e6
	op.Time = h.t
	h.ops = append(h.ops, op)
	return h
}

// send records an acknowledged send.
func (h *hist) send(proc int, txn, v int64, p int32, off int64) *hist {
	return h.sendOutcome(proc, txn, v, p, off, OK)
}

func (h *hist) sendOutcome(proc int, txn, v int64, p int32, off int64, t Type) *hist {
	h.add(Op{Process: proc, Type: Invoke, F: Send, Txn: txn, Key: "k", Value: v})
	res := Op{Process: proc, Type: t, F: Send, Txn: txn, Key: "k", Value: v, Partition: -1, Offset: -1}
	if t == OK {
		res.Partition, res.Offset = p, off
	}
	return h.add(res)
}

func (h *hist) poll(proc int, p int32, off, v int64) *hist {
	return h.add(Op{Process: proc, Type: OK, F: Poll, Key: "k", Value: v, Partition: p, Offset: off})
}

func (h *hist) assign(proc int) *hist {
	return h.add(Op{Process: proc, Type: OK, F: Assign, Partition: -1})
}

func (h *hist) begin(proc int, txn int64) *hist {
	return h.add(Op{Process: proc, Type: OK, F: Begin, Txn: txn})
}

func (h *hist) end(proc int, f Func, txn int64, t Type) *hist {
	h.add(Op{Process: proc, Type: Invoke, F: f, Txn: txn})
	return h.add(Op{Process: proc, Type: t, F: f, Txn: txn})
}

// clean is a history with no anomaly, and with every kind of operation:
// plain sends, a committed, an aborted and an undecided transaction, a
// failed and an unknown send, and a final reader.
//
//	partition 0: 0=v1 1=v2 2=v3 3=v4(t10)
//	partition 1: 0=v5(t10) 1=v6(t11, aborted) 2=marker 3=v7 4=v9(t12, commit unknown) 5=v10(t13, commit unknown, not read)
func clean() *hist {
	h := &hist{}
	h.send(1, 0, 1, 0, 0).send(1, 0, 2, 0, 1).send(1, 0, 3, 0, 2)
	h.begin(2, 10).send(2, 10, 4, 0, 3).send(2, 10, 5, 1, 0).end(2, Commit, 10, OK)
	h.begin(3, 11).send(3, 11, 6, 1, 1).end(3, Abort, 11, OK)
	h.send(1, 0, 7, 1, 3)
	h.sendOutcome(1, 0, 8, 0, 0, Info) // never written
	h.sendOutcome(1, 0, 11, 0, 0, Fail)
	h.begin(2, 12).send(2, 12, 9, 1, 4).end(2, Commit, 12, Info)
	h.begin(2, 13).send(2, 13, 10, 1, 5).end(2, Commit, 13, Info)
	// A concurrent reader that saw part of the log, then was reassigned
	// and read again from the start.
	h.assign(5).poll(5, 0, 0, 1).poll(5, 0, 1, 2)
	h.assign(5).poll(5, 0, 0, 1)
	// The final reader.
	h.assign(4)
	h.poll(4, 0, 0, 1).poll(4, 0, 1, 2).poll(4, 0, 2, 3).poll(4, 0, 3, 4)
	h.poll(4, 1, 0, 5).poll(4, 1, 3, 7).poll(4, 1, 4, 9)
	return h
}

func without(ops []Op, drop func(Op) bool) []Op {
	return slices.DeleteFunc(slices.Clone(ops), drop)
}

func TestCleanHistoryPasses(t *testing.T) {
	res := CheckHistory(clean().ops)
	if n := res.Violations(); n != 0 {
		t.Fatalf("%d violations in a clean history: %+v", n, res.Checks)
	}
	if res.Stats["txns.committed"] != 1 || res.Stats["txns.aborted"] != 1 || res.Stats["txns.unknown"] != 2 {
		t.Fatalf("stats %v", res.Stats)
	}
}

func TestEachAnomalyFailsItsCheck(t *testing.T) {
	finalRead := func(p int32, off int64) func(Op) bool {
		return func(o Op) bool { return o.Process == 4 && o.F == Poll && o.Partition == p && o.Offset == off }
	}
	cases := []struct {
		check string
		ops   func() []Op
	}{
		{CheckLostWrite, func() []Op { return without(clean().ops, finalRead(0, 2)) }},
		{CheckUnseen, func() []Op {
			// Value 7 at 1/3, and nothing after it, never read.
			return without(without(clean().ops, finalRead(1, 4)), finalRead(1, 3))
		}},
		{CheckUnseen, func() []Op {
			// The write of a committed transaction was never read.
			h := clean()
			h.begin(2, 14).send(2, 14, 12, 2, 0).end(2, Commit, 14, OK)
			return h.ops
		}},
		{CheckDuplicate, func() []Op { return clean().poll(4, 0, 7, 3).ops }},
		{CheckDuplicate, func() []Op {
			// The same value in two partitions.
			return clean().poll(6, 2, 0, 1).ops
		}},
		{CheckInconsistentOffsets, func() []Op { return clean().poll(6, 0, 2, 99).ops }},
		{CheckAbortedRead, func() []Op { return clean().poll(6, 1, 1, 6).ops }},
		{CheckAbortedRead, func() []Op {
			// A transaction that never sent its commit (its process died).
			h := clean()
			h.begin(7, 20).send(7, 20, 30, 2, 0)
			return h.poll(4, 2, 0, 30).ops
		}},
		{CheckAbortedRead, func() []Op { return clean().poll(6, 0, 9, 11).ops }},
		{CheckOpenTxnRead, func() []Op {
			// Value 4 of transaction 10 read before its commit was sent.
			h := clean()
			h.ops = append(h.ops, Op{Process: 6, Type: OK, F: Poll, Key: "k", Value: 4, Partition: 0, Offset: 3, Time: 1})
			return h.ops
		}},
		{CheckTornTxn, func() []Op { return without(clean().ops, finalRead(1, 0)) }},
		{CheckTornTxn, func() []Op {
			// An undecided transaction half read.
			h := clean()
			h.begin(2, 15).send(2, 15, 40, 2, 0).send(2, 15, 41, 2, 1).end(2, Commit, 15, Info)
			return h.poll(4, 2, 1, 41).ops
		}},
		{CheckPollSkip, func() []Op { return clean().assign(6).poll(6, 0, 0, 1).poll(6, 0, 2, 3).ops }},
		{CheckNonmonotonicPoll, func() []Op { return clean().assign(6).poll(6, 0, 2, 3).poll(6, 0, 1, 2).ops }},
		{CheckNonmonotonicPoll, func() []Op {
			// Reading the same offset twice without a reassignment.
			return clean().assign(6).poll(6, 0, 2, 3).poll(6, 0, 2, 3).ops
		}},
		{CheckNonmonotonicSend, func() []Op {
			h := clean()
			h.send(8, 0, 50, 3, 5).send(8, 0, 51, 3, 4)
			return h.poll(4, 3, 4, 51).poll(4, 3, 5, 50).ops
		}},
	}
	for _, c := range cases {
		t.Run(c.check, func(t *testing.T) {
			res := CheckHistory(c.ops())
			got := res.Get(c.check)
			if got == nil || got.Count == 0 {
				t.Fatalf("%s not reported: %+v", c.check, res.Checks)
			}
			if len(got.Examples) == 0 || got.Examples[0] == "" {
				t.Fatalf("%s without an example", c.check)
			}
			if res.Violations() == 0 {
				t.Fatal("no violation counted")
			}
			t.Logf("%s: %s", c.check, got.Examples[0])
		})
	}
}

func TestG0IsInformation(t *testing.T) {
	h := clean()
	// Transactions 30 and 31 each write first in one partition.
	h.begin(2, 30).begin(3, 31)
	h.send(2, 30, 60, 2, 0).send(3, 31, 61, 2, 1)
	h.send(3, 31, 62, 3, 0).send(2, 30, 63, 3, 1)
	h.end(2, Commit, 30, OK).end(3, Commit, 31, OK)
	h.poll(4, 2, 0, 60).poll(4, 2, 1, 61).poll(4, 3, 0, 62).poll(4, 3, 1, 63)
	res := CheckHistory(h.ops)
	if g := res.Get(CheckG0); g.Count != 1 || !g.Information {
		t.Fatalf("G0 %+v", g)
	}
	if n := res.Violations(); n != 0 {
		t.Fatalf("G0 counted as %d violations: %+v", n, res.Checks)
	}
}

func TestHistoryRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	r := NewRecorder(&buf)
	for _, op := range clean().ops {
		r.Add(op)
	}
	if err := r.Flush(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), `"op":"send"`) {
		t.Fatalf("history lines: %.200s", buf.String())
	}
	ops, err := ReadHistory(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if len(ops) != len(clean().ops) {
		t.Fatalf("read %d ops, wrote %d", len(ops), len(clean().ops))
	}
	if n := CheckHistory(ops).Violations(); n != 0 {
		t.Fatalf("%d violations after a round trip", n)
	}
}

func copyInput() map[int32][]int64 {
	return map[int32][]int64{0: {1, 3, 5, 7}, 1: {2, 4, 6, 8}}
}

func TestCheckCopy(t *testing.T) {
	cases := []struct {
		name   string
		out    map[int32][]int64
		conc   map[int32][]int64
		checks []string // which checks must fail; none for a clean run
	}{
		{"clean", copyInput(), copyInput(), nil},
		{"missing", map[int32][]int64{0: {1, 3, 7}, 1: {2, 4, 6, 8}}, copyInput(), []string{CheckOutputSet}},
		{"extra", map[int32][]int64{0: {1, 3, 5, 7, 99}, 1: {2, 4, 6, 8}}, copyInput(), []string{CheckOutputSet}},
		{"duplicate", map[int32][]int64{0: {1, 3, 5, 7}, 1: {2, 4, 6, 8, 8}}, copyInput(), []string{CheckDuplicate, CheckOrder}},
		{"reordered", map[int32][]int64{0: {1, 5, 3, 7}, 1: {2, 4, 6, 8}}, copyInput(), []string{CheckOrder}},
		{"wrong partition", map[int32][]int64{0: {1, 3, 5, 7, 8}, 1: {2, 4, 6}}, copyInput(), []string{CheckOrder}},
		{"concurrent missing", copyInput(), map[int32][]int64{0: {1, 3, 5, 7}, 1: {2, 4}}, []string{CheckConcurrentSet}},
		{"concurrent duplicate", copyInput(), map[int32][]int64{0: {1, 3, 3, 5, 7}, 1: {2, 4, 6, 8}}, []string{CheckConcurrentDup, CheckConcurrentOrd}},
		{"concurrent reordered", copyInput(), map[int32][]int64{0: {3, 1, 5, 7}, 1: {2, 4, 6, 8}}, []string{CheckConcurrentOrd}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res := CheckCopy(CopyData{Input: copyInput(), Output: c.out, Concurrent: c.conc})
			var failed []string
			for _, ch := range res.Checks {
				if ch.Count > 0 {
					failed = append(failed, ch.Name)
					if len(ch.Examples) == 0 {
						t.Errorf("%s without examples", ch.Name)
					}
				}
			}
			slices.Sort(failed)
			want := slices.Clone(c.checks)
			slices.Sort(want)
			if !slices.Equal(failed, want) {
				t.Fatalf("failed checks %v, want %v: %+v", failed, want, res.Checks)
			}
		})
	}
	// The seeding itself wrote a value twice.
	in := copyInput()
	in[1] = append(in[1], 1)
	res := CheckCopy(CopyData{Input: in, Output: in})
	if res.Get(CheckInputDup).Count != 1 {
		t.Fatalf("input duplicate not reported: %+v", res.Checks)
	}
}

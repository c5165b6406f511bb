package fault

import (
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestShutdownDuringLongPoll: a consumer parked in a long-poll Fetch
// (MaxWaitMillis 30s, nothing to read) must not hold up a SIGTERM shutdown.
// Every idle consumer of a quiet topic is in this state all the time.
func TestShutdownDuringLongPoll(t *testing.T) {
	const topic = "quiet"
	bp := newBrokerProc(t, t.TempDir())
	bp.Start()
	createTopic(t, bp.Addr, topic, 1)

	c := dialRaw(t, bp.Addr)
	req := kmsg.NewPtrFetchRequest()
	req.SetVersion(12)
	req.ReplicaID = -1
	req.MaxWaitMillis = 30000
	req.MinBytes = 1
	req.MaxBytes = 1 << 20
	ft := kmsg.NewFetchRequestTopic()
	ft.Topic = topic
	fp := kmsg.NewFetchRequestTopicPartition()
	fp.PartitionMaxBytes = 1 << 20
	ft.Partitions = append(ft.Partitions, fp)
	req.Topics = append(req.Topics, ft)
	c.send(req)
	time.Sleep(300 * time.Millisecond) // parked by now

	start := time.Now()
	bp.Signal(syscall.SIGTERM)
	exited, exitErr := bp.WaitExit(20 * time.Second)
	took := time.Since(start)
	if !exited {
		bp.Kill()
		t.Fatalf("broker still running %v after SIGTERM with a parked long-poll fetch; stderr:\n%s", took.Round(time.Millisecond), bp.Output())
	}
	if exitErr != nil {
		t.Fatalf("broker exited with %v; stderr:\n%s", exitErr, bp.Output())
	}
	t.Logf("stopped %v after SIGTERM", took.Round(time.Millisecond))
	if took > 5*time.Second {
		t.Fatalf("SIGTERM took %v with a parked long-poll fetch, want well under its 30s wait", took.Round(time.Millisecond))
	}
}

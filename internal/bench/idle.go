package bench

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/oncelog/oncelog/internal/recordbatch"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"
)

// idlePIDsScenario is produce-idempotent-1k after n idle producers have
// each written one record (spread over the partitions), so the broker holds
// n producer ids it keeps state for but that never write again: the cost of
// producer state, in throughput and broker memory, as issue 6's scale
// curve asks.
func idlePIDsScenario(n int) func(context.Context, *Env) (Result, error) {
	produce := produceScenario(1024, true)
	return func(ctx context.Context, env *Env) (Result, error) {
		start := time.Now()
		if err := makeIdleProducers(ctx, env, n); err != nil {
			return Result{}, fmt.Errorf("idle producers: %w", err)
		}
		env.Logf("%d idle producer ids made in %v", n, time.Since(start).Round(time.Millisecond))
		return produce(ctx, env)
	}
}

// idleProducerWorkers bounds the idle producers set up concurrently (their
// appends then share fsyncs).
const idleProducerWorkers = 32

// makeIdleProducers gets n producer ids with InitProducerID and writes one
// idempotent record with each, raw requests through one client.
func makeIdleProducers(ctx context.Context, env *Env, n int) error {
	// NB: Produce v13 names topics by id; these raw requests name them,
	// so Produce is capped at v12.
	versions := kversion.Stable()
	versions.SetMaxKeyVersion(0, 12)
	cl, err := kgo.NewClient(kgo.SeedBrokers(env.Addr), kgo.MaxVersions(versions))
	if err != nil {
		return err
	}
	defer cl.Close()
	rec := recordbatch.AppendRecord(nil, recordbatch.Record{Value: []byte("idle")})
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		next     = make(chan int)
	)
	fail := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		mu.Unlock()
	}
	for w := 0; w < min(idleProducerWorkers, n); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := oneIdleProducer(ctx, cl, env, int32(i%env.Partitions), rec); err != nil {
					fail(err)
				}
			}
		}()
	}
	for i := 0; i < n && ctx.Err() == nil; i++ {
		mu.Lock()
		failed := firstErr != nil
		mu.Unlock()
		if failed {
			break
		}
		next <- i
	}
	close(next)
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	return ctx.Err()
}

func oneIdleProducer(ctx context.Context, cl *kgo.Client, env *Env, partition int32, rec []byte) error {
	init := kmsg.NewPtrInitProducerIDRequest()
	init.TransactionTimeoutMillis = -1
	ir, err := init.RequestWith(ctx, cl)
	if err != nil {
		return err
	}
	if err := kerr.ErrorForCode(ir.ErrorCode); err != nil {
		return fmt.Errorf("init producer id: %w", err)
	}
	now := time.Now().UnixMilli()
	batch := recordbatch.Build(recordbatch.Header{
		ProducerID: ir.ProducerID, ProducerEpoch: ir.ProducerEpoch, BaseSequence: 0,
		BaseTimestamp: now, MaxTimestamp: now,
	}, [][]byte{rec})
	req := kmsg.NewPtrProduceRequest()
	req.Acks, req.TimeoutMillis = -1, 30_000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = env.Topics[0]
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Partition, rp.Records = partition, batch
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	pr, err := req.RequestWith(ctx, cl)
	if err != nil {
		return err
	}
	for _, t := range pr.Topics {
		for _, p := range t.Partitions {
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				return fmt.Errorf("produce as producer %d: %w", ir.ProducerID, err)
			}
		}
	}
	return nil
}

// Command kfakeserver runs franz-go's in-memory fake Kafka cluster (kfake)
// with a single broker on a fixed address, so that the benchmark driver in
// bench/run can measure it as a separate process exactly as it measures
// oncelog: same client, same scenarios, its own CPU time.
//
// It prints "listening on ADDR" to stderr once the listener is bound and runs
// until SIGTERM or SIGINT.
//
// Usage:
//
//	kfakeserver --listen 127.0.0.1:9093 [--topics a,b --partitions 6] [--auto-create]
//
// NB: kfake keeps everything in memory unless --data-dir is given; it never
// fsyncs unless --sync-writes is also given. Both matter when reading its
// numbers next to a broker that fsyncs every acks=all produce.
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/twmb/franz-go/pkg/kfake"
)

func main() {
	var (
		listen     = flag.String("listen", "127.0.0.1:9093", "host:port to listen on")
		autoCreate = flag.Bool("auto-create", true, "allow auto topic creation from metadata requests")
		partitions = flag.Int("partitions", 6, "partitions for auto-created and seeded topics")
		topics     = flag.String("topics", "", "comma-separated topics to create at start")
		dataDir    = flag.String("data-dir", "", "persist to this directory (default: in memory)")
		syncWrites = flag.Bool("sync-writes", false, "fsync every batch (only with --data-dir)")
	)
	flag.Parse()

	if err := run(*listen, *autoCreate, *partitions, *topics, *dataDir, *syncWrites); err != nil {
		fmt.Fprintf(os.Stderr, "kfakeserver: %v\n", err)
		os.Exit(1)
	}
}

func run(listen string, autoCreate bool, partitions int, topics, dataDir string, syncWrites bool) error {
	if _, _, err := net.SplitHostPort(listen); err != nil {
		return fmt.Errorf("--listen %q: %w", listen, err)
	}
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.DefaultNumPartitions(partitions),
		// kfake binds 127.0.0.1:PORT itself; we bind exactly the
		// address asked for, host included, and hand it the listener.
		kfake.ListenFn(func(network, _ string) (net.Listener, error) {
			return net.Listen(network, listen)
		}),
	}
	if autoCreate {
		opts = append(opts, kfake.AllowAutoTopicCreation())
	}
	if topics != "" {
		opts = append(opts, kfake.SeedTopics(int32(partitions), strings.Split(topics, ",")...))
	}
	if dataDir != "" {
		opts = append(opts, kfake.DataDir(dataDir))
		if syncWrites {
			opts = append(opts, kfake.SyncWrites())
		}
	}

	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return err
	}
	defer c.Close()

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	fmt.Fprintf(os.Stderr, "listening on %s\n", c.ListenAddrs()[0])
	<-sigs
	return nil
}

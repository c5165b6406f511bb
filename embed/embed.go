// Package embed runs an oncelog broker inside the calling process: for tests
// of applications that talk Kafka, and for oncelog's own tests. It is the
// same broker that `oncelog serve` runs.
package embed

import (
	"errors"
	"fmt"
	"log/slog"
	"net"

	"github.com/oncelog/oncelog/internal/broker"
	"github.com/oncelog/oncelog/internal/config"
	"github.com/oncelog/oncelog/internal/group"
	"github.com/oncelog/oncelog/internal/server"
	"github.com/oncelog/oncelog/internal/txn"
)

// Options configure a broker. The zero value listens on a free loopback
// port and needs DataDir.
type Options struct {
	// DataDir holds the broker's files; required.
	DataDir string
	// Listen is the address to listen on; 127.0.0.1:0 when empty.
	Listen string
	// Settings are broker settings under Kafka's names
	// (log.segment.bytes, num.partitions, auto.create.topics.enable, ...).
	Settings map[string]string
	// Logger receives the broker's logs; discarded when nil.
	Logger *slog.Logger
}

// Broker is a running broker.
type Broker struct {
	b      *broker.Broker
	srv    *server.Server
	groups *group.Coordinator
	txns   *txn.Coordinator
	done   chan error
}

// Start opens the data directory, recovers it and starts serving.
func Start(opts Options) (*Broker, error) {
	if opts.DataDir == "" {
		return nil, errors.New("embed: DataDir is required")
	}
	cfg := config.Default()
	cfg.DataDir = opts.DataDir
	cfg.Listen = "127.0.0.1:0"
	if opts.Listen != "" {
		cfg.Listen = opts.Listen
	}
	for k, v := range opts.Settings {
		if err := cfg.Set(k, v); err != nil {
			return nil, fmt.Errorf("embed: %w", err)
		}
	}
	lg := opts.Logger
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	return start(cfg, lg)
}

// StartConfig starts a broker from a full configuration (used by `oncelog
// serve`).
func StartConfig(cfg config.Broker, lg *slog.Logger) (*Broker, error) { return start(cfg, lg) }

func start(cfg config.Broker, lg *slog.Logger) (*Broker, error) {
	b, err := broker.Open(broker.Options{Config: cfg, Logger: lg})
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	groups, err := group.New(group.Options{
		Broker: b,
		Logger: lg,
		Settings: group.Settings{
			MinSessionTimeout:     cfg.GroupMinSessionTimeout,
			MaxSessionTimeout:     cfg.GroupMaxSessionTimeout,
			InitialRebalanceDelay: cfg.GroupInitialRebalanceDelay,
			MaxSize:               cfg.GroupMaxSize,
			OffsetsRetention:      cfg.OffsetsRetention,
			MaxMetadataBytes:      cfg.OffsetMetadataMaxBytes,
		},
		ConsumerSettings: group.ConsumerSettings{
			SessionTimeout:    cfg.ConsumerGroupSessionTimeout,
			HeartbeatInterval: cfg.ConsumerGroupHeartbeatInterval,
			MaxSize:           cfg.ConsumerGroupMaxSize,
		},
		Partitions: cfg.OffsetsTopicPartitions,
	})
	if err != nil {
		ln.Close()
		b.Close()
		return nil, err
	}
	txns, err := txn.New(txn.Options{
		Broker: b,
		Groups: groups,
		Logger: lg,
		Settings: txn.Settings{
			MaxTimeout:   cfg.TransactionMaxTimeout,
			IDExpiration: cfg.TransactionalIDExpiration,
			Partitions:   cfg.TransactionStatePartitions,
		},
	})
	if err != nil {
		groups.Close()
		ln.Close()
		b.Close()
		return nil, err
	}
	srv, err := server.New(b, ln, lg)
	if err != nil {
		txns.Close()
		groups.Close()
		ln.Close()
		b.Close()
		return nil, err
	}
	srv.Groups = groups
	srv.Txns = txns
	e := &Broker{b: b, srv: srv, groups: groups, txns: txns, done: make(chan error, 1)}
	go func() { e.done <- srv.Serve() }()
	return e, nil
}

// Addr is the host:port clients connect to.
func (e *Broker) Addr() string { return e.srv.Addr().String() }

// Close stops serving, then closes every partition cleanly (fsync, producer
// state snapshots).
func (e *Broker) Close() error {
	err := e.srv.Close()
	<-e.done
	e.txns.Close()
	e.groups.Close()
	return errors.Join(err, e.b.Close())
}

// Package embed runs an oncelog broker inside the calling process: for tests
// of applications that talk Kafka, and for oncelog's own tests. It is the
// same broker that `oncelog serve` runs.
package embed

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/oncelog/oncelog/internal/broker"
	"github.com/oncelog/oncelog/internal/config"
	"github.com/oncelog/oncelog/internal/group"
	"github.com/oncelog/oncelog/internal/metrics"
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
	// MetricsListen, if set, serves Prometheus metrics at
	// http://MetricsListen/metrics (the metrics.listen setting does the
	// same); "127.0.0.1:0" picks a free port, see MetricsAddr.
	MetricsListen string
}

// Broker is a running broker.
type Broker struct {
	b      *broker.Broker
	srv    *server.Server
	groups *group.Coordinator
	txns   *txn.Coordinator
	done   chan error
	// metricsHTTP serves /metrics; nil when metrics are off.
	metricsHTTP *http.Server
	metricsLn   net.Listener
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
	if opts.MetricsListen != "" {
		cfg.MetricsListen = opts.MetricsListen
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

func start(cfg config.Broker, lg *slog.Logger) (_ *Broker, err error) {
	var (
		m      *metrics.Metrics
		mln    net.Listener
		onSync func(time.Duration)
	)
	if cfg.MetricsListen != "" {
		// Listen first: a taken port fails the start before any recovery.
		if mln, err = net.Listen("tcp", cfg.MetricsListen); err != nil {
			return nil, fmt.Errorf("metrics: listen on %s (metrics.listen): %w", cfg.MetricsListen, err)
		}
		m = metrics.New()
		onSync = m.ObserveSync
		defer func() {
			if err != nil {
				mln.Close()
			}
		}()
	}
	b, err := broker.Open(broker.Options{Config: cfg, Logger: lg, OnSync: onSync})
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
	srv.Metrics = m
	e := &Broker{b: b, srv: srv, groups: groups, txns: txns, done: make(chan error, 1)}
	if m != nil {
		m.AddState(&metrics.State{Broker: b, Groups: groups, Txns: txns, Now: time.Now})
		mux := http.NewServeMux()
		mux.Handle("/metrics", m.Handler())
		e.metricsLn = mln
		e.metricsHTTP = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = e.metricsHTTP.Serve(mln) }()
		lg.Info("metrics on http://" + mln.Addr().String() + "/metrics")
	}
	go func() { e.done <- srv.Serve() }()
	return e, nil
}

// MetricsAddr is the host:port of the metrics endpoint, "" when metrics are
// off.
func (e *Broker) MetricsAddr() string {
	if e.metricsLn == nil {
		return ""
	}
	return e.metricsLn.Addr().String()
}

// Addr is the host:port clients connect to.
func (e *Broker) Addr() string { return e.srv.Addr().String() }

// Close stops serving, then closes every partition cleanly (fsync, producer
// state snapshots).
func (e *Broker) Close() error {
	if e.metricsHTTP != nil {
		e.metricsHTTP.Close()
	}
	err := e.srv.Close()
	<-e.done
	e.txns.Close()
	e.groups.Close()
	return errors.Join(err, e.b.Close())
}

package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/oncelog/oncelog/embed"
	"github.com/oncelog/oncelog/internal/config"
)

func serve(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := config.Default()
	listen := fs.String("listen", "", "address to listen on (default "+cfg.Listen+")")
	dataDir := fs.String("data-dir", "", "directory for the broker's data (default "+cfg.DataDir+")")
	advertise := fs.String("advertise", "", "address advertised to clients (default: the listen address)")
	configFile := fs.String("config", "", "broker settings file (Kafka names: log.segment.bytes=..., one per line)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	metricsListen := fs.String("metrics-listen", "", "serve Prometheus metrics at http://ADDR/metrics (metrics.listen; default off)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "oncelog serve: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if *configFile != "" {
		f, err := os.Open(*configFile)
		if err != nil {
			fmt.Fprintf(stderr, "oncelog serve: %v\n", err)
			return 2
		}
		err = cfg.Load(f)
		f.Close()
		if err != nil {
			fmt.Fprintf(stderr, "oncelog serve: %s: %v\n", *configFile, err)
			return 2
		}
	}
	// Flags win over the file.
	if *listen != "" {
		cfg.Listen = *listen
	}
	if *dataDir != "" {
		cfg.DataDir = *dataDir
	}
	if *advertise != "" {
		cfg.Advertise = *advertise
	}
	if *metricsListen != "" {
		cfg.MetricsListen = *metricsListen
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(stderr, "oncelog serve: --log-level: %v\n", err)
		return 2
	}
	lg := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	startDebug(lg)
	started := time.Now()
	b, err := embed.StartConfig(cfg, lg)
	if err != nil {
		fmt.Fprintf(stderr, "oncelog serve: %v\n", err)
		return 1
	}
	lg.Info("listening on "+b.Addr(), "data_dir", cfg.DataDir, "startup", time.Since(started).Round(time.Millisecond).String())
	<-ctx.Done()
	lg.Info("shutting down")
	if err := b.Close(); err != nil {
		lg.Error("shutdown", "err", err)
		return 1
	}
	lg.Info("stopped cleanly")
	return 0
}

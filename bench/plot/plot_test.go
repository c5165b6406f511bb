package main

import (
	"bytes"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"testing"
)

// TestFigures renders every figure from the small reports in testdata
// (trimmed copies of real ones, and a made-up partitions-mode report) and
// checks that each is a PNG of the expected size with something drawn on
// it.
func TestFigures(t *testing.T) {
	td := func(name string) string { return filepath.Join("testdata", name) }
	out := t.TempDir()
	for _, tc := range []struct {
		name       string
		in         []string
		cols, rows int
		draw       func(in []string, path string) error
	}{
		{"throughput.png", []string{td("run.json"), td("run.json")}, 2, 1, func(in []string, path string) error {
			reps, err := readReports(in)
			if err != nil {
				return err
			}
			return Throughput(reps, []string{"a", "b"}, path)
		}},
		{"latency.png", []string{td("run.json")}, 1, 1, func(in []string, path string) error {
			reps, err := readReports(in)
			if err != nil {
				return err
			}
			return Latency(reps, path)
		}},
		{"partitions.png", []string{td("partitions-1.json"), td("partitions-100.json")}, 2, 1, func(in []string, path string) error {
			reps, err := readReports(in)
			if err != nil {
				return err
			}
			return Partitions(reps, reps[:1], path)
		}},
		{"idle-pids.png", []string{td("idle-pids.json")}, 2, 1, func(in []string, path string) error {
			reps, err := readReports(in)
			if err != nil {
				return err
			}
			return IdlePIDs(reps, path)
		}},
		{"startup.png", []string{td("startup-log.json")}, 2, 1, func(in []string, path string) error {
			reps, err := readStartupReports(in)
			if err != nil {
				return err
			}
			return StartupLog(reps, path)
		}},
		{"startup-partitions.png", []string{td("startup-partitions.json")}, 2, 1, func(in []string, path string) error {
			reps, err := readStartupReports(in)
			if err != nil {
				return err
			}
			return StartupPartitions(reps, path)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(out, tc.name)
			if err := tc.draw(tc.in, path); err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			img, err := png.Decode(bytes.NewReader(b))
			if err != nil {
				t.Fatalf("not a PNG: %v", err)
			}
			// vgimg draws at 96 dpi: a point is 4/3 pixels.
			wantW, wantH := panelW*tc.cols*4/3, panelH*tc.rows*4/3
			if r := img.Bounds(); r.Dx() != wantW || r.Dy() != wantH {
				t.Errorf("size %dx%d, want %dx%d", r.Dx(), r.Dy(), wantW, wantH)
			}
			if n := colourful(img); n < 100 {
				t.Errorf("only %d coloured pixels: nothing drawn?", n)
			}
		})
	}
}

// colourful counts the pixels that are neither white, grey nor black: the
// series' colours.
func colourful(img image.Image) int {
	var n int
	r := img.Bounds()
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			cr, cg, cb, _ := img.At(x, y).RGBA()
			if cr != cg || cg != cb {
				n++
			}
		}
	}
	return n
}

// TestNoInput: a figure without reports fails instead of writing an empty
// PNG.
func TestNoInput(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.png")
	if err := IdlePIDs(nil, path); err == nil {
		t.Error("IdlePIDs without reports: no error")
	}
	if err := StartupLog(nil, path); err == nil {
		t.Error("StartupLog without reports: no error")
	}
	if err := Throughput(nil, nil, path); err == nil {
		t.Error("Throughput without reports: no error")
	}
	if _, err := os.Stat(path); err == nil {
		t.Error("a PNG was written")
	}
}

func TestHuman(t *testing.T) {
	for v, want := range map[float64]string{1_500_000: "1.5M", 300_000: "300k", 12: "12", 0.5: "0.5", 10_000: "10k"} {
		if got := human(v); got != want {
			t.Errorf("human(%v) = %q, want %q", v, got, want)
		}
	}
}

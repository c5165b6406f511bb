// Package golden runs golden-file tests of the coordinators' state machines
// (STYLE.md habit 14). A golden file is a script: blocks of one command, a
// "----" line and the output the command must produce, separated by blank
// lines; lines starting with '#' before a command are comments, kept when
// the file is rewritten. The test's harness owns delivery and time and
// turns each command into its output; this package parses the files,
// compares, and with -rewrite writes the current outputs back (read the
// diff before committing).
package golden

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Rewrite is the -rewrite flag of every test binary that imports golden.
var Rewrite = flag.Bool("rewrite", false, "rewrite the expected output of the golden files in testdata/")

// Block is one command of a golden file and its expected output. A block
// with no command holds the comments at the end of the file.
type Block struct {
	Comments []string
	Cmd      string
	Line     int // of Cmd, 1-based
	Want     string
}

// Files lists testdata/*.txt, failing t if there is none.
func Files(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("testdata/*.txt")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no golden files in testdata/")
	}
	return files
}

// Parse reads the blocks of the golden file at path.
func Parse(t *testing.T, path string) []Block {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []Block
	var cur Block
	var outLines []string
	const (
		wantCmd = iota
		wantSep
		inOutput
	)
	stage := wantCmd
	finish := func() {
		cur.Want = strings.Join(outLines, "\n")
		out = append(out, cur)
		cur, outLines, stage = Block{}, nil, wantCmd
	}
	sc := bufio.NewScanner(strings.NewReader(string(data)))
	for n := 1; sc.Scan(); n++ {
		l := sc.Text()
		switch stage {
		case wantCmd:
			switch {
			case strings.TrimSpace(l) == "":
			case strings.HasPrefix(l, "#"):
				cur.Comments = append(cur.Comments, l)
			default:
				cur.Cmd, cur.Line, stage = strings.TrimSpace(l), n, wantSep
			}
		case wantSep:
			if l != "----" {
				t.Fatalf("%s:%d: want ---- after the command, got %q", path, n, l)
			}
			stage = inOutput
		case inOutput:
			if strings.TrimSpace(l) == "" {
				finish()
				continue
			}
			outLines = append(outLines, l)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	switch stage {
	case wantSep:
		t.Fatalf("%s:%d: command without ----", path, cur.Line)
	case inOutput:
		finish()
	}
	if len(cur.Comments) > 0 {
		out = append(out, Block{Comments: cur.Comments})
	}
	return out
}

// Run runs every command of the golden file at path through run, in order,
// and fails t where an output differs from the file's; with -rewrite it
// writes the outputs back instead.
func Run(t *testing.T, path string, run func(path string, line int, cmd string) string) {
	t.Helper()
	blocks := Parse(t, path)
	var b strings.Builder
	failed := false
	for i, bl := range blocks {
		if i > 0 {
			b.WriteString("\n")
		}
		for _, c := range bl.Comments {
			b.WriteString(c + "\n")
		}
		if bl.Cmd == "" {
			continue
		}
		got := run(path, bl.Line, bl.Cmd)
		fmt.Fprintf(&b, "%s\n----\n%s\n", bl.Cmd, got)
		if !*Rewrite && got != bl.Want {
			failed = true
			t.Errorf("%s:%d: %s\n got:\n%s\nwant:\n%s", path, bl.Line, bl.Cmd, indent(got), indent(bl.Want))
		}
	}
	if *Rewrite {
		if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	} else if failed {
		t.Logf("run with -rewrite to accept the new output, then read the diff")
	}
}

func indent(s string) string { return "    " + strings.ReplaceAll(s, "\n", "\n    ") }

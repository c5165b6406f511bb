package main

import (
	"errors"
	"fmt"
	"image/color"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/oncelog/oncelog/internal/bench"
)

// Figure sizes, in points at vgimg's 96 dpi.
const (
	panelW = 270
	panelH = 210
)

// targetColor keeps each target's colour the same in every figure.
func targetColor(name string) color.Color {
	switch name {
	case "oncelog":
		return plotutil.Color(0)
	case "kfake":
		return plotutil.Color(1)
	}
	return plotutil.Color(2)
}

// point is one median with its min–max range.
type point struct {
	X, Y, Lo, Hi float64
}

func fromSummary(x float64, s bench.Summary) point {
	return point{X: x, Y: s.Median, Lo: s.Min, Hi: s.Max}
}

// points is a series drawn with error bars; it implements plotter.XYer and
// plotter.YErrorer.
type points []point

func (ps points) Len() int                        { return len(ps) }
func (ps points) XY(i int) (float64, float64)     { return ps[i].X, ps[i].Y }
func (ps points) YError(i int) (float64, float64) { return ps[i].Y - ps[i].Lo, ps[i].Hi - ps[i].Y }

// series is one named curve.
type series struct {
	name  string
	color color.Color
	dash  []vg.Length
	pts   points
}

// curves draws each series as a line through its medians with min–max
// error bars, on log axes where asked.
func curves(p *plot.Plot, ss []series, logX, logY bool) error {
	for i, s := range ss {
		s.pts = slices.DeleteFunc(slices.Clone(s.pts), func(pt point) bool {
			return math.IsNaN(pt.Y) || (logY && pt.Lo <= 0)
		})
		if len(s.pts) == 0 {
			continue
		}
		line, dots, err := plotter.NewLinePoints(s.pts)
		if err != nil {
			return err
		}
		c := s.color
		if c == nil {
			c = plotutil.Color(i)
		}
		line.Color, dots.Color = c, c
		line.Dashes = s.dash
		dots.Shape = draw.CircleGlyph{}
		eb, err := plotter.NewYErrorBars(s.pts)
		if err != nil {
			return err
		}
		eb.Color = c
		p.Add(line, dots, eb)
		p.Legend.Add(s.name, line, dots)
	}
	if logX {
		p.X.Scale, p.X.Tick.Marker = plot.LogScale{}, humanLogTicks{}
		// A little room either side, so that the end points get their
		// decade's label and are not drawn on the axis.
		lo, hi := math.Inf(1), math.Inf(-1)
		for _, s := range ss {
			for _, pt := range s.pts {
				lo, hi = min(lo, pt.X), max(hi, pt.X)
			}
		}
		if lo > 0 && !math.IsInf(hi, 0) {
			p.X.Min, p.X.Max = lo/1.3, hi*1.3
		}
	}
	if logY {
		p.Y.Scale, p.Y.Tick.Marker = plot.LogScale{}, humanLogTicks{}
	} else {
		p.Y.Tick.Marker = humanTicks{}
	}
	headroom(p, ss, logY, len(ss))
	p.Legend.Top = true
	p.Legend.Left = true
	return nil
}

// headroom sets the y range from the data with room above it for a legend
// of entries lines, so the legend never covers a point.
func headroom(p *plot.Plot, ss []series, logY bool, entries int) {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, s := range ss {
		for _, pt := range s.pts {
			if math.IsNaN(pt.Y) {
				continue
			}
			lo, hi = min(lo, pt.Lo, pt.Y), max(hi, pt.Hi, pt.Y)
		}
	}
	if math.IsInf(hi, 0) {
		return
	}
	// The legend takes about 11 % of the panel per entry.
	room := 1 + 0.13*float64(entries+1)
	if !logY {
		p.Y.Min, p.Y.Max = 0, hi*room
		return
	}
	if lo <= 0 {
		lo = hi / 100
	}
	decades := math.Log10(hi/lo) + 0.3
	p.Y.Min = lo / math.Pow(10, 0.1)
	p.Y.Max = hi * math.Pow(10, decades*(room-1))
}

// save lays the panels out in a grid (rows of plots; nil leaves a hole)
// and writes them as one PNG.
func save(path string, grid [][]*plot.Plot) error {
	rows, cols := len(grid), 0
	for _, r := range grid {
		cols = max(cols, len(r))
	}
	if rows == 0 || cols == 0 {
		return errors.New("nothing to draw")
	}
	for i := range grid {
		for len(grid[i]) < cols {
			grid[i] = append(grid[i], nil)
		}
	}
	img := vgimg.New(vg.Points(panelW*float64(cols)), vg.Points(panelH*float64(rows)))
	dc := draw.New(img)
	dc.SetColor(color.White)
	dc.Fill(dc.Rectangle.Path())
	tiles := draw.Tiles{Rows: rows, Cols: cols, PadX: vg.Points(12), PadY: vg.Points(12),
		PadTop: vg.Points(6), PadBottom: vg.Points(6), PadLeft: vg.Points(6), PadRight: vg.Points(10)}
	canvases := plot.Align(grid, tiles, dc)
	for j := range grid {
		for i, p := range grid[j] {
			if p != nil {
				p.Draw(canvases[j][i])
			}
		}
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func newPlot(title, x, y string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = x
	p.Y.Label.Text = y
	p.Title.TextStyle.Font.Size = vg.Points(11)
	p.Legend.TextStyle.Font.Size = vg.Points(9)
	return p
}

// Throughput draws one panel per scenario (of every report, in order; a
// scenario seen twice is labelled with its report's name, names[i] for
// reps[i], or its number) with each
// target's median and min–max of the scenario's metric. Latency scenarios
// are left to Latency.
func Throughput(reps []bench.Report, names []string, path string) error {
	var panels []*plot.Plot
	seen := map[string]bool{}
	for ri, rep := range reps {
		for _, ss := range rep.Summaries {
			if ss.Metric == "p99" {
				continue
			}
			title := ss.Scenario
			if seen[title] {
				name := fmt.Sprintf("report %d", ri+1)
				if ri < len(names) {
					name = names[ri]
				}
				title = fmt.Sprintf("%s (%s)", title, name)
			}
			seen[ss.Scenario] = true
			if rep.Settings.Reps == 1 {
				title += ", n=1"
			}
			var ssr []series
			labels := rep.Settings.Targets
			// One bar per target, each its own series so that each has
			// its colour.
			for ti, t := range rep.Settings.Targets {
				ts := ss.Targets[t]
				s := ts.RecordsPerSec
				if ss.Metric == "commits/s" {
					s = ts.CommitsPerSec
				}
				pts := make(points, len(labels))
				for i := range pts {
					pts[i] = point{Y: math.NaN()}
				}
				if ts.OK > 0 {
					pts[ti] = fromSummary(0, s)
				}
				ssr = append(ssr, series{name: t, color: targetColor(t), pts: pts})
			}
			p := newPlot(title, "", ss.Metric)
			if err := barsSingle(p, labels, ssr); err != nil {
				return err
			}
			if ss.RatioName != "" && ss.Ratio.N > 0 {
				p.X.Label.Text = fmt.Sprintf("%s %s", ss.RatioName, span(ss.Ratio))
			}
			panels = append(panels, p)
		}
	}
	return save(path, rows(panels, 3))
}

// barsSingle draws one bar per label, coloured by series, where series i
// holds the only value of label i.
func barsSingle(p *plot.Plot, labels []string, ss []series) error {
	w := vg.Points(panelW * 0.5 / float64(max(len(labels), 1)))
	for i, s := range ss {
		pt := s.pts[i]
		if math.IsNaN(pt.Y) {
			continue
		}
		vals := make(plotter.Values, len(labels))
		vals[i] = pt.Y
		b, err := plotter.NewBarChart(vals, w)
		if err != nil {
			return err
		}
		b.Color = s.color
		b.LineStyle.Width = 0
		p.Add(b)
		e, err := plotter.NewYErrorBars(points{{X: float64(i), Y: pt.Y, Lo: pt.Lo, Hi: pt.Hi}})
		if err != nil {
			return err
		}
		p.Add(e)
	}
	p.NominalX(labels...)
	p.X.Min, p.X.Max = -0.6, float64(len(labels))-0.4
	p.Y.Tick.Marker = humanTicks{}
	headroom(p, ss, false, 0)
	return nil
}

// Latency draws, per report, p50, p99 and p999 of latency-5000 for every
// target on a log axis: the tails span two decades.
func Latency(reps []bench.Report, path string) error {
	var panels []*plot.Plot
	for _, rep := range reps {
		for _, ss := range rep.Summaries {
			if ss.Metric != "p99" {
				continue
			}
			linger := "linger 10 ms (default)"
			switch {
			case strings.HasSuffix(ss.Scenario, "-linger0"):
				linger = "linger 0"
			case rep.Settings.LingerMillis > 0:
				linger = fmt.Sprintf("linger %g ms", rep.Settings.LingerMillis)
			}
			keys := make([]string, 0, len(rep.Settings.TopicConfigs))
			for k := range rep.Settings.TopicConfigs {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			for _, k := range keys {
				linger += ", " + k + "=" + rep.Settings.TopicConfigs[k]
			}
			p := newPlot(ss.Scenario+", "+linger, "percentile", "latency ms")
			labels := []string{"p50", "p99", "p999"}
			var ssr []series
			n := len(rep.Settings.Targets)
			for ti, t := range rep.Settings.Targets {
				ts := ss.Targets[t]
				off := 0.3 * (float64(ti) - float64(n-1)/2)
				var pts points
				for j, s := range []bench.Summary{ts.P50Millis, ts.P99Millis, ts.P999Millis} {
					if s.N > 0 {
						pts = append(pts, fromSummary(float64(j)+off, s))
					}
				}
				ssr = append(ssr, series{name: t, color: targetColor(t), pts: pts})
			}
			if err := dots(p, ssr); err != nil {
				return err
			}
			p.NominalX(labels...)
			p.X.Min, p.X.Max = -0.5, 2.5
			panels = append(panels, p)
		}
	}
	return save(path, rows(panels, 2))
}

// dots draws each series as points with min–max error bars, no lines.
func dots(p *plot.Plot, ss []series) error {
	for _, s := range ss {
		if len(s.pts) == 0 {
			continue
		}
		sc, err := plotter.NewScatter(s.pts)
		if err != nil {
			return err
		}
		sc.Color, sc.Shape, sc.Radius = s.color, draw.CircleGlyph{}, vg.Points(3)
		eb, err := plotter.NewYErrorBars(s.pts)
		if err != nil {
			return err
		}
		eb.Color = s.color
		p.Add(sc, eb)
		p.Legend.Add(s.name, sc)
	}
	p.Legend.Top, p.Legend.Left = true, true
	p.Y.Scale, p.Y.Tick.Marker = plot.LogScale{}, humanLogTicks{}
	headroom(p, ss, true, len(ss))
	return nil
}

// Partitions draws records/s and peak RSS against the partition count of
// each report (Settings.Partitions), for every target, and for the
// reports of before as a second, dashed, series per target.
func Partitions(after, before []bench.Report, path string) error {
	collect := func(reps []bench.Report, suffix string, dash []vg.Length) (tput, rss []series) {
		byTarget := map[string]*[2]series{}
		var order []string
		for _, rep := range reps {
			for _, ss := range rep.Summaries {
				for _, t := range rep.Settings.Targets {
					ts, ok := ss.Targets[t]
					if !ok || ts.OK == 0 {
						continue
					}
					name := t + suffix
					if t != "oncelog" {
						name = t
					}
					if byTarget[name] == nil {
						byTarget[name] = &[2]series{{name: name, color: targetColor(t), dash: dash}, {name: name, color: targetColor(t), dash: dash}}
						order = append(order, name)
					}
					x := float64(rep.Settings.Partitions)
					byTarget[name][0].pts = append(byTarget[name][0].pts, fromSummary(x, ts.RecordsPerSec))
					byTarget[name][1].pts = append(byTarget[name][1].pts, fromSummary(x, ts.PeakRSSMB))
				}
			}
		}
		for _, n := range order {
			s := byTarget[n]
			for k := range s {
				slices.SortFunc(s[k].pts, func(a, b point) int { return cmpFloat(a.X, b.X) })
			}
			tput, rss = append(tput, s[0]), append(rss, s[1])
		}
		return tput, rss
	}
	t1, r1 := collect(after, "", nil)
	t0, r0 := collect(before, " (before)", []vg.Length{vg.Points(4), vg.Points(3)})
	tput := newPlot("produce-idempotent-1k, one topic", "partitions", "records/s")
	if err := curves(tput, append(t1, t0...), true, false); err != nil {
		return err
	}
	rss := newPlot("broker peak RSS", "partitions", "MB")
	if err := curves(rss, append(r1, r0...), true, true); err != nil {
		return err
	}
	return save(path, [][]*plot.Plot{{tput, rss}})
}

// IdlePIDs draws records/s and peak RSS against the idle producer ids of
// the idle-pids-N scenarios.
func IdlePIDs(reps []bench.Report, path string) error {
	tputByT, rssByT := map[string]*series{}, map[string]*series{}
	var order []string
	for _, rep := range reps {
		for _, ss := range rep.Summaries {
			n, ok := strings.CutPrefix(ss.Scenario, "idle-pids-")
			if !ok {
				continue
			}
			x, err := strconv.ParseFloat(n, 64)
			if err != nil {
				return fmt.Errorf("scenario %s: %w", ss.Scenario, err)
			}
			for _, t := range rep.Settings.Targets {
				ts := ss.Targets[t]
				if ts.OK == 0 {
					continue
				}
				if tputByT[t] == nil {
					tputByT[t] = &series{name: t, color: targetColor(t)}
					rssByT[t] = &series{name: t, color: targetColor(t)}
					order = append(order, t)
				}
				tputByT[t].pts = append(tputByT[t].pts, fromSummary(x, ts.RecordsPerSec))
				rssByT[t].pts = append(rssByT[t].pts, fromSummary(x, ts.PeakRSSMB))
			}
		}
	}
	if len(order) == 0 {
		return errors.New("no idle-pids-N scenario in the reports")
	}
	var tput, rss []series
	for _, t := range order {
		tput, rss = append(tput, *tputByT[t]), append(rss, *rssByT[t])
	}
	p1 := newPlot("produce-idempotent-1k after N idle producer ids", "idle producer ids", "records/s")
	if err := curves(p1, tput, true, false); err != nil {
		return err
	}
	p2 := newPlot("broker peak RSS", "idle producer ids", "MB")
	if err := curves(p2, rss, true, true); err != nil {
		return err
	}
	return save(path, [][]*plot.Plot{{p1, p2}})
}

// startKindNames labels the kinds of start in the figures.
var startKindNames = map[string]string{
	bench.StartClean:     "after SIGTERM",
	bench.StartKill:      "after SIGKILL",
	bench.StartCleanCold: "after SIGTERM, page cache dropped",
}

// startSeries collects, per kind of start (not the empty one), the
// time to listening and the peak RSS against x(point).
func startSeries(reps []bench.StartupReport, x func(bench.StartupPoint) float64) (listen, rss []series) {
	kinds := []string{bench.StartClean, bench.StartKill, bench.StartCleanCold}
	for ki, k := range kinds {
		l := series{name: startKindNames[k], color: plotutil.Color(ki)}
		r := series{name: startKindNames[k], color: plotutil.Color(ki)}
		for _, rep := range reps {
			for _, p := range rep.Points {
				for _, s := range p.Summaries {
					if s.Kind != k || s.OK == 0 {
						continue
					}
					l.pts = append(l.pts, fromSummary(x(p), s.ListenSeconds))
					r.pts = append(r.pts, fromSummary(x(p), s.PeakRSSMB))
				}
			}
		}
		if len(l.pts) == 0 {
			continue
		}
		slices.SortFunc(l.pts, func(a, b point) int { return cmpFloat(a.X, b.X) })
		slices.SortFunc(r.pts, func(a, b point) int { return cmpFloat(a.X, b.X) })
		listen, rss = append(listen, l), append(rss, r)
	}
	return listen, rss
}

// StartupLog draws bench/startup's log mode: seconds from exec to
// "listening on" and peak RSS against the GiB of log, per kind of start.
// The points of all reports are merged (e.g. a run of the small sizes and
// one of 10 GiB).
func StartupLog(reps []bench.StartupReport, path string) error {
	listen, rss := startSeries(reps, func(p bench.StartupPoint) float64 { return p.GiB })
	if len(listen) == 0 {
		return errors.New("no log-mode start in the reports")
	}
	p1 := newPlot("oncelog serve: exec to \"listening on\"", "GiB of log (6 partitions)", "seconds")
	if err := curves(p1, listen, true, true); err != nil {
		return err
	}
	p2 := newPlot("broker peak RSS once started", "GiB of log (6 partitions)", "MB")
	if err := curves(p2, rss, true, false); err != nil {
		return err
	}
	return save(path, [][]*plot.Plot{{p1, p2}})
}

// StartupPartitions draws bench/startup's partitions mode: seconds to
// "listening on" against the partition count, per kind of start, with the
// topic creation time; and RSS idle after a clean start and peak under the
// produce load.
func StartupPartitions(reps []bench.StartupReport, path string) error {
	x := func(p bench.StartupPoint) float64 { return float64(p.Partitions) }
	listen, _ := startSeries(reps, x)
	if len(listen) == 0 {
		return errors.New("no partitions-mode start in the reports")
	}
	create := series{name: "creating them (CreateTopics)", color: plotutil.Color(3), dash: []vg.Length{vg.Points(4), vg.Points(3)}}
	idle := series{name: "idle after a clean start", color: plotutil.Color(0)}
	load := series{name: "peak under the produce load", color: plotutil.Color(1)}
	for _, rep := range reps {
		for _, p := range rep.Points {
			if p.FillSeconds > 0 {
				create.pts = append(create.pts, point{X: x(p), Y: p.FillSeconds, Lo: p.FillSeconds, Hi: p.FillSeconds})
			}
			for _, s := range p.Summaries {
				if s.Kind == bench.StartClean && s.OK > 0 {
					idle.pts = append(idle.pts, fromSummary(x(p), s.IdleRSSMB))
				}
			}
			if p.Load != nil && p.Load.Err == "" {
				v := float64(p.Load.PeakRSSBytes) / 1e6
				load.pts = append(load.pts, point{X: x(p), Y: v, Lo: v, Hi: v})
			}
		}
	}
	for _, s := range []*series{&create, &idle, &load} {
		slices.SortFunc(s.pts, func(a, b point) int { return cmpFloat(a.X, b.X) })
	}
	p1 := newPlot("oncelog serve: exec to \"listening on\"", "partitions (topics of 100)", "seconds")
	if err := curves(p1, append(listen, create), true, true); err != nil {
		return err
	}
	p2 := newPlot("broker RSS", "partitions (topics of 100)", "MB")
	if err := curves(p2, []series{idle, load}, true, true); err != nil {
		return err
	}
	return save(path, [][]*plot.Plot{{p1, p2}})
}

func rows(ps []*plot.Plot, cols int) [][]*plot.Plot {
	var out [][]*plot.Plot
	for i := 0; i < len(ps); i += cols {
		out = append(out, ps[i:min(i+cols, len(ps))])
	}
	return out
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func span(s bench.Summary) string {
	if s.N <= 1 {
		return strconv.FormatFloat(s.Median, 'f', 2, 64)
	}
	return fmt.Sprintf("%.2f [%.2f–%.2f]", s.Median, s.Min, s.Max)
}

// human formats a tick value: 1.5M, 300k, 12, 0.5.
func human(v float64) string {
	a := math.Abs(v)
	switch {
	case a >= 1e6:
		return strconv.FormatFloat(v/1e6, 'f', -1, 64) + "M"
	case a >= 1e3:
		return strconv.FormatFloat(v/1e3, 'f', -1, 64) + "k"
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

// humanTicks are plot.DefaultTicks labelled by human.
type humanTicks struct{}

func (humanTicks) Ticks(lo, hi float64) []plot.Tick {
	ts := plot.DefaultTicks{}.Ticks(lo, hi)
	for i := range ts {
		if ts[i].Label != "" {
			ts[i].Label = human(ts[i].Value)
		}
	}
	return ts
}

// humanLogTicks are plot.LogTicks labelled by human.
type humanLogTicks struct{}

func (humanLogTicks) Ticks(lo, hi float64) []plot.Tick {
	ts := plot.LogTicks{}.Ticks(lo, hi)
	// Within three decades or fewer, label 2 and 5 of each decade too.
	few := math.Log10(hi/lo) <= 3
	for i := range ts {
		m := ts[i].Value / math.Pow10(int(math.Floor(math.Log10(ts[i].Value)+1e-9)))
		major := ts[i].Label != "" || (few && (math.Abs(m-2) < 1e-6 || math.Abs(m-5) < 1e-6))
		if major {
			ts[i].Label = human(ts[i].Value)
		}
	}
	return ts
}

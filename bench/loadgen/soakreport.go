package main

import (
	"bufio"
	"cmp"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The samples file of scripts/soak.sh: tab-separated, with this header line; one line per sample.
// label is start, end, idle or the window the sample follows (w1, w2, …); unix_s the time it was
// taken (Unix seconds); the other columns are numbers, or empty when the value could not be read.
var sampleColumns = []string{"label", "unix_s", "rss_mib", "goroutines", "pool_in_use", "pool_open", "pg_backends"}

// sample is one line of the samples file.
type sample struct {
	label string
	unix  float64
	vals  map[string]string // by column name
}

// soakReportMain runs loadgen -soak-report [flags] JSONL SAMPLES and returns the exit status.
func soakReportMain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("loadgen -soak-report", flag.ContinueOnError)
	fs.SetOutput(stderr)
	commit := fs.String("commit", "", "commit of the server, for the header")
	duration := fs.String("duration", "", "the requested duration (-d), for the header")
	note := fs.String("note", "", "one more line for the header (how the server ran)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: loadgen -soak-report [flags] JSONL SAMPLES")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() != 2 {
		fs.Usage()
		return 2
	}
	windows, res, err := readRunLines(fs.Arg(0))
	if err == nil {
		var samples []sample
		if samples, err = readSamples(fs.Arg(1)); err == nil {
			err = writeSoakReport(stdout, soakHeader{Commit: *commit, Duration: *duration, Note: *note}, windows, res, samples)
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "loadgen: %v\n", err)
		return 1
	}
	return 0
}

// readRunLines reads the window lines and the last result line of a run; res is nil when the run
// printed no result line (it failed or was killed).
func readRunLines(path string) (windows []Window, res *Result, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := []byte(strings.TrimSpace(sc.Text()))
		if len(line) == 0 {
			continue
		}
		var probe struct {
			Kind string `json:"kind"`
		}
		if err := json.Unmarshal(line, &probe); err != nil {
			return nil, nil, fmt.Errorf("%s:%d: %w", path, n, err)
		}
		if probe.Kind == "window" {
			var w Window
			if err := json.Unmarshal(line, &w); err != nil {
				return nil, nil, fmt.Errorf("%s:%d: %w", path, n, err)
			}
			windows = append(windows, w)
			continue
		}
		res = new(Result)
		if err := json.Unmarshal(line, res); err != nil {
			return nil, nil, fmt.Errorf("%s:%d: %w", path, n, err)
		}
	}
	return windows, res, sc.Err()
}

// readSamples reads the samples file (see sampleColumns).
func readSamples(path string) ([]sample, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	var cols []string
	var out []sample
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimRight(sc.Text(), "\r")
		if line == "" {
			continue
		}
		fields := strings.Split(line, "\t")
		if cols == nil {
			cols = fields
			for _, c := range sampleColumns {
				if !slices.Contains(cols, c) {
					return nil, fmt.Errorf("%s: the header has no column %q (want %s)", path, c, strings.Join(sampleColumns, ", "))
				}
			}
			continue
		}
		s := sample{vals: map[string]string{}}
		for i, c := range cols {
			if i < len(fields) {
				s.vals[c] = strings.TrimSpace(fields[i])
			}
		}
		s.label = s.vals["label"]
		if s.unix, err = strconv.ParseFloat(s.vals["unix_s"], 64); err != nil {
			return nil, fmt.Errorf("%s:%d: unix_s: %w", path, n, err)
		}
		out = append(out, s)
	}
	return out, sc.Err()
}

// soakHeader is what the report says about the run beyond the JSON lines.
type soakHeader struct {
	Commit, Duration, Note string
}

// writeSoakReport writes the Markdown report: the windows joined with the samples taken at about
// their end, the totals and operations of the result, and the server at start, end and idle.
func writeSoakReport(w io.Writer, h soakHeader, windows []Window, res *Result, samples []sample) error {
	var start time.Time // the measure start: sample times are relative to it
	if res != nil {
		start, _ = time.Parse(time.RFC3339Nano, res.StartedAt)
	}
	if start.IsZero() {
		for _, s := range samples {
			if s.label == "start" {
				start = unixTime(s.unix)
			}
		}
	}
	rel := func(s sample) float64 { return s.unix - float64(start.UnixNano())/1e9 }

	b := &strings.Builder{}
	title := "Soak run"
	if res != nil {
		title = fmt.Sprintf("Soak run: %s, c=%d", res.Scenario, res.Concurrency)
	}
	fmt.Fprintf(b, "# %s\n\n", title)
	if !start.IsZero() {
		fmt.Fprintf(b, "- Date: %s (measure start)\n", start.UTC().Format("2006-01-02 15:04:05 MST"))
	}
	if h.Commit != "" {
		fmt.Fprintf(b, "- Commit: %s\n", h.Commit)
	}
	if res != nil {
		dur := ""
		if h.Duration != "" {
			dur = "DURATION=" + h.Duration + ", "
		}
		fmt.Fprintf(b, "- Load: `loadgen -scenario %s`, C=%d, %smeasured %.1f s", res.Scenario, res.Concurrency, dur, res.DurationS)
		if len(windows) > 0 {
			fmt.Fprintf(b, ", windows of %.0f s", windows[0].DurationS)
		}
		fmt.Fprintf(b, ", %d shared accounts\n", res.Accounts)
	} else {
		fmt.Fprintf(b, "- **No result line: the load run did not finish** (DURATION=%s)\n", h.Duration)
	}
	if h.Note != "" {
		fmt.Fprintf(b, "- %s\n", h.Note)
	}

	fmt.Fprintf(b, "\n## Per window\n\n")
	fmt.Fprintln(b, "Load columns: the requests that completed in the window (all operations). Server columns: the sample taken at about the window's end (t of the sample in brackets).")
	fmt.Fprintln(b)
	fmt.Fprintln(b, "| t (s) | req/s | p50 ms | p99 ms | max ms | errors | RSS MiB | goroutines | DB pool in use / open | PG backends |")
	fmt.Fprintln(b, "|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|")
	used := map[int]bool{}
	for _, win := range windows {
		cols := []string{"–", "–", "–", "–"}
		if i := nearestSample(samples, rel, win, used); i >= 0 {
			used[i] = true
			cols = sampleCells(samples[i])
			cols[0] += fmt.Sprintf(" (%.0f)", rel(samples[i]))
		}
		fmt.Fprintf(b, "| %.0f | %.0f | %.2f | %.2f | %.2f | %s | %s |\n", win.TS, win.RPS, win.LatencyMS.P50,
			win.LatencyMS.P99, win.LatencyMS.Max, errorsCell(win.Errors), strings.Join(cols, " | "))
	}
	if len(windows) == 0 {
		fmt.Fprintln(b, "| (no window lines) | | | | | | | | | |")
	}

	if res != nil {
		fmt.Fprintf(b, "\n## Totals\n\n")
		var errs int64
		for _, n := range res.Errors {
			errs += n
		}
		fmt.Fprintf(b, "- Requests OK: %d in %.1f s (%.0f req/s); latency ms p50 %.2f, p90 %.2f, p99 %.2f, max %.2f\n",
			res.OK, res.DurationS, res.RPS, res.LatencyMS.P50, res.LatencyMS.P90, res.LatencyMS.P99, res.LatencyMS.Max)
		if errs == 0 {
			fmt.Fprintln(b, "- Errors: none")
		} else {
			fmt.Fprintf(b, "- Errors: %d (%s)\n", errs, errorsCell(res.Errors))
		}
		if len(res.Ops) > 0 {
			fmt.Fprintln(b)
			fmt.Fprintln(b, "| operation | ok | errors | p50 ms | p99 ms |")
			fmt.Fprintln(b, "|---|---:|---|---:|---:|")
			for _, o := range mixedOps {
				s, ok := res.Ops[opNames[o]]
				if !ok {
					continue
				}
				fmt.Fprintf(b, "| %s | %d | %s | %.2f | %.2f |\n", opNames[o], s.OK, errorsCell(s.Errors), s.P50, s.P99)
			}
		}
	}

	fmt.Fprintf(b, "\n## Server at start, end and idle\n\n")
	fmt.Fprintln(b, "start: before the load tool started; end: right after it exited; idle: 10 s later.")
	fmt.Fprintln(b)
	fmt.Fprintln(b, "| sample | t (s) | RSS MiB | goroutines | DB pool in use / open | PG backends |")
	fmt.Fprintln(b, "|---|---:|---:|---:|---:|---:|")
	byLabel := map[string]sample{}
	for _, s := range samples {
		byLabel[s.label] = s
	}
	for _, l := range []string{"start", "end", "idle"} {
		if s, ok := byLabel[l]; ok {
			fmt.Fprintf(b, "| %s | %.0f | %s |\n", l, rel(s), strings.Join(sampleCells(s), " | "))
		}
	}
	s0, ok0 := byLabel["start"]
	for _, l := range []string{"end", "idle"} {
		if s, ok := byLabel[l]; ok && ok0 {
			fmt.Fprintf(b, "| %s − start | | %s | %s | | %s |\n", l, delta(s, s0, "rss_mib", "%+.1f"),
				delta(s, s0, "goroutines", "%+.0f"), delta(s, s0, "pg_backends", "%+.0f"))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// nearestSample is the index of the unused sample (start and idle excluded) taken closest to the
// window's end, within half a window; -1 if there is none.
func nearestSample(samples []sample, rel func(sample) float64, win Window, used map[int]bool) int {
	best, bestD := -1, math.Max(win.DurationS/2, 1)
	for i, s := range samples {
		if used[i] || s.label == "start" || s.label == "idle" {
			continue
		}
		if d := math.Abs(rel(s) - win.TS); d <= bestD {
			best, bestD = i, d
		}
	}
	return best
}

// sampleCells are the RSS, goroutines, pool and PG backends cells of a sample.
func sampleCells(s sample) []string {
	v := func(c string) string {
		if x := s.vals[c]; x != "" {
			return x
		}
		return "?"
	}
	return []string{v("rss_mib"), v("goroutines"), v("pool_in_use") + " / " + v("pool_open"), v("pg_backends")}
}

// delta formats s[col] − base[col]; "?" when either is not a number.
func delta(s, base sample, col, format string) string {
	a, err1 := strconv.ParseFloat(s.vals[col], 64)
	b, err2 := strconv.ParseFloat(base.vals[col], 64)
	if err1 != nil || err2 != nil {
		return "?"
	}
	return fmt.Sprintf(format, a-b)
}

// errorsCell is "0" or the error counts by code, most frequent first.
func errorsCell(errs map[string]int64) string {
	if len(errs) == 0 {
		return "0"
	}
	codes := make([]string, 0, len(errs))
	for c := range errs {
		codes = append(codes, c)
	}
	slices.SortFunc(codes, func(a, b string) int {
		return cmp.Or(cmp.Compare(errs[b], errs[a]), strings.Compare(a, b))
	})
	parts := make([]string, len(codes))
	for i, c := range codes {
		parts[i] = fmt.Sprintf("%s %d", c, errs[c])
	}
	return strings.Join(parts, ", ")
}

func unixTime(s float64) time.Time {
	sec, frac := math.Modf(s)
	return time.Unix(int64(sec), int64(frac*1e9))
}

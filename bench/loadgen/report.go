package main

import (
	"bufio"
	"cmp"
	"embed"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/template"
	"time"
)

// templateFiles holds the Markdown templates of the reports.
//
//go:embed templates/*.tmpl
var templateFiles embed.FS

// reports are the parsed templates: summary.md.tmpl renders []summaryRow, soak.md.tmpl a
// soakReport. f0, f1 and f2 print a number with that many decimals.
var reports = template.Must(template.New("").Funcs(template.FuncMap{
	"f0":     func(x float64) string { return strconv.FormatFloat(x, 'f', 0, 64) },
	"f1":     func(x float64) string { return strconv.FormatFloat(x, 'f', 1, 64) },
	"f2":     func(x float64) string { return strconv.FormatFloat(x, 'f', 2, 64) },
	"errors": errorsCell,
	"join":   strings.Join,
}).ParseFS(templateFiles, "templates/*.tmpl"))

// summaryRow is one server and scenario of the summary: medians over its rounds, errors summed.
type summaryRow struct {
	Scenario, Server string
	Runs             int
	RPS, P50, P99    float64
	Errors           string // "0" or the counts by code as a JSON object
}

var roundSuffix = regexp.MustCompile(`\s+round\s+\d+$`)

// summarize reads JSON result lines (as scripts/bench.sh collects them) and prints a Markdown table
// with, per server and scenario, the median over rounds of requests/s, p50, p99, and all errors.
// Window lines (-interval) are skipped.
func summarize(path string, w io.Writer) error {
	_, results, err := readRunLines(path)
	if err != nil {
		return err
	}
	type key struct{ server, scenario string }
	groups := map[key][]Result{}
	var order []key
	for _, r := range results {
		k := key{roundSuffix.ReplaceAllString(r.Label, ""), r.Scenario}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], r)
	}
	slices.SortStableFunc(order, func(a, b key) int { return cmp.Compare(a.scenario, b.scenario) })
	rows := make([]summaryRow, len(order))
	for i, k := range order {
		rs := groups[k]
		med := func(f func(Result) float64) float64 {
			v := make([]float64, len(rs))
			for i, r := range rs {
				v[i] = f(r)
			}
			slices.Sort(v)
			return v[len(v)/2]
		}
		errs := map[string]int64{}
		for _, r := range rs {
			for c, n := range r.Errors {
				errs[c] += n
			}
		}
		rows[i] = summaryRow{Scenario: k.scenario, Server: k.server, Runs: len(rs), Errors: "0",
			RPS: med(func(r Result) float64 { return r.RPS }),
			P50: med(func(r Result) float64 { return r.LatencyMS.P50 }),
			P99: med(func(r Result) float64 { return r.LatencyMS.P99 })}
		if len(errs) > 0 {
			b, _ := json.Marshal(errs) // keys sorted
			rows[i].Errors = string(b)
		}
	}
	return reports.ExecuteTemplate(w, "summary.md.tmpl", rows)
}

// readRunLines reads the window and result lines of loadgen runs, in order; blank lines are skipped.
func readRunLines(path string) (windows []Window, results []Result, err error) {
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
		if err = json.Unmarshal(line, &probe); err == nil {
			if probe.Kind == "window" {
				windows = append(windows, Window{})
				err = json.Unmarshal(line, &windows[len(windows)-1])
			} else {
				results = append(results, Result{})
				err = json.Unmarshal(line, &results[len(results)-1])
			}
		}
		if err != nil {
			return nil, nil, fmt.Errorf("%s:%d: %w", path, n, err)
		}
	}
	return windows, results, sc.Err()
}

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
	var h soakHeader
	fs.StringVar(&h.Commit, "commit", "", "commit of the server, for the header")
	fs.StringVar(&h.Duration, "duration", "", "the requested duration (-d), for the header")
	fs.StringVar(&h.Note, "note", "", "one more line for the header (how the server ran)")
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
	windows, results, err := readRunLines(fs.Arg(0))
	if err == nil {
		var samples []sample
		if samples, err = readSamples(fs.Arg(1)); err == nil {
			var res *Result // the last result line; nil when the run printed none (it failed or was killed)
			if len(results) > 0 {
				res = &results[len(results)-1]
			}
			err = writeSoakReport(stdout, h, windows, res, samples)
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "loadgen: %v\n", err)
		return 1
	}
	return 0
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

// soakReport is what soak.md.tmpl shows: the run's lines joined with the server samples.
type soakReport struct {
	soakHeader
	Res        *Result   // nil when the run printed no result line
	Start      time.Time // the measure start; zero when unknown
	ErrorCount int64     // all errors of Res
	Windows    []soakWindow
	Ops        []namedOpStats // Res.Ops in the order of mixedOps
	Samples    []sampleRow    // start, end and idle
	Deltas     []deltaRow     // end and idle minus start
}

// sampleRow is one of the start, end and idle samples.
type sampleRow struct {
	Label string
	T     float64 // seconds since the measure start
	Cells []string
}

// deltaRow is how much the end or idle sample grew since the start sample.
type deltaRow struct{ Label, RSS, Goroutines, PGBackends string }

// soakWindow is a window line and the server cells of the sample taken at about its end.
type soakWindow struct {
	Window
	Server []string
}

// namedOpStats are the statistics of the operation Name.
type namedOpStats struct {
	Name string
	OpStats
}

// writeSoakReport writes the Markdown report: the windows joined with the samples taken at about
// their end, the totals and operations of the result, and the server at start, end and idle.
func writeSoakReport(w io.Writer, h soakHeader, windows []Window, res *Result, samples []sample) error {
	rep := soakReport{soakHeader: h, Res: res}
	if res != nil {
		rep.Start, _ = time.Parse(time.RFC3339Nano, res.StartedAt)
		for _, n := range res.Errors {
			rep.ErrorCount += n
		}
		for _, o := range mixedOps {
			if s, ok := res.Ops[opNames[o]]; ok {
				rep.Ops = append(rep.Ops, namedOpStats{opNames[o], s})
			}
		}
	}
	byLabel := map[string]sample{}
	for _, s := range samples {
		byLabel[s.label] = s
	}
	if s, ok := byLabel["start"]; ok && rep.Start.IsZero() {
		sec, frac := math.Modf(s.unix)
		rep.Start = time.Unix(int64(sec), int64(frac*1e9))
	}
	rel := func(s sample) float64 { return s.unix - float64(rep.Start.UnixNano())/1e9 }

	used := map[int]bool{}
	for _, win := range windows {
		cells := []string{"–", "–", "–", "–"}
		if i := nearestSample(samples, rel, win, used); i >= 0 {
			used[i] = true
			cells = sampleCells(samples[i])
			cells[0] += fmt.Sprintf(" (%.0f)", rel(samples[i]))
		}
		rep.Windows = append(rep.Windows, soakWindow{win, cells})
	}
	for _, l := range []string{"start", "end", "idle"} {
		if s, ok := byLabel[l]; ok {
			rep.Samples = append(rep.Samples, sampleRow{l, rel(s), sampleCells(s)})
		}
	}
	if s0, ok := byLabel["start"]; ok {
		for _, l := range []string{"end", "idle"} {
			if s, ok := byLabel[l]; ok {
				rep.Deltas = append(rep.Deltas, deltaRow{l,
					delta(s, s0, "rss_mib", "%+.1f"), delta(s, s0, "goroutines", "%+.0f"), delta(s, s0, "pg_backends", "%+.0f")})
			}
		}
	}
	return reports.ExecuteTemplate(w, "soak.md.tmpl", rep)
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
	v := func(c string) string { return cmp.Or(s.vals[c], "?") }
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
	codes := slices.Collect(maps.Keys(errs))
	slices.SortFunc(codes, func(a, b string) int {
		return cmp.Or(cmp.Compare(errs[b], errs[a]), strings.Compare(a, b))
	})
	parts := make([]string, len(codes))
	for i, c := range codes {
		parts[i] = fmt.Sprintf("%s %d", c, errs[c])
	}
	return strings.Join(parts, ", ")
}

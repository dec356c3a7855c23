package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
)

var roundSuffix = regexp.MustCompile(`\s+round\s+\d+$`)

// summarize reads JSON result lines (as scripts/bench.sh collects them) and prints a Markdown table
// with, per server and scenario, the median over rounds of requests/s, p50, p99, and all errors.
// Window lines (-interval) are skipped.
func summarize(path string, w io.Writer) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	type key struct{ server, scenario string }
	groups := map[key][]Result{}
	var order []key
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		var l struct {
			Kind string `json:"kind"`
			Result
		}
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if l.Kind == "window" {
			continue
		}
		r := l.Result
		k := key{roundSuffix.ReplaceAllString(r.Label, ""), r.Scenario}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], r)
	}
	if err := sc.Err(); err != nil {
		return err
	}
	sort.SliceStable(order, func(i, j int) bool { return order[i].scenario < order[j].scenario })
	fmt.Fprintln(w, "| scenario | server | runs | req/s (median) | p50 ms | p99 ms | errors |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|")
	for _, k := range order {
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
		es := "0"
		if len(errs) > 0 {
			b, _ := json.Marshal(errs)
			es = string(b)
		}
		fmt.Fprintf(w, "| %s | %s | %d | %.0f | %.2f | %.2f | %s |\n", k.scenario, k.server, len(rs),
			med(func(r Result) float64 { return r.RPS }), med(func(r Result) float64 { return r.LatencyMS.P50 }),
			med(func(r Result) float64 { return r.LatencyMS.P99 }), es)
	}
	return nil
}

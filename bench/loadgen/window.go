package main

import (
	"context"
	"encoding/json"
	"io"
	"slices"
	"sync"
	"time"
)

// window collects one VU's measured requests since the last window line. The VU adds to it under
// its own lock, which only the window printer also takes, once per interval: no VU ever waits for
// another, and the lock is uncontended except for that one moment per interval.
type window struct {
	mu   sync.Mutex
	lat  []time.Duration  // latencies of the OK requests
	errs map[string]int64 // errors by code; nil until the first
}

// add counts a request that completed: its latency when it is OK (code ""), else its error code.
func (w *window) add(lat time.Duration, code string) {
	w.mu.Lock()
	if code == "" {
		w.lat = append(w.lat, lat)
	} else {
		if w.errs == nil {
			w.errs = map[string]int64{}
		}
		w.errs[code]++
	}
	w.mu.Unlock()
}

// swap hands over what was collected and starts collecting again into spare (emptied). The caller
// owns the returned slice and map; the VU no longer touches them.
func (w *window) swap(spare []time.Duration) ([]time.Duration, map[string]int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	lat, errs := w.lat, w.errs
	w.lat, w.errs = spare[:0], nil
	return lat, errs
}

// windows prints the window lines of one run. run and flush are called from one goroutine at a
// time (Run calls the last flush after run has returned).
type windows struct {
	r     *runner
	vus   []*vu
	out   io.Writer
	n     int               // window lines printed
	last  time.Time         // end of the last window printed; at first the measure start
	spare [][]time.Duration // per VU: the buffer it gets at the next swap (the one it filled before)
	all   []time.Duration   // scratch: one window's latencies, all VUs together
}

// run prints a window line at every -interval of the measured time until ctx ends. The window that
// would end at or after the deadline is left to the final flush, once the VUs have stopped, so that
// the requests still in flight at the deadline do not make a window of their own.
func (ws *windows) run(ctx context.Context) {
	r := ws.r
	for {
		end := r.measureStart.Add(time.Duration(ws.n+1) * r.o.Interval)
		if !r.deadline.IsZero() && !end.Before(r.deadline) {
			return
		}
		t := time.NewTimer(time.Until(end))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		ws.flush(time.Now(), false)
	}
}

// flush prints the window from the last one's end to now. The final flush prints nothing when
// there is nothing in that window.
func (ws *windows) flush(now time.Time, final bool) {
	if ws.spare == nil {
		ws.spare = make([][]time.Duration, len(ws.vus))
	}
	ws.all = ws.all[:0]
	errs := map[string]int64{}
	for i, v := range ws.vus {
		lat, e := v.win.swap(ws.spare[i])
		ws.all = append(ws.all, lat...)
		ws.spare[i] = lat
		for c, k := range e {
			errs[c] += k
		}
	}
	if final && len(ws.all) == 0 && len(errs) == 0 {
		return
	}
	ws.n++
	d := now.Sub(ws.last)
	w := Window{
		Kind:      "window",
		Label:     ws.r.o.Label,
		Window:    ws.n,
		TS:        round(now.Sub(ws.r.measureStart).Seconds(), 3),
		DurationS: round(d.Seconds(), 3),
		OK:        int64(len(ws.all)),
		Errors:    errs,
	}
	if d > 0 {
		w.RPS = round(float64(w.OK)/d.Seconds(), 1)
	}
	if len(ws.all) > 0 {
		slices.Sort(ws.all)
		w.LatencyMS = WindowLatency{
			P50: ms(percentile(ws.all, 50)),
			P99: ms(percentile(ws.all, 99)),
			Max: ms(ws.all[len(ws.all)-1]),
		}
	}
	ws.last = now
	line, err := json.Marshal(w)
	if err == nil {
		_, err = ws.out.Write(append(line, '\n')) // one write per line: a line is never split
	}
	if err != nil {
		ws.r.logOnce("window write", "writing a window line: %v", err)
	}
}

package app

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// otlpReceiver is a stand-in OTLP/HTTP collector: it records the paths and content types of the
// export requests it gets.
type otlpReceiver struct {
	mu   sync.Mutex
	got  []string
	body int
}

func (o *otlpReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := 0
	buf := make([]byte, 32<<10)
	for {
		k, err := r.Body.Read(buf)
		n += k
		if err != nil {
			break
		}
	}
	o.mu.Lock()
	o.got = append(o.got, r.Method+" "+r.URL.Path+" "+r.Header.Get("Content-Type"))
	o.body += n
	o.mu.Unlock()
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.WriteHeader(http.StatusOK)
}

func (o *otlpReceiver) requests() ([]string, int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.got...), o.body
}

// With OTEL_EXPORTER_OTLP_ENDPOINT set, the app traces into an OTLP/HTTP exporter: New still starts
// nothing, Serve attaches the exporter, and Close flushes the spans of the requests served to the
// collector (POST /v1/traces, protobuf). The exporter reads the endpoint from the process
// environment itself, hence t.Setenv (so this test is not parallel).
func TestTracingExportsOverOTLP(t *testing.T) {
	var recv otlpReceiver
	collector := httptest.NewServer(&recv)
	defer collector.Close()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.URL)
	cfg := loadConfig(t, map[string]string{"DATA_DIR": t.TempDir(), "OTEL_EXPORTER_OTLP_ENDPOINT": collector.URL})
	if !cfg.Tracing {
		t.Fatal("OTEL_EXPORTER_OTLP_ENDPOINT set, yet tracing is off")
	}
	db := openStore(t)
	base := runtime.NumGoroutine()
	a, err := New(context.Background(), cfg, Options{Store: db, Password: &cheap, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if n := settledGoroutines(base); n > base {
		t.Fatalf("New started %d goroutines with tracing on:\n%s", n-base, goroutineDump())
	}
	if a.TracerProvider == nil || !a.Store.Traced() {
		t.Fatal("tracing on, yet no provider or an uninstrumented database")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- a.Serve(ctx, ln) }()
	res, err := http.Post("http://"+ln.Addr().String()+"/graphql", "application/json", strings.NewReader(`{"query":"query Probe { __typename }"}`))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	cancel()
	select {
	case err := <-served:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Serve did not return")
	}
	if got, _ := recv.requests(); len(got) != 0 {
		t.Logf("exported before Close (batch delay passed): %v", got)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	got, bytes := recv.requests()
	if len(got) == 0 || bytes == 0 {
		t.Fatal("Close exported nothing to the collector")
	}
	for _, g := range got {
		if g != "POST /v1/traces application/x-protobuf" {
			t.Errorf("collector got %q, want POST /v1/traces application/x-protobuf", g)
		}
	}
}

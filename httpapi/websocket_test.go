package httpapi_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"gqlauth/internal/apptest"
	"gqlauth/internal/testdb"
	"gqlauth/internal/wsclient"
)

// The graphql-ws transport's HTTP side: the Origin check, the limits, bad messages, the keep-alive,
// the metrics and the shutdown, through the real server with a real client.

const eventsQ = `subscription { sessionEvents { type } }`

func wantClose(t *testing.T, c *wsclient.Conn, code int, reason string) {
	t.Helper()
	got, why, err := c.Closed(apptest.WSContext(t))
	if err != nil {
		t.Fatalf("socket not closed: %v", err)
	}
	if got != code || (reason != "*" && why != reason) {
		t.Fatalf("closed with %d %q, want %d %q", got, why, code, reason)
	}
}

func pollUntil(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(apptest.WSWait); !ok(); time.Sleep(2 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func register(t *testing.T, e *apptest.Env) apptest.Pair {
	t.Helper()
	return e.Register("ws-"+strings.ReplaceAll(t.Name(), "/", "-")+"@example.com", pw)
}

// Cross-site WebSocket hijacking: an upgrade whose Origin is neither the server's own nor allowed
// is refused with 403 before any upgrade; no Origin (not a browser), the same origin and an allowed
// origin are upgraded.
func TestWebSocketOrigin(t *testing.T) {
	t.Parallel()
	e := apptest.New(t, testdb.SQLite(t), apptest.Options{Vars: map[string]string{"CORS_ALLOWED_ORIGINS": "https://app.example.com"}})
	self := e.Server.URL
	for _, tc := range []struct {
		name, origin string
		ok           bool
	}{
		{"no origin", "", true},
		{"same origin", self, true},
		{"allowed origin", "https://app.example.com", true},
		{"foreign origin", "https://evil.example", false},
		{"allowed host, other port", "https://app.example.com:8443", false},
		{"not an origin", "null", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, res, err := wsclient.Dial(apptest.WSContext(t), e.Server.URL+"/graphql", wsclient.Options{Origin: tc.origin})
			if tc.ok {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				c.Close()
				return
			}
			if err == nil {
				c.Close()
				t.Fatal("upgraded a foreign origin")
			}
			if res == nil || res.StatusCode != http.StatusForbidden {
				t.Fatalf("response %+v, want 403", res)
			}
			var body struct {
				Errors []apptest.GQLError `json:"errors"`
			}
			b, _ := io.ReadAll(res.Body)
			if json.Unmarshal(b, &body) != nil || len(body.Errors) != 1 || body.Errors[0].Extensions["code"] != "FORBIDDEN" {
				t.Fatalf("body %s, want one FORBIDDEN error", b)
			}
		})
	}
}

// No connection_init within WS_INIT_TIMEOUT: closed with graphql-ws's 4408.
func TestWebSocketInitTimeout(t *testing.T) {
	t.Parallel()
	e := apptest.New(t, testdb.SQLite(t), apptest.Options{Vars: map[string]string{"WS_INIT_TIMEOUT": "200ms"}})
	c := e.DialWS(wsclient.Options{})
	wantClose(t, c, 4408, "connection initialisation timeout")
}

// WS_MAX_SUBSCRIPTIONS: one subscription too many gets RATE_LIMITED and the socket stays open; once
// one completes, a new one is accepted.
func TestWebSocketMaxSubscriptions(t *testing.T) {
	t.Parallel()
	e := apptest.New(t, testdb.SQLite(t), apptest.Options{Vars: map[string]string{"WS_MAX_SUBSCRIPTIONS": "2"}})
	p := register(t, e)
	c := e.InitWS(p.AccessToken)
	for _, id := range []string{"1", "2"} {
		if err := c.Subscribe(apptest.WSContext(t), id, eventsQ, nil); err != nil {
			t.Fatal(err)
		}
	}
	pollUntil(t, "two subscriptions", func() bool { return e.App.Sockets.Subscriptions() == 2 })
	if err := c.Subscribe(apptest.WSContext(t), "3", eventsQ, nil); err != nil {
		t.Fatal(err)
	}
	m, err := c.Next(apptest.WSContext(t))
	if err != nil || m.ID != "3" || !strings.Contains(string(m.Payload), `"code":"RATE_LIMITED"`) {
		t.Fatalf("third subscription: %+v %v, want a RATE_LIMITED error", m, err)
	}
	if m, err := c.Next(apptest.WSContext(t)); err != nil || m.Type != "complete" || m.ID != "3" {
		t.Fatalf("after the refusal: %+v %v, want complete 3", m, err)
	}
	if err := c.Complete(apptest.WSContext(t), "1"); err != nil {
		t.Fatal(err)
	}
	pollUntil(t, "the completed subscription to end", func() bool { return e.App.Sockets.Subscriptions() == 1 })
	if err := c.Subscribe(apptest.WSContext(t), "4", eventsQ, nil); err != nil {
		t.Fatal(err)
	}
	pollUntil(t, "a subscription in the freed slot", func() bool { return e.App.Sockets.Subscriptions() == 2 })
}

// WS_MAX_CONNECTIONS_PER_USER: one socket too many for the account is closed with 4429
// TOO_MANY_CONNECTIONS; other accounts are not affected, and a closed socket frees its slot.
func TestWebSocketMaxConnectionsPerUser(t *testing.T) {
	t.Parallel()
	e := apptest.New(t, testdb.SQLite(t), apptest.Options{Vars: map[string]string{"WS_MAX_CONNECTIONS_PER_USER": "2"}})
	p := register(t, e)
	first := e.InitWS(p.AccessToken)
	e.InitWS(p.AccessToken)
	c := e.DialWS(wsclient.Options{})
	if err := c.Init(apptest.WSContext(t), map[string]any{"Authorization": "Bearer " + p.AccessToken}); err != nil {
		t.Fatal(err)
	}
	wantClose(t, c, 4429, "TOO_MANY_CONNECTIONS")
	other := e.Register("ws-other-"+strings.ReplaceAll(t.Name(), "/", "-")+"@example.com", pw)
	e.InitWS(other.AccessToken)
	first.Close()
	pollUntil(t, "the closed socket to be gone", func() bool { return e.App.Sockets.Open() == 2 })
	e.InitWS(p.AccessToken)
}

// A message over WS_MAX_MESSAGE_BYTES closes the socket with 1009 (message too big).
func TestWebSocketMessageLimit(t *testing.T) {
	t.Parallel()
	e := apptest.New(t, testdb.SQLite(t), apptest.Options{Vars: map[string]string{"WS_MAX_MESSAGE_BYTES": "1024"}})
	p := register(t, e)
	c := e.InitWS(p.AccessToken)
	if err := c.Subscribe(apptest.WSContext(t), "big", `subscription { sessionEvents { type } }`+strings.Repeat(" ", 2048), nil); err != nil {
		t.Fatal(err)
	}
	wantClose(t, c, 1009, "*")
}

// Bad messages close the socket with graphql-ws's codes, never a panic; the server goes on serving.
func TestWebSocketBadMessages(t *testing.T) {
	t.Parallel()
	e := apptest.New(t, testdb.SQLite(t), apptest.Options{})
	p := register(t, e)
	for _, tc := range []struct {
		name string
		init bool
		msg  string
		code int
	}{
		{"not JSON before init", false, `{"type":`, 4400},
		{"subscribe before init", false, `{"type":"subscribe","id":"1","payload":{"query":"subscription { sessionEvents { type } }"}}`, 4401},
		{"unknown type", true, `{"type":"bogus"}`, 4400},
		{"not JSON", true, `][`, 4400},
		{"init payload not an object", false, `{"type":"connection_init","payload":[1,2]}`, 4400},
		{"a second connection_init", true, `{"type":"connection_init","payload":{}}`, 4429},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c *wsclient.Conn
			if tc.init {
				c = e.InitWS(p.AccessToken)
			} else {
				c = e.DialWS(wsclient.Options{})
			}
			if err := c.SendRaw(apptest.WSContext(t), []byte(tc.msg)); err != nil {
				t.Fatal(err)
			}
			wantClose(t, c, tc.code, "*")
		})
	}
	// A subscribe whose payload is not an operation gets an error, and the socket stays.
	c := e.InitWS(p.AccessToken)
	if err := c.SendRaw(apptest.WSContext(t), []byte(`{"type":"subscribe","id":"x","payload":"nope"}`)); err != nil {
		t.Fatal(err)
	}
	if m, err := c.Next(apptest.WSContext(t)); err != nil || m.Type != "error" || m.ID != "x" {
		t.Fatalf("%+v %v, want an error for x", m, err)
	}
	apptest.WantOK(t, e.Me(p.AccessToken))
}

// The server pings every WS_KEEPALIVE_INTERVAL; a client that never answers is dropped.
func TestWebSocketKeepAlive(t *testing.T) {
	t.Parallel()
	e := apptest.New(t, testdb.SQLite(t), apptest.Options{Vars: map[string]string{"WS_KEEPALIVE_INTERVAL": "100ms"}})
	p := register(t, e)
	c := e.DialWS(wsclient.Options{NoPong: true})
	if err := c.InitBearer(apptest.WSContext(t), p.AccessToken); err != nil {
		t.Fatal(err)
	}
	if m, err := c.Next(apptest.WSContext(t)); err != nil || m.Type != "ping" {
		t.Fatalf("%+v %v, want a ping", m, err)
	}
	if _, _, err := c.Closed(apptest.WSContext(t)); err != nil {
		t.Fatalf("a client that never answers pings is still connected: %v", err)
	}
	pollUntil(t, "the socket to be gone", func() bool { return e.App.Sockets.Open() == 0 })
}

// The metrics: open sockets, closes by reason, the revocation-to-close histogram.
func TestWebSocketMetrics(t *testing.T) {
	t.Parallel()
	e := apptest.New(t, testdb.SQLite(t), apptest.Options{})
	p := register(t, e)
	bad := e.DialWS(wsclient.Options{})
	if err := bad.Init(apptest.WSContext(t), map[string]any{"Authorization": "Bearer garbage"}); err != nil {
		t.Fatal(err)
	}
	wantClose(t, bad, 4403, "TOKEN_INVALID")
	e.InitWS(p.AccessToken)
	c := e.InitWS(p.AccessToken)
	pollUntil(t, "two open sockets", func() bool { return strings.Contains(metrics(t, e), "gqlauth_ws_connections 2\n") })
	apptest.WantOK(t, e.Post(`mutation($t: String) { logout(refreshToken: $t) }`, map[string]any{"t": p.RefreshToken}))
	wantClose(t, c, 4403, "SESSION_REVOKED")
	pollUntil(t, "the closes to be counted", func() bool {
		m := metrics(t, e)
		return strings.Contains(m, "gqlauth_ws_connections 0\n") &&
			strings.Contains(m, `gqlauth_ws_closes_total{reason="SESSION_REVOKED"} 2`) &&
			strings.Contains(m, `gqlauth_ws_closes_total{reason="TOKEN_INVALID"} 1`) &&
			strings.Contains(m, "gqlauth_ws_revocation_close_seconds_count 2\n")
	})
}

func metrics(t *testing.T, e *apptest.Env) string {
	t.Helper()
	status, body := e.Get("/metrics")
	if status != http.StatusOK {
		t.Fatalf("/metrics: %d", status)
	}
	return body
}

// Shutdown does not wait on open sockets (http.Server.Shutdown does not track them): they are closed
// with 1001 and Serve returns.
func TestWebSocketShutdown(t *testing.T) {
	t.Parallel()
	e := apptest.New(t, testdb.SQLite(t), apptest.Options{Vars: map[string]string{"SHUTDOWN_TIMEOUT": "30s"}})
	p := register(t, e)
	c := e.InitWS(p.AccessToken)
	if err := c.Subscribe(apptest.WSContext(t), "ev", eventsQ, nil); err != nil {
		t.Fatal(err)
	}
	idle := e.DialWS(wsclient.Options{}) // upgraded, not initialised
	pollUntil(t, "the subscription", func() bool { return e.App.Sockets.Subscriptions() == 1 })
	stopped := make(chan struct{})
	go func() { e.Server.Close(); close(stopped) }()
	wantClose(t, c, 1001, "going away")
	wantClose(t, idle, 1001, "going away")
	select {
	case <-stopped:
	case <-time.After(apptest.WSWait):
		t.Fatal("the server did not stop with sockets open")
	}
}

// Sockets of one account initialised at the same moment: exactly WS_MAX_CONNECTIONS_PER_USER get in.
func TestWebSocketMaxConnectionsPerUserConcurrent(t *testing.T) {
	t.Parallel()
	e := apptest.New(t, testdb.SQLite(t), apptest.Options{Vars: map[string]string{"WS_MAX_CONNECTIONS_PER_USER": "3"}})
	p := register(t, e)
	const n = 12
	conns := make([]*wsclient.Conn, n)
	for i := range conns {
		conns[i] = e.DialWS(wsclient.Options{})
	}
	results := make(chan string, n)
	var start sync.WaitGroup
	start.Add(1)
	for _, c := range conns {
		go func() {
			start.Wait()
			if err := c.Init(apptest.WSContext(t), map[string]any{"Authorization": "Bearer " + p.AccessToken}); err != nil {
				results <- err.Error()
				return
			}
			if m, err := c.Next(apptest.WSContext(t)); err == nil {
				results <- m.Type
				return
			}
			code, reason, _ := c.Closed(apptest.WSContext(t))
			results <- fmt.Sprint(code, " ", reason)
		}()
	}
	start.Done()
	got := map[string]int{}
	for range n {
		got[<-results]++
	}
	if got["connection_ack"] != 3 || got["4429 TOO_MANY_CONNECTIONS"] != n-3 {
		t.Fatalf("outcomes %v, want 3 acks and %d closes 4429", got, n-3)
	}
}

// Only graphql-transport-ws is spoken: a client that offers no subprotocol, or only the legacy
// graphql-ws (subscriptions-transport-ws), is closed with 4406.
func TestWebSocketSubprotocol(t *testing.T) {
	t.Parallel()
	e := apptest.New(t, testdb.SQLite(t), apptest.Options{})
	for _, offered := range [][]string{{}, {"graphql-ws"}} {
		c := e.DialWS(wsclient.Options{Subprotocols: offered})
		wantClose(t, c, 4406, "subprotocol not acceptable: use graphql-transport-ws")
	}
	c := e.DialWS(wsclient.Options{Subprotocols: []string{"graphql-ws", "graphql-transport-ws"}})
	if err := c.Init(apptest.WSContext(t), nil); err != nil {
		t.Fatal(err)
	}
	wantClose(t, c, 4403, "TOKEN_MISSING")
}

// The number of open sockets is reported as it changes (cmd/server sizes the memory limit from it),
// upgraded-but-uninitialised sockets included, and back to zero when they close.
func TestWebSocketOpenCountIsReported(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var seen []int
	e := apptest.New(t, testdb.SQLite(t), apptest.Options{OnSockets: func(open int) {
		mu.Lock()
		seen = append(seen, open)
		mu.Unlock()
	}})
	last := func() int {
		mu.Lock()
		defer mu.Unlock()
		if len(seen) == 0 {
			return -1
		}
		return seen[len(seen)-1]
	}
	p := register(t, e)
	a := e.InitWS(p.AccessToken)
	b := e.DialWS(wsclient.Options{})
	pollUntil(t, "two open sockets reported", func() bool { return last() == 2 })
	a.Close()
	b.Close()
	pollUntil(t, "no open socket reported", func() bool { return last() == 0 })
}

// An idle socket holds no goroutine of its own: the connection leaves net/http for the event loop,
// its timers are runtime timers, and a sessionEvents stream is read only when its resolver signals an
// event. Counted as the goroutines with a frame of this package (gqlgen's transport kept four per
// socket, under httpapi's handler). Not parallel: it counts every socket of the process.
func TestWebSocketIdleSocketsHoldNoGoroutine(t *testing.T) {
	e := apptest.New(t, testdb.SQLite(t), apptest.Options{})
	email := "ws-no-goroutine@example.com"
	p := e.Register(email, pw)
	const n = 20
	conns := make([]*wsclient.Conn, n)
	for i := range conns {
		conns[i] = e.InitWS(p.AccessToken)
		if err := conns[i].Subscribe(apptest.WSContext(t), "ev", eventsQ, nil); err != nil {
			t.Fatal(err)
		}
	}
	pollUntil(t, "the subscriptions", func() bool { return e.App.Sockets.Subscriptions() == n })
	pollUntil(t, "no goroutine of the sockets", func() bool { return socketGoroutines() == 0 })
	// And they are live: an event reaches every one.
	e.Login(email, pw)
	for _, c := range conns {
		if m, err := c.Next(apptest.WSContext(t)); err != nil || m.Type != "next" || !strings.Contains(string(m.Payload), "SESSION_CREATED") {
			t.Fatalf("%+v %v, want the SESSION_CREATED event", m, err)
		}
	}
}

// socketGoroutines counts the goroutines running code of httpapi's sockets.
func socketGoroutines() int {
	buf := make([]byte, 1<<22)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "gqlauth/httpapi.(*socket)") || strings.Contains(g, "gqlauth/httpapi.(*stream)") ||
			strings.Contains(g, "gqlauth/httpapi.(*Sockets)") {
			n++
		}
	}
	return n
}

// graphql-ws beyond subscriptions: a query runs on the socket (next, then complete), and a subscribe
// whose id is active closes the socket with 4409.
func TestWebSocketOperations(t *testing.T) {
	t.Parallel()
	e := apptest.New(t, testdb.SQLite(t), apptest.Options{})
	email := "ws-operations@example.com"
	p := e.Register(email, pw)
	c := e.InitWS(p.AccessToken)
	if err := c.Subscribe(apptest.WSContext(t), "q", `query { me { email } }`, nil); err != nil {
		t.Fatal(err)
	}
	if m, err := c.Next(apptest.WSContext(t)); err != nil || m.Type != "next" || m.ID != "q" || !strings.Contains(string(m.Payload), email) {
		t.Fatalf("%+v %v, want next q with the e-mail", m, err)
	}
	if m, err := c.Next(apptest.WSContext(t)); err != nil || m.Type != "complete" || m.ID != "q" {
		t.Fatalf("%+v %v, want complete q", m, err)
	}
	for range 2 {
		if err := c.Subscribe(apptest.WSContext(t), "ev", eventsQ, nil); err != nil {
			t.Fatal(err)
		}
	}
	wantClose(t, c, 4409, "subscriber for ev already exists")
}

// The close handshake, frame by frame (RFC 6455, 5.5.1): the server's close frame, answered by the
// client's, is followed by the end of the connection, not by a second close frame (browsers fail a
// socket that gets one: 1006 instead of the server's 4403). A client's close is answered once.
func TestWebSocketCloseHandshake(t *testing.T) {
	t.Parallel()
	e := apptest.New(t, testdb.SQLite(t), apptest.Options{})
	for _, tc := range []struct {
		name        string
		clientFirst bool
	}{{"server closes", false}, {"client closes", true}} {
		t.Run(tc.name, func(t *testing.T) {
			conn, r := rawWebSocket(t, e)
			if tc.clientFirst {
				writeFrame(t, conn, 0x8, []byte{0x03, 0xe8}) // 1000
			} else {
				writeFrame(t, conn, 0x1, []byte(`{"type":"connection_init","payload":{"Authorization":"Bearer garbage"}}`))
			}
			op, payload := readFrame(t, r)
			if op != 0x8 || len(payload) < 2 {
				t.Fatalf("got opcode %d %q, want a close", op, payload)
			}
			code := int(payload[0])<<8 | int(payload[1])
			if want := map[bool]int{false: 4403, true: 1000}[tc.clientFirst]; code != want {
				t.Fatalf("close %d %q, want %d", code, payload[2:], want)
			}
			if !tc.clientFirst {
				writeFrame(t, conn, 0x8, payload[:2]) // the client's answer
			}
			_ = conn.SetReadDeadline(time.Now().Add(apptest.WSWait))
			if b, err := r.ReadByte(); err == nil {
				t.Fatalf("after the close handshake the server wrote more (first byte %#x), want the connection's end", b)
			} else if ne := net.Error(nil); errors.As(err, &ne) && ne.Timeout() {
				t.Fatal("the server kept the connection open after the close handshake")
			}
		})
	}
}

// rawWebSocket opens a graphql-transport-ws socket by hand, for tests of the framing itself.
func rawWebSocket(t *testing.T, e *apptest.Env) (net.Conn, *bufio.Reader) {
	t.Helper()
	host := strings.TrimPrefix(e.Server.URL, "http://")
	conn, err := net.DialTimeout("tcp", host, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(apptest.WSWait))
	fmt.Fprintf(conn, "GET /graphql HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: graphql-transport-ws\r\n\r\n", host)
	r := bufio.NewReader(conn)
	res, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: %s", res.Status)
	}
	return conn, r
}

// writeFrame writes one final, masked client frame (payload < 126 bytes).
func writeFrame(t *testing.T, conn net.Conn, op byte, payload []byte) {
	t.Helper()
	mask := []byte{1, 2, 3, 4}
	frame := append([]byte{0x80 | op, 0x80 | byte(len(payload))}, mask...)
	for i, b := range payload {
		frame = append(frame, b^mask[i%4])
	}
	if _, err := conn.Write(frame); err != nil {
		t.Fatal(err)
	}
}

// readFrame reads one unmasked server frame.
func readFrame(t *testing.T, r *bufio.Reader) (op byte, payload []byte) {
	t.Helper()
	head := make([]byte, 2)
	if _, err := io.ReadFull(r, head); err != nil {
		t.Fatal(err)
	}
	n := int(head[1] & 0x7f)
	if n == 126 {
		ext := make([]byte, 2)
		if _, err := io.ReadFull(r, ext); err != nil {
			t.Fatal(err)
		}
		n = int(ext[0])<<8 | int(ext[1])
	}
	payload = make([]byte, n)
	if _, err := io.ReadFull(r, payload); err != nil {
		t.Fatal(err)
	}
	return head[0] & 0x0f, payload
}

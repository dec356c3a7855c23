package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

const (
	subprotocol  = "graphql-transport-ws"
	subscription = `subscription { sessionEvents { type sessionId current at } }`
)

// tool holds what both modes share: one HTTP client for the GraphQL calls and one per source address
// for the WebSocket handshakes.
type tool struct {
	o          options
	log        io.Writer
	metricsURL string         // the first server's /metrics
	tally      map[string]int // logoutall: closes by code, reason and whether the event came first
	missing    map[int64]int  // logoutall: sockets closed without their own event, by the other sessions' SESSION_REVOKED events they saw
	hc         *http.Client
	wsHC       []*http.Client
	runID      int64
	nextSrc    atomic.Uint64
}

func newTool(o options, log io.Writer) *tool {
	t := &tool{o: o, log: log, hc: &http.Client{Timeout: o.timeout}, runID: time.Now().UnixNano(), metricsURL: metricsURLOf(o.urls[0]), tally: map[string]int{}, missing: map[int64]int{}}
	for i := range o.sources {
		d := &net.Dialer{Timeout: o.timeout}
		if o.sources > 1 {
			d.LocalAddr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(1+i))}
		}
		// A transport per source: the handshake's connection is hijacked by the socket, never pooled.
		t.wsHC = append(t.wsHC, &http.Client{Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}})
	}
	return t
}

func (t *tool) logf(format string, args ...any) { fmt.Fprintf(t.log, "wsload: "+format+"\n", args...) }

// gql posts one operation and decodes data.<field> into into; a GraphQL error becomes an error with
// its extensions.code.
func (t *tool) gql(ctx context.Context, endpoint, token, query string, vars map[string]any, field string, into any) error {
	body, err := json.Marshal(map[string]any{"query": query, "variables": vars})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := t.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var out struct {
		Data   map[string]json.RawMessage `json:"data"`
		Errors []struct {
			Message    string `json:"message"`
			Extensions struct {
				Code string `json:"code"`
			} `json:"extensions"`
		} `json:"errors"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&out); err != nil {
		return fmt.Errorf("%s: HTTP %d: %w", field, resp.StatusCode, err)
	}
	if len(out.Errors) > 0 {
		return fmt.Errorf("%s: %s (%s)", field, out.Errors[0].Extensions.Code, out.Errors[0].Message)
	}
	raw, ok := out.Data[field]
	if !ok {
		return fmt.Errorf("%s: HTTP %d, no data", field, resp.StatusCode)
	}
	return json.Unmarshal(raw, into)
}

type authPayload struct {
	AccessToken string `json:"accessToken"`
}

// register creates the account email and returns its first session's access token.
func (t *tool) register(ctx context.Context, endpoint, email string) (string, error) {
	var p authPayload
	err := t.gql(ctx, endpoint, "", `mutation($i: RegisterInput!) { register(input: $i) { accessToken } }`,
		map[string]any{"i": map[string]string{"email": email, "password": t.o.password}}, "register", &p)
	return p.AccessToken, err
}

// login opens one more session of email and returns its access token.
func (t *tool) login(ctx context.Context, endpoint, email string) (string, error) {
	var p authPayload
	err := t.gql(ctx, endpoint, "", `mutation($i: LoginInput!) { login(input: $i) { accessToken } }`,
		map[string]any{"i": map[string]string{"email": email, "password": t.o.password}}, "login", &p)
	return p.AccessToken, err
}

func (t *tool) email(i int) string { return fmt.Sprintf("wsload-%d-%d@example.com", t.runID, i) }

// sock is one graphql-ws connection subscribed to sessionEvents; a goroutine reads it until it closes.
type sock struct {
	c       *websocket.Conn
	events  atomic.Int64 // "next" messages received
	revoked atomic.Bool  // a SESSION_REVOKED event with current: true arrived
	others  atomic.Int64 // SESSION_REVOKED events with current: false
	onEvent func()       // called after every event (may be nil)

	done     chan struct{} // closed when the reader returns; the fields below are then set
	closedAt time.Time
	code     websocket.StatusCode // -1 when the connection ended without a close frame
	reason   string
}

// dial opens a socket on endpoint with token, waits for connection_ack and subscribes. The reader
// runs until the server closes the socket or ctx ends.
func (t *tool) dial(ctx context.Context, endpoint, token string, onEvent func()) (*sock, error) {
	wsURL := "ws" + strings.TrimPrefix(endpoint, "http")
	hc := t.wsHC[t.nextSrc.Add(1)%uint64(len(t.wsHC))]
	hctx, cancel := context.WithTimeout(ctx, t.o.timeout)
	defer cancel()
	c, resp, err := websocket.Dial(hctx, wsURL, &websocket.DialOptions{HTTPClient: hc, Subprotocols: []string{subprotocol}})
	if resp != nil && resp.Body != nil {
		_ = resp.Body.Close() // a refused upgrade's body; after an upgrade, an empty one
	}
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*sock, error) {
		_ = c.CloseNow()
		return nil, err
	}
	if c.Subprotocol() != subprotocol {
		return fail(fmt.Errorf("server chose subprotocol %q", c.Subprotocol()))
	}
	if err := writeJSON(hctx, c, map[string]any{"type": "connection_init", "payload": map[string]string{"Authorization": "Bearer " + token}}); err != nil {
		return fail(err)
	}
	for {
		m, err := readMsg(hctx, c)
		if err != nil {
			return fail(fmt.Errorf("waiting for connection_ack: %w", err))
		}
		if m.Type == "connection_ack" {
			break
		}
		if m.Type == "ping" {
			if err := writeJSON(hctx, c, map[string]string{"type": "pong"}); err != nil {
				return fail(err)
			}
		}
	}
	if err := writeJSON(hctx, c, map[string]any{"id": "1", "type": "subscribe", "payload": map[string]string{"query": subscription}}); err != nil {
		return fail(err)
	}
	s := &sock{c: c, onEvent: onEvent, done: make(chan struct{})}
	go s.read(ctx)
	return s, nil
}

type message struct {
	Type    string          `json:"type"`
	ID      string          `json:"id"`
	Payload json.RawMessage `json:"payload"`
}

func readMsg(ctx context.Context, c *websocket.Conn) (message, error) {
	var m message
	_, data, err := c.Read(ctx)
	if err != nil {
		return m, err
	}
	return m, json.Unmarshal(data, &m)
}

func writeJSON(ctx context.Context, c *websocket.Conn, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return c.Write(ctx, websocket.MessageText, data)
}

func (s *sock) read(ctx context.Context) {
	defer close(s.done)
	for {
		m, err := readMsg(ctx, s.c)
		if err != nil {
			// The time first: it is what the latency figures measure.
			s.closedAt = time.Now()
			s.code = websocket.CloseStatus(err)
			var ce websocket.CloseError
			if errors.As(err, &ce) {
				s.reason = ce.Reason
			}
			_ = s.c.CloseNow()
			return
		}
		switch m.Type {
		case "ping":
			_ = writeJSON(ctx, s.c, map[string]string{"type": "pong"})
		case "next":
			var p struct {
				Data struct {
					SessionEvents struct {
						Type    string `json:"type"`
						Current bool   `json:"current"`
					} `json:"sessionEvents"`
				} `json:"data"`
			}
			if json.Unmarshal(m.Payload, &p) == nil && p.Data.SessionEvents.Type == "SESSION_REVOKED" {
				if p.Data.SessionEvents.Current {
					s.revoked.Store(true)
				} else {
					s.others.Add(1)
				}
			}
			s.events.Add(1)
			if s.onEvent != nil {
				s.onEvent()
			}
		}
	}
}

func (s *sock) open() bool {
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

// openAll opens len(targets) sockets at no more than -rate per second and -parallel in flight. It
// returns the sockets that opened, in no particular order, and the errors of the others by text.
func (t *tool) openAll(ctx context.Context, targets []target, onEvent func()) ([]*sock, map[string]int) {
	var (
		mu    sync.Mutex
		socks []*sock
		errs  = map[string]int{}
		wg    sync.WaitGroup
		sem   = make(chan struct{}, t.o.parallel)
	)
	tick := time.NewTicker(time.Second / time.Duration(t.o.rate))
	defer tick.Stop()
	last := time.Now()
	for i, tg := range targets {
		select {
		case <-ctx.Done():
			wg.Wait()
			errs[ctx.Err().Error()] += len(targets) - i
			return socks, errs
		case <-tick.C:
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			s, err := t.dial(ctx, tg.endpoint, tg.token, onEvent)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs[err.Error()]++
				return
			}
			socks = append(socks, s)
		}()
		if len(targets) >= 1000 && time.Since(last) > 5*time.Second {
			last = time.Now()
			t.logf("%d/%d sockets dialled", i+1, len(targets))
		}
	}
	wg.Wait()
	return socks, errs
}

type target struct{ endpoint, token string }

// waitUntil polls cond every 5 ms until it holds or d passes; it reports whether it held.
func waitUntil(ctx context.Context, d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
	return true
}

// closeAll drops the sockets without the closing handshake (which waits for the peer, socket by socket).
func closeAll(socks []*sock) {
	for _, s := range socks {
		_ = s.c.CloseNow()
	}
}

// Package wsclient is a small graphql-ws client (subprotocol graphql-transport-ws, over
// github.com/coder/websocket) for tests and load tools: it dials, sends the protocol's messages,
// answers the server's pings, and reports the messages received and the close code and reason.
package wsclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// Subprotocol is the graphql-ws protocol's WebSocket subprotocol.
const Subprotocol = "graphql-transport-ws"

// Message is one graphql-ws message.
type Message struct {
	Type    string          `json:"type"`
	ID      string          `json:"id,omitempty"`
	Payload json.RawMessage `json:"payload,omitempty"`
}

// Options configure Dial.
type Options struct {
	Origin string      // the Origin header, if any
	Header http.Header // more headers
	// NoPong leaves the server's pings unanswered (to test the keep-alive).
	NoPong bool
	// Subprotocols replace the offered subprotocols (nil: graphql-transport-ws alone; empty, not
	// nil: none).
	Subprotocols []string
}

// Conn is an open graphql-ws connection. Its reader runs until the socket closes.
type Conn struct {
	ws     *websocket.Conn
	noPong bool
	msgs   chan Message
	done   chan struct{}

	mu     sync.Mutex
	code   websocket.StatusCode
	reason string
	err    error
}

// Dial opens a socket to url (http:// or ws://, the /graphql endpoint) with the graphql-transport-ws
// subprotocol. On a refused upgrade it returns the response (status and headers) with the error.
func Dial(ctx context.Context, url string, opts Options) (*Conn, *http.Response, error) {
	url = strings.Replace(url, "http://", "ws://", 1)
	url = strings.Replace(url, "https://", "wss://", 1)
	h := http.Header{}
	for k, v := range opts.Header {
		h[k] = v
	}
	if opts.Origin != "" {
		h.Set("Origin", opts.Origin)
	}
	protocols := []string{Subprotocol}
	if opts.Subprotocols != nil {
		protocols = opts.Subprotocols
	}
	ws, res, err := websocket.Dial(ctx, url, &websocket.DialOptions{Subprotocols: protocols, HTTPHeader: h})
	if err != nil {
		return nil, res, err
	}
	ws.SetReadLimit(1 << 20)
	c := &Conn{ws: ws, noPong: opts.NoPong, msgs: make(chan Message, 256), done: make(chan struct{})}
	go c.read()
	return c, res, nil
}

func (c *Conn) read() {
	defer close(c.done)
	defer close(c.msgs)
	for {
		_, b, err := c.ws.Read(context.Background())
		if err != nil {
			c.mu.Lock()
			c.code, c.err = websocket.CloseStatus(err), err
			var ce websocket.CloseError
			if errors.As(err, &ce) {
				c.reason = ce.Reason
			}
			c.mu.Unlock()
			return
		}
		var m Message
		if err := json.Unmarshal(b, &m); err != nil {
			continue
		}
		if m.Type == "ping" && !c.noPong {
			_ = c.Send(context.Background(), Message{Type: "pong"})
			continue
		}
		select {
		case c.msgs <- m:
		default: // a test that stopped reading loses messages rather than blocking the close
		}
	}
}

// Send writes m.
func (c *Conn) Send(ctx context.Context, m Message) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return c.SendRaw(ctx, b)
}

// SendRaw writes b as one text message.
func (c *Conn) SendRaw(ctx context.Context, b []byte) error {
	return c.ws.Write(ctx, websocket.MessageText, b)
}

// Init sends connection_init with payload (nil: no payload).
func (c *Conn) Init(ctx context.Context, payload map[string]any) error {
	m := Message{Type: "connection_init"}
	if payload != nil {
		b, err := json.Marshal(payload)
		if err != nil {
			return err
		}
		m.Payload = b
	}
	return c.Send(ctx, m)
}

// InitBearer sends connection_init with {"Authorization": "Bearer <token>"} and waits for the ack.
func (c *Conn) InitBearer(ctx context.Context, token string) error {
	if err := c.Init(ctx, map[string]any{"Authorization": "Bearer " + token}); err != nil {
		return err
	}
	m, err := c.Next(ctx)
	if err != nil {
		return err
	}
	if m.Type != "connection_ack" {
		return fmt.Errorf("wsclient: got %s, want connection_ack", m.Type)
	}
	return nil
}

// Subscribe sends subscribe with id, query and variables.
func (c *Conn) Subscribe(ctx context.Context, id, query string, vars map[string]any) error {
	b, err := json.Marshal(map[string]any{"query": query, "variables": vars})
	if err != nil {
		return err
	}
	return c.Send(ctx, Message{Type: "subscribe", ID: id, Payload: b})
}

// Complete ends the subscription id.
func (c *Conn) Complete(ctx context.Context, id string) error {
	return c.Send(ctx, Message{Type: "complete", ID: id})
}

// ErrClosed is returned by Next once the socket has closed and every message has been read.
var ErrClosed = errors.New("wsclient: socket closed")

// Next returns the next message (pings are answered, not returned), ErrClosed after the close, or
// ctx's error.
func (c *Conn) Next(ctx context.Context) (Message, error) {
	select {
	case m, ok := <-c.msgs:
		if !ok {
			return Message{}, ErrClosed
		}
		return m, nil
	case <-ctx.Done():
		return Message{}, ctx.Err()
	}
}

// Closed returns the close code (-1 when the socket ended without a close frame) and reason, after
// waiting for the close or until ctx ends (then it returns ctx's error).
func (c *Conn) Closed(ctx context.Context) (code int, reason string, err error) {
	select {
	case <-c.done:
	case <-ctx.Done():
		return 0, "", ctx.Err()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return int(c.code), c.reason, nil
}

// Done is closed when the socket has closed.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Close closes the socket normally (1000) without waiting long for the server.
func (c *Conn) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	go func() { <-ctx.Done(); _ = c.ws.CloseNow() }()
	_ = c.ws.Close(websocket.StatusNormalClosure, "")
}

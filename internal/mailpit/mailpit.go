// Package mailpit is a small client of Mailpit's REST API for tests: it finds the messages sent to
// one recipient, waits for them, and reads their text and HTML. Tests share one Mailpit, so each
// test uses its own recipient addresses (Address) and never deletes anything.
package mailpit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// Client reads messages from the Mailpit whose API is at BaseURL (e.g. http://127.0.0.1:8025).
type Client struct {
	BaseURL string
	HTTP    *http.Client
}

// New returns a client of the Mailpit API at baseURL.
func New(baseURL string) *Client {
	return &Client{BaseURL: strings.TrimRight(baseURL, "/"), HTTP: &http.Client{Timeout: 10 * time.Second}}
}

// Address returns a recipient address of its own for the test, such as
// "t-3f9a0c1d2e4b@example.com": tests that share a Mailpit tell their messages apart by it.
func Address(t testing.TB) string {
	t.Helper()
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return "t-" + hex.EncodeToString(b) + "@example.com"
}

// Addr is a mail address as Mailpit reports it.
type Addr struct {
	Name    string
	Address string
}

// Summary is a message as Mailpit's search lists it.
type Summary struct {
	ID        string // Mailpit's id (for Message)
	MessageID string // the Message-ID header, without angle brackets
	From      Addr
	To        []Addr
	Subject   string
	Created   time.Time
}

// Message is one message in full.
type Message struct {
	ID        string
	MessageID string
	From      Addr
	To        []Addr
	Subject   string
	Date      time.Time
	Text      string // the text/plain part
	HTML      string // the text/html part
}

// get decodes the JSON answer to GET path into v.
func (c *Client) get(ctx context.Context, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.BaseURL+path, nil)
	if err != nil {
		return err
	}
	res, err := c.HTTP.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("mailpit: GET %s: %s", path, res.Status)
	}
	return json.NewDecoder(res.Body).Decode(v)
}

// Search returns the messages addressed to exactly to (To, case-insensitive), newest first.
// Mailpit's own to: search matches substrings, so its answer is filtered here.
func (c *Client) Search(ctx context.Context, to string) ([]Summary, error) {
	q := url.Values{"query": {`to:"` + to + `"`}, "limit": {"1000"}}
	var res struct {
		Messages []Summary `json:"messages"`
	}
	if err := c.get(ctx, "/api/v1/search?"+q.Encode(), &res); err != nil {
		return nil, err
	}
	out := res.Messages[:0]
	for _, m := range res.Messages {
		for _, a := range m.To {
			if strings.EqualFold(a.Address, to) {
				out = append(out, m)
				break
			}
		}
	}
	return out, nil
}

// Message returns the message with Mailpit id id.
func (c *Client) Message(ctx context.Context, id string) (*Message, error) {
	var m Message
	if err := c.get(ctx, "/api/v1/message/"+url.PathEscape(id), &m); err != nil {
		return nil, err
	}
	return &m, nil
}

// Count returns how many messages were sent to to; it fails the test when Mailpit does not answer.
func (c *Client) Count(t testing.TB, to string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ms, err := c.Search(ctx, to)
	if err != nil {
		t.Fatal(err)
	}
	return len(ms)
}

// WaitFor waits up to timeout until at least n messages were sent to to, then returns them in full,
// oldest first. It fails the test when they do not arrive in time.
func (c *Client) WaitFor(t testing.TB, to string, n int, timeout time.Duration) []*Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout+10*time.Second)
	defer cancel()
	deadline := time.Now().Add(timeout)
	for {
		ms, err := c.Search(ctx, to)
		if err != nil {
			t.Fatal(err)
		}
		if len(ms) >= n {
			out := make([]*Message, 0, len(ms))
			for i := len(ms) - 1; i >= 0; i-- {
				m, err := c.Message(ctx, ms[i].ID)
				if err != nil {
					t.Fatal(err)
				}
				out = append(out, m)
			}
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("mailpit: %d message(s) to %s after %v, want %d", len(ms), to, timeout, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// WaitOne waits up to timeout for the first message to to and returns it.
func (c *Client) WaitOne(t testing.TB, to string, timeout time.Duration) *Message {
	t.Helper()
	return c.WaitFor(t, to, 1, timeout)[0]
}

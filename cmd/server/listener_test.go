package main

import (
	"bufio"
	"errors"
	"net"
	"runtime"
	"testing"
	"time"
)

// Connections that completed their handshake but were not yet accepted when the listener closed are
// still handed out, with what their clients sent; after Close, new connections are refused.
func TestDrainingListenerServesTheAcceptQueue(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the accept queue is drained on Linux only")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &drainingListener{TCPListener: ln.(*net.TCPListener)}
	const n = 5
	var clients []net.Conn
	for range n { // nobody accepts yet: the kernel queues them
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Write([]byte("hello\n")); err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if c, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
		c.Close()
		t.Fatal("a new connection was accepted after Close")
	}
	for i := range n {
		c, err := l.Accept()
		if err != nil {
			t.Fatalf("connection %d of the queue was lost: %v", i, err)
		}
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil || line != "hello\n" {
			t.Fatalf("connection %d: read %q, %v", i, line, err)
		}
		c.Close()
	}
	if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after the queue: %v, want net.ErrClosed", err)
	}
}

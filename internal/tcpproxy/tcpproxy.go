// Package tcpproxy is a loopback TCP proxy for outage tests: it forwards connections to a real
// service (Postgres, Redis) and can cut them all and refuse new ones, as a crashed or stopped service
// would, then come back on the same address; or freeze them, as a hung service or a network that
// drops packets would: connections stay open and nothing flows until Thaw. Only tests use it.
package tcpproxy

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"
)

// Proxy forwards 127.0.0.1:<port> to a target address.
type Proxy struct {
	target string
	addr   string

	mu     sync.Mutex
	ln     net.Listener // nil while cut
	conns  map[net.Conn]struct{}
	frozen bool
	thawed *sync.Cond // broadcast when frozen turns false
	wg     sync.WaitGroup
}

// New starts a proxy to target on a free loopback port and stops it when the test ends.
func New(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := new(net.ListenConfig).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{target: target, addr: ln.Addr().String(), conns: map[net.Conn]struct{}{}}
	p.thawed = sync.NewCond(&p.mu)
	p.serve(ln)
	t.Cleanup(p.close)
	return p
}

// Addr is the proxy's host:port; it stays the same across Cut and Restore.
func (p *Proxy) Addr() string { return p.addr }

// Cut closes the listener (new connections are refused) and every open connection (their reads and
// writes fail), like a service that went down.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		_ = p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		_ = c.Close()
	}
	clear(p.conns)
}

// Freeze stops every byte in both directions, on open and new connections, without closing anything.
func (p *Proxy) Freeze() {
	p.mu.Lock()
	p.frozen = true
	p.mu.Unlock()
}

// Thaw lets the bytes held by Freeze flow again, in order, as TCP would deliver them once the network
// heals.
func (p *Proxy) Thaw() {
	p.mu.Lock()
	p.frozen = false
	p.mu.Unlock()
	p.thawed.Broadcast()
}

// waitThawed blocks while the proxy is frozen.
func (p *Proxy) waitThawed() {
	p.mu.Lock()
	for p.frozen {
		p.thawed.Wait()
	}
	p.mu.Unlock()
}

// Restore listens on the same address again; it retries for a few seconds if the port is busy.
func (p *Proxy) Restore() error {
	var err error
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		var ln net.Listener
		if ln, err = new(net.ListenConfig).Listen(context.Background(), "tcp", p.addr); err == nil {
			p.serve(ln)
			return nil
		}
	}
	return err
}

func (p *Proxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	p.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.wg.Go(func() { p.forward(c) })
		}
	})
}

func (p *Proxy) forward(c net.Conn) {
	up, err := (&net.Dialer{Timeout: 2 * time.Second}).DialContext(context.Background(), "tcp", p.target)
	if err != nil {
		_ = c.Close()
		return
	}
	if !p.track(c, up) { // cut while dialling
		_ = c.Close()
		_ = up.Close()
		return
	}
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				p.waitThawed()
				if _, werr := dst.Write(buf[:n]); werr != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
		done <- struct{}{}
	}
	go pipe(up, c)
	go pipe(c, up)
	<-done
	_ = c.Close()
	_ = up.Close()
	<-done
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, up)
	p.mu.Unlock()
}

// track registers both ends unless the proxy is cut.
func (p *Proxy) track(c, up net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln == nil {
		return false
	}
	p.conns[c], p.conns[up] = struct{}{}, struct{}{}
	return true
}

func (p *Proxy) close() {
	p.Thaw()
	p.Cut()
	p.wg.Wait()
}

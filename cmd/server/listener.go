package main

import (
	"net"
	"sync"
)

// drainingListener is the server's listener. Its Close (which http.Server.Shutdown calls) first takes
// the connections already waiting in the kernel's accept queue, then closes the socket: from then on
// new connections are refused, and the drained ones are handed to the server by the next Accept calls
// before Accept reports the listener closed. Without this, SIGTERM under load resets every connection
// a client had opened but the server had not accepted yet.
type drainingListener struct {
	*net.TCPListener

	mu      sync.Mutex
	drained []net.Conn
}

func (l *drainingListener) Accept() (net.Conn, error) {
	if c := l.next(); c != nil {
		return c, nil
	}
	c, err := l.TCPListener.Accept()
	if err != nil {
		if d := l.next(); d != nil { // closed meanwhile: serve what Close drained first
			return d, nil
		}
	}
	return c, err
}

func (l *drainingListener) next() net.Conn {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.drained) == 0 {
		return nil
	}
	c := l.drained[0]
	l.drained = l.drained[1:]
	return c
}

func (l *drainingListener) Close() error {
	conns := drainQueue(l.TCPListener)
	l.mu.Lock()
	l.drained = append(l.drained, conns...)
	l.mu.Unlock()
	return l.TCPListener.Close()
}

//go:build !linux

package main

import "net"

// drainQueue is a no-op where accept4 is not available: closing the listener resets the connections
// still in its accept queue (see drain_linux.go).
func drainQueue(*net.TCPListener) []net.Conn { return nil }

//go:build linux

package main

import (
	"net"
	"os"
	"syscall"
)

// drainQueue accepts, without blocking, every connection the kernel has already completed on ln:
// clients that finished their TCP handshake before the listener closed, but that the server had not
// accepted yet. Closing the listener would reset them, losing requests they may already have sent.
func drainQueue(ln *net.TCPListener) []net.Conn {
	raw, err := ln.SyscallConn()
	if err != nil {
		return nil
	}
	var conns []net.Conn
	_ = raw.Control(func(fd uintptr) {
		for {
			nfd, _, err := syscall.Accept4(int(fd), syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC)
			if err == syscall.EINTR || err == syscall.ECONNABORTED {
				continue
			}
			if err != nil { // EAGAIN: the queue is empty
				return
			}
			f := os.NewFile(uintptr(nfd), "accepted")
			c, err := net.FileConn(f) // dups the descriptor
			_ = f.Close()
			if err == nil {
				conns = append(conns, c)
			}
		}
	})
	return conns
}

package testenv

import (
	"errors"
	"fmt"
	"net"
	"testing"
	"time"
)

// FreeAddr returns a loopback address (127.0.0.1:PORT) that nothing listens
// on: a port the kernel just handed out and that was closed again, for a
// server the test starts (or for an endpoint that must refuse connections).
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// ErrExited is what WaitDial returns when the process it waited for exited
// before addr accepted a connection.
var ErrExited = errors.New("exited before it listened")

// WaitDial waits until addr accepts a TCP connection, trying every 10 ms for
// up to timeout. It returns ErrExited as soon as exited is closed (a nil
// channel never is: pass nil when there is no process to watch), and an
// error naming addr when the time is up. It leaves the reporting (and any
// clean-up before it) to the caller.
func WaitDial(addr string, timeout time.Duration, exited <-chan struct{}) error {
	deadline := time.Now().Add(timeout)
	for {
		select {
		case <-exited:
			return ErrExited
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nothing listens on %s after %v", addr, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

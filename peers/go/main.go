// Chapter 14's peer from another language: the book's routes on Go's
// net/http, where every connection is served by a goroutine (Go's stackful
// coroutines, M:N on a thread per core, over epoll).
//
//	cd peers/go && go run . --port 8034
//	cargo run --release --example load -- -n 5 -c 5 'http://127.0.0.1:8034/sleep?ms=2000'
//
// Like the book's servers it binds 127.0.0.1 and prints `listening on
// http://ADDR` once it listens.
package main

import (
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"
)

// ANCHOR: handler
func handle(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		http.Error(w, "method not allowed: only GET", http.StatusMethodNotAllowed)
		return
	}
	switch r.URL.Path {
	case "/":
		fmt.Fprint(w, "Hello\n")
	case "/sleep":
		ms, err := strconv.ParseUint(r.URL.Query().Get("ms"), 10, 32)
		if err != nil {
			http.Error(w, "bad request: ms must be a whole number of milliseconds", http.StatusBadRequest)
			return
		}
		// Blocking code: the goroutine parks on the runtime's timer, its
		// thread runs other goroutines meanwhile.
		time.Sleep(time.Duration(ms) * time.Millisecond)
		fmt.Fprintf(w, "slept %d ms\n", ms)
	default:
		http.Error(w, "not found: try / or /sleep?ms=N", http.StatusNotFound)
	}
}
// ANCHOR_END: handler

func main() {
	host := flag.String("host", "127.0.0.1", "address to listen on")
	port := flag.Int("port", 8034, "port to listen on (0 picks a free one)")
	flag.Parse()
	listener, err := net.Listen("tcp", net.JoinHostPort(*host, strconv.Itoa(*port)))
	if err != nil {
		fmt.Fprintf(os.Stderr, "error: cannot listen on %s:%d: %v\n", *host, *port, err)
		os.Exit(1)
	}
	fmt.Printf("listening on http://%s\n", listener.Addr())
	server := &http.Server{Handler: http.HandlerFunc(handle), ReadHeaderTimeout: 5 * time.Second}
	if err := server.Serve(listener); err != nil {
		fmt.Fprintf(os.Stderr, "error: %v\n", err)
		os.Exit(1)
	}
}

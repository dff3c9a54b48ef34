// scale_go: the Go peer of bench/inspector/scale_target.cpp, for Delve. N goroutines, each parked at call depth
// 15 (level01 .. level15, not inlined) on a channel receive, a channel send, a mutex, a sleep or a condition
// variable. Prints "scale_go: pid P, ..." then READY once every goroutine has reached its blocking call, and runs
// until SIGTERM or SIGINT.
//
//	scale_go -goroutines N
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

type blockers struct {
	neverSent     chan int
	neverReceived chan int
	held          sync.Mutex
	condLock      sync.Mutex
	cond          *sync.Cond
	parked        int64
	returned      int // never reached: keeps each level's call from being the last thing it does
}

//go:noinline
func block(how int, b *blockers) {
	atomic.AddInt64(&b.parked, 1)
	switch how {
	case 0:
		<-b.neverSent
	case 1:
		b.neverReceived <- 1
	case 2:
		b.held.Lock()
	case 3:
		time.Sleep(24 * time.Hour)
	default:
		b.condLock.Lock()
		for {
			b.cond.Wait()
		}
	}
}

//go:noinline
func level01(how int, b *blockers) {
	level02(how, b)
	b.returned++
}

//go:noinline
func level02(how int, b *blockers) {
	level03(how, b)
	b.returned++
}

//go:noinline
func level03(how int, b *blockers) {
	level04(how, b)
	b.returned++
}

//go:noinline
func level04(how int, b *blockers) {
	level05(how, b)
	b.returned++
}

//go:noinline
func level05(how int, b *blockers) {
	level06(how, b)
	b.returned++
}

//go:noinline
func level06(how int, b *blockers) {
	level07(how, b)
	b.returned++
}

//go:noinline
func level07(how int, b *blockers) {
	level08(how, b)
	b.returned++
}

//go:noinline
func level08(how int, b *blockers) {
	level09(how, b)
	b.returned++
}

//go:noinline
func level09(how int, b *blockers) {
	level10(how, b)
	b.returned++
}

//go:noinline
func level10(how int, b *blockers) {
	level11(how, b)
	b.returned++
}

//go:noinline
func level11(how int, b *blockers) {
	level12(how, b)
	b.returned++
}

//go:noinline
func level12(how int, b *blockers) {
	level13(how, b)
	b.returned++
}

//go:noinline
func level13(how int, b *blockers) {
	level14(how, b)
	b.returned++
}

//go:noinline
func level14(how int, b *blockers) {
	level15(how, b)
	b.returned++
}

//go:noinline
func level15(how int, b *blockers) {
	block(how, b)
	b.returned++
}

func main() {
	goroutines := flag.Int("goroutines", 1000, "number of parked goroutines")
	flag.Parse()
	b := &blockers{neverSent: make(chan int), neverReceived: make(chan int)}
	b.cond = sync.NewCond(&b.condLock)
	b.held.Lock()
	for k := 0; k < *goroutines; k++ {
		go level01(k%5, b)
	}
	for atomic.LoadInt64(&b.parked) < int64(*goroutines) {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	fmt.Printf("scale_go: pid %d, %d goroutines at depth 15\nREADY\n", os.Getpid(), *goroutines)
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	<-signals
	os.Exit(0)
}

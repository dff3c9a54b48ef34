// Go peer for the fiberscope benchmarks: Gosched round trip, goroutine spawn+finish, unbuffered channel
// ping-pong, an empty cgo call and a cgo call whose C code calls back into Go once, all with GOMAXPROCS=1.
// Prints the same `BENCH name=... impl=go ns_per_op=...` lines as the C++ programs (median of several samples),
// timed on the wall clock or, with BENCH_CLOCK=cpu, on the process's CPU time.
package main

/*
extern void empty_c_function(void);
extern void c_calls_back_once(void);
*/
import "C"

import (
	"fmt"
	"os"
	"runtime"
	"sort"
	"sync"
	"syscall"
	"time"
)

const repetitions = 7

var cpuClock = os.Getenv("BENCH_CLOCK") == "cpu"

// nowNs reads the clock BENCH_CLOCK chose, in nanoseconds.
func nowNs() float64 {
	if cpuClock {
		var usage syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &usage); err == nil {
			return float64(usage.Utime.Nano() + usage.Stime.Nano())
		}
	}
	return float64(time.Now().UnixNano())
}

// medianNsPerOp runs body once to warm up, then repetitions times, and returns the median ns per iteration.
func medianNsPerOp(iterations int, body func(n int)) float64 {
	body(iterations/10 + 1)
	samples := make([]float64, 0, repetitions)
	for r := 0; r < repetitions; r++ {
		start := nowNs()
		body(iterations)
		samples = append(samples, (nowNs()-start)/float64(iterations))
	}
	sort.Float64s(samples)
	return samples[len(samples)/2]
}

func report(name string, nsPerOp float64) {
	fmt.Printf("BENCH name=%s impl=go ns_per_op=%.1f\n", name, nsPerOp)
	os.Stdout.Sync()
}

// Two goroutines each call Gosched n times; one operation is a round trip (A -> B -> A).
func yieldRoundTrip(n int) {
	done := make(chan struct{})
	go func() {
		for i := 0; i < n; i++ {
			runtime.Gosched()
		}
		close(done)
	}()
	for i := 0; i < n; i++ {
		runtime.Gosched()
	}
	<-done
}

func spawnFinish(n int) {
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() { wg.Done() }()
		wg.Wait()
	}
}

func channelPingPong(n int) {
	ping := make(chan int)
	pong := make(chan int)
	go func() {
		for v := range ping {
			pong <- v
		}
	}()
	for i := 0; i < n; i++ {
		ping <- i
		<-pong
	}
	close(ping)
}

func cgoCall(n int) {
	for i := 0; i < n; i++ {
		C.empty_c_function()
	}
}

//export goCallback
func goCallback() {}

func cgoCallWithCallback(n int) {
	for i := 0; i < n; i++ {
		C.c_calls_back_once()
	}
}

func main() {
	runtime.GOMAXPROCS(1)
	report("yield_round_trip", medianNsPerOp(1000000, yieldRoundTrip))
	report("spawn_finish", medianNsPerOp(1000000, spawnFinish))
	report("channel_ping_pong", medianNsPerOp(1000000, channelPingPong))
	report("foreign_call", medianNsPerOp(2000000, cgoCall))
	report("foreign_call_callback", medianNsPerOp(1000000, cgoCallWithCallback))
}

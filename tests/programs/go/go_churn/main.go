// go_churn: a healthy cgo program whose goroutines never stop crossing between Go and C, for the checks' zero
// false positive test. Workers loop over: cgo calls that sleep briefly in C, cgo calls whose C code calls back
// into Go (which grows its stack and allocates), plain syscalls, and channel hand-offs; runtime.GC runs all the
// time. Prints READY once every worker has started, then runs until killed.
package main

/*
#include <unistd.h>

extern void goChurnCallback(int depth);

static void c_sleep(void) { usleep(50); }

static void c_call_back(int depth) {
	goChurnCallback(depth);
	__asm__ volatile("" ::: "memory");  // keeps the call from being a tail call
}
*/
import "C"

import (
	"fmt"
	"os"
	"runtime"
	"sync"
	"time"
)

var sink [][]byte

var sinkLock sync.Mutex

// grow recurses with a large frame: the callback's goroutine stack is copied to a bigger one.
//
//go:noinline
func grow(depth int) int {
	var pad [512]byte
	pad[depth%512] = byte(depth)
	if depth == 0 {
		return int(pad[0])
	}
	return grow(depth-1) + int(pad[depth%512])
}

//export goChurnCallback
func goChurnCallback(depth int32) {
	grow(int(depth) * 8)
	sinkLock.Lock()
	sink = append(sink, make([]byte, 4096))
	if len(sink) > 256 {
		sink = sink[:0]
	}
	sinkLock.Unlock()
	if depth > 0 && depth%2 == 0 {
		C.c_call_back(C.int(depth - 1))  // nested: Go -> C -> Go -> C -> Go
	}
}

func worker(id int, hand chan int, started *sync.WaitGroup) {
	started.Done()
	for round := 0; ; round++ {
		switch (id + round) % 5 {
		case 0:
			C.c_sleep()
		case 1:
			C.c_call_back(C.int(round % 5))
		case 2:
			os.Getpid()
			f, err := os.Open("/proc/self/stat")
			if err == nil {
				buf := make([]byte, 256)
				f.Read(buf)
				f.Close()
			}
		case 3:
			select {
			case hand <- round:
			case v := <-hand:
				_ = v
			case <-time.After(time.Millisecond):
			}
		case 4:
			grow(round % 64)
		}
	}
}

func main() {
	const workers = 16
	hand := make(chan int)
	var started sync.WaitGroup
	started.Add(workers)
	for id := 0; id < workers; id++ {
		go worker(id, hand, &started)
	}
	go func() {
		for {
			runtime.GC()
			time.Sleep(2 * time.Millisecond)
		}
	}()
	started.Wait()
	fmt.Println("READY")
	select {}
}

// go_cgo: goroutines whose stacks cross between Go and C, each blocked at a known place. Prints "role goid" lines,
// then READY, and runs until killed.
//
//	in_c:            main.blockInC -> C.c_block (cgocall -> asmcgocall) -> c_block -> pause()
//	callback_parked: main.callIntoC -> C.c_call_back -> goCallback -> <-neverSent (parked inside a callback)
//	nested:          Go -> C -> Go -> C -> Go, parked at the innermost Go frame
//	after_callback:  Go -> C, which calls back into Go (returns) and then blocks in C
//
// With -wait-stdin, after_callback's C code blocks in read(0) instead of pause(): a test releases it by writing a
// byte to the program's stdin, and the C function returns into cgocall (where Go 7978's runtime throws
// "exitsyscall: syscall frame is no longer valid").
package main

/*
#include <unistd.h>
#include <stdint.h>

extern void goCallback(int depth);
extern void goReturns(void);

__attribute__((noinline)) static void c_block(void) {
	for (;;) pause();
}

__attribute__((noinline)) static void c_call_back(int depth) {
	goCallback(depth);
	__asm__ volatile("" ::: "memory");  // keeps the call from being a tail call
}

__attribute__((noinline)) static void c_back_then_block(int wait_stdin) {
	goReturns();
	if (wait_stdin) {
		char byte;
		while (read(0, &byte, 1) < 0) {
		}
		return;
	}
	for (;;) pause();
}
*/
import "C"

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

var (
	parked    int64
	neverSent = make(chan int)
	roles     sync.Map
)

func goid() int64 {
	buf := make([]byte, 64)
	buf = buf[:runtime.Stack(buf, false)]
	id, _ := strconv.ParseInt(strings.Fields(string(buf))[1], 10, 64)
	return id
}

func announce(role string) {
	roles.Store(role, goid())
	atomic.AddInt64(&parked, 1)
}

//export goCallback
func goCallback(depth C.int) {
	if depth > 1 {
		C.c_call_back(depth - 1)
		return
	}
	parkInCallback()
}

//go:noinline
func parkInCallback() { <-neverSent }

//export goReturns
func goReturns() { announce("after_callback") }

//go:noinline
func blockInC() { announce("in_c"); C.c_block() }

//go:noinline
func callIntoC(role string, depth int) { announce(role); C.c_call_back(C.int(depth)) }

//go:noinline
func callBackThenBlock(waitStdin bool) {
	wait := C.int(0)
	if waitStdin {
		wait = 1
	}
	C.c_back_then_block(wait)
	sayReturned() // the C call came back (stock runtime; Go 7978's runtime throws before this)
	<-neverSent
}

// Not inlined: Go 1.19's DWARF gives an inlined fmt.Println here the wrong call line (the pclntab's is right), and
// go_pclntab_test compares the two.
//
//go:noinline
func sayReturned() { fmt.Println("RETURNED") }

func main() {
	waitStdin := flag.Bool("wait-stdin", false, "after_callback's C code returns once a byte arrives on stdin")
	flag.Parse()
	go blockInC()
	go callIntoC("callback_parked", 1)
	go callIntoC("nested", 2)
	go callBackThenBlock(*waitStdin)
	for atomic.LoadInt64(&parked) < 4 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	out := bufio.NewWriter(os.Stdout)
	fmt.Fprintf(out, "main %d\n", goid())
	roles.Range(func(role, id any) bool { fmt.Fprintf(out, "%s %d\n", role, id); return true })
	fmt.Fprintln(out, "READY")
	out.Flush()
	<-neverSent
}

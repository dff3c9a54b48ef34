// go_states: a pure Go program with goroutines in every state fiberscope must show, each blocked at a known
// function (//go:noinline, so the chain is the same at every optimization level). Prints the goroutine ids it
// expects as "role goid" lines, then READY, and runs until killed.
//
//	go_states [-many N]   (N extra goroutines parked on a channel at call depth 15)
package main

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
	"syscall"
	"time"
)

var (
	parked     int64
	neverSent  = make(chan int)
	neverRecvd = make(chan int)
	held       sync.Mutex
	spin       int64
)

// goid parses this goroutine's id from runtime.Stack's header ("goroutine 18 [running]:"): the tests match it
// against the ids fiberscope reads from the g structures.
func goid() int64 {
	buf := make([]byte, 64)
	buf = buf[:runtime.Stack(buf, false)]
	fields := strings.Fields(string(buf))
	id, _ := strconv.ParseInt(fields[1], 10, 64)
	return id
}

var roles sync.Map

func announce(role string) {
	roles.Store(role, goid())
	atomic.AddInt64(&parked, 1)
}

//go:noinline
func blockChanReceive() { announce("chan_receive"); <-neverSent }

//go:noinline
func blockChanSend() { announce("chan_send"); neverRecvd <- 1 }

//go:noinline
func blockMutex() { announce("mutex"); held.Lock() }

//go:noinline
func blockSelect() {
	announce("select")
	select {
	case <-neverSent:
	case neverRecvd <- 2:
	}
}

//go:noinline
func blockSleep() { announce("sleep"); time.Sleep(24 * time.Hour) }

// A blocking read(2) on a pipe the runtime does not poll: the goroutine sits in _Gsyscall.
//
//go:noinline
func blockSyscall(fd int) {
	announce("syscall")
	buf := make([]byte, 1)
	syscall.Read(fd, buf)
}

//go:noinline
func runOnCPU() {
	announce("running")
	for {
		atomic.AddInt64(&spin, 1)
	}
}

//go:noinline
func blockLocked() {
	runtime.LockOSThread()
	announce("locked")
	<-neverSent
}

//go:noinline
func level(depth int) {
	if depth == 1 {
		atomic.AddInt64(&parked, 1)
		<-neverSent
		return
	}
	level(depth - 1)
	runtime.KeepAlive(depth)
}

func main() {
	many := flag.Int("many", 0, "extra goroutines parked on a channel at call depth 15")
	flag.Parse()
	held.Lock()
	var fds [2]int
	if err := syscall.Pipe(fds[:]); err != nil {
		panic(err)
	}
	starters := []func(){blockChanReceive, blockChanSend, blockMutex, blockSelect, blockSleep,
		func() { blockSyscall(fds[0]) }, runOnCPU, blockLocked}
	for _, start := range starters {
		go start()
	}
	for i := 0; i < *many; i++ {
		go level(15)
	}
	want := int64(len(starters) + *many)
	for atomic.LoadInt64(&parked) < want {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // every announced goroutine reaches its blocking call
	out := bufio.NewWriter(os.Stdout)
	fmt.Fprintf(out, "main %d\n", goid())
	roles.Range(func(role, id any) bool { fmt.Fprintf(out, "%s %d\n", role, id); return true })
	fmt.Fprintln(out, "READY")
	out.Flush()
	<-neverSent
}

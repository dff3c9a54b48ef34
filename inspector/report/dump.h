// Dump: the model of one `fiberscope dump` — every thread and fiber with its frames and arguments, the findings
// of the checks, and everything that could not be read. Plain data: no decoding, no printing.
//
// session/dump_builder.h fills it from a snapshot (fibers/, unwind/ and binary/ do the decoding), the reporters
// (text_reporter.h, json_reporter.h, folded_reporter.h) print it, and the golden tests build it by hand. Strings come from the target (fiber names,
// symbol names) and may hold any bytes: reporters escape them.
#pragma once

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace fiberscope::report {

// The stack a frame lives on: a fiber's own stack, its worker's system stack (foreign calls), or a thread's
// stack when the thread runs no fiber.
enum class StackKind : std::uint8_t { fiber, system, thread, unknown };
// "fiber", "system", "thread", "unknown".
std::string_view stack_kind_name(StackKind kind);

struct Argument {
  enum class Status : std::uint8_t { ok, optimized_out, unavailable, entry_value, error };
  std::string name;
  std::string value;    // formatted value ("7", "0x7ffd1000", "\"abc\""); empty unless status is ok
  Status status = Status::ok;
  std::string detail;   // why, for error / unavailable
};
// "ok", "optimized out", "unavailable", "entry value", "error".
std::string_view argument_status_name(Argument::Status status);

struct Frame {
  std::uint64_t pc = 0;
  std::string function;             // demangled; empty if no symbol covers pc
  std::uint64_t function_offset = 0;  // pc - function start; without a function, pc - the module's load bias
  std::string module;               // file name of the module holding pc, empty if none
  std::string file;                 // source file, empty without line info
  unsigned line = 0;                // 0 without line info
  bool inlined = false;             // an inlined call inside the next (outer) frame
  StackKind stack = StackKind::unknown;
  bool args_known = false;          // DWARF described the parameters (even if there are none)
  std::vector<Argument> args;
};

// A stack's frames, innermost first. Copies share one list until one of them changes it (the change copies
// first): the fibers parked at the same place share a single symbolized list (session::build_dump without
// arguments), and readers — reporters, the ui — never copy frames.
class FrameList {
 public:
  using const_iterator = std::vector<Frame>::const_iterator;
  using const_reverse_iterator = std::vector<Frame>::const_reverse_iterator;

  FrameList() = default;
  FrameList(std::vector<Frame> frames);  // implicit, so that `stack.frames = std::move(vector)` reads naturally
  FrameList(std::initializer_list<Frame> frames) : FrameList(std::vector<Frame>(frames)) {}

  const_iterator begin() const { return frames().begin(); }
  const_iterator end() const { return frames().end(); }
  const_reverse_iterator rbegin() const { return frames().rbegin(); }
  const_reverse_iterator rend() const { return frames().rend(); }
  std::size_t size() const { return frames().size(); }
  bool empty() const { return frames().empty(); }
  const Frame& operator[](std::size_t index) const { return frames()[index]; }
  const Frame& front() const { return frames().front(); }
  const Frame& back() const { return frames().back(); }

  // Changes copy a list that other stacks share first.
  void push_back(Frame frame) { owned().push_back(std::move(frame)); }
  Frame& mutable_at(std::size_t index) { return owned()[index]; }
  Frame& mutable_back() { return owned().back(); }

  // True when both are the same shared list (so equal, without comparing a frame).
  bool shares_with(const FrameList& other) const { return frames_ && frames_ == other.frames_; }
  // The shared list's address (null when empty and never shared): a key for caches of per-list work.
  const void* identity() const { return frames_.get(); }

 private:
  const std::vector<Frame>& frames() const;
  std::vector<Frame>& owned();

  std::shared_ptr<std::vector<Frame>> frames_;  // null: no frames
};

// Frames innermost first, and why the walk ended early if it did.
struct Stack {
  FrameList frames;
  std::string stop_reason;          // empty when the unwind reached the bottom frame
  bool truncated = false;           // cut at --depth
};

struct CodeLocation {
  std::uint64_t pc = 0;
  std::string function;
  std::string file;
  unsigned line = 0;
};

struct Fiber {
  std::uint64_t id = 0;
  std::string name;
  std::string state;                // "waiting", "running", ...
  std::string wait_reason;          // "chan receive", empty if none
  std::uint64_t wait_object = 0;
  std::optional<std::uint64_t> state_since_ns;    // target's CLOCK_MONOTONIC
  std::optional<std::uint64_t> time_in_state_ns;  // capture clock - state_since_ns, when both are known
  std::optional<int> thread;        // tid of the worker running it (or locked to it)
  // Where it was spawned. Shared: the fibers spawned at one place (thousands, often) point at one location.
  std::shared_ptr<const CodeLocation> created_by;
  std::string integrity;            // "", "in transition" or "torn" (seqlock)
  bool crashed = false;             // it ran on the thread whose signal ended the process (Dump::crash)
  Stack stack;
};

struct Thread {
  int tid = 0;
  std::string name;
  std::optional<std::uint64_t> fiber_id;  // the fiber it runs; its frames are then under that fiber
  Stack stack;
};

// A check's finding as the dump shows it (dump_finding in check_reporter.h makes one from a checks::Finding).
// `fiber_id` and `frame` say where it points.
struct Finding {
  std::string kind;                 // e.g. "invalid-syscall-frame"
  std::optional<std::uint64_t> fiber_id;
  std::string frame;
  std::string message;
};

// Something that could not be read; the rest of the dump is still good.
struct DumpError {
  std::string message;
  std::optional<std::uint64_t> fiber_id;
  std::optional<int> tid;
};

// Where the snapshot behind a dump was taken: a live process stopped for the copy, a live process read while it
// ran (--no-stop: records may be torn), or a core file.
struct Source {
  enum class Kind : std::uint8_t { live, live_no_stop, core };
  Kind kind = Kind::live;
  std::string core_path;            // the core file as the user named it; empty unless kind is core
};
// "live", "live-no-stop", "core".
std::string_view source_kind_name(Source::Kind kind);

// The signal that ended the process a core file was dumped from, on the thread that took it.
struct Crash {
  int tid = 0;
  int signal = 0;                   // 11
  std::string signal_name;          // "SIGSEGV", or "signal 77" for a number without a name
  std::optional<std::uint64_t> fault_address;  // si_addr, for the signals that carry one (SIGSEGV, SIGBUS, ...)
  std::optional<std::uint64_t> fiber_id;       // the fiber that thread ran, when the runtime's records say
};

struct Dump {
  int pid = 0;
  std::string exe_path;
  Source source;
  std::optional<double> pause_ms;   // how long the target was stopped; empty for --no-stop and cores
  std::optional<Crash> crash;       // from a core whose process died of a signal
  bool has_fiber_table = false;
  std::uint64_t fibers_created = 0;
  std::string fiber_noun = "fiber";  // what the runtime calls its fibers ("goroutine" for Go)
  bool fibers_named = true;          // false: no names to print (Go), headers say `goroutine 18 [...]`
  std::vector<Thread> threads;
  std::vector<Fiber> fibers;
  std::vector<Finding> findings;
  std::vector<std::string> warnings;  // e.g. "no DWARF in /usr/bin/x: functions from symbols, no lines or arguments"
  std::vector<DumpError> errors;
};

// A fiber's stack with its arguments, asked for just before a reporter prints that fiber: a dump built lean
// (session::build_dump with fiber_args = false) holds no fiber arguments, and a reporter given this gets them
// one fiber at a time instead of all at once. Without one, reporters print fiber.stack.
using FiberStackSource = std::function<Stack(const Fiber&)>;

}  // namespace fiberscope::report

namespace fiberscope::report {

// What a reader calls the frame's function: its name, else "?? (module +0xoffset)", else "?? 0xpc".
std::string function_label(const Frame& frame);
// The state a user cares about: the wait reason when there is one ("chan receive"), else the state.
std::string state_label(const Fiber& fiber);
// "SIGSEGV at 0x0", "SIGABRT": the signal, and the fault address when it has one.
std::string crash_label(const Crash& crash);
// "thread 4321 crashed: SIGSEGV at 0x0, running fiber 5 \"worker\"" (the name when the fiber is in the dump); empty
// without a crash. Reporters print it as the dump's first warning.
std::string crash_summary(const Dump& dump);

}  // namespace fiberscope::report

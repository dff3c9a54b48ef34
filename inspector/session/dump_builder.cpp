#include "session/dump_builder.h"

#include <algorithm>
#include <iterator>
#include <map>
#include <unordered_map>

#include "fibers/capture_plan.h"
#include "fibers/fiber_stacks.h"

namespace fiberscope::session {
namespace {

// Symbolizes unwound frames into `stack`, stopping at `max_depth` report frames (inlined ones included). The
// frames are gathered in `scratch` (reused from stack to stack) so that each stack's list is allocated once at
// its exact size: with 100k fibers, spare capacity is hundreds of megabytes.
void add_frames(report::Stack& stack, const std::vector<unwind::Frame>& frames, ModuleMap& modules,
                const target::Memory& memory, std::size_t max_depth, bool with_args,
                std::optional<report::StackKind> label, std::vector<report::Frame>& scratch) {
  scratch.clear();
  for (std::size_t i = 0; i < frames.size() && !stack.truncated; ++i) {
    const unwind::Frame* caller = i + 1 < frames.size() ? &frames[i + 1] : nullptr;
    for (report::Frame& symbolized : modules.symbolize(frames[i], caller, memory, with_args)) {
      if (scratch.size() >= max_depth) {
        stack.truncated = true;
        break;
      }
      if (label) symbolized.stack = *label;
      scratch.push_back(std::move(symbolized));
    }
  }
  stack.frames = std::vector<report::Frame>(std::make_move_iterator(scratch.begin()),
                                            std::make_move_iterator(scratch.end()));
}

// Without arguments a fiber's report frames depend on its unwound pcs alone, and fibers parked at the same place
// have the same pcs: those share one symbolized FrameList (100k fibers over a handful of places cost a handful of
// lists, not millions of frames). The key is every frame's pc, whether it is a return address, and its stack.
class SharedFrames {
 public:
  // The frames for `unwound`, symbolized once per distinct key.
  void add(report::Stack& stack, const std::vector<unwind::Frame>& unwound, ModuleMap& modules,
           const target::Memory& memory, std::size_t max_depth, std::vector<report::Frame>& scratch) {
    key_.clear();
    for (const unwind::Frame& frame : unwound) {
      const std::uint64_t pc = frame.pc.value();
      const char tag = static_cast<char>((frame.pc_is_return_address ? 1 : 0) |
                                         (static_cast<int>(frame.stack_kind) << 1));
      key_.append(reinterpret_cast<const char*>(&pc), sizeof pc);
      key_.push_back(tag);
    }
    if (auto it = lists_.find(key_); it != lists_.end()) {
      stack.frames = it->second.frames;
      stack.truncated |= it->second.truncated;
      return;
    }
    report::Stack symbolized;
    add_frames(symbolized, unwound, modules, memory, max_depth, false, std::nullopt, scratch);
    stack.frames = symbolized.frames;
    stack.truncated |= symbolized.truncated;
    lists_.emplace(key_, Entry{std::move(symbolized.frames), symbolized.truncated});
  }

 private:
  struct Entry {
    report::FrameList frames;
    bool truncated = false;
  };
  std::string key_;  // reused
  std::unordered_map<std::string, Entry> lists_;
};

// One fiber's stack: unwound through its transitions, symbolized (with arguments, or shared when `shared` is
// given), with why the walk stopped; problems go to `errors`.
void build_fiber_stack(report::Fiber& fiber, const fibers::FiberRecord& record, const fibers::FiberTable& table,
                       const target::Snapshot& snapshot, unwind::Unwinder& unwinder, ModuleMap& modules,
                       std::size_t max_depth, SharedFrames* shared, std::vector<report::Frame>& scratch,
                       std::vector<report::DumpError>& errors) {
  const target::Memory& memory = *snapshot.memory;
  fibers::FiberStack stack =
      fibers::unwind_fiber(unwinder, record, table, snapshot.threads, memory, {.max_depth = max_depth});
  fiber.stack = {};
  if (shared) {
    shared->add(fiber.stack, stack.frames, modules, memory, max_depth, scratch);
  } else {
    add_frames(fiber.stack, stack.frames, modules, memory, max_depth, true, std::nullopt, scratch);
  }
  fiber.stack.truncated |= stack.truncated;
  if (!stack.complete && !stack.truncated) fiber.stack.stop_reason = stack.stop_message;
  if (stack.frames.empty() && !stack.stop_message.empty())
    errors.push_back({"fiber " + std::to_string(record.id) + ": " + stack.stop_message, record.id, {}});
  for (const std::string& note : stack.notes)
    errors.push_back({"fiber " + std::to_string(record.id) + ": " + note, record.id, {}});
}

const target::Mapping* mapping_containing(const target::Snapshot& snapshot, std::uint64_t address) {
  for (const target::Mapping& mapping : snapshot.mappings)
    if (mapping.range.contains(target::RemoteAddress(address))) return &mapping;
  return nullptr;
}

}  // namespace

report::Dump build_dump(const target::Snapshot& snapshot, const fibers::FiberTable* table, ModuleMap& modules,
                        const BuildOptions& options) {
  report::Dump dump;
  dump.pid = snapshot.pid;
  dump.exe_path = snapshot.exe_path;
  dump.source.kind = snapshot.target_was_stopped ? report::Source::Kind::live : report::Source::Kind::live_no_stop;
  dump.pause_ms = snapshot.pause_ms;
  dump.has_fiber_table = table != nullptr;
  dump.warnings = snapshot.warnings;
  dump.warnings.insert(dump.warnings.end(), modules.warnings().begin(), modules.warnings().end());
  const target::Memory& memory = *snapshot.memory;
  unwind::Unwinder unwinder(modules.cfi());
  std::vector<report::Frame> scratch;
  SharedFrames shared;
  std::unordered_map<std::uint64_t, std::shared_ptr<const report::CodeLocation>> spawn_sites;  // by spawn_pc

  // Which thread runs which fiber, from the worker records.
  std::map<int, std::uint64_t> fiber_of_thread;
  if (table) {
    dump.fibers_created = table->fibers_created;
    dump.fiber_noun = table->fiber_noun;
    dump.fibers_named = table->fibers_named;
    for (const fibers::TableError& error : table->errors) {
      if (options.only_fiber && error.fiber_id != *options.only_fiber) continue;
      report::DumpError dump_error{error.message, std::nullopt, std::nullopt};
      if (error.fiber_id && error.where == fibers::TableError::Where::transition) dump_error.fiber_id = error.fiber_id;
      dump.errors.push_back(std::move(dump_error));
    }
    for (const fibers::WorkerRecord& worker : table->workers) {
      // A locked worker sleeps on its fiber's stack (a callback parked): its frames are the fiber's.
      const bool runs_fiber = worker.state == fibers::WorkerState::running ||
                              worker.state == fibers::WorkerState::syscall ||
                              worker.state == fibers::WorkerState::locked;
      if (worker.tid > 0 && runs_fiber && worker.current_fiber) fiber_of_thread[worker.tid] = worker.current_fiber;
    }
    const std::uint64_t now_ns = snapshot.target_clock_ns ? snapshot.target_clock_ns : table->clock_ns;
    dump.fibers.reserve(table->fibers.size());
    for (const fibers::FiberRecord& record : table->fibers) {
      if (!record.is_live()) continue;
      if (options.only_fiber && record.id != *options.only_fiber) continue;
      report::Fiber fiber;
      fiber.id = record.id;
      fiber.name = record.name;
      fiber.state = std::string(fibers::state_label(record));
      fiber.wait_reason = std::string(fibers::wait_reason_label(record));
      fiber.wait_object = record.wait_object;
      if (record.state_since_ns) {
        fiber.state_since_ns = record.state_since_ns;
        if (now_ns >= record.state_since_ns) fiber.time_in_state_ns = now_ns - record.state_since_ns;
      }
      if (const fibers::WorkerRecord* worker = table->worker_of(record); worker && worker->tid > 0)
        fiber.thread = worker->tid;
      if (record.integrity != fibers::Integrity::consistent)
        fiber.integrity = std::string(fibers::integrity_name(record.integrity));
      if (record.spawn_pc) {
        auto [known, added] = spawn_sites.try_emplace(record.spawn_pc);
        if (added) known->second = std::make_shared<const report::CodeLocation>(modules.locate(record.spawn_pc));
        fiber.created_by = known->second;
      }

      build_fiber_stack(fiber, record, *table, snapshot, unwinder, modules, options.max_depth,
                        options.fiber_args ? nullptr : &shared, scratch, dump.errors);
      dump.fibers.push_back(std::move(fiber));
    }
    if (options.only_fiber && dump.fibers.empty())
      dump.errors.push_back({"no live fiber with id " + std::to_string(*options.only_fiber), {}, {}});
  }
  if (options.only_fiber) return dump;

  for (const target::ThreadState& state : snapshot.threads) {
    report::Thread thread;
    thread.tid = state.tid;
    thread.name = state.name;
    if (auto it = fiber_of_thread.find(state.tid); it != fiber_of_thread.end()) {
      thread.fiber_id = it->second;
      dump.threads.push_back(std::move(thread));
      continue;
    }
    if (!state.registers) {
      dump.errors.push_back({"thread " + std::to_string(state.tid) + ": registers unavailable" +
                                 (state.error.empty() ? "" : ": " + state.error),
                             {}, state.tid});
      dump.threads.push_back(std::move(thread));
      continue;
    }
    std::vector<unwind::StackRegion> stacks;
    if (const target::Mapping* mapping = mapping_containing(snapshot, state.registers->sp()))
      stacks.push_back({mapping->range, unwind::StackKind::system, static_cast<std::uint64_t>(state.tid)});
    unwind::UnwindResult result =
        unwinder.unwind(*state.registers, memory, {.max_depth = options.max_depth, .stacks = stacks});
    add_frames(thread.stack, result.frames, modules, memory, options.max_depth, true, report::StackKind::thread,
               scratch);
    if (!result.complete() && result.stop_reason != unwind::StopReason::max_depth)
      thread.stack.stop_reason = result.stop_message;
    if (result.stop_reason == unwind::StopReason::max_depth) thread.stack.truncated = true;
    dump.threads.push_back(std::move(thread));
  }
  return dump;
}

FiberArgsReader::FiberArgsReader(const target::Snapshot& snapshot, const fibers::FiberTable* table,
                                 ModuleMap& modules, const BuildOptions& options)
    : snapshot_(snapshot), table_(table), modules_(modules), max_depth_(options.max_depth), unwinder_(modules.cfi()) {}

std::optional<report::Stack> FiberArgsReader::stack_with_args(std::uint64_t fiber_id) {
  if (!table_) return std::nullopt;
  if (record_of_.empty()) {
    // A hostile table may give two live records one id: which of them a fiber of the dump came from is then
    // unknown, so neither gets arguments (null) rather than one getting the other's stack.
    record_of_.reserve(table_->fibers.size());
    for (const fibers::FiberRecord& record : table_->fibers) {
      if (!record.is_live()) continue;
      auto [it, added] = record_of_.emplace(record.id, &record);
      if (!added) it->second = nullptr;
    }
  }
  auto record = record_of_.find(fiber_id);
  if (record == record_of_.end() || !record->second) return std::nullopt;
  report::Fiber fiber;
  std::vector<report::DumpError> repeated;  // build_dump reported these already
  build_fiber_stack(fiber, *record->second, *table_, snapshot_, unwinder_, modules_, max_depth_, nullptr, scratch_,
                    repeated);
  return std::move(fiber.stack);
}

}  // namespace fiberscope::session

#include "fibers/fiber_table.h"

#include <algorithm>
#include <cstring>
#include <span>
#include <unordered_set>

#include "base/hex.h"
#include "fiberscope/debug_abi.h"

namespace fiberscope::fibers {
namespace {

using target::AddressRange;
using target::Memory;
using target::RemoteAddress;

// One bulk read per chunk keeps the pause short (one process_vm_readv instead of one per record); past this size
// records are read one at a time instead.
constexpr std::uint64_t kMaxBulkChunkBytes = 16u << 20;
// Unreadable records after which the rest of a chunk is skipped: a hostile `used` over unmapped memory would
// otherwise cost one failing read (and one error) per claimed record, up to max_fiber_records, inside the pause.
constexpr std::uint32_t kMaxUnreadableRecordsPerChunk = 16;

template <class Record>
Record decode(std::span<const std::byte> bytes) {
  Record record;
  std::memcpy(&record, bytes.data(), sizeof record);
  return record;
}

struct ListSpec {
  TableError::Where chunk_where;
  TableError::Where record_where;
  const char* what;  // "fiber" / "worker"
  std::uint32_t record_size;
  std::size_t max_records;
};

ListSpec worker_list_spec(const fiberscope_debug_root& root, const ReadOptions& options) {
  return {TableError::Where::worker_chunk, TableError::Where::worker_record, "worker", root.worker_record_size,
          options.max_worker_records};
}

ListSpec fiber_list_spec(const fiberscope_debug_root& root, const ReadOptions& options) {
  return {TableError::Where::fiber_chunk, TableError::Where::fiber_record, "fiber", root.fiber_record_size,
          options.max_fiber_records};
}

// How many fiber entries to reserve. The root's count is only a hint (it may lie, hence the caps): reserving avoids
// regrowing a 100k-entry vector while the target is stopped.
std::size_t fibers_to_reserve(const fiberscope_debug_root& root, const ReadOptions& options) {
  constexpr std::uint64_t kMaxReservedFibers = 1u << 18;
  return static_cast<std::size_t>(
      std::min<std::uint64_t>({root.fibers_live + 16, options.max_fiber_records, kMaxReservedFibers}));
}

// A record copied out of a chunk, with how far its seqlock lets us trust it. `bytes` is empty when the record
// could not be read, and only valid during the visit (it points into the chunk's bulk copy).
struct RawRecord {
  std::size_t index;
  RemoteAddress address;
  std::span<const std::byte> bytes;
  Integrity integrity;
};

std::uint64_t seq_of(std::span<const std::byte> bytes) {
  std::uint64_t seq;
  std::memcpy(&seq, bytes.data(), sizeof seq);
  return seq;
}

// Re-reads one record until its seqlock says it is whole; a running writer may need a few tries.
Integrity reread_until_consistent(const Memory& memory, RemoteAddress address, std::vector<std::byte>& bytes,
                                  unsigned retries) {
  for (unsigned attempt = 0; attempt < retries; ++attempt) {
    std::vector<std::byte> copy(bytes.size());
    if (!memory.read(address, copy)) break;
    auto seq_after = memory.read_u64(address);
    if (!seq_after) break;
    bytes = std::move(copy);
    if (*seq_after == seq_of(bytes) && (*seq_after & 1) == 0) return Integrity::consistent;
  }
  return Integrity::torn;
}

// Walks one chunk list (fibers or workers), handing every used record's bytes to `visit` in table order (an
// unreadable record comes with empty bytes). Broken chunks end the walk with an error; nothing here trusts
// `next`, `capacity`, `used` or `record_size`. Records are visited straight out of one bulk copy per chunk: with
// the target stopped this runs inside the pause, so it allocates nothing per record.
// Records a chunk may gain between a scan before a stop and the stop itself; only the last chunk grows, and this
// bounds what a hostile `capacity` can make a capture copy.
constexpr std::uint64_t kChunkGrowthBytes = 64u << 10;

template <class Visit>
void walk_chunks(const Memory& memory, RemoteAddress first_chunk, std::uint32_t chunk_header_size,
                 const ListSpec& spec, const ReadOptions& options, std::vector<TableError>& errors,
                 std::vector<AddressRange>& chunk_ranges, Visit&& visit,
                 std::vector<AddressRange>* growing_chunk_ranges = nullptr) {
  std::size_t records_seen = 0;
  std::unordered_set<std::uint64_t> visited;
  auto chunk_error = [&](std::size_t chunk_number, RemoteAddress at, std::string message) {
    errors.push_back(TableError{spec.chunk_where, chunk_number, at, 0,
                                std::string(spec.what) + " chunk " + std::to_string(chunk_number) + " at " +
                                    at.to_string() + ": " + std::move(message)});
  };

  std::vector<std::byte> bulk, bulk_again, single;
  RemoteAddress chunk_address = first_chunk;
  for (std::size_t chunk_number = 0; !chunk_address.is_null(); ++chunk_number) {
    if (chunk_number >= options.max_chunks) {
      chunk_error(chunk_number, chunk_address,
                  "more than " + std::to_string(options.max_chunks) + " chunks; the rest of the list is ignored");
      break;
    }
    if (!visited.insert(chunk_address.value()).second) {
      chunk_error(chunk_number, chunk_address, "chunk list loops back to an earlier chunk; walk stopped");
      break;
    }
    auto header = memory.read_object<fiberscope_chunk>(chunk_address);
    if (!header) {
      chunk_error(chunk_number, chunk_address, "header unreadable: " + header.error().message);
      break;
    }
    RemoteAddress next(header->next);
    if (header->record_size != spec.record_size) {
      chunk_error(chunk_number, chunk_address,
                  "record_size " + std::to_string(header->record_size) + " but the root says " +
                      std::to_string(spec.record_size) + "; its records are skipped");
      chunk_address = next;
      continue;
    }
    if (header->capacity > options.max_chunk_capacity) {
      chunk_error(chunk_number, chunk_address,
                  "capacity " + std::to_string(header->capacity) + " exceeds the cap of " +
                      std::to_string(options.max_chunk_capacity) + "; its records are skipped");
      chunk_address = next;
      continue;
    }
    std::uint32_t used = header->used;
    if (used > header->capacity) {
      chunk_error(chunk_number, chunk_address,
                  "used " + std::to_string(used) + " > capacity " + std::to_string(header->capacity) +
                      "; reading only capacity records");
      used = header->capacity;
    }
    if (header->first_index != records_seen) {
      // Indexes are only used for messages, so a wrong first_index is worth a note, not the chunk.
      chunk_error(chunk_number, chunk_address,
                  "first_index " + std::to_string(header->first_index) + " but " + std::to_string(records_seen) +
                      " records precede it; numbering by position");
    }
    auto records_start = chunk_address.checked_add(chunk_header_size);
    const std::uint64_t bytes_total = std::uint64_t{used} * spec.record_size;
    if (!records_start || !records_start->checked_add(bytes_total)) {
      chunk_error(chunk_number, chunk_address, "records would wrap past the end of the address space");
      break;
    }
    if (records_seen + used > spec.max_records) {
      chunk_error(chunk_number, chunk_address,
                  "more than " + std::to_string(spec.max_records) + " " + spec.what +
                      " records; the rest of the list is ignored");
      break;
    }

    chunk_ranges.push_back(AddressRange{chunk_address, *records_start + bytes_total});
    if (growing_chunk_ranges) {
      const std::uint64_t capacity_bytes = std::uint64_t{header->capacity} * spec.record_size;
      const std::uint64_t room = std::min(capacity_bytes, bytes_total + kChunkGrowthBytes);
      if (records_start->checked_add(room))
        growing_chunk_ranges->push_back(AddressRange{chunk_address, *records_start + room});
    }

    bool have_bulk = false;
    if (bytes_total > 0 && bytes_total <= kMaxBulkChunkBytes) {
      bulk.resize(bytes_total);
      have_bulk = memory.read(*records_start, bulk).has_value();
    }
    // A second bulk read lets the running-target mode compare every record's seq without a read per record.
    bulk_again.clear();
    if (have_bulk && !options.target_stopped) {
      bulk_again.resize(bytes_total);
      if (!memory.read(*records_start, bulk_again)) bulk_again.clear();
    }

    std::uint32_t unreadable = 0;
    for (std::uint32_t slot = 0; slot < used; ++slot) {
      if (unreadable == kMaxUnreadableRecordsPerChunk) {
        chunk_error(chunk_number, chunk_address,
                    std::to_string(unreadable) + " records unreadable; the other " + std::to_string(used - slot) +
                        " records of the chunk are skipped");
        records_seen += used - slot;
        break;
      }
      const std::size_t index = records_seen++;
      const RemoteAddress address = *records_start + std::uint64_t{slot} * spec.record_size;
      std::span<const std::byte> bytes;
      if (have_bulk) {
        bytes = std::span<const std::byte>(bulk).subspan(std::size_t{slot} * spec.record_size, spec.record_size);
      } else {
        single.resize(spec.record_size);
        if (auto ok = memory.read(address, single); !ok) {
          errors.push_back(TableError{spec.record_where, index, address, 0,
                                      std::string(spec.what) + " record " + std::to_string(index) + " at " +
                                          address.to_string() + ": unreadable: " + ok.error().message});
          ++unreadable;
          visit(RawRecord{index, address, {}, Integrity::consistent});
          continue;
        }
        bytes = single;
      }
      std::uint64_t seq = seq_of(bytes);
      Integrity integrity = Integrity::consistent;
      if (options.target_stopped) {
        // The target cannot move while stopped: an odd seq means it was stopped in the middle of a write.
        if (seq & 1) integrity = Integrity::in_transition;
      } else {
        bool same = !bulk_again.empty() &&
                    seq_of(std::span(bulk_again).subspan(std::size_t{slot} * spec.record_size, 8)) == seq;
        if (!have_bulk) {
          auto seq_after = memory.read_u64(address);
          same = seq_after && *seq_after == seq;
        }
        if (!same || (seq & 1)) {
          std::vector<std::byte> reread(bytes.begin(), bytes.end());
          integrity = reread_until_consistent(memory, address, reread, options.torn_retries);
          visit(RawRecord{index, address, reread, integrity});
          continue;
        }
      }
      visit(RawRecord{index, address, bytes, integrity});
    }
    chunk_address = next;
  }
}

StackView stack_view_of(const RawRecord& raw) {
  auto abi = decode<fiberscope_fiber>(raw.bytes);
  StackView view;
  view.record = raw.address;
  view.sequence = abi.seq;
  view.state = abi.state < FIBERSCOPE_FIBER_STATE_COUNT ? static_cast<FiberState>(abi.state) : FiberState::free;
  view.stack = AddressRange{RemoteAddress(abi.stack_lo), RemoteAddress(abi.stack_hi)};
  view.context_sp = abi.context.sp;
  view.has_transitions = abi.transition_top != 0 || abi.foreign_depth != 0;
  return view;
}

// The checks every reader of the table makes before trusting the root.
Result<fiberscope_debug_root> read_root(const Memory& memory, RemoteAddress root) {
  auto abi_root = memory.read_object<fiberscope_debug_root>(root);
  if (!abi_root) return fail("fiber table root at ", root.to_string(), " unreadable: ", abi_root.error().message);
  if (abi_root->magic != FIBERSCOPE_DEBUG_MAGIC)
    return fail("fiber table root at ", root.to_string(), ": bad magic ", hex(abi_root->magic), " (expected ",
                hex(FIBERSCOPE_DEBUG_MAGIC), ")");
  if (abi_root->abi_version != FIBERSCOPE_DEBUG_ABI_VERSION)
    return fail("debug ABI version mismatch: target publishes version ", std::to_string(abi_root->abi_version),
                ", this fiberscope reads version ", std::to_string(FIBERSCOPE_DEBUG_ABI_VERSION));
  struct SizeCheck {
    const char* field;
    std::uint32_t actual;
    std::size_t expected;
  };
  for (const SizeCheck& check : {SizeCheck{"root_size", abi_root->root_size, sizeof(fiberscope_debug_root)},
                                 SizeCheck{"fiber_record_size", abi_root->fiber_record_size, sizeof(fiberscope_fiber)},
                                 SizeCheck{"worker_record_size", abi_root->worker_record_size,
                                           sizeof(fiberscope_worker)},
                                 SizeCheck{"transition_record_size", abi_root->transition_record_size,
                                           sizeof(fiberscope_transition)},
                                 SizeCheck{"chunk_header_size", abi_root->chunk_header_size,
                                           sizeof(fiberscope_chunk)}}) {
    if (check.actual != check.expected)
      return fail("debug ABI mismatch (version ", std::to_string(abi_root->abi_version), "): target's ",
                  check.field, " is ", std::to_string(check.actual), ", this fiberscope expects ",
                  std::to_string(check.expected));
  }
  return *abi_root;
}

std::string record_prefix(const char* what, std::size_t index, RemoteAddress address) {
  return std::string(what) + " record " + std::to_string(index) + " at " + address.to_string() + ": ";
}

std::optional<WorkerRecord> decode_worker(const RawRecord& raw, std::vector<TableError>& errors) {
  auto worker_error = [&](std::string message) {
    errors.push_back(TableError{TableError::Where::worker_record, raw.index, raw.address, 0,
                                record_prefix("worker", raw.index, raw.address) + std::move(message)});
    return std::nullopt;
  };
  auto abi = decode<fiberscope_worker>(raw.bytes);
  if (abi.state >= FIBERSCOPE_WORKER_STATE_COUNT)
    return worker_error("state value " + std::to_string(abi.state) + " is not a worker state");
  if (abi.tid < 0) return worker_error("negative tid " + std::to_string(abi.tid));
  if (abi.processor < -1) return worker_error("processor " + std::to_string(abi.processor) + " is below -1");
  if ((abi.sysstack_lo != 0 || abi.sysstack_hi != 0) && abi.sysstack_lo >= abi.sysstack_hi)
    return worker_error("system stack lo " + hex(abi.sysstack_lo) + " >= hi " + hex(abi.sysstack_hi));

  WorkerRecord worker;
  worker.index = raw.index;
  worker.address = raw.address;
  worker.integrity = raw.integrity;
  worker.tid = abi.tid;
  worker.state = static_cast<WorkerState>(abi.state);
  worker.current_fiber = abi.current_fiber;
  worker.current_record = RemoteAddress(abi.current_record);
  worker.system_stack = AddressRange{RemoteAddress(abi.sysstack_lo), RemoteAddress(abi.sysstack_hi)};
  worker.state_since_ns = abi.state_since_ns;
  if (abi.processor >= 0) worker.processor = static_cast<std::uint32_t>(abi.processor);
  if (abi.index != raw.index) {
    errors.push_back(TableError{TableError::Where::worker_record, raw.index, raw.address, 0,
                                record_prefix("worker", raw.index, raw.address) + "claims index " +
                                    std::to_string(abi.index) + "; using its position " +
                                    std::to_string(raw.index)});
  }
  return worker;
}

std::optional<FiberRecord> decode_fiber(const RawRecord& raw, const ReadOptions& options,
                                        std::vector<TableError>& errors) {
  auto abi = decode<fiberscope_fiber>(raw.bytes);
  if (abi.state == FIBERSCOPE_FIBER_FREE) return std::nullopt;  // never used: nothing to report
  auto fiber_error = [&](std::string message) {
    errors.push_back(TableError{TableError::Where::fiber_record, raw.index, raw.address, abi.id,
                                record_prefix("fiber", raw.index, raw.address) + std::move(message)});
    return std::nullopt;
  };
  if (abi.state >= FIBERSCOPE_FIBER_STATE_COUNT)
    return fiber_error("state value " + std::to_string(abi.state) + " is not a fiber state");
  if (abi.wait_reason >= FIBERSCOPE_WAIT_REASON_COUNT)
    return fiber_error("wait_reason value " + std::to_string(abi.wait_reason) + " is not a wait reason");
  if (abi.id == 0) return fiber_error("id 0 in a used record");
  if (abi.stack_lo >= abi.stack_hi)
    return fiber_error("stack_lo " + hex(abi.stack_lo) + " >= stack_hi " + hex(abi.stack_hi));
  if (abi.stack_hi - abi.stack_lo > options.max_stack_bytes)
    return fiber_error("stack of " + std::to_string(abi.stack_hi - abi.stack_lo) + " bytes exceeds the cap of " +
                       std::to_string(options.max_stack_bytes));
  if (abi.guard_lo > abi.stack_lo)
    return fiber_error("guard_lo " + hex(abi.guard_lo) + " above stack_lo " + hex(abi.stack_lo));
  if (abi.worker < -1 || (abi.worker >= 0 && static_cast<std::size_t>(abi.worker) >= options.max_worker_records))
    return fiber_error("worker index " + std::to_string(abi.worker) + " out of range");
  if (abi.foreign_depth > options.max_transition_depth)
    return fiber_error("foreign_depth " + std::to_string(abi.foreign_depth) + " exceeds the cap of " +
                       std::to_string(options.max_transition_depth));

  FiberRecord fiber;
  fiber.index = raw.index;
  fiber.address = raw.address;
  fiber.integrity = raw.integrity;
  fiber.sequence = abi.seq;
  fiber.id = abi.id;
  fiber.state = static_cast<FiberState>(abi.state);
  fiber.wait_reason = static_cast<WaitReason>(abi.wait_reason);
  fiber.wait_object = abi.wait_object;
  fiber.name.assign(abi.name, strnlen(abi.name, sizeof abi.name));
  fiber.stack = AddressRange{RemoteAddress(abi.stack_lo), RemoteAddress(abi.stack_hi)};
  fiber.guard_lo = abi.guard_lo;
  fiber.context = SavedContext{abi.context.pc,  abi.context.sp,  abi.context.rbp, abi.context.rbx,
                               abi.context.r12, abi.context.r13, abi.context.r14, abi.context.r15};
  fiber.syscall_pc = abi.syscall_pc;
  fiber.syscall_sp = abi.syscall_sp;
  fiber.state_since_ns = abi.state_since_ns;
  if (abi.worker >= 0) fiber.worker_index = static_cast<std::uint32_t>(abi.worker);
  fiber.foreign_depth = abi.foreign_depth;
  fiber.transition_top = RemoteAddress(abi.transition_top);
  fiber.spawn_pc = abi.spawn_pc;
  fiber.start_pc = abi.start_pc;
  fiber.parent_id = abi.parent_id;
  fiber.created_ns = abi.created_ns;
  fiber.is_main = (abi.flags & FIBERSCOPE_FIBER_FLAG_MAIN) != 0;
  fiber.is_locked = (abi.flags & FIBERSCOPE_FIBER_FLAG_LOCKED) != 0;
  return fiber;
}

// Follows a fiber's transition chain outwards. Each record must lie on the fiber's stack or its worker's system
// stack, and records on the same stack must move outwards (towards higher addresses): together with the depth cap
// that makes a cyclic or wild chain stop with an error instead of looping.
void read_transitions(const Memory& memory, FiberRecord& fiber, const WorkerRecord* worker,
                      const ReadOptions& options, std::vector<TableError>& errors) {
  auto stop = [&](RemoteAddress at, std::string message) {
    fiber.transition_error = "transition chain at " + at.to_string() + ": " + message;
    errors.push_back(TableError{TableError::Where::transition, fiber.index, at, fiber.id,
                                "fiber " + std::to_string(fiber.id) + ": " + fiber.transition_error});
  };
  const AddressRange system_stack = worker ? worker->system_stack : AddressRange{};
  std::optional<RemoteAddress> last_on_fiber, last_on_system;
  RemoteAddress at = fiber.transition_top;
  while (!at.is_null()) {
    if (fiber.transitions.size() >= options.max_transition_depth) {
      stop(at, "deeper than " + std::to_string(options.max_transition_depth) + " records; rest ignored");
      return;
    }
    const bool on_fiber = fiber.stack.contains(at, sizeof(fiberscope_transition));
    const bool on_system = system_stack.contains(at, sizeof(fiberscope_transition));
    if (!on_fiber && !on_system) {
      stop(at, "outside the fiber stack [" + fiber.stack.start.to_string() + ", " + fiber.stack.end.to_string() +
                   ") and the worker's system stack");
      return;
    }
    auto& last = on_fiber ? last_on_fiber : last_on_system;
    if (last && at <= *last) {
      stop(at, "does not move outwards from the record at " + last->to_string() + " (cycle?)");
      return;
    }
    last = at;
    auto abi = memory.read_object<fiberscope_transition>(at);
    if (!abi) {
      stop(at, "unreadable: " + abi.error().message);
      return;
    }
    if (abi->kind != FIBERSCOPE_TRANSITION_FOREIGN_CALL && abi->kind != FIBERSCOPE_TRANSITION_CALLBACK) {
      stop(at, "kind " + std::to_string(abi->kind) + " is not a transition kind");
      return;
    }
    fiber.transitions.push_back(Transition{
        at,
        abi->kind == FIBERSCOPE_TRANSITION_FOREIGN_CALL ? Transition::Kind::foreign_call : Transition::Kind::callback,
        abi->depth, abi->from_sp, abi->from_pc, abi->from_fp, abi->to_sp, abi->saved_syscall_pc,
        abi->saved_syscall_sp, {}, 0});
    at = RemoteAddress(abi->prev);
  }
}

}  // namespace

std::string_view state_name(FiberState state) { return fiberscope_fiber_state_name(static_cast<std::uint32_t>(state)); }
std::string_view wait_reason_name(WaitReason reason) {
  return fiberscope_wait_reason_name(static_cast<std::uint32_t>(reason));
}
std::string_view wait_reason_label(const FiberRecord& fiber) {
  if (!fiber.wait_reason_text.empty()) return fiber.wait_reason_text;
  return fiber.wait_reason == WaitReason::none ? std::string_view() : wait_reason_name(fiber.wait_reason);
}
std::string_view state_label(const FiberRecord& fiber) {
  return fiber.state_text.empty() ? state_name(fiber.state) : std::string_view(fiber.state_text);
}
std::string_view worker_state_name(WorkerState state) {
  return fiberscope_worker_state_name(static_cast<std::uint32_t>(state));
}
std::string_view integrity_name(Integrity integrity) {
  switch (integrity) {
    case Integrity::consistent: return "consistent";
    case Integrity::in_transition: return "in transition";
    case Integrity::torn: return "torn";
    case Integrity::changed: return "changed during the capture";
  }
  return "invalid";
}

void mark_records_changed_during_capture(FiberTable& table, const target::Memory& snapshot) {
  for (FiberRecord& fiber : table.fibers) {
    if (fiber.integrity != Integrity::consistent) continue;
    auto sequence = snapshot.read_u64(fiber.address);  // seq is the record's first field
    if (!sequence || *sequence != fiber.sequence) fiber.integrity = Integrity::changed;
  }
}

const WorkerRecord* FiberTable::worker(std::uint32_t index) const {
  for (const auto& candidate : workers)
    if (candidate.index == index) return &candidate;
  return nullptr;
}

const WorkerRecord* FiberTable::worker_of(const FiberRecord& fiber) const {
  if (fiber.worker_index)
    if (const WorkerRecord* by_index = worker(*fiber.worker_index)) return by_index;
  for (const auto& candidate : workers)
    if (candidate.current_record == fiber.address && candidate.current_fiber == fiber.id) return &candidate;
  return nullptr;
}

const FiberRecord* FiberTable::fiber_by_id(std::uint64_t id) const {
  for (const auto& candidate : fibers)
    if (candidate.id == id) return &candidate;
  return nullptr;
}

Result<FiberTable> read_fiber_table(const Memory& memory, RemoteAddress root, const ReadOptions& options) {
  FS_TRY(abi_root, read_root(memory, root));

  FiberTable table;
  table.root_address = root;
  table.abi_version = abi_root->abi_version;
  table.fibers_live = abi_root->fibers_live;
  table.fibers_created = abi_root->fibers_created;
  table.clock_ns = abi_root->clock_ns;
  table.stack_bytes = abi_root->stack_bytes;
  table.guard_bytes = abi_root->guard_bytes;
  table.processors = abi_root->processors;
  table.faults = abi_root->faults;
  table.running = abi_root->running == 1;

  const ListSpec worker_list = worker_list_spec(*abi_root, options);
  walk_chunks(memory, RemoteAddress(abi_root->worker_chunks), abi_root->chunk_header_size, worker_list, options,
              table.errors, table.chunk_ranges, [&](const RawRecord& raw) {
                if (raw.bytes.empty()) return;
                if (auto worker = decode_worker(raw, table.errors)) table.workers.push_back(std::move(*worker));
              });

  const ListSpec fiber_list = fiber_list_spec(*abi_root, options);
  table.fibers.reserve(fibers_to_reserve(*abi_root, options));
  walk_chunks(memory, RemoteAddress(abi_root->fiber_chunks), abi_root->chunk_header_size, fiber_list, options,
              table.errors, table.chunk_ranges, [&](const RawRecord& raw) {
                if (raw.bytes.empty()) return;
                if (options.leave_out && options.leave_out(stack_view_of(raw))) return;
                auto fiber = decode_fiber(raw, options, table.errors);
                if (!fiber) return;
                if (fiber->is_live() && !fiber->transition_top.is_null())
                  read_transitions(memory, *fiber, table.worker_of(*fiber), options, table.errors);
                table.fibers.push_back(std::move(*fiber));
              });
  return table;
}

Result<StackScan> scan_fiber_stacks(const Memory& memory, RemoteAddress root, const ReadOptions& options) {
  FS_TRY(abi_root, read_root(memory, root));
  StackScan scan;
  scan.table_ranges.push_back(AddressRange{root, root + sizeof(fiberscope_debug_root)});
  // Errors are read_fiber_table's to report (it reads the same table again inside the stop); the walk's own caps
  // and checks still apply.
  std::vector<TableError> ignored_errors;
  std::vector<AddressRange> used_ranges;
  ReadOptions as_is = options;
  as_is.target_stopped = true;  // one read per chunk: trust is decided by whoever uses the views
  const ListSpec worker_list = worker_list_spec(*abi_root, options);
  walk_chunks(memory, RemoteAddress(abi_root->worker_chunks), abi_root->chunk_header_size, worker_list, as_is,
              ignored_errors, used_ranges, [](const RawRecord&) {}, &scan.table_ranges);
  const ListSpec fiber_list = fiber_list_spec(*abi_root, options);
  scan.fibers.reserve(fibers_to_reserve(*abi_root, options));
  walk_chunks(memory, RemoteAddress(abi_root->fiber_chunks), abi_root->chunk_header_size, fiber_list, as_is,
              ignored_errors, used_ranges, [&](const RawRecord& raw) {
                if (raw.bytes.empty()) return;
                StackView view = stack_view_of(raw);
                if (view.state != FiberState::free) scan.fibers.push_back(view);
              }, &scan.table_ranges);
  return scan;
}

}  // namespace fiberscope::fibers

// demo_server: a small server-like program on the fiberscope runtime, with a few hundred named fibers in every
// state a fiber can be in, for fiberscope to inspect (the README's demo target).
//
//   demo_server [--fibers N] [--workers N]
//
// It prints its pid, then `READY` once every fiber has been spawned and had time to block, and runs until
// SIGTERM or SIGINT (exit status 0). What the fibers do:
//   running CPU work     hash-worker-K          checksums in bursts
//   sleeping             metrics-flush, idle-conn-K (keep-alive timers)
//   channel receive      accept-loop, request-handler-K
//   channel send         response-writer-K      (an unbuffered egress channel drained slowly)
//   mutex                cache-updater-K        (cache-compactor holds the lock most of the time)
//   condvar              session-waiter-K
//   waitgroup            batch-coordinator      (waiting for batch-part-K)
//   syscall read()       conn-reader-K          (fiber::syscall on a pipe)
//   foreign call in C    dns-resolver-K         (blocked in poll(2) inside C)
//   callback in C        tls-handshake-K        (C -> fiber code waiting on a channel)
//   nested foreign call  plugin-host-K          (C -> fiber code -> C blocked in poll(2))
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <mutex>
#include <string>
#include <string_view>

#include "demo_foreign.h"
#include "fiberscope/runtime.h"

using namespace std::chrono_literals;

namespace {

struct DemoOptions {
  unsigned fibers = 300;
  unsigned workers = 2;
};

struct Request {
  std::uint64_t id;
  int conn_id;
};

// A pipe whose read end a fiber blocks on; the traffic generator writes to it now and then.
struct Pipe {
  int read_fd = -1;
  int write_fd = -1;
};

// Everything the fibers share. Lives in the main fiber's frame, which never returns.
struct Server {
  fiber::Channel<int> new_connections;
  fiber::Channel<Request> request_queue{16};
  fiber::Channel<std::uint64_t> egress;
  fiber::Channel<long> peer_keys;
  fiber::Mutex cache_lock;
  std::uint64_t cache_entries = 0;  // guarded by cache_lock
  fiber::Mutex session_lock;
  fiber::CondVar session_changed;
  std::uint64_t session_generation = 0;  // guarded by session_lock
  std::deque<Pipe> conn_pipes;           // conn-reader-K reads conn_pipes[K]
  std::deque<Pipe> resolver_pipes;       // dns-resolver-K and plugin-host-K wait in C on these
  std::atomic<std::uint64_t> requests_served{0};
  std::atomic<std::uint64_t> bytes_read{0};
};

std::string numbered(std::string_view prefix, unsigned k) { return std::string(prefix) + std::to_string(k); }

bool make_pipe(std::deque<Pipe>& pipes) {
  int fds[2];
  if (::pipe(fds) != 0) {
    std::perror("demo_server: pipe");
    return false;
  }
  pipes.push_back(Pipe{fds[0], fds[1]});
  return true;
}

// The fiber bodies are out of line so that they show up, with their arguments, in fiberscope's backtraces.

[[gnu::noinline]] std::uint64_t checksum_block(std::uint64_t seed, unsigned rounds) {
  std::uint64_t hash = seed;
  for (unsigned i = 0; i < rounds; ++i) hash = (hash ^ i) * 0x100000001b3ull;
  return hash;
}

[[gnu::noinline]] void hash_worker_loop(unsigned worker_id, unsigned block_rounds) {
  std::uint64_t hash = worker_id;
  // Bursts of 40 ms of CPU work (yielding between blocks) and 40 ms pauses, the workers out of phase, so one is
  // usually seen running while the demo uses about one core in all.
  fiber::sleep_for(std::chrono::milliseconds(40 * (worker_id % 2)));
  for (;;) {
    const auto burst_end = std::chrono::steady_clock::now() + 40ms;
    while (std::chrono::steady_clock::now() < burst_end) {
      hash = checksum_block(hash, block_rounds);
      fiber::yield();
    }
    fiber::sleep_for(40ms);
  }
}

[[gnu::noinline]] void metrics_flush_loop(Server& server, std::chrono::milliseconds period) {
  std::uint64_t last_served = 0;
  for (;;) {
    fiber::sleep_for(period);
    last_served = server.requests_served.load(std::memory_order_relaxed) - last_served;
  }
}

[[gnu::noinline]] void idle_connection_keepalive(unsigned conn_id, std::chrono::milliseconds interval) {
  for (;;) fiber::sleep_for(interval + std::chrono::milliseconds(conn_id % 7));
}

[[gnu::noinline]] void accept_loop(Server& server, int listen_backlog) {
  int accepted = 0;
  while (auto conn_id = server.new_connections.recv()) accepted = (accepted + 1) % listen_backlog;
}

[[gnu::noinline]] void handle_requests(Server& server, unsigned handler_id) {
  while (auto request = server.request_queue.recv()) {
    server.requests_served.fetch_add(1, std::memory_order_relaxed);
    if (request->id % 5 == handler_id % 5) fiber::yield();
  }
}

[[gnu::noinline]] void write_responses(Server& server, unsigned writer_id) {
  for (std::uint64_t sequence = 0;; ++sequence) server.egress.send((std::uint64_t{writer_id} << 32) | sequence);
}

[[gnu::noinline]] void drain_egress(Server& server, std::chrono::milliseconds per_message) {
  for (;;) {
    fiber::sleep_for(per_message);
    server.egress.recv();
  }
}

[[gnu::noinline]] void update_cache(Server& server, unsigned updater_id) {
  for (;;) {
    {
      std::lock_guard<fiber::Mutex> guard(server.cache_lock);
      server.cache_entries += updater_id;
    }
    fiber::sleep_for(50ms);
  }
}

[[gnu::noinline]] void compact_cache(Server& server, std::chrono::milliseconds hold_time) {
  for (;;) {
    {
      std::lock_guard<fiber::Mutex> guard(server.cache_lock);
      fiber::sleep_for(hold_time);  // a long compaction with the lock held: the updaters queue up on it
      server.cache_entries /= 2;
    }
    fiber::sleep_for(10ms);
  }
}

// `session_id` is only there to be seen in backtraces.
[[gnu::noinline]] void wait_for_session_change(Server& server, [[maybe_unused]] unsigned session_id) {
  std::unique_lock<fiber::Mutex> lock(server.session_lock);
  for (std::uint64_t seen = server.session_generation;; seen = server.session_generation) {
    server.session_changed.wait(lock, [&] { return server.session_generation != seen; });
  }
}

[[gnu::noinline]] void reap_sessions(Server& server, std::chrono::milliseconds period) {
  for (;;) {
    fiber::sleep_for(period);
    std::lock_guard<fiber::Mutex> guard(server.session_lock);
    ++server.session_generation;
    server.session_changed.notify_all();
  }
}

[[gnu::noinline]] void run_batch_part(fiber::WaitGroup& batch, unsigned part_id, std::chrono::milliseconds work) {
  fiber::sleep_for(work + std::chrono::milliseconds(part_id * 10));
  batch.done();
}

[[gnu::noinline]] void coordinate_batches(unsigned parts_per_batch) {
  for (unsigned batch_number = 0;; ++batch_number) {
    fiber::WaitGroup batch;
    batch.add(parts_per_batch);
    for (unsigned part = 0; part < parts_per_batch; ++part) {
      fiber::spawn([&batch, part] { run_batch_part(batch, part, 3s); }, numbered("batch-part-", part));
    }
    batch.wait();
  }
}

[[gnu::noinline]] ssize_t read_connection(int fd, char* buffer, std::size_t size_bytes) {
  return fiber::syscall([&] { return ::read(fd, buffer, size_bytes); });
}

[[gnu::noinline]] void conn_reader_loop(Server& server, unsigned conn_id, int fd) {
  char buffer[256];
  for (;;) {
    const ssize_t got = read_connection(fd, buffer, sizeof buffer);
    if (got <= 0) return;
    server.bytes_read.fetch_add(static_cast<std::uint64_t>(got), std::memory_order_relaxed);
    server.request_queue.send(Request{server.requests_served.load(std::memory_order_relaxed), int(conn_id)});
  }
}

[[gnu::noinline]] void resolve_names_in_c(unsigned resolver_id, int fd) {
  for (unsigned lookups = 0;; ++lookups) {
    demo_wait_request request{fd, 0};
    if (fiber::foreign_call(demo_c_wait_readable, &request) < 0) {
      std::fprintf(stderr, "demo_server: dns-resolver-%u: poll failed\n", resolver_id);
      return;
    }
  }
}

// Fiber code called back from C (demo_c_tls_handshake): waits on a channel with C frames below it.
long await_peer_key(void* server_ptr) {
  auto& server = *static_cast<Server*>(server_ptr);
  return server.peer_keys.recv().value_or(-1);
}

[[gnu::noinline]] void tls_handshake_loop(Server& server, int peer_id) {
  for (;;) {
    demo_callback_request request{await_peer_key, &server, peer_id};
    fiber::foreign_call(demo_c_tls_handshake, &request);
  }
}

struct PluginHookContext {
  int event_fd;
  unsigned plugin_id;
};

// Fiber code called back from C (demo_c_plugin_dispatch) that makes a nested foreign call blocking in C.
long plugin_hook_read_event(void* context_ptr) {
  auto& context = *static_cast<PluginHookContext*>(context_ptr);
  demo_wait_request request{context.event_fd, 0};
  return fiber::foreign_call(demo_c_wait_readable, &request);
}

[[gnu::noinline]] void plugin_host_loop(unsigned plugin_id, int event_fd) {
  for (;;) {
    PluginHookContext context{event_fd, plugin_id};
    demo_callback_request request{plugin_hook_read_event, &context, int(plugin_id)};
    fiber::foreign_call(demo_c_plugin_dispatch, &request);
  }
}

// Keeps everything moving slowly: connections, requests, bytes on the pipes, peer keys.
[[gnu::noinline]] void generate_traffic(Server& server, std::chrono::milliseconds tick) {
  for (std::uint64_t round = 0;; ++round) {
    fiber::sleep_for(tick);
    server.new_connections.send(int(round % 1000));
    if (!server.conn_pipes.empty() && round % 3 == 0) {
      const Pipe& conn = server.conn_pipes[round % server.conn_pipes.size()];
      fiber::syscall([&] { return ::write(conn.write_fd, "GET /\n", 6); });
    }
    if (!server.resolver_pipes.empty() && round % 20 == 0) {
      const Pipe& resolver = server.resolver_pipes[(round / 20) % server.resolver_pipes.size()];
      fiber::syscall([&] { return ::write(resolver.write_fd, "A", 1); });
    }
    if (round % 40 == 0) server.peer_keys.send(long(round));
  }
}

[[gnu::noinline]] int wait_for_shutdown_signal(const sigset_t& shutdown_signals) {
  for (;;) {
    const int signal_number = fiber::syscall([&] { return ::sigwaitinfo(&shutdown_signals, nullptr); });
    if (signal_number > 0) return signal_number;
  }
}

void serve(const DemoOptions& options, const sigset_t& shutdown_signals) {
  Server server;
  // The fixed cast: one or a few fibers of each kind that needs a thread (syscall, foreign call, callback).
  constexpr unsigned kConnReaders = 8, kResolvers = 3, kHandshakes = 3, kPlugins = 2, kHashWorkers = 2;
  constexpr unsigned kBatchParts = 4;
  constexpr unsigned kSingletons = 8;  // this main fiber and the seven one-of-a-kind fibers spawned first
  constexpr unsigned kFixed =
      kSingletons + kConnReaders + kResolvers + kHandshakes + kPlugins + kHashWorkers + kBatchParts;
  for (unsigned k = 0; k < kConnReaders; ++k)
    if (!make_pipe(server.conn_pipes)) std::exit(1);
  for (unsigned k = 0; k < kResolvers + kPlugins; ++k)
    if (!make_pipe(server.resolver_pipes)) std::exit(1);

  fiber::spawn([&] { accept_loop(server, 128); }, "accept-loop");
  fiber::spawn([&] { metrics_flush_loop(server, 500ms); }, "metrics-flush");
  fiber::spawn([&] { drain_egress(server, 100ms); }, "egress-drain");
  fiber::spawn([&] { compact_cache(server, 2s); }, "cache-compactor");
  fiber::spawn([&] { reap_sessions(server, 1s); }, "session-reaper");
  fiber::spawn([] { coordinate_batches(kBatchParts); }, "batch-coordinator");
  fiber::spawn([&] { generate_traffic(server, 50ms); }, "traffic-gen");
  for (unsigned k = 0; k < kHashWorkers; ++k)
    fiber::spawn([k] { hash_worker_loop(k, 4096); }, numbered("hash-worker-", k));
  for (unsigned k = 0; k < kConnReaders; ++k) {
    const int fd = server.conn_pipes[k].read_fd;
    fiber::spawn([&server, k, fd] { conn_reader_loop(server, k, fd); }, numbered("conn-reader-", k));
  }
  for (unsigned k = 0; k < kResolvers; ++k) {
    const int fd = server.resolver_pipes[k].read_fd;
    fiber::spawn([k, fd] { resolve_names_in_c(k, fd); }, numbered("dns-resolver-", k));
  }
  for (unsigned k = 0; k < kHandshakes; ++k)
    fiber::spawn([&server, k] { tls_handshake_loop(server, int(k)); }, numbered("tls-handshake-", k));
  for (unsigned k = 0; k < kPlugins; ++k) {
    const int fd = server.resolver_pipes[kResolvers + k].read_fd;
    fiber::spawn([k, fd] { plugin_host_loop(k, fd); }, numbered("plugin-host-", k));
  }

  // The crowd: the rest of --fibers, shared among the cheap blocked states.
  const unsigned crowd = options.fibers > kFixed ? options.fibers - kFixed : 0;
  for (unsigned k = 0; k < crowd; ++k) {
    switch (k % 5) {
      case 0:
        fiber::spawn([&server, k] { handle_requests(server, k / 5); }, numbered("request-handler-", k / 5));
        break;
      case 1:
        fiber::spawn([&server, k] { write_responses(server, k / 5); }, numbered("response-writer-", k / 5));
        break;
      case 2:
        fiber::spawn([&server, k] { update_cache(server, k / 5); }, numbered("cache-updater-", k / 5));
        break;
      case 3:
        fiber::spawn([&server, k] { wait_for_session_change(server, k / 5 + 1); },
                     numbered("session-waiter-", k / 5));
        break;
      default:
        fiber::spawn([k] { idle_connection_keepalive(k / 5, 1s); }, numbered("idle-conn-", k / 5));
        break;
    }
  }

  fiber::sleep_for(200ms);  // let every fiber reach the state it is meant to be seen in
  std::printf("demo_server: pid %d, %u fibers, %u workers\nREADY\n", int(::getpid()), kFixed + crowd,
              options.workers);
  std::fflush(stdout);

  const int signal_number = wait_for_shutdown_signal(shutdown_signals);
  std::printf("demo_server: %s, exiting\n", ::strsignal(signal_number));
  std::fflush(stdout);
  // The fibers loop forever by design; leaving without unwinding them is the clean exit here.
  std::_Exit(0);
}

bool parse_count(const char* text, unsigned min, unsigned max, unsigned& out) {
  char* end = nullptr;
  errno = 0;
  const unsigned long value = std::strtoul(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || value < min || value > max) return false;
  out = static_cast<unsigned>(value);
  return true;
}

void usage(std::FILE* to) {
  std::fprintf(to, "usage: demo_server [--fibers N (default 300)] [--workers N (default 2)]\n");
}

}  // namespace

int main(int argc, char** argv) {
  DemoOptions options;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      usage(stdout);
      return 0;
    }
    const bool takes_value = arg == "--fibers" || arg == "--workers";
    if (!takes_value || i + 1 >= argc) {
      usage(stderr);
      return 2;
    }
    const char* value = argv[++i];
    const bool ok = arg == "--fibers" ? parse_count(value, 1, 100000, options.fibers)
                                      : parse_count(value, 1, 256, options.workers);
    if (!ok) {
      std::fprintf(stderr, "demo_server: %.*s wants a number in range, not '%s'\n", int(arg.size()), arg.data(),
                   value);
      return 2;
    }
  }

  // Block the shutdown signals before any runtime thread exists, so every thread inherits the mask and the
  // main fiber can take them synchronously with sigwaitinfo.
  sigset_t shutdown_signals;
  sigemptyset(&shutdown_signals);
  sigaddset(&shutdown_signals, SIGTERM);
  sigaddset(&shutdown_signals, SIGINT);
  if (int error = pthread_sigmask(SIG_BLOCK, &shutdown_signals, nullptr); error != 0) {
    std::fprintf(stderr, "demo_server: pthread_sigmask: %s\n", std::strerror(error));
    return 1;
  }
  return fiber::run([&] { serve(options, shutdown_signals); }, fiber::Options{.workers = options.workers});
}

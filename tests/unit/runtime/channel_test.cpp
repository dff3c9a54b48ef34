// Channel<T>: buffered and unbuffered semantics, close and drain, many producers and consumers.
#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "fiberscope/runtime.h"

using namespace std::chrono_literals;

TEST_CASE("a buffered channel accepts capacity sends without a receiver and delivers them in order",
          "[runtime][channel]") {
  std::vector<int> received;
  bool sends_completed_alone = false;
  fiber::run(
      [&] {
        fiber::Channel<int> channel(8);
        for (int i = 0; i < 8; ++i) channel.send(i);  // would park forever if the buffer did not hold them
        sends_completed_alone = true;
        for (int i = 0; i < 8; ++i) received.push_back(channel.recv().value_or(-1));
      },
      fiber::Options{.workers = 1});
  CHECK(sends_completed_alone);
  CHECK(received == std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7});
}

TEST_CASE("a buffered channel parks the sender once full until a receiver takes one", "[runtime][channel]") {
  std::atomic<int> sent{0};
  int sent_while_nobody_received = -1;
  fiber::run(
      [&] {
        fiber::Channel<int> channel(2);
        fiber::WaitGroup sender_done;
        sender_done.add(1);
        fiber::spawn([&] {
          for (int i = 0; i < 3; ++i) {
            channel.send(i);
            sent.fetch_add(1);
          }
          sender_done.done();
        });
        fiber::sleep_for(20ms);
        sent_while_nobody_received = sent.load();
        channel.recv();
        sender_done.wait();
      },
      fiber::Options{.workers = 2});
  CHECK(sent_while_nobody_received == 2);
  CHECK(sent.load() == 3);
}

TEST_CASE("an unbuffered send completes only when a receiver takes the value", "[runtime][channel]") {
  std::atomic<bool> send_returned{false};
  bool returned_before_receive = true;
  std::optional<std::string> value;
  fiber::run(
      [&] {
        fiber::Channel<std::string> channel;
        fiber::WaitGroup sender_done;
        sender_done.add(1);
        fiber::spawn([&] {
          channel.send("rendezvous");
          send_returned = true;
          sender_done.done();
        });
        fiber::sleep_for(20ms);
        returned_before_receive = send_returned.load();
        value = channel.recv();
        sender_done.wait();
      },
      fiber::Options{.workers = 2});
  CHECK_FALSE(returned_before_receive);
  CHECK(send_returned.load());
  CHECK(value == std::optional<std::string>("rendezvous"));
}

TEST_CASE("an unbuffered receive parks until a sender arrives", "[runtime][channel]") {
  std::optional<int> value;
  std::chrono::steady_clock::duration waited{};
  fiber::run(
      [&] {
        fiber::Channel<int> channel;
        fiber::spawn([&] {
          fiber::sleep_for(20ms);
          channel.send(7);
        });
        const auto start = std::chrono::steady_clock::now();
        value = channel.recv();
        waited = std::chrono::steady_clock::now() - start;
      },
      fiber::Options{.workers = 2});
  CHECK(value == 7);
  CHECK(waited >= 15ms);
}

TEST_CASE("closing a buffered channel lets receivers drain what is left, then gives nullopt", "[runtime][channel]") {
  std::vector<std::optional<int>> received;
  fiber::run([&] {
    fiber::Channel<int> channel(4);
    channel.send(1);
    channel.send(2);
    channel.close();
    for (int i = 0; i < 4; ++i) received.push_back(channel.recv());
  });
  CHECK(received == std::vector<std::optional<int>>{1, 2, std::nullopt, std::nullopt});
}

TEST_CASE("closing a channel wakes every parked receiver with nullopt", "[runtime][channel]") {
  constexpr int kReceivers = 10;
  std::atomic<int> got_nullopt{0};
  fiber::run(
      [&] {
        fiber::Channel<int> channel;
        fiber::WaitGroup receivers;
        receivers.add(kReceivers);
        for (int i = 0; i < kReceivers; ++i)
          fiber::spawn([&] {
            if (!channel.recv()) got_nullopt.fetch_add(1);
            receivers.done();
          });
        fiber::sleep_for(10ms);
        channel.close();
        receivers.wait();
      },
      fiber::Options{.workers = 2});
  CHECK(got_nullopt.load() == kReceivers);
}

TEST_CASE("a channel moves move-only values", "[runtime][channel]") {
  int value = 0;
  fiber::run([&] {
    fiber::Channel<std::unique_ptr<int>> channel(1);
    channel.send(std::make_unique<int>(42));
    if (auto received = channel.recv()) value = **received;
  });
  CHECK(value == 42);
}

TEST_CASE("many producers and consumers deliver every value exactly once", "[runtime][channel][stress]") {
  constexpr int kProducers = 8;
  constexpr int kConsumers = 8;
  constexpr int kPerProducer = 2000;
  std::vector<std::atomic<int>> deliveries(kProducers * kPerProducer);
  for (auto& count : deliveries) count = 0;
  for (std::size_t capacity : {std::size_t{0}, std::size_t{16}}) {
    for (auto& count : deliveries) count = 0;
    fiber::run(
        [&] {
          fiber::Channel<int> channel(capacity);
          fiber::WaitGroup producers, consumers;
          producers.add(kProducers);
          consumers.add(kConsumers);
          for (int p = 0; p < kProducers; ++p)
            fiber::spawn([&, p] {
              for (int i = 0; i < kPerProducer; ++i) channel.send(p * kPerProducer + i);
              producers.done();
            });
          for (int c = 0; c < kConsumers; ++c)
            fiber::spawn([&] {
              while (auto value = channel.recv()) deliveries[static_cast<std::size_t>(*value)].fetch_add(1);
              consumers.done();
            });
          producers.wait();
          channel.close();
          consumers.wait();
        },
        fiber::Options{.workers = 4});
    int wrong = 0;
    for (auto& count : deliveries) wrong += count.load() != 1;
    INFO("capacity " << capacity);
    CHECK(wrong == 0);
  }
}

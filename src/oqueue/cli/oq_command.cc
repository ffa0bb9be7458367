// `sluice oq stats`: runs a short, real pipeline over named observable queues and prints every
// live queue's counters (queues are in-process, so there is nothing to attach to from outside).
//
// The pipeline: producers put requests on `sample.requests`; consumers take them and put a
// result on `sample.results`, which one collector consumes; strong observers watch every request
// (one only the odd ones, through a producer-side filter) and weak observers read the last 64
// requests from time to time.
#include "oqueue/cli/oq_command.h"

#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>

#include "cli/table.h"
#include "sluice/cli/checks.h"
#include "sluice/cli/command.h"
#include "sluice/common/status.h"
#include "sluice/oqueue/oqueue.h"

namespace sluice::oq::cli {
namespace {

std::vector<std::function<void(CLI::App&)>>& hooks() {
  static std::vector<std::function<void(CLI::App&)>> h;
  return h;
}

struct Request {
  uint64_t producer;
  uint64_t seq;
};
struct Reply {
  uint64_t producer;
  uint64_t seq;
  uint64_t value;
};

bool odd_seq(const Request& r, uint64_t /*arg*/) {
  return (r.seq & 1) != 0;
}

struct StatsOptions {
  int producers = 2;
  int consumers = 2;
  int strong = 2;
  int weak = 1;
  uint64_t messages = 100000;
  size_t capacity = 0;
  std::string wait = "block";
  bool json = false;
};

std::string json_escape(const std::string& s) {
  std::string out;
  for (char ch : s) {
    if (ch == '"' || ch == '\\')
      out += '\\';
    if (static_cast<unsigned char>(ch) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", ch);
      out += buf;
      continue;
    }
    out += ch;
  }
  return out;
}

void print_stats(const std::vector<QueueStats>& all, bool json, double seconds) {
  if (json) {
    std::printf("[");
    for (size_t i = 0; i < all.size(); ++i) {
      const QueueStats& s = all[i];
      std::printf(
          "%s\n  {\"name\": \"%s\", \"capacity\": %zu, \"history_capacity\": %zu, "
          "\"producers\": %" PRIu64 ", \"consumers\": %" PRIu64 ", \"strong_observers\": %" PRIu64
          ", \"weak_observers\": %" PRIu64 ", \"puts\": %" PRIu64 ", \"captures\": %" PRIu64
          ", \"filtered\": %" PRIu64 ", \"takes\": %" PRIu64 ", \"observes\": %" PRIu64
          ", \"history_reads\": %" PRIu64 ", \"drops\": %" PRIu64 ", \"waits\": %" PRIu64
          ", \"depth\": %" PRIu64 "}",
          i == 0 ? "" : ",", json_escape(s.name).c_str(), s.capacity, s.history_capacity,
          s.producers, s.consumers, s.strong_observers, s.weak_observers, s.puts, s.captures,
          s.filtered, s.takes, s.observes, s.history_reads, s.drops, s.waits, s.depth);
    }
    std::printf("\n]\n");
    return;
  }
  sluice::cli::TextTable table({"queue", "cap", "hist", "attached p/c/s/w", "puts", "captures",
                                "filtered", "takes", "observes", "history", "drops", "waits",
                                "depth"});
  for (const QueueStats& s : all) {
    table.add({s.name, std::to_string(s.capacity), std::to_string(s.history_capacity),
               std::to_string(s.producers) + "/" + std::to_string(s.consumers) + "/" +
                   std::to_string(s.strong_observers) + "/" + std::to_string(s.weak_observers),
               std::to_string(s.puts), std::to_string(s.captures), std::to_string(s.filtered),
               std::to_string(s.takes), std::to_string(s.observes), std::to_string(s.history_reads),
               std::to_string(s.drops), std::to_string(s.waits), std::to_string(s.depth)});
  }
  table.print(stdout);
  std::printf("\nsample pipeline ran %.3f s; counters read while every handle was attached\n",
              seconds);
}

Status run_stats(const StatsOptions& o) {
  if (o.producers < 1 || o.consumers < 1) {
    return invalid_argument("--producers and --consumers must be at least 1");
  }
  if (o.strong < 0 || o.strong > static_cast<int>(kMaxStrongObservers) || o.weak < 0 ||
      o.weak > static_cast<int>(kMaxWeakObservers)) {
    return invalid_argument("--strong and --weak must be within 0..64");
  }
  WaitPolicy policy = WaitPolicy::kBlock;
  if (o.wait == "spin") {
    policy = WaitPolicy::kSpin;
  } else if (o.wait == "yield") {
    policy = WaitPolicy::kYield;
  } else if (o.wait != "block") {
    return invalid_argument("--wait must be spin, yield or block, not '" + o.wait + "'");
  }

  OQueue<Request> requests("sample.requests", o.capacity);
  OQueue<Reply> results("sample.results", o.capacity);
  const uint64_t per_producer = o.messages / static_cast<uint64_t>(o.producers);
  const uint64_t total = per_producer * static_cast<uint64_t>(o.producers);

  // Attach everything before the first put so every message is captured.
  std::vector<OQueue<Request>::Consumer> consumers;
  std::vector<OQueue<Reply>::Producer> forwarders;
  for (int i = 0; i < o.consumers; ++i) {
    consumers.push_back(requests.attach_consumer(policy));
    forwarders.push_back(results.attach_producer(policy));
  }
  auto collector = results.attach_consumer(policy);
  std::vector<OQueue<Request>::StrongObserver> strong;
  for (int i = 0; i < o.strong; ++i) {
    strong.push_back(requests.attach_strong_observer(policy, i == 1 ? &odd_seq : nullptr));
  }
  std::vector<OQueue<Request>::WeakObserver> weak;
  for (int i = 0; i < o.weak; ++i)
    weak.push_back(requests.attach_weak_observer(64));
  std::vector<OQueue<Request>::Producer> producers;
  for (int i = 0; i < o.producers; ++i)
    producers.push_back(requests.attach_producer(policy));

  std::atomic<uint64_t> taken{0};
  std::atomic<bool> stop_weak{false};
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  for (int i = 0; i < o.producers; ++i) {
    threads.emplace_back([&, i] {
      for (uint64_t s = 0; s < per_producer; ++s) {
        producers[static_cast<size_t>(i)].put({static_cast<uint64_t>(i), s});
      }
    });
  }
  for (int i = 0; i < o.consumers; ++i) {
    threads.emplace_back([&, i] {
      auto& in = consumers[static_cast<size_t>(i)];
      auto& out = forwarders[static_cast<size_t>(i)];
      while (taken.load(std::memory_order_relaxed) < total) {
        auto r = in.take_until(std::chrono::steady_clock::now() + std::chrono::milliseconds(2));
        if (!r)
          continue;
        taken.fetch_add(1, std::memory_order_relaxed);
        out.put({r->producer, r->seq, r->producer * 1'000'003 + r->seq});
      }
    });
  }
  threads.emplace_back([&] {
    for (uint64_t n = 0; n < total; ++n)
      collector.take();
  });
  const uint64_t odd_expected = per_producer / 2 * static_cast<uint64_t>(o.producers);
  for (int i = 0; i < o.strong; ++i) {
    threads.emplace_back([&, i] {
      const uint64_t n = i == 1 ? odd_expected : total;
      for (uint64_t k = 0; k < n; ++k)
        strong[static_cast<size_t>(i)].strong_observe();
    });
  }
  for (int i = 0; i < o.weak; ++i) {
    threads.emplace_back([&, i] {
      std::vector<Request> buf(64);
      while (!stop_weak.load(std::memory_order_relaxed)) {
        (void)weak[static_cast<size_t>(i)].history(std::span<Request>(buf));
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
    });
  }
  for (int i = 0; i < o.producers + o.consumers + 1 + o.strong; ++i) {
    threads[static_cast<size_t>(i)].join();
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  stop_weak = true;
  for (size_t i = static_cast<size_t>(o.producers + o.consumers + 1 + o.strong); i < threads.size();
       ++i) {
    threads[i].join();
  }
  print_stats(QueueRegistry::global().snapshot(), o.json, seconds);
  return {};
}

SLUICE_REGISTER_COMMAND(
    oq,
    {.name = "oq",
     .help = "Observable queues: stats, bench",
     .order = 20,
     .setup = [](CLI::App& oq) {
       oq.require_subcommand(1);
       auto opts = std::make_shared<StatsOptions>();
       CLI::App* stats = oq.add_subcommand(
           "stats", "Run a short sample pipeline over named queues and print their counters");
       stats->add_option("--producers", opts->producers, "producer threads")->capture_default_str();
       stats->add_option("--consumers", opts->consumers, "consumer threads (each forwards)")
           ->capture_default_str();
       stats->add_option("--strong", opts->strong, "strong observers on sample.requests")
           ->capture_default_str();
       stats->add_option("--weak", opts->weak, "weak observers (history of 64)")
           ->capture_default_str();
       stats->add_option("--messages", opts->messages, "requests put in all")
           ->capture_default_str();
       stats
           ->add_option("--capacity", opts->capacity,
                        "ring slots (0: knob oqueue.default_capacity)")
           ->capture_default_str()
           ->check(sluice::cli::in_range(0, static_cast<double>(kMaxCapacity)));
       stats->add_option("--wait", opts->wait, "wait policy: spin, yield or block")
           ->capture_default_str();
       stats->add_flag("--json", opts->json, "print a JSON array instead of a table");
       sluice::cli::bind_action(*stats, [opts] { return run_stats(*opts); });
       for (const auto& hook : hooks())
         hook(oq);
     }});

}  // namespace

bool register_oq_subcommand(std::function<void(CLI::App& oq)> setup) {
  hooks().push_back(std::move(setup));
  return true;
}

}  // namespace sluice::oq::cli

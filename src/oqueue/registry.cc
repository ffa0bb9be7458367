// The process-wide registry of live observable queues (include/sluice/oqueue/stats.h).
#include <algorithm>
#include <utility>

#include "sluice/oqueue/stats.h"

namespace sluice::oq {

QueueRegistry& QueueRegistry::global() {
  static QueueRegistry* registry = new QueueRegistry();  // never destroyed: queues may outlive
  return *registry;                                      // static destruction order
}

uint64_t QueueRegistry::add(std::string name, std::function<QueueStats()> stats) {
  std::lock_guard<std::mutex> lock(mu_);
  const uint64_t id = next_id_++;
  entries_.push_back(Entry{id, std::move(name), std::move(stats)});
  return id;
}

void QueueRegistry::remove(uint64_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  std::erase_if(entries_, [id](const Entry& e) { return e.id == id; });
}

std::vector<QueueStats> QueueRegistry::snapshot() const {
  std::vector<QueueStats> out;
  {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<const Entry*> sorted;
    sorted.reserve(entries_.size());
    for (const Entry& e : entries_)
      sorted.push_back(&e);
    std::stable_sort(sorted.begin(), sorted.end(),
                     [](const Entry* a, const Entry* b) { return a->name < b->name; });
    out.reserve(sorted.size());
    for (const Entry* e : sorted)
      out.push_back(e->stats());
  }
  return out;
}

size_t QueueRegistry::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return entries_.size();
}

}  // namespace sluice::oq

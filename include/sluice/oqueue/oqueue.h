// OQueue<T>: an observable queue — a bounded lock-free MPMC queue that strong and weak observers
// can watch (Tewari et al., "OQueue: Observable Communication in Learning Directed Operating
// Systems", PACMI '25; semantics and design in docs/oqueue.md).
//
//   sluice::oq::OQueue<Read> reads("fs.reads");
//   auto producer = reads.attach_producer();
//   auto consumer = reads.attach_consumer();                  // every message, exactly one taker
//   auto strong = reads.attach_strong_observer();             // every later message, once, in
//   order auto weak = reads.attach_weak_observer(16);               // the last ≤ 16 messages, on
//   demand producer.put(read);  Read r = consumer.take();  Read s = strong.strong_observe();
//   std::vector<Read> recent = weak.history(16);
//
// Semantics:
//  * Each message put while a consumer is attached is taken by exactly one consumer.
//  * A strong observer sees every message put after it attached, exactly once and in put order
//    per producer, even when a consumer took it first: a slot is not reused until the consumers
//    and every strong observer are past it. Strong observers exert back-pressure.
//  * A weak observer never slows a producer down beyond the copy into the history ring and never
//    sees a torn message; history(n) gives the most recent ≤ n messages, oldest first, and may
//    skip one a producer is writing at that instant.
//  * With no consumer and no observer attached, put() stores nothing: one load and a branch.
//  * Messages still pending when the last consumer detaches are dropped (counted as drops).
//  * An observer may declare a filter: producers then store a message only if some attached
//    handle wants it (a consumer wants every message), and the observer sees only matches.
//
// Thread safety: an OQueue is safe for concurrent use by any number of threads through its
// handles. Each handle belongs to one thread at a time (it keeps single-writer counters and
// caches); handles are movable, not copyable, and detach when destroyed. attach_* may be called
// from any thread at any time, under load. REQUIRES: every handle is destroyed or detached
// before its queue.
//
// Ownership: the queue owns its rings; handles hold a plain pointer to the queue.
//
// Modes: QueueOptions{single_producer, single_consumer} at construction admits one producer
// (consumer) handle at a time and lets it advance its cursor without a locked instruction; the
// semantics above are unchanged (see "Single-owner cursors" below).
//
// Waiting: every handle chooses a WaitPolicy at attach time. put/take/strong_observe block,
// try_* never wait, *_until wait until a steady_clock deadline.
#pragma once

#include <algorithm>
#include <atomic>
#include <bit>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "sluice/common/result.h"
#include "sluice/common/status.h"
#include "sluice/oqueue/detail/wait.h"
#include "sluice/oqueue/stats.h"

namespace sluice::oq {

// How a handle waits when it cannot proceed.
enum class WaitPolicy : uint8_t {
  kSpin,   // busy-wait with a pause instruction; lowest latency, burns a core
  kYield,  // sched_yield() between checks
  kBlock,  // spin `oqueue.spin_before_sleep` times, then sleep in the kernel (futex) until woken
};

// A producer-side filter: a stateless predicate and a 64-bit argument it receives by value.
// Producers call it concurrently with attach/detach, so it must not dereference `arg` as a
// pointer to something that may die; encode what it needs in the 64 bits.
template <typename T>
using Filter = bool (*)(const T& message, uint64_t arg);

using Clock = std::chrono::steady_clock;
using Deadline = Clock::time_point;

// Construction-time options (like the LMAX Disruptor's ProducerType.SINGLE). A single-producer
// queue admits one producer handle at a time and a single-consumer queue one consumer handle
// (serial reuse — detach, then attach another — is fine); in exchange the owner advances its
// cursor with a plain store instead of a locked read-modify-write. Every other semantic (strong
// and weak observers, attach/detach under load, waiting, filters, stats) is unchanged.
struct QueueOptions {
  bool single_producer = false;
  bool single_consumer = false;
};

inline constexpr size_t kMaxStrongObservers = 64;
inline constexpr size_t kMaxWeakObservers = 64;
inline constexpr size_t kMaxCapacity = size_t{1} << 30;
inline constexpr size_t kMaxHistory = size_t{1} << 24;

// Ring layout and invariants
// --------------------------
// Main ring: `cap_` (a power of two ≥ 2) cache-line aligned slots {seq, words[kWords]}. Ticket t
// lives in slot t & mask_. Payload words are std::atomic<uint64_t> accessed relaxed (plain movs
// on x86), so a reader racing with a writer gets a stale or mixed copy, never UB; which copies
// are kept is decided by the sequence words below.
//
//   head_     claimed tickets. Producers: fetch_add (put) or CAS (try_put, put_until), seq_cst;
//             a single producer: a plain store (see "Single-owner cursors").
//   slot.seq  t + 1 once ticket t is written (release store by its producer; 0 initially).
//   tail_     next unclaimed ticket of the consumer group. take() claims with fetch_add and then
//             waits for its ticket; try_take/take_until copy the slot first and claim with a CAS
//             (a failed CAS discards the copy); a single consumer: a plain store after the copy.
//             With take() waiting on claimed tickets, tail_ may run ahead of head_.
//   slot.taken  t + 1 once the consumer that claimed ticket t copied it: the consumer gate.
//   consumer_start_  the ticket the attached consumer group started at.
//   strong_pos_[k]  next ticket strong observer k reads; written only by that observer.
//
// I1  A producer writes ticket t only when (a) every gate is past t - cap — the consumer group's
//     (if attached): t - cap < consumer_start_ or slot(t).taken == t - cap + 1; each attached
//     strong_pos_ > t - cap — and (b) slot.seq == t - cap + 1 (or 0 for the first lap): the
//     previous occupant was published, so two producers never write one slot.
// I2  consumer_start_ and strong_pos_ only grow, and a slot's taken word only moves forward a
//     lap at a time. A gate read late is therefore ≤ the true one: it only makes a producer wait.
// I3  A reader (consumer or strong observer) accepts ticket t only when slot.seq == t + 1
//     (acquire, pairing with the producer's release). By I1 the slot cannot be rewritten before
//     the reader moves its gate past t, so the copy is whole. A consumer whose CAS fails may hold
//     a torn copy; it discards it (the ticket's claimer marks it taken, not this consumer).
// I4  Every claimed ticket is published, even if everyone detached meanwhile, so (b) never
//     waits on a ticket that will not come.
//
// Consumer gate. The consumer that claimed ticket t stores slot.taken = t + 1 once it copied the
// slot (finish_take). Tickets are claimed once, so taken == t - cap + 1 means the group is done
// with t - cap; tickets below consumer_start_ were never the group's to take. A producer caches
// limit = min(consumer_start_, strong_pos_…) + cap and, past it, checks the slot's taken word
// (acquire) and its cached strong limit. It reads that line anyway for (b), and it never reads
// tail_, a line every take writes. Because a claim is not a copy, tail_ cannot be the gate: a
// claimed ticket may still be waiting for its message. Limits are cached under a config
// generation.
// Space sleepers pair with `taken` as with an owned cursor ("Single-owner cursors"): with
// membarrier, a taker stores it, compiler barrier, loads config and, when kBlock producers are
// attached, checks sleepers (a sleeping producer called the heavy barrier; see "Waiting"); every
// config publication is followed by the heavy barrier. Without membarrier the store is a seq_cst
// exchange.
//
// Configuration word (config_): flags (who is attached, filters, blocking waiters) in the low
// byte, a generation above. Producers read it once at the top of put: no capture flag → return.
// Attach of a consumer group or strong observer: publish the new config (seq_cst), then read
// head_ (seq_cst) to choose its start. A producer claims its ticket (seq_cst RMW on head_) and
// then re-reads config_ (seq_cst); if the generation differs from the one its cached gate came
// from, it recomputes the gate. In the single total order of seq_cst operations either the
// producer's claim precedes the attach's head read — then its ticket < start and the newcomer
// never reads it — or the config store precedes the producer's re-read, which sees the new
// generation and gates on the newcomer. A cached gate is used only while the generation is
// unchanged; by I2 it is then ≤ the true gate.
//
// Waiting (kBlock): a waiter reads epoch, increments sleepers (seq_cst), re-checks, and sleeps on
// epoch. Data waiters (consumers, strong observers) re-check head_: if head_ > the ticket they
// need, a producer has claimed it and will publish it, so they do not sleep for long; otherwise
// that producer's claim comes later in the seq_cst order than the sleepers increment, and since
// it loads sleepers (seq_cst) after its claim whenever kDataSleepers is set, it wakes them. A
// producer that read config without kDataSleepers did so before the waiter attached, hence its
// claim precedes the waiter's head_ re-check. A take() waiting on its claimed ticket t is such a
// data waiter. Space waiters (producers) re-check the gates after incrementing sleepers; strong
// observers advance with a seq_cst store followed by a seq_cst config load and load sleepers
// when kSpaceSleepers is set — the same Dekker pairing; consumers mark `taken` as described
// under "Consumer gate". Only when a kBlock handle is attached do the other side's operations
// pay the extra load.
// Asymmetric sleepers: with membarrier, a waiter calls the heavy barrier between its sleepers
// increment and its re-check, and the other side pairs with it using only a compiler barrier:
// a single owner's cursor store, a consumer's `taken` store and a strong observer's release
// store of its position are each followed by the config load and, when the config names
// sleepers, the sleepers load. The heavy barrier splits the advancing thread at a point P: if
// its store precedes P the waiter's re-check sees it; otherwise its sleepers load follows P and
// sees the increment, which the waiter made before the call. So an advance pays no locked
// instruction even while kBlock handles are attached; each sleep pays one membarrier, next to
// the futex calls it already makes.
//
// Single-owner cursors (QueueOptions::single_producer / single_consumer). The one producer owns
// head_ and the one consumer tail_ (attach refuses a second; serial reuse is ordered by mu_).
// The owner advances its cursor with advance_owned(): a plain release store, a compiler-only
// barrier between that store and the config load (light_barrier_between: it pins just those two
// accesses, so the message and the ring's address stay in registers), then the seq_cst config
// load — no locked instruction. Every config publication (publish_config_locked) of any queue
// built while membarrier was usable is followed by the heavy barrier,
// membarrier(PRIVATE_EXPEDITED), before the publisher reads any cursor. membarrier makes every
// running thread of the process execute a full barrier, splitting the owner's program at a point P:
// its stores before P are visible to the publisher when the call returns, its loads after P see
// everything stored before the call (a thread not running is split at its last context switch,
// which is a full barrier too). The compiler barrier keeps the cursor store before the config load
// in program order, so for each advance either
//   (a) the store precedes P: the publisher, reading the cursor after the call, sees it; or
//   (b) the config load follows P: it sees the new config.
// That replaces each use of "the seq_cst order" above:
//   * Attach (single producer): (a) the attacher's head_ read is > t, so the newcomer starts past
//     ticket t; or (b) the producer sees the new generation and gates on the newcomer. The
//     producer claims (stores head_) after checking its cached gate and re-checks after the
//     config load, so a ticket claimed across the attach waits like a seq_cst claim would (I4).
//   * Data sleepers (single producer): a kBlock consumer or strong observer sets kDataSleepers
//     with a publication. If the producer's config load lacked it, (a) holds and the waiter's
//     head_ re-check sees the claim. If it has it, the producer, after publishing the slot,
//     loads sleepers: with the waiter's heavy barrier between its sleepers increment and its
//     head_ re-check, that is the asymmetric pairing of "Waiting".
//   * Space sleepers (single consumer, and every consumer's `taken` store): the same with the
//     slot's taken word (stored before tail_), kSpaceSleepers and kBlock producers.
//   So no advance pays a locked instruction; a kBlock waiter pays a membarrier when it sleeps.
// Fallback: without membarrier (old kernel, seccomp, or the knob oqueue.membarrier false when
// the queue was built) the owner advances with a seq_cst exchange instead; the arguments above
// then hold as for the MPMC RMWs. Single-producer history writes use the MPMC CAS protocol then.
//
// History ring (weak observers): a separate ring of a power-of-two size ≥ the largest n declared
// by attached weak observers, tickets from hist_head_. Slot version: odd while written, 2h + 2
// once history ticket h is written. A producer CASes the version from an even value below 2h + 2
// to 2h + 1, writes the words with release stores, and stores 2h + 2 (release); if the slot is
// odd (another producer writes it) or already newer, it skips the write (a drop). A reader loads
// the version (acquire), copies the words with acquire loads and reloads the version: a word
// from a newer writer makes that writer's odd version visible to the reload. It accepts the copy
// only if both loads equal 2h + 2 for the exact ticket it wanted, so it never returns a torn or
// lapped message. (No fences: release/acquire word accesses are plain movs on x86 and TSan
// understands them.) Rings are switched under the attach mutex and never freed while the queue
// lives; at most one ring per power-of-two size exists, so history memory stays ≤ 2× the largest
// ring. Switching (select_history_ring_locked) resets the new ring, publishes it with
// hist_switching_ set, then carries the newest messages of the old ring over with the CAS
// protocol, so producers keep filling the new ring while the copy runs and a descheduled
// switcher cannot leave the history empty. A single producer (with membarrier) owns hist_head_
// and writes versions with plain stores (load the version, skip if odd or newer, store 2h + 1,
// words, 2h + 2) unless it sees hist_switching_, when it uses the CAS protocol too. The switcher
// is its only other writer: while resetting a ring it may race a write through a pointer the
// producer loaded before that ring was last switched away, and while copying it may race a plain
// write that has not seen the flag. So the producer brackets each write with hist_busy_ (odd
// while writing: store, light barrier, then the ring pointer and flag loads), and the switcher,
// before resetting and again after publishing, calls the heavy barrier and waits while
// hist_busy_ holds the odd value it read. A write whose loads follow P sees the state the
// switcher stored before P (hist_ring_ only changes under mu_, which the switcher holds); a
// write whose loads precede P made its odd value visible, and the switcher waits for its end
// (release/acquire on hist_busy_).
template <typename T>
class OQueue {
  static_assert(std::is_trivially_copyable_v<T>, "OQueue<T> requires a trivially copyable T");

  struct HandleCounters;

 public:
  class Producer;
  class Consumer;
  class StrongObserver;
  class WeakObserver;

  // Creates a queue named `name` (shown by `sluice oq stats`; names need not be unique) with a
  // ring of `capacity` slots, rounded up to a power of two ≥ 2; 0 takes the knob
  // oqueue.default_capacity. REQUIRES: capacity ≤ kMaxCapacity.
  explicit OQueue(std::string name, size_t capacity = 0, QueueOptions options = {});
  ~OQueue();

  OQueue(const OQueue&) = delete;
  OQueue& operator=(const OQueue&) = delete;

  // Attach a handle. Producers and consumers are unlimited unless the queue was built with
  // QueueOptions::single_producer / single_consumer: then a second one while one is attached is
  // refused (failed precondition). At most kMaxStrongObservers strong and kMaxWeakObservers weak
  // observers may be attached at once: the try_ forms return resource exhausted beyond that
  // (invalid argument for a bad history size), the plain forms abort with the message.
  Result<Producer> try_attach_producer(WaitPolicy policy = WaitPolicy::kBlock);
  Producer attach_producer(WaitPolicy policy = WaitPolicy::kBlock);
  Result<Consumer> try_attach_consumer(WaitPolicy policy = WaitPolicy::kBlock);
  Consumer attach_consumer(WaitPolicy policy = WaitPolicy::kBlock);
  Result<StrongObserver> try_attach_strong_observer(WaitPolicy policy = WaitPolicy::kBlock,
                                                    Filter<T> filter = nullptr,
                                                    uint64_t filter_arg = 0);
  StrongObserver attach_strong_observer(WaitPolicy policy = WaitPolicy::kBlock,
                                        Filter<T> filter = nullptr, uint64_t filter_arg = 0);
  // `history_size` (1..kMaxHistory): the most messages this observer will ask history() for.
  Result<WeakObserver> try_attach_weak_observer(size_t history_size, Filter<T> filter = nullptr,
                                                uint64_t filter_arg = 0);
  WeakObserver attach_weak_observer(size_t history_size, Filter<T> filter = nullptr,
                                    uint64_t filter_arg = 0);

  const std::string& name() const { return name_; }
  size_t capacity() const { return cap_; }
  QueueOptions options() const { return {.single_producer = sp_, .single_consumer = sc_}; }
  // True when a single-owner queue pairs its plain cursor stores with membarrier(2) (false: the
  // fallback, a locked instruction per operation, or a multi-producer multi-consumer queue).
  bool uses_asymmetric_barrier() const { return asym_; }
  // Slots in the current history ring; 0 until a weak observer attached.
  size_t history_capacity() const;

  // Counters summed over live and detached handles. Safe from any thread.
  QueueStats stats() const;

 private:
  static constexpr size_t kWords = (sizeof(T) + 7) / 8;
  // How the out-of-line parts of put() receive the message: in registers when it fits, so the
  // inlined fast path need not keep a copy in memory for them.
  using In = std::conditional_t<(sizeof(T) <= 16), T, const T&>;

  // Config flags (low byte of config_).
  static constexpr uint64_t kConsumers = 1;       // a consumer group is attached
  static constexpr uint64_t kStrongAll = 2;       // a strong observer without filter
  static constexpr uint64_t kStrongFiltered = 4;  // a strong observer with a filter
  static constexpr uint64_t kWeakAll = 8;         // a weak observer without filter
  static constexpr uint64_t kWeakFiltered = 16;   // a weak observer with a filter
  static constexpr uint64_t kDataSleepers = 32;   // a kBlock consumer or strong observer
  static constexpr uint64_t kSpaceSleepers = 64;  // a kBlock producer
  static constexpr uint64_t kCaptureMask = 31;
  static constexpr int kGenShift = 8;
  static constexpr uint64_t kNoLimit = ~uint64_t{0};
  // Never a config: flag bit 7 is never set.
  static constexpr uint64_t kNoFastPath = ~uint64_t{0};

  struct alignas(detail::kCacheLine) Slot {
    std::atomic<uint64_t> seq{0};
    std::atomic<uint64_t> taken{0};  // t + 1 once the consumer group took ticket t (slot gate)
    std::atomic<uint64_t> words[kWords]{};
  };
  struct HistRing {
    explicit HistRing(size_t size) : mask(size - 1), slots(new Slot[size]) {}
    size_t mask;
    std::unique_ptr<Slot[]> slots;  // Slot::seq is the version here
  };
  struct alignas(detail::kCursorAlign) Cursor {
    std::atomic<uint64_t> value{0};
  };
  struct FilterSlot {
    std::atomic<Filter<T>> fn{nullptr};
    std::atomic<uint64_t> arg{0};
  };
  // Written only by the handle's thread (relaxed load + store), read by stats().
  struct alignas(detail::kCacheLine) HandleCounters {
    // A put bumps exactly one of unheard (nobody attached), filtered and captures; puts is
    // their sum, so the hot path pays for one counter.
    std::atomic<uint64_t> unheard{0}, captures{0}, filtered{0}, takes{0}, observes{0},
        history_reads{0}, drops{0}, waits{0};
    // Not a counter: the handle's adaptive spin budget (kBlock), owner-only like the rest.
    uint32_t spin_budget = UINT32_MAX;
    // A single producer (consumer) does not bump captures (takes) for the messages it moves
    // through the main ring: only it advances head_ (tail_) while attached, so the count is the
    // cursor's distance from where it attached. Set under mu_ at attach.
    const std::atomic<uint64_t>* counting_cursor = nullptr;
    uint64_t cursor_at_attach = 0;
    bool cursor_counts_takes = false;  // tail_ (a consumer's takes), else head_ (captures)
  };
  enum class Sleep { kRetry, kShort, kLong };

  static QueueStats read_counters(const HandleCounters& c) {
    const uint64_t by_cursor =
        c.counting_cursor == nullptr
            ? 0
            : c.counting_cursor->load(std::memory_order_acquire) - c.cursor_at_attach;
    QueueStats s;
    s.captures =
        c.captures.load(std::memory_order_relaxed) + (c.cursor_counts_takes ? 0 : by_cursor);
    s.filtered = c.filtered.load(std::memory_order_relaxed);
    s.puts = c.unheard.load(std::memory_order_relaxed) + s.captures + s.filtered;
    s.takes = c.takes.load(std::memory_order_relaxed) + (c.cursor_counts_takes ? by_cursor : 0);
    s.observes = c.observes.load(std::memory_order_relaxed);
    s.history_reads = c.history_reads.load(std::memory_order_relaxed);
    s.drops = c.drops.load(std::memory_order_relaxed);
    s.waits = c.waits.load(std::memory_order_relaxed);
    return s;
  }
  static void bump(std::atomic<uint64_t>& c, uint64_t n = 1) {
    c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  // The main ring orders payloads through `seq` (relaxed words); the history ring's seqlock uses
  // release stores / acquire loads of the words instead of fences (plain movs on x86 as well).
  static void store_payload(Slot& s, const T& v,
                            std::memory_order order = std::memory_order_relaxed) {
    uint64_t buf[kWords] = {};
    std::memcpy(buf, &v, sizeof(T));
    for (size_t i = 0; i < kWords; ++i)
      s.words[i].store(buf[i], order);
  }
  static T load_payload(const Slot& s, std::memory_order order = std::memory_order_relaxed) {
    uint64_t buf[kWords];
    for (size_t i = 0; i < kWords; ++i)
      buf[i] = s.words[i].load(order);
    if constexpr (std::is_trivially_default_constructible_v<T>) {
      // Into a T directly: the laundered buffer below stays in memory, a dead store per take.
      T v;
      std::memcpy(&v, buf, sizeof(T));
      return v;
    }
    alignas(T) unsigned char raw[sizeof(T)];
    std::memcpy(raw, buf, sizeof(T));
    return *std::launder(reinterpret_cast<T*>(raw));
  }

  Slot& slot(uint64_t t) const { return slots_[t & mask_]; }
  uint64_t prev_seq(uint64_t t) const { return t >= cap_ ? t - cap_ + 1 : 0; }

  // Recomputes a producer's gate limit (first ticket it may not write) from `cfg`.
  void refresh_gate(Producer& p, uint64_t cfg) const {
    uint64_t strong = kNoLimit;
    uint64_t mask = strong_mask_.load(std::memory_order_acquire);
    while (mask != 0) {
      const int k = std::countr_zero(mask);
      mask &= mask - 1;
      strong = std::min(strong, strong_pos_[k].value.load(std::memory_order_seq_cst));
    }
    const uint64_t group =
        (cfg & kConsumers) ? consumer_start_.load(std::memory_order_seq_cst) : kNoLimit;
    const uint64_t gate = std::min(strong, group);
    p.limit_ = gate == kNoLimit ? kNoLimit : gate + cap_;
    p.strong_limit_ = strong == kNoLimit ? kNoLimit : strong + cap_;
    p.gen_ = cfg >> kGenShift;
    p.slot_gate_ = (cfg & kConsumers) != 0;
    // The lean paths of put_impl() cover the common shapes: consumers and observers that want
    // every message, blocking or not, with an owned head_ and the asymmetric barrier or with a
    // shared head_.
    // Consumers, strong observers without filters, or both, and weak observers without
    // filters or none: every message goes to the ring (and the history), none is filtered.
    const uint64_t capture = cfg & kCaptureMask;
    const bool lean_shape = (capture & (kConsumers | kStrongAll)) != 0 &&
                            (capture & ~(kConsumers | kStrongAll | kWeakAll)) == 0;
    p.fast_cfg_ = (asym_ && sp_ && lean_shape) ? cfg : kNoFastPath;
    p.fast_shared_cfg_ = (!sp_ && lean_shape) ? cfg : kNoFastPath;
  }
  // Whether the gates let `t` be written (I1 a): below the cached limit, or the consumer group
  // took ticket t - cap, as the slot's own `taken` word says, and the strong observers are past
  // it (see "Consumer gate").
  bool gate_open(const Producer& p, uint64_t t) const {
    return t < p.limit_ || (p.slot_gate_ && t < p.strong_limit_ && t >= cap_ &&
                            slot(t).taken.load(std::memory_order_acquire) == t - cap_ + 1);
  }
  // gate_open() for the lean paths of put_impl(), the slot gate first: after the first lap it is
  // the one that opens. Its `taken` word is the consumers' (a stale word from an earlier group
  // only says that group was done); the strong observers' cached limit still applies.
  [[gnu::always_inline]] bool lean_gate_open(const Producer& p, const Slot& s, uint64_t t) const {
    // Bitwise: one branch for the slot gate, which every lap after the first opens.
    const bool slot_taken = s.taken.load(std::memory_order_acquire) == t - cap_ + 1;
    if (slot_taken & (t < p.strong_limit_)) [[likely]]
      return true;
    return t < p.limit_;
  }
  bool space_for(Producer& p, uint64_t t) const {
    return slot(t).seq.load(std::memory_order_acquire) == prev_seq(t) && gate_open(p, t);
  }
  Sleep classify_space(Producer& p, uint64_t t) const {
    refresh_gate(p, config_.load(std::memory_order_seq_cst));
    if (!gate_open(p, t))
      return Sleep::kLong;
    // Gates are open; only the previous lap's producer is still writing.
    return slot(t).seq.load(std::memory_order_acquire) == prev_seq(t) ? Sleep::kRetry
                                                                      : Sleep::kShort;
  }
  // For a data waiter whose next ticket is `t`.
  Sleep classify_data(uint64_t t) const {
    const uint64_t h = head_.value.load(std::memory_order_seq_cst);
    if (h <= t)
      return Sleep::kLong;
    return slot(t).seq.load(std::memory_order_acquire) == t + 1 ? Sleep::kRetry : Sleep::kShort;
  }

  static bool any_match(const FilterSlot* filters, const std::atomic<uint64_t>& mask_word,
                        const T& v) {
    uint64_t mask = mask_word.load(std::memory_order_acquire);
    while (mask != 0) {
      const int k = std::countr_zero(mask);
      mask &= mask - 1;
      const Filter<T> fn = filters[k].fn.load(std::memory_order_relaxed);
      if (fn != nullptr && fn(v, filters[k].arg.load(std::memory_order_relaxed)))
        return true;
    }
    return false;
  }

  // The generic wait loop: calls try_once() until it succeeds (true) or the deadline passes
  // (false). `classify` runs after the waiter announced itself as a sleeper.
  template <typename TryOnce, typename Classify>
  bool wait_loop(WaitPolicy policy, detail::EventCount& ev, const Deadline* deadline,
                 HandleCounters* counters, TryOnce&& try_once, Classify&& classify);
  template <typename TryOnce, typename Classify>
  bool wait_blocking(detail::EventCount& ev, const Deadline* deadline, HandleCounters* counters,
                     TryOnce&& try_once, Classify&& classify);

  [[gnu::always_inline]] bool put_impl(Producer& p, const T& v, const Deadline* deadline,
                                       bool try_only);
  [[gnu::noinline]] bool capture(Producer& p, In v, uint64_t cfg, const Deadline* deadline,
                                 bool try_only);
  bool put_main(Producer& p, const T& v, const Deadline* deadline, bool try_only);
  [[gnu::always_inline]] bool put_main_single(Producer& p, const T& v, const Deadline* deadline,
                                              bool try_only);
  [[gnu::noinline]] void finish_single(Producer& p, In v, uint64_t t, uint64_t cfg);
  void put_history_single(Producer& p, In v);
  void quiesce_history_writer_locked();
  // `asym`: asym_, passed in so that a caller that already knows it lets the test fold away.
  [[gnu::always_inline]] std::optional<T> try_take_single(bool asym);
  // Out of line: the lean path of put_impl() falls back to it after its claim.
  [[gnu::noinline]] void publish(Producer& p, uint64_t t, In v);
  bool try_claim(Producer& p, uint64_t* ticket);
  void put_history(Producer& p, In v);
  static bool write_history_slot(Slot& s, uint64_t done, const T& v);

  // Always inlined, like the callers' fast paths: returned out of line, std::optional<T> goes
  // through the stack with a byte store and a wider load, a store-forwarding stall that cost
  // more than the rest of a single-thread put + take.
  [[gnu::always_inline]] std::optional<T> try_take_impl(Consumer& c);
  std::optional<T> take_impl(Consumer& c, const Deadline* deadline);
  [[gnu::always_inline]] T take_blocking(Consumer& c);
  [[gnu::noinline]] void wait_claimed(Consumer& c, uint64_t t);
  void finish_take(Slot& s, uint64_t t);
  [[gnu::always_inline]] std::optional<T> try_observe_impl(StrongObserver& o);
  std::optional<T> observe_impl(StrongObserver& o, const Deadline* deadline);
  size_t history_impl(WeakObserver& w, std::span<T> out);
  // Stores `v` into a word only this thread writes (an owned cursor, a slot's taken word, a
  // strong observer's position) and returns the config read after it. With `asym` a plain store
  // and a compiler barrier pair with the publishers' and sleepers' membarrier (see "Single-owner
  // cursors" and "Waiting"); without, a seq_cst exchange.
  uint64_t advance_owned(std::atomic<uint64_t>& word, uint64_t v, bool asym) {
    if (asym) [[likely]] {
      word.store(v, std::memory_order_release);
      detail::light_barrier_between(word, config_);
    } else {
      word.exchange(v, std::memory_order_seq_cst);
    }
    return config_.load(std::memory_order_seq_cst);
  }
  // Moves a gate producers may wait on (a slot's taken word, a strong observer's position) and
  // wakes sleeping producers.
  void advance_gate(std::atomic<uint64_t>& word, uint64_t v) {
    if (advance_owned(word, v, mb_) & kSpaceSleepers) [[unlikely]]
      detail::notify_if_sleeping(space_ev_);
  }

  // Attach bookkeeping; all REQUIRE mu_.
  HandleCounters* new_counters_locked();
  void retire_counters_locked(HandleCounters* c);
  void publish_config_locked();
  void select_history_ring_locked();
  void detach_producer(Producer& p);
  void detach_consumer(Consumer& c);
  void detach_strong(StrongObserver& o);
  void detach_weak(WeakObserver& w);

  // Hot, shared words first, each on its own lines.
  Cursor head_;
  Cursor tail_;
  Cursor hist_head_;
  Cursor hist_busy_;  // single producer: odd while it writes a history slot
  alignas(detail::kCursorAlign) std::atomic<uint64_t> config_{0};
  std::atomic<uint64_t> strong_mask_{0};         // attached strong observers
  std::atomic<uint64_t> strong_filter_mask_{0};  // … of which have a filter
  std::atomic<uint64_t> weak_filter_mask_{0};    // weak observers with a filter
  std::atomic<HistRing*> hist_ring_{nullptr};
  std::atomic<bool> hist_switching_{false};  // a ring switch is carrying messages over
  std::atomic<uint64_t> consumer_start_{0};  // first ticket of the attached consumer group
  Slot* slots_ = nullptr;
  size_t cap_ = 0;
  size_t mask_ = 0;
  bool sp_ = false;       // single producer
  bool sc_ = false;       // single consumer
  bool mb_ = false;       // membarrier usable: takers store `taken` without a locked instruction
  bool asym_ = false;     // sp_ or sc_, with membarrier: owners advance with plain stores
  bool lean_sc_ = false;  // sc_ && asym_: take()'s lean path
  detail::EventCount data_ev_;
  detail::EventCount space_ev_;
  Cursor strong_pos_[kMaxStrongObservers];
  FilterSlot strong_filters_[kMaxStrongObservers];
  FilterSlot weak_filters_[kMaxWeakObservers];

  // Cold: attach state, guarded by mu_.
  std::unique_ptr<Slot[]> slot_storage_;
  std::string name_;
  mutable std::mutex mu_;
  uint64_t registry_id_ = 0;
  uint64_t producers_ = 0, consumers_ = 0;
  uint64_t data_blockers_ = 0, space_blockers_ = 0;
  uint64_t strong_used_ = 0, weak_used_ = 0;
  size_t weak_history_[kMaxWeakObservers] = {};
  std::unique_ptr<HistRing> hist_rings_[32];  // index: log2 of the size
  std::vector<HandleCounters*> live_counters_;
  QueueStats retired_;
};

// ---------------------------------------------------------------------------------------------
// Handles. Each belongs to one thread at a time; a default-constructed or moved-from handle is
// detached and must not be used except to be assigned, destroyed or detach()ed.

// Puts messages. put() blocks while the ring is full (it is full only when a consumer or strong
// observer lags a whole ring behind); try_put() returns false instead; put_until() gives up at
// the deadline. A put with nobody attached to receive it returns at once and stores nothing.
template <typename T>
class OQueue<T>::Producer {
 public:
  Producer() = default;
  Producer(Producer&& o) noexcept { *this = std::move(o); }
  Producer& operator=(Producer&& o) noexcept {
    if (this != &o) {
      detach();
      q_ = std::exchange(o.q_, nullptr);
      c_ = std::exchange(o.c_, nullptr);
      limit_ = o.limit_;
      strong_limit_ = o.strong_limit_;
      gen_ = o.gen_;
      slot_gate_ = o.slot_gate_;
      fast_cfg_ = o.fast_cfg_;
      fast_shared_cfg_ = o.fast_shared_cfg_;
      policy_ = o.policy_;
    }
    return *this;
  }
  ~Producer() { detach(); }

  // Inlined into the caller: its fast path is a few instructions, the rest is out of line.
  [[gnu::always_inline]] void put(const T& v) { q_->put_impl(*this, v, nullptr, false); }
  [[nodiscard]] bool try_put(const T& v) { return q_->put_impl(*this, v, nullptr, true); }
  [[nodiscard]] bool put_until(const T& v, Deadline deadline) {
    return q_->put_impl(*this, v, &deadline, false);
  }

  bool attached() const { return q_ != nullptr; }
  void detach() {
    if (q_ != nullptr)
      q_->detach_producer(*this);
  }

 private:
  friend class OQueue<T>;
  OQueue* q_ = nullptr;
  HandleCounters* c_ = nullptr;
  uint64_t limit_ = 0;               // cached: first ticket the gates forbid
  uint64_t strong_limit_ = 0;        // … the strong observers' gates alone forbid
  uint64_t gen_ = ~uint64_t{0};      // config generation limit_ was computed under
  bool slot_gate_ = false;           // under gen_, the consumers' `taken` words may open the gate
  uint64_t fast_cfg_ = kNoFastPath;  // the config under which put_impl's lean path is valid
  uint64_t fast_shared_cfg_ = kNoFastPath;  // … its lean path for a shared head_
  WaitPolicy policy_ = WaitPolicy::kBlock;
};

// Takes messages; each message goes to exactly one attached consumer. take() blocks until a
// message arrives, try_take() returns nullopt at once when none is ready (or one is being
// published at that instant), take_until() returns nullopt at the deadline. A take() reserves
// the next message when it starts (as atomic_queue's pop does): while it waits, the next message
// put is its own, and other consumers take the ones after it. try_take() and take_until()
// reserve nothing, so they can give up.
template <typename T>
class OQueue<T>::Consumer {
 public:
  Consumer() = default;
  Consumer(Consumer&& o) noexcept { *this = std::move(o); }
  Consumer& operator=(Consumer&& o) noexcept {
    if (this != &o) {
      detach();
      q_ = std::exchange(o.q_, nullptr);
      c_ = std::exchange(o.c_, nullptr);
      policy_ = o.policy_;
    }
    return *this;
  }
  ~Consumer() { detach(); }

  [[gnu::always_inline]] T take() { return q_->take_blocking(*this); }
  std::optional<T> try_take() { return q_->try_take_impl(*this); }
  std::optional<T> take_until(Deadline deadline) { return q_->take_impl(*this, &deadline); }

  bool attached() const { return q_ != nullptr; }
  void detach() {
    if (q_ != nullptr)
      q_->detach_consumer(*this);
  }

 private:
  friend class OQueue<T>;
  OQueue* q_ = nullptr;
  HandleCounters* c_ = nullptr;
  WaitPolicy policy_ = WaitPolicy::kBlock;
};

// Sees every message put after attach (that passes its filter), exactly once, in ticket order.
// While it lags a whole ring behind, producers wait for it.
template <typename T>
class OQueue<T>::StrongObserver {
 public:
  StrongObserver() = default;
  StrongObserver(StrongObserver&& o) noexcept { *this = std::move(o); }
  StrongObserver& operator=(StrongObserver&& o) noexcept {
    if (this != &o) {
      detach();
      q_ = std::exchange(o.q_, nullptr);
      c_ = std::exchange(o.c_, nullptr);
      index_ = o.index_;
      pos_ = o.pos_;
      filter_ = o.filter_;
      arg_ = o.arg_;
      policy_ = o.policy_;
    }
    return *this;
  }
  ~StrongObserver() { detach(); }

  T strong_observe() {
    if (std::optional<T> v = q_->try_observe_impl(*this)) [[likely]]
      return *v;
    return *q_->observe_impl(*this, nullptr);
  }
  std::optional<T> try_strong_observe() { return q_->try_observe_impl(*this); }
  std::optional<T> strong_observe_until(Deadline deadline) {
    return q_->observe_impl(*this, &deadline);
  }

  bool attached() const { return q_ != nullptr; }
  void detach() {
    if (q_ != nullptr)
      q_->detach_strong(*this);
  }

 private:
  friend class OQueue<T>;
  OQueue* q_ = nullptr;
  HandleCounters* c_ = nullptr;
  int index_ = 0;     // slot in strong_pos_
  uint64_t pos_ = 0;  // next ticket; mirrors strong_pos_[index_]
  Filter<T> filter_ = nullptr;
  uint64_t arg_ = 0;
  WaitPolicy policy_ = WaitPolicy::kBlock;
};

// Reads recent history without affecting producers or other handles. Never blocks.
template <typename T>
class OQueue<T>::WeakObserver {
 public:
  WeakObserver() = default;
  WeakObserver(WeakObserver&& o) noexcept { *this = std::move(o); }
  WeakObserver& operator=(WeakObserver&& o) noexcept {
    if (this != &o) {
      detach();
      q_ = std::exchange(o.q_, nullptr);
      c_ = std::exchange(o.c_, nullptr);
      index_ = o.index_;
      size_ = o.size_;
      filter_ = o.filter_;
      arg_ = o.arg_;
    }
    return *this;
  }
  ~WeakObserver() { detach(); }

  // The most recent ≤ min(n, history_size) messages (matching the filter), oldest first.
  std::vector<T> history(size_t n) {
    std::vector<T> out(std::min(n, size_));
    out.resize(q_->history_impl(*this, out));
    return out;
  }
  // Allocation-free form: fills out[0, k) oldest first and returns k ≤ min(out.size(),
  // history_size).
  size_t history(std::span<T> out) { return q_->history_impl(*this, out); }

  size_t history_size() const { return size_; }
  bool attached() const { return q_ != nullptr; }
  void detach() {
    if (q_ != nullptr)
      q_->detach_weak(*this);
  }

 private:
  friend class OQueue<T>;
  OQueue* q_ = nullptr;
  HandleCounters* c_ = nullptr;
  int index_ = 0;
  size_t size_ = 0;
  Filter<T> filter_ = nullptr;
  uint64_t arg_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Implementation.

template <typename T>
OQueue<T>::OQueue(std::string name, size_t capacity, QueueOptions options)
    : sp_(options.single_producer), sc_(options.single_consumer), name_(std::move(name)) {
  mb_ = detail::asymmetric_barrier_enabled();
  asym_ = (sp_ || sc_) && mb_;
  lean_sc_ = sc_ && asym_;
  if (capacity == 0)
    capacity = detail::default_capacity();
  SLUICE_ASSERT(capacity <= kMaxCapacity, "OQueue capacity above kMaxCapacity");
  cap_ = std::bit_ceil(std::max<size_t>(capacity, 2));
  mask_ = cap_ - 1;
  slot_storage_.reset(new Slot[cap_]);
  slots_ = slot_storage_.get();
  retired_.name = name_;
  registry_id_ = QueueRegistry::global().add(name_, [this] { return stats(); });
}

template <typename T>
OQueue<T>::~OQueue() {
  QueueRegistry::global().remove(registry_id_);
  std::lock_guard<std::mutex> lock(mu_);
  SLUICE_ASSERT(live_counters_.empty(), "OQueue destroyed while handles are still attached");
}

template <typename T>
size_t OQueue<T>::history_capacity() const {
  const HistRing* r = hist_ring_.load(std::memory_order_acquire);
  return r == nullptr ? 0 : r->mask + 1;
}

template <typename T>
QueueStats OQueue<T>::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  QueueStats s = retired_;
  for (const HandleCounters* c : live_counters_)
    s.add_counters(read_counters(*c));
  s.name = name_;
  s.capacity = cap_;
  s.history_capacity = history_capacity();
  s.producers = producers_;
  s.consumers = consumers_;
  s.strong_observers = static_cast<uint64_t>(std::popcount(strong_used_));
  s.weak_observers = static_cast<uint64_t>(std::popcount(weak_used_));
  if (consumers_ > 0) {
    const uint64_t tail = tail_.value.load(std::memory_order_acquire);
    const uint64_t head = head_.value.load(std::memory_order_acquire);
    s.depth = head > tail ? head - tail : 0;
  }
  return s;
}

// --- waiting ---

template <typename T>
template <typename TryOnce, typename Classify>
bool OQueue<T>::wait_loop(WaitPolicy policy, detail::EventCount& ev, const Deadline* deadline,
                          HandleCounters* counters, TryOnce&& try_once, Classify&& classify) {
  bump(counters->waits);
  if (policy == WaitPolicy::kBlock)
    return wait_blocking(ev, deadline, counters, try_once, classify);
  for (uint64_t i = 0;; ++i) {
    if (try_once())
      return true;
    if (deadline != nullptr && (i & 63) == 0 && Clock::now() >= *deadline)
      return try_once();
    if (policy == WaitPolicy::kSpin)
      detail::cpu_relax();
    else
      detail::yield_cpu();
  }
}

// kBlock: spin, then yield, then sleep. The spin budget adapts per handle (see detail::
// SpinBudget): it shrinks while spins keep running out, which is what happens when the thread
// being waited for shares this CPU, and the yield phase hands that thread the CPU without the
// cost of a futex sleep and wake-up (tens of microseconds for an idle vCPU in a VM).
template <typename T>
template <typename TryOnce, typename Classify>
bool OQueue<T>::wait_blocking(detail::EventCount& ev, const Deadline* deadline,
                              HandleCounters* counters, TryOnce&& try_once, Classify&& classify) {
  detail::SpinBudget budget(counters->spin_budget);
  const uint32_t spins = budget.limit();
  for (uint32_t i = 0; i < spins; ++i) {
    if (try_once()) {
      budget.spun_enough();
      return true;
    }
    if (deadline != nullptr && (i & 63) == 63 && Clock::now() >= *deadline)
      return try_once();
    detail::cpu_relax();
  }
  budget.ran_out();
  const Deadline now = Clock::now();
  const Deadline yield_end = now + detail::yield_before_sleep();
  for (Deadline t = now; t < yield_end; t = Clock::now()) {
    if (try_once())
      return true;
    if (deadline != nullptr && t >= *deadline)
      return try_once();
    detail::yield_cpu();
  }
  for (;;) {
    if (try_once())
      return true;
    if (deadline != nullptr && Clock::now() >= *deadline)
      return try_once();
    // Announce, re-check, sleep. With membarrier the waiter pays the heavy barrier here, once
    // per sleep, so that the other side's advances need no locked instruction (see "Waiting").
    const uint32_t epoch = ev.epoch.load(std::memory_order_seq_cst);
    ev.sleepers.fetch_add(1, std::memory_order_seq_cst);
    if (mb_)
      detail::heavy_barrier();
    const Sleep how = classify();
    if (how != Sleep::kRetry) {
      if (how == Sleep::kShort) {
        // Someone is mid-operation on what we wait for and may not wake us. That operation is
        // a few stores, unless its thread was descheduled: give the CPU away and look again. (A
        // timed nap here cost a whole nap per hand-off whenever threads outnumber CPUs.)
        detail::yield_cpu();
      } else {
        detail::futex_wait_until(ev.epoch, epoch,
                                 deadline != nullptr ? *deadline : Deadline::max());
      }
    }
    ev.sleepers.fetch_sub(1, std::memory_order_seq_cst);
  }
}

// --- producers ---

// Always inlined: the unobserved put is this load, a branch and a counter bump.
template <typename T>
[[gnu::always_inline]] inline bool OQueue<T>::put_impl(Producer& p, const T& v,
                                                       const Deadline* deadline, bool try_only) {
  const uint64_t cfg = config_.load(std::memory_order_acquire);
  if ((cfg & kCaptureMask) == 0) {  // nobody listens: nothing is stored
    bump(p.c_->unheard);
    return true;
  }
  if (cfg == p.fast_cfg_) [[likely]] {
    // put_main_single() for its common case (fast_cfg_ with sp_ implies asym_). Only this
    // producer writes the main ring's seq words, so the previous lap's occupant is published
    // (I1 b); lean_gate_open() is (I1 a). The claim is advance_owned()'s plain store; the
    // capture is counted by head_ (see HandleCounters).
    const uint64_t t = head_.value.load(std::memory_order_relaxed);
    Slot& s = slot(t);
    if (lean_gate_open(p, s, t)) [[likely]] {
      head_.value.store(t + 1, std::memory_order_release);
      detail::light_barrier_between(head_.value, config_);
      const uint64_t after = config_.load(std::memory_order_seq_cst);
      if (after == cfg) [[likely]] {
        store_payload(s, v);
        s.seq.store(t + 1, std::memory_order_release);
        // One test on the common path for both: blocking handles, and weak observers (as in
        // capture(), the config read before the claim decides about the history).
        if (cfg & (kDataSleepers | kWeakAll)) [[unlikely]] {
          if (cfg & kDataSleepers)  // paired with the sleeper's membarrier (see "Waiting")
            detail::notify_if_sleeping(data_ev_);
          if (cfg & kWeakAll)
            put_history_single(p, v);
        }
      } else {
        finish_single(p, v, t, after);
        if (cfg & kWeakAll)
          put_history_single(p, v);
      }
      return true;
    }
  }
  if (cfg == p.fast_shared_cfg_ && !try_only && deadline == nullptr) {
    // put_main() and publish() for their common case, a blocking put: claim, re-read the
    // config (same generation: the cached gate holds), and find the slot free (I1).
    const uint64_t t = head_.value.fetch_add(1, std::memory_order_seq_cst);
    const uint64_t after = config_.load(std::memory_order_seq_cst);
    Slot& s = slot(t);
    if (after == cfg && s.seq.load(std::memory_order_acquire) == prev_seq(t) &&
        lean_gate_open(p, s, t)) [[likely]] {
      store_payload(s, v);
      s.seq.store(t + 1, std::memory_order_release);
      if (cfg & kDataSleepers)
        detail::notify_if_sleeping(data_ev_);
    } else {
      publish(p, t, v);
    }
    if (cfg & kWeakAll)
      put_history(p, v);
    bump(p.c_->captures);
    return true;
  }
  return capture(p, v, cfg, deadline, try_only);
}

template <typename T>
bool OQueue<T>::capture(Producer& p, In v, uint64_t cfg, const Deadline* deadline, bool try_only) {
  bool to_ring = (cfg & (kConsumers | kStrongAll)) != 0;
  bool to_history = (cfg & kWeakAll) != 0;
  if ((cfg & (kStrongFiltered | kWeakFiltered)) != 0) [[unlikely]] {
    if (!to_ring && (cfg & kStrongFiltered)) {
      to_ring = any_match(strong_filters_, strong_filter_mask_, v);
    }
    if (!to_history && (cfg & kWeakFiltered)) {
      to_history = any_match(weak_filters_, weak_filter_mask_, v);
    }
    if (!to_ring && !to_history) {
      bump(p.c_->filtered);
      return true;
    }
  }
  if (to_ring &&
      !(sp_ ? put_main_single(p, v, deadline, try_only) : put_main(p, v, deadline, try_only))) {
    return false;
  }
  if (to_history) {
    if (sp_ && asym_)
      put_history_single(p, v);
    else
      put_history(p, v);
  }
  if (!(sp_ && to_ring))  // a single producer's ring captures are counted by head_
    bump(p.c_->captures);
  return true;
}

template <typename T>
void OQueue<T>::publish(Producer& p, uint64_t t, In v) {
  // Claimed: re-read the config (seq_cst, after the seq_cst claim) — see "Configuration word".
  const uint64_t cfg = config_.load(std::memory_order_seq_cst);
  if ((cfg >> kGenShift) != p.gen_)
    refresh_gate(p, cfg);
  if (!space_for(p, t)) [[unlikely]] {
    // Rare for try_put/put_until (a concurrent attach moved the gate): the ticket is ours and
    // must be published (I4), so wait like put().
    wait_loop(
        p.policy_, space_ev_, nullptr, p.c_,
        [&] {
          refresh_gate(p, config_.load(std::memory_order_seq_cst));
          return space_for(p, t);
        },
        [&] { return classify_space(p, t); });
  }
  Slot& s = slot(t);
  store_payload(s, v);
  s.seq.store(t + 1, std::memory_order_release);
  if (cfg & kDataSleepers)
    detail::notify_if_sleeping(data_ev_);
}

template <typename T>
inline bool OQueue<T>::try_claim(Producer& p, uint64_t* ticket) {
  uint64_t t = head_.value.load(std::memory_order_relaxed);
  for (;;) {
    if (!gate_open(p, t)) {
      refresh_gate(p, config_.load(std::memory_order_seq_cst));
      if (!gate_open(p, t))
        return false;
    }
    if (slot(t).seq.load(std::memory_order_acquire) != prev_seq(t)) {
      const uint64_t now = head_.value.load(std::memory_order_relaxed);
      if (now == t)
        return false;  // the previous lap's producer is still writing
      t = now;
      continue;
    }
    if (head_.value.compare_exchange_weak(t, t + 1, std::memory_order_seq_cst,
                                          std::memory_order_relaxed)) {
      *ticket = t;
      return true;
    }
  }
}

template <typename T>
inline bool OQueue<T>::put_main(Producer& p, const T& v, const Deadline* deadline, bool try_only) {
  uint64_t t = 0;
  if (!try_only && deadline == nullptr) {
    t = head_.value.fetch_add(1, std::memory_order_seq_cst);
    publish(p, t, v);  // waits for space if needed
    return true;
  }
  if (!try_claim(p, &t)) {
    if (try_only)
      return false;
    const bool ok = wait_loop(
        p.policy_, space_ev_, deadline, p.c_, [&] { return try_claim(p, &t); },
        [&] { return classify_space(p, head_.value.load(std::memory_order_seq_cst)); });
    if (!ok)
      return false;
  }
  publish(p, t, v);
  return true;
}

// Single producer: head_ is ours. Check space with the cached gate, claim with a plain store
// (advance_owned), re-read the config and proceed as publish() does.
template <typename T>
[[gnu::always_inline]] inline bool OQueue<T>::put_main_single(Producer& p, const T& v,
                                                              const Deadline* deadline,
                                                              bool try_only) {
  const uint64_t t = head_.value.load(std::memory_order_relaxed);
  if (!space_for(p, t)) [[unlikely]] {
    refresh_gate(p, config_.load(std::memory_order_seq_cst));
    if (!space_for(p, t)) {
      if (try_only)
        return false;
      const bool ok = wait_loop(
          p.policy_, space_ev_, deadline, p.c_,
          [&] {
            refresh_gate(p, config_.load(std::memory_order_seq_cst));
            return space_for(p, t);
          },
          [&] { return classify_space(p, t); });
      if (!ok)
        return false;
    }
  }
  const uint64_t cfg = advance_owned(head_.value, t + 1, asym_);
  // Same generation: the limit checked above still holds (and only we write slots).
  if ((cfg >> kGenShift) != p.gen_) [[unlikely]] {
    finish_single(p, v, t, cfg);
    return true;
  }
  Slot& s = slot(t);
  store_payload(s, v);
  s.seq.store(t + 1, std::memory_order_release);
  if (cfg & kDataSleepers)
    detail::notify_if_sleeping(data_ev_);
  return true;
}

// Publishes ticket t, already claimed by the single producer, when the config read after the
// claim (`cfg`) differs from the one its gate was checked under.
template <typename T>
void OQueue<T>::finish_single(Producer& p, In v, uint64_t t, uint64_t cfg) {
  if ((cfg >> kGenShift) != p.gen_ && (refresh_gate(p, cfg), !space_for(p, t))) {
    // A consumer group or strong observer attached since the check (I4: publish anyway).
    wait_loop(
        p.policy_, space_ev_, nullptr, p.c_,
        [&] {
          refresh_gate(p, config_.load(std::memory_order_seq_cst));
          return space_for(p, t);
        },
        [&] { return classify_space(p, t); });
  }
  Slot& s = slot(t);
  store_payload(s, v);
  s.seq.store(t + 1, std::memory_order_release);
  if (cfg & kDataSleepers)
    detail::notify_if_sleeping(data_ev_);
}

// Single producer with the asymmetric barrier: hist_head_ and the slot versions are ours; the
// only other writer, select_history_ring_locked(), waits for hist_busy_ first (see "History
// ring").
template <typename T>
void OQueue<T>::put_history_single(Producer& p, In v) {
  const uint64_t busy = hist_busy_.value.load(std::memory_order_relaxed);
  hist_busy_.value.store(busy + 1, std::memory_order_relaxed);
  detail::light_barrier();
  HistRing* r = hist_ring_.load(std::memory_order_acquire);
  // Acquire: a cleared flag makes the switcher's copies visible before our plain stores.
  const bool switching = hist_switching_.load(std::memory_order_acquire);
  const uint64_t h = hist_head_.value.load(std::memory_order_relaxed);
  hist_head_.value.store(h + 1, std::memory_order_relaxed);
  Slot& s = r->slots[h & r->mask];
  const uint64_t done = 2 * h + 2;
  const uint64_t version = s.seq.load(std::memory_order_relaxed);
  if (switching) [[unlikely]] {
    // The switcher copies older messages into this ring right now: share its CAS protocol.
    if (!write_history_slot(s, done, v))
      bump(p.c_->drops);
  } else if ((version & 1) != 0 || version >= done) {
    bump(p.c_->drops);
  } else {
    s.seq.store(done - 1, std::memory_order_relaxed);
    // Release word stores order the odd version before them, as in put_history().
    store_payload(s, v, std::memory_order_release);
    s.seq.store(done, std::memory_order_release);
  }
  hist_busy_.value.store(busy + 2, std::memory_order_release);
}

template <typename T>
void OQueue<T>::quiesce_history_writer_locked() {
  if (!(sp_ && asym_))
    return;
  detail::heavy_barrier();
  const uint64_t busy = hist_busy_.value.load(std::memory_order_acquire);
  if ((busy & 1) == 0)
    return;
  while (hist_busy_.value.load(std::memory_order_acquire) == busy)
    detail::yield_cpu();
}

template <typename T>
void OQueue<T>::put_history(Producer& p, In v) {
  HistRing* r = hist_ring_.load(std::memory_order_acquire);
  const uint64_t h = hist_head_.value.fetch_add(1, std::memory_order_relaxed);
  if (!write_history_slot(r->slots[h & r->mask], 2 * h + 2, v))
    bump(p.c_->drops);  // another writer holds the slot, or a newer message is there
}

// Writes the message whose finished version is `done` unless the slot is being written or
// already holds a newer message.
template <typename T>
bool OQueue<T>::write_history_slot(Slot& s, uint64_t done, const T& v) {
  uint64_t version = s.seq.load(std::memory_order_relaxed);
  if ((version & 1) != 0 || version >= done ||
      !s.seq.compare_exchange_strong(version, done - 1, std::memory_order_acquire,
                                     std::memory_order_relaxed)) {
    return false;
  }
  // Release word stores: a reader that sees any new word also sees the odd version (below).
  store_payload(s, v, std::memory_order_release);
  s.seq.store(done, std::memory_order_release);
  return true;
}

// --- consumers ---

template <typename T>
[[gnu::always_inline]] inline std::optional<T> OQueue<T>::try_take_impl(Consumer& c) {
  if (sc_)
    return try_take_single(asym_);
  uint64_t t = tail_.value.load(std::memory_order_relaxed);
  for (;;) {
    Slot& s = slot(t);
    const uint64_t seq = s.seq.load(std::memory_order_acquire);
    if (seq != t + 1) {
      if (seq <= t)
        return std::nullopt;                            // ticket t not published yet: empty
      t = tail_.value.load(std::memory_order_relaxed);  // slot reused: our tail is stale
      continue;
    }
    T v = load_payload(s);
    if (tail_.value.compare_exchange_weak(t, t + 1, std::memory_order_seq_cst,
                                          std::memory_order_relaxed)) {
      finish_take(s, t);
      bump(c.c_->takes);
      return v;
    }
  }
}

// Single consumer: tail_ is ours and nobody can lap it, so a slot that is not t + 1 is empty.
template <typename T>
[[gnu::always_inline]] inline std::optional<T> OQueue<T>::try_take_single(bool asym) {
  const uint64_t t = tail_.value.load(std::memory_order_relaxed);
  Slot& s = slot(t);
  if (s.seq.load(std::memory_order_acquire) != t + 1) [[unlikely]]
    return std::nullopt;
  T v = load_payload(s);
  // `taken` before the advance: the release store of tail_ keeps it there, and the barrier in
  // advance_owned() orders both before the config load (the producers' gate reads `taken`; see
  // "Consumer gate"). The take is counted by tail_ (see HandleCounters).
  s.taken.store(t + 1, std::memory_order_release);
  const uint64_t cfg = advance_owned(tail_.value, t + 1, asym);
  if (cfg & kSpaceSleepers) [[unlikely]]
    detail::notify_if_sleeping(space_ev_);
  return v;
}

// Marks ticket t, just copied out of `s` by the consumer that claimed it, as taken: the
// producers' consumer gate (see "Consumer gate"). Paired like an owner's advance: with
// membarrier, a release store, a compiler barrier, the config load and, while kBlock producers
// are attached, the sleeper check; without, a seq_cst exchange.
template <typename T>
inline void OQueue<T>::finish_take(Slot& s, uint64_t t) {
  advance_gate(s.taken, t + 1);
}

// take(): claim a ticket first (one fetch_add, as atomic_queue does), then wait for it to be
// published. The locked instruction is then off the path from the producer's publication to the
// copy, where try_take's copy-then-CAS has it; a claimed ticket cannot be given back, which is
// why try_take and take_until copy first.
template <typename T>
[[gnu::always_inline]] inline T OQueue<T>::take_blocking(Consumer& c) {
  // Likely: the lean single-consumer path (one flag for sc_ && asym_) is the one an extra taken
  // branch or test would show in; the claiming path below pays a locked instruction anyway.
  if (lean_sc_) [[likely]] {
    if (std::optional<T> v = try_take_single(true)) [[likely]]
      return *v;
    return *take_impl(c, nullptr);
  }
  if (sc_) {
    if (std::optional<T> v = try_take_single(false)) [[likely]]
      return *v;
    return *take_impl(c, nullptr);
  }
  const uint64_t t = tail_.value.fetch_add(1, std::memory_order_seq_cst);
  Slot& s = slot(t);
  if (s.seq.load(std::memory_order_acquire) != t + 1) [[unlikely]]
    wait_claimed(c, t);
  T v = load_payload(s);
  finish_take(s, t);
  bump(c.c_->takes);
  return v;
}

// Waits until claimed ticket t is published. By I1 slot(t) cannot move past t before this
// consumer marks it taken, so seq == t + 1 is the only state to wait for.
template <typename T>
void OQueue<T>::wait_claimed(Consumer& c, uint64_t t) {
  wait_loop(
      c.policy_, data_ev_, nullptr, c.c_,
      [&] { return slot(t).seq.load(std::memory_order_acquire) == t + 1; },
      [&] { return classify_data(t); });
}

template <typename T>
std::optional<T> OQueue<T>::take_impl(Consumer& c, const Deadline* deadline) {
  std::optional<T> v = try_take_impl(c);
  if (v)
    return v;
  wait_loop(
      c.policy_, data_ev_, deadline, c.c_, [&] { return (v = try_take_impl(c)).has_value(); },
      [&] {
        // Head before tail: if head <= tail then no ticket ≥ tail was claimed yet.
        const uint64_t h = head_.value.load(std::memory_order_seq_cst);
        const uint64_t t = tail_.value.load(std::memory_order_seq_cst);
        if (h <= t)
          return Sleep::kLong;
        // Published (or already taken, and tail_ moved on): retry; else it is being written.
        return slot(t).seq.load(std::memory_order_acquire) > t ? Sleep::kRetry : Sleep::kShort;
      });
  return v;
}

// --- strong observers ---

template <typename T>
[[gnu::always_inline]] inline std::optional<T> OQueue<T>::try_observe_impl(StrongObserver& o) {
  for (;;) {
    const uint64_t p = o.pos_;
    Slot& s = slot(p);
    if (s.seq.load(std::memory_order_acquire) != p + 1)
      return std::nullopt;
    T v = load_payload(s);
    o.pos_ = p + 1;
    advance_gate(strong_pos_[o.index_].value, p + 1);
    if (o.filter_ != nullptr && !o.filter_(v, o.arg_))
      continue;  // captured for someone else
    bump(o.c_->observes);
    return v;
  }
}

template <typename T>
std::optional<T> OQueue<T>::observe_impl(StrongObserver& o, const Deadline* deadline) {
  std::optional<T> v = try_observe_impl(o);
  if (v)
    return v;
  wait_loop(
      o.policy_, data_ev_, deadline, o.c_, [&] { return (v = try_observe_impl(o)).has_value(); },
      [&] { return classify_data(o.pos_); });
  return v;
}

// --- weak observers ---

template <typename T>
size_t OQueue<T>::history_impl(WeakObserver& w, std::span<T> out) {
  bump(w.c_->history_reads);
  const size_t want = std::min(out.size(), w.size_);
  const HistRing* r = hist_ring_.load(std::memory_order_acquire);
  if (want == 0 || r == nullptr)
    return 0;
  const uint64_t newest = hist_head_.value.load(std::memory_order_acquire);
  const uint64_t oldest = newest > r->mask + 1 ? newest - (r->mask + 1) : 0;
  size_t n = 0;
  for (uint64_t h = newest; h > oldest && n < want;) {
    --h;
    const Slot& s = r->slots[h & r->mask];
    const uint64_t version = s.seq.load(std::memory_order_acquire);
    if (version != 2 * h + 2)
      continue;  // being written, not yet written, or lapped
    // Acquire word loads keep the version re-check below after the copy, and if a word came
    // from a newer writer, its odd version is visible to that re-check.
    T v = load_payload(s, std::memory_order_acquire);
    if (s.seq.load(std::memory_order_relaxed) != version)
      continue;  // rewritten while copying
    if (w.filter_ != nullptr && !w.filter_(v, w.arg_))
      continue;
    out[n++] = v;
  }
  std::reverse(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(n));
  return n;
}

// --- attach / detach ---

template <typename T>
typename OQueue<T>::HandleCounters* OQueue<T>::new_counters_locked() {
  auto* c = new HandleCounters;
  live_counters_.push_back(c);
  return c;
}

template <typename T>
void OQueue<T>::retire_counters_locked(HandleCounters* c) {
  retired_.add_counters(read_counters(*c));
  live_counters_.erase(std::find(live_counters_.begin(), live_counters_.end(), c));
  delete c;
}

template <typename T>
void OQueue<T>::publish_config_locked() {
  const uint64_t strong_filtered = strong_filter_mask_.load(std::memory_order_relaxed);
  const uint64_t weak_filtered = weak_filter_mask_.load(std::memory_order_relaxed);
  uint64_t flags = 0;
  if (consumers_ > 0)
    flags |= kConsumers;
  if ((strong_used_ & ~strong_filtered) != 0)
    flags |= kStrongAll;
  if (strong_filtered != 0)
    flags |= kStrongFiltered;
  if ((weak_used_ & ~weak_filtered) != 0)
    flags |= kWeakAll;
  if (weak_filtered != 0)
    flags |= kWeakFiltered;
  if (data_blockers_ > 0)
    flags |= kDataSleepers;
  if (space_blockers_ > 0)
    flags |= kSpaceSleepers;
  const uint64_t gen = (config_.load(std::memory_order_relaxed) >> kGenShift) + 1;
  config_.store((gen << kGenShift) | flags, std::memory_order_seq_cst);
  if (mb_)
    detail::heavy_barrier();  // pairs with the light barriers in advance_owned() and finish_take()
}

template <typename T>
Result<typename OQueue<T>::Producer> OQueue<T>::try_attach_producer(WaitPolicy policy) {
  Producer p;
  std::lock_guard<std::mutex> lock(mu_);
  if (sp_ && producers_ > 0) {
    return failed_precondition("queue '" + name_ +
                               "' is single-producer and already has a producer; detach it "
                               "first or build the queue without QueueOptions::single_producer");
  }
  p.q_ = this;
  p.c_ = new_counters_locked();
  p.policy_ = policy;
  if (sp_) {
    // head_ is still: no other producer is attached.
    p.c_->counting_cursor = &head_.value;
    p.c_->cursor_at_attach = head_.value.load(std::memory_order_relaxed);
  }
  ++producers_;
  if (policy == WaitPolicy::kBlock && space_blockers_++ == 0)
    publish_config_locked();
  return p;
}

template <typename T>
typename OQueue<T>::Producer OQueue<T>::attach_producer(WaitPolicy policy) {
  Result<Producer> r = try_attach_producer(policy);
  SLUICE_ASSERT(r.is_ok(), r.status().message().c_str());
  return std::move(r).value();
}

template <typename T>
void OQueue<T>::detach_producer(Producer& p) {
  std::lock_guard<std::mutex> lock(mu_);
  --producers_;
  if (p.policy_ == WaitPolicy::kBlock && --space_blockers_ == 0)
    publish_config_locked();
  retire_counters_locked(p.c_);
  p.q_ = nullptr;
  p.c_ = nullptr;
}

template <typename T>
Result<typename OQueue<T>::Consumer> OQueue<T>::try_attach_consumer(WaitPolicy policy) {
  Consumer c;
  std::lock_guard<std::mutex> lock(mu_);
  if (sc_ && consumers_ > 0) {
    return failed_precondition("queue '" + name_ +
                               "' is single-consumer and already has a consumer; detach it "
                               "first or build the queue without QueueOptions::single_consumer");
  }
  c.q_ = this;
  c.c_ = new_counters_locked();
  c.policy_ = policy;
  if (policy == WaitPolicy::kBlock)
    ++data_blockers_;
  if (consumers_++ == 0) {
    // A new consumer group: publish kConsumers, then start at head (see "Configuration word").
    // consumer_start_ only grows, so producers that read it before the store below are
    // conservative (I2).
    publish_config_locked();
    const uint64_t start = head_.value.load(std::memory_order_seq_cst);
    consumer_start_.store(start, std::memory_order_seq_cst);
    tail_.value.store(start, std::memory_order_seq_cst);
    if (sc_) {
      c.c_->counting_cursor = &tail_.value;
      c.c_->cursor_at_attach = start;
      c.c_->cursor_counts_takes = true;
    }
  } else if (policy == WaitPolicy::kBlock && data_blockers_ == 1) {
    publish_config_locked();
  }
  return c;
}

template <typename T>
typename OQueue<T>::Consumer OQueue<T>::attach_consumer(WaitPolicy policy) {
  Result<Consumer> r = try_attach_consumer(policy);
  SLUICE_ASSERT(r.is_ok(), r.status().message().c_str());
  return std::move(r).value();
}

template <typename T>
void OQueue<T>::detach_consumer(Consumer& c) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (c.policy_ == WaitPolicy::kBlock)
      --data_blockers_;
    if (--consumers_ == 0) {
      const uint64_t head = head_.value.load(std::memory_order_seq_cst);
      const uint64_t tail = tail_.value.load(std::memory_order_seq_cst);
      retired_.drops += head > tail ? head - tail : 0;  // pending messages nobody will take
    }
    publish_config_locked();
    retire_counters_locked(c.c_);
    c.q_ = nullptr;
    c.c_ = nullptr;
  }
  detail::notify_all(space_ev_);  // a producer may be waiting on the gate that just left
}

template <typename T>
Result<typename OQueue<T>::StrongObserver> OQueue<T>::try_attach_strong_observer(
    WaitPolicy policy, Filter<T> filter, uint64_t filter_arg) {
  StrongObserver o;
  std::lock_guard<std::mutex> lock(mu_);
  if (~strong_used_ == 0) {
    return resource_exhausted("queue '" + name_ + "' already has " +
                              std::to_string(kMaxStrongObservers) +
                              " strong observers; detach one first");
  }
  const int k = std::countr_one(strong_used_);
  const uint64_t bit = uint64_t{1} << k;
  // Conservative start (I2) before anyone can see the slot, the real one after the config.
  strong_pos_[k].value.store(head_.value.load(std::memory_order_seq_cst),
                             std::memory_order_seq_cst);
  strong_filters_[k].fn.store(filter, std::memory_order_relaxed);
  strong_filters_[k].arg.store(filter_arg, std::memory_order_relaxed);
  strong_used_ |= bit;
  if (filter != nullptr) {
    strong_filter_mask_.store(strong_filter_mask_.load(std::memory_order_relaxed) | bit,
                              std::memory_order_release);
  }
  strong_mask_.store(strong_used_, std::memory_order_release);
  if (policy == WaitPolicy::kBlock)
    ++data_blockers_;
  publish_config_locked();
  const uint64_t start = head_.value.load(std::memory_order_seq_cst);
  strong_pos_[k].value.store(start, std::memory_order_seq_cst);
  o.q_ = this;
  o.c_ = new_counters_locked();
  o.index_ = k;
  o.pos_ = start;
  o.filter_ = filter;
  o.arg_ = filter_arg;
  o.policy_ = policy;
  return o;
}

template <typename T>
typename OQueue<T>::StrongObserver OQueue<T>::attach_strong_observer(WaitPolicy policy,
                                                                     Filter<T> filter,
                                                                     uint64_t filter_arg) {
  Result<StrongObserver> r = try_attach_strong_observer(policy, filter, filter_arg);
  SLUICE_ASSERT(r.is_ok(), r.status().message().c_str());
  return std::move(r).value();
}

template <typename T>
void OQueue<T>::detach_strong(StrongObserver& o) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    const uint64_t bit = uint64_t{1} << o.index_;
    strong_used_ &= ~bit;
    strong_mask_.store(strong_used_, std::memory_order_release);
    strong_filter_mask_.store(strong_filter_mask_.load(std::memory_order_relaxed) & ~bit,
                              std::memory_order_release);
    if (o.policy_ == WaitPolicy::kBlock)
      --data_blockers_;
    publish_config_locked();
    retire_counters_locked(o.c_);
    o.q_ = nullptr;
    o.c_ = nullptr;
  }
  detail::notify_all(space_ev_);
}

template <typename T>
void OQueue<T>::select_history_ring_locked() {
  size_t largest = 0;
  for (uint64_t m = weak_used_; m != 0; m &= m - 1) {
    largest = std::max(largest, weak_history_[std::countr_zero(m)]);
  }
  if (largest == 0)
    return;  // keep the last ring; nobody writes it while no weak observer
  const size_t size = std::bit_ceil(std::max<size_t>(largest, 2));
  const int log = std::countr_zero(size);
  HistRing* current = hist_ring_.load(std::memory_order_relaxed);
  if (current != nullptr && current->mask + 1 == size)
    return;
  if (!hist_rings_[log])
    hist_rings_[log] = std::make_unique<HistRing>(size);
  HistRing* next = hist_rings_[log].get();
  quiesce_history_writer_locked();  // a single producer may still write `next` (stale pointer)
  // A ring used before holds messages of an earlier period; forget them, or a reader could
  // return them next to the carried-over ones with the messages in between missing.
  for (size_t i = 0; i < size; ++i) {
    uint64_t old = next->slots[i].seq.load(std::memory_order_relaxed);
    if ((old & 1) == 0 && old != 0) {
      next->slots[i].seq.compare_exchange_strong(old, 0, std::memory_order_relaxed);
    }
  }
  if (current == nullptr) {
    hist_ring_.store(next, std::memory_order_release);
    return;
  }
  // Publish first, then carry the newest messages of `current` over: producers write new
  // messages into `next` while the copy runs, so a switcher that is descheduled mid-copy loses
  // nothing but the copy. Only a put that loaded the old pointer before the switch (at most one
  // per producer) lands in `current` after the copy and is missing from `next`.
  hist_switching_.store(true, std::memory_order_relaxed);
  hist_ring_.store(next, std::memory_order_release);
  quiesce_history_writer_locked();  // from here a single producer writes `next` with CAS too
  const uint64_t newest = hist_head_.value.load(std::memory_order_acquire);
  const uint64_t span = std::min<uint64_t>(size, current->mask + 1);
  for (uint64_t h = newest > span ? newest - span : 0; h < newest; ++h) {
    const Slot& from = current->slots[h & current->mask];
    const uint64_t version = from.seq.load(std::memory_order_acquire);
    if (version != 2 * h + 2)
      continue;
    const T v = load_payload(from, std::memory_order_acquire);
    if (from.seq.load(std::memory_order_relaxed) != version)
      continue;
    write_history_slot(next->slots[h & next->mask], version, v);
  }
  hist_switching_.store(false, std::memory_order_release);
}

template <typename T>
Result<typename OQueue<T>::WeakObserver> OQueue<T>::try_attach_weak_observer(size_t history_size,
                                                                             Filter<T> filter,
                                                                             uint64_t filter_arg) {
  if (history_size == 0 || history_size > kMaxHistory) {
    return invalid_argument("weak observer history size " + std::to_string(history_size) +
                            " on queue '" + name_ + "' is outside 1.." +
                            std::to_string(kMaxHistory));
  }
  WeakObserver w;
  std::lock_guard<std::mutex> lock(mu_);
  if (~weak_used_ == 0) {
    return resource_exhausted("queue '" + name_ + "' already has " +
                              std::to_string(kMaxWeakObservers) +
                              " weak observers; detach one first");
  }
  const int k = std::countr_one(weak_used_);
  const uint64_t bit = uint64_t{1} << k;
  weak_history_[k] = history_size;
  weak_filters_[k].fn.store(filter, std::memory_order_relaxed);
  weak_filters_[k].arg.store(filter_arg, std::memory_order_relaxed);
  weak_used_ |= bit;
  select_history_ring_locked();  // the ring is in place before producers see the flag
  if (filter != nullptr) {
    weak_filter_mask_.store(weak_filter_mask_.load(std::memory_order_relaxed) | bit,
                            std::memory_order_release);
  }
  publish_config_locked();
  w.q_ = this;
  w.c_ = new_counters_locked();
  w.index_ = k;
  w.size_ = history_size;
  w.filter_ = filter;
  w.arg_ = filter_arg;
  return w;
}

template <typename T>
typename OQueue<T>::WeakObserver OQueue<T>::attach_weak_observer(size_t history_size,
                                                                 Filter<T> filter,
                                                                 uint64_t filter_arg) {
  Result<WeakObserver> r = try_attach_weak_observer(history_size, filter, filter_arg);
  SLUICE_ASSERT(r.is_ok(), r.status().message().c_str());
  return std::move(r).value();
}

template <typename T>
void OQueue<T>::detach_weak(WeakObserver& w) {
  std::lock_guard<std::mutex> lock(mu_);
  const uint64_t bit = uint64_t{1} << w.index_;
  weak_used_ &= ~bit;
  weak_history_[w.index_] = 0;
  weak_filter_mask_.store(weak_filter_mask_.load(std::memory_order_relaxed) & ~bit,
                          std::memory_order_release);
  publish_config_locked();
  select_history_ring_locked();
  retire_counters_locked(w.c_);
  w.q_ = nullptr;
  w.c_ = nullptr;
}

}  // namespace sluice::oq

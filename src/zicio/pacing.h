// Pacer: the arithmetic of zicio's I/O control loop, kept free of clocks, threads and I/O so
// that tests can drive it with chosen numbers.
//
// Two speeds are tracked as exponential moving averages with α = 1/2^ema_shift (1/16 by
// default, as in the paper):
//   * S_u, the worker's ingestion speed: bytes of a chunk over the time between the worker's
//     first access to the chunk and its return of the chunk's last page;
//   * S_d, the device throughput of one request: bytes read over submit-to-completion time.
// The averages are kept as costs (ns per byte) because costs, not speeds, add up along a stream.
//
// Equation 1 of the paper: a request of N bytes issued now completes just when the worker needs
// it if it is released after  Δr = N·(S_d − S_u)/(S_d·S_u) = N/S_u − N/S_d  (S_u ≤ S_d). When
// one request stream is slower than the worker (S_u > S_d), Δr would be negative: the request is
// released at once and R = ⌈S_u / S_d⌉ requests are kept in flight (the paper's reward
// requests), up to max_inflight.
//
// release_time() generalises Equation 1 to a chunk several chunks ahead of the worker: the worker
// started its current chunk at `current_start_ns` and will need the chunk that begins
// `bytes_ahead` stream bytes later at  current_start + bytes_ahead / S_u;  the read must start
// read_time·(1 + slack) before that. With bytes_ahead = N and current_start = now this is
// exactly Equation 1 (for slack 0 and no deviation term). read_time is not the mean read time
// but the mean plus `read_deviations` times the EMA of the reads' absolute deviation from it: a
// read released against the mean is late half the time, and on a shared machine (other tenants
// on the disk, a control thread woken late) the spread of read times is what makes the worker
// wait. The paper's kernel loop fires on I/O interrupts and can afford the mean; a user-space
// loop cannot.
//
// Thread safety: none; one control loop owns a Pacer.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace sluice::zicio::detail {

struct PacerConfig {
  unsigned ema_shift = 4;       // α = 1/16
  unsigned max_inflight = 8;    // cap on R, the requests kept in flight
  double read_slack = 0.5;      // release this fraction of a read time earlier still
  double read_deviations = 16;  // read time = mean + this × mean absolute deviation
};

class Pacer {
 public:
  explicit Pacer(PacerConfig config = {}) : config_(config) {}

  // Worker side: a chunk of `bytes` consumed in `ns` (first access to return).
  void record_consumption(uint64_t bytes, double ns) {
    if (bytes == 0 || ns <= 0)
      return;
    update(consume_cost_, static_cast<double>(ns) / static_cast<double>(bytes));
  }
  // Control side: one request of `bytes` took `ns` from submission to completion.
  void record_read(uint64_t bytes, double ns) {
    if (bytes == 0 || ns <= 0)
      return;
    const double sample = ns / static_cast<double>(bytes);
    if (read_cost_ > 0)
      update(read_dev_, std::abs(sample - read_cost_));
    update(read_cost_, sample);
  }
  // Adopts a consumption cost measured elsewhere (the worker's EMA, read from the switchboard).
  void set_consumption_cost(double ns_per_byte) { consume_cost_ = ns_per_byte; }

  bool has_consumption() const { return consume_cost_ > 0; }
  bool has_read() const { return read_cost_ > 0; }
  double consumption_cost() const { return consume_cost_; }  // ns per byte; 0 = unknown
  double read_cost() const { return read_cost_; }            // ns per byte; 0 = unknown
  double read_deviation() const { return read_dev_; }        // ns per byte, mean absolute
  // Bytes per second; 0 while unknown.
  double su() const { return consume_cost_ > 0 ? 1e9 / consume_cost_ : 0; }
  double sd() const { return read_cost_ > 0 ? 1e9 / read_cost_ : 0; }

  // Equation 1: the release delay of an N-byte request, in ns. 0 when S_u ≥ S_d (release at
  // once; reward requests make up the difference) or when either speed is unknown.
  static double equation1_delay_ns(double n_bytes, double su, double sd) {
    if (su <= 0 || sd <= 0 || su >= sd)
      return 0;
    return n_bytes * (sd - su) / (sd * su) * 1e9;
  }

  // R: requests to keep in flight. ⌈S_u/S_d⌉ clamped to [1, max_inflight]; max_inflight while
  // either speed is unknown (the start of a scan fills the ring as fast as the device allows).
  unsigned allowed_inflight() const {
    if (!has_consumption() || !has_read())
      return config_.max_inflight;
    const double r = std::ceil(read_cost_ / consume_cost_ - 1e-9);  // S_u / S_d
    return static_cast<unsigned>(std::clamp(r, 1.0, static_cast<double>(config_.max_inflight)));
  }

  // When to submit the read of a chunk of `bytes` whose first byte lies `bytes_ahead` stream
  // bytes past the first byte of the worker's current chunk, which the worker first touched at
  // `current_start_ns`. The caller submits once its clock reaches the result; a result in the past
  // means at once. Unknown consumption speed: at once (INT64_MIN).
  int64_t release_time_ns(int64_t current_start_ns, uint64_t bytes_ahead, uint64_t bytes) const {
    if (!has_consumption())
      return INT64_MIN;
    const double need =
        static_cast<double>(current_start_ns) + static_cast<double>(bytes_ahead) * consume_cost_;
    const double cost = read_cost_ + config_.read_deviations * read_dev_;
    const double read = static_cast<double>(bytes) * cost * (1.0 + config_.read_slack);
    return static_cast<int64_t>(need - read);
  }

  const PacerConfig& config() const { return config_; }

 private:
  void update(double& ema, double sample) const {
    if (ema <= 0) {
      ema = sample;
      return;
    }
    ema += (sample - ema) / static_cast<double>(uint64_t{1} << config_.ema_shift);
  }

  PacerConfig config_;
  double consume_cost_ = 0;  // ns per byte
  double read_cost_ = 0;     // ns per byte
  double read_dev_ = 0;      // ns per byte: EMA of |sample − read_cost_|
};

}  // namespace sluice::zicio::detail

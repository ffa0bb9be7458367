// Workload B of the compiler-flag target pair: double-precision sums of squared differences
// and a polynomial evaluated over every element, as in a residual norm. A different program
// from dot.c over the same flag space; its reductions too vectorize only with -ffast-math.
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

enum { kN = 2048 };
static double x[kN], y[kN];

__attribute__((noinline)) static double residual(const double* u, const double* v, int n) {
  double s = 0;
  for (int i = 0; i < n; i++) {
    const double d = u[i] - v[i];
    s += d * d;
  }
  return s;
}

__attribute__((noinline)) static double poly_sum(const double* u, int n) {
  double s = 0;
  for (int i = 0; i < n; i++) {
    const double t = u[i];
    s += ((0.5 * t + 0.25) * t - 0.125) * t + 1.0;
  }
  return s;
}

int main(int argc, char** argv) {
  const int reps = argc > 1 ? atoi(argv[1]) : 30000;
  for (int i = 0; i < kN; i++) {
    x[i] = (double)(i % 11) * 0.125;
    y[i] = (double)(i % 13) * 0.0625;
  }
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  double acc = 0;
  for (int r = 0; r < reps; r++) {
    acc += residual(x, y, kN) + poly_sum(y, kN);
    x[r % kN] += 1e-6;  // the next call's input differs: no call can be hoisted
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  const double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
  printf("{\"seconds\": %.6f, \"check\": %.6g}\n", s, acc);
  return 0;
}

// Workload A of the compiler-flag target pair: float dot products over arrays that stay in the
// L1/L2 cache, so the time is the loop's code, not memory. How fast it runs depends on the
// flags: the reduction vectorizes only when the compiler may reorder float additions
// (-ffast-math), and the vector width on -march.
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

enum { kN = 4096 };
static float a[kN], b[kN];

__attribute__((noinline)) static float dot(const float* x, const float* y, int n) {
  float s = 0;
  for (int i = 0; i < n; i++)
    s += x[i] * y[i];
  return s;
}

int main(int argc, char** argv) {
  const int reps = argc > 1 ? atoi(argv[1]) : 40000;
  for (int i = 0; i < kN; i++) {
    a[i] = (float)(i % 7) * 0.25f;
    b[i] = (float)(i % 5) * 0.5f;
  }
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  float acc = 0;
  for (int r = 0; r < reps; r++) {
    acc += dot(a, b, kN);
    a[r % kN] += 1e-3f;  // the next call's input differs: no call can be hoisted
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  const double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
  printf("{\"seconds\": %.6f, \"check\": %.6g}\n", s, (double)acc);
  return 0;
}

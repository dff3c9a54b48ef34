/* The fuzzers' seed program: a few small functions with parameters, locals, an inlined call and a call through a
 * pointer, built without libc (make_seeds.sh) so the executables stay a few kilobytes. */
struct point {
  long x;
  long y;
};

static volatile long sink;

__attribute__((noinline)) long leaf(long a, struct point* p) {
  long local = a * 3 + p->x;
  sink = local;
  return local + p->y;
}

static inline long twice(long v) { return leaf(v, &(struct point){v, v}) * 2; }

__attribute__((noinline)) long middle(long n, long (*fn)(long, struct point*)) {
  struct point p = {n, n + 1};
  long total = 0;
  for (long i = 0; i < n; ++i) total += fn(i, &p) + twice(i);
  return total;
}

__attribute__((noinline)) long outer(long n) { return middle(n, leaf) + 1; }

void _start(void) {
  sink = outer(3);
  __asm__ volatile("mov $60, %eax\n xor %edi, %edi\n syscall");
  __builtin_unreachable();
}

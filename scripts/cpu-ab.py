#!/usr/bin/env python3
"""CPU time per operation of Go benchmarks, two test binaries interleaved (A/B, then B/A, ...).

Wall-clock ns/op is worthless on a machine whose cores other work shares; the CPU time of the test
process (user + system, from getrusage) per operation is far steadier. Each figure is
(cpu(N ops) - cpu(2 ops)) / (N - 2): the benchmark's set-up (an app, a migrated database, a
registration) runs in both and cancels out.

  go test -c -o /tmp/before.test ./graph/    # at the old commit (git archive … | tar -x, then build)
  go test -c -o /tmp/after.test ./graph/     # at the new one
  cd graph && python3 ../scripts/cpu-ab.py /tmp/before.test /tmp/after.test 6 'Trivial$=20000' 'Me/sqlite/HS256$=10000'
"""
import resource
import statistics as st
import subprocess
import sys


def cpu(binary, bench, n):
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([binary, '-test.run', '^$', '-test.bench', bench, '-test.benchtime', f'{n}x', '-test.cpu', '1'],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)


def main():
    a, b, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
    benches = [(name, int(n)) for name, n in (x.split('=') for x in sys.argv[4:])]
    res = {}
    for i in range(rounds):
        for bench, n in benches:
            for binary in ([a, b] if i % 2 == 0 else [b, a]):
                us = (cpu(binary, bench, n) - cpu(binary, bench, 2)) / (n - 2) * 1e6
                res.setdefault((bench, binary), []).append(us)
                print(f'round {i} {bench} {binary}: {us:.1f} µs CPU/op', flush=True)
    for bench, _ in benches:
        x, y = res[(bench, a)], res[(bench, b)]
        pairs = ' '.join(f'{q / p:.3f}' for p, q in zip(x, y))
        print(f'{bench}: A median {st.median(x):.1f} µs, B median {st.median(y):.1f} µs, B/A {st.median(y) / st.median(x):.3f}; per round {pairs}')


if __name__ == '__main__':
    main()

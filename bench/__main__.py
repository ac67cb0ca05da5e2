"""``make bench``: the side-by-side benchmark (``bench.sidebyside``); ``--help`` for options.

The observability-overhead benchmark runs on its own: ``python -m bench.overhead``.
"""

from bench import sidebyside

if __name__ == "__main__":
    raise SystemExit(sidebyside.main())

"""``make bench``: run every benchmark and print its figures (ratios from one run)."""

from bench import overhead


def main() -> int:
    return overhead.main([])


if __name__ == "__main__":
    raise SystemExit(main())

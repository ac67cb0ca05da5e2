"""``python -m proxy`` is the ``gateway-proxy`` command."""

from proxy.cli import main

if __name__ == "__main__":
    raise SystemExit(main())

"""`python -m nanochat_cli` runs the same entry point as the `nanochat-cli` script."""

from nanochat_cli.cli import main

raise SystemExit(main())

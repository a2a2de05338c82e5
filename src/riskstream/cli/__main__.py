"""``python -m riskstream.cli``: the ``riskstream`` command."""

from riskstream.cli import main

main()

"""`python -m exegraph_trio`: the `exegraph` command line (see `exegraph --help`)."""

import sys

from ._cli import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m exegraph_trio"))

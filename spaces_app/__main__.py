"""`python -m speat_metric.space ...` is `speat space ...`."""

import sys

from speat_metric.cli import run_package_command

if __name__ == "__main__":
    sys.exit(run_package_command("space"))

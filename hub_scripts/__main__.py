"""`python -m speat_metric.hub ...` is `speat hub ...`."""

import sys

from speat_metric.cli import run_package_command

if __name__ == "__main__":
    sys.exit(run_package_command("hub"))

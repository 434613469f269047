"""One import namespace: the consumer folders (hub_scripts/, pruning/, distill/, spaces_app/) install inside
speat_metric, and nothing in the code, tests, docs or scripts imports or runs them under their folder names (which a
user's own `pruning/` folder, or any of the many unrelated packages of those names, would shadow)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
OLD = r"(?:hub_scripts|spaces_app|pruning|distill)"
PATTERNS = [
    re.compile(rf"^\s*(?:from|import)\s+{OLD}(?:\.|\s|$)", re.MULTILINE),  # import pruning, from distill.x import
    re.compile(rf"-m\s+{OLD}\b(?![/.\w-])"),                               # python -m pruning, accelerate launch -m
    re.compile(rf"""["']-m["'],\s*["']{OLD}["']"""),                        # [sys.executable, "-m", "distill"]
    re.compile(rf"""run_module\(\s*["']{OLD}["']"""),
    re.compile(rf"(?<![\w./-]){OLD}\.(?:cli|config|train|app|views|hub|card|annotate|webhook|student)\b(?!\.(?:py|md))"),
]


def test_no_file_uses_the_old_top_level_names():
    tracked = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPOSITORY, capture_output=True,
                             text=True, check=True).stdout.split()
    offending = []
    for name in tracked:
        path = REPOSITORY / name
        if path.suffix not in (".py", ".md", ".sh", ".toml", ".txt", ".yaml") or not path.is_file() \
                or path == Path(__file__).resolve():
            continue
        text = path.read_text(encoding="utf-8")
        for pattern in PATTERNS:
            offending += [f"{name}: {match.group(0).strip()}" for match in pattern.finditer(text)]
    assert offending == []


def test_the_consumer_packages_import_under_speat_metric():
    import speat_metric.distill.cli
    import speat_metric.hub.cli
    import speat_metric.pruning.cli
    import speat_metric.space.cli

    folders = {module.__name__: Path(module.__file__).parent.name for module in
               (speat_metric.hub.cli, speat_metric.pruning.cli, speat_metric.distill.cli, speat_metric.space.cli)}
    assert folders == {"speat_metric.hub.cli": "hub_scripts", "speat_metric.pruning.cli": "pruning",
                       "speat_metric.distill.cli": "distill", "speat_metric.space.cli": "spaces_app"}

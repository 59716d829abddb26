"""The README's "From zero to a leaderboard row", followed as written: its function file and its
commands, on a randomly initialised tiny ResNet with two manipulation steps (the plumbing, not the
attack's strength)."""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

from robustbench_interp.cli import main

README = Path(__file__).resolve().parents[1] / "README.md"
#: What the test adds to each command so that it runs in seconds (a smaller grid, no figures).
SMALL = ["--models", "resnet", "--attacks", "location", "--eval-size", "8", "--accuracy-size", "32"]
SMALL_RUN = [*SMALL, "--seeds", "0", "--steps", "2", "--score-with", "gradcam", "--no-figures"]


def section() -> tuple[str, list[list[str]]]:
    """The section's Python file and its ``rbi`` commands (the other lines are shell set-up)."""
    text = README.read_text()
    body = text.split("### From zero to a leaderboard row", 1)[1].split("\n#", 1)[0]
    python = re.search(r"```python\n(.*?)```", body, re.S).group(1)
    bash = re.search(r"```bash\n(.*?)```", body, re.S).group(1)
    commands = [shlex.split(line)[1:] for line in bash.splitlines() if line.startswith("rbi ")]
    return python, commands


def test_the_readme_section_gets_a_plain_function_a_leaderboard_row_and_verifies_it(
        random_resnet_cache, monkeypatch, capsys):
    python, commands = section()
    assert [c[0] for c in commands] == ["run", "verify"]
    root = random_resnet_cache
    (root / "my_saliency.py").write_text(python)
    monkeypatch.syspath_prepend(str(root))  # export PYTHONPATH=$PWD
    monkeypatch.chdir(root)
    try:
        run, verify = commands
        assert main([*run, *SMALL_RUN, "--store", str(root / "results")]) == 0
        scores = (root / "leaderboard" / "tiny" / "scores.csv").read_text()
        assert "resnet,location,my_saliency:my_saliency,my_saliency:my_saliency,0,True" in scores
        assert (root / "leaderboard" / "tiny" / "index.html").exists()
        capsys.readouterr()
        assert main([*verify, *SMALL]) == 0
        assert "verify my_saliency:my_saliency passed" in capsys.readouterr().err
    finally:
        sys.modules.pop("my_saliency", None)

"""`python -m engine.cli ...`: the command in this process (the supervisor's driver)."""
import sys

from engine.cli.start import exit_now_if_interrupted  # signals first: engine/cli/start.py

from engine.cli.main import main  # noqa: E402

sys.exit(exit_now_if_interrupted(main()))

"""``python -m conveyor.tools.evaluation`` = ``conveyor eval`` (see :mod:`conveyor.tools.evaluation.cli`)."""
from conveyor.tools.evaluation.cli import eval_command

if __name__ == "__main__":
    eval_command(prog_name="python -m conveyor.tools.evaluation")

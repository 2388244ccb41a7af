"""``python -m processors.evaluation`` = ``conveyor eval`` (see :mod:`processors.evaluation.cli`)."""
from processors.evaluation.cli import eval_command

if __name__ == "__main__":
    eval_command(prog_name="python -m processors.evaluation")

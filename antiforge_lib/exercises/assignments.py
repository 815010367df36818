"""The classroom assignments' graders, by their old address.

They live in :mod:`.grader` (the shared machinery and :func:`load_student_module`), :mod:`.a1_losses` (Assignment 1)
and :mod:`.a2_ablation` (Assignment 2); this module re-exports their public names so that notebooks and student
files written against it keep working.
"""

from .a1_losses import *  # noqa: F403
from .a1_losses import __all__ as _a1
from .a2_ablation import *  # noqa: F403
from .a2_ablation import __all__ as _a2
from .grader import *  # noqa: F403
from .grader import __all__ as _grader

__all__ = [*_grader, *_a1, *_a2]

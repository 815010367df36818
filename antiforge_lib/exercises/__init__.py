"""Self-checks for the chapters' exercises.

Each ``check_*`` function takes the student's function, runs it on random
inputs beside the library's reference, prints a verdict a student can act on
("Correct: ..." or "Not yet: ..." with a hint), and returns ``True`` only when
the answer is right. It never raises because of the student's code; the book's
stubs ``raise NotImplementedError`` (as nbgrader's do), which the checks report
as "not written yet". One module per chapter; all checks are importable from
here. The classroom assignments' graders are in :mod:`.a1_losses` and
:mod:`.a2_ablation`, on the machinery of :mod:`.grader`.
"""

from . import ch01, ch02, ch03, ch04, ch05, ch06, ch07, ch08, ch09, ch10, ch11
from .ch01 import *  # noqa: F403
from .ch02 import *  # noqa: F403
from .ch03 import *  # noqa: F403
from .ch04 import *  # noqa: F403
from .ch05 import *  # noqa: F403
from .ch06 import *  # noqa: F403
from .ch07 import *  # noqa: F403
from .ch08 import *  # noqa: F403
from .ch09 import *  # noqa: F403
from .ch10 import *  # noqa: F403
from .ch11 import *  # noqa: F403

__all__ = [name for m in (ch01, ch02, ch03, ch04, ch05, ch06, ch07, ch08, ch09, ch10, ch11) for name in m.__all__]

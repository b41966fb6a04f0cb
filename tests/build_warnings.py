"""What counts as a build warning about our own configuration in pip's verbose output (shared by the install tests).

pip shows a build backend's warnings only since pip 25 (and only some of them); with `-v` every pip shows the
backend's whole output, so the tests read that and do not depend on which pip runs them.
"""

import re

# Warning classes (SetuptoolsDeprecationWarning, BuildBackendWarning, ...), setuptools' InformationOnly notices and
# their `!!` banners, and distutils-style `warning:` lines. pip's own upper-case `WARNING:` lines are about this
# machine's index settings, not about our pyproject.
OURS = re.compile(r"[A-Za-z]*Warning\b|InformationOnly|^\s*!!\s*$|^\s*warning:", re.M)

# PYTHONDONTWRITEBYTECODE makes distutils print "byte-compiling is disabled": a setting of the caller, not ours.
CALLER_SETTINGS = ("PYTHONPATH", "PYTHONHOME", "PYTHONDONTWRITEBYTECODE")


def backend_warnings(log: str) -> list[str]:
    return [line.strip() for line in log.splitlines() if OURS.search(line)]

"""`hero-gym view`: one self-contained HTML file (no server, no network) for evaluation and training runs.

:func:`build_report` reads one run directory, or two shown side by side, and writes the page
(hero_gym.viewer.data reads the runs, hero_gym.viewer.report embeds them in template.html).
"""

from hero_gym.viewer.report import build_report

__all__ = ["build_report"]

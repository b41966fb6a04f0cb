"""The HTTP policy against a local misbehaving server (127.0.0.1 only; bounded in replies and time).

Seed 7301 is used by no other fuzz test. The larger run behind results/hardening.md is
``python -m hero_gym.benchmarks.fuzz_http --replies 5000 --seed 91017``.
"""

import pytest

from hero_gym.benchmarks.fuzz_http import BEHAVIOURS, fuzz_replies


@pytest.mark.slow
def test_no_reply_crashes_a_batch_leaks_the_key_or_outlives_the_deadline():
    r = fuzz_replies(250, seed=7301, time_budget_s=60)
    # fuzz_replies asserts per batch: one Generation per request, no exception, no key in any text or error,
    # nothing sent to another origin, every batch within the retry x timeout bound
    assert r.replies >= 250 and r.leaks == 0 and r.elsewhere == 0
    assert set(r.behaviours) == set(BEHAVIOURS)  # every kind of misbehaviour was served
    assert r.ok > 0 and r.errors > 0 and r.generations == r.ok + r.errors

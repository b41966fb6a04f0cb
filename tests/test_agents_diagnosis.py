"""HERO's reflector output parser: JSON lines, tagged blocks, and everything a model gets wrong."""

import pytest

from hero_gym.agents.diagnosis import Diagnosis, parse_diagnoses


def test_json_lines_with_chatter_around_them():
    text = (
        "Sure! Here is my review.\n"
        '{"turn": 1, "necessary": true, "valid": false, "cause": "order id lacks #", "corrected_action": "get_order_details(\'#W1\')"}\n'
        'Some thoughts in between {not json}\n'
        '{"turn": 2, "necessary": "no", "valid": "yes", "cause": "none", "corrected_action": ""}\n'
    )
    res = parse_diagnoses(text, 3)
    assert sorted(res.diagnoses) == [0, 1]
    d0, d1 = res.diagnoses[0], res.diagnoses[1]
    assert (d0.necessary, d0.valid, d0.cause) == (True, False, "order id lacks #")
    assert d0.corrected_action == "get_order_details('#W1')"
    assert (d1.necessary, d1.valid) == (False, True)
    assert res.missing(3) == 1 and res.unreadable == 0


def test_tagged_blocks_when_no_json():
    text = "<turn 1>\nnecessary: yes\nvalid: no\ncause: clicked a missing button\ncorrected_action: click[back]\n</turn>\n" \
           "<turn 3>\nnecessity: no\n</turn>"
    res = parse_diagnoses(text, 3)
    assert sorted(res.diagnoses) == [0, 2]
    assert res.diagnoses[0] == Diagnosis(0, True, False, "clicked a missing button", "click[back]")
    assert res.diagnoses[2].necessary is False


def test_extra_duplicate_and_out_of_range_turns_are_dropped_and_counted():
    text = "\n".join([
        '{"turn": 1, "valid": true}',
        '{"turn": 1, "valid": false}',  # duplicate: the first wins
        '{"turn": 4, "valid": true}',  # trajectory has 2 turns
        '{"turn": 0, "valid": true}',  # turns are 1-based
        '{"turn": "two", "valid": true}',  # not a number
        '{"turn": 2, "cause": ""}',  # says nothing
    ])
    res = parse_diagnoses(text, 2)
    assert list(res.diagnoses) == [0] and res.diagnoses[0].valid is True
    assert res.duplicates == 1 and res.out_of_range == 2 and res.unreadable == 2


@pytest.mark.parametrize("text", ["", "I think everything was fine.", '{"turn": 1, "valid": tru', "<turn 1></turn>", "[1, 2, 3]"])
def test_missing_or_garbled_gives_no_diagnosis(text):
    res = parse_diagnoses(text, 2)
    assert res.diagnoses == {}
    assert res.missing(2) == 2


def test_truncated_json_counts_as_unreadable():
    res = parse_diagnoses('{"turn": 1, "valid": true}\n{"turn": 2, "valid": fa', 2)
    assert list(res.diagnoses) == [0] and res.unreadable == 1


def test_non_string_input_raises():
    with pytest.raises(TypeError, match="str"):
        parse_diagnoses(None, 2)


def test_to_text_is_compact_and_skips_empty_fields():
    assert Diagnosis(0, necessary=False).to_text() == "the action was NOT necessary."
    text = Diagnosis(0, True, False, "wrong id", "click[b]").to_text()
    assert "INVALID" in text and "wrong id" in text and "click[b]" in text
    assert "problem" not in Diagnosis(0, True, True, "none").to_text()


def test_turn_review_reads_structure_or_keeps_free_text():
    from hero_gym.agents.diagnosis import parse_turn_review

    d = parse_turn_review('{"turn": 9, "valid": false, "cause": "bad id"}', 2)
    assert (d.turn, d.valid, d.cause) == (2, False, "bad id")  # the request fixes the turn, not the answer
    d = parse_turn_review("  The click was   not needed;\n it should have searched again. ", 0)
    assert d.note == "The click was not needed; it should have searched again." and "review:" in d.to_text()
    assert parse_turn_review(" .. \n", 0) is None
    assert len(parse_turn_review("x" * 5000, 0, max_chars=100).note) == 100


@pytest.mark.parametrize("text", ["NO HINT", "no hint.", "  No hint: the action was fine.", "None.", "OK", "n/a"])
def test_turn_review_no_hint_answers(text):
    from hero_gym.agents.diagnosis import parse_turn_review

    d = parse_turn_review(text, 1)
    assert d.no_hint and not d.is_actionable() and not d.is_empty()


@pytest.mark.parametrize("d,actionable", [
    (Diagnosis(0, True, True, "none", ""), False),  # "necessary; valid." says nothing to act on
    (Diagnosis(0, True, None, "N/A.", "  "), False),
    (Diagnosis(0, None, None, "Nothing went wrong", ""), False),
    (Diagnosis(0, False, True, "none", ""), True),
    (Diagnosis(0, True, False), True),
    (Diagnosis(0, True, True, "clicked the wrong size"), True),
    (Diagnosis(0, True, True, "none", "click[back]"), True),
    (Diagnosis(0, note="should have searched first"), True),
])
def test_only_diagnoses_with_something_to_act_on_are_actionable(d, actionable):
    assert d.is_actionable() is actionable


def test_echo_score_is_the_share_of_ngrams_found_in_the_prompt():
    from hero_gym.agents.diagnosis import FORMAT_WORDS, echo_score

    prompt = "Look at turn 2 only. Say whether this action was needed and valid."
    assert echo_score("Say whether this action was needed", prompt) == 1.0
    # 5 words -> 2 four-grams, one of them ("whether this action was") in the prompt
    assert echo_score("whether this action was wrong", prompt) == 0.5
    assert echo_score("too short", prompt) == 0.0
    # Fewer words than n: an echo when the prompt holds them word for word (a reflection that is just the action).
    assert echo_score("click[b09s3bn15c]", "[Turn 2] AGENT ACTION:\nclick[b09s3bn15c]\n") == 1.0
    assert echo_score("click[b07hp6lvrs]", "[Turn 2] AGENT ACTION:\nclick[b09s3bn15c]\n") == 0.0
    assert echo_score("valid turn", prompt) == 0.0  # both words are there, not together
    assert echo_score("It searched for the wrong product twice", prompt) == 0.0
    # Format words and numbers are ignored on request, so a well-formed answer does not look like its prompt.
    fmt = '"turn": 1, "necessary": true, "valid": false, "cause": "wrong id"'
    assert echo_score('{"turn": 1, "necessary": true, "valid": false}', fmt) == 1.0
    assert echo_score('{"turn": 1, "necessary": true, "valid": false}', fmt, ignore=FORMAT_WORDS) == 0.0


def test_echo_score_can_count_a_reflection_repeating_itself():
    from hero_gym.agents.diagnosis import echo_score

    prompt = "Look at turn 2 only. The agent's action in that turn was: click[b09]"
    loop = "The agent's action in turn 2 was:\n\n" * 4  # SmolLM2-135M-Instruct's answer, as measured
    assert echo_score(loop, prompt) < 0.5
    # 8 words a lap, 29 four-grams: the first 8 are new but for 2 found in the prompt ("the agent s action", "agent s
    # action in"); the other 21 repeat the lap before them.
    assert echo_score(loop, prompt, self_repeats=True) == 23 / 29
    # Overlapping with itself is no repeat: a gram counts only against a stretch that ends before it starts.
    assert echo_score("a b c d e", "", self_repeats=True) == 0.0
    assert echo_score("a a a a a a a a", "", self_repeats=True) == 1 / 5
    counting = "".join(f"The agent's action in turn {t} was: click[4] " for t in range(3, 7))
    assert echo_score(counting, prompt) < 0.5 and echo_score(counting, prompt, self_repeats=True) > 0.5
    review = "It bought a shirt over the price limit; it should have gone back and chosen the cheaper one."
    assert echo_score(review, prompt, self_repeats=True) == 0.0

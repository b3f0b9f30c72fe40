"""
The text reward's rules a training run relies on, under our rules and the reference's.

LPR answers to option and open questions are held to three words under either rule set,
and a sample that carries no ground-truth answer never pays the text reward.
"""

import pytest

from finers_training import rewards as R


def said(response):
    return f"<answer>{{'bbox': [1, 1, 5, 5], 'response': '{response}'}}</answer>"


OPEN = {"q_type": "open", "answer": "white"}


@pytest.mark.parametrize("reference", [False, True])
def test_lpr_open_answers_of_more_than_three_words_earn_nothing_under_either_rules(reference):
    assert R.answer_text(said("it is white"), OPEN, lpr=True, reference=reference) == 1.0
    long = said("it is plain white")
    assert R.answer_text(long, OPEN, lpr=True, reference=reference) == 0.0
    assert R.answer_text(long, OPEN, lpr=False, reference=reference) == 1.0


@pytest.mark.parametrize("q_type", ["option", "open"])
@pytest.mark.parametrize("response", ["X", "XXXX", "A", "white"])
def test_a_sample_without_an_answer_never_pays_the_text_reward(q_type, response):
    for reference in (False, True):
        assert R.answer_text(said(response), {"q_type": q_type}, reference=reference) == 0.0

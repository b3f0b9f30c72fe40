"""
Reading the question, its type and its options back out of a prompt, and the prompt errors.

The bring-up backend grounds what it reads back from the prompt text, so an instruction with
an apostrophe, an empty one, a prompt behind a chat prefix and options at the very end of
the text must all come back exactly.
"""

import pytest

from finers_ros.prompts import (
    gse_prompt,
    is_gse_prompt,
    lpr_prompt,
    normalize_question_type,
    options_from_prompt,
    question_from_prompt,
    question_type_from_prompt,
)


@pytest.mark.parametrize("prompt", [gse_prompt, lpr_prompt])
@pytest.mark.parametrize("question", ["the robot's left arm", "it's the 'odd' one", ""])
def test_the_question_comes_back_with_its_apostrophes(prompt, question):
    assert question_from_prompt(prompt(question)) == question


def test_the_question_is_found_behind_a_chat_prefix():
    text = "<|im_start|>user\n" + lpr_prompt("the red screw")
    assert question_from_prompt(text) == "the red screw"


@pytest.mark.parametrize(
    "text, question",
    [
        ("Please find 'the red screw' quickly", "the red screw"),
        ("Please find 'the red screw", None),
        ("Find the red screw", None),
    ],
)
def test_a_prompt_without_the_fixed_tail(text, question):
    assert question_from_prompt(text) == question


def test_only_a_gse_prompt_reads_as_one():
    assert is_gse_prompt(gse_prompt("the red screw"))
    assert not is_gse_prompt(lpr_prompt("the 256*256 bounding box sticker"))
    assert not is_gse_prompt("Based on the 'red screw', find it.")


@pytest.mark.parametrize("prompt", [gse_prompt, lpr_prompt])
def test_the_options_come_back_as_inserted(prompt):
    text = prompt("what colour is the disc", "option", ["A. red", "B. blue"])
    assert options_from_prompt(text) == "['A. red', 'B. blue']"
    assert question_type_from_prompt(text) == "option"
    assert options_from_prompt(prompt("what colour is the disc", "open")) == ""


def test_options_at_the_end_of_the_text_are_read_to_its_end():
    assert options_from_prompt("And give me a correct option from A, B or C") == "A, B or C"
    assert options_from_prompt("Q. And give me a correct option from (A) red") == "(A) red"


def test_an_option_question_without_options_is_refused():
    for prompt in (gse_prompt, lpr_prompt):
        with pytest.raises(ValueError, match=r"^an option question needs its options$"):
            prompt("what colour is the disc", "option")


def test_an_unknown_question_type_names_the_known_ones():
    with pytest.raises(ValueError) as caught:
        normalize_question_type("Poem")
    assert str(caught.value) == ("unknown question type 'Poem'; "
                                 "expected one of ('referring', 'open', 'option')")

import pytest

from finers_ros.parsing import ParseError, has_think_answer_format, parse_gse, parse_lpr
from finers_ros.prompts import gse_prompt, is_gse_prompt, lpr_prompt, question_from_prompt

# The six prompts, verbatim as the published checkpoints were trained on them (reference code:
# verl/utils/rl_dataset.py for GSE, verl/utils/rl_dataset_lr.py for LPR), missing spaces included.
GSE_REFERRING = (
    "Based on the 'find the red screw', identify a 256*256 bounding box that best localizes the "
    "region most relevant to the query. And respond with whether the object is found.Compare the "
    "difference between regions and find the most closely matched one.Output the thinking process "
    "in <think> </think> and final answer in <answer> </answer> tags.Output the 256*256 region "
    "bbox and the final response inside the interested object in JSON format.i.e., <think> "
    "thinking process here </think><answer>{'bbox': [x_min,y_min,x_min+256,y_min+256], "
    "'response': 'The object is found.'}</answer>"
)
GSE_OPEN = (
    "Based on the 'what colour is the car', identify a 256*256 bounding box that best localizes "
    "the region most relevant to the query. And give me a final response with a word or phrase."
    "Compare the difference between regions and find the most closely matched one.Output the "
    "thinking process in <think> </think> and final answer in <answer> </answer> tags.Output the "
    "256*256 region bbox and the final response inside the interested object in JSON format.i.e., "
    "<think> thinking process here </think><answer>{'bbox': [x_min,y_min,x_min+256,y_min+256], "
    "'response': 'The object is white.' }</answer>"
)
GSE_OPTION = (
    "Based on the 'which colour is the car', identify a 256*256 bounding box that best localizes "
    "the region most relevant to the query. And give me a correct option from ['A. red', "
    "\"B. driver's blue\", 'C. 3'].Compare the difference between regions and find the most "
    "closely matched one.Output the thinking process in <think> </think> and final answer in "
    "<answer> </answer> tags.Output the 256*256 region bbox and the final response inside the "
    "interested object in JSON format.i.e., <think> thinking process here </think><answer>{'bbox':"
    " [x_min,y_min,x_min+256,y_min+256], 'response': 'A'}</answer>"
)
LPR_REFERRING = (
    "Please find 'find the red screw' with bbox and points. And respond with whether the object "
    "is found.Compare the difference between objects and find the most closely matched one.Output "
    "the thinking process in <think> </think> and final answer in <answer> </answer> tags.Output "
    "the one bbox and points of two largest inscribed circles inside the interested object in "
    "JSON format.If the object is not found, output bbox as [0, 0, 0, 0], points_1 and points_2 "
    "as [0, 0], and response as 'No object founded'.i.e., <think> thinking process here </think>"
    "<answer>{'bbox': [10,100,200,210], 'points_1': [30,110], 'points_2': [35,180], 'response': "
    "'The object is found.'}</answer>"
)
LPR_OPEN = (
    "Please find 'what colour is the car' with bbox and points. And give me a final response with "
    "a word or phrase.Compare the difference between objects and find the most closely matched "
    "one.Output the thinking process in <think> </think> and final answer in <answer> </answer> "
    "tags.Output the one bbox and points of two largest inscribed circles inside the interested "
    "object in JSON format.If the object is not found, output bbox as [0, 0, 0, 0], points_1 and "
    "points_2 as [0, 0], and response as 'No object founded'.i.e., <think> thinking process here "
    "</think><answer>{'bbox': [10,100,200,210], 'points_1': [30,110], 'points_2': [35,180], "
    "'response': 'The object is white.'}</answer>"
)
LPR_OPTION = (
    "Please find 'which colour is the car' with bbox and points. And give me a correct option "
    "from [1, 2].Compare the difference between objects and find the most closely matched one."
    "Output the thinking process in <think> </think> and final answer in <answer> </answer> "
    "tags.Output "
    "the one bbox and points of two largest inscribed circles inside the interested object in "
    "JSON format.If the object is not found, output bbox as [0, 0, 0, 0], points_1 and points_2 "
    "as [0, 0], and response as 'No object founded'.i.e., <think> thinking process here </think>"
    "<answer>{'bbox': [10,100,200,210], 'points_1': [30,110], 'points_2': [35,180], 'response': "
    "'A'}</answer>"
)


def test_six_prompts_are_verbatim():
    assert gse_prompt("Find the red screw.") == GSE_REFERRING
    assert lpr_prompt("find the red screw") == LPR_REFERRING
    assert gse_prompt("What colour is the car.", "reasoning") == GSE_OPEN
    assert lpr_prompt("what colour is the car", "open") == LPR_OPEN
    options = ["A. red", "B. driver's blue", "C. 3"]
    assert gse_prompt("which colour is the car", "option", options) == GSE_OPTION
    # Options render as str() of what the reference is given, numbers included.
    assert lpr_prompt("which colour is the car", "option", [1, 2]) == LPR_OPTION


def test_prompt_argument_errors():
    with pytest.raises(ValueError):
        gse_prompt("x", "option")
    with pytest.raises(ValueError):
        gse_prompt("x", "essay")


def test_question_type_and_options_read_back_from_prompt():
    from finers_ros.prompts import options_from_prompt, question_type_from_prompt

    for build in (gse_prompt, lpr_prompt):
        assert question_type_from_prompt(build("find it")) == "referring"
        assert question_type_from_prompt(build("what is it", "open")) == "open"
        option = build("which", "option", ["A. red", "B. blue"])
        assert question_type_from_prompt(option) == "option"
        assert options_from_prompt(option) == "['A. red', 'B. blue']"
    assert options_from_prompt(gse_prompt("find it")) == ""


def test_question_round_trips_through_prompt():
    question = "find the driver's red cap"
    assert question_from_prompt(gse_prompt(question)) == question
    assert question_from_prompt(lpr_prompt("find the red screw")) == "find the red screw"
    assert is_gse_prompt(GSE_REFERRING) and not is_gse_prompt(LPR_REFERRING)


def test_parse_answer_block_first_single_quotes():
    text = ("<think>I compare {'bbox': [1, 2, 3, 4]} candidates</think>"
            "<answer>{'bbox': [100, 200, 356, 456], 'response': 'The object is found.'}</answer>")
    answer = parse_gse(text)
    assert answer.found and answer.bbox == (100, 200, 356, 456)
    assert answer.response == "The object is found."
    assert answer.think.startswith("I compare")
    assert has_think_answer_format(text)


def test_parse_double_quoted_lpr():
    text = ('<think>x</think> <answer>{"bbox": [10, 20, 30, 40], "points_1": [15, 25], '
            '"points_2": [20, 30], "response": "The object is found."}</answer>')
    answer = parse_lpr(text)
    assert answer.points == [(15, 25), (20, 30)] and answer.bbox == (10, 20, 30, 40)


def test_parse_without_answer_tag_ignores_think_json():
    text = "<think>{'bbox': [0, 0, 0, 0]}</think> {'bbox': [5, 6, 7, 8], 'response': 'ok'}"
    assert parse_gse(text).bbox == (5, 6, 7, 8)
    assert not has_think_answer_format(text)


@pytest.mark.parametrize("text", [
    "<answer>{'bbox': [0, 0, 0, 0], 'response': 'No object founded'}</answer>",
    "<answer>{'bbox': [3, 4, 50, 60], 'points_1': [0, 0], 'points_2': [0, 0], "
    "'response': 'No object founded'}</answer>",
])
def test_not_found(text):
    assert parse_lpr(text).found is False


@pytest.mark.parametrize("text, reason", [
    ("I think it's on the left", "no JSON object"),
    ("<answer>{'bbox': [1, 2, 3], 'response': 'x'}</answer>", "4 numbers"),
    ("<answer>{'response': 'The object is found.'}</answer>", "no 'bbox'"),
    ("<answer>{'bbox': [1, 2, 3, 4], 'response': 'x'}</answer>", "no 'points_1'"),
    ("<answer>{'bbox': [30, 2, 3, 4], 'points_1': [1, 1], 'points_2': [1, 1]}</answer>",
     "out of order"),
    ("<answer>{'bbox': [1, 2, 3, 4], 'points_1': ['a', 1], 'points_2': [1, 1]}</answer>",
     "2 numbers"),
    ("<answer>{'bbox': __import__('os').system('true')}</answer>", "unparsable"),
    ("<answer>{" * 20000, "too long"),
])
def test_parse_errors_keep_raw_text(text, reason):
    with pytest.raises(ParseError) as info:
        parse_lpr(text)
    assert reason in info.value.reason
    assert info.value.raw[:50] == text[:50]


# --- issue 9: answer location, numbers, truncation ---------------------------------------

QUOTED_TEMPLATE_THEN_ANSWER = (
    "<think>The prompt's example is <answer>{'bbox':[5,5,6,6],'response':'The object is found.'}"
    "</answer>, but the car is lower.</think>"
    '<answer>{"bbox":[1,2,300,400],"response":"The object is found."}</answer>'
)


def test_answer_quoted_inside_think_does_not_win():
    answer = parse_gse(QUOTED_TEMPLATE_THEN_ANSWER)
    assert answer.bbox == (1, 2, 300, 400)
    assert answer.think.startswith("The prompt's example")


def test_last_answer_block_wins_without_think():
    text = ("<answer>{'bbox': [5, 5, 6, 6], 'response': 'x'}</answer> on second thought "
            "<answer>{'bbox': [7, 8, 9, 10], 'response': 'y'}</answer>")
    assert parse_gse(text).bbox == (7, 8, 9, 10)


@pytest.mark.parametrize("value", [
    "NaN", "Infinity", "-Infinity", "1e999", "9" * 400, "-" + "9" * 400, "'nan'", "'inf'", "1e7",
    "0x" + "f" * 600,
])
@pytest.mark.parametrize("where", ["gse_bbox", "lpr_bbox", "lpr_point"])
def test_non_finite_and_absurd_numbers_are_parse_errors(value, where):
    bbox = f"[10, 20, {value}, 40]" if where != "lpr_point" else "[10, 20, 30, 40]"
    point = f"[{value}, 25]" if where == "lpr_point" else "[15, 25]"
    text = (f"<think>x</think><answer>{{'bbox': {bbox}, 'points_1': {point}, "
            "'points_2': [20, 30], "
            f"'response': 'The object is found.'}}</answer>")
    parse = parse_gse if where == "gse_bbox" else parse_lpr
    with pytest.raises(ParseError) as info:
        parse(text)
    assert info.value.raw == text


def test_string_numbers_are_accepted():
    text = "<answer>{'bbox': ['12', ' 20', '30.5', 40], 'response': 'found'}</answer>"
    assert parse_gse(text).bbox == (12, 20, 30.5, 40)
    with pytest.raises(ParseError):
        parse_gse("<answer>{'bbox': ['12', '1_000', 30, 40], 'response': 'x'}</answer>")


def test_two_objects_in_one_answer_block_take_the_first():
    text = ("<think>x</think><answer>{'bbox': [1, 2, 3, 4], 'response': 'The object is found.'}"
            "{'bbox': [5, 6, 7, 8], 'response': 'The object is found.'}</answer>")
    assert parse_gse(text).bbox == (1, 2, 3, 4)


def test_qwen_bbox_2d_key_is_read_as_the_reference_does():
    text = "<answer>{'bbox_2d': [1, 2, 3, 4], 'response': 'The object is found.'}</answer>"
    assert parse_gse(text).bbox == (1, 2, 3, 4)


def test_no_object_found_in_open_answer_keeps_the_box():
    text = ("<think>x</think><answer>{'bbox': [10, 20, 266, 276], 'response': 'No object found'}"
            "</answer>")
    for kind in ("open", "reasoning", "option"):
        answer = parse_gse(text, kind)
        assert answer.found and answer.bbox == (10, 20, 266, 276)
        assert answer.response == "No object found"
    assert parse_gse(text).found is False  # a referring answer saying so is "not found"


@pytest.mark.parametrize("text", [
    "<think>The red screw is left of the",
    "<think>x</think><answer>{'bbox': [1, 2, 3",
    "<think>x</think><answer>{'bbox': [1, 2, 3, 4], 'response': 'The obj",
    "<think>quoting <answer>{'bbox': [5, 5, 6, 6], 'response': 'A'}</answer> and then",
    "<think>quoting <answer>{'bbox': [5, 5, 6, 6], 'response': 'A'}</answer></think><think>again",
])
def test_cut_answer_is_a_truncated_answer_error(text):
    from finers_ros.parsing import TruncatedAnswerError, looks_truncated

    assert looks_truncated(text)
    with pytest.raises(TruncatedAnswerError) as info:
        parse_gse(text)
    assert isinstance(info.value, ParseError) and info.value.truncated


def test_unclosed_answer_with_a_complete_object_is_used():
    from finers_ros.parsing import looks_truncated

    text = "<think>x</think><answer>{'bbox': [1, 2, 3, 4], 'response': 'The object is found.'}"
    assert parse_gse(text).bbox == (1, 2, 3, 4) and looks_truncated(text)
    with pytest.raises(ParseError) as info:
        parse_gse("no tags, no braces")
    assert not info.value.truncated


def test_read_answer_reports_strict_format():
    from finers_ros.parsing import read_answer

    strict = read_answer(QUOTED_TEMPLATE_THEN_ANSWER)
    assert strict.strict_format and strict.data["bbox"] == [1, 2, 300, 400]
    loose = read_answer("Sure! <answer>{'bbox': [1, 2, 3, 4], 'response': 'r'}</answer>")
    assert not loose.strict_format and loose.data["response"] == "r" and loose.think == ""
    assert parse_gse(QUOTED_TEMPLATE_THEN_ANSWER).strict_format


@pytest.mark.parametrize("response", ["It's white.", "the driver's cap", "don't know"])
def test_apostrophe_inside_a_single_quoted_response_keeps_the_answer(response):
    # Python-style answers do not escape a word's apostrophe; the box must not be lost to it.
    text = (f"<think>x</think><answer>{{'bbox': [1, 2, 300, 400], 'points_1': [5, 6], "
            f"'points_2': [7, 8], 'response': '{response}'}}</answer>")
    assert parse_gse(text, "open").response == response
    assert parse_lpr(text, "open").bbox == (1, 2, 300, 400)

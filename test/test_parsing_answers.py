"""
Stage answers at the parser's limits, and the one-line errors a user reads in the node's status.

Coordinates exactly at +-MAX_COORDINATE, one-pixel boxes, point keys in any order or spelling,
non-text responses, and the exact wording of every ParseError (it is what ends up on the
status topic and in the log).
"""

import pytest

from finers_ros.parsing import (
    MAX_COORDINATE,
    ParseError,
    TruncatedAnswerError,
    has_final_answer,
    looks_truncated,
    parse_gse,
    parse_lpr,
    read_answer,
)


def answer(body: str) -> str:
    return f"<think>looking</think><answer>{body}</answer>"


def error_of(parse, text) -> ParseError:
    with pytest.raises(ParseError) as caught:
        parse(text)
    return caught.value


@pytest.mark.parametrize(
    "body, line",
    [
        ("{'response': 'x'}", "answer has no 'bbox'"),
        ("{'bbox': [1, 2]}", "'bbox' must be a list of 4 numbers, got [1, 2]"),
        ("{'bbox': 7}", "'bbox' must be a list of 4 numbers, got 7"),
        ("{'bbox': [1, 2, 'x', 4]}",
         "'bbox' must be 4 numbers (finite, within +-100000), got [1, 2, 'x', 4]"),
        ("{'bbox': [1, 2, true, 4]}",
         "'bbox' must be 4 numbers (finite, within +-100000), got [1, 2, True, 4]"),
        ("{'bbox': [10, 0, 5, 5]}", "bbox corners out of order: [10.0, 0.0, 5.0, 5.0]"),
        ("{'bbox': [0, 10, 5, 5]}", "bbox corners out of order: [0.0, 10.0, 5.0, 5.0]"),
    ],
)
def test_gse_errors_are_one_exact_line_that_keeps_the_raw_text(body, line):
    text = answer(body)
    error = error_of(parse_gse, text)
    assert str(error) == error.reason == line
    assert error.raw == text and not error.truncated


@pytest.mark.parametrize(
    "body, line",
    [
        ("{'bbox': [1, 2, 3, 4]}", "answer has no 'points_1'"),
        ("{'bbox': [1, 2, 3, 4], 'points_1': [1, 2]}", "answer has no 'points_2'"),
        ("{'bbox': [1, 2, 3, 4], 'points_2': [1, 2]}", "answer has no 'points_1'"),
        ("{'bbox': [1, 2, 3, 4], 'points_1': [1, 'y'], 'points_2': [1, 2]}",
         "'points_1' must be 2 numbers (finite, within +-100000), got [1, 'y']"),
        ("{'bbox': [1, 2, 3, 4], 'points_1': [1, 2], 'points_2': 5}",
         "'points_2' must be a list of 2 numbers, got 5"),
    ],
)
def test_lpr_point_errors_name_the_point(body, line):
    assert str(error_of(parse_lpr, answer(body))) == line


def test_a_long_value_is_shown_cut_to_120_characters():
    numbers = ", ".join(["1"] * 60)
    error = error_of(parse_gse, answer(f"{{'bbox': [{numbers}]}}"))
    shown = "[" + ", ".join(["1"] * 60) + "]"
    assert str(error) == "'bbox' must be a list of 4 numbers, got " + shown[:120]


def test_a_number_too_long_to_print_still_gets_its_line():
    # JSON5 reads hexadecimal without Python's digit limit; the int cannot be printed
    huge = "0x" + "F" * 4000
    error = error_of(parse_gse, answer(f"{{'bbox': [{huge}, 1, 2, 3]}}"))
    assert str(error) == ("'bbox' must be 4 numbers (finite, within +-100000), "
                          "got <list too large to print>")


@pytest.mark.parametrize(
    "value, read",
    [
        ("100000", 100000.0), ("-100000", -100000.0), ("100000.0", 100000.0),
        ("-100000.0", -100000.0), ("'100000'", 100000.0), ("' -2.5e1 '", -25.0),
        ("'" + " " * 38 + "12'", 12.0),  # a numeric string of 40 characters
    ],
)
def test_coordinates_up_to_the_limit_are_read(value, read):
    parsed = parse_gse(answer(f"{{'bbox': [{value}, -100000, 100000, 100000]}}"))
    assert parsed.found and parsed.bbox[0] == read


@pytest.mark.parametrize(
    "value",
    ["100001", "-100001", "100000.5", "-100000.5", "'100001'", "'" + " " * 39 + "12'",
     "'12 px'", "NaN", "Infinity"],
)
def test_coordinates_past_the_limit_or_not_numbers_are_refused(value):
    error = error_of(parse_gse, answer(f"{{'bbox': [{value}, 0, 100000, 100000]}}"))
    assert str(error).startswith("'bbox' must be 4 numbers (finite, within +-100000), got [")
    assert MAX_COORDINATE == 100_000.0


@pytest.mark.parametrize(
    "box", [[5, 5, 5, 5], [100, 0, 200, 50], [0, 0, 100, 50], [0, 50, 10, 50], [7, 0, 7, 3]]
)
def test_one_pixel_wide_or_tall_boxes_in_any_part_of_the_frame_are_found(box):
    parsed = parse_gse(answer(f"{{'bbox': {box}, 'response': 'there'}}"))
    assert parsed.found and parsed.bbox == tuple(float(v) for v in box)


def test_an_all_zero_box_is_not_found_whatever_the_response_and_keeps_the_answer():
    text = answer("{'bbox': [0, 0, 0, 0], 'response': 'It is red.'}")
    parsed = parse_gse(text)
    assert not parsed.found and parsed.bbox is None and parsed.points == []
    assert parsed.raw == text and parsed.response == "It is red."
    assert parsed.think == "looking" and parsed.strict_format
    near_zero = parse_gse(answer("{'bbox': [1, 1, 1, 1], 'response': 'It is red.'}"))
    assert near_zero.found and near_zero.bbox == (1.0, 1.0, 1.0, 1.0)


def test_a_found_answer_keeps_raw_text_think_and_format():
    text = "<think> a </think> <answer>{'bbox': [1, 2, 3, 4], 'response': 'ok'}</answer>"
    parsed = parse_gse(text)
    assert parsed.raw == text and parsed.think == "a" and parsed.strict_format
    loose = "I think <answer>{'bbox': [1, 2, 3, 4]}</answer>"
    parsed = parse_gse(loose)
    assert parsed.raw == loose and parsed.think == "" and not parsed.strict_format


def test_points_follow_their_names_not_their_order_in_the_answer():
    parsed = parse_lpr(answer("{'bbox': [0, 0, 9, 9], 'points_2': [7, 8], 'points_1': [1, 2]}"))
    assert parsed.points == [(1.0, 2.0), (7.0, 8.0)]


def test_other_point_names_are_read_in_order_and_only_two_are_kept():
    parsed = parse_lpr(answer(
        "{'bbox': [0, 0, 9, 9], 'Points_A': [1, 2], 'points_b': [3, 4], 'points_c': [5, 6]}"))
    assert parsed.points == [(1.0, 2.0), (3.0, 4.0)]
    # the two standard names win over others wherever they are
    parsed = parse_lpr(answer(
        "{'bbox': [0, 0, 9, 9], 'points_x': [5, 6], 'points_2': [3, 4], 'points_1': [1, 2]}"))
    assert parsed.points == [(1.0, 2.0), (3.0, 4.0)]


def test_the_gse_reads_no_points():
    parsed = parse_gse(answer("{'bbox': [0, 0, 9, 9], 'points_1': [1, 2], 'points_2': [3, 4]}"))
    assert parsed.points == []


@pytest.mark.parametrize(
    "value, response",
    [("5", "5"), ("2.5", "2.5"), ("'two words'", "two words"), ("null", ""), ("[1]", ""),
     ("{'a': 1}", ""), ("true", "True")],
)
def test_the_response_is_text_whatever_the_model_put_there(value, response):
    assert parse_gse(answer(f"{{'bbox': [1, 2, 3, 4], 'response': {value}}}")).response == response
    assert parse_gse(answer("{'bbox': [1, 2, 3, 4]}")).response == ""


def test_a_referring_no_object_found_is_not_found_in_any_case():
    text = answer("{'bbox': [1, 2, 3, 4], 'response': 'No Object Found here'}")
    assert not parse_gse(text).found
    assert not parse_lpr(text).found
    assert not parse_gse(text, "Referring ").found
    assert parse_gse(text, "open").found  # an open answer is the answer itself


def test_think_is_the_last_closed_block():
    text = ("<think> first </think><think> second </think>"
            "<answer>{'bbox': [1, 2, 3, 4]}</answer>")
    assert parse_gse(text).think == "second"
    assert parse_gse("</think><answer>{'bbox': [1, 2, 3, 4]}</answer>").think == ""


def test_a_cut_answer_says_so_and_a_closed_one_does_not():
    cut = error_of(parse_gse, "<think>a</think><answer>the box is")
    assert isinstance(cut, TruncatedAnswerError) and cut.truncated
    assert str(cut) == "answer cut off before it closed (no JSON object in the <answer> block)"
    closed = error_of(parse_gse, "<think>a</think><answer>the box is</answer>")
    assert type(closed) is ParseError and not closed.truncated
    assert str(closed) == "no JSON object in the <answer> block"


def test_text_that_is_not_text_or_too_long_is_one_line():
    assert str(error_of(read_answer, 42)) == "model output is not text (int)"
    long_text = "x" * 20_001
    error = error_of(read_answer, long_text)
    assert str(error) == "model output too long (20001 characters)"
    assert error.raw == "x" * 20_000
    longest = answer("{'bbox': [1]}")
    longest += " " * (20_000 - len(longest))
    assert read_answer(longest).data == {"bbox": [1]}


@pytest.mark.parametrize(
    "text, truncated, final",
    [
        ("<think>still going", True, False),
        ("<think>a</think><answer>{'bbox'", True, False),
        ("<think>a</think><answer>{}</answer>", False, True),
        ("<think>a</think>", False, False),
        ("<think>quoting <answer>{}</answer>", True, False),
        ("<think>a</think><answer>{}</answer><think>more", True, False),
        ("<THINK>a</THINK><ANSWER>{}</ANSWER>", False, True),
        ("<answer>{}</answer><answer>{", True, False),
        (None, False, False),
        (17, False, False),
    ],
)
def test_cut_and_final_answers_are_told_apart(text, truncated, final):
    assert looks_truncated(text) is truncated
    assert has_final_answer(text) is final


def test_an_answer_inside_a_closed_think_is_taken_the_last_one():
    one = "<think>I'd say <answer>{'bbox': [1, 2, 3, 4]}</answer></think>"
    assert parse_gse(one).bbox == (1.0, 2.0, 3.0, 4.0)
    two = ("<think>first <answer>{'bbox': [1, 2, 3, 4]}</answer> no, "
           "<answer>{'bbox': [5, 6, 7, 8]}</answer></think>")
    assert parse_gse(two).bbox == (5.0, 6.0, 7.0, 8.0)
    later = "<think>a</think><think>b <answer>{'bbox': [5, 6, 7, 8]}</answer></think>"
    assert parse_gse(later).bbox == (5.0, 6.0, 7.0, 8.0)


def test_an_answer_inside_a_think_never_closed_is_not_taken():
    text = ("<think>x</think><think>quoting <answer>{'bbox': [1, 2, 3, 4]}</answer> "
            "<think>again")
    error = error_of(parse_gse, text)
    assert error.truncated


def test_think_ignores_blocks_opened_after_it_and_needs_its_opening_tag():
    text = "<think>a</think><answer>{'bbox': [1, 2, 3, 4]}</answer><think>more"
    assert parse_gse(text).think == "a"
    assert parse_gse("I looked</think><answer>{'bbox': [1, 2, 3, 4]}</answer>").think == ""


def test_the_answer_object_respects_quotes_escapes_and_nesting():
    escaped = ('<answer>{"bbox": [1, 2, 3, 4], "response": "a \\"}\\" b", "m": {"a": 1}} '
               'done</answer>')
    assert parse_gse(escaped).response == 'a "}" b'
    apostrophe = ("<answer>Here's the box: {'bbox': [1, 2, 3, 4], 'meta': {'note': 'it is'}} "
                  "ok</answer>")
    assert parse_gse(apostrophe).bbox == (1.0, 2.0, 3.0, 4.0)
    quoted = "<answer>{'response': 'say \"hi\" {here}', 'bbox': [1, 2, 3, 4]}</answer>"
    assert parse_gse(quoted).response == 'say "hi" {here}'


def test_the_references_stray_quote_after_a_list_is_repaired():
    parsed = parse_gse('<answer>{"bbox": [1, 2, 3, 4]", "response": "x"}</answer>')
    assert parsed.bbox == (1.0, 2.0, 3.0, 4.0) and parsed.response == "x"


@pytest.mark.parametrize(
    "block, shown",
    [
        ("{ ", "{"),
        ('{"bbox": [1, 2, 3, 4], oops}', '{"bbox": [1, 2, 3, 4], oops}'),
        ('{"bbox": [1, 2, 3, 4], "m": {oops}}', '{"bbox": [1, 2, 3, 4], "m": {oops}}'),
        ("{'x': " + "9" * 300 + " oops}", "{'x': " + "9" * 194),
    ],
)
def test_an_unparsable_object_is_shown_in_the_line(block, shown):
    error = error_of(parse_gse, f"<answer>{block}</answer>")
    assert str(error) == f"unparsable answer JSON: {shown!r}"


def test_text_that_is_not_text_keeps_its_repr_as_raw():
    assert error_of(read_answer, 42).raw == "42"
    assert error_of(read_answer, list(range(100))).raw == repr(list(range(100)))[:200]


def test_extract_answer_json_returns_the_object_uninterpreted():
    from finers_ros.parsing import extract_answer_json

    text = "<think>t</think><answer>{'bbox_2d': [1, 2], 'extra': null}</answer>"
    assert extract_answer_json(text) == {"bbox_2d": [1, 2], "extra": None}

"""
GSE and LPR prompts, verbatim-compatible with the published FineRS checkpoints.

The texts (including the missing spaces after periods) are what the checkpoints were
trained on; change them and the models answer worse. Three question types:
``referring`` (find an object), ``open`` (FineRS-4k ``reasoning``: a word or phrase),
``option`` (multiple choice).
"""
from __future__ import annotations

from typing import Sequence, Union

QUESTION_TYPES = ("referring", "open", "option")
# FineRS-4k spells the open question type "reasoning".
_TYPE_ALIASES = {"reasoning": "open", "multiple_choice": "option", "choice": "option"}

_GSE_HEAD = ("Based on the '{question}', identify a 256*256 bounding box that best localizes the "
             "region most relevant to the query. ")
_LPR_HEAD = "Please find '{question}' with bbox and points. "
_TASK = {
    "referring": "And respond with whether the object is found.",
    "open": "And give me a final response with a word or phrase.",
    "option": "And give me a correct option from {options}.",
}
_GSE_BODY = (
    "Compare the difference between regions and find the most closely matched one."
    "Output the thinking process in <think> </think> and final answer in <answer> </answer> "
    "tags."
    "Output the 256*256 region bbox and the final response inside the interested object in JSON "
    "format."
    "i.e., <think> thinking process here </think><answer>{answer}</answer>"
)
_LPR_BODY = (
    "Compare the difference between objects and find the most closely matched one."
    "Output the thinking process in <think> </think> and final answer in <answer> </answer> "
    "tags."
    "Output the one bbox and points of two largest inscribed circles inside the interested object "
    "in JSON format."
    "If the object is not found, output bbox as [0, 0, 0, 0], points_1 and points_2 as [0, 0], "
    "and response as 'No object founded'."
    "i.e., <think> thinking process here </think><answer>{answer}</answer>"
)
# The answer examples differ per stage: the GSE open example has a space before its closing
# brace and the LPR one has not, as in the training data of the published checkpoints.
_GSE_EXAMPLE = {
    "referring": "{'bbox': [x_min,y_min,x_min+256,y_min+256], 'response': 'The object is found.'}",
    "open": "{'bbox': [x_min,y_min,x_min+256,y_min+256], 'response': 'The object is white.' }",
    "option": "{'bbox': [x_min,y_min,x_min+256,y_min+256], 'response': 'A'}",
}
_LPR_POINTS = "{'bbox': [10,100,200,210], 'points_1': [30,110], 'points_2': [35,180], "
_LPR_EXAMPLE = {
    "referring": _LPR_POINTS + "'response': 'The object is found.'}",
    "open": _LPR_POINTS + "'response': 'The object is white.'}",
    "option": _LPR_POINTS + "'response': 'A'}",
}

Options = Union[str, Sequence[str], None]


def normalize_question_type(question_type: str) -> str:
    kind = _TYPE_ALIASES.get(question_type.strip().lower(), question_type.strip().lower())
    if kind not in QUESTION_TYPES:
        raise ValueError(f"unknown question type {question_type!r}; "
                         f"expected one of {QUESTION_TYPES}")
    return kind


def normalize_question(question: str) -> str:
    """Lower-cased, whitespace-trimmed, trailing '.' stripped (as in training)."""
    return " ".join(question.split()).lower().rstrip(".").strip()


def format_options(options: Options) -> str:
    """
    Format options as the reference inserts them (``str.format`` of the JSON value).

    A string as is, a list as ``str(list)`` (Python literal, its items' own reprs).
    """
    if options is None:
        raise ValueError("an option question needs its options")
    if isinstance(options, str):
        return options
    return str(list(options))


def _task(kind: str, options: Options) -> str:
    return _TASK[kind].format(options=format_options(options)) if kind == "option" else _TASK[kind]


def gse_prompt(question: str, question_type: str = "referring", options: Options = None) -> str:
    """Prompt of the global semantic exploration stage (image: the whole frame, GSE frame)."""
    kind = normalize_question_type(question_type)
    answer = _GSE_EXAMPLE[kind]
    return (_GSE_HEAD.format(question=normalize_question(question)) + _task(kind, options)
            + _GSE_BODY.format(answer=answer))


def lpr_prompt(question: str, question_type: str = "referring", options: Options = None) -> str:
    """Prompt of the localized perceptual refinement stage (image: the crop, LPR frame)."""
    kind = normalize_question_type(question_type)
    answer = _LPR_EXAMPLE[kind]
    return (_LPR_HEAD.format(question=normalize_question(question)) + _task(kind, options)
            + _LPR_BODY.format(answer=answer))


def question_from_prompt(prompt: str) -> str | None:
    """Return the quoted question of a GSE or LPR prompt (what a prompt-driven backend grounds)."""
    for head in ("Based on the '", "Please find '"):
        start = prompt.find(head)
        if start >= 0:
            start += len(head)
            end = prompt.find("'", start)
            # Questions may contain apostrophes: the quote that closes it precedes the fixed tail.
            for tail in ("', identify", "' with bbox"):
                tail_at = prompt.find(tail, start)
                if tail_at >= 0:
                    end = tail_at
                    break
            return prompt[start:end] if end >= start else None
    return None


def is_gse_prompt(prompt: str) -> bool:
    return prompt.startswith("Based on the '") and "256*256 bounding box" in prompt


def question_type_from_prompt(prompt: str) -> str:
    """Which of the three task sentences a GSE or LPR prompt carries."""
    option_head = _TASK["option"].split("{options}")[0]
    if option_head in prompt:
        return "option"
    return "open" if _TASK["open"] in prompt else "referring"


def options_from_prompt(prompt: str) -> str:
    """Return the options text inserted into an option prompt ("" for other prompts)."""
    head = _TASK["option"].split("{options}")[0]
    start = prompt.find(head)
    if start < 0:
        return ""
    start += len(head)
    end = prompt.find(".Compare the difference", start)
    return prompt[start:end if end >= 0 else len(prompt)]

"""
The text of an instruction on the command topic, both ways (ROS-free).

A command is plain instruction text, or a JSON object ``{"instruction", "question_type",
"options", "id", "track"}`` (``track``: follow the found target on every frame after the
answer), or ``{"stop_track": "<track id>" | "all"}`` to end tracks, or ``{"ping": true,
"id"}`` (a client checking that the node hears it: answered under its id, nothing else).
The node parses what arrives on ``finers/command``; the episode recorder writes commands
back in the same form, and the offline bag reader parses recorded ones with the same
function, so a recorded command means what it meant to the node.
"""
from __future__ import annotations

import json
from typing import List, Optional


# JSON commands up to this size are parsed (linear time: ~0.1 s at the bound), so a command
# whose instruction is far too long is still answered under its own id
MAX_JSON_CHARS = 16 * 2 ** 20
MAX_ID_CHARS = 256  # a longer id is an input error, answered under its first 256 characters


def parse_command(text: str) -> dict:
    """
    ``{"instruction", "question_type", "options", "request_id", "track"}`` of a command.

    A ``{"stop_track": ...}`` object gives ``{"stop_track": id or "all", "request_id"}``
    instead (an id that is not a string is taken as given, so it matches no track);
    ``{"ping": true}`` gives ``{"ping": True, "request_id"}``.

    Malformed JSON is taken as plain text. A JSON object without a string ``instruction``
    is an empty instruction under its ``id`` (the node answers it as an input error), so a
    client waiting for that id hears back. A ``track`` that is neither a boolean nor null
    (``"yes"``, ``1``) is not guessed at: the command gets a ``problem`` (an input error).
    So does an ``id`` that is not a string or a number, or is longer than ``MAX_ID_CHARS``
    (see ``command_id``).
    """
    stripped = text.strip()
    if stripped.startswith("{") and len(stripped) <= MAX_JSON_CHARS:
        try:
            data = json.loads(stripped)
        except ValueError:
            data = None
        if isinstance(data, dict) and data.get("ping") is True:
            return {"ping": True, "request_id": command_id(data.get("id"))[0]}
        if isinstance(data, dict) and "stop_track" in data:
            return {"stop_track": str(data["stop_track"]),
                    "request_id": command_id(data.get("id"))[0]}
        if isinstance(data, dict):
            options = data.get("options")
            instruction = data.get("instruction")
            command = {"instruction": instruction if isinstance(instruction, str) else "",
                       "question_type": str(data.get("question_type") or "referring"),
                       "options": [str(o) for o in options] if isinstance(options, list) else None,
                       "request_id": "",
                       "track": data.get("track") is True}
            command["request_id"], id_problem = command_id(data.get("id"))
            track = data.get("track")
            if track is not None and not isinstance(track, bool):
                shown = json.dumps(track)
                shown = shown if len(shown) <= 40 else shown[:37] + "..."
                command["problem"] = f"track must be true or false, got {shown}"
            if id_problem:
                command["problem"] = id_problem
            return command
    return {"instruction": text, "question_type": "referring", "options": None, "request_id": "",
            "track": False}


def command_id(given) -> tuple:
    """
    Return ``(request id, problem)`` of a JSON command's ``id`` value (problem "" if none).

    A string as it is, a number as its JSON text, null as no id. Anything else (an object,
    a list, a boolean) is a problem, answered under its compact JSON text; so is an id longer
    than ``MAX_ID_CHARS``, answered under its first ``MAX_ID_CHARS`` characters (what a
    client can still match).
    """
    if given is None:
        return "", ""
    problem = ""
    if isinstance(given, str):
        text = given
    else:
        text = json.dumps(given, separators=(",", ":"))
        if isinstance(given, bool) or not isinstance(given, (int, float)):
            shown = text if len(text) <= 40 else text[:37] + "..."
            problem = f"id must be a string or a number, got {shown}"
    if len(text) > MAX_ID_CHARS:
        problem = problem or f"id is {len(text)} characters long (at most {MAX_ID_CHARS})"
        text = text[:MAX_ID_CHARS]
    return text, problem


def command_text(instruction: str, question_type: str = "referring",
                 options: Optional[List[str]] = None, request_id: str = "",
                 track: bool = False) -> str:
    """
    Return the command string that ``parse_command`` reads back as these fields.

    Plain text for a referring instruction without an id (what a person types), JSON otherwise.
    """
    plain = (question_type == "referring" and not options and not request_id and not track
             and parse_command(instruction).get("instruction") == instruction)
    if plain:
        return instruction
    data = {"instruction": instruction, "question_type": question_type}
    if options:
        data["options"] = list(options)
    if request_id:
        data["id"] = request_id
    if track:
        data["track"] = True
    return json.dumps(data)

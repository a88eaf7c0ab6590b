"""The eval prompt set: the prompts every checkpoint evaluation completes, editable and persisted.

Shipped defaults live beside this module (eval_prompts.yaml); the user's edited list lives in the
user config dir under the same name and, once saved, replaces the defaults. Written atomically.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

from engine.safe_yaml import YamlError, load_yaml_file
from engine.shared import atomic_write
from nanochat_cli.errors import AppError
from nanochat_cli.services import paths

FILE_NAME = "eval_prompts.yaml"
SHIPPED = Path(__file__).with_name(FILE_NAME)
MODES = ("continue", "chat")


@dataclass
class EvalPrompt:
    name: str
    prompt: str
    mode: str = "continue"  # "continue": the model continues the text; "chat": it answers a user turn


def user_prompts_path() -> Path:
    return paths.user_config_dir() / FILE_NAME


def _parse(path: Path) -> list[EvalPrompt]:
    try:
        raw = load_yaml_file(path, what="prompt list")
    except YamlError as e:
        raise AppError(f"{e}; or delete the file for the defaults") from None
    return _from_raw(raw, path)


def _from_raw(raw: object, path: Path) -> list[EvalPrompt]:
    items = raw.get("prompts") if isinstance(raw, dict) else None
    if not isinstance(items, list):
        raise AppError(f"{path}: expected a 'prompts:' list of {{name, prompt, mode}}: fix it or delete it")
    out, names = [], set()
    for i, item in enumerate(items):
        if not (isinstance(item, dict) and isinstance(item.get("name"), str) and isinstance(item.get("prompt"), str)):
            raise AppError(f"{path}: prompts[{i}]: needs a text name and prompt: fix that entry")
        mode = item.get("mode", "continue")
        if mode not in MODES:
            raise AppError(f"{path}: prompts[{i}] ({item['name']}): mode {mode!r}: use continue or chat")
        if item["name"] in names:
            raise AppError(f"{path}: prompts[{i}]: name {item['name']!r} is used twice: rename one")
        names.add(item["name"])
        out.append(EvalPrompt(item["name"], item["prompt"], mode))
    return out


def load_prompt_set(path: Path | None = None) -> list[EvalPrompt]:
    """The user's prompt set if saved, else the shipped defaults."""
    path = Path(path) if path else user_prompts_path()
    return _parse(path if path.is_file() else SHIPPED)


def save_prompt_set(prompts: list[EvalPrompt], path: Path | None = None) -> Path:
    """Persist an edited list (validated the same way it is read back)."""
    path = Path(path) if path else user_prompts_path()
    raw = {"prompts": [asdict(p) for p in prompts]}
    _from_raw(raw, path)  # refuse to write a list that would not load back
    text = "# Eval prompts (nanochat-cli). mode: continue | chat. Delete this file to get the defaults back.\n"
    text += yaml.safe_dump(raw, sort_keys=False, allow_unicode=True)
    atomic_write(path, text)
    return path


def reset_prompt_set(path: Path | None = None) -> None:
    """Drop the user's list so the shipped defaults apply again."""
    (Path(path) if path else user_prompts_path()).unlink(missing_ok=True)
